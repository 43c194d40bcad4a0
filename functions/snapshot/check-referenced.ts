/**
 * Snapshot ingest step 3 — CheckReferenced: every chunk the manifest
 * references is in the vault, so the snapshot can be restored.
 * Input: { snapshot: ValidatedSnapshot, progress? }. Output: { uniqueChunks, checkedBackupLabel, next, done }.
 *
 * The manifest is read again from incoming (its stored bytes must be exactly
 * the ones ValidateManifest proved) and every distinct chunk it references is
 * looked up in the catalog once (getChunks, in batches of
 * CHECK_RECORDS_BATCH, never one call per chunk; the checks below use the
 * same read): chunk records are written only after their vault object, so a
 * record means the bytes are there. Anything missing fails the step naming
 * the chunk and a file that uses it.
 *
 * Reused chunks stored in a pack (their record has an offset): the pack's
 * record must exist, and a pack marked as a retention deletion candidate is
 * unmarked (checkPacksOf; docs/retention.md "Packs"). Retention deletes a
 * pack only by a conditional delete on the mark it read, after a grace
 * period: if it deleted the pack first, the record is missing here and the
 * snapshot is refused; if this step unmarked it first, retention's delete
 * fails and the pack stays. Either way no snapshot is recorded with a chunk
 * whose pack is gone, whatever produced the manifest (an unpacked push may
 * reuse packed chunks).
 *
 * A packed push (manifest `packs`): a new chunk names its pack (`pack`,
 * the index in `packs`) and is checked against that pack (checkInPacks):
 * the pack's record must exist, and its index must hold the chunk with the
 * manifest's sizes and codec. PromotePacks writes a pack's record only
 * after its object, and no record per chunk (docs/packs.md, "Step 3"): one
 * ranged read of each pack's index per invocation, no catalog read per
 * chunk. A new chunk naming no pack (a manifest of an agent from before
 * references named their pack) is refused, saying to upgrade the agent:
 * nothing records where it is (unnamedNewChunkError).
 * Never by a repacked pack (its record has `repackedAt`: a repack copied
 * its live chunks out, and the sweep no longer keeps it for what its index
 * lists, docs/packs.md "The sweep tallies packs from their indexes"): such
 * a chunk is checked by its record instead, as a reused chunk is, the pack
 * its record names kept as for reused chunks (checkPacksOf).
 *
 * A reused chunk that names the pack the push found it in (format 2's
 * `reusedPack`, an index in `reusedPacks`) is accepted by that pack the same
 * way (checkReusedInPacks), without reading its record: the pack is
 * recorded, not repacked, unmarked if retention had marked it, and its index
 * holds the chunk with the manifest's sizes and codec. The sweep keeps such
 * a pack while a kept snapshot references a chunk its index lists, and a
 * repack copies every such chunk out and records it (docs/packs.md "Step 2,
 * second part"), so the pack is as safe a home as the record's. The name is
 * a hint: a pack not recorded, repacked, unreadable or not holding the chunk
 * so sends the check to the chunk's record, as before (one read per chunk
 * then, in batches). At 100 GB an incremental snapshot's ~780,000 reused
 * chunks cost ~200 pack records and index reads instead of as many chunk
 * reads.
 *
 * PostgreSQL: the backup_label file is rebuilt from its chunks in the vault
 * (each read from the pack its reference names when that pack's index holds
 * it so, else where its catalog record says: its own object, or a range of
 * a pack; each verified) and its fields must agree with the manifest's postgres
 * section (checkBackupLabel), so a restore never starts recovery from a label
 * the catalog contradicts.
 *
 * Format 2 (`snapshot.paged`): the same, page by page from `progress.next`,
 * one budget per invocation (functions/snapshot/pages.ts); each page is read
 * again from incoming and checked against the header's digest before use.
 * Input { snapshot, progress? }; output { uniqueChunks, checkedBackupLabel,
 * next, done } (format 1: done at once), which the workflow passes back in
 * as `progress` until done.
 */
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, ManifestInvalidError, NotFoundError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { packNameOfKey, vaultChunkKey } from "../../core/keys.js";
import { parsePage, type PageEntry } from "../../core/manifest-pages.js";
import { checkBackupLabel, type ChunkRecord, type PostgresSnapshotManifest, type UniqueChunk } from "../../core/snapshot.js";
import { stepsOf } from "../../core/workflows.js";
import { StoreManifestObjects } from "../../store/manifest-pages.js";
import { PackIndexCache } from "../../store/pack-index.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import type { Catalog } from "../../store/catalog.js";
import type { ChunkItem, PackItem } from "../../core/schemas.js";
import type { PackEntry } from "../../core/pack.js";
import { filesUsing, missingChunksError, rereadManifest, validatedSnapshotSchema, type ManifestFiles, type ValidatedSnapshot } from "./common.js";
import { headerAsManifest, mayTakePage, pageBudget, readCheckedPage, rereadPagedHeader } from "./pages.js";
import { lambdaHandler } from "../observability.js";

