/**
 * Pack size benchmark: which target size should packs (core/pack.ts) have?
 *
 * On a local s3rver (local/emulators.ts startS3, the same emulator as the
 * local stack), for each target size (default 8, 16, 32 and 64 MiB):
 *
 *  - write: ~`--gib` GiB of stored bytes (compressible-but-unique 128 KiB
 *    chunks, zstd-1, ~4:1) are packed with PackBuilder and PUT with
 *    `--in-flight` uploads at a time (the agent's shape: one pack filling,
 *    the finished ones uploading, the filler waiting when all slots are busy);
 *  - read: every pack's index with one ranged GET of its tail, then every
 *    chunk through coalesced ranged GETs (coalescePackReads, default gap and
 *    read size), `--read-in-flight` at a time, each chunk decoded and its
 *    SHA-256 checked against its name (what a restore does).
 *
 * Buffers: pack buffers (write) and read bodies (read) come from a pool and
 * are reused once uploaded or consumed, so at most inFlight + 1 pack buffers
 * and readInFlight read buffers exist; each phase runs again without the
 * pools (fresh buffers, freed by the garbage collector) for the peak RSS that
 * costs (`--no-unpooled` skips those runs).
 *
 * Each phase runs in its own child process, so its peak RSS is its own. The
 * chunks are generated and compressed once, before the runs, into a corpus
 * file every run reads (compression is not what is measured). Printed per
 * size: MiB/s of stored bytes, requests, objects per GB stored, peak RSS and
 * CPU seconds of each phase; written to bench/results/pack-size.json.
 *
 * Usage: npm run bench:pack-size [-- --gib 1 --sizes 8,16,32,64 --in-flight 4 --read-in-flight 8
 *        --max-gap BYTES --max-read BYTES --no-unpooled --out bench/results/pack-size.json]
 */
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync, mkdirSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomFillSync } from "node:crypto";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { decodeWith, getCodec } from "../core/codec.js";
import { forEachLimit } from "../core/concurrency.js";
import { sha256Hex } from "../core/hash.js";
import {
  DEFAULT_READ_MAX_GAP,
  DEFAULT_READ_MAX_SIZE,
  PACK_TAIL_READ_BYTES,
  PackBuilder,
  chunkOfRead,
  coalescePackReads,
  parsePackIndex,
  rangeHeader,
  vaultPackKey,
  type BuiltPack,
  type PackRead,
  type PackEntry,
} from "../core/pack.js";
import { LOCAL_CREDENTIALS, startS3 } from "../local/emulators.js";
import { S3ObjectStore } from "../store/s3-object-store.js";
import { ownPeakRssBytes } from "./peak-rss.js";
import { benchArgs } from "./args.js";

const SELF = fileURLToPath(import.meta.url);
const KiB = 1024;
const MiB = 1024 * KiB;
const BUCKET = "bench-vault";
const DATABASE = "bench-packs";
const RAW_CHUNK = 128 * KiB;

interface CorpusChunk {
  sha256: string;
  rawSize: number;
  storedLength: number;
}

interface Corpus {
  path: string;
  chunks: CorpusChunk[];
  storedBytes: number;
  rawBytes: number;
}

interface PackDone {
  name: string;
  size: number;
  entries: number;
}

type ChildSpec =
  | { phase: "write"; endpoint: string; corpusPath: string; corpusIndexPath: string; targetSize: number; inFlight: number; pool: boolean }
  | { phase: "read"; endpoint: string; packsPath: string; inFlight: number; maxGap: number; maxReadSize: number; pool: boolean };

interface ChildOutput {
  seconds: number;
  requests: number;
  storedBytes: number;
  rawBytes: number;
  chunks: number;
  packs: number;
  maxRssBytes: number;
  /** RSS once the modules are loaded and the S3 client made, before any work: what the phase adds is the difference. */
  baseRssBytes: number;
  cpuSeconds: number;
  /** write: the packs, for the read phase. */
  written?: PackDone[];
}

// ---------------------------------------------------------------------------
// Corpus: compressible-but-unique chunks, compressed once.

/**
 * A 128 KiB chunk that zstd-1 stores in ~32 KiB: per 4 KiB page, 1 KiB of
 * random bytes (unique to this chunk) and 3 KiB of a fixed text.
 */
function makeChunk(out: Buffer, filler: Buffer): void {
  for (let page = 0; page < out.length; page += 4 * KiB) {
    randomFillSync(out, page, KiB);
    filler.copy(out, page + KiB, 0, 3 * KiB);
  }
}

