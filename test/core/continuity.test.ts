import { describe, expect, it } from "vitest";
import { analyzeContinuity, type SegmentRef } from "../../core/continuity.js";

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

function shuffle<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const refs = (timeline: number, segnos: readonly (number | bigint)[]): SegmentRef[] =>
  segnos.map((s) => ({ timeline, segno: BigInt(s) }));

describe("analyzeContinuity", () => {
  it("returns nothing for no segments", () => {
    expect(analyzeContinuity([])).toEqual([]);
  });

  it("reports a single segment as a one-segment range", () => {
    expect(analyzeContinuity(refs(1, [7]))).toEqual([
      { timeline: 1, ranges: [{ timeline: 1, first: 7n, last: 7n }], gaps: [], duplicates: [], count: 1 },
    ]);
  });

  it("reports unordered contiguous segments as one range without gaps", () => {
    // Prepare
    const input = refs(1, [5, 3, 4, 1, 2]);
    // Act
    const [tl] = analyzeContinuity(input);
    // Assess
    expect(tl).toEqual({
      timeline: 1,
      ranges: [{ timeline: 1, first: 1n, last: 5n }],
      gaps: [],
      duplicates: [],
      count: 5,
    });
  });

  it("reports a gap with the segment before it, after it and the number missing", () => {
    // Prepare: 1-3 present, 4-6 missing, 7-8 present, 9 missing, 10 present
    const input = refs(1, [1, 2, 3, 7, 8, 10]);
    // Act
    const [tl] = analyzeContinuity(input);
    // Assess
    expect(tl?.ranges).toEqual([
      { timeline: 1, first: 1n, last: 3n },
      { timeline: 1, first: 7n, last: 8n },
      { timeline: 1, first: 10n, last: 10n },
    ]);
    expect(tl?.gaps).toEqual([
      { timeline: 1, after: 3n, before: 7n, missing: 3n },
      { timeline: 1, after: 8n, before: 10n, missing: 1n },
    ]);
    expect(tl?.count).toBe(6);
  });

  it("handles segment numbers beyond 2^53 exactly", () => {
    const base = 2n ** 60n;
    const [tl] = analyzeContinuity(refs(1, [base, base + 1n, base + 5n]));
    expect(tl?.ranges).toEqual([
      { timeline: 1, first: base, last: base + 1n },
      { timeline: 1, first: base + 5n, last: base + 5n },
    ]);
    expect(tl?.gaps).toEqual([{ timeline: 1, after: base + 1n, before: base + 5n, missing: 3n }]);
  });

  it("reports a segment recorded twice as a duplicate and counts it once", () => {
    // Act
    const [tl] = analyzeContinuity(refs(1, [2, 3, 3, 4, 9, 9]));
    // Assess
    expect(tl?.duplicates).toEqual([3n, 9n]);
    expect(tl?.count).toBe(4);
    expect(tl?.ranges).toEqual([
      { timeline: 1, first: 2n, last: 4n },
      { timeline: 1, first: 9n, last: 9n },
    ]);
    expect(tl?.gaps).toEqual([{ timeline: 1, after: 4n, before: 9n, missing: 4n }]);
  });

  it("does not call the same segno on two timelines a duplicate", () => {
    const result = analyzeContinuity([...refs(1, [5]), ...refs(2, [5])]);
    expect(result.map((t) => t.duplicates)).toEqual([[], []]);
    expect(result.map((t) => t.count)).toEqual([1, 1]);
  });

  it("analyses each timeline separately, in ascending timeline order", () => {
    // Prepare: timelines interleaved and out of order
    const input: SegmentRef[] = [
      ...refs(10, [100, 101]),
      ...refs(2, [5, 7]),
      ...refs(1, [1, 2, 3]),
      ...refs(2, [6]),
      ...refs(10, [103]),
    ];
    // Act
    const result = analyzeContinuity(input);
    // Assess
    expect(result.map((t) => t.timeline)).toEqual([1, 2, 10]);
    expect(result[0]).toEqual({
      timeline: 1,
      ranges: [{ timeline: 1, first: 1n, last: 3n }],
      gaps: [],
      duplicates: [],
      count: 3,
    });
    expect(result[1]?.ranges).toEqual([{ timeline: 2, first: 5n, last: 7n }]);
    expect(result[1]?.gaps).toEqual([]);
    expect(result[2]?.ranges).toEqual([
      { timeline: 10, first: 100n, last: 101n },
      { timeline: 10, first: 103n, last: 103n },
    ]);
    expect(result[2]?.gaps).toEqual([{ timeline: 10, after: 101n, before: 103n, missing: 1n }]);
  });

  it("sorts timelines numerically, not as strings", () => {
    const result = analyzeContinuity([...refs(10, [1]), ...refs(9, [1]), ...refs(100, [1])]);
    expect(result.map((t) => t.timeline)).toEqual([9, 10, 100]);
  });

  it("does not modify the caller's array", () => {
    const input = refs(1, [3, 1, 2]);
    const copy = input.map((r) => ({ ...r }));
    analyzeContinuity(input);
    expect(input).toEqual(copy);
  });

  it("matches a brute-force model on a few hundred random segment sets", () => {
    const rand = mulberry32(0x5eed);
    for (let round = 0; round < 300; round++) {
      // Prepare: a random set of segnos with clusters, plus some repeats, shuffled
      const span = 1 + Math.floor(rand() * 200);
      const density = rand();
      const base = BigInt(Math.floor(rand() * 1_000_000));
      const present = new Set<bigint>();
      for (let i = 0; i < span; i++) if (rand() < density) present.add(base + BigInt(i));
      const repeats = [...present].filter(() => rand() < 0.05);
      const input = shuffle(refs(3, [...present, ...repeats]), rand);

      // Act
      const result = analyzeContinuity(input);

      // Assess
      if (present.size === 0) {
        expect(result).toEqual([]);
        continue;
      }
      expect(result).toHaveLength(1);
      const tl = result[0]!;
      expect(tl.timeline).toBe(3);
      expect(tl.count).toBe(present.size);
      expect([...tl.duplicates].sort((a, b) => (a < b ? -1 : 1))).toEqual(
        [...repeats].sort((a, b) => (a < b ? -1 : 1)),
      );

      // Ranges cover exactly the input set.
      const covered = new Set<bigint>();
      for (const r of tl.ranges) {
        expect(r.timeline).toBe(3);
        expect(r.first <= r.last).toBe(true);
        for (let s = r.first; s <= r.last; s++) covered.add(s);
      }
      expect(covered).toEqual(present);

      // Ranges are ascending and never touch (there is a missing segment between neighbours).
      for (let i = 1; i < tl.ranges.length; i++) {
        expect(tl.ranges[i]!.first > tl.ranges[i - 1]!.last + 1n).toBe(true);
      }

      // Gaps are exactly the spaces between consecutive ranges.
      expect(tl.gaps).toHaveLength(tl.ranges.length - 1);
      tl.gaps.forEach((g, i) => {
        const before = tl.ranges[i]!;
        const after = tl.ranges[i + 1]!;
        expect(g).toEqual({
          timeline: 3,
          after: before.last,
          before: after.first,
          missing: after.first - before.last - 1n,
        });
        expect(present.has(g.after + 1n)).toBe(false);
        expect(present.has(g.before - 1n)).toBe(false);
      });

      // Total span = present + missing.
      const min = tl.ranges[0]!.first;
      const max = tl.ranges.at(-1)!.last;
      const missing = tl.gaps.reduce((sum, g) => sum + g.missing, 0n);
      expect(max - min + 1n).toBe(BigInt(present.size) + missing);
    }
  });
});
