import { describe, expect, it } from "vitest";
import { decidePack, isSparse, type PackTally } from "../../core/pack-retention.js";

const HOUR = 3_600_000;
const GRACE = 24 * HOUR;
const NOW = new Date("2026-06-10T00:00:00.000Z");
const MiB = 1024 * 1024;
const thresholds = { liveFraction: 0.5, minDeadBytes: 1 * MiB };
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

/** A 10-chunk pack of 10 MiB data recorded 3 days ago, every chunk live. */
function tally(overrides: Partial<PackTally> = {}): PackTally {
  return {
    name: "a".repeat(64),
    size: 10 * MiB + 10 * 52 + 64,
    entries: 10,
    dataLength: 10 * MiB,
    recordedAt: ago(72 * HOUR),
    liveChunks: 10,
    liveBytes: 10 * MiB,
    deadChunks: 0,
    deadBytes: 0,
    ...overrides,
  };
}
const allDead = { liveChunks: 0, liveBytes: 0, deadChunks: 10, deadBytes: 10 * MiB };
const sparse = { liveChunks: 4, liveBytes: 4 * MiB, deadChunks: 6, deadBytes: 6 * MiB };

describe("decidePack", () => {
  it("keeps a pack every chunk of which is live", () => {
    expect(decidePack(tally(), NOW, GRACE, thresholds)).toEqual({ action: "keep", reason: "live" });
  });

  it("keeps an unreferenced pack recorded within the grace period (a push may be under way), and marks it at exactly the grace period", () => {
    // Act
    const young = decidePack(tally({ ...allDead, recordedAt: ago(GRACE - 1) }), NOW, GRACE, thresholds);
    const due = decidePack(tally({ ...allDead, recordedAt: ago(GRACE) }), NOW, GRACE, thresholds);
    // Assess
    expect(young).toEqual({ action: "keep", reason: "fresh" });
    expect(due).toEqual({ action: "mark", reason: "unreferenced" });
  });

  it("marks a pack with no chunk record left pointing at it", () => {
    expect(decidePack(tally({ liveChunks: 0, liveBytes: 0 }), NOW, GRACE, thresholds).action).toBe("mark");
  });

  it("keeps a candidate marked less than the grace period ago, deletes it at the grace period", () => {
    // Act
    const recent = decidePack(tally({ ...allDead, orphanedAt: ago(GRACE - 1) }), NOW, GRACE, thresholds);
    const due = decidePack(tally({ ...allDead, orphanedAt: ago(GRACE) }), NOW, GRACE, thresholds);
    // Assess
    expect(recent).toEqual({ action: "keep", reason: "candidate-in-grace" });
    expect(due).toEqual({ action: "delete", reason: "unreferenced-past-grace" });
  });

  it("unmarks a candidate one chunk of which is referenced again, however long it was a candidate", () => {
    // Act
    const d = decidePack(tally({ liveChunks: 1, liveBytes: 1, deadChunks: 9, deadBytes: 9 * MiB, orphanedAt: ago(10 * GRACE) }), NOW, GRACE, thresholds);
    // Assess
    expect(d).toEqual({ action: "unmark", reason: "referenced-again" });
  });

  it("repacks a sparse pack recorded longer than the grace period ago, keeps it within it", () => {
    // Act
    const old = decidePack(tally({ ...sparse, recordedAt: ago(GRACE) }), NOW, GRACE, thresholds);
    const young = decidePack(tally({ ...sparse, recordedAt: ago(GRACE - 1) }), NOW, GRACE, thresholds);
    // Assess
    expect(old).toEqual({ action: "repack", reason: "sparse" });
    expect(young).toEqual({ action: "keep", reason: "sparse-in-grace" });
  });
});

describe("isSparse", () => {
  it("is sparse below the live fraction, not at it", () => {
    // Assess: 5 MiB of 10 MiB is exactly half.
    expect(isSparse(tally({ liveChunks: 5, liveBytes: 5 * MiB - 1, deadChunks: 5, deadBytes: 5 * MiB }), thresholds)).toBe(true);
    expect(isSparse(tally({ liveChunks: 5, liveBytes: 5 * MiB, deadChunks: 5, deadBytes: 5 * MiB }), thresholds)).toBe(false);
  });

  it("needs at least the minimum of dead bytes", () => {
    // Prepare: a small pack, mostly dead, but less than 1 MiB dead.
    const small = { dataLength: 1 * MiB, liveChunks: 1, liveBytes: 1024 };
    // Assess
    expect(isSparse(tally({ ...small, deadChunks: 9, deadBytes: MiB - 1024 }), thresholds)).toBe(false);
    expect(isSparse(tally({ ...small, dataLength: 2 * MiB, deadChunks: 9, deadBytes: MiB }), thresholds)).toBe(true);
  });

  it("an entirely dead pack is not sparse: it is deleted, not repacked", () => {
    expect(isSparse(tally(allDead), thresholds)).toBe(false);
  });
});
