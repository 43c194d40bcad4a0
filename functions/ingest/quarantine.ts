/**
 * Ingest failure path — Quarantine: keep the rejected upload under
 * quarantine/ in the incoming bucket (it outlives the incoming/ expiry) and
 * record why in the catalog, where `wal-push --wait` and operators find it.
 * Never touches the vault.
 * Input: { state: <the workflow state at the failure, with .error> }.
 */
import { z } from "zod";
import { quarantineKey, INCOMING_PREFIX, DATABASE_ID_RE } from "../../core/keys.js";
import { describeError } from "../../core/errors.js";
import { lambdaCauseMessage } from "../../core/text.js";
import { objectCreatedEventSchema, stepErrorSchema, type QuarantineRecord } from "../../core/schemas.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { emitMetric, quarantineMetric, lambdaHandler, logger } from "../observability.js";

const inputSchema = z.object({
  state: objectCreatedEventSchema.partial().passthrough().extend({ error: stepErrorSchema }),
});

/** Lambda puts {"errorType","errorMessage",...} JSON in Cause; the local interpreter the bare message. */
export function causeMessage(cause: string | undefined): string {
  return cause ? lambdaCauseMessage(cause) : "no cause given";
}

/** Best-effort database id and file name out of a key that may be malformed. */
function identify(key: string): { databaseId: string; name: string } {
  const rest = key.startsWith(INCOMING_PREFIX) ? key.slice(INCOMING_PREFIX.length) : key;
  const [id, , ...name] = rest.split("/");
  return {
    databaseId: id && DATABASE_ID_RE.test(id) ? id : "_invalid",
    name: name.join("/") || key,
  };
}

async function handle(input: unknown): Promise<{ quarantineKey?: string; reason: string }> {
  const { state } = parseInput(inputSchema, input, "quarantine input");
  const deps = getDeps();
  const reason = causeMessage(state.error.Cause);
  const key = state.detail?.object.key ?? "(no key)";
  const bucket = state.detail?.bucket.name;
  const { databaseId, name } = identify(key);
  const at = new Date();
  let qKey: string | undefined;
  if (bucket === deps.incomingBucket && databaseId !== "_invalid") {
    const obj = await deps.incoming.get(bucket, key);
    if (obj) {
      qKey = quarantineKey(databaseId, name.replace(/\//g, "_"), at);
      await deps.incoming.put(bucket, qKey, obj.body, { ...obj.metadata, "walvault-reason": reason.replace(/[^\x20-\x7e]/g, "?").slice(0, 1024) });
    }
  }
  const record: QuarantineRecord = {
    databaseId,
    name,
    incomingKey: key,
    ...(qKey ? { quarantineKey: qKey } : {}),
    error: state.error.Error,
    reason,
    at: at.toISOString(),
  };
  await deps.catalog.recordQuarantine(record);
  emitMetric(quarantineMetric(record, "wal"));
  logger.warn(`quarantined ${key}: ${describeError(new Error(reason))}`, { databaseId, key, quarantineKey: qKey, error: state.error.Error });
  return { ...(qKey ? { quarantineKey: qKey } : {}), reason };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
