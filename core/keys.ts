/**
 * Identifiers and the object key layout. Everything that enters from outside
 * (a CLI argument, an event's object key, object metadata) is checked here
 * against strict patterns before it is used to build a key.
 *
 *   incoming bucket: incoming/db/<databaseId>/wal/<walFileName>      (agents write)
 *                    quarantine/db/<databaseId>/<utc stamp>-<walFileName>   (control plane)
 *   vault bucket:    db/<databaseId>/wal/<timeline>/<segmentName>
 *                    db/<databaseId>/wal/<timeline>/<segmentName>.<digest>   (direct WAL: the agent writes it)
 *                    db/<databaseId>/history/<timeline>.history
 *
 * Direct WAL (docs/wal.md, "Direct WAL"): the agent PUTs a segment straight
 * into the vault under a content-addressed key, the file name then the first
 * 16 hex digits of the SHA-256 of the stored (encoded) bytes. Two uploads of
 * one name with different bytes land at two keys; the catalog names the one
 * that was recorded. Plain keys (written by Promote) stay valid.
 *
 * Generic databases (core/generic-wal.ts): the stream takes the timeline's place.
 *   incoming bucket: incoming/db/<databaseId>/wal/<stream>/<file>
 *   vault bucket:    db/<databaseId>/wal/<stream>/<file>
 */
import { InvalidInputError } from "./errors.js";
import { genericWalName, parseGenericWalName, type GenericWalName } from "./generic-wal.js";
import { SHA256_RE } from "./hash.js";
import { walFileShape, type WalFileKind, type WalFileName } from "./wal.js";

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
/**
 * Where an ingest execution that ended without storing an upload and without
 * quarantining it (a transient or unexpected failure) leaves a note for the
 * agent waiting on it: failed/<incoming key>.json in the incoming bucket.
 */
export const FAILED_PREFIX = "failed/";

/** The failure note of an incoming object (statemachines/*.asl.json ReportFailure writes it). */
export function failedMarkerKey(incomingKey: string): string {
  return `${FAILED_PREFIX}${incomingKey}.json`;
}

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

/** Hex digits of the stored bytes' SHA-256 a direct WAL key ends in. */
export const WAL_KEY_DIGEST_HEX = 16;
const WAL_KEY_DIGEST_RE = /^[0-9a-f]{16}$/;

/** The key's digest of stored (encoded) bytes whose SHA-256 is `storedSha256` (64 hex). */
export function walKeyDigest(storedSha256: string): string {
  if (!SHA256_RE.test(storedSha256)) throw new InvalidInputError(`'${storedSha256}' is not a lowercase hex SHA-256`);
  return storedSha256.slice(0, WAL_KEY_DIGEST_HEX);
}

/**
 * Content-addressed vault key of a PostgreSQL segment, partial or backup
 * label the agent writes itself: db/<id>/wal/<timeline>/<name>.<16 hex of the
 * stored bytes' SHA-256>. History files are not written this way (they go
 * through incoming/, see docs/wal.md).
 */
export function vaultWalDirectKey(databaseId: string, file: WalFileName, storedSha256: string): string {
  if (file.kind === "history") throw new InvalidInputError(`${file.name} is a history file: it is uploaded through incoming/, not written to the vault directly`);
  return `${vaultWalKey(databaseId, file)}.${walKeyDigest(storedSha256)}`;
}

/**
 * What the wal-record workflow's quarantine step writes beside a direct WAL
 * object it rejected: `<key>.rejected` (a small JSON of the error and the
 * reason). The object itself stays (it may be under Object Lock, and it is
 * evidence); the marker is what tells catalog rebuild, which has only the
 * bucket, never to take it for an archived file.
 */
export const REJECTED_SUFFIX = ".rejected";

export function rejectedMarkerKey(directKey: string): string {
  const k = parseVaultWalKey(directKey);
  if (k?.digest === undefined) throw new InvalidInputError(`'${directKey}' is not a direct WAL key (db/<id>/wal/<timeline>/<name>.<16 hex>)`);
  return directKey + REJECTED_SUFFIX;
}

