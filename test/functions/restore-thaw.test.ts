/**
 * functions/restore/thaw.ts over a packed snapshot, without a stack: the
 * vault is an in-memory ObjectStore (function fields) that reports storage
 * classes and records every head, get and restore request; the catalog
 * holds the chunk records storeRecordedPacks writes (packs with offsets) and one
 * chunk from before packs. The pass must head the vault objects that hold
 * the chunks (packs, not chunk keys), one head per distinct pack per window,
 * request restores only for archived objects never restored, count the
 * pending ones, and keep its cursor within the budget, reading the manifest
 * once per pass.
 */
import { describe, expect, it } from "vitest";
import { NotFoundError } from "../../core/errors.js";
import { snapshotPageKey, vaultChunkKey, vaultPackKey } from "../../core/keys.js";
import type { BuiltPack } from "../../core/pack.js";
import type { RestorePlanOutput } from "../../core/restore-workflow.js";
import type { ChunkItem, PackItem } from "../../core/schemas.js";
import { thawChunkPageKey, thawPass, type ThawOutput } from "../../functions/restore/thaw.js";
import { payloadBytes } from "../../local/limits.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectInfo, ObjectRestore, ObjectStore, StoredObject } from "../../store/object-store.js";
import { MemoryWorkObjects, writeRestorePlan } from "../../store/work-objects.js";
import { makeChunk, putPackedManifest, storeChunkObject, storeRecordedPacks, type Chunk, type PackedVault } from "../store/packed-vault.js";

const DB = "gen-thaw";
const BUCKET = "vault";
const PLAN_KEY = `work/restore/${DB}/exec-1/plan.json`;

interface FakeVault extends ObjectStore {
  /** Storage class and restore state by key (absent: STANDARD). */
  classes: Map<string, { storageClass: string; restore?: ObjectRestore }>;
  heads: string[];
  gets: string[];
  restores: string[];
}

/** An in-memory vault that reports the storage classes set in `classes`. */
function fakeVault(): FakeVault {
  const objects = new Map<string, StoredObject>();
  const classes = new Map<string, { storageClass: string; restore?: ObjectRestore }>();
  const heads: string[] = [];
  const gets: string[] = [];
  const restores: string[] = [];
  const info = (key: string): ObjectInfo | undefined => {
    const o = objects.get(key);
    if (!o) return undefined;
    const { body: _body, ...rest } = o;
    const c = classes.get(key);
    return { ...rest, ...(c ? { storageClass: c.storageClass, ...(c.restore ? { restore: c.restore } : {}) } : {}) };
  };
  return {
    name: "fake",
    classes,
    heads,
    gets,
    restores,
    put: async (_b, key, body, metadata) => {
      objects.set(key, { key, size: body.byteLength, metadata, body: Buffer.from(body) });
      return {};
    },
    get: async (_b, key) => {
      gets.push(key);
      return objects.get(key);
    },
    getRange: async () => {
      throw new Error("thaw reads no ranges");
    },
    head: async (_b, key) => {
      heads.push(key);
      return info(key);
    },
    copy: async () => {
      throw new Error("thaw copies nothing");
    },
    delete: async () => {
      throw new Error("thaw deletes nothing");
    },
    list: async function* () {
      // thaw lists nothing
    },
    requestRestore: async (_b, key) => {
      if (!objects.has(key)) throw new NotFoundError(`${key} does not exist`);
      restores.push(key);
      const c = classes.get(key);
      if (c) c.restore = { ongoing: true };
    },
  };
}

/** The chunk and pack records storeRecordedPacks and storeChunkObject write, and the getChunks batches asked for. */
function fakeCatalog(): Pick<Catalog, "getChunks" | "recordChunks" | "recordPacks" | "getPacks"> & { batches: number[]; packs: Map<string, PackItem> } {
  const records = new Map<string, ChunkItem>();
  const packs = new Map<string, PackItem>();
  const batches: number[] = [];
  return {
    batches,
    packs,
    recordChunks: async (items) => void items.forEach((r) => records.set(r.sha256, r)),
    recordPacks: async (items) => void items.forEach((p) => packs.set(p.name, p)),
    getPacks: async (_db, names) => [...new Set(names)].flatMap((n) => packs.get(n) ?? []),
    getChunks: async (_db, hashes) => {
      batches.push(hashes.length);
      return [...new Set(hashes)].flatMap((h) => records.get(h) ?? []);
    },
  };
}

interface Fixture {
  vault: FakeVault;
  catalog: ReturnType<typeof fakeCatalog>;
  work: MemoryWorkObjects;
  packs: BuiltPack[];
  legacy: Chunk;
  manifestKey: string;
  walKeys: string[];
}

