/**
 * Pack objects: many individually compressed snapshot chunks in one S3
 * object, with the pack's own index at its end (docs/packs.md).
 *
 * Why: one object per 128 KiB chunk made requests, cost and time grow with the
 * chunk count (issue #11: 12,817 objects and 4 requests per chunk for a
 * 1.59 GB cluster). A pack holds tens of MiB of chunks, so they grow with
 * bytes instead. Every chunk stays compressed on its own and addressed by the
 * SHA-256 of its raw bytes: dedup, the manifest and verification stay per
 * chunk, a restore reads only the chunks it needs (ranged GETs), and repacking
 * copies stored bytes without recompressing them. Grounded on restic's pack
 * format (blobs, then an encrypted header, then its length) and kopia's
 * (contents, a local index, a postamble with a checksum).
 *
 * Layout, version 1 (all integers little-endian):
 *
 *   offset                 bytes              what
 *   0                      dataLength         chunk 0 stored bytes ‖ chunk 1 ‖ … ‖ chunk n-1, back to back
 *   dataLength             52 × n             index: one entry per chunk, in offset order
 *   dataLength + 52 n      64                 footer
 *
 *   index entry (52 bytes): sha256 (32, raw bytes of the chunk's raw SHA-256)
 *     ‖ offset u64 ‖ storedLength u32 ‖ rawSize u32 ‖ codec u8 ‖ 3 reserved
 *     zero bytes.
 *   footer (64 bytes): version u32 (1) ‖ entryCount u32 ‖ dataLength u64
 *     ‖ indexLength u32 (= 52 × entryCount) ‖ reserved u32 (0)
 *     ‖ checksum (32: SHA-256 of the index bytes followed by the footer's
 *       first 24 bytes, so every byte of the tail is covered)
 *     ‖ magic (8: "WVLTPACK").
 *
 * Rules a valid pack obeys (parsePackIndex checks each, CorruptPackError names
 * the one broken): magic and version; indexLength = 52 × entryCount, at least
 * one entry, at most MAX_PACK_ENTRIES; the checksum; per entry a known codec,
 * zero reserved bytes, positive lengths, storedLength = rawSize for codec
 * "none", inside [0, dataLength); entries in offset order, the first at 0,
 * each starting where the previous one ends and the last ending at
 * dataLength (no overlap, no gap: every data byte belongs to one chunk); no
 * chunk twice; and, when the object's size is known, dataLength + indexLength
 * + 64 equals it.
 *
 * Name: a pack is stored at `db/<id>/packs/<sha256>`, the SHA-256 of all its
 * bytes (like restic). PackBuilder computes it incrementally: the hash is
 * updated with each chunk's stored bytes as they are appended, then with the
 * index and footer, so the name is known when the pack is finished without a
 * second pass. For a single-part PUT this is exactly S3's full-object SHA256
 * checksum, so S3 can verify the upload and a replica's copy against the name
 * without anyone reading the bytes back.
 *
 * Reading the index: the footer is the last 64 bytes and gives the index
 * length, so a reader needs the last indexLength + 64 bytes; packs written with
 * the default entry cap have a tail of at most PACK_TAIL_READ_BYTES, so one
 * ranged GET of that many bytes (`Range: bytes=-1048576`) reads any such
 * index whole. Chunk bytes are verified by whoever decodes them (decode with
 * the entry's codec and raw size, SHA-256 = the entry's name): this module
 * checks structure only.
 *
 * Pure: no I/O.
 */
import { createHash, type Hash } from "node:crypto";
import { CODEC_NAMES, type CodecName } from "./codec.js";
import { CorruptPackError, InvalidInputError, type PackProblem } from "./errors.js";
import { SHA256_RE } from "./hash.js";

const KiB = 1024;
const MiB = 1024 * KiB;

export const PACK_FORMAT_VERSION = 1;
/** The pack's last 8 bytes. */
export const PACK_MAGIC = Buffer.from("WVLTPACK", "ascii");
export const PACK_FOOTER_SIZE = 64;
export const PACK_INDEX_ENTRY_SIZE = 52;

