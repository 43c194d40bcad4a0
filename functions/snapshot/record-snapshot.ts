/**
 * Snapshot ingest step 5 — RecordSnapshot: the conditional catalog write that
 * makes the snapshot restorable.
 * Input: { snapshot: ValidatedSnapshot, promoted: Promoted }.
 * Output: { outcome, snapshotId, recordedAt }.
 * The same manifest recorded before → "duplicate" (no change); a different
 * manifest under the same id → SnapshotConflictError (the workflow
 * quarantines the upload, the recorded snapshot stays).
 */
import { z } from "zod";
import { promotedSchema, type SnapshotRecord } from "../../core/schemas.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { validatedSnapshotSchema } from "./common.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema, promoted: promotedSchema });

export async function handler(input: unknown): Promise<{ outcome: "created" | "duplicate"; snapshotId: string; recordedAt: string }> {
  const { snapshot, promoted } = parseInput(inputSchema, input, "record snapshot input");
  const deps = getDeps();
  const { summary } = snapshot;
  const record: SnapshotRecord = {
    databaseId: snapshot.databaseId,
    snapshotId: snapshot.snapshotId,
    kind: snapshot.kind,
    ...(summary.timeline === undefined ? {} : { timeline: summary.timeline }),
    ...(summary.startLsn === undefined ? {} : { startLsn: summary.startLsn }),
    ...(summary.stopLsn === undefined ? {} : { stopLsn: summary.stopLsn }),
    ...(summary.startWalFile === undefined ? {} : { startWalFile: summary.startWalFile }),
    ...(summary.stopWalFile === undefined ? {} : { stopWalFile: summary.stopWalFile }),
    ...(summary.streams === undefined ? {} : { streams: summary.streams }),
    startedAt: summary.startedAt,
    finishedAt: summary.finishedAt,
    manifestKey: promoted.vaultKey,
    manifestSha256: snapshot.manifest.sha256,
    manifestSize: snapshot.manifest.size,
    totals: summary.totals,
    status: "restorable",
    recordedAt: new Date().toISOString(),
    replicas: {},
  };
  const result = await deps.catalog.recordSnapshot(record);
  return { outcome: result.outcome, snapshotId: snapshot.snapshotId, recordedAt: result.record.recordedAt };
}
