import { describe, expect, it } from "vitest";
import { crc32c, lastXactTimeInSegment } from "../../core/xact-time.js";

const BLCKSZ = 8192;
const PAGES = 4;
const BODY = PAGES * BLCKSZ - 40 - (PAGES - 1) * 24;
const PG_EPOCH_US = 946_684_800_000_000n;
/** 2026-12-01T12:00:00Z in microseconds since 1970. */
const T0 = 1_796_126_400_000_000n;

/** A WAL record as XLogRecordAssemble lays it out: header, block headers, main-data header, block data, main data; CRC-32C set. */
function record(rmid: number, info: number, main: Buffer, opts: { blockHeaders?: Buffer; blockData?: Buffer; crc?: "bad" } = {}): Buffer {
  const mainHeader = main.length < 256 ? Buffer.from([255, main.length]) : Buffer.concat([Buffer.from([254]), u32(main.length)]);
  const rest = Buffer.concat([opts.blockHeaders ?? Buffer.alloc(0), mainHeader, opts.blockData ?? Buffer.alloc(0), main]);
  const h = Buffer.alloc(24);
  h.writeUInt32LE(24 + rest.length, 0);
  h.writeUInt32LE(1234, 4);
  h.writeBigUInt64LE(0x3000028n, 8);
  h[16] = info;
  h[17] = rmid;
  h.writeUInt32LE((crc32c(rest, h.subarray(0, 20)) ^ (opts.crc === "bad" ? 1 : 0)) >>> 0, 20);
  return Buffer.concat([h, rest]);
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
const commit = (t: bigint, opts?: Parameters<typeof record>[3]): Buffer => record(1, 0x00, xactMain(t), opts);
const abort = (t: bigint): Buffer => record(1, 0x20, xactMain(t));
/** A heap insert-like record (rmid 10) of `size` main bytes. */
const other = (size: number): Buffer => record(10, 0x00, Buffer.alloc(size, 7));
const switchRecord = (): Buffer => record(0, 0x40, Buffer.alloc(0).subarray(0, 0));

/** Records laid end to end, each MAXALIGNed, from body offset `start`. */
function bodyOf(records: Buffer[], start = 0): Buffer {
  const body = Buffer.alloc(BODY);
  let at = start;
  for (const r of records) {
    r.copy(body, at);
    at = (at + r.length + 7) & ~7;
  }
  return body;
}

/** A segment whose page bodies are `body`; the first page may start with a continued record of `remLen` bytes. */
function segment(body: Buffer, remLen = 0): Buffer {
  const seg = Buffer.alloc(PAGES * BLCKSZ);
  let src = 0;
  for (let p = 0; p < PAGES; p++) {
    const off = p * BLCKSZ;
    const long = p === 0;
    seg.writeUInt16LE(0xd110, off);
    seg.writeUInt16LE((long ? 0x0002 : 0) | (long && remLen > 0 ? 0x0001 : 0), off + 2);
    if (long) {
      seg.writeUInt32LE(remLen, off + 16);
      seg.writeUInt32LE(BLCKSZ, off + 28);
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
    continued.copy(seg, 40);
    // Act
    const t = lastXactTimeInSegment(seg);
    // Assess
    expect(t).toBe(T0 + 3n);
  });

  it("stops at an XLOG_SWITCH, at the end of WAL and at a record whose CRC does not match (a recycled file's leftovers)", () => {
    // Prepare
    const afterSwitch = segment(bodyOf([commit(T0 + 1n), switchRecord(), commit(T0 + 50n)]));
    const afterBadCrc = segment(bodyOf([commit(T0 + 1n), commit(T0 + 60n, { crc: "bad" }), commit(T0 + 70n)]));
    const empty = segment(Buffer.alloc(BODY));
    // Act
    const times = [afterSwitch, afterBadCrc, empty].map((s) => lastXactTimeInSegment(s));
    // Assess
    expect(times).toEqual([T0 + 1n, T0 + 1n, undefined]);
  });

  it("does not count a commit that runs into the next segment: its bytes are not all here", () => {
    // Prepare: a commit whose last 8 bytes would lie past the segment's end.
    const c = commit(T0 + 80n);
    const fill = other(BODY - c.length + 8 - 24 - 8);
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
