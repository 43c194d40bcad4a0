/**
 * Snapshot manifests, format 2: the file list in pages (docs/snapshots.md,
 * "Manifest format 2: pages"), so that no step that writes, validates or
 * reads a manifest holds more than one page of it, whatever the snapshot's
 * size (format 1, core/snapshot.ts, is one JSON document: ~80 MB for 100 GB
 * in 128 KiB blocks, several hundred MB of heap once parsed).
 *
 *  - `manifest.json` (the header) stays the commit point and the ingest
 *    trigger, uploaded last. It holds everything format 1 holds but the
 *    files, with `formatVersion: 2`, and `pages`: per page object, in order,
 *    { sha256 of its bytes, bytes, entries, chunks }. The digests bind the
 *    pages to the commit point: a reader verifies a page's SHA-256 (and its
 *    length, before reading it) before using a byte of it.
 *  - Page i is `pages/<i, 6 digits>.json` beside the header (core/keys.ts
 *    snapshotPageKey): { formatVersion: 2, databaseId, snapshotId, page: i,
 *    entries }, compact JSON and one newline. Entries are format 1's file
 *    entries in tree order (compareTreePaths: path segment by segment, so a
 *    directory's subtree follows it without a break). A page is closed once
 *    it holds PAGE_CHUNKS chunk references or PAGE_BYTES bytes of entries;
 *    a file with more chunks than its page has room for continues as the
 *    first entry of the next page: the same entry (path, type, mode, mtime,
 *    size, sha256 and chunking of the whole file) with `part` 1, 2, ... and
 *    the next run of its chunks. A page holds at least one entry, at most
 *    PAGE_CHUNKS chunk references and MAX_PAGE_BYTES bytes.
 *  - Validation is incremental (startPagedValidation, validatePage,
 *    finishPagedValidation): a small JSON state (running totals, the last
 *    entry, the file that may continue, the types of the few paths a
 *    postgres snapshot requires) is carried from page to page, so a step
 *    can also stop after any page and go on in another invocation. Checked
 *    as in format 1: the schema and path safety, unique paths (strictly
 *    increasing in tree order), every parent a directory (in tree order the
 *    parent of an entry is the previous entry or one of its ancestors), every
 *    file's chunks (sizes, blocks, codec none, sum and SHA-256 rules),
 *    backup_label, global/pg_control and tablespace directories, the ids,
 *    totals files, directories, symlinks, logicalBytes and chunks, and packs.
 *    Not recomputed, because that needs the set of every distinct chunk:
 *    uniqueChunks and storedBytes (checked to be consistent with the other
 *    totals: uniqueChunks <= chunks, storedBytes <= the stored bytes of all
 *    references), nor that a chunk repeated on two pages has the same sizes
 *    and codec (checked within a page; ingest checks every reference against
 *    the vault). newChunks and newStoredBytes count every `new` flag (one per
 *    distinct chunk on a page): the writer flags a new chunk on every page
 *    that references it (ingest takes a page's unflagged chunks as stored),
 *    so newChunks may exceed uniqueChunks (newChunks <= chunks).
 *
 * Pure: no I/O (the reader is store/manifest-pages.ts).
 */
import { z } from "zod";
import { isPageShape } from "./page-shape.js";
import { InvalidInputError, UnsafePathError } from "./errors.js";
import { sha256Hex } from "./hash.js";
import { sha256Schema } from "./schemas.js";
import {
  checkChunkRecord,
  checkFileEnd,
  checkManifestHeader,
  checkPacks,
  checkReusedPacks,
  checkPostgresFiles,
  checkSafeTotals,
  mergeSameChunk,
  uniqueChunkOf,
  checkTotals,
  directoryEntrySchema,
  genericSnapshotSchema,
  manifestCommonFields,
  manifestIdFields,
  manifestInvalid,
  manifestSchemaError,
  postgresRequiredPaths,
  postgresSnapshotSchema,
  regularFileEntrySchema,
  snapshotTotalsSchema,
  symlinkEntrySchema,
  type ChunkRecord,
  type FileEntry,
  type ManifestExpectations,
  type RegularFileEntry,
  type SnapshotManifest,
  type SnapshotTotals,
  type UniqueChunk,
} from "./snapshot.js";

