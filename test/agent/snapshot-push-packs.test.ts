/**
 * `snapshotPush` with packs (agent/snapshot-push.ts, `packs: true` or
 * WALVAULT_PACKS=1) against the real local stack and its snapshot ingest
 * workflow: new chunks, small files included, go into pack objects of
 * DEFAULT_PACK_TARGET_SIZE; the manifest lists them; ingest promotes them;
 * restore reads them back byte-identical.
 */
import { randomBytes, randomFillSync } from "node:crypto";
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packsEnabled } from "../../agent/config.js";
import { restore } from "../../agent/restore.js";
import { verifySnapshot } from "../../agent/verify.js";
import { snapshotPush, type PushConfig, type SnapshotPushResult, type SnapshotSource } from "../../agent/snapshot-push.js";
import { getCodec } from "../../core/codec.js";
import { ConfigError, ServiceUnavailableError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingPackKey, packNameOfKey } from "../../core/keys.js";
import type { ChunkItem } from "../../core/schemas.js";
import { readPackIndex } from "../../store/pack-index.js";
import { DEFAULT_PACK_TARGET_SIZE, verifyPack } from "../../core/pack.js";
import type { ObjectStore } from "../../store/object-store.js";
import { listKeys, recordingCalls, stackClients, tempDir, type StackClients } from "../support/harness.js";
import { readPushedManifest, type PushedManifest } from "../support/pushed-manifest.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-packed";
/** A database of its own for the first-push tests (its catalog starts empty). */
const FIRST = "gen-packed-first";
/** And two for pushes on encode workers and the same push on one thread. */
const WORKERS = "gen-packed-workers";
const ONE_THREAD = "gen-packed-one-thread";
/** And one whose first push is interrupted after its packs landed. */
const RETRY = "gen-packed-retry";
/** The compiled encode worker: `npm test` builds dist/ first. */
const ENCODE_WORKER = fileURLToPath(new URL("../../dist/agent/encode-worker.js", import.meta.url));
const STREAMS = [{ id: "wal", lastSegment: "wal/00000042.wal", lastSegno: 42 }];
const MiB = 1024 * 1024;

let stack: TestStack;
let clients: StackClients;
let work: string;

beforeAll(async () => {
  stack = await startTestStack([
    { id: GEN, kind: "generic" },
    { id: FIRST, kind: "generic" },
    { id: WORKERS, kind: "generic" },
    { id: ONE_THREAD, kind: "generic" },
    { id: RETRY, kind: "generic" },
  ]);
  clients = stackClients(stack);
  work = tempDir("walvault-packs-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

const cfg = (): PushConfig => ({ ...stack.config, databaseId: GEN });
const source = (dir: string): SnapshotSource => ({ kind: "generic", dir, streams: STREAMS });

/** The pushed manifest (format 2 by default), read through openManifest. */
const manifestOf = (r: SnapshotPushResult): Promise<PushedManifest> => readPushedManifest(clients.store, stack.config.incomingBucket, r);

const incomingPacks = (): Promise<string[]> => listKeys(clients.store, stack.config.incomingBucket, `incoming/db/${GEN}/packs/`);
const incomingChunks = (): Promise<string[]> => listKeys(clients.store, stack.config.incomingBucket, `incoming/db/${GEN}/chunks/`);

/** A tree of `bigMiB` MiB of incompressible bytes in 3 files plus `small` small files of a few hundred bytes. */
function makeTree(name: string, bigMiB: number, small: number): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "small"), { recursive: true });
  mkdirSync(join(dir, "wal"));
  const piece = Buffer.allocUnsafe(MiB);
  for (let f = 0; f < 3; f++) {
    const fd = openSync(join(dir, `big-${f}.sst`), "w");
    for (let w = 0; w < Math.ceil(bigMiB / 3); w++) writeSync(fd, randomFillSync(piece));
    closeSync(fd);
  }
  for (let i = 0; i < small; i++) writeFileSync(join(dir, "small", `f${String(i).padStart(4, "0")}`), randomBytes(100 + (i % 700)));
  writeFileSync(join(dir, "wal", "00000042.wal"), Buffer.alloc(64 * 1024, 7));
  return dir;
}

