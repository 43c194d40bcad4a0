/**
 * store/prune.ts against an in-memory versioned vault with Object Lock (S3's
 * rules: a versioned delete of a locked version is refused; a delete without
 * a version adds a delete marker, whatever the lock) and an in-memory
 * catalog: a locked WAL version is left intact, its key gets a delete marker
 * so the noncurrent lifecycle can remove it after its retention, and it is
 * reported and audited; a journaled run that was interrupted is finished by
 * the next one, without touching what was recorded again since.
 */
import { describe, expect, it } from "vitest";
import { NotFoundError, ObjectLockedError } from "../../core/errors.js";
import { snapshotPageKey, vaultPackKey } from "../../core/keys.js";
import type { BuiltPack } from "../../core/pack.js";
import type { RetentionPlan } from "../../core/retention.js";
import type { AuditRecord, DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { segmentName } from "../../core/wal.js";
import { parseManifest, type SnapshotManifest, type UniqueChunk } from "../../core/snapshot.js";
import { decodeWith } from "../../core/codec.js";
import { checkPackedChunks, checkReusedPacks } from "../../functions/snapshot/check-referenced.js";
import type { Catalog } from "../../store/catalog.js";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import type { ObjectInfo, ObjectStore } from "../../store/object-store.js";
import { readPackIndex } from "../../store/pack-index.js";
import { executePlan, executePrune, executePruneJournaled, nextWalBatch, prunePlan, WAL_LISTED, type PruneJournal, type RegionVault } from "../../store/prune.js";
import { deleting, GDB, genericDb, GRACE, nothing, packedFixtures, packOpts, restoreFile, run, RUN1, RUN2, snapshotOf, type PackedFixture } from "./pack-retention-fixture.js";
import { makeChunk, putPackedManifest, storePacks, storeRecordedPacks, type Chunk } from "./packed-vault.js";
import { pgSnapshotRecord } from "../support/pg-records.js";
import { recordingCalls } from "../support/harness.js";

const DB = "pg-unit";
const database: DatabaseRecord = { databaseId: DB, kind: "postgres", walSegmentSize: 16 * 1024 * 1024, createdAt: "2026-01-01T00:00:00.000Z" };
const NOW = new Date("2026-06-01T00:00:00.000Z");

interface Version {
  id: string;
  marker: boolean;
  locked: boolean;
}

/** A versioned bucket under Object Lock: `lock(key)` locks the key's current version. */
function versionedVault(name: string): ObjectStore & { versions: Map<string, Version[]>; lock(key: string): void; add(key: string): string } {
  const versions = new Map<string, Version[]>();
  let n = 0;
  const current = (key: string): Version | undefined => versions.get(key)?.at(-1);
  const info = (key: string, v: Version): ObjectInfo => ({ key, size: 1, metadata: {}, versionId: v.id });
  const store: ObjectStore & { versions: Map<string, Version[]>; lock(key: string): void; add(key: string): string } = {
    name,
    versions,
    lock: (key) => void (current(key)!.locked = true),
    add: (key) => {
      const v = { id: `v${++n}`, marker: false, locked: false };
      versions.set(key, [...(versions.get(key) ?? []), v]);
      return v.id;
    },
    async put(_b, key) {
      return { versionId: store.add(key) };
    },
    async get(_b, key, versionId) {
      const v = versionId === undefined ? current(key) : versions.get(key)?.find((x) => x.id === versionId);
      return v && !v.marker ? { ...info(key, v), body: Buffer.from("x") } : undefined;
    },
    async head(_b, key, versionId) {
      const v = versionId === undefined ? current(key) : versions.get(key)?.find((x) => x.id === versionId);
      return v && !v.marker ? info(key, v) : undefined;
    },
    async getRange() {
      throw new Error("not used");
    },
    async copy() {
      throw new Error("not used");
    },
    async requestRestore() {
      throw new Error("not used");
    },
    async delete(bucket, key, versionId) {
      const list = versions.get(key) ?? [];
      if (versionId === undefined) {
        versions.set(key, [...list, { id: `m${++n}`, marker: true, locked: false }]);
        return;
      }
      const v = list.find((x) => x.id === versionId);
      if (!v) return;
      if (v.locked) throw new ObjectLockedError(`S3 refused to delete s3://${bucket}/${key} version ${versionId} (Object Lock retention)`);
      versions.set(key, list.filter((x) => x !== v));
    },
    async *list() {
      // not used
    },
  };
  return store;
}

function wal(name: string, versionId: string): WalRecord {
  return {
    databaseId: DB,
    name,
    kind: "segment",
    timeline: 1,
    size: 1,
    storedSize: 1,
    sha256: "a".repeat(64),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${DB}/wal/00000001/${name}`,
    vaultVersionId: versionId,
    archivedAt: "2026-05-01T00:00:00.000Z",
    replicas: {},
  };
}

/** The catalog calls prune makes, in memory. */
function memoryCatalog(walRecords: WalRecord[], snapshots: SnapshotRecord[] = []): Catalog & { wal: Map<string, WalRecord>; audit: AuditRecord[] } {
  const walMap = new Map(walRecords.map((w) => [w.name, w]));
  const snaps = new Map(snapshots.map((s) => [s.snapshotId, s]));
  const audit: AuditRecord[] = [];
  const partial = {
    wal: walMap,
    audit,
    getWal: async (_db: string, name: string) => walMap.get(name),
    listSnapshots: async () => [...snaps.values()],
    listChunks: async () => [],
    listChunkPage: async () => ({ chunks: [] }),
    listPackPage: async () => ({ packs: [] }),
    markPacksOrphaned: async () => [],
    deleteChunks: async () => undefined,
    deleteWal: async (_db: string, names: readonly string[]) => void names.forEach((n) => walMap.delete(n)),
    deleteSnapshot: async (_db: string, id: string) => void snaps.delete(id),
    recordAudit: async (records: readonly AuditRecord[]) => void audit.push(...records),
  };
  return partial as unknown as Catalog & { wal: Map<string, WalRecord>; audit: AuditRecord[] };
}

const planFor = (names: string[]): RetentionPlan => ({
  keep: [],
  deleteSnapshots: [],
  deleteWal: names.map((name, i) => ({ timeline: 1, segno: BigInt(i + 1), name, archivedAt: new Date("2026-05-01T00:00:00.000Z") })),
  keepWal: 0,
  deleteRanges: [],
});

const opts = { runId: "run-1", now: NOW, graceMs: 3_600_000, by: "test" };

describe("executePrune and Object Lock", () => {
  it("leaves a locked version intact, hides it behind a delete marker, reports and audits it; deletes the unlocked one", async () => {
    // Prepare
    const vault = versionedVault("primary");
    const names = ["000000010000000000000001", "000000010000000000000002"];
    const records = names.map((n) => wal(n, vault.add(`db/${DB}/wal/00000001/${n}`)));
    vault.lock(records[0]!.vaultKey);
    const catalog = memoryCatalog(records);
    const regions: RegionVault[] = [{ region: "r1", store: vault, bucket: "vault", primary: true }];
    // Act
    const summary = await executePrune(database, planFor(names), { snapshots: [], wal: records }, catalog, regions, opts);
    // Assess
    expect(summary.deletedWal).toBe(2);
    expect(catalog.wal.size).toBe(0);
    expect(summary.locked).toEqual([{ region: "r1", key: records[0]!.vaultKey, error: expect.stringMatching(/Object Lock.*delete marker/) as string }]);
    // The locked version is still there, readable by its id; the key's current version is a delete marker.
    expect(await vault.head("vault", records[0]!.vaultKey, records[0]!.vaultVersionId)).toBeDefined();
    expect(await vault.head("vault", records[0]!.vaultKey)).toBeUndefined();
    expect(vault.versions.get(records[1]!.vaultKey)).toEqual([]);
    const audited = catalog.audit.map((a) => JSON.stringify([a.action, a.subject, a.regions])).sort();
    expect(audited).toEqual(
      [
        ["locked", records[0]!.vaultKey, ["r1"]],
        ["delete-wal", names[0], []],
        ["delete-wal", names[1], ["r1"]],
      ]
        .map((x) => JSON.stringify(x))
        .sort(),
    );
  });
});

describe("executePruneJournaled", () => {
  it("finishes the vault deletions of an interrupted run whose records are gone, and leaves what was recorded again", async () => {
    // Prepare: an earlier attempt journaled three WAL files, deleted their records and died before their objects.
    const vault = versionedVault("primary");
    const names = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"];
    const records = names.map((n) => wal(n, vault.add(`db/${DB}/wal/00000001/${n}`)));
    // The third was archived again since (its record is back, with a new version).
    const again = wal(names[2]!, vault.add(records[2]!.vaultKey));
    const catalog = memoryCatalog([again]);
    let stored: { snapshots: SnapshotRecord[]; wal: WalRecord[] } | undefined = { snapshots: [], wal: records };
    const writes: string[][] = [];
    const journal: PruneJournal = {
      read: async () => stored,
      write: async (entries) => {
        writes.push(entries.wal.map((w) => w.name));
        stored = entries;
      },
      clear: async () => void (stored = undefined),
    };
    const regions: RegionVault[] = [{ region: "r1", store: vault, bucket: "vault", primary: true }];
    // Act: this round plans nothing new.
    const summary = await executePruneJournaled(database, planFor([]), { snapshots: [], wal: [] }, catalog, regions, opts, journal);
    // Assess: the two unfinished ones are deleted and audited; the re-archived one is untouched; the journal is cleared.
    expect(writes).toEqual([[names[0], names[1]]]);
    expect(summary.deletedWal).toBe(2);
    expect(vault.versions.get(records[0]!.vaultKey)).toEqual([]);
    expect(vault.versions.get(records[1]!.vaultKey)).toEqual([]);
    expect(await vault.head("vault", again.vaultKey, again.vaultVersionId)).toBeDefined();
    expect(await vault.head("vault", again.vaultKey, records[2]!.vaultVersionId)).toBeDefined();
    expect(catalog.wal.has(names[2]!)).toBe(true);
    expect(catalog.audit.filter((a) => a.action === "delete-wal").map((a) => a.subject).sort()).toEqual([names[0], names[1]]);
    expect(stored).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// WAL by range (docs/retention.md "WAL by range"): the plan reads the
// snapshot records, the timelines and the first WAL files of its ranges,
// never the whole WAL catalog; carrying it out deletes the ranges a batch at
// a time.

/** The catalog calls planning and pruning by range make, over sorted WAL names in memory, counting the WAL items each read returns; listWal refuses. */
function rangeCatalog(records: WalRecord[], snapshots: SnapshotRecord[]): Catalog & { wal: Map<string, WalRecord>; read: number; largestRead: number; audit: AuditRecord[] } {
  const walMap = new Map(records.map((w) => [w.name, w]));
  const snaps = new Map(snapshots.map((s) => [s.snapshotId, s]));
  const counted = <T>(items: T[]): T[] => {
    fake.read += items.length;
    fake.largestRead = Math.max(fake.largestRead, items.length);
    return items;
  };
  const fake = {
    wal: walMap,
    read: 0,
    largestRead: 0,
    getDatabase: async () => database,
    listSnapshots: async () => [...snaps.values()],
    listWal: async () => {
      throw new Error("listWal reads every WAL record of the database");
    },
    listWalTimelines: async () => counted([...new Set([...walMap.values()].map((w) => w.timeline))].sort((a, b) => a - b).map((timeline) => ({ timeline }))),
    listWalRange: async (_db: string, timeline: number, from: string, to: string | undefined, o: { limit?: number; newestFirst?: boolean } = {}) => {
      const tl = timeline.toString(16).toUpperCase().padStart(8, "0");
      const names = [...walMap.keys()].filter((n) => n.startsWith(tl) && n >= from && (to === undefined || n <= to)).sort();
      if (o.newestFirst) names.reverse();
      return counted(names.slice(0, o.limit ?? names.length).map((n) => walMap.get(n)!));
    },
    getWal: async (_db: string, name: string) => walMap.get(name),
    deleteWal: async (_db: string, names: readonly string[]) => void names.forEach((n) => walMap.delete(n)),
    deleteSnapshot: async (_db: string, id: string) => void snaps.delete(id),
    audit: [] as AuditRecord[],
    recordAudit: async (records: readonly AuditRecord[]) => void fake.audit.push(...records),
  };
  return fake as unknown as Catalog & { wal: Map<string, WalRecord>; read: number; largestRead: number; audit: AuditRecord[] };
}

const pgSnapshot = (id: string, segno: bigint, finishedAt: string): SnapshotRecord => pgSnapshotRecord(DB, id, segno, finishedAt, database.walSegmentSize);

describe("retention by WAL range", () => {
  it("plans over 20,000 WAL files reading a bounded number of them, and deletes exactly the deletable ranges, records and objects", async () => {
    // Prepare: segments 1..20,000 of timeline 1; snapshots at 100, 10,000 (both go), 19,000 and 19,900 (kept: two dailies);
    // a .partial and a .backup file inside a deletable range, and the history of timeline 1, which retention never deletes.
    const vault = versionedVault("primary");
    const seg = (n: number): string => segmentName(1, BigInt(n), database.walSegmentSize);
    const names = [...Array.from({ length: 20_000 }, (_, i) => seg(i + 1)), `${seg(500)}.partial`, `${seg(600)}.00000028.backup`, "00000001.history"];
    const records = names.map((n) => ({ ...wal(n, vault.add(`db/${DB}/wal/00000001/${n}`)), kind: n.endsWith(".partial") ? "partial" : n.endsWith(".backup") ? "backup" : n.endsWith(".history") ? "history" : "segment" }) as WalRecord);
    const snapshots = [pgSnapshot("s0100", 100n, "2026-05-01T00:00:00.000Z"), pgSnapshot("s10000", 10_000n, "2026-05-10T00:00:00.000Z"), pgSnapshot("s19000", 19_000n, "2026-05-30T00:00:00.000Z"), pgSnapshot("s19900", 19_900n, "2026-05-31T00:00:00.000Z")];
    const catalog = rangeCatalog(records, snapshots);
    const regions: RegionVault[] = [{ region: "r1", store: vault, bucket: "vault", primary: true }];
    const policy = { daily: 2, weekly: 0, monthly: 0, recoveryWindowDays: 0, minSnapshots: 2 };
    const kept = new Set([seg(19_000), ...Array.from({ length: 101 }, (_, i) => seg(19_900 + i)), `${seg(500)}.partial`, `${seg(600)}.00000028.backup`, "00000001.history"]);

    // Act
    const view = await prunePlan(catalog, DB, policy, NOW);
    const planRead = catalog.read;
    const summary = await executePlan(database, view, catalog, regions, { ...opts, sweepChunks: false });

    // Assess: the plan names the ranges and lists the first WAL_LISTED files, reading about that many items.
    expect(view.plan.deleteSnapshots.map((d) => d.snapshotId).sort()).toEqual(["s0100", "s10000"]);
    expect(view.walRanges).toEqual([
      { timeline: 1, from: seg(0), through: seg(18_999) },
      { timeline: 1, from: seg(19_001), through: seg(19_899) },
    ]);
    expect(view.walListComplete).toBe(false);
    expect(view.walToDelete.map((w) => w.name)).toEqual(Array.from({ length: WAL_LISTED }, (_, i) => seg(i + 1)));
    expect(planRead).toBeLessThanOrEqual(WAL_LISTED + 10);
    // Carried out: every deletable segment's record and object gone, everything else there, no read larger than a page.
    expect(summary.deletedWal).toBe(20_000 - 102);
    expect([...catalog.wal.keys()].sort()).toEqual([...kept].sort());
    for (const r of records) expect(vault.versions.get(r.vaultKey)?.length, r.name).toBe(kept.has(r.name) ? 1 : 0);
    expect(catalog.largestRead).toBeLessThanOrEqual(1001);
    // Every deletion audited under its own key (the catalog keys audit items by time, run and sequence number).
    expect(new Set(catalog.audit.map((a) => `${a.at}#${a.runId}#${a.seq}`)).size).toBe(summary.audit);
    expect(summary.audit).toBe(2 + 20_000 - 102);
  });
});

