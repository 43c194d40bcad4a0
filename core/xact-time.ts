/**
 * The latest transaction end time (commit or abort) in a PostgreSQL WAL
 * segment. Ingest records it on the segment's catalog record (`lastXactAt`),
 * because PostgreSQL stops at a time target T only on a transaction end after
 * T (xlogrecovery.c recoveryStopsBefore: commit, commit prepared, abort,
 * abort prepared; with recovery_target_inclusive, the first whose time > T) and
 * otherwise fails at the end of the archived WAL ("recovery ended before
 * configured recovery target was reached"). Knowing the latest one in the
 * archive, a random verification target can be drawn where PostgreSQL will
 * reach it (core/verify-policy.ts postgresTargetEnd), whatever the archive lag
 * or however idle the database.
 *
 * The walk (xlogreader.c, xlogrecord.h, xlog_internal.h, PostgreSQL 10+):
 * page headers are cut out (core/restore-point.ts pageLayout); on the first
 * page a record continued from the previous segment (XLP_FIRST_IS_CONTRECORD,
 * xlp_rem_len bytes) is skipped; then each record starts MAXALIGNed (8 bytes)
 * after the previous one's xl_tot_len. Where the WAL written in sequence ends
 * is found as PostgreSQL's reader finds it first (ValidXLogRecordHeader), by
 * the records' back links rather than by checksumming every record:
 *  - each record's xl_prev must be the LSN where the record before it starts
 *    (the segment's LSN, xlp_pageaddr of its first page, plus the record's
 *    offset in the file, page headers included: a record that starts where a
 *    page's body starts is at the page's address plus its header). The first
 *    record read has no predecessor here; its xl_prev must be before its own
 *    LSN, as for PostgreSQL's first read at a random position (zero too: the
 *    first record of a cluster, initdb's checkpoint in its first segment, has
 *    none).
 *    A recycled file's leftovers link to LSNs of the file's previous use, a
 *    record read at a wrong offset (a wrong xl_tot_len before it) links to
 *    whatever 8 bytes lie there: either ends the walk;
 *  - a page whose xlp_pageaddr is not the segment's LSN plus its offset (a
 *    page left from the file's previous use) ends the WAL where its body
 *    starts: a record reaching into it is not read;
 *  - a zero or too-small xl_tot_len (end of WAL, zeroed pages), a record that
 *    runs past the segment (or into such a page), an XLOG_SWITCH record (the
 *    rest of the segment is padding) end the walk.
 * The CRC-32C is checked only on the records whose contents the walk reads:
 * transaction end records, whose time it would take; one that does not match
 * ends the walk (nothing after it is trusted). Other records are linked but
 * not checksummed (PostgreSQL checks their CRC on replay): the walk reads only
 * their xl_tot_len, and a wrong one is caught by the next record's xl_prev.
 * (Checksumming every record, with a copy of each, the walk took ~19 ms per
 * 16 MiB pgbench segment; linked, it takes ~1 ms.) Only records whose bytes
 * lie wholly in this segment and that are linked from its first record are
 * read, and every time taken is from a record whose CRC matches, so the
 * result is a lower bound: safe for drawing reachable targets, never later
 * than the truth.
 *
 * A transaction end record (rmid RM_XACT_ID = 1; info & XLOG_XACT_OPMASK in
 * COMMIT 0x00, ABORT 0x20, COMMIT_PREPARED 0x30, ABORT_PREPARED 0x40) has its
 * main data last in the record (XLogRecordAssemble); its first 8 bytes are
 * xact_time, microseconds since 2000-01-01 UTC.
 *
 * Pure.
 */
import { pageLayout, type PageLayout } from "./restore-point.js";