/** SHA-256 of every regular file under dir, by relative path. */
function fileHashes(dir: string, rel = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) Object.assign(out, fileHashes(dir, r));
    else if (st.isFile()) out[r] = sha256Hex(readFileSync(join(dir, r)));
  }
  return out;
}

/** Every chunk reference of `m` names, as its reused pack, the pack its catalog record placed it in (`only`: the chunks that had one). */
async function expectEachNamesItsRecordsPack(databaseId: string, m: PushedManifest, only?: readonly string[]): Promise<void> {
  const records = new Map((await clients.catalog.getChunks(databaseId, m.files.flatMap((f) => (f.type === "file" ? f.chunks.map((c) => c.sha256) : [])))).map((r) => [r.sha256, r.vaultKey]));
  let named = 0;
  for (const f of m.files) {
    if (f.type !== "file") continue;
    for (const c of f.chunks) {
      if (only !== undefined && !only.includes(c.sha256)) continue;
      expect(c.reusedPack, c.sha256).toBeDefined();
      named++;
      if (only === undefined) expect(`db/${databaseId}/packs/${m.reusedPacks![c.reusedPack!]}`, c.sha256).toBe(records.get(c.sha256));
    }
  }
  if (only !== undefined) expect(named).toBeGreaterThanOrEqual(only.length);
}

/**
 * Records, for every chunk of every pack of `databaseId` in the vault (`only`: these chunks), where it is: what a
 * repack leaves for the chunks it moves, or PromotePacks wrote before docs/packs.md step 3. Resolves the hashes recorded.
 */
async function recordEveryPackedChunk(databaseId: string, only?: ReadonlySet<string>): Promise<string[]> {
  const keys = await listKeys(clients.store, stack.config.vaultBucket, `db/${databaseId}/packs/`);
  const packs = await clients.catalog.getPacks(databaseId, keys.map(packNameOfKey));
  const records: ChunkItem[] = [];
  const seen = new Set<string>();
  for (const p of packs) {
    for (const e of (await readPackIndex(clients.store, stack.config.vaultBucket, p))!) {
      if ((only !== undefined && !only.has(e.sha256)) || seen.has(e.sha256)) continue;
      seen.add(e.sha256);
      records.push({ databaseId, sha256: e.sha256, size: e.rawSize, storedSize: e.storedLength, codec: e.codec, vaultKey: p.vaultKey, offset: e.offset, recordedAt: p.recordedAt });
    }
  }
  await clients.catalog.recordChunks(records);
  return records.map((r) => r.sha256);
}

describe("WALVAULT_PACKS", () => {
  it("is on unless set to 0/false/no/off, and refuses anything else in one line", () => {
    // Act + Assess
    expect(packsEnabled({})).toBe(true);
    expect(packsEnabled({ WALVAULT_PACKS: "off" })).toBe(false);
    expect(packsEnabled({ WALVAULT_PACKS: "0" })).toBe(false);
    expect(packsEnabled({ WALVAULT_PACKS: "1" })).toBe(true);
    expect(packsEnabled({ WALVAULT_PACKS: "on" })).toBe(true);
    expect(() => packsEnabled({ WALVAULT_PACKS: "maybe" })).toThrow(ConfigError);
    expect(() => packsEnabled({ WALVAULT_PACKS: "maybe" })).toThrow(/^WALVAULT_PACKS='maybe' is not 1 or 0/);
  });
});

