import { describe, expect, it } from "vitest";
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
} from "../../core/errors.js";
import {
  planRestore,
  restoreCandidates,
  type RestorePlan,
  type RestorePlanInput,
  type RestorePointInfo,
  type RestoreTarget,
  type SnapshotInfo,
  type WalSegmentInfo,
} from "../../core/restore-plan.js";
import type { TimelineHistoryEntry } from "../../core/timeline.js";
import { lsnToSegno, segmentName } from "../../core/wal.js";

// --- fixtures ---------------------------------------------------------------
// Time model: segment s of any timeline is written during minute s-1..s and
// archived at minute s (prompt archiving), unless a test says otherwise.

const SIZE = 16 * 1024 * 1024;
const T0 = Date.parse("2024-03-01T00:00:00.000Z");
const at = (minute: number): Date => new Date(T0 + Math.round(minute * 60_000));
const lsnAt = (segno: number, offset = 0): bigint => BigInt(segno) * BigInt(SIZE) + BigInt(offset);

function seg(timeline: number, segno: number, archivedMinute = segno): WalSegmentInfo {
  return { timeline, segno: BigInt(segno), name: segmentName(timeline, BigInt(segno)), archivedAt: at(archivedMinute) };
}

/** Segments from..to (inclusive) of a timeline, except the ones in `missing`. */
function segs(timeline: number, from: number, to: number, missing: readonly number[] = [], minuteOffset = 0): WalSegmentInfo[] {
  const out: WalSegmentInfo[] = [];
  for (let s = from; s <= to; s++) if (!missing.includes(s)) out.push(seg(timeline, s, s + minuteOffset));
  return out;
}

/** A PostgreSQL base backup that starts in segment startSeg and stops in stopSeg. */
function snapshot(id: string, startSeg: number, stopSeg: number, timeline = 1): SnapshotInfo {
  return {
    id,
    databaseId: "orders",
    kind: "postgres",
    timeline,
    startLsn: lsnAt(startSeg, 0x28),
    stopLsn: lsnAt(stopSeg, 0x138),
    startedAt: at(startSeg - 1 + 0.2),
    finishedAt: at(stopSeg - 1 + 0.5),
  };
}

const history = (...entries: Array<[number, bigint]>): TimelineHistoryEntry[] =>
  entries.map(([timeline, switchLsn]) => ({ timeline, switchLsn, reason: "no recovery target specified" }));

function plan(input: Partial<RestorePlanInput> & { target: RestoreTarget }): RestorePlan {
  return planRestore({ snapshots: [], wal: [], histories: new Map(), segmentSize: SIZE, ...input });
}

function failure(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    if (e instanceof Error) return e;
    throw new Error(`threw a non-Error: ${String(e)}`);
  }
  throw new Error("expected the planner to throw, but it returned a plan");
}

const walOf = (p: RestorePlan): string[] => p.wal.map((w) => w.name);
const names = (timeline: number, from: number, to: number): string[] => segs(timeline, from, to).map((s) => s.name);

const A = snapshot("snap-a", 2, 3);
const B = snapshot("snap-b", 6, 7);

// --- target kinds -------------------------------------------------------------

describe("planRestore: latest", () => {
  it("restores the newest snapshot and every segment from its start segment to the end of the archive", () => {
    // Prepare
    const wal = segs(1, 1, 12);
    // Act
    const p = plan({ snapshots: [A, B], wal, target: { kind: "latest" } });
    // Assess
    expect(p.snapshot.id).toBe("snap-b");
    expect(walOf(p)).toEqual(names(1, 6, 12));
    expect(p.endLsn).toBe(lsnAt(13));
    expect(p.timelinePath).toEqual([1]);
    expect(p.targetTimeline).toBe(1);
    expect(p.kind).toBe("postgres");
    expect(p.warnings).toEqual([]);
  });

  it("writes only the resolved timeline number into the recovery settings", () => {
    const p = plan({ snapshots: [A], wal: segs(1, 1, 5), target: { kind: "latest" } });
    expect(p.recoveryTarget).toEqual({ recovery_target_timeline: "1" });
  });

  it("does not depend on the order of the inputs", () => {
    // Prepare
    const wal = segs(1, 1, 12).reverse();
    // Act
    const p = plan({ snapshots: [B, A], wal, target: { kind: "latest" } });
    // Assess
    expect(p.snapshot.id).toBe("snap-b");
    expect(walOf(p)).toEqual(names(1, 6, 12));
  });

  it("counts a segment listed twice once", () => {
    const p = plan({ snapshots: [B], wal: [...segs(1, 1, 9), seg(1, 8, 30)], target: { kind: "latest" } });
    expect(walOf(p)).toEqual(names(1, 6, 9));
  });
});

describe("planRestore: time", () => {
  it("restores the newest snapshot finished at or before the time, through the first segment archived after it", () => {
    // Prepare: T = 08:15 into the hour; segment 9 is the first archived after it (minute 9)
    const target: RestoreTarget = { kind: "time", time: at(8.25) };
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target });
    // Assess
    expect(p.snapshot.id).toBe("snap-b");
    expect(walOf(p)).toEqual(names(1, 6, 9));
    expect(p.recoveryTarget).toEqual({ recovery_target_time: "2024-03-01 00:08:15.000000+00", recovery_target_timeline: "1" });
    expect(p.endLsn).toBe(lsnAt(10));
  });

  it("keeps a nanosecond target to PostgreSQL's microsecond, truncated, and compares it exactly with archive times", () => {
    // Prepare: one nanosecond before segment 9's archive time, and that time plus 999 ns
    const nine = at(9);
    const before: RestoreTarget = { kind: "time", time: new Date(nine.getTime() - 1), subMsNanos: 999_999 };
    const after: RestoreTarget = { kind: "time", time: nine, subMsNanos: 999 };
    // Act
    const p1 = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: before });
    const p2 = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: after });
    // Assess: segment 9 was archived after the first target, at-or-before the second
    expect(walOf(p1)).toEqual(names(1, 6, 9));
    expect(walOf(p2)).toEqual(names(1, 6, 10));
    expect(p1.recoveryTarget?.recovery_target_time).toBe("2024-03-01 00:08:59.999999+00");
    expect(p2.recoveryTarget?.recovery_target_time).toBe("2024-03-01 00:09:00.000000+00");
  });

  it("skips a newer snapshot that finished after the target time", () => {
    // Prepare: snap-b finished at minute 6.5
    const target: RestoreTarget = { kind: "time", time: at(5.5) };
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target });
    // Assess
    expect(p.snapshot.id).toBe("snap-a");
    expect(walOf(p)).toEqual(names(1, 2, 6));
  });

  it("includes the segment archived exactly at the target time and the one archived after it", () => {
    const p = plan({ snapshots: [A], wal: segs(1, 1, 12), target: { kind: "time", time: at(5) } });
    expect(walOf(p)).toEqual(names(1, 2, 6));
  });

  it("replays at least to the snapshot's stop segment even when an earlier one was archived after the time", () => {
    // Prepare: archive lag — segment 5 was archived only at minute 30, after the target and after the backup ended
    const wal = segs(1, 1, 12).map((s) => (s.segno === 5n ? seg(1, 5, 30) : s));
    const late = snapshot("late", 4, 8);
    // Act
    const p = plan({ snapshots: [late], wal, target: { kind: "time", time: at(7.9) } });
    // Assess
    expect(walOf(p)).toEqual(names(1, 4, 8));
  });

  it("uses a snapshot that finished exactly at the target time", () => {
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "time", time: B.finishedAt } });
    expect(p.snapshot.id).toBe("snap-b");
  });
});

