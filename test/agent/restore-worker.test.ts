/**
 * Restore through the decode worker (agent/decode-worker.ts): the compiled
 * restore (dist/agent/restore.js, which finds dist/agent/decode-worker.js
 * beside it) of a packed snapshot with well over 64 chunks, so the worker
 * decodes, verifies and writes them (`npm test` builds dist/ first). Run
 * from the TypeScript sources, restore would decode on the main thread and
 * never exercise the worker.
 */
import { constants as fsc, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaultPackKey } from "../../core/keys.js";
import type * as RestoreModule from "../../agent/restore.js";
import type * as PoolModule from "../../agent/decode-pool.js";
import { stackClients, tempDir } from "../support/harness.js";
import { packChunks } from "../support/pack-chunks.js";
import { seededBytes } from "../support/retention.js";
import { uploadSnapshotDir } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DIST_RESTORE = fileURLToPath(new URL("../../dist/agent/restore.js", import.meta.url));
const DIST_POOL = fileURLToPath(new URL("../../dist/agent/decode-pool.js", import.meta.url));
const GOOD = "gen-worker-good";
const BAD = "gen-worker-bad";
const DIRECT = "gen-worker-direct";
const DIRECT_BAD = "gen-worker-direct-bad";
const KiB128 = 128 * 1024;

let stack: TestStack;
let work: string;
let source: string;
let compiled: typeof RestoreModule;

/** Whether files in `dir` can be opened with O_DIRECT (not on tmpfs before Linux 6.6, nor on some FUSE filesystems). */
async function canOpenDirect(dir: string): Promise<boolean> {
  const probe = join(dir, ".direct-probe");
  writeFileSync(probe, "");
  try {
    await (await open(probe, fsc.O_WRONLY | fsc.O_DIRECT)).close();
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe);
  }
}

function partialsBeside(dir: string): string[] {
  return existsSync(dirname(dir)) ? readdirSync(dirname(dir)).filter((n) => n.includes(".walvault-partial-")) : [];
}

beforeAll(async () => {
  expect(existsSync(DIST_RESTORE), "dist/agent/restore.js (run npm run build)").toBe(true);
  compiled = (await import(DIST_RESTORE)) as typeof RestoreModule;
  stack = await startTestStack([GOOD, BAD, DIRECT, DIRECT_BAD].map((id) => ({ id, kind: "generic" as const })));
  work = tempDir("walvault-restore-worker-");
  source = join(work, "source");
  mkdirSync(source);
  writeFileSync(join(source, "MANIFEST-000001"), "generation 1\n");
  // 1.6 MB in one file, half of every 16 KiB compressible: ~200 distinct chunks of ~8 KiB
  writeFileSync(
    join(source, "data.db"),
    Buffer.concat(Array.from({ length: 100 }, (_, i) => Buffer.concat([seededBytes(500 + i, 8192), Buffer.alloc(8192, i)]))),
  );
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A generic snapshot of `dir` (cut as `cut` says), its chunks packed in 4 MiB packs. */
async function uploadGeneric(databaseId: string, dir: string, cut: { chunker: { minSize: number; avgSize: number; maxSize: number } } | { blockSize: number }) {
  const clients = stackClients(stack);
  const cfg = { ...stack.config, path: stack.configPath };
  const snap = await uploadSnapshotDir(clients, cfg, {
    databaseId,
    dir,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: "MANIFEST-000001", lastSegno: 0 }] },
    startedAt: new Date("2026-03-01T10:30:00.000Z"),
    finishedAt: new Date("2026-03-01T10:31:00.000Z"),
    ...cut,
  });
  const { packs } = await packChunks(clients, cfg, databaseId, [...snap.chunksOf.values()].flat(), 4 * 1024 * 1024);
  return { clients, cfg, snap, packs };
}

/** The shared source (data.db, ~200 distinct chunks of ~8 KiB), packed. */
function uploadPacked(databaseId: string) {
  return uploadGeneric(databaseId, source, { chunker: { minSize: 4096, avgSize: 8192, maxSize: 16384 } });
}

/** A generic snapshot of one large file in 128 KiB blocks, packed: 10 MiB + 5,000 bytes, every block distinct (half compressible). */
async function uploadBig(databaseId: string) {
  const src = join(work, `${databaseId}-source`);
  mkdirSync(src);
  writeFileSync(join(src, "MANIFEST-000001"), "generation 1\n");
  const big = Buffer.concat([...Array.from({ length: 80 }, (_, i) => Buffer.concat([seededBytes(900 + i, KiB128 / 2), Buffer.alloc(KiB128 / 2, i)])), seededBytes(999, 5000)]);
  writeFileSync(join(src, "big.db"), big);
  return { ...(await uploadGeneric(databaseId, src, { blockSize: KiB128 })), big };
}

