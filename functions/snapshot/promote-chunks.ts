/**
 * Snapshot ingest step 2 — PromoteChunks (one Map iteration): put one batch
 * of the manifest's new chunks into the vault and record them in the catalog.
 * Input: { snapshot: ValidatedSnapshot, batch: BatchItem }.
 * Output: { index, promoted, present }.
 *
 * Per chunk: if the vault already has db/<id>/chunks/<sha256> (another push
 * promoted it, or this batch ran before) its metadata must agree with the
 * manifest's record and nothing is written (Object Lock: no needless
 * versions). Otherwise the incoming object incoming/db/<id>/chunks/<sha256>
 * is read, its metadata must agree with the manifest's record (codec, raw
 * size, stored size), it is decoded with that codec and size, and its SHA-256
 * must be its name; exactly those bytes are written to the vault. Decoding,
 * hashing and writing happen on the same bytes in memory, so nothing can be
 * swapped in between. Then every chunk of the batch is recorded (a chunk
 * record describes content-addressed bytes: writing it again is harmless, and
 * a retried batch repairs a record lost after its put).
 */
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, NotFoundError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingChunkKey, vaultChunkKey } from "../../core/keys.js";
import { META_DATABASE, type ChunkItem } from "../../core/schemas.js";
import { objectMeta, parseObjectMeta } from "../../core/verify.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import {
  PROMOTE_CONCURRENCY,
  batchFileSchema,
  batchItemSchema,
  forEachLimit,
  readBatchFile,
  validatedSnapshotSchema,
  type BatchChunk,
  type ValidatedSnapshot,
} from "./common.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema, batch: batchItemSchema });

async function batchChunks(deps: Deps, snapshot: ValidatedSnapshot, index: number, inline: BatchChunk[] | undefined): Promise<BatchChunk[]> {
  return inline ?? (await readBatchFile(deps, snapshot, index, batchFileSchema)).chunks;
}

function describeChunk(c: BatchChunk): string {
  return `chunk ${c.sha256} (used by file ${JSON.stringify(c.file)})`;
}

/** Returns true when the chunk was written, false when the vault already had it. */
async function promoteChunk(deps: Deps, databaseId: string, c: BatchChunk): Promise<boolean> {
  const vaultKey = vaultChunkKey(databaseId, c.sha256);
  const what = describeChunk(c);
  const recorded = `the manifest records ${c.size} bytes, ${c.storedSize} stored, codec ${c.codec}`;
  const existing = await deps.vault.head(deps.vaultBucket, vaultKey);
  if (existing) {
    const meta = parseObjectMeta(existing.metadata, `vault object ${vaultKey}`);
    if (meta.sha256 !== c.sha256) {
      throw new ChecksumMismatchError(`vault object ${vaultKey} claims SHA-256 ${meta.sha256.slice(0, 12)}…, not its name; not replaced`);
    }
    if (meta.size !== c.size || meta.codec !== c.codec || existing.size !== c.storedSize) {
      throw new ChecksumMismatchError(
        `${what} is in the vault as ${meta.size} bytes, ${existing.size} stored, codec ${meta.codec}, but ${recorded}`,
      );
    }
    return false;
  }
  const incomingKey = incomingChunkKey(databaseId, c.sha256);
  const obj = await deps.incoming.get(deps.incomingBucket, incomingKey);
  if (!obj) throw new NotFoundError(`${what} is flagged new, but ${incomingKey} was never uploaded (or has expired)`);
  const claimed = parseObjectMeta(obj.metadata, `upload ${incomingKey}`);
  if (claimed.sha256 !== c.sha256) {
    throw new ChecksumMismatchError(`upload ${incomingKey} claims SHA-256 ${claimed.sha256.slice(0, 12)}…, not its name`);
  }
  if (claimed.size !== c.size || claimed.codec !== c.codec || obj.body.length !== c.storedSize) {
    throw new ChecksumMismatchError(
      `upload ${incomingKey} is ${claimed.size} bytes, ${obj.body.length} stored, codec ${claimed.codec}, but ${recorded}`,
    );
  }
  const raw = await decodeWith(c.codec, obj.body, `upload ${incomingKey}`, c.size);
  if (raw.length !== c.size) {
    throw new ChecksumMismatchError(`${what} decodes to ${raw.length} bytes, but ${recorded}`);
  }
  const actual = sha256Hex(raw);
  if (actual !== c.sha256) {
    throw new ChecksumMismatchError(`${what}: its bytes hash to ${actual.slice(0, 12)}…, not to its name; not promoted`);
  }
  await deps.vault.put(deps.vaultBucket, vaultKey, obj.body, {
    ...objectMeta({ sha256: c.sha256, codec: c.codec, size: c.size }),
    [META_DATABASE]: databaseId,
  });
  return true;
}

async function handle(input: unknown): Promise<{ index: number; promoted: number; present: number }> {
  const { snapshot, batch } = parseInput(inputSchema, input, "promote chunks input");
  const deps = getDeps();
  const chunks = await batchChunks(deps, snapshot, batch.index, batch.chunks);
  let promoted = 0;
  await forEachLimit(chunks, PROMOTE_CONCURRENCY, async (c) => {
    if (await promoteChunk(deps, snapshot.databaseId, c)) promoted++;
  });
  const recordedAt = new Date().toISOString();
  const items: ChunkItem[] = chunks.map((c) => ({
    databaseId: snapshot.databaseId,
    sha256: c.sha256,
    size: c.size,
    storedSize: c.storedSize,
    codec: c.codec,
    vaultKey: vaultChunkKey(snapshot.databaseId, c.sha256),
    recordedAt,
  }));
  if (items.length > 0) await deps.catalog.recordChunks(items);
  return { index: batch.index, promoted, present: chunks.length - promoted };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
