/**
 * functions/observability.ts: every step's handler reports through
 * Powertools (Logger, Metrics, Tracer). The tracing test runs the bundles
 * CDK deploys (dist/bundles/, `npm run build`) in a child process set up as
 * Lambda sets one up (AWS_EXECUTION_ENV, LAMBDA_TASK_ROOT, a sampled trace
 * header), with the X-Ray daemon's address pointing at a UDP socket here, and
 * the stores' endpoints at a closed port: each SDK call fails fast, and still
 * is a subsegment.
 */
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ARCHIVE_NAMESPACE } from "../../core/metrics.js";
import { ConfigError } from "../../core/errors.js";
import { bundleOf, STEPS_BY_PLACEHOLDER } from "../../core/workflows.js";
import { chainHandler, emitMetric, isLambdaHandler, lambdaHandler, traceRoot, tracingPossible } from "../../functions/observability.js";
import { PACKAGE_ROOT } from "../../local/paths.js";
import { emfRecords, outputLinesOf } from "../support/output-lines.js";

const TRACE_ROOT = "1-675219a0-0123456789abcdef01234567";
const context = (requestId: string) => ({
  callbackWaitsForEmptyEventLoop: false,
  functionName: "MeasureRpo",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:MeasureRpo",
  memoryLimitInMB: "256",
  awsRequestId: requestId,
  logGroupName: "/aws/lambda/MeasureRpo",
  logStreamName: "s",
  getRemainingTimeInMillis: () => 60_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
});

type LogLine = Record<string, unknown> & { level: string; message: string; error?: { name: string; message: string } };
const logLines = (lines: readonly string[]): LogLine[] => lines.filter((l) => l.startsWith('{"level"')).map((l) => JSON.parse(l) as LogLine);

describe("every workflow step", () => {
  it("exports a handler made by lambdaHandler, so it logs, traces and publishes metrics through Powertools", async () => {
    // Prepare: every step core/workflows.ts declares (what CDK deploys and the local stack runs)
    const steps = [...STEPS_BY_PLACEHOLDER.values()];
    expect(steps.length).toBeGreaterThan(20);

    // Act
    const bare: string[] = [];
    for (const s of steps) {
      const mod = (await import(/* @vite-ignore */ join(PACKAGE_ROOT, `${s.module}.ts`))) as Record<string, unknown>;
      if (!isLambdaHandler(mod[s.handler])) bare.push(`${s.module}#${s.handler}`);
    }

    // Assess
    expect(bare).toEqual([]);
  });
});

describe("lambdaHandler", () => {
  const saved = process.env._X_AMZN_TRACE_ID;
  afterEach(() => {
    if (saved === undefined) delete process.env._X_AMZN_TRACE_ID;
    else process.env._X_AMZN_TRACE_ID = saved;
  });

  it("logs a failure as one structured ERROR line with the invocation's context and the execution's trace as correlation id, and fails the step", async () => {
    // Prepare: a step that fails, invoked in an execution's trace
    process.env._X_AMZN_TRACE_ID = `Root=${TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=0`;
    const failing = lambdaHandler(async () => {
      throw new RangeError("segment 000000010000000000000007 is 3 bytes short");
    });

    // Act
    let thrown: unknown;
    const lines = logLines(await outputLinesOf(() => failing({}, context("req-1")).catch((e: unknown) => (thrown = e))));

    // Assess: the error still fails the step (Retry/Catch see it), and one line says which and where
    expect(thrown).toBeInstanceOf(RangeError);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "ERROR",
      message: "MeasureRpo failed",
      service: "walvault",
      function_name: "MeasureRpo",
      function_request_id: "req-1",
      correlation_id: TRACE_ROOT,
      error: { name: "RangeError", message: "segment 000000010000000000000007 is 3 bytes short" },
    });
  });

  it("writes nothing for a step that succeeds, and does not carry one invocation's correlation id into the next", async () => {
    // Prepare: two invocations, the first in a trace, the second in none
    let calls = 0;
    const step = lambdaHandler(async () => {
      calls++;
      if (calls === 2) throw new Error("second");
      return { ok: true };
    });

    // Act
    process.env._X_AMZN_TRACE_ID = `Root=${TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=0`;
    const first = await outputLinesOf(async () => expect(await step({}, context("req-1"))).toEqual({ ok: true }));
    delete process.env._X_AMZN_TRACE_ID;
    const second = logLines(await outputLinesOf(() => step({}, context("req-2")).catch(() => undefined)));

    // Assess
    expect(first).toEqual([]);
    expect(second).toHaveLength(1);
    expect(second[0]!.function_request_id).toBe("req-2");
    expect(second[0]).not.toHaveProperty("correlation_id");
  });

  it("reads the trace root out of Lambda's trace header", () => {
    expect(traceRoot(`Root=${TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1`)).toBe(TRACE_ROOT);
    expect(traceRoot("Parent=53995c3f42cd8ad8")).toBeUndefined();
    expect(traceRoot(undefined)).toBeUndefined();
  });
});

