import { describe, expect, it } from "vitest";
import { crc32c, lastXactTimeInSegment } from "../../core/xact-time.js";

const BLCKSZ = 8192;
const PAGES = 4;
const BODY = PAGES * BLCKSZ - 40 - (PAGES - 1) * 24;
/** Body offset where page 1's body starts (page 0 has the 40-byte long header, the others 24). */
const PAGE1_BODY = BLCKSZ - 40;
const PG_EPOCH_US = 946_684_800_000_000n;
/** 2026-12-01T12:00:00Z in microseconds since 1970. */
const T0 = 1_796_126_400_000_000n;
/** The fixture segment's LSN (its first page's xlp_pageaddr): segment 3 of 16 MiB. */
const SEG_LSN = 0x3000000n;
/** The segment's LSN in the file's previous use (a recycled file held segment 1). */
const OLD_SEG_LSN = 0x1000000n;
/** xl_prev of the first record: a record in the previous segment. */
const PREV_SEGMENT_RECORD = SEG_LSN - 0x2d8n;

/** A record's bytes; bodyOf sets xl_prev (the LSN of the record before it unless `prev`) and xl_crc (wrong if `crc` is "bad"). */
interface Rec {
  bytes: Buffer;
  crc?: "bad" | undefined;
  prev?: bigint | undefined;
}
type RecOpts = { blockHeaders?: Buffer; blockData?: Buffer; crc?: "bad"; prev?: bigint };

