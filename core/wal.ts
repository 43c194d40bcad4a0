/**
 * PostgreSQL WAL file names and LSN arithmetic, for any wal_segment_size.
 *
 * A segment file name is 24 hex digits: timeline (8), then the segment number
 * split into "log" (8) and "seg" (8) where seg < 0x100000000 / segmentSize.
 * LSNs are 64-bit, so they are bigint here; the text form is PostgreSQL's
 * "X/Y" (upper hex, no padding).
 */
import { InvalidInputError, InvalidWalNameError } from "./errors.js";

export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;
const FOUR_GB = 0x1_0000_0000n;

export type WalFileKind = "segment" | "partial" | "history" | "backup";

export interface WalFileName {
  kind: WalFileKind;
  /** The name exactly as PostgreSQL writes it. */
  name: string;
  timeline: number;
  /** Segment number (segment, partial, backup); undefined for history. */
  segno?: bigint;
  /** Offset inside the segment where a backup started (backup files only). */
  backupOffset?: number;
}

const SEGMENT_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const PARTIAL_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$/;
const BACKUP_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.([0-9A-F]{8})\.backup$/;
const HISTORY_RE = /^([0-9A-F]{8})\.history$/;

/** Throws unless size is a power of two between 1 MB and 1 GB (initdb's rule). */
export function assertSegmentSize(size: number): void {
  const ok = Number.isInteger(size) && size >= 1 << 20 && size <= 1 << 30 && (size & (size - 1)) === 0;
  if (!ok) {
    throw new InvalidInputError(
      `wal segment size ${size} is not a power of two between 1 MB and 1 GB`,
    );
  }
}

export function segmentsPerXLogId(segmentSize: number): bigint {
  assertSegmentSize(segmentSize);
  return FOUR_GB / BigInt(segmentSize);
}

function hex8(n: bigint | number): string {
  return n.toString(16).toUpperCase().padStart(8, "0");
}

/**
 * The kind of a WAL-directory file name from its syntax alone (no segment
 * size): where a name arrives before the database it belongs to is known (an
 * incoming object key), its shape is checked here and its meaning later with
 * the database's own wal_segment_size (parseWalFileName). Throws
 * InvalidWalNameError for anything that is not a segment, .partial, .backup
 * or .history name.
 */
export function walFileShape(name: string): WalFileKind {
  const kinds: [RegExp, WalFileKind][] = [[SEGMENT_RE, "segment"], [PARTIAL_RE, "partial"], [BACKUP_RE, "backup"], [HISTORY_RE, "history"]];
  for (const [re, kind] of kinds) {
    const m = re.exec(name);
    if (!m) continue;
    if (Number.parseInt(m[1]!, 16) === 0) throw new InvalidWalNameError(`'${name}' names timeline 0, which does not exist`);
    return kind;
  }
  throw new InvalidWalNameError(`'${name}' is not a WAL segment, .partial, .backup or .history file name`);
}

/** Parses any WAL-directory file name walvault archives; throws InvalidWalNameError otherwise. */
export function parseWalFileName(name: string, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): WalFileName {
  const perId = segmentsPerXLogId(segmentSize);
  const segno = (log: string, seg: string): bigint => {
    const s = BigInt(`0x${seg}`);
    if (s >= perId) {
      throw new InvalidWalNameError(
        `'${name}' is not a WAL file name for ${segmentSize / (1 << 20)} MB segments (segment part ${seg} is out of range)`,
      );
    }
    return BigInt(`0x${log}`) * perId + s;
  };
  const timeline = (t: string): number => {
    const tl = Number.parseInt(t, 16);
    if (tl === 0) throw new InvalidWalNameError(`'${name}' names timeline 0, which does not exist`);
    return tl;
  };
  let m = SEGMENT_RE.exec(name);
  if (m) return { kind: "segment", name, timeline: timeline(m[1]!), segno: segno(m[2]!, m[3]!) };
  m = PARTIAL_RE.exec(name);
  if (m) return { kind: "partial", name, timeline: timeline(m[1]!), segno: segno(m[2]!, m[3]!) };
  m = BACKUP_RE.exec(name);
  if (m) {
    return {
      kind: "backup",
      name,
      timeline: timeline(m[1]!),
      segno: segno(m[2]!, m[3]!),
      backupOffset: Number.parseInt(m[4]!, 16),
    };
  }
  m = HISTORY_RE.exec(name);
  if (m) return { kind: "history", name, timeline: timeline(m[1]!) };
  throw new InvalidWalNameError(
    `'${name}' is not a WAL segment, .partial, .backup or .history file name`,
  );
}

/** True when the name is any archivable WAL file name. */
export function isWalFileName(name: string, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): boolean {
  try {
    parseWalFileName(name, segmentSize);
    return true;
  } catch {
    return false;
  }
}

export function segmentName(timeline: number, segno: bigint, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): string {
  const perId = segmentsPerXLogId(segmentSize);
  return `${hex8(timeline)}${hex8(segno / perId)}${hex8(segno % perId)}`;
}

export function historyName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

/** First LSN of a segment. */
export function segmentStartLsn(segno: bigint, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): bigint {
  return segno * BigInt(segmentSize);
}

/** LSN just past the end of a segment. */
export function segmentEndLsn(segno: bigint, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): bigint {
  return (segno + 1n) * BigInt(segmentSize);
}

/** Segment number holding an LSN. */
export function lsnToSegno(lsn: bigint, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): bigint {
  return lsn / BigInt(segmentSize);
}

/** Next segment file name on the same timeline. */
export function nextSegmentName(name: string, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): string {
  const p = parseWalFileName(name, segmentSize);
  if (p.kind !== "segment" || p.segno === undefined) {
    throw new InvalidWalNameError(`'${name}' is not a WAL segment name`);
  }
  return segmentName(p.timeline, p.segno + 1n, segmentSize);
}

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Whether `text` is an LSN as parseLsn reads it (a generic record's position, a decimal, is not). */
export function isLsn(text: string | undefined): boolean {
  return text !== undefined && LSN_RE.test(text.trim());
}

export function parseLsn(text: string): bigint {
  const m = LSN_RE.exec(text.trim());
  if (!m) throw new InvalidInputError(`'${text}' is not an LSN (expected the form 0/16B3748)`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** Fixed-width hex of an LSN: sorts lexicographically in LSN order (catalog sort keys). */
export function lsnSortKey(lsn: bigint): string {
  return lsn.toString(16).toUpperCase().padStart(16, "0");
}
