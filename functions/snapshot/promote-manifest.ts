/**
 * Snapshot ingest step 4 — PromoteManifest: put the validated manifest into
 * the vault at db/<id>/snapshots/<snapshotId>/manifest.json (the vault is
 * self-describing: the catalog can be rebuilt from its manifests).
 * Input: { snapshot: ValidatedSnapshot, progress? }. Output: Promoted & { next, done: true }, or { next, done: false }.
 *
 * As for WAL: the incoming object is read again and must be the validated
 * bytes; the vault key is never overwritten with different bytes (same bytes
 * already there: nothing written).
 *
 * Format 2 (`snapshot.paged`): first every page, from `progress.next`, one
 * budget per invocation (functions/snapshot/pages.ts; the workflow calls the
 * step again until done): each is read from incoming, its length and SHA-256
 * checked against the header, and put beside the vault manifest key
 * (`pages/<i>.json`) unless the vault holds it already; a vault page with
 * other bytes is a conflict, never replaced (pages the header carries,
 * PageRef.text, have no object). Then the header, last: a vault header
 * always finds all its pages.
 */
import { z } from "zod";
import type { CodecName } from "../../core/codec.js";
import { ManifestInvalidError, SnapshotConflictError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey } from "../../core/keys.js";
import { META_DATABASE, META_SHA256, type Promoted } from "../../core/schemas.js";
import { stepsOf } from "../../core/workflows.js";
import { objectMeta } from "../../core/verify.js";
import { StoreManifestObjects } from "../../store/manifest-pages.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import { rereadManifest, validatedSnapshotSchema, type ValidatedSnapshot } from "./common.js";
import { mayTakePage, pageBudget, readPage, rereadPagedManifest } from "./pages.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema, progress: z.object({ next: z.number().int().nonnegative() }).partial().optional() });

export type PromoteManifestOutput = (Promoted & { next: number; done: true }) | { next: number; done: false };

/**
 * Puts `body()` at vault `key` unless the vault holds these very bytes there
 * already (by their walvault SHA-256; then nothing is read); a different
 * object is a conflict, never replaced.
 */
async function putOnce(
  deps: Deps,
  snapshot: ValidatedSnapshot,
  key: string,
  body: () => Promise<Uint8Array>,
  meta: { sha256: string; codec: CodecName; size: number },
  what: string,
): Promise<Promoted> {
  const existing = await deps.vault.head(deps.vaultBucket, key);
  if (existing) {
    const held = String(existing.metadata[META_SHA256]);
    if (held !== meta.sha256) {
      throw new SnapshotConflictError(`vault already holds a different ${what} for snapshot ${snapshot.snapshotId} at ${key} (sha256 ${held.slice(0, 12)}…); not replaced`);
    }
    return { vaultBucket: deps.vaultBucket, vaultKey: key, ...(existing.versionId ? { versionId: existing.versionId } : {}), copied: false };
  }
  const put = await deps.vault.put(deps.vaultBucket, key, await body(), { ...objectMeta(meta), [META_DATABASE]: snapshot.databaseId });
  return { vaultBucket: deps.vaultBucket, vaultKey: key, ...(put.versionId ? { versionId: put.versionId } : {}), copied: true };
}

/** Format 2: pages from `from`, one budget's worth; the header once every page is in. */
async function promotePaged(deps: Deps, snapshot: ValidatedSnapshot, from: number): Promise<PromoteManifestOutput> {
  const { body: headerBody, header } = await rereadPagedManifest(deps, snapshot);
  const objects = new StoreManifestObjects(deps.incoming, deps.incomingBucket);
  const budget = pageBudget(stepsOf("snapshot-ingest").promoteManifest.timeoutSeconds);
  let next = from;
  for (let taken = 0; next < header.pages.length && mayTakePage(budget, taken); taken++) {
    const ref = header.pages[next]!;
    // A page the header carries (PageRef.text) goes into the vault with the header.
    if (ref.text !== undefined) {
      next++;
      continue;
    }
    const { key, body } = await readPage(objects, snapshot.incoming.key, header, next);
    const digest = sha256Hex(body);
    if (body.byteLength !== ref.bytes || digest !== ref.sha256) {
      throw new ManifestInvalidError(
        `page object ${key}: snapshot manifest pages[${next}].sha256: the page object has ${body.byteLength} bytes and SHA-256 ${digest}, ` +
          `but the manifest binds ${ref.bytes} bytes and ${ref.sha256}; not promoted`,
        { field: `pages[${next}].sha256` },
      );
    }
    await putOnce(deps, snapshot, snapshotPageKey(snapshot.vaultKey, next), async () => body, { sha256: ref.sha256, codec: "none", size: ref.bytes }, `page ${next}`);
    next++;
  }
  if (next < header.pages.length) return { next, done: false };
  const { sha256, codec, size } = snapshot.manifest;
  return { ...(await putOnce(deps, snapshot, snapshot.vaultKey, async () => headerBody, { sha256, codec, size }, "manifest")), next, done: true };
}

async function handle(input: unknown): Promise<PromoteManifestOutput> {
  const { snapshot, progress } = parseInput(inputSchema, input, "promote manifest input");
  const deps = getDeps();
  if (snapshot.paged !== undefined) return promotePaged(deps, snapshot, progress?.next ?? 0);
  const { sha256, codec, size } = snapshot.manifest;
  const body = async (): Promise<Uint8Array> => (await rereadManifest(deps, snapshot)).body;
  return { ...(await putOnce(deps, snapshot, snapshot.vaultKey, body, { sha256, codec, size }, "manifest")), next: 1, done: true };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
