/**
 * statemachines/restore.asl.json on the real local stack (s3rver + DynamoDB
 * Local, the same handlers, Step Functions' limits enforced): a generic
 * snapshot and WAL put straight into the vault and the catalog
 * (test/support/snapshots.ts), then startRestore plans, writes the plan to a
 * work/ object, thaws in batches when asked (input "thaw": true; by default
 * it does not: WALVAULT_THAW is "auto" and s3rver has no archive lifecycle;
 * s3rver has no storage classes: nothing pending) and outputs the plan's
 * summary; a planning error fails the execution with its name. A plan of
 * 5,000 segments (past the 256 KiB state limit if it travelled in the state)
 * goes through and reads back whole, for a generic database and for a
 * PostgreSQL one whose plan reads the catalog from its snapshot on
 * (store/catalog-state.ts loadPlanningState).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { forEachLimit } from "../../core/concurrency.js";
import type { WalRecord } from "../../core/schemas.js";
import { formatLsn, segmentName, segmentStartLsn } from "../../core/wal.js";
import { remoteRestore } from "../../agent/restore-remote.js";
import { payloadBytes } from "../../local/limits.js";
import { readRestorePlan, StoreWorkObjects } from "../../store/work-objects.js";
import { SfnWorkflowRunner } from "../../store/workflows.js";
import { stackClients, tempDir, type StackClients } from "../support/harness.js";
import { archiveGenericSegment, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-main";
const BIG = "gen-big";
const BIG_SEGMENTS = 5000;
const PG_BIG = "pg-big";
/** PG_BIG's snapshot starts in this segment; 1,000 segments are archived before it. */
const PG_START = 1001n;
/** Objects per thaw invocation in this file (WALVAULT_THAW_BATCH): the 5,000-segment pass takes several. */
const THAW_BATCH = 2000;
const seg = (n: number): string => `00000001000000000000000${n}`;
const T0 = new Date("2026-03-01T10:00:00.000Z");
const at = (minutes: number): Date => new Date(T0.getTime() + minutes * 60_000);
const walBytes = (n: number): Buffer => Buffer.alloc(4096, n);

let stack: TestStack;
let clients: StackClients;
let snap: UploadedSnapshot;
/** Thaw and CheckThaw invocations, by state. */
const thawCalls: Record<string, number> = {};
let thawBatchBefore: string | undefined;

/** Reads the plan the execution's summary names, as the agent does. */
const planOf = (summary: unknown) =>
  readRestorePlan(new StoreWorkObjects(clients.store, stack.config.incomingBucket), (summary as { planKey: string }).planKey);

beforeAll(async () => {
  thawBatchBefore = process.env.WALVAULT_THAW_BATCH;
  process.env.WALVAULT_THAW_BATCH = String(THAW_BATCH);
  stack = await startTestStack(
    [
      { id: GEN, kind: "generic" },
      { id: BIG, kind: "generic" },
      { id: PG_BIG },
    ],
    {
      injectFault: ({ workflow, state }) => {
        if (workflow === "restore" && state.includes("Thaw")) thawCalls[state] = (thawCalls[state] ?? 0) + 1;
        return undefined;
      },
    },
  );
  clients = stackClients(stack);
  const source = join(tempDir("walvault-restore-wf-"), "source");
  mkdirSync(join(source, "wal"), { recursive: true });
  writeFileSync(join(source, "data.db"), Buffer.alloc(50_000, 7));
  writeFileSync(join(source, "wal", seg(2)), walBytes(2));
  const snapshotOf = (databaseId: string) =>
    uploadSnapshotDir(clients, stack.config, {
      databaseId,
      dir: source,
      kind: "generic",
      generic: { streams: [{ id: "wal", lastSegment: `wal/${seg(2)}`, lastSegno: 2 }] },
      startedAt: at(20),
      finishedAt: at(21),
      chunker: SMALL_CHUNKER,
    });
  snap = await snapshotOf(GEN);
  await snapshotOf(BIG);
  for (const n of [1, 2, 3, 4]) {
    await archiveGenericSegment(clients, stack.config, { databaseId: GEN, stream: "wal", name: seg(n), segno: BigInt(n), bytes: walBytes(n), archivedAt: at(n * 10) });
  }
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (thawBatchBefore === undefined) delete process.env.WALVAULT_THAW_BATCH;
  else process.env.WALVAULT_THAW_BATCH = thawBatchBefore;
});

