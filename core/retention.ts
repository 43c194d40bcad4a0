/**
 * Retention that never breaks a restore (issue #6). Pure: the plan is computed
 * from the dependency graph — snapshot → its chunks, snapshot → the WAL it
 * needs to become consistent, recovery window → the WAL from the snapshot that
 * starts it — and shown before anything is deleted.
 *
 * Snapshots kept (each with its reasons):
 *   - pinned ("keep forever");
 *   - GFS by snapshot finish time (UTC): the newest snapshot of each of the
 *     last `daily` days that have one, of the last `weekly` ISO weeks, of the
 *     last `monthly` months;
 *   - the recovery window: PITR to any point in the last `recoveryWindowDays`
 *     needs the newest snapshot finished at or before the window's start (or,
 *     when none is that old, the oldest snapshot: the window then starts at it);
 *   - at least `minSnapshots` (default 2): the newest ones fill up.
 * WAL kept:
 *   - from the window's base snapshot onward, everything (every point in the
 *     window restorable, whichever snapshot the planner picks);
 *   - for every other kept snapshot, PostgreSQL: the segments from its start
 *     through its consistent point (it stays restorable by itself); generic:
 *     none (a generic snapshot is consistent by itself);
 *   - history files always (tiny, and timelines need them);
 *   - the archive's tail: everything from the newest snapshot onward, and
 *     everything when there is no snapshot yet (a snapshot being taken right
 *     now needs the WAL from its start, which no record names yet; a
 *     scheduled run must never empty the archive of a new database).
 * Everything else is deleted: snapshots not kept, WAL segments not kept.
 * Chunks are garbage-collected separately (mark and sweep over the manifests
 * of kept snapshots, with a grace period; see planChunkSweep).
 */
import { InvalidInputError } from "./errors.js";
import type { SnapshotInfo, WalSegmentInfo } from "./restore-plan.js";
import { lsnToSegno } from "./wal.js";

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
  /** PITR to any point in the last this many days. 0: no window (GFS snapshots only). */
  recoveryWindowDays: number;
  /** Never fewer snapshots than this (default 2). */
  minSnapshots?: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { daily: 7, weekly: 4, monthly: 6, recoveryWindowDays: 7, minSnapshots: 2 };

export type KeepReason = "pinned" | "daily" | "weekly" | "monthly" | "recovery-window" | "minimum";

export interface RetentionPlan {
  /** Start of the recovery window (now - days); undefined without a window. */
  windowStart?: Date;
  /** The snapshot whose WAL onward is kept for the window. */
  windowBase?: string;
  keep: { snapshotId: string; reasons: KeepReason[] }[];
  deleteSnapshots: { snapshotId: string; finishedAt: Date }[];
  /** WAL segments to delete, by name (each with its timeline and position): those of `wal` in deleteRanges. */
  deleteWal: WalSegmentInfo[];
  keepWal: number;
  /**
   * The WAL positions deleted (PostgreSQL: segment numbers, on every
   * timeline; generic: positions in the stream planned), sorted and
   * disjoint: what the kept spans leave free below the kept tail. At most
   * one more range than kept snapshots, whatever the WAL: a plan can be
   * carried out range by range without listing the archive.
   */
  deleteRanges: PositionRange[];
}

/** WAL positions from `from` through `through`, both included. */
export interface PositionRange {
  from: bigint;
  through: bigint;
}

const DAY = 86_400_000;

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / DAY + 1) / 7);
  return `${year}-W${week}`;
}

export function assertPolicy(p: RetentionPolicy): void {
  for (const k of ["daily", "weekly", "monthly", "recoveryWindowDays"] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 0) throw new InvalidInputError(`retention ${k} must be a whole number >= 0, not ${p[k]}`);
  }
  if (p.minSnapshots !== undefined && (!Number.isInteger(p.minSnapshots) || p.minSnapshots < 1)) {
    throw new InvalidInputError(`retention minSnapshots must be at least 1, not ${p.minSnapshots}`);
  }
}

/**
 * The policy in force: `overrides` (a run's flags or workflow input) over the
 * database's own policy (DatabaseRecord.retention) over DEFAULT_RETENTION;
 * minSnapshots defaults to 2. Checked (assertPolicy).
 */
export function effectivePolicy(base: RetentionPolicy | undefined, overrides: Partial<RetentionPolicy> = {}): RetentionPolicy {
  const b = base ?? DEFAULT_RETENTION;
  const p: RetentionPolicy = {
    daily: overrides.daily ?? b.daily,
    weekly: overrides.weekly ?? b.weekly,
    monthly: overrides.monthly ?? b.monthly,
    recoveryWindowDays: overrides.recoveryWindowDays ?? b.recoveryWindowDays,
    minSnapshots: overrides.minSnapshots ?? b.minSnapshots ?? 2,
  };
  assertPolicy(p);
  return p;
}

