/**
 * The local stack's Lambda service: runs a workflow step's handler module
 * (core/workflows.ts) under the step's own timeout and memory, as AWS does,
 * and keeps, per step, the longest invocation and the most memory one held
 * (what `npm run bench:scale` reports against the limits).
 *
 * Two runtimes:
 * - "worker" (the default): each function gets sandboxes of its own (the
 *   steps of a shared function, core/workflows.ts SHARED_FUNCTIONS, share
 *   them, as in AWS), worker threads running the step's bundle (dist/bundles/, built as CDK bundles
 *   it for Lambda: core/workflows.ts HANDLER_BUNDLE), reused between invocations
 *   like warm Lambda containers, at most SANDBOXES_PER_FUNCTION at once
 *   (further invocations wait: Lambda's concurrency, scaled to one machine).
 *   A sandbox's V8 heap is capped at the step's memory; what it holds
 *   outside the heap (Buffers) is sampled every 10 ms and counted too
 *   (local/lambda-worker.ts). Over the limit, the invocation fails as Step
 *   Functions reports a Lambda that ran out of memory (`Lambda.Unknown`,
 *   "Runtime exited ... out of memory") and the sandbox is discarded. Past
 *   its timeout the invocation fails with `Sandbox.Timedout` and the sandbox
 *   is terminated: like AWS, the handler does not go on in the background.
 *   Each invocation gets a Lambda context object and the execution's trace
 *   header; what the handler writes goes to `onLog` line by line, each
 *   before its invocation's result (Lambda's log stream).
 * - "in-process": the handler runs in this process, raced against its
 *   timeout (a handler that loses the race keeps running); memory is not
 *   enforced. Only for tests that swap a handler's dependencies in this
 *   process (functions/deps.ts overrideDeps): a worker would not see them.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { ConfigError } from "../core/errors.js";
import { bundleOf, functionOf, type StepDefinition } from "../core/workflows.js";
import type { InvocationContext, InvokeMessage, LogMessage, ResultMessage, WorkerData } from "./lambda-worker.js";
import { delay, NO_LATENCY, type CloudLatency } from "./latency.js";
import { PACKAGE_ROOT } from "./paths.js";

export type LambdaRuntimeKind = "worker" | "in-process";

/** Sandboxes one function may run at once (a Map's MaxConcurrency is 4 or 5; more invocations wait for a free one). */
export const SANDBOXES_PER_FUNCTION = 4;

/** What the steps used, by ASL placeholder: the longest invocation and the most memory one held, against the limits. */
export interface StepUsage {
  invocations: number;
  /** Longest invocation (milliseconds, queueing for a sandbox excluded). */
  maxMs: number;
  /** All invocations together (milliseconds): what Lambda bills, with the memory. */
  totalMs: number;
  /** Most memory one invocation held (bytes; worker runtime only). */
  maxBytes: number;
  timeoutMs: number;
  memoryBytes: number;
  /** Sandboxes started for the step (worker runtime): each a cold start. */
  coldStarts?: number;
}

/**
 * How Step Functions reports a Lambda function that ran past its timeout:
 * `Sandbox.Timedout` (the error type Lambda returns for a timed-out
 * invocation on current runtimes; docs/decisions.md), cause "Task timed out
 * after N seconds".
 */
export class LambdaTimeoutError extends Error {
  constructor(state: string, ms: number) {
    super(`Task timed out after ${(ms / 1000).toFixed(2)} seconds (local ${state})`);
    this.name = "Sandbox.Timedout";
  }
}

/** How Step Functions reports a Lambda function that ran out of memory: an unhandled Lambda error, `Lambda.Unknown`. */
export class LambdaOutOfMemoryError extends Error {
  constructor(state: string, heldBytes: number | undefined, memoryMiB: number) {
    const held = heldBytes === undefined ? "its heap limit" : `${Math.ceil(heldBytes / 2 ** 20)} MiB`;
    super(`Runtime exited with error: out of memory: ${state} held ${held} of its ${memoryMiB} MiB (local ${state})`);
    this.name = "Lambda.Unknown";
  }
}

/** An error a handler threw in a sandbox, as Step Functions sees it: its name and message. */
class HandlerError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export interface LambdaRuntime {
  readonly kind: LambdaRuntimeKind;
  /**
   * Runs the step's handler on `input` within `timeoutMs`; `state` names the
   * Task state in messages; `traceRoot` is the execution's X-Ray trace root
   * (the handler's `_X_AMZN_TRACE_ID`, in the worker runtime).
   */
  invoke(step: StepDefinition, state: string, input: unknown, timeoutMs: number, traceRoot?: string): Promise<unknown>;
  /** Usage by placeholder, for the steps invoked so far. */
  readonly usage: ReadonlyMap<string, StepUsage>;
  /** Forgets the usage so far (a benchmark measures its phases apart). */
  resetUsage(): void;
  /** Terminates every sandbox. Idempotent. */
  stop(): Promise<void>;
}

