/**
 * functions/verify/select.ts draws a level-4 target from the WAL a
 * PostgreSQL snapshot restores up to the next snapshot, reading only that
 * stretch of its timeline (Catalog.listWalRange, a page at a time), never
 * every WAL record of the database: on the in-memory catalog
 * (store/memory-catalog.ts) behind a view that refuses listWal and counts
 * what the reader reads (test/support/counting-catalog.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DatabaseRecord, SnapshotRecord, VerificationRecord, WalRecord } from "../../core/schemas.js";
import { overrideDeps, resetDeps } from "../../functions/deps.js";
import { selectPage } from "../../functions/verify/select.js";
import { MemoryCatalog } from "../../store/memory-catalog.js";
import { countingCatalog } from "../support/counting-catalog.js";
import { pgSegmentRecord, pgSnapshotRecord } from "../support/pg-records.js";
import { emfRecords, outputLinesOf } from "../support/output-lines.js";

const DB = "pg-select";
const SIZE = 16 * 1024 * 1024;
const T0 = Date.parse("2026-05-01T00:00:00.000Z");
const MINUTE = 60_000;
const database: DatabaseRecord = { databaseId: DB, kind: "postgres", walSegmentSize: SIZE, createdAt: "2026-01-01T00:00:00.000Z" };

/** Segment n is archived at minute n, its last transaction a second before. */
function segment(n: number): WalRecord {
  return pgSegmentRecord(DB, n, new Date(T0 + n * MINUTE).toISOString(), SIZE, { storedSize: 1, sha256: "a".repeat(64), lastXactAt: new Date(T0 + n * MINUTE - 1000).toISOString() });
}

/** A snapshot starting in segment n, finished at minute n + 1. */
const snapshot = (id: string, n: number): SnapshotRecord => pgSnapshotRecord(DB, id, BigInt(n), new Date(T0 + (n + 1) * MINUTE).toISOString(), SIZE);

beforeAll(() => {
  process.env.WALVAULT_INCOMING_BUCKET ??= "incoming";
  process.env.WALVAULT_VAULT_BUCKET ??= "vault";
  process.env.WALVAULT_TABLE ??= "walvault";
});
afterAll(() => resetDeps());

describe("verify SelectCandidates", () => {
  it("draws a level-4 target between the snapshot and the next one, reading that stretch of WAL and not the other 18,000 records", async () => {
    // Prepare: an in-memory catalog with segments 1..20,000; snapshots in segments 100 and 1,100 and 19,000.
    const memory = new MemoryCatalog();
    await memory.putDatabase(database);
    for (let n = 1; n <= 20_000; n++) await memory.recordWal(segment(n));
    const snaps = [snapshot("s0100", 100), snapshot("s1100", 1100), snapshot("s19000", 19_000)];
    for (const snap of snaps) await memory.recordSnapshot(snap);
    const counted = countingCatalog(memory, { pages: false });
    overrideDeps({ catalog: counted.catalog });

    // Act
    const out = await selectPage({ request: { databaseId: DB, snapshotId: "s0100", level: 4 } });

    // Assess
    const target = Date.parse(out.candidates[0]!.targetTime!);
    expect(out.candidates).toHaveLength(1);
    expect(target).toBeGreaterThan(Date.parse(snaps[0]!.finishedAt));
    expect(target).toBeLessThan(Date.parse(snaps[1]!.finishedAt));
    expect(counted.walRangeRecordsRead()).toBeGreaterThan(0);
    expect(counted.walRangeRecordsRead()).toBeLessThanOrEqual(2000);
  });
});