/**
 * Target size of a pack (data + index + footer): 32 MiB, measured with
 * bench/pack-size.ts (1 GiB stored, s3rver; docs/packs.md "Choosing the size"
 * has the tables):
 *  - objects: 30.7 per GB stored (8 MiB: 120, 16 MiB: 60.4). Issue #11 asks
 *    for at most 64 per GB; a snapshot's last pack is partial, so 16 MiB
 *    leaves no margin: the 73 MB stored of pgbench scale 100 would be 5 packs
 *    and a manifest, 82 objects per GB, where 32 MiB makes 3 and a manifest, 55;
 *  - speed: no size was consistently faster. Three runs on a loaded 2-core
 *    machine varied more between runs (8 MiB: 28 to 119 MiB/s written) than
 *    between sizes, and the client's CPU was the same for every size (4.1-4.5 s
 *    per GiB written, 7-11 s per GiB read, decode and hash included). Reads
 *    are coalesced ranges of at most 8 MiB whatever the pack size; only the
 *    one tail read per pack varies (162 GETs per GiB against 194 at 16 MiB);
 *  - memory: with pooled pack buffers a push holds (uploads in flight + 1)
 *    packs: peak RSS 204 MB at 32 MiB with 3 uploads in flight (the same as
 *    16 MiB), 247 MB with 4; 64 MiB took 375 MB with 4, over the 256 MB the
 *    issue allows a push.
 * restic uses 16 MiB, kopia ~20 MiB, rustic 32 MiB.
 */
export const DEFAULT_PACK_TARGET_SIZE = 32 * MiB;
/** Smallest and largest target a PackBuilder accepts. */
export const MIN_PACK_TARGET_SIZE = 64 * KiB;
export const MAX_PACK_TARGET_SIZE = 1024 * MiB;

/**
 * Chunks per pack a PackBuilder puts in by default. It binds only for chunks
 * that compress below ~5.5 KiB (pgbench blocks, ~5.7 KiB stored each, fill a
 * 32 MiB pack by size at ~5,800). It bounds what ingest does per pack
 * whatever the data: PromotePacks decodes and hashes every chunk of a pack,
 * and takes a pack this full alone (functions/snapshot/common.ts
 * packsPerBatch). At 16,384 (the cap until bench:scale at 100 GB of highly
 * compressible blocks) a pack held 2 GiB of raw bytes and a batch 8 GiB and
 * 65,536 chunk records: 92 s of the step's 300 s on a quiet machine, a
 * timeout on a loaded one. At 4,096 (stops 33-47) pgbench's scale-100
 * cluster took 4 packs of 13-33 MB and, with its manifest's header and 2
 * pages, 92 objects per GB stored, over issue 11's 64 (bench:snapshot-restore
 * counts them since stop 48). At 6,144: at most 768 MiB raw per pack of 128
 * KiB blocks, no chunk records (packs are recorded whole), and that cluster
 * is 3 packs and one manifest object (docs/packs.md "Chunks per pack").
 * Its index is 312 KiB.
 */
export const DEFAULT_MAX_PACK_ENTRIES = 6_144;
/** The format's own cap (parse refuses more): an index of at most 16 MiB, as restic's header. */
export const MAX_PACK_ENTRIES = Math.floor((16 * MiB) / PACK_INDEX_ENTRY_SIZE);
/** One ranged GET of this many bytes from the end reads the whole tail of a pack built with the default entry cap. */
export const PACK_TAIL_READ_BYTES = 1 * MiB;

/** Largest stored or raw chunk the index can describe (u32). */
export const MAX_PACK_CHUNK_BYTES = 0xffff_ffff;

/**
 * Codec ids in the index. Append only: an id, once written, names its codec
 * forever.
 */
