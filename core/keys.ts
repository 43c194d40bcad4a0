/**
 * Identifiers and the object key layout. Everything that enters from outside
 * (a CLI argument, an event's object key, object metadata) is checked here
 * against strict patterns before it is used to build a key.
 *
 *   incoming bucket: incoming/db/<databaseId>/wal/<walFileName>      (agents write)
 *                    quarantine/db/<databaseId>/<utc stamp>-<walFileName>   (control plane)
 *   vault bucket:    db/<databaseId>/wal/<timeline>/<segmentName>
 *                    db/<databaseId>/history/<timeline>.history
 */
import { InvalidInputError } from "./errors.js";
import { DEFAULT_WAL_SEGMENT_SIZE, parseWalFileName, type WalFileName } from "./wal.js";

/** Lowercase letters, digits and inner hyphens, 3–63 characters: safe in S3 keys, IAM and DynamoDB. */
export const DATABASE_ID_RE = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/;

export function assertDatabaseId(id: string): string {
  if (!DATABASE_ID_RE.test(id)) {
    throw new InvalidInputError(
      `database id '${id}' is invalid: use 3-63 lowercase letters, digits and inner hyphens`,
    );
  }
  return id;
}

export const INCOMING_PREFIX = "incoming/db/";
export const QUARANTINE_PREFIX = "quarantine/db/";

export function incomingWalKey(databaseId: string, fileName: string): string {
  return `${INCOMING_PREFIX}${assertDatabaseId(databaseId)}/wal/${fileName}`;
}

export function timelineDir(timeline: number): string {
  return timeline.toString(16).toUpperCase().padStart(8, "0");
}

/** Vault key of a WAL file: segments and partials under their timeline, history files apart. */
export function vaultWalKey(databaseId: string, file: WalFileName): string {
  assertDatabaseId(databaseId);
  if (file.kind === "history") return `db/${databaseId}/history/${file.name}`;
  return `db/${databaseId}/wal/${timelineDir(file.timeline)}/${file.name}`;
}

export function quarantineKey(databaseId: string, fileName: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:.]/g, "");
  return `${QUARANTINE_PREFIX}${assertDatabaseId(databaseId)}/${stamp}-${fileName}`;
}

export interface IncomingWalKey {
  databaseId: string;
  file: WalFileName;
}

/**
 * Parses an incoming object key. Rejects anything but exactly
 * incoming/db/<id>/wal/<wal file name>: no '..', no absolute paths, no extra
 * path segments, no empty parts.
 */
export function parseIncomingKey(key: string, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): IncomingWalKey {
  if (key.startsWith("/")) throw new InvalidInputError(`object key '${key}' is absolute`);
  const parts = key.split("/");
  if (parts.some((p) => p === ".." || p === ".")) {
    throw new InvalidInputError(`object key '${key}' contains a '.' or '..' path segment`);
  }
  if (parts.some((p) => p === "")) throw new InvalidInputError(`object key '${key}' has an empty path segment`);
  const [top, db, id, kind, name, ...rest] = parts;
  if (top !== "incoming" || db !== "db" || kind !== "wal" || id === undefined || name === undefined || rest.length > 0) {
    throw new InvalidInputError(`object key '${key}' is not of the form incoming/db/<databaseId>/wal/<file>`);
  }
  return { databaseId: assertDatabaseId(id), file: parseWalFileName(name, segmentSize) };
}