describe("planRestore: LSN", () => {
  it("replays through the target's segment and the next one, where the first record at or after the LSN may lie", () => {
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "lsn", lsn: lsnAt(8, 0x400) } });
    // Assess
    expect(p.snapshot.id).toBe("snap-b");
    expect(walOf(p)).toEqual(names(1, 6, 9));
    expect(p.recoveryTarget).toEqual({ recovery_target_lsn: "0/8000400", recovery_target_timeline: "1" });
    expect(p.endLsn).toBe(lsnAt(10));
  });

  it("ends at the target's segment when it is the last one archived", () => {
    const p = plan({ snapshots: [B], wal: segs(1, 1, 12), target: { kind: "lsn", lsn: lsnAt(12, 0x10) } });
    expect(walOf(p)).toEqual(names(1, 6, 12));
  });

  it("uses a snapshot whose stop LSN is the target LSN, and not one that stops after it", () => {
    // Act
    const exact = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "lsn", lsn: B.stopLsn } });
    const before = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "lsn", lsn: B.stopLsn - 1n } });
    // Assess
    expect(exact.snapshot.id).toBe("snap-b");
    expect(before.snapshot.id).toBe("snap-a");
    expect(walOf(before)).toEqual(names(1, 2, 8));
  });
});

describe("planRestore: restore point name", () => {
  const point = (name: string, lsn: bigint, timeline = 1): RestorePointInfo => ({ name, lsn, time: at(7), timeline });

  it("restores to a known restore point by name, with WAL through the segment holding its record", () => {
    // Prepare: the point's record ends at 0/7000200, after snap-b's stop (0/7000138)
    const restorePoints = [point("before_drop", lsnAt(7, 0x200))];
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), restorePoints, target: { kind: "name", name: "before_drop" } });
    // Assess
    expect(p.snapshot.id).toBe("snap-b");
    expect(walOf(p)).toEqual(names(1, 6, 7));
    expect(p.recoveryTarget).toEqual({ recovery_target_name: "before_drop", recovery_target_timeline: "1" });
    expect(p.warnings).toEqual([]);
  });

  it("uses an older snapshot when the restore point lies before the newest one's stop", () => {
    const restorePoints = [point("before_drop", lsnAt(7, 0x100))];
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), restorePoints, target: { kind: "name", name: "before_drop" } });
    expect(p.snapshot.id).toBe("snap-a");
    expect(walOf(p)).toEqual(names(1, 2, 7));
  });

  it("does not need the next segment when the restore point's record ends exactly at a segment boundary", () => {
    const restorePoints = [point("eod", lsnAt(9, 0))];
    const p = plan({ snapshots: [B], wal: segs(1, 1, 8), restorePoints, target: { kind: "name", name: "eod" } });
    expect(walOf(p)).toEqual(names(1, 6, 8));
  });

  it("replays an unknown name to the end of the archive from the newest snapshot and warns that it is unverified", () => {
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "name", name: "nightly" } });
    // Assess
    expect(p.snapshot.id).toBe("snap-b");
    expect(walOf(p)).toEqual(names(1, 6, 12));
    expect(p.recoveryTarget).toEqual({ recovery_target_name: "nightly", recovery_target_timeline: "1" });
    expect(p.warnings).toHaveLength(1);
    expect(p.warnings[0]).toContain("restore point 'nightly' is not in the catalog");
    expect(p.warnings[0]).toContain("unverified");
  });

  it("refuses a name created twice on the path, naming both positions", () => {
    // Prepare
    const restorePoints = [point("deploy", lsnAt(7, 0x200)), point("deploy", lsnAt(9, 0x200))];
    // Act
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), restorePoints, target: { kind: "name", name: "deploy" } }));
    // Assess
    expect(e).toBeInstanceOf(AmbiguousTargetError);
    expect(e.message).toContain("restore point 'deploy' was created 2 times");
    expect(e.message).toContain("LSN 0/7000200");
    expect(e.message).toContain("LSN 0/9000200");
  });

  it("refuses a name known only on a timeline the path does not follow, naming that timeline", () => {
    // Prepare: timeline 2 left timeline 1 at 0/6005000; the point is on timeline 1 after that
    const histories = new Map([[2, history([1, lsnAt(6, 0x5000)])]]);
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 9)];
    const restorePoints = [point("oops", lsnAt(8, 0x10), 1)];
    // Act
    const e = failure(() => plan({ snapshots: [A], wal, histories, restorePoints, target: { kind: "name", name: "oops", timeline: 2 } }));
    // Assess
    expect(e).toBeInstanceOf(TargetNotOnTimelineError);
    expect(e.message).toContain("restore point 'oops' is at LSN 0/8000010 on timeline 1");
    expect(e.message).toContain("leaves timeline 1 at 0/6005000");
    expect(e.message).toContain("restore with timeline 1");
  });

  it("ignores a same-named point on another history when one lies on the path", () => {
    const histories = new Map([[2, history([1, lsnAt(6, 0x5000)])]]);
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 9)];
    const restorePoints = [point("oops", lsnAt(8, 0x10), 1), point("oops", lsnAt(8, 0x10), 2)];
    const p = plan({ snapshots: [A], wal, histories, restorePoints, target: { kind: "name", name: "oops", timeline: 2 } });
    expect(p.wal.map((w) => `${w.timeline}:${w.segno}`)).toEqual(["1:2", "1:3", "1:4", "1:5", "2:6", "2:7", "2:8"]);
  });
});

