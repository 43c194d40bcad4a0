/**
 * `walvault restore` (agent/restore.ts) against the real local stack: S3
 * (s3rver) and DynamoDB Local. Snapshots and generic WAL are put straight
 * into the vault and the catalog (test/support/snapshots.ts), so these tests
 * exercise restore alone; the PostgreSQL suite takes a real pg_basebackup of
 * a scratch cluster whose WAL is archived by `walvault wal-push`, restores it
 * with --latest and starts it.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { utimeSeconds } from "../../core/time.js";
import { ChecksumMismatchError, InvalidInputError, ManifestInvalidError, NoSnapshotBeforeTargetError, NotFoundError, UnsafePathError, WalGapError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey, vaultChunkKey } from "../../core/keys.js";
import { PAGE_CHUNKS } from "../../core/manifest-pages.js";
import { lsnToSegno, parseLsn, segmentName } from "../../core/wal.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { RESTORE_MARKER } from "../../agent/restore-marker.js";
import { formatPlan, genericSegno, planFor, planToJson, restore, targetFromFlags, type RestoreConfig } from "../../agent/restore.js";
import { stackClients, tempDir } from "../support/harness.js";
import { archiveGenericSegment, countingStore, postgresFieldsOf, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import type { ObjectStore } from "../../store/object-store.js";

const GEN = "gen-main";
const GEN_CORRUPT = "gen-corrupt";
const GEN_GAP = "gen-gap";
const GEN_LINKS = "gen-links";
/** A paged snapshot with a symlink out of the tree whose header counts no symlink (no refusal pass runs). */
const GEN_LINKS_UNCOUNTED = "gen-links-uncounted";
const GEN_MULTI = "gen-multi";
const GEN_WALFAIL = "gen-walfail";
const GEN_PAGED = "gen-paged";
const GEN_PAGED_BAD = "gen-paged-bad";
const GEN_HASH_BAD = "gen-hash-bad";
const GEN_HASH_NONE = "gen-hash-none";
const GEN_PLAIN = "gen-paged-plain";
const GEN_PLAIN_BAD = "gen-paged-plain-bad";
/** Small page limits: the snapshot's manifest in format 2 on many pages, its multi-chunk file cut across several. */
const SMALL_PAGES = { chunks: 8, bytes: 1024 };
const PG = "pg-main";

let stack: TestStack;
let cfg: RestoreConfig;
let store: ReturnType<typeof countingStore>;
let clients: { store: ReturnType<typeof countingStore>; catalog: ReturnType<typeof stackClients>["catalog"] };
let work: string;
let source: string;
let snap: UploadedSnapshot;
let pagedSnap: UploadedSnapshot;
let pagedBadSnap: UploadedSnapshot;
/** GEN_PLAIN's and GEN_PLAIN_BAD's paged snapshot of the source without its symlinks (nothing a restore refuses). */
let plainSnap: UploadedSnapshot;
let plainBadSnap: UploadedSnapshot;
let plainSource: string;
let corruptSnap: UploadedSnapshot;

const seg = (n: number): string => `00000001000000000000000${n}`;
/** Stream b of the two-stream database (see beforeAll). */
const segB = (n: number): string => `00000002000000000000000${n}`;
const T0 = new Date("2026-03-01T10:00:00.000Z");
const at = (minutes: number): Date => new Date(T0.getTime() + minutes * 60_000);
const walBytes = (n: number, size = 8192): Buffer => {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + n * 17) & 0xff;
  return b;
};

/** A generic data directory: modes, symlinks, empty file and directory, a multi-chunk file, repeated chunks, WAL. */
function buildSource(dir: string): void {
  mkdirSync(join(dir, "sst"));
  mkdirSync(join(dir, "wal"));
  mkdirSync(join(dir, "empty-dir"));
  writeFileSync(join(dir, "MANIFEST-000001"), "generation 1\n");
  let x = 12345;
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    big[i] = x >>> 24;
  }
  writeFileSync(join(dir, "sst", "000001.sst"), big);
  writeFileSync(join(dir, "sst", "zeros.vlog"), Buffer.alloc(200_000)); // the same 16 KiB chunk, again and again
  writeFileSync(join(dir, "sst", "readonly.sst"), "immutable\n");
  writeFileSync(join(dir, "empty.txt"), "");
  writeFileSync(join(dir, "run.sh"), "#!/bin/sh\necho hi\n");
  for (const n of [1, 2, 3]) writeFileSync(join(dir, "wal", seg(n)), walBytes(n));
  writeFileSync(join(dir, "wal", seg(4)), walBytes(4).subarray(0, 1000)); // still open when the snapshot was taken
  symlinkSync("sst/000001.sst", join(dir, "current"));
  symlinkSync("sst", join(dir, "sst-link"));
  chmodSync(join(dir, "sst", "readonly.sst"), 0o444);
  chmodSync(join(dir, "empty.txt"), 0o640);
  chmodSync(join(dir, "run.sh"), 0o755);
  chmodSync(join(dir, "sst"), 0o750);
  chmodSync(join(dir, "empty-dir"), 0o700);
  // Fixed mtimes, none from the clock, at the rounding edge: set from a Date (ms / 1000 seconds), each of
  // these came back 1 µs early (…263.999 ms for …264), which is how a symlink's restored mtime was 1 ms off.
  for (const p of ["MANIFEST-000001", "sst/000001.sst", "sst/zeros.vlog", "sst/readonly.sst", "empty.txt", "run.sh", "empty-dir", "sst", "wal"]) {
    setMtime(join(dir, p), OLD_MS);
  }
  setMtime(join(dir, "current"), LINK_MS[0]!);
  setMtime(join(dir, "sst-link"), LINK_MS[1]!);
}

