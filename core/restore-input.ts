/**
 * What the catalog knows about one database, shaped for core/restore-plan.ts
 * (pure: plain catalog records in, RestorePlanInput out; the loading is
 * store/catalog-state.ts). Shared by `walvault restore` (agent/restore.ts)
 * and the restore workflow (functions/restore/).
 *
 * Generic WAL in the catalog (core/generic-wal.ts): a segment record's name
 * is `<stream>/<file>`, its position `startLsn` as decimal text and its
 * close time `closedAt` (which time targets use). Older records named by
 * file alone take their stream from the vault key
 * (`db/<id>/wal/<stream>/<name>`; with one stream every record belongs to
 * it) and their position from the segment number of a PostgreSQL-style name,
 * else the last run of decimal digits in the name. A snapshot record's
 * `streams[stream]` is a decimal position or the path of the last segment it
 * includes, read by the same rule from its file name; a record that cannot be
 * read that way is planned from its manifest.
 */
import { posix } from "node:path";
import { InvalidInputError } from "./errors.js";
import { archivedThrough, genericRecordPosition, isGenericWalName } from "./generic-wal.js";
import type { RestorePlanInput, RestorePointInfo, RestoreTarget, SnapshotInfo, WalSegmentInfo } from "./restore-plan.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "./schemas.js";
import type { SnapshotHeader } from "./manifest-header.js";
import { toSnapshotInfo } from "./snapshot.js";
import { parseTime } from "./time.js";
import type { TimelineHistoryEntry } from "./timeline.js";
import { parseLsn, parseWalFileName } from "./wal.js";

/** What the catalog knows about one database, read once for planning. */
export interface CatalogState {
  database: DatabaseRecord;
  records: SnapshotRecord[];
  /** WAL segment records (kind "segment"). */
  segments: WalRecord[];
  histories: Map<number, TimelineHistoryEntry[]>;
  /** History files that do not parse, by timeline, with why (see RestorePlanInput.unreadableHistories). */
  unreadableHistories?: Map<number, string>;
  /** Generic: WAL stream ids, sorted (the first picks the snapshot). */
  streams: string[];
  /** Manifest headers read because their records lack what planning needs (keyed by snapshot id; never the files). */
  manifests: Map<string, SnapshotHeader>;
  /**
   * Generic: how far the archive is known complete, when the state holds
   * only part of the segments (store/catalog-state.ts, bounded planning):
   * computed over all of them. Absent: computed from `segments`.
   */
  archivedThrough?: Date | undefined;
}

/**
 * Position of a generic WAL segment record: `startLsn` as decimal text, else
 * the segment number of a PostgreSQL-style name, else the last run of decimal
 * digits in the name. Undefined when none applies.
 */
export function genericSegno(rec: { name: string; startLsn?: string | undefined }, segmentSize?: number): bigint | undefined {
  // A decimal startLsn first, and the name's last number last: core/generic-wal.ts genericRecordPosition (the catalog's position key).
  const explicit = rec.startLsn !== undefined && /^\d{1,20}$/.test(rec.startLsn);
  if (!explicit) {
    try {
      const p = parseWalFileName(rec.name, segmentSize);
      if (p.kind === "segment" && p.segno !== undefined) return p.segno;
    } catch {
      // not a PostgreSQL-style name
    }
  }
  return genericRecordPosition(rec);
}

/** The stream a generic WAL record belongs to: the directory of its vault key db/<id>/wal/<stream>/<name>. */
export function streamOfRecord(rec: WalRecord): string | undefined {
  if (isGenericWalName(rec.name)) return rec.name.slice(0, rec.name.indexOf("/"));
  const parts = rec.vaultKey.split("/");
  if (parts.length === 5 && parts[0] === "db" && parts[1] === rec.databaseId && parts[2] === "wal" && parts[4] === rec.name) return parts[3];
  return undefined;
}

/** A generic snapshot record's stream entry: a decimal position, or the path of its last segment (position from the name). */
export function recordedPosition(last: string, segmentSize: number): bigint | undefined {
  return /^\d{1,20}$/.test(last) ? BigInt(last) : genericSegno({ name: posix.basename(last) }, segmentSize);
}

/** Whether a snapshot record lacks what planning needs (older or partial records): its manifest must be read. */
export function recordIsIncomplete(rec: SnapshotRecord, database: DatabaseRecord): boolean {
  return database.kind === "postgres"
    ? rec.timeline === undefined || rec.startLsn === undefined || rec.stopLsn === undefined
    : rec.streams === undefined ||
        Object.keys(rec.streams).length === 0 ||
        Object.values(rec.streams).some((last) => recordedPosition(last, database.walSegmentSize) === undefined);
}

/** Generic: the WAL stream ids the snapshots name (from manifests where read, else the records), sorted. */
export function streamsOf(database: DatabaseRecord, records: readonly SnapshotRecord[], manifests: ReadonlyMap<string, SnapshotHeader>): string[] {
  if (database.kind !== "generic") return [];
  const seen = new Set<string>();
  for (const r of records) {
    const m = manifests.get(r.snapshotId);
    for (const id of m?.kind === "generic" ? m.generic.streams.map((s) => s.id) : Object.keys(r.streams ?? {})) seen.add(id);
  }
  return [...seen].sort();
}

