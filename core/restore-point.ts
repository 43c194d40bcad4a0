/**
 * Finds a named restore point (pg_create_restore_point) in PostgreSQL WAL
 * bytes, so `restore --target-name` can be checked before restoring: the
 * catalog does not record restore points, and PostgreSQL only finds out at
 * the end of replay ("recovery ended before configured recovery target was
 * reached").
 *
 * The record, as PostgreSQL 10+ writes it (xlog.c XLogRestorePoint):
 *   XLogRecord (24 bytes): xl_tot_len = 98, xl_xid, xl_prev, xl_info = 0x70
 *     (XLOG_RESTORE_POINT), xl_rmid = 0 (RM_XLOG_ID), padding, xl_crc;
 *   XLR_BLOCK_ID_DATA_SHORT (0xFF), main data length 72;
 *   xl_restore_point: rp_time (8 bytes), rp_name[64] (NUL-terminated).
 * A record may run across page boundaries, so the page headers (24 bytes, 40
 * on a segment's first page: XLP_LONG_HEADER) are cut out first and the
 * bodies of consecutive segments are searched as one stream.
 *
 * Pure.
 */

const XLP_LONG_HEADER = 0x0002;
const SHORT_PHD = 24;
const LONG_PHD = 40;
const DEFAULT_BLCKSZ = 8192;
const RECORD_HEADER = 24;
const RP_TOT_LEN = RECORD_HEADER + 2 + 72;
/** MAXFNAMELEN - 1: the longest name pg_create_restore_point accepts. */
export const MAX_RESTORE_POINT_NAME_BYTES = 63;

/** A segment's bytes without its page headers. */
export function walPageBodies(segment: Uint8Array): Buffer {
  const buf = Buffer.from(segment.buffer, segment.byteOffset, segment.byteLength);
  let blcksz = DEFAULT_BLCKSZ;
  if (buf.length >= LONG_PHD && (buf.readUInt16LE(2) & XLP_LONG_HEADER) !== 0) {
    const b = buf.readUInt32LE(28);
    if (b >= 1024 && b <= 65536 && (b & (b - 1)) === 0) blcksz = b;
  }
  const parts: Buffer[] = [];
  for (let off = 0; off < buf.length; off += blcksz) {
    const page = buf.subarray(off, Math.min(off + blcksz, buf.length));
    if (page.length < SHORT_PHD) break;
    const header = (page.readUInt16LE(2) & XLP_LONG_HEADER) !== 0 ? LONG_PHD : SHORT_PHD;
    parts.push(page.subarray(header));
  }
  return Buffer.concat(parts);
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
    for (let p = body.indexOf(0xff, RECORD_HEADER); p >= 0 && p + 10 + this.pattern.length <= body.length; p = body.indexOf(0xff, p + 1)) {
      if (body[p + 1] !== 72) continue;
      const h = p - RECORD_HEADER;
      if (body.readUInt32LE(h) !== RP_TOT_LEN || body[h + 17] !== 0 || (body[h + 16]! & 0xf0) !== 0x70) continue;
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
