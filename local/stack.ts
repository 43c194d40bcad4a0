/**
 * The embedded stack: s3rver (incoming + vault buckets), DynamoDB Local, and
 * the ingest state machines — the very ASL files CDK deploys — run by
 * aws-local-stepfunctions, with each Task state calling the handler module in
 * this process. s3rver's object-created notifications become the EventBridge
 * "Object Created" events AWS sends, routed by the same rule patterns: WAL
 * uploads start ingest.asl.json, snapshot manifests snapshot-ingest.asl.json,
 * chunk uploads nothing (a manifest's run promotes them). restore.asl.json is
 * started on demand (`startRestore`, the console or CLI in AWS), with its
 * Wait states shortened to a few milliseconds. Every workflow can also be
 * started from another process through a Step Functions endpoint on loopback
 * (local/sfn-endpoint.ts; `walvault restore --remote` uses it): its URL and
 * the restore state machine's ARN go into the config file.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StateMachine } from "aws-local-stepfunctions";
import { ConfigError, describeError } from "../core/errors.js";
import type { AgentConfig } from "../core/config.js";
import { DEFAULT_WAL_SEGMENT_SIZE } from "../core/wal.js";
import { WORKFLOW_DEFINITIONS, STEPS_BY_PLACEHOLDER, placeholdersOf, type StepDefinition, type WorkflowId } from "../core/workflows.js";
import { createCatalog, createObjectStore } from "../store/factory.js";
import { createTable, deleteTable, DynamoCatalog } from "../store/dynamo-catalog.js";
import { resetDeps } from "../functions/deps.js";
import { loadAsl, taskResources } from "./asl.js";
import { LOCAL_ACCOUNT, startDynamo, startS3, type S3Emulator, type S3ObjectCreatedEvent } from "./emulators.js";
import { startSfnEndpoint } from "./sfn-endpoint.js";
import { ExecutionGuard, guardTask, runGuarded } from "./limits.js";
import { parseThawSetting, thawByDefaultSubstitution } from "../core/thaw.js";
import { delay, NO_LATENCY, type CloudLatency } from "./latency.js";
import { LambdaTimeoutError, lambdaRuntime, newTraceRoot, type LambdaRuntimeKind, type StepUsage } from "./lambda-pool.js";
import { RequestMeter, type RequestCounts } from "./request-meter.js";

export const LOCAL_REGION = "local-1";
export const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
export const INCOMING_BUCKET = "walvault-incoming";
export const VAULT_BUCKET = "walvault-vault";
/** A replica region's vault bucket on the local stack (each region is its own s3rver). */
export const replicaVaultBucket = (region: string): string => `walvault-vault-${region}`;
export const CATALOG_TABLE = "walvault-catalog";

type Handler = (input: unknown, attempt?: number, traceRoot?: string) => Promise<unknown>;

const localArn = (fn: string): string => `arn:aws:lambda:${LOCAL_REGION}:000000000000:function:walvault-${fn}`;

/** A local function's step: what it runs, with which memory and timeout. */
export interface LocalFunction {
  arn: string;
  step: StepDefinition;
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Local stand-ins for the Lambda ARNs CDK substitutes, by placeholder: every
 * step the workflow's ASL calls (core/workflows.ts), its own and those it
 * borrows, each under the name of the workflow that deploys it.
 */
function functions(workflow: WorkflowId): Record<string, LocalFunction> {
  return Object.fromEntries(
    placeholdersOf(workflow).map((placeholder) => {
      const step = STEPS_BY_PLACEHOLDER.get(placeholder)!;
      return [placeholder, { arn: localArn(`${step.workflow}-${kebab(step.name)}`), step }];
    }),
  );
}

/** The workflows an upload starts (core/workflows.ts trigger "upload"). */
export type WorkflowName = "ingest" | "snapshot-ingest" | "pack-ingest";

/** The local ARN of a workflow's state machine, as the Step Functions endpoint knows it. */
export const localStateMachineArn = (workflow: WorkflowName | "wal-record" | "restore" | "replicate" | "verify" | "retention" | "rpo-watch"): string =>
  `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:walvault-${workflow}`;

/**
 * The workflows and the EventBridge rules that start them: an Object Created
 * event in the incoming bucket whose key matches `keyPattern` (EventBridge
 * wildcard syntax: `*` matches any run of characters, '/' included) starts
 * the workflow. infra/primary-stack.ts deploys the same patterns (asserted in
 * test/infra). Keys matching no pattern (chunk uploads, work/, quarantine/)
 * start nothing.
 */
export const WORKFLOWS: ReadonlyArray<{
  name: WorkflowName;
  file: string;
  keyPattern: string;
  /** Deployed as a Standard workflow (history quota applies) rather than Express (infra/primary-stack.ts). */
  standard: boolean;
  functions: Record<string, LocalFunction>;
}> = (["ingest", "snapshot-ingest", "pack-ingest"] as const).map((name) => {
  const w = WORKFLOW_DEFINITIONS[name];
  return { name, file: w.asl, keyPattern: w.trigger.keyPattern, standard: w.type === "STANDARD", functions: functions(name) };
});

/** A workflow started on demand (console, CLI, schedule), never by an upload. */
export interface OnDemandWorkflow<N extends string> {
  name: N;
  file: string;
  functions: Record<string, LocalFunction>;
}

function onDemand<N extends "wal-record" | "restore" | "replicate" | "verify" | "retention" | "rpo-watch">(name: N): OnDemandWorkflow<N> {
  return { name, file: WORKFLOW_DEFINITIONS[name].asl, functions: functions(name) };
}

/**
 * Direct WAL's wal-record workflow (Express): the agent starts it after writing a segment into the vault
 * (docs/wal.md). Its executions count in `stats` (so `idle()` waits for them) and in `walRecordStats`.
 */
export const WAL_RECORD_WORKFLOW = { ...onDemand("wal-record"), standard: false };

/** The restore workflow: started on demand, never by an event. */
export const RESTORE_WORKFLOW = onDemand("restore");
/** Its other substitution: whether a restore thaws by default (core/thaw.ts), from WALVAULT_THAW when the stack starts; s3rver has no lifecycle, so "auto" is off. */
export const restoreSubstitutions = (): Record<string, string> => ({
  ThawByDefault: thawByDefaultSubstitution(parseThawSetting(process.env.WALVAULT_THAW), []),
});

/** The replicate workflow (statemachines/replicate.asl.json): started on demand, never by an event. */
export const REPLICATE_WORKFLOW = onDemand("replicate");

/**
 * The verify workflow (statemachines/verify.asl.json): on demand or fired like
 * its EventBridge schedule (`startVerify`, `walvault verify --scheduled`). Its
 * ECS task state runs tasks/verify/main.js as a child process; its SNS
 * publish state appends to `notifications` (and notifications.log).
 */
export const VERIFY_WORKFLOW = onDemand("verify");
/**
 * The retention workflow (statemachines/retention.asl.json): on demand or
 * fired like its EventBridge schedule (`startRetention`, `walvault prune --workflow`).
 */
export const RETENTION_WORKFLOW = onDemand("retention");
/**
 * The rpo-watch workflow (statemachines/rpo-watch.asl.json, Express): fired
 * like its EventBridge schedule (`startRpoWatch`), and every
 * `rpoWatchEveryMs` when the stack is started with it.
 */
export const RPO_WATCH_WORKFLOW = onDemand("rpo-watch");
/** Local stand-ins for the verify workflow's other substitutions. */
export const VERIFY_SUBSTITUTIONS = {
  ClusterArn: `arn:aws:ecs:${LOCAL_REGION}:000000000000:cluster/walvault-verify`,
  TaskDefinitionArn: `arn:aws:ecs:${LOCAL_REGION}:000000000000:task-definition/walvault-verify:1`,
  TopicArn: `arn:aws:sns:${LOCAL_REGION}:000000000000:walvault-verify-failures`,
};
const ECS_RUN_TASK_SYNC = "arn:aws:states:::ecs:runTask.sync";
/** The SDK integration ReportFailure (ingest, snapshot ingest) writes its failed/<key>.json note with. */
const S3_PUT_OBJECT = "arn:aws:states:::aws-sdk:s3:putObject";
const SNS_PUBLISH = "arn:aws:states:::sns:publish";

/** A local ECS task that exited non-zero: Step Functions reports it as States.TaskFailed. */
class LocalTaskFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "States.TaskFailed";
  }
}