describe("planRestore: snapshot", () => {
  it("restores to the snapshot's consistent point with only the WAL up to its stop segment", () => {
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "snapshot", id: "snap-a" } });
    // Assess
    expect(p.snapshot.id).toBe("snap-a");
    expect(walOf(p)).toEqual(names(1, 2, 3));
    expect(p.recoveryTarget).toEqual({ recovery_target: "immediate", recovery_target_timeline: "1" });
    expect(p.endLsn).toBe(lsnAt(4));
  });

  it("does not need the segment after a stop LSN that falls exactly on a segment boundary", () => {
    const snap = { ...snapshot("edge", 2, 3), stopLsn: lsnAt(4, 0) };
    const p = plan({ snapshots: [snap], wal: segs(1, 1, 3), target: { kind: "snapshot", id: "edge" } });
    expect(walOf(p)).toEqual(names(1, 2, 3));
  });

  it("throws UnknownSnapshotError naming the id", () => {
    // Act
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "snapshot", id: "snap-z" } }));
    // Assess
    expect(e).toBeInstanceOf(UnknownSnapshotError);
    expect(e.message).toContain("snapshot 'snap-z' is not in the catalog");
  });

  it("throws UnknownSnapshotError when the catalog has no snapshots at all", () => {
    const e = failure(() => plan({ wal: segs(1, 1, 3), target: { kind: "snapshot", id: "snap-a" } }));
    expect(e).toBeInstanceOf(UnknownSnapshotError);
  });

  it("reads a stop segment that holds a later switch point from the newer timeline, as PostgreSQL does", () => {
    // Prepare: the backup stops at 0/6000138; timeline 2 branched at 0/6005000; timeline 1's segment 6 exists only as .partial
    const histories = new Map([[2, history([1, lsnAt(6, 0x5000)])]]);
    const wal = [...segs(1, 1, 5), ...segs(2, 6, 9)];
    // Act
    const p = plan({ snapshots: [snapshot("s", 5, 6)], wal, histories, target: { kind: "snapshot", id: "s" } });
    // Assess
    expect(p.wal).toEqual([
      { timeline: 1, segno: 5n, name: "000000010000000000000005" },
      { timeline: 2, segno: 6n, name: "000000020000000000000006" },
    ]);
    expect(p.recoveryTarget).toEqual({ recovery_target: "immediate", recovery_target_timeline: "2" });
    expect(p.timelinePath).toEqual([1, 2]);
  });

  it("restores a snapshot that is not on the latest timeline's history on its own timeline", () => {
    // Prepare: the snapshot on timeline 1 stops after timeline 2 branched off
    const histories = new Map([[2, history([1, lsnAt(6, 0x5000)])]]);
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 9)];
    // Act
    const p = plan({ snapshots: [snapshot("old", 7, 8)], wal, histories, target: { kind: "snapshot", id: "old" } });
    // Assess
    expect(walOf(p)).toEqual(names(1, 7, 8));
    expect(p.targetTimeline).toBe(1);
  });

  it("refuses an explicit timeline whose history does not contain the snapshot", () => {
    const histories = new Map([[2, history([1, lsnAt(6, 0x5000)])]]);
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 9)];
    const e = failure(() => plan({ snapshots: [snapshot("old", 7, 8)], wal, histories, target: { kind: "snapshot", id: "old", timeline: 2 } }));
    expect(e).toBeInstanceOf(TargetNotOnTimelineError);
    expect(e.message).toContain("snapshot old (timeline 1, consistent at LSN 0/8000138) is not on the history of timeline 2");
  });
});

// --- choosing the snapshot ------------------------------------------------------