/** backup_label is a few hundred bytes; anything this large is not one. */
const MAX_BACKUP_LABEL_BYTES = 64 * 1024;

/** Where a chunk's stored bytes are: its own object, or `storedSize` bytes at `offset` of a pack. */
type ChunkPlace = Pick<ChunkItem, "vaultKey" | "offset" | "storedSize">;

/**
 * Rebuilds backup_label from its chunks in the vault. `named`: where the
 * pack its reference names holds a chunk (undefined when it names none or
 * the pack does not hold it so); the others by their catalog records.
 */
async function readBackupLabel(deps: Deps, databaseId: string, entry: PageEntry | undefined, named?: (c: ChunkRecord) => Promise<ChunkPlace | undefined>): Promise<string> {
  if (entry?.type !== "file") throw new ManifestInvalidError("snapshot manifest files: backup_label is missing", { field: "files" });
  if (entry.size > MAX_BACKUP_LABEL_BYTES) {
    throw new ManifestInvalidError(`snapshot manifest backup_label: ${entry.size} bytes is not a backup_label file`, { field: "backup_label" });
  }
  const parts: Buffer[] = [];
  // Where each chunk is stored: in the pack its reference names, else where its catalog record says (its own object, or a range of a pack).
  const places = new Map<string, ChunkPlace>();
  for (const c of entry.chunks) {
    const place = named === undefined ? undefined : await named(c);
    if (place !== undefined) places.set(c.sha256, place);
  }
  const unplaced = [...new Set(entry.chunks.map((c) => c.sha256))].filter((h) => !places.has(h));
  if (unplaced.length > 0) for (const r of await deps.catalog.getChunks(databaseId, unplaced)) places.set(r.sha256, r);
  for (const c of entry.chunks) {
    const rec = places.get(c.sha256);
    const key = rec?.vaultKey ?? vaultChunkKey(databaseId, c.sha256);
    const inPack = rec?.offset !== undefined;
    const where = inPack ? `bytes ${rec.offset}-${rec.offset! + rec.storedSize - 1} of vault object ${key}` : `vault object ${key}`;
    const body = inPack
      ? await deps.vault.getRange(deps.vaultBucket, key, rec.offset!, rec.offset! + rec.storedSize - 1)
      : (await deps.vault.get(deps.vaultBucket, key))?.body;
    if (!body) throw new NotFoundError(`chunk ${c.sha256} of backup_label is missing from the vault (${key})`);
    const raw = await decodeWith(c.codec, body, where, c.size);
    if (raw.length !== c.size || sha256Hex(raw) !== c.sha256) {
      throw new ChecksumMismatchError(`${where} (a chunk of backup_label) does not hash to its name`);
    }
    parts.push(raw);
  }
  const whole = Buffer.concat(parts);
  // Each chunk was checked above; the whole file's SHA-256 too where the manifest records one (it does for a backup_label of one chunk).
  if (entry.sha256 !== undefined && sha256Hex(whole) !== entry.sha256) {
    throw new ChecksumMismatchError(`backup_label rebuilt from its chunks does not have the SHA-256 the manifest records`);
  }
  return whole.toString("utf8");
}

/** Chunk records read per catalog call while checking a packed push (bounded, whatever the manifest's size). */
export const CHECK_RECORDS_BATCH = 1000;

/**
 * A packed push's new chunk whose pack was repacked before the snapshot was
 * recorded (checkInPacks sends it here): the repack recorded it at its copy,
 * so it must be recorded with the manifest's size, stored size and codec (a
 * restore reads the record's bytes and decodes them as the manifest says).
 */
