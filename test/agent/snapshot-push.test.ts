/**
 * `snapshotPush` (agent/snapshot-push.ts) against the real local stack
 * (s3rver + DynamoDB Local + the snapshot ingest workflow) and a real
 * PostgreSQL 15 (ScratchPostgres): generic directory trees and pg_basebackup
 * streams, dedup against the previous snapshot, errors, bounded memory.
 * These pushes write one object per chunk (`packs: false`), the layout of
 * every vault written before packs, which must go on working; the packed
 * path (the default) is test/agent/snapshot-push-packs.test.ts.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes, randomFillSync } from "node:crypto";
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHUNKER_VERSION } from "../../core/chunking.js";
import { FileAccessError, InvalidInputError, QuarantinedError, ServiceUnavailableError, TimeoutError, UnknownDatabaseError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingChunkKey } from "../../core/keys.js";
import { EMPTY_SHA256, FIXED_BLOCKS_ALGORITHM, type RegularFileEntry } from "../../core/snapshot.js";
import { parseObjectMeta } from "../../core/verify.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import {
  DEFAULT_BLOCK_SIZE,
  FAST_POLL_FOR_MS,
  FAST_POLL_MS,
  fixedBlocks,
  nextPollDelay,
  isRelationFile,
  snapshotPush,
  stopFromBackupManifest,
  waitArchived,
  type PgBaseBackupSource,
  type PushConfig,
  type SnapshotPushResult,
  type SnapshotSource,
} from "../../agent/snapshot-push.js";
import { createProgress, progressLine } from "../../agent/progress.js";
import type { ObjectStore } from "../../store/object-store.js";
import { listKeys, stackClients, tempDir, type StackClients } from "../support/harness.js";
import { readPushedManifest, type PushedManifest } from "../support/pushed-manifest.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-snap";
const PG = "pg-snap";
const STREAMS = [{ id: "wal", lastSegment: "wal/00000042.wal", lastSegno: 42 }];
const MiB = 1024 * 1024;

let stack: TestStack;
let clients: StackClients;
let work: string;

/** Whether the snapshot ingest workflow runs on the local stack (then pushes wait for the catalog record). */
let ingest = false;