describe("emitMetric", () => {
  it("publishes one EMF line per record with exactly its dimensions, its metric values and the rest as metadata", async () => {
    // Act: two databases' readings, as rpo-watch emits them
    const lines = emfRecords(
      await outputLinesOf(async () => {
        for (const [id, lag] of [["pg-a", 12], ["pg-b", 900]] as const) {
          emitMetric({
            namespace: ARCHIVE_NAMESPACE,
            dimensions: ["DatabaseId"],
            metrics: [
              { name: "ArchiveLagSeconds", unit: "Seconds" },
              { name: "RpoBreached", unit: "Count" },
            ],
            values: { DatabaseId: id, ArchiveLagSeconds: lag, RpoBreached: lag > 300 ? 1 : 0, LastWal: "000000010000000000000007" },
          });
        }
      }),
    );

    // Assess: each database its own line and dimension value; no `service` dimension the alarms do not name
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ DatabaseId: "pg-b", ArchiveLagSeconds: 900, RpoBreached: 1, LastWal: "000000010000000000000007" });
    expect(lines[1]!._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: ARCHIVE_NAMESPACE,
        Dimensions: [["DatabaseId"]],
        Metrics: [
          { Name: "ArchiveLagSeconds", Unit: "Seconds" },
          { Name: "RpoBreached", Unit: "Count" },
        ],
      },
    ]);
    expect(lines[0]).toMatchObject({ DatabaseId: "pg-a", ArchiveLagSeconds: 12, RpoBreached: 0 });
    expect(lines[0]).not.toHaveProperty("service");
  });
});

interface Segment {
  name: string;
  namespace?: string;
  fault?: boolean;
  aws?: { operation?: string };
  annotations?: Record<string, unknown>;
}

/** Runs `script` (ESM) in a child set up as a traced Lambda sandbox; returns the segments the X-Ray daemon got and the lines the child wrote. */
async function inTracedSandbox(script: string): Promise<{ segments: Segment[]; output: string[] }> {
  const daemon = createSocket("udp4");
  const segments: Segment[] = [];
  daemon.on("message", (m) => {
    // Each datagram: the header line, then one segment document.
    const [, body] = m.toString("utf8").split("\n");
    if (body) segments.push(JSON.parse(body) as Segment);
  });
  await new Promise<void>((r) => daemon.bind(0, "127.0.0.1", r));
  try {
    const closed = "http://127.0.0.1:1";
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: {
        PATH: process.env.PATH,
        AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
        LAMBDA_TASK_ROOT: PACKAGE_ROOT,
        _HANDLER: "index.handler",
        AWS_XRAY_DAEMON_ADDRESS: `127.0.0.1:${daemon.address().port}`,
        _X_AMZN_TRACE_ID: `Root=${TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1`,
        ...BUNDLE_ENV,
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        WALVAULT_S3_ENDPOINT: closed,
        WALVAULT_DYNAMODB_ENDPOINT: closed,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Lambda keeps both streams in the function's log.
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (out += d.toString("utf8")));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    expect(code).toBe(0);
    // The last datagrams may still be in the socket's queue.
    await new Promise((r) => setTimeout(r, 200));
    return { segments, output: out.split("\n").filter((l) => l.length > 0) };
  } finally {
    daemon.close();
  }
}