/** Stream "wal" of a generic database: positions 1..count, position n closed at minute n (name `wal/seg-<n>.wal` unless told). */
function genericWal(databaseId: string, count: number, nameOf = (n: number): string => `wal/seg-${n}.wal`): WalRecord[] {
  return Array.from({ length: count }, (_, i): WalRecord => {
    const n = i + 1;
    const name = nameOf(n);
    const at = new Date(T0 + n * MINUTE).toISOString();
    return { databaseId, name, kind: "segment", timeline: 1, startLsn: String(n), size: 100, storedSize: 1, sha256: "a".repeat(64), codec: "zstd", status: "stored", vaultKey: `db/${databaseId}/wal/${name}`, archivedAt: at, closedAt: at, replicas: {} };
  });
}

/** A generic snapshot whose stream "wal" ends at position n, finished at minute n + 1. */
function genericSnapshotRecord(databaseId: string, id: string, n: number): SnapshotRecord {
  const { timeline: _t, startLsn: _s, stopLsn: _p, ...rest } = pgSnapshotRecord(databaseId, id, BigInt(n), new Date(T0 + (n + 1) * MINUTE).toISOString(), SIZE);
  return { ...rest, kind: "generic", streams: { wal: String(n) } };
}

describe("verify SelectCandidates, generic database", () => {
  it("draws a level-4 target from its one stream's WAL read a page at a time, never the whole list", async () => {
    // Prepare: an in-memory catalog (1,000 records a page, as DynamoDB) with stream "wal" positions 1..3,000 (closed at
    // minute n) recorded before the database is registered (so it is not marked as indexed); snapshots at 100 and 1,100.
    const GDB = "gen-select";
    const memory = new MemoryCatalog();
    for (const w of genericWal(GDB, 3_000, (n) => `wal/${String(n).padStart(6, "0")}.wal`)) await memory.recordWal(w);
    await memory.putDatabase({ ...database, databaseId: GDB, kind: "generic" });
    const snaps = [genericSnapshotRecord(GDB, "g0100", 100), genericSnapshotRecord(GDB, "g1100", 1100)];
    for (const snap of snaps) await memory.recordSnapshot(snap);
    const paged = countingCatalog(memory);
    overrideDeps({ catalog: paged.catalog });

    // Act
    const out = await selectPage({ request: { databaseId: GDB, snapshotId: "g0100", level: 4 } });

    // Assess
    expect((await memory.getDatabase(GDB))?.walIndex).toBeUndefined();
    const target = Date.parse(out.candidates[0]!.targetTime!);
    expect(target).toBeGreaterThan(Date.parse(snaps[0]!.finishedAt));
    expect(target).toBeLessThan(Date.parse(snaps[1]!.finishedAt));
    // Three full pages and DynamoDB's empty fourth: a full page names its last key even at the end.
    expect(paged.pagesRead()).toBe(4);
  });

  it("reads a database marked walIndex complete by position range, from its oldest snapshot on, never a page of the whole WAL", async () => {
    // Prepare: an in-memory catalog (store/memory-catalog.ts) registering the database before its WAL, so it is marked;
    // stream "wal" positions 1..3,000 (closed at minute n); snapshots at positions 2,500 and 2,800; listWalPage refuses.
    const GDB = "gen-select-indexed";
    const memory = new MemoryCatalog();
    await memory.putDatabase({ ...database, databaseId: GDB, kind: "generic" });
    for (const w of genericWal(GDB, 3_000)) await memory.recordWal(w);
    const snaps = [genericSnapshotRecord(GDB, "g2500", 2500), genericSnapshotRecord(GDB, "g2800", 2800)];
    for (const snap of snaps) await memory.recordSnapshot(snap);
    const counted = countingCatalog(memory, { pages: false });
    const catalog = counted.catalog;
    overrideDeps({ catalog });

    // Act
    const out = await selectPage({ request: { databaseId: GDB, snapshotId: "g2500", level: 4 } });

    // Assess: positions 2,500..3,000 read, not 3,000 records.
    expect((await memory.getDatabase(GDB))?.walIndex).toBe("complete");
    const target = Date.parse(out.candidates[0]!.targetTime!);
    expect(target).toBeGreaterThan(Date.parse(snaps[0]!.finishedAt));
    expect(target).toBeLessThan(Date.parse(snaps[1]!.finishedAt));
    expect(counted.recordsRead()).toBe(501);
  });

  it("reads a marked database page by page when the catalog cannot read the index (ConfigError: no index, or no grant)", async () => {
    // Prepare: an in-memory catalog, the database registered first (marked); stream "wal" positions 1..2,100 (three
    // pages); snapshots at 100 and 200; the index Query is denied (ConfigError, as DynamoCatalog names AccessDenied).
    const GDB = "gen-select-denied";
    const memory = new MemoryCatalog();
    await memory.putDatabase({ ...database, databaseId: GDB, kind: "generic" });
    for (const w of genericWal(GDB, 2_100)) await memory.recordWal(w);
    const snaps = [genericSnapshotRecord(GDB, "g100", 100), genericSnapshotRecord(GDB, "g200", 200)];
    for (const snap of snaps) await memory.recordSnapshot(snap);
    const paged = countingCatalog(memory, { index: "denied" });
    overrideDeps({ catalog: paged.catalog });

    // Act
    const out = await selectPage({ request: { databaseId: GDB, snapshotId: "g100", level: 4 } });

    // Assess
    expect((await memory.getDatabase(GDB))?.walIndex).toBe("complete");
    const target = Date.parse(out.candidates[0]!.targetTime!);
    expect(target).toBeGreaterThan(Date.parse(snaps[0]!.finishedAt));
    expect(target).toBeLessThan(Date.parse(snaps[1]!.finishedAt));
    expect(paged.pagesRead()).toBe(3);
  });
});