describe("a packed snapshot push", () => {
  let dir: string;
  let first: SnapshotPushResult;
  /** The same tree pushed again (set by its test). */
  let secondPush: SnapshotPushResult;

  beforeAll(async () => {
    dir = makeTree("tree", 45, 600);
    first = await snapshotPush(source(dir), cfg(), clients, { packs: true, timeoutMs: 180_000 });
    console.log("packed push 1", JSON.stringify({ totals: first.totals, packs: first.packs?.uploaded, seconds: first.seconds, peakRssMB: Math.round(first.peakRssBytes / 1e6) }));
  }, 240_000);

  it("uploads at most ceil(stored / 32 MiB) + 1 packs, the small files in them, and no object per chunk", async () => {
    // Assess
    const stored = first.totals.newStoredBytes;
    expect(first.totals.files).toBe(604);
    expect(first.packs!.uploaded).toBeLessThanOrEqual(Math.ceil(stored / DEFAULT_PACK_TARGET_SIZE) + 1);
    expect(first.packs!.uploaded).toBeGreaterThanOrEqual(2);
    expect((await incomingPacks()).sort()).toEqual(first.packs!.names.map((n) => incomingPackKey(GEN, n)).sort());
    expect(await incomingChunks()).toEqual([]);
    expect(first.uploadedBytes).toBe(first.packs!.bytes + (await manifestOf(first)).objectBytes);
  });

  it("lists exactly its packs in the manifest, which together hold every new chunk once, as the manifest records it", async () => {
    // Prepare
    const m = await manifestOf(first);
    const recorded = new Map<string, { size: number; storedSize: number; codec: string }>();
    for (const f of m.files) if (f.type === "file") for (const c of f.chunks) if (c.new) recorded.set(c.sha256, c);
    // Act
    const inPacks = new Map<string, { rawSize: number; storedLength: number; codec: string }>();
    for (const name of m.packs!) {
      const obj = await clients.store.get(stack.config.incomingBucket, incomingPackKey(GEN, name));
      const { entries } = verifyPack(obj!.body, name);
      expect(obj!.metadata).toMatchObject({ "walvault-pack-entries": String(entries.length), "walvault-sha256": name, "walvault-codec": "none" });
      for (const e of entries) {
        expect(inPacks.has(e.sha256)).toBe(false);
        inPacks.set(e.sha256, e);
        expect(sha256Hex(await getCodec(e.codec).decode(obj!.body.subarray(e.offset, e.offset + e.storedLength), e.rawSize))).toBe(e.sha256);
      }
    }
    // Assess
    expect(m.packs).toEqual([...first.packs!.names].sort());
    expect([...inPacks.keys()].sort()).toEqual([...recorded.keys()].sort());
    for (const [sha, c] of recorded) expect(inPacks.get(sha)).toMatchObject({ rawSize: c.size, storedLength: c.storedSize, codec: c.codec });
    expect(recorded.size).toBe(first.totals.newChunks);
  });

  it("is recorded by ingest, its packs promoted and recorded, every chunk in the index of the pack it names, no chunk record written", async () => {
    // Prepare
    const m = await manifestOf(first);
    const named = new Map<string, string>();
    for (const f of m.files) if (f.type === "file") for (const c of f.chunks) if (c.pack !== undefined) named.set(c.sha256, m.packs![c.pack]!);
    // Act
    const records = await clients.catalog.getChunks(GEN, [...named.keys()]);
    const packs = await clients.catalog.getPacks(GEN, m.packs!);
    const vaultPacks = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/packs/`);
    // Assess
    expect(first.outcome).toBe("recorded");
    expect(first.record).toMatchObject({ snapshotId: first.snapshotId, status: "restorable" });
    expect(named.size).toBe(first.totals.uniqueChunks);
    expect(records).toEqual([]);
    expect(new Set(packs.map((p) => p.vaultKey))).toEqual(new Set(vaultPacks));
    const held = new Map<string, string>();
    for (const p of packs) for (const e of (await readPackIndex(clients.store, stack.config.vaultBucket, p))!) held.set(e.sha256, p.name);
    for (const [sha, pack] of named) expect(held.get(sha), sha).toBe(pack);
    expect(await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/chunks/`)).toEqual([]);
  });

  it("restores byte-identical from its packs (push with packs, ingest, restore), locating every new chunk from its pack's index, none by its catalog record", async () => {
    // Prepare
    const to = join(work, "restored");
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["getChunks", "getPack"]);
    const m = await manifestOf(first);
    // Act
    const r = await restore({ ...clients, catalog }, { ...stack.config }, { databaseId: GEN, target: { kind: "snapshot", id: first.snapshotId }, toDir: to, durable: false });
    // Assess: one pack record read per pack, no chunk record.
    expect(r.snapshotId).toBe(first.snapshotId);
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    expect(calls.getChunks.flatMap((c) => c[1] as string[])).toEqual([]);
    expect(calls.getPack.map((c) => c[1]).sort()).toEqual([...m.packs!].sort());
    rmSync(to, { recursive: true, force: true });
  }, 180_000);

  it("restores byte-identical through the catalog's records when the packs its manifest names are no longer recorded (repacked and swept)", async () => {
    // Prepare: the catalog knows no pack record, and each chunk has the record a repack leaves where it moved a chunk.
    const to = join(work, "restored-records");
    const forwarded = await recordEveryPackedChunk(GEN);
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["getChunks"]);
    const noPacks = new Proxy(catalog, { get: (t, prop, rc) => (prop === "getPack" ? async () => undefined : (Reflect.get(t, prop, rc) as unknown)) });
    // Act
    await restore({ ...clients, catalog: noPacks }, { ...stack.config }, { databaseId: GEN, target: { kind: "snapshot", id: first.snapshotId }, toDir: to, durable: false }).finally(() =>
      clients.catalog.deleteChunks(GEN, forwarded),
    );
    // Assess: every distinct chunk was looked up in the catalog instead.
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    expect(new Set(calls.getChunks.flatMap((c) => c[1] as string[])).size).toBe(first.totals.uniqueChunks);
    rmSync(to, { recursive: true, force: true });
  }, 180_000);

  it("a second push of the same tree uploads no pack, only the manifest (an empty pack list)", async () => {
    // Act
    const second = await snapshotPush(source(dir), cfg(), clients, { packs: true, timeoutMs: 120_000 });
    // Assess
    expect(second.previousSnapshotId).toBe(first.snapshotId);
    expect(second.totals.newChunks).toBe(0);
    expect(second.packs).toEqual({ uploaded: 0, bytes: 0, names: [] });
    expect((await manifestOf(second)).packs).toEqual([]);
    expect(second.outcome).toBe("recorded");
    secondPush = second;
  }, 180_000);

  it("names, for every chunk it reused, the pack the previous manifest placed it in, and restores from them without one chunk record", async () => {
    // Prepare
    const before = await manifestOf(first);
    const packOf = new Map<string, string>();
    for (const f of before.files) if (f.type === "file") for (const c of f.chunks) if (c.pack !== undefined) packOf.set(c.sha256, before.packs![c.pack]!);
    const m = await manifestOf(secondPush);
    const to = join(work, "restored-second");
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["getChunks", "getPack"]);
    // Act
    const named = m.files.flatMap((f) => (f.type === "file" ? f.chunks.map((c) => [c.sha256, c.reusedPack === undefined ? undefined : m.reusedPacks?.[c.reusedPack]] as const) : []));
    await restore({ ...clients, catalog }, { ...stack.config }, { databaseId: GEN, target: { kind: "snapshot", id: secondPush.snapshotId }, toDir: to, durable: false });
    // Assess
    expect(m.reusedPacks).toEqual([...first.packs!.names].sort());
    expect(named.length).toBe(first.totals.chunks);
    for (const [sha, pack] of named) expect(pack, sha).toBe(packOf.get(sha));
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    expect(calls.getChunks.flatMap((c) => c[1] as string[])).toEqual([]);
    expect(new Set(calls.getPack.map((c) => c[1]))).toEqual(new Set(first.packs!.names));
    rmSync(to, { recursive: true, force: true });
  }, 180_000);

  it("verifies (L2) the incremental snapshot from the packs its manifest names, without one chunk record", async () => {
    // Prepare
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["getChunks", "getPack"]);
    // Act
    const run = await verifySnapshot({ ...clients, catalog }, { ...stack.config }, { databaseId: GEN, snapshotId: secondPush.snapshotId, level: 2, workDir: join(work, "verify"), log: () => undefined });
    // Assess
    expect(run).toMatchObject({ outcome: "passed", level: 2 });
    expect(calls.getChunks.flatMap((c) => c[1] as string[])).toEqual([]);
    expect(new Set(calls.getPack.map((c) => c[1]))).toEqual(new Set(first.packs!.names));
  }, 180_000);

  it("a push without packs after packed ones still names the packs of the chunks it reused, and its restore reads them there", async () => {
    // Act
    const unpacked = await snapshotPush(source(dir), cfg(), clients, { packs: false, timeoutMs: 120_000 });
    const m = await manifestOf(unpacked);
    const to = join(work, "restored-unpacked");
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["getChunks"]);
    await restore({ ...clients, catalog }, { ...stack.config }, { databaseId: GEN, target: { kind: "snapshot", id: unpacked.snapshotId }, toDir: to, durable: false });
    // Assess
    expect(unpacked.outcome).toBe("recorded");
    expect(unpacked.totals.newChunks).toBe(0);
    expect(m.packs).toBeUndefined();
    expect(m.reusedPacks).toEqual([...first.packs!.names].sort());
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    expect(calls.getChunks.flatMap((c) => c[1] as string[])).toEqual([]);
    rmSync(to, { recursive: true, force: true });
  }, 180_000);

  it("uploads again the chunks only an older snapshot has, but takes those a record places (moved by a repack) from their records, not HEADs", async () => {
    // Prepare: another tree becomes the latest snapshot; a tenth of the first tree's chunks get the records a repack leaves.
    const other = makeTree("other", 1, 3);
    const between = await snapshotPush(source(other), cfg(), clients, { packs: true, timeoutMs: 120_000 });
    expect(between.outcome).toBe("recorded");
    const m1 = await manifestOf(first);
    const moved = new Set(m1.files.flatMap((f) => (f.type === "file" && !f.path.startsWith("wal/") ? f.chunks.map((c) => c.sha256) : [])).filter((_, i) => i % 10 === 3));
    const forwarded = await recordEveryPackedChunk(GEN, moved);
    // Act: the first tree again.
    const again = await snapshotPush(source(dir), cfg(), clients, { packs: true, timeoutMs: 120_000 }).finally(() => clients.catalog.deleteChunks(GEN, forwarded));
    // Assess: the WAL file (the same in both trees) is known from the previous manifest; the moved chunks from their
    // records; the rest is uploaded again (pgBackRest's rule: no dedup with snapshots before the previous one).
    expect(again.previousSnapshotId).toBe(between.snapshotId);
    expect(forwarded).toHaveLength(moved.size);
    expect(again.lookups.vaultHeads).toBe(0);
    expect(again.lookups.catalogRecords).toBe(moved.size);
    expect(again.totals.newChunks).toBe(first.totals.uniqueChunks - 1 - moved.size);
    expect(again.packs!.uploaded).toBeGreaterThan(0);
    expect(again.outcome).toBe("recorded");
    // Each moved chunk names the pack its record places it in.
    const m = await manifestOf(again);
    const reusedFromRecords: PushedManifest = { ...m, files: m.files.map((f) => (f.type === "file" ? { ...f, chunks: f.chunks.filter((c) => moved.has(c.sha256)) } : f)) };
    await expectEachNamesItsRecordsPack(GEN, reusedFromRecords, forwarded);
  }, 240_000);

  it("names, once, the packs of reused chunks a previous manifest left unnamed (format 1), so later manifests carry them and no push looks them up again", async () => {
    // Prepare: a vault from before step 3 (every packed chunk recorded); a format-1 push of the same tree reuses them by
    // their records, naming no pack.
    const recorded = await recordEveryPackedChunk(GEN);
    const unnamed = await snapshotPush(source(dir), cfg(), clients, { packs: true, manifestPages: false, timeoutMs: 120_000 });
    const f1 = await manifestOf(unnamed);
    expect(unnamed.totals.newChunks).toBe(0);
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["getChunks"]);

    // Act: two format-2 pushes of it.
    const named = await snapshotPush(source(dir), cfg(), { ...clients, catalog }, { packs: true, timeoutMs: 120_000 });
    const lookedUp = calls.getChunks.flatMap((c) => c[1] as string[]);
    calls.getChunks.length = 0;
    const after = await snapshotPush(source(dir), cfg(), { ...clients, catalog }, { packs: true, timeoutMs: 120_000 });

    // Assess
    expect(f1.reusedPacks).toBeUndefined();
    expect(f1.files.some((f) => f.type === "file" && f.chunks.some((c) => c.reusedPack !== undefined))).toBe(false);
    expect(new Set(lookedUp).size).toBe(first.totals.uniqueChunks);
    for (const push of [named, after]) {
      const m = await manifestOf(push);
      expect(push.totals.newChunks).toBe(0);
      expect((await clients.catalog.getPacks(GEN, m.reusedPacks!)).length).toBe(m.reusedPacks!.length);
      for (const f of m.files) if (f.type === "file") for (const c of f.chunks) expect(c.reusedPack, c.sha256).toBeDefined();
    }
    expect(calls.getChunks).toEqual([]);
    await clients.catalog.deleteChunks(GEN, recorded);
  }, 240_000);
});