async function buildCorpus(dir: string, storedTarget: number, log: (s: string) => void): Promise<Corpus> {
  const path = join(dir, "corpus.bin");
  const fd = openSync(path, "w");
  const zstd = getCodec("zstd");
  const filler = Buffer.from("INSERT INTO accounts VALUES (42, 'walvault pack benchmark filler row', 0, now()); ".repeat(64)).subarray(0, 3 * KiB);
  const raw = Buffer.allocUnsafe(RAW_CHUNK);
  const chunks: CorpusChunk[] = [];
  let storedBytes = 0;
  try {
    while (storedBytes < storedTarget) {
      makeChunk(raw, filler);
      const stored = await zstd.encode(raw);
      writeSync(fd, stored);
      chunks.push({ sha256: sha256Hex(raw), rawSize: raw.length, storedLength: stored.length });
      storedBytes += stored.length;
      if (chunks.length % 8192 === 0) log(`corpus: ${chunks.length} chunks, ${(storedBytes / MiB).toFixed(0)} MiB stored`);
    }
  } finally {
    closeSync(fd);
  }
  return { path, chunks, storedBytes, rawBytes: chunks.length * RAW_CHUNK };
}

// ---------------------------------------------------------------------------
// Children

let baseRssBytes = 0;

function store(endpoint: string): S3ObjectStore {
  const s3 = new S3ObjectStore({ name: "bench", region: "us-east-1", endpoint, credentials: LOCAL_CREDENTIALS });
  baseRssBytes = process.memoryUsage.rss();
  return s3;
}

async function writePhase(spec: Extract<ChildSpec, { phase: "write" }>): Promise<ChildOutput> {
  const s3 = store(spec.endpoint);
  const corpus = JSON.parse(readFileSync(spec.corpusIndexPath, "utf8")) as CorpusChunk[];
  const fd = openSync(spec.corpusPath, "r");
  const buf = Buffer.allocUnsafe(4 * RAW_CHUNK);
  // With `pool`, pack buffers are reused once uploaded: at most inFlight + 1 exist.
  const free: Buffer[] = [];
  const allocate = (capacity: number): Buffer => {
    const i = free.findIndex((b) => b.length >= capacity);
    return i >= 0 ? free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(capacity);
  };
  const builder = new PackBuilder({ targetSize: spec.targetSize, ...(spec.pool ? { allocate } : {}) });
  const written: PackDone[] = [];
  let requests = 0;
  let storedBytes = 0;
  const t0 = performance.now();
  // The finished packs, as the agent would yield them: the filler stops while every upload slot is busy.
  async function* packs(): AsyncGenerator<BuiltPack> {
    let position = 0;
    for (const c of corpus) {
      readSync(fd, buf, 0, c.storedLength, position);
      position += c.storedLength;
      if (!builder.fits(c.storedLength)) yield builder.finish();
      builder.add({ sha256: c.sha256, rawSize: c.rawSize, codec: "zstd", stored: buf.subarray(0, c.storedLength) });
    }
    if (builder.count > 0) yield builder.finish();
  }
  const running = new Set<Promise<void>>();
  for await (const p of packs()) {
    const put: Promise<void> = s3
      .put(BUCKET, vaultPackKey(DATABASE, p.name), p.bytes, {})
      .then(() => {
        requests++;
        storedBytes += p.bytes.length;
        written.push({ name: p.name, size: p.bytes.length, entries: p.entries.length });
        if (spec.pool) free.push(Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.buffer.byteLength - p.bytes.byteOffset));
      })
      .finally(() => running.delete(put));
    running.add(put);
    if (running.size >= spec.inFlight) await Promise.race(running);
  }
  await Promise.all(running);
  closeSync(fd);
  const seconds = (performance.now() - t0) / 1000;
  return {
    ...usage(),
    seconds,
    requests,
    storedBytes,
    rawBytes: corpus.reduce((n, c) => n + c.rawSize, 0),
    chunks: corpus.length,
    packs: written.length,
    written,
  };
}

