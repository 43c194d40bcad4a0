/**
 * Snapshot ingest step 5 — RecordSnapshot: the conditional catalog write that
 * makes the snapshot restorable.
 * Input: { snapshot: ValidatedSnapshot, promoted: Promoted }.
 * Output: { outcome, snapshotId, recordedAt, replicaRegions } (the next step copies to each region).
 * The same manifest recorded before → "duplicate" (no change); a different
 * manifest under the same id → SnapshotConflictError (the workflow
 * quarantines the upload, the recorded snapshot stays).
 */
import { z } from "zod";
import { snapshotRecordOf } from "../../core/catalog-records.js";
import { promotedSchema } from "../../core/schemas.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { validatedSnapshotSchema } from "./common.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema, promoted: promotedSchema });

async function handle(
  input: unknown,
): Promise<{ outcome: "created" | "duplicate"; snapshotId: string; recordedAt: string; replicaRegions: string[] }> {
  const { snapshot, promoted } = parseInput(inputSchema, input, "record snapshot input");
  const deps = getDeps();
  const replicaRegions = deps.replicas.map((r) => r.region);
  const record = snapshotRecordOf({
    databaseId: snapshot.databaseId,
    snapshotId: snapshot.snapshotId,
    kind: snapshot.kind,
    summary: snapshot.summary,
    manifestKey: promoted.vaultKey,
    manifestSha256: snapshot.manifest.sha256,
    manifestSize: snapshot.manifest.size,
    recordedAt: new Date().toISOString(),
    replicaRegions,
  });
  const result = await deps.catalog.recordSnapshot(record);
  return { outcome: result.outcome, snapshotId: snapshot.snapshotId, recordedAt: result.record.recordedAt, replicaRegions };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
