/**
 * Synthetic PostgreSQL WAL segments for tests that need many distinct,
 * well-formed segments without running a server: a valid long page header
 * (XLP_LONG_HEADER, page address and segment size matching the name) followed
 * by seeded pseudo-random bytes. End-to-end tests use real WAL instead.
 */
import { parseWalFileName, segmentStartLsn, DEFAULT_WAL_SEGMENT_SIZE } from "../../core/wal.js";

export function syntheticSegment(name: string, seed = 1, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): Buffer {
  const file = parseWalFileName(name, segmentSize);
  if (file.segno === undefined) throw new Error(`${name} is not a segment`);
  const buf = Buffer.alloc(segmentSize);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < segmentSize; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    // Mostly compressible, like real WAL: random words only every 16 bytes.
    if (i % 16 === 0) buf.writeUInt32LE(x, i);
  }
  buf.writeUInt16LE(0xd110, 0); // xlp_magic (PostgreSQL 15)
  buf.writeUInt16LE(0x0002, 2); // xlp_info: XLP_LONG_HEADER
  buf.writeUInt32LE(file.timeline, 4);
  buf.writeBigUInt64LE(segmentStartLsn(file.segno, segmentSize), 8);
  buf.writeUInt32LE(0, 16);
  buf.writeBigUInt64LE(7000000000000000001n, 24); // xlp_sysid
  buf.writeUInt32LE(segmentSize, 32);
  buf.writeUInt32LE(8192, 36);
  return buf;
}
