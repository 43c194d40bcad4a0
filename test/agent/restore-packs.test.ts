/**
 * `walvault restore` (agent/restore.ts) of snapshots whose chunks live in
 * packs (docs/packs.md): chunks are located in the catalog in batches and
 * read with coalesced ranged GETs, mixed with old single-object chunks. The
 * snapshots are put into the vault by test/support/snapshots.ts (one object
 * per chunk), then some or all of their chunks are moved into packs here, as
 * ingest would leave them: packs built with PackBuilder at vaultPackKey,
 * chunk records with the pack key and offset, pack records; the chunk
 * objects are deleted, so a read of one would fail.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChecksumMismatchError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey, vaultPackKey } from "../../core/keys.js";
import { PAGE_CHUNKS } from "../../core/manifest-pages.js";
import { PLAN_WINDOW_CHUNKS, PLAN_WINDOW_STORED_BYTES, restore, type RestoreConfig } from "../../agent/restore.js";
import type { Catalog } from "../../store/catalog.js";
import { stackClients, tempDir } from "../support/harness.js";
import { packChunks as packAs, type PackedChunks } from "../support/pack-chunks.js";
import { seededBytes } from "../support/retention.js";
import { countingStore, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const PACKED = "gen-packed";
const MIXED = "gen-mixed";
const FLIPPED = "gen-flipped";
const UNRECORDED = "gen-unrecorded";
const MANY = "gen-many";
const BATCHES = "gen-batches";
const SPANS = "gen-spans";

let stack: TestStack;
let cfg: RestoreConfig;
let store: ReturnType<typeof countingStore>;
let catalog: Catalog;
let work: string;
let source: string;

/** Several multi-chunk files, one of them twice under another name (chunks shared by files), a file of one repeated chunk, small files. */
function buildSource(dir: string): void {
  mkdirSync(join(dir, "sst"), { recursive: true });
  const big = seededBytes(12345, 300_000);
  writeFileSync(join(dir, "sst", "000001.sst"), big);
  writeFileSync(join(dir, "sst", "000001-copy.sst"), big);
  writeFileSync(join(dir, "sst", "000002.sst"), seededBytes(777, 120_000));
  writeFileSync(join(dir, "sst", "zeros.vlog"), Buffer.alloc(200_000));
  writeFileSync(join(dir, "MANIFEST-000001"), "generation 1\n");
  writeFileSync(join(dir, "empty.txt"), "");
}

/** SHA-256 of every regular file under dir, by relative path. */
function fileHashes(dir: string, rel = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(rel === "" ? dir : join(dir, rel), { withFileTypes: true })) {
    const p = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) for (const [k, v] of fileHashes(dir, p)) out.set(k, v);
    else if (e.isFile()) out.set(p, sha256Hex(readFileSync(join(dir, p))));
  }
  return out;
}

function partialsBeside(dir: string): string[] {
  return readdirSync(dirname(dir)).filter((n) => n.includes(".walvault-partial-") || n.includes(".walvault-old-"));
}

const packChunks = (databaseId: string, order: readonly string[], targetSize: number): Promise<PackedChunks> =>
  packAs({ store, catalog }, cfg, databaseId, order, targetSize);

/** Every chunk of a snapshot in file order (as an agent would pack them). */
function allChunks(snap: UploadedSnapshot): string[] {
  return [...snap.chunksOf.values()].flat();
}

/** A catalog that records each getChunks call's hash count. */
function countingCatalog(inner: Catalog): Catalog & { lookups: number[] } {
  const lookups: number[] = [];
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "lookups") return lookups;
      if (prop === "getChunks") {
        return (db: string, hashes: readonly string[]) => {
          lookups.push(hashes.length);
          return target.getChunks(db, hashes);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Catalog & { lookups: number[] };
}

const packGets = (): string[] => store.gets.filter((k) => k.includes("/packs/"));
const chunkGets = (): string[] => store.gets.filter((k) => k.includes("/chunks/"));
const upload = (databaseId: string, dir = source, chunker = SMALL_CHUNKER): Promise<UploadedSnapshot> =>
  uploadSnapshotDir({ store, catalog }, cfg, {
    databaseId,
    dir,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: "MANIFEST-000001", lastSegno: 0 }] },
    startedAt: new Date("2026-03-01T10:30:00.000Z"),
    finishedAt: new Date("2026-03-01T10:31:00.000Z"),
    chunker,
  });

