/**
 * Replicate workflow — CopyItem (and the snapshot ingest's CopySnapshot):
 * copy one WAL file, or one bounded batch of a snapshot, from the primary
 * vault to a replica region's vault, proven there (store/replication.ts);
 * mark the region "replicated" in the catalog once the item is whole.
 * A snapshot takes several invocations: each copies at most
 * WALVAULT_REPLICATE_BATCH chunks (default REPLICATE_BATCH_CHUNKS) or, for a
 * packed snapshot, WALVAULT_REPLICATE_PACKS packs (default
 * REPLICATE_BATCH_PACKS) and 8 × WALVAULT_REPLICATE_BATCH chunk lookups from
 * `cursor`, or stops earlier once REPLICATE_BUDGET_MS is spent, and returns
 * { done: false, cursor }; the workflow's Choice calls this step again with
 * that output until done. Only the invocation that writes the manifest (the
 * commit point) marks the region. Idempotent: what the region already holds
 * with the right bytes is verified, not copied again.
 * Input: { region, item: { databaseId, name? | snapshotId? }, cursor?, copiedChunks?, copiedPacks? }
 *   (a "copying" output of this step is a valid input).
 * Output: { region, status: "replicated", done: true, copied, chunks?, packs? }
 *   or, for a snapshot with work left,
 *   { region, item, status: "copying", done: false, cursor, chunks, copiedChunks, packs?, copiedPacks? }.
 */
import { z } from "zod";
import { ConfigError, NotFoundError } from "../../core/errors.js";
import { DEFAULT_REPLICATE_PACKS, replicateObject, replicateSnapshotBatch } from "../../store/replication.js";
import { getDeps, replicaOf } from "../deps.js";
import { parseInput } from "../parse.js";
import { replicationItemSchema, type ReplicationItem } from "./common.js";
import { lambdaHandler } from "../observability.js";

/**
 * Chunks per invocation. At the measured ~45 chunks/s of a first copy
 * (HEAD, GET, PUT, read back; issue #11) 2,048 chunks take ~45 s, far below
 * the 15-minute timeout; a 100 GB snapshot of 128 KiB chunks takes ~400
 * invocations (~2,800 history events).
 */
export const REPLICATE_BATCH_CHUNKS = 2048;
/**
 * Packs per invocation (a packed snapshot): 16 × 32 MiB = 512 MiB, each
 * copied once (GET, PUT with its SHA-256 checksum, HEAD), 4 at a time
 * (128 MiB held) in the step's 2 GB.
 */
export const REPLICATE_BATCH_PACKS = DEFAULT_REPLICATE_PACKS;
/** Time after which a batch stops at its next group of chunks: a third of the step's 15-minute timeout. */
export const REPLICATE_BUDGET_MS = 5 * 60 * 1000;

const inputSchema = z.object({
  region: z.string().min(1),
  item: replicationItemSchema,
  cursor: z.number().int().nonnegative().optional(),
  copiedChunks: z.number().int().nonnegative().optional(),
  copiedPacks: z.number().int().nonnegative().optional(),
});

function positiveFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a positive integer, not "${v}"`);
  return n;
}

/** WALVAULT_REPLICATE_BATCH when set (tests lower it), else REPLICATE_BATCH_CHUNKS. */
export function replicateBatchChunks(env: NodeJS.ProcessEnv = process.env): number {
  return positiveFromEnv(env, "WALVAULT_REPLICATE_BATCH", REPLICATE_BATCH_CHUNKS);
}

/** WALVAULT_REPLICATE_PACKS when set (tests lower it), else REPLICATE_BATCH_PACKS. */
export function replicateBatchPacks(env: NodeJS.ProcessEnv = process.env): number {
  return positiveFromEnv(env, "WALVAULT_REPLICATE_PACKS", REPLICATE_BATCH_PACKS);
}

export type CopyItemOutput =
  | { region: string; status: "replicated"; done: true; copied: boolean; chunks?: number; packs?: number }
  | {
      region: string;
      item: ReplicationItem;
      status: "copying";
      done: false;
      cursor: number;
      chunks: number;
      copiedChunks: number;
      packs?: number;
      copiedPacks?: number;
    };

async function handle(input: unknown): Promise<CopyItemOutput> {
  const { region, item, cursor, copiedChunks, copiedPacks } = parseInput(inputSchema, input, "copy item input");
  const maxChunks = replicateBatchChunks();
  const maxPacks = replicateBatchPacks();
  const deps = getDeps();
  const replica = replicaOf(deps, region);
  const primary = { store: deps.vault, bucket: deps.vaultBucket };
  const target = { store: replica.store, bucket: replica.bucket };
  const at = (): string => new Date().toISOString();
  if (item.name !== undefined) {
    const rec = await deps.catalog.getWal(item.databaseId, item.name);
    if (!rec) throw new NotFoundError(`no WAL record ${item.name} for database ${item.databaseId} to replicate`);
    const copy = await replicateObject(primary, target, rec.vaultKey, { sha256: rec.sha256, size: rec.size }, {
      region,
      ...(rec.vaultVersionId ? { sourceVersionId: rec.vaultVersionId } : {}),
    });
    await deps.catalog.setReplicaStatus(item.databaseId, item.name, region, { status: "replicated", at: at(), ...(copy.versionId ? { versionId: copy.versionId } : {}) });
    return { region, status: "replicated", done: true, copied: copy.copied };
  }
  const snap = await deps.catalog.getSnapshot(item.databaseId, item.snapshotId!);
  if (!snap) throw new NotFoundError(`no snapshot ${item.snapshotId} of database ${item.databaseId} to replicate`);
  const b = await replicateSnapshotBatch(primary, target, snap.manifestKey, snap.manifestSha256, {
    region,
    cursor: cursor ?? 0,
    maxChunks,
    maxPacks,
    catalog: deps.catalog,
    budgetMs: REPLICATE_BUDGET_MS,
  });
  const copiedSoFar = (copiedChunks ?? 0) + b.copiedChunks;
  const packsSoFar = (copiedPacks ?? 0) + (b.copiedPacks ?? 0);
  const packCounts = b.packs === undefined ? {} : { packs: b.packs };
  if (!b.done) {
    return {
      region,
      item,
      status: "copying",
      done: false,
      cursor: b.cursor,
      chunks: b.chunks,
      copiedChunks: copiedSoFar,
      ...(b.packs === undefined ? {} : { packs: b.packs, copiedPacks: packsSoFar }),
    };
  }
  await deps.catalog.setSnapshotReplicaStatus(item.databaseId, snap.snapshotId, region, {
    status: "replicated",
    at: at(),
    ...(b.manifest.versionId ? { versionId: b.manifest.versionId } : {}),
  });
  return { region, status: "replicated", done: true, copied: b.manifest.copied || copiedSoFar > 0 || packsSoFar > 0, chunks: b.chunks, ...packCounts };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
