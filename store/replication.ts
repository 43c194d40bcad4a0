/**
 * Copying vault objects to a replica region's vault, proven there (issue #4).
 *
 * Contract:
 * - replicateObject() makes `key` in the replica vault hold exactly the bytes
 *   the primary vault holds, with the same walvault metadata (so the replica
 *   vault describes itself like the primary), and proves it by reading the
 *   copy back from the replica and decoding it: its raw SHA-256 and size must
 *   be what the caller expects (the catalog's record), else
 *   ChecksumMismatchError and the region is NOT marked. An object already in
 *   the replica with the expected SHA-256 metadata is verified by reading it
 *   and not written again (idempotent; never overwrites good bytes). A source
 *   object whose own bytes do not prove the expectation is refused before
 *   anything is written.
 * - replicateSnapshotBatch() does one bounded part of a snapshot's copy, so
 *   that no invocation's work grows with the snapshot (issue #11): it reads
 *   and proves the manifest (one object, read per call), then copies and
 *   proves the chunks at positions [cursor, cursor + maxChunks) of the
 *   manifest's ordered list of distinct chunks (HEAD first, `concurrency` at
 *   a time), stopping early at a group boundary once `budgetMs` is spent. It
 *   returns { done: false, cursor } (the next position; every chunk before it
 *   is proven in the replica) while chunks remain; only a call that reaches
 *   the end of the list writes the manifest, last (the commit point, as in the
 *   primary), proven as above, and returns { done: true, manifest }.
 *   A call that fails (ChecksumMismatchError, a service fault) writes no
 *   manifest, so a partly copied snapshot is never visible as committed. A retry
 *   or a resumed cursor re-verifies, never re-writes, what is already there.
 *   The workflows call it again with the returned cursor until done
 *   (functions/replicate/copy-item.ts); the state carries counts only.
 * - Nothing here writes the catalog: callers record the region's status only
 *   after replicateObject resolves, or a snapshot batch resolves done: true.
 * - Service failures reject with ServiceUnavailableError naming the endpoint.
 */
import { forEachLimit } from "../core/concurrency.js";
import { ChecksumMismatchError, InvalidInputError, NotFoundError } from "../core/errors.js";
import { vaultChunkKey } from "../core/keys.js";
import { META_SHA256 } from "../core/schemas.js";
import { parseManifest } from "../core/snapshot.js";
import { parseObjectMeta, verifyEncodedBytes } from "../core/verify.js";
import type { ObjectStore } from "./object-store.js";

export interface VaultRef {
  store: ObjectStore;
  bucket: string;
}

export interface Expected {
  /** SHA-256 of the raw (decoded) bytes. */
  sha256: string;
  /** Raw size. */
  size: number;
}

export interface ReplicatedObject {
  key: string;
  versionId?: string;
  /** False when the replica already held the bytes. */
  copied: boolean;
  storedBytes: number;
}

async function proveCopy(replica: VaultRef, key: string, expected: Expected, versionId: string | undefined, where: string): Promise<number> {
  const copy = await replica.store.get(replica.bucket, key, versionId);
  if (!copy) throw new NotFoundError(`copy of ${key} in ${where} is missing right after the write`);
  const claimed = parseObjectMeta(copy.metadata, `copy of ${key} in ${where}`);
  await verifyEncodedBytes(copy.body, { ...claimed, sha256: expected.sha256, size: expected.size }, `copy of ${key} in ${where}`);
  return copy.body.length;
}

