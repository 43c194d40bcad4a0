/**
 * `walvault restore --remote [target]`: starts the restore workflow
 * (statemachines/restore.asl.json, Step Functions; the local stack serves the
 * same API) and waits for it: it plans from the catalog, thaws every object
 * the plan needs that is in an archive storage class, and outputs the plan's
 * summary: the plan itself (it grows with the WAL to replay) is a work/
 * object of the incoming bucket, read here through store/work-objects.ts.
 * Nothing is restored here: the plan is printed (`--json`: the plan as
 * JSON, with its key), and `walvault restore --to DIR` with the same target
 * restores it on the database host while the thawed copies last (a day).
 *
 * The state machine is `--state-machine ARN`, else the config's
 * `restoreStateMachineArn` (the stack output RestoreStateMachineArn; the
 * local stack writes its own). A failed execution becomes the error class of
 * its error name (NoSnapshotBeforeTargetError, WalGapError, ... keep their
 * exit codes), anything else WorkflowFailedError; a timed-out one
 * TimeoutError. Stopping this command (Ctrl-C, --timeout) does not stop the
 * execution: its ARN is printed first.
 */
import { deadlineIn } from "../core/deadline.js";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentConfig } from "../core/config.js";
import * as errors from "../core/errors.js";
import { ConfigError, InvalidInputError, NotFoundError, TimeoutError, WalvaultError, WorkflowFailedError, type WalvaultErrorOptions } from "../core/errors.js";
import {
  restorePlanSummarySchema,
  THAW_TIERS,
  type RestorePlanOutput,
  type RestorePlanSummary,
  type RestoreWorkflowInput,
  type RestoreWorkflowTarget,
  type ThawTier,
} from "../core/restore-workflow.js";
import { formatTime, timeFromNs } from "../core/time.js";
import { createObjectStore } from "../store/factory.js";
import { readRestorePlan, StoreWorkObjects, type WorkObjects } from "../store/work-objects.js";
import { createWorkflowRunner, FINAL_STATUSES, type ExecutionState, type WorkflowRunner } from "../store/workflows.js";
import { assertLocalStackAlive, loadConfig, requireDatabase } from "./config.js";
import { targetFromFlags } from "./restore.js";
import { formatBytes } from "./progress.js";

/** The flags of `restore` (agent/run-cli.ts parses them). */
export interface RemoteRestoreFlags {
  database?: string | undefined;
  config?: string | undefined;
  json?: boolean | undefined;
  latest?: boolean | undefined;
  "target-time"?: string | undefined;
  "target-lsn"?: string | undefined;
  "target-name"?: string | undefined;
  snapshot?: string | undefined;
  timeline?: string | undefined;
  "state-machine"?: string | undefined;
  tier?: string | undefined;
  thaw?: string | undefined;
  timeout?: string | undefined;
  // Local restores only: refused with --remote.
  to?: string | undefined;
  "plan-only"?: boolean | undefined;
  force?: boolean | undefined;
  parallel?: string | undefined;
}

/** Flags that only mean something to a local restore. */
export function localOnlyFlags(flags: RemoteRestoreFlags): string[] {
  return [
    flags.to !== undefined && "--to",
    flags["plan-only"] === true && "--plan-only",
    flags.force === true && "--force",
    flags.parallel !== undefined && "--parallel",
  ].filter((x): x is string => typeof x === "string");
}

/**
 * The workflow's target from the CLI's target flags, checked by the same
 * rules as a local restore (one target at most, none: latest). An LSN is
 * passed as given ("X/Y" or a decimal position), a time as ISO 8601.
 */
export function remoteTarget(flags: RemoteRestoreFlags): RestoreWorkflowTarget {
  const t = targetFromFlags({
    targetTime: flags["target-time"],
    targetLsn: flags["target-lsn"],
    targetName: flags["target-name"],
    snapshot: flags.snapshot,
    latest: flags.latest,
    timeline: flags.timeline,
  });
  const tl = t.timeline === undefined ? {} : { timeline: t.timeline };
  switch (t.kind) {
    case "latest":
      return { kind: "latest", ...tl };
    case "time":
      return { kind: "time", time: formatTime(timeFromNs(BigInt(t.time.getTime()) * 1_000_000n + BigInt(t.subMsNanos ?? 0))), ...tl };
    case "lsn":
      return { kind: "lsn", lsn: flags["target-lsn"]!, ...tl };
    case "name":
      return { kind: "name", name: t.name, ...tl };
    case "snapshot":
      return { kind: "snapshot", snapshotId: t.id, ...tl };
  }
}

