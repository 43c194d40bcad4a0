/**
 * What the snapshot ingest steps share: the workflow state they pass each
 * other (statemachines/snapshot-ingest.asl.json), how new chunks are grouped
 * into batches, and re-reading the manifest that ValidateManifest proved.
 *
 * Keeping the state small. Step Functions limits every state (and every
 * Task's input and output) to 256 KB, and a Standard execution to 25,000
 * history events. A chunk record is ~200 bytes here (SHA-256, sizes, codec and
 * the path of a file that uses it, for error messages), so only a small
 * snapshot's batches travel in the state itself (up to INLINE_BATCHES_MAX_BYTES);
 * otherwise ValidateManifest writes one JSON object per batch to the incoming
 * bucket under `work/` (which agents cannot write, and which expires with the
 * incoming lifecycle) and the Map iterates over bare batch indexes. Batches
 * hold BATCH_CHUNKS chunks, more when that would make more than MAX_BATCHES
 * batches: an inline Map costs ~7 history events per iteration, so 1,000
 * iterations stay far below the limit whatever the chunk count (25k chunks of
 * a 50 GB snapshot: 782 batches of 32; 1M blocks: 1,000 batches of 1,000).
 */
import { forEachLimit } from "../../core/concurrency.js";
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { InvalidInputError, NotFoundError, SegmentConflictError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { assertDatabaseId, assertSnapshotId } from "../../core/keys.js";
import { codecSchema, databaseIdSchema, sha256Schema, snapshotSummarySchema, type SnapshotSummary } from "../../core/schemas.js";
import { parseManifest, type ValidatedManifest } from "../../core/snapshot.js";
import type { PageEntry } from "../../core/manifest-pages.js";
import type { Catalog } from "../../store/catalog.js";
import type { Deps } from "../deps.js";
import { parseInput } from "../parse.js";

/** Chunks per batch (one PromoteChunks invocation), unless that makes more than MAX_BATCHES batches. */
export const BATCH_CHUNKS = 32;
/**
 * Packs per batch (one PromotePacks invocation), unless that makes more than
 * MAX_BATCHES batches: 4 packs of 32 MiB are read, verified and written one
 * after the other in a few seconds; 1,000 batches of 4 cover 128 GiB stored,
 * beyond that a batch holds more packs, not more at once.
 */
export const BATCH_PACKS = 4;
/**
 * New chunks a PromotePacks batch should hold at most, on average: a pack
 * of many chunks (highly compressible data fills one by entries, up to
 * DEFAULT_MAX_PACK_ENTRIES, 6,144, ~768 MiB raw) goes alone, so that the Map's iterations (4 at once)
 * decode and hash the snapshot in parallel sandboxes instead of one
 * invocation doing 4 such packs one after the other.
 */
export const BATCH_PACK_CHUNKS = 4096;

/**
 * Of `names`, the packs recorded as promoted and not marked by retention: a
 * pack record is written after the pack's object and every chunk record
 * (PromotePacks), so such a pack needs no promotion (ValidateManifest leaves
 * it out of the batches, PromotePacks skips it). One marked is promoted
 * again, which rewrites its record without the mark (docs/retention.md
 * "Packs"). Batched by the catalog (getPacks: BatchGetItem of 100).
 */
export async function promotedPacks(catalog: Catalog, databaseId: string, names: readonly string[]): Promise<Set<string>> {
  const records = await catalog.getPacks(databaseId, names);
  return new Set(records.filter((p) => p.orphanedAt === undefined).map((p) => p.name));
}

/** Packs per PromotePacks batch for `packs` packs holding `newChunks` new chunks: BATCH_PACKS, fewer when packs hold many chunks (at least 1). */
export function packsPerBatch(packs: number, newChunks: number): number {
  if (packs === 0) return BATCH_PACKS;
  return Math.min(BATCH_PACKS, Math.max(1, Math.floor(BATCH_PACK_CHUNKS / Math.max(1, newChunks / packs))));
}
/**
 * Largest pack PromotePacks reads (it holds one whole pack at a time): the
 * agent's packs are at most DEFAULT_PACK_TARGET_SIZE (32 MiB), or one chunk
 * and its index when a chunk is larger; anything beyond this is refused
 * before it is read.
 */
export const MAX_INGEST_PACK_BYTES = 256 * 1024 * 1024;
/** Upper bound on Map iterations per execution (history events: ~7 per iteration, 25,000 per execution). */
export const MAX_BATCHES = 1000;
/** Batches up to this size (serialized) travel in the workflow state; larger lists go to work/ objects. */
export const INLINE_BATCHES_MAX_BYTES = 64 * 1024;
/**
 * Chunks PromoteChunks reads, decodes and writes at once (bounded memory: max
 * chunk 8 MiB raw). 8 was no faster on the local stack, which is CPU-bound
 * (docs/decisions.md, "Snapshot speed").
 */
export const PROMOTE_CONCURRENCY = 4;

/** Catalog quarantine name of a snapshot's manifest: what `listQuarantine(db, name)` finds it by. */
export function snapshotQuarantineName(snapshotId: string): string {
  return `snapshots/${snapshotId}/manifest.json`;
}

/** Prefix (in the incoming bucket) of the batch objects of one manifest; its SHA-256 keeps two different manifests of one id apart. */
export function batchesPrefix(databaseId: string, snapshotId: string, manifestSha256: string): string {
  return `work/db/${assertDatabaseId(databaseId)}/snapshots/${assertSnapshotId(snapshotId)}/${manifestSha256.slice(0, 16)}/batches/`;
}

export function batchKey(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(5, "0")}.json`;
}

/** One new chunk to promote, as the manifest records it. */
export const batchChunkSchema = z.object({
  sha256: sha256Schema,
  size: z.number().int().positive(),
  storedSize: z.number().int().positive(),
  codec: codecSchema,
  /** A file that uses the chunk (for messages). */
  file: z.string(),
});
export type BatchChunk = z.infer<typeof batchChunkSchema>;

/** A Map item: the chunks inline, or only the index of a work/ object holding them. */
export const batchItemSchema = z.object({
  index: z.number().int().nonnegative(),
  chunks: z.array(batchChunkSchema).optional(),
});
export type BatchItem = z.infer<typeof batchItemSchema>;

/** A Map item of a packed push (manifest `packs`): pack names inline, or only the index of a work/ object holding them. */
export const packBatchItemSchema = z.object({
  index: z.number().int().nonnegative(),
  packs: z.array(sha256Schema).optional(),
});
export type PackBatchItem = z.infer<typeof packBatchItemSchema>;

/** The body of a work/ batch object of a packed push. */
export const packBatchFileSchema = z.object({
  databaseId: databaseIdSchema,
  snapshotId: z.string(),
  manifestSha256: sha256Schema,
  index: z.number().int().nonnegative(),
  packs: z.array(sha256Schema),
});
export type PackBatchFile = z.infer<typeof packBatchFileSchema>;

/** The body of a work/ batch object. */
export const batchFileSchema = z.object({
  databaseId: databaseIdSchema,
  snapshotId: z.string(),
  manifestSha256: sha256Schema,
  index: z.number().int().nonnegative(),
  chunks: z.array(batchChunkSchema),
});
export type BatchFile = z.infer<typeof batchFileSchema>;

/** What RecordSnapshot needs from the manifest (small: no file list): core/catalog-records.ts derives it. */
export { snapshotSummarySchema, type SnapshotSummary };

/** ValidateManifest's proof about the manifest, passed to every later step. */
export const validatedSnapshotSchema = z.object({
  databaseId: databaseIdSchema,
  snapshotId: z.string(),
  kind: z.enum(["postgres", "generic"]),
  incoming: z.object({ bucket: z.string(), key: z.string(), versionId: z.string().optional() }),
  manifest: z.object({
    /** SHA-256 of the manifest's raw (decoded) JSON bytes: the catalog's manifestSha256. */
    sha256: sha256Schema,
    /** SHA-256 of the bytes as stored: later steps check their re-read against it. */
    encodedSha256: sha256Schema,
    size: z.number().int().nonnegative(),
    storedSize: z.number().int().nonnegative(),
    codec: codecSchema,
  }),
  vaultKey: z.string(),
  /** The catalog already records this very manifest: nothing to do. */
  duplicate: z.boolean(),
  summary: snapshotSummarySchema,
  newChunks: z.number().int().nonnegative(),
  /**
   * The manifest lists `packs`: the Map items are batches of packs
   * (PromotePacks), not of chunks. Always set by ValidateManifest (the
   * workflow's Choice reads it); absent reads as false.
   */
  packed: z.boolean().optional(),
  /** Packs the manifest lists (packed pushes). */
  packs: z.number().int().nonnegative().optional(),
  batchCount: z.number().int().nonnegative(),
  /** Set when the batches are work/ objects (the Map items are then bare indexes). */
  batchesPrefix: z.string().optional(),
  /**
   * A format-2 manifest (core/manifest-pages.ts): `manifest` describes its
   * header, and its pages are `pages/<i>.json` beside it (functions/snapshot/pages.ts).
   */
  paged: z.object({ pages: z.number().int().nonnegative() }).optional(),
});
export type ValidatedSnapshot = z.infer<typeof validatedSnapshotSchema>;

/** Groups items into batches: `size` (BATCH_CHUNKS) each, more when needed to stay within MAX_BATCHES. */
export function toBatches<T>(items: readonly T[], size: number = BATCH_CHUNKS): T[][] {
  const per = Math.max(size, Math.ceil(items.length / MAX_BATCHES));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += per) out.push(items.slice(i, i + per));
  return out;
}

/** Entries to name files from in messages: a whole format-1 manifest, or one page of a format-2 one. */
export interface ManifestFiles {
  databaseId: string;
  snapshotId: string;
  files: readonly PageEntry[];
}

/** Path of the first regular file that uses each of `sha256s` (for messages). */
export function filesUsing(manifest: ManifestFiles, sha256s: Iterable<string>): Map<string, string> {
  const wanted = new Set(sha256s);
  const out = new Map<string, string>();
  for (const e of manifest.files) {
    if (e.type !== "file") continue;
    for (const c of e.chunks) {
      if (wanted.has(c.sha256) && !out.has(c.sha256)) out.set(c.sha256, e.path);
    }
    if (out.size === wanted.size) break;
  }
  return out;
}

/** The error for referenced chunks the catalog does not have, naming the first one and a file that uses it. */
export function missingChunksError(manifest: ManifestFiles, missing: readonly string[], flaggedNew: ReadonlySet<string>): NotFoundError {
  const first = missing[0]!;
  const file = filesUsing(manifest, [first]).get(first) ?? "?";
  const why = flaggedNew.has(first)
    ? "it is flagged new but was not promoted"
    : "it is referenced as already stored, but the vault does not have it (never uploaded?)";
  const more = missing.length > 1 ? ` (and ${missing.length - 1} more missing chunk(s))` : "";
  return new NotFoundError(
    `snapshot ${manifest.snapshotId} of database ${manifest.databaseId}: chunk ${first} used by file ${JSON.stringify(file)} is not in the vault: ${why}${more}`,
  );
}

/**
 * Reads the manifest again from incoming and returns it parsed. Its stored
 * bytes must hash to exactly what ValidateManifest proved: an agent host can
 * overwrite its incoming key at any time, and only the validated manifest may
 * go on.
 */
export async function rereadManifest(deps: Deps, snapshot: ValidatedSnapshot): Promise<{ body: Buffer; validated: ValidatedManifest }> {
  const { bucket, key, versionId } = snapshot.incoming;
  const obj = await deps.incoming.get(bucket, key, versionId);
  if (!obj) throw new NotFoundError(`manifest ${key} disappeared after validation`);
  if (sha256Hex(obj.body) !== snapshot.manifest.encodedSha256) {
    throw new SegmentConflictError(`manifest ${key} changed after validation; not promoted`);
  }
  const raw = await decodeWith(snapshot.manifest.codec, obj.body, `manifest ${key}`, snapshot.manifest.size);
  return { body: obj.body, validated: parseManifest(raw, { databaseId: snapshot.databaseId, snapshotId: snapshot.snapshotId }) };
}

/**
 * Reads a work/ batch object and checks that it belongs to this manifest and
 * batch; `schema` parses its body.
 */
export async function readBatchFile<T extends { databaseId: string; snapshotId: string; manifestSha256: string; index: number }>(
  deps: Deps,
  snapshot: ValidatedSnapshot,
  index: number,
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
): Promise<T> {
  if (!snapshot.batchesPrefix) throw new InvalidInputError(`batch ${index} has no items and the snapshot no batch objects`);
  const key = batchKey(snapshot.batchesPrefix, index);
  const obj = await deps.incoming.get(deps.incomingBucket, key);
  if (!obj) throw new NotFoundError(`batch object ${key} of snapshot ${snapshot.snapshotId} is missing`);
  let json: unknown;
  try {
    json = JSON.parse(obj.body.toString("utf8"));
  } catch (cause) {
    throw new InvalidInputError(`batch object ${key} is not JSON`, { cause });
  }
  const file = parseInput(schema, json, `batch object ${key}`);
  if (
    file.databaseId !== snapshot.databaseId ||
    file.snapshotId !== snapshot.snapshotId ||
    file.manifestSha256 !== snapshot.manifest.sha256 ||
    file.index !== index
  ) {
    throw new InvalidInputError(`batch object ${key} belongs to another manifest or batch`);
  }
  return file;
}

export { forEachLimit };