function checkPackedRecord(manifest: ManifestFiles, c: UniqueChunk, r: ChunkItem): void {
  if (r.size === c.size && r.storedSize === c.storedSize && r.codec === c.codec) return;
  const file = filesUsing(manifest, [c.sha256]).get(c.sha256) ?? "?";
  throw new ChecksumMismatchError(
    `snapshot ${manifest.snapshotId}: chunk ${c.sha256} used by file ${JSON.stringify(file)} is recorded as ${r.size} bytes, ${r.storedSize} stored, codec ${r.codec}` +
      `${r.offset === undefined ? "" : ` (at byte ${r.offset} of ${r.vaultKey})`}, but the manifest records ${c.size} bytes, ${c.storedSize} stored, codec ${c.codec}`,
  );
}

/** Whether a pack a snapshot uses is still there: recorded, not condemned, and unmarked now if retention had marked it (false: retention's delete came first). */
async function packStillThere(catalog: Catalog, databaseId: string, pack: PackItem | undefined): Promise<boolean> {
  return pack !== undefined && pack.deletingAt === undefined && (pack.orphanedAt === undefined || (await catalog.clearPackOrphaned(databaseId, pack.name)));
}

/**
 * Reused chunks that live in a pack (`records`: theirs): each pack's record
 * must exist (else NotFoundError, as for a missing chunk, naming the chunk, a
 * file using it and the pack), and a pack marked for deletion is unmarked so
 * that retention's conditional delete fails.
 */
async function checkPacksOf(catalog: Catalog, manifest: ManifestFiles, records: readonly ChunkItem[]): Promise<void> {
  const databaseId = manifest.databaseId;
  const chunkOf = new Map(records.filter((r) => r.offset !== undefined).map((r) => [r.vaultKey, r.sha256]));
  if (chunkOf.size === 0) return;
  const names = [...chunkOf.keys()].map(packNameOfKey);
  const packs = new Map((await catalog.getPacks(databaseId, names)).map((p) => [p.vaultKey, p]));
  for (const [vaultKey, sha] of chunkOf) {
    if (!(await packStillThere(catalog, databaseId, packs.get(vaultKey)))) {
      const file = filesUsing(manifest, [sha]).get(sha) ?? "?";
      throw new NotFoundError(
        `snapshot ${manifest.snapshotId} of database ${databaseId}: chunk ${sha} used by file ${JSON.stringify(file)} is not in the vault: ` +
          `it is recorded in pack ${vaultKey}, which retention has deleted (the next push uploads it again)`,
      );
    }
  }
}

/** The reused chunks' packs (checkPacksOf), their records read in batches of CHECK_RECORDS_BATCH. */
export async function checkReusedPacks(catalog: Catalog, manifest: ManifestFiles, reused: readonly UniqueChunk[]): Promise<void> {
  for (let i = 0; i < reused.length; i += CHECK_RECORDS_BATCH) {
    await checkPacksOf(catalog, manifest, await catalog.getChunks(manifest.databaseId, reused.slice(i, i + CHECK_RECORDS_BATCH).map((c) => c.sha256)));
  }
}

/**
 * Every check of the chunks `files` reference (a whole format-1 manifest, or
 * one page), each chunk's record read once, in batches of
 * CHECK_RECORDS_BATCH: a chunk without one is missing (chunk records are
 * written only after their bytes are in the vault); a reused chunk's pack
 * must still be there (checkPacksOf); a packed push's new chunk in a
 * repacked pack must be recorded as the manifest says (checkPackedRecord).
 * New chunks checked against their packs (checkInPacks) and reused ones
 * their named pack vouches for (checkReusedInPacks) read no record.
 */
async function checkChunks(deps: PackDeps, files: ManifestFiles, allChunks: readonly UniqueChunk[], packs: PackIndexes | undefined, reusedPacks?: PackIndexes): Promise<void> {
  const packed = packs !== undefined;
  // A packed push's new chunks that name their pack are checked against it, reused ones that name one too; the rest by their records.
  const inPacks: UniqueChunk[] = [];
  const reusedIn: UniqueChunk[] = [];
  const chunks: UniqueChunk[] = [];
  for (const c of allChunks) {
    if (packed && c.new && c.pack === undefined) throw unnamedNewChunkError(files, c);
    if (packed && c.new && c.pack !== undefined) inPacks.push(c);
    else if (reusedPacks !== undefined && !c.new && c.reusedPack !== undefined) reusedIn.push(c);
    else chunks.push(c);
  }
  // Those whose pack is repacked are checked by their records, their packs as reused chunks' are.
  const byRecord = new Set(inPacks.length > 0 ? await checkInPacks(files, inPacks, packs!) : []);
  for (const c of inPacks) if (byRecord.has(c.sha256)) chunks.push(c);
  // Reused chunks their named pack does not vouch for: by their records, as before.
  const notInNamed = new Set(reusedIn.length > 0 ? await checkReusedInPacks(reusedIn, reusedPacks!) : []);
  for (const c of reusedIn) if (notInNamed.has(c.sha256)) chunks.push(c);
  for (let i = 0; i < chunks.length; i += CHECK_RECORDS_BATCH) {
    const slice = chunks.slice(i, i + CHECK_RECORDS_BATCH);
    const records = new Map((await deps.catalog.getChunks(files.databaseId, slice.map((c) => c.sha256))).map((r) => [r.sha256, r]));
    const missing = slice.filter((c) => !records.has(c.sha256)).map((c) => c.sha256);
    if (missing.length > 0) throw missingChunksError(files, missing, new Set(slice.filter((c) => c.new).map((c) => c.sha256)));
    await checkPacksOf(deps.catalog, files, slice.filter((c) => !c.new || byRecord.has(c.sha256)).map((c) => records.get(c.sha256)!));
    if (packed) for (const c of slice) if (c.new) checkPackedRecord(files, c, records.get(c.sha256)!);
  }
}

