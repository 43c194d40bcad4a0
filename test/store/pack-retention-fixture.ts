/**
 * Test support for the pack retention suites (store/prune.ts, store/repack.ts):
 * the catalog on DynamoDB Local (the conditional writes are DynamoDB's), the
 * vault in memory, a generic database whose snapshots are recorded straight
 * into both, and a restore that follows the chunk records as a restore does.
 */
import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll } from "vitest";
import { decodeWith } from "../../core/codec.js";
import { ObjectLockedError } from "../../core/errors.js";
import type { RetentionPlan } from "../../core/retention.js";
import type { DatabaseRecord, SnapshotRecord } from "../../core/schemas.js";
import { LOCAL_CREDENTIALS, startDynamo, type DynamoEmulator } from "../../local/emulators.js";
import { namedPackOf } from "../../core/snapshot.js";
import { openVaultManifest } from "../../store/manifest-read.js";
import { PackIndexCache } from "../../store/pack-index.js";
import { DynamoCatalog, createTable } from "../../store/dynamo-catalog.js";
import type { ObjectInfo, ObjectStore } from "../../store/object-store.js";
import { executePrune, type PruneSummary, type RegionVault } from "../../store/prune.js";
import { putPackedManifest, type Chunk, type PackedVault } from "./packed-vault.js";

export const GDB = "gen-packs";
export const genericDb: DatabaseRecord = { databaseId: GDB, kind: "generic", walSegmentSize: 16 * 1024 * 1024, createdAt: "2026-01-01T00:00:00.000Z" };
const HOUR = 3_600_000;
export const GRACE = 24 * HOUR;
/** Packs are recorded at the real time; runs happen later than their grace. */
export const RUN1 = new Date(Date.now() + 2 * GRACE);
export const RUN2 = new Date(RUN1.getTime() + GRACE);
/** Repack whatever is under half live, whatever the dead bytes (the test packs are 64 KiB). */
export const packOpts = { thresholds: { liveFraction: 0.5, minDeadBytes: 1 }, targetSize: 64 * 1024 };


/** A bucket in memory; deleting a key in `locked` is refused as Object Lock would refuse it. */
export function memoryVault(): ObjectStore & { objects: Map<string, Buffer>; locked: Set<string> } {
  const objects = new Map<string, Buffer>();
  const locked = new Set<string>();
  const info = (key: string, body: Buffer): ObjectInfo => ({ key, size: body.length, metadata: {} });
  return {
    name: "memory",
    objects,
    locked,
    async put(_b, key, body) {
      objects.set(key, Buffer.from(body));
      return {};
    },
    async get(_b, key) {
      const body = objects.get(key);
      return body && { ...info(key, body), body };
    },
    async head(_b, key) {
      const body = objects.get(key);
      return body && info(key, body);
    },
    async getRange(_b, key, start, end) {
      return objects.get(key)?.subarray(start, end + 1);
    },
    async copy() {
      throw new Error("not used");
    },
    async requestRestore() {
      // Nothing here is archived.
    },
    async delete(bucket, key) {
      if (locked.has(key)) throw new ObjectLockedError(`S3 refused to delete s3://${bucket}/${key} (Object Lock retention)`);
      objects.delete(key);
    },
    async *list() {
      // not used
    },
  };
}

export interface PackedFixture {
  v: PackedVault;
  vault: ReturnType<typeof memoryVault>;
  catalog: DynamoCatalog;
  regions: RegionVault[];
}

/**
 * Starts DynamoDB Local for the calling test file (its beforeAll/afterAll)
 * and returns a maker of fixtures: each a fresh table holding the generic
 * database's registration, and an empty memory vault as the one region.
 */
export function packedFixtures(): () => Promise<PackedFixture> {
  let ddb: DynamoEmulator;
  let ddbClient: DynamoDBClient;
  beforeAll(async () => {
    ddb = await startDynamo();
    ddbClient = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  });
  afterAll(async () => {
    ddbClient?.destroy();
    await ddb?.stop();
  });
  return () => packedFixture(ddb, ddbClient);
}