describe("a packed push on encode workers", () => {
  it("writes the packs and manifest a push on one thread writes, skips what the previous manifest holds, and restores byte-identical", async () => {
    // Prepare
    const dir = makeTree("workers-tree", 9, 80);
    const wcfg = (): PushConfig => ({ ...stack.config, databaseId: WORKERS });
    const one = await snapshotPush(source(dir), { ...stack.config, databaseId: ONE_THREAD }, clients, { packs: true, encodeThreads: 0, timeoutMs: 180_000 });
    // Act: the same tree on two workers, then again after one file changed
    const two = await snapshotPush(source(dir), wcfg(), clients, { packs: true, encodeThreads: 2, encodeWorkerFile: ENCODE_WORKER, timeoutMs: 180_000 });
    const fd = openSync(join(dir, "big-1.sst"), "r+");
    writeSync(fd, randomBytes(4096), 0, 4096, 1024 * 1024);
    closeSync(fd);
    const three = await snapshotPush(source(dir), wcfg(), clients, { packs: true, encodeThreads: 2, encodeWorkerFile: ENCODE_WORKER, timeoutMs: 180_000 });
    // Assess: same packs (first pushes of two databases), same chunk references
    expect(two.packs!.names).toEqual(one.packs!.names);
    const refs = async (r: SnapshotPushResult) => (await manifestOf(r)).files.map((f) => (f.type === "file" ? f.chunks.map((c) => [c.sha256, c.storedSize]) : f.path));
    expect(await refs(two)).toEqual(await refs(one));
    // ...the changed file's new chunk alone is new, and the snapshot restores as the tree is now
    expect(three.totals.newChunks).toBeGreaterThan(0);
    expect(three.totals.newChunks).toBeLessThanOrEqual(3);
    const to = join(work, "workers-restored");
    await restore(clients, { ...stack.config }, { databaseId: WORKERS, target: { kind: "snapshot", id: three.snapshotId }, toDir: to, durable: false });
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    rmSync(to, { recursive: true, force: true });
  }, 300_000);
});