/** Wait states of the local workflows last this long (milliseconds) instead of their Seconds. */
export const LOCAL_WAIT_MS = 5;
/** Retry intervals of the local workflows (milliseconds, every attempt) instead of IntervalSeconds x BackoffRate. */
export const LOCAL_RETRY_MS = 25;

/**
 * A local execution that did not succeed (of restore.asl.json, or of any
 * workflow started through the Step Functions endpoint): `name` is the
 * workflow's error (e.g. NoSnapshotBeforeTargetError), `causeText` its cause.
 */
export class RestoreExecutionError extends Error {
  constructor(
    readonly error: string,
    readonly causeText: string,
  ) {
    super(`${error}: ${causeText}`);
    this.name = error;
  }
}

/** The workflow's error and cause: aws-local-stepfunctions wraps a failure (e.g. a Fail state's Error/Cause) in an ExecutionError. */
function executionFailure(err: unknown): RestoreExecutionError {
  const inner = err instanceof Error && err.name === "ExecutionError" && err.cause !== undefined ? err.cause : err;
  const e = inner as { name?: string; message?: string };
  return new RestoreExecutionError(e.name ?? "Error", e.message ?? String(err));
}

/** EventBridge's wildcard match on a whole string: `*` is any run of characters, everything else literal. */
export function matchesWildcard(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`, "s");
  return re.test(value);
}

export interface LocalDatabase {
  id: string;
  kind?: "postgres" | "generic";
  walSegmentSize?: number;
  /** Its RPO threshold in seconds (core/rpo.ts; default DEFAULT_RPO_SECONDS). */
  rpoSeconds?: number;
}

export interface LocalStackOptions {
  stateDir: string;
  databases?: LocalDatabase[];
  /** Keep the catalog on disk under stateDir (default) or in memory. */
  persistent?: boolean;
  /**
   * A DynamoDB (Local) already running at this endpoint, used instead of
   * starting one: the stack creates its own catalog table there, named
   * uniquely, and deletes it on stop. Lets test suites share one DynamoDB
   * Local (its JVM takes ~5 s and a core to start). Not with persistent.
   */
  sharedDynamodbEndpoint?: string;
  /** Print each execution's failure to stderr. */
  verbose?: boolean;
  /**
   * Replica regions (e.g. ["local-2", "local-3"]): each gets its own s3rver
   * (its own endpoint, its vault bucket `walvault-vault-<region>`), so a region
   * can be stopped and started again. The catalog (DynamoDB Local) stands for
   * the global table, reachable from every region.
   */
  replicaRegions?: string[];
  /** User checks for verification (tasks/verify WALVAULT_VERIFY_CHECKS): one for all databases, or per database id. */
  verifyChecks?: unknown;
  /**
   * Lambda timeouts of the Task states, in milliseconds, instead of the
   * deployed ones (core/steps.ts): one value for every Lambda Task, or per
   * state name (e.g. `{ Promote: 300 }`; states not named keep theirs). A
   * handler that runs longer fails as AWS reports it (`Sandbox.Timedout`).
   */
  lambdaTimeoutMs?: number | Record<string, number>;
  /**
   * Fault injection, consulted before every Lambda Task invocation of every
   * workflow (not the SDK, ECS or SNS integrations). `attempt` counts this
   * state's invocations within the execution (1 first, 2 for the first retry;
   * the iterations of a Map share the count). Return:
   *   - undefined: run the handler normally;
   *   - an Error: the invocation fails with it (its `name` is the error
   *     Step Functions sees: "Lambda.TooManyRequestsException",
   *     "ServiceUnavailableError", ...), the handler does not run;
   *   - "timeout": the invocation hangs until the state's Lambda timeout and
   *     fails with Sandbox.Timedout, the handler does not run;
   *   - { after: "timeout" }: the handler runs to the end (its side effects
   *     happen: the vault written, the catalog item put), then the
   *     invocation is reported as timed out (Sandbox.Timedout) at once: the
   *     "handler did its work, then timed out" case, e.g. between Promote's
   *     put and the execution moving on to Record.
   */
  injectFault?: (ctx: FaultContext) => InjectedFault;
  /**
   * Step Functions' limits enforced on every execution (local/limits.ts):
   * 256 KiB per state input/output (States.DataLimitExceeded) and 25,000
   * history events of a Standard execution (Local.HistoryLimitExceeded).
   * Tests may lower them; they cannot be turned off.
   */
  stateLimits?: { payloadBytes?: number; historyEvents?: number };
  /**
   * Where the Lambda handlers run (local/lambda-pool.ts): "worker" (default)
   * in sandboxes under each step's memory and timeout (core/workflows.ts),
   * from the built dist/; "in-process" in this process, memory not enforced,
   * for tests that swap a handler's dependencies (functions/deps.ts
   * overrideDeps), which a sandbox would not see.
   */
  lambdaRuntime?: LambdaRuntimeKind;
  /**
   * Runs the rpo-watch workflow every this many milliseconds, as its
   * EventBridge schedule does every minute in AWS (infra/rpo-watch.ts); a
   * tick while one is still running is skipped. Default: never (started
   * with `startRpoWatch` only).
   */
  rpoWatchEveryMs?: number;
  /**
   * Count every S3 and DynamoDB request (local/request-meter.ts): each
   * region's s3rver and DynamoDB Local are reached through a metering proxy,
   * whose endpoints go into the config, the handlers' environment and
   * `regions[].endpoint`. Read with `requests()`. Default off.
   */
  meterRequests?: boolean;
  /**
   * What AWS takes time for that the emulators do at once (local/latency.ts):
   * event delivery, StartExecution, each Lambda invoke, cold starts and
   * idle sandboxes reclaimed. Default NO_LATENCY (nothing added);
   * AWS_LATENCY for published figures (bench:wal-live, `local up --latency aws`).
   */
  latency?: CloudLatency;
  /**
   * The Lambda sandboxes' threads at this nice value (Linux; default 0, as
   * the process). In AWS no handler runs on the database host; on one
   * machine beside it they take the same cores as the agent and the
   * database. At 10 they get about a tenth of a core's share against work
   * at 0 when both want it, and all of an idle one: the benchmarks that
   * time the agent beside pgBackRest set it (bench/README, "The emulated
   * Lambdas' priority"). Tests keep 0: a starved sandbox would time out
   * where AWS would not.
   */
  lambdaNice?: number;
}

/** What LocalStackOptions.injectFault is told about the invocation about to run. */
export interface FaultContext {
  /** "ingest", "snapshot-ingest", "pack-ingest", "restore", "replicate", "verify" or "retention". */
  workflow: string;
  /** The Task state's name in the ASL, e.g. "Promote". */
  state: string;
  /** 1 for the first invocation of this state in this execution, 2 for its first retry, ... */
  attempt: number;
  input: unknown;
}

export type InjectedFault = "timeout" | { after: "timeout" } | Error | undefined;

export { LambdaOutOfMemoryError, LambdaTimeoutError, type StepUsage } from "./lambda-pool.js";

/** One region's S3 endpoint on the local stack: the primary (incoming + vault) or a replica (its vault). */
export interface LocalRegion {
  region: string;
  vaultBucket: string;
  /** Stable across stop/start. */
  endpoint: string;
  running: boolean;
  /** Stops the region's s3rver (its objects stay on disk). Idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port. Idempotent. */
  start(): Promise<void>;
}

export interface ExecutionStats {
  started: number;
  succeeded: number;
  failed: number;
  inFlight: number;
  /** The largest state payload any execution had (bytes, local/limits.ts), and where. */
  largestState?: { bytes: number; where: string };
  /** The most history events one execution counted (Standard workflows). */
  mostHistoryEvents?: number;
  /** State transitions of all executions together (states entered, Map iterations' included): what Standard workflows are billed by. */
  transitions?: number;
  /**
   * Event-started and agent-started executions (runCounted): their durations added up, each rounded
   * up to 100 ms, as Express workflows are billed (start to end, wall time on this machine).
   */
  billedMs?: number;
}

export interface LocalStack {
  config: AgentConfig;
  configPath: string;
  /** Executions of every workflow together. */
  stats: ExecutionStats;
  /** Executions per workflow. */
  workflowStats: Record<WorkflowName, ExecutionStats>;
  /** Executions of the wal-record workflow (direct WAL; also counted in `stats`). */
  walRecordStats: ExecutionStats;
  /** Executions of the restore workflow (not counted in `stats`). */
  restoreStats: ExecutionStats;
  /** Executions of the replicate workflow (not counted in `stats`). */
  replicateStats: ExecutionStats;
  /** The primary region first, then the replicas. */
  regions: LocalRegion[];
  /** State machine ARNs the Step Functions endpoint (config.stepFunctionsEndpoint) starts. */
  stateMachineArns: Record<WorkflowName | "wal-record" | "restore" | "replicate" | "verify" | "retention", string>;
  /**
   * Runs restore.asl.json with `input` ({ databaseId, target, tier? }) and
   * resolves with its output (the plan), or rejects with a
   * RestoreExecutionError whose name is the failure's error name.
   */
  startRestore(input: unknown): Promise<unknown>;
  /** Runs replicate.asl.json with `input` ({ region, databaseId?, limit? }); rejects like startRestore. */
  startReplicate(input: unknown): Promise<unknown>;
  /** Runs verify.asl.json as its schedule would (`{}`), or with a forced database/snapshot/level. */
  startVerify(input: unknown): Promise<unknown>;
  verifyStats: ExecutionStats;
  /** Runs retention.asl.json as its schedule would (`{}`), or with { databaseId?, dryRun?, policy? }; rejects like startRestore. */
  startRetention(input: unknown): Promise<unknown>;
  retentionStats: ExecutionStats;
  /** Runs rpo-watch.asl.json as its schedule does (`{}`): every database's archive lag into the metrics file (`metricsFile`). */
  startRpoWatch(input?: unknown): Promise<unknown>;
  rpoWatchStats: ExecutionStats;
  /** Where the handlers' CloudWatch metrics go (their EMF lines, functions/observability.ts), one JSON line each (worker runtime). */
  metricsFile: string;
  /** Every line the handlers wrote (their structured logs, the EMF lines too), as CloudWatch Logs would keep it (worker runtime). */
  lambdaLogFile: string;
  /** What the verify workflow's SNS publish state sent, oldest first. */
  notifications: { subject: string; message: string; at: string }[];
  /** Per Lambda step (by ASL placeholder): invocations, the longest, and the most memory one held, against the step's limits. */
  stepUsage: ReadonlyMap<string, StepUsage>;
  /** Forgets the step usage so far: `stepUsage` then holds what ran since. */
  resetStepUsage(): void;
  /** S3 and DynamoDB requests counted since the start or the last resetRequests() (needs meterRequests; throws ConfigError without). */
  requests(): RequestCounts;
  /** Zeroes the request counts (a no-op without meterRequests). */
  resetRequests(): void;
  /** Resolves when no execution of any workflow is running. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const { stateDir } = opts;
  const databases = opts.databases ?? [{ id: "pg-main" }];
  mkdirSync(stateDir, { recursive: true });
  // archive_command runs as the database's OS user: it must be able to read config.json here.
  chmodSync(stateDir, 0o755);
  const logFile = join(stateDir, "executions.log");
  const replicaNames = opts.replicaRegions ?? [];
  if (new Set([LOCAL_REGION, ...replicaNames]).size !== replicaNames.length + 1) {
    throw new ConfigError(`replica regions ${replicaNames.join(", ")} must be distinct and differ from the primary ${LOCAL_REGION}`);
  }
  const metricsFile = join(stateDir, "metrics.log");
  const lambdaLogFile = join(stateDir, "lambda.log");
  /**
   * CloudWatch Logs, locally: every line a handler writes into lambda.log,
   * and the Embedded Metric Format lines (functions/observability.ts) into
   * metrics.log too, where CloudWatch would make them metrics.
   */
  const onLambdaLog = (line: string): void => {
    appendFileSync(lambdaLogFile, line + "\n");
    if (line.startsWith("{") && line.includes('"CloudWatchMetrics"')) appendFileSync(metricsFile, line + "\n");
  };
  // First: a worker runtime refuses to start on a dist/ older than the sources.
  const latency = opts.latency ?? NO_LATENCY;
  const lambda = lambdaRuntime(opts.lambdaRuntime ?? "worker", onLambdaLog, latency, opts.lambdaNice);
  const objectCreated: Array<(event: S3ObjectCreatedEvent) => void> = [];
  const regions: LocalRegion[] = [];
  const shared = opts.sharedDynamodbEndpoint;
  if (shared !== undefined && opts.persistent !== false) throw new ConfigError("a stack on a shared DynamoDB keeps its catalog in memory: pass persistent: false");
  const table = shared === undefined ? CATALOG_TABLE : `${CATALOG_TABLE}-${randomBytes(6).toString("hex")}`;
  let dynamo: { endpoint: string; stop(): Promise<void> } | undefined;
  /** On a shared DynamoDB: whether this stack created its table, to drop it on stop. */
  let ownTable = false;
  /** Drops this stack's table with a client of its own, straight to the shared endpoint: the request meter's proxy may be closing meanwhile. */
  const dropOwnTable = async (endpoint: string): Promise<void> => {
    if (!ownTable) return;
    const { client } = new DynamoCatalog({ tableName: table, region: LOCAL_REGION, endpoint, credentials: LOCAL_CREDENTIALS });
    try {
      await deleteTable(client, table);
    } finally {
      client.destroy();
    }
  };
  // The emulators start side by side: s3rver per region and DynamoDB Local's JVM are independent.
  const starting = [
    startRegion(LOCAL_REGION, join(stateDir, "s3"), [INCOMING_BUCKET, VAULT_BUCKET], VAULT_BUCKET, (e) => objectCreated.forEach((f) => f(e))),
    ...replicaNames.map((r) => startRegion(r, join(stateDir, `s3-${r}`), [replicaVaultBucket(r)], replicaVaultBucket(r))),
  ];
  const startingDynamo =
    shared !== undefined
      ? Promise.resolve({ endpoint: shared, stop: () => dropOwnTable(shared) })
      : startDynamo(opts.persistent === false ? {} : { dbPath: mkdirp(join(stateDir, "dynamodb")) });
  const [regionsStarted, [d]] = await Promise.all([Promise.allSettled(starting), Promise.allSettled([startingDynamo])]);
  for (const r of regionsStarted) if (r.status === "fulfilled") regions.push(r.value);
  if (d!.status === "fulfilled") dynamo = d!.value;
  const failed = [...regionsStarted, d!].find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed || dynamo === undefined) {
    await Promise.allSettled([...regions.map((r) => r.stop()), dynamo?.stop()]);
    throw failed?.reason;
  }
  const meter = opts.meterRequests ? new RequestMeter() : undefined;
  let dynamoEndpoint = dynamo.endpoint;
  if (meter) {
    // Every client is given the proxies' endpoints; the emulators stay where they are (a region restarts on its port).
    try {
      for (const r of regions) r.endpoint = (await meter.proxy("s3", r.region, r.endpoint)).endpoint;
      dynamoEndpoint = (await meter.proxy("dynamodb", "dynamodb", dynamo.endpoint)).endpoint;
    } catch (e) {
      await Promise.allSettled([meter.close(), ...regions.map((r) => r.stop()), dynamo.stop()]);
      throw e;
    }
  }
  const primary = regions[0]!;
  const s3 = { endpoint: primary.endpoint, onObjectCreated: (f: (typeof objectCreated)[number]) => objectCreated.push(f) };
  const endpoints = {
    region: LOCAL_REGION,
    s3Endpoint: s3.endpoint,
    dynamodbEndpoint: dynamoEndpoint,
    credentials: LOCAL_CREDENTIALS,
  };

  // The handlers read the same variables as in Lambda.
  Object.assign(process.env, {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    WALVAULT_INCOMING_BUCKET: INCOMING_BUCKET,
    WALVAULT_VAULT_BUCKET: VAULT_BUCKET,
    WALVAULT_TABLE: table,
    WALVAULT_S3_ENDPOINT: s3.endpoint,
    WALVAULT_DYNAMODB_ENDPOINT: dynamoEndpoint,
    WALVAULT_REPLICAS: JSON.stringify(regions.slice(1).map((r) => ({ region: r.region, bucket: r.vaultBucket, endpoint: r.endpoint }))),
  });
  resetDeps();

  const catalog = createCatalog({ ...endpoints, table });
  // With a replication index per replica region (an existing table gets the ones it lacks).
  await createTable((catalog as DynamoCatalog).client, table, { replicaRegions: regions.slice(1).map((r) => r.region) });
  ownTable = shared !== undefined;
  for (const db of databases) {
    // An existing registration is written again (putDatabase writes its registry entry too), so a catalog from before the registry is listed.
    const existing = await catalog.getDatabase(db.id);
    await catalog.putDatabase(
      existing ?? {
        databaseId: db.id,
        kind: db.kind ?? "postgres",
        walSegmentSize: db.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE,
        createdAt: new Date().toISOString(),
        ...(db.rpoSeconds === undefined ? {} : { rpoSeconds: db.rpoSeconds }),
      },
    );
  }

  const notifications: LocalStack["notifications"] = [];
  const sdkStore = createObjectStore(endpoints);
  const services: Record<string, Handler> = {
    [S3_PUT_OBJECT]: async (input) => {
      const p = input as { Bucket: string; Key: string; Body?: unknown };
      const put = await sdkStore.put(p.Bucket, p.Key, Buffer.from(typeof p.Body === "string" ? p.Body : JSON.stringify(p.Body ?? "")), {});
      return { ...(put.etag ? { ETag: put.etag } : {}) };
    },
    [ECS_RUN_TASK_SYNC]: (input) => runLocalTask(input, { stateDir, configPath: join(stateDir, "config.json"), checks: opts.verifyChecks, verbose: opts.verbose ?? false }),
    [SNS_PUBLISH]: async (input) => {
      const m = input as { Subject?: string; Message?: string };
      const n = { subject: String(m.Subject ?? ""), message: String(m.Message ?? ""), at: new Date().toISOString() };
      notifications.push(n);
      appendFileSync(join(stateDir, "notifications.log"), `${n.at} ${n.subject}: ${n.message}\n`);
      return { MessageId: `local-${notifications.length}` };
    },
  };
  const timeoutMsOf = (state: string, step: StepDefinition): number => {
    const o = opts.lambdaTimeoutMs;
    if (typeof o === "number") return o;
    if (o?.[state] !== undefined) return o[state];
    return step.timeoutSeconds * 1000;
  };
  /**
   * One Lambda invocation as AWS runs it: the fault hook first, then the
   * handler in its runtime (local/lambda-pool.ts) under the step's timeout
   * and memory.
   */
  const invokeLambda = async (workflow: string, state: string, timeoutMs: number, step: StepDefinition, attempt: number, input: unknown, traceRoot: string): Promise<unknown> => {
    await delay(latency.invokeMs);
    const fault = opts.injectFault?.({ workflow, state, attempt, input });
    if (fault instanceof Error) throw fault;
    if (fault === "timeout") {
      await new Promise((r) => setTimeout(r, timeoutMs));
      throw new LambdaTimeoutError(state, timeoutMs);
    }
    if (fault !== undefined) {
      await lambda.invoke(step, state, input, timeoutMs, traceRoot);
      throw new LambdaTimeoutError(state, timeoutMs);
    }
    return lambda.invoke(step, state, input, timeoutMs, traceRoot);
  };
  /** A Lambda Task state's local invocation, in the execution's trace (the service integrations ignore `attempt` and the trace). */
  const lambdaTask =
    (workflow: string, state: string, step: StepDefinition) =>
    (input: unknown, attempt = 1, traceRoot = newTraceRoot()): Promise<unknown> =>
      invokeLambda(workflow, state, timeoutMsOf(state, step), step, attempt, input, traceRoot);
  const build = (
    w: { name: string; file: string; standard?: boolean; functions: Record<string, LocalFunction> },
    substitutions: Record<string, string> = {},
  ) => {
    const definition = loadAsl(w.file, {
      IncomingBucketName: INCOMING_BUCKET,
      ...substitutions,
      ...Object.fromEntries(Object.entries(w.functions).map(([k, v]) => [k, v.arn])),
    });
    const lambdas = new Map(Object.values(w.functions).map((f) => [f.arn, f.step] as const));
    const tasks: { state: string; run: Handler }[] = [];
    for (const [state, arn] of taskResources(definition)) {
      const step = lambdas.get(arn);
      const service = services[arn];
      if (step) tasks.push({ state, run: lambdaTask(w.name, state, step) });
      else if (service) tasks.push({ state, run: service });
      else throw new ConfigError(`${w.file}: Task state ${state} calls ${arn}, which has no local handler`);
    }
    const waitTimeOverrides: Record<string, number> = {};
    for (const [name, s] of Object.entries((definition.States ?? {}) as Record<string, { Type?: string }>)) {
      if (s.Type === "Wait") waitTimeOverrides[name] = LOCAL_WAIT_MS;
    }
    const retryIntervalOverrides = Object.fromEntries(retryingStates(definition).map((name) => [name, LOCAL_RETRY_MS]));
    withAwsTaskTimeouts(definition);
    const machine = new StateMachine(definition as never, { validationOptions: { checkArn: true } });
    /** Fresh per execution: each counts its own attempts, under its own limits (local/limits.ts). */
    const overrides = (guard: ExecutionGuard) => {
      const attempts = new Map<string, number>();
      // The execution's X-Ray trace, which every Lambda step of it runs in (its log lines' correlation id).
      const traceRoot = newTraceRoot();
      const localHandlers: Record<string, Handler> = {};
      for (const t of tasks) {
        const invoke: Handler = (input) => {
          const attempt = (attempts.get(t.state) ?? 0) + 1;
          attempts.set(t.state, attempt);
          return t.run(input, attempt, traceRoot);
        };
        localHandlers[t.state] = guardTask(guard, t.state, invoke);
      }
      return { taskResourceLocalHandlers: localHandlers as never, waitTimeOverrides, retryIntervalOverrides };
    };
    const guard = (): ExecutionGuard => new ExecutionGuard(w.name, { standard: w.standard ?? true, ...opts.stateLimits });
    /** One execution under Step Functions' limits: resolves with its output, rejects with its failure or the limit it passed. */
    const run = (input: unknown, context?: Record<string, unknown>, counters: ExecutionStats[] = []): Promise<unknown> => {
      const g = guard();
      return runGuarded(machine, input, { overrides: overrides(g), ...(context === undefined ? {} : { context }) }, g).finally(() => {
        for (const c of counters) {
          if (g.largest.bytes > (c.largestState?.bytes ?? 0)) c.largestState = { ...g.largest };
          if (g.historyLimit !== undefined && g.events > (c.mostHistoryEvents ?? 0)) c.mostHistoryEvents = g.events;
          c.transitions = (c.transitions ?? 0) + g.transitions;
        }
      });
    };
    return { machine, run };
  };
  const machines = WORKFLOWS.map((w) => ({ ...w, ...build(w) }));
  const restoreMachine = build(RESTORE_WORKFLOW, restoreSubstitutions());
  const replicateMachine = build(REPLICATE_WORKFLOW);
  const verifyMachine = build(VERIFY_WORKFLOW, VERIFY_SUBSTITUTIONS);
  const retentionMachine = build(RETENTION_WORKFLOW);
  const walRecordMachine = build(WAL_RECORD_WORKFLOW);
  const rpoWatchMachine = build(RPO_WATCH_WORKFLOW);

  const newStats = (): ExecutionStats => ({ started: 0, succeeded: 0, failed: 0, inFlight: 0 });
  const stats = newStats();
  const workflowStats = Object.fromEntries(WORKFLOWS.map((w) => [w.name, newStats()])) as Record<WorkflowName, ExecutionStats>;
  let idleWaiters: (() => void)[] = [];
  const restoreStats = newStats();
  const replicateStats = newStats();
  const verifyStats = newStats();
  const retentionStats = newStats();
  const walRecordStats = newStats();
  const rpoWatchStats = newStats();
  /** Object Created events on their way to the workflows they start (latency.eventDeliveryMs): idle() waits for them too. */
  let delivering = 0;
  const quiet = (): boolean =>
    delivering === 0 &&
    stats.inFlight === 0 && restoreStats.inFlight === 0 && replicateStats.inFlight === 0 && verifyStats.inFlight === 0 && retentionStats.inFlight === 0 && rpoWatchStats.inFlight === 0;
  const settle = (): void => {
    if (quiet()) {
      const w = idleWaiters;
      idleWaiters = [];
      w.forEach((f) => f());
    }
  };

  /** One execution of an event-started workflow, counted in `stats`; rejects with a RestoreExecutionError. */
  const runEventWorkflow = (m: (typeof machines)[number], input: unknown, what: string): Promise<unknown> =>
    runCounted(m, [stats, workflowStats[m.name]], m.name, input, what);
  /** One execution counted in each of `counters`; a failure is logged and rejects with a RestoreExecutionError. */
  const runCounted = (m: ReturnType<typeof build>, counters: ExecutionStats[], name: string, input: unknown, what: string, startDelayMs = 0): Promise<unknown> => {
    for (const c of counters) {
      c.started++;
      c.inFlight++;
    }
    let t0 = performance.now();
    return delay(startDelayMs)
      .then(() => {
        t0 = performance.now();
        return m.run(input, undefined, counters);
      })
      .then(
        (output: unknown) => {
          for (const c of counters) c.succeeded++;
          return output;
        },
        (err: unknown) => {
          for (const c of counters) c.failed++;
          const line = `${new Date().toISOString()} ${name} ${what}: ${describeError(err)}`;
          appendFileSync(logFile, line + "\n");
          if (opts.verbose) console.error(line);
          throw executionFailure(err);
        },
      )
      .finally(() => {
        const billed = Math.ceil((performance.now() - t0) / 100) * 100;
        for (const c of counters) {
          c.inFlight--;
          c.billedMs = (c.billedMs ?? 0) + billed;
        }
        settle();
      });
  };

  s3.onObjectCreated((event) => {
    // The EventBridge rules: Object Created in the incoming bucket, key matching a workflow's pattern.
    if (event.detail.bucket.name !== INCOMING_BUCKET) return;
    const key = event.detail.object.key;
    const started = machines.filter((m) => matchesWildcard(m.keyPattern, key));
    if (started.length === 0) return;
    delivering++;
    void delay(latency.eventDeliveryMs).then(() => {
      delivering--;
      for (const m of started) runEventWorkflow(m, event, key).catch(() => undefined); // logged above
      settle();
    });
  });

  /** One execution of an on-demand workflow, counted in its own stats; rejects with a RestoreExecutionError. */
  async function runOnDemand(
    m: ReturnType<typeof build>,
    counters: ExecutionStats,
    what: string,
    input: unknown,
    started?: { name: string; executionArn: string },
  ): Promise<unknown> {
    counters.started++;
    counters.inFlight++;
    try {
      await delay(latency.startExecutionMs);
      // The context object's execution name and ARN ($$.Execution.Name / Id): StartExecution's, or made up here.
      const name = started?.name ?? `${what.replace(/[^A-Za-z0-9_-]/g, "-")}-${Date.now()}-${randomBytes(3).toString("hex")}`;
      const Id = started?.executionArn ?? `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:execution:walvault-${what}:${name}`;
      let output: unknown;
      try {
        output = await m.run(input, { Execution: { Id, Name: name } }, [counters]);
      } catch (err) {
        const failure = executionFailure(err);
        const line = `${new Date().toISOString()} ${what} ${JSON.stringify(input)}: ${failure.message}`;
        appendFileSync(logFile, line + "\n");
        if (opts.verbose) console.error(line);
        throw failure;
      }
      counters.succeeded++;
      return output;
    } catch (e) {
      counters.failed++;
      throw e;
    } finally {
      counters.inFlight--;
      settle();
    }
  }
  type Started = { name: string; executionArn: string };
  /** A wal-record execution (StartExecution by the agent): counted with the event-started ones, so `idle()` waits for it. */
  const startWalRecord = (input: unknown): Promise<unknown> =>
    runCounted(walRecordMachine, [stats, walRecordStats], "wal-record", input, JSON.stringify(input).slice(0, 300), latency.startExecutionMs);

  const startRestore = (input: unknown, started?: Started): Promise<unknown> => runOnDemand(restoreMachine, restoreStats, "restore", input, started);
  const startReplicate = (input: unknown, started?: Started): Promise<unknown> => runOnDemand(replicateMachine, replicateStats, "replicate", input, started);
  const startVerify = (input: unknown, started?: Started): Promise<unknown> => runOnDemand(verifyMachine, verifyStats, "verify", input, started);
  const startRetention = (input: unknown, started?: Started): Promise<unknown> => runOnDemand(retentionMachine, retentionStats, "retention", input, started);
  const startRpoWatch = (input: unknown = {}, started?: Started): Promise<unknown> => runOnDemand(rpoWatchMachine, rpoWatchStats, "rpo-watch", input, started);

  const stateMachineArns = {
    ...(Object.fromEntries(WORKFLOWS.map((w) => [w.name, localStateMachineArn(w.name)])) as Record<WorkflowName, string>),
    "wal-record": localStateMachineArn("wal-record"),
    restore: localStateMachineArn("restore"),
    replicate: localStateMachineArn("replicate"),
    verify: localStateMachineArn("verify"),
    retention: localStateMachineArn("retention"),
    "rpo-watch": localStateMachineArn("rpo-watch"),
  };
  let sfn: Awaited<ReturnType<typeof startSfnEndpoint>>;
  try {
    sfn = await startSfnEndpoint({
      workflows: [
        ...machines.map((m) => ({
          stateMachineArn: stateMachineArns[m.name],
          run: (input: unknown) => runEventWorkflow(m, input, "(started by StartExecution)"),
          express: !m.standard,
        })),
        { stateMachineArn: stateMachineArns["wal-record"], run: startWalRecord, express: true },
        { stateMachineArn: stateMachineArns.restore, run: startRestore },
        { stateMachineArn: stateMachineArns.replicate, run: startReplicate },
        { stateMachineArn: stateMachineArns.verify, run: startVerify },
        { stateMachineArn: stateMachineArns.retention, run: startRetention },
        { stateMachineArn: stateMachineArns["rpo-watch"], run: startRpoWatch, express: true },
      ],
    });
  } catch (e) {
    await Promise.allSettled([...regions.map((r) => r.stop()), dynamo.stop(), meter?.close()]);
    throw e;
  }

  const rpoTimer =
    opts.rpoWatchEveryMs === undefined
      ? undefined
      : setInterval(() => {
          if (rpoWatchStats.inFlight === 0) startRpoWatch({}).catch(() => undefined); // a failure is logged by runOnDemand
        }, opts.rpoWatchEveryMs);
  rpoTimer?.unref();

  const config: AgentConfig = {
    region: LOCAL_REGION,
    incomingBucket: INCOMING_BUCKET,
    vaultBucket: VAULT_BUCKET,
    table,
    s3Endpoint: s3.endpoint,
    dynamodbEndpoint: dynamoEndpoint,
    stepFunctionsEndpoint: sfn.endpoint,
    walRecordStateMachineArn: stateMachineArns["wal-record"],
    restoreStateMachineArn: stateMachineArns.restore,
    replicateStateMachineArn: stateMachineArns.replicate,
    verifyStateMachineArn: stateMachineArns.verify,
    retentionStateMachineArn: stateMachineArns.retention,
    ...(regions.length > 1 ? { replicas: regions.slice(1).map((r) => ({ region: r.region, vaultBucket: r.vaultBucket, s3Endpoint: r.endpoint })) } : {}),
    credentials: LOCAL_CREDENTIALS,
    ...(databases.length === 1 ? { databaseId: databases[0]!.id } : {}),
    local: { pid: process.pid, stateDir },
  };
  const configPath = join(stateDir, "config.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2) + "\n", { mode: 0o644 });

  return {
    config,
    configPath,
    stats,
    workflowStats,
    walRecordStats,
    restoreStats,
    replicateStats,
    regions,
    stateMachineArns,
    startRestore,
    startReplicate,
    startVerify,
    verifyStats,
    startRetention,
    retentionStats,
    startRpoWatch,
    rpoWatchStats,
    metricsFile,
    lambdaLogFile,
    notifications,
    stepUsage: lambda.usage,
    resetStepUsage: () => lambda.resetUsage(),
    requests: () => {
      if (!meter) throw new ConfigError("requests are not counted: start the local stack with meterRequests: true");
      return meter.snapshot();
    },
    resetRequests: () => meter?.reset(),
    idle: () => (quiet() ? Promise.resolve() : new Promise((r) => idleWaiters.push(r))),
    async stop() {
      clearInterval(rpoTimer);
      await Promise.allSettled([sfn.stop(), lambda.stop(), ...regions.map((r) => r.stop()), dynamo.stop(), meter?.close()]);
    },
  };
}

/** Starts a region's s3rver and returns the handle that stops and restarts it on the same port. */
async function startRegion(
  region: string,
  directory: string,
  buckets: string[],
  vaultBucket: string,
  onObjectCreated?: (e: S3ObjectCreatedEvent) => void,
): Promise<LocalRegion> {
  const launch = async (port?: number): Promise<S3Emulator> => {
    const s3 = await startS3({ directory, buckets, region, ...(port === undefined ? {} : { port }) });
    if (onObjectCreated) s3.onObjectCreated(onObjectCreated);
    return s3;
  };
  let s3: S3Emulator | undefined = await launch();
  const port = s3.port;
  let starting: Promise<void> | undefined;
  const handle: LocalRegion = {
    region,
    vaultBucket,
    endpoint: s3.endpoint,
    running: true,
    async stop() {
      await starting;
      const running = s3;
      s3 = undefined;
      handle.running = false;
      await running?.stop();
    },
    async start() {
      if (s3) return;
      starting ??= launch(port).then((started) => {
        s3 = started;
        handle.running = true;
      });
      try {
        await starting;
      } finally {
        starting = undefined;
      }
    },
  };
  return handle;
}

interface AslState {
  Type?: string;
  Retry?: unknown;
  TimeoutSeconds?: number;
  TimeoutSecondsPath?: string;
  ItemProcessor?: { States?: Record<string, AslState> };
  Iterator?: { States?: Record<string, AslState> };
  Branches?: { States?: Record<string, AslState> }[];
}

/** Calls fn on every state of the definition, nested ones (Map, Parallel) included. */
function forEachState(definition: Record<string, unknown>, fn: (name: string, state: AslState) => void): void {
  const walk = (states: Record<string, AslState> | undefined): void => {
    for (const [name, st] of Object.entries(states ?? {})) {
      fn(name, st);
      walk(st.ItemProcessor?.States);
      walk(st.Iterator?.States);
      for (const b of st.Branches ?? []) walk(b.States);
    }
  };
  walk(definition.States as Record<string, AslState> | undefined);
}

/** Names of every state (nested ones included) with a Retry: the local stack shortens their intervals. */
function retryingStates(definition: Record<string, unknown>): string[] {
  const out: string[] = [];
  forEachState(definition, (name, st) => {
    if (Array.isArray(st.Retry)) out.push(name);
  });
  return out;
}

/**
 * A Task state without TimeoutSeconds has no state timeout in AWS (its
 * default is 99,999,999 s; a Lambda Task ends at the function's own timeout),
 * but aws-local-stepfunctions applies the States Language spec's default of
 * 60 s. Such Tasks get LOCAL_TASK_TIMEOUT_SECONDS instead, so a step allowed
 * 5 or 15 minutes by its Lambda timeout (enforced by local/lambda-pool.ts)
 * does not fail locally with States.Timeout after one.
 */
export const LOCAL_TASK_TIMEOUT_SECONDS = 2_000_000; // Node's timers hold at most 2^31-1 ms (24.8 days)
export function withAwsTaskTimeouts(definition: Record<string, unknown>): void {
  forEachState(definition, (_, st) => {
    if (st.Type === "Task" && st.TimeoutSeconds === undefined && st.TimeoutSecondsPath === undefined) st.TimeoutSeconds = LOCAL_TASK_TIMEOUT_SECONDS;
  });
}

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Where the compiled verification task is: beside this module's dist/ tree, or dist/ when this runs from source. */
function verifyTaskPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "..", "tasks", "verify", "main.js"), join(here, "..", "dist", "tasks", "verify", "main.js")];
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new ConfigError(`the verification task is not built (looked for ${candidates.join(", ")}): run \`npm run build\``);
  return found;
}

