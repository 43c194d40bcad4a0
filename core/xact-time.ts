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
 * The walk (xlogreader.c, xlogrecord.h, PostgreSQL 10+): page headers are cut
 * out (core/restore-point.ts pageLayout); on the first page a record continued
 * from the previous segment (XLP_FIRST_IS_CONTRECORD, xlp_rem_len bytes) is
 * skipped; then each record starts MAXALIGNed (8 bytes) after the previous
 * one's xl_tot_len. The walk ends at a zero length (end of WAL), at an
 * XLOG_SWITCH record (the rest of the segment is padding), at a record whose
 * CRC-32C does not match (not WAL written in sequence: a recycled file's
 * leftovers) or at a record that runs into the next segment. Only records
 * whose bytes lie wholly in this segment are read, so the result is a lower
 * bound: safe for drawing reachable targets, never later than the truth.
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
const RECORD_HEADER = 24;
const RM_XLOG_ID = 0;
const RM_XACT_ID = 1;
const XLOG_SWITCH = 0x40;
const XLOG_XACT_OPMASK = 0x70;
const XACT_END_OPS = new Set([0x00, 0x20, 0x30, 0x40]);
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
  const t = CRC32C_TABLES;
  let c = 0xffffffff;
  for (const p of parts) {
    let i = 0;
    const end8 = p.length - (p.length % 8);
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
    for (; i < p.length; i++) c = t[(c ^ p[i]!) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function recordCrcMatches(rec: Buffer): boolean {
  return crc32c(rec.subarray(RECORD_HEADER), rec.subarray(0, 20)) === rec.readUInt32LE(20);
}

/** Length of the main data of a record (its bytes, header included), or undefined when it has none or the headers do not parse. */
function mainDataLength(rec: Buffer): number | undefined {
  let p = RECORD_HEADER;
  while (p < rec.length) {
    const id = rec[p]!;
    if (id === XLR_BLOCK_ID_DATA_SHORT) return p + 1 < rec.length ? rec[p + 1] : undefined;
    if (id === XLR_BLOCK_ID_DATA_LONG) return p + 5 <= rec.length ? rec.readUInt32LE(p + 1) : undefined;
    if (id === XLR_BLOCK_ID_ORIGIN) p += 3;
    else if (id === XLR_BLOCK_ID_TOPLEVEL_XID) p += 5;
    else if (id <= XLR_MAX_BLOCK_ID) {
      if (p + 4 > rec.length) return undefined;
      const forkFlags = rec[p + 1]!;
      p += 4;
      if (forkFlags & BKPBLOCK_HAS_IMAGE) {
        if (p + 5 > rec.length) return undefined;
        const bimgInfo = rec[p + 4]!;
        p += 5;
        if (bimgInfo & BKPIMAGE_HAS_HOLE && bimgInfo & BKPIMAGE_COMPRESSED) p += 2;
      }
      if (!(forkFlags & BKPBLOCK_SAME_REL)) p += 12;
      p += 4;
    } else return undefined;
  }
  return undefined;
}

/**
 * The latest transaction end time (microseconds since 1970-01-01 UTC) among
 * the records that lie wholly in `segment`, or undefined when it holds none
 * (see the file comment for the walk and where it stops).
 */
export function lastXactTimeInSegment(segment: Uint8Array, layout?: PageLayout): bigint | undefined {
  const raw = Buffer.from(segment.buffer, segment.byteOffset, segment.byteLength);
  if (raw.length < 40) return undefined;
  const { body } = layout ?? pageLayout(segment);
  let pos = 0;
  if (raw.readUInt16LE(2) & XLP_FIRST_IS_CONTRECORD) pos = raw.readUInt32LE(16);
  let last: bigint | undefined;
  for (pos = (pos + 7) & ~7; pos + RECORD_HEADER <= body.length; pos = (pos + body.readUInt32LE(pos) + 7) & ~7) {
    const totLen = body.readUInt32LE(pos);
    if (totLen < RECORD_HEADER || pos + totLen > body.length) break;
    const rec = body.subarray(pos, pos + totLen);
    const info = rec[16]!;
    const rmid = rec[17]!;
    if (!recordCrcMatches(rec)) break;
    if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH) break;
    if (rmid !== RM_XACT_ID || !XACT_END_OPS.has(info & XLOG_XACT_OPMASK)) continue;
    const len = mainDataLength(rec);
    if (len === undefined || len < 8 || len > totLen - RECORD_HEADER) continue;
    const t = rec.readBigInt64LE(totLen - len) + PG_EPOCH_US;
    if (last === undefined || t > last) last = t;
  }
  return last;
}
