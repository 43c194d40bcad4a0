/**
 * Snapshot ingest step 1 — ValidateManifest: the uploaded manifest is what it
 * claims to be and describes a snapshot this database can have.
 * Input: { event: EventBridge S3 "Object Created" event of
 *          incoming/db/<id>/snapshots/<snapshotId>/manifest.json }.
 * Output: { snapshot: ValidatedSnapshot, batches: BatchItem[] | PackBatchItem[] }.
 *
 * Checks: the key (only a manifest key; a chunk key starts nothing), the
 * database registration, the object's metadata (decode with its codec, raw
 * SHA-256 and size), the manifest itself (validateManifest against the key's
 * ids and the registered kind and WAL segment size), for an unpacked push
 * that every chunk the manifest takes as already stored is in the catalog
 * (before any chunk object is promoted), and the catalog's snapshot record (the same manifest recorded
 * already: duplicate, nothing to do; a different one: conflict). Then the
 * chunks flagged new are grouped into batches for the Map (common.ts), or,
 * when the manifest lists `packs`, the packs (PromotePacks; `packed: true`).
 *
 * Format 2 (a paged header, core/manifest-pages.ts): the same checks of the
 * header (validatePagedHeader), the duplicate/conflict lookup, and the pack
 * batches of a packed push; no page is read here. The output adds
 * `progress` (functions/snapshot/pages.ts), which ValidatePages carries until
 * every page is validated; `snapshot.paged` tells the later steps.
 *
 * A packed push's reused chunks are not looked up here (nor by
 * ValidatePages): CheckReferenced reads every one of their records anyway
 * (it must: it unmarks the packs they are in, docs/retention.md) and refuses
 * a missing one with the same NotFoundError, and nothing here waits on the
 * answer: the packs are promoted as they land whatever the manifest says.
 * The early lookup read every reused chunk's item a second time per
 * incremental snapshot (bench:scale, 10 GB with 5% changed: 82k items,
 * ValidatePages 10.7 s of the ingest).
 */
import { z } from "zod";
import { snapshotSummary } from "../../core/catalog-records.js";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, InvalidInputError, ManifestInvalidError, NotFoundError, SnapshotConflictError, UnknownDatabaseError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { parseIncomingSnapshotKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { objectCreatedEventSchema } from "../../core/schemas.js";
import { manifestFormatOf, validatePagedHeader } from "../../core/manifest-pages.js";
import { validateManifest } from "../../core/snapshot.js";
import { parseObjectMeta } from "../../core/verify.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import {
  packsPerBatch,
  promotedPacks,
  INLINE_BATCHES_MAX_BYTES,
  batchKey,
  batchesPrefix,
  filesUsing,
  forEachLimit,
  missingChunksError,
  toBatches,
  type BatchChunk,
  type BatchFile,
  type BatchItem,
  type PackBatchFile,
  type PackBatchItem,
  type ValidatedSnapshot,
} from "./common.js";
import { headerAsManifest, startPagedProgress, type PagedProgress } from "./pages.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ event: objectCreatedEventSchema });