export const PACK_CODEC_IDS: Readonly<Record<CodecName, number>> = Object.freeze({
  none: 0,
  zstd: 1,
  gzip: 2,
  "fflate-gzip": 3,
});
const CODEC_BY_ID: ReadonlyMap<number, CodecName> = new Map(CODEC_NAMES.map((c) => [PACK_CODEC_IDS[c], c]));

/** One chunk as a pack's index records it. Offsets and lengths are in stored (encoded) bytes. */
export interface PackEntry {
  /** SHA-256 of the chunk's raw (decoded) bytes: its name everywhere. */
  sha256: string;
  /** Where its stored bytes start in the pack. */
  offset: number;
  /** Stored (encoded) bytes. */
  storedLength: number;
  codec: CodecName;
  /** Raw (decoded) bytes. */
  rawSize: number;
}

/** What the footer says. */
export interface PackFooter {
  version: number;
  entryCount: number;
  /** Bytes of chunk data: the index starts here. */
  dataLength: number;
  indexLength: number;
  /** SHA-256 of the index and the footer's first 24 bytes, lowercase hex. */
  checksum: string;
  /** Bytes a reader needs from the end of the pack to parse its index: indexLength + PACK_FOOTER_SIZE. */
  tailLength: number;
  /** The whole pack's size, as the footer implies it. */
  packSize: number;
}

export interface PackIndex {
  footer: PackFooter;
  /** In offset order. */
  entries: PackEntry[];
}

export interface ParsePackOptions {
  /** How the pack is named in messages, e.g. its key (default "pack"). */
  what?: string;
  /** The object's size, when known (HEAD, list, Content-Range): then a pack that is shorter or longer than its footer says is refused. */
  packSize?: number;
}

function corrupt(what: string, problem: PackProblem, message: string, entry?: number): CorruptPackError {
  return new CorruptPackError(`${what} ${message}`, { problem, ...(entry === undefined ? {} : { entry }) });
}

const short = (sha: string): string => `${sha.slice(0, 12)}…`;

// ---------------------------------------------------------------------------
// Names and keys

export { vaultPackKey } from "./keys.js";

// ---------------------------------------------------------------------------
// Writing

/**
 * The tail of a pack (index ‖ footer) for these entries and this data length.
 * No validation: PackBuilder only calls it on entries it laid out itself, and
 * tests use it to write the malformed packs the parser must refuse.
 */
export function encodePackTail(entries: readonly PackEntry[], dataLength: number): Buffer {
  const indexLength = entries.length * PACK_INDEX_ENTRY_SIZE;
  const tail = Buffer.alloc(indexLength + PACK_FOOTER_SIZE);
  entries.forEach((e, i) => {
    const at = i * PACK_INDEX_ENTRY_SIZE;
    tail.write(e.sha256, at, 32, "hex");
    tail.writeBigUInt64LE(BigInt(e.offset), at + 32);
    tail.writeUInt32LE(e.storedLength, at + 40);
    tail.writeUInt32LE(e.rawSize, at + 44);
    tail.writeUInt8(PACK_CODEC_IDS[e.codec], at + 48);
  });
  const f = indexLength;
  tail.writeUInt32LE(PACK_FORMAT_VERSION, f);
  tail.writeUInt32LE(entries.length, f + 4);
  tail.writeBigUInt64LE(BigInt(dataLength), f + 8);
  tail.writeUInt32LE(indexLength, f + 16);
  tail.writeUInt32LE(0, f + 20);
  createHash("sha256").update(tail.subarray(0, f + 24)).digest().copy(tail, f + 24);
  PACK_MAGIC.copy(tail, f + 56);
  return tail;
}

/** A chunk to put in a pack: its stored (encoded) bytes and what they decode to. */
export interface PackChunk {
  sha256: string;
  rawSize: number;
  codec: CodecName;
  stored: Uint8Array;
}

/** A finished pack, ready to upload under vaultPackKey(db, name). */
export interface BuiltPack {
  /** SHA-256 of `bytes`, lowercase hex. */
  name: string;
  bytes: Buffer;
  entries: PackEntry[];
  dataLength: number;
  indexLength: number;
}

