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
 * Pages are cut, checked and uploaded as the writer closes them
 * (PAGE_UPLOADS in flight): a push feeds them from agent/manifest-spool.ts
 * (uploadPagedManifest), so it never holds the manifest, only a few pages.
 * Until they come to more than INLINE_PAGES_BYTES together they are held:
 * a manifest whose pages never do goes as one object, the header carrying
 * them (PageRef.text; docs/snapshots.md "Small manifests in one object").
 */
import { ConfigError, ServiceUnavailableError, describeError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { incomingSnapshotKey, snapshotPageKey } from "../core/keys.js";
import {
  ManifestPageWriter,
  PAGED_FORMAT_VERSION,
  INLINE_PAGES_BYTES,
  PAGE_BYTES,
  PAGE_CHUNKS,
  compareTreePaths,
  inlinePageRefs,
  finishPagedValidation,
  serializePagedHeader,
  startPagedValidation,
  validatePage,
  validatePagedHeader,
  type PageRef,
  type PagedManifestHeader,
  type WrittenPage,
} from "../core/manifest-pages.js";
import { META_DATABASE } from "../core/schemas.js";
import { serializeManifest, type ManifestFields, type SnapshotManifest, type SnapshotTotals } from "../core/snapshot.js";
import { objectMeta } from "../core/verify.js";
import type { ObjectStore } from "../store/object-store.js";

/** Page uploads in flight. */
export const PAGE_UPLOADS = 4;

/** Page limits (tests lower them to get several pages from a small tree). */
export interface PageLimits {
  chunks: number;
  bytes: number;
  /** Pages of at most this many bytes together go in the header (PageRef.text), not into objects of their own; absent: 0, never. */
  inlineBytes?: number;
}

/** What a push uses unless told otherwise: a small manifest (INLINE_PAGES_BYTES) is one object, the header with its pages. */
export const DEFAULT_PAGE_LIMITS: Required<PageLimits> = { chunks: PAGE_CHUNKS, bytes: PAGE_BYTES, inlineBytes: INLINE_PAGES_BYTES };

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
  /** Format 2: its pages. */
  pages?: number;
  /** Format 2: the header's totals (newChunks and newStoredBytes count a new chunk once per page it is on). */
  totals?: SnapshotTotals;
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
 * pages and then its format-2 header (uploadPagedManifest). Throws
 * ServiceUnavailableError (the upload failed, naming the object) or
 * InvalidInputError (entries out of tree order: a bug).
 */
export async function uploadManifest(
  store: ObjectStore,
  bucket: string,
  manifest: SnapshotManifest,
  opts: { paged: boolean; pageLimits?: PageLimits },
): Promise<UploadedManifest> {
  const { databaseId, snapshotId } = manifest;
  const key = incomingSnapshotKey(databaseId, snapshotId);
  if (!opts.paged) {
    const body = Buffer.from(serializeManifest(manifest), "utf8");
    const uploadedAt = new Date();
    await putJson(store, bucket, key, databaseId, body, `the manifest of snapshot ${snapshotId}`);
    return { key, sha256: sha256Hex(body), size: body.length, uploadedBytes: body.length, uploadedAt, format: 1 };
  }
  const { files, totals, formatVersion: _v, ...fields } = manifest;
  return uploadPagedManifest(store, bucket, {
    fields,
    distinct: () => ({ uniqueChunks: totals.uniqueChunks, storedBytes: totals.storedBytes }),
    write: async (writer, emit) => {
      for (const e of [...files].sort((a, b) => compareTreePaths(a.path, b.path))) await emit(writer.add(e));
      await emit(writer.finish());
    },
    ...(opts.pageLimits === undefined ? {} : { pageLimits: opts.pageLimits }),
  });
}

/** What a format-2 manifest is made of, without holding its entries. */
export interface PagedManifestSource {
  /** Every field of the header but pages and totals. */
  fields: ManifestFields;
  /** Feeds every entry to the writer in tree order, handing the pages it completes to `emit` (awaited), the last ones from writer.finish() too. */
  write(writer: ManifestPageWriter, emit: (pages: WrittenPage[]) => Promise<void>): Promise<void>;
  /** Distinct chunks and their stored bytes (asked once every page is written). */
  distinct(): { uniqueChunks: number; storedBytes: number };
  pageLimits?: PageLimits;
}

/**
 * Format 2: each page, as the writer completes it, is validated as ingest
 * will validate it (validatePage, a state of a few hundred bytes) and
 * uploaded (PAGE_UPLOADS in flight); then the header, whose totals are the
 * writer's counts and `distinct()`, is validated (validatePagedHeader,
 * finishPagedValidation) and uploaded last. Pages that come to at most
 * `inlineBytes` together (DEFAULT_PAGE_LIMITS: INLINE_PAGES_BYTES) are
 * held until the end and go in the header instead. Memory: a few pages, or
 * those held. Throws
 * ServiceUnavailableError (an upload failed, naming the object),
 * ManifestInvalidError / UnsafePathError / InvalidInputError (what ingest
 * would refuse: a bug), after which no header is uploaded.
 */
export async function uploadPagedManifest(store: ObjectStore, bucket: string, source: PagedManifestSource): Promise<UploadedManifest> {
  const { databaseId, snapshotId } = source.fields;
  const key = incomingSnapshotKey(databaseId, snapshotId);
  const what = `the manifest of snapshot ${snapshotId}`;
  const limits = source.pageLimits ?? DEFAULT_PAGE_LIMITS;
  const writer = new ManifestPageWriter(source.fields, limits);
  const refs: PageRef[] = [];
  // Pages held while they may yet all go in the header (limits.inlineBytes); once they outgrow it, each is uploaded.
  const inlineBytes = limits.inlineBytes ?? 0;
  let held: WrittenPage[] | undefined = inlineBytes > 0 ? [] : undefined;
  let heldBytes = 0;
  // validatePage reads the header's kind, cut and page references, not its totals (finishPagedValidation does, with the real header).
  const draft = { formatVersion: PAGED_FORMAT_VERSION, ...source.fields, totals: startPagedValidation().totals, pages: refs } as PagedManifestHeader;
  let state = startPagedValidation();
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let uploadedBytes = 0;
  const upload = async (p: WrittenPage, body: Buffer): Promise<void> => {
    uploadedBytes += p.ref.bytes;
    const put = putJson(store, bucket, snapshotPageKey(key, p.index), databaseId, body, `page ${p.index} of ${what}`)
      .catch((e: unknown) => {
        failure ??= e;
      })
      .finally(() => inFlight.delete(put));
    inFlight.add(put);
    while (inFlight.size >= PAGE_UPLOADS) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
  };
  const emit = async (pages: WrittenPage[]): Promise<void> => {
    for (const p of pages) {
      refs[p.index] = p.ref;
      const body = Buffer.from(p.text, "utf8");
      state = validatePage(draft, state, body).state;
      if (held !== undefined) {
        held.push(p);
        heldBytes += p.ref.bytes;
        if (heldBytes <= inlineBytes) continue;
        const all = held;
        held = undefined;
        for (const h of all) await upload(h, Buffer.from(h.text, "utf8"));
        continue;
      }
      await upload(p, body);
    }
  };
  try {
    await source.write(writer, emit);
  } finally {
    await Promise.all(inFlight);
  }
  if (failure !== undefined) throw failure;
  // Every page still held fits the header: it carries them, and there is no page object.
  const pageRefs = held === undefined ? [...refs] : inlinePageRefs(held);
  const header = { ...draft, totals: { ...writer.totals, ...source.distinct() }, pages: pageRefs } as PagedManifestHeader;
  validatePagedHeader(header, { databaseId, snapshotId });
  finishPagedValidation(header, state);
  // The commit point, last: every page it binds is in incoming.
  const body = Buffer.from(serializePagedHeader(header), "utf8");
  const uploadedAt = new Date();
  await putJson(store, bucket, key, databaseId, body, what);
  return {
    key,
    sha256: sha256Hex(body),
    size: body.length,
    uploadedBytes: uploadedBytes + body.length,
    uploadedAt,
    format: 2,
    pages: refs.length,
    totals: header.totals,
  };
}