async function packedFixture(ddb: DynamoEmulator, ddbClient: DynamoDBClient): Promise<PackedFixture> {
  const tableName = `walvault-prune-${randomUUID()}`;
  await createTable(ddbClient, tableName);
  const catalog = new DynamoCatalog({ tableName, region: "us-east-1", endpoint: ddb.endpoint, credentials: LOCAL_CREDENTIALS });
  await catalog.putDatabase(genericDb);
  const vault = memoryVault();
  return { v: { store: vault, bucket: "vault", catalog, databaseId: GDB }, vault, catalog, regions: [{ region: "r1", store: vault, bucket: "vault", primary: true }] };
}

/**
 * Records a snapshot of one file made of these chunks (all reused: their packs are already stored); with `pages`, its
 * manifest in format 2; recorded at `at` unless `recordedAt` says otherwise; `named`: the pack the manifest names for
 * each chunk (by SHA-256), as the agent writes it.
 */
export async function snapshotOf(
  f: PackedFixture,
  chunks: readonly Chunk[],
  at: Date,
  pages?: { chunks: number; bytes: number },
  recordedAt = at,
  named?: ReadonlyMap<string, string>,
): Promise<SnapshotRecord> {
  const { snapshotId, manifestKey, manifestSha256 } = await putPackedManifest(f.v, chunks.map((c) => ({ c, isNew: false })), [], at, pages, named);
  const record: SnapshotRecord = {
    databaseId: GDB,
    snapshotId,
    kind: "generic",
    streams: { wal: "wal/1" },
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    manifestKey,
    manifestSha256,
    manifestSize: 1,
    totals: { files: 1, logicalBytes: 0, uniqueChunks: chunks.length, newChunks: 0, storedBytes: 0, newStoredBytes: 0 },
    status: "restorable",
    recordedAt: recordedAt.toISOString(),
    replicas: {},
  };
  await f.catalog.recordSnapshot(record);
  return record;
}

/** Rebuilds the snapshot's file as a restore does: each chunk from the pack its manifest names when that pack holds it, else where its catalog record says. */
export async function restoreFile(f: PackedFixture, s: SnapshotRecord): Promise<Buffer> {
  const m = await openVaultManifest(f.vault, "vault", s, genericDb);
  const file = (await m.page(0)).entries.find((x) => x.type === "file");
  if (file?.type !== "file") throw new Error("no file");
  const records = new Map((await f.catalog.getChunks(GDB, file.chunks.map((c) => c.sha256))).map((r) => [r.sha256, r]));
  const named = new PackIndexCache(f.catalog, f.vault, "vault", GDB);
  const parts: Buffer[] = [];
  for (const c of file.chunks) {
    const name = namedPackOf(c, m.header);
    const held = name === undefined ? undefined : await named.holding(name, c, { repacked: true });
    const r = held !== undefined ? { vaultKey: held.pack.vaultKey, offset: held.entry.offset, storedSize: held.entry.storedLength } : records.get(c.sha256);
    if (r?.offset === undefined) throw new Error(`chunk ${c.sha256} is in no pack its manifest names and has no packed record`);
    const stored = await f.vault.getRange("vault", r.vaultKey, r.offset, r.offset + r.storedSize - 1);
    if (!stored) throw new Error(`pack ${r.vaultKey} is gone`);
    parts.push(await decodeWith(c.codec, stored, c.sha256, c.size));
  }
  return Buffer.concat(parts);
}


export const deleting = (s: SnapshotRecord): RetentionPlan => ({ keep: [], deleteSnapshots: [{ snapshotId: s.snapshotId, finishedAt: new Date(s.finishedAt) }], deleteWal: [], keepWal: 0, deleteRanges: [] });
export const nothing: RetentionPlan = { keep: [], deleteSnapshots: [], deleteWal: [], keepWal: 0, deleteRanges: [] };
/** One retention run at `now` carrying out `plan` (the records of `snapshots` it deletes), sweeping with packOpts. */
export const run = (f: PackedFixture, plan: RetentionPlan, snapshots: SnapshotRecord[], now: Date, runId: string): Promise<PruneSummary> =>
  executePrune(genericDb, plan, { snapshots, wal: [] }, f.catalog, f.regions, { runId, now, graceMs: GRACE, by: "test", packs: packOpts });
