/** `walvault verify history`: the verification runs recorded for the database. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, regionalSetup, print, requireRegistered } from "./shared.js";

export default defineCommand({
  name: "verify history",
  summary: "the verification runs recorded for the database, oldest first",
  group: GROUPS.verification,
  positionals: [],
  options: {
    snapshot: { type: "string", value: "ID", description: "only the runs of this snapshot" },
    region: { type: "string", value: "R", description: "read through replica region R's configuration" },
    ...commonOptions,
    json: jsonOption,
  },
  async run({ values }) {
    const { cfg, requireDatabase, agentClients } = await regionalSetup(values, values.region);
    const verify = await import("../verify-cli.js");
    const clients = agentClients(cfg);
    const databaseId = requireDatabase(cfg);
    await requireRegistered(clients.catalog, databaseId);
    return verify.historyCommand(clients, databaseId, values, print);
  },
});