describe("tracingPossible", () => {
  it("is true only in a Lambda execution environment that does not switch tracing off, as Powertools decides", () => {
    const lambda = { AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x" };
    expect(tracingPossible(lambda)).toBe(true);
    expect(tracingPossible({ ...lambda, POWERTOOLS_TRACE_ENABLED: "true" })).toBe(true);
    expect(tracingPossible({})).toBe(false);
    expect(tracingPossible({ ...lambda, POWERTOOLS_TRACE_ENABLED: "FALSE" })).toBe(false);
    expect(tracingPossible({ ...lambda, AWS_SAM_LOCAL: "true" })).toBe(false);
    expect(tracingPossible({ AWS_EXECUTION_ENV: "AWS_Lambda_amplify-mock" })).toBe(false);
  });
});

/** What every handler bundle reads from its environment when it loads (the stores' names and region). */
const BUNDLE_ENV = {
  AWS_REGION: "us-east-1",
  WALVAULT_INCOMING_BUCKET: "walvault-incoming",
  WALVAULT_VAULT_BUCKET: "walvault-vault",
  WALVAULT_TABLE: "walvault-catalog",
};

/** The cls-hooked namespaces (the X-Ray SDK's is AWSXRay) in a child that imported the deployed PromotePacks bundle with `env`. */
async function namespacesAfterImport(env: Record<string, string>): Promise<string[]> {
  const bundle = join(PACKAGE_ROOT, bundleOf({ module: "functions/snapshot/promote-packs" }));
  const script = `await import(${JSON.stringify(bundle)}); console.log(JSON.stringify(Object.keys(process.namespaces ?? {})));`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    env: { PATH: process.env.PATH, ...BUNDLE_ENV, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
  expect(await new Promise<number | null>((r) => child.on("exit", r))).toBe(0);
  return JSON.parse(out.trim().split("\n").at(-1)!) as string[];
}

describe("the deployed bundles, untraced", () => {
  it("load no X-Ray SDK outside Lambda or with tracing off (no async hook on every promise), and do in a Lambda sandbox", async () => {
    // Act
    const local = await namespacesAfterImport({});
    const off = await namespacesAfterImport({ AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x", POWERTOOLS_TRACE_ENABLED: "false" });
    const lambda = await namespacesAfterImport({ AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x" });

    // Assess
    expect(local).toEqual([]);
    expect(off).toEqual([]);
    expect(lambda).toEqual(["AWSXRay"]);
  });
});

describe("the deployed bundles, traced as in Lambda", () => {
  it("record each S3 and DynamoDB call and the handler itself as subsegments of the execution's trace, and log the failure with it", async () => {
    // Prepare: two steps whose first call is DynamoDB (rpo-watch's page of the registry) and S3 (Quarantine's read of the upload)
    const measure = join(PACKAGE_ROOT, bundleOf({ module: "functions/rpo/measure" }));
    const quarantine = join(PACKAGE_ROOT, bundleOf({ module: "functions/ingest/quarantine" }));
    const ctx = JSON.stringify(context("req-7"));
    const script = `
      const ctx = { ...${ctx}, getRemainingTimeInMillis: () => 60000 };
      const measure = await import(${JSON.stringify(measure)});
      const quarantine = await import(${JSON.stringify(quarantine)});
      await measure.handler({}, ctx).catch(() => undefined);
      const event = { state: { error: { Error: "ChecksumMismatchError", Cause: "sha256 differs" }, detail: { bucket: { name: "walvault-incoming" }, object: { key: "incoming/db/pg-main/wal/000000010000000000000007" } } } };
      await quarantine.handler(event, { ...ctx, functionName: "Quarantine" }).catch(() => undefined);
    `;

    // Act
    const { segments, output } = await inTracedSandbox(script);

    // Assess: the SDK calls, captured (they failed: nothing listens there)
    const calls = segments.filter((s) => s.namespace === "aws").map((s) => `${s.name} ${s.aws?.operation}`);
    expect(calls).toEqual(expect.arrayContaining(["DynamoDB Query", "S3 GetObject"]));
    // The handlers, each its own subsegment, annotated with the service, failed as the step did
    const handlers = segments.filter((s) => s.name === "## index.handler");
    expect(handlers).toHaveLength(2);
    expect(handlers.every((h) => h.fault === true && h.annotations?.Service === "walvault")).toBe(true);
    // The logs: each failure once, with the trace's root as correlation id
    const errors = logLines(output).filter((l) => l.level === "ERROR");
    expect(errors.map((e) => e.message)).toEqual(["MeasureRpo failed", "Quarantine failed"]);
    expect(errors.every((e) => e.correlation_id === TRACE_ROOT && e.xray_trace_id === TRACE_ROOT)).toBe(true);
    expect(errors[0]!.error!.name).toBe("ServiceUnavailableError");
  });
});

describe("chainHandler", () => {
  const echo = (name: string) => lambdaHandler(async (input: unknown) => ({ ran: name, input }));

  it("runs the step the Task names with the rest of its input, and refuses a step it does not have before running any", async () => {
    // Prepare
    const chain = chainHandler("Chain", ["first", "second"], { first: echo("first"), second: echo("second") });

    // Act
    const second = await chain({ step: "second", snapshot: { id: "s1" } }, context("req-1"));
    const unknown = await chain({ step: "third", snapshot: {} }, context("req-2")).catch((e: unknown) => e);
    const missing = await chain({ snapshot: {} }, context("req-3")).catch((e: unknown) => e);

    // Assess
    expect(isLambdaHandler(chain)).toBe(true);
    expect(second).toEqual({ ran: "second", input: { snapshot: { id: "s1" } } });
    expect(unknown).toBeInstanceOf(ConfigError);
    expect((unknown as Error).message).toContain('Chain has no step "third" (its steps: first, second)');
    expect(missing).toBeInstanceOf(ConfigError);
  });

  it("refuses, when its module loads, a set of steps other than the workflows declare", () => {
    // Act
    const built = () => chainHandler("Chain", ["first", "second"], { first: echo("first") });

    // Assess
    expect(built).toThrow(/Chain handles steps first but its workflows declare first, second/);
  });
});
