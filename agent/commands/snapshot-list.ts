/** `walvault snapshot list`: the database's snapshots in the catalog. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print, requireRegistered } from "./shared.js";

export default defineCommand({
  name: "snapshot list",
  summary: "the database's snapshots, oldest first",
  group: GROUPS.snapshots,
  positionals: [],
  options: { ...commonOptions, json: jsonOption },
  async run({ values }) {
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const { catalog } = agentClients(cfg);
    const databaseId = requireDatabase(cfg);
    await requireRegistered(catalog, databaseId);
    const snapshots = await catalog.listSnapshots(databaseId);
    const { formatBytes } = await import("../status.js");
    print(values.json, snapshots, () =>
      snapshots.length === 0
        ? "no snapshots"
        : snapshots
            .map((r) => `${r.snapshotId}  ${r.kind}  ${r.startLsn ?? ""}..${r.stopLsn ?? ""}  ${formatBytes(r.totals.logicalBytes)} (${formatBytes(r.totals.newStoredBytes)} new)  finished ${r.finishedAt}`)
            .join("\n"),
    );
    return 0;
  },
});
