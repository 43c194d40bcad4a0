/**
 * Throughput of the FastCDC chunker (core/chunking.ts) on pseudo-random data.
 *
 * Measures chunkBuffer (boundary search only; on a Uint8Array and on a Node
 * Buffer, as a file read stream feeds it) and chunkStream (boundaries + the copies the
 * streaming path makes) with the default parameters, best of several passes,
 * MB = 10^6 bytes of input (bytes skipped below minSize count: that skipping
 * is part of FastCDC's speed). For comparison it also times
 * SHA-256 over the same buffer (the next stage of the snapshot pipeline).
 *
 * Usage: npm run build && node dist/bench/chunking.js [sizeMiB=256] [passes=5]
 * (or bundle it alone: npx esbuild bench/chunking.ts --bundle --platform=node
 * --format=esm --outfile=/tmp/chunking-bench.mjs && node /tmp/chunking-bench.mjs)
 */
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { DEFAULT_CHUNKER, chunkBuffer, chunkStream } from "../core/chunking.js";

const MB = 1e6;

/** xorshift128 fill: deterministic, fast, incompressible enough for CDC. */
function randomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  let y = 362436069;
  let z = 521288629;
  let w = 88675123;
  for (let i = 0; i < words.length; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    words[i] = w;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
  return out;
}

function best(passes: number, fn: () => void): number {
  let bestMs = Infinity;
  for (let p = 0; p < passes; p++) {
    const t0 = performance.now();
    fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  return bestMs;
}

async function bestAsync(passes: number, fn: () => Promise<void>): Promise<number> {
  let bestMs = Infinity;
  for (let p = 0; p < passes; p++) {
    const t0 = performance.now();
    await fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  return bestMs;
}

async function main(): Promise<void> {
  const sizeMiB = Number(process.argv[2] ?? 256);
  const passes = Number(process.argv[3] ?? 5);
  const data = randomBytes(sizeMiB * 1024 * 1024, 42);
  const mbps = (ms: number): string => ((data.length / MB) / (ms / 1000)).toFixed(0);

  chunkBuffer(data); // warm-up
  let chunks = 0;
  const bufMs = best(passes, () => {
    chunks = chunkBuffer(data).length;
  });
  const asBuffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const bufferMs = best(passes, () => {
    chunkBuffer(asBuffer);
  });
  const piece = 16 * 1024 * 1024;
  const streamMs = await bestAsync(passes, async () => {
    async function* pieces(): AsyncGenerator<Uint8Array> {
      for (let o = 0; o < data.length; o += piece) yield data.subarray(o, o + piece);
    }
    for await (const c of chunkStream(pieces())) void c;
  });
  const shaMs = best(Math.min(passes, 3), () => {
    createHash("sha256").update(data).digest();
  });
  const avg = data.length / chunks;
  console.log(
    JSON.stringify(
      {
        params: DEFAULT_CHUNKER,
        inputMiB: sizeMiB,
        chunks,
        meanChunkMiB: +(avg / 1024 / 1024).toFixed(3),
        chunkBufferMBps: +mbps(bufMs),
        chunkBufferOnNodeBufferMBps: +mbps(bufferMs),
        chunkStream16MiBPiecesMBps: +mbps(streamMs),
        sha256MBps: +mbps(shaMs),
      },
      null,
      2,
    ),
  );
}

await main();