describe("a database's first push", () => {
  it("looks no chunk up when the catalog has none of the database; once its packs are recorded, finds them by the pack log though no snapshot is left", async () => {
    // Prepare
    const dir = makeTree("first-push", 2, 5);
    const config: PushConfig = { ...stack.config, databaseId: FIRST };
    // Act: the first push; then its snapshot record deleted (its packs stay recorded) and the same tree pushed again.
    const first = await snapshotPush(source(dir), config, clients, { packs: true, timeoutMs: 120_000 });
    await clients.catalog.deleteSnapshot(FIRST, first.snapshotId);
    const again = await snapshotPush(source(dir), config, clients, { packs: true, timeoutMs: 120_000 });
    // Assess: the first asked nothing and uploaded every chunk; the second found every chunk in the packs the log lists and uploaded none.
    expect(first.outcome).toBe("recorded");
    expect(first.lookups).toMatchObject({ catalogEmpty: true, catalogBatches: 0, catalogChunks: 0, catalogRecords: 0, packLogPacks: 0 });
    expect(first.totals.newChunks).toBe(first.totals.uniqueChunks);
    expect(again.previousSnapshotId).toBeUndefined();
    expect(again.lookups).toMatchObject({ catalogChunks: 0, catalogRecords: 0, packLogPacks: first.packs!.uploaded, packLogChunks: first.totals.uniqueChunks });
    expect(again.totals.newChunks).toBe(0);
    expect(again.packs!.uploaded).toBe(0);
    expect(again.outcome).toBe("recorded");
    // Each reused chunk names the pack the first push put it in.
    const m = await manifestOf(again);
    expect(m.reusedPacks).toEqual(first.packs!.names);
    for (const f of m.files) if (f.type === "file") for (const c of f.chunks) expect(c.reusedPack, c.sha256).toBeDefined();
  }, 240_000);
});

