import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ChunkTable } from "../../core/chunk-table.js";
import { firstWords, KnownFilter } from "../../core/known-filter.js";

const digest = (i: number): Buffer => createHash("sha256").update(`chunk ${i}`).digest();

describe("KnownFilter", () => {
  it("holds every digest added and, over 20,000 others, none it was not given", () => {
    // Prepare
    const filter = KnownFilter.forCount(5_000);
    const members = Array.from({ length: 5_000 }, (_, i) => digest(i));
    // Act
    for (const d of members) filter.add(...firstWords(d));
    // Assess
    expect(members.every((d) => filter.hasDigest(d))).toBe(true);
    const strangers = Array.from({ length: 20_000 }, (_, i) => digest(1_000_000 + i));
    expect(strangers.filter((d) => filter.hasDigest(d))).toEqual([]);
  });

  it("is read by another filter over the same shared buffer (as a worker thread reads it)", () => {
    // Prepare
    const filter = KnownFilter.forCount(10);
    filter.add(...firstWords(digest(1)));
    // Act
    const seen = new KnownFilter(filter.buffer);
    // Assess
    expect(filter.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(seen.hasDigest(digest(1))).toBe(true);
    expect(seen.hasDigest(digest(2))).toBe(false);
  });

  it("tells a digest whose first 8 bytes are zero from an empty slot", () => {
    // Prepare
    const filter = KnownFilter.forCount(4);
    const zero = Buffer.alloc(32);
    expect(filter.hasDigest(zero)).toBe(false);
    // Act
    filter.add(...firstWords(zero));
    // Assess
    expect(filter.hasDigest(zero)).toBe(true);
  });

  it("reads a digest at an offset that is not a multiple of 4", () => {
    // Prepare
    const d = digest(7);
    const filter = KnownFilter.forCount(1);
    filter.add(...firstWords(d));
    const shifted = Buffer.concat([Buffer.alloc(1), d]).subarray(1);
    // Act + Assess
    expect(firstWords(shifted)).toEqual(firstWords(d));
    expect(filter.hasDigest(shifted)).toBe(true);
  });

  it("takes a ChunkTable's digests through forEachPrefix", () => {
    // Prepare
    const table = new ChunkTable();
    const hexes = Array.from({ length: 300 }, (_, i) => digest(i).toString("hex"));
    for (const h of hexes) table.set(h, { size: 1, storedSize: 1, codec: "zstd", isNew: false, seen: false });
    const filter = KnownFilter.forCount(table.size);
    // Act
    table.forEachPrefix((w0, w1) => filter.add(w0, w1));
    // Assess
    expect(hexes.every((h) => filter.hasDigest(Buffer.from(h, "hex")))).toBe(true);
    expect(filter.hasDigest(digest(5000))).toBe(false);
  });

  it("refuses a buffer that is not a power of two slots of 8 bytes", () => {
    expect(() => new KnownFilter(new ArrayBuffer(100))).toThrow(/power of two slots of 8 bytes, got 100 bytes/);
    expect(() => new KnownFilter(new ArrayBuffer(8 * 24))).toThrow(RangeError);
  });
});
