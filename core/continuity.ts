/**
 * Chain continuity of archived WAL, per timeline: which segment ranges are
 * contiguous, where the gaps are, and whether any segment was recorded twice.
 * Pure: takes segment numbers, returns ranges.
 */
export interface SegmentRef {
  timeline: number;
  segno: bigint;
}

export interface SegmentRange {
  timeline: number;
  /** First segment number in the range (inclusive). */
  first: bigint;
  /** Last segment number in the range (inclusive). */
  last: bigint;
}

export interface Gap {
  timeline: number;
  /** Last segment present before the gap. */
  after: bigint;
  /** First segment present after the gap. */
  before: bigint;
  /** Number of missing segments. */
  missing: bigint;
}

export interface TimelineContinuity {
  timeline: number;
  ranges: SegmentRange[];
  gaps: Gap[];
  /** Segment numbers seen more than once in the input. */
  duplicates: bigint[];
  count: number;
}

/** Groups segments by timeline (ascending) and finds contiguous ranges and gaps in each. */
export function analyzeContinuity(segments: readonly SegmentRef[]): TimelineContinuity[] {
  const byTimeline = new Map<number, bigint[]>();
  for (const s of segments) {
    const list = byTimeline.get(s.timeline) ?? [];
    list.push(s.segno);
    byTimeline.set(s.timeline, list);
  }
  return [...byTimeline.keys()]
    .sort((a, b) => a - b)
    .map((timeline) => continuityOfSorted(timeline, byTimeline.get(timeline)!.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))));
}

/**
 * One timeline's contiguous ranges and gaps from its segment numbers in
 * ascending order (repeats allowed: counted as duplicates). For callers that
 * hold them compactly (a sorted BigUint64Array: 8 bytes a segment).
 */
export function continuityOfSorted(timeline: number, sorted: ArrayLike<bigint>): TimelineContinuity {
  const ranges: SegmentRange[] = [];
  const gaps: Gap[] = [];
  const duplicates: bigint[] = [];
  let current: SegmentRange | undefined;
  for (let i = 0; i < sorted.length; i++) {
    const segno = sorted[i]!;
    if (current === undefined) {
      current = { timeline, first: segno, last: segno };
    } else if (segno === current.last) {
      duplicates.push(segno);
    } else if (segno === current.last + 1n) {
      current.last = segno;
    } else {
      gaps.push({ timeline, after: current.last, before: segno, missing: segno - current.last - 1n });
      ranges.push(current);
      current = { timeline, first: segno, last: segno };
    }
  }
  if (current) ranges.push(current);
  return { timeline, ranges, gaps, duplicates, count: sorted.length - duplicates.length };
}
