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
import { appendFileSync, chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StateMachine } from "aws-local-stepfunctions";
import { ConfigError, describeError } from "../core/errors.js";
import type { AgentConfig } from "../core/config.js";
import { DEFAULT_WAL_SEGMENT_SIZE } from "../core/wal.js";
import { INCOMING_PREFIX } from "../core/keys.js";
import { createCatalog } from "../store/factory.js";
import { createTable, DynamoCatalog } from "../store/dynamo-catalog.js";
import { resetDeps } from "../functions/deps.js";
import * as validate from "../functions/ingest/validate.js";
import * as promote from "../functions/ingest/promote.js";
import * as record from "../functions/ingest/record.js";
import * as replicate from "../functions/ingest/replicate.js";
import * as quarantine from "../functions/ingest/quarantine.js";
import * as validateManifest from "../functions/snapshot/validate-manifest.js";
import * as promoteChunks from "../functions/snapshot/promote-chunks.js";
import * as checkReferenced from "../functions/snapshot/check-referenced.js";
import * as promoteManifest from "../functions/snapshot/promote-manifest.js";
import * as recordSnapshot from "../functions/snapshot/record-snapshot.js";
import * as quarantineSnapshot from "../functions/snapshot/quarantine.js";
import * as restorePlan from "../functions/restore/plan.js";
import * as restoreThaw from "../functions/restore/thaw.js";
import { loadAsl, taskResources } from "./asl.js";
import { LOCAL_ACCOUNT, startDynamo, startS3 } from "./emulators.js";
import { startSfnEndpoint } from "./sfn-endpoint.js";

export const LOCAL_REGION = "local-1";
export const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
export const INCOMING_BUCKET = "walvault-incoming";
export const VAULT_BUCKET = "walvault-vault";
export const CATALOG_TABLE = "walvault-catalog";

type Handler = (input: unknown) => Promise<unknown>;

const localArn = (fn: string): string => `arn:aws:lambda:${LOCAL_REGION}:000000000000:function:walvault-${fn}`;

/** Local stand-ins for the Lambda ARNs CDK substitutes: placeholder -> function name, handler. */
function functions(entries: ReadonlyArray<readonly [string, string, Handler]>): Record<string, { arn: string; handler: Handler }> {
  return Object.fromEntries(entries.map(([placeholder, fn, handler]) => [placeholder, { arn: localArn(fn), handler }]));
}

export type WorkflowName = "ingest" | "snapshot-ingest";

/** The local ARN of a workflow's state machine, as the Step Functions endpoint knows it. */
export const localStateMachineArn = (workflow: WorkflowName | "restore"): string =>
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
  functions: Record<string, { arn: string; handler: Handler }>;
}> = [
  {
    name: "ingest",
    file: "ingest.asl.json",
    keyPattern: `${INCOMING_PREFIX}*/wal/*`,
    functions: functions([
      ["ValidateFunctionArn", "ingest-validate", validate.handler],
      ["PromoteFunctionArn", "ingest-promote", promote.handler],
      ["RecordFunctionArn", "ingest-record", record.handler],
      ["ReplicateFunctionArn", "ingest-replicate", replicate.handler],
      ["QuarantineFunctionArn", "ingest-quarantine", quarantine.handler],
    ]),
  },
  {
    name: "snapshot-ingest",
    file: "snapshot-ingest.asl.json",
    keyPattern: `${INCOMING_PREFIX}*/snapshots/*/manifest.json`,
    functions: functions([
      ["ValidateManifestFunctionArn", "snapshot-validate-manifest", validateManifest.handler],
      ["PromoteChunksFunctionArn", "snapshot-promote-chunks", promoteChunks.handler],
      ["CheckReferencedFunctionArn", "snapshot-check-referenced", checkReferenced.handler],
      ["PromoteManifestFunctionArn", "snapshot-promote-manifest", promoteManifest.handler],
      ["RecordSnapshotFunctionArn", "snapshot-record", recordSnapshot.handler],
      ["QuarantineSnapshotFunctionArn", "snapshot-quarantine", quarantineSnapshot.handler],
    ]),
  },
];

/** The restore workflow: started on demand, never by an event. */
export const RESTORE_WORKFLOW: {
  name: "restore";
  file: string;
  functions: Record<string, { arn: string; handler: Handler }>;
} = {
  name: "restore",
  file: "restore.asl.json",
  functions: functions([
    ["PlanFunctionArn", "restore-plan", restorePlan.handler],
    ["ThawFunctionArn", "restore-thaw", restoreThaw.handler],
    ["CheckThawFunctionArn", "restore-check-thaw", restoreThaw.checkHandler],
  ]),
};

