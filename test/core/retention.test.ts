import { describe, expect, it } from "vitest";
import { planChunkSweep, planRetention, type RetentionPolicy } from "../../core/retention.js";
import { planRestore, type SnapshotInfo, type WalSegmentInfo } from "../../core/restore-plan.js";
import { segmentName } from "../../core/wal.js";
import { seededRandom } from "../support/random.js";

const SEG = 16 * 1024 * 1024;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.parse("2026-06-01T00:00:00Z");


interface History {
  snapshots: SnapshotInfo[];
  wal: WalSegmentInfo[];
  now: Date;
}

/** A random PostgreSQL history: one segment archived per `every` hours, snapshots now and then (some pinned). */
function history(random: () => number, days: number): History {
  const every = 1 + Math.floor(random() * 4);
  const wal: WalSegmentInfo[] = [];
  const snapshots: SnapshotInfo[] = [];
  let segno = 1n;
  for (let t = T0; t < T0 + days * DAY; t += every * HOUR) {
    wal.push({ timeline: 1, segno, name: segmentName(1, segno, SEG), archivedAt: new Date(t + HOUR / 2) });
    if (random() < 0.15) {
      snapshots.push({
        id: `s${snapshots.length.toString().padStart(4, "0")}`,
        databaseId: "db",
        kind: "postgres",
        timeline: 1,
        startLsn: segno * BigInt(SEG) + 40n,
        stopLsn: segno * BigInt(SEG) + 4000n,
        startedAt: new Date(t),
        finishedAt: new Date(t + 60_000),
        ...(random() < 0.05 ? { pinned: true } : {}),
      });
    }
    segno++;
  }
  return { snapshots, wal, now: new Date(T0 + days * DAY) };
}

function randomPolicy(random: () => number): RetentionPolicy {
  return { daily: Math.floor(random() * 8), weekly: Math.floor(random() * 5), monthly: Math.floor(random() * 4), recoveryWindowDays: Math.floor(random() * 10), minSnapshots: 2 };
}

