import { describe, expect, it } from "vitest";
import { pageLayout, RestorePointScanner, restorePointsInSegment, walPageBodies } from "../../core/restore-point.js";

const BLCKSZ = 8192;

/** A restore point record as PostgreSQL writes it: XLogRecord, main-data header, rp_time, rp_name[64]. */
function restorePointRecord(name: string): Buffer {
  const r = Buffer.alloc(98);
  r.writeUInt32LE(98, 0); // xl_tot_len
  r.writeUInt32LE(0, 4); // xl_xid
  r.writeBigUInt64LE(0x3000028n, 8); // xl_prev
  r[16] = 0x70; // XLOG_RESTORE_POINT
  r[17] = 0; // RM_XLOG_ID
  r.writeUInt32LE(0xdeadbeef, 20); // xl_crc
  r[24] = 0xff; // XLR_BLOCK_ID_DATA_SHORT
  r[25] = 72;
  r.writeBigInt64LE(815_000_000_000n, 26); // rp_time
  Buffer.from(name, "utf8").copy(r, 34);
  return r;
}

/** A WAL segment of `pages` pages whose bodies (page headers cut out) are `body`, zero-filled. */
function segment(body: Buffer, pages = 4): Buffer {
  const seg = Buffer.alloc(pages * BLCKSZ);
  let src = 0;
  for (let p = 0; p < pages; p++) {
    const off = p * BLCKSZ;
    seg.writeUInt16LE(0xd110, off); // xlp_magic
    const long = p === 0;
    seg.writeUInt16LE(long ? 0x0002 : 0x0001, off + 2);
    if (long) seg.writeUInt32LE(BLCKSZ, off + 36); // xlp_xlog_blcksz
    const header = long ? 40 : 24;
    src += body.copy(seg, off + header, src, Math.min(body.length, src + BLCKSZ - header));
  }
  return seg;
}

/** Bodies with `bytes` placed at body offset `at`. */
function bodyWith(at: number, bytes: Buffer, size = 4 * BLCKSZ - 40 - 3 * 24): Buffer {
  const b = Buffer.alloc(size);
  bytes.copy(b, at);
  return b;
}

describe("RestorePointScanner", () => {
  it("finds a restore point record inside a page, across a page boundary and across two segments", () => {
    // Prepare
    const rec = restorePointRecord("before_the_rest");
    const inPage = segment(bodyWith(1000, rec));
    const acrossPages = segment(bodyWith(BLCKSZ - 40 - 50, rec)); // 50 bytes on page 0, the rest after page 1's header
    const bodySize = 4 * BLCKSZ - 40 - 3 * 24;
    const first = segment(bodyWith(bodySize - 40, rec.subarray(0, 40))); // the name starts at byte 34: cut inside it
    const second = segment(bodyWith(0, rec.subarray(40)));
    // Act
    const a = new RestorePointScanner("before_the_rest").push(inPage);
    const b = new RestorePointScanner("before_the_rest").push(acrossPages);
    const split = new RestorePointScanner("before_the_rest");
    const c1 = split.push(first);
    const c2 = split.push(second);
    // Assess
    expect([a, b, c1, c2]).toEqual([true, true, false, true]);
    expect(walPageBodies(acrossPages).subarray(BLCKSZ - 40 - 50, BLCKSZ - 40 - 50 + 98).equals(rec)).toBe(true);
  });

  it("does not take another name, a prefix of the name, or the name outside a restore point record", () => {
    // Prepare
    const seg = segment(bodyWith(1000, Buffer.concat([restorePointRecord("before_the_rest_2"), Buffer.alloc(6), Buffer.from("nosuchpoint\0")])));
    // Act
    const found = ["before_the_rest", "before_the_rest_", "nosuchpoint", "before"].map((n) => new RestorePointScanner(n).push(seg));
    // Assess
    expect(found).toEqual([false, false, false, false]);
    expect(new RestorePointScanner("before_the_rest_2").push(seg)).toBe(true);
  });
});

