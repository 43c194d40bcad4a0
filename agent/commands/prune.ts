/** `walvault prune`: the retention plan and, without --dry-run, carry it out (here, or --workflow). */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "prune",
  summary: "show the retention plan (GFS + recovery window) and, without --dry-run, carry it out",
  group: GROUPS.retention,
  details: [
    "prune --workflow: run the retention workflow now, as its schedule would (the configured",
    "database, else every database); the policy flags override the database's policy.",
  ],
  positionals: [],
  options: {
    "dry-run": { type: "boolean", description: "print the plan, delete nothing" },
    daily: { type: "count", description: "daily snapshots to keep (default: the database's policy)" },
    weekly: { type: "count", description: "weekly snapshots to keep" },
    monthly: { type: "count", description: "monthly snapshots to keep" },
    "window-days": { type: "count", value: "D", description: "days point-in-time recovery must reach back" },
    "grace-hours": { type: "hours", description: "unreferenced chunks younger than this are kept (default 24)" },
    workflow: { type: "boolean", description: "run the retention workflow (Step Functions) instead of pruning from here" },
    "state-machine": { type: "string", value: "ARN", requires: "workflow", description: "default: retentionStateMachineArn in the config (stack output RetentionStateMachineArn)" },
    timeout: { type: "seconds", requires: "workflow", description: "stop waiting after this long (the execution goes on)" },
    ...commonOptions,
    json: jsonOption,
  },
  async run({ values }) {
    const { loadConfig, requireDatabase } = await heavy();
    const prune = await import("../prune.js");
    // Checked before the configuration is read: bad policy numbers never reach the catalog.
    prune.policyOverridesFromFlags(values);
    const cfg = loadConfig(values);
    if (values.workflow) return prune.pruneWorkflowCommand(cfg, cfg.databaseId, values, print);
    return prune.pruneCommand(cfg, requireDatabase(cfg), values, print);
  },
});
