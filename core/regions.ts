/**
 * What each region can restore (issue #4). Pure.
 *
 * A region holds a WAL file or a snapshot when the catalog marks it there:
 * the primary holds everything recorded; a replica region holds what its
 * `replicas[region].status` says is "replicated" (a copy proven in that
 * region's vault). A region is restorable to time T exactly when it holds a
 * snapshot finished at or before T and the contiguous WAL from that snapshot
 * up to T: `restorableWindows` computes those stretches from the records the
 * region holds, with the same rules the restore planner uses.
 */
import type { RestorePlanInput, SnapshotInfo, WalSegmentInfo } from "./restore-plan.js";
import type { SnapshotRecord, WalRecord } from "./schemas.js";
import { lsnToSegno } from "./wal.js";

/** The record as that region holds it (its own version id), or undefined when the region does not hold it. */
export function walInRegion(rec: WalRecord, region: string | undefined): WalRecord | undefined {
  if (region === undefined) return rec;
  const r = rec.replicas[region];
  if (r?.status !== "replicated") return undefined;
  const { vaultVersionId: _primaryVersion, ...rest } = rec;
  return { ...rest, ...(r.versionId ? { vaultVersionId: r.versionId } : {}) };
}

export function snapshotInRegion(rec: SnapshotRecord, region: string | undefined): SnapshotRecord | undefined {
  if (region === undefined) return rec;
  return rec.replicas[region]?.status === "replicated" ? rec : undefined;
}

export interface RestorableWindow {
  /** The earliest time restorable (the oldest snapshot of the stretch finished then). */
  from: Date;
  /** The latest: the close/archive time of the last contiguous segment (or the snapshot's end when it has none after it). */
  to: Date;
  /** Snapshots the stretch can start from. */
  snapshots: string[];
}

/**
 * Restorable stretches of one WAL line (PostgreSQL: one database; generic:
 * one stream, with `archivedThrough` when known) from the planner's input.
 * PostgreSQL: from each snapshot's start segment, segments must be contiguous
 * on its timeline through its consistent point; the stretch ends at the last
 * contiguous segment. Generic: from the segment after the snapshot's last.
 * Overlapping stretches are merged.
 */
export function restorableWindows(input: Pick<RestorePlanInput, "snapshots" | "wal" | "segmentSize" | "archivedThrough">): RestorableWindow[] {
  const bySeg = new Map<string, WalSegmentInfo>();
  for (const w of input.wal) bySeg.set(`${w.timeline}:${w.segno}`, w);
  const windows: RestorableWindow[] = [];
  for (const s of input.snapshots) {
    const w = windowOf(s, bySeg, input.segmentSize, input.archivedThrough);
    if (w) windows.push({ ...w, snapshots: [s.id] });
  }
  windows.sort((a, b) => a.from.getTime() - b.from.getTime());
  const merged: RestorableWindow[] = [];
  for (const w of windows) {
    const last = merged.at(-1);
    if (last && w.from <= last.to) {
      if (w.to > last.to) last.to = w.to;
      last.snapshots.push(...w.snapshots);
    } else merged.push({ ...w, snapshots: [...w.snapshots] });
  }
  return merged;
}

function windowOf(s: SnapshotInfo, bySeg: Map<string, WalSegmentInfo>, segmentSize: number, archivedThrough: Date | undefined): { from: Date; to: Date } | undefined {
  const get = (segno: bigint): WalSegmentInfo | undefined => bySeg.get(`${s.timeline}:${segno}`);
  if (s.kind === "generic") {
    let last: WalSegmentInfo | undefined;
    let segno = s.stopLsn + 1n;
    for (let w = get(segno); w; w = get(++segno)) last = w;
    const ends = [s.finishedAt, ...(last ? [last.archivedAt] : [])];
    // A stream whose archive ends with no gap is complete as far as the last whole scan proves.
    const more = [...bySeg.values()].some((w) => w.segno > segno);
    if (!more && archivedThrough) ends.push(archivedThrough);
    return { from: s.finishedAt, to: new Date(Math.max(...ends.map((d) => d.getTime()))) };
  }
  const first = lsnToSegno(s.startLsn, segmentSize);
  const consistent = s.stopLsn > s.startLsn ? lsnToSegno(s.stopLsn - 1n, segmentSize) : first;
  let last: WalSegmentInfo | undefined;
  let segno = first;
  for (let w = get(segno); w; w = get(++segno)) last = w;
  if (last === undefined || last.segno < consistent) return undefined; // the snapshot cannot even become consistent here
  return { from: s.finishedAt, to: last.archivedAt > s.finishedAt ? last.archivedAt : s.finishedAt };
}

export interface RegionLag {
  /** WAL files recorded but not (yet) proven in the region. */
  missingWal: number;
  missingSnapshots: number;
  /** Copies recorded as failed (after the workflow's retries), with the latest error. */
  failed: number;
  lastError?: string;
  /** Seconds since the oldest WAL file the region lacks was archived (0 when level). */
  lagSeconds: number;
}

export function regionLag(wal: readonly WalRecord[], snapshots: readonly SnapshotRecord[], region: string, now: Date): RegionLag {
  const missing = wal.filter((w) => w.replicas[region]?.status !== "replicated");
  const missingSnaps = snapshots.filter((s) => s.replicas[region]?.status !== "replicated");
  const failed = [...missing, ...missingSnaps].filter((x) => x.replicas[region]?.status === "failed");
  const oldest = missing.reduce<string | undefined>((a, w) => (a === undefined || w.archivedAt < a ? w.archivedAt : a), undefined);
  const lastFailure = failed.map((x) => x.replicas[region]!).sort((a, b) => (a.at < b.at ? 1 : -1))[0];
  return {
    missingWal: missing.length,
    missingSnapshots: missingSnaps.length,
    failed: failed.length,
    ...(lastFailure?.error ? { lastError: lastFailure.error } : {}),
    lagSeconds: oldest === undefined ? 0 : Math.max(0, Math.round((now.getTime() - Date.parse(oldest)) / 1000)),
  };
}
