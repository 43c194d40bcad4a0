/**
 * The restore planner: given what the catalog knows (snapshots, archived WAL
 * segments, timeline histories, named restore points) and a target, it returns
 * exactly what a restore needs — one snapshot, the WAL segments to replay in
 * order, and the recovery settings — or throws a typed error (core/errors.ts)
 * that names the reason. Pure: no I/O, no clock; the same input gives the same
 * plan. In the spirit of Litestream's `CalcRestorePlan`.
 *
 * Terms. The *path* of the target timeline T is T's history (its history file
 * lists every ancestor and the LSN where the next timeline branched off it)
 * followed by T itself: timeline `tl_i` holds positions [begin_i, end_i).
 * A segment number s is read from the NEWEST timeline of the path whose begin
 * segment is <= s — this is what PostgreSQL's XLogFileReadAnyTLI does, so on a
 * switch at LSN X from timeline A to B, A's segments before the one holding X
 * are read from A and the segment holding X (and everything after) from B.
 * WAL on other timelines, and an ancestor's segments past its switch point,
 * are *off the path*: never planned, only used to detect ambiguity.
 *
 * Rules (PostgreSQL, kind "postgres"):
 *
 * 1. Timeline. `target.timeline` is a number or "latest"; unset means
 *    "latest" = the highest timeline that has archived WAL or a history file
 *    (the highest snapshot timeline when there is neither), passing over a
 *    timeline known only by its history file (no WAL on it) on whose history
 *    no snapshot lies, with a warning (a bare or bogus history file must not
 *    make every restore fail for the timelines that work); a history file
 *    that is no history (`unreadableHistories`) and has no WAL on its
 *    timeline is passed over the same way. Any timeline > 1 needs its
 *    history file: TimelineNotFoundError otherwise; naming a timeline whose
 *    history file is no history is an InvalidInputError naming the file. The plan writes
 *    the resolved NUMBER into recovery_target_timeline, so PostgreSQL replays
 *    exactly the path that was checked here even if a new timeline appears
 *    before the restore runs. Exception, the snapshot target: unset means the
 *    latest timeline when the snapshot lies on its path (so a stop segment that
 *    holds a later switch point is read from the newer timeline, as PostgreSQL
 *    would; the old timeline's copy is usually only a .partial), else the
 *    snapshot's own timeline; an explicit timeline must contain the snapshot
 *    (TargetNotOnTimelineError).
 *
 * 2. Candidate snapshots lie on the path: the snapshot's timeline is on it and
 *    its stopLsn <= the LSN where the path leaves that timeline. Then, by
 *    target: latest — all; time T — finishedAt <= T; LSN L — stopLsn <= L (a
 *    base backup is consistent only from its stop LSN); known restore point —
 *    stopLsn < its LSN (see 6); unknown restore point name — all; snapshot —
 *    that id (UnknownSnapshotError when the catalog does not know it). None:
 *    NoSnapshotBeforeTargetError, naming the target and the oldest snapshot.
 *
 * 3. Choice: the NEWEST candidate (highest stopLsn; positions only grow along a
 *    path) whose WAL is complete from the segment holding its startLsn to the
 *    end the target needs. If the newest cannot, older candidates are tried in
 *    turn and the plan warns which were skipped and why. The brief suggested an
 *    older snapshot can never bridge a gap the newest cannot (it "needs a
 *    superset of the WAL"). That holds for gaps after the newest snapshot's
 *    stop, but not in general: backups overlap — a long base backup (start 1,
 *    stop 10) is "newer" than a short one taken meanwhile (start 5, stop 6),
 *    and a gap at segment 2 blocks only the long one. Likewise, right after a
 *    backup its stop segment may not be archived yet, and "latest" must still
 *    work from the previous snapshot. Every plan returned is valid on its own,
 *    so trying older candidates is always safe; when none works, the error is
 *    the NEWEST candidate's (a gap error names the first missing run).
 *
 * 4. WAL needed, from the segment holding snapshot.startLsn, in replay order:
 *    - at least through the segment holding stopLsn - 1 (stopLsn is the end of
 *      the backup's WAL, as pg_backup_stop reports it): replay must reach
 *      consistency;
 *    - latest: through the last segment archived on the path; a gap anywhere
 *      before it is an error (a silent stop at the gap would lose the WAL
 *      after it — restore to an LSN before the gap to accept that);
 *    - LSN L: through the segment holding L, plus the next segment when it is
 *      archived: PostgreSQL stops after the first record that STARTS at or
 *      after L, and that record may begin in, or run into, the next segment
 *      (e.g. L just after a pg_switch_wal()). Its absence is not an error;
 *    - known restore point: through the segment holding its LSN - 1 (the LSN
 *      pg_create_restore_point returns is the end of its record), and
 *      recovery_target_name — PostgreSQL stops right after that record;
 *    - unknown restore point name: like latest, with recovery_target_name and a
 *      warning that the name is unverified (PostgreSQL stops at it if replay
 *      meets it after the consistent point, or fails with "recovery ended
 *      before configured recovery target was reached");
 *    - time T: through the first segment, at or after the stop segment, whose
 *      archivedAt > T. A HEURISTIC: the catalog knows when a segment was
 *      archived, not the commit times inside it. With prompt archiving, the
 *      first segment archived after T is the one being written at T, so it
 *      holds the records around T. It is not a guaranteed bound: with archive
 *      lag the WAL written at T can sit in a later segment, and PostgreSQL
 *      also reads on until the first commit after T. PostgreSQL stops at T
 *      itself (recovery_target_time); wal-fetch serves any further segment it
 *      asks for from the archive — only cold objects outside the plan would
 *      need a thaw. When no segment on the chain was archived after T, the
 *      archive cannot show it holds T: TargetAfterArchiveEndError;
 *    - snapshot: through the stop segment only, with recovery_target =
 *      'immediate' (stop at the consistent point).
 *    A missing segment inside that range is a WalGapError naming the last
 *    segment archived before it and the first after it, both on the path
 *    ("WAL gap on timeline 1 between 000000010000000000000005 and
 *    000000010000000000000009 (3 segments missing)"). When nothing on the path
 *    is archived after the missing segment the archive simply ends there:
 *    TargetAfterArchiveEndError, naming where it ends.
 *
 * 5. Ambiguity (AmbiguousTargetError):
 *    - a restore point name that occurs more than once on the path (whichever
 *      one PostgreSQL meets first depends on the snapshot; use an LSN target)
 *      — whatever the timeline;
 *    - with NO timeline given (unset, not an explicit "latest"), an LSN or time
 *      target that also exists on another history: off-path WAL (a timeline
 *      that kept going after the path left it — split brain, or the original
 *      history after a point-in-time rollback — or a sibling branch) that
 *      diverged from the path at or before the target and still has WAL there.
 *      For an LSN that is exact: L >= divergence LSN and the branch has
 *      segments at or after L's. For a time it uses archive times, like rule 4:
 *      the branch's last segment was archived at or after T, and the last path
 *      segment before the divergence was archived before T (no such segment:
 *      ambiguous). A routine failover leaves no off-path segments (the old
 *      timeline's last segment is archived as .partial, which is not WAL
 *      here), so it never makes a target ambiguous.
 *    Everything else with several timelines is resolved by rule 1 (latest).
 *
 * 6. Restore points are matched by name among those on the path (timeline on
 *    the path, begin < lsn <= end of that timeline's stretch). A name known
 *    only off the path is TargetNotOnTimelineError (it names the timeline
 *    where the point is). A known point's `lsn` is the value
 *    pg_create_restore_point returned: the END of its WAL record, so the
 *    snapshot must stop strictly before it.
 *
 * Generic file-based databases (kind "generic"), deliberately simple:
 *    one timeline (no history files; the timeline rule of 1 still picks which),
 *    positions are segment numbers: a snapshot's stopLsn is the segno of the
 *    last segment it covers (startLsn is informational) and the snapshot is
 *    consistent by itself. Restore = snapshot + every segment closed at or
 *    before the target, i.e. segments stopLsn+1 .. E, where E is: latest — the
 *    last archived; LSN L — L itself (a segno); known restore point — its lsn
 *    (a segno); time T — the last segment archived at or before T (archivedAt
 *    stands for "closed": the loader passes closedAt when the record has
 *    one); a segment archived after T must exist, as in rule 4 — unless
 *    `archivedThrough` is given: then T must be at or before it, and a stream
 *    whose archive ends before T is complete (it closed nothing more);
 *    snapshot — none. An unknown restore point name is a NotFoundError (no
 *    database process would look for it). No recovery settings
 *    (recoveryTarget undefined): the database replays what it finds on start.
 *    endLsn is the segno of the last segment replayed (undefined when none).
 *
 * Input is validated (InvalidInputError): one database and one kind across
 * snapshots, unique snapshot ids, startLsn <= stopLsn, history files whose
 * timelines increase below their own and whose switch points do not go back,
 * PostgreSQL segment names that match timeline and segno. A segment listed
 * twice is counted once (its earliest archivedAt).
 */
