/**
 * Reading snapshot chunks from where the catalog, or for a packed push's new
 * chunks their pack's index, says they are (docs/packs.md): inside a pack
 * (`offset` set: the chunk's stored bytes are [offset, offset + storedSize)
 * of the pack object `vaultKey`) or as an object of its own
 * (db/<id>/chunks/<sha256>, every snapshot before packs).
 * Restore (agent/restore.ts) and verification L1/L2 (agent/verify.ts) share it.
 *
 * - locateChunks(): a new chunk of a packed push from its pack's index
 *   (store/pack-index.ts), the others from the catalog's records, in
 *   batches (Catalog.getChunks, BatchGetItem of 100): never one round trip
 *   per chunk. A chunk the catalog does not know is looked for as an object
 *   of its own (vaults written before chunk records carried locations; a
 *   missing one is then named with both facts).
 * - ChunkReads.schedule(): the reads for located chunks: one GET per chunk
 *   object; per pack, coalescePackReads (1 MiB gap, 8 MiB at most) and one
 *   explicit ranged GET per read (core/pack.ts: s3rver misreads suffix
 *   ranges). Reads start in the order scheduled, at most `parallel` of them
 *   and `bytesInFlight` bytes at once (at least one read).
 * - decodeChunk(): decode with the chunk's codec and check raw size and
 *   SHA-256. Every failure is a ChecksumMismatchError naming the chunk, a
 *   file that uses it and where it was read (pack key and bytes, or object key).
 */
import { BufferPool, KEEP_MAX_BYTES } from "../core/buffer-pool.js";
import type { CodecName } from "../core/codec.js";
import { ChecksumMismatchError, CodecError } from "../core/errors.js";
import { vaultChunkKey } from "../core/keys.js";
import { chunkOfRead, coalescePackReads } from "../core/pack.js";
import type { Catalog } from "../store/catalog.js";
import type { GetOptions, ObjectStore } from "../store/object-store.js";
import type { PackIndexCache } from "../store/pack-index.js";
import { inThreadDecoder, type ChunkDecoder } from "./decode-pool.js";

/** A chunk a manifest references, with a file that uses it (for messages). */
export interface WantedChunk {
  sha256: string;
  /** Raw bytes. */
  size: number;
  /** Stored bytes as the manifest records them. */
  storedSize: number;
  codec: CodecName;
  file: string;
  /** The pack the manifest names for it (a new chunk's `pack`, a reused one's `reusedPack`): located from that pack's index when it holds it as the manifest describes it. */
  pack?: string;
}

/** Where a chunk's stored bytes are. */
export interface ChunkLocation {
  /** The pack (with `offset`) or the chunk's own object. */
  key: string;
  /** Offset of the stored bytes in the pack; absent for an object of its own. */
  offset?: number;
  storedSize: number;
  codec: CodecName;
  /** False when the catalog has no record of the chunk (looked for at its own key). */
  recorded: boolean;
}

/** Hashes per Catalog.getChunks call (the catalog batches them by 100 inside). */
export const LOCATE_BATCH = 1000;

/** "pack <key>, bytes a-b" or "<key>", for messages. */
export function describeLocation(loc: ChunkLocation): string {
  return loc.offset === undefined ? loc.key : `pack ${loc.key}, bytes ${loc.offset}-${loc.offset + loc.storedSize - 1}`;
}

/**
 * The locations of these chunks (distinct hashes). With `packs`, a chunk the
 * manifest places in a pack (`pack`) is located from that pack's index when
 * the pack is still recorded and its index holds the chunk: one record and
 * one ranged read per pack (kept for the next windows) instead of one
 * catalog record per chunk. Every other chunk, and one whose pack is gone
 * (repacked, swept) or no longer holds it or has a damaged index, is looked
 * up in the catalog, LOCATE_BATCH at a time: the record's storedSize and
 * codec describe the stored bytes; a chunk without a record gets its own
 * key and the manifest's storedSize and codec. Either way the bytes read
 * must decode to the chunk's SHA-256 (decodeChunk), so a location is only
 * ever a place to look.
 */
export async function locateChunks(catalog: Catalog, databaseId: string, wanted: readonly WantedChunk[], packs?: PackIndexCache): Promise<Map<string, ChunkLocation>> {
  const out = new Map<string, ChunkLocation>();
  const rest = packs === undefined ? wanted : await locateInPacks(packs, wanted, out);
  for (let i = 0; i < rest.length; i += LOCATE_BATCH) {
    const batch = rest.slice(i, i + LOCATE_BATCH);
    for (const r of await catalog.getChunks(databaseId, batch.map((w) => w.sha256))) {
      out.set(r.sha256, { key: r.vaultKey, ...(r.offset === undefined ? {} : { offset: r.offset }), storedSize: r.storedSize, codec: r.codec, recorded: true });
    }
    for (const w of batch) {
      if (!out.has(w.sha256)) out.set(w.sha256, { key: vaultChunkKey(databaseId, w.sha256), storedSize: w.storedSize, codec: w.codec, recorded: false });
    }
  }
  return out;
}