beforeAll(async () => {
  stack = await startTestStack([PACKED, MIXED, FLIPPED, UNRECORDED, MANY, BATCHES, SPANS].map((id) => ({ id, kind: "generic" as const })));
  const base = stackClients(stack);
  store = countingStore(base.store);
  catalog = base.catalog;
  cfg = { ...stack.config, path: stack.configPath };
  work = tempDir("walvault-restore-packs-");
  source = join(work, "source");
  buildSource(source);
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("restore of a snapshot whose chunks are in packs", () => {
  it("rebuilds every file byte-identical, reading adjacent chunks of a pack in one ranged GET, a chunk shared by files once", async () => {
    // Prepare: every chunk into packs of up to 256 KiB, in file order
    const snap = await upload(PACKED);
    const { packs } = await packChunks(PACKED, allChunks(snap), 256 * 1024);
    const to = join(work, "packed", "data");
    store.reset();

    // Act
    const r = await restore({ store, catalog }, cfg, { databaseId: PACKED, target: { kind: "latest" }, toDir: to, parallel: 8 });

    // Assess: the files, and a handful of requests: one per pack (each wanted whole, its chunks adjacent), none per chunk
    expect(fileHashes(to)).toEqual(fileHashes(source));
    expect(snap.manifest.totals.uniqueChunks).toBeGreaterThan(90);
    expect(packs.length).toBeGreaterThanOrEqual(2);
    expect(chunkGets()).toEqual([]);
    expect(packGets().sort()).toEqual(packs.map((p) => vaultPackKey(PACKED, p.name)).sort());
    expect(r.chunksFetched).toBe(packs.length);
    expect(r.downloadedBytes).toBe(packs.reduce((n, p) => n + p.dataLength, 0));
    expect(partialsBeside(to)).toEqual([]);
  });

  it("restores a mix of packed chunks and old single-object chunks, each from where the catalog says it is", async () => {
    // Prepare: the chunks of the two large files into packs; the others stay objects of their own
    const snap = await upload(MIXED);
    const packedFiles = ["sst/000001.sst", "sst/000002.sst"];
    const inPacks = packedFiles.flatMap((f) => snap.chunksOf.get(f)!);
    const { packs, packOf } = await packChunks(MIXED, inPacks, 1024 * 1024);
    const singles = new Set(allChunks(snap).filter((h) => !packOf.has(h)));
    const to = join(work, "mixed", "data");
    store.reset();

    // Act
    const r = await restore({ store, catalog }, cfg, { databaseId: MIXED, target: { kind: "latest" }, toDir: to, parallel: 8 });

    // Assess
    expect(fileHashes(to)).toEqual(fileHashes(source));
    expect(packs).toHaveLength(1);
    expect(singles.size).toBeGreaterThan(0);
    expect(chunkGets().sort()).toEqual([...singles].map((h) => vaultChunkKey(MIXED, h)).sort());
    expect(packGets()).toEqual([vaultPackKey(MIXED, packs[0]!.name)]);
    expect(r.chunksFetched).toBe(singles.size + 1);
  });

  it("stops on a flipped byte in a pack with a ChecksumMismatchError naming the chunk, the file and the pack, leaving no directory", async () => {
    // Prepare: flip one stored byte in the middle of a chunk of sst/000002.sst (not in the index: the pack still parses)
    const snap = await upload(FLIPPED);
    const { packs } = await packChunks(FLIPPED, allChunks(snap), 1024 * 1024);
    const pack = packs[0]!;
    const victim = snap.chunksOf.get("sst/000002.sst")![3]!;
    const entry = pack.entries.find((e) => e.sha256 === victim)!;
    const key = vaultPackKey(FLIPPED, pack.name);
    const bytes = Buffer.from(pack.bytes);
    bytes[entry.offset + Math.floor(entry.storedLength / 2)]! ^= 0x40;
    await store.put(cfg.vaultBucket, key, bytes, {});
    const to = join(work, "flipped", "data");

    // Act
    const err = await restore({ store, catalog }, cfg, { databaseId: FLIPPED, target: { kind: "latest" }, toDir: to, parallel: 8 }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    const message = (err as Error).message;
    expect(message).toContain(`chunk ${victim}`);
    expect(message).toContain('"sst/000002.sst"');
    expect(message).toContain(`pack ${key}`);
    expect(message).toContain(`bytes ${entry.offset}-${entry.offset + entry.storedLength - 1}`);
    expect(existsSync(to)).toBe(false);
    expect(existsSync(dirname(to)) ? partialsBeside(to) : []).toEqual([]);
  });

  it("restores a snapshot of more chunk references than one batch with the next batch read ahead, and a corrupt chunk in the first batch stops both and leaves no directory", async () => {
    // Prepare: a file of a few chunks first in tree order, then more one-line files than a batch has references (all one chunk)
    const dir = join(work, "batches-source");
    mkdirSync(join(dir, "many"), { recursive: true });
    writeFileSync(join(dir, "MANIFEST-000001"), "generation 1\n");
    writeFileSync(join(dir, "a-first.db"), seededBytes(4242, 50_000));
    for (let i = 0; i < PAGE_CHUNKS + 100; i++) writeFileSync(join(dir, "many", `f${String(i).padStart(5, "0")}`), "same line\n");
    const snap = await upload(BATCHES, dir);
    const { packs } = await packChunks(BATCHES, allChunks(snap), 1024 * 1024);
    const good = join(work, "batches", "good");
    const bad = join(work, "batches", "bad");

    // Act: restore it whole; then flip a stored byte of a-first.db's second chunk and restore again
    const r = await restore({ store, catalog }, cfg, { databaseId: BATCHES, target: { kind: "latest" }, toDir: good, parallel: 8, durable: false });
    const victim = snap.chunksOf.get("a-first.db")![1]!;
    const pack = packs.find((p) => p.entries.some((e) => e.sha256 === victim))!;
    const entry = pack.entries.find((e) => e.sha256 === victim)!;
    const bytes = Buffer.from(pack.bytes);
    bytes[entry.offset + Math.floor(entry.storedLength / 2)]! ^= 0x40;
    await store.put(cfg.vaultBucket, vaultPackKey(BATCHES, pack.name), bytes, {});
    const err = await restore({ store, catalog }, cfg, { databaseId: BATCHES, target: { kind: "latest" }, toDir: bad, parallel: 8, durable: false }).catch((e: unknown) => e);

    // Assess
    expect(snap.manifest.totals.chunks).toBeGreaterThan(PAGE_CHUNKS);
    expect(r.files).toBe(PAGE_CHUNKS + 102);
    expect(fileHashes(good)).toEqual(fileHashes(dir));
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain(`chunk ${victim} of file "a-first.db"`);
    expect(existsSync(bad)).toBe(false);
    expect(partialsBeside(bad)).toEqual([]);
  }, 180_000);

  it("sets the recorded mtime and mode of a file cut between two batches, as of any file", async () => {
    // Prepare: one-line files filling the first batch but for 9 references, then a file of many chunks the batch boundary cuts
    const dir = join(work, "spans-source");
    mkdirSync(join(dir, "a-many"), { recursive: true });
    writeFileSync(join(dir, "MANIFEST-000001"), "generation 1\n");
    for (let i = 0; i < PAGE_CHUNKS - 10; i++) writeFileSync(join(dir, "a-many", `f${String(i).padStart(5, "0")}`), "same line\n");
    const spans = join(dir, "z-spans.db");
    const first = join(dir, "a-many", "f00000");
    writeFileSync(spans, seededBytes(777, 200_000));
    const times = { [spans]: new Date("2025-01-02T03:04:05.678Z"), [first]: new Date("2024-06-07T08:09:10.111Z") };
    chmodSync(spans, 0o640);
    chmodSync(first, 0o444);
    for (const [path, t] of Object.entries(times)) utimesSync(path, t, t);
    const snap = await upload(SPANS, dir);
    await packChunks(SPANS, allChunks(snap), 1024 * 1024);
    const to = join(work, "spans", "restored");

    // Act
    await restore({ store, catalog }, cfg, { databaseId: SPANS, target: { kind: "latest" }, toDir: to, parallel: 8, durable: false });

    // Assess: the boundary (PAGE_CHUNKS references) falls inside z-spans.db, and both files come back as recorded
    expect(snap.chunksOf.get("z-spans.db")!.length).toBeGreaterThan(9);
    for (const [rel, mode] of [["z-spans.db", 0o640], ["a-many/f00000", 0o444]] as const) {
      const got = statSync(join(to, rel));
      expect(got.mode & 0o7777, rel).toBe(mode);
      expect(got.mtime.getTime(), rel).toBe(times[join(dir, rel)]!.getTime());
    }
    expect(readFileSync(join(to, "z-spans.db")).equals(readFileSync(spans))).toBe(true);
  }, 180_000);

  it("reads a chunk the catalog has no record of from its own object (old vaults), and names it clearly when that is missing too", async () => {
    // Prepare: one chunk's record removed (its object stays)
    const snap = await upload(UNRECORDED);
    const orphan = snap.chunksOf.get("sst/000002.sst")![0]!;
    await catalog.deleteChunks(UNRECORDED, [orphan]);
    const to = join(work, "unrecorded", "data");

    // Act
    await restore({ store, catalog }, cfg, { databaseId: UNRECORDED, target: { kind: "latest" }, toDir: to, parallel: 4 });
    await store.delete(cfg.vaultBucket, vaultChunkKey(UNRECORDED, orphan));
    const to2 = join(work, "unrecorded", "data2");
    const err = await restore({ store, catalog }, cfg, { databaseId: UNRECORDED, target: { kind: "latest" }, toDir: to2, parallel: 4 }).catch((e: unknown) => e);

    // Assess
    expect(fileHashes(to)).toEqual(fileHashes(source));
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain(`chunk ${orphan} of file "sst/000002.sst" is missing from the vault (${vaultChunkKey(UNRECORDED, orphan)}); the catalog has no record of it either`);
    expect(existsSync(to2)).toBe(false);
    expect(partialsBeside(to2)).toEqual([]);
  });

  it(`locates chunks window by window (at most ${PLAN_WINDOW_CHUNKS} references or ${PLAN_WINDOW_STORED_BYTES / 2 ** 20} MiB stored each), never all at once, and still coalesces reads`, async () => {
    // Prepare: one incompressible file of ~36 MB in ~128 KiB chunks (more than two windows of stored bytes), all packed
    const dir = join(work, "many-source");
    mkdirSync(dir);
    writeFileSync(join(dir, "MANIFEST-000001"), "generation 1\n");
    writeFileSync(join(dir, "big.db"), seededBytes(99, 36_000_000));
    const snap = await upload(MANY, dir, { minSize: 64 * 1024, avgSize: 128 * 1024, maxSize: 256 * 1024 });
    const { packs } = await packChunks(MANY, allChunks(snap), 4 * 1024 * 1024);
    const counted = countingCatalog(catalog);
    const to = join(work, "many", "data");
    store.reset();

    // Act
    await restore({ store, catalog: counted }, cfg, { databaseId: MANY, target: { kind: "latest" }, toDir: to, parallel: 16 });

    // Assess
    const chunks = snap.manifest.totals.uniqueChunks;
    expect(fileHashes(to)).toEqual(fileHashes(dir));
    expect(counted.lookups.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...counted.lookups)).toBeLessThan(chunks);
    expect(counted.lookups.reduce((a, b) => a + b, 0)).toBe(chunks);
    // A read per pack (4 MiB packs, 8 MiB reads), plus one where a window edge splits a pack: never one per chunk
    expect(chunkGets()).toEqual([]);
    expect(packGets().length).toBeLessThanOrEqual(packs.length + counted.lookups.length);
    expect(packGets().length).toBeLessThan(chunks / 10);
  }, 180_000);
});
