/** `walvault wal list`: every archived WAL file of the database, listed as the catalog is read, a page at a time. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, requireRegistered, writeOut } from "./shared.js";

export default defineCommand({
  name: "wal list",
  summary: "every archived WAL file of the database",
  group: GROUPS.archiving,
  positionals: [],
  options: { ...commonOptions, json: jsonOption },
  async run({ values }) {
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const { walPages, writeWalList } = await import("../status.js");
    const clients = agentClients(cfg);
    const databaseId = requireDatabase(cfg);
    await requireRegistered(clients.catalog, databaseId);
    // A page at a time, each written before the next is read (an archive of 1M segments never sits in memory).
    await writeWalList(walPages(clients, databaseId), values.json === true, (text) => writeOut(text));
    return 0;
  },
});
