/**
 * ObjectStore: the only way walvault touches object storage (S3 in AWS,
 * s3rver on the local stack). One instance talks to one endpoint/region.
 *
 * Contract (every implementation, checked by test/store/object-store.contract.ts):
 * - put() stores the bytes and user metadata exactly; a later get() returns
 *   the same bytes and metadata (keys lowercased). It returns the version id
 *   when the bucket is versioned.
 * - get() and head() resolve `undefined` when the key (or version) does not
 *   exist; every other failure rejects. They never return partial bodies.
 * - copy() copies bytes and metadata server-side to another key, possibly in
 *   another bucket of the same endpoint, and returns the new version id.
 * - delete() is idempotent: deleting a missing key succeeds.
 * - list() yields every key under the prefix in lexicographic order, across
 *   as many pages as it takes.
 * - head(), get() and list() report `lastModified` (when the current version
 *   was written; S3 gives whole seconds) when the store knows it: catalog
 *   rebuild takes record times from it (store/catalog-rebuild.ts).
 * - Conditional writes are NOT part of the contract (s3rver ignores
 *   If-None-Match): callers decide "exists?" with head() and the catalog's
 *   conditional writes, and never rely on the store to refuse an overwrite.
 * - Archive storage classes (S3 GLACIER, DEEP_ARCHIVE): head() reports the
 *   object's `storageClass` when it is not STANDARD (S3 omits it then) and,
 *   for an archived object, `restore` from x-amz-restore (absent: never
 *   requested; `ongoing: true`: being restored; `ongoing: false`: a readable
 *   copy exists until `expiry`). get() and getRange() of an archived object
 *   that has no readable copy reject with ObjectArchivedError naming the key.
 * - requestRestore() asks for a temporary readable copy of an archived object
 *   (S3 RestoreObject) for `days` at retrieval `tier`. It is idempotent: a
 *   restore already in progress, or an object with nothing to restore (not
 *   in an archive class, or already restored), resolves. Callers request it
 *   only for what head() reports archived; a store without archive classes
 *   (s3rver, which answers RestoreObject with 501) never reports one, so
 *   there walvault never calls it, and if called it resolves as a no-op for
 *   an existing object. A missing key rejects with NotFoundError naming it.
 * - Network/service failures reject with ServiceUnavailableError naming the
 *   endpoint; nothing is retried silently beyond the SDK's own retries.
 */
import { ARCHIVE_STORAGE_CLASSES } from "../core/thaw.js";

export interface ObjectInfo {
  key: string;
  size: number;
  /** User metadata, keys lowercased. */
  metadata: Record<string, string>;
  versionId?: string;
  etag?: string;
  /** When this version was written (S3 Last-Modified, whole seconds). */
  lastModified?: Date;
  /** The full-object SHA-256 the service holds for it (hex), when asked for and known (see put()). */
  sha256?: string;
  /** The storage class when it is not STANDARD (head() only), e.g. "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE". */
  storageClass?: string;
  /** An archived object's restore (head() only; S3 x-amz-restore): absent when none was ever requested. */
  restore?: ObjectRestore;
}

/** The state of an archived object's restore. */
export interface ObjectRestore {
  /** True while the copy is being made; false once it is readable (until `expiry`). */
  ongoing: boolean;
  /** When the readable copy goes away (ongoing: false). */
  expiry?: Date;
}

/** Whether an object head() reported can be read now (not archived, or archived with a restored copy). */
export function isReadable(info: ObjectInfo): boolean {
  if (info.storageClass === undefined || !ARCHIVE_STORAGE_CLASSES.has(info.storageClass)) return true;
  return info.restore !== undefined && !info.restore.ongoing;
}

/** S3 retrieval tiers of a restore. */
export type RestoreTier = "Standard" | "Bulk" | "Expedited";

export interface RestoreRequest {
  /** Days the readable copy is kept. */
  days: number;
  tier: RestoreTier;
}

export interface PutOptions {
  /** Hex SHA-256 of the body: the service refuses a body that does not match and keeps it as the object's checksum. */
  sha256?: string;
  /**
   * Create only (S3 conditional write, If-None-Match: *): when the key already
   * exists nothing is written and the result says `existed`. Stores without
   * conditional writes (s3rver) write anyway: callers must not rely on it for
   * correctness (direct WAL keys name their bytes).
   */
  createOnly?: boolean;
}

export interface GetOptions {
  /**
   * Where the body goes: called with its length once it is known, returns a
   * buffer at least that long, and the body read into it is a view of it (a
   * caller that reads one large object after another lends a kept buffer,
   * core/buffer-pool.ts). A store may not call it: the body is then its own.
   */
  bodyBuffer?: (size: number) => Buffer;
}

export interface StoredObject extends ObjectInfo {
  body: Buffer;
}

export interface PutResult {
  versionId?: string;
  etag?: string;
  /** `createOnly` and the key already existed: nothing was written. */
  existed?: true;
}

export interface ListedObject {
  key: string;
  size: number;
  /** When the current version was written (S3 Last-Modified, whole seconds). */
  lastModified?: Date;
}

export interface ObjectStore {
  /** A name for messages: region or endpoint. */
  readonly name: string;
  put(bucket: string, key: string, body: Uint8Array, metadata: Record<string, string>, options?: PutOptions): Promise<PutResult>;
  get(bucket: string, key: string, versionId?: string, options?: GetOptions): Promise<StoredObject | undefined>;
  /** Bytes [start, end] (inclusive) of the object; undefined when it does not exist. `options.bodyBuffer` as for get. */
  getRange(bucket: string, key: string, start: number, end: number, options?: GetOptions): Promise<Buffer | undefined>;
  head(bucket: string, key: string, versionId?: string, options?: { checksum?: boolean }): Promise<ObjectInfo | undefined>;
  copy(
    from: { bucket: string; key: string; versionId?: string },
    to: { bucket: string; key: string },
  ): Promise<PutResult>;
  delete(bucket: string, key: string, versionId?: string): Promise<void>;
  list(bucket: string, prefix: string): AsyncIterable<ListedObject>;
  /** Requests a readable copy of an archived object (idempotent; see the contract above). */
  requestRestore(bucket: string, key: string, request: RestoreRequest): Promise<void>;
}