describe("planRestore: choosing the snapshot", () => {
  it("picks the newest of many snapshots that reach the target", () => {
    // Prepare
    const snaps = [snapshot("s1", 1, 2), snapshot("s3", 7, 8), snapshot("s2", 4, 5), snapshot("s4", 10, 11)];
    // Act
    const p = plan({ snapshots: snaps, wal: segs(1, 1, 20), target: { kind: "lsn", lsn: lsnAt(9) } });
    // Assess
    expect(p.snapshot.id).toBe("s3");
    expect(walOf(p)).toEqual(names(1, 7, 10));
  });

  it("falls back to an overlapping backup that started after a gap the newest one needs, and says so", () => {
    // Prepare: a long backup (segments 1-10) is newer by stop than a short one taken meanwhile (5-6); segment 2 is missing
    const long = snapshot("long", 1, 10);
    const short = snapshot("short", 5, 6);
    // Act
    const p = plan({ snapshots: [long, short], wal: segs(1, 1, 12, [2]), target: { kind: "latest" } });
    // Assess
    expect(p.snapshot.id).toBe("short");
    expect(walOf(p)).toEqual(names(1, 5, 12));
    expect(p.warnings).toEqual([
      expect.stringContaining(
        "snapshot long cannot be used: WAL gap on timeline 1 between 000000010000000000000001 and 000000010000000000000003 (1 segment missing)",
      ),
    ]);
    expect(p.warnings[0]).toContain("using the older snapshot short");
  });

  it("falls back to the previous snapshot while the newest one's stop segment is not archived yet", () => {
    // Prepare: snap-c stops in segment 9, the archive ends at 8
    const c = snapshot("snap-c", 8, 9);
    // Act
    const p = plan({ snapshots: [A, c], wal: segs(1, 1, 8), target: { kind: "latest" } });
    // Assess
    expect(p.snapshot.id).toBe("snap-a");
    expect(walOf(p)).toEqual(names(1, 2, 8));
    expect(p.warnings[0]).toContain("snapshot snap-c cannot be used: snapshot snap-c becomes consistent only at 0/9000138");
  });

  it("throws TargetAfterArchiveEndError when the only snapshot is not consistent within the archive", () => {
    const e = failure(() => plan({ snapshots: [snapshot("snap-c", 8, 9)], wal: segs(1, 1, 8), target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
    expect(e.message).toContain("snapshot snap-c becomes consistent only at 0/9000138, in 000000010000000000000009");
    expect(e.message).toContain("ends with 000000010000000000000008");
  });

  it("throws NoSnapshotBeforeTargetError when the catalog has no snapshots", () => {
    const e = failure(() => plan({ wal: segs(1, 1, 3), target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(NoSnapshotBeforeTargetError);
    expect(e.message).toContain("the catalog has none");
  });
});

describe("restoreCandidates", () => {
  const snaps = [snapshot("s1", 1, 2), snapshot("s3", 7, 8), snapshot("s2", 4, 5), snapshot("s4", 10, 11)];
  const ids = (input: Partial<RestorePlanInput> & { target: RestoreTarget }): string[] =>
    restoreCandidates({ snapshots: snaps, wal: [], histories: new Map(), segmentSize: SIZE, ...input }).map((s) => s.id);

  it("lists the snapshots the planner tries, newest first, by the target's rule", () => {
    // Act
    const latest = ids({ wal: segs(1, 1, 20), target: { kind: "latest" } });
    const lsn = ids({ wal: segs(1, 1, 20), target: { kind: "lsn", lsn: lsnAt(9) } });
    const time = ids({ wal: segs(1, 1, 20), target: { kind: "time", time: at(5) } });
    const named = ids({ wal: segs(1, 1, 20), target: { kind: "snapshot", id: "s2" } });
    const none = ids({ wal: segs(1, 1, 20), target: { kind: "lsn", lsn: lsnAt(1) } });

    // Assess
    expect(latest).toEqual(["s4", "s3", "s2", "s1"]);
    expect(lsn).toEqual(["s3", "s2", "s1"]);
    expect(time).toEqual(["s2", "s1"]);
    expect(named).toEqual(["s2"]);
    expect(none).toEqual([]);
  });

  it("needs only one segment per timeline: the newest alone gives the candidates the whole archive gives", () => {
    // Prepare: timeline 2 branches off at segment 9; s5 on timeline 2, s4 on timeline 1 past the switch (off the path)
    const histories = new Map([[2, history([1, lsnAt(9)])]]);
    const all = { snapshots: [...snaps, snapshot("s5", 12, 13, 2)], histories, segmentSize: SIZE, target: { kind: "latest" } as const };
    const wal = [...segs(1, 1, 11), ...segs(2, 9, 14)];

    // Act
    const full = restoreCandidates({ ...all, wal }).map((s) => s.id);
    const newest = restoreCandidates({ ...all, wal: [seg(1, 11), seg(2, 14)] }).map((s) => s.id);

    // Assess
    expect(full).toEqual(["s5", "s3", "s2", "s1"]);
    expect(newest).toEqual(full);
    expect(planRestore({ ...all, wal }).snapshot.id).toBe(full[0]);
  });

  it("throws what the planner throws before it tries a snapshot", () => {
    // Act
    const unknown = failure(() => ids({ wal: segs(1, 1, 20), target: { kind: "snapshot", id: "nope" } }));
    const noHistory = failure(() => ids({ wal: segs(1, 1, 20), target: { kind: "latest", timeline: 3 } }));

    // Assess
    expect(unknown).toBeInstanceOf(UnknownSnapshotError);
    expect(noHistory).toBeInstanceOf(TimelineNotFoundError);
  });
});

// --- errors --------------------------------------------------------------------

describe("planRestore: gaps", () => {
  it("names the last segment before the gap and the first after it, and how many are missing", () => {
    // Act: 6, 7 and 8 are missing after snap-a
    const e = failure(() => plan({ snapshots: [A], wal: segs(1, 1, 12, [6, 7, 8]), target: { kind: "latest" } }));
    // Assess
    expect(e).toBeInstanceOf(WalGapError);
    const prefix =
      "WAL gap on timeline 1 between 000000010000000000000005 and 000000010000000000000009 (3 segments missing): snapshot snap-a cannot reach";
    expect(e.message.slice(0, prefix.length)).toBe(prefix);
    expect(e.message).toContain("restore to a target before 0/6000000");
  });

  it("reports a gap after the newest snapshot, which no older snapshot can bridge", () => {
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12, [9]), target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(WalGapError);
    expect(e.message).toContain("between 000000010000000000000008 and 00000001000000000000000A (1 segment missing): snapshot snap-b");
  });

  it("does not care about a gap before the snapshot's start segment or after the target", () => {
    const p = plan({ snapshots: [B], wal: segs(1, 1, 12, [3, 11]), target: { kind: "lsn", lsn: lsnAt(8) } });
    expect(walOf(p)).toEqual(names(1, 6, 9));
  });

  it("reports a gap, not the end of the archive, for an LSN inside a missing segment with WAL after it", () => {
    const e = failure(() => plan({ snapshots: [B], wal: segs(1, 1, 12, [8, 9]), target: { kind: "lsn", lsn: lsnAt(8, 0x10) } }));
    expect(e).toBeInstanceOf(WalGapError);
    expect(e.message).toContain("between 000000010000000000000007 and 00000001000000000000000A (2 segments missing)");
  });

  it("names the timelines of a gap across a switch point", () => {
    // Prepare: timeline 2's first segment (6, holding the switch) is missing
    const histories = new Map([[2, history([1, lsnAt(6, 0x5000)])]]);
    const wal = [...segs(1, 1, 5), ...segs(2, 7, 9)];
    // Act
    const e = failure(() => plan({ snapshots: [A], wal, histories, target: { kind: "latest" } }));
    // Assess
    expect(e).toBeInstanceOf(WalGapError);
    expect(e.message).toContain("WAL gap on timeline 2 between 000000010000000000000005 and 000000020000000000000007 (1 segment missing)");
  });

  it("says when nothing is archived before the first missing segment", () => {
    const e = failure(() => plan({ snapshots: [A], wal: segs(1, 5, 9), target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(WalGapError);
    expect(e.message).toContain(
      "WAL gap on timeline 1: nothing is archived before 000000010000000000000005 from 000000010000000000000002 on (3 segments missing)",
    );
  });
});

describe("planRestore: targets outside the archive", () => {
  it("throws NoSnapshotBeforeTargetError naming the time and the oldest snapshot's time and LSN", () => {
    // Act
    const e = failure(() => plan({ snapshots: [B, A], wal: segs(1, 1, 12), target: { kind: "time", time: at(1) } }));
    // Assess
    expect(e).toBeInstanceOf(NoSnapshotBeforeTargetError);
    expect(e.message).toContain("no snapshot is consistent at or before time 2024-03-01T00:01:00.000Z");
    expect(e.message).toContain("snap-a, finished at 2024-03-01T00:02:30.000Z and is consistent from LSN 0/3000138");
  });

  it("throws NoSnapshotBeforeTargetError for an LSN before the oldest snapshot's stop", () => {
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "lsn", lsn: lsnAt(3) } }));
    expect(e).toBeInstanceOf(NoSnapshotBeforeTargetError);
    expect(e.message).toContain("before LSN 0/3000000");
    expect(e.message).toContain("snap-a");
  });

  it("throws TargetAfterArchiveEndError naming the last archived segment and its time for a later time", () => {
    // Act
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "time", time: at(20) } }));
    // Assess
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
    expect(e.message).toContain("time 2024-03-01T00:20:00.000Z is later than the last archived WAL");
    expect(e.message).toContain("ends with 00000001000000000000000C (WAL up to LSN 0/D000000, archived 2024-03-01T00:12:00.000Z)");
  });

  it("throws TargetAfterArchiveEndError for a time equal to the last archive time (nothing proves the archive holds it)", () => {
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "time", time: at(12) } }));
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
  });

  it("throws TargetAfterArchiveEndError naming the end of the archive for a later LSN", () => {
    const e = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), target: { kind: "lsn", lsn: lsnAt(14) } }));
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
    expect(e.message).toContain("LSN 0/E000000 is after the end of the archive");
    expect(e.message).toContain("ends with 00000001000000000000000C (WAL up to LSN 0/D000000");
  });
});

// --- timelines ------------------------------------------------------------------

