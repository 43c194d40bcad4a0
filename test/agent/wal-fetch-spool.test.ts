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
import { followingSegments, PREFETCH_DIR, spoolRunningLow, takeVerified, VERIFIED_SUFFIX, writeVerifiedNote, type VerifiedNote } from "../../agent/wal-fetch-spool.js";
import { seededBytes } from "../support/retention.js";

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

describe("spoolRunningLow", () => {
  it("asks for a prefetcher once one of the next segments is not spooled, and not while one runs", async () => {
    // Prepare: all of the next 8 spooled
    const next = followingSegments(NAME, 8, SEGMENT_SIZE);
    for (const n of next) await spooled(n, seededBytes(5, 16));

    // Act / Assess
    expect(spoolRunningLow(spool, NAME, 8, SEGMENT_SIZE)).toBe(false);
    await takeVerified(next[3]!, dest, "pg-main", undefined);
    expect(spoolRunningLow(spool, NAME, 8, SEGMENT_SIZE)).toBe(true);
    writeFileSync(join(spool, ".lock"), "123");
    expect(spoolRunningLow(spool, NAME, 8, SEGMENT_SIZE)).toBe(false);
    expect(spoolRunningLow(spool, NAME, 0, SEGMENT_SIZE)).toBe(false);
  });
});

describe("walPrefetch (the prefetcher wal-fetch starts)", () => {
  it("does not make again a data directory removed under it, and returns instead of spinning", async () => {
    // Prepare: the data directory is gone by the time the prefetcher starts (a restore given up)
    const gone = join(root, "removed-data", "pg_wal", PREFETCH_DIR);
    const { walPrefetch } = await import("../../agent/wal-fetch.js");
    const never = new Proxy({}, { get: () => { throw new Error("the catalog is not asked before the spool exists"); } });

    // Act
    const attempt = walPrefetch(NAME, gone, 8, { databaseId: "pg-main" } as never, { catalog: never, store: never } as never);

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: "ENOENT" });
    expect(existsSync(join(root, "removed-data"))).toBe(false);
  });
});
