/**
 * Copying vault objects to a replica region's vault, proven there (issue #4).
 *
 * Contract:
 * - replicateObject() makes `key` in the replica vault hold exactly the bytes
 *   the primary vault holds, with the same walvault metadata (so the replica
 *   vault describes itself like the primary), and proves it by reading the
 *   copy back from the replica and decoding it: its raw SHA-256 and size must
 *   be what the caller expects (the catalog's record), else
 *   ChecksumMismatchError and the region is NOT marked. An object already in
 *   the replica with the expected SHA-256 metadata is verified by reading it
 *   and not written again (idempotent; never overwrites good bytes). A source
 *   object whose own bytes do not prove the expectation is refused before
 *   anything is written.
 * - replicateSnapshotBatch() does one bounded part of a snapshot's copy, so
 *   that no invocation's work grows with the snapshot (issue #11): it reads
 *   and proves the manifest (one object, read per call), then works from a
 *   cursor, stopping early at a group boundary once `budgetMs` is spent, and
 *   returns { done: false, cursor } (every position before it is proven in
 *   the replica) while work remains. Only a call that reaches the end writes
 *   the manifest, last (the commit point, as in the primary), proven as
 *   above, and returns { done: true, manifest }.
 *   - A snapshot whose push wrote no packs (its manifest has no `packs`:
 *     from before packs, or pushed with them off): positions are the
 *     manifest's ordered list of distinct chunks, each its own object
 *     db/<id>/chunks/<sha>, at most `maxChunks` per call, each copied and
 *     proven with replicateObject (HEAD first, `concurrency` at a time). A
 *     reused chunk with no object in the primary (one an earlier packed push
 *     stored in a pack) is looked up in the catalog and its pack replicated
 *     instead, once per call (replicatePack).
 *   - A packed snapshot (its manifest lists the packs its push uploaded):
 *     positions [0, P) are those P packs, at most `maxPacks` per call, each
 *     copied whole and proven without reading it back (replicatePack); then
 *     positions P + i are the manifest's distinct chunks i. Its new chunks
 *     live in its own packs and cost nothing more; a reused chunk is in the
 *     pack the manifest names for it (`reusedPack`) when that pack is
 *     recorded, not repacked, and its index (read from the primary once per
 *     pack, kept across the call: store/pack-index.ts) holds it with the
 *     manifest's sizes and codec: that pack is replicated as below, with no
 *     catalog read for the chunk. Any other reused chunk is looked
 *     up in the catalog (getChunks, at most `maxLookups` per call): one inside
 *     another pack (an older snapshot's, or a repack's) makes that pack
 *     replicated too (HEAD, copied only when the replica lacks it; counted in
 *     `maxPacks`), one stored as its own object (from before packs) is
 *     replicated as above (counted in `maxChunks`). So the replica's manifest
 *     never commits a chunk the replica lacks, even when the snapshot that
 *     first stored it is gone (retention) or the region is new (backfill).
 *   - A format-2 manifest (core/manifest-pages.ts): the chunk positions are
 *     its chunk references in page order (a chunk repeated on the same page
 *     is skipped), read one page at a time, each page checked against the
 *     header's digest; after them come its P' page objects, at most
 *     `maxChunks` per call, each copied and proven (replicateObject with the
 *     header's SHA-256 and size): every page is in the replica before the
 *     header, which commits them. Pages the header carries (PageRef.text,
 *     a small manifest) count as positions but have no object to copy.
 *   A call that fails (ChecksumMismatchError, a service fault) writes no
 *   manifest, so a partly copied snapshot is never visible as committed. A retry
 *   or a resumed cursor re-verifies, never re-writes, what is already there.
 *   The workflows call it again with the returned cursor until done
 *   (functions/replicate/copy-item.ts); the state carries counts only.
 * - replicatePack() copies one pack (db/<id>/packs/<name>) to the replica
 *   at the same key, and proves the copy without reading it back: where the
 *   replica's store reports the object's full SHA-256 checksum (S3, PUT with
 *   ChecksumAlgorithm SHA256; HEAD with ChecksumMode), by that checksum equal
 *   to the name; where it reports none (s3rver), by its size equal to the
 *   catalog's PackItem.size and its metadata equal to the primary's
 *   (docs/packs.md, item 4, says what that proves and what it does not). A
 *   replica already holding the pack so is not written again; one holding
 *   something else at the key (wrong size, checksum or metadata) gets the
 *   pack written over it. The source is refused before anything is written
 *   unless its size is the catalog's and its bytes hash to its name.
 * - Nothing here writes the catalog: callers record the region's status only
 *   after replicateObject resolves, or a snapshot batch resolves done: true.
 * - Service failures reject with ServiceUnavailableError naming the endpoint.
 */
