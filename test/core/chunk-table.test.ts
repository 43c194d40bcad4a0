/**
 * ChunkTable (core/chunk-table.ts): a compact SHA-256-keyed set of chunk
 * entries, checked against a Map over random digests across several growths.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ChunkTable, PackNumbering, type ChunkTableEntry } from "../../core/chunk-table.js";
import { CODEC_NAMES } from "../../core/codec.js";
import { seededRandom } from "../support/random.js";

const digest = (i: number): string => createHash("sha256").update(`chunk ${i}`).digest("hex");

describe("ChunkTable", () => {
  it("holds what a Map holds over 10,000 chunks added, replaced and looked up, through its growths (pack numbers included)", () => {
    // Prepare
    const random = seededRandom(11);
    const table = new ChunkTable();
    const model = new Map<string, ChunkTableEntry>();
    // Act
    for (let n = 0; n < 30_000; n++) {
      const sha = digest(Math.floor(random() * 10_000));
      const e: ChunkTableEntry = {
        size: Math.floor(random() * 4 * 1024 * 1024),
        storedSize: Math.floor(random() * 0xffff_ffff),
        codec: CODEC_NAMES[Math.floor(random() * CODEC_NAMES.length)]!,
        isNew: random() < 0.5,
        seen: random() < 0.7,
        ...(random() < 0.4 ? { pack: Math.floor(random() * 100_000) } : {}),
      };
      table.set(sha, e);
      model.set(sha, e);
    }
    // Assess
    expect(table.size).toBe(model.size);
    for (const [sha, e] of model) expect(table.get(sha)).toEqual(e);
    for (let i = 10_000; i < 10_100; i++) expect(table.get(digest(i))).toBeUndefined();
    const seen = [...model.values()].filter((e) => e.seen);
    expect(table.seenTotals()).toEqual({ chunks: seen.length, storedBytes: seen.reduce((a, e) => a + e.storedSize, 0) });
  });

  it("markSeen flags a held chunk seen once, counts it in the totals once, and leaves an absent one absent", () => {
    // Prepare
    const random = seededRandom(5);
    const table = new ChunkTable();
    const model = new Map<string, ChunkTableEntry>();
    // Act: sets and markSeen calls interleaved over 2,000 digests.
    const answers: [ChunkTableEntry | undefined, ChunkTableEntry | undefined][] = [];
    for (let n = 0; n < 10_000; n++) {
      const sha = digest(Math.floor(random() * 2_000));
      if (random() < 0.5) {
        const e: ChunkTableEntry = { size: n, storedSize: Math.floor(random() * 1000), codec: "zstd", isNew: random() < 0.5, seen: false };
        table.set(sha, e);
        model.set(sha, e);
      } else {
        const held = model.get(sha);
        if (held) model.set(sha, { ...held, seen: true });
        answers.push([table.markSeen(sha), model.get(sha)]);
      }
    }
    // Assess
    for (const [got, want] of answers) expect(got).toEqual(want);
    for (const [sha, e] of model) expect(table.get(sha)).toEqual(e);
    const seen = [...model.values()].filter((e) => e.seen);
    expect(table.seenTotals()).toEqual({ chunks: seen.length, storedBytes: seen.reduce((a, e) => a + e.storedSize, 0) });
  });

  it("seenReusedPacks gives the packs of the chunks seen and not new, each once, and none of unseen, new or pack-less ones", () => {
    // Prepare
    const t = new ChunkTable();
    const d = (i: number): string => createHash("sha256").update(`reused-${i}`).digest("hex");
    t.set(d(1), { size: 1, storedSize: 1, codec: "zstd", isNew: false, seen: false, pack: 7 }); // previous manifest, seen below
    t.set(d(2), { size: 1, storedSize: 1, codec: "zstd", isNew: false, seen: false, pack: 7 }); // seen below: same pack
    t.set(d(3), { size: 1, storedSize: 1, codec: "zstd", isNew: false, seen: false, pack: 9 }); // never seen
    t.set(d(4), { size: 1, storedSize: 1, codec: "zstd", isNew: true, seen: true, pack: 2 }); // new: a pack of this push
    t.set(d(5), { size: 1, storedSize: 1, codec: "zstd", isNew: false, seen: true, pack: 0 }); // from a catalog record
    t.set(d(6), { size: 1, storedSize: 1, codec: "zstd", isNew: false, seen: true }); // no pack known
    // Act
    t.markSeen(d(1));
    t.markSeen(d(2));
    // Assess
    expect([...t.seenReusedPacks()].sort()).toEqual([0, 7]);
  });

  it("tells apart digests that share their first 32 bits (one probe chain)", () => {
    // Prepare
    const a = "00000001" + "a".repeat(56);
    const b = "00000001" + "b".repeat(56);
    const table = new ChunkTable();
    // Act
    table.set(a, { size: 1, storedSize: 1, codec: "zstd", isNew: true, seen: true });
    table.set(b, { size: 2, storedSize: 2, codec: "none", isNew: false, seen: false });
    // Assess
    expect(table.get(a)).toMatchObject({ size: 1, codec: "zstd" });
    expect(table.get(b)).toMatchObject({ size: 2, codec: "none" });
    expect(table.seenTotals()).toEqual({ chunks: 1, storedBytes: 1 });
  });

  it("refuses a key that is not a hex SHA-256 and a size past 32 bits", () => {
    const table = new ChunkTable();
    expect(() => table.get("ABC")).toThrow("'ABC' is not a hex SHA-256");
    expect(() => table.get("g".repeat(64))).toThrow("is not a hex SHA-256");
    expect(() => table.set(digest(1), { size: 2 ** 32, storedSize: 1, codec: "zstd", isNew: true, seen: true })).toThrow(/size 4294967296 is not a 32-bit size/);
  });
});

describe("PackNumbering", () => {
  it("numbers names in the order first asked for, and gives a name asked for again its number", () => {
    // Prepare
    const n = new PackNumbering();
    // Act
    const got = ["b", "a", "b", "c", "a"].map((name) => n.numberOf(name));
    // Assess
    expect(got).toEqual([0, 1, 0, 2, 1]);
    expect(n.names).toEqual(["b", "a", "c"]);
  });
});
