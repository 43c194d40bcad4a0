/**
 * store/replication.ts with packs, against two real s3rver endpoints (the
 * local stack's primary and one replica region) and the stack's catalog: a
 * packed snapshot is copied one PUT per pack, no copy read back; a replica
 * that already holds a pack is not written again; a replica pack of the wrong
 * size is written over, and a copy that comes out wrong is reported with no
 * manifest written. Reused chunks (in an older pack, or stored as their own
 * object from before packs) reach the replica before the manifest does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChecksumMismatchError } from "../../core/errors.js";
import { snapshotPageKey, vaultChunkKey, vaultPackKey } from "../../core/keys.js";
import type { BuiltPack } from "../../core/pack.js";
import { META_DATABASE } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { createObjectStore } from "../../store/factory.js";
import { openManifest, StoreManifestObjects } from "../../store/manifest-pages.js";
import type { ObjectStore } from "../../store/object-store.js";
import { replicateSnapshotBatch, type SnapshotBatch } from "../../store/replication.js";
import { listKeys, recordingCalls, stackClients } from "../support/harness.js";
import { makeChunk, putPackedManifest, storeChunkObject, storeRecordedPacks, type Chunk, type PackedVault } from "./packed-vault.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const REGION = "local-2";
const DB = "pg-main";
let stack: TestStack;
let catalog: Catalog;
let primary: { store: ObjectStore; bucket: string };
let replicaStore: ObjectStore;
let replicaBucket: string;

/** Counts requests per method and key prefix area ("packs", "chunks", "snapshots"). */
function countedStore(inner: ObjectStore): ObjectStore & { calls: string[]; count(method: string, area: string): number; reset(): void } {
  const calls: string[] = [];
  const area = (k: string): string => k.split("/")[2] ?? "";
  const w = Object.create(inner) as ObjectStore & { calls: string[]; count(method: string, area: string): number; reset(): void };
  w.calls = calls;
  w.count = (method, a) => calls.filter((c) => c === `${method} ${a}`).length;
  w.reset = () => void calls.splice(0);
  w.put = (b, k, body, m, o) => (calls.push(`put ${area(k)}`), inner.put(b, k, body, m, o));
  w.get = (b, k, v) => (calls.push(`get ${area(k)}`), inner.get(b, k, v));
  w.getRange = (b, k, s, e) => (calls.push(`getRange ${area(k)}`), inner.getRange(b, k, s, e));
  w.head = (b, k, v, o) => (calls.push(`head ${area(k)}`), inner.head(b, k, v, o));
  return w;
}

const vault = (): PackedVault => ({ store: primary.store, bucket: primary.bucket, catalog, databaseId: DB });

interface PackedSnapshot {
  manifestKey: string;
  manifestSha256: string;
  /** Its own packs. */
  own: BuiltPack[];
  /** The older pack holding its reused chunks. */
  older: BuiltPack[];
  /** Its reused chunk stored as its own object. */
  loose: Chunk;
}

/**
 * A snapshot whose push uploaded `newCount` chunks in packs of its own, and
 * which reuses chunks in an older pack and one chunk object from before
 * packs: its manifest lists only its own packs.
 */
async function packedSnapshot(tag: string, newCount: number, pages?: { chunks: number; bytes: number; inline?: boolean }): Promise<PackedSnapshot> {
  const v = vault();
  const reused = await Promise.all([0, 1, 2].map((i) => makeChunk(`${tag} old ${i}`)));
  const older = await storeRecordedPacks(v, reused);
  const loose = await makeChunk(`${tag} loose`);
  await storeChunkObject(v, loose);
  // A 64 KiB-target pack holds 9 chunks of ~7 KiB stored: 20 new chunks make 3 packs, 12 make 2.
  const fresh = await Promise.all(Array.from({ length: newCount }, (_, i) => makeChunk(`${tag} new ${i}`)));
  const own = await storeRecordedPacks(v, fresh);
  const order = [...reused.map((c) => ({ c, isNew: false })), { c: loose, isNew: false }, ...fresh.map((c) => ({ c, isNew: true }))];
  const { manifestKey, manifestSha256 } = await putPackedManifest(v, order, own, new Date(), pages);
  return { manifestKey, manifestSha256, own, older, loose };
}