/** Wait states of the local workflows last this long (milliseconds) instead of their Seconds. */
export const LOCAL_WAIT_MS = 5;

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
}

export interface LocalStackOptions {
  stateDir: string;
  databases?: LocalDatabase[];
  /** Keep the catalog on disk under stateDir (default) or in memory. */
  persistent?: boolean;
  /** Print each execution's failure to stderr. */
  verbose?: boolean;
}

export interface ExecutionStats {
  started: number;
  succeeded: number;
  failed: number;
  inFlight: number;
}

export interface LocalStack {
  config: AgentConfig;
  configPath: string;
  /** Executions of every workflow together. */
  stats: ExecutionStats;
  /** Executions per workflow. */
  workflowStats: Record<WorkflowName, ExecutionStats>;
  /** Executions of the restore workflow (not counted in `stats`). */
  restoreStats: ExecutionStats;
  /** State machine ARNs the Step Functions endpoint (config.stepFunctionsEndpoint) starts. */
  stateMachineArns: Record<WorkflowName | "restore", string>;
  /**
   * Runs restore.asl.json with `input` ({ databaseId, target, tier? }) and
   * resolves with its output (the plan), or rejects with a
   * RestoreExecutionError whose name is the failure's error name.
   */
  startRestore(input: unknown): Promise<unknown>;
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
  const s3 = await startS3({ directory: join(stateDir, "s3"), buckets: [INCOMING_BUCKET, VAULT_BUCKET] });
  let dynamo: Awaited<ReturnType<typeof startDynamo>>;
  try {
    dynamo = await startDynamo(opts.persistent === false ? {} : { dbPath: mkdirp(join(stateDir, "dynamodb")) });
  } catch (e) {
    await s3.stop();
    throw e;
  }
  const endpoints = {
    region: LOCAL_REGION,
    s3Endpoint: s3.endpoint,
    dynamodbEndpoint: dynamo.endpoint,
    credentials: LOCAL_CREDENTIALS,
  };

  // The handlers read the same variables as in Lambda.
  Object.assign(process.env, {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    WALVAULT_INCOMING_BUCKET: INCOMING_BUCKET,
    WALVAULT_VAULT_BUCKET: VAULT_BUCKET,
    WALVAULT_TABLE: CATALOG_TABLE,
    WALVAULT_S3_ENDPOINT: s3.endpoint,
    WALVAULT_DYNAMODB_ENDPOINT: dynamo.endpoint,
    WALVAULT_REPLICAS: "[]",
  });
  resetDeps();

  const catalog = createCatalog({ ...endpoints, table: CATALOG_TABLE });
  await createTable((catalog as DynamoCatalog).client, CATALOG_TABLE);
  for (const db of databases) {
    if (!(await catalog.getDatabase(db.id))) {
      await catalog.putDatabase({
        databaseId: db.id,
        kind: db.kind ?? "postgres",
        walSegmentSize: db.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE,
        createdAt: new Date().toISOString(),
      });
    }
  }

  const build = (w: { file: string; functions: Record<string, { arn: string; handler: Handler }> }) => {
    const definition = loadAsl(w.file, Object.fromEntries(Object.entries(w.functions).map(([k, v]) => [k, v.arn])));
    const byArn = new Map(Object.values(w.functions).map((f) => [f.arn, f.handler]));
    const localHandlers: Record<string, Handler> = {};
    for (const [state, arn] of taskResources(definition)) {
      const h = byArn.get(arn);
      if (!h) throw new ConfigError(`${w.file}: Task state ${state} calls ${arn}, which has no local handler`);
      localHandlers[state] = h;
    }
    const waitTimeOverrides: Record<string, number> = {};
    for (const [name, s] of Object.entries((definition.States ?? {}) as Record<string, { Type?: string }>)) {
      if (s.Type === "Wait") waitTimeOverrides[name] = LOCAL_WAIT_MS;
    }
    const machine = new StateMachine(definition as never, { validationOptions: { checkArn: true } });
    return { machine, localHandlers, waitTimeOverrides };
  };
  const machines = WORKFLOWS.map((w) => ({ ...w, ...build(w) }));
  const restoreMachine = build(RESTORE_WORKFLOW);