/** A WAL record as XLogRecordAssemble lays it out: header, block headers, main-data header, block data, main data. */
function record(rmid: number, info: number, main: Buffer, opts: RecOpts = {}): Rec {
  const mainHeader = main.length < 256 ? Buffer.from([255, main.length]) : Buffer.concat([Buffer.from([254]), u32(main.length)]);
  const rest = Buffer.concat([opts.blockHeaders ?? Buffer.alloc(0), mainHeader, opts.blockData ?? Buffer.alloc(0), main]);
  const h = Buffer.alloc(24);
  h.writeUInt32LE(24 + rest.length, 0);
  h.writeUInt32LE(1234, 4);
  h[16] = info;
  h[17] = rmid;
  return { bytes: Buffer.concat([h, rest]), crc: opts.crc, prev: opts.prev };
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
/** xl_xact_commit/abort main data: xact_time (µs since 2000), then xinfo-dependent fields. */
function xactMain(epochMicros: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(epochMicros - PG_EPOCH_US, 0);
  return b;
}
const commit = (t: bigint, opts?: RecOpts): Rec => record(1, 0x00, xactMain(t), opts);
const abort = (t: bigint): Rec => record(1, 0x20, xactMain(t));
/** A heap insert-like record (rmid 10) of `size` main bytes. */
const other = (size: number, opts?: RecOpts): Rec => record(10, 0x00, Buffer.alloc(size, 7), opts);
/** A heap-like record of exactly `length` bytes (a multiple of 8, at least 32). */
const filler = (length: number): Rec => (length - 26 < 256 ? other(length - 26) : other(length - 29));
const switchRecord = (): Rec => record(0, 0x40, Buffer.alloc(0));

/** The LSN of a record starting at body offset `b`: one that starts where a page's body starts is after that page's header. */
function lsnAt(b: number): bigint {
  if (b < PAGE1_BODY) return SEG_LSN + 40n + BigInt(b);
  const page = 1 + Math.floor((b - PAGE1_BODY) / (BLCKSZ - 24));
  return SEG_LSN + BigInt(page * BLCKSZ + 24 + (b - PAGE1_BODY - (page - 1) * (BLCKSZ - 24)));
}

/** Records laid end to end, each MAXALIGNed, from body offset `start`, each linked (xl_prev) to the one before, the first to `firstPrev`. */
function bodyOf(records: Rec[], start = 0, firstPrev = PREV_SEGMENT_RECORD): Buffer {
  const body = Buffer.alloc(BODY);
  let at = start;
  let prev = firstPrev;
  for (const r of records) {
    const bytes = Buffer.from(r.bytes);
    bytes.writeBigUInt64LE(r.prev ?? prev, 8);
    bytes.writeUInt32LE((crc32c(bytes.subarray(24), bytes.subarray(0, 20)) ^ (r.crc === "bad" ? 1 : 0)) >>> 0, 20);
    bytes.copy(body, at);
    prev = lsnAt(at);
    at = (at + bytes.length + 7) & ~7;
  }
  return body;
}

/**
 * A segment whose page bodies are `body`; the first page may start with a continued record of `remLen` bytes.
 * Each page's xlp_pageaddr is SEG_LSN plus its offset, or `pageAddr(page)` when given.
 */
function segment(body: Buffer, remLen = 0, pageAddr = (page: number): bigint => SEG_LSN + BigInt(page * BLCKSZ)): Buffer {
  const seg = Buffer.alloc(PAGES * BLCKSZ);
  let src = 0;
  for (let p = 0; p < PAGES; p++) {
    const off = p * BLCKSZ;
    const long = p === 0;
    seg.writeUInt16LE(0xd110, off);
    seg.writeUInt16LE((long ? 0x0002 : 0) | (long && remLen > 0 ? 0x0001 : 0), off + 2);
    seg.writeUInt32LE(1, off + 4);
    seg.writeBigUInt64LE(pageAddr(p), off + 8);
    if (long) {
      seg.writeUInt32LE(remLen, off + 16);
      seg.writeUInt32LE(16 << 20, off + 32);
      seg.writeUInt32LE(BLCKSZ, off + 36);
    }
    const header = long ? 40 : 24;
    src += body.copy(seg, off + header, src, Math.min(body.length, src + BLCKSZ - header));
  }
  return seg;
}

describe("lastXactTimeInSegment", () => {
  it("returns the latest commit or abort time among the records, whatever their order", () => {
    // Prepare
    const seg = segment(bodyOf([other(100), commit(T0 + 5n), abort(T0 + 9n), other(3000), commit(T0 + 7n)]));
    // Act
    const t = lastXactTimeInSegment(seg);
    // Assess
    expect(t).toBe(T0 + 9n);
  });

  it("reads a commit that crosses a page boundary, and finds the main data after block headers, an origin and block data", () => {
    // Prepare: the commit's header starts 30 bytes before page 0's end; a second commit carries a block reference with an image.
    const blockHeaders = Buffer.concat([
      Buffer.from([0, 0x10 | 0x20]), // block 0, HAS_IMAGE | HAS_DATA, new relation
      Buffer.from([16, 0]), // data_length
      Buffer.from([64, 0, 0, 0, 0x01]), // image length 64, hole offset 0, HAS_HOLE (uncompressed: no hole length)
      Buffer.alloc(12, 1), // RelFileNode
      u32(42), // block number
      Buffer.from([253, 1, 0]), // origin
    ]);
    const withBlock = commit(T0 + 20n, { blockHeaders, blockData: Buffer.alloc(80, 9) });
    const first = other(BLCKSZ - 40 - 24 - 30 - 8);
    const seg = segment(bodyOf([first, commit(T0 + 11n), withBlock]));
    // Act
    const t = lastXactTimeInSegment(seg);
    // Assess
    expect(t).toBe(T0 + 20n);
  });

  it("skips the record continued from the previous segment", () => {
    // Prepare: the first 200 body bytes finish a record begun in the previous segment; they hold what looks like a commit.
    const continued = commit(T0 + 999n);
    const seg = segment(bodyOf([commit(T0 + 3n)], 200), 200);
    continued.bytes.copy(seg, 40);
    // Act
    const t = lastXactTimeInSegment(seg);
    // Assess
    expect(t).toBe(T0 + 3n);
  });

  it("stops at an XLOG_SWITCH, at the end of WAL and at a transaction end whose CRC does not match (nothing after it is trusted)", () => {
    // Prepare
    const afterSwitch = segment(bodyOf([commit(T0 + 1n), switchRecord(), commit(T0 + 50n)]));
    const afterBadCrc = segment(bodyOf([commit(T0 + 1n), commit(T0 + 60n, { crc: "bad" }), commit(T0 + 70n)]));
    const empty = segment(Buffer.alloc(BODY));
    // Act
    const times = [afterSwitch, afterBadCrc, empty].map((s) => lastXactTimeInSegment(s));
    // Assess
    expect(times).toEqual([T0 + 1n, T0 + 1n, undefined]);
  });

  it("stops at a record whose xl_prev is not where the record before it starts (a recycled file's leftovers), whatever its CRC and what follows", () => {
    // Prepare: a leftover commit from the file's previous use links to an LSN of that use; its CRC matches and the next record links to it.
    const seg = segment(bodyOf([commit(T0 + 1n), other(100), commit(T0 + 60n, { prev: OLD_SEG_LSN + 0x1f28n }), commit(T0 + 70n)]));
    // A link that is one record off: to the commit before the record that precedes it.
    const skipped = segment(bodyOf([commit(T0 + 1n), other(100), commit(T0 + 60n, { prev: lsnAt(0) })]));
    // Act
    const times = [seg, skipped].map((s) => lastXactTimeInSegment(s));
    // Assess
    expect(times).toEqual([T0 + 1n, T0 + 1n]);
  });

  it("reads the first record only if its xl_prev is before its own LSN (its predecessor is not in this segment), zero included", () => {
    // Prepare: zero is the first record of a cluster (initdb's checkpoint, the first segment's first record).
    const linked = segment(bodyOf([commit(T0 + 1n)]));
    const zero = segment(bodyOf([commit(T0 + 1n)], 0, 0n));
    const ownLsn = segment(bodyOf([commit(T0 + 1n)], 0, lsnAt(0)));
    const later = segment(bodyOf([commit(T0 + 1n)], 0, SEG_LSN + 0x1000n));
    // Act
    const times = [linked, zero, ownLsn, later].map((s) => lastXactTimeInSegment(s));
    // Assess
    expect(times).toEqual([T0 + 1n, T0 + 1n, undefined, undefined]);
  });

  it("does not checksum records other than transaction ends: a heap record whose CRC does not match, linked in sequence, does not end the walk", () => {
    // Prepare: the walk reads only the heap record's length, which the next record's xl_prev confirms; PostgreSQL checks its CRC on replay.
    const seg = segment(bodyOf([commit(T0 + 1n), other(100, { crc: "bad" }), commit(T0 + 70n)]));
    // Act
    const t = lastXactTimeInSegment(seg);
    // Assess
    expect(t).toBe(T0 + 70n);
  });

  it("links a record that starts where a page's body starts at the page's address plus its header", () => {
    // Prepare: a record fills page 0's body exactly; the commit after it starts on page 1, at LSN page 1 + 24.
    const afterHeader = SEG_LSN + BigInt(BLCKSZ + 24);
    const linked = segment(bodyOf([filler(PAGE1_BODY), commit(T0 + 31n), commit(T0 + 32n, { prev: afterHeader })]));
    // The page boundary itself is not where it starts.
    const atBoundary = segment(bodyOf([filler(PAGE1_BODY), commit(T0 + 31n), commit(T0 + 32n, { prev: SEG_LSN + BigInt(BLCKSZ) })]));
    // Act
    const times = [linked, atBoundary].map((s) => lastXactTimeInSegment(s));
    // Assess
    expect(times).toEqual([T0 + 32n, T0 + 31n]);
  });

  it("reads and links a record whose header is split across a page boundary", () => {
    for (const onPage1 of [8, 16]) {
      // Prepare: page 1's body ends at body offset PAGE1_BODY + BLCKSZ - 24; the commit's header starts `onPage1` bytes before it
      // and goes on after page 2's header, so it is at LSN page 2 - onPage1.
      const page2Body = PAGE1_BODY + BLCKSZ - 24;
      const split = SEG_LSN + BigInt(2 * BLCKSZ - onPage1);
      const seg = segment(bodyOf([filler(PAGE1_BODY), filler(page2Body - onPage1 - PAGE1_BODY), commit(T0 + 41n), commit(T0 + 42n, { prev: split })]));
      const splitOnly = segment(bodyOf([filler(PAGE1_BODY), filler(page2Body - onPage1 - PAGE1_BODY), commit(T0 + 41n)]));
      // Act
      const times = [seg, splitOnly].map((s) => lastXactTimeInSegment(s));
      // Assess
      expect(times).toEqual([T0 + 42n, T0 + 41n]);
    }
  });

  it("ends the WAL where a page whose xlp_pageaddr is not the segment's starts (a recycled file's old page): a record reaching into it is not read", () => {
    // Prepare: commits on page 0 and 1, one that starts 16 bytes before page 2 and one on page 2; page 2 is left from the file's previous use.
    // (Body offsets: commit 0, filler 48, commit 8248 on page 1, filler 8296, commit page2Body - 16, commit after it.)
    const page2Body = PAGE1_BODY + BLCKSZ - 24;
    const records = [commit(T0 + 1n), filler(8200), commit(T0 + 2n), filler(page2Body - 16 - 8296), commit(T0 + 3n), commit(T0 + 4n)];
    const body = bodyOf(records);
    const oldPage2 = segment(body, 0, (page) => (page === 2 ? OLD_SEG_LSN : SEG_LSN) + BigInt(page * BLCKSZ));
    const inPlace = segment(body);
    // Act
    const times = [oldPage2, inPlace].map((s) => lastXactTimeInSegment(s));
    // Assess
    expect(times).toEqual([T0 + 2n, T0 + 4n]);
  });

  it("does not count a commit that runs into the next segment: its bytes are not all here", () => {
    // Prepare: a commit whose last 8 bytes would lie past the segment's end.
    const c = commit(T0 + 80n);
    const fill = other(BODY - c.bytes.length + 8 - 24 - 8);
    const seg = segment(bodyOf([commit(T0 + 2n), fill, c]).subarray(0, BODY));
    // Act
    const t = lastXactTimeInSegment(seg);
    // Assess
    expect(t).toBe(T0 + 2n);
  });

  it("computes CRC-32C as PostgreSQL does (the standard check value of '123456789')", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
  });

  it("computes CRC-32C eight bytes at a time as byte at a time, whatever the lengths and the split into parts", () => {
    // Prepare: the one-table definition, and buffers of every length around the 8-byte step
    const table = Array.from({ length: 256 }, (_, n) => {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      return c >>> 0;
    });
    const bytewise = (...parts: Uint8Array[]): number => {
      let c = 0xffffffff;
      for (const p of parts) for (const b of p) c = table[(c ^ b) & 0xff]! ^ (c >>> 8);
      return (c ^ 0xffffffff) >>> 0;
    };
    const bytes = Buffer.from(Array.from({ length: 80 }, (_, i) => (i * 151 + 7) & 0xff));
    // Act / Assess
    for (let len = 0; len <= 40; len++) {
      const b = bytes.subarray(3, 3 + len);
      expect(crc32c(b)).toBe(bytewise(b));
      expect(crc32c(b.subarray(0, len >> 1), b.subarray(len >> 1))).toBe(bytewise(b));
    }
  });
});
