/**
 * The local Lambda service (local/lambda-pool.ts) holds a step to its memory
 * and timeout the way AWS does: a handler that holds more than its memory
 * fails as an out-of-memory Lambda (Lambda.Unknown), one that runs past its
 * timeout fails with Sandbox.Timedout and does not go on, and what each step
 * used is kept against its limits.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../core/errors.js";
import type { StepDefinition } from "../../core/workflows.js";
import { inProcessRuntime, workerRuntime, type LambdaRuntime } from "../../local/lambda-pool.js";
import { rejection } from "../support/rejection.js";

let root: string;
let runtime: LambdaRuntime | undefined;

const MiB = 2 ** 20;

/** Handlers of this test, as plain ES modules a sandbox loads. */
const HANDLERS: Record<string, string> = {
  // Holds `mib` MiB of Buffers (outside the V8 heap) across an await, then returns their size.
  "buffers.js": `export async function handler({ mib }) {
    const held = [];
    for (let i = 0; i < mib; i++) held.push(Buffer.alloc(1024 * 1024, i));
    await new Promise((r) => setTimeout(r, 50));
    return { bytes: held.reduce((n, b) => n + b.length, 0) };
  }`,
  // Fills the V8 heap with objects until the isolate's limit stops it.
  "heap.js": `export async function handler() {
    const held = [];
    for (;;) held.push({ text: "x".repeat(64) + held.length, n: held.length });
  }`,
  // Never finishes; counts its invocations in a global so a reused sandbox would show it.
  "hang.js": `globalThis.calls = 0;
  export async function handler() { globalThis.calls++; return new Promise(() => {}); }
  export async function count() { return { calls: globalThis.calls }; }`,
  // Writes a line to each stream, with what Lambda gives it about its invocation, then returns.
  "context.js": `export async function handler(input, context) {
    console.log(JSON.stringify({ trace: process.env._X_AMZN_TRACE_ID, requestId: context.awsRequestId, fn: context.functionName, mb: context.memoryLimitInMB, left: context.getRemainingTimeInMillis() }));
    process.stderr.write("to stderr\\n");
    return { done: true };
  }`,
  // Counts the invocations its sandbox served, by the step each named.
  "shared.js": `globalThis.served = [];
  export async function handler({ step }) { globalThis.served.push(step); return { served: globalThis.served }; }`,
  // The nice value of the thread the handler runs on (field 19 of its stat), and of the process's main thread.
  "nice.js": `import { readFileSync } from "node:fs";
  const niceOf = (path) => Number(readFileSync(path, "utf8").split(") ")[1].split(" ")[16]);
  export async function handler() { return { sandbox: niceOf("/proc/thread-self/stat"), main: niceOf("/proc/" + process.pid + "/stat") }; }`,
  "fails.js": `export async function handler() {
    const e = new Error("chunk 1234 is corrupt");
    e.name = "ChecksumMismatchError";
    throw e;
  }`,
};

const step = (module: string, memoryMiB: number, handler = "handler"): StepDefinition => ({
  placeholder: `${module}-${handler}-${memoryMiB}`,
  module,
  handler,
  memoryMiB,
  timeoutSeconds: 60,
  description: "test",
});

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "walvault-lambda-"));
  for (const [file, code] of Object.entries(HANDLERS)) writeFileSync(join(root, file), code);
});

