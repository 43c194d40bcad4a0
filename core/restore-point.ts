/**
 * Finds named restore points (pg_create_restore_point) in PostgreSQL WAL
 * bytes. Ingest records the restore points of each segment it validates
 * (restorePointsInSegment, on the catalog's WAL record), so the planner
 * resolves `restore --target-name` from the catalog with the exact LSN; for a
 * name the catalog does not know (WAL archived before ingest recorded them,
 * a segment past the cap, a record that crosses a segment boundary),
 * `restore` searches the archived WAL replayed after the snapshot is
 * consistent (RestorePointScanner), since PostgreSQL only finds out at the
 * end of replay ("recovery ended before configured recovery target was
 * reached").
 *
 * The record, as PostgreSQL 10+ writes it (xlog.c XLogRestorePoint):
 *   XLogRecord (24 bytes): xl_tot_len = 98, xl_xid, xl_prev, xl_info = 0x70
 *     (XLOG_RESTORE_POINT), xl_rmid = 0 (RM_XLOG_ID), padding, xl_crc;
 *   XLR_BLOCK_ID_DATA_SHORT (0xFF), main data length 72;
 *   xl_restore_point: rp_time (8 bytes, microseconds since 2000-01-01 UTC),
 *     rp_name[64] (NUL-terminated).
 * A record may run across page boundaries, so the page headers (24 bytes, 40
 * on a segment's first page: XLP_LONG_HEADER) are cut out first and the
 * bodies of consecutive segments are searched as one stream.
 *
 * The LSN recorded is what pg_create_restore_point returns: the end of the
 * record, MAXALIGNed (8 bytes), in WAL positions (page headers count; an end
 * exactly at a page boundary is the boundary, as XLogBytePosToEndRecPtr
 * gives it).
 *
 * Pure.
 */

const XLP_LONG_HEADER = 0x0002;
const SHORT_PHD = 24;
const LONG_PHD = 40;
const DEFAULT_BLCKSZ = 8192;
/** Where the long page header keeps xlp_xlog_blcksz (xlog_internal.h XLogLongPageHeaderData). */
const XLP_XLOG_BLCKSZ_OFFSET = 36;
const RECORD_HEADER = 24;
const RP_TOT_LEN = RECORD_HEADER + 2 + 72;
/** MAXALIGN(RP_TOT_LEN) on every platform PostgreSQL 15 builds on with 8-byte alignment. */
const RP_ALIGNED_LEN = (RP_TOT_LEN + 7) & ~7;
/** Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch). */
const PG_EPOCH_US = 946_684_800_000_000n;
/** MAXFNAMELEN - 1: the longest name pg_create_restore_point accepts. */
export const MAX_RESTORE_POINT_NAME_BYTES = 63;

/** A segment's bytes without its page headers. */
export function walPageBodies(segment: Uint8Array): Buffer {
  return pageLayout(segment).body;
}

/** A segment's page layout: the bodies without page headers, and where each page's body starts. */
export interface PageLayout {
  body: Buffer;
  blcksz: number;
  /** Body offset where each page's body starts; page i starts at segment offset i * blcksz. */
  bodyStarts: number[];
  headers: number[];
}

/**
 * Where pageLayout may write a segment's bodies instead of allocating a new
 * buffer per segment: a caller that lays out one segment after another (a
 * Lambda container validating WAL) keeps one and saves a segment-sized
 * allocation, and the garbage collections it brings, per segment. The body
 * returned is then a view of `buf`, valid until the next call with it.
 */
export interface LayoutScratch {
  buf: Buffer;
}

export function pageLayout(segment: Uint8Array, scratch?: LayoutScratch): PageLayout {
  const buf = Buffer.from(segment.buffer, segment.byteOffset, segment.byteLength);
  let blcksz = DEFAULT_BLCKSZ;
  if (buf.length >= LONG_PHD && (buf.readUInt16LE(2) & XLP_LONG_HEADER) !== 0) {
    // XLogLongPageHeaderData: the short header (24 bytes), xlp_sysid (8), xlp_seg_size (4), xlp_xlog_blcksz (4).
    const b = buf.readUInt32LE(XLP_XLOG_BLCKSZ_OFFSET);
    if (b >= 1024 && b <= 65536 && (b & (b - 1)) === 0) blcksz = b;
  }
  if (scratch && scratch.buf.length < buf.length) scratch.buf = Buffer.allocUnsafe(buf.length);
  const out = scratch ? scratch.buf : Buffer.allocUnsafe(buf.length);
  const bodyStarts: number[] = [];
  const headers: number[] = [];
  let at = 0;
  for (let off = 0; off < buf.length; off += blcksz) {
    const pageEnd = Math.min(off + blcksz, buf.length);
    if (pageEnd - off < SHORT_PHD) break;
    const header = (buf.readUInt16LE(off + 2) & XLP_LONG_HEADER) !== 0 ? LONG_PHD : SHORT_PHD;
    bodyStarts.push(at);
    headers.push(header);
    at += buf.copy(out, at, Math.min(off + header, pageEnd), pageEnd);
  }
  return { body: out.subarray(0, at), blcksz, bodyStarts, headers };
}

