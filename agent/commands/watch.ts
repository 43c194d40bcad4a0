/** `walvault watch <file>`: ship a generic database's closed WAL segments and snapshot on schedule. */
import { resolve } from "node:path";
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "watch",
  summary: "ship closed WAL segments of every stream and snapshot on schedule (file: see docs/generic.md)",
  group: GROUPS.generic,
  details: ["Resident: every pollSeconds until Ctrl-C (the pass under way finishes). With --once: one pass, exit 1 if anything failed."],
  positionals: [{ name: "file", description: "the watch file: data directory, streams, snapshot rule" }],
  options: {
    once: { type: "boolean", description: "one pass (ship, snapshot if due), then exit; non-zero if anything failed" },
    "snapshot-now": { type: "boolean", description: "take a snapshot in the first pass" },
    timeout: { type: "seconds", default: "60", description: "how long each segment waits for the catalog" },
    database: { ...commonOptions.database, description: "database id (default: the watch file's databaseId, $WALVAULT_DATABASE, the configuration's)" },
    config: commonOptions.config,
    json: jsonOption,
  },
  async run({ values, positionals: [file] }) {
    const timeoutS = Number(values.timeout);
    const { loadWatchFile, Watcher } = await import("../watch.js");
    const spec = loadWatchFile(resolve(file!));
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig({ ...values, database: values.database ?? spec.databaseId });
    const databaseId = requireDatabase(cfg);
    const log = (line: string): void => void process.stderr.write(`walvault watch: ${line}\n`);
    const watcher = new Watcher(spec, { ...cfg, databaseId }, agentClients(cfg), {
      snapshotNow: values["snapshot-now"],
      timeoutMs: timeoutS * 1000,
      log: values.json ? () => {} : log,
    });
    if (values.once) {
      const r = await watcher.pass();
      print(values.json, r, () =>
        `${r.streams.length} stream(s), ${r.shipped.filter((x) => x.outcome === "stored").length} segment(s) shipped` +
          (r.snapshot ? `, snapshot ${r.snapshot.snapshotId}` : "") +
          [...r.errors, ...(r.snapshotError ? [`snapshot: ${r.snapshotError}`] : [])].map((e) => `\nerror: ${e}`).join(""),
      );
      return r.errors.length > 0 || r.snapshotError !== undefined ? 1 : 0;
    }
    const stop = new AbortController();
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
    log(`watching ${spec.dataDir} for database ${databaseId} (every ${spec.pollSeconds} s; Ctrl-C stops after the pass under way)`);
    await watcher.run(stop.signal, values.json ? (r) => process.stdout.write(JSON.stringify(r) + "\n") : undefined);
    return 0;
  },
});