async function readPhase(spec: Extract<ChildSpec, { phase: "read" }>): Promise<ChildOutput> {
  const s3 = store(spec.endpoint);
  const packs = JSON.parse(readFileSync(spec.packsPath, "utf8")) as PackDone[];
  let requests = 0;
  let storedBytes = 0;
  let rawBytes = 0;
  let chunks = 0;
  // With `pool`, each body is streamed into a reused buffer (at most inFlight exist); else the SDK collects it.
  const free: Buffer[] = [];
  const get = async <T>(key: string, range: { start: number; end: number }, use: (body: Uint8Array) => Promise<T>): Promise<T> => {
    // Explicit first-last ranges: s3rver 3.7.1 reads a suffix range (bytes=-N) as bytes 0-N.
    const out = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: rangeHeader(range) }));
    requests++;
    const length = range.end - range.start;
    if (!spec.pool) {
      const body = await out.Body!.transformToByteArray();
      storedBytes += body.byteLength;
      return use(body);
    }
    const i = free.findIndex((b) => b.length >= length);
    const buf = i >= 0 ? free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.max(length, spec.maxReadSize));
    try {
      let n = 0;
      for await (const piece of out.Body as AsyncIterable<Buffer>) {
        if (n + piece.length > length) throw new Error(`${key}: the read of ${rangeHeader(range)} returned more than ${length} bytes`);
        piece.copy(buf, n);
        n += piece.length;
      }
      storedBytes += n;
      return await use(buf.subarray(0, n));
    } finally {
      free.push(buf);
    }
  };
  const t0 = performance.now();
  // Indexes first (a restore has them from the catalog; a rebuild reads them like this), then the chunk reads of every pack, interleaved by a shared pool.
  const reads: { key: string; read: PackRead<PackEntry> }[] = [];
  await forEachLimit(packs, spec.inFlight, async (p) => {
    const key = vaultPackKey(DATABASE, p.name);
    const tailLength = Math.min(p.size, PACK_TAIL_READ_BYTES);
    const index = await get(key, { start: p.size - tailLength, end: p.size }, async (tail) => parsePackIndex(tail, { what: `pack ${key}`, packSize: p.size }));
    for (const read of coalescePackReads(index.entries, { maxGap: spec.maxGap, maxReadSize: spec.maxReadSize })) reads.push({ key, read });
  });
  await forEachLimit(reads, spec.inFlight, async ({ key, read }) => {
    await get(key, read, async (body) => {
      for (const e of read.chunks) {
        const raw = await decodeWith(e.codec, chunkOfRead(read, body, e), `chunk ${e.sha256} of ${key}`, e.rawSize);
        if (sha256Hex(raw) !== e.sha256) throw new Error(`chunk ${e.sha256} of ${key} does not hash to its name`);
        rawBytes += raw.length;
        chunks++;
      }
    });
  });
  const seconds = (performance.now() - t0) / 1000;
  return { ...usage(), seconds, requests, storedBytes, rawBytes, chunks, packs: packs.length };
}

function usage(): { maxRssBytes: number; baseRssBytes: number; cpuSeconds: number } {
  const cpu = process.cpuUsage();
  return { maxRssBytes: ownPeakRssBytes(), baseRssBytes, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

function runChild(spec: ChildSpec): Promise<ChildOutput> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [SELF, "--child", JSON.stringify(spec)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.on("error", reject);
    c.on("close", (code) => {
      if (code !== 0) reject(new Error(`${spec.phase} child exited ${code}`));
      else resolve(JSON.parse(out) as ChildOutput);
    });
  });
}

// ---------------------------------------------------------------------------

const mibPerS = (bytes: number, s: number): number => +(bytes / MiB / s).toFixed(1);

