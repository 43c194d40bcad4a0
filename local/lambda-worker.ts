/**
 * One local Lambda sandbox (a worker thread started by local/lambda-pool.ts):
 * loads one handler module once, like a Lambda container, then runs one
 * invocation at a time and reports its output or error and the most memory
 * it held. Each invocation gets a Lambda context object and, as Lambda's
 * runtime sets it, `_X_AMZN_TRACE_ID` (the execution's trace: the sandbox's
 * environment is its own copy). What the handler writes to stdout and stderr
 * goes to the pool as `log` messages on the same port as the result, so
 * every line of an invocation arrives before its result (Lambda's log
 * stream; the pool writes it to the stack's Lambda log and the EMF lines to
 * its metrics file). The thread's V8 heap is capped at the step's memory
 * (resourceLimits, set by the pool); the memory this thread holds outside
 * the heap (Buffers of object bodies) is sampled here and counted too, since
 * Lambda counts everything the sandbox holds.
 */
import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { getHeapStatistics } from "node:v8";
import { parentPort, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";

export interface WorkerData {
  /** Absolute path of the built handler module (.js). */
  modulePath: string;
  handler: string;
  /** The step's memory (bytes): an invocation that holds more is reported as out of memory. */
  memoryBytes: number;
  /** The nice value of this sandbox's thread (LocalStackOptions.lambdaNice); 0 leaves it as it is. */
  nice: number;
}

/**
 * This thread at nice `n`, or left nicer if it already is (raising a
 * priority needs privileges). Linux keeps a nice value per thread, and
 * setpriority(PRIO_PROCESS) given a thread id sets that thread's alone
 * (os.setPriority passes the id through); /proc/thread-self names it.
 * Where there is no /proc, the sandbox runs at the process's priority.
 */
function niceThisThread(n: number): void {
  let tid: number;
  try {
    tid = Number(readlinkSync("/proc/thread-self").split("/").at(-1));
  } catch {
    return;
  }
  if (n > getPriority(tid)) setPriority(tid, n);
}

/** What Lambda tells a handler about its invocation (the context object's fields, and the trace header). */
export interface InvocationContext {
  awsRequestId: string;
  functionName: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  /** Epoch ms at which the invocation times out. */
  deadlineMs: number;
  /** `Root=…;Parent=…;Sampled=0`: the execution's trace. */
  traceHeader: string;
}

export interface InvokeMessage {
  id: number;
  input: unknown;
  context: InvocationContext;
}

/** A line the handler wrote (stdout or stderr), before the invocation's result. */
export interface LogMessage {
  log: string;
}

export type ResultMessage =
  | { id: number; ok: true; output: unknown; peakBytes: number }
  | { id: number; ok: false; error: { name: string; message: string }; peakBytes: number; outOfMemory?: boolean };

/**
 * Memory this thread holds: its V8 heap and what its objects hold outside it
 * (Buffers included). From V8's heap statistics, ~1 µs: process.memoryUsage()
 * gives the same two figures but also reads the process's RSS from /proc,
 * which a profile of the bench's PromotePacks showed at 230 ms of one
 * invocation's CPU (sampled every 10 ms beside the handler).
 */
function held(): number {
  const s = getHeapStatistics();
  return s.used_heap_size + s.external_memory;
}

const SAMPLE_MS = 10;

/** The context object Lambda passes as a handler's second argument. */
function lambdaContext(c: InvocationContext): Record<string, unknown> {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: c.functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: c.invokedFunctionArn,
    memoryLimitInMB: c.memoryLimitInMB,
    awsRequestId: c.awsRequestId,
    logGroupName: `/aws/lambda/${c.functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, c.deadlineMs - Date.now()),
  };
}

/** Sends what the module writes to stdout and stderr to the pool, line by line. */
function captureOutput(port: NonNullable<typeof parentPort>): void {
  for (const stream of [process.stdout, process.stderr]) {
    let pending = "";
    stream.write = ((chunk: string | Uint8Array, encoding?: unknown, cb?: unknown): boolean => {
      pending += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        port.postMessage({ log: pending.slice(0, nl) } satisfies LogMessage);
        pending = pending.slice(nl + 1);
      }
      const done = typeof encoding === "function" ? encoding : cb;
      if (typeof done === "function") (done as () => void)();
      return true;
    }) as typeof stream.write;
  }
}

async function main(): Promise<void> {
  const data = workerData as WorkerData;
  if (data.nice !== 0) niceThisThread(data.nice);
  captureOutput(parentPort!);
  const mod = (await import(pathToFileURL(data.modulePath).href)) as Record<string, unknown>;
  const fn = mod[data.handler];
  if (typeof fn !== "function") throw new Error(`${data.modulePath} exports no function ${data.handler}`);
  const port = parentPort!;
  port.on("message", (msg: InvokeMessage) => {
    let peak = held();
    let over = false;
    const sample = (): void => {
      const now = held();
      if (now > peak) peak = now;
      if (now > data.memoryBytes) over = true;
    };
    const timer = setInterval(sample, SAMPLE_MS);
    Promise.resolve()
      .then(() => {
        process.env._X_AMZN_TRACE_ID = msg.context.traceHeader;
        process.env.AWS_LAMBDA_FUNCTION_NAME = msg.context.functionName;
        return (fn as (input: unknown, context: unknown) => unknown)(msg.input, lambdaContext(msg.context));
      })
      .then(
        (output) => {
          clearInterval(timer);
          sample();
          if (over) {
            port.postMessage({ id: msg.id, ok: false, outOfMemory: true, peakBytes: peak, error: { name: "Runtime.OutOfMemory", message: "" } } satisfies ResultMessage);
            return;
          }
          port.postMessage({ id: msg.id, ok: true, output, peakBytes: peak } satisfies ResultMessage);
        },
        (err: unknown) => {
          clearInterval(timer);
          sample();
          const e = err as { name?: unknown; message?: unknown };
          port.postMessage({
            id: msg.id,
            ok: false,
            ...(over ? { outOfMemory: true } : {}),
            peakBytes: peak,
            error: { name: typeof e?.name === "string" ? e.name : "Error", message: typeof e?.message === "string" ? e.message : String(err) },
          } satisfies ResultMessage);
        },
      );
  });
  port.postMessage({ ready: true });
}

main().catch((err: unknown) => {
  const e = err as { name?: string; message?: string };
  parentPort?.postMessage({ loadError: { name: e?.name ?? "Error", message: e?.message ?? String(err) } });
});