/** Sets in `out` the location of every chunk of `wanted` its named pack holds; returns the others. */
async function locateInPacks(packs: PackIndexCache, wanted: readonly WantedChunk[], out: Map<string, ChunkLocation>): Promise<WantedChunk[]> {
  const rest: WantedChunk[] = [];
  const byPack = new Map<string, WantedChunk[]>();
  for (const w of wanted) {
    if (w.pack === undefined) rest.push(w);
    else {
      const list = byPack.get(w.pack);
      if (list) list.push(w);
      else byPack.set(w.pack, [w]);
    }
  }
  for (const [name, list] of byPack) {
    // A repacked pack still holds its bytes until the sweep deletes it; otherwise (damaged index, other sizes, gone) the record decides.
    const holds = await packs.holder(name, { repacked: true });
    for (const w of list) {
      const held = holds(w);
      if (held === undefined) rest.push(w);
      else out.set(w.sha256, { key: held.pack.vaultKey, offset: held.entry.offset, storedSize: held.entry.storedLength, codec: held.entry.codec, recorded: true });
    }
  }
  return rest;
}

function missing(want: WantedChunk, loc: ChunkLocation): ChecksumMismatchError {
  const what = `chunk ${want.sha256} of file ${JSON.stringify(want.file)}`;
  if (loc.offset !== undefined) return new ChecksumMismatchError(`${what} is missing from the vault: its pack ${loc.key} does not exist`);
  return new ChecksumMismatchError(
    `${what} is missing from the vault (${loc.key})${loc.recorded ? "" : "; the catalog has no record of it either (no pack holds it)"}`,
  );
}

/** Decodes a chunk's stored bytes and checks them against its name and raw size (on `decoder`'s threads; default the calling one). */
export async function decodeChunk(want: WantedChunk, loc: ChunkLocation, stored: Uint8Array, decoder: ChunkDecoder = inThreadDecoder): Promise<Buffer> {
  let raw!: Buffer;
  await checkedDecode(want, loc, async (what) => {
    const d = await decoder.decode(loc.codec, stored, want.size, what);
    raw = d.raw;
    return { sha256: d.sha256, length: d.raw.length };
  });
  return raw;
}

/**
 * decodeChunk, but the pool's worker writes the verified bytes at `position`
 * of `fd` itself (ChunkDecoder.decodeInto): nothing is written unless they
 * hash to the chunk's name with its size, and the same errors name it.
 * Resolves true when the bytes went to disk with direct I/O (a run).
 */
export async function decodeChunkInto(
  want: WantedChunk,
  loc: ChunkLocation,
  stored: Uint8Array,
  decoder: Required<Pick<ChunkDecoder, "decodeInto">>,
  into: { fd: number; position: number; directFd?: number },
): Promise<boolean> {
  let direct = false;
  await checkedDecode(want, loc, async (what) => {
    const got = await decoder.decodeInto(loc.codec, stored, want.size, what, { ...into, sha256: want.sha256 });
    direct = got.direct === true;
    return got;
  });
  return direct;
}

/**
 * decodeChunkInto for consecutive chunks of one file (one run of
 * agent/direct-runs.ts) in one request (ChunkDecoder.decodeIntoMany):
 * each chunk is checked, and the first that fails stops it with the error
 * decodeChunkInto gives. Resolves, per chunk, whether it went to disk with
 * direct I/O.
 */
export async function decodeChunksInto(
  chunks: readonly { want: WantedChunk; loc: ChunkLocation; stored: Uint8Array; position: number }[],
  decoder: Required<Pick<ChunkDecoder, "decodeIntoMany">>,
  into: { fd: number; directFd?: number },
): Promise<boolean[]> {
  const got = await decoder.decodeIntoMany(
    chunks.map((c) => ({ codec: c.loc.codec, stored: c.stored, size: c.want.size, what: chunkWhat(c.want), write: { ...into, position: c.position, sha256: c.want.sha256 } })),
  );
  return got.map((g, i) => {
    const c = chunks[i]!;
    checkDecoded(c.want, c.loc, g);
    return !(g instanceof Error) && g.direct === true;
  });
}

/** How messages name a wanted chunk. */
function chunkWhat(want: WantedChunk): string {
  return `chunk ${want.sha256} of file ${JSON.stringify(want.file)}`;
}