async function main(): Promise<void> {
  const { values } = benchArgs("pack-size", {
    options: {
      child: { type: "string" },
      gib: { type: "string", default: "1" },
      sizes: { type: "string", default: "8,16,32,64" },
      "in-flight": { type: "string", default: "4" },
      "read-in-flight": { type: "string", default: "8" },
      "max-gap": { type: "string", default: String(DEFAULT_READ_MAX_GAP) },
      "max-read": { type: "string", default: String(DEFAULT_READ_MAX_SIZE) },
      "no-unpooled": { type: "boolean", default: false },
      out: { type: "string", default: "bench/results/pack-size.json" },
    },
  });
  if (values.child !== undefined) {
    const spec = JSON.parse(values.child) as ChildSpec;
    const out = spec.phase === "write" ? await writePhase(spec) : await readPhase(spec);
    process.stdout.write(JSON.stringify(out));
    return;
  }
  const sizes = values.sizes.split(",").map((s) => Number(s) * MiB);
  const inFlight = Number(values["in-flight"]);
  const readInFlight = Number(values["read-in-flight"]);
  const maxGap = Number(values["max-gap"]);
  const maxReadSize = Number(values["max-read"]);
  const unpooled = !values["no-unpooled"];
  const log = (s: string): void => console.error(`[bench] ${s}`);
  const work = mkdtempSync(join(tmpdir(), "walvault-bench-packs-"));
  const s3 = await startS3({ directory: join(work, "s3"), buckets: [BUCKET] });
  const rows: Record<string, unknown>[] = [];
  try {
    log(`s3rver at ${s3.endpoint}; building the corpus (${values.gib} GiB stored) in ${work}`);
    const corpus = await buildCorpus(work, Number(values.gib) * 1024 * MiB, log);
    const corpusIndexPath = join(work, "corpus.json");
    writeFileSync(corpusIndexPath, JSON.stringify(corpus.chunks));
    log(`corpus: ${corpus.chunks.length} chunks, ${(corpus.rawBytes / MiB).toFixed(0)} MiB raw, ${(corpus.storedBytes / MiB).toFixed(0)} MiB stored`);
    for (const targetSize of sizes) {
      const w = await runChild({ phase: "write", endpoint: s3.endpoint, corpusPath: corpus.path, corpusIndexPath, targetSize, inFlight, pool: true });
      const packsPath = join(work, `packs-${targetSize}.json`);
      writeFileSync(packsPath, JSON.stringify(w.written));
      const r = await runChild({ phase: "read", endpoint: s3.endpoint, packsPath, inFlight: readInFlight, maxGap, maxReadSize, pool: true });
      if (r.chunks !== corpus.chunks.length) throw new Error(`read ${r.chunks} chunks back, wrote ${corpus.chunks.length}`);
      // The same without buffer pools (same packs, same keys: the PUTs overwrite identical bytes), for their peak RSS.
      const wGc = unpooled ? await runChild({ phase: "write", endpoint: s3.endpoint, corpusPath: corpus.path, corpusIndexPath, targetSize, inFlight, pool: false }) : undefined;
      const rGc = unpooled ? await runChild({ phase: "read", endpoint: s3.endpoint, packsPath, inFlight: readInFlight, maxGap, maxReadSize, pool: false }) : undefined;
      const row = {
        packMiB: targetSize / MiB,
        packs: w.packs,
        chunksPerPack: Math.round(w.chunks / w.packs),
        objectsPerGB: +(w.packs / (w.storedBytes / 1e9)).toFixed(1),
        writeMiBps: mibPerS(w.storedBytes, w.seconds),
        writeS: +w.seconds.toFixed(2),
        putRequests: w.requests,
        writePeakRssMB: Math.round(w.maxRssBytes / 1e6),
        writeBaseRssMB: Math.round(w.baseRssBytes / 1e6),
        writeCpuS: +w.cpuSeconds.toFixed(1),
        readMiBps: mibPerS(r.storedBytes, r.seconds),
        readRawMiBps: mibPerS(r.rawBytes, r.seconds),
        readS: +r.seconds.toFixed(2),
        getRequests: r.requests,
        readPeakRssMB: Math.round(r.maxRssBytes / 1e6),
        readBaseRssMB: Math.round(r.baseRssBytes / 1e6),
        readCpuS: +r.cpuSeconds.toFixed(1),
        ...(wGc && rGc
          ? {
              unpooledWriteMiBps: mibPerS(wGc.storedBytes, wGc.seconds),
              unpooledWritePeakRssMB: Math.round(wGc.maxRssBytes / 1e6),
              unpooledReadMiBps: mibPerS(rGc.storedBytes, rGc.seconds),
              unpooledReadPeakRssMB: Math.round(rGc.maxRssBytes / 1e6),
            }
          : {}),
      };
      rows.push(row);
      log(JSON.stringify(row));
    }
    const out = {
      when: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg(), node: process.version },
      corpus: { chunks: corpus.chunks.length, rawMiB: +(corpus.rawBytes / MiB).toFixed(1), storedMiB: +(corpus.storedBytes / MiB).toFixed(1), codec: "zstd-1", rawChunk: RAW_CHUNK },
      uploadsInFlight: inFlight,
      readsInFlight: readInFlight,
      maxGap,
      maxReadSize,
      rows,
    };
    mkdirSync(join(values.out, ".."), { recursive: true });
    writeFileSync(values.out, JSON.stringify(out, null, 2) + "\n");
    console.table(rows);
    log(`written ${values.out}`);
  } finally {
    await s3.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