/**
 * A packed push's new chunk that names no pack: written by an agent from
 * before references named their pack, when PromotePacks still recorded every
 * chunk. Nothing records where it is now (docs/packs.md, "Step 3"), so the
 * manifest is refused, saying what to do.
 */
function unnamedNewChunkError(files: ManifestFiles, c: UniqueChunk): ManifestInvalidError {
  const file = filesUsing(files, [c.sha256]).get(c.sha256) ?? "?";
  return new ManifestInvalidError(
    `snapshot ${files.snapshotId} of database ${files.databaseId}: chunk ${c.sha256} used by file ${JSON.stringify(file)} is flagged new but names no pack: ` +
      `the manifest was written by an older walvault agent, whose packed pushes this control plane no longer accepts; upgrade walvault on the database host and push again`,
    { field: "files" },
  );
}

/** What checking chunks needs: the catalog and the vault. */
type PackDeps = Pick<Deps, "catalog" | "vault" | "vaultBucket">;

/**
 * A packed push's chunks (`chunks`: distinct, of `files`; `packNames`: the
 * manifest's `packs`) checked as CheckReferenced checks them (checkChunks),
 * for callers that hold them already (tests of the sweep's side of the
 * protocol).
 */
export async function checkPackedChunks(deps: PackDeps, files: ManifestFiles, chunks: readonly UniqueChunk[], packNames: readonly string[], reusedPackNames?: readonly string[]): Promise<void> {
  const reused = reusedPackNames === undefined ? undefined : new PackIndexes(deps, files.databaseId, reusedPackNames, "reusedPacks");
  await checkChunks(deps, files, chunks, new PackIndexes(deps, files.databaseId, packNames), reused);
}

/**
 * The indexes of the packs a manifest names (its `packs`, or its
 * `reusedPacks`), read as needed and the last few kept for the invocation
 * (store/pack-index.ts). `names` is the manifest's list: a chunk's `pack`
 * (or `reusedPack`) is an index into it.
 */
class PackIndexes {
  private readonly cache: PackIndexCache;
  /** Packs found still there by this invocation (a retention mark cleared once, not once per page). */
  private readonly there = new Set<string>();
  constructor(
    private readonly deps: PackDeps,
    databaseId: string,
    readonly names: readonly string[],
    private readonly field: "packs" | "reusedPacks" = "packs",
  ) {
    this.cache = new PackIndexCache(deps.catalog, deps.vault, deps.vaultBucket, databaseId);
  }

  /** packStillThere, once per pack for the invocation (the cached record keeps the mark it was read with). */
  async stillThere(pack: PackItem): Promise<boolean> {
    if (this.there.has(pack.name)) return true;
    const there = await packStillThere(this.deps.catalog, pack.databaseId, pack);
    if (there) this.there.add(pack.name);
    return there;
  }

  /** Pack `i`'s name (a chunk naming one past the list: ManifestInvalidError; validation refuses it first). */
  name(i: number): string {
    const name = this.names[i];
    const what = this.field === "packs" ? "pack" : "reused pack";
    if (name === undefined) throw new ManifestInvalidError(`a chunk names ${what} ${i}, but the manifest lists ${this.names.length} ${what}(s)`, { field: this.field });
    return name;
  }

