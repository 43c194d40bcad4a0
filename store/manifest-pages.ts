/**
 * Reading a snapshot manifest of either format (core/snapshot.ts format 1,
 * core/manifest-pages.ts format 2) one page at a time: the only reader of
 * manifests, so that no step's memory grows with a snapshot's size once
 * snapshots are paged (format 1 is one implicit page: it is read whole, as
 * before).
 *
 * Contract (every ManifestObjects implementation, checked by
 * test/store/manifest-pages.contract.ts):
 * - get(key, maxBytes) resolves the object's bytes, or `undefined` when the
 *   key does not exist. An object stored encoded (walvault codec metadata
 *   other than "none", as an agent may upload a format 1 manifest) is
 *   returned decoded. An object of more than maxBytes, stored or (by its
 *   metadata) decoded, rejects (ManifestInvalidError naming the key and both
 *   sizes) before its bytes are read; one that does not decode to the size
 *   its metadata states rejects (CodecError). Other failures reject as the
 *   object store's do.
 *
 * And of openManifest over any ManifestObjects:
 * - openManifest(objects, key, expect) resolves `undefined` when the
 *   manifest does not exist; otherwise it reads and validates the manifest
 *   object (format 1: validateManifest, all of it; format 2: the header,
 *   validatePagedHeader) and reads no page.
 * - page(i) reads page i (format 2: `pages/<i>.json` beside the manifest
 *   key), refusing one longer than the header binds before reading it, and
 *   verifies its length, SHA-256, schema and ids (parsePage) before
 *   returning anything from it. A missing page rejects (ManifestInvalidError,
 *   field `pages[i]`, naming the key). Format 1 has one page, 0: every file.
 * - entries() yields every entry in order, reading one page at a time, and
 *   validates across pages as it goes (validatePage); after the last page it
 *   checks the totals against the header (finishPagedValidation). A problem
 *   rejects the iteration at the page where it is found: entries already
 *   yielded came from verified pages, but the manifest as a whole is proven
 *   only once the iteration ends without error. Once one walk has ended so,
 *   a later entries() of the same opened manifest checks each page's bytes
 *   against the header's length and SHA-256 only (revalidatedPage): they are
 *   the bytes validated, and the schema and the rules across pages are not
 *   run again.
 * - An opened manifest keeps two pages parsed, page 0 and the last other page
 *   parsed, and serves later reads of them from memory (a two-page manifest
 *   is read once however often it is walked). Pages and entries are shared
 *   between reads: kept pages' arrays are frozen, and no reader changes an
 *   entry.
 * Errors are ManifestInvalidError or UnsafePathError (core/errors.ts), one
 * line naming the field (`pages[3].entries[10].path: ...`).
 */
import { decodeWith } from "../core/codec.js";
import { CodecError, ManifestInvalidError } from "../core/errors.js";
import { snapshotPageKey } from "../core/keys.js";
import {
  MAX_PAGE_BYTES,
  finishPagedValidation,
  inlinePageBytes,
  manifestFormatOf,
  parsePage,
  revalidatedPage,
  startPagedValidation,
  validatePage,
  validatePagedHeader,
  type PageEntry,
  type PagedManifestHeader,
  type PageRef,
} from "../core/manifest-pages.js";
import type { SnapshotHeader } from "../core/manifest-header.js";
import { META_CODEC } from "../core/schemas.js";
import { parseObjectMeta } from "../core/verify.js";
import { validateManifest, type ManifestExpectations, type UniqueChunk } from "../core/snapshot.js";
import type { ObjectStore } from "./object-store.js";

/** Largest manifest.json read: format 1 manifests are one JSON document, and V8 strings stop near 512 MiB. */
export const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

export interface ManifestObjects {
  get(key: string, maxBytes: number): Promise<Uint8Array | undefined>;
}

function tooLarge(key: string, size: number, maxBytes: number): ManifestInvalidError {
  return new ManifestInvalidError(`object ${key} has ${size} bytes, more than the ${maxBytes} a manifest object may have`, { field: key });
}

/** An object's bytes as a manifest reader sees them: bounded before the read, decoded by its codec metadata. */
async function readBounded(
  key: string,
  maxBytes: number,
  info: { size: number; metadata: Record<string, string> },
  read: () => Promise<Uint8Array | undefined>,
): Promise<Uint8Array | undefined> {
  if (info.size > maxBytes) throw tooLarge(key, info.size, maxBytes);
  const codec = info.metadata[META_CODEC];
  const encoded = codec !== undefined && codec !== "none";
  const size = encoded ? parseObjectMeta(info.metadata, `object ${key}`).size : info.size;
  if (size > maxBytes) throw tooLarge(key, size, maxBytes);
  const body = await read();
  if (body === undefined) return undefined;
  if (body.byteLength > maxBytes) throw tooLarge(key, body.byteLength, maxBytes);
  if (!encoded) return body;
  const raw = await decodeWith(codec, body, `object ${key}`, size);
  if (raw.byteLength !== size) throw new CodecError(`object ${key} decodes to ${raw.byteLength} bytes, not the ${size} its metadata states`);
  return raw;
}

