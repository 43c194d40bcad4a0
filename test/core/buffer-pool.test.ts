import { describe, expect, it } from "vitest";
import { BufferPool } from "../../core/buffer-pool.js";

describe("BufferPool", () => {
  it("allocates a buffer of the size asked when it keeps none", () => {
    // Act
    const buf = new BufferPool(2).take(1000);

    // Assess
    expect(buf.length).toBe(1000);
  });

  it("lends a buffer given back to the next take that fits in it", () => {
    // Prepare
    const pool = new BufferPool(2);
    const first = pool.take(1000);
    pool.give(first);

    // Act
    const second = pool.take(800);

    // Assess
    expect(second).toBe(first);
    expect(pool.kept).toBe(0);
  });

  it("lends the smallest kept buffer that fits, and allocates when none does", () => {
    // Prepare
    const pool = new BufferPool(3);
    const [small, middle, large] = [pool.take(100), pool.take(500), pool.take(900)];
    for (const b of [large, small, middle]) pool.give(b);

    // Act
    const fits = pool.take(400);
    const tooLarge = pool.take(1000);

    // Assess
    expect(fits).toBe(middle);
    expect([small, large]).not.toContain(tooLarge);
    expect(tooLarge.length).toBe(1000);
  });

  it("gives users taking at once buffers of their own", () => {
    // Prepare
    const pool = new BufferPool(2);
    pool.give(pool.take(100));

    // Act
    const a = pool.take(100);
    const b = pool.take(100);

    // Assess
    expect(a).not.toBe(b);
  });

  it("keeps at most its number of buffers, a larger one replacing the smallest", () => {
    // Prepare
    const pool = new BufferPool(2);
    const [a, b, c, d] = [pool.take(100), pool.take(200), pool.take(300), pool.take(50)];
    pool.give(a);
    pool.give(b);

    // Act
    pool.give(c);
    pool.give(d);

    // Assess
    expect(pool.kept).toBe(2);
    expect(pool.take(150)).toBe(b);
    expect(pool.take(250)).toBe(c);
    expect(pool.kept).toBe(0);
  });

  it("keeps a buffer given back twice once", () => {
    // Prepare
    const pool = new BufferPool(2);
    const a = pool.take(100);

    // Act
    pool.give(a);
    pool.give(a);

    // Assess
    expect(pool.kept).toBe(1);
  });

  it("does not keep a buffer larger than its largest", () => {
    // Prepare
    const pool = new BufferPool(2, 1000);
    const large = pool.take(1001);

    // Act
    pool.give(large);

    // Assess
    expect(pool.kept).toBe(0);
    expect(pool.take(1001)).not.toBe(large);
  });

  it("keeps no more than keepBytes in all, makes buffers with its allocator, and counts what it made", () => {
    // Prepare: buffers of shared memory, at most 3,000 bytes kept
    const pool = new BufferPool(10, 1 << 20, { keepBytes: 3000, allocate: (size) => Buffer.from(new SharedArrayBuffer(size)) });
    const [a, b, c] = [pool.take(1000), pool.take(1000), pool.take(1500)];

    // Act
    pool.give(a);
    pool.give(b);
    pool.give(c);
    const again = pool.take(900);

    // Assess: the third would pass 3,000 bytes, so two are kept; the smallest fit is taken again; nothing made for it
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(pool.made).toBe(3);
    expect(again === a || again === b).toBe(true);
    expect(pool.kept).toBe(1);
  });
});