/**
 * A snapshot of `chunkCount` chunks in packs (9 a pack) plus one chunk object from before packs, 2 WAL segments, and its plan;
 * with `pages`, its manifest in format 2 with those page limits.
 */
async function packedSnapshot(chunkCount: number, pages?: { chunks: number; bytes: number }, named = false): Promise<Fixture> {
  const vault = fakeVault();
  const catalog = fakeCatalog();
  const work = new MemoryWorkObjects();
  const v: PackedVault = { store: vault, bucket: BUCKET, catalog: catalog as unknown as Catalog, databaseId: DB };
  const chunks = await Promise.all(Array.from({ length: chunkCount }, (_, i) => makeChunk(`c${i}`)));
  const packs = await storeRecordedPacks(v, chunks);
  const legacy = await makeChunk("legacy");
  await storeChunkObject(v, legacy);
  // `named`: every packed chunk reused, naming its pack (format 2's reusedPack), as an incremental push writes them.
  const listed = [...chunks, legacy, chunks[0]!].map((c, i) => ({ c, isNew: !named && i < chunkCount + 1 }));
  const packOf = new Map(packs.flatMap((p) => p.entries.map((e) => [e.sha256, p.name] as const)));
  const { snapshotId, manifestKey, manifestSha256 } = await putPackedManifest(v, listed, named ? [] : packs, new Date(), pages, named ? packOf : undefined);
  const walKeys = [1, 2].map((n) => `db/${DB}/wal/wal/seg-${n}`);
  for (const k of walKeys) await vault.put(BUCKET, k, Buffer.from("wal"), {});
  const plan: RestorePlanOutput = {
    databaseId: DB,
    kind: "generic",
    walSegmentSize: 16,
    snapshot: { id: snapshotId, timeline: 1, startLsn: "0", stopLsn: "1", startedAt: "2026-03-01T10:00:00Z", finishedAt: "2026-03-01T10:00:00Z" },
    manifestKey,
    manifestSha256,
    chunkCount: chunkCount + 1,
    targetTimeline: 1,
    timelinePath: [1],
    wal: walKeys.map((key, i) => ({ stream: "wal", timeline: 1, name: `seg-${i + 1}`, key })),
    walCount: walKeys.length,
    recoveryTarget: null,
    endLsn: null,
    warnings: [],
  };
  await writeRestorePlan(work, PLAN_KEY, plan);
  vault.heads.length = 0;
  vault.gets.length = 0;
  return { vault, catalog, work, packs, legacy, manifestKey, walKeys };
}

const packKey = (p: BuiltPack): string => vaultPackKey(DB, p.name);
const deps = (f: Fixture) => ({ vault: f.vault, vaultBucket: BUCKET, catalog: f.catalog, work: f.work });
const stateOf = (thaw?: ThawOutput) => ({ plan: { planKey: PLAN_KEY, databaseId: DB }, ...(thaw ? { thaw } : {}) });

/** Runs one pass to its end, as the workflow does (Thaw, then CheckThaw while `more`). */
async function wholePass(f: Fixture, batch: number, chunkPageSize?: number): Promise<ThawOutput[]> {
  const outputs: ThawOutput[] = [];
  const options = { batch, ...(chunkPageSize === undefined ? {} : { chunkPageSize }) };
  let out = await thawPass(deps(f), { ...stateOf(), thaw: true }, options);
  outputs.push(out);
  while (out.more) {
    out = await thawPass(deps(f), stateOf(out), options);
    outputs.push(out);
  }
  return outputs;
}

