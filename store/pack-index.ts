/**
 * A recorded pack's index, read from the vault (docs/packs.md; the layout is
 * core/pack.ts's): one ranged GET of [dataLength, size), the index entries
 * and the footer, parsed and checked against the recorded size. Every reader
 * of a recorded pack's index goes through readPackIndex: CheckReferenced
 * (new chunks checked against their pack), restore (new chunks located by
 * their pack, not by one catalog record each), the sweep (the chunk records
 * a deleted pack takes with it) and repack. `catalog rebuild` reads packs
 * without records and finds the index from the footer instead
 * (store/catalog-rebuild.ts).
 */
import { CorruptPackError } from "../core/errors.js";
import { parsePackIndex, type PackEntry } from "../core/pack.js";
import type { PackItem } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";
import type { ObjectStore } from "./object-store.js";

/** What reading a pack's index needs from its record. */
export type RecordedPack = Pick<PackItem, "name" | "vaultKey" | "dataLength" | "size">;

/**
 * Pack `pack`'s index entries (offset order), or undefined when its object is
 * not in `bucket`. An index that does not parse, or does not end where the
 * record says the pack ends, throws CorruptPackError naming the pack.
 */
export async function readPackIndex(store: ObjectStore, bucket: string, pack: RecordedPack): Promise<PackEntry[] | undefined> {
  const tail = await store.getRange(bucket, pack.vaultKey, pack.dataLength, pack.size - 1);
  if (tail === undefined) return undefined;
  return parsePackIndex(tail, { what: `pack ${pack.vaultKey}`, packSize: pack.size }).entries;
}

/**
 * readPackIndex for callers that go on without a damaged index: its entries
 * (none: the object is missing), or the CorruptPackError saying why it
 * cannot be read; other failures reject.
 */
export async function readPackIndexOrDamage(store: ObjectStore, bucket: string, pack: RecordedPack): Promise<{ entries?: PackEntry[]; damaged?: CorruptPackError }> {
  try {
    const entries = await readPackIndex(store, bucket, pack);
    return entries === undefined ? {} : { entries };
  } catch (e) {
    if (!(e instanceof CorruptPackError)) throw e;
    return { damaged: e };
  }
}

/** A pack's record and its index by chunk hash (`entries` undefined: recorded, but its object is not in the vault). */
export interface ReadPack {
  pack: PackItem;
  entries: Map<string, PackEntry> | undefined;
}

/** Indexes kept by default (a 16 MiB pack's index is ~50 bytes per chunk: at most a few hundred KB). */
export const KEPT_PACK_INDEXES = 8;

/**
 * One database's recorded packs and their indexes by name, each read once
 * when first asked for (Catalog.getPack, then readPackIndex) and the `keep`
 * used last kept: for a walk over a snapshot's chunks in manifest order,
 * whose new chunks lie in a few consecutive packs. Memory is bounded by
 * `keep`, never by the snapshot. A damaged index (CorruptPackError) is kept
 * too and thrown again: a restore whose windows keep asking for that pack
 * reads its tail once, not once per window.
 */
export class PackIndexCache {
  /** null: the catalog has no record of the pack; `damaged`: its index did not parse. */
  private readonly kept = new Map<string, ReadPack | null | { damaged: CorruptPackError }>();
  /** Reads under way, by pack name. */
  private readonly loading = new Map<string, Promise<ReadPack | null | { damaged: CorruptPackError }>>();

  constructor(
    private readonly catalog: Pick<Catalog, "getPack">,
    private readonly store: ObjectStore,
    private readonly bucket: string,
    private readonly databaseId: string,
    private readonly keep = KEPT_PACK_INDEXES,
  ) {}

  /** Pack `name`'s record and index; undefined when the catalog has no record of it. */
  async get(name: string): Promise<ReadPack | undefined> {
    let read = this.kept.get(name);
    if (read !== undefined) this.kept.delete(name);
    else {
      // Callers at once (a restore's planners, one batch ahead of the other) share one record and index read.
      let loading = this.loading.get(name);
      if (loading === undefined) {
        loading = this.load(name).finally(() => this.loading.delete(name));
        this.loading.set(name, loading);
      }
      read = await loading;
    }
    this.kept.set(name, read);
    if (this.kept.size > this.keep) this.kept.delete(this.kept.keys().next().value!);
    if (read !== null && "damaged" in read) throw read.damaged;
    return read ?? undefined;
  }

  private async load(name: string): Promise<ReadPack | null | { damaged: CorruptPackError }> {
    const recorded = await this.catalog.getPack(this.databaseId, name);
    // A condemned pack (retention is deleting it) is as good as gone: no reader takes a chunk from it.
    const pack = recorded?.deletingAt === undefined ? recorded : undefined;
    if (pack === undefined) return null;
    const { entries, damaged } = await readPackIndexOrDamage(this.store, this.bucket, pack);
    return damaged !== undefined ? { damaged } : { pack, entries: entries === undefined ? undefined : new Map(entries.map((e) => [e.sha256, e])) };
  }

  /**
   * Where pack `name` holds `chunk` as a manifest describes it: the pack is
   * recorded (and, unless `repacked`, not repacked), its object is there, its
   * index parses and lists the chunk with the same raw size, stored size and
   * codec. Undefined otherwise, for any of those reasons: a name a manifest
   * gives is a hint, and the chunk's catalog record decides then
   * (docs/packs.md, "It is a hint"). The one test every reader that goes to
   * a named pack first applies (restore and verification, CheckReferenced,
   * replication).
   */
  async holding(name: string, chunk: HeldChunk, opts: { repacked?: boolean } = {}): Promise<{ pack: PackItem; entry: PackEntry } | undefined> {
    return (await this.holder(name, opts))(chunk);
  }

  /**
   * holding's test for many chunks of one pack: the pack read once (one
   * await), then each chunk looked up in its index synchronously (a
   * restore locates thousands of a pack's chunks per window).
   */
  async holder(name: string, opts: { repacked?: boolean } = {}): Promise<(chunk: HeldChunk) => { pack: PackItem; entry: PackEntry } | undefined> {
    let read: ReadPack | undefined;
    try {
      read = await this.get(name);
    } catch (e) {
      if (e instanceof CorruptPackError) return () => undefined;
      throw e;
    }
    if (read === undefined || (read.pack.repackedAt !== undefined && opts.repacked !== true)) return () => undefined;
    const { pack, entries } = read;
    return (chunk) => {
      const entry = entries?.get(chunk.sha256);
      if (entry === undefined || entry.rawSize !== chunk.size || entry.storedLength !== chunk.storedSize || entry.codec !== chunk.codec) return undefined;
      return { pack, entry };
    };
  }
}

/** What holding compares with a pack's index entry: the chunk as a manifest describes it. */
export type HeldChunk = Pick<PackEntry, "sha256"> & { size: number; storedSize: number; codec: string };
