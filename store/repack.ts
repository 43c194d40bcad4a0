/**
 * Repacking sparse packs (retention, docs/retention.md "Packs"): the live
 * chunks of packs that are mostly dead move to new packs, so the dead bytes
 * can go with the old pack.
 *
 * Contract:
 * - At most REPACK_MAX_PACKS old packs per call (the caller passes at most
 *   that many; more are refused): a run's work is bounded whatever the vault.
 * - Per old pack: its index is read from its tail (one ranged GET), the chunk
 *   records pointing at it are read (getChunks), and the live ones (in
 *   `referenced`) are read by ranged GETs and verified (decoded, SHA-256 =
 *   name) before they are copied. A pack whose index or live chunk fails
 *   verification (CorruptPackError, ChecksumMismatchError) is left exactly
 *   as it is — nothing of it moved, not marked — and reported with the
 *   reason (`error`), so one damaged pack does not stop retention; the other
 *   packs are repacked.
 * - New packs (core/pack.ts PackBuilder, several old packs' live chunks
 *   share them) go to every region's vault (put with their SHA-256), then
 *   their records, then the live chunk records are re-pointed, each only
 *   while it still points at its old pack (movePackedChunks). Both copies are
 *   valid throughout: a reader following either record gets the same bytes.
 * - Each old pack is marked repacked (markPacksRepacked, repackedAt = now)
 *   once its live chunks are verified and before any of its records moves:
 *   from then on the sweep counts only the records still pointing at it, not
 *   its index (which keeps listing the moved chunks), and CheckReferenced
 *   never accepts a chunk by it (docs/packs.md, "The sweep tallies packs
 *   from their indexes"). Stopped between the two, the pack is kept while a
 *   record it still serves is referenced, and repacked again.
 * - Then each old pack is marked a deletion candidate now
 *   (markPacksOrphaned). It is never deleted here: the sweep deletes it in a
 *   later run, a grace period after this mark, with the two-phase protocol
 *   (only if no push reused one of its dead chunks since). A restore that
 *   located a chunk in the old pack just before the move thus still reads it
 *   for the whole grace period.
 */
