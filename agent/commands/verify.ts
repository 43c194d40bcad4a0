/** `walvault verify`: restore-test one snapshot here, or (--scheduled) run the verification workflow. */
import { timeProblem } from "../../core/time.js";
import { commonOptions, defineCommand, jsonOption, shown } from "../command.js";
import { GROUPS, regionalSetup, print } from "./shared.js";

export default defineCommand({
  name: "verify",
  summary: "restore-test one snapshot here (default: the newest, level 4); exit 1 when a check fails",
  group: GROUPS.verification,
  details: [
    "Records the result in the verification history (walvault verify history).",
    "verify --scheduled: run the verification workflow now, as its schedule would (candidates, tasks, notices).",
  ],
  positionals: [],
  options: {
    level: {
      type: "string",
      value: "L1..L4",
      default: "4",
      excludes: "scheduled",
      description: "how far to check: 1 chunks, 2 restore, 3 start the database, 4 run the checks",
      check: (v) => (/^L?[1-4]$/i.test(v) ? undefined : `--level must be 1, 2, 3 or 4 (or L1-L4), not '${shown(v)}'`),
    },
    snapshot: { type: "string", value: "ID", excludes: "scheduled", description: "the snapshot to verify (default: the newest)" },
    "target-time": {
      type: "string",
      value: "T|random",
      excludes: "scheduled",
      description: "recover to this time past the snapshot (or a random one in its window)",
      check: (v) => (v === "random" ? undefined : timeProblem(v, "--target-time (or 'random')")),
    },
    checks: { type: "string", value: "FILE", excludes: "scheduled", description: "checks file: sql and command checks per database (see docs/verification.md)" },
    region: { type: "string", value: "R", excludes: "scheduled", description: "verify from replica region R's vault" },
    "work-dir": { type: "string", value: "DIR", excludes: "scheduled", description: "where to restore (default <tmp>/walvault-verify)" },
    scheduled: { type: "boolean", description: "run the verification workflow instead" },
    "state-machine": { type: "string", value: "ARN", requires: "scheduled", description: "default: verifyStateMachineArn in the config (stack output VerifyStateMachineArn)" },
    database: { ...commonOptions.database, description: "database id (with --scheduled: only this database, else every one)" },
    config: commonOptions.config,
    json: jsonOption,
  },
  async run({ values }) {
    const { cfg, requireDatabase, agentClients } = await regionalSetup(values, values.region);
    const verify = await import("../verify-cli.js");
    if (values.scheduled) return verify.scheduledCommand(cfg, values, print);
    return verify.verifyCommand(agentClients(cfg), cfg, requireDatabase(cfg), values, print);
  },
});
