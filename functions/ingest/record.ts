/**
 * Ingest step 3 — Record: conditional, idempotent catalog write.
 * Input: { ingest: ValidatedWal, promoted: Promoted }. Output: { outcome, name }.
 * A new record is "pending" in each of ingest.replicaRegions.
 * Same bytes recorded before → "duplicate" (no change); different bytes →
 * SegmentConflictError (the workflow quarantines the upload).
 */
import { z } from "zod";
import { headSortKey, pendingReplicas } from "../../core/catalog-records.js";
import { isGenericWalName } from "../../core/generic-wal.js";
import { promotedSchema, validatedWalSchema, type Promoted, type ValidatedWal, type WalRecord } from "../../core/schemas.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ ingest: validatedWalSchema, promoted: promotedSchema });

async function handle(input: unknown): Promise<{ outcome: "created" | "duplicate"; name: string; archivedAt: string }> {
  const { ingest, promoted } = parseInput(inputSchema, input, "record input");
  return recordValidatedWal(getDeps(), ingest, promoted);
}

/** The conditional catalog write of a validated WAL file kept at `promoted` (and, for generic WAL, the head when it is new). */
export async function recordValidatedWal(
  deps: Pick<Deps, "catalog">,
  ingest: ValidatedWal,
  promoted: Promoted,
): Promise<{ outcome: "created" | "duplicate"; name: string; archivedAt: string }> {
  const archivedAt = new Date().toISOString();
  const record: WalRecord = {
    databaseId: ingest.databaseId,
    name: ingest.name,
    kind: ingest.kind,
    timeline: ingest.timeline,
    ...(ingest.startLsn ? { startLsn: ingest.startLsn, endLsn: ingest.endLsn } : {}),
    size: ingest.size,
    storedSize: ingest.storedSize,
    sha256: ingest.sha256,
    codec: ingest.codec,
    status: "stored",
    vaultKey: promoted.vaultKey,
    ...(promoted.versionId ? { vaultVersionId: promoted.versionId } : {}),
    archivedAt,
    ...(ingest.closedAt ? { closedAt: ingest.closedAt } : {}),
    ...(ingest.scanAt && ingest.scanCount ? { scanAt: ingest.scanAt, scanCount: ingest.scanCount } : {}),
    ...(ingest.restorePoints ? { restorePoints: ingest.restorePoints } : {}),
    ...(ingest.restorePointsTruncated ? { restorePointsTruncated: true } : {}),
    ...(ingest.lastXactAt ? { lastXactAt: ingest.lastXactAt } : {}),
    // Pending in every replica region until the replicate step proves a copy there (the replicate workflow lists what is pending).
    replicas: pendingReplicas(ingest.replicaRegions, archivedAt),
  };
  const result = await deps.catalog.recordWal(record);
  // A PostgreSQL database's head is its newest segment record (Catalog.getHead): only generic WAL, ordered by close time, keeps a head item.
  const sortKey = isGenericWalName(record.name) ? headSortKey(record) : undefined;
  if (result.outcome === "created" && sortKey !== undefined) {
    await deps.catalog.advanceHead(ingest.databaseId, ingest.name, sortKey, record.archivedAt);
  }
  return { outcome: result.outcome, name: ingest.name, archivedAt: result.record.archivedAt };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
