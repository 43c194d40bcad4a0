/**
 * agent/worker-threads.ts WorkerCalls, the calls by id that the restore's
 * decode pool and the push's encode pool share: replies settle their own
 * call whatever their order or grouping, a reply the caller turns into an
 * Error rejects only its call, and a worker that dies fails what is pending
 * and everything after.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerCalls } from "../../agent/worker-threads.js";

/**
 * A worker that answers {id, n}: n < 0 dies; n = 0 replies with an error; n >= 1000 never replies; else n * 2, the
 * replies of one turn together and in reverse. {path}: starts writing 64 MiB to that file on libuv's pool and throws.
 */
const WORKER = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
let queued = [];
parentPort.on("message", (m) => {
  if (m.path !== undefined) {
    const fd = fs.openSync(m.path, "w");
    fs.write(fd, Buffer.alloc(64 * 1024 * 1024, 1), () => undefined);
    throw new Error("worker failed while writing");
  }
  if (m.n < 0) process.exit(3);
  if (m.n >= 1000) return;
  queued.push(m.n === 0 ? { id: m.id, error: "zero" } : { id: m.id, value: m.n * 2 });
  if (queued.length === 1) setImmediate(() => { parentPort.postMessage(queued.reverse()); queued = []; });
});`;

type Reply = { id: number; value: number } | { id: number; error: string };

function calls(threads = 2): WorkerCalls<Reply, number> {
  return new WorkerCalls<Reply, number>(WORKER, threads, { name: "a test worker", options: { eval: true }, settle: (r) => ("error" in r ? new Error(r.error) : r.value) });
}

describe("WorkerCalls", () => {
  it("fails the calls of a worker that threw only once it has exited, after its writes in flight have finished", async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), "worker-calls-"));
    const path = join(dir, "f");
    const w = calls(1);
    try {
      // Act
      const failed = await w.call((id) => ({ id, path }), []).catch((e: unknown) => e);
      // Assess: the worker's error, and the whole write on disk by then
      expect((failed as Error).message).toBe("worker failed while writing");
      expect(statSync(path).size).toBe(64 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("settles each call with its own reply, replies grouped and out of order, spread over the workers", async () => {
    // Prepare
    const w = calls(2);
    // Act
    const sent = [1, 2, 3, 4, 5, 6].map((n) => w.call((id) => ({ id, n }), []));
    const pendingWhileSent = w.leastPending;
    const results = await Promise.all(sent);
    // Assess
    expect(results).toEqual([2, 4, 6, 8, 10, 12]);
    expect(pendingWhileSent).toBe(3);
    expect(w.leastPending).toBe(0);
    await w.close("closed");
  });

  it("rejects only the call whose reply settles as an Error", async () => {
    const w = calls(1);
    const [bad, good] = await Promise.allSettled([w.call((id) => ({ id, n: 0 }), []), w.call((id) => ({ id, n: 7 }), [])]);
    expect(bad).toMatchObject({ status: "rejected", reason: { message: "zero" } });
    expect(good).toEqual({ status: "fulfilled", value: 14 });
    expect(w.failed).toBeUndefined();
    await w.close("closed");
  });

  it("fails every pending call and every later one when a worker exits, naming it and the code; close() fails later calls with its message", async () => {
    // Prepare
    const w = calls(1);
    const pending = w.call((id) => ({ id, n: 1000 }), []);
    // Act
    const died = w.call((id) => ({ id, n: -1 }), []);
    // Assess
    await expect(died).rejects.toThrow("a test worker exited with code 3");
    await expect(pending).rejects.toThrow("a test worker exited with code 3");
    await expect(w.call((id) => ({ id, n: 1 }), [])).rejects.toThrow("a test worker exited with code 3");
    const c = calls(1);
    await c.close("the test pool is closed");
    await expect(c.call((id) => ({ id, n: 1 }), [])).rejects.toThrow("the test pool is closed");
  });
});
