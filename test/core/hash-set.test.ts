import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { SortedHashSet } from "../../core/hash-set.js";

const sha = (n: number): string => createHash("sha256").update(`chunk ${n}`).digest("hex");

describe("SortedHashSet", () => {
  it("holds what was added, across batches, each once, at 32 bytes a hash", () => {
    // Prepare
    const set = new SortedHashSet();
    // Act: overlapping batches, with duplicates inside a batch.
    set.addAll([sha(1), sha(2), sha(3), sha(2)]);
    set.addAll([sha(3), sha(4), sha(5)]);
    set.addAll([]);
    // Assess
    expect(set.size).toBe(5);
    expect(set.byteLength).toBe(5 * 32);
    for (const n of [1, 2, 3, 4, 5]) expect(set.has(sha(n))).toBe(true);
    for (const n of [0, 6, 7]) expect(set.has(sha(n))).toBe(false);
  });

  it("agrees with a Set over many random batches", () => {
    // Prepare
    const set = new SortedHashSet();
    const reference = new Set<string>();
    // Act
    for (let b = 0; b < 20; b++) {
      const batch = Array.from({ length: 50 }, (_, i) => sha((b * 37 + i * 13) % 400));
      set.addAll(batch);
      for (const h of batch) reference.add(h);
    }
    // Assess
    expect(set.size).toBe(reference.size);
    for (let n = 0; n < 500; n++) expect(set.has(sha(n))).toBe(reference.has(sha(n)));
  });

  it("rejects what is not a lowercase hex SHA-256", () => {
    expect(() => new SortedHashSet().addAll(["xyz"])).toThrow(InvalidInputError);
    expect(() => new SortedHashSet().has(sha(1).toUpperCase())).toThrow(InvalidInputError);
  });

  it("round-trips through toBuffer and merges sorted buffers as it merges batches", () => {
    // Prepare: two sets that overlap.
    const a = new SortedHashSet();
    a.addAll([1, 2, 3, 4].map(sha));
    const b = new SortedHashSet();
    b.addAll([3, 4, 5, 6].map(sha));
    // Act
    const merged = new SortedHashSet();
    merged.addSorted(a.toBuffer());
    merged.addSorted(b.toBuffer());
    merged.addSorted(new Uint8Array(0));
    // Assess
    expect(merged.size).toBe(6);
    for (const n of [1, 2, 3, 4, 5, 6]) expect(merged.has(sha(n))).toBe(true);
    expect(merged.has(sha(7))).toBe(false);
    expect(merged.toBuffer().equals(merged.toBuffer())).toBe(true);
  });

  it("refuses a sorted buffer that is cut short or out of order", () => {
    // Prepare
    const s = new SortedHashSet();
    s.addAll([1, 2].map(sha));
    const buf = s.toBuffer();
    const swapped = Buffer.concat([buf.subarray(32), buf.subarray(0, 32)]);
    // Act / Assess
    expect(() => new SortedHashSet().addSorted(buf.subarray(0, 40))).toThrow(InvalidInputError);
    expect(() => new SortedHashSet().addSorted(swapped)).toThrow(/out of order/);
  });
});
