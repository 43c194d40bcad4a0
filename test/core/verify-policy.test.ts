import { describe, expect, it } from "vitest";
import { DEFAULT_VERIFY_POLICY, postgresTargetEnd, randomTarget, runSize, selectCandidates, type SnapshotVerifyState, type VerifyPolicy, pastVerifyPeriod } from "../../core/verify-policy.js";
import { seededRandom } from "../support/random.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = Date.parse("2026-11-01T00:00:00Z");


/**
 * Simulates `days` of snapshots every `everyHours`, kept for `keepDays`, and
 * a verification run every day at 02:00; returns the worst time any retained
 * snapshot went without verification, and whether every run took the newest.
 */
function simulate(days: number, everyHours: number, keepDays: number, policy: VerifyPolicy, seed: number): { worstDays: number; newestEveryRun: boolean; runs: number } {
  const random = seededRandom(seed);
  const snaps = new Map<string, SnapshotVerifyState>();
  let worst = 0;
  let newestEveryRun = true;
  let runs = 0;
  for (let t = T0; t < T0 + days * DAY; t += HOUR) {
    if ((t - T0) % (everyHours * HOUR) === 0) snaps.set(`s${t}`, { snapshotId: `s${t}`, finishedAt: new Date(t) });
    for (const [id, s] of snaps) if (t - s.finishedAt.getTime() > keepDays * DAY) snaps.delete(id);
    if ((t - T0) % DAY !== 2 * HOUR) continue;
    runs++;
    const now = new Date(t);
    for (const s of snaps.values()) worst = Math.max(worst, t - (s.lastVerifiedAt ?? s.finishedAt).getTime());
    const picked = selectCandidates([...snaps.values()], now, policy, random);
    const newest = [...snaps.values()].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime())[0]!;
    if (!picked.some((c) => c.snapshotId === newest.snapshotId)) newestEveryRun = false;
    for (const c of picked) snaps.get(c.snapshotId)!.lastVerifiedAt = now;
  }
  return { worstDays: worst / DAY, newestEveryRun, runs };
}

describe("selectCandidates over a simulated month", () => {
  it.each([
    ["daily snapshots kept 35 days", 24, 35],
    ["hourly snapshots kept 10 days", 1, 10],
    ["6-hourly snapshots kept 60 days", 6, 60],
  ])("verifies every retained snapshot within the 7-day period: %s", (_label, everyHours, keepDays) => {
    for (const seed of [1, 2, 3]) {
      // Act
      const r = simulate(31, everyHours, keepDays, DEFAULT_VERIFY_POLICY, seed);
      // Assess
      expect(r.runs).toBe(31);
      expect(r.worstDays).toBeLessThanOrEqual(DEFAULT_VERIFY_POLICY.periodDays);
      expect(r.newestEveryRun).toBe(true);
    }
  });

  it("would miss the period without the overdue rule (the simulation can fail)", () => {
    // Prepare: a run size of 1 and an overdue threshold that never fires.
    const weak: VerifyPolicy = { ...DEFAULT_VERIFY_POLICY, maxPerRun: 1, periodDays: 1000, oldestEveryDays: 1000 };
    // Act
    const r = simulate(31, 24, 35, weak, 1);
    // Assess: judged against the real 7-day period, it fails.
    expect(r.worstDays).toBeGreaterThan(7);
  });
});

describe("selectCandidates", () => {
  const s = (id: string, finishedDay: number, verifiedDay?: number): SnapshotVerifyState => ({
    snapshotId: id,
    finishedAt: new Date(T0 + finishedDay * DAY),
    ...(verifiedDay === undefined ? {} : { lastVerifiedAt: new Date(T0 + verifiedDay * DAY) }),
  });

  it("takes the newest, then the oldest when it is due, then the overdue, each once, with its reason", () => {
    // Prepare
    const snaps = [s("a", 0, 1), s("b", 1, 2), s("c", 2, 9), s("d", 9)];
    // Act
    const picked = selectCandidates(snaps, new Date(T0 + 10 * DAY), { ...DEFAULT_VERIFY_POLICY, maxPerRun: 3 }, () => 0.5);
    // Assess: a is the oldest and last verified 9 days ago; b is overdue (8 days).
    expect(picked).toEqual([
      { snapshotId: "d", level: 4, reason: "newest" },
      { snapshotId: "a", level: 4, reason: "oldest" },
      { snapshotId: "b", level: 4, reason: "overdue" },
    ]);
  });

  it("grows the run when the period needs more than maxPerRun", () => {
    expect(runSize(70, DEFAULT_VERIFY_POLICY)).toBe(12);
    expect(runSize(3, DEFAULT_VERIFY_POLICY)).toBe(5);
  });

  it("selects nothing without snapshots", () => {
    expect(selectCandidates([], new Date(T0), DEFAULT_VERIFY_POLICY, Math.random)).toEqual([]);
  });
});