/** `--state-machine`, else the config's restoreStateMachineArn. */
export function restoreStateMachine(cfg: Pick<AgentConfig, "restoreStateMachineArn"> & { path?: string }, flag: string | undefined): string {
  const arn = flag ?? cfg.restoreStateMachineArn;
  if (arn === undefined) {
    throw new ConfigError(
      `no restore workflow to start: pass --state-machine ARN or set restoreStateMachineArn in ${cfg.path ?? "the configuration"} (the stack output RestoreStateMachineArn)`,
    );
  }
  return arn;
}

/** The last part of an execution ARN (its name). */
export function executionName(executionId: string): string {
  return executionId.slice(executionId.lastIndexOf(":") + 1);
}

type ErrorClass = new (message: string, options?: WalvaultErrorOptions) => WalvaultError;

/** The catalogued error class named `name` (Step Functions error names are the class names), if any. */
function errorClass(name: string | undefined): ErrorClass | undefined {
  if (name === undefined) return undefined;
  const found = Object.entries(errors).find(([k, v]) => k === name && typeof v === "function" && v.prototype instanceof WalvaultError);
  return found?.[1] as ErrorClass | undefined;
}

/** The error for an execution that ended other than SUCCEEDED: one line naming the execution, the error and its cause. */
export function executionError(state: ExecutionState): WalvaultError {
  const what = `restore execution ${executionName(state.executionId)}`;
  const detail = [state.error, state.cause?.split(/\r?\n/)[0]].filter((x) => x !== undefined && x !== "").join(": ");
  const options = { cause: state };
  switch (state.status) {
    case "FAILED": {
      const Cls = errorClass(state.error) ?? WorkflowFailedError;
      return new Cls(`${what} failed: ${detail || "no error given"}`, options);
    }
    case "TIMED_OUT":
      return new TimeoutError(`${what} timed out${detail ? `: ${detail}` : ""}`, options);
    case "ABORTED":
      return new WorkflowFailedError(`${what} was aborted${detail ? `: ${detail}` : ""}`, options);
    default:
      return new WorkflowFailedError(`${what} ended ${state.status}${detail ? `: ${detail}` : ""}`, options);
  }
}

export interface WaitOptions {
  /** First poll after this long, then 1.5 times longer each time up to maxPollMs (default 250). */
  pollMs?: number;
  /** Default 5000. */
  maxPollMs?: number;
  /** Give up (TimeoutError) after this long; the execution goes on. Default: wait until it ends. */
  timeoutMs?: number;
  /** Called with every description (each poll). */
  onState?: (state: ExecutionState) => void;
  signal?: AbortSignal;
}

/** Polls DescribeExecution until the execution is over; resolves with its last description, whatever the status. */
export async function waitForExecution(runner: WorkflowRunner, executionId: string, opts: WaitOptions = {}): Promise<ExecutionState> {
  const deadline = opts.timeoutMs === undefined ? undefined : deadlineIn(opts.timeoutMs);
  const maxPoll = opts.maxPollMs ?? 5000;
  let delay = opts.pollMs ?? 250;
  for (;;) {
    const state = await runner.describe(executionId);
    opts.onState?.(state);
    if (FINAL_STATUSES.has(state.status)) return state;
    const left = deadline ? deadline.left() : Infinity;
    if (left <= 0) {
      throw new TimeoutError(
        `${executionId} is still ${state.status} after ${Math.round((opts.timeoutMs ?? 0) / 1000)} s; it goes on: follow it in the Step Functions console`,
      );
    }
    await sleep(Math.min(delay, left), undefined, opts.signal ? { signal: opts.signal } : undefined);
    delay = Math.min(delay * 1.5, maxPoll);
  }
}

export interface RemoteRestoreOptions extends WaitOptions {
  stateMachineArn: string;
  input: RestoreWorkflowInput;
  /** Called once the execution has started. */
  onStarted?: (executionId: string) => void;
  /** What to check when the ARN names no state machine (where it came from). */
  arnHint?: string;
  /** Where the workflow keeps the plan (the incoming bucket's work/ objects). */
  work: WorkObjects;
}

