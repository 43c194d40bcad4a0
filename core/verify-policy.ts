/**
 * Which snapshots a scheduled verification run restores (issue #5). Pure:
 * the clock and the random source are parameters.
 *
 * Every run takes, in this order, without repeats, up to the run's size:
 *   1. the newest snapshot (a backup nobody has restored is a hope);
 *   2. the oldest retained snapshot, when it has not been verified for
 *      `oldestEveryDays` (the one a retention bug or bit rot hits first);
 *   3. every snapshot that would otherwise go unverified for longer than the
 *      period: last verified (or, never verified, finished) at least
 *      `periodDays - runIntervalDays` ago — the most overdue first;
 *   4. a random sample of the rest, the longest unverified most likely.
 * The run's size is `maxPerRun`, raised when needed to
 * ceil(retained x runInterval / period) + 2, so that the overdue rule can
 * always keep the promise: every retained snapshot is verified within
 * `periodDays` (the property test simulates a month of it).
 *
 * A level-4 candidate gets a random point-in-time target inside the stretch
 * that snapshot restores: from its end to the next snapshot's end (a later
 * target would be planned from the next snapshot) or the end of the
 * restorable window.
 */
import { parseTime } from "./time.js";

export interface VerifyPolicy {
  /** Every retained snapshot is verified at least once within this many days. */
  periodDays: number;
  /** The oldest retained snapshot is verified at least this often (days). */
  oldestEveryDays: number;
  /** Days between scheduled runs (the EventBridge schedule's rate). */
  runIntervalDays: number;
  /** Candidates per run at least; raised when the period needs more. */
  maxPerRun: number;
  /** Level every candidate is verified at (1-4, each including the ones below). */
  level: VerifyLevel;
}

export type VerifyLevel = 1 | 2 | 3 | 4;

export const DEFAULT_VERIFY_POLICY: VerifyPolicy = { periodDays: 7, oldestEveryDays: 7, runIntervalDays: 1, maxPerRun: 5, level: 4 };

export interface SnapshotVerifyState {
  snapshotId: string;
  finishedAt: Date;
  /** When it last passed or failed a verification (any level). */
  lastVerifiedAt?: Date;
}

export type CandidateReason = "newest" | "oldest" | "overdue" | "sample";

export interface Candidate {
  snapshotId: string;
  level: VerifyLevel;
  reason: CandidateReason;
}

const DAY = 86_400_000;

/** The run's size: at least maxPerRun, and enough for the period whatever the snapshot count. */
export function runSize(retained: number, policy: VerifyPolicy): number {
  return Math.max(policy.maxPerRun, Math.ceil((retained * policy.runIntervalDays) / policy.periodDays) + 2);
}

export function selectCandidates(snapshots: readonly SnapshotVerifyState[], now: Date, policy: VerifyPolicy, random: () => number): Candidate[] {
  if (snapshots.length === 0) return [];
  const byAge = [...snapshots].sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime() || (a.snapshotId < b.snapshotId ? -1 : 1));
  const size = runSize(snapshots.length, policy);
  const picked = new Map<string, CandidateReason>();
  const take = (s: SnapshotVerifyState | undefined, reason: CandidateReason): void => {
    if (s && !picked.has(s.snapshotId) && picked.size < size) picked.set(s.snapshotId, reason);
  };
  const since = (s: SnapshotVerifyState): number => now.getTime() - (s.lastVerifiedAt ?? s.finishedAt).getTime();

  take(byAge.at(-1), "newest");
  const oldest = byAge[0]!;
  if (oldest.lastVerifiedAt === undefined || now.getTime() - oldest.lastVerifiedAt.getTime() >= policy.oldestEveryDays * DAY) take(oldest, "oldest");
  const dueAfter = (policy.periodDays - policy.runIntervalDays) * DAY;
  for (const s of [...byAge].sort((a, b) => since(b) - since(a))) if (since(s) >= dueAfter) take(s, "overdue");
  // Weighted sample without replacement: weight = time since last verified (at least an hour).
  let rest = byAge.filter((s) => !picked.has(s.snapshotId));
  while (picked.size < size && rest.length > 0) {
    const weights = rest.map((s) => Math.max(since(s), 3_600_000));
    let r = random() * weights.reduce((a, b) => a + b, 0);
    let i = 0;
    while (i < rest.length - 1 && r >= weights[i]!) r -= weights[i++]!;
    take(rest[i], "sample");
    rest = rest.filter((_, j) => j !== i);
  }
  return [...picked].map(([snapshotId, reason]) => ({ snapshotId, level: policy.level, reason }));
}

/**
 * The snapshots the policy's promise missed: not verified (never verified:
 * not since they finished) for longer than `periodDays` at `now`. The verify
 * workflow counts them each run (functions/verify/select.ts), and the
 * deployed alarm fires on any (docs/alarms.md).
 */
export function pastVerifyPeriod(snapshots: readonly SnapshotVerifyState[], now: Date, policy: Pick<VerifyPolicy, "periodDays">): SnapshotVerifyState[] {
  const limit = policy.periodDays * DAY;
  return snapshots.filter((s) => now.getTime() - (s.lastVerifiedAt ?? s.finishedAt).getTime() > limit);
}

/**
 * A random target time for a level-4 verification of the snapshot finished
 * at `from`: uniform in [from, to), where `to` is the next snapshot's end or
 * the end of the restorable window, whichever comes first. Undefined when the
 * stretch is empty (restore the snapshot itself).
 */
export function randomTarget(from: Date, to: Date, random: () => number): Date | undefined {
  const span = to.getTime() - from.getTime();
  if (span <= 0) return undefined;
  return new Date(from.getTime() + Math.floor(random() * span));
}

/**
 * The end of the stretch a random level-4 target of a PostgreSQL snapshot is
 * drawn from. PostgreSQL stops at a time target T only on a transaction end
 * (commit or abort) after T and otherwise fails at the end of the archived WAL
 * ("recovery ended before configured recovery target was reached"); archive
 * times say nothing about it (a busy database's archive lags its commits, an
 * idle one's segments are switched with none). So the stretch ends at the
 * latest transaction end ingest found (core/xact-time.ts, `lastXactAt`) in the
 * segments archived after the snapshot finished (`from`) and within its
 * restorable window (`windowTo`), and at `end` (the next snapshot or the
 * window's end) if that comes first; a target drawn strictly before it is
 * always reached. Segments without a recorded time (archived before ingest
 * recorded it, or a rebuilt catalog) add nothing: undefined when no
 * transaction end is known after `from` (restore the snapshot itself).
 */
export function postgresTargetEnd(
  from: Date,
  end: Date,
  windowTo: Date,
  segments: readonly { archivedAt: string; lastXactAt?: string | undefined }[],
): Date | undefined {
  let last: Date | undefined;
  for (const s of segments) {
    if (s.lastXactAt === undefined) continue;
    const archived = new Date(s.archivedAt);
    if (archived <= from || archived > windowTo) continue;
    const t = parseTime(s.lastXactAt, "lastXactAt").date;
    if (t > from && (last === undefined || t > last)) last = t;
  }
  if (last === undefined) return undefined;
  return last < end ? last : end;
}