beforeAll(async () => {
  stack = await startTestStack([
    { id: GEN, kind: "generic" },
    { id: PG, kind: "postgres" },
  ]);
  clients = stackClients(stack);
  work = tempDir("walvault-snap-");
  const local = (await import("../../local/stack.js")) as { WORKFLOWS?: ReadonlyArray<{ name: string }> };
  ingest = local.WORKFLOWS?.some((w) => w.name === "snapshot-ingest") ?? false;
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

function cfg(databaseId: string): PushConfig {
  return { ...stack.config, databaseId };
}

/** The pushed manifest (format 2 by default), read through openManifest; its object's metadata describes its bytes. */
async function readManifest(r: SnapshotPushResult): Promise<PushedManifest> {
  return readPushedManifest(clients.store, stack.config.incomingBucket, r);
}

function fileEntry(m: PushedManifest, path: string): RegularFileEntry {
  const e = m.files.find((f) => f.path === path);
  expect(e?.type, path).toBe("file");
  return e as RegularFileEntry;
}

async function chunkKeys(databaseId: string): Promise<string[]> {
  return listKeys(clients.store, stack.config.incomingBucket, `incoming/db/${databaseId}/chunks/`);
}

function summary(r: SnapshotPushResult): Record<string, unknown> {
  return {
    snapshotId: r.snapshotId,
    outcome: r.outcome,
    totals: r.totals,
    newBytes: r.newBytes,
    uploadedBytes: r.uploadedBytes,
    lookups: r.lookups,
    seconds: r.seconds,
    mbPerSecond: r.mbPerSecond,
    peakRssMB: Math.round(r.peakRssBytes / 1e6),
    warnings: r.warnings,
  };
}

// ---------------------------------------------------------------------------
// Pure pieces

describe("pieces", () => {
  it("polls for the record every tenth of a second for the first minute, then backs off to a second", () => {
    // Act: the intervals of a wait, from its start
    const delays: number[] = [];
    let elapsed = 0;
    let delay = FAST_POLL_MS;
    while (elapsed < FAST_POLL_FOR_MS + 5_000) {
      elapsed += delay;
      delay = nextPollDelay(elapsed, delay);
      delays.push(delay);
    }
    // Assess
    const fast = delays.slice(0, FAST_POLL_FOR_MS / FAST_POLL_MS - 1);
    expect(new Set(fast)).toEqual(new Set([100]));
    expect(delays.slice(-3)).toEqual([1_000, 1_000, 1_000]);
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
  });

  it("waits for the stop segment's .ready to go as pg_backup_stop would, and names the segment when it stays", async () => {
    // Prepare: an archive_status directory with the segment not yet archived
    const dir = tempDir("walvault-archive-status-");
    try {
      const seg = "000000010000000000000050";
      writeFileSync(join(dir, `${seg}.ready`), "");
      // Act: archive_command succeeds 300 ms later (PostgreSQL renames .ready to .done)
      setTimeout(() => renameSync(join(dir, `${seg}.ready`), join(dir, `${seg}.done`)), 300);
      await waitArchived(dir, seg, 10_000);
      // Assess: it returned once the segment was archived, not before
      expect(existsSync(join(dir, `${seg}.done`))).toBe(true);
      // Act: no .ready at all (archived long ago, or archive_mode off): no wait; one that stays: a timeout naming it
      await waitArchived(dir, "000000010000000000000099", 0);
      writeFileSync(join(dir, "000000010000000000000051.ready"), "");
      const e = await waitArchived(dir, "000000010000000000000051", 200).catch((x: unknown) => x);
      // Assess
      expect(e).toBeInstanceOf(TimeoutError);
      expect((e as Error).message).toMatch(/^PostgreSQL did not archive WAL segment 000000010000000000000051, the snapshot's stop segment, within 0 s: .*archive_command/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("cuts fixed blocks at block boundaries however the input is split, the last block shorter", async () => {
    // Prepare
    const data = randomBytes(5 * 4096 + 100);
    async function* pieces(): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < data.length; off += 777) yield data.subarray(off, off + 777);
    }

    // Act
    const blocks: Uint8Array[] = [];
    for await (const b of fixedBlocks(pieces(), 4096)) blocks.push(new Uint8Array(b));

    // Assess
    expect(blocks.map((b) => b.length)).toEqual([4096, 4096, 4096, 4096, 4096, 100]);
    expect(Buffer.concat(blocks).equals(data)).toBe(true);
  });

  it("tells relation files (all forks and segments) from the rest of a data directory", () => {
    for (const p of ["base/1/1259", "base/16384/16397.1", "base/5/2619_fsm", "base/5/2619_vm", "base/5/16390_init", "global/1262", "pg_tblspc/16400/PG_15_202209061/5/16401"]) {
      expect(isRelationFile(p), p).toBe(true);
    }
    for (const p of ["global/pg_control", "global/pg_filenode.map", "base/1/PG_VERSION", "base/1/pg_filenode.map", "backup_label", "pg_xact/0000", "base/1/t3_16390", "PG_VERSION"]) {
      expect(isRelationFile(p), p).toBe(false);
    }
  });

  it("reads the stop LSN from backup_manifest's WAL-Ranges", () => {
    const tail = `{ "Path": "global/pg_control", "Size": 8192 }\n],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n],\n"Manifest-Checksum": "ab"}\n`;
    expect(stopFromBackupManifest(tail)).toEqual({ timeline: 1, stopLsn: 0x2000100n });
    expect(() => stopFromBackupManifest('{"Files": []}')).toThrow(InvalidInputError);
  });

  it("draws progress only on a TTY, at most once per interval, and ends the line", () => {
    const written: string[] = [];
    const sink = (isTTY: boolean): NodeJS.WriteStream =>
      Object.assign(
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            written.push(chunk.toString());
            cb();
          },
        }),
        { isTTY, columns: 200 },
      ) as unknown as NodeJS.WriteStream;
    let t = 0;
    const stats = { bytesRead: 5e6, newBytes: 1e6, reusedBytes: 4e6, chunks: 3, newChunks: 1 };

    const off = createProgress({ label: "snap", stream: sink(false), now: () => t });
    off.update(stats);
    off.done(stats);
    expect(written).toEqual([]);

    const on = createProgress({ label: "snap", stream: sink(true), now: () => t });
    t = 1000;
    on.update(stats);
    t = 1100;
    on.update(stats); // within 250 ms: not drawn
    t = 1400;
    on.update(stats);
    on.done(stats);
    expect(written.length).toBe(3);
    expect(written.at(-1)!.endsWith("\n")).toBe(true);
    expect(progressLine("snap", stats, 1)).toBe("snap  5.00 MB read  5.0 MB/s  new 1.00 MB  reused 4.00 MB  chunks 3 (1 new)");
  });
});