export const PAGED_FORMAT_VERSION = 2;
/** Chunk references per page at most (~1.4 MB of JSON). */
export const PAGE_CHUNKS = 8192;
/** A page is closed once its entries reach this many bytes. */
export const PAGE_BYTES = 1024 * 1024;
/** Largest page object a reader accepts (PAGE_BYTES, plus one entry's longest paths, plus PAGE_CHUNKS records, fit well within). */
export const MAX_PAGE_BYTES = 4 * 1024 * 1024;
/** Pages per manifest at most (keys have 6 digits; 100 GB in 128 KiB blocks is ~100 pages). */
export const MAX_PAGES = 100_000;

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const positive = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** A file entry on a page: format 1's, with `part` on the continuations of a file split across pages. */
export const pagedFileEntrySchema = regularFileEntrySchema.extend({ part: positive.optional() });
export const pageEntrySchema = z.discriminatedUnion("type", [pagedFileEntrySchema, directoryEntrySchema, symlinkEntrySchema]);

export const manifestPageSchema = z
  .object({
    formatVersion: z.literal(PAGED_FORMAT_VERSION),
    ...manifestIdFields,
    page: count,
    entries: z.array(pageEntrySchema).min(1, "a page holds at least one entry"),
  })
  .strict();

/**
 * A small manifest's pages travel in its header: the agent puts every page's
 * text in its reference (`text`) instead of an object of its own when the
 * pages come to at most this many bytes together (agent/manifest-upload.ts).
 * A snapshot then leaves one manifest object instead of 1 + pages (the
 * pgbench scale-100 cluster: 2 pages, 76 MB stored; the issue bounds a
 * snapshot at 64 objects per GB stored), and readers get the pages with the
 * header. 4 MiB: ~25,000 chunk references, a snapshot of ~3 GB in 128 KiB
 * blocks; the header is then at most ~5 MB of JSON, read whole by whoever
 * reads the header (docs/snapshots.md, "Small manifests in one object").
 */
export const INLINE_PAGES_BYTES = 4 * 1024 * 1024;

export const pageRefSchema = z
  .object({
    sha256: sha256Schema,
    bytes: positive.max(MAX_PAGE_BYTES, `a page is at most ${MAX_PAGE_BYTES} bytes`),
    entries: positive,
    chunks: count.max(PAGE_CHUNKS, `a page holds at most ${PAGE_CHUNKS} chunk references`),
    /** The page itself, when it is in the header (INLINE_PAGES_BYTES): its text, whose UTF-8 bytes are `bytes` long and hash to `sha256`. Absent: the page is the object pages/<i>.json. */
    text: z.string().optional(),
  })
  .strict();

const headerFields = {
  formatVersion: z.literal(PAGED_FORMAT_VERSION),
  ...manifestIdFields,
  ...manifestCommonFields,
  totals: snapshotTotalsSchema,
  pages: z.array(pageRefSchema).max(MAX_PAGES, `a manifest has at most ${MAX_PAGES} pages`),
};
export const pagedManifestHeaderSchema = z.discriminatedUnion("kind", [
  z.object({ ...headerFields, kind: z.literal("postgres"), postgres: postgresSnapshotSchema }).strict(),
  z.object({ ...headerFields, kind: z.literal("generic"), generic: genericSnapshotSchema }).strict(),
]);

export type PageEntry = z.infer<typeof pageEntrySchema>;
export type ManifestPage = z.infer<typeof manifestPageSchema>;
export type PageRef = z.infer<typeof pageRefSchema>;
export type PagedManifestHeader = z.infer<typeof pagedManifestHeaderSchema>;

// ---------------------------------------------------------------------------
// Tree order

