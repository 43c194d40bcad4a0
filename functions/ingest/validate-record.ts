/**
 * Direct WAL (the wal-record workflow, statemachines/wal-record.asl.json):
 * the agent wrote a segment straight into the vault under its
 * content-addressed key (core/keys.ts vaultWalDirectKey) and started this
 * workflow with { databaseId, name, key, sha256 }. One step does what
 * Validate → Promote → Record do for an incoming/ upload:
 *   GET the vault object; the key is the one this name and these stored bytes
 *   have (its digest = SHA-256 of the bytes read); the agent's claimed SHA-256
 *   is the metadata's; then the same checks as Validate (validateWalObject:
 *   size, decoded SHA-256, PostgreSQL header) and the same conditional
 *   catalog write as Record (recordValidatedWal), which makes the
 *   duplicate-or-conflict decision (no read of the WAL record before it).
 * Output: { ingest, promoted, outcome } (the shapes the replicate step reads).
 *
 * A rejected object is never recorded: `quarantineHandler` writes a
 * quarantine record naming its vault key and leaves the object where it is
 * (unreferenced; Object Lock may forbid deleting it). No step deletes or
 * replaces anything in the vault.
 */
import { z } from "zod";
import { ChecksumMismatchError, InvalidInputError, NotFoundError, UnknownDatabaseError, describeError } from "../../core/errors.js";
import { BufferPool } from "../../core/buffer-pool.js";
import { sha256Hex } from "../../core/hash.js";
import { DATABASE_ID_RE, parseVaultWalKey, rejectedMarkerKey, vaultWalDirectKey } from "../../core/keys.js";
import { databaseIdSchema, META_DATABASE, sha256Schema, stepErrorSchema, type Promoted, type QuarantineRecord, type ValidatedWal } from "../../core/schemas.js";
import { parseObjectMeta } from "../../core/verify.js";
import { parseWalFileName } from "../../core/wal.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { causeMessage } from "./quarantine.js";
import { recordValidatedWal } from "./record.js";
import { emitBacklog, validateWalObject } from "./validate.js";
import { emitMetric, quarantineMetric, lambdaHandler, logger } from "../observability.js";

/** What the agent starts the workflow with (agent/wal-push.ts). */
export const walRecordRequestSchema = z.object({
  databaseId: databaseIdSchema,
  name: z.string().min(1).max(64),
  key: z.string().min(1).max(256),
  /** SHA-256 of the decoded (raw) bytes, as the agent computed it. */
  sha256: sha256Schema,
});
export type WalRecordRequest = z.infer<typeof walRecordRequestSchema>;

const inputSchema = z.object({ request: walRecordRequestSchema });

export interface WalRecordOutput {
  ingest: ValidatedWal;
  promoted: Promoted;
  outcome: "created" | "duplicate";
}

/**
 * The buffer the vault object is read into, kept from one invocation to the
 * next of this container (core/buffer-pool.ts): a 1.5 MiB allocation less
 * per segment, and about a quarter of the sandbox's full garbage collections
 * (bench:wal-push, --trace-gc). Lent to one invocation at a time.
 */
const BODIES = new BufferPool(1);

async function handle(input: unknown): Promise<WalRecordOutput> {
  let lent: Buffer | undefined;
  try {
    return await handleInto((size) => (lent = BODIES.take(size)), input);
  } finally {
    // Nothing holds the object's bytes once the handler is done with them.
    if (lent !== undefined) BODIES.give(lent);
  }
}