import {
  AmbiguousTargetError,
  InvalidInputError,
  NoSnapshotBeforeTargetError,
  NotFoundError,
  TargetAfterArchiveEndError,
  TargetNotOnTimelineError,
  TimelineNotFoundError,
  UnknownSnapshotError,
  WalGapError,
  type WalvaultError,
} from "./errors.js";
import { formatTime, pgTimestamp, timeFromNs, type PreciseTime } from "./time.js";
import type { TimelineHistoryEntry } from "./timeline.js";
import { assertSegmentSize, formatLsn, historyName, lsnToSegno, segmentEndLsn, segmentName, segmentStartLsn } from "./wal.js";

export type DatabaseKind = "postgres" | "generic";

export interface SnapshotInfo {
  id: string;
  databaseId: string;
  kind: DatabaseKind;
  timeline: number;
  /** PostgreSQL: backup start LSN. Generic: segno where the snapshot began (informational). */
  startLsn: bigint;
  /** PostgreSQL: backup stop LSN (end of the backup's WAL). Generic: segno of the last segment it covers. */
  stopLsn: bigint;
  startedAt: Date;
  finishedAt: Date;
  pinned?: boolean;
}

/** An archived WAL segment (not .partial, .backup or .history). */
export interface WalSegmentInfo {
  timeline: number;
  segno: bigint;
  name: string;
  archivedAt: Date;
}

/** A named restore point: PostgreSQL's pg_create_restore_point result (end of its record); generic: a segno. */
export interface RestorePointInfo {
  name: string;
  lsn: bigint;
  time: Date;
  timeline: number;
}

/** "latest" or a timeline number. */
export type TimelineChoice = "latest" | number;

export type RestoreTargetPoint =
  | { kind: "latest" }
  /** `time` truncated to the millisecond; `subMsNanos` (0..999_999) the nanoseconds past it (core/time.ts). */
  | { kind: "time"; time: Date; subMsNanos?: number }
  | { kind: "lsn"; lsn: bigint }
  | { kind: "name"; name: string }
  | { kind: "snapshot"; id: string };

/** Where to restore to; `timeline` unset = the latest, without committing to it (see rule 5). */
export type RestoreTarget = RestoreTargetPoint & { timeline?: TimelineChoice };

export interface RestorePlanInput {
  snapshots: readonly SnapshotInfo[];
  wal: readonly WalSegmentInfo[];
  /** Parsed history file per timeline (core/timeline.ts). Timeline 1 needs none. */
  histories: ReadonlyMap<number, readonly TimelineHistoryEntry[]>;
  segmentSize: number;
  target: RestoreTarget;
  restorePoints?: readonly RestorePointInfo[];
  /**
   * PostgreSQL: timelines whose archived history file is no history, with
   * why, naming the file (core/timeline.ts parseHistoryFile, read by
   * store/catalog-state.ts). Such a timeline's ancestry is unknown: it
   * is passed over for "latest" like a history file no snapshot lies on
   * (when no WAL is archived on it), and naming it is one clear refusal.
   */
  unreadableHistories?: ReadonlyMap<number, string>;
  /**
   * Generic only: every segment closed before this time is archived (the last
   * complete watch scan, core/generic-wal.ts). When set, a time target must
   * not be later, and a stream whose archive ends before the target simply
   * had nothing closed since (an idle stream), which is not an error.
   */
  archivedThrough?: Date;
}