export interface PackBuilderOptions {
  /** Pack size to aim at, data + index + footer (default DEFAULT_PACK_TARGET_SIZE). */
  targetSize?: number;
  /** Chunks per pack at most (default DEFAULT_MAX_PACK_ENTRIES). */
  maxEntries?: number;
  /**
   * Gives the buffer of a new pack, at least `capacity` bytes (called at each
   * pack's first chunk; default Buffer.allocUnsafeSlow). An agent passes a
   * pool that takes back a pack's buffer once its upload is done: memory is
   * then a fixed number of pack buffers, instead of whatever the garbage
   * collector has not yet freed (bench/pack-size.ts measured both).
   */
  allocate?: (capacity: number) => Buffer;
}

/**
 * Accumulates encoded chunks into one pack at a time.
 *
 *   for each new chunk: if (!b.fits(stored.length)) upload(b.finish()); b.add(chunk)
 *   at the end:         if (b.count > 0) upload(b.finish())
 *
 * Memory: `add` copies the chunk's stored bytes into the pack's one buffer (the
 * caller's buffer can go), so a builder holds one pack, never more than
 * targetSize bytes, except a pack of one chunk larger than the target (such a
 * chunk gets a pack of its own). The buffer is allocated at the first add of
 * each pack and handed over by `finish`: an agent holds the pack it is filling
 * plus the ones still uploading, nothing else.
 *
 * Name: a running SHA-256 sees every chunk's bytes as they are appended and
 * then the index and footer; `finish` only digests it.
 *
 * Rules: a chunk already in the pack is refused (the caller dedups; a pack
 * never holds a chunk twice); `add` on a full builder is refused, so a pack
 * never exceeds targetSize unless its only chunk does.
 */
export class PackBuilder {
  readonly targetSize: number;
  readonly maxEntries: number;
  private readonly allocate: (capacity: number) => Buffer;
  private buf: Buffer | undefined;
  private hash: Hash | undefined;
  private data = 0;
  private entries: PackEntry[] = [];
  private names = new Set<string>();

