/**
 * Verify workflow step 3 — RecordResult: what the verification task proved.
 * The task writes its verification record itself (it ran the checks); this
 * step reads it by run id. No record means the task never got to checking
 * (failed to start, crashed, timed out): that is recorded here as an "error"
 * run with the workflow's error, so the history has every run. Emits one
 * CloudWatch metric per result (Embedded Metric Format on stdout:
 * walvault/Verification, dimensions DatabaseId and Outcome) and tells the
 * workflow whether to notify.
 * Input: { candidate, error?: { Error, Cause } }. Output: RecordedResult.
 */
import { z } from "zod";
import { stepErrorSchema, type VerificationRecord } from "../../core/schemas.js";
import { verifyCandidateSchema, type RecordedResult } from "../../core/verify-workflow.js";
import { causeMessage } from "../ingest/quarantine.js";
import { getDeps } from "../deps.js";
import { VERIFICATION_NAMESPACE } from "../../core/metrics.js";
import { parseInput } from "../parse.js";
import { emitMetric, lambdaHandler } from "../observability.js";

const inputSchema = z.object({ candidate: verifyCandidateSchema, error: stepErrorSchema.optional() });

async function handle(input: unknown): Promise<RecordedResult> {
  const { candidate: c, error } = parseInput(inputSchema, input, "record verification result input");
  const deps = getDeps();
  let rec: VerificationRecord | undefined = (await deps.catalog.listVerifications(c.databaseId, c.snapshotId)).find((v) => v.runId === c.runId);
  if (!rec) {
    const at = new Date().toISOString();
    rec = {
      databaseId: c.databaseId,
      runId: c.runId,
      snapshotId: c.snapshotId,
      level: c.level,
      ...(c.targetTime ? { targetTime: c.targetTime } : {}),
      outcome: "error",
      failure: `the verification task did not report: ${error ? `${error.Error}: ${causeMessage(error.Cause)}` : "no result"}`.slice(0, 2000),
      errorName: error?.Error ?? "NoResult",
      checks: [],
      startedAt: at,
      finishedAt: at,
      trigger: c.trigger,
      reason: c.reason,
    };
    await deps.catalog.recordVerification(rec);
  }
  // One metric per result (EMF: CloudWatch turns this log line into metrics; no API call, no extra permission).
  emitMetric({
    namespace: VERIFICATION_NAMESPACE,
    dimensions: ["DatabaseId", "Outcome"],
    metrics: [
      { name: "Runs", unit: "Count" },
      { name: "RestoreSeconds", unit: "Seconds" },
    ],
    values: { DatabaseId: c.databaseId, Outcome: rec.outcome, Runs: 1, RestoreSeconds: rec.restoreSeconds ?? 0, RunId: c.runId },
  });
  const failedAt = rec.failedLevel ? ` at L${rec.failedLevel}` : "";
  return {
    databaseId: c.databaseId,
    snapshotId: c.snapshotId,
    runId: c.runId,
    outcome: rec.outcome,
    level: rec.level,
    ...(rec.failedLevel ? { failedLevel: rec.failedLevel } : {}),
    ...(rec.failure ? { failure: rec.failure } : {}),
    ...(rec.restoreSeconds !== undefined ? { restoreSeconds: rec.restoreSeconds } : {}),
    notify: rec.outcome !== "passed",
    subject: `walvault verification ${rec.outcome.toUpperCase()}: ${c.databaseId} snapshot ${c.snapshotId}`.slice(0, 99),
    message: `Verification ${c.runId} of ${c.databaseId} snapshot ${c.snapshotId} at level ${c.level}${c.targetTime ? ` to ${c.targetTime}` : ""}: ${rec.outcome}${failedAt}${rec.failure ? `: ${rec.failure}` : ""}`,
  };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