/**
 * Orders paths segment by segment (each segment by UTF-16 code units, as
 * `<` does), i.e. as strings in which '/' sorts before every other
 * character: "a" < "a/b" < "a/c" < "a-b". A directory's whole subtree comes
 * right after it.
 */
export function compareTreePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 47) return -1;
    if (y === 47) return 1;
    return x - y;
  }
  return a.length - b.length;
}

// ---------------------------------------------------------------------------
// Writer

/** A finished page: its index, the object's text and its reference in the header. */
export interface WrittenPage {
  index: number;
  text: string;
  ref: PageRef;
}

/** Counts a page writer keeps: what the header's totals state, but for uniqueChunks and storedBytes (which need every distinct chunk). */
export type WrittenTotals = Omit<SnapshotTotals, "uniqueChunks" | "storedBytes">;

/**
 * Cuts a stream of file entries (in tree order) into pages. add() takes a
 * whole entry; a regular file may instead come in runs (startFile with no
 * chunks, addChunks..., the file ends at the next entry or at finish()), so
 * that a file of any size is never held whole. Every call returns the pages
 * it completed, finish() the last one; memory is one page.
 *
 * `new` flags: a page carries at most one per chunk, on its first reference
 * there (repeats on the same page are stripped). A chunk new to the vault
 * must be flagged on every page that references it (ingest takes a page's
 * unflagged chunks as already stored), so a caller that does not know page
 * boundaries flags every reference of a new chunk; one that flags a chunk
 * once in the whole manifest gets that one flag. `totals` counts what was
 * written: newChunks and newStoredBytes are the flags, as the validator
 * counts them. Entries out of tree order (or repeated) are refused
 * (InvalidInputError).
 */
export class ManifestPageWriter {
  private index = 0;
  private texts: string[] = [];
  private bytes = 0;
  private chunks = 0;
  private lastPath: string | undefined;
  private readonly prefix: string;
  /** Chunks flagged new on the page being filled. */
  private flagged = new Set<string>();
  /** The regular file being written: its entry, the part on this page and its chunks so far (their JSON bytes, estimated). */
  private open: { entry: RegularFileEntry; part: number; chunks: ChunkRecord[]; bytes: number } | undefined;
  readonly totals: WrittenTotals = { files: 0, directories: 0, symlinks: 0, logicalBytes: 0, chunks: 0, newChunks: 0, newStoredBytes: 0 };

  constructor(
    ids: { databaseId: string; snapshotId: string },
    private readonly limits: { chunks: number; bytes: number } = { chunks: PAGE_CHUNKS, bytes: PAGE_BYTES },
  ) {
    this.prefix = `{"formatVersion":${PAGED_FORMAT_VERSION},"databaseId":${JSON.stringify(ids.databaseId)},"snapshotId":${JSON.stringify(ids.snapshotId)},"page":`;
  }

  add(entry: FileEntry): WrittenPage[] {
    if (entry.type !== "file") {
      const out = this.enter(entry.path);
      if (entry.type === "directory") this.totals.directories++;
      else this.totals.symlinks++;
      this.push(JSON.stringify(entry), out);
      return out;
    }
    return this.startFile(entry);
  }

  /** Opens regular file `entry` (its size and sha256 those of the whole file; its chunks, if any, come first); addChunks adds the rest. */
  startFile(entry: RegularFileEntry): WrittenPage[] {
    const out = this.enter(entry.path);
    this.totals.files++;
    this.totals.logicalBytes += entry.size;
    const head = { ...entry, chunks: [] };
    this.open = { entry: head, part: 0, chunks: [], bytes: Buffer.byteLength(JSON.stringify(head), "utf8") + 1 };
    out.push(...this.addChunks(entry.chunks));
    return out;
  }

