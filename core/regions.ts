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
import type { RestorePlanInput, SnapshotInfo } from "./restore-plan.js";
import { segmentPlace, streamOfRecord } from "./restore-input.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "./schemas.js";
import { lastIndexOf, PositionList } from "./wal-positions.js";
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
 * The segments of one WAL line (PostgreSQL: one database, by timeline;
 * generic: one stream, timeline 1) as restorableWindows reads them: per
 * timeline the positions in order, each with its time (ms), and where its
 * contiguous run ends. Built from the planner's input, or a page of records
 * at a time by callers that never hold the records (agent/regions.ts):
 * ~20 bytes a segment (core/wal-positions.ts). A position listed twice keeps
 * the time listed last.
 */
export class WalLineIndex {
  private readonly lines = new Map<number, { list: PositionList; runs?: { pos: ArrayLike<bigint>; at: ArrayLike<number>; runEnd: Uint32Array } }>();

  add(timeline: number, segno: bigint, archivedAtMs: number): void {
    let line = this.lines.get(timeline);
    if (line === undefined) this.lines.set(timeline, (line = { list: new PositionList() }));
    line.list.push(segno, archivedAtMs);
    line.runs = undefined;
  }

  /** A timeline's distinct positions (each with the time listed last) and where each one's contiguous run ends. */
  private runsOf(timeline: number): { pos: ArrayLike<bigint>; at: ArrayLike<number>; runEnd: Uint32Array } | undefined {
    const line = this.lines.get(timeline);
    if (line === undefined) return undefined;
    if (line.runs !== undefined) return line.runs;
    const sorted = line.list.sorted();
    const keep: number[] = [];
    for (let i = 0; i < sorted.pos.length; i++) {
      if (i + 1 < sorted.pos.length && sorted.pos[i + 1] === sorted.pos[i]) continue; // a later listing of the same position wins
      keep.push(i);
    }
    const pos = keep.length === sorted.pos.length ? sorted.pos : keep.map((i) => sorted.pos[i]!);
    const at = keep.length === sorted.pos.length ? sorted.at : Float64Array.from(keep, (i) => sorted.at[i]!);
    const runEnd = new Uint32Array(pos.length);
    for (let i = pos.length - 1; i >= 0; i--) runEnd[i] = i + 1 < pos.length && pos[i + 1] === pos[i]! + 1n ? runEnd[i + 1]! : i;
    return (line.runs = { pos, at, runEnd });
  }

  /** The last segment of the contiguous run from `segno` on, and its time; undefined when `segno` is not held. */
  runFrom(timeline: number, segno: bigint): { segno: bigint; archivedAt: Date } | undefined {
    const line = this.runsOf(timeline);
    if (line === undefined) return undefined;
    const i = lastIndexOf(line.pos, segno);
    if (i < 0) return undefined;
    const e = line.runEnd[i]!;
    return { segno: line.pos[e]!, archivedAt: new Date(line.at[e]!) };
  }

  /** Whether the timeline holds a segment after `segno`. */
  anyAfter(timeline: number, segno: bigint): boolean {
    const line = this.runsOf(timeline);
    return line !== undefined && line.pos.length > 0 && line.pos[line.pos.length - 1]! > segno;
  }
}

/**
 * A database's WAL lines as planning reads them (core/restore-input.ts
 * segmentsOf, segmentPlace), fed a page of records at a time: PostgreSQL one
 * line; generic one per stream when its snapshots name several (a record of
 * another stream is left out), else one. Only segments are kept, ~20 bytes
 * each. `streams`: the generic database's (streamsOf).
 */
export class WalLines {
  private readonly lines = new Map<string, WalLineIndex>();

  constructor(
    private readonly database: DatabaseRecord,
    private readonly streams: readonly string[],
  ) {}

