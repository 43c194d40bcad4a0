/**
 * `walvault prune [--dry-run] [--json]` and `walvault snapshot pin|unpin ID`
 * (issue #6). The plan comes from core/retention.ts over what the catalog
 * records; `--dry-run` prints it and changes nothing.
 */
import { randomBytes } from "node:crypto";
import { hostname, userInfo } from "node:os";
import type { AgentConfig } from "../core/config.js";
import { InvalidInputError } from "../core/errors.js";
import { effectivePolicy, type RetentionPolicy } from "../core/retention.js";
import { executePlan, planToJson, prunePlan, type PrunePlanJson, type PruneSummary, type RegionVault } from "../store/prune.js";
import { createWorkflowRunner } from "../store/workflows.js";
import { agentClients } from "./clients.js";
import { regionalConfig, regionsOf } from "./regions.js";
import { executionError, waitForExecution } from "./restore-remote.js";

export interface PruneFlags {
  daily?: string | undefined;
  weekly?: string | undefined;
  monthly?: string | undefined;
  "window-days"?: string | undefined;
}

/** Only the policy settings the flags give (the retention workflow's `policy` input). */
export function policyOverridesFromFlags(flags: PruneFlags): Partial<RetentionPolicy> {
  const out: Partial<RetentionPolicy> = {};
  const num = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d{1,4}$/.test(v)) throw new InvalidInputError(`--${name} must be a whole number, not '${v}'`);
    return Number(v);
  };
  const daily = num(flags.daily, "daily");
  const weekly = num(flags.weekly, "weekly");
  const monthly = num(flags.monthly, "monthly");
  const windowDays = num(flags["window-days"], "window-days");
  if (daily !== undefined) out.daily = daily;
  if (weekly !== undefined) out.weekly = weekly;
  if (monthly !== undefined) out.monthly = monthly;
  if (windowDays !== undefined) out.recoveryWindowDays = windowDays;
  return out;
}

/** The flags over `base` (the database's policy, else the default). */
export function policyFromFlags(flags: PruneFlags, base?: RetentionPolicy): RetentionPolicy {
  return effectivePolicy(base, policyOverridesFromFlags(flags));
}

/** WAL deletion ranges the human-readable plan shows (--json: all). */
const RANGES_SHOWN = 10;

export function formatPrunePlan(p: PrunePlanJson, dryRun: boolean, walCount = p.deleteWal.length): string {
  const lines = [
    `retention plan for ${p.databaseId}${dryRun ? " (dry run: nothing deleted)" : ""}: keep ${p.policy.daily} daily, ${p.policy.weekly} weekly, ${p.policy.monthly} monthly, ` +
      `PITR over the last ${p.policy.recoveryWindowDays} day(s), at least ${p.policy.minSnapshots ?? 2} snapshots`,
  ];
  if (p.windowStart) lines.push(`  recovery window from ${p.windowStart}, based on snapshot ${p.windowBase}`);
  for (const k of p.keep) lines.push(`  keep    ${k.snapshotId}  (${k.reasons.join(", ")})`);
  for (const d of p.deleteSnapshots) lines.push(`  delete  ${d.snapshotId}  (finished ${d.finishedAt}: no daily/weekly/monthly slot, not needed by the window)`);
  const more = p.deleteWalComplete ? "" : ` listed, more in the ranges`;
  lines.push(`  WAL: delete ${walCount} segment(s)${more} (${(p.walBytesToDelete / 1e6).toFixed(1)} MB stored${more ? " of those listed" : ""}); the rest is kept`);
  for (const r of p.deleteWalRanges.slice(0, RANGES_SHOWN)) lines.push(`       delete ${r.timeline === undefined ? `stream ${r.stream} positions` : `timeline ${r.timeline}`} ${r.from} .. ${r.through}`);
  if (p.deleteWalRanges.length > RANGES_SHOWN) lines.push(`       (${p.deleteWalRanges.length - RANGES_SHOWN} more range(s): --json lists them)`);
  return lines.join("\n");
}

export interface PruneCommandFlags extends PruneFlags {
  json: boolean;
  "dry-run": boolean;
  "grace-hours"?: string | undefined;
  /** Run the retention workflow (Step Functions) instead of pruning from here. */
  workflow?: boolean | undefined;
  "state-machine"?: string | undefined;
  timeout?: string | undefined;
}

type Print = (json: boolean, value: unknown, human: () => string) => void;

/** `walvault prune`: the plan, then (unless --dry-run) carried out in the catalog and every region's vault. */
export async function pruneCommand(cfg: AgentConfig, databaseId: string, flags: PruneCommandFlags, print: Print, now = new Date()): Promise<number> {
  const clients = agentClients(cfg);
  const db = await clients.catalog.getDatabase(databaseId);
  const view = await prunePlan(clients.catalog, databaseId, policyFromFlags(flags, db?.retention), now);
  const json = planToJson(view);
  if (flags["dry-run"]) {
    print(flags.json, { dryRun: true, ...json }, () => formatPrunePlan(json, true));
    return 0;
  }
  const grace = flags["grace-hours"] === undefined ? 24 : Number(flags["grace-hours"]);
  if (!(grace >= 0)) throw new InvalidInputError(`--grace-hours must be a number of hours >= 0, not '${flags["grace-hours"]}'`);
  const regions: RegionVault[] = regionsOf(cfg).map((r) => ({
    region: r.region,
    primary: r.primary,
    bucket: r.vaultBucket,
    store: r.primary ? clients.store : agentClients(regionalConfig(cfg, r.region)).store,
  }));
  const summary = await executePlan(db!, view, clients.catalog, regions, {
    runId: `prune-${now.toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${randomBytes(3).toString("hex")}`,
    now,
    graceMs: grace * 3_600_000,
    by: `walvault prune (${userInfo().username}@${hostname()})`,
  });
  print(flags.json, { ...json, summary }, () => `${formatPrunePlan(json, false)}\n${formatSummary({ ...summary, deletedSnapshotCount: summary.deletedSnapshots.length, lockedCount: summary.locked.length })}`);
  return summary.locked.length > 0 ? 1 : 0;
}

