/**
 * A set of SHA-256 hashes held compactly: one Buffer of sorted, distinct
 * 32-byte binary hashes, looked up by binary search. About 32 bytes per hash,
 * against roughly 150 for a Set of 64-character hex strings; the retention
 * sweep holds every chunk a kept snapshot references in one.
 *
 * Built by merging: `addAll` sorts and dedups one batch (a manifest's chunks)
 * and merges it into the set, so holding S snapshots that share most of their
 * chunks costs the distinct chunks only, never S × chunks.
 *
 * Pure: no I/O.
 */
import { InvalidInputError } from "./errors.js";
import { SHA256_RE } from "./hash.js";

const W = 32;

function binary(hex: string): Buffer {
  if (!SHA256_RE.test(hex)) throw new InvalidInputError(`'${hex}' is not a lowercase hex SHA-256`);
  return Buffer.from(hex, "hex");
}

export class SortedHashSet {
  private buf: Buffer = Buffer.alloc(0);

  /** Distinct hashes held. */
  get size(): number {
    return this.buf.length / W;
  }

  /** Bytes the hashes take. */
  get byteLength(): number {
    return this.buf.length;
  }

  /** Adds lowercase hex hashes (duplicates, in the batch or already held, are ignored). */
  addAll(hexes: Iterable<string>): void {
    const batch = [...new Set(hexes)].map(binary).sort(Buffer.compare);
    if (batch.length === 0) return;
    this.merge(Buffer.concat(batch));
  }

  /**
   * Adds the hashes of another set's `toBuffer()` (sorted, distinct 32-byte
   * values: what a sweep keeps between rounds). A buffer that is not a whole
   * number of sorted, distinct hashes rejects with InvalidInputError.
   */
  addSorted(sorted: Uint8Array): void {
    const b = Buffer.from(sorted.buffer, sorted.byteOffset, sorted.byteLength);
    if (b.length % W !== 0) throw new InvalidInputError(`a sorted hash list of ${b.length} bytes is not a whole number of 32-byte hashes`);
    for (let i = W; i < b.length; i += W) {
      if (Buffer.compare(b.subarray(i - W, i), b.subarray(i, i + W)) >= 0) throw new InvalidInputError(`a sorted hash list is out of order at hash ${i / W}`);
    }
    if (b.length > 0) this.merge(b);
  }

  /** The hashes as one buffer of sorted, distinct 32-byte values (a copy). */
  toBuffer(): Buffer {
    return Buffer.from(this.buf);
  }

  /** Merges sorted, distinct 32-byte hashes into the set. */
  private merge(batch: Buffer): void {
    const out = Buffer.allocUnsafe(this.buf.length + batch.length);
    let i = 0;
    let j = 0;
    let o = 0;
    const n = this.size;
    const m = batch.length / W;
    while (i < n || j < m) {
      const a = i < n ? this.buf.subarray(i * W, (i + 1) * W) : undefined;
      const b = j < m ? batch.subarray(j * W, (j + 1) * W) : undefined;
      const c = a === undefined ? 1 : b === undefined ? -1 : Buffer.compare(a, b);
      const next = c <= 0 ? a! : b!;
      if (c <= 0) i++;
      if (c >= 0) j++;
      next.copy(out, o);
      o += W;
    }
    // Duplicates leave slack at the end: keep only what is used.
    this.buf = o === out.length ? out : Buffer.from(out.subarray(0, o));
  }

  has(hex: string): boolean {
    const key = binary(hex);
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.buf.subarray(mid * W, (mid + 1) * W), key);
      if (c === 0) return true;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}
