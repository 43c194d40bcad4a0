/** `walvault wal list`: every archived WAL file of the database. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

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
    const records = await listWal(agentClients(cfg), requireDatabase(cfg));
    print(values.json, records, () => formatWalList(records));
    return 0;
  },
});