  /** The next chunks of the open file, in order. */
  addChunks(records: readonly ChunkRecord[]): WrittenPage[] {
    const o = this.open;
    if (o === undefined) throw new InvalidInputError("manifest chunks were added with no file open");
    const out: WrittenPage[] = [];
    for (const c of records) {
      if (this.chunks >= this.limits.chunks) {
        // A file with no chunk on this full page yet starts on the next one.
        if (o.chunks.length === 0) out.push(this.close());
        else this.cut(out);
      }
      let record = c;
      if (c.new === true) {
        if (this.flagged.has(c.sha256)) {
          const { new: _n, pack: _p, ...rest } = c; // flag and pack go on the page's first reference only
          record = rest;
        } else {
          this.flagged.add(c.sha256);
          this.totals.newChunks++;
          this.totals.newStoredBytes += c.storedSize;
        }
      }
      o.chunks.push(record);
      o.bytes += recordBytes(record);
      this.chunks++;
      this.totals.chunks++;
    }
    if (this.bytes + o.bytes >= this.limits.bytes) this.cut(out);
    return out;
  }

  /** The last page, if any entry is left. */
  finish(): WrittenPage[] {
    this.closeFile();
    return this.texts.length === 0 ? [] : [this.close()];
  }

  private enter(path: string): WrittenPage[] {
    this.closeFile();
    if (this.lastPath !== undefined && compareTreePaths(this.lastPath, path) >= 0) {
      throw new InvalidInputError(`manifest entry ${JSON.stringify(path)} does not follow ${JSON.stringify(this.lastPath)} in tree order`);
    }
    this.lastPath = path;
    return [];
  }

  /** Ends the open file's piece on this page and the page; the file goes on as the next part (written only if a chunk follows). */
  private cut(out: WrittenPage[]): void {
    const o = this.open!;
    this.writePiece(o);
    out.push(this.close());
    o.part++;
    o.chunks = [];
    o.bytes = Buffer.byteLength(JSON.stringify(o.entry), "utf8") + 12;
  }

  private closeFile(): void {
    const o = this.open;
    if (o === undefined) return;
    this.open = undefined;
    if (o.part === 0 || o.chunks.length > 0) this.writePiece(o);
  }

  private writePiece(o: NonNullable<ManifestPageWriter["open"]>): void {
    const piece = { ...o.entry, chunks: o.chunks, ...(o.part === 0 ? {} : { part: o.part }) };
    const text = JSON.stringify(piece);
    this.texts.push(text);
    this.bytes += Buffer.byteLength(text, "utf8") + 1;
  }

  private push(text: string, out: WrittenPage[]): void {
    this.texts.push(text);
    this.bytes += Buffer.byteLength(text, "utf8") + 1;
    if (this.bytes >= this.limits.bytes) out.push(this.close());
  }

  private close(): WrittenPage {
    const text = `${this.prefix}${this.index},"entries":[${this.texts.join(",")}]}\n`;
    const body = Buffer.from(text, "utf8");
    const page: WrittenPage = { index: this.index, text, ref: { sha256: sha256Hex(body), bytes: body.byteLength, entries: this.texts.length, chunks: this.chunks } };
    this.index++;
    this.texts = [];
    this.bytes = 0;
    this.chunks = 0;
    this.flagged = new Set();
    return page;
  }
}

/** JSON bytes of a chunk record in an entry, its comma included (all ASCII). */
function recordBytes(c: ChunkRecord): number {
  return JSON.stringify(c).length + 1;
}

/** The format-2 header of `manifest` (its files left out) over `pages` (every page, in order). */
export function pagedHeaderOf(manifest: SnapshotManifest, pages: readonly PageRef[]): PagedManifestHeader {
  const { files: _files, formatVersion: _v, ...rest } = manifest;
  return { formatVersion: PAGED_FORMAT_VERSION, ...rest, pages: [...pages] } as PagedManifestHeader;
}

/** A format-1 manifest (validated) as format 2: its header and its pages. */
export function pageManifest(manifest: SnapshotManifest, limits?: { chunks: number; bytes: number }): { header: PagedManifestHeader; pages: WrittenPage[] } {
  const writer = new ManifestPageWriter(manifest, limits);
  const pages: WrittenPage[] = [];
  for (const e of [...manifest.files].sort((a, b) => compareTreePaths(a.path, b.path))) pages.push(...writer.add(e));
  pages.push(...writer.finish());
  return { header: pagedHeaderOf(manifest, pages.map((p) => p.ref)), pages };
}

