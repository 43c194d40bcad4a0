/** `walvault status`: last archived segment, gaps; per region: lag and restorable windows. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "status",
  summary: "last archived segment, gaps; per region: lag and restorable windows",
  group: GROUPS.archiving,
  positionals: [],
  options: {
    region: { type: "string", value: "R", description: "only this region (default: every configured region)" },
    ...commonOptions,
    json: jsonOption,
  },
  async run({ values }) {
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const databaseId = requireDatabase(cfg);
    const clients = agentClients(cfg);
    const { status, formatStatus } = await import("../status.js");
    const { regionStatus, formatRegionStatus } = await import("../regions.js");
    const [report, regions] = await Promise.all([status(clients, databaseId), regionStatus(clients.catalog, cfg, databaseId, values.region)]);
    print(values.json, { ...report, regions }, () => `${formatStatus(report)}\n${formatRegionStatus(regions)}`);
    return 0;
  },
});
