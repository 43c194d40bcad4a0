/**
 * Uploading a snapshot's manifest, the commit point of a push
 * (docs/snapshots.md): format 2 (core/manifest-pages.ts) by default, or
 * format 1 (one JSON document, the layout of older vaults) when
 * WALVAULT_MANIFEST_PAGES=0 or the push option `manifestPages: false` says
 * so. Format 2 puts the pages first, to
 * `incoming/db/<id>/snapshots/<sid>/pages/<i>.json` beside the manifest key,
 * then the header at the manifest key, last, so that the header's
 * object-created event (which starts snapshot ingest) finds every page it
 * binds. Each object carries the walvault metadata (SHA-256, codec none,
 * size) and the database id, as the format 1 manifest does.
 *
 * Pages are cut and uploaded as the writer closes them (PAGE_UPLOADS in
 * flight), so what this step holds beyond the built manifest is a few pages.
 */
import { ConfigError, ServiceUnavailableError, describeError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { incomingSnapshotKey, snapshotPageKey } from "../core/keys.js";
import {
  ManifestPageWriter,
  PAGE_BYTES,
  PAGE_CHUNKS,
  compareTreePaths,
  pagedHeaderOf,
  serializePagedHeader,
  type PageRef,
  type WrittenPage,
} from "../core/manifest-pages.js";
import { META_DATABASE } from "../core/schemas.js";
import { serializeManifest, type SnapshotManifest } from "../core/snapshot.js";
import { objectMeta } from "../core/verify.js";
import type { ObjectStore } from "../store/object-store.js";

/** Page uploads in flight. */
export const PAGE_UPLOADS = 4;

/** Page limits (tests lower them to get several pages from a small tree). */
export interface PageLimits {
  chunks: number;
  bytes: number;
}

/**
 * WALVAULT_MANIFEST_PAGES: unset, "1" (or true/yes/on) writes format 2 (the
 * default), "0" (or false/no/off) format 1. Anything else is a ConfigError.
 */
export function manifestPagesEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.WALVAULT_MANIFEST_PAGES?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "1" || v === "true" || v === "yes" || v === "on") return true;
  if (v === "0" || v === "false" || v === "no" || v === "off") return false;
  throw new ConfigError(`WALVAULT_MANIFEST_PAGES='${env.WALVAULT_MANIFEST_PAGES}' is not 1 or 0 (manifest format 2 or 1)`);
}

export interface UploadedManifest {
  /** Incoming key of the manifest (format 2: its header). */
  key: string;
  /** SHA-256 and size of the manifest object (the catalog's manifestSha256). */
  sha256: string;
  size: number;
  /** Bytes uploaded: the manifest, plus every page (format 2). */
  uploadedBytes: number;
  /** When the manifest object (the commit point) was put. */
  uploadedAt: Date;
  format: 1 | 2;
  /** Format 2: pages uploaded. */
  pages?: number;
}

async function putJson(store: ObjectStore, bucket: string, key: string, databaseId: string, body: Buffer, what: string): Promise<void> {
  try {
    await store.put(bucket, key, body, { ...objectMeta({ sha256: sha256Hex(body), codec: "none", size: body.length }), [META_DATABASE]: databaseId });
  } catch (cause) {
    throw new ServiceUnavailableError(`uploading ${what} failed: ${describeError(cause)}`, { cause });
  }
}

/**
 * Uploads `manifest` to the incoming bucket: format 1, or with `paged` its
 * pages and then its format-2 header. Throws ServiceUnavailableError (the
 * upload failed, naming the object) or InvalidInputError (entries out of
 * tree order: a bug).
 */
export async function uploadManifest(
  store: ObjectStore,
  bucket: string,
  manifest: SnapshotManifest,
  opts: { paged: boolean; pageLimits?: PageLimits },
): Promise<UploadedManifest> {
  const { databaseId, snapshotId } = manifest;
  const key = incomingSnapshotKey(databaseId, snapshotId);
  const what = `the manifest of snapshot ${snapshotId}`;
  if (!opts.paged) {
    const body = Buffer.from(serializeManifest(manifest), "utf8");
    const uploadedAt = new Date();
    await putJson(store, bucket, key, databaseId, body, what);
    return { key, sha256: sha256Hex(body), size: body.length, uploadedBytes: body.length, uploadedAt, format: 1 };
  }
  const writer = new ManifestPageWriter(manifest, opts.pageLimits ?? { chunks: PAGE_CHUNKS, bytes: PAGE_BYTES });
  const refs: PageRef[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let uploadedBytes = 0;
  const upload = async (pages: WrittenPage[]): Promise<void> => {
    for (const p of pages) {
      refs[p.index] = p.ref;
      uploadedBytes += p.ref.bytes;
      const body = Buffer.from(p.text, "utf8");
      const put = putJson(store, bucket, snapshotPageKey(key, p.index), databaseId, body, `page ${p.index} of ${what}`)
        .catch((e: unknown) => {
          failure ??= e;
        })
        .finally(() => inFlight.delete(put));
      inFlight.add(put);
      while (inFlight.size >= PAGE_UPLOADS) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
    }
  };
  for (const e of [...manifest.files].sort((a, b) => compareTreePaths(a.path, b.path))) await upload(writer.add(e));
  await upload(writer.finish());
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  // The commit point, last: every page it binds is in incoming.
  const body = Buffer.from(serializePagedHeader(pagedHeaderOf(manifest, refs)), "utf8");
  const uploadedAt = new Date();
  await putJson(store, bucket, key, databaseId, body, what);
  return { key, sha256: sha256Hex(body), size: body.length, uploadedBytes: uploadedBytes + body.length, uploadedAt, format: 2, pages: refs.length };
}
