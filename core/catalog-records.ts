/**
 * The catalog records walvault derives from what it proved about an object:
 * one derivation, used by ingest (from the upload it validated) and by
 * catalog rebuild (store/catalog-rebuild.ts, from the vault object itself),
 * so a rebuilt catalog holds what ingest would have written.
 *
 * Pure: no I/O, no clock (times are passed in).
 */
import type { SnapshotHeader } from "./manifest-header.js";
import { isGenericWalName } from "./generic-wal.js";
import { timelineDir } from "./keys.js";
import { MAX_RECORDED_RESTORE_POINTS, type FoundRestorePoint } from "./restore-point.js";
import type { SnapshotRecord, SnapshotSummary, WalRecord } from "./schemas.js";
import { formatTime, timeFromNs } from "./time.js";
import { formatLsn, lsnSortKey, parseLsn, segmentEndLsn, segmentStartLsn, type WalFileName } from "./wal.js";

/** Start and end LSN (PostgreSQL's text) of a WAL file with a segment number; none for history files. */
export function walFileLsns(file: WalFileName, segmentSize: number): { startLsn?: string; endLsn?: string } {
  if (file.segno === undefined) return {};
  return { startLsn: formatLsn(segmentStartLsn(file.segno, segmentSize)), endLsn: formatLsn(segmentEndLsn(file.segno, segmentSize)) };
}

/** A segment's restore points (core/restore-point.ts) as its catalog record holds them: the first MAX_RECORDED_RESTORE_POINTS. */
export function restorePointFields(found: readonly FoundRestorePoint[]): Pick<WalRecord, "restorePoints" | "restorePointsTruncated"> {
  if (found.length === 0) return {};
  return {
    restorePoints: found.slice(0, MAX_RECORDED_RESTORE_POINTS).map((p) => ({
      name: p.name,
      lsn: formatLsn(p.lsn),
      time: formatTime(timeFromNs(p.epochMicros * 1000n)),
    })),
    ...(found.length > MAX_RECORDED_RESTORE_POINTS ? { restorePointsTruncated: true } : {}),
  };
}

/** A segment's latest transaction end (core/xact-time.ts, µs since 1970) as its catalog record holds it. */
export function lastXactField(epochMicros: bigint | undefined): Pick<WalRecord, "lastXactAt"> {
  return epochMicros === undefined ? {} : { lastXactAt: formatTime(timeFromNs(epochMicros * 1000n)) };
}

/**
 * The key the database head is ordered by for a WAL record, or undefined when
 * the record does not move the head (only segments with a position do).
 * PostgreSQL: timeline, then LSN. Generic segments (several streams, each
 * with its own positions) order by close time, then name.
 */
export function headSortKey(record: Pick<WalRecord, "name" | "kind" | "timeline" | "startLsn" | "closedAt" | "archivedAt">): string | undefined {
  if (record.kind !== "segment" || !record.startLsn) return undefined;
  return isGenericWalName(record.name)
    ? `${record.closedAt ?? record.archivedAt}#${record.name}`
    : `${timelineDir(record.timeline)}-${lsnSortKey(parseLsn(record.startLsn))}`;
}

/** What a snapshot's catalog record takes from its (validated) manifest. */
export function snapshotSummary(m: SnapshotHeader): SnapshotSummary {
  const t = m.totals;
  const common = {
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    totals: {
      files: t.files,
      logicalBytes: t.logicalBytes,
      uniqueChunks: t.uniqueChunks,
      newChunks: t.newChunks,
      storedBytes: t.storedBytes,
      newStoredBytes: t.newStoredBytes,
    },
  };
  if (m.kind === "postgres") {
    const pg = m.postgres;
    return {
      ...common,
      timeline: pg.timeline,
      startLsn: pg.startLsn,
      stopLsn: pg.stopLsn,
      startWalFile: pg.startWalFile,
      ...(pg.stopWalFile === undefined ? {} : { stopWalFile: pg.stopWalFile }),
    };
  }
  // Positions as decimal text: a stream with no closed segment yet has no lastSegment.
  return { ...common, streams: Object.fromEntries(m.generic.streams.map((s) => [s.id, String(s.lastSegno)])) };
}

export interface SnapshotRecordInput {
  databaseId: string;
  snapshotId: string;
  kind: SnapshotRecord["kind"];
  summary: SnapshotSummary;
  /** Vault key of the manifest. */
  manifestKey: string;
  /** SHA-256 and size of the manifest's raw (decoded) bytes. */
  manifestSha256: string;
  manifestSize: number;
  recordedAt: string;
  /** Replica regions the snapshot is to be copied to: "pending" there (none: no replica status). */
  replicaRegions?: readonly string[];
}

/**
 * The replica status of a new record: "pending" in every region it is to be
 * copied to, so the catalog lists it as missing there (store/catalog.ts,
 * listUnreplicated) until a copy is proven.
 */
export function pendingReplicas(regions: readonly string[], at: string): WalRecord["replicas"] {
  return Object.fromEntries(regions.map((r) => [r, { status: "pending" as const, at }]));
}

/** The catalog record that makes a snapshot restorable (pending in `replicaRegions`). */
export function snapshotRecordOf(i: SnapshotRecordInput): SnapshotRecord {
  const { summary } = i;
  return {
    databaseId: i.databaseId,
    snapshotId: i.snapshotId,
    kind: i.kind,
    ...(summary.timeline === undefined ? {} : { timeline: summary.timeline }),
    ...(summary.startLsn === undefined ? {} : { startLsn: summary.startLsn }),
    ...(summary.stopLsn === undefined ? {} : { stopLsn: summary.stopLsn }),
    ...(summary.startWalFile === undefined ? {} : { startWalFile: summary.startWalFile }),
    ...(summary.stopWalFile === undefined ? {} : { stopWalFile: summary.stopWalFile }),
    ...(summary.streams === undefined ? {} : { streams: summary.streams }),
    startedAt: summary.startedAt,
    finishedAt: summary.finishedAt,
    manifestKey: i.manifestKey,
    manifestSha256: i.manifestSha256,
    manifestSize: i.manifestSize,
    totals: summary.totals,
    status: "restorable",
    recordedAt: i.recordedAt,
    replicas: pendingReplicas(i.replicaRegions ?? [], i.recordedAt),
  };
}
