/** `walvault status`: last archived segment, gaps; the resident agent's backlog; per region: lag and restorable windows. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "status",
  summary: "last archived segment, gaps, the resident agent's backlog; per region: lag and restorable windows",
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
    const { status, formatStatus, formatAgentStatus } = await import("../status.js");
    const { regionStatus, formatRegionStatus } = await import("../regions.js");
    const { askAgentStatus } = await import("../push-client.js");
    const { agentSocketPath } = await import("../locate.js");
    const [report, regions, agent] = await Promise.all([
      status(clients, databaseId),
      regionStatus(clients.catalog, cfg, databaseId, values.region),
      // The resident agent on this host, if one answers: the archiver's backlog is only known here.
      askAgentStatus(agentSocketPath(databaseId), databaseId),
    ]);
    print(values.json, { ...report, agent: agent ?? null, regions }, () => `${formatStatus(report)}\n${formatAgentStatus(agent)}\n${formatRegionStatus(regions)}`);
    return 0;
  },
});
