/**
 * agent/regions.ts regionStatus: per region, what it holds, its lag and its
 * restorable windows from the catalog's WAL read a page at a time, never the
 * whole list (Catalog.listWal fails here), on the in-memory catalog
 * (store/memory-catalog.ts: DynamoDB's 1,000 records a page).
 */
import { describe, expect, it } from "vitest";
import { regionStatus } from "../../agent/regions.js";
import type { AgentConfig } from "../../core/config.js";
import type { WalRecord } from "../../core/schemas.js";
import { MemoryCatalog } from "../../store/memory-catalog.js";
import { countingCatalog } from "../support/counting-catalog.js";
import { pgSegmentRecord, pgSnapshotRecord } from "../support/pg-records.js";

const MIB16 = 16 * 1024 * 1024;
const DB = "pg-regions";
const at = (n: number): string => new Date(Date.UTC(2026, 11, 6, 1, 0, n)).toISOString();

function segment(segno: number, inReplica: "replicated" | "pending" | "failed"): WalRecord {
  return pgSegmentRecord(DB, segno, at(segno), MIB16, {
    replicas: { r2: { status: inReplica, at: at(segno + 100), ...(inReplica === "failed" ? { error: `copy ${segno} failed` } : {}) } },
  });
}

describe("regionStatus", () => {
  it("gives each region what it holds, its lag and its windows, reading the WAL a page at a time (2,100 records: three pages)", async () => {
    // Prepare: segments 1-2,100 (the primary holds all); region r2 lacks 3 (pending) and 5 (failed). One snapshot in segment 1, in both.
    const status = (n: number): "replicated" | "pending" | "failed" => (n === 3 ? "pending" : n === 5 ? "failed" : "replicated");
    const memory = new MemoryCatalog();
    for (let n = 1; n <= 2_100; n++) await memory.recordWal(segment(n, status(n)));
    await memory.putDatabase({ databaseId: DB, kind: "postgres", walSegmentSize: MIB16, createdAt: at(0) });
    const snap = { ...pgSnapshotRecord(DB, "20261206T010000Z-aaaaaa", 1n, at(1), MIB16), replicas: { r2: { status: "replicated" as const, at: at(50) } } };
    await memory.recordSnapshot(snap);
    const counted = countingCatalog(memory);
    const cfg = { region: "r1", vaultBucket: "v1", replicas: [{ region: "r2", vaultBucket: "v2" }] } as unknown as AgentConfig;
    const now = new Date(Date.parse(at(3)) + 60_000);

    // Act
    const [primary, r2] = await regionStatus(counted.catalog, cfg, DB, undefined, now);

    // Assess: the primary reaches segment 2,100; r2 only segment 2 (3 is missing there), and lags since segment 3 was archived.
    expect(counted.pagesRead()).toBe(3);
    expect(primary).toMatchObject({ region: "r1", primary: true, wal: 2_100, snapshots: 1, missingWal: 0, lagSeconds: 0 });
    expect(primary!.windows).toEqual([{ from: at(1), to: at(2_100), snapshots: [snap.snapshotId] }]);
    expect(r2).toMatchObject({ region: "r2", primary: false, wal: 2_098, snapshots: 1, missingWal: 2, missingSnapshots: 0, failed: 1, lastError: "copy 5 failed", lagSeconds: 60 });
    expect(r2!.windows).toEqual([{ from: at(1), to: at(2), snapshots: [snap.snapshotId] }]);
  });
});
