/**
 * Ingest step 2 — Promote: put the validated bytes into the vault.
 * Input: { ingest: ValidatedWal }. Output: Promoted.
 *
 * The incoming object is read and verified again here rather than copied
 * server-side: an agent host may overwrite its incoming key between Validate
 * and Promote, and only bytes proven to match the validated SHA-256 may enter
 * the vault. The vault key is never overwritten with different bytes (the
 * store has no reliable conditional put, so we look first).
 */
import { z } from "zod";
import { NotFoundError, SegmentConflictError, UnknownDatabaseError } from "../../core/errors.js";
import { META_DATABASE, META_SHA256, validatedWalSchema, type Promoted } from "../../core/schemas.js";
import { objectMeta, parseObjectMeta, verifyWalBytes } from "../../core/verify.js";
import { parseWalFileName } from "../../core/wal.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";

const inputSchema = z.object({ ingest: validatedWalSchema });

export async function handler(input: unknown): Promise<Promoted> {
  const { ingest } = parseInput(inputSchema, input, "promote input");
  const deps = getDeps();
  const existing = await deps.vault.head(deps.vaultBucket, ingest.vaultKey);
  if (existing) {
    if (existing.metadata[META_SHA256] !== ingest.sha256) {
      throw new SegmentConflictError(
        `vault already holds different bytes at ${ingest.vaultKey} (sha256 ${String(existing.metadata[META_SHA256]).slice(0, 12)}…); not replaced`,
      );
    }
    return { vaultBucket: deps.vaultBucket, vaultKey: ingest.vaultKey, ...(existing.versionId ? { versionId: existing.versionId } : {}), copied: false };
  }
  const db = await deps.catalog.getDatabase(ingest.databaseId);
  if (!db) throw new UnknownDatabaseError(`database '${ingest.databaseId}' is not registered`);
  const segmentSize = db.walSegmentSize;
  const obj = await deps.incoming.get(ingest.incoming.bucket, ingest.incoming.key, ingest.incoming.versionId);
  if (!obj) throw new NotFoundError(`incoming object ${ingest.incoming.key} disappeared before promotion`);
  const what = `upload ${ingest.incoming.key}`;
  const claimed = parseObjectMeta(obj.metadata, what);
  if (claimed.sha256 !== ingest.sha256 || claimed.codec !== ingest.codec) {
    throw new SegmentConflictError(`${what} changed after validation (now sha256 ${claimed.sha256.slice(0, 12)}…)`);
  }
  await verifyWalBytes(parseWalFileName(ingest.name, segmentSize), obj.body, claimed, segmentSize, what, { postgres: db.kind === "postgres" });
  const put = await deps.vault.put(deps.vaultBucket, ingest.vaultKey, obj.body, {
    ...objectMeta(claimed),
    [META_DATABASE]: ingest.databaseId,
  });
  return { vaultBucket: deps.vaultBucket, vaultKey: ingest.vaultKey, ...(put.versionId ? { versionId: put.versionId } : {}), copied: true };
}
