/**
 * Ingest step 1 — Validate: the uploaded object is what it claims to be.
 * Input: { event: EventBridge S3 "Object Created" event }.
 * Output: ValidatedWal (duplicate=true when the catalog already has these bytes).
 */
import { z } from "zod";
import { InvalidInputError, NotFoundError, SegmentConflictError, UnknownDatabaseError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { parseIncomingKey, vaultWalKey } from "../../core/keys.js";
import { objectCreatedEventSchema, type ValidatedWal } from "../../core/schemas.js";
import { parseObjectMeta, verifyWalBytes } from "../../core/verify.js";
import { formatLsn, segmentEndLsn, segmentStartLsn } from "../../core/wal.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";

const inputSchema = z.object({ event: objectCreatedEventSchema });

export async function handler(input: unknown): Promise<ValidatedWal> {
  const { event } = parseInput(inputSchema, input, "ingest event");
  const deps = getDeps();
  const { name: bucket } = event.detail.bucket;
  const { key, "version-id": versionId } = event.detail.object;
  if (bucket !== deps.incomingBucket) {
    throw new InvalidInputError(`event names bucket '${bucket}', not the incoming bucket '${deps.incomingBucket}'`);
  }
  // The key is checked twice: its shape first (to learn the database), then the
  // file name against that database's segment size.
  const { databaseId } = parseIncomingKey(key);
  const db = await deps.catalog.getDatabase(databaseId);
  if (!db) throw new UnknownDatabaseError(`database '${databaseId}' is not registered`);
  const { file } = parseIncomingKey(key, db.walSegmentSize);

  const obj = await deps.incoming.get(bucket, key, versionId);
  if (!obj) throw new NotFoundError(`incoming object ${key} no longer exists`);
  const what = `upload ${key}`;
  const claimed = parseObjectMeta(obj.metadata, what);
  await verifyWalBytes(file, obj.body, claimed, db.walSegmentSize, what, { postgres: db.kind === "postgres" });

  const existing = await deps.catalog.getWal(databaseId, file.name);
  if (existing && existing.sha256 !== claimed.sha256) {
    throw new SegmentConflictError(
      `${file.name} is already archived for database ${databaseId} with different contents ` +
        `(archived sha256 ${existing.sha256.slice(0, 12)}…, uploaded ${claimed.sha256.slice(0, 12)}…); the archived copy was kept`,
    );
  }
  const lsns =
    file.segno === undefined
      ? {}
      : {
          startLsn: formatLsn(segmentStartLsn(file.segno, db.walSegmentSize)),
          endLsn: formatLsn(segmentEndLsn(file.segno, db.walSegmentSize)),
        };
  return {
    databaseId,
    name: file.name,
    kind: file.kind,
    timeline: file.timeline,
    ...lsns,
    size: claimed.size,
    storedSize: obj.body.length,
    sha256: claimed.sha256,
    encodedSha256: sha256Hex(obj.body),
    codec: claimed.codec,
    incoming: { bucket, key, ...(versionId ? { versionId } : {}) },
    vaultKey: vaultWalKey(databaseId, file),
    duplicate: existing !== undefined,
    replicaRegions: deps.replicas.map((r) => r.region),
  };
}