afterEach(async () => {
  await runtime?.stop();
  runtime = undefined;
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the worker runtime", () => {
  it("runs a handler within its memory and records what it held", async () => {
    // Prepare
    runtime = workerRuntime({ modulesRoot: root });
    const s = step("buffers", 256);

    // Act
    const out = await runtime.invoke(s, "Hold", { mib: 32 }, 30_000);

    // Assess
    expect(out).toEqual({ bytes: 32 * MiB });
    const used = runtime.usage.get(s.placeholder)!;
    expect(used.invocations).toBe(1);
    expect(used.maxBytes).toBeGreaterThanOrEqual(32 * MiB);
    expect(used.maxBytes).toBeLessThan(256 * MiB);
    expect(used.memoryBytes).toBe(256 * MiB);
  });

  it("gives each invocation a Lambda context and the execution's trace header, and delivers what it wrote before its result", async () => {
    // Prepare: the lines the sandbox writes, as the local stack's CloudWatch Logs takes them
    const logged: string[] = [];
    runtime = workerRuntime({ modulesRoot: root, onLog: (line) => logged.push(line) });
    const s = step("context", 128);
    const root1 = "1-675219a0-0123456789abcdef01234567";

    // Act: two invocations of one sandbox, in two executions
    await runtime.invoke(s, "Describe", {}, 30_000, root1);
    const linesOfFirst = logged.length;
    await runtime.invoke(s, "Describe", {}, 30_000);

    // Assess: both lines of the first invocation arrived before it returned
    expect(linesOfFirst).toBe(2);
    const [first, second] = logged.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { trace: string; requestId: string; fn: string; mb: string; left: number });
    expect(first!.trace).toMatch(new RegExp(`^Root=${root1};Parent=[0-9a-f]{16};Sampled=0$`));
    expect(first).toMatchObject({ fn: "Describe", mb: "128" });
    expect(first!.left).toBeGreaterThan(20_000);
    expect(first!.left).toBeLessThanOrEqual(30_000);
    expect(logged).toContain("to stderr");
    // A new execution, a new trace; each invocation its own request id
    expect(second!.trace).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};/);
    expect(second!.trace).not.toContain(root1);
    expect(second!.requestId).not.toBe(first!.requestId);
  });

  it("runs the sandboxes' threads at the nice value it is given, and leaves the rest of the process as it was", async () => {
    // Prepare
    const before = getPriority();
    runtime = workerRuntime({ modulesRoot: root, nice: 7 });

    // Act
    const out = (await runtime.invoke(step("nice", 128), "Nice", {}, 30_000)) as { sandbox: number; main: number };

    // Assess
    expect(out).toEqual({ sandbox: Math.max(before, 7), main: before });
    expect(getPriority()).toBe(before);
  });

  it("refuses a nice value outside 0 to 19, naming it", () => {
    for (const nice of [-1, 20, 2.5]) expect(() => workerRuntime({ modulesRoot: root, nice })).toThrow(new ConfigError(`the Lambda sandboxes' nice value must be a whole number from 0 to 19, not ${nice}`));
  });

  it("fails a handler that holds Buffers past its memory as an out-of-memory Lambda, naming the step and the limit", async () => {
    // Prepare
    runtime = workerRuntime({ modulesRoot: root });
    const s = step("buffers", 64);

    // Act
    const err = await rejection(runtime.invoke(s, "Hold", { mib: 96 }, 30_000));

    // Assess
    expect(err.name).toBe("Lambda.Unknown");
    expect(err.message).toMatch(/out of memory: Hold held \d+ MiB of its 64 MiB/);
    expect(runtime.usage.get(s.placeholder)!.maxBytes).toBeGreaterThan(64 * MiB);
  });

  it("fails a handler that fills its V8 heap past its memory as an out-of-memory Lambda", async () => {
    // Prepare
    runtime = workerRuntime({ modulesRoot: root });

    // Act
    const err = await rejection(runtime.invoke(step("heap", 64), "Fill", {}, 60_000));

    // Assess
    expect(err.name).toBe("Lambda.Unknown");
    expect(err.message).toContain("out of memory");
  });

  it("fails a handler past its timeout with Sandbox.Timedout and does not reuse its sandbox", async () => {
    // Prepare
    runtime = workerRuntime({ modulesRoot: root });
    const hang = step("hang", 128);

    // Act
    const err = await rejection(runtime.invoke(hang, "Hang", {}, 200));
    const after = await runtime.invoke(step("hang", 128, "count"), "Count", {}, 30_000);

    // Assess: a fresh sandbox of the same module has seen no call
    expect(err.name).toBe("Sandbox.Timedout");
    expect(err.message).toContain("Task timed out after 0.20 seconds");
    expect(after).toEqual({ calls: 0 });
  });

  it("reports a handler's error by its name and message, as Step Functions matches it", async () => {
    // Prepare
    runtime = workerRuntime({ modulesRoot: root });

    // Act
    const err = await rejection(runtime.invoke(step("fails", 128), "Validate", {}, 30_000));

    // Assess
    expect(err.name).toBe("ChecksumMismatchError");
    expect(err.message).toBe("chunk 1234 is corrupt");
  });

  it("reuses a warm sandbox between invocations, like a Lambda container", async () => {
    // Prepare
    runtime = workerRuntime({ modulesRoot: root });
    const s = step("buffers", 256);

    // Act
    for (let i = 0; i < 3; i++) await runtime.invoke(s, "Hold", { mib: 1 }, 30_000);
    const counted = await runtime.invoke(step("hang", 128, "count"), "Count", {}, 30_000);

    // Assess
    expect(runtime.usage.get(s.placeholder)!.invocations).toBe(3);
    expect(counted).toEqual({ calls: 0 });
  });
  it("runs the steps of one shared function in one warm sandbox: the chain meets one cold start, not one per step", async () => {
    // Prepare: two steps of a shared function (core/workflows.ts SHARED_FUNCTIONS), as the chain runs them
    runtime = workerRuntime({ modulesRoot: root });
    const first: StepDefinition = { ...step("shared", 256), placeholder: "FirstFunctionArn", fn: "SnapshotIngestChain" };
    const second: StepDefinition = { ...step("shared", 256), placeholder: "SecondFunctionArn", fn: "SnapshotIngestChain" };

    // Act
    await runtime.invoke(first, "First", { step: "first" }, 30_000);
    const out = await runtime.invoke(second, "Second", { step: "second" }, 30_000);

    // Assess: the second step ran in the sandbox the first started, and each step's usage is its own
    expect(out).toEqual({ served: ["first", "second"] });
    expect(runtime.usage.get("FirstFunctionArn")).toMatchObject({ invocations: 1, coldStarts: 1 });
    expect(runtime.usage.get("SecondFunctionArn")).toMatchObject({ invocations: 1 });
    expect(runtime.usage.get("SecondFunctionArn")!.coldStarts ?? 0).toBe(0);
  });
});

describe("the in-process runtime", () => {
  it("runs the repository's own handler modules in this process and reports their errors by name", async () => {
    // Prepare
    runtime = inProcessRuntime();
    const s: StepDefinition = { ...step("functions/ingest/validate", 1024), placeholder: "ValidateFunctionArn" };

    // Act: an event the handler refuses at once
    const err = await rejection(runtime.invoke(s, "Validate", { not: "an event" }, 30_000));

    // Assess
    expect(err.name).toBe("InvalidInputError");
    expect(runtime.usage.get("ValidateFunctionArn")!.invocations).toBe(1);
  });
});