  add(records: readonly WalRecord[]): void {
    const several = this.database.kind === "generic" && this.streams.length > 1;
    for (const w of records) {
      if (w.kind !== "segment") continue;
      const key = several ? streamOfRecord(w) : "";
      if (key === undefined || (several && !this.streams.includes(key))) continue;
      const place = segmentPlace(this.database, w);
      if (place === undefined) continue;
      let line = this.lines.get(key);
      if (line === undefined) this.lines.set(key, (line = new WalLineIndex()));
      line.add(place.timeline, place.segno, place.at.getTime());
    }
  }

  /** The line restorableWindowsOf reads for `stream` (PostgreSQL: undefined). */
  of(stream: string | undefined): WalLineIndex {
    const key = this.database.kind === "generic" && this.streams.length > 1 ? (stream ?? "") : "";
    return this.lines.get(key) ?? new WalLineIndex();
  }
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
  const index = new WalLineIndex();
  for (const w of input.wal) index.add(w.timeline, w.segno, w.archivedAt.getTime());
  return restorableWindowsOf(input.snapshots, index, input.segmentSize, input.archivedThrough);
}

/** restorableWindows over a WalLineIndex (the same rules, whoever built it). */
export function restorableWindowsOf(snapshots: readonly SnapshotInfo[], index: WalLineIndex, segmentSize: number, archivedThrough?: Date): RestorableWindow[] {
  const windows: RestorableWindow[] = [];
  for (const s of snapshots) {
    const w = windowOf(s, index, segmentSize, archivedThrough);
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

function windowOf(s: SnapshotInfo, index: WalLineIndex, segmentSize: number, archivedThrough: Date | undefined): { from: Date; to: Date } | undefined {
  if (s.kind === "generic") {
    const last = index.runFrom(s.timeline, s.stopLsn + 1n);
    const ends = [s.finishedAt, ...(last ? [last.archivedAt] : [])];
    // A stream whose archive ends with no gap is complete as far as the last whole scan proves.
    const missing = last ? last.segno + 1n : s.stopLsn + 1n;
    if (!index.anyAfter(s.timeline, missing) && archivedThrough) ends.push(archivedThrough);
    return { from: s.finishedAt, to: new Date(Math.max(...ends.map((d) => d.getTime()))) };
  }
  const first = lsnToSegno(s.startLsn, segmentSize);
  const consistent = s.stopLsn > s.startLsn ? lsnToSegno(s.stopLsn - 1n, segmentSize) : first;
  const last = index.runFrom(s.timeline, first);
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
  const tally = new RegionLagTally(region);
  tally.add(wal);
  return tally.result(snapshots, now);
}

/** regionLag over WAL records given a page at a time (memory: a few counters and the latest failure). */
export class RegionLagTally {
  private missing = 0;
  private failed = 0;
  private oldest: string | undefined;
  private lastFailure: { at: string; error?: string | undefined } | undefined;

  constructor(private readonly region: string) {}

  add(wal: readonly WalRecord[]): void {
    for (const w of wal) {
      const r = w.replicas[this.region];
      if (r?.status === "replicated") continue;
      this.missing++;
      if (this.oldest === undefined || w.archivedAt < this.oldest) this.oldest = w.archivedAt;
      if (r?.status !== "failed") continue;
      this.failed++;
      if (this.lastFailure === undefined || r.at > this.lastFailure.at) this.lastFailure = r;
    }
  }

  /** The lag, with the snapshots (few: read whole) counted too. */
  result(snapshots: readonly SnapshotRecord[], now: Date): RegionLag {
    let missingSnapshots = 0;
    let failed = this.failed;
    let last = this.lastFailure;
    for (const s of snapshots) {
      const r = s.replicas[this.region];
      if (r?.status === "replicated") continue;
      missingSnapshots++;
      if (r?.status !== "failed") continue;
      failed++;
      if (last === undefined || r.at > last.at) last = r;
    }
    return {
      missingWal: this.missing,
      missingSnapshots,
      failed,
      ...(last?.error ? { lastError: last.error } : {}),
      lagSeconds: this.oldest === undefined ? 0 : Math.max(0, Math.round((now.getTime() - Date.parse(this.oldest)) / 1000)),
    };
  }
}
