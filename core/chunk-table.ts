/**
 * A compact set of chunks keyed by SHA-256, for the agent's push: the chunks
 * the previous manifest holds and those this push has settled. A Map of
 * strings to objects costs ~400 bytes per chunk (a 64-character key, an
 * object, a Map entry): 874 MiB at 100 GB (819,200 chunks). Here a chunk is
 * 45 bytes in typed arrays (the 32-byte digest, raw and stored sizes, the
 * pack it went into, codec and two flags), open addressing with linear probing at most 3/4 full:
 * ~55-110 bytes per chunk whatever the garbage collector does.
 *
 * Sizes are below 4 GiB (a chunk is at most a few MiB). Pure: no I/O.
 */
import { CODEC_NAMES, type CodecName } from "./codec.js";

export interface ChunkTableEntry {
  size: number;
  storedSize: number;
  codec: CodecName;
  /** Uploaded by this push. */
  isNew: boolean;
  /** Referenced by this push (a chunk only the previous manifest holds is not). */
  seen: boolean;
  /**
   * The pack it is in, as the caller numbers packs: for a new chunk of a
   * packed push, the sequence number of the pack it went into (packs in the
   * order they were sealed); for another, the number the caller gave the
   * pack it found the chunk in (agent/snapshot-push.ts: its list of packs
   * of earlier pushes).
   */
  pack?: number;
}

const KEY_WORDS = 8;
const NEW = 0x40;
const SEEN = 0x80;
const CODEC_MASK = 0x3f;
const MIN_CAPACITY = 1024;

export class ChunkTable {
  private capacity: number;
  private keys: Uint32Array;
  private sizes: Uint32Array;
  private stored: Uint32Array;
  /** The pack's sequence number + 1; 0: none. */
  private packs: Uint32Array;
  /** 0: empty slot; else codec index + 1 in the low bits, NEW and SEEN flags. */
  private meta: Uint8Array;
  private count = 0;
  private seenCount = 0;
  private seenStoredBytes = 0;
  /** The digest being looked up, as bytes and as words (one buffer, decoded in place: no allocation per lookup). */
  private readonly probeBytes = Buffer.alloc(KEY_WORDS * 4);
  private readonly probe = new Uint32Array(this.probeBytes.buffer, this.probeBytes.byteOffset, KEY_WORDS);

  constructor(expected = 0) {
    let capacity = MIN_CAPACITY;
    while (capacity * 3 < expected * 4) capacity *= 2;
    this.capacity = capacity;
    this.keys = new Uint32Array(capacity * KEY_WORDS);
    this.sizes = new Uint32Array(capacity);
    this.stored = new Uint32Array(capacity);
    this.packs = new Uint32Array(capacity);
    this.meta = new Uint8Array(capacity);
  }

  /** Chunks in the table, seen or not. */
  get size(): number {
    return this.count;
  }

  /** Chunks referenced by this push and the sum of their stored sizes (a manifest's uniqueChunks and storedBytes). */
  seenTotals(): { chunks: number; storedBytes: number } {
    return { chunks: this.seenCount, storedBytes: this.seenStoredBytes };
  }

  get(sha256: string): ChunkTableEntry | undefined {
    const i = this.find(sha256);
    if (this.meta[i] === 0) return undefined;
    return this.entryAt(i);
  }

  private entryAt(i: number): ChunkTableEntry {
    const m = this.meta[i]!;
    const e: ChunkTableEntry = { size: this.sizes[i]!, storedSize: this.stored[i]!, codec: CODEC_NAMES[(m & CODEC_MASK) - 1]!, isNew: (m & NEW) !== 0, seen: (m & SEEN) !== 0 };
    if (this.packs[i] !== 0) e.pack = this.packs[i]! - 1;
    return e;
  }

  /** The distinct `pack` numbers of the chunks referenced by this push that it did not upload (seen, not new). */
  seenReusedPacks(): Set<number> {
    const out = new Set<number>();
    for (let i = 0; i < this.capacity; i++) {
      const m = this.meta[i]!;
      if (m !== 0 && (m & SEEN) !== 0 && (m & NEW) === 0 && this.packs[i] !== 0) out.add(this.packs[i]! - 1);
    }
    return out;
  }

  /** Calls `fn` with the first two 32-bit words (native byte order) of every digest held: what a KnownFilter keeps. */
  forEachPrefix(fn: (w0: number, w1: number) => void): void {
    for (let i = 0; i < this.capacity; i++) if (this.meta[i] !== 0) fn(this.keys[i * KEY_WORDS]!, this.keys[i * KEY_WORDS + 1]!);
  }