  constructor(options: PackBuilderOptions = {}) {
    const target = options.targetSize ?? DEFAULT_PACK_TARGET_SIZE;
    if (!Number.isSafeInteger(target) || target < MIN_PACK_TARGET_SIZE || target > MAX_PACK_TARGET_SIZE) {
      throw new InvalidInputError(`pack target size ${String(target)} is not an integer between ${MIN_PACK_TARGET_SIZE} and ${MAX_PACK_TARGET_SIZE} bytes`);
    }
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_PACK_ENTRIES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1 || maxEntries > MAX_PACK_ENTRIES) {
      throw new InvalidInputError(`pack entry cap ${String(maxEntries)} is not an integer between 1 and ${MAX_PACK_ENTRIES}`);
    }
    this.targetSize = target;
    this.maxEntries = maxEntries;
    this.allocate = options.allocate ?? ((capacity) => Buffer.allocUnsafeSlow(capacity));
  }

  /** Chunks in the pack being built. */
  get count(): number {
    return this.entries.length;
  }

  /** Bytes the pack would have if finished now (data, index and footer). */
  get size(): number {
    return this.data + this.entries.length * PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE;
  }

  /** Whether the pack being built already holds this chunk. */
  has(sha256: string): boolean {
    return this.names.has(sha256);
  }

  /** Whether a chunk of `storedLength` bytes may be added now; always true for an empty builder. */
  fits(storedLength: number): boolean {
    if (this.entries.length === 0) return true;
    if (this.entries.length >= this.maxEntries) return false;
    return this.size + storedLength + PACK_INDEX_ENTRY_SIZE <= this.targetSize;
  }

  /** Appends a chunk's stored bytes; returns its index entry. */
  add(chunk: PackChunk): PackEntry {
    const { sha256, rawSize, codec, stored } = chunk;
    if (!SHA256_RE.test(sha256)) throw new InvalidInputError(`chunk id '${sha256}' is not a lowercase hex SHA-256`);
    if (!(CODEC_NAMES as readonly string[]).includes(codec)) throw new InvalidInputError(`chunk ${short(sha256)}: unknown codec '${String(codec)}'`);
    const n = stored.byteLength;
    if (n === 0 || n > MAX_PACK_CHUNK_BYTES) throw new InvalidInputError(`chunk ${short(sha256)}: ${n} stored bytes, expected 1 to ${MAX_PACK_CHUNK_BYTES}`);
    if (!Number.isSafeInteger(rawSize) || rawSize < 1 || rawSize > MAX_PACK_CHUNK_BYTES) {
      throw new InvalidInputError(`chunk ${short(sha256)}: raw size ${String(rawSize)}, expected 1 to ${MAX_PACK_CHUNK_BYTES}`);
    }
    if (codec === "none" && rawSize !== n) throw new InvalidInputError(`chunk ${short(sha256)}: codec none, but ${n} stored bytes for ${rawSize} raw`);
    if (this.names.has(sha256)) throw new InvalidInputError(`chunk ${short(sha256)} is already in this pack`);
    if (!this.fits(n)) {
      throw new InvalidInputError(`chunk ${short(sha256)} (${n} bytes) does not fit the pack (${this.size} of ${this.targetSize} bytes, ${this.count} chunks): finish it first`);
    }
    if (this.buf === undefined) {
      // Virtual until written: a small last pack touches only the pages it uses.
      const capacity = Math.max(this.targetSize, n + PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE);
      this.buf = this.allocate(capacity);
      if (this.buf.length < capacity) throw new InvalidInputError(`the pack buffer allocator gave ${this.buf.length} bytes, fewer than the ${capacity} asked for`);
      this.hash = createHash("sha256");
    }
    this.buf.set(stored, this.data);
    this.hash!.update(this.buf.subarray(this.data, this.data + n));
    const entry: PackEntry = { sha256, offset: this.data, storedLength: n, codec, rawSize };
    this.data += n;
    this.entries.push(entry);
    this.names.add(sha256);
    return entry;
  }

  /** Writes the index and footer, names the pack and starts an empty one. */
  finish(): BuiltPack {
    if (this.buf === undefined || this.entries.length === 0) throw new InvalidInputError("cannot finish an empty pack: add a chunk first");
    const tail = encodePackTail(this.entries, this.data);
    tail.copy(this.buf, this.data);
    this.hash!.update(tail);
    const pack: BuiltPack = {
      name: this.hash!.digest("hex"),
      bytes: this.buf.subarray(0, this.data + tail.length),
      entries: this.entries,
      dataLength: this.data,
      indexLength: tail.length - PACK_FOOTER_SIZE,
    };
    this.buf = undefined;
    this.hash = undefined;
    this.data = 0;
    this.entries = [];
    this.names = new Set();
    return pack;
  }
}

// ---------------------------------------------------------------------------
// Reading

/**
 * Reads the footer from the last bytes of a pack: `tail` is any suffix of the
 * pack at least PACK_FOOTER_SIZE long (the whole pack will do).
 */