describe("a push retried after an interrupted one", () => {
  it("reuses every chunk the interrupted push landed, found by the pack log (no chunk looked up), names those packs, and restores from them", async () => {
    // Prepare: a first push that dies after its packs are uploaded (its manifest header cannot be written).
    const dir = makeTree("retried", 6, 40);
    const config: PushConfig = { ...stack.config, databaseId: RETRY };
    const landed: string[] = [];
    const dying: ObjectStore = Object.create(clients.store) as ObjectStore;
    dying.put = async (bucket, key, ...rest) => {
      if (key.endsWith("/manifest.json")) throw new ServiceUnavailableError(`PutObject s3://${bucket}/${key}: connection reset`);
      if (key.includes("/packs/")) landed.push(key.slice(key.lastIndexOf("/") + 1));
      return clients.store.put(bucket, key, ...rest);
    };
    const died = await snapshotPush(source(dir), config, { ...clients, store: dying }, { packs: true, timeoutMs: 120_000 }).catch((e: unknown) => e);
    expect(died).toBeInstanceOf(ServiceUnavailableError);
    expect(landed.length).toBeGreaterThan(0);
    // Ingest promotes each pack as it lands: wait until all are recorded.
    const deadline = Date.now() + 60_000;
    while ((await clients.catalog.getPacks(RETRY, landed)).length < landed.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const { proxy: catalog, calls } = recordingCalls(clients.catalog, ["missingChunks", "getChunks"]);

    // Act
    const retried = await snapshotPush(source(dir), config, { ...clients, catalog }, { packs: true, timeoutMs: 120_000 });

    // Assess: nothing uploaded again, nothing asked of chunk records
    expect(retried.outcome).toBe("recorded");
    expect(retried.previousSnapshotId).toBeUndefined();
    expect(retried.lookups.packLogPacks).toBe(landed.length);
    expect(retried.lookups.packLogChunks).toBe(retried.totals.uniqueChunks);
    expect(retried.totals.newChunks).toBe(0);
    expect(retried.packs!.uploaded).toBe(0);
    expect(calls.missingChunks.flatMap((c) => c[1] as string[])).toEqual([]);
    expect(calls.getChunks.flatMap((c) => c[1] as string[])).toEqual([]);
    const m = await manifestOf(retried);
    expect(m.reusedPacks).toEqual([...landed].sort());
    for (const f of m.files) if (f.type === "file") for (const c of f.chunks) expect(c.reusedPack, c.sha256).toBeDefined();
    const to = join(work, "retried-restored");
    await restore(clients, { ...stack.config }, { databaseId: RETRY, target: { kind: "snapshot", id: retried.snapshotId }, toDir: to, durable: false });
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    rmSync(to, { recursive: true, force: true });
  }, 240_000);
});

describe("a packed push that cannot upload", () => {
  it("fails naming the pack, its chunk count and key", async () => {
    // Prepare: a store whose PUTs of packs fail.
    const failing: ObjectStore = Object.create(clients.store) as ObjectStore;
    failing.put = async (bucket, key, ...rest) => {
      if (key.includes("/packs/")) throw new ServiceUnavailableError(`PutObject s3://${bucket}/${key}: connection refused`);
      return clients.store.put(bucket, key, ...rest);
    };
    const d = join(work, "upload-fails");
    mkdirSync(d);
    writeFileSync(join(d, "x"), randomBytes(100_000));
    // Act
    const err = await snapshotPush(source(d), cfg(), { ...clients, store: failing }, { packs: true, wait: false }).catch((e: unknown) => e);
    // Assess
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/^uploading pack [0-9a-f]{64} \(1 chunks, \d+ bytes\) to incoming\/db\/gen-packed\/packs\/[0-9a-f]{64} failed: PutObject .*connection refused$/);
  });
});
