import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeWith, getCodec, type CodecName } from "../../core/codec.js";
import { CorruptPackError, InvalidInputError, type PackProblem } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import {
  DEFAULT_MAX_PACK_ENTRIES,
  MAX_PACK_ENTRIES,
  PACK_FOOTER_SIZE,
  PACK_INDEX_ENTRY_SIZE,
  PACK_TAIL_READ_BYTES,
  PackBuilder,
  chunkOfRead,
  coalescePackReads,
  encodePackTail,
  parsePackFooter,
  parsePackIndex,
  rangeHeader,
  vaultPackKey,
  verifyPack,
  type BuiltPack,
  type PackChunk,
  type PackEntry,
} from "../../core/pack.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Compressible bytes, unique per seed: a page-like pattern around a counter. */
function compressible(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 64) out.writeUInt32LE((seed * 1_000_003 + i) >>> 0, i);
  return out;
}

async function encoded(raw: Buffer, codec: CodecName = "zstd"): Promise<PackChunk> {
  return { sha256: sha256Hex(raw), rawSize: raw.length, codec, stored: await getCodec(codec).encode(raw) };
}

/** A pack of `n` zstd chunks of 16 KiB plus one stored uncompressed. */
async function samplePack(n = 5): Promise<{ pack: BuiltPack; raws: Map<string, Buffer> }> {
  const b = new PackBuilder({ targetSize: 4 * MiB });
  const raws = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const raw = compressible(16 * KiB, i);
    raws.set(sha256Hex(raw), raw);
    b.add(await encoded(raw));
  }
  const plain = randomBytes(3000);
  raws.set(sha256Hex(plain), plain);
  b.add(await encoded(plain, "none"));
  return { pack: b.finish(), raws };
}

const sha = (i: number): string => createHash("sha256").update(`chunk ${i}`).digest("hex");

/** A pack with these entries over `dataLength` data bytes (zeros): no validation, to write malformed ones. */
function craft(entries: PackEntry[], dataLength: number): Buffer {
  return Buffer.concat([Buffer.alloc(dataLength), encodePackTail(entries, dataLength)]);
}

/** Recomputes a crafted pack's footer checksum after its index or footer bytes were edited. */
function reseal(pack: Buffer): Buffer {
  const footer = pack.length - PACK_FOOTER_SIZE;
  const indexLength = pack.readUInt32LE(footer + 16);
  createHash("sha256").update(pack.subarray(footer - indexLength, footer + 24)).digest().copy(pack, footer + 24);
  return pack;
}