/** A decode's outcome (or its failure) checked against the chunk's name and raw size: a corrupt chunk is a ChecksumMismatchError naming it and where it is. */
function checkDecoded(want: WantedChunk, loc: ChunkLocation, got: { sha256: string; length: number } | Error): void {
  if (got instanceof Error) {
    if (!(got instanceof CodecError)) throw got;
    throw new ChecksumMismatchError(`${chunkWhat(want)} is corrupt in the vault (${describeLocation(loc)}): ${got.message}`, { cause: got });
  }
  if (got.sha256 !== want.sha256 || got.length !== want.size) {
    throw new ChecksumMismatchError(
      `${chunkWhat(want)} is corrupt in the vault (${describeLocation(loc)}): its ${got.length} bytes hash to ${got.sha256.slice(0, 12)}…, expected ${want.size} bytes`,
    );
  }
}

async function checkedDecode(want: WantedChunk, loc: ChunkLocation, decode: (what: string) => Promise<{ sha256: string; length: number }>): Promise<void> {
  let got: { sha256: string; length: number } | Error;
  try {
    got = await decode(chunkWhat(want));
  } catch (e) {
    if (!(e instanceof CodecError)) throw e;
    got = e;
  }
  checkDecoded(want, loc, got);
}

export interface ChunkReadsOptions {
  /** Reads in flight at most. */
  parallel: number;
  /** Bytes of reads in flight at most (a larger read still goes alone). */
  bytesInFlight: number;
  maxGap?: number;
  maxReadSize?: number;
  /**
   * Coalesced reads land in these buffers of memory shared with worker
   * threads (SharedArrayBuffer): a chunk's stored bytes then go to a decode
   * worker without a copy (agent/decode-pool.ts packDecodeRequests), and a
   * read's buffer is used again once `release` was called for each of its
   * chunks.
   */
  sharedBodies?: BufferPool;
}

/**
 * Buffers of shared memory for coalesced reads, used again (core/buffer-pool.ts):
 * a restore reads its whole stored size (588 MB for 1.59 GB of data
 * compressing 2.7x), and a fresh buffer per read was external memory that
 * held tens of MB of garbage at the peak (docs/decisions.md, stop 46). Keeps
 * at most `keepBytes` free; each buffer is whole MiBs, so it fits later reads too.
 */
export function sharedBodies(keepBytes: number): BufferPool {
  return new BufferPool(Number.MAX_SAFE_INTEGER, KEEP_MAX_BYTES, {
    keepBytes,
    allocate: (size) => Buffer.from(new SharedArrayBuffer(Math.max(1, Math.ceil(size / 1048576)) * 1048576)),
  });
}

/** A read into a buffer of `sharedBodies`: its chunks not yet released. */
interface LentRead {
  pending: number;
  buffer: Buffer | undefined;
}

interface Slot {
  bytes: number;
  start: () => void;
}

/** The reads of located chunks, bounded in number and bytes (see the file comment). */
export class ChunkReads {
  /** GET requests made for chunks (a coalesced ranged read counts once). */
  fetched = 0;
  /** Bytes those requests returned. */
  downloaded = 0;
  private active = 0;
  private activeBytes = 0;
  private readonly queue: Slot[] = [];
  private readonly running = new Set<Promise<unknown>>();
  private stopped = false;
  /** Chunks read into a buffer of `sharedBodies`, by hash: the read whose buffer goes back once all its chunks are released. */
  private readonly lent = new Map<string, LentRead>();

  constructor(
    private readonly store: ObjectStore,
    private readonly bucket: string,
    private readonly opts: ChunkReadsOptions,
  ) {}

