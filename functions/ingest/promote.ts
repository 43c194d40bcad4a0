/**
 * Ingest step 2 — Promote: put the validated bytes into the vault.
 * Input: { ingest: ValidatedWal }. Output: Promoted.
 *
 * The incoming object is read again and must hash (as stored, encoded) to
 * exactly what Validate proved, rather than being copied server-side: an agent
 * host may overwrite its incoming key between Validate and Promote, and only
 * the validated bytes may enter the vault. Hashing the encoded bytes is enough
 * (same bytes, same decoding) and ~8x cheaper than decoding again. The vault
 * key is never overwritten with different bytes (the store has no reliable
 * conditional put, so we look first).
 */
import { z } from "zod";
import { ConcurrentUpdateError, NotFoundError, SegmentConflictError } from "../../core/errors.js";
import { genericSegmentMeta } from "../../core/generic-wal.js";
import { sha256Hex } from "../../core/hash.js";
import { META_DATABASE, META_SHA256, validatedWalSchema, type Promoted } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ ingest: validatedWalSchema });

async function handle(input: unknown): Promise<Promoted> {
  const { ingest } = parseInput(inputSchema, input, "promote input");
  const deps = getDeps();
  const existing = await deps.vault.head(deps.vaultBucket, ingest.vaultKey);
  if (existing) {
    if (existing.metadata[META_SHA256] === undefined) {
      // Bytes without their description: another promotion of this name is writing it (s3rver writes an
      // object's bytes and its metadata apart), or something else wrote it. Not proof of different bytes:
      // retried, and if it stays so the execution fails without a quarantine record (issue #10, point 3).
      throw new ConcurrentUpdateError(`vault object ${ingest.vaultKey} has no sha256 metadata (still being written?); not a conflict yet`);
    }
    if (existing.metadata[META_SHA256] !== ingest.sha256) {
      throw new SegmentConflictError(
        `vault already holds different bytes at ${ingest.vaultKey} (sha256 ${String(existing.metadata[META_SHA256]).slice(0, 12)}…); not replaced`,
      );
    }
    return { vaultBucket: deps.vaultBucket, vaultKey: ingest.vaultKey, ...(existing.versionId ? { versionId: existing.versionId } : {}), copied: false };
  }
  const obj = await deps.incoming.get(ingest.incoming.bucket, ingest.incoming.key, ingest.incoming.versionId);
  if (!obj) throw new NotFoundError(`incoming object ${ingest.incoming.key} disappeared before promotion`);
  const what = `upload ${ingest.incoming.key}`;
  if (sha256Hex(obj.body) !== ingest.encodedSha256) {
    throw new SegmentConflictError(`${what} changed after validation; not promoted`);
  }
  const claimed = { sha256: ingest.sha256, codec: ingest.codec, size: ingest.size };
  // The vault describes itself (catalog rebuild reads it back): generic segments keep their position and times.
  const generic =
    ingest.closedAt !== undefined && ingest.startLsn !== undefined
      ? genericSegmentMeta({
          position: BigInt(ingest.startLsn),
          closedAt: ingest.closedAt,
          ...(ingest.scanAt !== undefined && ingest.scanCount !== undefined ? { scan: { at: ingest.scanAt, count: ingest.scanCount } } : {}),
        })
      : {};
  const put = await deps.vault.put(deps.vaultBucket, ingest.vaultKey, obj.body, {
    ...objectMeta(claimed),
    ...generic,
    [META_DATABASE]: ingest.databaseId,
  });
  return { vaultBucket: deps.vaultBucket, vaultKey: ingest.vaultKey, ...(put.versionId ? { versionId: put.versionId } : {}), copied: true };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
