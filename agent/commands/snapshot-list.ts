/** `walvault snapshot list`: the database's snapshots in the catalog. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "snapshot list",
  summary: "the database's snapshots, oldest first",
  group: GROUPS.snapshots,
  positionals: [],
  options: { ...commonOptions, json: jsonOption },
  async run({ values }) {
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const snapshots = await agentClients(cfg).catalog.listSnapshots(requireDatabase(cfg));
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
