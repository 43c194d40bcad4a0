/**
 * Ingest step 4 — CopyToRegion (one Map iteration): copy a promoted WAL
 * object to one replica region's vault, prove the copy's bytes there against
 * the recorded SHA-256 (store/replication.ts), and record the region's status
 * in the catalog. A failure is retried by the workflow, then recorded as
 * "failed" (functions/replicate/record-failure.ts); the replicate workflow
 * catches the region up later.
 * Input: { region, ingest, promoted }. Output: { region, status }.
 */
import { replicateItemSchema } from "../../core/schemas.js";
import { replicateObject } from "../../store/replication.js";
import { getDeps, replicaOf } from "../deps.js";
import { parseInput } from "../parse.js";
import { lambdaHandler } from "../observability.js";

async function handle(input: unknown): Promise<{ region: string; status: "replicated" }> {
  const { region, ingest, promoted } = parseInput(replicateItemSchema, input, "replicate input");
  const deps = getDeps();
  const replica = replicaOf(deps, region);
  const copy = await replicateObject(
    { store: deps.vault, bucket: promoted.vaultBucket },
    { store: replica.store, bucket: replica.bucket },
    promoted.vaultKey,
    { sha256: ingest.sha256, size: ingest.size },
    { region, ...(promoted.versionId ? { sourceVersionId: promoted.versionId } : {}) },
  );
  await deps.catalog.setReplicaStatus(ingest.databaseId, ingest.name, region, {
    status: "replicated",
    at: new Date().toISOString(),
    ...(copy.versionId ? { versionId: copy.versionId } : {}),
  });
  return { region, status: "replicated" };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