describe("verify SelectCandidates counts the snapshots past the verification period", () => {
  it("emits one fleet-wide record per page: the count and the databases, 0 when every snapshot is within the period", async () => {
    // Prepare: an in-memory catalog of two databases (one page)
    const now = Date.now();
    const day = 86_400_000;
    const days = (n: number): string => new Date(now - n * day).toISOString();
    const snaps: Record<string, SnapshotRecord[]> = {
      "pg-late": [pgSnapshotRecord("pg-late", "20260101T000000Z-aaaaaa", 1n, days(30), SIZE), pgSnapshotRecord("pg-late", "20260102T000000Z-bbbbbb", 2n, days(9), SIZE), pgSnapshotRecord("pg-late", "20260103T000000Z-cccccc", 3n, days(1), SIZE)],
      "pg-fine": [pgSnapshotRecord("pg-fine", "20260104T000000Z-dddddd", 1n, days(30), SIZE)],
    };
    const verified: Record<string, Array<{ snapshotId: string; outcome: "passed"; finishedAt: string }>> = {
      "pg-late": [{ snapshotId: "20260101T000000Z-aaaaaa", outcome: "passed", finishedAt: days(2) }],
      "pg-fine": [{ snapshotId: "20260104T000000Z-dddddd", outcome: "passed", finishedAt: days(3) }],
    };
    const memory = new MemoryCatalog();
    for (const id of ["pg-fine", "pg-late"]) {
      await memory.putDatabase({ ...database, databaseId: id });
      for (const snap of snaps[id]!) await memory.recordSnapshot(snap);
      for (const v of verified[id]!) {
        const record: VerificationRecord = { databaseId: id, runId: `run-${v.snapshotId}`, level: 1, startedAt: v.finishedAt, checks: [], ...v };
        await memory.recordVerification(record);
      }
    }
    overrideDeps({ catalog: memory });
    try {
      // Act: a scheduled selection (level 1: no targets to draw)
      const lines = emfRecords(await outputLinesOf(() => selectPage({ request: { level: 1 } })));
      // Assess: pg-late's snapshot of 9 days ago was never verified (7-day period); nothing else is past it
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ SnapshotsPastVerifyPeriod: 1, PeriodDays: "7", Databases: "pg-late:1" });
      expect(lines[0]!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([[]]);
    } finally {
      resetDeps();
    }
  });
});
