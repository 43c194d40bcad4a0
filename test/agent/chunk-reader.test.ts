/**
 * agent/chunk-reader.ts ChunkReads and decodeChunk, over an in-memory store
 * that answers GETs when the test lets it: how many reads are in flight,
 * what each read covers, and how a damaged location is reported. (Restore
 * and verification against the real local stack: restore-packs.test.ts,
 * verify-packs.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { ChecksumMismatchError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey, vaultPackKey } from "../../core/keys.js";
import { PackBuilder } from "../../core/pack.js";
import { ChunkReads, decodeChunk, locateChunks, sharedBodies, type ChunkLocation, type WantedChunk } from "../../agent/chunk-reader.js";
import type { ChunkItem, PackItem } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectStore } from "../../store/object-store.js";
import { PackIndexCache } from "../../store/pack-index.js";

const DB = "gen-reader";

/** A store holding some objects; every GET waits until `release()` and is recorded with the bytes it asked for. */
function gatedStore(objects: Map<string, Buffer>) {
  const requests: { key: string; start?: number; end?: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let inFlightBytes = 0;
  let maxInFlightBytes = 0;
  let gates: Array<() => void> = [];
  const wait = async <T>(bytes: number, fn: () => T): Promise<T> => {
    inFlight++;
    inFlightBytes += bytes;
    maxInFlight = Math.max(maxInFlight, inFlight);
    maxInFlightBytes = Math.max(maxInFlightBytes, inFlightBytes);
    await new Promise<void>((r) => gates.push(r));
    inFlight--;
    inFlightBytes -= bytes;
    return fn();
  };
  const store = {
    name: "memory",
    get: (_b: string, key: string) => {
      requests.push({ key });
      const body = objects.get(key);
      return wait(body?.length ?? 0, () => (body ? { key, size: body.length, metadata: {}, body } : undefined));
    },
    getRange: (_b: string, key: string, start: number, end: number) => {
      requests.push({ key, start, end });
      return wait(end - start + 1, () => objects.get(key)?.subarray(start, end + 1));
    },
  } as unknown as ObjectStore;
  return {
    store,
    requests,
    maxInFlight: () => maxInFlight,
    maxInFlightBytes: () => maxInFlightBytes,
    /** Lets every waiting GET answer; repeats until `done` settles. */
    async drain(done: Promise<unknown>): Promise<void> {
      let settled = false;
      void done.finally(() => (settled = true)).catch(() => undefined);
      while (!settled) {
        const g = gates;
        gates = [];
        for (const f of g) f();
        await new Promise((r) => setTimeout(r, 1));
      }
    },
  };
}

async function chunk(n: number, size = 4096): Promise<{ raw: Buffer; stored: Buffer; sha256: string }> {
  const raw = Buffer.alloc(size, n);
  raw.writeUInt32LE(n, 0);
  return { raw, stored: await getCodec("zstd").encode(raw), sha256: sha256Hex(raw) };
}

/** A store whose ranged reads land in the buffer the caller lends (GetOptions.bodyBuffer), as S3ObjectStore's do. */
function lendingStore(objects: Map<string, Buffer>): ObjectStore {
  return {
    name: "memory",
    getRange: async (_b: string, key: string, start: number, end: number, options?: { bodyBuffer?: (size: number) => Buffer }) => {
      const bytes = objects.get(key)?.subarray(start, end + 1);
      if (bytes === undefined) return undefined;
      const into = options?.bodyBuffer?.(bytes.length);
      if (into === undefined) return Buffer.from(bytes);
      into.set(bytes);
      return into.subarray(0, bytes.length);
    },
  } as unknown as ObjectStore;
}

/** One pack of `n` chunks in `objects`, and the located items of those at `picked` indexes (all by default). */
async function packOf(objects: Map<string, Buffer>, first: number, n: number, picked?: number[]): Promise<{ want: WantedChunk; loc: ChunkLocation }[]> {
  const b = new PackBuilder();
  const cs = await Promise.all(Array.from({ length: n }, (_, i) => chunk(first + i)));
  for (const c of cs) b.add({ sha256: c.sha256, rawSize: c.raw.length, codec: "zstd", stored: c.stored });
  const pack = b.finish();
  const key = vaultPackKey(DB, pack.name);
  objects.set(key, pack.bytes);
  return pack.entries
    .filter((_, i) => picked === undefined || picked.includes(i))
    .map((e) => ({ want: { sha256: e.sha256, size: e.rawSize, storedSize: e.storedLength, codec: "zstd" as const, file: "f" }, loc: { key, offset: e.offset, storedSize: e.storedLength, codec: "zstd" as const, recorded: true } }));
}

describe("ChunkReads with sharedBodies", () => {
  it("reads into shared memory and uses a read's buffer again only once every chunk of it is released", async () => {
    // Prepare: two packs of three chunks, each read whole, one read at a time
    const objects = new Map<string, Buffer>();
    const first = await packOf(objects, 100, 3);
    const second = await packOf(objects, 200, 3);
    const bodies = sharedBodies(64 * 1024 * 1024);
    const reads = new ChunkReads(lendingStore(objects), "vault", { parallel: 1, bytesInFlight: 1 << 20, sharedBodies: bodies });

    // Act: the first pack's chunks read; all but one released; then the rest, and the second pack read
    const out1 = reads.schedule(first);
    const views1 = await Promise.all(first.map((it) => out1.get(it.want.sha256)!));
    const decoded1 = await Promise.all(first.map((it, i) => decodeChunk(it.want, it.loc, views1[i]!)));
    reads.release(first[0]!.want.sha256);
    reads.release(first[1]!.want.sha256);
    const reusedTooSoon = bodies.take(1);
    reads.release(first[2]!.want.sha256);
    reads.release(first[2]!.want.sha256); // a second release of the same chunk changes nothing
    const out2 = reads.schedule(second);
    const views2 = await Promise.all(second.map((it) => out2.get(it.want.sha256)!));

    // Assess: views of shared memory; the second read took the first's buffer (only one more was made: reusedTooSoon)
    expect(decoded1.map((d) => sha256Hex(d))).toEqual(first.map((it) => it.want.sha256));
    expect(views1.every((v) => v.buffer instanceof SharedArrayBuffer)).toBe(true);
    expect(reusedTooSoon.buffer).not.toBe(views1[0]!.buffer);
    expect(views2[0]!.buffer).toBe(views1[0]!.buffer);
    expect(bodies.made).toBe(2);
    const decoded2 = await Promise.all(second.map((it, i) => decodeChunk(it.want, it.loc, views2[i]!)));
    expect(decoded2.map((d) => sha256Hex(d))).toEqual(second.map((it) => it.want.sha256));
  });

  it("lends no buffer to a read spanning unwanted bytes: its chunks are copies, and releasing them gives nothing back", async () => {
    // Prepare: chunks 0 and 2 of a pack of three (one read over the gap of chunk 1)
    const objects = new Map<string, Buffer>();
    const items = await packOf(objects, 300, 3, [0, 2]);
    const bodies = sharedBodies(64 * 1024 * 1024);
    const reads = new ChunkReads(lendingStore(objects), "vault", { parallel: 1, bytesInFlight: 1 << 20, sharedBodies: bodies });

    // Act
    const out = reads.schedule(items);
    const views = await Promise.all(items.map((it) => out.get(it.want.sha256)!));
    for (const it of items) reads.release(it.want.sha256);
    const after = bodies.take(1);

    // Assess
    expect(views.every((v) => !(v.buffer instanceof SharedArrayBuffer))).toBe(true);
    expect(bodies.made).toBe(1);
    expect(after.length).toBe(1024 * 1024);
  });
});

describe("ChunkReads", () => {
  it("keeps at most `parallel` reads and `bytesInFlight` bytes in flight, one ranged read per run of adjacent chunks", async () => {
    // Prepare: 4 packs of 10 chunks; reads limited to 2 at once and to about one pack's bytes
    const objects = new Map<string, Buffer>();
    const items: { want: WantedChunk; loc: ChunkLocation }[] = [];
    let packBytes = 0;
    for (let p = 0; p < 4; p++) {
      const b = new PackBuilder();
      const cs = await Promise.all(Array.from({ length: 10 }, (_, i) => chunk(p * 10 + i)));
      for (const c of cs) b.add({ sha256: c.sha256, rawSize: c.raw.length, codec: "zstd", stored: c.stored });
      const pack = b.finish();
      const key = vaultPackKey(DB, pack.name);
      objects.set(key, pack.bytes);
      packBytes = Math.max(packBytes, pack.dataLength);
      for (const e of pack.entries) items.push({ want: { sha256: e.sha256, size: e.rawSize, storedSize: e.storedLength, codec: "zstd", file: `f${p}` }, loc: { key, offset: e.offset, storedSize: e.storedLength, codec: "zstd", recorded: true } });
    }
    const s = gatedStore(objects);
    const reads = new ChunkReads(s.store, "vault", { parallel: 2, bytesInFlight: packBytes });

    // Act
    const out = reads.schedule(items);
    const all = Promise.all(items.map(async (it) => decodeChunk(it.want, it.loc, await out.get(it.want.sha256)!)));
    await s.drain(all);
    const decoded = await all;

    // Assess
    expect(decoded.map((d) => sha256Hex(d))).toEqual(items.map((it) => it.want.sha256));
    expect(s.requests).toHaveLength(4);
    expect(s.requests.every((r) => r.start === 0)).toBe(true);
    expect(s.maxInFlight()).toBe(1);
    expect(reads.fetched).toBe(4);
  });

  it("lets several reads run when their bytes fit, never more than `parallel`", async () => {
    // Prepare: 12 chunks, each its own object
    const objects = new Map<string, Buffer>();
    const items: { want: WantedChunk; loc: ChunkLocation }[] = [];
    for (let i = 0; i < 12; i++) {
      const c = await chunk(i);
      const key = `db/${DB}/chunks/${c.sha256}`;
      objects.set(key, c.stored);
      items.push({ want: { sha256: c.sha256, size: c.raw.length, storedSize: c.stored.length, codec: "zstd", file: "f" }, loc: { key, storedSize: c.stored.length, codec: "zstd", recorded: true } });
    }
    const s = gatedStore(objects);
    const reads = new ChunkReads(s.store, "vault", { parallel: 3, bytesInFlight: 1 << 20 });

    // Act
    const out = reads.schedule(items);
    const all = Promise.all([...out.values()]);
    await s.drain(all);

    // Assess
    expect(s.requests).toHaveLength(12);
    expect(s.maxInFlight()).toBe(3);
  });

  it("names the chunk, its file and its pack when a ranged read returns the wrong length, and when two records claim the same bytes", async () => {
    // Prepare: a pack of two chunks; a third hash recorded at the first chunk's bytes (a damaged catalog); a short object
    const [a, b, c] = await Promise.all([chunk(1), chunk(2), chunk(3)]);
    const builder = new PackBuilder();
    for (const x of [a!, b!]) builder.add({ sha256: x.sha256, rawSize: x.raw.length, codec: "zstd", stored: x.stored });
    const pack = builder.finish();
    const key = vaultPackKey(DB, pack.name);
    const [ea, eb] = pack.entries as [(typeof pack.entries)[0], (typeof pack.entries)[0]];
    const loc = (offset: number, storedSize: number): ChunkLocation => ({ key, offset, storedSize, codec: "zstd", recorded: true });
    const want = (x: { sha256: string; raw: Buffer }, file: string): WantedChunk => ({ sha256: x.sha256, size: x.raw.length, storedSize: 1, codec: "zstd", file });
    const items = [
      { want: want(a!, "base/1"), loc: loc(ea.offset, ea.storedLength) },
      { want: want(c!, "base/3"), loc: loc(ea.offset, ea.storedLength) },
      // Recorded one byte longer than the pack holds: the read comes back short.
      { want: want(b!, "base/2"), loc: loc(eb.offset, eb.storedLength + pack.bytes.length) },
    ];
    const s = gatedStore(new Map([[key, pack.bytes]]));
    // Reads no longer than the first chunk: the overlong record is read alone.
    const reads = new ChunkReads(s.store, "vault", { parallel: 4, bytesInFlight: 1 << 20, maxReadSize: ea.storedLength });

    // Act
    const out = reads.schedule(items);
    const results = Promise.allSettled(items.map(async (it) => decodeChunk(it.want, it.loc, await out.get(it.want.sha256)!)));
    await s.drain(results);
    const [ra, rc, rb] = await results;

    // Assess
    expect(ra).toMatchObject({ status: "fulfilled" });
    expect(rc!.status).toBe("rejected");
    const ec = (rc as PromiseRejectedResult).reason as Error;
    expect(ec).toBeInstanceOf(ChecksumMismatchError);
    expect(ec.message).toContain(`chunk ${c!.sha256} of file "base/3" is corrupt in the vault (pack ${key}, bytes ${ea.offset}-`);
    const eb2 = (rb as PromiseRejectedResult).reason as Error;
    expect(eb2).toBeInstanceOf(ChecksumMismatchError);
    expect(eb2.message).toContain(`chunk ${b!.sha256} of file "base/2" cannot be read from the vault (pack ${key}, bytes ${eb.offset}-`);
    expect(s.requests).toHaveLength(2);
  });
});

describe("locateChunks with the manifest's packs", () => {
  it("takes a chunk's place from its named pack's index, and asks the catalog for those the pack does not hold, an unrecorded pack's and unnamed ones", async () => {
    // Prepare: pack P holds a and b; c names P but is not in it; d names an unrecorded pack; e names none.
    const codec = getCodec("zstd");
    const chunk = async (seed: string) => {
      const raw = Buffer.from(seed.repeat(500));
      return { sha256: sha256Hex(raw), raw, stored: await codec.encode(raw) };
    };
    const [a, b, c, d, e] = await Promise.all(["a", "b", "c", "d", "e"].map(chunk));
    const builder = new PackBuilder({ targetSize: 1024 * 1024 });
    for (const x of [a!, b!]) builder.add({ sha256: x.sha256, rawSize: x.raw.length, codec: "zstd", stored: x.stored });
    const pack = builder.finish();
    const key = vaultPackKey(DB, pack.name);
    const objects = new Map([[key, pack.bytes]]);
    const store = { getRange: async (_b: string, k: string, s: number, en: number) => objects.get(k)?.subarray(s, en + 1) } as unknown as ObjectStore;
    const asked: string[] = [];
    const catalog = {
      async getPack(_db: string, name: string): Promise<PackItem | undefined> {
        return name === pack.name ? { databaseId: DB, name, size: pack.bytes.length, entries: 2, dataLength: pack.dataLength, vaultKey: key, recordedAt: "2026-12-01T00:00:00.000Z" } : undefined;
      },
      async getChunks(_db: string, hashes: readonly string[]): Promise<ChunkItem[]> {
        asked.push(...hashes);
        return [];
      },
    };
    const want = (x: { sha256: string; raw: Buffer; stored: Buffer }, p?: string): WantedChunk => ({ sha256: x.sha256, size: x.raw.length, storedSize: x.stored.length, codec: "zstd", file: "f", ...(p === undefined ? {} : { pack: p }) });

    // Act
    const located = await locateChunks(catalog as unknown as Catalog, DB, [want(a!, pack.name), want(b!, pack.name), want(c!, pack.name), want(d!, "0".repeat(64)), want(e!)], new PackIndexCache(catalog, store, "vault", DB));

    // Assess
    const inPack = pack.entries.find((x) => x.sha256 === b!.sha256)!;
    expect(located.get(b!.sha256)).toEqual({ key, offset: inPack.offset, storedSize: inPack.storedLength, codec: "zstd", recorded: true });
    expect(located.get(a!.sha256)?.key).toBe(key);
    expect(asked.sort()).toEqual([c!.sha256, d!.sha256, e!.sha256].sort());
    expect(located.get(c!.sha256)).toMatchObject({ key: vaultChunkKey(DB, c!.sha256), recorded: false });
  });
});
