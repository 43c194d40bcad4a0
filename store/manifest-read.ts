/**
 * Reading a vaulted snapshot manifest (db/<id>/snapshots/<sid>/manifest.json)
 * of either format through store/manifest-pages.ts openManifest, for every
 * reader outside ingest (restore, verify, replication, thaw, retention,
 * catalog rebuild, planning): docs/snapshots.md, "Readers".
 *
 * - openVaultManifest: the manifest a catalog record names, its bytes (the
 *   header, for format 2) checked against the record's manifestSha256 before
 *   they are parsed. The header's page digests bind the pages, so a page is
 *   as trusted as the header once parsePage/validatePage has checked it.
 * - readVaultHeader: the same, header fields only (no page is read).
 * - entryBatches: the entries in batches of at most a page's worth of chunk
 *   references, with each batch's distinct chunks, validated across pages as
 *   they come (OpenedManifest.entries()); a full batch is yielded before the
 *   next page is read. Memory: the page being read plus one batch, whatever
 *   the snapshot's size.
 * - pageKeysOf: the page objects of a format-2 manifest (none for format 1,
 *   nor for pages the header carries), for whoever copies, deletes or thaws
 *   the objects of a snapshot.
 */
import { ChecksumMismatchError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { snapshotPageKey } from "../core/keys.js";
import type { SnapshotHeader } from "../core/manifest-header.js";
import { PAGE_CHUNKS, compareTreePaths, type PageEntry } from "../core/manifest-pages.js";
import type { DatabaseRecord, SnapshotRecord } from "../core/schemas.js";
import type { ManifestExpectations, UniqueChunk } from "../core/snapshot.js";
import { openManifest, StoreManifestObjects, type ManifestObjects, type OpenedManifest, type OpenOptions } from "./manifest-pages.js";
import type { ObjectStore } from "./object-store.js";

/** What a catalog record says of its manifest. */
export type ManifestRecord = Pick<SnapshotRecord, "databaseId" | "snapshotId" | "manifestKey" | "manifestSha256">;

/** ManifestObjects whose manifest object must hash to `sha256` (pages are bound by the header's digests). */
export function checkedManifestObjects(inner: ManifestObjects, record: ManifestRecord): ManifestObjects {
  return {
    async get(key, maxBytes) {
      const body = await inner.get(key, maxBytes);
      if (key !== record.manifestKey) return body;
      if (body === undefined) {
        throw new ChecksumMismatchError(`snapshot ${record.snapshotId} is recorded in the catalog but its manifest ${record.manifestKey} is missing from the vault`);
      }
      const sha = sha256Hex(body);
      if (sha !== record.manifestSha256) {
        throw new ChecksumMismatchError(
          `manifest of snapshot ${record.snapshotId} (${record.manifestKey}) is corrupt: SHA-256 ${sha.slice(0, 12)}…, catalog says ${record.manifestSha256.slice(0, 12)}…`,
        );
      }
      return body;
    },
  };
}

/** What a database's manifests must say (ids, kind, segment size). */
export function expectationsOf(record: ManifestRecord, database?: DatabaseRecord): ManifestExpectations {
  return {
    databaseId: record.databaseId,
    snapshotId: record.snapshotId,
    ...(database === undefined ? {} : { kind: database.kind }),
    ...(database?.kind === "postgres" ? { walSegmentSize: database.walSegmentSize } : {}),
  };
}

/** Opens the manifest of a catalog record in a vault; its bytes must hash to the record's manifestSha256 (ChecksumMismatchError). */
export async function openVaultManifest(vault: ObjectStore, vaultBucket: string, record: ManifestRecord, database?: DatabaseRecord, opts: OpenOptions = {}): Promise<OpenedManifest> {
  const objects = checkedManifestObjects(new StoreManifestObjects(vault, vaultBucket), record);
  // checkedManifestObjects throws for a missing manifest, so openManifest never resolves undefined here.
  return (await openManifest(objects, record.manifestKey, expectationsOf(record, database), opts))!;
}

/** The header fields of a record's manifest (format 2: the header object alone). */
export async function readVaultHeader(vault: ObjectStore, vaultBucket: string, record: ManifestRecord, database?: DatabaseRecord): Promise<SnapshotHeader> {
  return (await openVaultManifest(vault, vaultBucket, record, database)).header;
}

/** The page object keys of an opened manifest at `manifestKey` (format 1, and pages its header carries: none). */
export function pageKeysOf(manifestKey: string, m: Pick<OpenedManifest, "pageObjects">): string[] {
  return m.pageObjects.map((i) => snapshotPageKey(manifestKey, i));
}

/** A distinct chunk of a batch with the first file that uses it (for messages), and the pack the manifest names for it (`pack`, `reusedPack`). */
export type BatchChunk = UniqueChunk & { file: string };

export interface EntryBatch {
  entries: PageEntry[];
  /** Distinct within the batch (a chunk on two batches is in both), in order of first reference. */
  chunks: BatchChunk[];
}

/**
 * Every entry of `m` (format 1: in tree order; format 2 is stored so), in
 * batches of at most `maxChunks` chunk references (an entry with more is cut,
 * as pages cut files: the continuation carries `part`), validated across
 * pages as they are read (a bad page rejects the iteration there).
 */
export async function* entryBatches(m: OpenedManifest, maxChunks = PAGE_CHUNKS): AsyncGenerator<EntryBatch> {
  let entries: PageEntry[] = [];
  let chunks = new Map<string, BatchChunk>();
  let refs = 0;
  const flush = (): EntryBatch => {
    const out = { entries, chunks: [...chunks.values()] };
    entries = [];
    chunks = new Map();
    refs = 0;
    return out;
  };
  for await (const e of treeOrdered(m)) {
    if (e.type !== "file") {
      entries.push(e);
      continue;
    }
    let from = 0;
    let part = e.part ?? 0;
    do {
      const to = Math.min(e.chunks.length, from + maxChunks - refs);
      const piece = from === 0 && to === e.chunks.length ? e : { ...e, chunks: e.chunks.slice(from, to), ...(part === 0 ? {} : { part }) };
      entries.push(piece);
      for (const c of piece.chunks) {
        const prior = chunks.get(c.sha256);
        if (prior === undefined) {
          const b: BatchChunk = { sha256: c.sha256, size: c.size, storedSize: c.storedSize, codec: c.codec, new: c.new === true, file: e.path };
          if (c.pack !== undefined) b.pack = c.pack;
          if (c.reusedPack !== undefined) b.reusedPack = c.reusedPack;
          chunks.set(c.sha256, b);
        } else {
          // The flag and a new chunk's pack are on a page's first reference only.
          if (c.new === true) prior.new = true;
          if (c.pack !== undefined) prior.pack ??= c.pack;
        }
      }
      refs += to - from;
      from = to;
      part++;
      // Out as soon as it is full: waiting for the next entry would read (and validate) the next page first, when a
      // page ends where the batch does (a restore's first batch waited ~0.1 s for page 2 before its first chunk).
      if (refs >= maxChunks) yield flush();
    } while (from < e.chunks.length);
  }
  if (entries.length > 0) yield flush();
}

/** The entries of a manifest in tree order: format 2 is stored in it; format 1 (whole in memory anyway) is sorted. */
export function treeOrdered(m: OpenedManifest): AsyncIterable<PageEntry> {
  if (m.format === 2) return m.entries();
  return (async function* () {
    const all: PageEntry[] = [];
    for await (const e of m.entries()) all.push(e);
    yield* all.sort((a, b) => compareTreePaths(a.path, b.path));
  })();
}

/**
 * The entries in reverse tree order (every directory after everything it
 * holds): format 2 page by page from the last (pages checked against the
 * header's digests; the manifest was validated across pages before), format 1
 * sorted.
 */
export function reverseTreeOrdered(m: OpenedManifest): AsyncIterable<PageEntry> {
  return (async function* () {
    if (m.format === 1) {
      const all: PageEntry[] = [];
      for await (const e of treeOrdered(m)) all.push(e);
      yield* all.reverse();
      return;
    }
    if (m.pageCount === 0) return;
    // The page before is read while this one's entries are taken.
    let next = m.page(m.pageCount - 1);
    for (let i = m.pageCount - 1; i >= 0; i--) {
      const { entries } = await next;
      if (i > 0) {
        next = m.page(i - 1);
        next.catch(() => undefined); // awaited next round, or dropped with the walk
      }
      for (let j = entries.length - 1; j >= 0; j--) yield entries[j]!;
    }
  })();
}

/**
 * Directories and symlinks a walk keeps, at most, to take them again in
 * reverse tree order without reading the pages again (DirsAndLinks).
 */
export const KEPT_DIRS_AND_LINKS = 16_384;

/**
 * The directories and symlinks of a manifest, gathered as a walk in tree
 * order meets its entries (add), then taken in reverse tree order (every
 * directory after everything it holds: restore's recorded times and modes):
 * from memory while at most `max` were met, else by walking the pages again
 * from the last (reverseTreeOrdered). A PostgreSQL cluster has tens of
 * directories: its restore's last pass reads no page, where it read every
 * page but the two the manifest keeps (~100 at 100 GB). Every entry of the
 * manifest must have been added before reversed() is asked.
 */
export class DirsAndLinks {
  private kept: PageEntry[] | undefined = [];

  constructor(private readonly max = KEPT_DIRS_AND_LINKS) {}

  /** The walk's next entry (files are not kept; a file's parts may come in any number). */
  add(e: PageEntry): void {
    if (e.type === "file" || this.kept === undefined) return;
    if (this.kept.length >= this.max) this.kept = undefined;
    else this.kept.push(e);
  }

  /** The directories and symlinks in reverse tree order: the kept ones, or `m`'s pages read again. */
  reversed(m: OpenedManifest): AsyncIterable<PageEntry> {
    const kept = this.kept;
    return (async function* () {
      if (kept !== undefined) {
        for (let i = kept.length - 1; i >= 0; i--) yield kept[i]!;
        return;
      }
      for await (const e of reverseTreeOrdered(m)) if (e.type !== "file") yield e;
    })();
  }
}
