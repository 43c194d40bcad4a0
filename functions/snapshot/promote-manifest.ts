/**
 * Snapshot ingest step 4 — PromoteManifest: put the validated manifest into
 * the vault at db/<id>/snapshots/<snapshotId>/manifest.json (the vault is
 * self-describing: the catalog can be rebuilt from its manifests).
 * Input: { snapshot: ValidatedSnapshot }. Output: Promoted.
 *
 * As for WAL: the incoming object is read again and must be the validated
 * bytes; the vault key is never overwritten with different bytes (same bytes
 * already there: nothing written).
 */
import { z } from "zod";
import { SnapshotConflictError } from "../../core/errors.js";
import { META_DATABASE, META_SHA256, type Promoted } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { rereadManifest, validatedSnapshotSchema } from "./common.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema });

export async function handler(input: unknown): Promise<Promoted> {
  const { snapshot } = parseInput(inputSchema, input, "promote manifest input");
  const deps = getDeps();
  const existing = await deps.vault.head(deps.vaultBucket, snapshot.vaultKey);
  if (existing) {
    const held = String(existing.metadata[META_SHA256]);
    if (held !== snapshot.manifest.sha256) {
      throw new SnapshotConflictError(
        `vault already holds a different manifest for snapshot ${snapshot.snapshotId} at ${snapshot.vaultKey} (sha256 ${held.slice(0, 12)}…); not replaced`,
      );
    }
    return { vaultBucket: deps.vaultBucket, vaultKey: snapshot.vaultKey, ...(existing.versionId ? { versionId: existing.versionId } : {}), copied: false };
  }
  const { body } = await rereadManifest(deps, snapshot);
  const { sha256, codec, size } = snapshot.manifest;
  const put = await deps.vault.put(deps.vaultBucket, snapshot.vaultKey, body, {
    ...objectMeta({ sha256, codec, size }),
    [META_DATABASE]: snapshot.databaseId,
  });
  return { vaultBucket: deps.vaultBucket, vaultKey: snapshot.vaultKey, ...(put.versionId ? { versionId: put.versionId } : {}), copied: true };
}
