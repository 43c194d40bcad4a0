import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { BATCH_BYTES, EncodePool, openEncoder, PUSH_ENCODE_THREADS } from "../../agent/encode-pool.js";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { firstWords, KnownFilter } from "../../core/known-filter.js";
import { seededBytes } from "../support/retention.js";

// The compiled worker: `npm test` builds dist/ first.
const WORKER = fileURLToPath(new URL("../../dist/agent/encode-worker.js", import.meta.url));

/** Chunks as a reader yields them: one buffer, refilled for each (borrowed). */
async function* borrowed(chunks: readonly Buffer[]): AsyncGenerator<Uint8Array> {
  const scratch = Buffer.alloc(Math.max(...chunks.map((c) => c.length)));
  for (const c of chunks) {
    c.copy(scratch);
    yield scratch.subarray(0, c.length);
    scratch.fill(0xee); // a consumer that kept the borrowed bytes would see this
  }
}

/** Compressible chunks of varied sizes, each its own. */
const chunksOf = (n: number, size = 128 * 1024): Buffer[] =>
  Array.from({ length: n }, (_, i) => Buffer.concat([seededBytes(i, 2048), Buffer.alloc(size - 2048 - (i % 5) * 1000, i & 0xff)]));

describe("EncodePool", () => {
  let pool: EncodePool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it("hashes and encodes every chunk on its workers, in the order read, exactly as the calling thread does", async () => {
    // Prepare
    expect(existsSync(WORKER), "dist/agent/encode-worker.js (run npm run build)").toBe(true);
    pool = new EncodePool(WORKER, 2, "zstd", undefined);
    const chunks = chunksOf(50);
    const seen: string[] = [];
    // Act
    const out = [];
    for await (const c of pool.inOrder(borrowed(chunks), (raw) => seen.push(sha256Hex(raw)))) out.push({ sha256: c.sha256, raw: Buffer.from(c.raw), stored: c.stored });
    // Assess
    const expected = chunks.map((c) => sha256Hex(c));
    expect(seen).toEqual(expected);
    expect(out.map((c) => c.sha256)).toEqual(expected);
    expect(out.every((c, i) => c.raw.equals(chunks[i]!))).toBe(true);
    const local = await Promise.all(chunks.map((c) => getCodec("zstd").encode(c)));
    expect(out.every((c, i) => c.stored !== undefined && Buffer.compare(c.stored, local[i]!) === 0)).toBe(true);
  });

  it("does not encode the chunks its filter holds, and encodes the others", async () => {
    // Prepare
    const chunks = chunksOf(20);
    const known = KnownFilter.forCount(10);
    for (let i = 0; i < 20; i += 2) known.add(...firstWords(Buffer.from(sha256Hex(chunks[i]!), "hex")));
    pool = new EncodePool(WORKER, 2, "zstd", known);
    // Act
    const stored: (Buffer | undefined)[] = [];
    for await (const c of pool.inOrder(borrowed(chunks), () => undefined)) stored.push(c.stored);
    // Assess
    expect(stored.map((s) => s === undefined)).toEqual(chunks.map((_, i) => i % 2 === 0));
    const decoded = await getCodec("zstd").decode(stored[1]!);
    expect(decoded.equals(chunks[1]!)).toBe(true);
  });

  it("sends a chunk larger than a batch alone, and keeps the order around it", async () => {
    // Prepare
    pool = new EncodePool(WORKER, 1, "zstd", undefined);
    const chunks = [...chunksOf(3), Buffer.concat([seededBytes(99, BATCH_BYTES + 4096)]), ...chunksOf(2)];
    // Act
    const hashes: string[] = [];
    for await (const c of pool.inOrder(borrowed(chunks), () => undefined)) hashes.push(c.sha256);
    // Assess
    expect(hashes).toEqual(chunks.map((c) => sha256Hex(c)));
  });

  it("stays usable for the next file after a consumer stops early", async () => {
    // Prepare
    pool = new EncodePool(WORKER, 2, "zstd", undefined);
    const chunks = chunksOf(30);
    // Act
    let n = 0;
    for await (const _ of pool.inOrder(borrowed(chunks), () => undefined)) if (++n === 3) break;
    const again: string[] = [];
    for await (const c of pool.inOrder(borrowed(chunks.slice(0, 5)), () => undefined)) again.push(c.sha256);
    // Assess
    expect(again).toEqual(chunks.slice(0, 5).map((c) => sha256Hex(c)));
  });

  it("reuses its buffers when many small files are encoded at once, round after round: none made after the first round", async () => {
    // Prepare: the push reads small files four at a time, each its own batch (a 1 MiB buffer and its output).
    pool = new EncodePool(WORKER, 1, "zstd", undefined);
    const files = Array.from({ length: 4 }, (_, i) => chunksOf(1, 8192 + i * 1000));
    const encodeAll = async (): Promise<string[][]> =>
      Promise.all(
        files.map(async (chunks) => {
          const names: string[] = [];
          for await (const c of pool!.inOrder(borrowed(chunks), () => undefined)) names.push(c.sha256);
          return names;
        }),
      );
    await encodeAll();
    const afterFirst = pool.made;
    // Act
    const rounds: string[][][] = [];
    for (let i = 0; i < 5; i++) rounds.push(await encodeAll());
    // Assess
    expect(afterFirst).toBeGreaterThanOrEqual(2 * files.length);
    expect(pool.made).toBe(afterFirst);
    for (const r of rounds) expect(r).toEqual(files.map((chunks) => chunks.map((c) => sha256Hex(c))));
  });

  it("rejects what is asked of it once closed", async () => {
    // Prepare
    const closed = new EncodePool(WORKER, 1, "zstd", undefined);
    await closed.close();
    // Act
    const e = await (async () => {
      for await (const _ of closed.inOrder(borrowed(chunksOf(1)), () => undefined)) return undefined;
    })().catch((x: unknown) => x);
    // Assess
    expect((e as Error).message).toMatch(/closed/);
  });
});

describe("openEncoder", () => {
  it("gives no pool for 0 threads or without the compiled worker, else PUSH_ENCODE_THREADS or WALVAULT_ENCODE_THREADS workers", async () => {
    expect(openEncoder({ codec: "zstd", threads: 0, workerFile: WORKER })).toBeUndefined();
    expect(openEncoder({ codec: "zstd" })).toBeUndefined(); // run from the TypeScript sources: no compiled worker beside them
    const saved = process.env["WALVAULT_ENCODE_THREADS"];
    try {
      delete process.env["WALVAULT_ENCODE_THREADS"];
      const byDefault = openEncoder({ codec: "zstd", workerFile: WORKER })!;
      expect(byDefault.threads).toBe(PUSH_ENCODE_THREADS);
      await byDefault.close();
      process.env["WALVAULT_ENCODE_THREADS"] = "1";
      const asked = openEncoder({ codec: "zstd", workerFile: WORKER })!;
      expect(asked.threads).toBe(1);
      await asked.close();
      process.env["WALVAULT_ENCODE_THREADS"] = "0";
      expect(openEncoder({ codec: "zstd", workerFile: WORKER })).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env["WALVAULT_ENCODE_THREADS"];
      else process.env["WALVAULT_ENCODE_THREADS"] = saved;
    }
  });
});