describe("planRetention (property: pruning never breaks a restore)", () => {
  it("keeps every point of the recovery window and every retained snapshot restorable, two snapshots at least, every pinned one", () => {
    let checkedTargets = 0;
    for (let seed = 1; seed <= 150; seed++) {
      // Prepare
      const random = seededRandom(seed);
      const h = history(random, 20 + Math.floor(random() * 80));
      if (h.snapshots.length === 0) continue;
      const policy = randomPolicy(random);
      // Act
      const plan = planRetention({ snapshots: h.snapshots, wal: h.wal, segmentSize: SEG, policy, now: h.now });
      // Assess
      const gone = new Set(plan.deleteSnapshots.map((s) => s.snapshotId));
      const goneWal = new Set(plan.deleteWal.map((w) => w.name));
      const snapshots = h.snapshots.filter((s) => !gone.has(s.id));
      const wal = h.wal.filter((w) => !goneWal.has(w.name));
      const ctx = `seed ${seed}, policy ${JSON.stringify(policy)}`;
      expect(snapshots.length, ctx).toBeGreaterThanOrEqual(Math.min(2, h.snapshots.length));
      expect(plan.keep.length + plan.deleteSnapshots.length, ctx).toBe(h.snapshots.length);
      for (const s of h.snapshots.filter((x) => x.pinned)) expect(gone.has(s.id), `${ctx}: pinned ${s.id}`).toBe(false);
      for (const s of snapshots) {
        expect(() => planRestore({ snapshots, wal, histories: new Map(), segmentSize: SEG, target: { kind: "snapshot", id: s.id } }), `${ctx}: snapshot ${s.id}`).not.toThrow();
      }
      if (plan.windowStart) {
        const base = h.snapshots.find((s) => s.id === plan.windowBase)!;
        const from = Math.max(plan.windowStart.getTime(), base.finishedAt.getTime());
        const to = h.wal.at(-1)!.archivedAt.getTime() - 1;
        for (let i = 0; i < 12 && from < to; i++) {
          const time = new Date(from + Math.floor(random() * (to - from)));
          expect(() => planRestore({ snapshots, wal, histories: new Map(), segmentSize: SEG, target: { kind: "time", time } }), `${ctx}: time ${time.toISOString()}`).not.toThrow();
          checkedTargets++;
        }
      }
    }
    expect(checkedTargets).toBeGreaterThan(500);
  });

  it("deletes what nothing needs: old snapshots outside GFS and the window, and their WAL", () => {
    // Prepare: daily snapshots for 30 days.
    const h = history(() => 0.5, 1);
    void h;
    const snapshots: SnapshotInfo[] = [];
    const wal: WalSegmentInfo[] = [];
    for (let d = 0; d < 30; d++) {
      const segno = BigInt(d * 24 + 1);
      snapshots.push({ id: `d${d}`, databaseId: "db", kind: "postgres", timeline: 1, startLsn: segno * BigInt(SEG) + 40n, stopLsn: segno * BigInt(SEG) + 4000n, startedAt: new Date(T0 + d * DAY), finishedAt: new Date(T0 + d * DAY + 60_000) });
      for (let hr = 0; hr < 24; hr++) wal.push({ timeline: 1, segno: segno + BigInt(hr), name: `w${d}-${hr}`, archivedAt: new Date(T0 + d * DAY + hr * HOUR + HOUR / 2) });
    }
    // Act: 3 dailies, no weeklies/monthlies, a 2-day window, at day 30.
    const plan = planRetention({ snapshots, wal, segmentSize: SEG, policy: { daily: 3, weekly: 0, monthly: 0, recoveryWindowDays: 2 }, now: new Date(T0 + 30 * DAY) });
    // Assess: the window base is day 28 (finished before day 28's start... at 28:00:01), dailies 27..29.
    expect(plan.keep.map((k) => k.snapshotId).sort()).toEqual(["d27", "d28", "d29"]);
    expect(plan.windowBase).toBe("d27");
    expect(plan.deleteSnapshots).toHaveLength(27);
    expect(plan.keepWal).toBe(3 * 24);
    expect(plan.deleteWal).toHaveLength(27 * 24);
  });

  it("never deletes the archive's tail: WAL from the newest snapshot on, and all of it before the first snapshot", () => {
    // Prepare: hourly WAL for 3 days, one snapshot a day; no recovery window.
    const snapshots: SnapshotInfo[] = [];
    const wal: WalSegmentInfo[] = [];
    for (let i = 0; i < 72; i++) wal.push({ timeline: 1, segno: BigInt(i + 1), name: `w${i}`, archivedAt: new Date(T0 + i * HOUR) });
    for (let d = 0; d < 3; d++) {
      const segno = BigInt(d * 24 + 1);
      snapshots.push({ id: `d${d}`, databaseId: "db", kind: "postgres", timeline: 1, startLsn: segno * BigInt(SEG) + 40n, stopLsn: segno * BigInt(SEG) + 4000n, startedAt: new Date(T0 + d * DAY), finishedAt: new Date(T0 + d * DAY + 60_000) });
    }
    const policy = { daily: 1, weekly: 0, monthly: 0, recoveryWindowDays: 0, minSnapshots: 1 };
    // Act
    const none = planRetention({ snapshots: [], wal, segmentSize: SEG, policy, now: new Date(T0 + 3 * DAY) });
    const some = planRetention({ snapshots, wal, segmentSize: SEG, policy, now: new Date(T0 + 3 * DAY) });
    // Assess: without a snapshot nothing goes (one may be being taken); with them, everything from the newest's start stays.
    expect(none.deleteWal).toEqual([]);
    expect(some.keep.map((k) => k.snapshotId)).toEqual(["d2"]);
    expect(some.deleteWal.map((w) => w.name)).toEqual(wal.slice(0, 48).map((w) => w.name));
    expect(some.keepWal).toBe(24);
  });

  it("refuses a negative count", () => {
    expect(() => planRetention({ snapshots: [], wal: [], segmentSize: SEG, policy: { daily: -1, weekly: 0, monthly: 0, recoveryWindowDays: 0 }, now: new Date() })).toThrow(
      /retention daily must be a whole number >= 0/,
    );
  });
});

describe("planChunkSweep", () => {
  it("sweeps unreferenced chunks older than the grace period, keeps fresh ones for a snapshot still uploading", () => {
    const now = new Date(T0);
    const chunks = [
      { sha256: "a", recordedAt: new Date(T0 - 2 * DAY) },
      { sha256: "b", recordedAt: new Date(T0 - 2 * DAY) },
      { sha256: "c", recordedAt: new Date(T0 - HOUR) },
    ];
    expect(planChunkSweep(chunks, new Set(["a"]), now, DAY)).toEqual({ sweep: ["b"], fresh: ["c"] });
  });
});