/** Vault objects the big database's segments point at: Thaw HEADs every planned key, and 5,000 PUTs would double the test's time. */
const BIG_OBJECTS = 50;
const bigObjectKey = (n: number): string => `db/${BIG}/wal/wal/shared-${n % BIG_OBJECTS}`;

/** Segment `n` of the big database: a catalog record pointing at one of BIG_OBJECTS small vault objects, no real WAL bytes. */
function bigSegment(n: number): WalRecord {
  const name = `00000001${n.toString(16).toUpperCase().padStart(16, "0")}`;
  return {
    databaseId: BIG,
    name,
    kind: "segment",
    timeline: 1,
    startLsn: String(n),
    size: 4096,
    storedSize: 16,
    sha256: n.toString(16).padStart(64, "0"),
    codec: "zstd",
    status: "stored",
    vaultKey: bigObjectKey(n),
    archivedAt: new Date(at(30).getTime() + n * 1000).toISOString(),
    replicas: {},
  };
}

describe("restore workflow (local stack)", () => {
  it("latest: outputs the plan's summary, and the plan at its work/ key names the snapshot and the WAL after it, nothing pending", async () => {
    const out = (await stack.startRestore({ databaseId: GEN, target: { kind: "latest" } })) as Record<string, unknown>;
    expect(out).toMatchObject({
      databaseId: GEN,
      kind: "generic",
      snapshotId: snap.record.snapshotId,
      chunkCount: snap.record.totals.uniqueChunks,
      walCount: 2,
      walBytes: 2 * 4096,
      walPages: 1,
    });
    expect(out.planKey).toMatch(new RegExp(`^work/restore/${GEN}/restore-\\d+-[0-9a-f]+/plan\\.json$`));
    expect(out).not.toHaveProperty("wal");
    expect(out).not.toHaveProperty("thaw");
    const plan = await planOf(out);
    expect(plan).toMatchObject({ databaseId: GEN, snapshot: { id: snap.record.snapshotId }, manifestKey: snap.record.manifestKey, walCount: 2 });
    expect(plan.wal.map((w) => w.name)).toEqual([seg(3), seg(4)]);
    expect(plan.wal[0]!.key).toBe(`db/${GEN}/wal/wal/${seg(3)}`);
    expect(stack.restoreStats).toMatchObject({ succeeded: 1, failed: 0, inFlight: 0 });
  });

  it("a time target picks the WAL up to it; a Bulk tier is accepted", async () => {
    const out = await stack.startRestore({ databaseId: GEN, target: { kind: "time", time: at(35).toISOString() }, tier: "Bulk" });
    expect((await planOf(out)).wal.map((w) => w.name)).toEqual([seg(3)]);
  });

  it("a plan of 5,000 WAL segments goes through the workflow (the state carries its key), thaw checks every object in bounded batches, and the agent reads all 5,000", async () => {
    // Prepare: 5,000 catalog records after the snapshot (and the small vault objects they point at, for Thaw's HEADs).
    const numbers = Array.from({ length: BIG_SEGMENTS + 2 }, (_, i) => i + 1);
    await forEachLimit(numbers.slice(0, BIG_OBJECTS), 16, async (n) => void (await clients.store.put(stack.config.vaultBucket, bigObjectKey(n), Buffer.alloc(16, n), {})));
    await forEachLimit(numbers, 32, async (n) => void (await clients.catalog.recordWal(bigSegment(n))));
    const callsBefore = { ...thawCalls };
    const succeededBefore = stack.restoreStats.succeeded;
    // Act: the workflow, started and read as the agent does (through the Step Functions endpoint).
    const runner = new SfnWorkflowRunner({ region: stack.config.region, endpoint: stack.config.stepFunctionsEndpoint!, credentials: stack.config.credentials! });
    let remote: Awaited<ReturnType<typeof remoteRestore>>;
    try {
      remote = await remoteRestore(runner, {
        stateMachineArn: stack.stateMachineArns.restore,
        input: { databaseId: BIG, target: { kind: "latest" }, thaw: true },
        pollMs: 50,
        work: new StoreWorkObjects(clients.store, stack.config.incomingBucket),
      });
    } finally {
      runner.client.destroy();
    }
    // Assess: a small summary in the state; the whole plan at its key.
    expect(stack.restoreStats.succeeded).toBe(succeededBefore + 1);
    const out = remote.output;
    expect(out).toMatchObject({ databaseId: BIG, walCount: BIG_SEGMENTS, walBytes: BIG_SEGMENTS * 4096, walPages: 1 });
    expect(payloadBytes(out)).toBeLessThan(1024);
    const plan = await planOf(out);
    expect(plan.wal).toHaveLength(BIG_SEGMENTS);
    expect(plan.wal[0]!.name).toBe(bigSegment(3).name);
    expect(plan.wal.at(-1)!.name).toBe(bigSegment(BIG_SEGMENTS + 2).name);
    expect(payloadBytes(plan)).toBeGreaterThan(262_144);
    expect(remote.plan.wal).toHaveLength(BIG_SEGMENTS);
    expect(remote.plan.wal.map((w) => w.key)).toEqual(plan.wal.map((w) => w.key));
    // Thaw (asked for) ran in batches of THAW_BATCH objects: 1 manifest + 5,000 WAL + the chunks: 3 or more invocations.
    const calls = (thawCalls.Thaw ?? 0) - (callsBefore.Thaw ?? 0) + (thawCalls.CheckThaw ?? 0) - (callsBefore.CheckThaw ?? 0);
    expect(calls).toBeGreaterThanOrEqual(Math.ceil((BIG_SEGMENTS + 1) / THAW_BATCH));
    expect(stack.restoreStats.largestState!.bytes).toBeLessThan(262_144);
  }, 300_000);

  it("thaws only when asked: no Thaw by default or with thaw false; thaw true walks the manifest's chunks through the catalog, nothing pending", async () => {
    // Prepare
    const calls = (): number => (thawCalls.Thaw ?? 0) + (thawCalls.CheckThaw ?? 0);
    const before = calls();

    // Act
    const byDefault = await stack.startRestore({ databaseId: GEN, target: { kind: "latest" } });
    const off = await stack.startRestore({ databaseId: GEN, target: { kind: "latest" }, thaw: false });
    const afterOff = calls();
    const on = await stack.startRestore({ databaseId: GEN, target: { kind: "latest" }, thaw: true });

    // Assess: the same plan either way; Thaw ran only for the last, once (a small pass fits one batch)
    expect(afterOff).toBe(before);
    expect(calls()).toBe(before + 1);
    for (const out of [byDefault, off, on]) expect(out).toMatchObject({ databaseId: GEN, snapshotId: snap.record.snapshotId, walCount: 2 });
  });

  it("a thaw flag that is not a boolean fails with InvalidInputError", async () => {
    await expect(stack.startRestore({ databaseId: GEN, target: { kind: "latest" }, thaw: "yes" })).rejects.toMatchObject({ name: "InvalidInputError" });
  });

  it("a PostgreSQL plan of 5,000 WAL segments after its snapshot goes through the workflow, leaving out the 1,000 before it", async () => {
    // Prepare: a snapshot starting in segment PG_START, catalog records of segments 1 .. PG_START + 4,999 (small shared vault objects)
    const source = join(tempDir("walvault-restore-wf-pg-"), "source");
    mkdirSync(join(source, "global"), { recursive: true });
    writeFileSync(join(source, "PG_VERSION"), "16\n");
    writeFileSync(join(source, "backup_label"), "not read: the plan stops at the workflow\n");
    writeFileSync(join(source, "global", "pg_control"), Buffer.alloc(8192, 1));
    const start = segmentStartLsn(PG_START);
    const pg = await uploadSnapshotDir(clients, stack.config, {
      databaseId: PG_BIG,
      dir: source,
      kind: "postgres",
      postgres: {
        version: 160004,
        walSegmentSize: 16 << 20,
        timeline: 1,
        startLsn: formatLsn(start + 0x28n),
        checkpointLsn: formatLsn(start + 0x60n),
        stopLsn: formatLsn(start + 0x200n),
        startWalFile: segmentName(1, PG_START),
        label: "walvault",
        backupMethod: "streamed",
        backupFrom: "primary",
        tablespaces: [],
      },
      startedAt: at(20),
      finishedAt: at(21),
      chunker: SMALL_CHUNKER,
    });
    const key = (n: bigint): string => `db/${PG_BIG}/wal/00000001/shared-${n % BigInt(BIG_OBJECTS)}`;
    const numbers = Array.from({ length: Number(PG_START) - 1 + BIG_SEGMENTS }, (_, i) => BigInt(i + 1));
    await forEachLimit(numbers.slice(0, BIG_OBJECTS), 16, async (n) => void (await clients.store.put(stack.config.vaultBucket, key(n), Buffer.alloc(16, Number(n)), {})));
    await forEachLimit(numbers, 32, async (n) => {
      const rec: WalRecord = { ...bigSegment(Number(n)), databaseId: PG_BIG, name: segmentName(1, n), vaultKey: key(n), size: 16 << 20 };
      delete rec.startLsn;
      await clients.catalog.recordWal(rec);
    });

    // Act
    const out = await stack.startRestore({ databaseId: PG_BIG, target: { kind: "latest" } });

    // Assess
    expect(out).toMatchObject({ databaseId: PG_BIG, kind: "postgres", snapshotId: pg.record.snapshotId, walCount: BIG_SEGMENTS, targetTimeline: 1 });
    const plan = await planOf(out);
    expect(plan.wal).toHaveLength(BIG_SEGMENTS);
    expect(plan.wal[0]!.name).toBe(segmentName(1, PG_START));
    expect(plan.wal.at(-1)!.name).toBe(segmentName(1, PG_START + BigInt(BIG_SEGMENTS) - 1n));
    expect(plan.wal[0]!.key).toBe(key(PG_START));
  }, 300_000);

  it("a target before the oldest snapshot fails with NoSnapshotBeforeTargetError", async () => {
    const run = stack.startRestore({ databaseId: GEN, target: { kind: "time", time: at(5).toISOString() } });
    await expect(run).rejects.toMatchObject({ name: "NoSnapshotBeforeTargetError" });
    await expect(run).rejects.toThrow(/NoSnapshotBeforeTargetError: \S/);
  });

  it("an unknown database fails with UnknownDatabaseError; a malformed target with InvalidInputError", async () => {
    await expect(stack.startRestore({ databaseId: "nope-db", target: { kind: "latest" } })).rejects.toMatchObject({ name: "UnknownDatabaseError" });
    await expect(stack.startRestore({ databaseId: GEN, target: { kind: "time" } })).rejects.toMatchObject({ name: "InvalidInputError" });
  });

  it("a time that is not ISO 8601 with a zone fails with InvalidInputError naming the accepted forms", async () => {
    for (const time of ["5", "2026-03-01 10:35:00", "2026-02-30T12:00:00Z"]) {
      await expect(stack.startRestore({ databaseId: GEN, target: { kind: "time", time } }), time).rejects.toThrow(/InvalidInputError.*is not a time/);
    }
  });
});