describe("randomTarget", () => {
  it("lies inside [from, to), and is undefined for an empty stretch", () => {
    const from = new Date(T0);
    const to = new Date(T0 + HOUR);
    for (const r of [0, 0.5, 0.999999]) {
      const t = randomTarget(from, to, () => r)!;
      expect(t.getTime()).toBeGreaterThanOrEqual(from.getTime());
      expect(t.getTime()).toBeLessThan(to.getTime());
    }
    expect(randomTarget(from, from, () => 0.5)).toBeUndefined();
  });
});

describe("postgresTargetEnd", () => {
  const at = (s: number): Date => new Date(Date.UTC(2026, 11, 1, 12, 0, s));
  const seg = (archived: number, lastXact?: number): { archivedAt: string; lastXactAt?: string } => ({
    archivedAt: at(archived).toISOString(),
    ...(lastXact === undefined ? {} : { lastXactAt: at(lastXact).toISOString().replace("Z", "123Z") }),
  });

  it("ends random PostgreSQL targets at the latest transaction end archived after the snapshot, not at an archive time", () => {
    // Prepare: the snapshot finished at :10; the last commit (:13) lies in a segment archived at :14, the segment archived at :16 holds none.
    const segments = [seg(5, 4), seg(12, 11), seg(14, 13), seg(16)];
    // Act
    const end = postgresTargetEnd(at(10), at(20), at(20), segments);
    // Assess: targets stop before :13.000123, where PostgreSQL still finds a commit after them.
    expect(end?.toISOString()).toBe(at(13).toISOString());
  });

  it("ends at the next snapshot or the window's end when that comes first, and ignores segments past the window", () => {
    // Prepare
    const segments = [seg(12, 11), seg(18, 17), seg(40, 39)];
    // Act
    const capped = postgresTargetEnd(at(10), at(15), at(30), segments);
    const windowed = postgresTargetEnd(at(10), at(30), at(30), segments);
    // Assess
    expect([capped, windowed?.toISOString()]).toEqual([at(15), at(17).toISOString()]);
  });

  it("is undefined when no transaction end is known after the snapshot (idle, or segments recorded without times): the snapshot itself is verified", () => {
    expect(postgresTargetEnd(at(10), at(20), at(20), [seg(5, 4), seg(12), seg(14)])).toBeUndefined();
    expect(postgresTargetEnd(at(10), at(20), at(20), [seg(12, 9)])).toBeUndefined();
    expect(postgresTargetEnd(at(10), at(20), at(20), [])).toBeUndefined();
  });
});

describe("pastVerifyPeriod", () => {
  it("names the snapshots not verified (never verified: not since they finished) for longer than the period", () => {
    // Prepare
    const now = new Date("2026-12-05T00:00:00.000Z");
    const ago = (days: number): Date => new Date(now.getTime() - days * 86_400_000);
    const snapshots = [
      { snapshotId: "a", finishedAt: ago(30), lastVerifiedAt: ago(2) },
      { snapshotId: "b", finishedAt: ago(30), lastVerifiedAt: ago(7.5) },
      { snapshotId: "c", finishedAt: ago(8) },
      { snapshotId: "d", finishedAt: ago(7) },
    ];
    // Act
    const past = pastVerifyPeriod(snapshots, now, { periodDays: 7 });
    // Assess: exactly 7 days is still within it
    expect(past.map((s) => s.snapshotId)).toEqual(["b", "c"]);
  });
});
