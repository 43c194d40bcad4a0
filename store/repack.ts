/**
 * Repacking sparse packs (retention, docs/retention.md "Packs"): the live
 * chunks of packs that are mostly dead move to new packs, so the dead bytes
 * can go with the old pack.
 *
 * Contract:
 * - At most REPACK_MAX_PACKS old packs per call (the caller passes at most
 *   that many; more are refused): a run's work is bounded whatever the vault.
 * - Per old pack: its index is read from its tail (one ranged GET), and its
 *   live chunks are the entries `referenced` holds, whichever pack their
 *   chunk records name, as the sweep judges a pack by its index (a manifest
 *   may name this pack for a chunk whose record names another pack, or has
 *   none: docs/packs.md "Repack takes liveness from the index"). The live
 *   ones are read by ranged GETs and verified (decoded, SHA-256 = name)
 *   before they are copied. A pack whose index or live chunk fails
 *   verification (CorruptPackError, ChecksumMismatchError) is left exactly
 *   as it is — nothing of it moved, not marked — and reported with the
 *   reason (`error`), so one damaged pack does not stop retention; the other
 *   packs are repacked.
 * - New packs (core/pack.ts PackBuilder, several old packs' live chunks
 *   share them; a chunk live in two of them is copied once) go to every
 *   region's vault (put with their SHA-256), then their records, then every
 *   moved chunk is recorded at its new pack, with the sizes and codec of the
 *   bytes copied: a record pointing at one of the old packs is re-pointed
 *   only while it still does (movePackedChunks), any other (pointing at a
 *   pack outside this call, or none) is written (recordChunks), so that no
 *   chunk a kept snapshot uses is left findable only through an old pack.
 *   Both copies are valid throughout: a reader following either gets the
 *   same bytes.
 * - Each old pack is marked repacked (markPacksRepacked, repackedAt = now)
 *   once its live chunks are verified and before any of its records moves:
 *   from then on the sweep counts the records still pointing at it and the
 *   entries of its index no record places, not the rest of its index (which
 *   keeps listing the moved chunks), and CheckReferenced
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

/** A live chunk on its way to a new pack: the old pack it is copied from, and the record it had (if any). */
interface Moving {
  from: PackItem;
  entry: PackEntry;
  record: ChunkItem | undefined;
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
  /** The old packs of this call, by vault key: a record pointing at one of them is re-pointed conditionally. */
  const olds = new Set(packs.map((p) => p.vaultKey));
  /** Chunks copied (or being copied) by this call: one copy each, whichever old packs list it. */
  const copied = new Set<string>();
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
    // The record of the bytes copied (sizes and codec from the old pack's index, which the copy keeps).
    const recordOf = (m: Moving): ChunkItem => ({
      databaseId,
      sha256: m.entry.sha256,
      size: m.entry.rawSize,
      storedSize: m.entry.storedLength,
      codec: m.entry.codec,
      vaultKey,
      offset: offsets.get(m.entry.sha256)!,
      recordedAt: m.record?.recordedAt ?? at,
    });
    const byFrom = new Map<string | undefined, Moving[]>();
    for (const m of inBuilder) {
      const from = m.record !== undefined && olds.has(m.record.vaultKey) ? m.record.vaultKey : undefined;
      byFrom.set(from, [...(byFrom.get(from) ?? []), m]);
    }
    for (const [from, moving] of byFrom) {
      // Pointing at an old pack: only while it still does. Elsewhere or nowhere: written, so the chunk is found at its copy.
      let moved: Set<string>;
      if (from !== undefined) moved = new Set(await catalog.movePackedChunks(moving.map(recordOf), from));
      else {
        await catalog.recordChunks(moving.map(recordOf));
        moved = new Set(moving.map((m) => m.entry.sha256));
      }
      for (const m of moving) {
        if (!moved.has(m.entry.sha256)) continue;
        const result = results.get(m.from.name)!;
        result.moved++;
        if (!result.into.includes(built.name)) result.into.push(built.name);
      }
    }
    inBuilder = [];
  };

  const damaged = new Set<string>();
  for (const old of packs) {
    const what = `pack ${old.name}`;
    const result = results.get(old.name)!;
    // Read and verify the index and every live chunk of this pack before any of it is moved.
    let live: PackEntry[];
    let records: Map<string, ChunkItem>;
    const stored = new Map<string, Buffer>();
    try {
      const entries = await readPackIndex(primary.store, primary.bucket, old);
      if (entries === undefined) throw new NotFoundError(`${what} is recorded but missing from the vault (${old.vaultKey}): not repacked`);
      records = new Map((await catalog.getChunks(databaseId, entries.map((e) => e.sha256))).map((r) => [r.sha256, r]));
      live = entries.filter((e) => referenced.has(e.sha256) && !copied.has(e.sha256));
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
    // Dead chunks whose records point at it: left with it (deleted with it by the sweep).
    for (const r of records.values()) if (r.vaultKey === old.vaultKey && !referenced.has(r.sha256)) result.left++;
    await catalog.markPacksRepacked(databaseId, [old.name], at);
    for (const e of live) {
      const bytes = stored.get(e.sha256)!;
      if (!builder.fits(bytes.length)) await flush();
      builder.add({ sha256: e.sha256, rawSize: e.rawSize, codec: e.codec, stored: bytes });
      inBuilder.push({ from: old, entry: e, record: records.get(e.sha256) });
      copied.add(e.sha256);
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
