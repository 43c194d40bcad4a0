/**
 * Snapshot ingest failure path — QuarantineSnapshot: keep the rejected
 * manifest under quarantine/ in the incoming bucket and record why in the
 * catalog (name `snapshots/<snapshotId>/manifest.json`, where `snapshot push
 * --wait` and operators find it). The snapshot is never recorded; chunks
 * already promoted stay in the vault as content-addressed bytes a later push
 * can reuse (retention's chunk GC removes them if nothing ever refers to them).
 * Input: { state: <the workflow state at the failure, with .error> }.
 */
import { z } from "zod";
import { describeError } from "../../core/errors.js";
import { DATABASE_ID_RE, INCOMING_PREFIX, parseIncomingSnapshotKey, quarantineKey } from "../../core/keys.js";
import { objectCreatedEventSchema, stepErrorSchema, type QuarantineRecord } from "../../core/schemas.js";
import { getDeps } from "../deps.js";
import { causeMessage } from "../ingest/quarantine.js";
import { parseInput } from "../parse.js";
import { snapshotQuarantineName } from "./common.js";
import { emitMetric, quarantineMetric, lambdaHandler, logger } from "../observability.js";

const inputSchema = z.object({
  state: objectCreatedEventSchema.partial().passthrough().extend({ error: stepErrorSchema }),
});

/** Database id and quarantine name out of a key that may be malformed. */
function identify(key: string): { databaseId: string; name: string } {
  try {
    const parsed = parseIncomingSnapshotKey(key);
    return {
      databaseId: parsed.databaseId,
      name: parsed.object === "manifest" ? snapshotQuarantineName(parsed.snapshotId) : parsed.object === "pack" ? `packs/${parsed.name}` : `chunks/${parsed.sha256}`,
    };
  } catch {
    const rest = key.startsWith(INCOMING_PREFIX) ? key.slice(INCOMING_PREFIX.length) : key;
    const [id, ...name] = rest.split("/");
    return { databaseId: id && DATABASE_ID_RE.test(id) ? id : "_invalid", name: name.join("/") || key };
  }
}

async function handle(input: unknown): Promise<{ quarantineKey?: string; reason: string }> {
  const { state } = parseInput(inputSchema, input, "quarantine snapshot input");
  const deps = getDeps();
  const reason = causeMessage(state.error.Cause);
  const key = state.detail?.object.key ?? "(no key)";
  const bucket = state.detail?.bucket.name;
  const { databaseId, name } = identify(key);
  const at = new Date();
  let qKey: string | undefined;
  if (bucket === deps.incomingBucket && databaseId !== "_invalid") {
    const obj = await deps.incoming.get(bucket, key, state.detail?.object["version-id"]);
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
  emitMetric(quarantineMetric(record, "snapshot"));
  logger.warn(`quarantined ${key}: ${describeError(new Error(reason))}`, { databaseId, key, quarantineKey: qKey, error: state.error.Error });
  return { ...(qKey ? { quarantineKey: qKey } : {}), reason };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