export interface RemoteRestoreResult {
  executionId: string;
  /** The execution's output as it came. */
  output: unknown;
  /** The same, checked against the summary's schema. */
  summary: RestorePlanSummary;
  /** The plan, read from its work/ object. */
  plan: RestorePlanOutput;
}

/** Starts the restore workflow, waits for it and returns its plan; throws the execution's error when it does not succeed. */
export async function remoteRestore(runner: WorkflowRunner, opts: RemoteRestoreOptions): Promise<RemoteRestoreResult> {
  let executionId: string;
  try {
    executionId = await runner.start(opts.stateMachineArn, opts.input);
  } catch (e) {
    if (e instanceof NotFoundError || (e instanceof InvalidInputError && (e.cause as { name?: string } | undefined)?.name === "InvalidArn")) {
      const Cls = e.constructor as ErrorClass;
      throw new Cls(`${e.message}: ${opts.arnHint ?? "give the restore workflow's ARN (stack output RestoreStateMachineArn)"}`, { cause: e });
    }
    throw e;
  }
  opts.onStarted?.(executionId);
  const state = await waitForExecution(runner, executionId, opts);
  if (state.status !== "SUCCEEDED") throw executionError(state);
  const parsed = restorePlanSummarySchema.safeParse(state.output);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(
      `restore execution ${executionName(executionId)} succeeded but its output is not a restore plan (${issue?.path.join(".") || "output"}: ${issue?.message ?? "invalid"}): is ${opts.stateMachineArn} the restore workflow?`,
    );
  }
  const summary = parsed.data;
  const plan = await readRestorePlan(opts.work, summary.planKey);
  if (plan.databaseId !== summary.databaseId || plan.snapshot.id !== summary.snapshotId || plan.walCount !== summary.walCount) {
    throw new ConfigError(`restore plan ${summary.planKey} is not the one execution ${executionName(executionId)} made (database, snapshot or WAL count differ)`);
  }
  return { executionId, output: state.output, summary, plan };
}

// ---------------------------------------------------------------------------
// Output

function describeTarget(p: RestorePlanOutput): string {
  const r = p.recoveryTarget;
  if (!r) return p.endLsn === null ? "the snapshot alone" : `through segment ${p.endLsn}`;
  const tl = r.recovery_target_timeline;
  if (r.recovery_target === "immediate") return `the snapshot's consistent point (timeline ${tl})`;
  if (r.recovery_target_time) return `time ${r.recovery_target_time} on timeline ${tl}`;
  if (r.recovery_target_lsn) return `LSN ${r.recovery_target_lsn} on timeline ${tl}`;
  if (r.recovery_target_name) return `restore point '${r.recovery_target_name}' on timeline ${tl}`;
  return `the end of the archive on timeline ${tl}`;
}

function walLine(names: string[], sizeNote: string): string {
  if (names.length === 0) return "none";
  return `${names.length} segment${names.length === 1 ? "" : "s"}, ${names[0]}${names.length > 1 ? ` .. ${names.at(-1)}` : ""}${sizeNote}`;
}

/** The plan of a remote restore for people. */
export function formatRemotePlan(p: RestorePlanOutput, executionId: string): string {
  const s = p.snapshot;
  const lines = [
    `restore plan for database ${p.databaseId} (${p.kind}), from restore execution ${executionName(executionId)}`,
    `  snapshot   ${s.id}  finished ${s.finishedAt}` +
      (p.kind === "postgres" ? `, timeline ${s.timeline}, consistent at ${s.stopLsn}` : `, through segment ${s.stopLsn}`),
    `             ${p.chunkCount} chunk${p.chunkCount === 1 ? "" : "s"}, manifest ${p.manifestKey}`,
    `  target     ${describeTarget(p)}`,
  ];
  if (p.kind === "postgres") {
    lines.push(`  timelines  ${p.timelinePath.join(" -> ")}`);
    lines.push(`  WAL        ${walLine(p.wal.map((w) => w.name), ` (${formatBytes(p.wal.length * p.walSegmentSize)})`)}, fetched by restore_command during recovery`);
    if (p.endLsn !== null) lines.push(`  replays to ${p.endLsn} at most`);
    for (const [k, v] of Object.entries(p.recoveryTarget ?? {})) lines.push(`  ${k} = '${v}'`);
  } else {
    const streams = [...new Set(p.wal.map((w) => w.stream))];
    if (streams.length === 0) lines.push(`  WAL        none`);
    for (const st of streams) {
      const label = st === undefined ? "WAL       " : `WAL ${st.padEnd(6)}`;
      lines.push(`  ${label} ${walLine(p.wal.filter((w) => w.stream === st).map((w) => w.name), "")}`);
    }
  }
  for (const w of p.warnings) lines.push(`  warning: ${w}`);
  lines.push(`  next       walvault restore --to DIR with the same target, on the database host (archived objects stay readable for a day)`);
  return lines.join("\n");
}