export async function replicateObject(
  primary: VaultRef,
  replica: VaultRef,
  key: string,
  expected: Expected,
  opts: { sourceVersionId?: string; region: string },
): Promise<ReplicatedObject> {
  const present = await replica.store.head(replica.bucket, key);
  if (present && present.metadata[META_SHA256] === expected.sha256) {
    try {
      const stored = await proveCopy(replica, key, expected, present.versionId, opts.region);
      return { key, ...(present.versionId ? { versionId: present.versionId } : {}), copied: false, storedBytes: stored };
    } catch (e) {
      if (!(e instanceof ChecksumMismatchError)) throw e;
      // The replica's copy is damaged: write a good one over it (a new version; the damaged one stays in history).
    }
  }
  const src = await primary.store.get(primary.bucket, key, opts.sourceVersionId);
  if (!src) throw new NotFoundError(`vault object ${key} is missing in the primary vault`);
  const claimed = parseObjectMeta(src.metadata, `vault object ${key}`);
  await verifyEncodedBytes(src.body, { ...claimed, sha256: expected.sha256, size: expected.size }, `vault object ${key}`);
  const put = await replica.store.put(replica.bucket, key, src.body, src.metadata);
  const stored = await proveCopy(replica, key, expected, put.versionId, opts.region);
  return { key, ...(put.versionId ? { versionId: put.versionId } : {}), copied: true, storedBytes: stored };
}

/** One bounded part of a snapshot's copy (replicateSnapshotBatch). */
export type SnapshotBatch =
  | { done: false; cursor: number; chunks: number; copiedChunks: number }
  | { done: true; cursor: number; chunks: number; copiedChunks: number; manifest: ReplicatedObject };

export interface SnapshotBatchOptions {
  region: string;
  /** Position in the manifest's ordered list of distinct chunks to start at (0 first). */
  cursor: number;
  /** At most this many chunks per call. */
  maxChunks: number;
  /** Stop at the next group boundary once this much time is spent (a safety net under the Lambda timeout). */
  budgetMs?: number;
  concurrency?: number;
}

/**
 * Copies chunks [cursor, cursor + maxChunks) of a snapshot to the replica,
 * and the manifest once every chunk is there (see the file comment).
 * `manifestSha256` is the catalog's record of the manifest (SHA-256 of its
 * raw JSON). `copiedChunks` counts this call's copies only.
 */
export async function replicateSnapshotBatch(
  primary: VaultRef,
  replica: VaultRef,
  manifestKey: string,
  manifestSha256: string,
  opts: SnapshotBatchOptions,
): Promise<SnapshotBatch> {
  const started = Date.now();
  const src = await primary.store.get(primary.bucket, manifestKey);
  if (!src) throw new NotFoundError(`snapshot manifest ${manifestKey} is missing in the primary vault`);
  const claimed = parseObjectMeta(src.metadata, `snapshot manifest ${manifestKey}`);
  const raw = await verifyEncodedBytes(src.body, { ...claimed, sha256: manifestSha256 }, `snapshot manifest ${manifestKey} in the primary vault`);
  const { manifest, chunks } = parseManifest(raw);
  if (!Number.isInteger(opts.cursor) || opts.cursor < 0 || opts.cursor > chunks.length) {
    throw new InvalidInputError(`replication cursor ${opts.cursor} is outside snapshot manifest ${manifestKey} (${chunks.length} chunks)`);
  }
  if (!Number.isInteger(opts.maxChunks) || opts.maxChunks < 1) throw new InvalidInputError(`replication batch of ${opts.maxChunks} chunks is not a positive integer`);
  const concurrency = opts.concurrency ?? 8;
  const end = Math.min(chunks.length, opts.cursor + opts.maxChunks);
  const group = concurrency * 4;
  let cursor = opts.cursor;
  let copied = 0;
  while (cursor < end) {
    const part = chunks.slice(cursor, Math.min(end, cursor + group));
    await forEachLimit(part, concurrency, async (c) => {
      const r = await replicateObject(primary, replica, vaultChunkKey(manifest.databaseId, c.sha256), { sha256: c.sha256, size: c.size }, { region: opts.region });
      if (r.copied) copied++;
    });
    cursor += part.length;
    if (opts.budgetMs !== undefined && Date.now() - started >= opts.budgetMs) break;
  }
  if (cursor < chunks.length) return { done: false, cursor, chunks: chunks.length, copiedChunks: copied };
  const m = await replicateObject(primary, replica, manifestKey, { sha256: manifestSha256, size: raw.length }, { region: opts.region });
  return { done: true, cursor, chunks: chunks.length, copiedChunks: copied, manifest: m };
}