export interface PlannedSegment {
  timeline: number;
  segno: bigint;
  name: string;
}

/** PostgreSQL recovery settings (postgresql.conf / postgresql.auto.conf), values as text. */
export interface RecoveryTarget {
  recovery_target?: "immediate";
  /** "YYYY-MM-DD HH:MM:SS.ffffff+00": the target truncated to the microsecond (core/time.ts pgTimestamp). */
  recovery_target_time?: string;
  /** "X/Y". */
  recovery_target_lsn?: string;
  recovery_target_name?: string;
  /** The resolved timeline number, as text. */
  recovery_target_timeline: string;
}

export interface RestorePlan {
  kind: DatabaseKind;
  snapshot: SnapshotInfo;
  /** The timeline restored to. */
  targetTimeline: number;
  /** Timelines replay crosses, from the snapshot's to the target's. */
  timelinePath: number[];
  /** Exactly the segments to replay, in replay order (contiguous segnos). */
  wal: PlannedSegment[];
  /** PostgreSQL only; undefined for generic databases. */
  recoveryTarget: RecoveryTarget | undefined;
  /** PostgreSQL: LSN just past the last planned segment. Generic: segno of the last planned segment. */
  endLsn: bigint | undefined;
  warnings: string[];
}

/** Plans a restore; throws a WalvaultError subclass naming why it cannot. */
export function planRestore(input: RestorePlanInput): RestorePlan {
  return new Planner(input).plan();
}

/**
 * The snapshots planRestore() would try for `input`, in the order it tries
 * them (rule 3: newest first), before it looks at any WAL range: what a
 * loader needs to read the WAL from the right position on
 * (store/catalog-state.ts loadPlanningState). Of the WAL it uses only which
 * timelines have segments (one segment per timeline is enough). Throws what
 * planRestore() throws before it tries a snapshot (timeline, target and
 * snapshot-id errors); an empty list where planRestore() would throw
 * NoSnapshotBeforeTargetError.
 */
export function restoreCandidates(input: RestorePlanInput): SnapshotInfo[] {
  return new Planner(input).candidateSnapshots();
}

// ---------------------------------------------------------------------------

interface PathEntry {
  timeline: number;
  /** First LSN on this timeline along the path. */
  begin: bigint;
  /** LSN where the path leaves it (the switch point); undefined for the target timeline. */
  end: bigint | undefined;
}

/** What the target resolved to, once names and ids are looked up. */
type Goal =
  | { kind: "latest" }
  | { kind: "time"; time: Date; precise: PreciseTime }
  | { kind: "lsn"; lsn: bigint }
  | { kind: "point"; point: RestorePointInfo }
  | { kind: "unknownName"; name: string }
  | { kind: "snapshot"; snapshot: SnapshotInfo };

type Attempt = { ok: true; segments: WalSegmentInfo[] } | { ok: false; error: WalvaultError };

const cmpBig = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/** The archived segments that lie on one timeline path, by segno. */
class PathArchive {
  private readonly bySegno = new Map<bigint, WalSegmentInfo>();
  private readonly sorted: bigint[];

  constructor(wal: readonly WalSegmentInfo[], timelineFor: (segno: bigint) => number) {
    for (const w of wal) if (timelineFor(w.segno) === w.timeline) this.bySegno.set(w.segno, w);
    this.sorted = [...this.bySegno.keys()].sort(cmpBig);
  }

  get(segno: bigint): WalSegmentInfo | undefined {
    return this.bySegno.get(segno);
  }

  last(): WalSegmentInfo | undefined {
    const s = this.sorted.at(-1);
    return s === undefined ? undefined : this.bySegno.get(s);
  }

  /** Index of the first sorted segno > segno. */
  private upper(segno: bigint): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! <= segno) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  firstAfter(segno: bigint): WalSegmentInfo | undefined {
    const s = this.sorted[this.upper(segno)];
    return s === undefined ? undefined : this.bySegno.get(s);
  }

  lastBefore(segno: bigint): WalSegmentInfo | undefined {
    const i = this.upper(segno - 1n) - 1;
    const s = i >= 0 ? this.sorted[i] : undefined;
    return s === undefined ? undefined : this.bySegno.get(s);
  }
}

class Planner {
  private readonly kind: DatabaseKind;
  private readonly snapshots: SnapshotInfo[];
  private readonly wal: WalSegmentInfo[];
  private readonly segmentSize: number;
  private readonly target: RestoreTarget;
  private readonly histories: ReadonlyMap<number, readonly TimelineHistoryEntry[]>;
  private readonly restorePoints: readonly RestorePointInfo[];
  private readonly unreadable: ReadonlyMap<number, string>;
  private readonly archivedThrough: Date | undefined;
  private readonly warnings: string[] = [];

  // Set once the timeline is resolved.
  private timeline = 0;
  private path: PathEntry[] = [];
  private archive!: PathArchive;

  constructor(input: RestorePlanInput) {
    this.target = input.target;
    this.segmentSize = input.segmentSize;
    this.histories = input.histories;
    this.restorePoints = input.restorePoints ?? [];
    this.unreadable = input.unreadableHistories ?? new Map();
    this.archivedThrough = input.archivedThrough;
    this.snapshots = [...input.snapshots];
    this.validateTarget();
    this.validateSnapshots();
    if (this.snapshots.length === 0) {
      if (this.target.kind === "snapshot") {
        throw new UnknownSnapshotError(
          `snapshot '${this.target.id}' is not in the catalog, which has no snapshots for this database; list them with 'walvault snapshot list'`,
        );
      }
      throw new NoSnapshotBeforeTargetError(
        `no snapshot exists to restore to ${this.describeTargetInput()}: the catalog has none for this database; take one with 'walvault snapshot push'`,
      );
    }
    this.kind = this.snapshots[0]!.kind;
    if (this.kind === "postgres") assertSegmentSize(this.segmentSize);
    this.validateHistories();
    this.validateRestorePoints();
    this.wal = this.dedupeWal(input.wal);
  }