export function planRetention(input: { snapshots: readonly SnapshotInfo[]; wal: readonly WalSegmentInfo[]; segmentSize: number; policy: RetentionPolicy; now: Date }): RetentionPlan {
  const { policy, now } = input;
  assertPolicy(policy);
  const snaps = [...input.snapshots].sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime() || (a.id < b.id ? -1 : 1));
  const reasons = new Map<string, Set<KeepReason>>();
  const keep = (s: SnapshotInfo | undefined, why: KeepReason): void => {
    if (!s) return;
    const r = reasons.get(s.id) ?? new Set<KeepReason>();
    r.add(why);
    reasons.set(s.id, r);
  };
  for (const s of snaps) if (s.pinned) keep(s, "pinned");
  const gfs = (n: number, bucket: (d: Date) => string, why: KeepReason): void => {
    if (n === 0) return;
    const newestPer = new Map<string, SnapshotInfo>();
    for (const s of snaps) newestPer.set(bucket(s.finishedAt), s); // ascending: the last one wins
    [...newestPer.values()].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime()).slice(0, n).forEach((s) => keep(s, why));
  };
  gfs(policy.daily, (d) => d.toISOString().slice(0, 10), "daily");
  gfs(policy.weekly, isoWeek, "weekly");
  gfs(policy.monthly, (d) => d.toISOString().slice(0, 7), "monthly");

  let windowStart: Date | undefined;
  let windowBase: SnapshotInfo | undefined;
  if (policy.recoveryWindowDays > 0 && snaps.length > 0) {
    windowStart = new Date(now.getTime() - policy.recoveryWindowDays * DAY);
    windowBase = [...snaps].reverse().find((s) => s.finishedAt <= windowStart!) ?? snaps[0];
    keep(windowBase, "recovery-window");
  }
  const min = policy.minSnapshots ?? 2;
  for (const s of [...snaps].reverse()) {
    if (reasons.size >= min) break;
    if (!reasons.has(s.id)) keep(s, "minimum");
  }

  // WAL kept (see the file comment): from the window base on, the archive's tail (from the newest snapshot
  // on; all of it without a snapshot), each other kept PostgreSQL snapshot's own span. The rest goes.
  const kept = snaps.filter((s) => reasons.has(s.id));
  const from = (s: SnapshotInfo): bigint => (s.kind === "postgres" ? lsnToSegno(s.startLsn, input.segmentSize) : s.stopLsn + 1n);
  const spans: { from: bigint; through?: bigint }[] = [];
  if (windowBase) spans.push({ from: from(windowBase) });
  const newest = snaps.at(-1);
  spans.push({ from: newest === undefined ? 0n : from(newest) });
  for (const s of kept) {
    if (s.kind !== "postgres") continue;
    const first = lsnToSegno(s.startLsn, input.segmentSize);
    spans.push({ from: first, through: s.stopLsn > s.startLsn ? lsnToSegno(s.stopLsn - 1n, input.segmentSize) : first });
  }
  const deleteRanges = freeBelow(spans);
  const deleteWal = input.wal.filter((w) => inRanges(deleteRanges, w.segno));
  return {
    ...(windowStart ? { windowStart } : {}),
    ...(windowBase ? { windowBase: windowBase.id } : {}),
    keep: kept.map((s) => ({ snapshotId: s.id, reasons: [...reasons.get(s.id)!] })),
    deleteSnapshots: snaps.filter((s) => !reasons.has(s.id)).map((s) => ({ snapshotId: s.id, finishedAt: s.finishedAt })),
    deleteWal,
    keepWal: input.wal.length - deleteWal.length,
    deleteRanges,
  };
}

/** The positions from 0 that no span covers (one span is open-ended: everything before it, less the closed spans). */
function freeBelow(spans: readonly { from: bigint; through?: bigint }[]): PositionRange[] {
  const out: PositionRange[] = [];
  let next = 0n;
  for (const s of [...spans].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0))) {
    if (s.from > next) out.push({ from: next, through: s.from - 1n });
    if (s.through === undefined) return out;
    if (s.through + 1n > next) next = s.through + 1n;
  }
  return out;
}

/** Whether `position` lies in one of `ranges` (sorted, disjoint). */
export function inRanges(ranges: readonly PositionRange[], position: bigint): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = ranges[mid]!;
    if (position < r.from) hi = mid - 1;
    else if (position > r.through) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The positions in both `a` and `b` (each sorted and disjoint): what a shown plan and a fresh one both delete. */
export function intersectRanges(a: readonly PositionRange[], b: readonly PositionRange[]): PositionRange[] {
  const out: PositionRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const from = x.from > y.from ? x.from : y.from;
    const through = x.through < y.through ? x.through : y.through;
    if (from <= through) out.push({ from, through });
    if (x.through < y.through) i++;
    else j++;
  }
  return out;
}

/**
 * Chunk garbage collection, mark and sweep: a chunk referenced by no kept
 * snapshot's manifest may go, unless it was recorded less than `graceMs` ago
 * (a snapshot being uploaded right now references chunks no manifest names
 * yet: they must survive until its manifest is recorded or the grace ends).
 */
export function planChunkSweep(
  chunks: readonly { sha256: string; recordedAt: Date }[],
  referenced: ReadonlySet<string>,
  now: Date,
  graceMs: number,
): { sweep: string[]; fresh: string[] } {
  const sweep: string[] = [];
  const fresh: string[] = [];
  for (const c of chunks) {
    if (referenced.has(c.sha256)) continue;
    if (now.getTime() - c.recordedAt.getTime() < graceMs) fresh.push(c.sha256);
    else sweep.push(c.sha256);
  }
  return { sweep, fresh };
}