describe("thaw over a packed snapshot", () => {
  it("heads each pack once, never the packed chunks' own keys, requests restores only of archived packs never restored, and counts the pending ones", async () => {
    // Prepare: 40 chunks in 5 packs; pack 1 in GLACIER (never restored), pack 2 in DEEP_ARCHIVE being restored,
    // pack 3 in GLACIER with a restored copy, pack 4 in GLACIER_IR (instant), the rest STANDARD.
    const f = await packedSnapshot(40);
    expect(f.packs.length).toBeGreaterThanOrEqual(5);
    f.vault.classes.set(packKey(f.packs[1]!), { storageClass: "GLACIER" });
    f.vault.classes.set(packKey(f.packs[2]!), { storageClass: "DEEP_ARCHIVE", restore: { ongoing: true } });
    f.vault.classes.set(packKey(f.packs[3]!), { storageClass: "GLACIER", restore: { ongoing: false } });
    f.vault.classes.set(packKey(f.packs[4]!), { storageClass: "GLACIER_IR" });

    // Act: one invocation covers the pass
    const [out, ...rest] = await wholePass(f, 1000);

    // Assess
    expect(rest).toEqual([]);
    const expected = [f.manifestKey, ...f.walKeys, ...f.packs.map(packKey), vaultChunkKey(DB, f.legacy.sha256)];
    // The manifest once more: the reader heads it to bound its read (store/manifest-pages.ts).
    expect([...f.vault.heads].sort()).toEqual([...expected, f.manifestKey].sort());
    expect(f.vault.restores).toEqual([packKey(f.packs[1]!)]);
    expect(out).toMatchObject({ pending: 2, requested: 1, objects: expected.length, more: false, cursor: null });
    expect(Math.max(...f.catalog.batches)).toBeLessThanOrEqual(1000);
  });

  it("walks the chunks in windows of the budget: the cursor moves at most a budget per invocation, each pack is headed once per window that needs it, and the manifest is read and listed once", async () => {
    // Prepare: 60 chunks (7 packs), a budget of 10 entries per invocation; every pack archived
    const f = await packedSnapshot(60);
    for (const p of f.packs) f.vault.classes.set(packKey(p), { storageClass: "GLACIER" });
    const pagePuts: string[] = [];
    const put = f.work.put.bind(f.work);
    f.work.put = async (key, value) => {
      if (key.includes("thaw-chunks-")) pagePuts.push(key);
      await put(key, value);
    };

    // Act
    const outputs = await wholePass(f, 10);

    // Assess: 1 manifest + 2 WAL + 61 unique chunks in invocations of at most 10 entries
    expect(outputs.length).toBe(Math.ceil((1 + 2 + 61) / 10));
    const chunkSteps = outputs.map((o) => o.cursor).filter((c) => c?.phase === "chunks").map((c) => c!.index);
    chunkSteps.forEach((index, i) => expect(index - (chunkSteps[i - 1] ?? 0)).toBeLessThanOrEqual(10));
    expect(outputs.at(-1)).toMatchObject({ more: false, cursor: null, pending: expect.any(Number) });
    // Every pack headed; in manifest order a window covers a run of packs: only a pack at a window's edge is headed twice.
    const headsPerPack = f.packs.map((p) => f.vault.heads.filter((k) => k === packKey(p)).length);
    for (const n of headsPerPack) expect(n).toBeGreaterThanOrEqual(1);
    for (const n of headsPerPack) expect(n).toBeLessThanOrEqual(2);
    expect(headsPerPack.reduce((a, b) => a + b, 0)).toBeLessThan(f.packs.length + Math.ceil(61 / 10));
    expect(f.vault.heads.filter((k) => k.includes("/chunks/") && k !== vaultChunkKey(DB, f.legacy.sha256))).toEqual([]);
    // Restores asked once per pack (a pack being restored is not asked again), all pending.
    expect([...f.vault.restores].sort()).toEqual(f.packs.map(packKey).sort());
    expect(outputs.at(-1)!.pending).toBe(headsPerPack.reduce((a, b) => a + b, 0));
    expect(f.vault.gets.filter((k) => k === f.manifestKey)).toHaveLength(1);
    expect(pagePuts).toEqual([thawChunkPageKey(PLAN_KEY, 0)]);
    // The state carries counts and a cursor only.
    for (const o of outputs) expect(payloadBytes(o)).toBeLessThan(512);
  });

  it("crosses pages of the chunk list: a window ends at its page's end, and every pack is still headed", async () => {
    // Prepare: 30 chunks (4 packs) + the legacy one, pages of 7 hashes, a budget of 10 entries
    const f = await packedSnapshot(30);
    const pagesRead: string[] = [];
    const get = f.work.get.bind(f.work);
    f.work.get = async (key) => {
      if (key.includes("thaw-chunks-")) pagesRead.push(key);
      return get(key);
    };

    // Act
    const outputs = await wholePass(f, 10, 7);

    // Assess: 31 hashes in 5 pages, each read (chunk 0, referenced again at the end, is listed again on a
    // later page: a hash is left out only when it is on the page being filled); a window (one getChunks
    // call) never runs past its page's end
    expect(f.catalog.batches.reduce((a, b) => a + b, 0)).toBe(32);
    for (const n of f.catalog.batches) expect(n).toBeLessThanOrEqual(7);
    expect(new Set(pagesRead)).toEqual(new Set([0, 1, 2, 3, 4].map((p) => thawChunkPageKey(PLAN_KEY, p))));
    expect(new Set(f.vault.heads)).toEqual(new Set([f.manifestKey, ...f.walKeys, ...f.packs.map(packKey), vaultChunkKey(DB, f.legacy.sha256)]));
    expect(outputs.at(-1)).toMatchObject({ more: false, pending: 0, requested: 0 });
  });

  it("a second pass (CheckThaw after the wait) lists the chunks again and finds nothing pending once the restores are done", async () => {
    // Prepare: a first pass that requested the restore of one pack
    const f = await packedSnapshot(20);
    f.vault.classes.set(packKey(f.packs[0]!), { storageClass: "DEEP_ARCHIVE" });
    const first = (await wholePass(f, 1000)).at(-1)!;
    f.vault.classes.get(packKey(f.packs[0]!))!.restore = { ongoing: false };

    // Act: the pass after the Wait starts over from the finished output
    const second = await thawPass(deps(f), stateOf(first), { batch: 1000 });

    // Assess
    expect(first).toMatchObject({ pending: 1, requested: 1 });
    expect(second).toMatchObject({ pending: 0, requested: 0, more: false });
    expect(f.vault.restores).toEqual([packKey(f.packs[0]!)]);
    expect(f.vault.gets.filter((k) => k === f.manifestKey)).toHaveLength(2);
  });

  it("an archived manifest gets its restore requested and its chunks wait for a later pass", async () => {
    // Prepare
    const f = await packedSnapshot(10);
    f.vault.classes.set(f.manifestKey, { storageClass: "GLACIER" });

    // Act
    const out = (await wholePass(f, 1000)).at(-1)!;

    // Assess: manifest and WAL headed, no pack: the manifest could not be read
    expect(f.vault.restores).toEqual([f.manifestKey]);
    expect([...f.vault.heads].sort()).toEqual([f.manifestKey, ...f.walKeys].sort());
    expect(f.vault.gets).toEqual([]);
    expect(out).toMatchObject({ pending: 1, requested: 1, more: false });
  });

  it("format 2: visits every page object, and lists the chunks of every page once all are readable", async () => {
    // Prepare: 30 chunks on pages of 8 references; page 2 archived
    const f = await packedSnapshot(30, { chunks: 8, bytes: 1 << 20 });
    const pageKeys = [0, 1, 2, 3].map((i) => snapshotPageKey(f.manifestKey, i));
    f.vault.classes.set(pageKeys[2]!, { storageClass: "GLACIER" });

    // Act: a pass while the page is archived, then one after its restore
    const first = (await wholePass(f, 1000)).at(-1)!;
    const headsBefore = f.vault.heads.length;
    f.vault.classes.get(pageKeys[2]!)!.restore = { ongoing: false };
    const second = (await wholePass(f, 1000)).at(-1)!;

    // Assess: the first pass asks for the page and waits for it (no pack headed), the second heads every pack
    expect(f.vault.restores).toEqual([pageKeys[2]]);
    expect(first).toMatchObject({ pending: 1, requested: 1, more: false });
    expect(f.vault.heads.slice(0, headsBefore).filter((k) => k.includes("/packs/"))).toEqual([]);
    expect(second).toMatchObject({ pending: 0, requested: 0, more: false });
    const later = new Set(f.vault.heads.slice(headsBefore));
    for (const k of [...pageKeys, ...f.packs.map(packKey), vaultChunkKey(DB, f.legacy.sha256)]) expect(later).toContain(k);
    expect(f.vault.gets.filter((k) => k.includes("/pages/"))).toEqual(pageKeys);
  });

  it("format 2: heads the pack a chunk's reference names, reading no record for it; a pack no longer recorded and an unnamed chunk go by their records", async () => {
    // Prepare: 30 reused chunks naming their 4 packs, one chunk from before packs; the last pack's record is gone (swept after a repack).
    const f = await packedSnapshot(30, { chunks: 8, bytes: 1 << 20 }, true);
    const gone = f.packs.at(-1)!;
    f.catalog.packs.delete(gone.name);
    const goneChunks = gone.entries.length;

    // Act
    await wholePass(f, 1_000);

    // Assess: every pack headed; records read only for the legacy chunk and the chunks of the pack no longer recorded.
    for (const p of f.packs) expect(f.vault.heads).toContain(packKey(p));
    expect(f.vault.heads).toContain(vaultChunkKey(DB, f.legacy.sha256));
    expect(f.catalog.batches.reduce((a, b) => a + b, 0)).toBe(goneChunks + 1);
  });

  it("fails with NotFoundError naming a pack that is missing from the vault", async () => {
    // Prepare
    const f = await packedSnapshot(10);
    const gone = packKey(f.packs[0]!);
    const head = f.vault.head.bind(f.vault);
    f.vault.head = async (b, k, v, o) => (k === gone ? undefined : head(b, k, v, o));

    // Act
    const err = await wholePass(f, 1000).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(gone);
  });
});
