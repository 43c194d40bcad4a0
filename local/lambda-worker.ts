/**
 * One local Lambda sandbox (a worker thread started by local/lambda-pool.ts):
 * loads one handler module once, like a Lambda container, then runs one
 * invocation at a time and reports its output or error and the most memory
 * it held. The thread's V8 heap is capped at the step's memory
 * (resourceLimits, set by the pool); the memory this thread holds outside
 * the heap (Buffers of object bodies) is sampled here and counted too, since
 * Lambda counts everything the sandbox holds.
 */
import { getHeapStatistics } from "node:v8";
import { parentPort, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";

interface WorkerData {
  /** Absolute path of the built handler module (.js). */
  modulePath: string;
  handler: string;
  /** The step's memory (bytes): an invocation that holds more is reported as out of memory. */
  memoryBytes: number;
}

export interface InvokeMessage {
  id: number;
  input: unknown;
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

async function main(): Promise<void> {
  const data = workerData as WorkerData;
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
      .then(() => (fn as (input: unknown) => unknown)(msg.input))
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