type Handler = (input: unknown) => Promise<unknown>;

const newUsage = (step: StepDefinition, timeoutMs: number): StepUsage => ({ invocations: 0, maxMs: 0, totalMs: 0, maxBytes: 0, timeoutMs, memoryBytes: step.memoryMiB * 2 ** 20 });

function record(usage: Map<string, StepUsage>, step: StepDefinition, timeoutMs: number, ms: number, bytes: number | undefined): void {
  const u = usage.get(step.placeholder) ?? newUsage(step, timeoutMs);
  u.timeoutMs = timeoutMs;
  u.invocations++;
  u.totalMs += ms;
  u.maxMs = Math.max(u.maxMs, ms);
  if (bytes !== undefined) u.maxBytes = Math.max(u.maxBytes, bytes);
  usage.set(step.placeholder, u);
}

/** Handlers in this process, loaded from their source modules (tests that override dependencies). */
export function inProcessRuntime(): LambdaRuntime {
  const usage = new Map<string, StepUsage>();
  const loaded = new Map<string, Promise<Handler>>();
  const load = (step: StepDefinition): Promise<Handler> => {
    const key = `${step.module}#${step.handler}`;
    let p = loaded.get(key);
    if (!p) {
      p = importHandler(step);
      loaded.set(key, p);
    }
    return p;
  };
  return {
    kind: "in-process",
    usage,
    resetUsage: () => usage.clear(),
    async invoke(step, state, input, timeoutMs) {
      const handler = await load(step);
      const started = performance.now();
      const run = handler(input);
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new LambdaTimeoutError(state, timeoutMs)), timeoutMs);
        timer.unref();
      });
      run.catch(() => undefined); // a late failure of a handler that already timed out
      try {
        return await Promise.race([run, expired]);
      } finally {
        clearTimeout(timer);
        record(usage, step, timeoutMs, performance.now() - started, undefined);
      }
    },
    async stop() {},
  };
}

/**
 * A handler module by its path relative to the repository (from this
 * module's own place: the TS sources under vitest, whose resolver maps .js to
 * .ts, or dist/ once built), so that it is the same instance of
 * functions/deps.ts a test's overrideDeps reaches.
 */
async function importHandler(step: StepDefinition): Promise<Handler> {
  const specifier = `../${step.module}.js`;
  const mod = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
  const fn = mod[step.handler];
  if (typeof fn !== "function") throw new ConfigError(`${step.module} exports no function ${step.handler}`);
  return fn as Handler;
}

/**
 * The handlers' built copies, checked once per runtime: the sandbox (dist/)
 * and each step's bundle (dist/bundles/, core/workflows.ts bundleOf: what
 * CDK deploys, built by `npm run build`). One older than the sources would
 * run yesterday's handlers.
 */
function builtPaths(modulesRoot?: string): { worker: string; moduleOf(step: StepDefinition): string } {
  const dist = join(PACKAGE_ROOT, "dist");
  const worker = join(dist, "local", "lambda-worker.js");
  if (!existsSync(worker)) throw new ConfigError(`the local Lambda sandbox is not built (${worker}): run \`npm run build\``);
  let newest: { path: string; mtimeMs: number } | undefined;
  for (const dir of ["functions", "store", "core"]) {
    const newer = newestSource(join(PACKAGE_ROOT, dir));
    if (newer && (!newest || newer.mtimeMs > newest.mtimeMs)) newest = newer;
  }
  const olderThanSources = (path: string): boolean => newest !== undefined && newest.mtimeMs > statSync(path).mtimeMs + 1000;
  if (olderThanSources(worker)) throw new ConfigError(`dist/ is older than ${newest!.path}: run \`npm run build\` (the local stack runs the built handlers)`);
  return {
    worker,
    moduleOf(step) {
      const path = modulesRoot === undefined ? join(PACKAGE_ROOT, bundleOf(step)) : join(modulesRoot, `${step.module}.js`);
      if (!existsSync(path)) throw new ConfigError(`handler module ${step.module} is not built (${path}): run \`npm run build\``);
      if (modulesRoot === undefined && olderThanSources(path)) {
        throw new ConfigError(`${path} is older than ${newest!.path}: run \`npm run build\` (the local stack runs the bundled handlers)`);
      }
      return path;
    },
  };
}

