/**
 * What the agent's worker-thread pools share (agent/decode-pool.ts for
 * restore, agent/encode-pool.ts for push): where the compiled worker is, the
 * environment variable that sets how many run, and the calls by id that
 * they answer (WorkerCalls).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker, type Transferable, type WorkerOptions } from "node:worker_threads";

/**
 * The compiled worker `file` next to the module at `moduleUrl` (the pool's
 * import.meta.url), when there is one: not when the pool runs from the
 * TypeScript sources (tests), where the caller works on its own thread.
 */
export function compiledWorkerBeside(moduleUrl: string, file: string): string | undefined {
  if (!moduleUrl.endsWith(".js")) return undefined;
  const path = fileURLToPath(new URL(`./${file}`, moduleUrl));
  return existsSync(path) ? path : undefined;
}

/** The whole number in environment variable `name` (0: no worker), or undefined when it is unset or anything else. */
export function threadsFromEnv(name: string): number | undefined {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

interface Slot {
  worker: Worker;
  /** The worker's uncaught error, kept until it has exited (see the constructor). */
  error?: Error;
  pending: number;
  /** Requests not yet sent (`batch`). */
  outbox: unknown[];
}

/**
 * Worker threads that answer requests by id: each call goes to the worker
 * with the fewest pending and resolves with `settle` of its reply (an Error
 * from `settle` rejects it). A worker may answer several requests in one
 * message (an array of replies). A worker's error (once it has exited) or
 * non-zero exit fails every pending call and every later one with that
 * error; so does close().
 */
export class WorkerCalls<Reply extends { id: number }, Result> {
  private readonly workers: Slot[] = [];
  private readonly calls = new Map<number, { resolve: (r: Result) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(
    file: string | URL,
    threads: number,
    private readonly o: {
      /** For messages: "a decode worker", "a push encode worker". */
      name: string;
      options: WorkerOptions;
      settle: (reply: Reply) => Result | Error;
      /**
       * Send the requests made in one turn of the event loop to each worker
       * as one message, the one this makes of them (its worker must take
       * it): for many small requests, one message each costs more than the
       * work. Without it, each call is a message of its own.
       */
      batch?: (requests: unknown[]) => { message: unknown; transfer: Transferable[] };
    },
  ) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(file, o.options);
      const slot: Slot = { worker, pending: 0, outbox: [] };
      worker.on("message", (m: Reply | Reply[]) => {
        for (const reply of Array.isArray(m) ? m : [m]) {
          slot.pending--;
          const call = this.calls.get(reply.id);
          this.calls.delete(reply.id);
          if (!call) continue;
          const out = o.settle(reply);
          if (out instanceof Error) call.reject(out);
          else call.resolve(out);
        }
      });
      // A worker's uncaught error fails the calls only once it has exited: Node
      // lets a dying worker's requests on libuv's pool (a decode worker's
      // writes into the restore's files) finish first, and the callers close
      // those files as soon as their calls fail.
      worker.on("error", (e) => {
        slot.error ??= e;
      });
      worker.on("exit", (code) => {
        if (slot.error !== undefined) this.fail(slot.error);
        else if (code !== 0) this.fail(new Error(`${o.name} exited with code ${code}`));
      });
      this.workers.push(slot);
    }
  }

  get threads(): number {
    return this.workers.length;
  }

  /** The first failure (a worker's error or exit, or close()), if any: every call since rejects with it. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** The worker with the fewest requests pending. */
  private leastBusy(): Slot {
    let slot = this.workers[0]!;
    for (const w of this.workers) if (w.pending < slot.pending) slot = w;
    return slot;
  }

  /** Requests pending on the least busy worker. */
  get leastPending(): number {
    return this.leastBusy().pending;
  }

  /**
   * Sends the request `make(id)` to the least busy worker (with `affinity`, a
   * whole number: always the same worker for the same value), transferring
   * `transfer` (with `batch`: what it makes of the turn's requests); rejects
   * at once after a failure.
   */
  call(make: (id: number) => unknown, transfer: Transferable[], affinity?: number): Promise<Result> {
    if (this.failure) return Promise.reject(this.failure);
    const slot = affinity === undefined ? this.leastBusy() : this.workers[affinity % this.workers.length]!;
    const id = this.nextId++;
    slot.pending++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      if (this.o.batch === undefined) {
        slot.worker.postMessage(make(id), transfer);
        return;
      }
      if (slot.outbox.length === 0) setImmediate(() => this.flush(slot));
      slot.outbox.push(make(id));
    });
  }

  private flush(slot: Slot): void {
    const batch = slot.outbox;
    slot.outbox = [];
    if (this.failure !== undefined || this.o.batch === undefined) return;
    const made = this.o.batch(batch);
    slot.worker.postMessage(made.message, made.transfer);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const call of this.calls.values()) call.reject(e);
    this.calls.clear();
  }

  /** Stops the workers; pending and later calls reject with `Error(closed)`. */
  async close(closed: string): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.fail(new Error(closed));
  }
}
