import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KEPT_MIN_BYTES, ReadBuffers } from "../../agent/read-buffers.js";
import { tempDir } from "../support/harness.js";

function file(dir: string, name: string, size: number, fill: number): { path: string; bytes: Buffer } {
  const bytes = Buffer.alloc(size, fill);
  bytes.writeUInt32LE(size, 0);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, bytes };
}

describe("ReadBuffers", () => {
  it("reads a whole file", async () => {
    // Prepare
    const f = file(tempDir(), "seg", KEPT_MIN_BYTES + 12345, 7);

    // Act
    const read = await new ReadBuffers(2).read(f.path);

    // Assess
    expect(read.bytes.equals(f.bytes)).toBe(true);
  });

  it("reads the next file into the buffer the last read released", async () => {
    // Prepare
    const dir = tempDir();
    const a = file(dir, "a", 2 * KEPT_MIN_BYTES, 1);
    const b = file(dir, "b", 2 * KEPT_MIN_BYTES, 2);
    const reads = new ReadBuffers(2);
    const first = await reads.read(a.path);
    const firstBuffer = first.bytes.buffer;
    first.release();

    // Act
    const second = await reads.read(b.path);

    // Assess
    expect(second.bytes.buffer).toBe(firstBuffer);
    expect(second.bytes.equals(b.bytes)).toBe(true);
    expect(reads.kept).toBe(0);
  });

  it("gives reads running at once buffers of their own", async () => {
    // Prepare
    const dir = tempDir();
    const a = file(dir, "a", KEPT_MIN_BYTES, 1);
    const b = file(dir, "b", KEPT_MIN_BYTES, 2);
    const reads = new ReadBuffers(2);

    // Act
    const [ra, rb] = await Promise.all([reads.read(a.path), reads.read(b.path)]);

    // Assess
    expect(ra.bytes.buffer).not.toBe(rb.bytes.buffer);
    expect(ra.bytes.equals(a.bytes)).toBe(true);
    expect(rb.bytes.equals(b.bytes)).toBe(true);
  });

  it("keeps at most its number of buffers, and a buffer released twice once", async () => {
    // Prepare
    const dir = tempDir();
    const files = [1, 2, 3].map((n) => file(dir, `f${n}`, KEPT_MIN_BYTES, n));
    const reads = new ReadBuffers(2);
    const all = await Promise.all(files.map((f) => reads.read(f.path)));

    // Act
    all[0]!.release();
    all[0]!.release();
    const afterOne = reads.kept;
    for (const r of all) r.release();

    // Assess
    expect(afterOne).toBe(1);
    expect(reads.kept).toBe(2);
  });

  it("does not keep the buffers of small files", async () => {
    // Prepare
    const f = file(tempDir(), "00000002.history", 100, 0x41);
    const reads = new ReadBuffers(2);

    // Act
    const read = await reads.read(f.path);
    read.release();

    // Assess
    expect(read.bytes.equals(f.bytes)).toBe(true);
    expect(reads.kept).toBe(0);
  });

  it("reads a small file into a fresh buffer even when a large one is kept", async () => {
    // Prepare
    const dir = tempDir();
    const big = file(dir, "big", KEPT_MIN_BYTES, 1);
    const small = file(dir, "small", 10, 2);
    const reads = new ReadBuffers(2);
    (await reads.read(big.path)).release();

    // Act
    const read = await reads.read(small.path);

    // Assess
    expect(read.bytes.equals(small.bytes)).toBe(true);
    expect(reads.kept).toBe(1);
  });

  it("reads a file to its end when it is longer than its size says (a /proc file says 0)", async () => {
    // Prepare
    const expected = readFileSync("/proc/version");

    // Act
    const read = await new ReadBuffers(2).read("/proc/version");

    // Assess
    expect(expected.length).toBeGreaterThan(0);
    expect(read.bytes.equals(expected)).toBe(true);
  });

  it("rejects a missing file as readFile does", async () => {
    // Act
    const run = new ReadBuffers(2).read(join(tempDir(), "missing"));

    // Assess
    await expect(run).rejects.toMatchObject({ code: "ENOENT" });
  });
});