  plan(): RestorePlan {
    this.resolveTimeline();
    const goal = this.resolveGoal();
    this.checkAmbiguity(goal);
    const candidates = this.candidates(goal);
    if (candidates.length === 0) throw this.noSnapshotError(goal);

    let first: WalvaultError | undefined;
    const skipped: string[] = [];
    for (const snapshot of candidates) {
      const attempt = this.kind === "postgres" ? this.attemptPostgres(snapshot, goal) : this.attemptGeneric(snapshot, goal);
      if (!attempt.ok) {
        first ??= attempt.error;
        skipped.push(`snapshot ${snapshot.id} cannot be used: ${attempt.error.message}`);
        continue;
      }
      if (skipped.length > 0) {
        this.warnings.push(...skipped.map((s) => `${s}; using the older snapshot ${snapshot.id}`));
      }
      return this.result(snapshot, goal, attempt.segments);
    }
    throw first!;
  }

  candidateSnapshots(): SnapshotInfo[] {
    this.resolveTimeline();
    return this.candidates(this.resolveGoal());
  }

  // --- validation -----------------------------------------------------------

  private validateTarget(): void {
    const t = this.target;
    if (t.timeline !== undefined && t.timeline !== "latest" && !(Number.isInteger(t.timeline) && t.timeline >= 1)) {
      throw new InvalidInputError(`timeline ${String(t.timeline)} is not a timeline number (1 or more) or "latest"`);
    }
    if (t.kind === "time" && !(t.time instanceof Date && Number.isFinite(t.time.getTime()))) {
      throw new InvalidInputError(`target time ${String(t.time)} is not a valid date`);
    }
    if (t.kind === "time" && t.subMsNanos !== undefined && !(Number.isInteger(t.subMsNanos) && t.subMsNanos >= 0 && t.subMsNanos < 1_000_000)) {
      throw new InvalidInputError(`target time's sub-millisecond nanoseconds ${String(t.subMsNanos)} are not 0..999999`);
    }
    if (t.kind === "lsn" && (typeof t.lsn !== "bigint" || t.lsn < 0n)) {
      throw new InvalidInputError(`target LSN ${String(t.lsn)} is not a non-negative bigint`);
    }
    if (t.kind === "name" && (typeof t.name !== "string" || t.name === "")) {
      throw new InvalidInputError("target restore point name is empty");
    }
    if (t.kind === "snapshot" && (typeof t.id !== "string" || t.id === "")) {
      throw new InvalidInputError("target snapshot id is empty");
    }
  }

  private validateSnapshots(): void {
    const ids = new Set<string>();
    const first = this.snapshots[0];
    for (const s of this.snapshots) {
      if (ids.has(s.id)) throw new InvalidInputError(`snapshot id '${s.id}' is listed twice`);
      ids.add(s.id);
      if (s.databaseId !== first!.databaseId) {
        throw new InvalidInputError(
          `snapshots of two databases were given ('${first!.databaseId}' and '${s.databaseId}'); a plan is for one database`,
        );
      }
      if (s.kind !== first!.kind) {
        throw new InvalidInputError(`snapshots of kind '${first!.kind}' and '${s.kind}' were given for one database`);
      }
      if (!Number.isInteger(s.timeline) || s.timeline < 1) {
        throw new InvalidInputError(`snapshot ${s.id} has timeline ${s.timeline}, not a timeline number`);
      }
      if (s.startLsn < 0n || s.stopLsn < s.startLsn) {
        throw new InvalidInputError(`snapshot ${s.id} stops (${s.stopLsn}) before it starts (${s.startLsn})`);
      }
      if (!Number.isFinite(s.finishedAt.getTime()) || !Number.isFinite(s.startedAt.getTime())) {
        throw new InvalidInputError(`snapshot ${s.id} has an invalid start or finish time`);
      }
    }
  }

  private validateHistories(): void {
    if (this.kind !== "postgres") return;
    for (const [tl, entries] of this.histories) {
      let prevTl = 0;
      let prevLsn = 0n;
      for (const e of entries) {
        if (!Number.isInteger(e.timeline) || e.timeline <= prevTl || e.timeline >= tl) {
          throw new InvalidInputError(
            `history of timeline ${tl} lists timeline ${e.timeline} out of order (ancestors must increase and stay below ${tl})`,
          );
        }
        if (e.switchLsn < prevLsn) {
          throw new InvalidInputError(
            `history of timeline ${tl}: switch point ${formatLsn(e.switchLsn)} of timeline ${e.timeline} is before ${formatLsn(prevLsn)}`,
          );
        }
        prevTl = e.timeline;
        prevLsn = e.switchLsn;
      }
    }
  }

  private validateRestorePoints(): void {
    for (const rp of this.restorePoints) {
      if (!Number.isInteger(rp.timeline) || rp.timeline < 1 || rp.lsn < 0n) {
        throw new InvalidInputError(`restore point '${rp.name}' has an invalid timeline or LSN`);
      }
    }
  }

  private dedupeWal(wal: readonly WalSegmentInfo[]): WalSegmentInfo[] {
    const byKey = new Map<string, WalSegmentInfo>();
    for (const w of wal) {
      if (!Number.isInteger(w.timeline) || w.timeline < 1 || typeof w.segno !== "bigint" || w.segno < 0n) {
        throw new InvalidInputError(`WAL segment '${w.name}' has an invalid timeline or segment number`);
      }
      if (!Number.isFinite(w.archivedAt.getTime())) {
        throw new InvalidInputError(`WAL segment '${w.name}' has an invalid archive time`);
      }
      if (this.kind === "postgres" && w.name !== segmentName(w.timeline, w.segno, this.segmentSize)) {
        throw new InvalidInputError(
          `WAL segment '${w.name}' does not match timeline ${w.timeline} and segment number ${w.segno} (expected ${segmentName(w.timeline, w.segno, this.segmentSize)})`,
        );
      }
      const key = `${w.timeline}/${w.segno}`;
      const seen = byKey.get(key);
      if (seen === undefined || w.archivedAt < seen.archivedAt) byKey.set(key, w);
    }
    return [...byKey.values()];
  }

  // --- timelines ------------------------------------------------------------

  private latestTimeline(): number {
    let max = 0;
    for (const w of this.wal) max = Math.max(max, w.timeline);
    if (this.kind === "postgres") for (const tl of [...this.histories.keys(), ...this.unreadable.keys()]) max = Math.max(max, tl);
    if (max === 0 || this.kind === "generic") for (const s of this.snapshots) max = Math.max(max, s.timeline);
    return Math.max(max, 1);
  }

