/**
 * Snapshot ingest step 3 — CheckReferenced: every chunk the manifest
 * references is in the vault, so the snapshot can be restored.
 * Input: { snapshot: ValidatedSnapshot }. Output: { uniqueChunks, checkedBackupLabel }.
 *
 * The manifest is read again from incoming (its stored bytes must be exactly
 * the ones ValidateManifest proved) and every distinct chunk it references is
 * looked up in the catalog (missingChunks: batched, never one call per
 * chunk): chunk records are written only after their vault object, so a
 * record means the bytes are there. Anything missing fails the step naming
 * the chunk and a file that uses it.
 *
 * PostgreSQL: the backup_label file is rebuilt from its chunks in the vault
 * (each verified) and its fields must agree with the manifest's postgres
 * section (checkBackupLabel), so a restore never starts recovery from a label
 * the catalog contradicts.
 */
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, ManifestInvalidError, NotFoundError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey } from "../../core/keys.js";
import { checkBackupLabel, type PostgresSnapshotManifest } from "../../core/snapshot.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import { missingChunksError, rereadManifest, validatedSnapshotSchema } from "./common.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema });

/** backup_label is a few hundred bytes; anything this large is not one. */
const MAX_BACKUP_LABEL_BYTES = 64 * 1024;

async function readBackupLabel(deps: Deps, manifest: PostgresSnapshotManifest): Promise<string> {
  const entry = manifest.files.find((e) => e.path === "backup_label");
  if (entry?.type !== "file") throw new ManifestInvalidError("snapshot manifest files: backup_label is missing", { field: "files" });
  if (entry.size > MAX_BACKUP_LABEL_BYTES) {
    throw new ManifestInvalidError(`snapshot manifest backup_label: ${entry.size} bytes is not a backup_label file`, { field: "backup_label" });
  }
  const parts: Buffer[] = [];
  for (const c of entry.chunks) {
    const key = vaultChunkKey(manifest.databaseId, c.sha256);
    const obj = await deps.vault.get(deps.vaultBucket, key);
    if (!obj) throw new NotFoundError(`chunk ${c.sha256} of backup_label is missing from the vault (${key})`);
    const raw = await decodeWith(c.codec, obj.body, `vault object ${key}`, c.size);
    if (raw.length !== c.size || sha256Hex(raw) !== c.sha256) {
      throw new ChecksumMismatchError(`vault object ${key} (a chunk of backup_label) does not hash to its name`);
    }
    parts.push(raw);
  }
  const whole = Buffer.concat(parts);
  if (sha256Hex(whole) !== entry.sha256) {
    throw new ChecksumMismatchError(`backup_label rebuilt from its chunks does not have the SHA-256 the manifest records`);
  }
  return whole.toString("utf8");
}

export async function handler(input: unknown): Promise<{ uniqueChunks: number; checkedBackupLabel: boolean }> {
  const { snapshot } = parseInput(inputSchema, input, "check referenced input");
  const deps = getDeps();
  const { validated } = await rereadManifest(deps, snapshot);
  const { manifest, chunks } = validated;
  const missing = chunks.length > 0 ? await deps.catalog.missingChunks(snapshot.databaseId, chunks.map((c) => c.sha256)) : [];
  if (missing.length > 0) {
    throw missingChunksError(manifest, missing, new Set(chunks.filter((c) => c.new).map((c) => c.sha256)));
  }
  if (manifest.kind === "postgres") {
    checkBackupLabel(manifest, await readBackupLabel(deps, manifest));
  }
  return { uniqueChunks: chunks.length, checkedBackupLabel: manifest.kind === "postgres" };
}