/** A snapshot record as planning sees it for `stream`; undefined when it has no such stream. */
export function snapshotInfoOf(state: CatalogState, rec: SnapshotRecord, stream: string | undefined): SnapshotInfo | undefined {
  const manifest = state.manifests.get(rec.snapshotId);
  if (manifest) {
    if (manifest.kind === "generic" && !manifest.generic.streams.some((s) => s.id === stream)) return undefined;
    return { ...toSnapshotInfo(manifest, stream === undefined ? {} : { stream }), ...(rec.pinned ? { pinned: true } : {}) };
  }
  const common = {
    id: rec.snapshotId,
    databaseId: rec.databaseId,
    startedAt: new Date(rec.startedAt),
    finishedAt: new Date(rec.finishedAt),
    ...(rec.pinned ? { pinned: true } : {}),
  };
  if (state.database.kind === "postgres") {
    return { ...common, kind: "postgres", timeline: rec.timeline!, startLsn: parseLsn(rec.startLsn!), stopLsn: parseLsn(rec.stopLsn!) };
  }
  const last = stream === undefined ? undefined : rec.streams?.[stream];
  if (last === undefined) return undefined;
  // Records whose positions cannot be read this way were planned from their manifests (recordIsIncomplete).
  const segno = recordedPosition(last, state.database.walSegmentSize)!;
  return { ...common, kind: "generic", timeline: 1, startLsn: segno, stopLsn: segno };
}

/** WAL segment records of `stream` (all of them for PostgreSQL or a single generic stream). */
export function segmentsOf(state: CatalogState, stream: string | undefined): WalRecord[] {
  if (state.database.kind === "generic" && state.streams.length > 1) return state.segments.filter((w) => streamOfRecord(w) === stream);
  return state.segments;
}

/** WAL segment records as planning sees them for `stream`. */
export function walOf(state: CatalogState, stream: string | undefined): WalSegmentInfo[] {
  const out: WalSegmentInfo[] = [];
  for (const w of segmentsOf(state, stream)) {
    const place = segmentPlace(state.database, w);
    if (place !== undefined) out.push({ timeline: place.timeline, segno: place.segno, name: w.name, archivedAt: place.at });
  }
  return out;
}

/**
 * Where planning places a WAL segment record: its line's timeline (generic:
 * 1), its position and its time (generic: when it closed, else when it was
 * archived). Undefined for a PostgreSQL record whose name is not a segment's;
 * InvalidInputError for a generic one without a position.
 */
export function segmentPlace(database: DatabaseRecord, w: WalRecord): { timeline: number; segno: bigint; at: Date } | undefined {
  const size = database.walSegmentSize;
  if (database.kind === "postgres") {
    const p = parseWalFileName(w.name, size);
    return p.kind !== "segment" || p.segno === undefined ? undefined : { timeline: w.timeline, segno: p.segno, at: new Date(w.archivedAt) };
  }
  const segno = genericSegno(w, size);
  if (segno === undefined) {
    throw new InvalidInputError(`WAL segment '${w.name}' of database ${w.databaseId} has no position (no decimal startLsn, no number in its name)`);
  }
  return { timeline: 1, segno, at: new Date(w.closedAt ?? w.archivedAt) };
}

/**
 * PostgreSQL: the restore points ingest recorded on the WAL segment records
 * (at most MAX_RECORDED_RESTORE_POINTS a segment; a record crossing a segment
 * boundary is not among them), each on its segment's timeline.
 */
export function restorePointsOf(state: CatalogState): RestorePointInfo[] {
  if (state.database.kind !== "postgres") return [];
  return state.segments.flatMap((w) =>
    (w.restorePoints ?? []).map((rp) => ({ name: rp.name, lsn: parseLsn(rp.lsn), time: parseTime(rp.time, `restore point ${rp.name}'s time`).date, timeline: w.timeline })),
  );
}

/** The planner's input for `stream` (generic), optionally limited to one snapshot. */
export function buildPlanInput(state: CatalogState, target: RestoreTarget, stream: string | undefined, onlySnapshot?: string): RestorePlanInput {
  const snapshots: SnapshotInfo[] = [];
  for (const r of state.records) {
    if (onlySnapshot !== undefined && r.snapshotId !== onlySnapshot) continue;
    const info = snapshotInfoOf(state, r, stream);
    if (info) snapshots.push(info);
  }
  const through = state.database.kind !== "generic" ? undefined : "archivedThrough" in state ? state.archivedThrough : archivedThrough(state.segments);
  const restorePoints = restorePointsOf(state);
  return {
    snapshots,
    wal: walOf(state, stream),
    histories: state.histories,
    ...(state.unreadableHistories === undefined || state.unreadableHistories.size === 0 ? {} : { unreadableHistories: state.unreadableHistories }),
    segmentSize: state.database.walSegmentSize,
    target,
    ...(through === undefined ? {} : { archivedThrough: through }),
    ...(restorePoints.length === 0 ? {} : { restorePoints }),
  };
}