const XLP_FIRST_IS_CONTRECORD = 0x0001;
/** XLogPageHeaderData: xlp_pageaddr (u64) and xlp_rem_len (u32) offsets; a segment's first page has the 40-byte long header. */
const XLP_PAGEADDR = 8;
const XLP_REM_LEN = 16;
const LONG_PHD = 40;
const RECORD_HEADER = 24;
const RM_XLOG_ID = 0;
const RM_XACT_ID = 1;
const XLOG_SWITCH = 0x40;
const XLOG_XACT_OPMASK = 0x70;
const XLR_MAX_BLOCK_ID = 32;
const XLR_BLOCK_ID_DATA_SHORT = 255;
const XLR_BLOCK_ID_DATA_LONG = 254;
const XLR_BLOCK_ID_ORIGIN = 253;
const XLR_BLOCK_ID_TOPLEVEL_XID = 252;
const BKPBLOCK_HAS_IMAGE = 0x10;
const BKPBLOCK_SAME_REL = 0x80;
const BKPIMAGE_HAS_HOLE = 0x01;
/** PostgreSQL 15's compressed-image flags (PGLZ, LZ4, ZSTD); 0x02 in 10–14. */
const BKPIMAGE_COMPRESSED = 0x02 | 0x04 | 0x08 | 0x10;
/** Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch). */
const PG_EPOCH_US = 946_684_800_000_000n;

/**
 * CRC-32C tables for slicing by 8 (8 x 256 entries): eight bytes per step
 * instead of one; a segment's records are checked in ~1/3 of the time of the
 * byte-at-a-time loop (16 MiB of WAL: ~38 ms -> ~12 ms here).
 */
const CRC32C_TABLES = (() => {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n]! >>> 8) ^ t[t[(k - 1) * 256 + n]! & 0xff]!;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of the parts in order, as PostgreSQL computes xl_crc. */
export function crc32c(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) c = crc32cUpdate(c, p, 0, p.length);
  return (c ^ 0xffffffff) >>> 0;
}