/** Manifest objects in one bucket of an ObjectStore (vault or incoming). */
export class StoreManifestObjects implements ManifestObjects {
  constructor(
    private readonly store: ObjectStore,
    private readonly bucket: string,
  ) {}

  async get(key: string, maxBytes: number): Promise<Uint8Array | undefined> {
    const info = await this.store.head(this.bucket, key);
    if (info === undefined) return undefined;
    return readBounded(key, maxBytes, info, async () => (await this.store.get(this.bucket, key, info.versionId))?.body);
  }
}

/** Manifest objects in memory (unit tests): bytes and user metadata per key. */
export class MemoryManifestObjects implements ManifestObjects {
  readonly objects = new Map<string, { body: Uint8Array; metadata: Record<string, string> }>();

  async get(key: string, maxBytes: number): Promise<Uint8Array | undefined> {
    const obj = this.objects.get(key);
    if (obj === undefined) return undefined;
    return readBounded(key, maxBytes, { size: obj.body.byteLength, metadata: obj.metadata }, async () => obj.body);
  }
}

/** A manifest of either format without its files (`kind` narrows it). */
export type ManifestHeader = SnapshotHeader;

/** One page: its entries and the distinct chunks they reference (in order of first reference). Shared with later reads of the same opened manifest: never changed by its reader. */
export interface ReadPage {
  readonly entries: readonly PageEntry[];
  readonly chunks: readonly UniqueChunk[];
}

export interface OpenedManifest {
  readonly format: 1 | 2;
  readonly header: ManifestHeader;
  readonly pageCount: number;
  /** The pages stored as objects of their own beside the manifest (`pages/<i>.json`), by index: format 1 has none, nor has a format-2 manifest that carries its pages in its header (PageRef.text). */
  readonly pageObjects: readonly number[];
  page(index: number): Promise<ReadPage>;
  entries(): AsyncIterable<PageEntry>;
}

/** How openManifest reads. */
export interface OpenOptions {
  /**
   * Read page 0 at the same time as the header (format 2: its key is known
   * before the header is), for a caller that walks the pages next (restore):
   * one round trip less. The page is checked against the header as any page
   * is; for a format 1 manifest the read finds nothing and is dropped.
   */
  readFirstPage?: boolean;
}