/**
 * The ECS RunTask.sync state, locally: the task's container overrides become
 * the environment of tasks/verify/main.js, run as a child process; it
 * resolves like RunTask.sync (the task stopped with exit 0) or rejects with
 * States.TaskFailed naming the exit code.
 */
function runLocalTask(input: unknown, ctx: { stateDir: string; configPath: string; checks: unknown; verbose: boolean }): Promise<unknown> {
  const params = input as { Overrides?: { ContainerOverrides?: { Environment?: { Name: string; Value: string }[] }[] } };
  const env: Record<string, string> = {};
  for (const o of params.Overrides?.ContainerOverrides ?? []) for (const e of o.Environment ?? []) env[e.Name] = e.Value;
  const workDir = join(ctx.stateDir, "verify");
  mkdirSync(workDir, { recursive: true });
  chmodSync(workDir, 0o777);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [verifyTaskPath()], {
      env: {
        ...process.env,
        WALVAULT_CONFIG: ctx.configPath,
        WALVAULT_VERIFY_WORKDIR: workDir,
        ...(ctx.checks === undefined ? {} : { WALVAULT_VERIFY_CHECKS: JSON.stringify(ctx.checks) }),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
      if (ctx.verbose) process.stderr.write(d);
    });
    child.on("error", (e) => reject(new LocalTaskFailed(`the verification task could not start: ${e.message}`)));
    child.on("exit", (code, signal) => {
      appendFileSync(join(ctx.stateDir, "verify-tasks.log"), out);
      if (code === 0) resolve({ Containers: [{ Name: "verify", ExitCode: 0 }], StopCode: "EssentialContainerExited" });
      else reject(new LocalTaskFailed(`the verification task exited ${code ?? `on ${signal}`}: ${out.trim().split("\n").at(-1) ?? ""}`));
    });
  });
}