async function handle(
  input: unknown,
): Promise<{ snapshot: ValidatedSnapshot; batches: BatchItem[] | PackBatchItem[]; progress?: PagedProgress }> {
  const { event } = parseInput(inputSchema, input, "snapshot ingest event");
  const deps = getDeps();
  const { name: bucket } = event.detail.bucket;
  const { key, "version-id": versionId } = event.detail.object;
  if (bucket !== deps.incomingBucket) {
    throw new InvalidInputError(`event names bucket '${bucket}', not the incoming bucket '${deps.incomingBucket}'`);
  }
  const parsedKey = parseIncomingSnapshotKey(key);
  if (parsedKey.object !== "manifest") {
    throw new InvalidInputError(`object key '${key}' is a chunk, not a snapshot manifest: chunks are ingested with the manifest that uses them`);
  }
  const { databaseId, snapshotId } = parsedKey;
  const db = await deps.catalog.getDatabase(databaseId);
  if (!db) throw new UnknownDatabaseError(`database '${databaseId}' is not registered`);

  const obj = await deps.incoming.get(bucket, key, versionId);
  if (!obj) throw new NotFoundError(`incoming object ${key} no longer exists`);
  const what = `manifest ${key}`;
  const claimed = parseObjectMeta(obj.metadata, what);
  const raw = await decodeWith(claimed.codec, obj.body, what, claimed.size);
  if (raw.length !== claimed.size) {
    throw new ChecksumMismatchError(`${what} decodes to ${raw.length} bytes, not the ${claimed.size} it claims`);
  }
  const sha256 = sha256Hex(raw);
  if (sha256 !== claimed.sha256) {
    throw new ChecksumMismatchError(`${what} has SHA-256 ${sha256.slice(0, 12)}…, not the ${claimed.sha256.slice(0, 12)}… it claims`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw new ManifestInvalidError(`snapshot manifest is not JSON: ${(e as Error).message}`, { field: "(top level)", cause: e });
  }
  const expect = { databaseId, snapshotId, kind: db.kind, walSegmentSize: db.walSegmentSize };
  const paged = manifestFormatOf(json) === 2 ? validatePagedHeader(json, expect) : undefined;
  const { manifest, chunks } = paged ? { manifest: headerAsManifest(paged), chunks: [] } : validateManifest(json, expect);

  const snapshot: ValidatedSnapshot = {
    databaseId,
    snapshotId,
    kind: manifest.kind,
    incoming: { bucket, key, ...(versionId ? { versionId } : {}) },
    manifest: { sha256, encodedSha256: sha256Hex(obj.body), size: raw.length, storedSize: obj.body.length, codec: claimed.codec },
    vaultKey: vaultSnapshotManifestKey(databaseId, snapshotId),
    duplicate: false,
    summary: snapshotSummary(manifest),
    newChunks: 0,
    packed: manifest.packs !== undefined,
    ...(manifest.packs === undefined ? {} : { packs: manifest.packs.length }),
    batchCount: 0,
    ...(paged ? { paged: { pages: paged.pages.length } } : {}),
  };

  const existing = await deps.catalog.getSnapshot(databaseId, snapshotId);
  if (existing) {
    if (existing.manifestSha256 !== sha256) {
      throw new SnapshotConflictError(
        `snapshot ${snapshotId} is already recorded for database ${databaseId} with a different manifest ` +
          `(recorded sha256 ${existing.manifestSha256.slice(0, 12)}…, uploaded ${sha256.slice(0, 12)}…); the recorded snapshot was kept`,
      );
    }
    return { snapshot: { ...snapshot, duplicate: true }, batches: [] };
  }

  if (paged) {
    // Format 2: the pages are validated by ValidatePages, a bounded number per invocation; a packed push's pack batches come from the header.
    const progress = startPagedProgress();
    if (paged.packs === undefined) return { snapshot, batches: [], progress };
    return { ...(await packBatches(deps, snapshot, paged.packs, paged.totals.newChunks)), progress };
  }

  // A packed push's reused chunks: checked once, by CheckReferenced (see the module comment).
  if (manifest.packs !== undefined) return packBatches(deps, snapshot, manifest.packs, chunks.filter((c) => c.new).length);

  // Chunks taken as already stored must be in the catalog: refuse before promoting any chunk object.
  const reused = chunks.filter((c) => !c.new).map((c) => c.sha256);
  const missing = reused.length > 0 ? await deps.catalog.missingChunks(databaseId, reused) : [];
  if (missing.length > 0) throw missingChunksError(manifest, missing, new Set());

  const fresh = chunks.filter((c) => c.new);
  const files = filesUsing(manifest, fresh.map((c) => c.sha256));
  const records: BatchChunk[] = fresh.map((c) => ({
    sha256: c.sha256,
    size: c.size,
    storedSize: c.storedSize,
    codec: c.codec,
    file: files.get(c.sha256) ?? "?",
  }));
  const groups = toBatches(records);
  const inline: BatchItem[] = groups.map((g, index) => ({ index, chunks: g }));
  const counted = { ...snapshot, newChunks: records.length, batchCount: groups.length };
  if (JSON.stringify(inline).length <= INLINE_BATCHES_MAX_BYTES) {
    return { snapshot: counted, batches: inline };
  }
  // Too big for the state: one work/ object per batch, the Map iterates over indexes.
  const prefix = batchesPrefix(databaseId, snapshotId, sha256);
  await forEachLimit(groups, 16, async (g, index) => {
    const file: BatchFile = { databaseId, snapshotId, manifestSha256: sha256, index, chunks: g };
    await deps.incoming.put(deps.incomingBucket, batchKey(prefix, index), Buffer.from(JSON.stringify(file)), {});
  });
  return { snapshot: { ...counted, batchesPrefix: prefix }, batches: groups.map((_, index) => ({ index })) };
}

/**
 * A packed push (manifest `packs`): the Map items are batches of the names
 * of the packs not promoted yet (packsPerBatch: BATCH_PACKS each, fewer when
 * packs hold many chunks; PromotePacks), inline when small, else work/
 * objects. Packs promoted as they landed (the pack-ingest workflow;
 * promotedPacks) are left out: a push's packs mostly are by the time its
 * manifest lands, and the Map then runs for the last few only.
 * The chunks are checked against the catalog after promotion (CheckReferenced).
 */
async function packBatches(
  deps: Deps,
  snapshot: ValidatedSnapshot,
  packs: readonly string[],
  newChunks: number,
): Promise<{ snapshot: ValidatedSnapshot; batches: PackBatchItem[] }> {
  const { databaseId, snapshotId } = snapshot;
  const sha256 = snapshot.manifest.sha256;
  const promoted = await promotedPacks(deps.catalog, databaseId, packs);
  const pending = packs.filter((p) => !promoted.has(p));
  // Chunks per pack as the whole manifest has them (the pending packs' own counts are not known here).
  const groups = toBatches(pending, packsPerBatch(packs.length, newChunks));
  const inline: PackBatchItem[] = groups.map((g, index) => ({ index, packs: g }));
  const counted = { ...snapshot, newChunks, batchCount: groups.length };
  if (JSON.stringify(inline).length <= INLINE_BATCHES_MAX_BYTES) return { snapshot: counted, batches: inline };
  const prefix = batchesPrefix(databaseId, snapshotId, sha256);
  await forEachLimit(groups, 16, async (g, index) => {
    const file: PackBatchFile = { databaseId, snapshotId, manifestSha256: sha256, index, packs: g };
    await deps.incoming.put(deps.incomingBucket, batchKey(prefix, index), Buffer.from(JSON.stringify(file)), {});
  });
  return { snapshot: { ...counted, batchesPrefix: prefix }, batches: groups.map((_, index) => ({ index })) };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
