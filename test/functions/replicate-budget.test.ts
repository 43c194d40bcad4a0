/**
 * A snapshot larger than one invocation's budget replicates through the
 * replicate workflow on the local stack (issue #11): CopyItem copies at most
 * WALVAULT_REPLICATE_BATCH chunks per invocation from a cursor and the
 * workflow calls it again until the manifest, last, is written; the region is
 * marked only then. A batch that keeps failing leaves the region marked
 * failed, no manifest in the replica; the next run re-verifies what the
 * failed one copied instead of copying it again. The snapshot ingest
 * workflow's own copy to the region loops the same way. A packed snapshot
 * copies WALVAULT_REPLICATE_PACKS packs per invocation, then the packs and
 * chunk objects its reused chunks live in, and is marked once its manifest is
 * there.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { snapshotRecordOf, snapshotSummary } from "../../core/catalog-records.js";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingChunkKey, incomingSnapshotKey, vaultChunkKey, vaultPackKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { META_DATABASE } from "../../core/schemas.js";
import { parseManifest, serializeManifest, SnapshotBuilder, snapshotIdFor } from "../../core/snapshot.js";
import { objectMeta } from "../../core/verify.js";
import { getDeps, resetDeps } from "../../functions/deps.js";
import type { FaultContext, InjectedFault } from "../../local/stack.js";
import { poll, stackClients, tempDir, type StackClients } from "../support/harness.js";
import { SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { makeChunk, putPackedManifest, storeChunkObject, storeRecordedPacks, type PackedVault } from "../store/packed-vault.js";

const DB = "gen-big";
const REGION = "local-2";
const BATCH = 4;
const PACKS = 2;
let stack: TestStack;
let clients: StackClients;
let snap: UploadedSnapshot;
let chunks: string[];
const savedBatch = process.env.WALVAULT_REPLICATE_BATCH;
const savedPacks = process.env.WALVAULT_REPLICATE_PACKS;

interface CopyInput {
  item: { snapshotId?: string };
  cursor?: number;
  copiedChunks?: number;
}
/** Every CopyItem invocation of a snapshot, as the stack was about to run it. */
let calls: CopyInput[] = [];
/** When set, every CopyItem invocation of a snapshot at this cursor or later fails before the handler runs. */
let failFrom: number | undefined;

/** Every CopySnapshot invocation of the snapshot ingest workflow. */
const ingestCalls: CopyInput[] = [];

function onInvoke(ctx: FaultContext): InjectedFault {
  if (ctx.workflow === "snapshot-ingest" && ctx.state === "CopySnapshot") ingestCalls.push(ctx.input as CopyInput);
  if (ctx.workflow !== "replicate" || ctx.state !== "CopyItem") return undefined;
  const input = ctx.input as CopyInput;
  if (input.item.snapshotId === undefined) return undefined;
  calls.push(input);
  if (failFrom !== undefined && (input.cursor ?? 0) >= failFrom) return Object.assign(new Error("region endpoint unreachable (injected)"), { name: "ServiceUnavailableError" });
  return undefined;
}

beforeAll(async () => {
  process.env.WALVAULT_REPLICATE_BATCH = String(BATCH);
  process.env.WALVAULT_REPLICATE_PACKS = String(PACKS);
  stack = await startTestStack([{ id: DB, kind: "generic" }], { replicaRegions: [REGION], injectFault: onInvoke });
  clients = stackClients(stack);
  const dir = join(tempDir("walvault-repl-budget-"), "data");
  mkdirSync(dir);
  // Random bytes: every chunk is distinct, ~30 chunks of ~4 KiB.
  writeFileSync(join(dir, "a.bin"), randomBytes(64 * 1024));
  writeFileSync(join(dir, "b.bin"), randomBytes(64 * 1024));
  snap = await uploadSnapshotDir(clients, stack.config, {
    databaseId: DB,
    dir,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: "wal/00000001.wal", lastSegno: 1 }] },
    chunker: SMALL_CHUNKER,
  });
  chunks = [...new Set([...snap.chunksOf.values()].flat())];
}, 120_000);

afterAll(async () => {
  if (savedBatch === undefined) delete process.env.WALVAULT_REPLICATE_BATCH;
  else process.env.WALVAULT_REPLICATE_BATCH = savedBatch;
  if (savedPacks === undefined) delete process.env.WALVAULT_REPLICATE_PACKS;
  else process.env.WALVAULT_REPLICATE_PACKS = savedPacks;
  resetDeps();
  await stack?.destroy();
});