  /**
   * "latest" for a target other than a snapshot: the latest timeline, except
   * that a timeline known only by its history file (no WAL archived on it)
   * on whose history no snapshot lies is passed over, with a warning: a
   * history file alone (a promotion that wrote nothing yet, or a file that is
   * no history at all) must not make every later restore fail for the
   * timelines a snapshot does reach.
   */
  private latestReachableTimeline(): number {
    const top = this.latestTimeline();
    if (this.kind !== "postgres") return top;
    const known = new Set<number>([
      top,
      1,
      ...this.histories.keys(),
      ...this.unreadable.keys(),
      ...this.wal.map((w) => w.timeline),
      ...this.snapshots.map((s) => s.timeline),
    ]);
    const skipped: number[] = [];
    for (const tl of [...known].filter((x) => x <= top).sort((a, b) => b - a)) {
      const hasWal = this.wal.some((w) => w.timeline === tl);
      if (this.unreadable.has(tl) && !hasWal) {
        // Its ancestry is unknown, so no snapshot is known to lie on it.
        skipped.push(tl);
        continue;
      }
      const path = this.buildPath(tl);
      const reached = this.snapshots.some((s) => this.snapshotOnPath(s, path));
      if (!reached && !hasWal && this.histories.has(tl)) {
        skipped.push(tl);
        continue;
      }
      if (skipped.length > 0) {
        const why = (x: number): string =>
          this.unreadable.get(x) ??
          `${historyName(x)}${this.histories.get(x)!.length === 0 ? ", which names no parent timeline: not a timeline history" : ""}`;
        const what = skipped.map((x) => `${x} (${why(x)})`).join(", ");
        this.warnings.push(
          `timeline${skipped.length === 1 ? "" : "s"} ${what} ${skipped.length === 1 ? "has" : "have"} a history file but no archived WAL, and no snapshot lies on ` +
            `${skipped.length === 1 ? "its" : "their"} history: restoring timeline ${tl}, the latest a snapshot reaches (give --timeline to choose)`,
        );
      }
      return tl;
    }
    return top;
  }

  private buildPath(tl: number): PathEntry[] {
    if (this.kind === "generic") {
      const known = this.wal.some((w) => w.timeline === tl) || this.snapshots.some((s) => s.timeline === tl);
      if (!known) {
        throw new TimelineNotFoundError(
          `timeline ${tl} not found: the archive has no WAL and no snapshot on it (timelines with data: ${this.knownTimelines()})`,
        );
      }
      return [{ timeline: tl, begin: 0n, end: undefined }];
    }
    const unreadable = this.unreadable.get(tl);
    if (unreadable !== undefined) {
      throw new InvalidInputError(
        `timeline ${tl}'s ancestry is unknown: ${unreadable}; ` +
          `push the history from pg_wal of the server that created timeline ${tl}, or restore another timeline (timelines with data: ${this.knownTimelines()})`,
      );
    }
    const entries = this.histories.get(tl);
    if (entries === undefined) {
      if (tl === 1) return [{ timeline: 1, begin: 0n, end: undefined }];
      const hasWal = this.wal.some((w) => w.timeline === tl);
      throw new TimelineNotFoundError(
        `timeline ${tl} has no history file (${historyName(tl)}) in the archive${hasWal ? " although WAL on it is archived" : ""}: ` +
          `without it its ancestry is unknown; push it from pg_wal of the server that created timeline ${tl}, or restore another timeline (timelines with data: ${this.knownTimelines()})`,
      );
    }
    const path: PathEntry[] = [];
    let begin = 0n;
    for (const e of entries) {
      path.push({ timeline: e.timeline, begin, end: e.switchLsn });
      begin = e.switchLsn;
    }
    path.push({ timeline: tl, begin, end: undefined });
    return path;
  }

  private knownTimelines(): string {
    const set = new Set<number>([...this.wal.map((w) => w.timeline), ...this.snapshots.map((s) => s.timeline)]);
    if (this.kind === "postgres") for (const tl of [...this.histories.keys(), ...this.unreadable.keys()]) set.add(tl);
    return [...set].sort((a, b) => a - b).join(", ") || "none";
  }

  /** Timeline a segment is read from on a path (newest whose begin segment <= segno). */
  private static timelineFor(path: readonly PathEntry[], segno: bigint, segmentSize: number): number {
    for (let i = path.length - 1; i > 0; i--) {
      if (lsnToSegno(path[i]!.begin, segmentSize) <= segno) return path[i]!.timeline;
    }
    return path[0]!.timeline;
  }

  private segTimeline(segno: bigint): number {
    return this.kind === "generic" ? this.timeline : Planner.timelineFor(this.path, segno, this.segmentSize);
  }

  private snapshotOnPath(s: SnapshotInfo, path: readonly PathEntry[] = this.path): boolean {
    const e = path.find((p) => p.timeline === s.timeline);
    return e !== undefined && (e.end === undefined || s.stopLsn <= e.end);
  }

  private resolveTimeline(): void {
    const t = this.target;
    let tl: number;
    if (t.kind === "snapshot") {
      const snap = this.findSnapshot(t.id);
      if (t.timeline !== undefined) {
        tl = t.timeline === "latest" ? this.latestTimeline() : t.timeline;
        const path = this.buildPath(tl);
        if (!this.snapshotOnPath(snap, path)) {
          throw new TargetNotOnTimelineError(
            `snapshot ${snap.id} (timeline ${snap.timeline}, consistent at ${this.pos(snap.stopLsn)}) is not on the history of timeline ${tl}` +
              `${this.describeLeave(path, snap.timeline)}; restore it on timeline ${snap.timeline} (or leave the timeline unset)`,
          );
        }
      } else {
        tl = this.latestTimeline();
        try {
          if (!this.snapshotOnPath(snap, this.buildPath(tl))) tl = snap.timeline;
        } catch (e) {
          if (!(e instanceof TimelineNotFoundError)) throw e;
          tl = snap.timeline;
        }
      }
    } else {
      tl = typeof t.timeline === "number" ? t.timeline : this.latestReachableTimeline();
    }
    this.timeline = tl;
    this.path = this.buildPath(tl);
    this.archive = new PathArchive(this.wal, (segno) => this.segTimeline(segno));
  }