/** Flips one stored byte in the middle of chunk `victim` in its pack (the pack's index untouched); the pack's key and the chunk's index entry. */
async function flipStoredByte(
  clients: ReturnType<typeof stackClients>,
  cfg: { vaultBucket: string },
  databaseId: string,
  packs: Awaited<ReturnType<typeof packChunks>>["packs"],
  victim: string,
) {
  const pack = packs.find((p) => p.entries.some((e) => e.sha256 === victim))!;
  const entry = pack.entries.find((e) => e.sha256 === victim)!;
  const key = vaultPackKey(databaseId, pack.name);
  const bytes = Buffer.from(pack.bytes);
  bytes[entry.offset + Math.floor(entry.storedLength / 2)]! ^= 0x40;
  await clients.store.put(cfg.vaultBucket, key, bytes, {});
  return { key, entry };
}

describe("restore through the decode worker (compiled)", () => {
  it("has the compiled worker beside the compiled pool, so a restore of 64 chunks or more uses it", async () => {
    // Prepare
    const pool = (await import(DIST_POOL)) as typeof PoolModule;
    // Act
    const decoder = pool.openDecoder({ chunks: 100, defaultThreads: compiled.RESTORE_DECODE_THREADS });
    // Assess
    expect(pool.defaultWorkerFile()).toBeDefined();
    expect(decoder).toBeInstanceOf(pool.DecodePool);
    await decoder.close();
  });

  it("rebuilds the file byte-identical", async () => {
    // Prepare
    const { clients, cfg, snap } = await uploadPacked(GOOD);
    const to = join(work, "good", "data");
    // Act
    await compiled.restore(clients, cfg, { databaseId: GOOD, target: { kind: "latest" }, toDir: to, parallel: 8 });
    // Assess
    expect(snap.manifest.totals.uniqueChunks).toBeGreaterThanOrEqual(64);
    expect(readFileSync(join(to, "data.db")).equals(readFileSync(join(source, "data.db")))).toBe(true);
  });

  it("writes a large file of 128 KiB blocks in runs with direct I/O where the filesystem allows it, byte-identical to its unaligned end", async () => {
    // Prepare: 10 MiB + 5,000 bytes in 128 KiB blocks (a pool serves restores of 64 chunks or more), every block distinct (half compressible), packed
    const { clients, cfg, snap, big } = await uploadBig(DIRECT);
    const to = join(work, "direct", "data");
    mkdirSync(dirname(to), { recursive: true });
    const directAllowed = await canOpenDirect(dirname(to));
    // Act
    const r = await compiled.restore(clients, cfg, { databaseId: DIRECT, target: { kind: "latest" }, toDir: to, parallel: 8 });
    // Assess: every whole block through the runs (the file's last 5,000 bytes, too, as a run's unaligned tail)
    expect(snap.chunksOf.get("big.db")).toHaveLength(81);
    expect(readFileSync(join(to, "big.db")).equals(big)).toBe(true);
    if (directAllowed) expect(r.directBytes).toBe(big.length);
    else expect(r.directBytes).toBe(0);
  });

  it("stops on a corrupt chunk in the middle of a large file's run of chunks (asked of a worker together) with a ChecksumMismatchError naming it, and renames nothing into place", async () => {
    // Prepare: one stored byte flipped in the 21st block of big.db (its run: blocks 17-24)
    const { clients, cfg, snap, packs } = await uploadBig(DIRECT_BAD);
    const victim = snap.chunksOf.get("big.db")![20]!;
    const { key, entry } = await flipStoredByte(clients, cfg, DIRECT_BAD, packs, victim);
    const to = join(work, "direct-bad", "data");
    // Act
    const err = await compiled.restore(clients, cfg, { databaseId: DIRECT_BAD, target: { kind: "latest" }, toDir: to, parallel: 8 }).catch((e: unknown) => e);
    // Assess
    expect((err as Error).name).toBe("ChecksumMismatchError");
    expect((err as Error).message).toContain(`chunk ${victim} of file "big.db" is corrupt in the vault (pack ${key}, bytes ${entry.offset}-`);
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);
  });

  it("stops on one corrupt chunk in a pack with a ChecksumMismatchError naming it, and renames nothing into place", async () => {
    // Prepare: one stored byte flipped in the middle of the 70th chunk (the pack's index untouched)
    const { clients, cfg, snap, packs } = await uploadPacked(BAD);
    const victim = snap.chunksOf.get("data.db")![70]!;
    const { key, entry } = await flipStoredByte(clients, cfg, BAD, packs, victim);
    const to = join(work, "bad", "data");
    // Act
    const err = await compiled.restore(clients, cfg, { databaseId: BAD, target: { kind: "latest" }, toDir: to, parallel: 8 }).catch((e: unknown) => e);
    // Assess: the compiled module's own error class, so by name and code
    expect(snap.manifest.totals.uniqueChunks).toBeGreaterThanOrEqual(64);
    expect((err as Error).name).toBe("ChecksumMismatchError");
    expect((err as { code?: string }).code).toBe("checksum_mismatch");
    expect((err as Error).message).toContain(`chunk ${victim} of file "data.db" is corrupt in the vault (pack ${key}, bytes ${entry.offset}-`);
    expect(existsSync(to)).toBe(false);
    expect(partialsBeside(to)).toEqual([]);
  });
});
