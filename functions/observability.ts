/**
 * What every handler reports besides its output, with Powertools for AWS
 * Lambda (TypeScript): one Logger, one Tracer and the Metrics of each
 * namespace, built once per module (per Lambda container).
 *
 * - Logs: structured JSON on stdout (Lambda's log group), each line with the
 *   invocation's context (function_name, function_request_id, cold_start)
 *   and `correlation_id`: the X-Ray trace root of the Step Functions
 *   execution that invoked the step (every state machine traces, so all the
 *   steps of one execution share it; docs/observability.md shows the Logs
 *   Insights query). A step that fails logs one ERROR line naming the error.
 * - Metrics: Embedded Metric Format lines on stdout, which CloudWatch turns
 *   into metrics (no API call, no permission); `emitMetric` publishes one
 *   record at once, so each database's record keeps its own dimensions.
 * - Traces: the handler as a subsegment of the execution's trace, and every
 *   AWS SDK client functions/deps.ts builds captured (`traceClient`), so each
 *   S3 and DynamoDB call shows in X-Ray. Off outside Lambda (Powertools
 *   checks AWS_EXECUTION_ENV), so the local stack and tests run untraced;
 *   there the Tracer is not even loaded (`tracingPossible`): loading it
 *   loads the X-Ray SDK, whose cls-hooked namespace enables an async hook
 *   with destroy tracking on every promise and callback of the sandbox,
 *   traced or not (~6% of PromotePacks' CPU, docs/observability.md).
 *
 * The local stack collects the sandboxes' stdout as CloudWatch Logs would
 * (local/lambda-pool.ts): every line into its Lambda log, the EMF lines into
 * its metrics file too.
 *
 * A handler module exports `lambdaHandler(run)`: `run` parses its input and
 * calls store and core; the wrapper adds the above around it.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { Tracer } from "@aws-lambda-powertools/tracer";
import type { Context } from "aws-lambda";
import { ConfigError } from "../core/errors.js";
import { ARCHIVE_NAMESPACE, INGEST_NAMESPACE, SERVICE_NAME } from "../core/metrics.js";
import type { QuarantineRecord } from "../core/schemas.js";

export const logger = new Logger({ serviceName: SERVICE_NAME });

/**
 * Whether Powertools could turn tracing on here: in a Lambda execution
 * environment (AWS_EXECUTION_ENV, not SAM's or Amplify's local mocks), not
 * switched off by POWERTOOLS_TRACE_ENABLED=false. Where it could not, the
 * Tracer (and the X-Ray SDK under it) is never loaded.
 */
export function tracingPossible(env: NodeJS.ProcessEnv = process.env): boolean {
  const execution = env.AWS_EXECUTION_ENV ?? "";
  if (execution === "" || execution === "AWS_Lambda_amplify-mock" || (env.AWS_SAM_LOCAL ?? "") !== "") return false;
  return (env.POWERTOOLS_TRACE_ENABLED ?? "").toLowerCase() !== "false";
}

/** The module's Tracer, in a Lambda sandbox that may trace; undefined elsewhere. */
const tracer: Tracer | undefined = tracingPossible() ? new (await import("@aws-lambda-powertools/tracer")).Tracer({ serviceName: SERVICE_NAME }) : undefined;

/** `client` with its calls traced as X-Ray subsegments (the same client when tracing is off). */
export function traceClient<C>(client: C): C {
  return tracer === undefined ? client : (tracer.captureAWSv3Client(client as Parameters<Tracer["captureAWSv3Client"]>[0]) as C);
}

export interface MetricRecord {
  namespace: string;
  /** The dimension names, each a property of `values` too. */
  dimensions: readonly string[];
  metrics: ReadonlyArray<{ name: string; unit: "Count" | "Seconds" | "None" }>;
  /** Every metric's value, the dimensions' values, and any other property to log beside them (EMF metadata). */
  values: Readonly<Record<string, string | number | boolean>>;
}

const UNITS = { Count: MetricUnit.Count, Seconds: MetricUnit.Seconds, None: MetricUnit.NoUnit } as const;
const metricsByNamespace = new Map<string, Metrics>();

function metricsOf(namespace: string): Metrics {
  let m = metricsByNamespace.get(namespace);
  if (!m) {
    m = new Metrics({ namespace, serviceName: SERVICE_NAME });
    // Alarms and the dashboard name each metric by its own dimensions only (infra/monitoring.ts); no `service` dimension.
    m.clearDefaultDimensions();
    metricsByNamespace.set(namespace, m);
  }
  return m;
}

/** Publishes `r` now: one EMF line with exactly its dimensions (none is a metric without dimensions). */
export function emitMetric(r: MetricRecord): void {
  const m = metricsOf(r.namespace);
  const dimensions = new Set(r.dimensions);
  const metricNames = new Set(r.metrics.map((x) => x.name));
  m.addDimensions(Object.fromEntries(r.dimensions.map((d) => [d, String(r.values[d])])));
  for (const [k, v] of Object.entries(r.values)) {
    if (!dimensions.has(k) && !metricNames.has(k)) m.addMetadata(k, String(v));
  }
  for (const x of r.metrics) {
    const v = r.values[x.name];
    if (typeof v !== "number") throw new TypeError(`metric ${x.name} of ${r.namespace} has no numeric value`);
    m.addMetric(x.name, UNITS[x.unit], v);
  }
  m.publishStoredMetrics();
}

