/**
 * Catalog records of PostgreSQL snapshots for tests that plan over the
 * catalog alone (no manifest in any vault).
 */
import type { SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { formatLsn, segmentName, segmentStartLsn } from "../../core/wal.js";

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

/** The record of WAL segment `segno` of timeline 1, stored, archived at `archivedAt`; `extra` overrides any field. */
export function pgSegmentRecord(databaseId: string, segno: number, archivedAt: string, segmentSize: number, extra: Partial<WalRecord> = {}): WalRecord {
  const name = segmentName(1, BigInt(segno), segmentSize);
  return {
    databaseId,
    name,
    kind: "segment",
    timeline: 1,
    startLsn: formatLsn(segmentStartLsn(BigInt(segno), segmentSize)),
    sha256: "ab".repeat(32),
    size: segmentSize,
    storedSize: 1000,
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${databaseId}/wal/00000001/${name}`,
    archivedAt,
    replicas: {},
    ...extra,
  };
}