describe("replication of a snapshot larger than one invocation's budget", () => {
  it("copies in bounded batches, marks nothing on a failed batch, then resumes and marks the region only once the manifest is proven", async () => {
    // Prepare
    expect(chunks.length).toBeGreaterThan(3 * BATCH);
    const replica = getDeps().replicas[0]!;
    const inReplica = async (key: string): Promise<Buffer | undefined> => (await replica.store.get(replica.bucket, key))?.body;
    const inPrimary = async (key: string): Promise<Buffer | undefined> => (await clients.store.get(stack.config.vaultBucket, key))?.body;

    // Act 1: every batch after the first fails in the region.
    failFrom = BATCH;
    const stalled = await stack.startReplicate({ region: REGION, databaseId: DB }).catch((e: unknown) => e);
    failFrom = undefined;

    // Assess 1: the first batch is in the replica; the manifest is not; the region is marked failed, never replicated.
    expect((stalled as Error).name).toBe("ReplicationStalled");
    expect(calls.some((c) => c.cursor === BATCH)).toBe(true);
    for (const sha of chunks.slice(0, BATCH)) expect(await inReplica(vaultChunkKey(DB, sha)), sha).toEqual(await inPrimary(vaultChunkKey(DB, sha)));
    expect(await replica.store.head(replica.bucket, snap.record.manifestKey)).toBeUndefined();
    expect((await clients.catalog.getSnapshot(DB, snap.record.snapshotId))?.replicas[REGION]?.status).toBe("failed");

    // Act 2: the region is healthy again.
    calls = [];
    const out = (await stack.startReplicate({ region: REGION, databaseId: DB })) as { complete: boolean };

    // Assess 2: one invocation per batch, each starting where the last stopped.
    expect(out.complete).toBe(true);
    const starts = calls.map((c) => c.cursor ?? 0);
    const expected = Array.from({ length: Math.ceil(chunks.length / BATCH) }, (_, i) => i * BATCH);
    expect(starts).toEqual(expected);
    // The first batch was re-verified, not copied again: after two batches, one batch's worth was copied.
    expect(calls.find((c) => c.cursor === 2 * BATCH)?.copiedChunks).toBe(BATCH);
    // Every chunk and the manifest are in the replica, byte for byte; the region is marked replicated.
    for (const sha of chunks) expect(await inReplica(vaultChunkKey(DB, sha)), sha).toEqual(await inPrimary(vaultChunkKey(DB, sha)));
    expect(await inReplica(snap.record.manifestKey)).toEqual(await inPrimary(snap.record.manifestKey));
    expect((await clients.catalog.getSnapshot(DB, snap.record.snapshotId))?.replicas[REGION]).toMatchObject({ status: "replicated" });
    // The state carried between batches stays small (cursor and counts, not chunk lists).
    expect(stack.replicateStats.largestState!.bytes).toBeLessThan(4096);
  }, 120_000);

  it("the snapshot ingest's copy to the region loops over bounded batches too, and marks the region once the manifest is there", async () => {
    // Prepare: a snapshot of 3 batches and a half, pushed the way the agent does (chunks, then the manifest).
    const replica = getDeps().replicas[0]!;
    const startedAt = new Date();
    const snapshotId = snapshotIdFor(startedAt, "0b0b0b");
    const b = new SnapshotBuilder();
    const f = b.startFile("data.bin", 0o644, startedAt);
    const content = randomBytes((3 * BATCH + 2) * 1024);
    const shas: string[] = [];
    for (let off = 0; off < content.length; off += 1024) {
      const raw = content.subarray(off, off + 1024);
      const sha = sha256Hex(raw);
      const body = await getCodec("zstd").encode(raw);
      await clients.store.put(stack.config.incomingBucket, incomingChunkKey(DB, sha), body, { ...objectMeta({ sha256: sha, codec: "zstd", size: raw.length }), [META_DATABASE]: DB });
      f.addChunk({ sha256: sha, size: raw.length, storedSize: body.length, codec: "zstd", isNew: true });
      shas.push(sha);
    }
    f.finish(sha256Hex(content), content.length);
    const manifest = b.build({
      databaseId: DB,
      snapshotId,
      kind: "generic",
      startedAt,
      finishedAt: new Date(startedAt.getTime() + 1000),
      generic: { streams: [{ id: "wal", lastSegment: "wal/00000002.wal", lastSegno: 2 }] },
    });
    const bytes = Buffer.from(serializeManifest(manifest));
    await stack.idle();
    const before = stack.workflowStats["snapshot-ingest"].started;

    // Act
    await clients.store.put(stack.config.incomingBucket, incomingSnapshotKey(DB, snapshotId), bytes, {
      ...objectMeta({ sha256: sha256Hex(bytes), codec: "none", size: bytes.length }),
      [META_DATABASE]: DB,
    });
    await poll(() => stack.workflowStats["snapshot-ingest"].started > before, 15_000, "the snapshot ingest to start");
    await stack.idle();

    // Assess: one CopySnapshot invocation per batch, each from where the last stopped; everything in the region; marked.
    expect(ingestCalls.map((c) => c.cursor ?? 0)).toEqual([0, BATCH, 2 * BATCH, 3 * BATCH]);
    const rec = await clients.catalog.getSnapshot(DB, snapshotId);
    expect(rec?.replicas[REGION]).toMatchObject({ status: "replicated" });
    for (const sha of shas) {
      const key = vaultChunkKey(DB, sha);
      expect((await replica.store.get(replica.bucket, key))?.body, sha).toEqual((await clients.store.get(stack.config.vaultBucket, key))?.body);
    }
    const manifestKey = vaultSnapshotManifestKey(DB, snapshotId);
    expect((await replica.store.get(replica.bucket, manifestKey))?.body).toEqual((await clients.store.get(stack.config.vaultBucket, manifestKey))?.body);
  }, 120_000);

  it("a packed snapshot copies WALVAULT_REPLICATE_PACKS packs per invocation, then what its reused chunks live in, and is marked once its manifest is there", async () => {
    // Prepare: 20 new chunks in 3 packs of its own, 3 reused chunks in an older pack, 1 reused chunk object; recorded.
    const replica = getDeps().replicas[0]!;
    const v: PackedVault = { store: clients.store, bucket: stack.config.vaultBucket, catalog: clients.catalog, databaseId: DB };
    const reused = await Promise.all([0, 1, 2].map((i) => makeChunk(`old ${i}`)));
    const older = await storeRecordedPacks(v, reused);
    const loose = await makeChunk("loose");
    await storeChunkObject(v, loose);
    const fresh = await Promise.all(Array.from({ length: 20 }, (_, i) => makeChunk(`new ${i}`)));
    const own = await storeRecordedPacks(v, fresh);
    const order = [...reused.map((c) => ({ c, isNew: false })), { c: loose, isNew: false }, ...fresh.map((c) => ({ c, isNew: true }))];
    const put = await putPackedManifest(v, order, own, new Date(Date.now() + 60_000));
    const manifestBytes = (await clients.store.get(stack.config.vaultBucket, put.manifestKey))!.body;
    const { manifest } = parseManifest(manifestBytes);
    await clients.catalog.recordSnapshot(
      snapshotRecordOf({
        databaseId: DB,
        snapshotId: put.snapshotId,
        kind: "generic",
        summary: snapshotSummary(manifest),
        manifestKey: put.manifestKey,
        manifestSha256: put.manifestSha256,
        manifestSize: manifestBytes.length,
        recordedAt: new Date().toISOString(),
        replicaRegions: [REGION],
      }),
    );
    calls = [];

    // Act
    const out = (await stack.startReplicate({ region: REGION, databaseId: DB })) as { complete: boolean };

    // Assess: 3 own packs at 2 per invocation, the older pack and the chunk object with the last one.
    expect(own.length).toBe(3);
    expect(out.complete).toBe(true);
    expect(calls.filter((c) => c.item.snapshotId === put.snapshotId).map((c) => c.cursor ?? 0)).toEqual([0, PACKS]);
    for (const p of [...own, ...older]) {
      expect((await replica.store.get(replica.bucket, vaultPackKey(DB, p.name)))?.body.equals(p.bytes), p.name).toBe(true);
    }
    expect((await replica.store.get(replica.bucket, vaultChunkKey(DB, loose.sha256)))?.body.equals(loose.stored)).toBe(true);
    expect((await replica.store.get(replica.bucket, put.manifestKey))?.body).toEqual(manifestBytes);
    expect((await clients.catalog.getSnapshot(DB, put.snapshotId))?.replicas[REGION]).toMatchObject({ status: "replicated" });
  }, 120_000);
});