/** The references of `pages` (every page, in order) with each page's text in it: a header that carries its pages (INLINE_PAGES_BYTES). */
export function inlinePageRefs(pages: readonly WrittenPage[]): PageRef[] {
  return pages.map((p) => ({ ...p.ref, text: p.text }));
}

/** The bytes of a page the header carries (its reference's `text`); undefined for a page stored as an object of its own. */
export function inlinePageBytes(ref: PageRef): Uint8Array | undefined {
  return ref.text === undefined ? undefined : Buffer.from(ref.text, "utf8");
}

/** The header as stored: compact JSON, one trailing newline. */
export function serializePagedHeader(header: PagedManifestHeader): string {
  return `${JSON.stringify(header)}\n`;
}

// ---------------------------------------------------------------------------
// Validation

/** Validates a format-2 header: schema, the checks of checkManifestHeader, and page counts against the totals. */
export function validatePagedHeader(input: unknown, expect: ManifestExpectations = {}): PagedManifestHeader {
  const parsed = pagedManifestHeaderSchema.safeParse(input);
  if (!parsed.success) throw manifestSchemaError(parsed.error);
  const h = parsed.data;
  checkManifestHeader(h, expect);
  let chunks = 0;
  let entries = 0;
  let inline = 0;
  for (const [i, p] of h.pages.entries()) {
    chunks += p.chunks;
    entries += p.entries;
    if (p.text === undefined) continue;
    const n = Buffer.byteLength(p.text, "utf8");
    if (n !== p.bytes) throw manifestInvalid(`pages[${i}].text`, `has ${n} bytes, but the reference binds ${p.bytes}`);
    inline += n;
  }
  if (inline > INLINE_PAGES_BYTES) throw manifestInvalid("pages", `carry ${inline} bytes of pages in the header, more than the ${INLINE_PAGES_BYTES} allowed`);
  if (chunks !== h.totals.chunks) throw manifestInvalid("pages", `reference ${chunks} chunk(s), but totals.chunks states ${h.totals.chunks}`);
  const named = h.totals.files + h.totals.directories + h.totals.symlinks;
  if (entries < named) throw manifestInvalid("pages", `hold ${entries} entries, fewer than the ${named} files, directories and symlinks of the totals`);
  const t = h.totals;
  if (t.uniqueChunks > t.chunks) throw manifestInvalid("totals.uniqueChunks", `states ${t.uniqueChunks}, more than the ${t.chunks} chunk references`);
  // newChunks counts `new` flags, one per page a new chunk is on (ManifestPageWriter): at most one per reference, and may exceed uniqueChunks.
  if (t.newChunks > t.chunks) throw manifestInvalid("totals.newChunks", `states ${t.newChunks}, more than the ${t.chunks} chunk references`);
  if ((t.uniqueChunks === 0) !== (t.storedBytes === 0)) {
    throw manifestInvalid("totals.storedBytes", `states ${t.storedBytes} for ${t.uniqueChunks} distinct chunk(s)`);
  }
  return h;
}

/** A file whose chunks may continue on the next page. */
interface OpenFile {
  path: string;
  mode: number;
  mtime: string;
  size: number;
  /** Absent when the manifest records none (core/snapshot.ts fileSha256Of). */
  sha256?: string | undefined;
  blocks: boolean;
  /** The part last seen (0: the first). */
  part: number;
  /** Chunks so far, their bytes, the first one's SHA-256. */
  count: number;
  sum: number;
  first?: string;
  /** The last chunk so far and its field (a block that turns out not to be the last must be whole). */
  last?: { chunk: ChunkRecord; field: string };
  field: string;
}

