/**
 * Transient faults in the ingest workflow are not bad uploads (issue #10,
 * point 3): on the local stack, which enforces Lambda timeouts and injects
 * faults (LocalStackOptions.injectFault), a Promote that times out on every
 * attempt ends the execution without a quarantine record; `walvault
 * wal-push` exits 4 naming the failure; pushing the same file again archives
 * it. A step that did its work and then timed out loses nothing either.
 * Needs `npm run build` (the CLI runs from dist/).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { IngestRetryableError } from "../../core/errors.js";
import { failedMarkerKey, incomingWalKey } from "../../core/keys.js";
import { snapshotPush } from "../../agent/snapshot-push.js";
import { Watcher } from "../../agent/watch.js";
import { compileWatchConfig } from "../../core/generic-wal.js";
import type { FaultContext, InjectedFault } from "../../local/stack.js";
import { listKeys, stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
const GEN = "gen-faults";
/**
 * The Lambda timeout of Promote, Record and ValidateManifest in this file: an
 * injected "timeout" fault waits this long. It applies to every real
 * invocation of those states too, so it must stay far above what a real one
 * takes on a loaded machine: at 300 ms, a real Promote of a 16 MiB segment at
 * load 12 timed out twice and the execution never reached the Record under
 * test (a CI run failed so).
 */
const PROMOTE_TIMEOUT_MS = 5_000;

let stack: TestStack;
let clients: StackClients;
let dir: string;
/** The fault each test arms: (invocation) → fault, for the segment under test only. */
let fault: (ctx: FaultContext & { name: string }) => InjectedFault = () => undefined;
const invocations: { state: string; name: string; attempt: number }[] = [];

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }, { id: GEN, kind: "generic" }], {
    lambdaTimeoutMs: { Promote: PROMOTE_TIMEOUT_MS, Record: PROMOTE_TIMEOUT_MS, ValidateManifest: PROMOTE_TIMEOUT_MS },
    // Timeouts of 300 ms are this test's faults: a cold sandbox's first invocation could pass one by itself under load.
    lambdaRuntime: "in-process",
    injectFault: (ctx) => {
      // Validate's input is { event }, the later steps' { ingest, ... }.
      const input = ctx.input as { ingest?: { name?: string }; event?: { detail?: { object?: { key?: string } } } };
      const name = input.ingest?.name ?? input.event?.detail?.object?.key?.split("/").at(-1) ?? "";
      invocations.push({ state: ctx.state, name, attempt: ctx.attempt });
      return fault({ ...ctx, name });
    },
  });
  clients = stackClients(stack);
  dir = mkdtempSync(join(tmpdir(), "walvault-faults-"));
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  fault = () => undefined;
  invocations.length = 0;
});

const seg = (n: number): string => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;

function writeSegment(name: string, seed: number): { path: string; bytes: Buffer } {
  const bytes = syntheticSegment(name, seed);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, bytes };
}

async function push(path: string): Promise<{ code: number; stderr: string }> {
  // The incoming/ path, whose ingest steps this file puts faults into (whatever the default path is).
  const r = await stack.cli(["wal-push", path, "--database", DB, "--no-agent", "--timeout", "30"], { cwd: dir, env: { WALVAULT_WAL_DIRECT: "0" } });
  await stack.idle();
  return r;
}

async function fetched(name: string): Promise<Buffer> {
  const out = join(dir, `fetched-${name}`);
  const r = await stack.cli(["wal-fetch", name, out, "--database", DB], { cwd: dir });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return readFileSync(out);
}