/** A vault WAL key taken apart (PostgreSQL layout); `digest` only for content-addressed keys. */
export interface VaultWalKey {
  databaseId: string;
  area: "wal" | "history";
  /** Timeline directory (8 hex digits); "" for history files. */
  dir: string;
  /** The WAL file name (without the digest suffix). */
  name: string;
  digest?: string;
}

const PG_WAL_NAME_RE = /^[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?$/;

/**
 * Parses db/<id>/wal/<timeline>/<name>[.<digest>] and db/<id>/history/<name>.
 * A trailing `.<16 lowercase hex>` after a PostgreSQL WAL file name is the
 * digest of a direct key; anything else is returned as the plain name (the
 * caller checks names against the database's kind). Undefined for keys of
 * another shape.
 */
export function parseVaultWalKey(key: string): VaultWalKey | undefined {
  const parts = key.split("/");
  const [top, id, area, a, b, ...rest] = parts;
  if (top !== "db" || id === undefined || !DATABASE_ID_RE.test(id) || rest.length > 0) return undefined;
  if (area === "history" && a && b === undefined) return { databaseId: id, area, dir: "", name: a };
  if (area !== "wal" || !a || !b) return undefined;
  const dot = b.lastIndexOf(".");
  const base = b.slice(0, dot);
  const suffix = b.slice(dot + 1);
  if (dot > 0 && WAL_KEY_DIGEST_RE.test(suffix) && PG_WAL_NAME_RE.test(base)) return { databaseId: id, area, dir: a, name: base, digest: suffix };
  return { databaseId: id, area, dir: a, name: b };
}

export function quarantineKey(databaseId: string, fileName: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:.]/g, "");
  return `${QUARANTINE_PREFIX}${assertDatabaseId(databaseId)}/${stamp}-${fileName}`;
}

/** Incoming key of a generic WAL segment. */
export function incomingGenericWalKey(databaseId: string, stream: string, file: string): string {
  return `${INCOMING_PREFIX}${assertDatabaseId(databaseId)}/wal/${genericWalName(stream, file)}`;
}

/** Vault key of a generic WAL segment. */
export function vaultGenericWalKey(databaseId: string, stream: string, file: string): string {
  return `db/${assertDatabaseId(databaseId)}/wal/${genericWalName(stream, file)}`;
}

export type IncomingWalKey =
  | { databaseId: string; walName: string; kind: WalFileKind; generic?: undefined }
  | { databaseId: string; generic: GenericWalName; walName?: undefined; kind?: undefined };

/**
 * Parses an incoming object key's shape. Rejects anything but exactly
 * incoming/db/<id>/wal/<wal file name> (PostgreSQL) or
 * incoming/db/<id>/wal/<stream>/<file> (generic): no '..', no absolute paths,
 * no extra path segments, no empty parts.
 *
 * A PostgreSQL file name is checked for its syntax only (`kind`): what it
 * means (its segment number) depends on the database's wal_segment_size,
 * which the key does not carry. The caller looks the database up and parses
 * `walName` once with that size (parseWalFileName); parsing it here with a
 * default size would refuse the 257th segment of a database with 1 MiB
 * segments (issue #10).
 */
export function parseIncomingKey(key: string): IncomingWalKey {
  if (key.startsWith("/")) throw new InvalidInputError(`object key '${key}' is absolute`);
  const parts = key.split("/");
  if (parts.some((p) => p === ".." || p === ".")) {
    throw new InvalidInputError(`object key '${key}' contains a '.' or '..' path segment`);
  }
  if (parts.some((p) => p === "")) throw new InvalidInputError(`object key '${key}' has an empty path segment`);
  const [top, db, id, kind, name, file, ...rest] = parts;
  if (top !== "incoming" || db !== "db" || kind !== "wal" || id === undefined || name === undefined || rest.length > 0) {
    throw new InvalidInputError(`object key '${key}' is not of the form incoming/db/<databaseId>/wal/<file> or incoming/db/<databaseId>/wal/<stream>/<file>`);
  }
  if (file !== undefined) return { databaseId: assertDatabaseId(id), generic: parseGenericWalName(`${name}/${file}`) };
  return { databaseId: assertDatabaseId(id), walName: name, kind: walFileShape(name) };
}