export function parsePackFooter(tail: Uint8Array, options: ParsePackOptions = {}): PackFooter {
  const what = options.what ?? "pack";
  const { packSize } = options;
  if (packSize !== undefined && tail.byteLength > packSize) {
    throw new InvalidInputError(`${what}: ${tail.byteLength} bytes given as its tail, but the pack is ${packSize} bytes`);
  }
  const size = packSize ?? tail.byteLength;
  if (tail.byteLength < PACK_FOOTER_SIZE) {
    if (tail.byteLength === size) throw corrupt(what, "truncated", `is ${size} bytes, shorter than the ${PACK_FOOTER_SIZE}-byte footer of a pack`);
    throw new InvalidInputError(`${what}: ${tail.byteLength} bytes given as its tail, fewer than the ${PACK_FOOTER_SIZE}-byte footer`);
  }
  const b = Buffer.from(tail.buffer, tail.byteOffset + tail.byteLength - PACK_FOOTER_SIZE, PACK_FOOTER_SIZE);
  if (!b.subarray(56).equals(PACK_MAGIC)) {
    throw corrupt(what, "bad_magic", `does not end with the pack magic "WVLTPACK" (last 8 bytes ${b.subarray(56).toString("hex")}): not a pack, or truncated`);
  }
  const version = b.readUInt32LE(0);
  if (version !== PACK_FORMAT_VERSION) {
    throw corrupt(what, "unsupported_version", `has pack format version ${version}; this walvault reads version ${PACK_FORMAT_VERSION}`);
  }
  const entryCount = b.readUInt32LE(4);
  const data = b.readBigUInt64LE(8);
  const indexLength = b.readUInt32LE(16);
  const reserved = b.readUInt32LE(20);
  if (reserved !== 0) throw corrupt(what, "bad_footer", `footer has reserved bytes set (${reserved})`);
  if (entryCount === 0) throw corrupt(what, "bad_footer", "footer says the pack holds no chunk");
  if (entryCount > MAX_PACK_ENTRIES) throw corrupt(what, "bad_footer", `footer claims ${entryCount} chunks, more than the ${MAX_PACK_ENTRIES} a pack may hold`);
  if (indexLength !== entryCount * PACK_INDEX_ENTRY_SIZE) {
    throw corrupt(what, "bad_footer", `footer says ${entryCount} entries but an index of ${indexLength} bytes (expected ${entryCount * PACK_INDEX_ENTRY_SIZE})`);
  }
  if (data > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(what, "bad_footer", `footer claims ${data} bytes of chunk data`);
  const dataLength = Number(data);
  const tailLength = indexLength + PACK_FOOTER_SIZE;
  const impliedSize = dataLength + tailLength;
  if (packSize !== undefined && impliedSize !== packSize) {
    const how = impliedSize > packSize ? "truncated" : "has trailing bytes";
    throw corrupt(what, "truncated", `is ${packSize} bytes, but its footer describes ${impliedSize} (${dataLength} of chunk data, ${indexLength} of index, ${PACK_FOOTER_SIZE} of footer): ${how}`);
  }
  return { version, entryCount, dataLength, indexLength, checksum: b.subarray(24, 56).toString("hex"), tailLength, packSize: impliedSize };
}

/**
 * Reads and validates a pack's index from its last bytes: `tail` must hold at
 * least the footer's tailLength bytes (PACK_TAIL_READ_BYTES always does for
 * packs with the default entry cap; the whole pack always does). Throws
 * CorruptPackError naming the first problem found.
 */
export function parsePackIndex(tail: Uint8Array, options: ParsePackOptions = {}): PackIndex {
  const what = options.what ?? "pack";
  const footer = parsePackFooter(tail, options);
  const size = options.packSize ?? tail.byteLength;
  if (tail.byteLength < footer.tailLength) {
    if (tail.byteLength === size) {
      throw corrupt(what, "truncated", `is ${size} bytes, shorter than its ${footer.indexLength}-byte index and footer`);
    }
    throw new InvalidInputError(`${what}: ${tail.byteLength} bytes given as its tail, but its index and footer take the last ${footer.tailLength}: read that many`);
  }
  const t = Buffer.from(tail.buffer, tail.byteOffset + tail.byteLength - footer.tailLength, footer.tailLength);
  const checksum = createHash("sha256").update(t.subarray(0, footer.indexLength + 24)).digest("hex");
  if (checksum !== footer.checksum) {
    throw corrupt(what, "index_hash_mismatch", `index does not match the checksum in its footer (${short(checksum)} computed, ${short(footer.checksum)} recorded): the index or footer is corrupt`);
  }
  const entries: PackEntry[] = [];
  const seen = new Map<string, number>();
  let end = 0;
  for (let i = 0; i < footer.entryCount; i++) {
    const at = i * PACK_INDEX_ENTRY_SIZE;
    const sha256 = t.toString("hex", at, at + 32);
    const offset = t.readBigUInt64LE(at + 32);
    const storedLength = t.readUInt32LE(at + 40);
    const rawSize = t.readUInt32LE(at + 44);
    const codecId = t.readUInt8(at + 48);
    const name = `index entry ${i} (chunk ${short(sha256)})`;
    if (t[at + 49] !== 0 || t[at + 50] !== 0 || t[at + 51] !== 0) throw corrupt(what, "bad_entry", `${name} has reserved bytes set`, i);
    const codec = CODEC_BY_ID.get(codecId);
    if (codec === undefined) throw corrupt(what, "bad_entry", `${name} has unknown codec id ${codecId}`, i);
    if (storedLength === 0) throw corrupt(what, "bad_entry", `${name} has a stored length of 0`, i);
    if (rawSize === 0) throw corrupt(what, "bad_entry", `${name} has a raw size of 0`, i);
    if (codec === "none" && storedLength !== rawSize) {
      throw corrupt(what, "bad_entry", `${name} is stored uncompressed (codec none) but records ${storedLength} stored bytes for ${rawSize} raw`, i);
    }
    if (offset + BigInt(storedLength) > BigInt(footer.dataLength)) {
      throw corrupt(what, "out_of_bounds", `${name} at bytes ${offset}-${offset + BigInt(storedLength) - 1n} lies outside the ${footer.dataLength} bytes of chunk data`, i);
    }
    const off = Number(offset);
    if (off < end) {
      const prev = entries[i - 1]!;
      throw corrupt(what, "overlap", `${name} at bytes ${off}-${off + storedLength - 1} overlaps index entry ${i - 1} at bytes ${prev.offset}-${end - 1} (entries must follow each other in offset order)`, i);
    }
    if (off > end) {
      const after = i === 0 ? "the chunk data starts at byte 0" : `the previous chunk ends at byte ${end}`;
      throw corrupt(what, "gap", `${name} starts at byte ${off}, but ${after}: bytes ${end}-${off - 1} belong to no chunk`, i);
    }
    const first = seen.get(sha256);
    if (first !== undefined) throw corrupt(what, "duplicate_chunk", `holds chunk ${sha256} twice: index entries ${first} and ${i}`, i);
    seen.set(sha256, i);
    entries.push({ sha256, offset: off, storedLength, codec, rawSize });
    end = off + storedLength;
  }
  if (end !== footer.dataLength) {
    throw corrupt(what, "gap", `chunk data bytes ${end}-${footer.dataLength - 1} after the last index entry belong to no chunk`);
  }
  return { footer, entries };
}

/**
 * Validates a whole pack: its index (parsePackIndex) and its name (the
 * SHA-256 of all its bytes). Chunk contents are the decoder's to check.
 */
export function verifyPack(bytes: Uint8Array, name: string, options: { what?: string } = {}): PackIndex {
  const what = options.what ?? `pack ${name}`;
  const index = parsePackIndex(bytes, { what, packSize: bytes.byteLength });
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== name) throw corrupt(what, "name_mismatch", `hashes to ${short(actual)}, not to its name`);
  return index;
}