describe("restorePointsInSegment", () => {
  const START = 0x3_0000_0000n + 5n * 0x100_0000n; // segment 3/5000000
  const BODY = 4 * BLCKSZ - 40 - 3 * 24;
  const RP_TIME_US = 946_684_800_000_000n + 815_000_000_000n;

  it("returns each restore point with the LSN pg_create_restore_point returns (end of record, MAXALIGNed, page headers counted) and its time", () => {
    // Prepare: one inside page 0, one across pages 1-2, one whose aligned end is exactly page 3's boundary.
    const bytes = bodyWith(0, Buffer.alloc(0), BODY);
    restorePointRecord("in_page").copy(bytes, 1000);
    const across = BLCKSZ - 40 + BLCKSZ - 24 - 50; // 50 bytes at the end of page 1, the rest on page 2
    restorePointRecord("across").copy(bytes, across);
    const atBoundary = 3 * BLCKSZ - 40 - 2 * 24 - 104; // body offset whose end + 104 is page 3's first body byte
    restorePointRecord("at_boundary").copy(bytes, atBoundary);

    // Act
    const found = restorePointsInSegment(segment(bytes), START);

    // Assess
    expect(found).toEqual([
      { name: "in_page", lsn: START + 40n + 1000n + 104n, epochMicros: RP_TIME_US },
      { name: "across", lsn: START + 2n * BigInt(BLCKSZ) + 24n + (104n - 50n), epochMicros: RP_TIME_US },
      { name: "at_boundary", lsn: START + 3n * BigInt(BLCKSZ), epochMicros: RP_TIME_US },
    ]);
  });

  it("does not see a record cut at the segment's end (the scan across segments does), nor anything else", () => {
    // Prepare
    const cut = segment(bodyWith(BODY - 40, restorePointRecord("cut").subarray(0, 40), BODY));
    const other = segment(bodyWith(1000, Buffer.concat([Buffer.alloc(30), Buffer.from("nosuchpoint\0")]), BODY));

    // Act / Assess
    expect(restorePointsInSegment(cut, START)).toEqual([]);
    expect(restorePointsInSegment(other, START)).toEqual([]);
  });
});

describe("pageLayout", () => {
  /** A segment of `pages` pages of `blcksz` bytes whose long header says so, with a system identifier as initdb makes one (its upper half is a Unix time). */
  function segmentOf(blcksz: number, pages: number): Buffer {
    const seg = Buffer.alloc(pages * blcksz);
    for (let p = 0; p < pages; p++) {
      seg.writeUInt16LE(0xd110, p * blcksz);
      seg.writeUInt16LE(p === 0 ? 0x0002 : 0, p * blcksz + 2);
    }
    seg.writeBigUInt64LE((0x6570_1a2bn << 32n) | 0x1234n, 24); // xlp_sysid
    seg.writeUInt32LE(pages * blcksz, 32); // xlp_seg_size
    seg.writeUInt32LE(blcksz, 36); // xlp_xlog_blcksz
    return seg;
  }

  it("cuts pages at the block size the long page header names (xlp_xlog_blcksz), not at the system identifier's bytes", () => {
    // Act
    const big = pageLayout(segmentOf(16384, 3));
    const usual = pageLayout(segmentOf(8192, 3));
    // Assess
    expect(big.blcksz).toBe(16384);
    expect(big.bodyStarts).toEqual([0, 16384 - 40, 2 * 16384 - 40 - 24]);
    expect(big.body.length).toBe(3 * 16384 - 40 - 2 * 24);
    expect(usual.blcksz).toBe(8192);
    expect(usual.body.length).toBe(3 * 8192 - 40 - 2 * 24);
  });

  it("with a scratch buffer, lays out the same bodies into it, and reuses it for the next segment instead of allocating", () => {
    // Prepare: two segments of different contents, and a scratch too small for the first
    const a = segmentOf(8192, 4);
    const b = segmentOf(8192, 4);
    for (let i = 40; i < a.length; i += 97) a[i] = i & 0xff;
    for (let i = 40; i < b.length; i += 89) b[i] = (i >> 3) & 0xff;
    for (const seg of [a, b]) for (let p = 1; p < 4; p++) seg.writeUInt16LE(0xd110, p * 8192), seg.writeUInt16LE(0, p * 8192 + 2);
    const scratch = { buf: Buffer.alloc(16) };

    // Act
    const first = pageLayout(a, scratch);
    const firstBody = Buffer.from(first.body);
    const held = scratch.buf;
    const second = pageLayout(b, scratch);

    // Assess
    expect(firstBody).toEqual(pageLayout(a).body);
    expect(second.body).toEqual(pageLayout(b).body);
    expect({ ...second, body: undefined }).toEqual({ ...pageLayout(b), body: undefined });
    expect(scratch.buf).toBe(held);
    expect(second.body.buffer).toBe(held.buffer);
  });
});
