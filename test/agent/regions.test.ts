/**
 * agent/regions.ts regionStatus: per region, what it holds, its lag and its
 * restorable windows from the catalog's WAL read a page at a time, never the
 * whole list (Catalog.listWal fails here).
 */
import { describe, expect, it } from "vitest";
import { regionStatus } from "../../agent/regions.js";
import type { AgentConfig } from "../../core/config.js";
import type { DatabaseRecord, WalRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { pagedWal } from "../support/paged-wal.js";
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
  it("gives each region what it holds, its lag and its windows, reading the WAL two records to a page", async () => {
    // Prepare: segments 1-6 (the primary holds all); region r2 lacks 3 (pending) and 5 (failed). One snapshot in segment 1, in both.
    const records = [segment(1, "replicated"), segment(2, "replicated"), segment(3, "pending"), segment(4, "replicated"), segment(5, "failed"), segment(6, "replicated")];
    const snap = { ...pgSnapshotRecord(DB, "20261206T010000Z-aaaaaa", 1n, at(1), MIB16), replicas: { r2: { status: "replicated" as const, at: at(50) } } };
    const wal = pagedWal(records, 2);
    const catalog = {
      getDatabase: async (): Promise<DatabaseRecord> => ({ databaseId: DB, kind: "postgres", walSegmentSize: MIB16, createdAt: at(0) }),
      listSnapshots: async () => [snap],
      ...wal,
    } as unknown as Catalog;
    const cfg = { region: "r1", vaultBucket: "v1", replicas: [{ region: "r2", vaultBucket: "v2" }] } as unknown as AgentConfig;
    const now = new Date(Date.parse(at(3)) + 60_000);

    // Act
    const [primary, r2] = await regionStatus(catalog, cfg, DB, undefined, now);

    // Assess: the primary reaches segment 6; r2 only segment 2 (3 is missing there), and lags since segment 3 was archived.
    expect(wal.pagesRead()).toBe(3);
    expect(primary).toMatchObject({ region: "r1", primary: true, wal: 6, snapshots: 1, missingWal: 0, lagSeconds: 0 });
    expect(primary!.windows).toEqual([{ from: at(1), to: at(6), snapshots: [snap.snapshotId] }]);
    expect(r2).toMatchObject({ region: "r2", primary: false, wal: 4, snapshots: 1, missingWal: 2, missingSnapshots: 0, failed: 1, lastError: "copy 5 failed", lagSeconds: 60 });
    expect(r2!.windows).toEqual([{ from: at(1), to: at(2), snapshots: [snap.snapshotId] }]);
  });
});