/** One rejected upload (`kind`: which path refused it), as the quarantine steps record it. */
export function quarantineMetric(r: QuarantineRecord, kind: "wal" | "wal-direct" | "snapshot"): MetricRecord {
  return {
    namespace: INGEST_NAMESPACE,
    dimensions: ["DatabaseId"],
    metrics: [{ name: "Quarantined", unit: "Count" }],
    values: { DatabaseId: r.databaseId, Quarantined: 1, Kind: kind, Name: r.name, Error: r.error, Reason: r.reason.slice(0, 500) },
  };
}

/**
 * The archiver's backlog on a database's host, as an upload reported it
 * (core/schemas.ts META_BACKLOG: the .ready files when it was uploaded, itself
 * included): ArchiveBacklogSegments, dimension DatabaseId; the file it rode on
 * as metadata.
 */
export function backlogMetric(databaseId: string, segments: number, name: string): MetricRecord {
  return {
    namespace: ARCHIVE_NAMESPACE,
    dimensions: ["DatabaseId"],
    metrics: [{ name: "ArchiveBacklogSegments", unit: "Count" }],
    values: { DatabaseId: databaseId, ArchiveBacklogSegments: segments, Name: name },
  };
}

/** The root of the invocation's X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`): the execution's trace. */
export function traceRoot(header: string | undefined = process.env._X_AMZN_TRACE_ID): string | undefined {
  return header?.split(";").find((p) => p.startsWith("Root="))?.slice("Root=".length) || undefined;
}

/** What a direct call (a test, a script) gets for a context: Lambda always passes one. */
function directContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? "direct-call",
    functionVersion: "$LATEST",
    invokedFunctionArn: "",
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? "0",
    awsRequestId: "direct-call",
    logGroupName: "",
    logStreamName: "",
    getRemainingTimeInMillis: () => 0,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export type LambdaHandler<O> = (input: unknown, context?: Context) => Promise<O>;

const INSTRUMENTED = Symbol.for("walvault.lambdaHandler");

/** Whether `fn` was made by lambdaHandler (test/functions/observability.test.ts holds every step to it). */
export function isLambdaHandler(fn: unknown): boolean {
  return typeof fn === "function" && (fn as unknown as Record<symbol, unknown>)[INSTRUMENTED] === true;
}

type Decorator = (target: unknown, key: string, descriptor: PropertyDescriptor) => PropertyDescriptor | void;

/** Applies a Powertools method decorator to a plain function. */
function decorate<F>(fn: F, decorator: Decorator): F {
  const descriptor: PropertyDescriptor = { value: fn, writable: true, configurable: true };
  return ((decorator(undefined, "handler", descriptor) ?? descriptor).value ?? descriptor.value) as F;
}

/**
 * The Lambda handler of a step: `run` inside the invocation's log context
 * (keys reset after each), its own trace subsegment, and one ERROR line when
 * it throws (the error still fails the step, for the state machine's Retry
 * and Catch).
 */
export function lambdaHandler<O>(run: (input: unknown) => Promise<O>): LambdaHandler<O> {
  const inner = async (input: unknown, context: Context): Promise<O> => {
    const root = traceRoot();
    if (root !== undefined) logger.setCorrelationId(root);
    try {
      return await run(input);
    } catch (err) {
      logger.error(`${context.functionName} failed`, err as Error);
      throw err;
    }
  };
  const traced = tracer === undefined ? inner : decorate(inner, tracer.captureLambdaHandler({ captureResponse: false }) as Decorator);
  const logged = decorate(traced, logger.injectLambdaContext({ resetKeys: true }) as Decorator);
  const handler: LambdaHandler<O> = (input, context) => logged(input, context ?? directContext());
  Object.defineProperty(handler, INSTRUMENTED, { value: true });
  return handler;
}

/**
 * The handler of a function several steps share (core/workflows.ts
 * SHARED_FUNCTIONS): the Task passes `"step": "<step name>"` beside the
 * input, and the step's own handler (each a lambdaHandler: its log context,
 * trace and ERROR line) gets the rest of the input. `steps` must be exactly
 * the steps the workflows declare for the function (checked when the module
 * loads, so a function missing a step fails its first cold start, not one
 * execution in a hundred); a `step` it does not know is a ConfigError naming
 * it, before any step runs.
 */
export function chainHandler(fn: string, declared: readonly string[], steps: Readonly<Record<string, LambdaHandler<unknown>>>): LambdaHandler<unknown> {
  const have = Object.keys(steps).sort();
  const want = [...declared].sort();
  if (have.join() !== want.join()) throw new ConfigError(`${fn} handles steps ${have.join(", ")} but its workflows declare ${want.join(", ")}`);
  for (const [name, h] of Object.entries(steps)) if (!isLambdaHandler(h)) throw new ConfigError(`${fn}: the handler of step ${name} is not a lambdaHandler`);
  const handler: LambdaHandler<unknown> = async (input, context) => {
    const { step, ...rest } = (typeof input === "object" && input !== null ? input : {}) as { step?: unknown };
    const run = typeof step === "string" && Object.hasOwn(steps, step) ? steps[step] : undefined;
    if (run === undefined) throw new ConfigError(`${fn} has no step ${JSON.stringify(step)} (its steps: ${have.join(", ")}): the Task state must pass "step" in its Parameters`);
    return run(rest, context);
  };
  Object.defineProperty(handler, INSTRUMENTED, { value: true });
  return handler;
}