  private describeLeave(path: readonly PathEntry[], tl: number): string {
    const e = path.find((p) => p.timeline === tl);
    if (e === undefined) return ` (timeline ${tl} is not among its ancestors)`;
    if (e.end !== undefined) return ` (it leaves timeline ${tl} at ${formatLsn(e.end)})`;
    return "";
  }

  private findSnapshot(id: string): SnapshotInfo {
    const snap = this.snapshots.find((s) => s.id === id);
    if (snap === undefined) {
      const newest = [...this.snapshots].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime()).slice(0, 3);
      throw new UnknownSnapshotError(
        `snapshot '${id}' is not in the catalog (the newest are ${newest.map((s) => s.id).join(", ")}); list them with 'walvault snapshot list'`,
      );
    }
    return snap;
  }

  // --- target ---------------------------------------------------------------

  private resolveGoal(): Goal {
    const t = this.target;
    switch (t.kind) {
      case "latest":
        return { kind: "latest" };
      case "time":
        return { kind: "time", time: t.time, precise: preciseOf(t) };
      case "lsn":
        return { kind: "lsn", lsn: t.lsn };
      case "snapshot":
        return { kind: "snapshot", snapshot: this.findSnapshot(t.id) };
      case "name":
        return this.resolveName(t.name);
    }
  }

  private restorePointOnPath(rp: RestorePointInfo): boolean {
    if (this.kind === "generic") return rp.timeline === this.timeline;
    const e = this.path.find((p) => p.timeline === rp.timeline);
    return e !== undefined && rp.lsn > e.begin && (e.end === undefined || rp.lsn <= e.end);
  }

  private resolveName(name: string): Goal {
    const all = this.restorePoints.filter((rp) => rp.name === name);
    const onPath = all.filter((rp) => this.restorePointOnPath(rp));
    const where = (rps: readonly RestorePointInfo[]): string =>
      rps.map((rp) => `${this.pos(rp.lsn)} on timeline ${rp.timeline} (${rp.time.toISOString()})`).join(", ");
    if (onPath.length > 1) {
      throw new AmbiguousTargetError(
        `restore point '${name}' was created ${onPath.length} times on timeline ${this.timeline}'s history: ${where(onPath)}; ` +
          `restore to one of them by LSN instead`,
      );
    }
    if (onPath.length === 1) return { kind: "point", point: onPath[0]! };
    if (all.length > 0) {
      const tls = [...new Set(all.map((rp) => rp.timeline))].join(" or ");
      throw new TargetNotOnTimelineError(
        `restore point '${name}' is at ${where(all)}, which is not on the history of timeline ${this.timeline}` +
          `${this.describeLeave(this.path, all[0]!.timeline)}; restore with timeline ${tls}`,
      );
    }
    if (this.kind === "generic") {
      throw new NotFoundError(
        `restore point '${name}' is not in the catalog: a generic database restores only to restore points the catalog knows; use a segment position or a time`,
      );
    }
    this.warnings.push(
      `restore point '${name}' is not in the catalog, so it is unverified: replay runs to the end of the archive and PostgreSQL stops at '${name}' ` +
        `only if it meets it after the snapshot's consistent point; 'walvault restore' looks for it in the archived WAL before restoring and refuses a name it does not find`,
    );
    return { kind: "unknownName", name };
  }

  // --- ambiguity ------------------------------------------------------------

  private checkAmbiguity(goal: Goal): void {
    if (this.kind !== "postgres" || this.target.timeline !== undefined) return;
    if (goal.kind !== "lsn" && goal.kind !== "time") return;
    for (const b of this.branches()) {
      const hit =
        goal.kind === "lsn"
          ? goal.lsn >= b.diverge && b.lastSegno >= lsnToSegno(goal.lsn, this.segmentSize)
          : (b.forkTime === undefined || b.forkTime < goal.time) && goal.time <= b.lastArchivedAt;
      if (!hit) continue;
      throw new AmbiguousTargetError(
        `${this.describeGoal(goal)} exists on two histories: timeline ${this.timeline} (the latest) and timeline ${b.timeline}, ` +
          `whose WAL goes on after the two diverge at ${formatLsn(b.diverge)} (archived up to ${b.lastName} at ${b.lastArchivedAt.toISOString()}); ` +
          `restore with an explicit timeline: ${this.timeline} or ${b.timeline}`,
      );
    }
  }

  /** Off-path WAL per timeline: where it diverges from the path and how far it goes. */
  private branches(): Array<{
    timeline: number;
    diverge: bigint;
    forkTime: Date | undefined;
    lastSegno: bigint;
    lastName: string;
    lastArchivedAt: Date;
  }> {
    const off = new Map<number, WalSegmentInfo[]>();
    for (const w of this.wal) {
      if (this.segTimeline(w.segno) === w.timeline) continue;
      const list = off.get(w.timeline) ?? [];
      list.push(w);
      off.set(w.timeline, list);
    }
    const out = [];
    for (const [tl, segs] of off) {
      segs.sort((a, b) => cmpBig(a.segno, b.segno));
      const diverge = this.divergence(tl, segs[0]!.segno);
      const before = this.archive.lastBefore(lsnToSegno(diverge, this.segmentSize));
      let last = segs[0]!;
      for (const s of segs) if (s.archivedAt > last.archivedAt) last = s;
      out.push({
        timeline: tl,
        diverge,
        forkTime: before?.archivedAt,
        lastSegno: segs.at(-1)!.segno,
        lastName: last.name,
        lastArchivedAt: last.archivedAt,
      });
    }
    return out.sort((a, b) => a.timeline - b.timeline);
  }

  /** First LSN where timeline tl's history differs from the path. */
  private divergence(tl: number, firstOffSegno: bigint): bigint {
    const onPath = this.path.find((p) => p.timeline === tl);
    if (onPath?.end !== undefined) return onPath.end;
    if (tl !== 1 && !this.histories.has(tl)) return segmentStartLsn(firstOffSegno, this.segmentSize);
    const other = this.buildPath(tl);
    const at = (path: readonly PathEntry[], lsn: bigint): number =>
      path.find((p) => p.begin <= lsn && (p.end === undefined || lsn < p.end))?.timeline ?? path.at(-1)!.timeline;
    const points = [0n, ...[...this.path, ...other].flatMap((p) => (p.end === undefined ? [] : [p.end]))].sort(cmpBig);
    for (const lsn of points) if (at(this.path, lsn) !== at(other, lsn)) return lsn;
    return 0n;
  }

  // --- candidates -----------------------------------------------------------

  private candidates(goal: Goal): SnapshotInfo[] {
    const onPath = this.snapshots.filter((s) => this.snapshotOnPath(s));
    const fits = (s: SnapshotInfo): boolean => {
      switch (goal.kind) {
        case "latest":
        case "unknownName":
          return true;
        case "time":
          return s.finishedAt <= goal.time;
        case "lsn":
          return s.stopLsn <= goal.lsn;
        case "point":
          return this.kind === "postgres" ? s.stopLsn < goal.point.lsn : s.stopLsn <= goal.point.lsn;
        case "snapshot":
          return s.id === goal.snapshot.id;
      }
    };
    return onPath
      .filter(fits)
      .sort((a, b) => cmpBig(b.stopLsn, a.stopLsn) || b.finishedAt.getTime() - a.finishedAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  private noSnapshotError(goal: Goal): WalvaultError {
    const onPath = this.snapshots.filter((s) => this.snapshotOnPath(s));
    if (onPath.length === 0) {
      const tls = [...new Set(this.snapshots.map((s) => s.timeline))].sort((a, b) => a - b).join(", ");
      return new NoSnapshotBeforeTargetError(
        `no snapshot can restore to ${this.describeGoal(goal)}: none of the ${this.snapshots.length} snapshot(s) (on timeline ${tls}) ` +
          `lies on the history of timeline ${this.timeline}${this.describePath()}; take a snapshot on timeline ${this.timeline} or restore another timeline`,
      );
    }
    const oldest = [...onPath].sort((a, b) => cmpBig(a.stopLsn, b.stopLsn) || a.finishedAt.getTime() - b.finishedAt.getTime())[0]!;
    return new NoSnapshotBeforeTargetError(
      `no snapshot is consistent at or before ${this.describeGoal(goal)}: the oldest on timeline ${this.timeline}'s history, ${oldest.id}, ` +
        `finished at ${oldest.finishedAt.toISOString()} and is consistent from ${this.pos(oldest.stopLsn)}; choose a later target`,
    );
  }

  private describePath(): string {
    if (this.path.length < 2) return "";
    return ` (${this.path.map((p) => (p.end === undefined ? `${p.timeline}` : `${p.timeline} until ${formatLsn(p.end)}`)).join(", then ")})`;
  }

  // --- WAL chains -----------------------------------------------------------

  /** Segments from..to on the path, or the first missing segno. */
  private chain(from: bigint, to: bigint): { segments: WalSegmentInfo[]; missing?: bigint } {
    const segments: WalSegmentInfo[] = [];
    for (let s = from; s <= to; s++) {
      const seg = this.archive.get(s);
      if (seg === undefined) return { segments, missing: s };
      segments.push(seg);
    }
    return { segments };
  }

  private attemptPostgres(snap: SnapshotInfo, goal: Goal): Attempt {
    const size = this.segmentSize;
    const from = lsnToSegno(snap.startLsn, size);
    const consistent = snap.stopLsn > snap.startLsn ? lsnToSegno(snap.stopLsn - 1n, size) : from;
    const upTo = (to: bigint): Attempt => {
      const end = to > consistent ? to : consistent;
      const r = this.chain(from, end);
      return r.missing === undefined ? { ok: true, segments: r.segments } : { ok: false, error: this.missingError(snap, goal, r.missing, consistent) };
    };
    switch (goal.kind) {
      case "latest":
      case "unknownName":
        return upTo(this.archive.last()?.segno ?? consistent);
      case "snapshot":
        return upTo(consistent);
      case "point":
        return upTo(lsnToSegno(goal.point.lsn - 1n, size));
      case "lsn": {
        const attempt = upTo(lsnToSegno(goal.lsn, size));
        if (attempt.ok) {
          const next = this.archive.get(attempt.segments.at(-1)!.segno + 1n);
          if (next !== undefined) attempt.segments.push(next);
        }
        return attempt;
      }
      case "time": {
        const segments: WalSegmentInfo[] = [];
        for (let s = from; ; s++) {
          const seg = this.archive.get(s);
          if (seg === undefined) return { ok: false, error: this.missingError(snap, goal, s, consistent) };
          segments.push(seg);
          if (s >= consistent && seg.archivedAt > goal.time) return { ok: true, segments };
        }
      }
    }
  }

  private attemptGeneric(snap: SnapshotInfo, goal: Goal): Attempt {
    const from = snap.stopLsn + 1n;
    const upTo = (to: bigint): Attempt => {
      const r = this.chain(from, to);
      return r.missing === undefined ? { ok: true, segments: r.segments } : { ok: false, error: this.missingError(snap, goal, r.missing, from - 1n) };
    };
    switch (goal.kind) {
      case "latest":
      case "unknownName":
        return upTo(this.archive.last()?.segno ?? snap.stopLsn);
      case "snapshot":
        return { ok: true, segments: [] };
      case "point":
        return upTo(goal.point.lsn);
      case "lsn":
        return upTo(goal.lsn);
      case "time": {
        const through = this.archivedThrough;
        if (through !== undefined && goal.time > through) {
          return {
            ok: false,
            error: new TargetAfterArchiveEndError(
              `${this.describeGoal(goal)} is later than the archive is known complete: every segment closed before ${through.toISOString()} ` +
                `(the last complete watch scan) is archived, later ones may not be yet; choose an earlier time, restore the latest WAL, or wait for the next scan`,
            ),
          };
        }
        const segments: WalSegmentInfo[] = [];
        for (let s = from; ; s++) {
          const seg = this.archive.get(s);
          if (seg === undefined) {
            // Complete through the target and nothing archived after: the stream closed nothing more by then.
            if (through !== undefined && this.archive.firstAfter(s) === undefined) return { ok: true, segments };
            return { ok: false, error: this.missingError(snap, goal, s, from - 1n) };
          }
          if (seg.archivedAt > goal.time) return { ok: true, segments };
          segments.push(seg);
        }
      }
    }
  }

  /** The error for a missing segment: a gap when WAL is archived after it, else the end of the archive. */
  private missingError(snap: SnapshotInfo, goal: Goal, missing: bigint, consistentSeg: bigint): WalvaultError {
    const prev = this.archive.lastBefore(missing);
    const next = this.archive.firstAfter(missing);
    const isPg = this.kind === "postgres";
    if (next !== undefined) {
      const firstTl = this.segTimeline(missing);
      const lastTl = this.segTimeline(next.segno - 1n);
      const tlText = firstTl === lastTl ? `timeline ${firstTl}` : `timelines ${firstTl} to ${lastTl}`;
      const count = next.segno - (prev === undefined ? missing : prev.segno + 1n);
      const plural = count === 1n ? "segment" : "segments";
      const head =
        prev !== undefined
          ? `WAL gap on ${tlText} between ${prev.name} and ${next.name} (${count} ${plural} missing)`
          : `WAL gap on ${tlText}: nothing is archived before ${next.name} from ${this.segLabel(missing)} on (${count} ${plural} missing)`;
      const before = isPg ? formatLsn(segmentStartLsn(missing, this.segmentSize)) : `segment position ${missing}`;
      return new WalGapError(
        `${head}: snapshot ${snap.id} cannot reach ${this.describeGoal(goal)}; restore to a target before ${before}, ` +
          `or push the missing segments if the database still has them${isPg ? " in pg_wal" : ""}`,
      );
    }
    const ends =
      prev === undefined
        ? `nothing is archived on timeline ${this.timeline}'s history at or before ${this.segLabel(missing)}`
        : `the archive on timeline ${this.timeline}'s history ends with ${prev.name} (WAL up to ${this.pos(isPg ? segmentEndLsn(prev.segno, this.segmentSize) : prev.segno)}, archived ${prev.archivedAt.toISOString()})`;
    if (isPg && missing <= consistentSeg) {
      return new TargetAfterArchiveEndError(
        `snapshot ${snap.id} becomes consistent only at ${formatLsn(snap.stopLsn)}, in ${this.segLabel(consistentSeg)}, but ${ends}; ` +
          `wait until the archive catches up, or restore from an earlier snapshot`,
      );
    }
    const hint =
      goal.kind === "time"
        ? `restore to the latest WAL instead, or wait until WAL written after ${formatTime(goal.precise)} is archived`
        : `choose an earlier target, or wait until the archive catches up`;
    const what = goal.kind === "time" ? `is later than the last archived WAL: ${ends}` : `is after the end of the archive: ${ends}`;
    return new TargetAfterArchiveEndError(`${this.describeGoal(goal)} ${what}; ${hint}`);
  }

  // --- output ---------------------------------------------------------------

  private result(snapshot: SnapshotInfo, goal: Goal, segments: readonly WalSegmentInfo[]): RestorePlan {
    const idx = this.path.findIndex((p) => p.timeline === snapshot.timeline);
    const wal = segments.map((s) => ({ timeline: s.timeline, segno: s.segno, name: s.name }));
    const last = wal.at(-1);
    let endLsn: bigint | undefined;
    if (last !== undefined) endLsn = this.kind === "postgres" ? segmentEndLsn(last.segno, this.segmentSize) : last.segno;
    return {
      kind: this.kind,
      snapshot,
      targetTimeline: this.timeline,
      timelinePath: this.path.slice(Math.max(idx, 0)).map((p) => p.timeline),
      wal,
      recoveryTarget: this.kind === "postgres" ? this.recoveryTarget(goal) : undefined,
      endLsn,
      warnings: [...this.warnings],
    };
  }

  private recoveryTarget(goal: Goal): RecoveryTarget {
    const recovery_target_timeline = String(this.timeline);
    switch (goal.kind) {
      case "latest":
        return { recovery_target_timeline };
      case "time":
        return { recovery_target_time: pgTimestamp(goal.precise), recovery_target_timeline };
      case "lsn":
        return { recovery_target_lsn: formatLsn(goal.lsn), recovery_target_timeline };
      case "point":
        return { recovery_target_name: goal.point.name, recovery_target_timeline };
      case "unknownName":
        return { recovery_target_name: goal.name, recovery_target_timeline };
      case "snapshot":
        return { recovery_target: "immediate", recovery_target_timeline };
    }
  }

  // --- wording --------------------------------------------------------------

  /** A position as users see it: an LSN for PostgreSQL, a segment number for generic databases. */
  private pos(lsn: bigint): string {
    return this.kind === "postgres" ? `LSN ${formatLsn(lsn)}` : `segment position ${lsn}`;
  }

  private segLabel(segno: bigint): string {
    return this.kind === "postgres" ? segmentName(this.segTimeline(segno), segno, this.segmentSize) : `segment position ${segno}`;
  }

  private describeGoal(goal: Goal): string {
    switch (goal.kind) {
      case "latest":
        return `the latest WAL on timeline ${this.timeline}`;
      case "time":
        return `time ${formatTime(goal.precise)}`;
      case "lsn":
        return this.pos(goal.lsn);
      case "point":
        return `restore point '${goal.point.name}' (${this.pos(goal.point.lsn)} on timeline ${goal.point.timeline})`;
      case "unknownName":
        return `restore point '${goal.name}'`;
      case "snapshot":
        return `snapshot ${goal.snapshot.id}'s consistent point (${this.pos(goal.snapshot.stopLsn)})`;
    }
  }

  /** The target before it is resolved (used before the database kind is known). */
  private describeTargetInput(): string {
    const t = this.target;
    switch (t.kind) {
      case "latest":
        return "the latest WAL";
      case "time":
        return `time ${formatTime(preciseOf(t))}`;
      case "lsn":
        return `LSN ${formatLsn(t.lsn)}`;
      case "name":
        return `restore point '${t.name}'`;
      case "snapshot":
        return `snapshot '${t.id}'`;
    }
  }
}

/** The full-precision time of a time target. */
function preciseOf(t: { time: Date; subMsNanos?: number }): PreciseTime {
  return timeFromNs(BigInt(t.time.getTime()) * 1_000_000n + BigInt(t.subMsNanos ?? 0));
}
