import { randomBytes } from "node:crypto";
import { zstdCompressSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { KEPT_MAX_BYTES, ZstdInto } from "../../core/zstd-into.js";

const frame = (b: Buffer): Buffer => zstdCompressSync(b);

describe("zstd decoding on one kept context (core/zstd-into.ts)", () => {
  it("decodes frame after frame into the caller's buffer, each exactly", () => {
    // Prepare
    const z = new ZstdInto();
    const raws = [randomBytes(1000), Buffer.alloc(128 * 1024, 7), randomBytes(5)];
    const out = Buffer.alloc(128 * 1024 + 1);
    // Act + Assess
    for (const raw of raws) {
      expect(z.decode(frame(raw), raw.length, out)).toBe(raw.length);
      expect(out.subarray(0, raw.length).equals(raw)).toBe(true);
    }
    expect(z.available()).toBe(true);
  });

  it("answers undefined for a frame of another size, for trailing bytes and for corrupt bytes, and decodes cleanly after each", () => {
    // Prepare
    const z = new ZstdInto();
    const raw = randomBytes(4096);
    const good = frame(raw);
    const corrupt = Buffer.from(good);
    corrupt[0]! ^= 0xff; // the frame's magic number: not zstd at all (a flipped data byte may decode, to bytes the caller's hash refuses)
    const out = Buffer.alloc(8193);
    const cases: [string, Buffer, number][] = [
      ["shorter than recorded", good, 4097],
      ["longer than recorded", good, 4095],
      ["trailing bytes", Buffer.concat([good, Buffer.from([1, 2, 3])]), 4096],
      ["not a zstd frame", corrupt, 4096],
    ];
    for (const [what, bytes, size] of cases) {
      // Act
      const n = z.decode(bytes, size, out);
      // Assess: refused, and the next frame still decodes
      expect(n, what).toBeUndefined();
      expect(z.decode(good, 4096, out), `after ${what}`).toBe(4096);
      expect(out.subarray(0, 4096).equals(raw)).toBe(true);
    }
  });

  it("decodes into its own reused buffer, grown for a larger chunk, and leaves chunks over KEPT_MAX_BYTES to the one-shot decode", () => {
    // Prepare
    const z = new ZstdInto();
    const small = randomBytes(100);
    const large = randomBytes(300 * 1024);
    // Act
    const a = z.decodeReused(frame(small), small.length);
    const aCopy = Buffer.from(a!);
    const b = z.decodeReused(frame(large), large.length);
    // Assess
    expect(aCopy.equals(small)).toBe(true);
    expect(b!.equals(large)).toBe(true);
    expect(z.decodeReused(frame(small), KEPT_MAX_BYTES + 1)).toBeUndefined();
    expect(z.decodeReused(frame(small), small.length + 1)).toBeUndefined();
  });

  it("refuses an output buffer with no room beyond the size", () => {
    expect(() => new ZstdInto().decode(frame(Buffer.alloc(10)), 10, Buffer.alloc(10))).toThrow(RangeError);
  });
});