  /**
   * Schedules the reads of these located chunks (distinct hashes) and returns,
   * per hash, a promise of its stored bytes (rejecting with a
   * ChecksumMismatchError naming chunk, file and location). The promises
   * carry a no-op handler: one nobody awaits (after a failure) does not count
   * as unhandled.
   */
  schedule(items: readonly { want: WantedChunk; loc: ChunkLocation }[]): Map<string, Promise<Buffer>> {
    const out = new Map<string, Promise<Buffer>>();
    const byPack = new Map<string, { offset: number; storedLength: number; want: WantedChunk; loc: ChunkLocation }[]>();
    const order: (string | { want: WantedChunk; loc: ChunkLocation })[] = [];
    for (const it of items) {
      if (it.loc.offset === undefined) {
        order.push(it);
        continue;
      }
      let list = byPack.get(it.loc.key);
      if (!list) {
        list = [];
        byPack.set(it.loc.key, list);
        order.push(it.loc.key);
      }
      list.push({ offset: it.loc.offset, storedLength: it.loc.storedSize, ...it });
    }
    const settle = (sha: string, p: Promise<Buffer>): void => {
      p.catch(() => undefined);
      out.set(sha, p);
    };
    // In order of first appearance: a restore consumes chunks roughly in the order it schedules them.
    for (const o of order) {
      if (typeof o !== "string") {
        const { want, loc } = o;
        settle(
          want.sha256,
          this.read(loc.storedSize, async () => {
            const obj = await this.store.get(this.bucket, loc.key);
            if (!obj) throw missing(want, loc);
            this.downloaded += obj.body.length;
            return obj.body;
          }),
        );
        continue;
      }
      const key = o;
      // Records naming the same bytes of a pack for two hashes (a damaged catalog) share a read: the decoder tells them apart.
      const sameBytes = new Map<string, { offset: number; storedLength: number; want: WantedChunk; loc: ChunkLocation }[]>();
      const ranges: { offset: number; storedLength: number; want: WantedChunk; loc: ChunkLocation }[] = [];
      for (const c of byPack.get(key)!) {
        const at = `${c.offset}:${c.storedLength}`;
        const same = sameBytes.get(at);
        if (same) same.push(c);
        else {
          sameBytes.set(at, [c]);
          ranges.push(c);
        }
      }
      for (const read of coalescePackReads(ranges, { ...(this.opts.maxGap === undefined ? {} : { maxGap: this.opts.maxGap }), ...(this.opts.maxReadSize === undefined ? {} : { maxReadSize: this.opts.maxReadSize }) })) {
        const used = read.chunks.reduce((n, c) => n + c.storedLength, 0);
        const gaps = used !== read.end - read.start;
        const chunks = read.chunks.flatMap((r) => sameBytes.get(`${r.offset}:${r.storedLength}`)!);
        // A read with gaps hands out copies of its chunks (below): its buffer is not lent.
        const bodies = gaps ? undefined : this.opts.sharedBodies;
        let options: GetOptions = {};
        if (bodies !== undefined) {
          const lent: LentRead = { pending: chunks.length, buffer: undefined };
          for (const c of chunks) this.lent.set(c.want.sha256, lent);
          options = { bodyBuffer: (size) => (lent.buffer = bodies.take(size)) };
        }
        const body = this.read(read.end - read.start, async () => {
          const b = await this.store.getRange(this.bucket, key, read.start, read.end - 1, options);
          if (b) this.downloaded += b.length;
          return b;
        });
        body.catch(() => undefined);
        for (const c of chunks) {
          settle(
            c.want.sha256,
            body.then((b) => {
              if (!b) throw missing(c.want, c.loc);
              let view: Buffer;
              try {
                view = chunkOfRead(read, b, c);
              } catch (e) {
                throw new ChecksumMismatchError(
                  `chunk ${c.want.sha256} of file ${JSON.stringify(c.want.file)} cannot be read from the vault (${describeLocation(c.loc)}): ${(e as Error).message}`,
                  { cause: e },
                );
              }
              // A read spanning unwanted bytes is not kept alive by the views of its chunks.
              return gaps ? Buffer.from(view) : view;
            }),
          );
        }
      }
    }
    return out;
  }

  /**
   * The caller is done with the stored bytes of chunk `sha256` (every decode
   * of them answered): once every chunk of its read is, the read's buffer of
   * `sharedBodies` is used again. Nothing for a chunk not read into one.
   */
  release(sha256: string): void {
    const lent = this.lent.get(sha256);
    if (lent === undefined) return;
    this.lent.delete(sha256);
    if (--lent.pending === 0 && lent.buffer !== undefined) this.opts.sharedBodies?.give(lent.buffer);
  }

  /** Starts no more reads and waits for the ones in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.queue.splice(0)) {
      this.active++;
      this.activeBytes += s.bytes;
      s.start();
    }
    await Promise.allSettled([...this.running]);
  }

  private read<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    const p = new Promise<void>((start) => {
      this.queue.push({ bytes, start });
      this.pump();
    }).then(async () => {
      try {
        if (this.stopped) throw new ChecksumMismatchError("stopped before this chunk was read");
        this.fetched++;
        return await fn();
      } finally {
        this.active--;
        this.activeBytes -= bytes;
        this.pump();
      }
    });
    this.running.add(p);
    void p.catch(() => undefined).finally(() => this.running.delete(p));
    return p;
  }

  private pump(): void {
    for (;;) {
      const head = this.queue[0];
      if (!head) return;
      if (this.active > 0 && (this.active >= this.opts.parallel || this.activeBytes + head.bytes > this.opts.bytesInFlight)) return;
      this.queue.shift();
      this.active++;
      this.activeBytes += head.bytes;
      head.start();
    }
  }
}
