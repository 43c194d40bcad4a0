/**
 * Records that copying a WAL file or a snapshot to a replica region failed
 * after the workflow's retries (the Catch of CopyToRegion / ReplicateSnapshot
 * / CopyItem). "failed" never replaces "replicated" (store/catalog.ts); the
 * replicate workflow (statemachines/replicate.asl.json) catches up later.
 * Input: { region, item: { databaseId, name? | snapshotId? }, error: { Error, Cause? } }.
 */
import { z } from "zod";
import { InvalidInputError } from "../../core/errors.js";
import { stepErrorSchema } from "../../core/schemas.js";
import { replicationItemSchema } from "./common.js";
import { causeMessage } from "../ingest/quarantine.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { lambdaHandler, logger } from "../observability.js";

const inputSchema = z.object({ region: z.string().min(1), item: replicationItemSchema, error: stepErrorSchema });

async function handle(input: unknown): Promise<{ region: string; status: "failed"; error: string }> {
  const { region, item, error } = parseInput(inputSchema, input, "record replica failure input");
  const { databaseId, name, snapshotId } = item;
  const deps = getDeps();
  const message = `${error.Error}: ${causeMessage(error.Cause)}`.slice(0, 1000);
  const status = { status: "failed" as const, at: new Date().toISOString(), error: message };
  if (name !== undefined) await deps.catalog.setReplicaStatus(databaseId, name, region, status);
  else if (snapshotId !== undefined) await deps.catalog.setSnapshotReplicaStatus(databaseId, snapshotId, region, status);
  else throw new InvalidInputError("record replica failure input names neither a WAL file nor a snapshot");
  logger.error(`replicating ${databaseId} ${name ?? snapshotId} to ${region} failed: ${message}`, { databaseId, region });
  return { region, status: "failed", error: message };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