describe("ingest under transient faults", () => {
  it("a Promote that times out on every attempt quarantines nothing; wal-push exits 4 naming it; the next push archives the file", async () => {
    // Prepare: every Promote of this segment hangs past its (shortened) Lambda timeout.
    const name = seg(0x10);
    const { path, bytes } = writeSegment(name, 10);
    fault = (ctx) => (ctx.state === "Promote" && ctx.name === name ? "timeout" : undefined);

    // Act
    const first = await push(path);

    // Assess: retried once (a timeout), then failed without quarantine; a distinct exit and message.
    expect(invocations.filter((i) => i.state === "Promote").map((i) => i.attempt)).toEqual([1, 2]);
    expect(first.stderr.trim()).toBe(
      `walvault: ${name} was uploaded but not yet stored: the control plane failed transiently (Sandbox.Timedout in Promote); nothing was quarantined and PostgreSQL will retry it`,
    );
    expect(first.code).toBe(4);
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
    expect(await listKeys(clients.store, stack.config.incomingBucket, "quarantine/")).toEqual([]);
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
    expect(await listKeys(clients.store, stack.config.incomingBucket, "failed/")).toEqual([failedMarkerKey(incomingWalKey(DB, name))]);

    // Act: the fault is gone; PostgreSQL runs archive_command again.
    fault = () => undefined;
    const second = await push(path);

    // Assess: archived, byte-identical.
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    expect((await clients.catalog.getWal(DB, name))?.status).toBe("stored");
    expect((await fetched(name)).equals(bytes)).toBe(true);
  }, 60_000);

  it("a Promote that wrote the vault and then timed out (before Record) loses nothing: the next push records the same bytes", async () => {
    // Prepare: Promote does its work, then reports a timeout, on every attempt of the first execution.
    const name = seg(0x11);
    const { path, bytes } = writeSegment(name, 11);
    fault = (ctx) => (ctx.state === "Promote" && ctx.name === name ? { after: "timeout" } : undefined);

    // Act
    const first = await push(path);

    // Assess: the vault holds the bytes, the catalog does not; no quarantine; exit 4.
    expect(first.code).toBe(4);
    expect(first.stderr).toMatch(/not yet stored: the control plane failed transiently \(Sandbox\.Timedout in Promote\)/);
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
    expect(await listKeys(clients.store, stack.config.vaultBucket, `db/${DB}/wal/00000001/${name}`)).toHaveLength(1);
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);

    // Act: the same bytes pushed again.
    fault = () => undefined;
    const second = await push(path);

    // Assess: recorded (Promote found its own bytes in the vault), byte-identical.
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    expect((await clients.catalog.getWal(DB, name))?.status).toBe("stored");
    expect((await fetched(name)).equals(bytes)).toBe(true);
  }, 60_000);

  it("a Record that wrote the catalog and then timed out still lets wal-push succeed (now or on the next push)", async () => {
    // Prepare
    const name = seg(0x12);
    const { path, bytes } = writeSegment(name, 12);
    fault = (ctx) => (ctx.state === "Record" && ctx.name === name ? { after: "timeout" } : undefined);

    // Act
    const first = await push(path);
    fault = () => undefined;
    const second = await push(path);

    // Assess: whichever the first push saw first (the record or the failure note), nothing is lost.
    expect([0, 4]).toContain(first.code);
    expect(second.code).toBe(0);
    expect((await clients.catalog.getWal(DB, name))?.status).toBe("stored");
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
    expect((await fetched(name)).equals(bytes)).toBe(true);
  }, 60_000);

  it("throttling on the first attempt of Validate is retried within the execution: stored, no note, no quarantine", async () => {
    // Prepare
    const name = seg(0x13);
    const { path } = writeSegment(name, 13);
    fault = (ctx) => {
      if (ctx.state !== "Validate" || ctx.attempt > 1) return undefined;
      const e = new Error("Rate Exceeded.");
      e.name = "Lambda.TooManyRequestsException";
      return e;
    };

    // Act
    const r = await push(path);

    // Assess
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(invocations.filter((i) => i.state === "Validate").map((i) => i.attempt)).toEqual([1, 2]);
    expect(await listKeys(clients.store, stack.config.incomingBucket, failedMarkerKey(incomingWalKey(DB, name)))).toEqual([]);
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
  }, 60_000);

  it("throttling on every attempt of Validate: retried 4 times, then exit 4 naming it, nothing quarantined", async () => {
    // Prepare
    const name = seg(0x15);
    const { path } = writeSegment(name, 15);
    fault = (ctx) => {
      if (ctx.state !== "Validate") return undefined;
      const e = new Error("Rate Exceeded.");
      e.name = "Lambda.TooManyRequestsException";
      return e;
    };

    // Act
    const r = await push(path);

    // Assess
    expect(invocations.filter((i) => i.state === "Validate").map((i) => i.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(r.stderr).toMatch(/not yet stored: the control plane failed transiently \(Lambda\.TooManyRequestsException in Validate\)/);
    expect(r.code).toBe(4);
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
  }, 60_000);

  it("an unexpected error (not a named validation error) quarantines nothing either", async () => {
    // Prepare: a handler bug, as a plain TypeError.
    const name = seg(0x14);
    const { path } = writeSegment(name, 14);
    fault = (ctx) => (ctx.state === "Record" && ctx.name === name ? new TypeError("Cannot read properties of undefined (reading 'x')") : undefined);

    // Act
    const r = await push(path);

    // Assess: not retried (not transient), reported as unexpected, exit 4, nothing quarantined.
    expect(invocations.filter((i) => i.state === "Record").map((i) => i.attempt)).toEqual([1]);
    expect(r.stderr).toMatch(/failed unexpectedly \(TypeError in Record: Cannot read properties of undefined/);
    expect(r.code).toBe(4);
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
  }, 60_000);

  it("snapshot ingest: a ValidateManifest that times out quarantines nothing; snapshot push says so; pushing again records it", async () => {
    // Prepare: a small generic source; every ValidateManifest of the first push times out.
    const src = join(dir, "gen-source");
    mkdirSync(join(src, "wal"), { recursive: true });
    writeFileSync(join(src, "data.bin"), Buffer.alloc(100_000, 3));
    writeFileSync(join(src, "wal", "00000042.wal"), Buffer.alloc(4096, 7));
    const source = { kind: "generic" as const, dir: src, streams: [{ id: "wal", lastSegment: "wal/00000042.wal", lastSegno: 42 }] };
    const cfg = { ...stack.config, databaseId: GEN };
    fault = (ctx) => (ctx.state === "ValidateManifest" ? "timeout" : undefined);

    // Act
    const first = await snapshotPush(source, cfg, clients, { timeoutMs: 30_000 }).catch((e: unknown) => e);
    await stack.idle();

    // Assess
    expect(first).toBeInstanceOf(IngestRetryableError);
    expect((first as Error).message).toMatch(
      /^snapshot \S+ was uploaded but not yet stored: the control plane failed transiently \(Sandbox\.Timedout in ValidateManifest\); nothing was quarantined and pushing the snapshot again will ingest it$/,
    );
    expect(await clients.catalog.listQuarantine(GEN)).toEqual([]);
    expect(await clients.catalog.listSnapshots(GEN)).toEqual([]);

    // Act: the fault is gone; the same source pushed again.
    fault = () => undefined;
    const second = await snapshotPush(source, cfg, clients, { timeoutMs: 30_000 });

    // Assess
    expect((await clients.catalog.listSnapshots(GEN)).map((r) => r.snapshotId)).toEqual([second.snapshotId]);
  }, 60_000);

  it("watch: a generic segment whose Promote times out is reported at once as not yet stored (not after its wait), and the next pass ships it", async () => {
    // Prepare: one closed segment (a newer one is open) in a rotating stream; every Promote of the first pass times out.
    const root = join(dir, "gen-watch");
    mkdirSync(join(root, "wal"), { recursive: true });
    writeFileSync(join(root, "wal", "0000000000000001.wal"), Buffer.alloc(8192, 1));
    writeFileSync(join(root, "wal", "0000000000000002.wal"), Buffer.alloc(100, 2));
    const spec = compileWatchConfig({ dataDir: root, streams: [{ id: "wal", dir: "wal", pattern: "(\\d{16})\\.wal" }] });
    const watcher = new Watcher(spec, { ...stack.config, databaseId: GEN }, clients, { timeoutMs: 50_000 });
    fault = (ctx) => (ctx.state === "Promote" ? "timeout" : undefined);

    // Act
    const first = await watcher.pass();
    await stack.idle();

    // Assess: the workflow's failure note answers (without it, the pass waits out its 50 s and reports a timeout); nothing quarantined.
    expect(first.errors.join("\n")).toMatch(/not yet stored: the control plane failed transiently \(Sandbox\.Timedout in Promote\)/);
    expect(await clients.catalog.listQuarantine(GEN)).toEqual([]);

    // Act: the fault is gone; the next pass.
    fault = () => undefined;
    const second = await watcher.pass();

    // Assess
    expect(second.errors).toEqual([]);
    expect((await clients.catalog.getWal(GEN, "wal/0000000000000001.wal"))?.status).toBe("stored");
  }, 90_000);
});