import { forEachLimit } from "../core/concurrency.js";
import { decodeWith } from "../core/codec.js";
import { ChecksumMismatchError, CorruptPackError, InvalidInputError, NotFoundError, describeError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { vaultPackKey } from "../core/keys.js";
import { chunkOfRead, coalescePackReads, PackBuilder, type BuiltPack, type PackEntry } from "../core/pack.js";
import type { ChunkItem, PackItem } from "../core/schemas.js";
import { packObjectMeta } from "../core/snapshot.js";
import type { Catalog } from "./catalog.js";
import { readPackIndex } from "./pack-index.js";
import type { RegionVault } from "./prune.js";

/** Old packs one repack call rewrites at most. */
export const REPACK_MAX_PACKS = 16;

export interface RepackOptions {
  now: Date;
  /** New packs' target size (default core/pack.ts DEFAULT_PACK_TARGET_SIZE). */
  targetSize?: number;
}

export interface RepackedPack {
  /** The old pack's name. */
  name: string;
  /** Live chunks moved out of it. */
  moved: number;
  /** Chunk records left pointing at it (dead, or re-recorded meanwhile). */
  left: number;
  /** New packs its chunks went to. */
  into: string[];
  /** Why it was left as it is (damaged: its index or a live chunk failed verification). */
  error?: string;
}

/** Where a live chunk is now and where it goes. */
interface Moving {
  from: PackItem;
  record: ChunkItem;
}

export async function repackPacks(
  databaseId: string,
  packs: readonly PackItem[],
  referenced: { has(sha256: string): boolean },
  catalog: Catalog,
  regions: readonly RegionVault[],
  opts: RepackOptions,
): Promise<RepackedPack[]> {
  if (packs.length > REPACK_MAX_PACKS) throw new InvalidInputError(`repack of ${packs.length} packs asked, at most ${REPACK_MAX_PACKS} per run`);
  const primary = regions.find((r) => r.primary) ?? regions[0];
  if (primary === undefined) throw new InvalidInputError("repack needs at least one region's vault");
  const builder = new PackBuilder(opts.targetSize === undefined ? {} : { targetSize: opts.targetSize });
  const at = opts.now.toISOString();
  const results = new Map<string, RepackedPack>(packs.map((p) => [p.name, { name: p.name, moved: 0, left: 0, into: [] }]));
  let inBuilder: Moving[] = [];

  const flush = async (): Promise<void> => {
    if (builder.count === 0) return;
    const built: BuiltPack = builder.finish();
    const vaultKey = vaultPackKey(databaseId, built.name);
    const item: PackItem = { databaseId, name: built.name, size: built.bytes.length, entries: built.entries.length, dataLength: built.dataLength, vaultKey, recordedAt: at };
    const meta = packObjectMeta(databaseId, item);
    for (const r of regions) await r.store.put(r.bucket, vaultKey, built.bytes, meta, { sha256: built.name });
    await catalog.recordPacks([item]);
    const offsets = new Map(built.entries.map((e) => [e.sha256, e.offset]));
    const byOld = new Map<string, Moving[]>();
    for (const m of inBuilder) byOld.set(m.from.vaultKey, [...(byOld.get(m.from.vaultKey) ?? []), m]);
    for (const [from, moving] of byOld) {
      const moved = await catalog.movePackedChunks(
        moving.map((m) => ({ ...m.record, vaultKey, offset: offsets.get(m.record.sha256)! })),
        from,
      );
      const result = results.get(moving[0]!.from.name)!;
      result.moved += moved.length;
      if (!result.into.includes(built.name)) result.into.push(built.name);
    }
    inBuilder = [];
  };

  const damaged = new Set<string>();
  for (const old of packs) {
    const what = `pack ${old.name}`;
    const result = results.get(old.name)!;
    // Read and verify the index and every live chunk of this pack before any of it is moved.
    let live: PackEntry[];
    let here: Map<string, ChunkItem>;
    const stored = new Map<string, Buffer>();
    try {
      const entries = await readPackIndex(primary.store, primary.bucket, old);
      if (entries === undefined) throw new NotFoundError(`${what} is recorded but missing from the vault (${old.vaultKey}): not repacked`);
      const records = await catalog.getChunks(databaseId, entries.map((e) => e.sha256));
      here = new Map(records.filter((r) => r.vaultKey === old.vaultKey).map((r) => [r.sha256, r]));
      live = entries.filter((e) => here.has(e.sha256) && referenced.has(e.sha256));
      await forEachLimit(coalescePackReads(live), 4, async (read) => {
        const body = await primary.store.getRange(primary.bucket, old.vaultKey, read.start, read.end - 1);
        if (body === undefined) throw new NotFoundError(`${what} disappeared from the vault while it was repacked`);
        for (const e of read.chunks) stored.set(e.sha256, await verified(what, e, chunkOfRead(read, body, e)));
      });
    } catch (e) {
      if (!(e instanceof CorruptPackError || e instanceof ChecksumMismatchError)) throw e;
      result.error = describeError(e);
      damaged.add(old.name);
      continue;
    }
    result.left = here.size - live.length;
    await catalog.markPacksRepacked(databaseId, [old.name], at);
    for (const e of live) {
      const bytes = stored.get(e.sha256)!;
      if (builder.has(e.sha256)) continue;
      if (!builder.fits(bytes.length)) await flush();
      builder.add({ sha256: e.sha256, rawSize: e.rawSize, codec: e.codec, stored: bytes });
      inBuilder.push({ from: old, record: here.get(e.sha256)! });
    }
  }
  await flush();
  await catalog.markPacksOrphaned(databaseId, packs.filter((p) => !damaged.has(p.name)).map((p) => p.name), at);
  return packs.map((p) => results.get(p.name)!);
}

/** The stored bytes of a chunk, once they decode to its size and name (a copy: the read's buffer can go). */
async function verified(what: string, e: PackEntry, stored: Buffer): Promise<Buffer> {
  const where = `chunk ${e.sha256} at bytes ${e.offset}-${e.offset + e.storedLength - 1} of ${what}`;
  let raw: Buffer;
  try {
    raw = await decodeWith(e.codec, stored, where, e.rawSize);
  } catch (cause) {
    throw new ChecksumMismatchError(`${where} does not decode: not repacked`, { cause });
  }
  if (raw.length !== e.rawSize || sha256Hex(raw) !== e.sha256) throw new ChecksumMismatchError(`${where} does not hash to its name: not repacked`);
  return Buffer.from(stored);
}