/** Runs batches from cursor 0 until done, as the workflow's loop does. */
async function replicateAll(
  s: PackedSnapshot,
  replica: { store: ObjectStore; bucket: string },
  opts: { maxPacks: number; maxChunks?: number },
): Promise<{ batches: SnapshotBatch[]; last: SnapshotBatch }> {
  const batches: SnapshotBatch[] = [];
  let cursor = 0;
  for (;;) {
    const b = await replicateSnapshotBatch(primary, replica, s.manifestKey, s.manifestSha256, {
      region: REGION,
      cursor,
      maxChunks: opts.maxChunks ?? 1000,
      maxPacks: opts.maxPacks,
      catalog,
    });
    batches.push(b);
    if (b.done) return { batches, last: b };
    cursor = b.cursor;
  }
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }], { replicaRegions: [REGION] });
  const clients = stackClients(stack);
  catalog = clients.catalog;
  primary = { store: clients.store, bucket: stack.config.vaultBucket };
  const r = stack.config.replicas![0]!;
  replicaStore = createObjectStore({ region: REGION, s3Endpoint: r.s3Endpoint, credentials: stack.config.credentials });
  replicaBucket = r.vaultBucket;
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("replicateSnapshotBatch with packs", () => {
  it("copies each pack once (one PUT, no read-back), its reused chunks' pack and chunk object too, in batches of maxPacks, manifest last", async () => {
    // Prepare
    const s = await packedSnapshot("first", 20);
    const replica = { store: countedStore(replicaStore), bucket: replicaBucket };
    const source = countedStore(primary.store);
    const src = { store: source, bucket: primary.bucket };
    // Act
    const batches: SnapshotBatch[] = [];
    let cursor = 0;
    let manifestBeforeLast: unknown = "unchecked";
    for (;;) {
      const b = await replicateSnapshotBatch(src, replica, s.manifestKey, s.manifestSha256, { region: REGION, cursor, maxChunks: 1000, maxPacks: 2, catalog });
      batches.push(b);
      if (b.done) break;
      manifestBeforeLast = await replicaStore.head(replicaBucket, s.manifestKey);
      cursor = b.cursor;
    }
    // Assess: 3 own packs at 2 per call, then the reused chunks' pack and object.
    expect(s.own.length).toBe(3);
    expect(s.older.length).toBe(1);
    expect(batches.map((b) => [b.done, b.cursor, b.copiedPacks])).toEqual([
      [false, 2, 2],
      [true, 3 + 24, 2],
    ]);
    expect(batches.at(-1)).toMatchObject({ chunks: 24, packs: 3, copiedChunks: 1 });
    expect(manifestBeforeLast).toBeUndefined();
    expect(replica.store.count("put", "packs")).toBe(4);
    expect(replica.store.count("get", "packs") + replica.store.count("getRange", "packs")).toBe(0);
    expect(source.count("get", "packs")).toBe(4);
    for (const p of [...s.own, ...s.older]) {
      const copy = await replicaStore.get(replicaBucket, vaultPackKey(DB, p.name));
      expect(copy?.body.equals(p.bytes)).toBe(true);
      expect(copy?.metadata[META_DATABASE]).toBe(DB);
    }
    expect((await replicaStore.get(replicaBucket, vaultChunkKey(DB, s.loose.sha256)))?.body.equals(s.loose.stored)).toBe(true);
    expect((await replicaStore.get(replicaBucket, s.manifestKey))?.body).toEqual((await primary.store.get(primary.bucket, s.manifestKey))?.body);
  });

  it("takes a reused chunk's pack from the manifest (its index read once), with no catalog lookup; by the chunk's record when the named pack is repacked or does not hold it", async () => {
    // Prepare: reused chunks in two older packs A and B; the manifest names A for a0-a2, B for b0 and (wrongly) for b1, which is in C.
    const v = vault();
    const a = await Promise.all([0, 1, 2].map((i) => makeChunk(`named a ${i}`)));
    const b = await Promise.all([0].map((i) => makeChunk(`named b ${i}`)));
    const cChunk = await makeChunk("named c 0");
    const [packA] = await storeRecordedPacks(v, a);
    const [packB] = await storeRecordedPacks(v, b);
    const [packC] = await storeRecordedPacks(v, [cChunk]);
    const fresh = await Promise.all([0, 1].map((i) => makeChunk(`named new ${i}`)));
    const own = await storeRecordedPacks(v, fresh);
    const order = [...a, ...b, cChunk].map((c) => ({ c, isNew: false })).concat(fresh.map((c) => ({ c, isNew: true })));
    const names = new Map<string, string>([...a.map((c) => [c.sha256, packA!.name] as const), [b[0]!.sha256, packB!.name], [cChunk.sha256, packB!.name]]);
    const s = await putPackedManifest(v, order, own, new Date(), { chunks: 3, bytes: 1024 * 1024 }, names);
    const { proxy, calls } = recordingCalls(catalog, ["getChunks", "getPack"]);
    // Act
    const first = await replicateSnapshotBatch(primary, { store: replicaStore, bucket: replicaBucket }, s.manifestKey, s.manifestSha256, { region: REGION, cursor: 0, maxChunks: 1000, catalog: proxy });
    // B is repacked since: the same snapshot again (in another region's terms, a fresh copy) looks b0 up by its record.
    const firstLookups = calls.getChunks.splice(0).flatMap((c) => c[1] as string[]);
    await catalog.markPacksRepacked(DB, [packB!.name], new Date().toISOString());
    const again = await replicateSnapshotBatch(primary, { store: replicaStore, bucket: replicaBucket }, s.manifestKey, s.manifestSha256, { region: REGION, cursor: 0, maxChunks: 1000, catalog: proxy });
    // Assess: only c0 (named B, which does not hold it) was looked up; then b0 too, B being repacked.
    expect(first).toMatchObject({ done: true });
    expect(firstLookups).toEqual([cChunk.sha256]);
    expect(again).toMatchObject({ done: true, copiedPacks: 0 });
    for (const p of [packA!, packB!, packC!, ...own]) expect((await replicaStore.get(replicaBucket, vaultPackKey(DB, p.name)))?.body.equals(p.bytes)).toBe(true);
    expect(calls.getChunks.flatMap((c) => c[1] as string[]).sort()).toEqual([b[0]!.sha256, cChunk.sha256].sort());
  });

  it("a push without packs after packed ones: copies its new chunk objects, and the pack its reused chunks are recorded in, once, manifest last", async () => {
    // Prepare: three reused chunks in an older pack, one reused chunk object, two new chunk objects; the manifest lists no packs.
    const v = vault();
    const reused = await Promise.all([0, 1, 2].map((i) => makeChunk(`unpacked old ${i}`)));
    const [older] = await storeRecordedPacks(v, reused);
    const loose = await makeChunk("unpacked loose");
    const fresh = await Promise.all([0, 1].map((i) => makeChunk(`unpacked new ${i}`)));
    for (const c of [loose, ...fresh]) await storeChunkObject(v, c);
    const order = [...reused.map((c) => ({ c, isNew: false })), { c: loose, isNew: false }, ...fresh.map((c) => ({ c, isNew: true }))];
    const s = await putPackedManifest(v, order, undefined, new Date(), { chunks: 4, bytes: 1024 * 1024 });
    const replica = { store: countedStore(replicaStore), bucket: replicaBucket };
    // Act
    const b = await replicateSnapshotBatch(primary, replica, s.manifestKey, s.manifestSha256, { region: REGION, cursor: 0, maxChunks: 1000, catalog });
    // Assess
    expect(b).toMatchObject({ done: true, chunks: 6, copiedChunks: 3, copiedPacks: 1 });
    expect(replica.store.count("put", "packs")).toBe(1);
    expect((await replicaStore.get(replicaBucket, vaultPackKey(DB, older!.name)))?.body.equals(older!.bytes)).toBe(true);
    for (const c of [loose, ...fresh]) expect((await replicaStore.get(replicaBucket, vaultChunkKey(DB, c.sha256)))?.body.equals(c.stored)).toBe(true);
    expect(await replicaStore.head(replicaBucket, s.manifestKey)).toBeDefined();
  });

  it("format 2: copies every page, proven, before the header, and the replica opens the snapshot and reads its pages", async () => {
    // Prepare: 24 chunk references on pages of 5 (5 pages)
    const s = await packedSnapshot("paged", 20, { chunks: 5, bytes: 1 << 20 });
    const replica = { store: replicaStore, bucket: replicaBucket };
    const pageKeys = [0, 1, 2, 3, 4].map((i) => snapshotPageKey(s.manifestKey, i));

    // Act: at most 2 objects (chunks or pages) per call
    const batches: SnapshotBatch[] = [];
    let cursor = 0;
    const headerBefore: unknown[] = [];
    for (;;) {
      const b = await replicateSnapshotBatch(primary, replica, s.manifestKey, s.manifestSha256, { region: REGION, cursor, maxChunks: 2, maxPacks: 2, catalog });
      batches.push(b);
      if (b.done) break;
      headerBefore.push(await replicaStore.head(replicaBucket, s.manifestKey));
      cursor = b.cursor;
    }

    // Assess: positions are 3 packs, 24 references, 5 pages; the header only with the last call
    expect(batches.at(-1)).toMatchObject({ done: true, cursor: 3 + 24 + 5, chunks: 24, pages: 5, packs: 3 });
    expect(headerBefore.every((h) => h === undefined)).toBe(true);
    for (const k of pageKeys) expect((await replicaStore.get(replicaBucket, k))?.body).toEqual((await primary.store.get(primary.bucket, k))?.body);
    const opened = await openManifest(new StoreManifestObjects(replicaStore, replicaBucket), s.manifestKey);
    let refs = 0;
    for await (const e of opened!.entries()) if (e.type === "file") refs += e.chunks.length;
    expect([opened!.format, opened!.pageCount, refs]).toEqual([2, 5, 24]);
    for (const p of [...s.own, ...s.older]) expect(await replicaStore.head(replicaBucket, vaultPackKey(DB, p.name))).toBeDefined();
    expect(await replicaStore.head(replicaBucket, vaultChunkKey(DB, s.loose.sha256))).toBeDefined();
  });

  it("format 2 with its pages in the header: copies no page object, the header last, and the replica reads every page from it", async () => {
    // Prepare: 24 chunk references on pages of 5 (5 pages), carried by the header
    const s = await packedSnapshot("inline", 20, { chunks: 5, bytes: 1 << 20, inline: true });
    const replica = { store: countedStore(replicaStore), bucket: replicaBucket };

    // Act
    const { last } = await replicateAll(s, replica, { maxPacks: 16 });

    // Assess: the positions and pages counted as before, but only the header was put under snapshots/
    expect(last).toMatchObject({ done: true, chunks: 24, pages: 5, packs: 3 });
    expect(replica.store.count("put", "snapshots")).toBe(1);
    expect(await listKeys(replicaStore, replicaBucket, s.manifestKey.replace(/manifest\.json$/, "pages/"))).toEqual([]);
    const opened = await openManifest(new StoreManifestObjects(replicaStore, replicaBucket), s.manifestKey);
    let refs = 0;
    for await (const e of opened!.entries()) if (e.type === "file") refs += e.chunks.length;
    expect([opened!.format, opened!.pageCount, opened!.pageObjects, refs]).toEqual([2, 5, [], 24]);
  });

  it("does not write or read again the packs a replica already holds", async () => {
    // Prepare: replicated once.
    const s = await packedSnapshot("again", 12);
    await replicateAll(s, { store: replicaStore, bucket: replicaBucket }, { maxPacks: 16 });
    const replica = { store: countedStore(replicaStore), bucket: replicaBucket };
    const source = countedStore(primary.store);
    // Act
    const b = await replicateSnapshotBatch({ store: source, bucket: primary.bucket }, replica, s.manifestKey, s.manifestSha256, {
      region: REGION,
      cursor: 0,
      maxChunks: 1000,
      maxPacks: 16,
      catalog,
    });
    // Assess: one HEAD per pack in the replica, no PUT, no pack body read anywhere.
    expect(b).toMatchObject({ done: true, copiedPacks: 0, copiedChunks: 0 });
    expect(replica.store.count("head", "packs")).toBe(s.own.length + s.older.length);
    expect(replica.store.count("put", "packs")).toBe(0);
    expect(source.count("get", "packs")).toBe(0);
    expect(replica.store.count("put", "snapshots")).toBe(0);
  });

  it("writes over a replica pack of the wrong size and leaves the others alone", async () => {
    // Prepare: replicated, then one replica pack cut short under the same metadata.
    const s = await packedSnapshot("torn", 12);
    await replicateAll(s, { store: replicaStore, bucket: replicaBucket }, { maxPacks: 16 });
    const torn = s.own[0]!;
    const key = vaultPackKey(DB, torn.name);
    const held = (await replicaStore.get(replicaBucket, key))!;
    await replicaStore.put(replicaBucket, key, held.body.subarray(0, held.body.length - 100), held.metadata);
    const replica = { store: countedStore(replicaStore), bucket: replicaBucket };
    // Act
    const { last } = await replicateAll(s, replica, { maxPacks: 16 });
    // Assess
    expect(last).toMatchObject({ done: true, copiedPacks: 1 });
    expect(replica.store.count("put", "packs")).toBe(1);
    expect((await replicaStore.get(replicaBucket, key))?.body.equals(torn.bytes)).toBe(true);
  });

  it("reports a copy that comes out the wrong size in the replica, naming the pack and region, and writes no manifest", async () => {
    // Prepare: a replica whose PUTs of packs lose their last bytes.
    const s = await packedSnapshot("short", 12);
    const lossy = Object.create(replicaStore) as ObjectStore;
    lossy.put = (b, k, body, m, o) => replicaStore.put(b, k, k.includes("/packs/") ? body.subarray(0, body.length - 1) : body, m, o);
    // Act
    const e = await replicateAll(s, { store: lossy, bucket: replicaBucket }, { maxPacks: 16 }).catch((x: unknown) => x);
    // Assess
    expect(e).toBeInstanceOf(ChecksumMismatchError);
    expect((e as Error).message).toMatch(new RegExp(`copy of pack db/${DB}/packs/[0-9a-f]{64} in ${REGION} has \\d+ bytes`));
    expect(await replicaStore.head(replicaBucket, s.manifestKey)).toBeUndefined();
  });

  it("refuses to copy a primary pack whose bytes do not hash to its name", async () => {
    // Prepare: a primary pack damaged in place (same size).
    const s = await packedSnapshot("rot", 12);
    const bad = s.own[1]!;
    const key = vaultPackKey(DB, bad.name);
    const flipped = Buffer.from(bad.bytes);
    flipped[10] = flipped[10]! ^ 0xff;
    await primary.store.put(primary.bucket, key, flipped, { [META_DATABASE]: DB });
    // Act
    const e = await replicateAll(s, { store: replicaStore, bucket: replicaBucket }, { maxPacks: 16 }).catch((x: unknown) => x);
    // Assess
    expect(e).toBeInstanceOf(ChecksumMismatchError);
    expect((e as Error).message).toContain(`pack ${key} in the primary vault hashes to`);
    expect(await replicaStore.head(replicaBucket, key)).toBeUndefined();
    expect(await replicaStore.head(replicaBucket, s.manifestKey)).toBeUndefined();
  });
});