describe("retention by WAL range, generic streams", () => {
  it("finds the files of each stream whose position is in its ranges, though names do not sort by position, in bounded batches resumed from a cursor", async () => {
    // Prepare: stream a holds 1.log..30.log (name order 1, 10, 11, .., 2, 20, ..), stream b 1.log..5.log; a deletes 0..14, b 0..2.
    const gdb: DatabaseRecord = { databaseId: "gen-ranges", kind: "generic", walSegmentSize: 16 * 1024 * 1024, createdAt: "2026-01-01T00:00:00.000Z" };
    const rec = (stream: string, n: number): WalRecord => ({ ...wal(`${stream}/${n}.log`, "v"), databaseId: gdb.databaseId, startLsn: String(n), vaultKey: `db/gen-ranges/wal/${stream}/${n}.log` });
    const all = [...Array.from({ length: 30 }, (_, i) => rec("a", i + 1)), ...Array.from({ length: 5 }, (_, i) => rec("b", i + 1))].sort((x, y) => (x.name < y.name ? -1 : 1));
    const reads: number[] = [];
    const catalog = {
      listWal: async () => {
        throw new Error("listWal reads every WAL record of the database");
      },
      listWalPage: async (_db: string, after: string | undefined, limit = 1000) => {
        const rest = all.filter((w) => after === undefined || w.name > after);
        const records = rest.slice(0, limit);
        reads.push(records.length);
        return records.length < rest.length ? { records, next: records.at(-1)!.name } : { records };
      },
    } as unknown as Catalog;
    const ranges = [
      { stream: "a", from: "0", through: "14" },
      { stream: "b", from: "0", through: "2" },
    ];

    // Act: batches of at most 4 files, reading at most 7 records each.
    const found: string[][] = [];
    let after: string | undefined;
    let calls = 0;
    do {
      const before = reads.length;
      const batch = await nextWalBatch(catalog, gdb, ranges, after, { records: 4, read: 7 });
      found.push(batch.records.map((w) => w.name));
      expect(reads.slice(before).reduce((a, n) => a + n, 0), `call ${calls}`).toBeLessThanOrEqual(7);
      after = batch.after;
    } while (after !== undefined && ++calls < 100);

    // Assess: every file in the ranges once, none outside, no batch over 4.
    const expected = [...Array.from({ length: 14 }, (_, i) => `a/${i + 1}.log`), "b/1.log", "b/2.log"].sort();
    expect(found.flat().sort()).toEqual(expected);
    expect(Math.max(...found.map((b) => b.length))).toBeLessThanOrEqual(4);
  });
});