  /** The chunk as get() gives it, flagged seen from now on (one probe); undefined when the table does not hold it. */
  markSeen(sha256: string): ChunkTableEntry | undefined {
    const i = this.find(sha256);
    const m = this.meta[i]!;
    if (m === 0) return undefined;
    if ((m & SEEN) === 0) {
      this.meta[i] = m | SEEN;
      this.seenCount++;
      this.seenStoredBytes += this.stored[i]!;
    }
    return this.entryAt(i);
  }

  /** Adds the chunk or replaces what the table holds for it. */
  set(sha256: string, e: ChunkTableEntry): void {
    const codec = CODEC_NAMES.indexOf(e.codec);
    if (codec < 0) throw new RangeError(`unknown codec ${e.codec}`);
    for (const [what, n] of [["size", e.size], ["stored size", e.storedSize]] as const) {
      if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`chunk ${sha256}: ${what} ${n} is not a 32-bit size`);
    }
    if (e.pack !== undefined && (!Number.isInteger(e.pack) || e.pack < 0 || e.pack >= 0xffff_ffff)) throw new RangeError(`chunk ${sha256}: pack ${e.pack} is not a sequence number`);
    let i = this.find(sha256);
    if (this.meta[i] === 0) {
      if ((this.count + 1) * 4 > this.capacity * 3) {
        this.grow();
        i = this.find(sha256);
      }
      this.keys.set(this.probe, i * KEY_WORDS);
      this.count++;
    } else if ((this.meta[i]! & SEEN) !== 0) {
      this.seenCount--;
      this.seenStoredBytes -= this.stored[i]!;
    }
    this.sizes[i] = e.size;
    this.stored[i] = e.storedSize;
    this.packs[i] = e.pack === undefined ? 0 : e.pack + 1;
    this.meta[i] = (codec + 1) | (e.isNew ? NEW : 0) | (e.seen ? SEEN : 0);
    if (e.seen) {
      this.seenCount++;
      this.seenStoredBytes += e.storedSize;
    }
  }

  /** The slot holding `sha256`, or the empty slot where it would go; leaves its words in `probe`. */
  private find(sha256: string): number {
    if (sha256.length !== 64 || this.probeBytes.write(sha256, "hex") !== 32) throw new RangeError(`'${sha256}' is not a hex SHA-256`);
    return this.slotOf(this.probe, this.keys, this.meta, this.capacity);
  }

  private slotOf(p: Uint32Array, keys: Uint32Array, meta: Uint8Array, capacity: number): number {
    const mask = capacity - 1;
    // A digest's words are uniform: the first is the hash (byte order does not matter).
    for (let i = p[0]! & mask; ; i = (i + 1) & mask) {
      if (meta[i] === 0) return i;
      const o = i * KEY_WORDS;
      let same = true;
      for (let w = 0; w < KEY_WORDS; w++) {
        if (keys[o + w] !== p[w]) {
          same = false;
          break;
        }
      }
      if (same) return i;
    }
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const keys = new Uint32Array(capacity * KEY_WORDS);
    const sizes = new Uint32Array(capacity);
    const stored = new Uint32Array(capacity);
    const packs = new Uint32Array(capacity);
    const meta = new Uint8Array(capacity);
    for (let i = 0; i < this.capacity; i++) {
      if (this.meta[i] === 0) continue;
      const key = this.keys.subarray(i * KEY_WORDS, (i + 1) * KEY_WORDS);
      const j = this.slotOf(key, keys, meta, capacity);
      keys.set(key, j * KEY_WORDS);
      sizes[j] = this.sizes[i]!;
      stored[j] = this.stored[i]!;
      packs[j] = this.packs[i]!;
      meta[j] = this.meta[i]!;
    }
    this.capacity = capacity;
    this.keys = keys;
    this.sizes = sizes;
    this.stored = stored;
    this.packs = packs;
    this.meta = meta;
  }
}

/**
 * Numbers for pack names, as a ChunkTable's `pack` of a chunk not new
 * refers to them: the first name asked for is 0, the next new one 1, and a
 * name asked for again keeps its number.
 */
export class PackNumbering {
  /** The names, by number. */
  readonly names: string[] = [];
  private readonly numbers = new Map<string, number>();

  /** Whether `name` has a number already. */
  has(name: string): boolean {
    return this.numbers.has(name);
  }

  numberOf(name: string): number {
    let n = this.numbers.get(name);
    if (n === undefined) {
      n = this.names.push(name) - 1;
      this.numbers.set(name, n);
    }
    return n;
  }
}