async function handleInto(bodyBuffer: (size: number) => Buffer, input: unknown): Promise<WalRecordOutput> {
  const { request } = parseInput(inputSchema, input, "wal-record input");
  const deps = getDeps();
  const { databaseId, name, key } = request;
  const parsed = parseVaultWalKey(key);
  if (!parsed || parsed.area !== "wal" || parsed.digest === undefined || parsed.databaseId !== databaseId || parsed.name !== name) {
    throw new InvalidInputError(`'${key}' is not a direct WAL key of ${name} for database ${databaseId} (db/<id>/wal/<timeline>/<name>.<16 hex>)`);
  }
  // The two reads are independent: one round trip, not two (Lambda bills the wait). The WAL record is not read:
  // the conditional write below finds a record of this name (same bytes: duplicate; others: conflict).
  const [db, obj] = await Promise.all([deps.catalog.getDatabase(databaseId), deps.vault.get(deps.vaultBucket, key, undefined, { bodyBuffer })]);
  if (!db) throw new UnknownDatabaseError(`database '${databaseId}' is not registered`);
  if (db.kind !== "postgres") throw new InvalidInputError(`database '${databaseId}' is generic: its WAL is uploaded through incoming/, not written to the vault directly`);
  const file = parseWalFileName(name, db.walSegmentSize);
  if (!obj) throw new NotFoundError(`vault object ${key} does not exist (was it written before the workflow was started?)`);
  const stored = sha256Hex(obj.body);
  const expected = vaultWalDirectKey(databaseId, file, stored);
  if (expected !== key) {
    throw new ChecksumMismatchError(`vault object ${key} does not hold the bytes its key names (their SHA-256 is ${stored.slice(0, 16)}…); not recorded`);
  }
  const claimed = parseObjectMeta(obj.metadata, `vault object ${key}`);
  if (claimed.sha256 !== request.sha256) {
    throw new ChecksumMismatchError(
      `vault object ${key} is described as sha256 ${claimed.sha256.slice(0, 12)}…, but the agent pushed ${request.sha256.slice(0, 12)}…; not recorded`,
    );
  }
  const location = { bucket: deps.vaultBucket, key, ...(obj.versionId ? { versionId: obj.versionId } : {}) };
  const ingest = await validateWalObject(deps, { databaseId, db, parsed: { walName: name }, obj, location, vaultKey: key, decidedAtWrite: true, encodedSha256: stored });
  emitBacklog(ingest);
  const promoted: Promoted = { vaultBucket: deps.vaultBucket, vaultKey: key, ...(obj.versionId ? { versionId: obj.versionId } : {}), copied: false };
  // ingest.duplicate is false here (decidedAtWrite): the conditional write below decides.
  const recorded = await recordValidatedWal(deps, ingest, promoted);
  // Recorded meanwhile by another execution of the same bytes: nothing more to do here.
  return { ingest: recorded.outcome === "duplicate" ? { ...ingest, duplicate: true } : ingest, promoted, outcome: recorded.outcome };
}

const quarantineInputSchema = z.object({
  request: z.object({ databaseId: z.unknown(), name: z.unknown(), key: z.unknown() }).partial().passthrough(),
  error: stepErrorSchema,
});

/**
 * The wal-record workflow's quarantine step: a quarantine record naming the
 * rejected vault object (in `incomingKey`: where the rejected bytes are).
 * Nothing is copied or deleted: the object stays unreferenced in the vault.
 */
async function handleQuarantine(input: unknown): Promise<{ reason: string }> {
  const { request, error } = parseInput(quarantineInputSchema, input, "wal-record quarantine input");
  const deps = getDeps();
  const reason = causeMessage(error.Cause);
  const text = (v: unknown): string => (typeof v === "string" ? v.slice(0, 256) : "");
  const databaseId = text(request.databaseId);
  const record: QuarantineRecord = {
    databaseId: DATABASE_ID_RE.test(databaseId) ? databaseId : "_invalid",
    name: text(request.name) || "(no name)",
    incomingKey: text(request.key) || "(no key)",
    error: error.Error,
    reason,
    at: new Date().toISOString(),
  };
  await deps.catalog.recordQuarantine(record);
  await markRejected(deps, record);
  emitMetric(quarantineMetric(record, "wal-direct"));
  logger.warn(`rejected ${record.incomingKey} (left unreferenced in the vault): ${describeError(new Error(reason))}`, { databaseId: record.databaseId, key: record.incomingKey, error: record.error });
  return { reason };
}

/**
 * `<key>.rejected` beside a rejected direct object of the database's own WAL
 * area (core/keys.ts rejectedMarkerKey), so that catalog rebuild, which reads
 * only the bucket, does not take it for an archived file. Nothing for a key
 * that is not such an object (a malformed request names no object to mark).
 */
async function markRejected(deps: ReturnType<typeof getDeps>, record: QuarantineRecord): Promise<void> {
  const parsed = parseVaultWalKey(record.incomingKey);
  if (parsed?.digest === undefined || parsed.databaseId !== record.databaseId) return;
  const body = Buffer.from(JSON.stringify({ name: record.name, error: record.error, reason: record.reason, at: record.at }) + "\n");
  await deps.vault.put(deps.vaultBucket, rejectedMarkerKey(record.incomingKey), body, { [META_DATABASE]: record.databaseId });
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
/** QuarantineDirect's Lambda handler. */
export const quarantineHandler = lambdaHandler(handleQuarantine);