/** Opens the manifest at `key` (see the contract above); undefined when it does not exist. */
export async function openManifest(
  objects: ManifestObjects,
  key: string,
  expect: ManifestExpectations = {},
  opts: OpenOptions = {},
): Promise<OpenedManifest | undefined> {
  // Page 0's key is known before the header: read at the same time (one round trip less before a walk starts).
  const first = opts.readFirstPage === true ? objects.get(snapshotPageKey(key, 0), MAX_PAGE_BYTES) : undefined;
  first?.catch(() => undefined); // used by the first walk's read of page 0, or dropped (format 1, a refused header)
  const body = await objects.get(key, MAX_MANIFEST_BYTES);
  if (body === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch (e) {
    throw new ManifestInvalidError(`snapshot manifest is not JSON: ${(e as Error).message}`, { field: "(top level)", cause: e });
  }
  if (manifestFormatOf(json) === 2) return pagedManifest(objects, key, validatePagedHeader(json, expect), first);
  const { manifest, chunks } = validateManifest(json, expect);
  const { files, formatVersion: _v, ...header } = manifest;
  return {
    format: 1,
    header: header as ManifestHeader,
    pageCount: 1,
    pageObjects: [],
    async page(index) {
      if (index !== 0) throw new ManifestInvalidError(`snapshot manifest pages[${index}]: a format 1 manifest has one page, 0`, { field: `pages[${index}]` });
      return { entries: files, chunks };
    },
    async *entries() {
      yield* files;
    },
  };
}

/**
 * Page `index` of the paged manifest at `manifestKey`, as stored: its text in
 * the header (PageRef.text: `key` then names the header and the page), or
 * its object, at most the length the header binds (MAX_PAGE_BYTES at most);
 * the caller checks its bytes against the header. ManifestInvalidError when
 * the header has no such page or its object is missing; the store's errors
 * otherwise.
 */
export async function readPageObject(objects: ManifestObjects, manifestKey: string, pages: readonly PageRef[], index: number): Promise<{ key: string; body: Uint8Array }> {
  const ref = pages[index];
  if (ref === undefined) {
    throw new ManifestInvalidError(`snapshot manifest pages[${index}]: the manifest has ${pages.length} page(s)`, { field: `pages[${index}]` });
  }
  const inline = inlinePageBytes(ref);
  if (inline !== undefined) return { key: `${manifestKey} pages[${index}]`, body: inline };
  const key = snapshotPageKey(manifestKey, index);
  const body = await objects.get(key, Math.min(ref.bytes, MAX_PAGE_BYTES));
  if (body === undefined) throw new ManifestInvalidError(`snapshot manifest pages[${index}]: page object ${key} is missing`, { field: `pages[${index}]` });
  return { key, body };
}

/**
 * A page kept parsed by an opened manifest (see pagedManifest): its entries,
 * and its distinct chunks when it was parsed whole (page(); a revalidating
 * walk parses entries only).
 */
interface KeptPage {
  entries: readonly PageEntry[];
  chunks?: readonly UniqueChunk[];
}

function pagedManifest(objects: ManifestObjects, key: string, h: PagedManifestHeader, firstPage?: Promise<Uint8Array | undefined>): OpenedManifest {
  const { pages, formatVersion: _v, ...header } = h;
  const readObject = async (index: number): Promise<Uint8Array> => (await readPageObject(objects, key, pages, index)).body;
  /** Page 0 read with the header (openManifest readFirstPage), taken once; missing or failed, it is read again as any page is (same checks, same errors). */
  let first = firstPage;
  const read = async (index: number): Promise<Uint8Array> => {
    // A page the header carries is not an object: a read of pages/000000.json made ahead finds nothing, or a stranger.
    const early = index === 0 && pages[0]?.text === undefined ? first : undefined;
    if (early === undefined) return readObject(index);
    first = undefined;
    const body = await early.catch(() => undefined);
    return body ?? readObject(index);
  };
  /**
   * Pages kept parsed, two at most: page 0 and the last other page parsed. A
   * restore walks the pages three times (its refusals, the writing, the
   * recorded modes last page first), each walk starting where one of these
   * is: a manifest of one or two pages (a snapshot of up to ~2 GB in 128 KiB
   * chunks) is read and parsed once, a longer one twice less per walk. Two
   * pages' entries (PAGE_CHUNKS references each) are all a walk holds more.
   */
  const kept = new Map<number, KeptPage>();
  const keep = (index: number, page: KeptPage): void => {
    if (index !== 0) for (const k of kept.keys()) if (k !== 0) kept.delete(k);
    // Shared by later walks: frozen, so that a caller that would reorder or change them fails at once.
    kept.set(index, { entries: Object.freeze(page.entries), ...(page.chunks === undefined ? {} : { chunks: Object.freeze(page.chunks) }) });
  };
  /** Page `i`'s bytes, and the read of page `i + 1` started (a walk's next page) unless that page is kept. */
  const readAhead = (i: number, ahead: Promise<Uint8Array> | undefined): { bytes: Promise<Uint8Array>; ahead: Promise<Uint8Array> | undefined } => {
    const bytes = ahead ?? read(i);
    const next = i + 1 < pages.length && !kept.has(i + 1) ? read(i + 1) : undefined;
    next?.catch(() => undefined); // awaited by the next step of the walk, or dropped with it
    return { bytes, ahead: next };
  };
  /** Set when entries() has validated every page and the manifest's end. */
  let validatedToEnd = false;
  return {
    format: 2,
    header,
    pageCount: pages.length,
    pageObjects: pages.flatMap((p, i) => (p.text === undefined ? [i] : [])),
    async page(index) {
      const k = kept.get(index);
      if (k?.chunks !== undefined) return { entries: k.entries, chunks: k.chunks };
      const { page, chunks } = parsePage(h, index, await read(index));
      keep(index, { entries: page.entries, chunks });
      return { entries: page.entries, chunks };
    },
    async *entries() {
      let ahead: Promise<Uint8Array> | undefined;
      // A walk after one that validated every page: each page's bytes are checked against the header's SHA-256 only (revalidatedPage).
      if (validatedToEnd) {
        for (let i = 0; i < pages.length; i++) {
          const k = kept.get(i);
          if (k !== undefined) {
            yield* k.entries;
            continue;
          }
          const r = readAhead(i, ahead);
          ahead = r.ahead;
          const { entries } = revalidatedPage(h, i, await r.bytes);
          keep(i, { entries });
          yield* entries;
        }
        return;
      }
      let state = startPagedValidation();
      for (let i = 0; i < pages.length; i++) {
        const r = readAhead(i, ahead);
        ahead = r.ahead;
        const v = validatePage(h, state, await r.bytes);
        state = v.state;
        keep(i, { entries: v.page.entries, chunks: v.chunks });
        yield* v.page.entries;
      }
      finishPagedValidation(h, state);
      validatedToEnd = true;
    },
  };
}
