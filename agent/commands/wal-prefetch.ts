/** `walvault wal-prefetch <after> <dir>`: internal; wal-fetch starts it to fetch the next segments ahead. */
import { commonOptions, defineCommand } from "../command.js";
import { GROUPS, regionalSetup, REGION_HELP } from "./shared.js";

export default defineCommand({
  name: "wal-prefetch",
  summary: "keep the segments after <after> spooled in <dir> while recovery takes them (internal: wal-fetch starts it)",
  group: GROUPS.archiving,
  hidden: true,
  positionals: [
    { name: "after", description: "the segment just fetched" },
    { name: "dir", description: "the prefetch directory" },
  ],
  options: {
    count: { type: "positive-int", default: "8", description: "segments to fetch ahead" },
    region: { type: "string", value: "R", description: REGION_HELP },
    ...commonOptions,
  },
  async run({ values, positionals: [after, dir] }) {
    const { cfg, requireDatabase, agentClients } = await regionalSetup(values, values.region);
    const { walPrefetch } = await import("../wal-fetch.js");
    await walPrefetch(after!, dir!, Number(values.count), { ...cfg, databaseId: requireDatabase(cfg) }, agentClients(cfg));
    return 0;
  },
});
