/**
 * Snapshot ingest of a format-2 manifest (core/manifest-pages.ts,
 * docs/snapshots.md "Manifest format 2: pages"): the steps that read pages
 * take them a page at a time, for a bounded budget per invocation, and carry
 * a small cursor in the workflow state; the workflow calls them again until
 * they answer `done` (statemachines/snapshot-ingest.asl.json).
 *
 *  - ValidatePages (validatePages): the pages in order through the
 *    incremental validator (validatePage, then finishPagedValidation after
 *    the last); an unpacked push's reused chunks must be in the catalog
 *    (one missingChunks call per page, as format 1 does for the whole
 *    manifest; a packed push's are read once, by CheckReferenced:
 *    validate-manifest.ts says why), but those that name the pack the push
 *    found them in (`reusedPack`): CheckReferenced checks them against that
 *    pack's index, reading their records only when it does not hold them;
 *    each page's new chunks (unpacked
 *    pushes) are appended to work/ batch
 *    objects of pagedBatchSize(totals.newChunks) chunks, so that the Map has
 *    at most MAX_BATCHES items, bare indexes. The batch being filled when an
 *    invocation stops is written as it is and read back by the next one: the
 *    state holds its index and fill, never chunk lists.
 *  - CheckReferenced and PromoteManifest loop over pages the same way
 *    (check-referenced.ts, promote-manifest.ts).
 *
 * A budget is at most WALVAULT_INGEST_PAGES pages (default
 * PAGES_PER_INVOCATION) and, after the first page, stops once
 * BUDGET_FRACTION of the step's Lambda timeout is spent. Every page read is
 * checked against the header's length and SHA-256 first (the header is
 * re-read and must be the bytes ValidateManifest proved), so a page changed
 * after validation is refused wherever it is read again. Errors about a page
 * name its key.
 *
 * The functions taking a PagedIngestIO do no I/O of their own (unit-tested
 * with the in-memory stores).
 */
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { ManifestInvalidError, NotFoundError, SegmentConflictError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey } from "../../core/keys.js";
import {
  finishPagedValidation,
  manifestFormatOf,
  startPagedValidation,
  validatePage,
  validatePagedHeader,
  type PagedManifestHeader,
  type PagedValidationState,
} from "../../core/manifest-pages.js";
import type { SnapshotManifest } from "../../core/snapshot.js";
import type { Catalog } from "../../store/catalog.js";
import { readPageObject, type ManifestObjects } from "../../store/manifest-pages.js";
import type { WorkObjects } from "../../store/work-objects.js";
import type { Deps } from "../deps.js";
import { BATCH_CHUNKS, MAX_BATCHES, batchFileSchema, batchKey, filesUsing, missingChunksError, type BatchChunk, type BatchFile, type ValidatedSnapshot } from "./common.js";

/** Pages one invocation of a paged step takes at most (WALVAULT_INGEST_PAGES overrides it). */
export const PAGES_PER_INVOCATION = 16;
/**
 * A paged step stops taking pages once this share of its Lambda timeout is
 * spent: with the page it is on, it ends under half its timeout (what
 * bench:scale requires of every step, and the margin for a slower run)
 * while a page takes under a fifth of it.
 */
export const BUDGET_FRACTION = 0.3;

export interface PageBudget {
  maxPages: number;
  /** Time (now()'s clock, ms) after which no further page is started; the first page always is. */
  deadline: number;
  now(): number;
}

/** The budget of one invocation of a step with `timeoutSeconds`. */
export function pageBudget(timeoutSeconds: number, env: NodeJS.ProcessEnv = process.env, now: () => number = Date.now): PageBudget {
  const v = Number(env.WALVAULT_INGEST_PAGES);
  const maxPages = Number.isSafeInteger(v) && v > 0 ? v : PAGES_PER_INVOCATION;
  return { maxPages, deadline: now() + timeoutSeconds * 1000 * BUDGET_FRACTION, now };
}

/** Whether a budget that has taken `taken` pages may start another. */
export function mayTakePage(budget: PageBudget, taken: number): boolean {
  return taken === 0 || (taken < budget.maxPages && budget.now() < budget.deadline);
}

/** Chunks per work/ batch of a paged manifest: at most MAX_BATCHES batches over all its new chunks. */
export function pagedBatchSize(newChunks: number): number {
  return Math.max(BATCH_CHUNKS, Math.ceil(newChunks / MAX_BATCHES));
}

