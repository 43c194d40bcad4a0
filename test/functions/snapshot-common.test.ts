import { describe, expect, it } from "vitest";
import { BATCH_PACK_CHUNKS, BATCH_PACKS, MAX_BATCHES, packsPerBatch, toBatches } from "../../functions/snapshot/common.js";

describe("PromotePacks batches (functions/snapshot/common.ts)", () => {
  it("put BATCH_PACKS packs in a batch when packs hold few chunks", () => {
    // 32 MiB packs of 1 MiB incompressible chunks, and a manifest with no new chunks at all
    expect(packsPerBatch(100, 100 * 32)).toBe(BATCH_PACKS);
    expect(packsPerBatch(10, 0)).toBe(BATCH_PACKS);
    expect(packsPerBatch(0, 0)).toBe(BATCH_PACKS);
  });

  it("send a pack of many chunks alone, so the Map verifies such packs in parallel", () => {
    // pgbench scale 100: 12,817 new chunks in 4 packs (filled by entries)
    expect(packsPerBatch(4, 12_817)).toBe(1);
    expect(packsPerBatch(3, 3 * BATCH_PACK_CHUNKS)).toBe(1);
    // in between: as many as keep a batch's chunks under BATCH_PACK_CHUNKS on average
    expect(packsPerBatch(8, 8 * 1500)).toBe(2);
    expect(packsPerBatch(8, 8 * 1500) * 1500).toBeLessThanOrEqual(BATCH_PACK_CHUNKS);
  });

  it("still hold more packs per batch rather than pass MAX_BATCHES", () => {
    // Act
    const batches = toBatches(Array.from({ length: 5000 }, (_, i) => i), packsPerBatch(5000, 5000 * 4096));
    // Assess
    expect(batches.length).toBeLessThanOrEqual(MAX_BATCHES);
    expect(batches.flat()).toHaveLength(5000);
  });
});