function flip(bytes: Buffer, at: number, mask: number): void {
  bytes.writeUInt8(bytes.readUInt8(at) ^ mask, at);
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

function expectCorrupt(fn: () => unknown, problem: PackProblem, ...fragments: string[]): CorruptPackError {
  const e = caught(fn);
  expect(e).toBeInstanceOf(CorruptPackError);
  const err = e as CorruptPackError;
  expect(err.problem).toBe(problem);
  expect(err.message.split("\n")).toHaveLength(1);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

describe("PackBuilder and parsePackIndex: round trip", () => {
  it("writes chunks back to back, names the pack by the SHA-256 of its bytes, and reads the same index back", async () => {
    // Prepare / Act
    const { pack, raws } = await samplePack();
    // Assess: the name, the layout and the index
    expect(pack.name).toBe(sha256Hex(pack.bytes));
    expect(pack.entries).toHaveLength(6);
    expect(pack.bytes.length).toBe(pack.dataLength + pack.entries.length * PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE);
    expect(pack.indexLength).toBe(6 * PACK_INDEX_ENTRY_SIZE);
    const index = parsePackIndex(pack.bytes, { packSize: pack.bytes.length });
    expect(index.entries).toEqual(pack.entries);
    expect(index.footer).toMatchObject({ version: 1, entryCount: 6, dataLength: pack.dataLength, packSize: pack.bytes.length });
    expect(verifyPack(pack.bytes, pack.name).entries).toEqual(pack.entries);
    // Every chunk decodes from its slice to the bytes its name hashes.
    for (const e of index.entries) {
      const raw = await decodeWith(e.codec, pack.bytes.subarray(e.offset, e.offset + e.storedLength), `chunk ${e.sha256}`, e.rawSize);
      expect(sha256Hex(raw)).toBe(e.sha256);
      expect(raw.equals(raws.get(e.sha256)!)).toBe(true);
    }
    expect(index.entries.find((e) => e.codec === "none")?.storedLength).toBe(3000);
  });

  it("parses the index from a tail slice: the footer alone gives the length to read", async () => {
    // Prepare
    const { pack } = await samplePack(40);
    // Act: first the last 64 bytes, then exactly the tail they ask for
    const footer = parsePackFooter(pack.bytes.subarray(pack.bytes.length - PACK_FOOTER_SIZE), { packSize: pack.bytes.length });
    const tail = Buffer.from(pack.bytes.subarray(pack.bytes.length - footer.tailLength));
    const index = parsePackIndex(tail, { packSize: pack.bytes.length });
    // Assess
    expect(footer.tailLength).toBe(41 * PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE);
    expect(index.entries).toEqual(pack.entries);
    expect(parsePackIndex(tail).entries).toEqual(pack.entries);
  });

  it("asks for a longer read, without calling the pack corrupt, when the tail given is shorter than its index", async () => {
    const { pack } = await samplePack();
    const e = caught(() => parsePackIndex(pack.bytes.subarray(pack.bytes.length - 100), { what: "pack p1", packSize: pack.bytes.length }));
    expect(e).toBeInstanceOf(InvalidInputError);
    expect((e as Error).message).toBe(`pack p1: 100 bytes given as its tail, but its index and footer take the last ${6 * PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE}: read that many`);
  });

  it("keeps a pack at or under its target and starts the next one when a chunk does not fit", async () => {
    // Prepare: 300 chunks of ~1 KiB stored (random, so they do not shrink), target 64 KiB
    const b = new PackBuilder({ targetSize: 64 * KiB });
    const packs: BuiltPack[] = [];
    // Act
    for (let i = 0; i < 300; i++) {
      const c = await encoded(randomBytes(1000), "none");
      if (!b.fits(c.stored.length)) packs.push(b.finish());
      b.add(c);
    }
    packs.push(b.finish());
    // Assess
    expect(packs.reduce((n, p) => n + p.entries.length, 0)).toBe(300);
    for (const p of packs) {
      expect(p.bytes.length).toBeLessThanOrEqual(64 * KiB);
      expect(verifyPack(p.bytes, p.name).entries).toEqual(p.entries);
    }
    expect(packs.slice(0, -1).every((p) => p.bytes.length > 64 * KiB - 1000 - PACK_INDEX_ENTRY_SIZE)).toBe(true);
    expect(b.count).toBe(0);
  });

  it("puts a chunk larger than the target in a pack of its own", async () => {
    const b = new PackBuilder({ targetSize: 64 * KiB });
    const big = await encoded(randomBytes(100 * KiB), "none");
    expect(b.fits(big.stored.length)).toBe(true);
    b.add(big);
    expect(b.fits(1)).toBe(false);
    const p = b.finish();
    expect(p.bytes.length).toBe(100 * KiB + PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE);
    expect(verifyPack(p.bytes, p.name).entries).toHaveLength(1);
  });

  it("caps the chunks per pack", async () => {
    const b = new PackBuilder({ targetSize: 4 * MiB, maxEntries: 3 });
    for (let i = 0; i < 3; i++) b.add(await encoded(compressible(1000, i)));
    expect(b.fits(1)).toBe(false);
    expect(() => b.add({ sha256: sha(9), rawSize: 1, codec: "none", stored: Buffer.from("x") })).toThrow(/does not fit the pack .*finish it first/);
    expect(DEFAULT_MAX_PACK_ENTRIES * PACK_INDEX_ENTRY_SIZE + PACK_FOOTER_SIZE).toBeLessThanOrEqual(PACK_TAIL_READ_BYTES);
  });

  it("refuses a chunk twice in one pack, and takes it again in the next", async () => {
    const b = new PackBuilder();
    const c = await encoded(compressible(5000, 1));
    b.add(c);
    expect(b.has(c.sha256)).toBe(true);
    expect(() => b.add(c)).toThrow(`chunk ${c.sha256.slice(0, 12)}… is already in this pack`);
    b.finish();
    expect(b.has(c.sha256)).toBe(false);
    b.add(c);
    expect(b.finish().entries).toHaveLength(1);
  });

  it("copies the chunk bytes, so the caller's buffer may be reused", async () => {
    const b = new PackBuilder();
    const stored = Buffer.from(randomBytes(500));
    const chunk: PackChunk = { sha256: sha256Hex(stored), rawSize: 500, codec: "none", stored };
    b.add(chunk);
    const copy = Buffer.from(stored);
    stored.fill(0);
    const p = b.finish();
    expect(p.bytes.subarray(0, 500).equals(copy)).toBe(true);
    expect(p.name).toBe(sha256Hex(p.bytes));
  });

  it("writes each pack into the buffer its allocator gives, so a caller can reuse buffers once uploaded", async () => {
    // Prepare: a pool of one buffer, taken back after each pack
    const pool: Buffer[] = [Buffer.alloc(64 * KiB)];
    const asked: number[] = [];
    const b = new PackBuilder({
      targetSize: 64 * KiB,
      allocate: (capacity) => {
        asked.push(capacity);
        return pool.pop() ?? Buffer.alloc(capacity);
      },
    });
    const names: string[] = [];
    // Act: two packs through the same buffer
    for (let i = 0; i < 2; i++) {
      b.add(await encoded(compressible(20 * KiB, i)));
      const p = b.finish();
      expect(verifyPack(p.bytes, p.name).entries).toHaveLength(1);
      names.push(p.name);
      pool.push(Buffer.from(p.bytes.buffer, p.bytes.byteOffset, 64 * KiB));
    }
    // Assess
    expect(asked).toEqual([64 * KiB, 64 * KiB]);
    expect(pool).toHaveLength(1);
    expect(new Set(names).size).toBe(2);
    const small = new PackBuilder({ targetSize: 64 * KiB, allocate: () => Buffer.alloc(10) });
    expect(() => small.add({ sha256: sha(1), rawSize: 1, codec: "none", stored: Buffer.from("x") })).toThrow("the pack buffer allocator gave 10 bytes, fewer than the 65536 asked for");
  });

  it.each([
    ["an empty pack", (b: PackBuilder) => b.finish(), "cannot finish an empty pack"],
    ["a malformed chunk id", (b: PackBuilder) => b.add({ sha256: "ABC", rawSize: 1, codec: "none", stored: Buffer.from("x") }), "chunk id 'ABC' is not a lowercase hex SHA-256"],
    ["an unknown codec", (b: PackBuilder) => b.add({ sha256: sha(1), rawSize: 1, codec: "lz4" as CodecName, stored: Buffer.from("x") }), "unknown codec 'lz4'"],
    ["no stored bytes", (b: PackBuilder) => b.add({ sha256: sha(1), rawSize: 1, codec: "zstd", stored: Buffer.alloc(0) }), "0 stored bytes"],
    ["a raw size of 0", (b: PackBuilder) => b.add({ sha256: sha(1), rawSize: 0, codec: "zstd", stored: Buffer.from("x") }), "raw size 0"],
    ["codec none with stored and raw sizes apart", (b: PackBuilder) => b.add({ sha256: sha(1), rawSize: 2, codec: "none", stored: Buffer.from("x") }), "codec none, but 1 stored bytes for 2 raw"],
  ])("refuses %s with InvalidInputError", (_label, act, message) => {
    const e = caught(() => act(new PackBuilder()));
    expect(e).toBeInstanceOf(InvalidInputError);
    expect((e as Error).message).toContain(message);
  });

  it.each([
    [{ targetSize: 1000 }, "pack target size 1000 is not an integer between"],
    [{ targetSize: 2 ** 31 }, "pack target size 2147483648"],
    [{ maxEntries: 0 }, "pack entry cap 0"],
    [{ maxEntries: MAX_PACK_ENTRIES + 1 }, `pack entry cap ${MAX_PACK_ENTRIES + 1}`],
  ])("refuses options %o", (options, message) => {
    expect(() => new PackBuilder(options)).toThrow(message);
  });

  it("keys a pack by its name under the database", () => {
    expect(vaultPackKey("pg-main", sha(1))).toBe(`db/pg-main/packs/${sha(1)}`);
    expect(() => vaultPackKey("pg-main", "../x")).toThrow("pack name '../x' is not a lowercase hex SHA-256");
    expect(() => vaultPackKey("PG", sha(1))).toThrow(InvalidInputError);
  });
});

describe("parsePackIndex refuses every corruption, naming it", () => {
  const two = (): PackEntry[] => [
    { sha256: sha(0), offset: 0, storedLength: 100, codec: "zstd", rawSize: 400 },
    { sha256: sha(1), offset: 100, storedLength: 50, codec: "gzip", rawSize: 200 },
  ];

  it("accepts the crafted baseline", () => {
    expect(parsePackIndex(craft(two(), 150)).entries).toEqual(two());
  });

  it("bad magic: not a pack", async () => {
    const { pack } = await samplePack();
    const bytes = Buffer.from(pack.bytes);
    flip(bytes, bytes.length - 1, 0xff);
    expectCorrupt(() => parsePackIndex(bytes, { what: "pack db/x/packs/abc" }), "bad_magic", 'pack db/x/packs/abc does not end with the pack magic "WVLTPACK"');
  });

  it("bad magic: the tail was cut off", async () => {
    const { pack } = await samplePack();
    expectCorrupt(() => verifyPack(pack.bytes.subarray(0, pack.bytes.length - 10), pack.name), "bad_magic", "not a pack, or truncated");
  });

  it("truncated: shorter than a footer", () => {
    expectCorrupt(() => parsePackIndex(Buffer.from("short")), "truncated", "pack is 5 bytes, shorter than the 64-byte footer of a pack");
  });

  it("truncated: the front is missing (the object is shorter than its footer says)", async () => {
    const { pack } = await samplePack();
    const cut = pack.bytes.subarray(1000);
    expectCorrupt(() => parsePackIndex(cut, { packSize: cut.length }), "truncated", `is ${cut.length} bytes, but its footer describes ${pack.bytes.length}`, "truncated");
    expectCorrupt(() => verifyPack(cut, pack.name), "truncated");
  });

  it("truncated: the whole object is only part of its index", () => {
    const bytes = craft(two(), 150).subarray(150 + 10);
    expectCorrupt(() => parsePackIndex(bytes), "truncated", `shorter than its ${2 * PACK_INDEX_ENTRY_SIZE}-byte index and footer`);
  });

  it("trailing bytes: the object is longer than its footer says", () => {
    const bytes = craft(two(), 150);
    const tail = bytes.subarray(bytes.length - 200);
    expectCorrupt(() => parsePackIndex(tail, { packSize: bytes.length + 7 }), "truncated", "has trailing bytes");
  });

  it("unsupported version", () => {
    const bytes = craft(two(), 150);
    bytes.writeUInt32LE(2, bytes.length - PACK_FOOTER_SIZE);
    expectCorrupt(() => parsePackIndex(bytes), "unsupported_version", "has pack format version 2; this walvault reads version 1");
  });

  it.each([
    ["an entry count that disagrees with the index length", (f: Buffer, at: number) => f.writeUInt32LE(3, at + 4), "footer says 3 entries but an index of 104 bytes (expected 156)"],
    ["no entries", (f: Buffer, at: number) => (f.writeUInt32LE(0, at + 4), f.writeUInt32LE(0, at + 16)), "footer says the pack holds no chunk"],
    ["more entries than a pack may hold", (f: Buffer, at: number) => f.writeUInt32LE(MAX_PACK_ENTRIES + 1, at + 4), `more than the ${MAX_PACK_ENTRIES} a pack may hold`],
    ["reserved bytes", (f: Buffer, at: number) => f.writeUInt32LE(1, at + 20), "footer has reserved bytes set"],
  ])("bad footer: %s", (_label, edit, message) => {
    const bytes = craft(two(), 150);
    edit(bytes, bytes.length - PACK_FOOTER_SIZE);
    expectCorrupt(() => parsePackIndex(bytes), "bad_footer", message);
  });

  it("index hash mismatch: a flipped bit in the index", async () => {
    const { pack } = await samplePack();
    const bytes = Buffer.from(pack.bytes);
    flip(bytes, pack.dataLength + 40, 0x01); // entry 0's stored length
    expectCorrupt(() => parsePackIndex(bytes, { what: "pack P" }), "index_hash_mismatch", "pack P index does not match the checksum in its footer");
  });

  it("index hash mismatch: a flipped bit in the footer's data length, read from a tail alone", async () => {
    const { pack } = await samplePack();
    const bytes = Buffer.from(pack.bytes);
    flip(bytes, bytes.length - PACK_FOOTER_SIZE + 8, 0x01);
    expectCorrupt(() => parsePackIndex(bytes.subarray(pack.dataLength)), "index_hash_mismatch", "the index or footer is corrupt");
  });

  it("index hash mismatch: a flipped bit in the checksum itself", async () => {
    const { pack } = await samplePack();
    const bytes = Buffer.from(pack.bytes);
    flip(bytes, bytes.length - 20, 0x80);
    expectCorrupt(() => parsePackIndex(bytes), "index_hash_mismatch");
  });

  it("offset out of bounds", () => {
    const entries = two();
    entries[1] = { ...entries[1]!, storedLength: 60 };
    const err = expectCorrupt(() => parsePackIndex(craft(entries, 150)), "out_of_bounds", `index entry 1 (chunk ${sha(1).slice(0, 12)}…) at bytes 100-159 lies outside the 150 bytes of chunk data`);
    expect(err.entry).toBe(1);
  });

  it("offset out of bounds, past 2^53", () => {
    const entries = two();
    entries[1] = { ...entries[1]!, offset: 2 ** 60 };
    expectCorrupt(() => parsePackIndex(craft(entries, 150)), "out_of_bounds", "index entry 1");
  });

  it("overlapping entries", () => {
    const entries = two();
    entries[1] = { ...entries[1]!, offset: 90, storedLength: 60 };
    const err = expectCorrupt(() => parsePackIndex(craft(entries, 150)), "overlap", "index entry 1", "at bytes 90-149 overlaps index entry 0 at bytes 0-99");
    expect(err.entry).toBe(1);
  });

  it("entries out of offset order", () => {
    const [a, b] = two();
    expectCorrupt(() => parsePackIndex(craft([{ ...b!, offset: 100 }, { ...a!, offset: 0 }], 150)), "gap", "index entry 0", "starts at byte 100, but the chunk data starts at byte 0");
    expectCorrupt(() => parsePackIndex(craft([a!, { ...a!, sha256: sha(5), offset: 0 }, { ...b!, offset: 100 }], 150)), "overlap", "index entry 1", "overlaps index entry 0");
  });

  it("a gap between entries", () => {
    const entries = two();
    entries[1] = { ...entries[1]!, offset: 120, storedLength: 30 };
    expectCorrupt(() => parsePackIndex(craft(entries, 150)), "gap", "index entry 1", "starts at byte 120, but the previous chunk ends at byte 100: bytes 100-119 belong to no chunk");
  });

  it("data bytes after the last entry", () => {
    expectCorrupt(() => parsePackIndex(craft(two(), 170)), "gap", "chunk data bytes 150-169 after the last index entry belong to no chunk");
  });

  it("duplicate chunk", () => {
    const entries = two();
    entries[1] = { ...entries[1]!, sha256: sha(0) };
    const err = expectCorrupt(() => parsePackIndex(craft(entries, 150)), "duplicate_chunk", `holds chunk ${sha(0)} twice: index entries 0 and 1`);
    expect(err.entry).toBe(1);
  });

  it.each([
    ["an unknown codec id", (b: Buffer, at: number) => b.writeUInt8(77, at + 48), "index entry 1", "has unknown codec id 77"],
    ["reserved bytes", (b: Buffer, at: number) => b.writeUInt8(1, at + 50), "index entry 1", "has reserved bytes set"],
    ["a stored length of 0", (b: Buffer, at: number) => b.writeUInt32LE(0, at + 40), "index entry 1", "has a stored length of 0"],
    ["a raw size of 0", (b: Buffer, at: number) => b.writeUInt32LE(0, at + 44), "index entry 1", "has a raw size of 0"],
    ["codec none with sizes apart", (b: Buffer, at: number) => b.writeUInt8(0, at + 48), "index entry 1", "stored uncompressed (codec none) but records 50 stored bytes for 200 raw"],
  ])("bad entry: %s", (_label, edit, ...fragments) => {
    const bytes = craft(two(), 150);
    edit(bytes, 150 + PACK_INDEX_ENTRY_SIZE);
    expectCorrupt(() => parsePackIndex(reseal(bytes)), "bad_entry", ...fragments);
  });

  it("name mismatch: a flipped bit in chunk data passes the index but not the name", async () => {
    const { pack } = await samplePack();
    const bytes = Buffer.from(pack.bytes);
    flip(bytes, 10, 0x01);
    expect(parsePackIndex(bytes).entries).toEqual(pack.entries);
    expectCorrupt(() => verifyPack(bytes, pack.name), "name_mismatch", `pack ${pack.name} hashes to`, "not to its name");
  });
});

describe("coalescePackReads", () => {
  const chunk = (offset: number, storedLength: number): { offset: number; storedLength: number } => ({ offset, storedLength });

  it("joins adjacent chunks into one read", () => {
    const reads = coalescePackReads([chunk(0, 10), chunk(10, 20), chunk(30, 5)]);
    expect(reads).toEqual([{ start: 0, end: 35, chunks: [chunk(0, 10), chunk(10, 20), chunk(30, 5)] }]);
    expect(rangeHeader(reads[0]!)).toBe("bytes=0-34");
  });

  it("spans a gap up to maxGap, and splits beyond it", () => {
    const reads = coalescePackReads([chunk(0, 10), chunk(20, 10), chunk(41, 10)], { maxGap: 10 });
    expect(reads.map((r) => [r.start, r.end])).toEqual([
      [0, 30],
      [41, 51],
    ]);
  });

  it("splits a read that would exceed maxReadSize", () => {
    const reads = coalescePackReads([chunk(0, 40), chunk(40, 40), chunk(80, 40)], { maxReadSize: 100 });
    expect(reads.map((r) => [r.start, r.end, r.chunks.length])).toEqual([
      [0, 80, 2],
      [80, 120, 1],
    ]);
  });

  it("reads a chunk longer than maxReadSize alone", () => {
    const reads = coalescePackReads([chunk(0, 10), chunk(10, 500), chunk(510, 10)], { maxReadSize: 100 });
    expect(reads.map((r) => [r.start, r.end])).toEqual([
      [0, 10],
      [10, 510],
      [510, 520],
    ]);
  });

  it("sorts the wanted chunks and reads a chunk wanted twice once", () => {
    const reads = coalescePackReads([chunk(30, 5), chunk(0, 10), chunk(30, 5), chunk(10, 20)]);
    expect(reads).toEqual([{ start: 0, end: 35, chunks: [chunk(0, 10), chunk(10, 20), chunk(30, 5)] }]);
  });

  it("reads nothing for nothing wanted", () => {
    expect(coalescePackReads([])).toEqual([]);
  });

  it("with maxGap 0, joins only chunks that touch", () => {
    expect(coalescePackReads([chunk(0, 10), chunk(10, 10), chunk(21, 10)], { maxGap: 0 }).map((r) => r.chunks.length)).toEqual([2, 1]);
  });

  it("refuses overlapping wanted chunks and bad parameters", () => {
    expect(() => coalescePackReads([chunk(0, 10), chunk(5, 10)])).toThrow("wanted chunks at bytes 0-9 and 5-14 overlap");
    expect(() => coalescePackReads([chunk(0, 0)])).toThrow(InvalidInputError);
    expect(() => coalescePackReads([chunk(-1, 5)])).toThrow(InvalidInputError);
    expect(() => coalescePackReads([], { maxGap: -1 })).toThrow("read gap -1");
    expect(() => coalescePackReads([], { maxReadSize: 0 })).toThrow("read size 0");
  });

  it("restores chunks of a real pack through ranged reads of its bytes", async () => {
    // Prepare: a pack of 40 chunks; want every third one
    const { pack, raws } = await samplePack(40);
    const wanted = pack.entries.filter((_, i) => i % 3 === 0);
    // Act: coalesce with a gap smaller than one chunk, so every wanted chunk is its own read
    const tight = coalescePackReads(wanted, { maxGap: 1 });
    const loose = coalescePackReads(wanted, { maxGap: 1 * MiB });
    // Assess
    expect(tight).toHaveLength(wanted.length);
    expect(loose).toHaveLength(1);
    for (const reads of [tight, loose]) {
      let n = 0;
      for (const r of reads) {
        const body = pack.bytes.subarray(r.start, r.end);
        for (const e of r.chunks) {
          const raw = await decodeWith(e.codec, chunkOfRead(r, body, e), `chunk ${e.sha256}`, e.rawSize);
          expect(raw.equals(raws.get(e.sha256)!)).toBe(true);
          n++;
        }
      }
      expect(n).toBe(wanted.length);
    }
  });

  it("chunkOfRead refuses a short body and a chunk outside the read", () => {
    const read = { start: 100, end: 200 };
    expect(chunkOfRead(read, Buffer.alloc(100, 7), chunk(150, 10)).length).toBe(10);
    expect(() => chunkOfRead(read, Buffer.alloc(99), chunk(150, 10))).toThrow("returned 99 bytes, not 100");
    expect(() => chunkOfRead(read, Buffer.alloc(100), chunk(195, 10))).toThrow("is not within the read of bytes 100-199");
  });
});
