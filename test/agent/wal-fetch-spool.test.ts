/**
 * agent/wal-fetch-spool.ts on real files: which spooled segments wal-fetch
 * serves without the catalog, and when it starts another prefetcher.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { followingSegments, PREFETCH_DIR, spoolNeedsPrefetcher, takeVerified, VERIFIED_SUFFIX, writeVerifiedNote, type VerifiedNote } from "../../agent/wal-fetch-spool.js";
import { seededBytes } from "../support/retention.js";
import { pgSegmentRecord } from "../support/pg-records.js";
import { deadPid, poll } from "../support/harness.js";
import { MemoryCatalog } from "../../store/memory-catalog.js";
import type { AgentClients } from "../../agent/clients.js";
import { walPrefetch } from "../../agent/wal-fetch.js";
import type { AgentConfig } from "../../core/config.js";

const NAME = "000000010000000000000010";
const SEGMENT_SIZE = 16 * 1024 * 1024;
let root: string;
let pgWal: string;
let spool: string;
let dest: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "walvault-spool-"));
  pgWal = join(root, "pg_wal");
  spool = join(pgWal, PREFETCH_DIR);
  mkdirSync(spool, { recursive: true });
  dest = join(pgWal, "RECOVERYXLOG");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A segment spooled as the prefetcher leaves it: its bytes, then its note. */
async function spooled(name: string, bytes: Buffer, note: Partial<VerifiedNote> = {}): Promise<void> {
  writeFileSync(join(spool, name), bytes);
  await writeVerifiedNote(spool, name, { databaseId: "pg-main", sha256: sha256Hex(bytes), size: bytes.length, segmentSize: SEGMENT_SIZE, ...note });
}

describe("takeVerified", () => {
  it("serves a spooled segment whose note names this database and region, and takes it out of the spool", async () => {
    // Prepare
    const bytes = seededBytes(1, 64 * 1024);
    await spooled(NAME, bytes);

    // Act
    const taken = await takeVerified(NAME, dest, "pg-main", undefined);

    // Assess
    expect(taken?.size).toBe(bytes.length);
    expect(readFileSync(dest).equals(bytes)).toBe(true);
    expect(readdirSync(spool)).toEqual([]);
  });

  it("serves nothing and touches nothing for another database, another region, or no note", async () => {
    // Prepare
    const bytes = seededBytes(2, 4096);
    await spooled(NAME, bytes, { region: "eu-west-1" });
    const unnoted = "000000010000000000000011";
    writeFileSync(join(spool, unnoted), bytes);

    // Act
    const otherDb = await takeVerified(NAME, dest, "pg-other", "eu-west-1");
    const primary = await takeVerified(NAME, dest, "pg-main", undefined);
    const noNote = await takeVerified(unnoted, dest, "pg-main", undefined);

    // Assess
    expect([otherDb, primary, noNote]).toEqual([undefined, undefined, undefined]);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(spool).sort()).toEqual([NAME, NAME + VERIFIED_SUFFIX, unnoted].sort());
    expect((await takeVerified(NAME, dest, "pg-main", "eu-west-1"))?.size).toBe(bytes.length);
  });

  it("serves nothing when the spooled bytes no longer hash to the note (damaged on disk): the catalog's path decides", async () => {
    // Prepare
    const bytes = seededBytes(3, 8192);
    await spooled(NAME, bytes);
    const damaged = Buffer.from(bytes);
    damaged[100] = damaged[100]! ^ 0xff;
    writeFileSync(join(spool, NAME), damaged);

    // Act
    const taken = await takeVerified(NAME, dest, "pg-main", undefined);

    // Assess
    expect(taken).toBeUndefined();
    expect(existsSync(dest)).toBe(false);
    expect(readFileSync(join(spool, NAME)).equals(damaged)).toBe(true);
  });

  it("serves nothing for a note that is not the prefetcher's (unreadable JSON, fields missing)", async () => {
    // Prepare
    const bytes = seededBytes(4, 1024);
    writeFileSync(join(spool, NAME), bytes);
    writeFileSync(join(spool, NAME + VERIFIED_SUFFIX), "{not json");
    const other = "000000010000000000000012";
    writeFileSync(join(spool, other), bytes);
    writeFileSync(join(spool, other + VERIFIED_SUFFIX), JSON.stringify({ databaseId: "pg-main", sha256: sha256Hex(bytes) }));

    // Act / Assess
    expect(await takeVerified(NAME, dest, "pg-main", undefined)).toBeUndefined();
    expect(await takeVerified(other, dest, "pg-main", undefined)).toBeUndefined();
    expect(existsSync(dest)).toBe(false);
  });

  it("refuses a name with a directory in it, as restore_command's %f never has", async () => {
    await expect(takeVerified("../../etc/passwd", dest, "pg-main", undefined)).rejects.toBeInstanceOf(InvalidInputError);
  });
});

describe("spoolNeedsPrefetcher", () => {
  it("asks for a prefetcher once one of the next segments is not spooled, and not while one runs", async () => {
    // Prepare: all of the next 8 spooled
    const next = followingSegments(NAME, 8, SEGMENT_SIZE);
    for (const n of next) await spooled(n, seededBytes(5, 16));

    // Act / Assess
    expect(spoolNeedsPrefetcher(spool, NAME, 8, SEGMENT_SIZE)).toBe(false);
    await takeVerified(next[3]!, dest, "pg-main", undefined);
    expect(spoolNeedsPrefetcher(spool, NAME, 8, SEGMENT_SIZE)).toBe(true);
    writeFileSync(join(spool, ".lock"), "123");
    expect(spoolNeedsPrefetcher(spool, NAME, 8, SEGMENT_SIZE)).toBe(false);
    expect(spoolNeedsPrefetcher(spool, NAME, 0, SEGMENT_SIZE)).toBe(false);
  });
});