// ---------------------------------------------------------------------------
// Snapshots (core/snapshot.ts; layout fixed in docs/snapshots.md).
//
//   vault bucket:    db/<databaseId>/chunks/<sha256>                                  one object per chunk, ever
//                    db/<databaseId>/snapshots/<snapshotId>/manifest.json             the commit point
//   incoming bucket: incoming/db/<databaseId>/chunks/<sha256>                         new chunks, any push
//                    incoming/db/<databaseId>/snapshots/<snapshotId>/manifest.json    uploaded LAST
//
// Incoming chunks form one pool per database, named like their vault keys: a
// push that dies and starts again (under a new snapshot id, as a new
// PostgreSQL backup must) finds its earlier uploads still there for the day
// incoming keeps them. Only a manifest's object-created event starts snapshot
// ingest; chunk uploads are never ingested on their own (the EventBridge rule
// matches manifests; parseIncomingSnapshotKey tells the two apart). Ingest
// promotes the chunks a manifest flags as new from this pool, re-hashing each:
// a chunk's key is its SHA-256, so whoever uploaded it, it is the same bytes.
//
// Snapshot ids are the UTC start time to the second, then 6 random hex digits:
// "20261121T073000Z-ab12cd". Fixed width, so they sort by start time as text.

export const SNAPSHOT_ID_RE =
  /^(\d{4})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3])([0-5]\d)([0-5]\d)Z-([0-9a-f]{6})$/;

export const SNAPSHOT_MANIFEST_NAME = "manifest.json";

/** Throws InvalidInputError unless `id` is a snapshot id naming a real calendar second. */
export function assertSnapshotId(id: string): string {
  const m = typeof id === "string" ? SNAPSHOT_ID_RE.exec(id) : null;
  const ok =
    m !== null &&
    (() => {
      const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
      const date = new Date(Date.UTC(y, mo - 1, d));
      return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
    })();
  if (!ok) {
    throw new InvalidInputError(
      `snapshot id '${String(id)}' is invalid: expected the UTC start time and 6 lowercase hex digits, e.g. 20261121T073000Z-ab12cd`,
    );
  }
  return id;
}

function assertChunkSha(sha256: string): string {
  if (!SHA256_RE.test(sha256)) throw new InvalidInputError(`chunk id '${sha256}' is not a lowercase hex SHA-256`);
  return sha256;
}

/** Vault key of a chunk: its SHA-256 (of the raw, decoded bytes). */
export function vaultChunkKey(databaseId: string, sha256: string): string {
  return `db/${assertDatabaseId(databaseId)}/chunks/${assertChunkSha(sha256)}`;
}

/** Vault key of a pack (core/pack.ts, docs/packs.md): its name is the SHA-256 of all its bytes. */
export function vaultPackKey(databaseId: string, name: string): string {
  return `db/${assertDatabaseId(databaseId)}/packs/${assertPackName(name)}`;
}

/** A pack's name from its vault key (vaultPackKey's last part; what a chunk record in a pack names it by). */
export function packNameOfKey(vaultKey: string): string {
  return vaultKey.slice(vaultKey.lastIndexOf("/") + 1);
}

/** Prefix under which a database's packs live (list it to rebuild the catalog from pack indexes). */
export function vaultPacksPrefix(databaseId: string): string {
  return `db/${assertDatabaseId(databaseId)}/packs/`;
}

/** Incoming key of a pack an agent uploaded for a snapshot (promoted by snapshot ingest, as one object). */
export function incomingPackKey(databaseId: string, name: string): string {
  return `${INCOMING_PREFIX}${assertDatabaseId(databaseId)}/packs/${assertPackName(name)}`;
}

function assertPackName(name: string): string {
  if (!SHA256_RE.test(name)) throw new InvalidInputError(`pack name '${name}' is not a lowercase hex SHA-256`);
  return name;
}

/** Prefix under which a database's snapshot manifests live (list it to rebuild the catalog). */
export function vaultSnapshotsPrefix(databaseId: string): string {
  return `db/${assertDatabaseId(databaseId)}/snapshots/`;
}

