/** `walvault restore`: here (--to DIR, --plan-only) or through the restore workflow (--remote). */
import { resolve } from "node:path";
import { InvalidInputError } from "../../core/errors.js";
import { timeProblem } from "../../core/time.js";
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, regionalSetup, print } from "./shared.js";

export default defineCommand({
  name: "restore",
  summary: "restore to a directory, to the latest, a time, an LSN, a restore point or a snapshot (--remote: the restore workflow)",
  group: GROUPS.snapshots,
  details: [
    "walvault restore --to DIR [--latest | --target-time T | --target-lsn L | --target-name N | --snapshot ID]",
    "One target at most (default: the latest). PostgreSQL: DIR is left ready to start, recovering to the target.",
    "restore --remote [target]: run the restore workflow (Step Functions): plan + thaw archived objects; it",
    "prints the plan and restores nothing here (then restore with --to DIR and the same target).",
  ],
  positionals: [],
  options: {
    to: { type: "string", value: "DIR", description: "directory to restore into (empty, or --force)" },
    latest: { type: "boolean", description: "to the end of the archive" },
    "target-time": { type: "string", value: "T", description: "to a time (ISO 8601, e.g. 2026-11-21T07:30:00Z)", check: (v) => timeProblem(v, "--target-time") },
    "target-lsn": { type: "string", value: "L", description: "to an LSN (PostgreSQL, e.g. 0/3000060)" },
    "target-name": { type: "string", value: "N", description: "to a named restore point (PostgreSQL)" },
    snapshot: { type: "string", value: "ID", description: "to exactly a snapshot" },
    timeline: { type: "string", value: "N|latest", description: "timeline to recover along (default: the latest)" },
    "plan-only": { type: "boolean", description: "print the plan and stop (with --json: as JSON)" },
    force: { type: "boolean", description: "replace a non-empty DIR once the restore is complete" },
    parallel: { type: "positive-int", description: "chunks downloaded and written at once (default 64)" },
    region: { type: "string", value: "R", description: "restore from replica region R's vault (only what it holds; the primary untouched)" },
    remote: { type: "boolean", description: "run the restore workflow instead (plans and thaws; restores nothing here)" },
    "state-machine": { type: "string", value: "ARN", requires: "remote", description: "default: restoreStateMachineArn in the config (stack output RestoreStateMachineArn)" },
    thaw: { type: "string", choices: ["on", "off"], requires: "remote", description: "restore objects in GLACIER/DEEP_ARCHIVE first (default: the deployment's WALVAULT_THAW)" },
    tier: { type: "string", choices: ["Standard", "Bulk"], requires: "remote", description: "retrieval tier for objects in archive storage classes" },
    timeout: { type: "seconds", requires: "remote", description: "stop waiting after this long (the execution goes on)" },
    ...commonOptions,
    json: jsonOption,
  },
  async run({ values }) {
    if (values.remote) {
      if (values.region !== undefined) {
        throw new InvalidInputError("restore --remote takes no --region: the workflow plans from the primary; restore from a region here with --to DIR --region R");
      }
      return (await import("../restore-remote.js")).restoreRemoteCommand(values);
    }
    const { targetFromFlags, planFor, formatPlan, planToJson, restore, formatRestoreResult, DEFAULT_RESTORE_PARALLEL } = await import("../restore.js");
    const target = targetFromFlags({
      targetTime: values["target-time"],
      targetLsn: values["target-lsn"],
      targetName: values["target-name"],
      snapshot: values.snapshot,
      latest: values.latest,
      timeline: values.timeline,
    });
    if (!values["plan-only"] && !values.to) throw new InvalidInputError("restore needs --to DIR (or --plan-only)");
    const parallel = values.parallel === undefined ? DEFAULT_RESTORE_PARALLEL : Number(values.parallel);
    const { cfg, requireDatabase, agentClients } = await regionalSetup(values, values.region);
    const databaseId = requireDatabase(cfg);
    const clients = agentClients(cfg);
    if (values["plan-only"]) {
      const planned = await planFor(clients, cfg, databaseId, target);
      print(values.json, planToJson(planned), () => formatPlan(planned));
      return 0;
    }
    // On a terminal, one status line on stderr (bytes, rate, files, ETA); nothing otherwise.
    const { createStatusLine, restoreProgressLine } = await import("../progress.js");
    const status = createStatusLine({});
    const started = Date.now();
    let r: Awaited<ReturnType<typeof restore>>;
    try {
      r = await restore(clients, cfg, {
        databaseId,
        target,
        toDir: resolve(values.to!),
        force: values.force,
        parallel,
        onProgress: (p) => status.update(() => restoreProgressLine(`restore ${databaseId}`, p, (Date.now() - started) / 1000)),
      });
    } finally {
      status.done();
    }
    print(values.json, { ...r, plan: planToJson(r.plan) }, () => formatRestoreResult(r));
    return 0;
  },
});