/** A page's errors name its object. */
export function pageError(e: unknown, key: string): unknown {
  if (e instanceof ManifestInvalidError && !e.message.includes(key)) {
    return new ManifestInvalidError(`page object ${key}: ${e.message}`, { ...(e.field === undefined ? {} : { field: e.field }), cause: e });
  }
  return e;
}

/** Page `index` of the manifest at `manifestKey` (store/manifest-pages.ts readPageObject), the store's errors naming the page's key. */
export async function readPage(objects: ManifestObjects, manifestKey: string, header: PagedManifestHeader, index: number): Promise<{ key: string; body: Uint8Array }> {
  try {
    return await readPageObject(objects, manifestKey, header.pages, index);
  } catch (e) {
    throw pageError(e, snapshotPageKey(manifestKey, index));
  }
}

/** Page `index` read (readPage) and passed to `check` (parsePage or validatePage), whose errors then name the page's key. */
export async function readCheckedPage<T>(
  objects: ManifestObjects,
  manifestKey: string,
  header: PagedManifestHeader,
  index: number,
  check: (body: Uint8Array) => T,
): Promise<T> {
  const { key, body } = await readPage(objects, manifestKey, header, index);
  try {
    return check(body);
  } catch (e) {
    throw pageError(e, key);
  }
}

/** The header as format 1's manifest type without files (what snapshotSummary and checkBackupLabel read). */
export function headerAsManifest(header: PagedManifestHeader): SnapshotManifest {
  const { pages: _p, formatVersion: _v, ...rest } = header;
  return { ...rest, formatVersion: 1, files: [] } as unknown as SnapshotManifest;
}

/**
 * Reads the manifest (header) again from incoming: its stored bytes must be
 * exactly what ValidateManifest proved (an agent can overwrite its incoming
 * key at any time), then it is validated again against the snapshot's ids.
 */
export async function rereadPagedHeader(deps: Deps, snapshot: ValidatedSnapshot): Promise<PagedManifestHeader> {
  return (await rereadPagedManifest(deps, snapshot)).header;
}

/** rereadPagedHeader, with the header object's bytes as stored. */
export async function rereadPagedManifest(deps: Deps, snapshot: ValidatedSnapshot): Promise<{ body: Buffer; header: PagedManifestHeader }> {
  const { bucket, key, versionId } = snapshot.incoming;
  const obj = await deps.incoming.get(bucket, key, versionId);
  if (!obj) throw new NotFoundError(`manifest ${key} disappeared after validation`);
  if (sha256Hex(obj.body) !== snapshot.manifest.encodedSha256) throw new SegmentConflictError(`manifest ${key} changed after validation; not promoted`);
  const raw = await decodeWith(snapshot.manifest.codec, obj.body, `manifest ${key}`, snapshot.manifest.size);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString("utf8"));
  } catch (cause) {
    throw new ManifestInvalidError(`snapshot manifest ${key} is not JSON`, { field: "(top level)", cause });
  }
  if (manifestFormatOf(json) !== 2) throw new SegmentConflictError(`manifest ${key} is no longer a paged manifest; not promoted`);
  return { body: obj.body, header: validatePagedHeader(json, { databaseId: snapshot.databaseId, snapshotId: snapshot.snapshotId }) };
}

// ---------------------------------------------------------------------------
// ValidatePages

/** What ValidatePages carries between invocations: the validator's state (a few hundred bytes) and the batch being filled. */
export interface PagedProgress {
  validation: PagedValidationState;
  /** The work/ batch being filled: its index and how many chunks it holds so far (written when the last invocation stopped). */
  batch: { index: number; filled: number };
  done: boolean;
}

export const pagedProgressSchema = z.object({
  validation: z.object({ next: z.number().int().nonnegative() }).passthrough(),
  batch: z.object({ index: z.number().int().nonnegative(), filled: z.number().int().nonnegative() }),
  done: z.boolean(),
});

export function startPagedProgress(): PagedProgress {
  return { validation: startPagedValidation(), batch: { index: 0, filled: 0 }, done: false };
}

export interface PagedIngestIO {
  /** The bucket the pages are in (incoming). */
  pages: ManifestObjects;
  /** Where batches go (the incoming bucket's work/). */
  work: WorkObjects;
  catalog: Pick<Catalog, "missingChunks">;
}