export function vaultSnapshotManifestKey(databaseId: string, snapshotId: string): string {
  return `${vaultSnapshotsPrefix(databaseId)}${assertSnapshotId(snapshotId)}/${SNAPSHOT_MANIFEST_NAME}`;
}

/** Incoming key of a snapshot's manifest (the agent uploads it last; its event starts ingest). */
export function incomingSnapshotKey(databaseId: string, snapshotId: string): string {
  return `${INCOMING_PREFIX}${assertDatabaseId(databaseId)}/snapshots/${assertSnapshotId(snapshotId)}/${SNAPSHOT_MANIFEST_NAME}`;
}

/** Directory (beside manifest.json) of a format-2 manifest's page objects (core/manifest-pages.ts). */
export const SNAPSHOT_PAGES_DIR = "pages";

/**
 * Key of page `index` of a format-2 manifest, beside its manifest key (vault
 * or incoming): `.../snapshots/<snapshotId>/pages/000042.json`.
 */
export function snapshotPageKey(manifestKey: string, index: number): string {
  if (!manifestKey.endsWith(`/${SNAPSHOT_MANIFEST_NAME}`)) {
    throw new InvalidInputError(`object key '${manifestKey}' is not a snapshot manifest key (it does not end in /${SNAPSHOT_MANIFEST_NAME})`);
  }
  if (!Number.isSafeInteger(index) || index < 0 || index > 999_999) throw new InvalidInputError(`page index ${String(index)} is not 0 to 999999`);
  const dir = manifestKey.slice(0, -SNAPSHOT_MANIFEST_NAME.length);
  return `${dir}${SNAPSHOT_PAGES_DIR}/${String(index).padStart(6, "0")}.json`;
}

/** Incoming key of a new chunk (object metadata: SHA-256, codec, raw size, as for WAL). */
export function incomingChunkKey(databaseId: string, sha256: string): string {
  return `${INCOMING_PREFIX}${assertDatabaseId(databaseId)}/chunks/${assertChunkSha(sha256)}`;
}

export type IncomingSnapshotObject =
  | { databaseId: string; object: "manifest"; snapshotId: string }
  | { databaseId: string; object: "chunk"; sha256: string }
  | { databaseId: string; object: "pack"; name: string };

/**
 * Parses an incoming snapshot key: exactly
 * incoming/db/<id>/snapshots/<snapshotId>/manifest.json or
 * incoming/db/<id>/chunks/<sha256> or incoming/db/<id>/packs/<sha256>; nothing else.
 */
export function parseIncomingSnapshotKey(key: string): IncomingSnapshotObject {
  if (key.startsWith("/")) throw new InvalidInputError(`object key '${key}' is absolute`);
  const parts = key.split("/");
  if (parts.some((p) => p === ".." || p === ".")) {
    throw new InvalidInputError(`object key '${key}' contains a '.' or '..' path segment`);
  }
  if (parts.some((p) => p === "")) throw new InvalidInputError(`object key '${key}' has an empty path segment`);
  const [top, db, id, kind, a, b, ...rest] = parts;
  if (top === "incoming" && db === "db" && id !== undefined && rest.length === 0) {
    if (kind === "chunks" && a !== undefined && b === undefined) {
      return { databaseId: assertDatabaseId(id), object: "chunk", sha256: assertChunkSha(a) };
    }
    if (kind === "packs" && a !== undefined && b === undefined) {
      return { databaseId: assertDatabaseId(id), object: "pack", name: assertPackName(a) };
    }
    if (kind === "snapshots" && a !== undefined && b === SNAPSHOT_MANIFEST_NAME) {
      return { databaseId: assertDatabaseId(id), object: "manifest", snapshotId: assertSnapshotId(a) };
    }
  }
  throw new InvalidInputError(
    `object key '${key}' is not of the form incoming/db/<databaseId>/snapshots/<snapshotId>/manifest.json, incoming/db/<databaseId>/chunks/<sha256> or incoming/db/<databaseId>/packs/<sha256>`,
  );
}