/** What validation carries from page to page: small, JSON, independent of the snapshot's size. */
export interface PagedValidationState {
  /** The next page to validate. */
  next: number;
  totals: SnapshotTotals;
  /** The storedSize of every chunk reference (an upper bound of storedBytes). */
  referencedBytes: number;
  last?: { path: string; type: FileEntry["type"] };
  open?: OpenFile;
  /** Types of the paths a postgres snapshot requires, as seen. */
  required: Record<string, FileEntry["type"]>;
}

/** The state before page 0. */
export function startPagedValidation(): PagedValidationState {
  return {
    next: 0,
    totals: { files: 0, directories: 0, symlinks: 0, logicalBytes: 0, chunks: 0, uniqueChunks: 0, newChunks: 0, storedBytes: 0, newStoredBytes: 0 },
    referencedBytes: 0,
    required: {},
  };
}

/** A validated page: its entries and its distinct chunks (in order of first reference on the page). */
export interface ValidatedPage {
  page: ManifestPage;
  chunks: UniqueChunk[];
}

/** Page `index`'s bytes checked against the header's reference (length and SHA-256), parsed as JSON (not yet checked against the schema); with the reference. */
function boundPageJson(header: PagedManifestHeader, index: number, bytes: Uint8Array): { json: unknown; ref: PageRef } {
  const at = `pages[${index}]`;
  const ref = header.pages[index];
  if (ref === undefined) throw manifestInvalid(at, `the manifest has ${header.pages.length} page(s)`);
  if (bytes.byteLength !== ref.bytes) throw manifestInvalid(at, `the page object has ${bytes.byteLength} bytes, but the manifest binds ${ref.bytes}`);
  const digest = sha256Hex(bytes);
  if (digest !== ref.sha256) throw manifestInvalid(`${at}.sha256`, `the page object's SHA-256 is ${digest}, but the manifest binds ${ref.sha256}`);
  try {
    return { json: JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")) as unknown, ref };
  } catch (e) {
    throw manifestInvalid(at, `is not JSON: ${(e as Error).message}`);
  }
}

/**
 * Page `index` of a manifest whose every page this process has already
 * validated (validatePage through finishPagedValidation, the same header):
 * its bytes are checked against the header's length and SHA-256, which makes
 * them the bytes validated, and parsed without the schema and the rules
 * across pages again (the schemas are strict and transform nothing, so the
 * parsed JSON is what validation returned). For a second walk of the same
 * manifest (restore: the refusal pass, then the writing pass).
 */
export function revalidatedPage(header: PagedManifestHeader, index: number, bytes: Uint8Array): ManifestPage {
  return boundPageJson(header, index, bytes).json as ManifestPage;
}

/**
 * Checks page `index` on its own: its bytes against the header's reference
 * (length and SHA-256, before parsing), the schema, its ids and index, its
 * entry and chunk counts, and that chunks repeated on it agree. For random
 * access to pages of a manifest validated before (the vault's); ingest uses
 * validatePage, which adds the checks across pages.
 */
export function parsePage(header: PagedManifestHeader, index: number, bytes: Uint8Array): ValidatedPage {
  const at = `pages[${index}]`;
  const { json, ref } = boundPageJson(header, index, bytes);
  // The hand-written check first (core/page-shape.ts: yes only for what the schema accepts unchanged); the schema decides the rest and says why.
  let page: ManifestPage;
  if (isPageShape(json, PAGED_FORMAT_VERSION)) page = json;
  else {
    const parsed = manifestPageSchema.safeParse(json);
    if (!parsed.success) {
      throw manifestSchemaError(new z.ZodError(parsed.error.issues.map((i) => ({ ...i, path: ["pages", index, ...i.path] }))));
    }
    page = parsed.data;
  }
  if (page.databaseId !== header.databaseId || page.snapshotId !== header.snapshotId || page.page !== index) {
    throw manifestInvalid(at, `says it is page ${page.page} of ${page.databaseId}/${page.snapshotId}, not page ${index} of ${header.databaseId}/${header.snapshotId}`);
  }
  if (page.entries.length !== ref.entries) throw manifestInvalid(at, `holds ${page.entries.length} entries, but the manifest states ${ref.entries}`);
  const unique = new Map<string, UniqueChunk>();
  let chunks = 0;
  page.entries.forEach((e, i) => {
    if (e.type !== "file") return;
    e.chunks.forEach((c, j) => {
      const prior = unique.get(c.sha256);
      if (prior === undefined) unique.set(c.sha256, uniqueChunkOf(c));
      else mergeSameChunk(c, prior, `${at}.entries[${i}].chunks[${j}]`);
    });
    chunks += e.chunks.length;
  });
  if (chunks !== ref.chunks) throw manifestInvalid(at, `references ${chunks} chunk(s), but the manifest states ${ref.chunks}`);
  return { page, chunks: [...unique.values()] };
}

/**
 * Validates page `state.next` (bytes as read) after the pages before it:
 * parsePage, then every rule across pages (see the module comment). Returns
 * the page and the state to carry to the next one. Throws
 * ManifestInvalidError (field `pages[i]...`) or UnsafePathError.
 */
export function validatePage(header: PagedManifestHeader, state: PagedValidationState, bytes: Uint8Array): { state: PagedValidationState } & ValidatedPage {
  const index = state.next;
  const validated = parsePage(header, index, bytes);
  const s: PagedValidationState = structuredClone(state);
  const required = new Set(header.kind === "postgres" ? postgresRequiredPaths(header.postgres) : []);
  const blockSize = header.blocks?.blockSize;
  validated.page.entries.forEach((e, i) => {
    const at = `pages[${index}].entries[${i}]`;
    if (e.type === "file" && e.part !== undefined) continueFile(s, e, at, i);
    else {
      closeFile(s);
      enterPath(s, e, at);
      if (required.has(e.path)) s.required[e.path] = e.type;
      if (e.type === "directory") s.totals.directories++;
      else if (e.type === "symlink") s.totals.symlinks++;
      else {
        if (e.chunking === "blocks" && blockSize === undefined) {
          throw manifestInvalid(`${at}.chunking`, `${JSON.stringify(e.path)} is cut in blocks, but the manifest has no blocks descriptor`);
        }
        s.totals.files++;
        s.totals.logicalBytes += e.size;
        const { chunks: _c, part: _p, chunking, type: _t, ...fields } = e;
        s.open = { ...fields, blocks: chunking === "blocks", part: 0, count: 0, sum: 0, field: at };
      }
    }
    if (e.type === "file") addChunks(s, e.chunks, at, { blockSize, maxChunkSize: header.chunker.maxSize, packs: header.packs?.length, reusedPacks: header.reusedPacks?.length });
  });
  for (const c of validated.chunks) {
    if (!c.new) continue;
    s.totals.newChunks++;
    s.totals.newStoredBytes += c.storedSize;
  }
  checkSafeTotals(s.totals);
  s.next = index + 1;
  return { state: s, ...validated };
}

function continueFile(s: PagedValidationState, e: Extract<PageEntry, { type: "file" }>, at: string, i: number): void {
  const o = s.open;
  const what = `${JSON.stringify(e.path)} part ${e.part}`;
  if (i !== 0 || o === undefined || o.path !== e.path || o.part + 1 !== e.part) {
    const previous = i !== 0 ? "it is not the first entry of its page" : `the page before ends with ${o === undefined ? "no file" : `${JSON.stringify(o.path)} part ${o.part}`}`;
    throw manifestInvalid(`${at}.part`, `${what} does not continue the last entry of the page before it (${previous})`);
  }
  if (e.mode !== o.mode || e.mtime !== o.mtime || e.size !== o.size || e.sha256 !== o.sha256 || (e.chunking === "blocks") !== o.blocks) {
    throw manifestInvalid(at, `${what} does not repeat the mode, mtime, size, sha256 and chunking of its first part (${o.field})`);
  }
  o.part = e.part!;
}

function closeFile(s: PagedValidationState): void {
  const o = s.open;
  if (o === undefined) return;
  checkFileEnd(o.field, o, o.sum, o.count, o.first);
  s.open = undefined;
}

/** Unique paths in tree order, each under a directory: the parent is the last entry or one of its ancestors (all directories). */
function enterPath(s: PagedValidationState, e: PageEntry, at: string): void {
  const last = s.last;
  if (last !== undefined && compareTreePaths(last.path, e.path) >= 0) {
    throw manifestInvalid(`${at}.path`, `${JSON.stringify(e.path)} ${last.path === e.path ? "is listed twice" : `comes after ${JSON.stringify(last.path)}, out of tree order`}`);
  }
  const slash = e.path.lastIndexOf("/");
  if (slash >= 0) {
    const parent = e.path.slice(0, slash);
    const isLast = last?.path === parent;
    const isAncestor = last !== undefined && last.path.startsWith(`${parent}/`);
    if (!isLast && !isAncestor) {
      throw manifestInvalid(`${at}.path`, `the parent directory of ${JSON.stringify(e.path)}, ${JSON.stringify(parent)}, is not in the snapshot`);
    }
    if (isLast && last.type !== "directory") {
      if (last.type === "symlink") {
        throw new UnsafePathError(
          `snapshot manifest ${at}.path: ${JSON.stringify(e.path)} lies under the symlink ${JSON.stringify(parent)}; restoring it would write through the link`,
          { path: e.path },
        );
      }
      throw manifestInvalid(`${at}.path`, `the parent of ${JSON.stringify(e.path)}, ${JSON.stringify(parent)}, is a ${last.type}, not a directory`);
    }
  }
  s.last = { path: e.path, type: e.type };
}

function addChunks(
  s: PagedValidationState,
  chunks: readonly ChunkRecord[],
  at: string,
  cut: { blockSize: number | undefined; maxChunkSize: number; packs: number | undefined; reusedPacks: number | undefined },
): void {
  const o = s.open!;
  chunks.forEach((c, j) => {
    const field = `${at}.chunks[${j}]`;
    if (o.blocks && o.last !== undefined) checkChunkRecord(o.last.chunk, o.last.field, o.path, o.count - 1, { ...cut, blocks: true, last: false });
    checkChunkRecord(c, field, o.path, o.count, { ...cut, blocks: o.blocks, last: true });
    if (o.count === 0) o.first = c.sha256;
    o.count++;
    o.sum += c.size;
    o.last = { chunk: c, field };
    s.totals.chunks++;
    s.referencedBytes += c.storedSize;
  });
}

/**
 * After the last page: the last file's rules, the totals against the
 * header, backup_label and the other required paths, packs. Throws as
 * validatePage does.
 */
export function finishPagedValidation(header: PagedManifestHeader, state: PagedValidationState): void {
  if (state.next !== header.pages.length) {
    throw manifestInvalid("pages", `validation stopped after ${state.next} of ${header.pages.length} page(s)`);
  }
  const s: PagedValidationState = structuredClone(state);
  closeFile(s);
  checkTotals(header.totals, s.totals, ["files", "directories", "symlinks", "logicalBytes", "chunks", "newChunks", "newStoredBytes"]);
  if (header.totals.storedBytes > s.referencedBytes) {
    throw manifestInvalid("totals.storedBytes", `states ${header.totals.storedBytes}, more than the ${s.referencedBytes} stored bytes of all chunk references`);
  }
  if (header.kind === "postgres") checkPostgresFiles(header.postgres, (path) => s.required[path]);
  if (header.packs !== undefined) checkPacks(header.packs, s.totals.newChunks);
  if (header.reusedPacks !== undefined) checkReusedPacks(header.reusedPacks);
}

/** The manifest format of parsed manifest.json content: 2 for a paged header, else 1 (validateManifest judges it). */
export function manifestFormatOf(json: unknown): 1 | 2 {
  return typeof json === "object" && json !== null && (json as { formatVersion?: unknown }).formatVersion === PAGED_FORMAT_VERSION ? 2 : 1;
}