  /** Pack `i`'s record (undefined: not recorded) and index. */
  async get(i: number): Promise<{ pack: PackItem; entries: Map<string, PackEntry> } | undefined> {
    const read = await this.cache.get(this.name(i));
    if (!read) return undefined;
    if (!read.entries) throw new NotFoundError(`pack ${read.pack.vaultKey} is recorded but missing from the vault`);
    return { pack: read.pack, entries: read.entries };
  }

  /** Where pack `i` holds `chunk` as the manifest describes it, not repacked (PackIndexCache.holding); undefined otherwise: for a hint. */
  holding(i: number, chunk: Pick<UniqueChunk, "sha256" | "size" | "storedSize" | "codec">): Promise<{ pack: PackItem; entry: PackEntry } | undefined> {
    return this.cache.holding(this.name(i), chunk);
  }

  /** holding for many chunks of pack `i`: the pack read once, each chunk then looked up synchronously (PackIndexCache.holder). */
  holder(i: number): ReturnType<PackIndexCache["holder"]> {
    return this.cache.holder(this.name(i));
  }
}

/** Chunks by the index of the pack they name (`key`), in first-seen order. */
function byPackIndex(chunks: readonly UniqueChunk[], key: (c: UniqueChunk) => number): Map<number, UniqueChunk[]> {
  const by = new Map<number, UniqueChunk[]>();
  for (const c of chunks) {
    const list = by.get(key(c));
    if (list) list.push(c);
    else by.set(key(c), [c]);
  }
  return by;
}

/**
 * Reused chunks that name the pack the push found them in: accepted when
 * that pack is recorded, not repacked, still there (unmarked if retention
 * had marked it) and its index holds the chunk with the manifest's sizes and
 * codec. Resolves the hashes it does not vouch for (the name is a hint):
 * their records decide, as for any reused chunk.
 */
async function checkReusedInPacks(chunks: readonly UniqueChunk[], packs: PackIndexes): Promise<string[]> {
  const byRecord: string[] = [];
  for (const [i, list] of byPackIndex(chunks, (c) => c.reusedPack!)) {
    let there: boolean | undefined;
    const holds = await packs.holder(i);
    for (const c of list) {
      const held = holds(c);
      if (held !== undefined && (there ??= await packs.stillThere(held.pack))) continue;
      byRecord.push(c.sha256);
    }
  }
  return byRecord;
}

/**
 * New chunks that name their pack: the pack is recorded (one marked by
 * retention is unmarked, as for reused chunks), and its index holds each
 * chunk with the manifest's size, stored size and codec. Else NotFoundError
 * (not promoted) or ChecksumMismatchError (another chunk than the manifest
 * says), naming the chunk, a file using it and the pack. Resolves the hashes
 * of those in a repacked pack, left unchecked and its mark untouched: their
 * records decide.
 */
async function checkInPacks(files: ManifestFiles, chunks: readonly UniqueChunk[], packs: PackIndexes): Promise<string[]> {
  const byRecord: string[] = [];
  const where = (c: UniqueChunk): string => {
    const file = filesUsing(files, [c.sha256]).get(c.sha256) ?? "?";
    return `snapshot ${files.snapshotId} of database ${files.databaseId}: chunk ${c.sha256} used by file ${JSON.stringify(file)}`;
  };
  for (const [i, list] of byPackIndex(chunks, (c) => c.pack!)) {
    const read = await packs.get(i);
    const name = packs.names[i]!;
    if (!read) throw new NotFoundError(`${where(list[0]!)} is not in the vault: it is flagged new in pack ${name}, which was not promoted`);
    if (read.pack.repackedAt !== undefined) {
      byRecord.push(...list.map((c) => c.sha256));
      continue;
    }
    if (!(await packs.stillThere(read.pack))) {
      throw new NotFoundError(`${where(list[0]!)} is not in the vault: it is in pack ${name}, which retention has deleted (the next push uploads it again)`);
    }
    for (const c of list) {
      const e = read.entries.get(c.sha256);
      if (!e) throw new NotFoundError(`${where(c)} is not in the vault: the manifest places it in pack ${name}, whose index does not hold it`);
      if (e.rawSize !== c.size || e.storedLength !== c.storedSize || e.codec !== c.codec) {
        throw new ChecksumMismatchError(
          `${where(c)} is held by pack ${name} as ${e.rawSize} bytes, ${e.storedLength} stored, codec ${e.codec}, but the manifest records ${c.size} bytes, ${c.storedSize} stored, codec ${c.codec}`,
        );
      }
    }
  }
  return byRecord;
}