/**
 * Progress on stderr: on a TTY one line redrawn at every poll (status and
 * elapsed time); otherwise a line per status change.
 */
export function executionProgress(stream: NodeJS.WriteStream = process.stderr): { onStarted(id: string): void; onState(s: ExecutionState): void } {
  const tty = stream.isTTY === true;
  let last: string | undefined;
  let name = "";
  const started = Date.now();
  return {
    onStarted(id) {
      name = executionName(id);
      stream.write(`walvault: started restore execution ${id}\n`);
    },
    onState(s) {
      const elapsed = `${((Date.now() - started) / 1000).toFixed(s.status === "RUNNING" ? 0 : 1)} s`;
      const final = FINAL_STATUSES.has(s.status);
      if (tty) {
        stream.write(`\rrestore execution ${name}  ${s.status}  ${elapsed}\x1b[K${final ? "\n" : ""}`);
      } else if (s.status !== last) {
        stream.write(`walvault: restore execution ${name} ${s.status}${final ? ` after ${elapsed}` : ""}\n`);
      }
      last = s.status;
    },
  };
}

/** The whole command: flags in, output on stdout, progress on stderr; resolves with the exit code. */
export async function restoreRemoteCommand(flags: RemoteRestoreFlags): Promise<number> {
  const local = localOnlyFlags(flags);
  if (local.length > 0) {
    throw new InvalidInputError(
      `restore --remote takes no ${local.join(", ")}: the workflow plans and thaws, and prints the plan; restore it here with --to DIR and the same target`,
    );
  }
  const target = remoteTarget(flags);
  if (flags.tier !== undefined && !(THAW_TIERS as readonly string[]).includes(flags.tier)) {
    throw new InvalidInputError(`--tier must be ${THAW_TIERS.join(" or ")}, not '${flags.tier}'`);
  }
  const timeoutS = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeoutS !== undefined && !(timeoutS > 0)) throw new InvalidInputError("--timeout must be a positive number of seconds");
  const cfg = loadConfig(flags);
  const databaseId = requireDatabase(cfg);
  const stateMachineArn = restoreStateMachine(cfg, flags["state-machine"]);
  assertLocalStackAlive(cfg);
  const runner = createWorkflowRunner({ region: cfg.region, stepFunctionsEndpoint: cfg.stepFunctionsEndpoint, credentials: cfg.credentials });
  const progress = executionProgress();
  const work = new StoreWorkObjects(
    createObjectStore({ region: cfg.region, s3Endpoint: cfg.s3Endpoint, credentials: cfg.credentials }),
    cfg.incomingBucket,
  );
  const r = await remoteRestore(runner, {
    work,
    stateMachineArn,
    input: {
      databaseId,
      target,
      ...(flags.tier === undefined ? {} : { tier: flags.tier as ThawTier }),
      ...(flags.thaw === undefined ? {} : { thaw: flags.thaw === "on" }),
    },
    arnHint:
      flags["state-machine"] === undefined
        ? `check restoreStateMachineArn in ${cfg.path} (the stack output RestoreStateMachineArn) or pass --state-machine ARN`
        : "--state-machine must be the restore workflow's ARN (the stack output RestoreStateMachineArn)",
    ...(timeoutS === undefined ? {} : { timeoutMs: timeoutS * 1000 }),
    onStarted: progress.onStarted,
    onState: progress.onState,
  });
  process.stdout.write(flags.json ? JSON.stringify({ ...r.plan, planKey: r.summary.planKey }, null, 2) + "\n" : formatRemotePlan(r.plan, r.executionId) + "\n");
  return 0;
}