describe("planRestore: timelines", () => {
  it("passes over a timeline known only by a history file no snapshot lies on, with a warning, for --latest and a time", () => {
    // Prepare: timeline 2's "history" names no parent (e.g. '# nothing here'); everything else is on timeline 1
    const histories = new Map([[2, [] as TimelineHistoryEntry[]]]);
    // Act
    const latest = plan({ snapshots: [A, B], wal: segs(1, 1, 12), histories, target: { kind: "latest" } });
    const time = plan({ snapshots: [A, B], wal: segs(1, 1, 12), histories, target: { kind: "time", time: at(8.25), timeline: "latest" } });
    const insisted = failure(() => plan({ snapshots: [A, B], wal: segs(1, 1, 12), histories, target: { kind: "latest", timeline: 2 } }));
    // Assess
    expect(latest.targetTimeline).toBe(1);
    expect(walOf(latest)).toEqual(names(1, 6, 12));
    expect(latest.warnings.join("\n")).toContain("timeline 2 (00000002.history, which names no parent timeline: not a timeline history)");
    expect(time.targetTimeline).toBe(1);
    expect(insisted).toBeInstanceOf(NoSnapshotBeforeTargetError);
  });

  it("still restores to a new timeline whose history the snapshots lie on, even before any WAL is archived on it", () => {
    // Prepare: a promotion at segment 9 created timeline 2; nothing archived on it yet
    const histories = new Map([[2, history([1, lsnAt(9, 0x5000)])]]);
    // Act
    const p = plan({ snapshots: [A, B], wal: segs(1, 1, 8), histories, target: { kind: "latest" } });
    // Assess
    expect(p.targetTimeline).toBe(2);
    expect(p.warnings).toEqual([]);
  });

  // Timeline 2 branched off timeline 1 at 0/6005000 (a failover: timeline 1's segment 6 is only a .partial).
  const X = lsnAt(6, 0x5000);
  const histories = new Map([[2, history([1, X])]]);
  const failover = [...segs(1, 1, 5), ...segs(2, 6, 10)];

  it("follows the history across the switch: the segment holding the switch point comes from the new timeline", () => {
    // Act
    const p = plan({ snapshots: [A], wal: failover, histories, target: { kind: "lsn", lsn: lsnAt(8, 0x10) } });
    // Assess
    expect(p.wal.map((w) => w.name)).toEqual([...names(1, 2, 5), ...names(2, 6, 9)]);
    expect(p.timelinePath).toEqual([1, 2]);
    expect(p.targetTimeline).toBe(2);
    expect(p.recoveryTarget).toEqual({ recovery_target_lsn: "0/8000010", recovery_target_timeline: "2" });
  });

  it("takes the old timeline's segments up to the switch segment even when it continued (split brain), given the timeline", () => {
    // Prepare: timeline 1 kept writing segments 6-9
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 10)];
    // Act
    const p = plan({ snapshots: [A], wal, histories, target: { kind: "latest", timeline: 2 } });
    // Assess
    expect(p.wal.map((w) => w.name)).toEqual([...names(1, 2, 5), ...names(2, 6, 10)]);
  });

  it("reads the segment after a switch at a segment boundary from the new timeline", () => {
    // Prepare: the switch point is the first byte of segment 6
    const boundary = new Map([[2, history([1, lsnAt(6)])]]);
    // Act
    const p = plan({ snapshots: [A], wal: [...segs(1, 1, 5), ...segs(2, 6, 7)], histories: boundary, target: { kind: "latest" } });
    // Assess
    expect(p.wal.map((w) => `${w.timeline}:${w.segno}`)).toEqual(["1:2", "1:3", "1:4", "1:5", "2:6", "2:7"]);
  });

  it("follows a history with two switches, the second in the same segment as the first", () => {
    // Prepare: 1 -> 2 at 0/6005000, 2 -> 3 at 0/6009000: timeline 2 owns no whole segment
    const h = new Map([
      [2, history([1, X])],
      [3, history([1, X], [2, lsnAt(6, 0x9000)])],
    ]);
    // Act
    const p = plan({ snapshots: [A], wal: [...segs(1, 1, 5), ...segs(3, 6, 8)], histories: h, target: { kind: "latest" } });
    // Assess
    expect(p.wal.map((w) => `${w.timeline}:${w.segno}`)).toEqual(["1:2", "1:3", "1:4", "1:5", "3:6", "3:7", "3:8"]);
    expect(p.timelinePath).toEqual([1, 2, 3]);
  });

  it("restores a snapshot taken on the new timeline without the old timeline's WAL", () => {
    const p = plan({ snapshots: [A, snapshot("t2", 8, 8, 2)], wal: failover, histories, target: { kind: "latest" } });
    expect(p.snapshot.id).toBe("t2");
    expect(walOf(p)).toEqual(names(2, 8, 10));
    expect(p.timelinePath).toEqual([2]);
  });

  it("does not use a snapshot of the old timeline taken after the branch point", () => {
    // Prepare: 'late' was taken on timeline 1 at segments 7-8, after timeline 2 branched off
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 10)];
    // Act
    const p = plan({ snapshots: [A, snapshot("late", 7, 8)], wal, histories, target: { kind: "latest", timeline: 2 } });
    // Assess
    expect(p.snapshot.id).toBe("snap-a");
  });

  it("explains when no snapshot lies on the target timeline's history", () => {
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 10)];
    const e = failure(() => plan({ snapshots: [snapshot("late", 7, 8)], wal, histories, target: { kind: "latest", timeline: 2 } }));
    expect(e).toBeInstanceOf(NoSnapshotBeforeTargetError);
    expect(e.message).toContain("none of the 1 snapshot(s) (on timeline 1) lies on the history of timeline 2 (1 until 0/6005000, then 2)");
  });

  it("defaults to the highest timeline with WAL or a history file", () => {
    // Prepare: timeline 3's history is archived, none of its WAL yet
    const h = new Map([
      [2, history([1, X])],
      [3, history([1, X], [2, lsnAt(9, 0x100)])],
    ]);
    // Act
    const p = plan({ snapshots: [A], wal: failover, histories: h, target: { kind: "latest" } });
    // Assess: timeline 3 reads segment 9 onwards, not archived yet, so the path ends at 8
    expect(p.targetTimeline).toBe(3);
    expect(p.wal.map((w) => `${w.timeline}:${w.segno}`).at(-1)).toBe("2:8");
    expect(p.recoveryTarget?.recovery_target_timeline).toBe("3");
  });

  it("follows the old timeline when it is asked for", () => {
    const wal = [...segs(1, 1, 9), ...segs(2, 6, 10)];
    const p = plan({ snapshots: [A], wal, histories, target: { kind: "latest", timeline: 1 } });
    expect(walOf(p)).toEqual(names(1, 2, 9));
    expect(p.recoveryTarget?.recovery_target_timeline).toBe("1");
  });

  it("throws TimelineNotFoundError for the latest timeline when its history file is missing", () => {
    const e = failure(() => plan({ snapshots: [A], wal: [...failover, ...segs(3, 9, 10)], histories, target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(TimelineNotFoundError);
    expect(e.message).toContain("timeline 3 has no history file (00000003.history) in the archive although WAL on it is archived");
  });

  it("throws TimelineNotFoundError for an explicit timeline with no history file", () => {
    const e = failure(() => plan({ snapshots: [A], wal: failover, histories, target: { kind: "time", time: at(7), timeline: 4 } }));
    expect(e).toBeInstanceOf(TimelineNotFoundError);
    expect(e.message).toContain("timeline 4 has no history file (00000004.history)");
  });

  it("does not treat a routine failover as ambiguous", () => {
    const p = plan({ snapshots: [A], wal: failover, histories, target: { kind: "time", time: at(7.5) } });
    expect(p.wal.map((w) => `${w.timeline}:${w.segno}`)).toEqual(["1:2", "1:3", "1:4", "1:5", "2:6", "2:7", "2:8"]);
  });
});

describe("planRestore: ambiguous targets on two histories", () => {
  // A point-in-time rollback: timeline 1 ran to segment 10 (archived at minutes 1-10); at minute 20 a restore
  // to 0/6005000 created timeline 2, whose segments 6-9 were archived at minutes 26-29.
  const X = lsnAt(6, 0x5000);
  const histories = new Map([[2, history([1, X])]]);
  const wal = [...segs(1, 1, 10), ...segs(2, 6, 9, [], 20)];

  it("refuses an LSN after the divergence that both timelines have, when no timeline is given", () => {
    // Act
    const e = failure(() => plan({ snapshots: [A], wal, histories, target: { kind: "lsn", lsn: lsnAt(8) } }));
    // Assess
    expect(e).toBeInstanceOf(AmbiguousTargetError);
    expect(e.message).toContain("LSN 0/8000000 exists on two histories: timeline 2 (the latest) and timeline 1");
    expect(e.message).toContain("diverge at 0/6005000");
    expect(e.message).toContain("restore with an explicit timeline: 2 or 1");
  });

  it("accepts an LSN before the divergence", () => {
    const p = plan({ snapshots: [A], wal, histories, target: { kind: "lsn", lsn: lsnAt(5, 0x10) } });
    expect(p.targetTimeline).toBe(2);
  });

  it("accepts an LSN beyond what the abandoned timeline archived", () => {
    const p = plan({ snapshots: [A], wal: [...segs(1, 1, 7), ...segs(2, 6, 9, [], 20)], histories, target: { kind: "lsn", lsn: lsnAt(8) } });
    expect(p.wal.at(-1)?.name).toBe("000000020000000000000009");
  });

  it("plans either history once the timeline is explicit", () => {
    // Act
    const onTwo = plan({ snapshots: [A], wal, histories, target: { kind: "lsn", lsn: lsnAt(8), timeline: 2 } });
    const onOne = plan({ snapshots: [A], wal, histories, target: { kind: "lsn", lsn: lsnAt(8), timeline: 1 } });
    const latest = plan({ snapshots: [A], wal, histories, target: { kind: "lsn", lsn: lsnAt(8), timeline: "latest" } });
    // Assess
    expect(onTwo.wal.map((w) => w.name)).toEqual([...names(1, 2, 5), ...names(2, 6, 9)]);
    expect(onOne.wal.map((w) => w.name)).toEqual(names(1, 2, 9));
    expect(latest.targetTimeline).toBe(2);
  });

  it("refuses a time inside the abandoned timeline's stretch, when no timeline is given", () => {
    const e = failure(() => plan({ snapshots: [A], wal, histories, target: { kind: "time", time: at(7.5) } }));
    expect(e).toBeInstanceOf(AmbiguousTargetError);
    expect(e.message).toContain("time 2024-03-01T00:07:30.000Z exists on two histories");
  });

  it("accepts a time before the fork and a time after the abandoned timeline stopped", () => {
    // Act
    const before = plan({ snapshots: [A], wal, histories, target: { kind: "time", time: at(4.5) } });
    const after = plan({ snapshots: [A], wal, histories, target: { kind: "time", time: at(15) } });
    // Assess
    expect(before.wal.map((w) => `${w.timeline}:${w.segno}`)).toEqual(["1:2", "1:3", "1:4", "1:5"]);
    expect(after.wal.map((w) => `${w.timeline}:${w.segno}`)).toEqual(["1:2", "1:3", "1:4", "1:5", "2:6"]);
  });

  it("plans a time on the abandoned timeline when it is asked for", () => {
    const p = plan({ snapshots: [A], wal, histories, target: { kind: "time", time: at(7.5), timeline: 1 } });
    expect(walOf(p)).toEqual(names(1, 2, 8));
  });
});

// --- generic databases ------------------------------------------------------------

describe("planRestore: generic databases", () => {
  const gseg = (segno: number, minute = segno): WalSegmentInfo => ({
    timeline: 1,
    segno: BigInt(segno),
    name: `wal/${String(segno).padStart(6, "0")}.wal`,
    archivedAt: at(minute),
  });
  const gsegs = (from: number, to: number, missing: readonly number[] = []): WalSegmentInfo[] => {
    const out: WalSegmentInfo[] = [];
    for (let s = from; s <= to; s++) if (!missing.includes(s)) out.push(gseg(s));
    return out;
  };
  /** A snapshot covering segments up to `last`, finished at minute last + 0.5. */
  const gsnap = (id: string, last: number): SnapshotInfo => ({
    id,
    databaseId: "ledger",
    kind: "generic",
    timeline: 1,
    startLsn: BigInt(last),
    stopLsn: BigInt(last),
    startedAt: at(last + 0.1),
    finishedAt: at(last + 0.5),
  });
  const gnames = (from: number, to: number): string[] => gsegs(from, to).map((s) => s.name);
  const snaps = [gsnap("g4", 4), gsnap("g2", 2)];

  it("restores the newest snapshot plus every segment after it for latest, with no recovery settings", () => {
    // Act
    const p = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "latest" } });
    // Assess
    expect(p.kind).toBe("generic");
    expect(p.snapshot.id).toBe("g4");
    expect(walOf(p)).toEqual(gnames(5, 9));
    expect(p.recoveryTarget).toBeUndefined();
    expect(p.endLsn).toBe(9n);
  });

  it("restores every segment up to a position", () => {
    const p = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "lsn", lsn: 7n } });
    expect(walOf(p)).toEqual(gnames(5, 7));
  });

  it("restores every segment closed at or before a time", () => {
    // Prepare: segment 8 was archived at minute 8, after 7:30
    const p = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "time", time: at(7.5) } });
    // Assess
    expect(walOf(p)).toEqual(gnames(5, 7));
    expect(p.endLsn).toBe(7n);
  });

  it("uses an older snapshot for a time before the newest finished", () => {
    const p = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "time", time: at(3.8) } });
    expect(p.snapshot.id).toBe("g2");
    expect(walOf(p)).toEqual(gnames(3, 3));
  });

  it("restores a snapshot alone for a snapshot target or a position equal to its last segment", () => {
    // Act
    const bySnapshot = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "snapshot", id: "g2" } });
    const byPosition = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "lsn", lsn: 4n } });
    // Assess
    expect(bySnapshot.wal).toEqual([]);
    expect(bySnapshot.endLsn).toBeUndefined();
    expect(byPosition.snapshot.id).toBe("g4");
    expect(byPosition.wal).toEqual([]);
  });

  it("restores to a known restore point by its segment position", () => {
    const restorePoints = [{ name: "month-end", lsn: 6n, time: at(6), timeline: 1 }];
    const p = plan({ snapshots: snaps, wal: gsegs(1, 9), restorePoints, target: { kind: "name", name: "month-end" } });
    expect(walOf(p)).toEqual(gnames(5, 6));
  });

  it("refuses an unknown restore point name (nothing would look for it)", () => {
    const e = failure(() => plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "name", name: "month-end" } }));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e.message).toContain("restore point 'month-end' is not in the catalog");
  });

  it("reports a gap by the names of the segments around it", () => {
    const e = failure(() => plan({ snapshots: snaps, wal: gsegs(1, 9, [6, 7]), target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(WalGapError);
    expect(e.message).toContain("WAL gap on timeline 1 between wal/000005.wal and wal/000008.wal (2 segments missing)");
    expect(e.message).toContain("before segment position 6");
  });

  it("throws TargetAfterArchiveEndError for a time after the last closed segment", () => {
    const e = failure(() => plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "time", time: at(20) } }));
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
    expect(e.message).toContain("ends with wal/000009.wal (WAL up to segment position 9");
  });

  it("throws TargetAfterArchiveEndError for a position past the last segment", () => {
    const e = failure(() => plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "lsn", lsn: 12n } }));
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
    expect(e.message).toContain("segment position 12 is after the end of the archive");
  });

  it("with archivedThrough, a stream that closed nothing since its last segment reaches any time up to it (an idle stream)", () => {
    // Act: the archive is complete through minute 20; this stream's last segment closed at minute 9.
    const p = plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "time", time: at(15) }, archivedThrough: at(20) });
    // Assess
    expect(walOf(p)).toEqual(gnames(5, 9));
  });

  it("with archivedThrough, a time after it is TargetAfterArchiveEndError naming it", () => {
    const e = failure(() => plan({ snapshots: snaps, wal: gsegs(1, 9), target: { kind: "time", time: at(25) }, archivedThrough: at(20) }));
    expect(e).toBeInstanceOf(TargetAfterArchiveEndError);
    expect(e.message).toContain(`every segment closed before ${at(20).toISOString()}`);
  });

  it("with archivedThrough, a missing segment followed by later ones is still a gap", () => {
    const e = failure(() => plan({ snapshots: snaps, wal: gsegs(1, 9, [6]), target: { kind: "time", time: at(15) }, archivedThrough: at(20) }));
    expect(e).toBeInstanceOf(WalGapError);
    expect(e.message).toContain("between wal/000005.wal and wal/000007.wal");
  });
});