  const newStats = (): ExecutionStats => ({ started: 0, succeeded: 0, failed: 0, inFlight: 0 });
  const stats = newStats();
  const workflowStats = Object.fromEntries(WORKFLOWS.map((w) => [w.name, newStats()])) as Record<WorkflowName, ExecutionStats>;
  let idleWaiters: (() => void)[] = [];
  const restoreStats = newStats();
  const settle = (): void => {
    if (stats.inFlight === 0 && restoreStats.inFlight === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      w.forEach((f) => f());
    }
  };

  /** One execution of an event-started workflow, counted in `stats`; rejects with a RestoreExecutionError. */
  const runEventWorkflow = (m: (typeof machines)[number], input: unknown, what: string): Promise<unknown> => {
    const counters = [stats, workflowStats[m.name]];
    for (const c of counters) {
      c.started++;
      c.inFlight++;
    }
    const execution = m.machine.run(input as never, {
      overrides: { taskResourceLocalHandlers: m.localHandlers as never, waitTimeOverrides: m.waitTimeOverrides },
    });
    return execution.result
      .then(
        (output: unknown) => {
          for (const c of counters) c.succeeded++;
          return output;
        },
        (err: unknown) => {
          for (const c of counters) c.failed++;
          const line = `${new Date().toISOString()} ${m.name} ${what}: ${describeError(err)}`;
          appendFileSync(logFile, line + "\n");
          if (opts.verbose) console.error(line);
          throw executionFailure(err);
        },
      )
      .finally(() => {
        for (const c of counters) c.inFlight--;
        settle();
      });
  };

  s3.onObjectCreated((event) => {
    // The EventBridge rules: Object Created in the incoming bucket, key matching a workflow's pattern.
    if (event.detail.bucket.name !== INCOMING_BUCKET) return;
    const key = event.detail.object.key;
    for (const m of machines) {
      if (matchesWildcard(m.keyPattern, key)) runEventWorkflow(m, event, key).catch(() => undefined); // logged above
    }
  });

  async function startRestore(input: unknown): Promise<unknown> {
    restoreStats.started++;
    restoreStats.inFlight++;
    try {
      const execution = restoreMachine.machine.run(input as never, {
        overrides: { taskResourceLocalHandlers: restoreMachine.localHandlers as never, waitTimeOverrides: restoreMachine.waitTimeOverrides },
      });
      let output: unknown;
      try {
        output = await execution.result;
      } catch (err) {
        const failure = executionFailure(err);
        const line = `${new Date().toISOString()} restore ${JSON.stringify(input)}: ${failure.message}`;
        appendFileSync(logFile, line + "\n");
        if (opts.verbose) console.error(line);
        throw failure;
      }
      restoreStats.succeeded++;
      return output;
    } catch (e) {
      restoreStats.failed++;
      throw e;
    } finally {
      restoreStats.inFlight--;
      settle();
    }
  }

  const stateMachineArns = {
    ...(Object.fromEntries(WORKFLOWS.map((w) => [w.name, localStateMachineArn(w.name)])) as Record<WorkflowName, string>),
    restore: localStateMachineArn("restore"),
  };
  let sfn: Awaited<ReturnType<typeof startSfnEndpoint>>;
  try {
    sfn = await startSfnEndpoint({
      workflows: [
        ...machines.map((m) => ({ stateMachineArn: stateMachineArns[m.name], run: (input: unknown) => runEventWorkflow(m, input, "(started by StartExecution)") })),
        { stateMachineArn: stateMachineArns.restore, run: startRestore },
      ],
    });
  } catch (e) {
    await Promise.allSettled([s3.stop(), dynamo.stop()]);
    throw e;
  }

  const config: AgentConfig = {
    region: LOCAL_REGION,
    incomingBucket: INCOMING_BUCKET,
    vaultBucket: VAULT_BUCKET,
    table: CATALOG_TABLE,
    s3Endpoint: s3.endpoint,
    dynamodbEndpoint: dynamo.endpoint,
    stepFunctionsEndpoint: sfn.endpoint,
    restoreStateMachineArn: stateMachineArns.restore,
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
    restoreStats,
    stateMachineArns,
    startRestore,
    idle: () => (stats.inFlight === 0 && restoreStats.inFlight === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r))),
    async stop() {
      await Promise.allSettled([sfn.stop(), s3.stop(), dynamo.stop()]);
    },
  };
}

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