function formatSummary(
  s: Pick<PruneSummary, "deletedWal" | "sweptChunks" | "freshChunks" | "audit" | "runId" | "locked"> &
    Partial<Pick<PruneSummary, "packsSwept" | "packsMarked" | "packsRepacked">> & { deletedSnapshotCount: number; lockedCount: number },
): string {
  return (
    `deleted ${s.deletedSnapshotCount} snapshot(s), ${s.deletedWal} WAL file(s), swept ${s.sweptChunks} chunk(s) ` +
    `(${s.freshChunks} unreferenced but within the grace period kept); ` +
    `packs: ${s.packsSwept ?? 0} deleted, ${s.packsMarked ?? 0} marked for deletion, ${s.packsRepacked ?? 0} repacked; ${s.audit} audit item(s), run ${s.runId}` +
    (s.lockedCount > 0 ? `\n${s.lockedCount} object(s) still locked, left in place: ${s.locked.slice(0, 3).map((l) => `${l.region}:${l.key}`).join(", ")}` : "")
  );
}

/** What the retention workflow's execution returns (functions/retention/, statemachines/retention.asl.json). */
interface WorkflowPlan extends PrunePlanJson {
  deleteSnapshotCount: number;
  deleteWalCount: number;
  listsKey?: string;
}
interface WorkflowOutput {
  dryRun: boolean;
  execution: string;
  count?: number;
  /** Over every database (results are listed up to a bound: `listed` of `count`, all under `pagesPrefix`). */
  lockedCount?: number;
  listed?: number;
  pagesPrefix?: string;
  databases?: WorkflowPlan[];
  results?: (Omit<PruneSummary, "deletedSnapshots"> & { databaseId: string; deletedSnapshots: string[]; deletedSnapshotCount: number; lockedCount: number; complete: boolean })[];
}

/**
 * `walvault prune --workflow [--dry-run]`: runs the retention workflow now,
 * as its schedule would (for the configured database, or every database when
 * none is configured), waits for it and prints its plan or its summary.
 * Exit 1 when objects under Object Lock were left in place.
 */
export async function pruneWorkflowCommand(cfg: AgentConfig & { path?: string }, databaseId: string | undefined, flags: PruneCommandFlags, print: Print): Promise<number> {
  if (flags["grace-hours"] !== undefined) throw new InvalidInputError("--grace-hours does not apply to --workflow: the workflow's grace period is its WALVAULT_RETENTION_GRACE_HOURS setting");
  const arn = flags["state-machine"] ?? cfg.retentionStateMachineArn;
  if (!arn) throw new InvalidInputError(`no retention workflow: pass --state-machine ARN or set retentionStateMachineArn in ${cfg.path ?? "the config"} (stack output RetentionStateMachineArn)`);
  const timeoutS = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeoutS !== undefined && !(timeoutS > 0)) throw new InvalidInputError("--timeout must be a positive number of seconds");
  const overrides = policyOverridesFromFlags(flags);
  const input = {
    ...(databaseId === undefined ? {} : { databaseId }),
    ...(flags["dry-run"] ? { dryRun: true } : {}),
    ...(Object.keys(overrides).length > 0 ? { policy: overrides } : {}),
    trigger: "cli",
  };
  const runner = createWorkflowRunner(cfg);
  const executionId = await runner.start(arn, input);
  const state = await waitForExecution(runner, executionId, timeoutS === undefined ? {} : { timeoutMs: timeoutS * 1000 });
  if (state.status !== "SUCCEEDED") throw executionError(state);
  const out = state.output as WorkflowOutput;
  const human = (): string => {
    if (out.dryRun) {
      return [
        `retention workflow ${executionId} (dry run: nothing deleted)`,
        ...(out.databases ?? []).map((p) =>
          formatPrunePlan(p, true, p.deleteWalCount) + (p.listsKey ? `\n  (${p.deleteSnapshotCount} snapshot(s) and ${p.deleteWalCount} WAL file(s) listed in ${p.listsKey} of the incoming bucket)` : ""),
        ),
        ...more(),
      ].join("\n");
    }
    return [
      `retention workflow ${executionId}`,
      ...(out.results ?? []).map((r) => `${r.databaseId}: ${formatSummary(r)}${r.complete ? "" : "\n  not complete: the next run goes on"}`),
      ...more(),
    ].join("\n");
  };
  const more = (): string[] => (out.listed === undefined ? [] : [`(${out.listed} of ${out.count ?? "?"} database(s) listed; all in ${out.pagesPrefix ?? "the run's work/ objects"} of the incoming bucket)`]);
  print(flags.json, { executionId, ...out }, human);
  return (out.lockedCount ?? 0) > 0 || (out.results ?? []).some((r) => r.lockedCount > 0) ? 1 : 0;
}