export interface PagedSnapshotRef {
  databaseId: string;
  snapshotId: string;
  /** Incoming key of the header: the pages are beside it. */
  manifestKey: string;
  /** The header's SHA-256 (batch objects are bound to it). */
  manifestSha256: string;
  /** Prefix of the work/ batch objects (batchesPrefix). */
  batchesPrefix: string;
  /** A packed push: new chunks arrive in packs (batched from the header's pack list), none are batched here. */
  packed: boolean;
}

async function readPendingBatch(work: WorkObjects, ref: PagedSnapshotRef, batch: { index: number; filled: number }): Promise<BatchChunk[]> {
  if (batch.filled === 0) return [];
  const key = batchKey(ref.batchesPrefix, batch.index);
  const v = await work.get(key);
  if (v === undefined) throw new NotFoundError(`batch object ${key} of snapshot ${ref.snapshotId} is missing (work/ objects expire a day after they are written)`);
  const file = batchFileSchema.parse(v);
  // A retried invocation may have filled it further: its first `filled` chunks are what the pages before gave (the same pages, the same chunks).
  if (file.manifestSha256 !== ref.manifestSha256 || file.index !== batch.index || file.chunks.length < batch.filled) {
    throw new SegmentConflictError(`batch object ${key} is not the batch this validation left (${batch.filled} chunk(s) of manifest ${ref.manifestSha256.slice(0, 12)}…)`);
  }
  return file.chunks.slice(0, batch.filled);
}

async function writeBatch(work: WorkObjects, ref: PagedSnapshotRef, index: number, chunks: BatchChunk[]): Promise<void> {
  const file: BatchFile = { databaseId: ref.databaseId, snapshotId: ref.snapshotId, manifestSha256: ref.manifestSha256, index, chunks };
  await work.put(batchKey(ref.batchesPrefix, index), file);
}

/**
 * Validates pages from `progress.validation.next` for one budget (see the
 * module comment). Returns the progress to carry; once done, `batchCount`
 * work/ batch objects 0..batchCount-1 hold every new chunk (unpacked pushes;
 * 0 for packed ones). Throws ManifestInvalidError / UnsafePathError (naming
 * the page and its key), NotFoundError (a reused chunk not in the catalog,
 * naming it and a file using it).
 */
export async function validatePages(
  io: PagedIngestIO,
  header: PagedManifestHeader,
  ref: PagedSnapshotRef,
  progress: PagedProgress,
  budget: PageBudget,
): Promise<{ progress: PagedProgress; batchCount?: number }> {
  if (progress.done) return { progress, batchCount: progress.batch.index };
  const perBatch = pagedBatchSize(header.totals.newChunks);
  let state = progress.validation;
  let index = progress.batch.index;
  let pending = await readPendingBatch(io.work, ref, progress.batch);
  for (let taken = 0; state.next < header.pages.length && mayTakePage(budget, taken); taken++) {
    const v = await readCheckedPage(io.pages, ref.manifestKey, header, state.next, (body) => validatePage(header, state, body));
    const files = { databaseId: ref.databaseId, snapshotId: ref.snapshotId, files: v.page.entries };
    if (!ref.packed) {
      // Chunks taken as already stored must be in the catalog: refused before any chunk object is promoted.
      // (Those that name their pack: by CheckReferenced, against the pack's index.)
      const reused = v.chunks.filter((c) => !c.new && c.reusedPack === undefined).map((c) => c.sha256);
      const missing = reused.length > 0 ? await io.catalog.missingChunks(ref.databaseId, reused) : [];
      if (missing.length > 0) throw missingChunksError(files, missing, new Set());
      const fresh = v.chunks.filter((c) => c.new);
      const using = filesUsing(files, fresh.map((c) => c.sha256));
      for (const c of fresh) {
        pending.push({ sha256: c.sha256, size: c.size, storedSize: c.storedSize, codec: c.codec, file: using.get(c.sha256) ?? "?" });
        if (pending.length === perBatch) {
          await writeBatch(io.work, ref, index++, pending);
          pending = [];
        }
      }
    }
    state = v.state;
  }
  if (state.next < header.pages.length) {
    if (pending.length > 0) await writeBatch(io.work, ref, index, pending);
    return { progress: { validation: state, batch: { index, filled: pending.length }, done: false } };
  }
  finishPagedValidation(header, state);
  if (pending.length > 0) await writeBatch(io.work, ref, index++, pending);
  return { progress: { validation: state, batch: { index, filled: 0 }, done: true }, batchCount: index };
}