// ---------------------------------------------------------------------------
// Packs (docs/retention.md "Packs"): the two-phase sweep and repack, with
// the catalog on DynamoDB Local (the conditions are DynamoDB's) and the
// vault in memory.

const newFixture = packedFixtures();
/** A chunk as a manifest references it: reused, or new in the manifest's pack `pack`. */
const reused = (c: Chunk): UniqueChunk => ({ sha256: c.sha256, size: c.raw.length, storedSize: c.stored.length, codec: "zstd", new: false });
const newIn = (c: Chunk, pack: number): UniqueChunk => ({ ...reused(c), new: true, pack });
const RUN3 = new Date(RUN2.getTime() + GRACE);
const RUN4 = new Date(RUN3.getTime() + GRACE);
/** The manifest of a recorded snapshot, parsed. */
const manifestOf = (f: PackedFixture, s: { manifestKey: string }): SnapshotManifest => parseManifest(f.vault.objects.get(s.manifestKey)!, { databaseId: GDB, kind: "generic" }).manifest;

describe("executePrune with packs", () => {
  it("marks a pack no kept snapshot references, and deletes it a grace period later: record, chunk records, object", async () => {
    // Prepare: two snapshots, each with a pack of its own; the older one is pruned.
    const f = await newFixture();
    const gone = await Promise.all([0, 1, 2].map((i) => makeChunk(`gone ${i}`)));
    const kept = await Promise.all([0, 1, 2].map((i) => makeChunk(`kept ${i}`)));
    const [deadPack] = await storeRecordedPacks(f.v, gone);
    const [livePack] = await storeRecordedPacks(f.v, kept);
    const old = await snapshotOf(f, gone, new Date("2026-01-01T00:00:00Z"));
    const keep = await snapshotOf(f, kept, new Date("2026-01-02T00:00:00Z"));
    const deadKey = vaultPackKey(GDB, deadPack!.name);

    // Act: run 1 marks, run 2 (a grace period later) deletes.
    const first = await run(f, deleting(old), [old], RUN1, "run-1");
    const marked = await f.catalog.getPack(GDB, deadPack!.name);
    const objectAfterFirst = f.vault.objects.has(deadKey);
    const second = await run(f, nothing, [], RUN2, "run-2");

    // Assess
    expect([first.packsMarked, first.packsSwept, first.packsRepacked]).toEqual([1, 0, 0]);
    expect(marked?.orphanedAt).toBe(RUN1.toISOString());
    expect(objectAfterFirst).toBe(true);
    expect([second.packsMarked, second.packsSwept]).toEqual([0, 1]);
    expect(await f.catalog.getPack(GDB, deadPack!.name)).toBeUndefined();
    expect(await f.catalog.getChunks(GDB, gone.map((c) => c.sha256))).toEqual([]);
    expect(f.vault.objects.has(deadKey)).toBe(false);
    expect((await f.catalog.getPack(GDB, livePack!.name))?.orphanedAt).toBeUndefined();
    expect(await restoreFile(f, keep)).toEqual(Buffer.concat(kept.map((c) => c.raw)));
    const audit = await f.catalog.listAudit(GDB);
    expect(audit.filter((a) => a.action === "sweep-pack").map((a) => [a.subject, a.regions])).toEqual([[deadPack!.name, ["r1"]]]);
  });

  it("with no chunk record (ingest since docs/packs.md step 3): deletes a pack only pruned snapshots name, keeps one a push reused by name meanwhile (then repacks it, recording the chunk it moves), and the kept snapshots restore", async () => {
    // Prepare: packs G (pruned snapshot), M (pruned snapshot, a chunk reused later) and K (kept), no chunk records;
    // every manifest names the pack of each of its chunks, as the agent writes it.
    const f = await newFixture();
    const [gone, mid, kept] = await Promise.all(["g", "m", "k"].map((t) => Promise.all([0, 1, 2].map((i) => makeChunk(`unrecorded ${t} ${i}`)))));
    const [G] = await storePacks(f.v, gone!);
    const [M] = await storePacks(f.v, mid!);
    const [K] = await storePacks(f.v, kept!);
    const namedIn = (chunks: readonly Chunk[], pack: string): Map<string, string> => new Map(chunks.map((c) => [c.sha256, pack]));
    const old = await snapshotOf(f, gone!, new Date("2026-01-01T00:00:00Z"), undefined, undefined, namedIn(gone!, G!.name));
    const middle = await snapshotOf(f, mid!, new Date("2026-01-01T12:00:00Z"), undefined, undefined, namedIn(mid!, M!.name));
    const keep = await snapshotOf(f, kept!, new Date("2026-01-02T00:00:00Z"), undefined, undefined, namedIn(kept!, K!.name));
    expect((await f.catalog.listChunkPage(GDB)).chunks).toEqual([]);

    // Act: run 1 prunes old and middle (G and M marked); a push reusing M's first chunk by name is checked
    // (CheckReferenced unmarks M) and recorded; run 2, a grace period later.
    const first = await run(f, { ...deleting(old), deleteSnapshots: [...deleting(old).deleteSnapshots, ...deleting(middle).deleteSnapshots] }, [old, middle, keep], RUN1, "run-1");
    const marked = await f.catalog.getPacks(GDB, [G!.name, M!.name]);
    const reuse = [mid![0]!];
    const later = await snapshotOf(f, reuse, new Date("2026-01-03T00:00:00Z"), undefined, undefined, namedIn(reuse, M!.name));
    const laterManifest = manifestOf(f, later);
    await checkPackedChunks({ catalog: f.catalog, vault: f.vault, vaultBucket: "vault" }, laterManifest, [{ ...reused(mid![0]!), reusedPack: 0 }], [], laterManifest.reusedPacks);
    const second = await run(f, nothing, [keep, later], RUN2, "run-2");

    // Assess
    expect(first).toMatchObject({ packsMarked: 2, packsSwept: 0 });
    expect(marked.map((p) => p.orphanedAt)).toEqual([RUN1.toISOString(), RUN1.toISOString()]);
    // G deleted; M (one live chunk of three) unmarked by the push, then repacked: its live chunk copied out and recorded
    // there (the forwarding address of the pack the later manifest names), M kept a grace period more.
    expect(second).toMatchObject({ packsSwept: 1, packsRepacked: 1 });
    expect(await f.catalog.getPack(GDB, G!.name)).toBeUndefined();
    expect(f.vault.objects.has(vaultPackKey(GDB, G!.name))).toBe(false);
    expect((await f.catalog.getPack(GDB, M!.name))?.repackedAt).toBe(RUN2.toISOString());
    expect(f.vault.objects.has(vaultPackKey(GDB, M!.name))).toBe(true);
    expect((await f.catalog.getPack(GDB, K!.name))?.orphanedAt).toBeUndefined();
    const records = (await f.catalog.listChunkPage(GDB)).chunks;
    expect(records.map((r) => r.sha256)).toEqual([mid![0]!.sha256]);
    expect(records[0]!.vaultKey).not.toBe(vaultPackKey(GDB, M!.name));
    expect(await restoreFile(f, keep)).toEqual(Buffer.concat(kept!.map((c) => c.raw)));
    expect(await restoreFile(f, later)).toEqual(mid![0]!.raw);
  });

  it("keeps a candidate pack whose index is damaged, whatever its tally, and says so on every run", async () => {
    // Prepare: a pruned snapshot's pack, marked by run 1; then its index is damaged in the vault.
    const f = await newFixture();
    const gone = await Promise.all([0, 1, 2].map((i) => makeChunk(`damaged index ${i}`)));
    const [deadPack] = await storeRecordedPacks(f.v, gone);
    const old = await snapshotOf(f, gone, new Date("2026-01-01T00:00:00Z"));
    const deadKey = vaultPackKey(GDB, deadPack!.name);
    await run(f, deleting(old), [old], RUN1, "run-1");
    f.vault.objects.get(deadKey)![deadPack!.dataLength + 3]! ^= 0xff;
    const warnings: string[] = [];
    const sweep = (now: Date, runId: string) =>
      executePrune(genericDb, nothing, { snapshots: [], wal: [] }, f.catalog, f.regions, { runId, now, graceMs: GRACE, by: "test", packs: packOpts, warn: (m) => warnings.push(m) });

    // Act: two runs, each a grace period after the last.
    const second = await sweep(RUN2, "run-2");
    const third = await sweep(RUN3, "run-3");

    // Assess: nothing deleted, the pack named each time with what to do
    expect([second.packsSwept, third.packsSwept]).toEqual([0, 0]);
    expect(await f.catalog.getPack(GDB, deadPack!.name)).toBeDefined();
    expect(f.vault.objects.has(deadKey)).toBe(true);
    const about = warnings.filter((w) => w.includes(deadPack!.name));
    expect(about).toHaveLength(2);
    expect(about[0]).toMatch(/^walvault retention: gen-[a-z0-9-]+: the index of pack [0-9a-f]{64} could not be read \(.+\): kept, as nothing else says which chunks it holds; `walvault verify --level 2` names the snapshots that use it$/);
    expect((await f.catalog.listAudit(GDB)).filter((a) => a.action === "sweep-pack")).toEqual([]);
  });

  it("format 2: keeps a pack only the third page of a kept snapshot references, and deletes a pruned snapshot's pages with its header", async () => {
    // Prepare: the kept snapshot's 12 chunks on pages of 4; its last 4 (page 2) alone in a pack. The pruned one is paged too.
    const f = await newFixture();
    const pages = { chunks: 4, bytes: 1 << 20 };
    const kept = await Promise.all(Array.from({ length: 12 }, (_, i) => makeChunk(`paged kept ${i}`)));
    const gone = await Promise.all([0, 1, 2].map((i) => makeChunk(`paged gone ${i}`)));
    await storeRecordedPacks(f.v, kept.slice(0, 8));
    const [lastPagePack] = await storeRecordedPacks(f.v, kept.slice(8));
    const [deadPack] = await storeRecordedPacks(f.v, gone);
    const old = await snapshotOf(f, gone, new Date("2026-01-01T00:00:00Z"), pages);
    const keep = await snapshotOf(f, kept, new Date("2026-01-02T00:00:00Z"), pages);
    const oldPages = [0].map((i) => snapshotPageKey(old.manifestKey, i));
    const keptPages = [0, 1, 2].map((i) => snapshotPageKey(keep.manifestKey, i));
    expect([...oldPages, ...keptPages].every((k) => f.vault.objects.has(k))).toBe(true);

    // Act
    const first = await run(f, deleting(old), [old], RUN1, "run-1");

    // Assess: the dead pack marked, the last page's pack not; the pruned snapshot's objects gone, the kept one's there.
    expect(first.packsMarked).toBe(1);
    expect((await f.catalog.getPack(GDB, deadPack!.name))?.orphanedAt).toBe(RUN1.toISOString());
    expect((await f.catalog.getPack(GDB, lastPagePack!.name))?.orphanedAt).toBeUndefined();
    expect([old.manifestKey, ...oldPages].filter((k) => f.vault.objects.has(k))).toEqual([]);
    expect([keep.manifestKey, ...keptPages].every((k) => f.vault.objects.has(k))).toBe(true);
  });

  it("repacks a sparse pack: live chunks move to a new pack, every kept snapshot restores byte-identical, the old pack goes a grace period later", async () => {
    // Prepare: one pack of 9 chunks; the kept snapshot uses 2, the pruned one all 9.
    const f = await newFixture();
    const chunks = await Promise.all(Array.from({ length: 9 }, (_, i) => makeChunk(`c ${i}`)));
    const [oldPack] = await storeRecordedPacks(f.v, chunks);
    expect(oldPack!.entries).toHaveLength(9);
    const all = await snapshotOf(f, chunks, new Date("2026-01-01T00:00:00Z"));
    const keptChunks = [chunks[7]!, chunks[2]!];
    const keep = await snapshotOf(f, keptChunks, new Date("2026-01-02T00:00:00Z"));
    const oldKey = vaultPackKey(GDB, oldPack!.name);

    // Act
    const first = await run(f, deleting(all), [all], RUN1, "run-1");
    const moved = await f.catalog.getChunks(GDB, keptChunks.map((c) => c.sha256));
    const restoredAfterRepack = await restoreFile(f, keep);
    const oldAfterRepack = await f.catalog.getPack(GDB, oldPack!.name);
    const oldObjectAfterRepack = f.vault.objects.has(oldKey);
    const second = await run(f, nothing, [], RUN2, "run-2");

    // Assess: run 1 moved the live chunks and marked the old pack, which stayed readable.
    expect(first.packsRepacked).toBe(1);
    const newKey = moved[0]!.vaultKey;
    expect(newKey).not.toBe(oldKey);
    expect(moved.map((r) => r.vaultKey)).toEqual([newKey, newKey]);
    expect(restoredAfterRepack).toEqual(Buffer.concat(keptChunks.map((c) => c.raw)));
    expect(oldAfterRepack?.orphanedAt).toBe(RUN1.toISOString());
    expect(oldObjectAfterRepack).toBe(true);
    // Run 2 deleted the old pack and its dead records; the kept snapshot still restores.
    expect(second.packsSwept).toBe(1);
    expect(await f.catalog.getPack(GDB, oldPack!.name)).toBeUndefined();
    expect(f.vault.objects.has(oldKey)).toBe(false);
    expect(await f.catalog.getChunks(GDB, chunks.map((c) => c.sha256))).toHaveLength(2);
    expect(await restoreFile(f, keep)).toEqual(Buffer.concat(keptChunks.map((c) => c.raw)));
    const newPack = await f.catalog.getPack(GDB, newKey.slice(newKey.lastIndexOf("/") + 1));
    expect(newPack?.entries).toBe(2);
    expect((await f.catalog.listAudit(GDB)).filter((a) => a.action === "repack").map((a) => a.subject)).toEqual([oldPack!.name]);
  });

  it("reports and audits a pack whose object Object Lock keeps, after deleting its records", async () => {
    // Prepare
    const f = await newFixture();
    const gone = await Promise.all([0, 1].map((i) => makeChunk(`locked ${i}`)));
    const [pack] = await storeRecordedPacks(f.v, gone);
    const old = await snapshotOf(f, gone, new Date("2026-01-01T00:00:00Z"));
    const key = vaultPackKey(GDB, pack!.name);
    f.vault.locked.add(key);

    // Act
    await run(f, deleting(old), [old], RUN1, "run-1");
    const second = await run(f, nothing, [], RUN2, "run-2");

    // Assess
    expect(second.locked).toEqual([{ region: "r1", key, error: expect.stringMatching(/Object Lock/) as string }]);
    expect(f.vault.objects.has(key)).toBe(true);
    expect(await f.catalog.getPack(GDB, pack!.name)).toBeUndefined();
    const audit = await f.catalog.listAudit(GDB);
    expect(audit.filter((a) => a.action === "locked").map((a) => a.subject)).toEqual([key]);
    expect(audit.filter((a) => a.action === "sweep-pack").map((a) => [a.subject, a.regions])).toEqual([[pack!.name, []]]);
  });

  it("finishes a pack deletion interrupted after condemning it (no chunk records): its object and record go, and no reader takes a chunk from it meanwhile", async () => {
    // Prepare: a pruned snapshot's pack, marked by run 1, then condemned by a run that stopped there.
    const f = await newFixture();
    const chunks = await Promise.all([0, 1].map((i) => makeChunk(`condemned ${i}`)));
    const [pack] = await storePacks(f.v, chunks);
    const old = await snapshotOf(f, chunks, new Date("2026-01-01T00:00:00Z"), undefined, undefined, new Map(chunks.map((c) => [c.sha256, pack!.name])));
    await run(f, deleting(old), [old], RUN1, "run-1");
    expect(await f.catalog.condemnPack(GDB, pack!.name, RUN1.toISOString(), RUN2.toISOString())).toBe(true);
    const { manifestKey } = await putPackedManifest(f.v, [{ c: chunks[0]!, isNew: false }], [], new Date("2026-01-03T00:00:00Z"), undefined, new Map([[chunks[0]!.sha256, pack!.name]]));
    const reusing = manifestOf(f, { manifestKey });

    // Act: a push reusing a chunk of it by name is checked; then the next run.
    const refused = await checkPackedChunks({ catalog: f.catalog, vault: f.vault, vaultBucket: "vault" }, reusing, [{ ...reused(chunks[0]!), reusedPack: 0 }], [], reusing.reusedPacks).then(
      () => undefined,
      (e: unknown) => e,
    );
    const unmarked = await f.catalog.clearPackOrphaned(GDB, pack!.name);
    const summary = await run(f, nothing, [], RUN3, "run-3");

    // Assess
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(String(refused)).toContain(chunks[0]!.sha256);
    expect(unmarked).toBe(false);
    expect(summary.packsSwept).toBe(1);
    expect(await f.catalog.getPack(GDB, pack!.name)).toBeUndefined();
    expect(f.vault.objects.has(vaultPackKey(GDB, pack!.name))).toBe(false);
    expect((await f.catalog.listAudit(GDB)).filter((a) => a.action === "sweep-pack").map((a) => a.reason)).toEqual([expect.stringMatching(/stopped after condemning it at .*: finished$/)]);
  });

  it("finishes a pack deletion an older sweep interrupted after the pack record: the chunk records left pointing at it and its object go; a pack a kept snapshot uses stays", async () => {
    // Prepare: two packs whose records are gone (an interrupted deletion): one no snapshot uses, one a kept snapshot uses.
    const f = await newFixture();
    const dead = await Promise.all([0, 1].map((i) => makeChunk(`dangling ${i}`)));
    const used = await Promise.all([0, 1].map((i) => makeChunk(`still used ${i}`)));
    const [deadPack] = await storeRecordedPacks(f.v, dead);
    const [usedPack] = await storeRecordedPacks(f.v, used);
    const keep = await snapshotOf(f, used, new Date("2026-01-02T00:00:00Z"));
    for (const p of [deadPack!, usedPack!]) {
      await f.catalog.markPacksOrphaned(GDB, [p.name], "2026-01-01T00:00:00.000Z");
      await f.catalog.condemnPack(GDB, p.name, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z");
      await f.catalog.deleteCondemnedPack(GDB, p.name);
    }

    // Act
    const summary = await run(f, nothing, [], RUN1, "run-1");

    // Assess
    expect(summary.packsSwept).toBe(1);
    expect(await f.catalog.getChunks(GDB, dead.map((c) => c.sha256))).toEqual([]);
    expect(f.vault.objects.has(vaultPackKey(GDB, deadPack!.name))).toBe(false);
    expect(await f.catalog.getChunks(GDB, used.map((c) => c.sha256))).toHaveLength(2);
    expect(await restoreFile(f, keep)).toEqual(Buffer.concat(used.map((c) => c.raw)));
    expect((await f.catalog.listAudit(GDB)).filter((a) => a.action === "sweep-pack").map((a) => a.subject)).toEqual([deadPack!.name]);
  });

  describe("a push reusing a chunk of a pack being swept (CheckReferenced against the sweep)", () => {
    async function candidate(): Promise<{ f: PackedFixture; chunks: Chunk[]; pack: BuiltPack; reusing: SnapshotManifest }> {
      const f = await newFixture();
      const chunks = await Promise.all([0, 1].map((i) => makeChunk(`reused ${i}`)));
      const [pack] = await storeRecordedPacks(f.v, chunks);
      const old = await snapshotOf(f, chunks, new Date("2026-01-01T00:00:00Z"));
      await run(f, deleting(old), [old], RUN1, "run-1");
      // A new push reuses the first chunk (not yet recorded: CheckReferenced runs before RecordSnapshot).
      const { manifestKey } = await putPackedManifest(f.v, [{ c: chunks[0]!, isNew: false }], [], new Date("2026-01-03T00:00:00Z"));
      const reusing = manifestOf(f, { manifestKey });
      return { f, chunks, pack: pack!, reusing };
    }

    it("CheckReferenced between the sweep's read and its condemning: it unmarks the pack, the conditional condemning fails and the pack stays whole", async () => {
      // Prepare
      const { f, chunks, pack, reusing } = await candidate();

      // The push's CheckReferenced runs after the sweep read the mark, before its conditional delete.
      const racing = Object.create(f.catalog) as DynamoCatalog;
      racing.condemnPack = async (db, name, orphanedAt, at) => {
        await checkReusedPacks(f.catalog, reusing, [reused(chunks[0]!)]);
        return f.catalog.condemnPack(db, name, orphanedAt, at);
      };

      // Act
      const sweep = await executePrune(genericDb, nothing, { snapshots: [], wal: [] }, racing, f.regions, { runId: "run-2", now: RUN2, graceMs: GRACE, by: "test", packs: packOpts });

      // Assess
      expect(sweep.packsSwept).toBe(0);
      const record = await f.catalog.getPack(GDB, pack.name);
      expect(record).toBeDefined();
      expect(record?.orphanedAt).toBeUndefined();
      expect(await f.catalog.getChunks(GDB, chunks.map((c) => c.sha256))).toHaveLength(2);
      expect(f.vault.objects.has(vaultPackKey(GDB, pack.name))).toBe(true);
    });

    it("the sweep first: CheckReferenced finds the pack gone and refuses the snapshot, naming the chunk, its file and the pack", async () => {
      // Prepare
      const { f, chunks, pack, reusing } = await candidate();
      // The chunk record is read before the sweep deletes it (the push looked it up earlier): keep it in place.
      const record = (await f.catalog.getChunks(GDB, [chunks[0]!.sha256]))[0]!;

      // Act
      const sweep = await run(f, nothing, [], RUN2, "run-2");
      await f.catalog.recordChunks([record]);
      const refused = await checkReusedPacks(f.catalog, reusing, [reused(chunks[0]!)]).then(
        () => undefined,
        (e: unknown) => e,
      );

      // Assess
      expect(sweep.packsSwept).toBe(1);
      expect(refused).toBeInstanceOf(NotFoundError);
      expect(String(refused)).toContain(chunks[0]!.sha256);
      expect(String(refused)).toContain('"data.bin"');
      expect(String(refused)).toContain(pack.name);
    });
  });
});

// ---------------------------------------------------------------------------
// Liveness from the packs' own indexes (docs/packs.md, "The sweep tallies
// packs from their indexes"): a pack is kept while a kept snapshot
// references a chunk its index lists, whichever pack the chunk's record
// names; a repacked pack is judged by the records still pointing at it.

describe("the sweep tallies packs from their indexes", () => {
  /** A pack of six chunks a pruned snapshot used whole and a kept one uses one of, repacked by run 1. */
  async function repackedAtRun1(tag: string): Promise<{ f: PackedFixture; chunks: Chunk[]; pack: BuiltPack; keep: SnapshotRecord }> {
    const f = await newFixture();
    const chunks = await Promise.all(Array.from({ length: 6 }, (_, i) => makeChunk(`${tag} ${i}`)));
    const [pack] = await storeRecordedPacks(f.v, chunks);
    const pruned = await snapshotOf(f, chunks, new Date("2026-01-01T00:00:00Z"));
    const keep = await snapshotOf(f, [chunks[1]!], new Date("2026-01-02T00:00:00Z"));
    expect((await run(f, deleting(pruned), [pruned], RUN1, "run-1")).packsRepacked).toBe(1);
    return { f, chunks, pack: pack!, keep };
  }

  it("keeps a pack whose chunk's record names another pack while a kept snapshot references the chunk (the losing sequence)", async () => {
    // Prepare: chunk c in pack P, uploaded again beside e in pack A (two pushes racing the lookup): c's record names A.
    const f = await newFixture();
    const [c, e] = await Promise.all([makeChunk("uploaded twice"), makeChunk("beside it")]);
    const [P] = await storeRecordedPacks(f.v, [c!]);
    const [A] = await storeRecordedPacks(f.v, [c!, e!]);
    const pKey = vaultPackKey(GDB, P!.name);
    expect((await f.catalog.getChunks(GDB, [c!.sha256]))[0]?.vaultKey).toBe(vaultPackKey(GDB, A!.name));
    // Nothing kept references c or e: run 1 marks both packs.
    const old = await snapshotOf(f, [c!, e!], new Date("2026-01-01T00:00:00Z"));
    await run(f, deleting(old), [old], RUN1, "run-1");
    // A push names P for c; its CheckReferenced unmarks P, not A. Run 2 deletes A, c's record with it, before the push is recorded.
    await f.catalog.clearPackOrphaned(GDB, P!.name);
    const second = await run(f, nothing, [], RUN2, "run-2");
    const recordAfterSecond = await f.catalog.getChunks(GDB, [c!.sha256]);
    await snapshotOf(f, [c!], new Date("2026-01-03T00:00:00Z"));

    // Act: the next runs, a grace period apart.
    const third = await run(f, nothing, [], RUN3, "run-3");
    const fourth = await run(f, nothing, [], RUN4, "run-4");

    // Assess: A went with c's record; P, which no record names, is kept and unmarked, and still holds c.
    expect(second.packsSwept).toBe(1);
    expect(await f.catalog.getPack(GDB, A!.name)).toBeUndefined();
    expect(recordAfterSecond).toEqual([]);
    expect([third.packsSwept, third.packsMarked, fourth.packsSwept, fourth.packsMarked]).toEqual([0, 0, 0, 0]);
    const kept = await f.catalog.getPack(GDB, P!.name);
    expect(kept).toBeDefined();
    expect(kept?.orphanedAt).toBeUndefined();
    const entry = (await readPackIndex(f.vault, "vault", kept!))!.find((x) => x.sha256 === c!.sha256)!;
    const stored = await f.vault.getRange("vault", pKey, entry.offset, entry.offset + entry.storedLength - 1);
    expect(await decodeWith(entry.codec, stored!, c!.sha256, entry.rawSize)).toEqual(c!.raw);
  });

  it("deletes a repacked pack a grace period after the move, though its index still lists a chunk a kept snapshot uses", async () => {
    // Prepare
    const { f, chunks, pack, keep } = await repackedAtRun1("moved out");
    const record = await f.catalog.getPack(GDB, pack.name);
    const listed = (await readPackIndex(f.vault, "vault", record!))!.map((e) => e.sha256);

    // Act
    const second = await run(f, nothing, [], RUN2, "run-2");

    // Assess
    expect(record?.repackedAt).toBe(RUN1.toISOString());
    expect(listed).toContain(chunks[1]!.sha256);
    expect(second.packsSwept).toBe(1);
    expect(await f.catalog.getPack(GDB, pack.name)).toBeUndefined();
    expect(f.vault.objects.has(vaultPackKey(GDB, pack.name))).toBe(false);
    expect(await restoreFile(f, keep)).toEqual(chunks[1]!.raw);
  });

  it("keeps a repacked pack while a snapshot reuses, through its record, a chunk the repack left in it, and moves that chunk out next", async () => {
    // Prepare: a push reuses chunk 3, dead when run 1 repacked the pack (so left in it); CheckReferenced reads its record and unmarks the pack.
    const { f, chunks, pack, keep } = await repackedAtRun1("left behind");
    const late = await snapshotOf(f, [chunks[3]!], new Date("2026-01-03T00:00:00Z"));
    await checkReusedPacks(f.catalog, manifestOf(f, late), [reused(chunks[3]!)]);
    const key = vaultPackKey(GDB, pack.name);

    // Act
    const second = await run(f, nothing, [], RUN2, "run-2");
    const afterSecond = { record: await f.catalog.getPack(GDB, pack.name), object: f.vault.objects.has(key), restored: await restoreFile(f, late) };
    const third = await run(f, nothing, [], RUN3, "run-3");

    // Assess: run 2 kept it (a record it serves is live) and repacked it again; run 3 deleted it; both snapshots restore.
    expect([second.packsSwept, second.packsRepacked]).toEqual([0, 1]);
    expect(afterSecond.record?.orphanedAt).toBe(RUN2.toISOString());
    expect(afterSecond.object).toBe(true);
    expect(afterSecond.restored).toEqual(chunks[3]!.raw);
    expect(third.packsSwept).toBe(1);
    expect(f.vault.objects.has(key)).toBe(false);
    expect(await restoreFile(f, late)).toEqual(chunks[3]!.raw);
    expect(await restoreFile(f, keep)).toEqual(chunks[1]!.raw);
  });

  it("keeps a repacked pack that alone holds a chunk a kept snapshot uses and no record places, and copies that chunk out, recording it, in the next repack", async () => {
    // Prepare: chunk 3, dead when run 1 repacked the pack (so left in it), loses its record (it went with another pack),
    // and a snapshot committed since uses it through the pack its manifest names (CheckReferenced accepted it before the repack).
    const { f, chunks, pack, keep } = await repackedAtRun1("unplaced");
    await f.catalog.deleteChunks(GDB, [chunks[3]!.sha256]);
    const late = await snapshotOf(f, [chunks[3]!], new Date("2026-01-03T00:00:00Z"));
    const key = vaultPackKey(GDB, pack.name);

    // Act
    const second = await run(f, nothing, [], RUN2, "run-2");
    const afterSecond = await f.catalog.getPack(GDB, pack.name);
    const third = await run(f, nothing, [], RUN3, "run-3");
    const recordAfterThird = (await f.catalog.getChunks(GDB, [chunks[3]!.sha256]))[0];
    const fourth = await run(f, nothing, [], RUN4, "run-4");

    // Assess: run 2 kept the pack (an unplaced entry is live: unmarked), run 3 repacked it again, creating the chunk's
    // record at its copy; run 4 deleted it; both snapshots restore from the copies.
    expect(second.packsSwept).toBe(0);
    expect(afterSecond?.orphanedAt).toBeUndefined();
    expect([third.packsSwept, third.packsRepacked]).toEqual([0, 1]);
    expect(recordAfterThird?.vaultKey).not.toBe(key);
    expect(recordAfterThird?.offset).toBeDefined();
    expect(fourth.packsSwept).toBe(1);
    expect(f.vault.objects.has(key)).toBe(false);
    expect(await restoreFile(f, late)).toEqual(chunks[3]!.raw);
    expect(await restoreFile(f, keep)).toEqual(chunks[1]!.raw);
  });

  it("CheckReferenced accepts a reused chunk by the pack its manifest names, reading no chunk record and unmarking that pack; a wrong, unrecorded or repacked pack sends it to its record", async () => {
    // Prepare: chunks 0-2 in pack P (a deletion candidate), chunk 3 in pack Q. The manifest names P for 0, Q for 1 (wrong), an unrecorded pack for 2.
    const f = await newFixture();
    const chunks = await Promise.all(Array.from({ length: 4 }, (_, i) => makeChunk(`named ${i}`)));
    const [P] = await storeRecordedPacks(f.v, chunks.slice(0, 3));
    const [Q] = await storeRecordedPacks(f.v, [chunks[3]!]);
    const nowhere = "f".repeat(64);
    await f.catalog.markPacksOrphaned(GDB, [P!.name], RUN1.toISOString());
    const named = new Map([
      [chunks[0]!.sha256, P!.name],
      [chunks[1]!.sha256, Q!.name],
      [chunks[2]!.sha256, nowhere],
    ]);
    const { manifestKey } = await putPackedManifest(f.v, chunks.slice(0, 3).map((c) => ({ c, isNew: false })), [], new Date("2026-01-03T00:00:00Z"), undefined, named);
    const manifest = manifestOf(f, { manifestKey });
    const names = manifest.reusedPacks!;
    const refs = chunks.slice(0, 3).map((c) => ({ ...reused(c), reusedPack: names.indexOf(named.get(c.sha256)!) }));
    const { proxy, calls } = recordingCalls(f.catalog, ["getChunks"]);
    const deps = { catalog: proxy, vault: f.vault, vaultBucket: "vault" };

    // Act: as pushed; then with P repacked; then with chunk 1's record gone.
    await checkPackedChunks(deps, manifest, refs, [], names);
    const afterFirst = { read: calls.getChunks.map((args) => args[1] as string[]), pack: await f.catalog.getPack(GDB, P!.name) };
    calls.getChunks.length = 0;
    await f.catalog.markPacksRepacked(GDB, [P!.name], RUN2.toISOString());
    await checkPackedChunks(deps, manifest, refs, [], names);
    const afterRepacked = calls.getChunks.map((args) => args[1] as string[]);
    await f.catalog.deleteChunks(GDB, [chunks[1]!.sha256]);
    const refused = await checkPackedChunks(deps, manifest, refs, [], names).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess
    expect(afterFirst.read).toHaveLength(1);
    expect([...afterFirst.read[0]!].sort()).toEqual([chunks[1]!.sha256, chunks[2]!.sha256].sort());
    expect(afterFirst.pack?.orphanedAt).toBeUndefined();
    expect(afterRepacked).toHaveLength(1);
    expect([...afterRepacked[0]!].sort()).toEqual(chunks.slice(0, 3).map((c) => c.sha256).sort());
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(String(refused)).toContain(chunks[1]!.sha256);
  });

  it("CheckReferenced never accepts a chunk through a repacked pack: it reads the chunk's record, and refuses the chunk once that is gone", async () => {
    // Prepare: a manifest that places a moved chunk, flagged new, in the repacked pack.
    const { f, chunks, pack } = await repackedAtRun1("named pack");
    const moved = chunks[1]!;
    const { manifestKey } = await putPackedManifest(f.v, [{ c: moved, isNew: true }], [pack], new Date("2026-01-03T00:00:00Z"));
    const manifest = manifestOf(f, { manifestKey });
    const { proxy, calls } = recordingCalls(f.catalog, ["getChunks"]);
    const deps = { catalog: proxy, vault: f.vault, vaultBucket: "vault" };

    // Act: once with the chunk's record (it names the pack the repack moved it to), once without.
    await checkPackedChunks(deps, manifest, [newIn(moved, 0)], [pack.name]);
    const afterAccepted = await f.catalog.getPack(GDB, pack.name);
    await f.catalog.deleteChunks(GDB, [moved.sha256]);
    const refused = await checkPackedChunks(deps, manifest, [newIn(moved, 0)], [pack.name]).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess: the record was read both times; the repacked pack stayed marked; without the record the chunk is missing.
    expect(calls.getChunks.map((args) => args[1])).toEqual([[moved.sha256], [moved.sha256]]);
    expect(afterAccepted?.orphanedAt).toBe(RUN1.toISOString());
    expect(refused).toBeInstanceOf(NotFoundError);
    expect(String(refused)).toContain(moved.sha256);
  });
});