function newestSource(dir: string): { path: string; mtimeMs: number } | undefined {
  if (!existsSync(dir)) return undefined; // running from an installed dist/ without sources
  let best: { path: string; mtimeMs: number } | undefined;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith(".ts")) continue;
    const path = join(e.parentPath, e.name);
    const mtimeMs = statSync(path).mtimeMs;
    if (!best || mtimeMs > best.mtimeMs) best = { path, mtimeMs };
  }
  return best;
}

interface Sandbox {
  worker: Worker;
  busy: boolean;
  /** When its last invocation ended (Date.now()): idle longer than latency.idleReclaimMs, it is reclaimed. */
  lastUsed: number;
}

/**
 * Handlers in worker-thread sandboxes under their memory and timeout (the
 * default). `modulesRoot`: where the handler modules are (default dist/; tests
 * point it at handlers of their own). `nice`: the sandboxes' threads run at
 * this nice value (Linux; LocalStackOptions.lambdaNice).
 */
export function workerRuntime(
  options: { modulesRoot?: string; onLog?: (line: string, step: StepDefinition) => void; latency?: Pick<CloudLatency, "coldStartMs" | "idleReclaimMs">; nice?: number } = {},
): LambdaRuntime {
  const latency = options.latency ?? NO_LATENCY;
  const nice = options.nice ?? 0;
  if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new ConfigError(`the Lambda sandboxes' nice value must be a whole number from 0 to 19, not ${nice}`);
  const paths = builtPaths(options.modulesRoot);
  const usage = new Map<string, StepUsage>();
  const pools = new Map<string, { sandboxes: Sandbox[]; waiting: Array<() => void> }>();
  let nextId = 0;
  let stopped = false;

  const spawn = async (step: StepDefinition): Promise<Worker> => {
    const u = usage.get(step.placeholder) ?? newUsage(step, step.timeoutSeconds * 1000);
    u.coldStarts = (u.coldStarts ?? 0) + 1;
    usage.set(step.placeholder, u);
    // Lambda provisioning the sandbox; loading the bundle below is the rest of the cold start, for real.
    await delay(latency.coldStartMs);
    const worker = new Worker(paths.worker, {
      workerData: { modulePath: paths.moduleOf(step), handler: step.handler, memoryBytes: step.memoryMiB * 2 ** 20, nice } satisfies WorkerData,
      // The handlers read the same variables as in Lambda, set by the local stack in this process before
      // the first invocation: a copy, as a Lambda function's environment is fixed when its sandbox starts,
      // and each sandbox sets its own invocation's _X_AMZN_TRACE_ID.
      env: { ...process.env },
      resourceLimits: { maxOldGenerationSizeMb: step.memoryMiB },
      stdout: false,
      stderr: false,
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { ready?: boolean; loadError?: { name: string; message: string } }): void => {
        if (!m.ready && !m.loadError) return; // a line the module wrote while loading
        cleanup();
        if (m.loadError) reject(new ConfigError(`${step.module}: ${m.loadError.message}`));
        else resolve();
      };
      const onError = (e: Error): void => {
        cleanup();
        reject(e);
      };
      const cleanup = (): void => {
        worker.off("message", onMessage);
        worker.off("error", onError);
      };
      worker.on("message", onMessage);
      worker.on("error", onError);
    });
    // Lambda's log stream: what the handler wrote, each line before its invocation's result (same port, listened to first).
    worker.on("message", (m: Partial<LogMessage>) => {
      if (typeof m.log === "string") options.onLog?.(m.log, step);
    });
    worker.unref();
    return worker;
  };

  // One pool per deployed function: the steps of a shared function (core/workflows.ts SHARED_FUNCTIONS) reuse each other's sandboxes.
  const pool = (step: StepDefinition) => {
    const key = functionOf(step).key;
    let p = pools.get(key);
    if (!p) {
      p = { sandboxes: [], waiting: [] };
      pools.set(key, p);
    }
    return p;
  };

  /** A free sandbox of the step's function: an idle one, a new one, or the next to be freed. */
  const acquire = async (step: StepDefinition): Promise<Sandbox> => {
    const p = pool(step);
    for (;;) {
      if (stopped) throw new ConfigError("the local stack is stopping");
      // Lambda reclaims sandboxes left idle: the next invocation is cold.
      const now = Date.now();
      for (const s of p.sandboxes.filter((x) => !x.busy && now - x.lastUsed >= latency.idleReclaimMs)) {
        p.sandboxes.splice(p.sandboxes.indexOf(s), 1);
        void s.worker.terminate();
      }
      const idle = p.sandboxes.find((s) => !s.busy);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      if (p.sandboxes.length < SANDBOXES_PER_FUNCTION) {
        const s: Sandbox = { worker: undefined as unknown as Worker, busy: true, lastUsed: Date.now() };
        p.sandboxes.push(s);
        try {
          s.worker = await spawn(step);
        } catch (e) {
          p.sandboxes.splice(p.sandboxes.indexOf(s), 1);
          p.waiting.shift()?.();
          throw e;
        }
        return s;
      }
      await new Promise<void>((r) => p.waiting.push(r));
    }
  };

  const release = (step: StepDefinition, s: Sandbox, discard: boolean): void => {
    const p = pool(step);
    if (discard) {
      p.sandboxes.splice(p.sandboxes.indexOf(s), 1);
      void s.worker.terminate();
    } else {
      s.busy = false;
      s.lastUsed = Date.now();
    }
    p.waiting.shift()?.();
  };

  return {
    kind: "worker",
    usage,
    resetUsage: () => usage.clear(),
    async invoke(step, state, input, timeoutMs, traceRoot) {
      const s = await acquire(step);
      const id = nextId++;
      const context: InvocationContext = {
        awsRequestId: randomUUID(),
        functionName: state,
        invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${state}`,
        memoryLimitInMB: String(step.memoryMiB),
        deadlineMs: Date.now() + timeoutMs,
        traceHeader: `Root=${traceRoot ?? newTraceRoot()};Parent=${randomBytes(8).toString("hex")};Sampled=0`,
      };
      const started = performance.now();
      let discard = false;
      let peak: number | undefined;
      try {
        return await new Promise<unknown>((resolve, reject) => {
          const timer = setTimeout(() => {
            discard = true;
            cleanup();
            reject(new LambdaTimeoutError(state, timeoutMs));
          }, timeoutMs);
          const onMessage = (m: ResultMessage | LogMessage): void => {
            if ("log" in m || m.id !== id) return;
            cleanup();
            peak = m.peakBytes;
            if (m.ok) resolve(m.output);
            else if (m.outOfMemory) {
              discard = true;
              reject(new LambdaOutOfMemoryError(state, m.peakBytes, step.memoryMiB));
            } else reject(new HandlerError(m.error.name, m.error.message));
          };
          const onError = (e: Error & { code?: string }): void => {
            discard = true;
            cleanup();
            reject(e.code === "ERR_WORKER_OUT_OF_MEMORY" ? new LambdaOutOfMemoryError(state, undefined, step.memoryMiB) : new HandlerError("Lambda.Unknown", `Runtime exited with error: ${e.message}`));
          };
          const onExit = (): void => {
            discard = true;
            cleanup();
            reject(new HandlerError("Lambda.Unknown", `Runtime exited without a result (local ${state})`));
          };
          const cleanup = (): void => {
            clearTimeout(timer);
            s.worker.off("message", onMessage);
            s.worker.off("error", onError);
            s.worker.off("exit", onExit);
            s.worker.unref();
          };
          s.worker.on("message", onMessage);
          s.worker.on("error", onError);
          s.worker.on("exit", onExit);
          s.worker.ref();
          s.worker.postMessage({ id, input, context } satisfies InvokeMessage);
        });
      } finally {
        record(usage, step, timeoutMs, performance.now() - started, peak);
        release(step, s, discard);
      }
    },
    async stop() {
      stopped = true;
      const all = [...pools.values()].flatMap((p) => {
        for (const w of p.waiting.splice(0)) w();
        return p.sandboxes.splice(0);
      });
      await Promise.allSettled(all.map((s) => s.worker?.terminate()));
    },
  };
}

/**
 * An X-Ray trace root as Step Functions gives each execution
 * (`1-<epoch seconds, 8 hex>-<24 hex>`): the local stack draws one per
 * execution, so the steps' log lines share a correlation id as in AWS.
 */
export function newTraceRoot(now = Date.now()): string {
  return `1-${Math.floor(now / 1000).toString(16).padStart(8, "0")}-${randomBytes(12).toString("hex")}`;
}

/**
 * `onLog`: each line the worker runtime's handlers write (the in-process
 * runtime's go to this process's stdout). `latency`: the worker runtime's
 * cold starts and idle reclaim (the in-process runtime has no sandboxes).
 * `nice`: the worker runtime's sandbox threads' nice value.
 */
export function lambdaRuntime(kind: LambdaRuntimeKind, onLog?: (line: string, step: StepDefinition) => void, latency?: CloudLatency, nice?: number): LambdaRuntime {
  return kind === "worker"
    ? workerRuntime({ ...(onLog === undefined ? {} : { onLog }), ...(latency === undefined ? {} : { latency }), ...(nice === undefined ? {} : { nice }) })
    : inProcessRuntime();
}