/** Where the pack a chunk reference names (a new chunk's `pack`, a reused one's `reusedPack`) holds it as the manifest says; undefined: not so. */
function namedPlace(packs: PackIndexes | undefined, reusedPacks: PackIndexes | undefined): (c: ChunkRecord) => Promise<ChunkPlace | undefined> {
  return async (c) => {
    const [list, i] = c.pack !== undefined ? [packs, c.pack] : c.reusedPack !== undefined ? [reusedPacks, c.reusedPack] : [undefined, undefined];
    const held = list === undefined || i === undefined ? undefined : await list.holding(i, c);
    return held && { vaultKey: held.pack.vaultKey, offset: held.entry.offset, storedSize: held.entry.storedLength };
  };
}

const progressSchema = z.object({
  next: z.number().int().nonnegative(),
  uniqueChunks: z.number().int().nonnegative(),
  checkedBackupLabel: z.boolean(),
});
const inputSchema = z.object({ snapshot: validatedSnapshotSchema, progress: progressSchema.partial().optional() });

export interface CheckReferencedOutput {
  /** Format 1: distinct chunks; format 2: the sum of each page's distinct chunks. */
  uniqueChunks: number;
  checkedBackupLabel: boolean;
  /** Format 2: the next page to check; the workflow calls the step again until done. */
  next: number;
  done: boolean;
}

/**
 * A format-2 manifest: pages from `progress.next`, one budget's worth
 * (functions/snapshot/pages.ts), each page's chunks as format 1's; the page
 * holding backup_label also has it rebuilt and compared.
 */
async function checkPages(deps: Deps, snapshot: ValidatedSnapshot, progress: z.infer<typeof progressSchema>): Promise<CheckReferencedOutput> {
  const header = await rereadPagedHeader(deps, snapshot);
  const objects = new StoreManifestObjects(deps.incoming, deps.incomingBucket);
  const budget = pageBudget(stepsOf("snapshot-ingest").checkReferenced.timeoutSeconds);
  let { next, uniqueChunks, checkedBackupLabel } = progress;
  const packs = header.packs === undefined ? undefined : new PackIndexes(deps, snapshot.databaseId, header.packs);
  const reusedPacks = header.reusedPacks === undefined ? undefined : new PackIndexes(deps, snapshot.databaseId, header.reusedPacks, "reusedPacks");
  for (let taken = 0; next < header.pages.length && mayTakePage(budget, taken); taken++) {
    const read = await readCheckedPage(objects, snapshot.incoming.key, header, next, (body) => parsePage(header, next, body));
    const files = { databaseId: snapshot.databaseId, snapshotId: snapshot.snapshotId, files: read.page.entries };
    await checkChunks(deps, files, read.chunks, packs, reusedPacks);
    const label = read.page.entries.find((e) => e.path === "backup_label");
    if (header.kind === "postgres" && label !== undefined) {
      checkBackupLabel(headerAsManifest(header) as PostgresSnapshotManifest, await readBackupLabel(deps, snapshot.databaseId, label, namedPlace(packs, reusedPacks)));
      checkedBackupLabel = true;
    }
    uniqueChunks += read.chunks.length;
    next++;
  }
  const done = next >= header.pages.length;
  if (done && header.kind === "postgres" && !checkedBackupLabel) await readBackupLabel(deps, snapshot.databaseId, undefined);
  return { uniqueChunks, checkedBackupLabel, next, done };
}

async function handle(input: unknown): Promise<CheckReferencedOutput> {
  const { snapshot, progress } = parseInput(inputSchema, input, "check referenced input");
  const deps = getDeps();
  if (snapshot.paged !== undefined) {
    return checkPages(deps, snapshot, { next: progress?.next ?? 0, uniqueChunks: progress?.uniqueChunks ?? 0, checkedBackupLabel: progress?.checkedBackupLabel ?? false });
  }
  const { validated } = await rereadManifest(deps, snapshot);
  const { manifest, chunks } = validated;
  const packs = manifest.packs === undefined ? undefined : new PackIndexes(deps, manifest.databaseId, manifest.packs);
  await checkChunks(deps, manifest, chunks, packs);
  if (manifest.kind === "postgres") {
    checkBackupLabel(manifest, await readBackupLabel(deps, manifest.databaseId, manifest.files.find((e) => e.path === "backup_label"), namedPlace(packs, undefined)));
  }
  return { uniqueChunks: chunks.length, checkedBackupLabel: manifest.kind === "postgres", next: 1, done: true };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
