/**
 * Replicate workflow — CopyItem (and the snapshot ingest's ReplicateSnapshot):
 * copy one WAL file or one snapshot (its chunks, then its manifest) from the
 * primary vault to a replica region's vault, proven there
 * (store/replication.ts), then mark the region "replicated" in the catalog.
 * Idempotent: what the region already holds with the right bytes is verified,
 * not copied again.
 * Input: { region, item: { databaseId, name? | snapshotId? } }.
 * Output: { region, status: "replicated", copied, chunks? }.
 */
import { z } from "zod";
import { NotFoundError } from "../../core/errors.js";
import { replicateObject, replicateSnapshot } from "../../store/replication.js";
import { getDeps, replicaOf } from "../deps.js";
import { parseInput } from "../parse.js";
import { replicationItemSchema } from "./common.js";

const inputSchema = z.object({ region: z.string().min(1), item: replicationItemSchema });

export async function handler(input: unknown): Promise<{ region: string; status: "replicated"; copied: boolean; chunks?: number }> {
  const { region, item } = parseInput(inputSchema, input, "copy item input");
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
    return { region, status: "replicated", copied: copy.copied };
  }
  const snap = await deps.catalog.getSnapshot(item.databaseId, item.snapshotId!);
  if (!snap) throw new NotFoundError(`no snapshot ${item.snapshotId} of database ${item.databaseId} to replicate`);
  const r = await replicateSnapshot(primary, target, snap.manifestKey, snap.manifestSha256, { region });
  await deps.catalog.setSnapshotReplicaStatus(item.databaseId, snap.snapshotId, region, {
    status: "replicated",
    at: at(),
    ...(r.manifest.versionId ? { versionId: r.manifest.versionId } : {}),
  });
  return { region, status: "replicated", copied: r.manifest.copied || r.copiedChunks > 0, chunks: r.chunks };
}
