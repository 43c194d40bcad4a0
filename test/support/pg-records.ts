/**
 * Catalog records of PostgreSQL snapshots for tests that plan over the
 * catalog alone (no manifest in any vault).
 */
import type { SnapshotRecord } from "../../core/schemas.js";
import { formatLsn, segmentStartLsn } from "../../core/wal.js";

/** A snapshot of timeline 1 whose backup starts and ends inside segment `segno`, finished at `finishedAt`. */
export function pgSnapshotRecord(databaseId: string, snapshotId: string, segno: bigint, finishedAt: string, segmentSize: number): SnapshotRecord {
  const start = segmentStartLsn(segno, segmentSize) + 40n;
  return {
    databaseId,
    snapshotId,
    kind: "postgres",
    timeline: 1,
    startLsn: formatLsn(start),
    stopLsn: formatLsn(start + 4000n),
    startedAt: finishedAt,
    finishedAt,
    manifestKey: `db/${databaseId}/snapshots/${snapshotId}/manifest.json`,
    manifestSha256: "b".repeat(64),
    manifestSize: 1,
    totals: { files: 0, logicalBytes: 0, uniqueChunks: 0, newChunks: 0, storedBytes: 0, newStoredBytes: 0 },
    status: "restorable",
    recordedAt: finishedAt,
    replicas: {},
  };
}