// ---------------------------------------------------------------------------
// Ranged reads for restore

/**
 * Bytes of unwanted chunks a read may span to join two wanted ones: 1 MiB, as
 * restic (maxUnusedRange). Below it, one more request costs more than the
 * bytes (S3: ~20-50 ms to first byte and a GET charge, against ~10 ms for
 * 1 MiB on one connection).
 */
export const DEFAULT_READ_MAX_GAP = 1 * MiB;
/**
 * Longest coalesced read: bounds what a restore holds per read in flight
 * (8 MiB × 16 reads = 128 MiB), while a read of whole-pack regions still
 * moves MiBs per request.
 */
export const DEFAULT_READ_MAX_SIZE = 8 * MiB;

/** One ranged GET: bytes [start, end) of the pack, holding `chunks` (offset order). */
export interface PackRead<T> {
  start: number;
  /** Exclusive. */
  end: number;
  chunks: T[];
}

export interface CoalesceOptions {
  /** Unwanted bytes a read may span between two wanted chunks (default DEFAULT_READ_MAX_GAP). */
  maxGap?: number;
  /** Longest read (default DEFAULT_READ_MAX_SIZE); a chunk longer than this is read alone. */
  maxReadSize?: number;
}

/**
 * Groups wanted chunks of ONE pack into ranged reads: sorted by offset, each
 * chunk joins the current read when the bytes between them are at most
 * maxGap and the read stays within maxReadSize; otherwise it starts a new read.
 * A chunk wanted twice (same offset and length) is read once. Wanted chunks
 * that overlap without being the same one cannot come from one valid index
 * and are refused.
 */