import { forEachLimit } from "../core/concurrency.js";
import { ChecksumMismatchError, InvalidInputError, NotFoundError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { packNameOfKey, vaultChunkKey, vaultPackKey } from "../core/keys.js";
import { META_SHA256, type ChunkItem, type PackItem } from "../core/schemas.js";
import { snapshotPageKey } from "../core/keys.js";
import type { SnapshotHeader } from "../core/manifest-header.js";
import { inlinePageBytes, manifestFormatOf, MAX_PAGE_BYTES, parsePage, validatePagedHeader, type PagedManifestHeader } from "../core/manifest-pages.js";
import { namedPackOf, parseManifest, validateManifest, type UniqueChunk } from "../core/snapshot.js";
import { StoreManifestObjects } from "./manifest-pages.js";
import { parseObjectMeta, verifyEncodedBytes } from "../core/verify.js";
import type { Catalog } from "./catalog.js";
import { PackIndexCache } from "./pack-index.js";
import type { ObjectInfo, ObjectStore } from "./object-store.js";

export interface VaultRef {
  store: ObjectStore;
  bucket: string;
}

export interface Expected {
  /** SHA-256 of the raw (decoded) bytes. */
  sha256: string;
  /** Raw size. */
  size: number;
}

export interface ReplicatedObject {
  key: string;
  versionId?: string;
  /** False when the replica already held the bytes. */
  copied: boolean;
  storedBytes: number;
}

async function proveCopy(replica: VaultRef, key: string, expected: Expected, versionId: string | undefined, where: string): Promise<number> {
  const copy = await replica.store.get(replica.bucket, key, versionId);
  if (!copy) throw new NotFoundError(`copy of ${key} in ${where} is missing right after the write`);
  const claimed = parseObjectMeta(copy.metadata, `copy of ${key} in ${where}`);
  await verifyEncodedBytes(copy.body, { ...claimed, sha256: expected.sha256, size: expected.size }, `copy of ${key} in ${where}`);
  return copy.body.length;
}

export async function replicateObject(
  primary: VaultRef,
  replica: VaultRef,
  key: string,
  expected: Expected,
  opts: { sourceVersionId?: string; region: string },
): Promise<ReplicatedObject> {
  const present = await replica.store.head(replica.bucket, key);
  if (present && present.metadata[META_SHA256] === expected.sha256) {
    try {
      const stored = await proveCopy(replica, key, expected, present.versionId, opts.region);
      return { key, ...(present.versionId ? { versionId: present.versionId } : {}), copied: false, storedBytes: stored };
    } catch (e) {
      if (!(e instanceof ChecksumMismatchError)) throw e;
      // The replica's copy is damaged: write a good one over it (a new version; the damaged one stays in history).
    }
  }
  const src = await primary.store.get(primary.bucket, key, opts.sourceVersionId);
  if (!src) throw new NotFoundError(`vault object ${key} is missing in the primary vault`);
  const claimed = parseObjectMeta(src.metadata, `vault object ${key}`);
  await verifyEncodedBytes(src.body, { ...claimed, sha256: expected.sha256, size: expected.size }, `vault object ${key}`);
  const put = await replica.store.put(replica.bucket, key, src.body, src.metadata);
  const stored = await proveCopy(replica, key, expected, put.versionId, opts.region);
  return { key, ...(put.versionId ? { versionId: put.versionId } : {}), copied: true, storedBytes: stored };
}

/** What replicatePack did: `copied` false when the replica already held the pack, proven. */
export interface ReplicatedPack {
  key: string;
  copied: boolean;
  /** How the replica's copy was proven: "checksum" (the store's SHA-256 = the name) or "size+metadata" (a store that keeps no checksum). */
  proof: "checksum" | "size+metadata";
}

function sameMetadata(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/**
 * Whether the replica's object `found` is the pack `pack`, and how that is
 * known (see the file comment); undefined when it is not. `primaryMeta`
 * gives the primary's metadata, asked only when the replica's store keeps
 * no checksum.
 */
async function packProof(found: ObjectInfo, pack: PackItem, primaryMeta: () => Promise<Record<string, string>>): Promise<ReplicatedPack["proof"] | undefined> {
  if (found.sha256 !== undefined) return found.sha256 === pack.name ? "checksum" : undefined;
  if (found.size !== pack.size) return undefined;
  return sameMetadata(found.metadata, await primaryMeta()) ? "size+metadata" : undefined;
}

/**
 * Copies pack `pack` (its catalog record) to the replica at the same key,
 * proven without reading the copy back (see the file comment). Requests: one
 * HEAD of the replica when it already holds the pack (plus one HEAD of the
 * primary where the store keeps no checksum); else one GET of the primary,
 * one PUT and one HEAD of the replica.
 */
export async function replicatePack(primary: VaultRef, replica: VaultRef, pack: PackItem, opts: { region: string }): Promise<ReplicatedPack> {
  const key = vaultPackKey(pack.databaseId, pack.name);
  if (pack.vaultKey !== key) throw new InvalidInputError(`pack ${pack.name} is recorded at ${pack.vaultKey}, not where walvault keeps it (${key})`);
  let primaryMeta: Record<string, string> | undefined;
  const metaOfPrimary = async (): Promise<Record<string, string>> => {
    if (primaryMeta !== undefined) return primaryMeta;
    const h = await primary.store.head(primary.bucket, key);
    if (!h) throw new NotFoundError(`pack ${key} is missing in the primary vault`);
    primaryMeta = h.metadata;
    return primaryMeta;
  };
  const present = await replica.store.head(replica.bucket, key, undefined, { checksum: true });
  if (present) {
    const proof = await packProof(present, pack, metaOfPrimary);
    if (proof) return { key, copied: false, proof };
    // Something else sits at the key (a torn or damaged copy): write the pack over it.
  }
  const src = await primary.store.get(primary.bucket, key);
  if (!src) throw new NotFoundError(`pack ${key} is missing in the primary vault`);
  if (src.body.length !== pack.size) {
    throw new ChecksumMismatchError(`pack ${key} in the primary vault is ${src.body.length} bytes, the catalog records ${pack.size}: not copied`);
  }
  const actual = sha256Hex(src.body);
  if (actual !== pack.name) throw new ChecksumMismatchError(`pack ${key} in the primary vault hashes to ${actual.slice(0, 12)}…, not to its name: not copied`);
  primaryMeta = src.metadata;
  await replica.store.put(replica.bucket, key, src.body, src.metadata, { sha256: pack.name });
  const copy = await replica.store.head(replica.bucket, key, undefined, { checksum: true });
  if (!copy) throw new NotFoundError(`copy of pack ${key} in ${opts.region} is missing right after the write`);
  const proof = await packProof(copy, pack, metaOfPrimary);
  if (!proof) {
    const what = copy.sha256 !== undefined ? `SHA-256 checksum ${copy.sha256.slice(0, 12)}…` : `${copy.size} bytes${copy.size === pack.size ? " with other metadata" : ""}`;
    throw new ChecksumMismatchError(`copy of pack ${key} in ${opts.region} has ${what}, not the pack's (${pack.size} bytes, ${pack.name.slice(0, 12)}…)`);
  }
  return { key, copied: true, proof };
}

/**
 * One bounded part of a snapshot's copy (replicateSnapshotBatch). `chunks`:
 * the manifest's distinct chunks; for a packed snapshot `packs` is the
 * number of its own packs, and the cursor runs over packs + chunks.
 */
export type SnapshotBatch = {
  cursor: number;
  chunks: number;
  copiedChunks: number;
  packs?: number;
  copiedPacks?: number;
  /** Format 2: its page objects (copied after every chunk, before the header). */
  pages?: number;
} & ({ done: false } | { done: true; manifest: ReplicatedObject });

export interface SnapshotBatchOptions {
  region: string;
  /** Position to start at (0 first): in the list of distinct chunks, or for a packed snapshot in its packs then its chunks. */
  cursor: number;
  /** At most this many chunks copied as their own objects per call. */
  maxChunks: number;
  /** Packed snapshots: at most this many packs copied or checked per call (default 16). */
  maxPacks?: number;
  /** Packed snapshots: at most this many reused chunks looked up in the catalog per call (default 8 × maxChunks). */
  maxLookups?: number;
  /** Packed snapshots: where their chunks and packs are recorded. */
  catalog?: Pick<Catalog, "getChunks" | "getPack">;
  /** Stop at the next group boundary once this much time is spent (a safety net under the Lambda timeout). */
  budgetMs?: number;
  concurrency?: number;
  /** Packs copied at once (default 4: each is held whole, up to 32 MiB). */
  packConcurrency?: number;
}

/** Packs per call by default: 16 × 32 MiB = 512 MiB copied per invocation at most. */
export const DEFAULT_REPLICATE_PACKS = 16;
/** Reused chunks looked up per getChunks call. */
const LOOKUP_GROUP = 1000;

/** The packs a manifest says its push uploaded (absent: a snapshot from before packs). */
export function manifestPacks(manifest: SnapshotHeader): string[] | undefined {
  const packs = (manifest as { packs?: unknown }).packs;
  if (packs === undefined) return undefined;
  if (!Array.isArray(packs) || !packs.every((p): p is string => typeof p === "string")) {
    throw new InvalidInputError(`snapshot manifest ${manifest.snapshotId}: packs is not a list of pack names`);
  }
  return packs;
}

/**
 * Copies part of a snapshot to the replica, and the manifest once the rest
 * is there (see the file comment). `manifestSha256` is the catalog's record
 * of the manifest (SHA-256 of its raw JSON). `copiedChunks` and
 * `copiedPacks` count this call's copies only.
 */
export async function replicateSnapshotBatch(
  primary: VaultRef,
  replica: VaultRef,
  manifestKey: string,
  manifestSha256: string,
  opts: SnapshotBatchOptions,
): Promise<SnapshotBatch> {
  const started = Date.now();
  const src = await primary.store.get(primary.bucket, manifestKey);
  if (!src) throw new NotFoundError(`snapshot manifest ${manifestKey} is missing in the primary vault`);
  const claimed = parseObjectMeta(src.metadata, `snapshot manifest ${manifestKey}`);
  const raw = await verifyEncodedBytes(src.body, { ...claimed, sha256: manifestSha256 }, `snapshot manifest ${manifestKey} in the primary vault`);
  const { manifest, chunks, pages } = chunkRefsOf(primary, manifestKey, raw);
  const packs = manifestPacks(manifest);
  const chunkEnd = (packs?.length ?? 0) + chunks.length;
  const positions = chunkEnd + pages.length;
  if (!Number.isInteger(opts.cursor) || opts.cursor < 0 || opts.cursor > positions) {
    const what = `${packs === undefined ? "" : `${packs.length} packs and `}${chunks.length} chunks${pages.length === 0 ? "" : ` and ${pages.length} pages`}`;
    throw new InvalidInputError(`replication cursor ${opts.cursor} is outside snapshot manifest ${manifestKey} (${what})`);
  }
  if (!Number.isInteger(opts.maxChunks) || opts.maxChunks < 1) throw new InvalidInputError(`replication batch of ${opts.maxChunks} chunks is not a positive integer`);
  const overBudget = (): boolean => opts.budgetMs !== undefined && Date.now() - started >= opts.budgetMs;
  const concurrency = opts.concurrency ?? 8;
  const db = manifest.databaseId;
  let cursor = opts.cursor;
  let copied = 0;
  let copiedPacks = 0;
  const copyChunkObject = async (key: string, c: { sha256: string; size: number }): Promise<void> => {
    const r = await replicateObject(primary, replica, key, { sha256: c.sha256, size: c.size }, { region: opts.region });
    if (r.copied) copied++;
  };

  if (packs === undefined) {
    // A push without packs: each new chunk is its own object, and so is every chunk of a snapshot from before packs.
    // A reused chunk may live in a pack (the push came after packed ones): no object of its own in the primary, its
    // catalog record names the pack, which is replicated instead (once per call).
    const end = Math.min(chunks.length, opts.cursor + opts.maxChunks);
    const group = concurrency * 4;
    const packed = new Map<string, Promise<void>>();
    const copyInPack = async (c: { sha256: string }, missing: NotFoundError): Promise<void> => {
      const [item] = opts.catalog === undefined ? [] : await opts.catalog.getChunks(db, [c.sha256]);
      if (item?.offset === undefined) throw missing;
      const name = recordedPackOf(db, item);
      let copy = packed.get(name);
      if (copy === undefined) {
        copy = (async () => {
          const pack = await opts.catalog!.getPack(db, name);
          if (!pack) throw new NotFoundError(`pack ${name}, where chunk ${c.sha256} of snapshot ${manifest.snapshotId} is recorded, is not recorded in the catalog of database ${db}`);
          if ((await replicatePack(primary, replica, pack, { region: opts.region })).copied) copiedPacks++;
        })();
        packed.set(name, copy);
      }
      await copy;
    };
    while (cursor < end) {
      const to = Math.min(end, cursor + group);
      const part = await chunks.slice(cursor, to);
      await forEachLimit(part, concurrency, async (c) => {
        try {
          await copyChunkObject(vaultChunkKey(db, c.sha256), c);
        } catch (e) {
          if (!(e instanceof NotFoundError) || c.new) throw e;
          await copyInPack(c, e);
        }
      });
      cursor = to;
      if (overBudget()) break;
    }
  } else {
    const catalog = opts.catalog;
    if (!catalog) throw new InvalidInputError(`snapshot manifest ${manifestKey} lists packs: replicating it needs the catalog`);
    const maxPacks = opts.maxPacks ?? DEFAULT_REPLICATE_PACKS;
    const maxLookups = opts.maxLookups ?? opts.maxChunks * 8;
    if (!Number.isInteger(maxPacks) || maxPacks < 1) throw new InvalidInputError(`replication batch of ${maxPacks} packs is not a positive integer`);
    if (!Number.isInteger(maxLookups) || maxLookups < 1) throw new InvalidInputError(`replication batch of ${maxLookups} chunk lookups is not a positive integer`);
    const packConcurrency = opts.packConcurrency ?? 4;
    const own = new Set(packs);
    /** Packs proven in the replica by this call. */
    const done = new Set<string>();
    const copyPacks = async (names: readonly string[]): Promise<void> => {
      await forEachLimit(names, packConcurrency, async (name) => {
        const pack = await catalog.getPack(db, name);
        if (!pack) throw new NotFoundError(`pack ${name} of snapshot ${manifest.snapshotId} is not recorded in the catalog of database ${db}`);
        const r = await replicatePack(primary, replica, pack, { region: opts.region });
        if (r.copied) copiedPacks++;
      });
      for (const n of names) done.add(n);
    };
    let packCalls = 0;
    // 1. Its own packs, a group at a time.
    const packEnd = Math.min(packs.length, opts.cursor + maxPacks);
    while (cursor < packEnd) {
      const part = packs.slice(cursor, Math.min(packEnd, cursor + packConcurrency));
      await copyPacks(part);
      packCalls += part.length;
      cursor += part.length;
      if (overBudget()) break;
    }
    // 2. Its reused chunks: where each lives, from the pack the manifest names for it when that pack is recorded, not
    // repacked, and its index holds the chunk as the manifest describes it (the primary's index, read once per pack and
    // kept: no catalog read per chunk); else from the chunk's catalog record.
    const indexes = manifest.reusedPacks === undefined ? undefined : new PackIndexCache(catalog, primary.store, primary.bucket, db);
    const inNamedPack = async (c: UniqueChunk): Promise<string | undefined> => {
      const name = namedPackOf(c, manifest);
      if (name === undefined || indexes === undefined) return undefined;
      return (await indexes.holding(name, c)) === undefined ? undefined : name;
    };
    let lookups = 0;
    let objects = 0;
    while (cursor >= packs.length && cursor < chunkEnd && packCalls < maxPacks && lookups < maxLookups && objects < opts.maxChunks && !overBudget()) {
      const from = cursor - packs.length;
      const take = Math.min(LOOKUP_GROUP, maxLookups - lookups);
      let to = from;
      const reused: string[] = [];
      const named = new Map<string, string>();
      while (to < chunks.length && reused.length < take && to - from < LOOKUP_GROUP * 8) {
        const c = await chunks.at(to);
        if (c !== undefined && !c.new) {
          const name = await inNamedPack(c);
          if (name !== undefined) named.set(c.sha256, name);
          else reused.push(c.sha256);
        }
        to++;
      }
      const found = new Map<string, ChunkItem>((reused.length === 0 ? [] : await catalog.getChunks(db, reused)).map((c) => [c.sha256, c]));
      lookups += reused.length;
      const toPacks: string[] = [];
      const toObjects: ChunkItem[] = [];
      let stop = to;
      for (let i = from; i < to; i++) {
        const c = await chunks.at(i);
        if (c === undefined || c.new) continue; // a repeat on its page, or uploaded with this snapshot: in its own packs
        const inPack = named.get(c.sha256);
        if (inPack !== undefined) {
          if (own.has(inPack) || done.has(inPack) || toPacks.includes(inPack)) continue;
          if (packCalls + toPacks.length >= maxPacks) {
            stop = i;
            break;
          }
          toPacks.push(inPack);
          continue;
        }
        const item = found.get(c.sha256);
        if (!item) throw new NotFoundError(`chunk ${c.sha256} of snapshot ${manifest.snapshotId} is not recorded in the catalog of database ${db}`);
        if (item.offset === undefined) {
          if (objects + toObjects.length >= opts.maxChunks) {
            stop = i;
            break;
          }
          toObjects.push(item);
          continue;
        }
        const name = recordedPackOf(db, item);
        if (own.has(name) || done.has(name) || toPacks.includes(name)) continue;
        if (packCalls + toPacks.length >= maxPacks) {
          stop = i;
          break;
        }
        toPacks.push(name);
      }
      await copyPacks(toPacks);
      packCalls += toPacks.length;
      await forEachLimit(toObjects, concurrency, (item) => copyChunkObject(item.vaultKey, item));
      objects += toObjects.length;
      cursor = packs.length + stop;
    }
  }
  // Format 2: its pages (each proven against the header's digest), after every chunk, before the header.
  if (cursor >= chunkEnd && !overBudget()) {
    const end = Math.min(positions, cursor + opts.maxChunks);
    const part = pages.slice(cursor - chunkEnd, end - chunkEnd);
    await forEachLimit(part, concurrency, async (ref, i) => {
      // A page the header carries (PageRef.text) is copied with the header.
      if (ref.text !== undefined) return;
      await replicateObject(primary, replica, snapshotPageKey(manifestKey, cursor - chunkEnd + i), { sha256: ref.sha256, size: ref.bytes }, { region: opts.region });
    });
    cursor = end;
  }
  const counts = {
    chunks: chunks.length,
    copiedChunks: copied,
    ...(packs === undefined ? (copiedPacks === 0 ? {} : { copiedPacks }) : { packs: packs.length, copiedPacks }),
    ...(pages.length === 0 ? {} : { pages: pages.length }),
  };
  if (cursor < positions) return { done: false, cursor, ...counts };
  const m = await replicateObject(primary, replica, manifestKey, { sha256: manifestSha256, size: raw.length }, { region: opts.region });
  return { done: true, cursor, ...counts, manifest: m };
}

/**
 * A manifest's chunk positions, read a page at a time: format 1, its
 * distinct chunks; format 2, its chunk references in page order (the header's
 * per-page counts place a position on its page without reading the others),
 * a repeat of a chunk earlier on the same page answered `undefined` (nothing
 * to copy). Holds one page.
 */
interface ChunkPositions {
  readonly length: number;
  at(i: number): Promise<UniqueChunk | undefined>;
  /** The chunks of positions [from, to), repeats left out. */
  slice(from: number, to: number): Promise<UniqueChunk[]>;
}

function chunkRefsOf(primary: VaultRef, manifestKey: string, raw: Uint8Array): { manifest: SnapshotHeader; chunks: ChunkPositions; pages: PagedManifestHeader["pages"] } {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8"));
  } catch {
    json = undefined;
  }
  if (manifestFormatOf(json) !== 2) {
    const { manifest, chunks } = json === undefined ? parseManifest(raw) : validateManifest(json);
    return {
      manifest,
      chunks: { length: chunks.length, at: async (i) => chunks[i], slice: async (from, to) => chunks.slice(from, to) },
      pages: [],
    };
  }
  const header = validatePagedHeader(json);
  const starts: number[] = [];
  let total = 0;
  for (const p of header.pages) {
    starts.push(total);
    total += p.chunks;
  }
  const objects = new StoreManifestObjects(primary.store, primary.bucket);
  let current: { index: number; refs: (UniqueChunk | undefined)[] } | undefined;
  const at = async (i: number): Promise<UniqueChunk | undefined> => {
    if (i < 0 || i >= total) return undefined;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    if (current?.index !== lo) {
      const key = snapshotPageKey(manifestKey, lo);
      const body = inlinePageBytes(header.pages[lo]!) ?? (await objects.get(key, Math.min(header.pages[lo]!.bytes, MAX_PAGE_BYTES)));
      if (body === undefined) throw new NotFoundError(`page ${key} of snapshot manifest ${manifestKey} is missing in the primary vault`);
      const { page, chunks } = parsePage(header, lo, body);
      const byHash = new Map(chunks.map((c) => [c.sha256, c]));
      const refs: (UniqueChunk | undefined)[] = [];
      for (const e of page.entries) {
        if (e.type !== "file") continue;
        for (const c of e.chunks) {
          refs.push(byHash.get(c.sha256));
          byHash.delete(c.sha256);
        }
      }
      current = { index: lo, refs };
    }
    return current.refs[i - starts[lo]!];
  };
  return {
    manifest: header,
    chunks: {
      length: total,
      at,
      async slice(from, to) {
        const out: UniqueChunk[] = [];
        for (let i = from; i < to; i++) {
          const c = await at(i);
          if (c !== undefined) out.push(c);
        }
        return out;
      },
    },
    pages: header.pages,
  };
}

/** The pack a chunk record in a pack (`offset` set) names; InvalidInputError when its key is not one of the database's packs. */
function recordedPackOf(databaseId: string, item: ChunkItem): string {
  const name = packNameOfKey(item.vaultKey);
  let key: string | undefined;
  try {
    key = vaultPackKey(databaseId, name);
  } catch {
    key = undefined;
  }
  if (key !== item.vaultKey) {
    throw new InvalidInputError(`chunk ${item.sha256} is recorded at offset ${item.offset} of ${item.vaultKey}, which is not a pack of database ${databaseId}`);
  }
  return name;
}