const OLD_MS = 1735787045678; // 2025-01-02T03:04:05.678Z
const LINK_MS = [1796159554264, 1796159554008];
/** Whether chattr +i works here (root on ext4 and the like): an immutable file even root cannot remove. */
function canMakeImmutable(): boolean {
  const d = mkdtempSync(join(tmpdir(), "walvault-chattr-"));
  const f = join(d, "f");
  writeFileSync(f, "");
  try {
    execFileSync("chattr", ["+i", f], { stdio: "ignore" });
    execFileSync("chattr", ["-i", f], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** Sets an entry's mtime (not following a symlink) to exactly `ms`, and checks it took. */
function setMtime(p: string, ms: number): void {
  const t = utimeSeconds(BigInt(ms) * 1_000_000n);
  lutimesSync(p, t, t);
  expect(lstatSync(p, { bigint: true }).mtimeNs).toBe(BigInt(ms) * 1_000_000n);
}

interface Entry {
  type: "file" | "dir" | "symlink";
  mode?: number;
  mtimeNs?: bigint;
  sha256?: string;
  target?: string;
}


/** Every entry under dir: type, mode, mtime (ms), content hash or link target. */
function treeOf(dir: string, rel = ""): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const n of readdirSync(rel === "" ? dir : join(dir, rel)).sort()) {
    const p = rel === "" ? n : `${rel}/${n}`;
    const st = lstatSync(join(dir, p), { bigint: true });
    const mode = Number(st.mode) & 0o7777;
    if (st.isSymbolicLink()) out.set(p, { type: "symlink", target: readlinkSync(join(dir, p)), mtimeNs: st.mtimeNs });
    else if (st.isDirectory()) {
      out.set(p, { type: "dir", mode, mtimeNs: st.mtimeNs });
      for (const [k, v] of treeOf(dir, p)) out.set(k, v);
    } else out.set(p, { type: "file", mode, mtimeNs: st.mtimeNs, sha256: sha256Hex(readFileSync(join(dir, p))) });
  }
  return out;
}

/** Changes one byte of page `index` of `snap`'s manifest in the vault (its digest in the header no longer matches). */
async function tamperPage(snap: UploadedSnapshot, index: number): Promise<void> {
  const key = snapshotPageKey(snap.record.manifestKey, index);
  const page = (await clients.store.get(cfg.vaultBucket, key))!;
  const body = Buffer.from(page.body);
  body[body.length - 3] = body[body.length - 3] === 0x5d ? 0x7d : 0x5d;
  await clients.store.put(cfg.vaultBucket, key, body, page.metadata);
}

/** A tree with mtimes in milliseconds: the test upload records lstat's Date, which Node rounds to the nearest millisecond (not down). */
function treeToMs(m: Map<string, Entry>): Map<string, Entry> {
  return new Map([...m].map(([k, v]) => [k, { ...v, mtimeNs: (v.mtimeNs! + 500_000n) / 1_000_000n }]));
}

function partialsBeside(dir: string): string[] {
  return readdirSync(dirname(dir)).filter((n) => n.includes(".walvault-partial-") || n.includes(".walvault-old-"));
}

const chunkGets = (): string[] => store.gets.filter((k) => k.includes("/chunks/"));

/** A restore into `to` refused for a symlink out of the tree (`named` in the message): no chunk read, `to` not made. */
function expectRefusedUnread(err: unknown, to: string, named: string): void {
  expect(err).toBeInstanceOf(UnsafePathError);
  expect((err as Error).message).toContain(named);
  expect(chunkGets()).toEqual([]);
  expect(existsSync(to)).toBe(false);
}

beforeAll(async () => {
  stack = await startTestStack([{ id: PG }, { id: GEN, kind: "generic" }, { id: GEN_CORRUPT, kind: "generic" }, { id: GEN_GAP, kind: "generic" }, { id: GEN_LINKS, kind: "generic" }, { id: GEN_MULTI, kind: "generic" }, { id: GEN_WALFAIL, kind: "generic" }, { id: GEN_PAGED, kind: "generic" }, { id: GEN_PAGED_BAD, kind: "generic" }, { id: GEN_HASH_BAD, kind: "generic" }, { id: GEN_HASH_NONE, kind: "generic" }, { id: GEN_PLAIN, kind: "generic" }, { id: GEN_PLAIN_BAD, kind: "generic" }, { id: GEN_LINKS_UNCOUNTED, kind: "generic" }]);
  const base = stackClients(stack);
  store = countingStore(base.store);
  clients = { store, catalog: base.catalog };
  cfg = { ...stack.config, path: stack.configPath };
  work = tempDir("walvault-restore-");
  chmodSync(work, 0o777); // the PostgreSQL suite's server runs as another user
  source = join(work, "source");
  mkdirSync(source);
  buildSource(source);
  const generic = { streams: [{ id: "wal", lastSegment: `wal/${seg(3)}`, lastSegno: 3 }] };
  snap = await uploadSnapshotDir(clients, cfg, {
    databaseId: GEN,
    dir: source,
    kind: "generic",
    generic,
    startedAt: at(30),
    finishedAt: at(31),
    chunker: SMALL_CHUNKER,
  });
  corruptSnap = await uploadSnapshotDir(clients, cfg, { databaseId: GEN_CORRUPT, dir: source, kind: "generic", generic, startedAt: at(30), finishedAt: at(31), chunker: SMALL_CHUNKER });
  await uploadSnapshotDir(clients, cfg, { databaseId: GEN_GAP, dir: source, kind: "generic", generic, startedAt: at(30), finishedAt: at(31), chunker: SMALL_CHUNKER });
  const paged = { databaseId: GEN_PAGED, dir: source, kind: "generic" as const, generic, startedAt: at(30), finishedAt: at(31), chunker: SMALL_CHUNKER, pages: SMALL_PAGES };
  pagedSnap = await uploadSnapshotDir(clients, cfg, paged);
  pagedBadSnap = await uploadSnapshotDir(clients, cfg, { ...paged, databaseId: GEN_PAGED_BAD });
  plainSource = join(work, "plain-source");
  cpSync(source, plainSource, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  for (const link of ["current", "sst-link"]) rmSync(join(plainSource, link));
  plainSnap = await uploadSnapshotDir(clients, cfg, { ...paged, dir: plainSource, databaseId: GEN_PLAIN });
  plainBadSnap = await uploadSnapshotDir(clients, cfg, { ...paged, dir: plainSource, databaseId: GEN_PLAIN_BAD });
  // The symlink in the first of two writing batches (PAGE_CHUNKS references each; one zero block stored once): the
  // writing pass meets it before the last page's totals check could find the lie.
  const uncounted = join(work, "uncounted-source");
  mkdirSync(uncounted);
  symlinkSync("/var/lib/elsewhere/wal", join(uncounted, "a-wal"));
  writeFileSync(join(uncounted, "b-data"), Buffer.alloc((PAGE_CHUNKS + 8) * 4096));
  await uploadSnapshotDir(clients, cfg, {
    databaseId: GEN_LINKS_UNCOUNTED,
    dir: uncounted,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: "b-data", lastSegno: 0 }] },
    startedAt: at(30),
    finishedAt: at(31),
    blockSize: 4096,
    pages: { chunks: PAGE_CHUNKS / 2, bytes: 16 << 20 },
    header: (h) => ({ ...h, totals: { ...h.totals, symlinks: 0 } }),
  });
  // WAL: segments 1-3 were closed before the snapshot; 4, 5 and 6 after it (archived at minutes 40, 50, 60).
  for (const n of [1, 2, 3, 4, 5, 6]) {
    await archiveGenericSegment(clients, cfg, { databaseId: GEN, stream: "wal", name: seg(n), segno: BigInt(n), bytes: walBytes(n), archivedAt: at(n * 10) });
  }
  const links = join(work, "links-source");
  mkdirSync(links);
  writeFileSync(join(links, "data.db"), "rows\n");
  symlinkSync("/var/lib/elsewhere/wal", join(links, "wal"));
  await uploadSnapshotDir(clients, cfg, { databaseId: GEN_LINKS, dir: links, kind: "generic", generic: { streams: [{ id: "wal", lastSegment: "data.db", lastSegno: 0 }] }, startedAt: at(30), finishedAt: at(31) });
  // Two WAL streams (per-stripe directories): stream a is at segment 2, stream b at 1. The catalog keys
  // WAL by timeline and name, so stream b's files are named (and recorded) on timeline 2.
  const multi = join(work, "multi-source");
  mkdirSync(join(multi, "stripes", "a"), { recursive: true });
  mkdirSync(join(multi, "stripes", "b"), { recursive: true });
  writeFileSync(join(multi, "stripes", "a", seg(2)), walBytes(102));
  writeFileSync(join(multi, "stripes", "b", segB(1)), walBytes(201));
  await uploadSnapshotDir(clients, cfg, {
    databaseId: GEN_MULTI,
    dir: multi,
    kind: "generic",
    generic: { streams: [{ id: "a", lastSegment: `stripes/a/${seg(2)}`, lastSegno: 2 }, { id: "b", lastSegment: `stripes/b/${segB(1)}`, lastSegno: 1 }] },
    startedAt: at(30),
    finishedAt: at(31),
  });
  for (const [stream, n, minute] of [["a", 3, 40], ["a", 4, 50], ["b", 2, 40], ["b", 3, 50]] as const) {
    const b = stream === "b";
    await archiveGenericSegment(clients, cfg, {
      databaseId: GEN_MULTI,
      stream,
      name: b ? segB(n) : seg(n),
      bytes: walBytes((b ? 200 : 100) + n),
      archivedAt: at(minute),
      timeline: b ? 2 : 1,
    });
  }
  for (const n of [4, 6]) {
    // 5 is missing
    await archiveGenericSegment(clients, cfg, { databaseId: GEN_GAP, stream: "wal", name: seg(n), bytes: walBytes(n), archivedAt: at(n * 10) });
  }
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

let walFail: Promise<string> | undefined;
/** GEN_WALFAIL: a small snapshot and 9 later segments, the first corrupt in the vault; returns its key. */
function walFailDatabase(): Promise<string> {
  walFail ??= (async () => {
    const src = join(work, "walfail-source");
    mkdirSync(join(src, "wal"), { recursive: true });
    writeFileSync(join(src, "data.db"), "rows\n");
    await uploadSnapshotDir(clients, cfg, { databaseId: GEN_WALFAIL, dir: src, kind: "generic", generic: { streams: [{ id: "wal", lastSegment: "data.db", lastSegno: 0 }] }, startedAt: at(30), finishedAt: at(31) });
    const recs = [];
    for (let n = 1; n <= 9; n++) {
      recs.push(await archiveGenericSegment(clients, cfg, { databaseId: GEN_WALFAIL, stream: "wal", name: seg(n), segno: BigInt(n), bytes: walBytes(n), archivedAt: at(40 + n) }));
    }
    const corruptKey = recs[0]!.vaultKey;
    const original = (await clients.store.get(cfg.vaultBucket, corruptKey))!;
    await clients.store.put(cfg.vaultBucket, corruptKey, await getCodec("zstd").encode(walBytes(99)), original.metadata);
    return corruptKey;
  })();
  return walFail;
}

describe("restore of a generic database", () => {
  it("rebuilds the snapshot byte-identical (modes, mtimes, symlinks, empty file and directory, multi-chunk files) plus every later WAL segment", async () => {
    // Prepare
    const to = join(work, "gen-latest", "data");
    store.reset();
    const phases = new Set<string>();

    // Act
    const r = await restore(clients, cfg, { databaseId: GEN, target: { kind: "latest" }, toDir: to, parallel: 4, onProgress: (p) => phases.add(p.phase) });

    // Assess: the tree, entry by entry, except the WAL directory the archive completes.
    const want = treeOf(source);
    const got = treeOf(to);
    for (const n of [4, 5, 6]) {
      want.set(`wal/${seg(n)}`, { ...want.get(`wal/${seg(3)}`)!, sha256: sha256Hex(walBytes(n)) });
    }
    const strip = (m: Map<string, Entry>, path: string, e: Entry): Entry =>
      path.startsWith("wal/") && e.type === "file" ? { type: e.type, sha256: e.sha256! } : path === "wal" ? { type: e.type, mode: e.mode! } : e;
    expect(new Map([...got].map(([k, v]) => [k, strip(got, k, v)]))).toEqual(new Map([...want].map(([k, v]) => [k, strip(want, k, v)])));
    // Exact to the nanosecond what was recorded, symlinks included (the manifest holds the fixed values).
    expect([got.get("current")!.mtimeNs, got.get("sst-link")!.mtimeNs, got.get("run.sh")!.mtimeNs]).toEqual([...LINK_MS, OLD_MS].map((ms) => BigInt(ms) * 1_000_000n));
    expect(snap.chunksOf.get("sst/000001.sst")!.length).toBeGreaterThan(10);
    expect(r).toMatchObject({ databaseId: GEN, kind: "generic", snapshotId: snap.record.snapshotId, files: 10, symlinks: 2, walSegments: 3 });
    expect(r.plan.plan.wal.map((w) => w.name)).toEqual([seg(4), seg(5), seg(6)]);
    expect(r.bytes).toBe(snap.manifest.totals.logicalBytes + 3 * 8192);
    expect(r.mbPerSecond).toBeGreaterThan(0);
    // Repeated chunks are fetched once: one GET per distinct chunk.
    expect(chunkGets().length).toBe(snap.manifest.totals.uniqueChunks);
    expect(r.chunksFetched).toBe(snap.manifest.totals.uniqueChunks);
    expect([...phases]).toEqual(expect.arrayContaining(["planned", "files", "wal", "done"]));
    expect(partialsBeside(to)).toEqual([]);
  });

  it("proves each file's SHA-256 from its chunks in order when they arrive out of order", async () => {
    // Prepare: chunk GETs answer late, earlier chunks latest, so a file's chunks finish out of order.
    const to = join(work, "gen-out-of-order", "data");
    let n = 0;
    const slow = Object.create(store) as ObjectStore;
    slow.get = async (b, k, v) => {
      const obj = await store.get(b, k, v);
      if (k.includes("/chunks/")) await new Promise((r) => setTimeout(r, 25 - (n++ % 6) * 5));
      return obj;
    };

    // Act
    const r = await restore({ ...clients, store: slow }, cfg, { databaseId: GEN, target: { kind: "latest" }, toDir: to, parallel: 16 });

    // Assess
    expect(snap.chunksOf.get("sst/000001.sst")!.length).toBeGreaterThan(10);
    const want = treeOf(source);
    const got = treeOf(to);
    for (const [path, e] of want) if (e.type === "file" && !path.startsWith("wal/")) expect(got.get(path)?.sha256, path).toBe(e.sha256);
    expect(r.files).toBe(10);
    expect(partialsBeside(to)).toEqual([]);
  });

  it("with fileHashes, checks each whole file's SHA-256 the manifest records and names the file that does not match; a file that records none restores on its chunks' proof", async () => {
    // Prepare: the same tree twice; one manifest records a wrong SHA-256 for a file of many chunks, the other none for any such file.
    const generic = { streams: [{ id: "wal", lastSegment: `wal/${seg(3)}`, lastSegno: 3 }] };
    const common = { dir: source, kind: "generic" as const, generic, startedAt: at(30), finishedAt: at(31), chunker: SMALL_CHUNKER };
    const wrong = "0".repeat(64);
    await uploadSnapshotDir(clients, cfg, { ...common, databaseId: GEN_HASH_BAD, fileSha256: (path, whole) => (path === "sst/000001.sst" ? wrong : whole) });
    const none = await uploadSnapshotDir(clients, cfg, { ...common, databaseId: GEN_HASH_NONE, fileSha256: () => undefined });
    const wanted = { target: { kind: "latest" as const }, fileHashes: true };

    // Act
    const refused = await restore(clients, cfg, { ...wanted, databaseId: GEN_HASH_BAD, toDir: join(work, "hash-bad", "data") }).then(() => undefined, (e: unknown) => e);
    const unhashed = await restore(clients, cfg, { ...wanted, fileHashes: false, databaseId: GEN_HASH_BAD, toDir: join(work, "hash-bad-unhashed", "data") });
    const restored = await restore(clients, cfg, { ...wanted, databaseId: GEN_HASH_NONE, toDir: join(work, "hash-none", "data") });

    // Assess
    expect(refused).toBeInstanceOf(ChecksumMismatchError);
    expect((refused as Error).message).toMatch(/restored file "sst\/000001\.sst" does not match the snapshot: .* hashing to .*manifest says 300000 bytes, 000000000000…/);
    expect(existsSync(join(work, "hash-bad", "data"))).toBe(false);
    expect(unhashed.files).toBe(10);
    expect(none.manifest.files.find((f) => f.path === "sst/000001.sst")).not.toHaveProperty("sha256");
    expect(restored.files).toBe(10);
    const want = treeOf(source);
    const got = treeOf(join(work, "hash-none", "data"));
    for (const [path, e] of want) if (e.type === "file" && !path.startsWith("wal/")) expect(got.get(path)?.sha256, path).toBe(e.sha256);
  });

  it("restores to a time with only the segments closed by then, and plans the same without downloading a chunk", async () => {
    // Prepare: minute 55 is after segment 5 was archived (50) and before 6 (60).
    const target = targetFromFlags({ targetTime: at(55).toISOString() });
    store.reset();

    // Act
    const planned = await planFor(clients, cfg, GEN, target);
    const planGets = chunkGets().length;
    const to = join(work, "gen-time");
    await restore(clients, cfg, { databaseId: GEN, target, toDir: to });

    // Assess
    expect(planGets).toBe(0);
    expect(planned.plan.wal.map((w) => w.name)).toEqual([seg(4), seg(5)]);
    expect(readdirSync(join(to, "wal")).sort()).toEqual([1, 2, 3, 4, 5].map(seg));
    expect(readFileSync(join(to, "wal", seg(4))).equals(walBytes(4))).toBe(true);
    expect(formatPlan(planned)).toContain(`2 segments, ${seg(4)} .. ${seg(5)}`);
    const json = planToJson(planned);
    expect(JSON.parse(JSON.stringify(json))).toMatchObject({
      databaseId: GEN,
      kind: "generic",
      snapshot: { id: snap.record.snapshotId, stopLsn: "3" },
      wal: [{ name: seg(4), segno: "4" }, { name: seg(5), segno: "5" }],
      endLsn: "5",
      recoveryTarget: null,
    });
  });

  it("fails on a corrupt chunk naming the chunk and the file, and leaves neither the target nor a partial directory", async () => {
    // Prepare: replace a middle chunk of the multi-chunk file with other bytes of the same size.
    const chunks = corruptSnap.chunksOf.get("sst/000001.sst")!;
    const bad = chunks[Math.floor(chunks.length / 2)]!;
    const key = vaultChunkKey(GEN_CORRUPT, bad);
    const original = (await clients.store.get(cfg.vaultBucket, key))!;
    const size = Number(original.metadata["walvault-size"]);
    await clients.store.put(cfg.vaultBucket, key, await getCodec("zstd").encode(Buffer.alloc(size, 7)), original.metadata);
    const to = join(work, "gen-corrupt", "data");

    // Act
    const err = await restore(clients, cfg, { databaseId: GEN_CORRUPT, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain(bad);
    expect((err as Error).message).toContain('"sst/000001.sst"');
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);

    // Act again: bytes that do not even decode are reported the same way.
    await clients.store.put(cfg.vaultBucket, key, Buffer.from("not zstd at all"), original.metadata);
    const err2 = await restore(clients, cfg, { databaseId: GEN_CORRUPT, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(ChecksumMismatchError);
    expect((err2 as Error).message).toContain(bad);
    expect((err2 as Error).message).toContain('"sst/000001.sst"');
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);

    // Act again, with force over a directory that has data: the failure leaves that data as it was.
    const kept = join(work, "gen-corrupt-kept");
    mkdirSync(kept);
    writeFileSync(join(kept, "precious"), "keep me");
    const err3 = await restore(clients, cfg, { databaseId: GEN_CORRUPT, target: { kind: "latest" }, toDir: kept, force: true }).catch((e: unknown) => e);
    expect(err3).toBeInstanceOf(ChecksumMismatchError);
    expect(readdirSync(kept)).toEqual(["precious"]);
    expect(partialsBeside(kept)).toEqual([]);
    await clients.store.put(cfg.vaultBucket, key, original.body, original.metadata);
  });

  it("fails on a corrupt WAL segment only once the downloads in flight have settled, then removes the partial directory", async () => {
    // Prepare: a small snapshot and 9 later segments, the first corrupt in the vault. The other
    // segments' GETs are held until the restore settles (or, failing that, a second after the
    // corrupt one was served): a restore that gives up while they are in flight settles first.
    const corruptKey = await walFailDatabase();
    let inFlight = 0;
    let settled = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const holding: ObjectStore = {
      ...clients.store,
      get: async (b, k, v) => {
        if (!k.startsWith(`db/${GEN_WALFAIL}/wal/`)) return clients.store.get(b, k, v);
        if (k === corruptKey) {
          const r = await clients.store.get(b, k, v);
          setTimeout(release, 1000);
          return r;
        }
        inFlight++;
        try {
          if (!settled) await gate;
          return await clients.store.get(b, k, v);
        } finally {
          inFlight--;
        }
      },
    };
    const to = join(work, "gen-walfail", "data");

    // Act
    let inFlightAtSettle = -1;
    const err = await restore({ ...clients, store: holding } as typeof clients, cfg, { databaseId: GEN_WALFAIL, target: { kind: "latest" }, toDir: to, parallel: 4 })
      .catch((e: unknown) => e)
      .finally(() => {
        inFlightAtSettle = inFlight;
        settled = true;
        release();
      });
    while (inFlight > 0) await new Promise((r) => setTimeout(r, 10));

    // Assess
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toContain(seg(1));
    expect(inFlightAtSettle).toBe(0);
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);
  });

  it.skipIf(!canMakeImmutable())("names a partial directory it could not remove in the error", async () => {
    // Prepare: the same corrupt first segment; when it is served, a restored file is made immutable (chattr +i),
    // which even root cannot remove.
    const to = join(work, "gen-walfail-stuck", "data");
    const partial = `${to}.walvault-partial-${process.pid}`;
    const corruptKey = await walFailDatabase();
    const sticky: ObjectStore = {
      ...clients.store,
      get: async (b, k, v) => {
        if (k === corruptKey) execFileSync("chattr", ["+i", join(partial, "data.db")]);
        return clients.store.get(b, k, v);
      },
    };

    // Act
    const err = await restore({ ...clients, store: sticky } as typeof clients, cfg, { databaseId: GEN_WALFAIL, target: { kind: "latest" }, toDir: to, parallel: 2 }).catch(
      (e: unknown) => e,
    );
    const left = existsSync(partial);
    execFileSync("chattr", ["-i", join(partial, "data.db")]);
    rmSync(partial, { recursive: true, force: true });

    // Assess
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    const msg = (err as Error).message;
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).toMatch(/^vault object \S+ is corrupt: .*; and the partial directory (\S+) could not be removed \(E[A-Z]+\): remove it by hand$/);
    expect(msg).toContain(partial);
    expect(left).toBe(true);
  });

  it("stops when its signal is aborted and removes the partial directory", async () => {
    // Prepare
    const to = join(work, "gen-aborted");
    const ac = new AbortController();

    // Act
    const err = await restore(clients, cfg, {
      databaseId: GEN,
      target: { kind: "latest" },
      toDir: to,
      parallel: 1,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase === "files" && p.bytesDone > 0) ac.abort(new Error("interrupted by the test"));
      },
    }).catch((e: unknown) => e);

    // Assess
    expect((err as Error).message).toBe("interrupted by the test");
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);
  });

  it("refuses a symlink that points out of the restored tree unless told to keep it, before downloading anything", async () => {
    // Prepare
    const to = join(work, "gen-links");
    store.reset();

    // Act
    const err = await restore(clients, cfg, { databaseId: GEN_LINKS, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess
    expectRefusedUnread(err, to, '"wal" -> "/var/lib/elsewhere/wal"');

    // Act: allowed explicitly
    await restore(clients, cfg, { databaseId: GEN_LINKS, target: { kind: "latest" }, toDir: to, outsideSymlinks: "keep" });

    // Assess
    expect(readlinkSync(join(to, "wal"))).toBe("/var/lib/elsewhere/wal");
    expect(readFileSync(join(to, "data.db"), "utf8")).toBe("rows\n");
  });

  it("refuses a symlink out of the tree in the writing pass when the header counts none (no refusal pass ran), before its batch reads a chunk, putting nothing in place", async () => {
    // Prepare
    const to = join(work, "gen-links-uncounted");
    store.reset();

    // Act
    const err = await restore(clients, cfg, { databaseId: GEN_LINKS_UNCOUNTED, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess: refused before the symlink's batch read anything
    expectRefusedUnread(err, to, 'has a symlink pointing out of the restored tree, e.g. "a-wal" -> "/var/lib/elsewhere/wal"');
    expect(partialsBeside(to)).toEqual([]);
  });

  it("refuses a non-empty target without force, before downloading anything, and replaces it with force", async () => {
    // Prepare
    const to = join(work, "gen-nonempty");
    mkdirSync(to);
    writeFileSync(join(to, "precious"), "keep me");
    store.reset();

    // Act
    const err = await restore(clients, cfg, { databaseId: GEN, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toMatch(/is not empty \(1 entry\).*--force/);
    expect((err as Error).message.split("\n")).toHaveLength(1);
    expect(chunkGets()).toEqual([]);
    expect(readdirSync(to)).toEqual(["precious"]);

    // Act: with force
    await restore(clients, cfg, { databaseId: GEN, target: { kind: "latest" }, toDir: to, force: true });

    // Assess
    expect(existsSync(join(to, "precious"))).toBe(false);
    expect(readFileSync(join(to, "sst", "000001.sst")).equals(readFileSync(join(source, "sst", "000001.sst")))).toBe(true);
    expect(partialsBeside(to)).toEqual([]);
  });

  it("restores into an existing empty directory", async () => {
    const to = join(work, "gen-empty");
    mkdirSync(to, { mode: 0o750 });
    chmodSync(to, 0o750);
    await restore(clients, cfg, { databaseId: GEN, target: { kind: "snapshot", id: snap.record.snapshotId }, toDir: to });
    expect(lstatSync(to).mode & 0o777).toBe(0o750);
    expect(readdirSync(join(to, "wal")).sort()).toEqual([1, 2, 3, 4].map(seg));
    expect(readFileSync(join(to, "wal", seg(4))).length).toBe(1000); // the snapshot's own copy: nothing replayed
  });

  it("reports planning errors before any download: a target before the oldest snapshot, a WAL gap", async () => {
    // Prepare
    store.reset();
    const to = join(work, "gen-early");

    // Act
    const early = await restore(clients, cfg, { databaseId: GEN, target: { kind: "time", time: at(5) }, toDir: to }).catch((e: unknown) => e);
    const gap = await restore(clients, cfg, { databaseId: GEN_GAP, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess
    expect(early).toBeInstanceOf(NoSnapshotBeforeTargetError);
    expect(gap).toBeInstanceOf(WalGapError);
    expect((gap as Error).message).toContain(seg(4));
    expect((gap as Error).message).toContain(seg(6));
    expect(chunkGets()).toEqual([]);
    expect(store.gets.filter((k) => k.includes("/wal/"))).toEqual([]);
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);
  });

  it("lays out every stream's WAL in its own directory when the database has several streams", async () => {
    // Prepare
    const to = join(work, "gen-multi");

    // Act
    const r = await restore(clients, cfg, { databaseId: GEN_MULTI, target: { kind: "time", time: at(45) }, toDir: to });
    const lsn = await restore(clients, cfg, { databaseId: GEN_MULTI, target: { kind: "lsn", lsn: 3n }, toDir: join(work, "gen-multi-lsn") }).catch((e: unknown) => e);

    // Assess: each stream up to its segment archived by minute 45.
    expect(r.plan.streams.map((s) => [s.stream, s.plan.wal.map((w) => w.name)])).toEqual([
      ["a", [seg(3)]],
      ["b", [segB(2)]],
    ]);
    expect(readdirSync(join(to, "stripes", "a")).sort()).toEqual([seg(2), seg(3)]);
    expect(readdirSync(join(to, "stripes", "b")).sort()).toEqual([segB(1), segB(2)]);
    expect(readFileSync(join(to, "stripes", "a", seg(3))).equals(walBytes(103))).toBe(true);
    expect(readFileSync(join(to, "stripes", "b", segB(2))).equals(walBytes(202))).toBe(true);
    expect(lsn).toBeInstanceOf(InvalidInputError);
    expect((lsn as Error).message).toContain("2 WAL streams (a, b)");
  });

  it("derives generic segment positions from startLsn, a PostgreSQL-style name, or the digits of the name", () => {
    expect(genericSegno({ name: "anything", startLsn: "42" })).toBe(42n);
    expect(genericSegno({ name: "00000001000000020000000A" })).toBe(0x20an);
    expect(genericSegno({ name: "wal-000123.log" })).toBe(123n);
    expect(genericSegno({ name: "wal.log" })).toBeUndefined();
  });
});

describe("restore of a format-2 (paged) snapshot", () => {
  it("rebuilds the tree byte-identical to the source, as from format 1, with a file cut across pages", async () => {
    // Prepare: the header names many pages, and the multi-chunk file has more chunks than a page holds.
    const header = JSON.parse((await clients.store.get(cfg.vaultBucket, pagedSnap.record.manifestKey))!.body.toString("utf8")) as { formatVersion: number; pages: unknown[] };
    expect(header.formatVersion).toBe(2);
    expect(header.pages.length).toBeGreaterThan(3);
    expect(pagedSnap.chunksOf.get("sst/000001.sst")!.length).toBeGreaterThan(2 * SMALL_PAGES.chunks);
    const to = join(work, "gen-paged", "data");

    // Act
    const r = await restore(clients, cfg, { databaseId: GEN_PAGED, target: { kind: "latest" }, toDir: to, parallel: 4 });

    // Assess: every entry (type, mode, mtime to the millisecond the test upload records, content or link target) as in the source.
    expect(treeToMs(treeOf(to))).toEqual(treeToMs(treeOf(source)));
    expect(r).toMatchObject({ snapshotId: pagedSnap.record.snapshotId, files: pagedSnap.manifest.totals.files, symlinks: 2, walSegments: 0 });
    expect(r.fileBytes).toBe(pagedSnap.manifest.totals.logicalBytes);
    expect(partialsBeside(to)).toEqual([]);
  });

  it("refuses a page that does not match its digest in the header before writing anything", async () => {
    // Prepare
    await tamperPage(pagedBadSnap, 2);
    const to = join(work, "gen-paged-bad", "data");
    store.reset();

    // Act
    const err = await restore(clients, cfg, { databaseId: GEN_PAGED_BAD, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ManifestInvalidError);
    expect((err as Error).message).toContain("pages[2]");
    expect(chunkGets()).toEqual([]);
    expect(existsSync(dirname(to))).toBe(false);
  });

  it("reads each page once in a restore of a snapshot whose header counts no symlink (nothing to refuse), its totals from the header", async () => {
    // Prepare
    expect(plainSnap.manifest.totals.symlinks).toBe(0);
    const pages = (JSON.parse((await clients.store.get(cfg.vaultBucket, plainSnap.record.manifestKey))!.body.toString("utf8")) as { pages: unknown[] }).pages.length;
    expect(pages).toBeGreaterThan(3);
    const to = join(work, "gen-plain", "data");
    const pageDir = dirname(snapshotPageKey(plainSnap.record.manifestKey, 0));
    const pageGets = (): number => store.gets.filter((k) => dirname(k) === pageDir).length;
    store.reset();
    let firstTotals: { filesTotal: number; bytesTotal: number } | undefined;
    let pagesWhenWritten = 0;

    // Act
    await restore(clients, cfg, {
      databaseId: GEN_PLAIN,
      target: { kind: "latest" },
      toDir: to,
      onProgress: (p) => {
        if (p.phase !== "files") return;
        firstTotals ??= { filesTotal: p.filesTotal, bytesTotal: p.bytesTotal };
        pagesWhenWritten = pageGets();
      },
    });

    // Assess: the writing pass read every page once (no refusal pass before it), the recorded times and modes at the
    // end none (the directories it met were kept), and the tree is the source's.
    expect(pagesWhenWritten).toBe(pages);
    expect(pageGets()).toBe(pages);
    expect(firstTotals).toEqual({ filesTotal: plainSnap.manifest.totals.files, bytesTotal: plainSnap.manifest.totals.logicalBytes });
    expect(treeToMs(treeOf(to))).toEqual(treeToMs(treeOf(plainSource)));
    expect(partialsBeside(to)).toEqual([]);
  });

  it("fails at a page that does not match its digest when there is nothing to refuse (no refusal pass), putting nothing in place", async () => {
    // Prepare
    await tamperPage(plainBadSnap, 2);
    const to = join(work, "gen-plain-bad", "data");

    // Act
    const err = await restore(clients, cfg, { databaseId: GEN_PLAIN_BAD, target: { kind: "latest" }, toDir: to }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ManifestInvalidError);
    expect((err as Error).message).toContain("pages[2]");
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);
  });
});

describe("time targets on the command line (core/time.ts)", () => {
  const bad = ["5", "12", "2026-12-01 21:11:18", "2026-02-30T12:00:00Z", "2026-12-01T24:00:00Z"];
  const commands: Array<[string, string[]]> = [
    ["restore --plan-only", ["restore", "--plan-only", "--database", GEN]],
    ["restore --remote", ["restore", "--remote", "--database", GEN]],
    ["verify", ["verify", "--database", GEN]],
  ];
  it.each(commands)("%s refuses a time that is not ISO 8601 with a zone: exit 2, one line naming the accepted forms", async (_label, args) => {
    // Act
    const runs = await Promise.all(bad.map((t) => stack.cli([...args, "--target-time", t])));
    for (const [i, r] of runs.entries()) {
      const t = bad[i];
      // Assess
      const lines = r.stderr.split("\n").filter((l) => l !== "");
      expect({ t, code: r.code, lines: lines.length }).toEqual({ t, code: 2, lines: 1 });
      expect(lines[0]).toContain("is not a time");
      expect(lines[0]).toContain("2026-12-01T21:11:18Z");
      expect(r.stdout).toBe("");
    }
  }, 60_000);

  it("restore --plan-only reads a time with an offset and nanoseconds the same under any TZ", async () => {
    // Act
    const runs = await Promise.all(
      ["America/New_York", "Asia/Kolkata"].map((tz) =>
        stack.cli(["restore", "--plan-only", "--json", "--database", GEN, "--target-time", "2026-03-01T12:55:00.000000001+02:00"], { env: { TZ: tz } }),
      ),
    );
    // Assess: 10:55Z, after segment 5 (archived 10:50) and before 6 (11:00)
    for (const r of runs) {
      expect(r.code).toBe(0);
      const plan = JSON.parse(r.stdout) as { wal: { name: string }[] };
      expect(plan.wal.map((w) => w.name)).toEqual([seg(4), seg(5)]);
    }
  }, 60_000);
});

describe("restore of PostgreSQL", () => {
  let primary: ScratchPostgres | undefined;
  let restored: ScratchPostgres | undefined;
  let expected: string;
  let pgSnap: UploadedSnapshot;
  /** What pg_create_restore_point('after_two_runs') returned, and pgbench_history's rows then. */
  let pointLsn: string;
  let pointRows: string;

  beforeAll(async () => {
    // Prepare: a primary archiving into pg-main through walvault, a base backup, then more writes.
    const env = { WALVAULT_CONFIG: stack.configPath };
    primary = await ScratchPostgres.create({ settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push --database ${PG} %p` }, env });
    await primary.start();
    await primary.pgbench(["-i", "-s", "1", "-q"]);
    const version = Number(await primary.psql("show server_version_num"));
    const backupDir = join(work, "pg-backup");
    await primary.basebackup(backupDir, ["-X", "none"]);
    for (let i = 0; i < 3; i++) {
      await primary.pgbench(["-c", "2", "-t", "200", "-n"]);
      if (i === 1) {
        pointLsn = await primary.psql("select pg_create_restore_point('after_two_runs')");
        pointRows = await primary.psql("select count(*) from pgbench_history");
      }
      await primary.psql("select pg_switch_wal()");
    }
    await primary.psql("create table after_backup as select g from generate_series(1, 12345) g; checkpoint;");
    expected = await primary.psql("select count(*) from pgbench_history; select count(*) from after_backup; select sum(abalance) from pgbench_accounts;");
    // A clean shutdown archives the last segment.
    await primary.stop({ mode: "fast" });
    await stack.idle();
    pgSnap = await uploadSnapshotDir(clients, cfg, {
      databaseId: PG,
      dir: backupDir,
      kind: "postgres",
      postgres: await postgresFieldsOf(backupDir, version),
      startedAt: new Date(Date.now() - 60_000),
      finishedAt: new Date(Date.now() - 30_000),
    });
  }, 600_000);

  afterAll(async () => {
    await restored?.destroy().catch(() => undefined);
    await primary?.destroy().catch(() => undefined);
  });

  it("restores with --latest: recovery settings, marker and signal written; the server recovers every row", async () => {
    // Prepare
    const to = join(work, "pg-restored", "data");

    store.reset();

    // Act
    const planned = await planFor(clients, cfg, PG, targetFromFlags({ latest: true }));
    const planGets = store.gets.length;
    const r = await restore(clients, cfg, { databaseId: PG, target: { kind: "latest" }, toDir: to });

    // Assess: the plan (no download for a PostgreSQL plan, not even the manifest).
    expect(planGets).toBe(0);
    const json = JSON.parse(JSON.stringify(planToJson(planned))) as Record<string, unknown>;
    expect(json).toMatchObject({
      databaseId: PG,
      kind: "postgres",
      snapshot: { id: pgSnap.record.snapshotId, startLsn: pgSnap.record.startLsn, stopLsn: pgSnap.record.stopLsn },
      recoveryTarget: { recovery_target_timeline: "1" },
    });
    expect(json.endLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const text = formatPlan(planned);
    expect(text).toContain(`consistent at ${pgSnap.record.stopLsn}`);
    expect(text).toContain("recovery_target_timeline = '1'");

    // Assess: the directory is ready for recovery and can never archive into pg-main.
    expect(r.snapshotId).toBe(pgSnap.record.snapshotId);
    expect(r.plan.plan.wal.length).toBeGreaterThan(3);
    expect(lstatSync(to).mode & 0o777).toBe(0o700);
    expect(existsSync(join(to, "recovery.signal"))).toBe(true);
    expect(existsSync(join(to, "standby.signal"))).toBe(false);
    expect(existsSync(join(to, "postmaster.pid"))).toBe(false);
    expect(readFileSync(join(to, RESTORE_MARKER), "utf8")).toBe(`${PG}\n`);
    const conf = readFileSync(join(to, "postgresql.auto.conf"), "utf8");
    expect(conf).toContain(`restore_command = '''${WALVAULT_BIN}'' wal-fetch --database ''${PG}'' --config ''${stack.configPath}'' %f %p'`);
    expect(conf).toContain("recovery_target_timeline = '1'");
    expect(conf).toContain("recovery_target_action = 'promote'");
    expect(existsSync(join(to, "backup_label"))).toBe(true);

    // Act: start it.
    restored = await ScratchPostgres.fromDataDir(to, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
    await restored.start();
    await restored.waitForRecoveryEnd(300_000);

    // Assess: every row the primary had when it stopped.
    expect(await restored.psql("select count(*) from pgbench_history; select count(*) from after_backup; select sum(abalance) from pgbench_accounts;")).toBe(
      expected,
    );
  }, 400_000);

  it("checks a restore point name in the archived WAL before restoring: an unknown one is refused, nothing written", async () => {
    // Prepare
    const missing = join(work, "pg-no-such-point", "data");
    const named = join(work, "pg-named-point", "data");

    // Act
    const err = await restore(clients, cfg, { databaseId: PG, target: { kind: "name", name: "nosuchpoint" }, toDir: missing }).catch((e: unknown) => e);
    const long = await restore(clients, cfg, { databaseId: PG, target: { kind: "name", name: "x".repeat(64) }, toDir: missing }).catch((e: unknown) => e);
    const r = await restore(clients, cfg, { databaseId: PG, target: { kind: "name", name: "after_two_runs" }, toDir: named });

    // Assess
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain('restore point "nosuchpoint" is not in the archived WAL');
    expect((err as Error).message.split("\n")).toHaveLength(1);
    expect(long).toBeInstanceOf(InvalidInputError);
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(dirname(missing))).toBe(false); // refused before anything was created
    expect(r.plan.plan.recoveryTarget).toMatchObject({ recovery_target_name: "after_two_runs" });
    expect(readFileSync(join(named, "postgresql.auto.conf"), "utf8")).toContain("recovery_target_name = 'after_two_runs'");
  }, 120_000);

  it("knows a restore point from the catalog (ingest recorded it with the LSN PostgreSQL returned): restore reads no WAL to find it, and recovery stops there", async () => {
    // Prepare
    const to = join(work, "pg-catalog-point", "data");
    const recorded = (await clients.catalog.listWal(PG)).flatMap((w) => (w.restorePoints ?? []).map((rp) => ({ ...rp, segment: w.name })));
    store.reset();

    // Act
    const r = await restore(clients, cfg, { databaseId: PG, target: { kind: "name", name: "after_two_runs" }, toDir: to });
    const walGets = store.gets.filter((k) => k.includes("/wal/"));

    // Assess: recorded once, at the LSN pg_create_restore_point returned, in the segment holding it.
    expect(recorded.map((rp) => [rp.name, rp.lsn])).toEqual([["after_two_runs", pointLsn]]);
    expect(recorded[0]!.segment).toBe(segmentName(1, lsnToSegno(parseLsn(pointLsn) - 1n, 16 * 1024 * 1024)));
    expect(walGets).toEqual([]);
    expect(r.plan.plan.recoveryTarget).toMatchObject({ recovery_target_name: "after_two_runs" });
    expect(r.plan.plan.wal.at(-1)!.name).toBe(recorded[0]!.segment);
    expect(r.plan.plan.warnings.join("\n")).not.toContain("not in the catalog");

    // Act: recover.
    const pg = await ScratchPostgres.fromDataDir(to, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
    try {
      await pg.start();
      await pg.waitForRecoveryEnd(300_000);

      // Assess: the rows of the moment the point was created.
      expect(await pg.psql("select count(*) from pgbench_history")).toBe(pointRows);
    } finally {
      await pg.destroy().catch(() => undefined);
    }
  }, 400_000);
});