export function coalescePackReads<T extends { offset: number; storedLength: number }>(
  wanted: readonly T[],
  options: CoalesceOptions = {},
): PackRead<T>[] {
  const maxGap = options.maxGap ?? DEFAULT_READ_MAX_GAP;
  const maxReadSize = options.maxReadSize ?? DEFAULT_READ_MAX_SIZE;
  if (!Number.isSafeInteger(maxGap) || maxGap < 0) throw new InvalidInputError(`read gap ${String(maxGap)} is not a non-negative integer`);
  if (!Number.isSafeInteger(maxReadSize) || maxReadSize < 1) throw new InvalidInputError(`read size ${String(maxReadSize)} is not a positive integer`);
  const sorted = [...wanted].sort((a, b) => a.offset - b.offset || a.storedLength - b.storedLength);
  const reads: PackRead<T>[] = [];
  let cur: PackRead<T> | undefined;
  for (const c of sorted) {
    if (!Number.isSafeInteger(c.offset) || c.offset < 0 || !Number.isSafeInteger(c.storedLength) || c.storedLength < 1) {
      throw new InvalidInputError(`wanted chunk at offset ${String(c.offset)}, length ${String(c.storedLength)} is not a byte range`);
    }
    const end = c.offset + c.storedLength;
    if (cur !== undefined) {
      const last = cur.chunks[cur.chunks.length - 1]!;
      if (c.offset === last.offset && c.storedLength === last.storedLength) continue;
      if (c.offset < cur.end) {
        throw new InvalidInputError(`wanted chunks at bytes ${last.offset}-${cur.end - 1} and ${c.offset}-${end - 1} overlap: they are not entries of one pack`);
      }
      if (c.offset - cur.end <= maxGap && end - cur.start <= maxReadSize) {
        cur.chunks.push(c);
        cur.end = end;
        continue;
      }
    }
    cur = { start: c.offset, end, chunks: [c] };
    reads.push(cur);
  }
  return reads;
}

/** The HTTP Range header of a read: "bytes=start-last" (inclusive). */
export function rangeHeader(read: { start: number; end: number }): string {
  return `bytes=${read.start}-${read.end - 1}`;
}

/** The stored bytes of `chunk` within the bytes a read returned (a view, no copy). */
export function chunkOfRead(read: { start: number; end: number }, body: Uint8Array, chunk: { offset: number; storedLength: number }): Buffer {
  if (body.byteLength !== read.end - read.start) {
    throw new InvalidInputError(`a ranged read of bytes ${read.start}-${read.end - 1} returned ${body.byteLength} bytes, not ${read.end - read.start}`);
  }
  const from = chunk.offset - read.start;
  if (from < 0 || chunk.offset + chunk.storedLength > read.end) {
    throw new InvalidInputError(`chunk at bytes ${chunk.offset}-${chunk.offset + chunk.storedLength - 1} is not within the read of bytes ${read.start}-${read.end - 1}`);
  }
  return Buffer.from(body.buffer, body.byteOffset + from, chunk.storedLength);
}
