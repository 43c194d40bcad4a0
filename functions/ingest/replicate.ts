/**
 * Ingest step 4 — CopyToRegion (one Map iteration): copy a promoted object to
 * one replica region's vault, verify the copy's bytes against the recorded
 * SHA-256 there, and record the region's status in the catalog.
 * Input: { region, ingest, promoted }. Output: { region, status }.
 */
import { ConfigError, NotFoundError, UnknownDatabaseError } from "../../core/errors.js";
import { META_DATABASE, replicateItemSchema } from "../../core/schemas.js";
import { objectMeta, parseObjectMeta, verifyWalBytes } from "../../core/verify.js";
import { parseWalFileName } from "../../core/wal.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";

export async function handler(input: unknown): Promise<{ region: string; status: "replicated" }> {
  const { region, ingest, promoted } = parseInput(replicateItemSchema, input, "replicate input");
  const deps = getDeps();
  const replica = deps.replicas.find((r) => r.region === region);
  if (!replica) throw new ConfigError(`replica region '${region}' is not configured`);
  const src = await deps.vault.get(promoted.vaultBucket, promoted.vaultKey, promoted.versionId);
  if (!src) throw new NotFoundError(`vault object ${promoted.vaultKey} is missing`);
  const claimed = parseObjectMeta(src.metadata, `vault object ${promoted.vaultKey}`);
  const db = await deps.catalog.getDatabase(ingest.databaseId);
  if (!db) throw new UnknownDatabaseError(`database '${ingest.databaseId}' is not registered`);
  const segmentSize = db.walSegmentSize;
  const file = parseWalFileName(ingest.name, segmentSize);
  const put = await replica.store.put(replica.bucket, promoted.vaultKey, src.body, {
    ...objectMeta(claimed),
    [META_DATABASE]: ingest.databaseId,
  });
  // Read back from the replica and prove the bytes there.
  const copy = await replica.store.get(replica.bucket, promoted.vaultKey, put.versionId);
  if (!copy) throw new NotFoundError(`copy of ${promoted.vaultKey} in ${region} is missing right after the write`);
  await verifyWalBytes(file, copy.body, { ...claimed, sha256: ingest.sha256 }, segmentSize, `copy of ${promoted.vaultKey} in ${region}`, { postgres: db.kind === "postgres" });
  await deps.catalog.setReplicaStatus(ingest.databaseId, ingest.name, region, {
    status: "replicated",
    at: new Date().toISOString(),
    ...(put.versionId ? { versionId: put.versionId } : {}),
  });
  return { region, status: "replicated" };
}