/** Body offsets `p` of the 0xFF byte of every restore point record header in `body` whose name fits before its end. */
function* restorePointRecords(body: Buffer, minNameEnd = 10): Generator<number> {
  for (let p = body.indexOf(0xff, RECORD_HEADER); p >= 0 && p + minNameEnd <= body.length; p = body.indexOf(0xff, p + 1)) {
    if (body[p + 1] !== 72) continue;
    const h = p - RECORD_HEADER;
    if (body.readUInt32LE(h) !== RP_TOT_LEN || body[h + 17] !== 0 || (body[h + 16]! & 0xf0) !== 0x70) continue;
    yield p;
  }
}

/**
 * Restore points recorded per WAL segment, at most: a catalog item stays
 * small (DynamoDB's 400 KB item, Step Functions' 256 KB payload) whatever a
 * segment holds. Past the cap the record says so (`restorePointsTruncated`)
 * and a name it does not list is found by restore's scan of the WAL, as for
 * WAL archived before ingest recorded restore points.
 */
export const MAX_RECORDED_RESTORE_POINTS = 16;

/** A restore point found in a segment. */
export interface FoundRestorePoint {
  name: string;
  /** pg_create_restore_point's result: the end of the record (see the file comment). */
  lsn: bigint;
  /** rp_time, microseconds since 1970-01-01 UTC. */
  epochMicros: bigint;
}

/**
 * Every restore point record that lies wholly in one segment (`segment`
 * starts at LSN `startLsn`; `layout` its pageLayout when the caller has it), in order. A record that crosses into the next
 * segment is not seen here (RestorePointScanner sees it).
 */
export function restorePointsInSegment(segment: Uint8Array, startLsn: bigint, layout: PageLayout = pageLayout(segment)): FoundRestorePoint[] {
  const { body, blcksz, bodyStarts, headers } = layout;
  const toLsn = (b: number, end: boolean): bigint => {
    let i = bodyStarts.length - 1;
    while (i > 0 && bodyStarts[i]! > b) i--;
    // An end exactly where a page's body starts is that page's boundary (XLogBytePosToEndRecPtr).
    if (end && i > 0 && bodyStarts[i] === b) return startLsn + BigInt(i * blcksz);
    return startLsn + BigInt(i * blcksz + headers[i]! + (b - bodyStarts[i]!));
  };
  const out: FoundRestorePoint[] = [];
  for (const p of restorePointRecords(body, 2 + 8 + 64)) {
    const h = p - RECORD_HEADER;
    const nameBytes = body.subarray(p + 10, p + 10 + 64);
    const nul = nameBytes.indexOf(0);
    if (nul <= 0) continue; // PostgreSQL writes a NUL-terminated, non-empty name
    const endBody = h + RP_ALIGNED_LEN;
    out.push({
      name: nameBytes.subarray(0, nul).toString("utf8"),
      // Alignment padding past the segment's end goes on after the next segment's long page header.
      lsn:
        endBody < body.length
          ? toLsn(endBody, true)
          : startLsn + BigInt(segment.byteLength) + (endBody === body.length ? 0n : BigInt(LONG_PHD + endBody - body.length)),
      epochMicros: body.readBigInt64LE(p + 2) + PG_EPOCH_US,
    });
  }
  return out;
}

/**
 * Searches WAL segments, in replay order, for a restore point record named
 * `name`. Feed each segment with `push`; `found` tells whether one was seen.
 */
export class RestorePointScanner {
  private readonly pattern: Buffer;
  private tail = Buffer.alloc(0);
  found = false;

  constructor(readonly name: string) {
    this.pattern = Buffer.concat([Buffer.from(name, "utf8"), Buffer.from([0])]);
  }

  push(segment: Uint8Array): boolean {
    if (this.found) return true;
    const body = Buffer.concat([this.tail, walPageBodies(segment)]);
    for (const p of restorePointRecords(body, 10 + this.pattern.length)) {
      if (body.subarray(p + 10, p + 10 + this.pattern.length).equals(this.pattern)) {
        this.found = true;
        return true;
      }
    }
    // A record cut at the end of this segment goes on in the next.
    this.tail = body.subarray(Math.max(0, body.length - (RP_TOT_LEN + 8)));
    return false;
  }
}