// --- input validation -------------------------------------------------------------

describe("planRestore: input validation", () => {
  it("refuses snapshots of two databases", () => {
    const other = { ...B, databaseId: "billing" };
    const e = failure(() => plan({ snapshots: [A, other], wal: segs(1, 1, 9), target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain("'orders' and 'billing'");
  });

  it("refuses a PostgreSQL segment whose name does not match its timeline and number", () => {
    const wrong = { ...seg(1, 5), name: "000000010000000000000006" };
    const e = failure(() => plan({ snapshots: [A], wal: [...segs(1, 1, 4), wrong], target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(InvalidInputError);
  });

  it("refuses a history whose switch points go back", () => {
    const bad = new Map([[3, history([1, lsnAt(6)], [2, lsnAt(5)])]]);
    const e = failure(() => plan({ snapshots: [A], wal: segs(1, 1, 5), histories: bad, target: { kind: "latest" } }));
    expect(e).toBeInstanceOf(InvalidInputError);
  });

  it("refuses a snapshot that stops before it starts, and an invalid target time", () => {
    const backwards = { ...A, stopLsn: A.startLsn - 1n };
    expect(failure(() => plan({ snapshots: [backwards], wal: segs(1, 1, 5), target: { kind: "latest" } }))).toBeInstanceOf(InvalidInputError);
    expect(failure(() => plan({ snapshots: [A], wal: segs(1, 1, 5), target: { kind: "time", time: new Date("nope") } }))).toBeInstanceOf(
      InvalidInputError,
    );
  });
});

// --- property test ----------------------------------------------------------------

/** Small deterministic PRNG (mulberry32) so random cases are reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TYPED = [
  WalGapError,
  NoSnapshotBeforeTargetError,
  TargetAfterArchiveEndError,
  AmbiguousTargetError,
  UnknownSnapshotError,
  TimelineNotFoundError,
  TargetNotOnTimelineError,
];

describe("planRestore: random archives (property)", () => {
  it("returns contiguous, duplicate-free plans that reach the target, or one of the typed errors", () => {
    const outcomes = new Map<string, number>();
    const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);

    for (let run = 0; run < 1000; run++) {
      // Prepare: timeline 1 with random gaps, maybe a switch to timeline 2 (maybe with timeline 1 going on)
      const rand = mulberry32(0x5eed + run);
      const int = (n: number): number => Math.floor(rand() * n);
      const n = 4 + int(24);
      const switchSeg = rand() < 0.5 ? 3 + int(n - 3) : undefined;
      const X = switchSeg === undefined ? undefined : lsnAt(switchSeg, int(2) * (1 + int(0x1000)) * 8);
      const diverged = switchSeg !== undefined && rand() < 0.3;
      const present = (): boolean => rand() >= 0.07;
      const wal: WalSegmentInfo[] = [];
      const tl1End = switchSeg === undefined || diverged ? n : switchSeg - 1;
      for (let s = 1; s <= tl1End; s++) if (present()) wal.push(seg(1, s, s + rand() * 0.9));
      if (switchSeg !== undefined) for (let s = switchSeg; s <= n + 3; s++) if (present()) wal.push(seg(2, s, s + rand() * 0.9));
      const histories = new Map<number, TimelineHistoryEntry[]>(X === undefined ? [] : [[2, history([1, X])]]);

      const snapshots: SnapshotInfo[] = [];
      for (let i = 0, k = 1 + int(4); i < k; i++) {
        const onTwo = switchSeg !== undefined && rand() < 0.5;
        const first = onTwo ? switchSeg : 1;
        const last = onTwo ? n + 2 : tl1End;
        const a = first + int(last - first + 1);
        const b = a + int(3);
        const snap = snapshot(`s${i}`, a, b, onTwo ? 2 : 1);
        if (onTwo && snap.startLsn < X!) snap.startLsn = X! + 0x28n;
        if (snap.stopLsn <= snap.startLsn) snap.stopLsn = snap.startLsn + 0x110n;
        snapshots.push(snap);
      }
      const restorePoints: RestorePointInfo[] = [];
      for (let i = 0, k = int(3); i < k; i++) {
        const s = 1 + int(n + 2);
        const timeline = switchSeg !== undefined && s >= switchSeg && rand() < 0.7 ? 2 : 1;
        restorePoints.push({ name: rand() < 0.5 ? "rp-a" : "rp-b", lsn: lsnAt(s, 0x300 + int(0x1000)), time: at(s), timeline });
      }
      const timelineChoices = [undefined, undefined, "latest", 1, 2, 3] as const;
      const timeline = timelineChoices[int(timelineChoices.length)];
      const kinds = ["latest", "time", "lsn", "name", "snapshot"] as const;
      const kind = kinds[int(kinds.length)]!;
      const point =
        kind === "latest"
          ? { kind }
          : kind === "time"
            ? { kind, time: at(rand() * (n + 6)) }
            : kind === "lsn"
              ? { kind, lsn: lsnAt(int(n + 5), int(SIZE)) }
              : kind === "name"
                ? { kind, name: ["rp-a", "rp-b", "rp-c"][int(3)]! }
                : { kind, id: `s${int(5)}` };
      const target = { ...point, ...(timeline === undefined ? {} : { timeline }) } as RestoreTarget;
      const input: RestorePlanInput = { snapshots, wal, histories, segmentSize: SIZE, target, restorePoints };

      // Act
      let result: RestorePlan | undefined;
      let error: unknown;
      try {
        result = planRestore(input);
      } catch (e) {
        error = e;
      }

      // Assess
      const context = `run ${run}: ${JSON.stringify({ n, switchSeg, X: X?.toString(), diverged, timeline, point }, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`;
      // Oracle for LSN and latest targets on an explicit timeline: the newest snapshot whose WAL is complete
      // (brute force); a plan exactly when there is one. Snapshots with the same stop LSN are equally new.
      let best: SnapshotInfo | undefined;
      let reaches: ((s: SnapshotInfo) => boolean) | undefined;
      const oracle = (point.kind === "lsn" || point.kind === "latest") && (timeline === 1 || (timeline === 2 && X !== undefined));
      if (oracle) {
        const pathTl = (segno: bigint): number => (timeline === 2 && segno >= lsnToSegno(X!, SIZE) ? 2 : 1);
        const has = (segno: bigint): boolean => wal.some((w) => w.segno === segno && w.timeline === pathTl(segno));
        const onPathSnap = (s: SnapshotInfo): boolean => (timeline === 1 ? s.timeline === 1 : s.timeline === 2 || s.stopLsn <= X!);
        const lastOnPath = wal.filter((w) => w.timeline === pathTl(w.segno)).reduce((m, w) => (w.segno > m ? w.segno : m), 0n);
        reaches = (s: SnapshotInfo): boolean => {
          if (point.kind === "lsn" && s.stopLsn > point.lsn) return false;
          const from = lsnToSegno(s.startLsn, SIZE);
          const cons = lsnToSegno(s.stopLsn - 1n, SIZE);
          let to = point.kind === "lsn" ? lsnToSegno(point.lsn, SIZE) : lastOnPath;
          if (to < cons) to = cons;
          for (let x = from; x <= to; x++) if (!has(x)) return false;
          return true;
        };
        best = snapshots.filter((s) => onPathSnap(s) && reaches!(s)).sort((a, b) => (a.stopLsn < b.stopLsn ? 1 : a.stopLsn > b.stopLsn ? -1 : 0))[0];
        count("oracle");
      }

      if (result === undefined) {
        if (oracle) expect(best, `${context}: ${String(error)}`).toBeUndefined();
        expect(TYPED.some((cls) => error instanceof cls), `${context}: ${String(error)}`).toBe(true);
        const e = error as Error;
        count(e.name);
        if (e instanceof WalGapError && e.message.includes(" between ")) {
          const m = /^WAL gap on timelines? [\d to]+ between ([0-9A-F]{24}) and ([0-9A-F]{24}) \((\d+) segments? missing\)/.exec(e.message);
          expect(m, `${context}: ${e.message}`).not.toBeNull();
          const [, before, after, missing] = m!;
          expect(wal.some((w) => w.name === before)).toBe(true);
          expect(wal.some((w) => w.name === after)).toBe(true);
          const segnoOf = (name: string): bigint => BigInt(`0x${name.slice(8, 16)}`) * 256n + BigInt(`0x${name.slice(16)}`);
          expect(BigInt(missing!)).toBe(segnoOf(after!) - segnoOf(before!) - 1n);
        }
        continue;
      }
      count("plan");
      if (oracle) {
        expect(best, context).toBeDefined();
        expect(result.snapshot.stopLsn, context).toBe(best!.stopLsn);
        expect(reaches!(result.snapshot), context).toBe(true);
      }
      const p = result;
      const tlFor = (segno: bigint): number =>
        p.targetTimeline === 2 && X !== undefined && segno >= lsnToSegno(X, SIZE) ? 2 : 1;
      // the snapshot is one of ours, and the WAL starts at its start segment and is contiguous
      expect(snapshots).toContain(p.snapshot);
      expect(p.wal.length, context).toBeGreaterThan(0);
      expect(p.wal[0]!.segno, context).toBe(lsnToSegno(p.snapshot.startLsn, SIZE));
      p.wal.forEach((w, i) => expect(w.segno, context).toBe(p.wal[0]!.segno + BigInt(i)));
      // no duplicates, every segment archived, each read from the timeline the path says
      expect(new Set(p.wal.map((w) => w.name)).size).toBe(p.wal.length);
      for (const w of p.wal) {
        expect(wal.some((x) => x.name === w.name && x.timeline === w.timeline && x.segno === w.segno), context).toBe(true);
        expect(w.timeline, `${context}: ${w.name}`).toBe(tlFor(w.segno));
      }
      expect(p.endLsn).toBe((p.wal.at(-1)!.segno + 1n) * BigInt(SIZE));
      // the WAL reaches the snapshot's consistent point and the target's segment
      const segnos = p.wal.map((w) => w.segno);
      const consistent = lsnToSegno(p.snapshot.stopLsn - 1n, SIZE);
      const last = segnos.at(-1)!;
      expect(last >= consistent, context).toBe(true);
      if (point.kind === "lsn") {
        expect(p.snapshot.stopLsn <= point.lsn).toBe(true);
        expect(segnos, context).toContain(lsnToSegno(point.lsn, SIZE));
        expect(last <= lsnToSegno(point.lsn, SIZE) + 1n).toBe(true);
      } else if (point.kind === "time") {
        expect(p.snapshot.finishedAt <= point.time).toBe(true);
        expect(p.wal.map((w) => wal.find((x) => x.name === w.name)!).at(-1)!.archivedAt > point.time, context).toBe(true);
      } else if (point.kind === "snapshot") {
        expect(p.snapshot.id).toBe(point.id);
        expect(last).toBe(consistent);
      } else if (point.kind === "latest" || (point.kind === "name" && !restorePoints.some((r) => r.name === point.name))) {
        const onPath = wal.filter((w) => w.timeline === tlFor(w.segno)).map((w) => w.segno);
        expect(last).toBe(onPath.reduce((m, s) => (s > m ? s : m), 0n));
      }
    }

    // the random cases exercised plans and the main errors
    expect(outcomes.get("plan") ?? 0).toBeGreaterThan(100);
    expect(outcomes.get("WalGapError") ?? 0).toBeGreaterThan(10);
    expect(outcomes.get("NoSnapshotBeforeTargetError") ?? 0).toBeGreaterThan(10);
    expect(outcomes.get("TargetAfterArchiveEndError") ?? 0).toBeGreaterThan(10);
    expect(outcomes.get("oracle") ?? 0).toBeGreaterThan(50);
  });

  it("keeps generic plans contiguous from the segment after the snapshot, or throws a typed error", () => {
    let plans = 0;
    for (let run = 0; run < 300; run++) {
      // Prepare
      const rand = mulberry32(0xbee + run);
      const int = (k: number): number => Math.floor(rand() * k);
      const n = 3 + int(20);
      const wal: WalSegmentInfo[] = [];
      for (let s = 1; s <= n; s++) {
        if (rand() < 0.08) continue;
        wal.push({ timeline: 1, segno: BigInt(s), name: `seg-${s}`, archivedAt: at(s + rand() * 0.9) });
      }
      const snapshots: SnapshotInfo[] = [];
      for (let i = 0, k = 1 + int(3); i < k; i++) {
        const last = int(n + 1);
        snapshots.push({
          id: `g${i}`,
          databaseId: "ledger",
          kind: "generic",
          timeline: 1,
          startLsn: BigInt(last),
          stopLsn: BigInt(last),
          startedAt: at(last),
          finishedAt: at(last + 0.95),
        });
      }
      const choice = int(3);
      const target: RestoreTarget =
        choice === 0 ? { kind: "latest" } : choice === 1 ? { kind: "lsn", lsn: BigInt(int(n + 3)) } : { kind: "time", time: at(rand() * (n + 3)) };
      // Act
      let p: RestorePlan;
      try {
        p = plan({ snapshots, wal, target });
      } catch (e) {
        expect(TYPED.some((cls) => e instanceof cls), String(e)).toBe(true);
        continue;
      }
      // Assess
      plans++;
      p.wal.forEach((w, i) => expect(w.segno).toBe(p.snapshot.stopLsn + 1n + BigInt(i)));
      expect(new Set(p.wal.map((w) => w.name)).size).toBe(p.wal.length);
      if (target.kind === "lsn") expect(p.endLsn ?? p.snapshot.stopLsn).toBe(target.lsn);
      if (target.kind === "time") for (const w of p.wal) expect(wal.find((x) => x.name === w.name)!.archivedAt <= target.time).toBe(true);
    }
    expect(plans).toBeGreaterThan(50);
  });
});
