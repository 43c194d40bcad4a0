/**
 * PostgreSQL's backup_manifest (format version 1, as pg_basebackup writes it:
 * src/backend/backup/backup_manifest.c), written by the direct snapshot
 * source so that a restored snapshot can be checked by pg_verifybackup like
 * one taken by pg_basebackup.
 *
 * The text is byte for byte what the server would send for the same files
 * and WAL range with `--manifest-checksums=SHA256`: one line per file
 * (`Path`, `Size`, `Last-Modified` in GMT, `Checksum-Algorithm` "SHA256",
 * `Checksum`), the WAL ranges, and `Manifest-Checksum`: the SHA-256 of every
 * byte before that key. A file's checksum is the SHA-256 the push recorded
 * for it (core/snapshot.ts fileSha256Of): an empty file's and a one-chunk
 * file's always, a larger file's only when the push hashed whole files
 * (`--file-hashes`); a file without one gets the line pg_basebackup writes
 * with `--manifest-checksums=NONE` (pg_verifybackup checks its presence and
 * size; walvault's restore has checked each of its chunks' SHA-256).
 *
 * Pure: no I/O.
 */
import { createHash } from "node:crypto";
import { formatLsn } from "./wal.js";

export interface BackupManifestFile {
  /** Relative to the data directory, "/"-separated. */
  path: string;
  size: number;
  mtime: Date;
  /** Lowercase hex SHA-256 of the file's bytes; absent: no checksum (as `--manifest-checksums=NONE` writes the line). */
  sha256?: string | undefined;
}

export interface BackupManifestWalRange {
  timeline: number;
  startLsn: bigint;
  endLsn: bigint;
}

/** "2026-12-03 10:57:38 GMT", as pg_strftime("%Y-%m-%d %H:%M:%S %Z") of a pg_gmtime. */
function gmt(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace("T", " ")} GMT`;
}

/** One file's line (without the separator before it). */
export function backupManifestFileLine(f: BackupManifestFile): string {
  const checksum = f.sha256 === undefined ? "" : `, "Checksum-Algorithm": "SHA256", "Checksum": "${f.sha256}"`;
  return `{ "Path": ${JSON.stringify(f.path)}, "Size": ${f.size}, "Last-Modified": "${gmt(f.mtime)}"${checksum} }`;
}

/** What comes before the first file's line. */
const HEAD = '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [';

/** What comes after the last file's line, up to the checksum. */
function tail(ranges: readonly BackupManifestWalRange[]): string {
  const lines = ranges.map((r) => `{ "Timeline": ${r.timeline}, "Start-LSN": "${formatLsn(r.startLsn)}", "End-LSN": "${formatLsn(r.endLsn)}" }`);
  return `\n],\n"WAL-Ranges": [\n${lines.join(",\n")}\n],\n`;
}

/** Bytes per piece backupManifestPieces yields (about; a line is never split). */
const PIECE_BYTES = 64 * 1024;

/**
 * The backup_manifest of these files' lines (backupManifestFileLine, in the
 * order given) and WAL ranges, in pieces of about PIECE_BYTES, the lines
 * taken one at a time (the push reads them back from a spool on disk: a
 * cluster of a million files has ~170 MB of them) and the
 * Manifest-Checksum computed as the pieces go: memory is one piece,
 * whatever the number of files.
 */
export async function* backupManifestPieces(lines: AsyncIterable<string> | Iterable<string>, ranges: readonly BackupManifestWalRange[]): AsyncGenerator<Buffer, void, undefined> {
  const hash = createHash("sha256");
  const piece = (text: string): Buffer => {
    const b = Buffer.from(text, "utf8");
    hash.update(b);
    return b;
  };
  let pending = HEAD;
  let sep = "\n";
  for await (const line of lines) {
    pending += sep + line;
    sep = ",\n";
    if (pending.length >= PIECE_BYTES) {
      yield piece(pending);
      pending = "";
    }
  }
  yield piece(pending + tail(ranges));
  yield Buffer.from(`"Manifest-Checksum": "${hash.digest("hex")}"}\n`, "utf8");
}

/** The whole backup_manifest for these files (in the order given) and WAL ranges, as one text: backupManifestPieces joined. */
export async function backupManifestText(files: Iterable<BackupManifestFile>, ranges: readonly BackupManifestWalRange[]): Promise<string> {
  const pieces: Buffer[] = [];
  for await (const p of backupManifestPieces([...files].map(backupManifestFileLine), ranges)) pieces.push(p);
  return Buffer.concat(pieces).toString("utf8");
}
