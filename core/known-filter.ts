/**
 * A fixed set of chunk digests that threads share, for the push's encode
 * workers (agent/encode-pool.ts): before compressing a chunk, a worker asks
 * whether the previous manifest holds it, and skips the compression if so
 * (an incremental push reuses most of its chunks; compressing them all would
 * cost ~1 CPU-s per GB for nothing).
 *
 * It keeps the first 8 bytes of each digest (two 32-bit words) in open
 * addressing with linear probing, at most half full, over a buffer that can
 * be a SharedArrayBuffer: 16-32 bytes per chunk (16 MB at 819,200 chunks,
 * a 100 GB database). It is a filter: `has` can say yes for a digest that
 * only shares the 8 bytes with a member (about 1 in 2^64 / n); the caller
 * that holds the full table (core/chunk-table.ts) decides, and encodes a
 * chunk the filter let through by mistake itself. `has` never says no for
 * a member. Pure: no I/O.
 */

/** Words per slot: the digest's first two 32-bit words (native byte order, as a Uint32Array view of the digest reads them). */
const SLOT_WORDS = 2;
const MIN_SLOTS = 16;

export class KnownFilter {
  private readonly words: Uint32Array;
  private readonly mask: number;

  /** Over `buffer`, as another thread's `KnownFilter.buffer` (or a fresh zeroed one of 8 bytes per slot, a power of two slots). */
  constructor(readonly buffer: SharedArrayBuffer | ArrayBuffer) {
    const slots = buffer.byteLength / (SLOT_WORDS * 4);
    if (!Number.isInteger(slots) || slots < MIN_SLOTS || (slots & (slots - 1)) !== 0) throw new RangeError(`a known-chunk filter needs a power of two slots of 8 bytes, got ${buffer.byteLength} bytes`);
    this.words = new Uint32Array(buffer);
    this.mask = slots - 1;
  }

  /** An empty filter with room for `count` digests, in a SharedArrayBuffer (when `shared`) that worker threads can read. */
  static forCount(count: number, shared = true): KnownFilter {
    let slots = MIN_SLOTS;
    while (slots < count * 2) slots *= 2;
    const bytes = slots * SLOT_WORDS * 4;
    return new KnownFilter(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  }

  /**
   * Adds the digest whose first two words are `w0`, `w1`. A digest of all
   * zero bytes there is the empty slot: it is stored as (0, 1), and `has`
   * looks it up the same way (one more false positive in 2^32, harmless).
   */
  add(w0: number, w1: number): void {
    const [a, b, o] = this.find(w0, w1);
    this.words[o] = a;
    this.words[o + 1] = b;
  }

  /** Whether a digest with these first two words may be a member (never false for one). */
  has(w0: number, w1: number): boolean {
    const [, , o] = this.find(w0, w1);
    return this.words[o] !== 0 || this.words[o + 1] !== 0;
  }

  /** The key as stored (unsigned, (0, 0) as (0, 1)) and the offset of the slot holding it, or of the empty slot where it goes. */
  private find(w0: number, w1: number): [number, number, number] {
    const a = w0 >>> 0;
    const b = (w0 | w1) === 0 ? 1 : w1 >>> 0;
    const words = this.words;
    for (let i = a & this.mask; ; i = (i + 1) & this.mask) {
      const o = i * SLOT_WORDS;
      const x = words[o]!;
      const y = words[o + 1]!;
      if ((x === 0 && y === 0) || (x === a && y === b)) return [a, b, o];
    }
  }

  /** `has` for a digest given as 32 bytes. */
  hasDigest(digest: Uint8Array): boolean {
    const [w0, w1] = firstWords(digest);
    return this.has(w0, w1);
  }
}

/** The first two 32-bit words of a digest in native byte order (as ChunkTable keeps its keys). */
export function firstWords(digest: Uint8Array): [number, number] {
  if (digest.length < 8) throw new RangeError(`a digest has at least 8 bytes, got ${digest.length}`);
  const v = digest.byteOffset % 4 === 0 ? new Uint32Array(digest.buffer, digest.byteOffset, 2) : new Uint32Array(new Uint8Array(digest.subarray(0, 8)).buffer) /* a copy: Buffer#slice is a view */;
  return [v[0]!, v[1]!];
}
