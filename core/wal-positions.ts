/**
 * Segment positions of one WAL line, each with a time (epoch ms), held
 * compactly: 16 bytes a segment in typed arrays (a plain list only for a
 * position past 2^64 or below 0, which no real one is). For readers that
 * take a catalog's WAL a page at a time and must never hold its records
 * (agent/status.ts, core/regions.ts WalLineIndex). Pure.
 */
export class PositionList {
  private pos = new BigUint64Array(1024);
  private at = new Float64Array(1024);
  private n = 0;
  private big: { pos: bigint[]; at: number[] } | undefined;
  private sortedCache: { pos: ArrayLike<bigint>; at: ArrayLike<number> } | undefined;

  get length(): number {
    return this.big?.pos.length ?? this.n;
  }

  push(v: bigint, ms: number): void {
    this.sortedCache = undefined;
    if (this.big === undefined && (v < 0n || v > 0xffff_ffff_ffff_ffffn)) this.big = { pos: [...this.pos.subarray(0, this.n)], at: [...this.at.subarray(0, this.n)] };
    if (this.big !== undefined) {
      this.big.pos.push(v);
      this.big.at.push(ms);
      return;
    }
    if (this.n === this.pos.length) {
      const pos = new BigUint64Array(this.n * 2);
      pos.set(this.pos);
      this.pos = pos;
      const at = new Float64Array(this.n * 2);
      at.set(this.at);
      this.at = at;
    }
    this.pos[this.n] = v;
    this.at[this.n++] = ms;
  }

  /** The positions in ascending order with their times; equal positions keep the order they were listed in (repeats kept). */
  sorted(): { pos: ArrayLike<bigint>; at: ArrayLike<number> } {
    if (this.sortedCache !== undefined) return this.sortedCache;
    const pos: ArrayLike<bigint> = this.big?.pos ?? this.pos.subarray(0, this.n);
    const at: ArrayLike<number> = this.big?.at ?? this.at.subarray(0, this.n);
    let inOrder = true;
    for (let i = 1; i < pos.length && inOrder; i++) inOrder = pos[i - 1]! <= pos[i]!;
    if (inOrder) return (this.sortedCache = { pos, at });
    const idx = Uint32Array.from({ length: pos.length }, (_, i) => i).sort((a, b) => (pos[a]! < pos[b]! ? -1 : pos[a]! > pos[b]! ? 1 : a - b));
    const sortedPos = this.big !== undefined ? Array.from(idx, (i) => pos[i]!) : BigUint64Array.from(idx, (i) => pos[i]!);
    return (this.sortedCache = { pos: sortedPos, at: Float64Array.from(idx, (i) => at[i]!) });
  }

  /** The time listed last for position `v`; undefined when it is not listed. */
  timeAt(v: bigint): number | undefined {
    const { pos, at } = this.sorted();
    const i = lastIndexOf(pos, v);
    return i < 0 ? undefined : at[i];
  }
}

/** In ascending `sorted`, the index of the last element equal to `v`, or -1 (a binary search). */
export function lastIndexOf(sorted: ArrayLike<bigint>, v: bigint): number {
  // The first index past `v`: the one before it is the last listing of `v`, if any.
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && sorted[lo - 1] === v ? lo - 1 : -1;
}