/** A database of 1 MiB segments archived in memory (MemoryCatalog; the vault a function-field store of codec "none" objects). */
async function memoryArchive(segments: number): Promise<{ clients: AgentClients; names: string[]; bytes: Map<string, Buffer> }> {
  const size = 1024 * 1024;
  const catalog = new MemoryCatalog();
  await catalog.putDatabase({ databaseId: "pg-main", kind: "postgres", walSegmentSize: size, createdAt: new Date(0).toISOString() });
  const objects = new Map<string, Buffer>();
  const bytes = new Map<string, Buffer>();
  const names: string[] = [];
  for (let segno = 0x10; segno < 0x10 + segments; segno++) {
    const body = Buffer.concat([seededBytes(segno, 4096), Buffer.alloc(size - 4096)]);
    const rec = pgSegmentRecord("pg-main", segno, new Date(segno * 1000).toISOString(), size, { sha256: sha256Hex(body), codec: "none", storedSize: size });
    await catalog.recordWal(rec);
    objects.set(rec.vaultKey, body);
    bytes.set(rec.name, body);
    names.push(rec.name);
  }
  const store = { get: async (_bucket: string, key: string) => (objects.has(key) ? { body: objects.get(key)!, metadata: {} } : undefined) };
  return { clients: { catalog, store } as unknown as AgentClients, names, bytes };
}

const PREFETCH_CFG = { databaseId: "pg-main", vaultBucket: "vault" } as AgentConfig & { databaseId: string };

describe("walPrefetch (the prefetcher wal-fetch starts)", () => {
  it("keeps the next segments spooled while recovery takes them, and stops at the end of the archive", async () => {
    // Prepare: 7 archived segments; the first was fetched through the catalog
    const { clients, names, bytes } = await memoryArchive(7);

    // Act: a prefetcher 2 ahead; recovery takes each segment once it is spooled
    const running = walPrefetch(names[0]!, spool, 2, PREFETCH_CFG, clients, { idleMs: 5_000 });
    const served: string[] = [];
    for (const n of names.slice(1)) {
      await poll(() => existsSync(join(spool, n + VERIFIED_SUFFIX)), 5_000, `${n} spooled`);
      const taken = await takeVerified(n, dest, "pg-main", undefined);
      if (taken !== undefined && readFileSync(dest).equals(bytes.get(n)!)) served.push(n);
    }
    const spooledCount = await running;

    // Assess: one prefetcher spooled every later segment, each served byte-identical, and exited at the archive's end
    expect(served).toEqual(names.slice(1));
    expect(spooledCount).toBe(6);
    expect(existsSync(join(spool, ".lock"))).toBe(false);
  });

  it("drops a segment recovery went past (it fetched it itself before it was spooled) and fills the spool after the one taken", async () => {
    // Prepare: a prefetcher 3 ahead has spooled the next three
    const { clients, names } = await memoryArchive(7);
    const running = walPrefetch(names[0]!, spool, 3, PREFETCH_CFG, clients, { idleMs: 300 });
    await poll(() => names.slice(1, 4).every((n) => existsSync(join(spool, n + VERIFIED_SUFFIX))), 5_000, "three spooled");

    // Act: recovery takes the second of them (the first it had fetched through the catalog)
    await takeVerified(names[2]!, dest, "pg-main", undefined);

    // Assess
    await poll(() => names.slice(3, 6).every((n) => existsSync(join(spool, n + VERIFIED_SUFFIX))), 5_000, "the three after the one taken spooled");
    await running;
    expect(existsSync(join(spool, names[1]!))).toBe(false);
    expect(existsSync(join(spool, names[1]! + VERIFIED_SUFFIX))).toBe(false);
  });

  it("exits once recovery has taken nothing for its idle time, leaving what it spooled", async () => {
    // Prepare
    const { clients, names } = await memoryArchive(6);

    // Act
    const started = Date.now();
    const spooledCount = await walPrefetch(names[0]!, spool, 2, PREFETCH_CFG, clients, { idleMs: 200 });

    // Assess
    expect(spooledCount).toBe(2);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(readdirSync(spool).sort()).toEqual([names[1]!, `${names[1]}${VERIFIED_SUFFIX}`, names[2]!, `${names[2]}${VERIFIED_SUFFIX}`].sort());
  });

  it("takes over the lock of a prefetcher that died, and leaves a live one's alone", async () => {
    // Prepare
    const { clients, names } = await memoryArchive(3);
    writeFileSync(join(spool, ".lock"), String(process.pid));

    // Act / Assess: held by a live process (this one)
    expect(await walPrefetch(names[0]!, spool, 2, PREFETCH_CFG, clients, { idleMs: 100 })).toBe(0);

    // Act / Assess: held by a process that has exited
    writeFileSync(join(spool, ".lock"), String(deadPid()));
    expect(await walPrefetch(names[0]!, spool, 2, PREFETCH_CFG, clients, { idleMs: 100 })).toBe(2);
    expect(existsSync(join(spool, ".lock"))).toBe(false);
  });

  it("does not make again a data directory removed under it, and returns instead of spinning", async () => {
    // Prepare: the data directory is gone by the time the prefetcher starts (a restore given up)
    const gone = join(root, "removed-data", "pg_wal", PREFETCH_DIR);
    const never = new Proxy({}, { get: () => { throw new Error("the catalog is not asked before the spool exists"); } });

    // Act
    const attempt = walPrefetch(NAME, gone, 8, { databaseId: "pg-main" } as never, { catalog: never, store: never } as never);

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: "ENOENT" });
    expect(existsSync(join(root, "removed-data"))).toBe(false);
  });
});
