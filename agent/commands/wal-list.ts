/** `walvault wal list`: every archived WAL file of the database. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print, requireRegistered } from "./shared.js";

export default defineCommand({
  name: "wal list",
  summary: "every archived WAL file of the database",
  group: GROUPS.archiving,
  positionals: [],
  options: { ...commonOptions, json: jsonOption },
  async run({ values }) {
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const { listWal, formatWalList } = await import("../status.js");
    const clients = agentClients(cfg);
    const databaseId = requireDatabase(cfg);
    await requireRegistered(clients.catalog, databaseId);
    const records = await listWal(clients, databaseId);
    print(values.json, records, () => formatWalList(records));
    return 0;
  },
});