// ---------------------------------------------------------------------------
// Generic

/** The per-chunk layout, as vaults written before packs hold it. */
const PER_CHUNK = { packs: false } as const;

describe("generic snapshot push", () => {
  let dir: string;
  let big: Buffer;
  let first: SnapshotPushResult;

  beforeAll(() => {
    dir = join(work, "gen");
    mkdirSync(join(dir, "sst", "level-1"), { recursive: true });
    mkdirSync(join(dir, "wal"));
    writeFileSync(join(dir, "CURRENT"), "MANIFEST-000007\n");
    writeFileSync(join(dir, "LOCK"), "");
    big = randomBytes(10 * MiB);
    writeFileSync(join(dir, "sst", "level-1", "000123.sst"), big);
    writeFileSync(join(dir, "wal", "00000042.wal"), Buffer.alloc(64 * 1024, 7));
    symlinkSync("sst/level-1/000123.sst", join(dir, "latest.sst"));
  });

  it("uploads every chunk and then the manifest, with the right tree and totals", async () => {
    // Prepare
    const source: SnapshotSource = { kind: "generic", dir, streams: STREAMS };

    // Act
    first = await snapshotPush(source, cfg(GEN), clients, { ...PER_CHUNK, wait: ingest, timeoutMs: 120_000 });
    console.log("generic push 1", JSON.stringify(summary(first)));

    // Assess
    const m = await readManifest(first);
    expect(m.kind).toBe("generic");
    expect(m.chunker.algorithm).toBe(CHUNKER_VERSION);
    expect(m.files.map((f) => `${f.type}:${f.path}`)).toEqual([
      "file:CURRENT",
      "file:LOCK",
      "symlink:latest.sst",
      "directory:sst",
      "directory:sst/level-1",
      "file:sst/level-1/000123.sst",
      "directory:wal",
      "file:wal/00000042.wal",
    ]);
    expect(fileEntry(m, "LOCK")).toMatchObject({ size: 0, sha256: EMPTY_SHA256, chunks: [] });
    const sst = fileEntry(m, "sst/level-1/000123.sst");
    expect(sst.size).toBe(big.length);
    // Without fileHashes a file of several chunks records no whole-file SHA-256 (its chunks name its bytes); one chunk: that chunk's.
    expect("sha256" in sst).toBe(false);
    expect(fileEntry(m, "CURRENT").sha256).toBe(fileEntry(m, "CURRENT").chunks[0]!.sha256);
    expect(sst.chunking).toBeUndefined();
    expect(sst.chunks.length).toBeGreaterThanOrEqual(2);
    expect(m.files.find((f) => f.path === "latest.sst")).toMatchObject({ linkTarget: "sst/level-1/000123.sst" });
    expect(m.totals).toMatchObject({ files: 4, directories: 3, symlinks: 1, logicalBytes: 16 + 10 * MiB + 64 * 1024 });
    expect(m.totals.newChunks).toBe(m.totals.uniqueChunks);
    expect(first.totals).toEqual(m.totals);
    expect(first.newBytes).toBe(m.totals.logicalBytes);
    expect(m.kind === "generic" && m.generic.streams).toEqual(STREAMS);
    // Every chunk is in incoming with its metadata; its stored size is the object's.
    let offset = 0;
    for (const c of sst.chunks) {
      const obj = await clients.store.get(stack.config.incomingBucket, incomingChunkKey(GEN, c.sha256));
      expect(obj, c.sha256).toBeDefined();
      expect(parseObjectMeta(obj!.metadata, c.sha256)).toEqual({ sha256: c.sha256, codec: "zstd", size: c.size });
      expect(obj!.body.length).toBe(c.storedSize);
      expect(sha256Hex(big.subarray(offset, offset + c.size))).toBe(c.sha256);
      offset += c.size;
    }
    if (ingest) {
      expect(first.outcome).toBe("recorded");
      expect(first.record).toMatchObject({ snapshotId: first.snapshotId, manifestSha256: first.manifestSha256 });
    } else {
      expect(first.outcome).toBe("uploaded");
    }
  }, 120_000);

  it("a second push of the same tree uploads no chunk, only the manifest; with fileHashes it records each whole file's SHA-256", async (ctx) => {
    if (!ingest) ctx.skip(); // dedup needs the first snapshot recorded (previous manifest, catalog chunk items)
    // Prepare
    const before = await chunkKeys(GEN);

    // Act
    const second = await snapshotPush({ kind: "generic", dir, streams: STREAMS }, cfg(GEN), clients, { ...PER_CHUNK, fileHashes: true, timeoutMs: 120_000 });
    console.log("generic push 2", JSON.stringify(summary(second)));

    // Assess
    const m = await readManifest(second);
    expect(fileEntry(m, "sst/level-1/000123.sst").sha256).toBe(sha256Hex(big));
    expect(fileEntry(m, "LOCK").sha256).toBe(EMPTY_SHA256);
    expect(second.previousSnapshotId).toBe(first.snapshotId);
    expect(second.totals.newChunks).toBe(0);
    expect(second.totals.newStoredBytes).toBe(0);
    expect(second.newBytes).toBe(0);
    expect(second.uploadedBytes).toBe((await readManifest(second)).objectBytes);
    expect(second.lookups.catalogBatches).toBe(0);
    expect(second.totals.storedBytes).toBe(first.totals.storedBytes);
    expect(await chunkKeys(GEN)).toEqual(before);
    expect(second.outcome).toBe("recorded");
  }, 120_000);

  it("refuses an unregistered database, a missing directory, a file, and a socket in the tree, each with one clear line", async () => {
    const source: SnapshotSource = { kind: "generic", dir, streams: STREAMS };
    await expect(snapshotPush(source, cfg("nobody-here"), clients, { ...PER_CHUNK, wait: false })).rejects.toThrow(UnknownDatabaseError);
    await expect(snapshotPush(source, cfg("nobody-here"), clients, { ...PER_CHUNK, wait: false })).rejects.toThrow(/database 'nobody-here' is not registered/);
    await expect(snapshotPush({ ...source, dir: join(work, "absent") }, cfg(GEN), clients, { ...PER_CHUNK, wait: false })).rejects.toThrow(
      new FileAccessError(`snapshot directory ${join(work, "absent")} does not exist`),
    );
    await expect(snapshotPush({ ...source, dir: join(dir, "CURRENT") }, cfg(GEN), clients, { ...PER_CHUNK, wait: false })).rejects.toThrow(/is not a directory/);
    await expect(snapshotPush({ kind: "postgres", pgbasebackup: { binDir: "/nonexistent", host: "/tmp", port: 5432, user: "x" } }, cfg(GEN), clients, { ...PER_CHUNK, wait: false }))
      .rejects.toThrow(/registered as generic, but this is a postgres snapshot/);

    const sockDir = join(work, "with-socket");
    mkdirSync(sockDir);
    writeFileSync(join(sockDir, "a"), "a");
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(join(sockDir, "s.sock"), r));
    try {
      const err = await snapshotPush({ ...source, dir: sockDir }, cfg(GEN), clients, { ...PER_CHUNK, wait: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toBe(`${join(sockDir, "s.sock")} is a socket; a snapshot holds only regular files, directories and symlinks`);
    } finally {
      server.close();
    }
  }, 60_000);

  it("fails with the upload's error when the store refuses a chunk", async () => {
    // Prepare: a store whose PUTs of chunks fail.
    const failing: ObjectStore = Object.create(clients.store) as ObjectStore;
    failing.put = async (bucket, key) => {
      throw new ServiceUnavailableError(`PutObject s3://${bucket}/${key}: connection refused`);
    };
    const d = join(work, "upload-fails");
    mkdirSync(d);
    writeFileSync(join(d, "x"), randomBytes(100_000));

    // Act
    const err = await snapshotPush({ kind: "generic", dir: d, streams: STREAMS }, cfg(GEN), { ...clients, store: failing }, { ...PER_CHUNK, wait: false }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/^uploading chunk [0-9a-f]{64} \(100000 bytes\) to incoming\/db\/gen-snap\/chunks\/[0-9a-f]{64} failed: PutObject .*connection refused$/);
    expect((err as Error).cause).toBeInstanceOf(ServiceUnavailableError);
  });

  it("fails with ingest's reason when the snapshot is quarantined", async (ctx) => {
    if (!ingest) ctx.skip();
    // Prepare: a store that loses chunk uploads (claims success, stores nothing), so a new chunk is missing.
    const lossy: ObjectStore = Object.create(clients.store) as ObjectStore;
    lossy.put = (bucket, key, body, meta) => (key.includes("/chunks/") ? Promise.resolve({}) : clients.store.put(bucket, key, body, meta));
    const d = join(work, "lossy");
    mkdirSync(d);
    writeFileSync(join(d, "x"), randomBytes(50_000));

    // Act
    const err = await snapshotPush({ kind: "generic", dir: d, streams: STREAMS }, cfg(GEN), { ...clients, store: lossy }, { ...PER_CHUNK, timeoutMs: 60_000 }).catch(
      (e: unknown) => e,
    );

    // Assess
    expect(err).toBeInstanceOf(QuarantinedError);
    expect((err as Error).message).toMatch(/^snapshot \d{8}T\d{6}Z-[0-9a-f]{6} was rejected by ingest and quarantined: .*[0-9a-f]{64}/);
  }, 90_000);

  it("times out clearly when nothing records the snapshot", async () => {
    // Prepare: a store that loses the manifest, so no ingest ever starts.
    const lossy: ObjectStore = Object.create(clients.store) as ObjectStore;
    lossy.put = (bucket, key, body, meta) => (key.endsWith("/manifest.json") ? Promise.resolve({}) : clients.store.put(bucket, key, body, meta));

    // Act
    const err = await snapshotPush({ kind: "generic", dir, streams: STREAMS }, cfg(GEN), { ...clients, store: lossy }, { ...PER_CHUNK, timeoutMs: 1_500 }).catch(
      (e: unknown) => e,
    );

    // Assess
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(
      /^snapshot \S+ was uploaded \(incoming\/db\/gen-snap\/snapshots\/\S+\/manifest\.json\) but the catalog did not record it within 2 s; check the snapshot ingest workflow/,
    );
  }, 30_000);

  it("keeps memory bounded on a large tree of new data", async () => {
    // Prepare: 256 MiB of incompressible, never-seen bytes in 4 files.
    const d = join(work, "large");
    mkdirSync(d);
    const piece = Buffer.allocUnsafe(8 * MiB);
    for (let i = 0; i < 4; i++) {
      const fd = openSync(join(d, `f${i}`), "w");
      for (let w = 0; w < 8; w++) writeSync(fd, randomFillSync(piece));
      closeSync(fd);
    }
    const rssBefore = process.memoryUsage.rss();

    // Act
    const r = await snapshotPush({ kind: "generic", dir: d, streams: STREAMS }, cfg(GEN), clients, { ...PER_CHUNK, wait: false, maxQueuedBytes: 32 * MiB });
    console.log("generic 256 MiB", JSON.stringify({ ...summary(r), rssBeforeMB: Math.round(rssBefore / 1e6) }));

    // Assess: the queue (32 MiB) + encoder outputs + read buffers, far below the 256 MiB pushed.
    expect(r.totals.logicalBytes).toBe(256 * MiB);
    expect(r.newBytes).toBe(256 * MiB);
    expect(r.peakRssBytes - rssBefore).toBeLessThan(160 * MiB);
    rmSync(d, { recursive: true, force: true });
  }, 300_000);
});

// ---------------------------------------------------------------------------
// PostgreSQL

function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (f: string): number => Number(execFileSync("id", [f, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

/** Bytes of the regular files pg_basebackup copies: the data directory without pg_wal's segments and runtime files. */
function clusterBytes(dataDir: string): number {
  const skip = new Set(["postmaster.pid", "postmaster.opts", "pg_internal.init"]);
  let total = 0;
  const walk = (abs: string, rel: string): void => {
    for (const name of readdirSync(abs)) {
      const p = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isDirectory()) {
        if (["pg_wal", "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans"].includes(r)) continue;
        walk(p, r);
      } else if (st.isFile() && !skip.has(name)) total += st.size;
    }
  };
  walk(dataDir, "");
  return total;
}

describe("postgres snapshot push", () => {
  let pg: ScratchPostgres;
  let src: PgBaseBackupSource;
  let first: SnapshotPushResult;

  beforeAll(async () => {
    pg = await ScratchPostgres.create();
    await pg.start();
    await pg.pgbench(["-i", "-s", "5", "-q"]);
    await pg.psql("checkpoint");
    src = { binDir: pg.binDir, host: pg.socketDir, port: pg.port, user: "postgres", ...(osUser() ? { asOsUser: osUser()! } : {}) };
  }, 180_000);

  afterAll(async () => {
    await pg?.destroy();
  });

  it("streams pg_basebackup into a manifest with backup_label, pg_control and relation files in DEFAULT_BLOCK_SIZE blocks", async () => {
    // Act
    const expectedBytes = clusterBytes(pg.dataDir);
    first = await snapshotPush({ kind: "postgres", pgbasebackup: src }, cfg(PG), clients, { ...PER_CHUNK, wait: ingest, timeoutMs: 300_000 });
    console.log("postgres push 1", JSON.stringify({ ...summary(first), postgres: first.postgres, clusterBytes: expectedBytes }));

    // Assess
    const m = await readManifest(first);
    expect(m.kind).toBe("postgres");
    if (m.kind !== "postgres") return;
    expect(m.blocks).toEqual({ algorithm: FIXED_BLOCKS_ALGORITHM, blockSize: DEFAULT_BLOCK_SIZE });
    const label = fileEntry(m, "backup_label");
    expect(label.chunking).toBeUndefined();
    expect(m.postgres.label).toBe(`walvault ${first.snapshotId}`);
    expect(m.postgres.version).toBeGreaterThanOrEqual(150000);
    expect(m.postgres.walSegmentSize).toBe(16 * MiB);
    expect(m.postgres.systemIdentifier).toBe((await pg.psql("select system_identifier from pg_control_system()")).trim());
    expect(m.postgres.stopWalFile).toBeDefined();
    expect(fileEntry(m, "global/pg_control").chunking).toBeUndefined();
    expect(fileEntry(m, "backup_manifest").size).toBeGreaterThan(0);
    const accounts = (await pg.psql("select pg_relation_filepath('pgbench_accounts')")).trim();
    const heap = fileEntry(m, accounts);
    expect(heap.chunking).toBe("blocks");
    expect(heap.size).toBeGreaterThan(50 * MiB);
    expect(heap.chunks.slice(0, -1).every((c) => c.size === DEFAULT_BLOCK_SIZE)).toBe(true);
    const relFiles = m.files.filter((f): f is RegularFileEntry => f.type === "file" && isRelationFile(f.path));
    expect(relFiles.length).toBeGreaterThan(100);
    expect(relFiles.every((f) => f.chunking === "blocks")).toBe(true);
    expect(m.files.filter((f) => f.type === "file" && f.chunking === "blocks").length).toBe(relFiles.length);
    // The cluster's bytes (pg_basebackup adds backup_label, backup_manifest, tablespace_map).
    expect(m.totals.logicalBytes / expectedBytes).toBeGreaterThan(0.97);
    expect(m.totals.logicalBytes / expectedBytes).toBeLessThan(1.05);
    expect(first.totals).toEqual(m.totals);
    // pg_basebackup is gone.
    expect(spawnSync("pgrep", ["-f", `pg_basebackup.*-p ${pg.port}`]).status).not.toBe(0);
    if (ingest) expect(first.outcome).toBe("recorded");
  }, 300_000);

  it("after updating a contiguous 5% of pgbench_accounts, the next snapshot stores few new bytes", async (ctx) => {
    if (!ingest) ctx.skip(); // dedup needs the first snapshot recorded
    // Prepare: 25 000 of 500 000 rows, contiguous, then a checkpoint.
    await pg.psql("update pgbench_accounts set abalance = abalance + 1 where aid <= 25000");
    await pg.psql("checkpoint");

    // Act
    const second = await snapshotPush({ kind: "postgres", pgbasebackup: src }, cfg(PG), clients, { ...PER_CHUNK, timeoutMs: 300_000 });
    const t = second.totals;
    const figures = {
      newBytesOverLogical: t.logicalBytes ? second.newBytes / t.logicalBytes : 0,
      newBytesOverFirstLogical: second.newBytes / first.totals.logicalBytes,
      newStoredOverStored: t.storedBytes ? t.newStoredBytes / t.storedBytes : 0,
      newStoredOverFirstStored: t.newStoredBytes / first.totals.storedBytes,
    };
    console.log("postgres push 2", JSON.stringify({ ...summary(second), figures }));

    // Assess
    expect(second.previousSnapshotId).toBe(first.snapshotId);
    expect(second.outcome).toBe("recorded");
    expect(t.newChunks).toBeGreaterThan(0);
    expect(figures.newBytesOverFirstLogical).toBeLessThanOrEqual(0.1);
    expect(figures.newStoredOverFirstStored).toBeLessThanOrEqual(0.1);
  }, 300_000);

  it("fails with pg_basebackup's own last line when it cannot back up", async () => {
    const bad = { ...src, port: pg.port + 1 };
    const err = await snapshotPush({ kind: "postgres", pgbasebackup: bad }, cfg(PG), clients, { ...PER_CHUNK, wait: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/^pg_basebackup failed \(exit 1\): pg_basebackup: error: connection to server .* failed: No such file or directory/);
  }, 60_000);

  it("stops pg_basebackup when an upload fails", async () => {
    const failing: ObjectStore = Object.create(clients.store) as ObjectStore;
    failing.put = async (bucket, key) => {
      throw new ServiceUnavailableError(`PutObject s3://${bucket}/${key}: connection refused`);
    };
    // A fresh database: the previous manifest's blocks would all be known, nothing uploaded.
    await pg.psql("create table fresh as select g, md5(g::text) from generate_series(1, 100000) g");
    await pg.psql("checkpoint");
    const err = await snapshotPush({ kind: "postgres", pgbasebackup: src }, cfg(PG), { ...clients, store: failing }, { ...PER_CHUNK, wait: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/^uploading chunk /);
    expect(spawnSync("pgrep", ["-f", `pg_basebackup.*-p ${pg.port}`]).status).not.toBe(0);
    // The server is left without a backup in progress: the next one works.
    expect(await pg.psql("select count(*) from pg_stat_activity where backend_type = 'walsender'")).toBe("0");
  }, 120_000);
});