/** The running CRC-32C `c` (not finalized) carried over `p[from..to)`. */
function crc32cUpdate(c: number, p: Uint8Array, from: number, to: number): number {
  const t = CRC32C_TABLES;
  let i = from;
  const end8 = to - ((to - from) % 8);
  for (; i < end8; i += 8) {
    const a = (c ^ (p[i]! | (p[i + 1]! << 8) | (p[i + 2]! << 16) | (p[i + 3]! << 24))) >>> 0;
    c =
      t[7 * 256 + (a & 0xff)]! ^
      t[6 * 256 + ((a >>> 8) & 0xff)]! ^
      t[5 * 256 + ((a >>> 16) & 0xff)]! ^
      t[4 * 256 + (a >>> 24)]! ^
      t[3 * 256 + p[i + 4]!]! ^
      t[2 * 256 + p[i + 5]!]! ^
      t[256 + p[i + 6]!]! ^
      t[p[i + 7]!]!;
  }
  for (; i < to; i++) c = t[(c ^ p[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** Whether the record at body[pos..pos + totLen) has the xl_crc PostgreSQL computes: over the data after the header, then the header up to xl_crc. */
function recordCrcMatches(body: Buffer, pos: number, totLen: number): boolean {
  const c = crc32cUpdate(crc32cUpdate(0xffffffff, body, pos + RECORD_HEADER, pos + totLen), body, pos, pos + 20);
  return (c ^ 0xffffffff) >>> 0 === body.readUInt32LE(pos + 20);
}

/** Length of the main data of the record at body[pos..end) (its bytes, header included), or undefined when it has none or the headers do not parse. */
function mainDataLength(body: Buffer, pos: number, end: number): number | undefined {
  let p = pos + RECORD_HEADER;
  while (p < end) {
    const id = body[p]!;
    if (id === XLR_BLOCK_ID_DATA_SHORT) return p + 1 < end ? body[p + 1] : undefined;
    if (id === XLR_BLOCK_ID_DATA_LONG) return p + 5 <= end ? body.readUInt32LE(p + 1) : undefined;
    if (id === XLR_BLOCK_ID_ORIGIN) p += 3;
    else if (id === XLR_BLOCK_ID_TOPLEVEL_XID) p += 5;
    else if (id <= XLR_MAX_BLOCK_ID) {
      if (p + 4 > end) return undefined;
      const forkFlags = body[p + 1]!;
      p += 4;
      if (forkFlags & BKPBLOCK_HAS_IMAGE) {
        if (p + 5 > end) return undefined;
        const bimgInfo = body[p + 4]!;
        p += 5;
        if (bimgInfo & BKPIMAGE_HAS_HOLE && bimgInfo & BKPIMAGE_COMPRESSED) p += 2;
      }
      if (!(forkFlags & BKPBLOCK_SAME_REL)) p += 12;
      p += 4;
    } else return undefined;
  }
  return undefined;
}

/** info & XLOG_XACT_OPMASK of a transaction end: COMMIT, ABORT, COMMIT_PREPARED, ABORT_PREPARED. */
function isXactEnd(op: number): boolean {
  return op === 0x00 || op === 0x20 || op === 0x30 || op === 0x40;
}

/**
 * Where the WAL of this segment ends, in body offsets, as far as its pages
 * tell: the body start of the first page whose xlp_pageaddr is not the
 * segment's start LSN (its first page's) plus the page's offset.
 */
function linkedPagesEnd(raw: Buffer, { body, blcksz, bodyStarts }: PageLayout): number {
  const startLo = raw.readUInt32LE(XLP_PAGEADDR);
  const startHi = raw.readUInt32LE(XLP_PAGEADDR + 4);
  for (let i = 1; i < bodyStarts.length; i++) {
    const off = i * blcksz;
    // pageaddr - start, exact as a double (each half's difference is below 2^32).
    const delta = (raw.readUInt32LE(off + XLP_PAGEADDR + 4) - startHi) * 0x1_0000_0000 + (raw.readUInt32LE(off + XLP_PAGEADDR) - startLo);
    if (delta !== off) return bodyStarts[i]!;
  }
  return body.length;
}

/**
 * The latest transaction end time (microseconds since 1970-01-01 UTC) among
 * the records that lie wholly in `segment`, or undefined when it holds none
 * (see the file comment for the walk and where it stops). `layout` is the
 * segment's pageLayout when the caller has it.
 */
export function lastXactTimeInSegment(segment: Uint8Array, layout?: PageLayout): bigint | undefined {
  const raw = Buffer.from(segment.buffer, segment.byteOffset, segment.byteLength);
  if (raw.length < LONG_PHD) return undefined;
  const pages = layout ?? pageLayout(segment);
  const { body, blcksz, bodyStarts, headers } = pages;
  if (bodyStarts.length === 0) return undefined;
  const end = linkedPagesEnd(raw, pages);
  const startLo = raw.readUInt32LE(XLP_PAGEADDR);
  const startHi = raw.readUInt32LE(XLP_PAGEADDR + 4);
  let pos = raw.readUInt16LE(2) & XLP_FIRST_IS_CONTRECORD ? raw.readUInt32LE(XLP_REM_LEN) : 0;
  if (pos > end) return undefined;
  pos = (pos + 7) & ~7;
  let page = 0;
  /** Segment offset (page headers included) of the previous record read, or -1 before the first. */
  let prevOff = -1;
  let last: bigint | undefined;
  while (pos + RECORD_HEADER <= end) {
    const totLen = body.readUInt32LE(pos);
    if (totLen < RECORD_HEADER || totLen > end - pos) break;
    // The record's LSN, as its offset in the segment: the page it starts on (a start where a page's body starts is on that page).
    while (page + 1 < bodyStarts.length && bodyStarts[page + 1]! <= pos) page++;
    const off = page * blcksz + headers[page]! + (pos - bodyStarts[page]!);
    // xl_prev - start LSN, exact as a double.
    const prevHi = body.readUInt32LE(pos + 12);
    const prevLo = body.readUInt32LE(pos + 8);
    const prevDelta = (prevHi - startHi) * 0x1_0000_0000 + (prevLo - startLo);
    if (prevOff >= 0 ? prevDelta !== prevOff : prevDelta >= off) break;
    prevOff = off;
    const info = body[pos + 16]!;
    const rmid = body[pos + 17]!;
    if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH) break;
    if (rmid === RM_XACT_ID && isXactEnd(info & XLOG_XACT_OPMASK)) {
      if (!recordCrcMatches(body, pos, totLen)) break;
      const len = mainDataLength(body, pos, pos + totLen);
      if (len !== undefined && len >= 8 && len <= totLen - RECORD_HEADER) {
        const t = body.readBigInt64LE(pos + totLen - len) + PG_EPOCH_US;
        if (last === undefined || t > last) last = t;
      }
    }
    pos = (pos + totLen + 7) & ~7;
  }
  return last;
}
