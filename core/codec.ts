/**
 * Codec registry. Every stored object records the codec its bytes are encoded
 * with (object metadata and catalog), so decoding never guesses and the
 * default can change without rewriting the archive.
 *
 * The default is zstd level 1 through node:zlib: measured by bench/codec.ts on
 * real PostgreSQL WAL (docs/decisions.md has the figures).
 *
 * Small objects (snapshot chunks, up to SYNC_MAX_BYTES) are encoded and
 * decoded with the synchronous one-shot calls; larger ones (WAL segments) with
 * the async calls, which run on libuv's thread pool. Measured on 128 KiB
 * pgbench blocks (docs/decisions.md, "Snapshot speed"): an async call spends
 * as much main-thread time as the whole synchronous call (a fresh stream
 * object, its handle and the callbacks) and 2-2.5x its total CPU, so below
 * ~1 MiB the thread pool buys nothing.
 */
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { gzipSync as fflateGzip, gunzipSync as fflateGunzip } from "fflate";
import { CodecError } from "./errors.js";

export type CodecName = "none" | "zstd" | "gzip" | "fflate-gzip";
export const CODEC_NAMES: readonly CodecName[] = ["none", "zstd", "gzip", "fflate-gzip"];
export const DEFAULT_CODEC: CodecName = "zstd";

export interface Codec {
  readonly name: CodecName;
  encode(raw: Uint8Array): Promise<Buffer>;
  /**
   * With `expectedSize` (the recorded raw size) the output goes into one
   * buffer of that size (no concatenation of chunks) and anything larger is
   * refused while decoding.
   */
  decode(encoded: Uint8Array, expectedSize?: number): Promise<Buffer>;
}

function decodeOptions(expectedSize: number | undefined): { chunkSize: number; maxOutputLength: number } {
  if (expectedSize === undefined) return { chunkSize: CHUNK, maxOutputLength: MAX_DECODED_BYTES };
  // +1: a stream longer than expected then shows up as a larger result
  // (or a RangeError) instead of silently stopping at the chunk boundary.
  const size = Math.min(Math.max(expectedSize + 1, 64), MAX_DECODED_BYTES);
  return { chunkSize: size, maxOutputLength: size };
}

/**
 * 1 MiB output chunks: the default 16 KiB costs ~1000 thread-pool round trips
 * per 16 MB segment (decode measured 2-2.5x faster). The output cap keeps a
 * corrupt or hostile object from inflating without bound: nothing walvault
 * stores decodes to more than a 1 GB WAL segment.
 */
const CHUNK = 1 << 20;

/**
 * Output buffer size for encoding `n` bytes: the whole result fits one
 * buffer (no concatenation) for inputs up to about CHUNK, and a 128 KiB
 * snapshot block does not allocate (and pin, until it is uploaded) 1 MiB for
 * an output of a few KB. The margin covers zstd's and deflate's worst case
 * on incompressible input (n + n/256 + a few hundred bytes).
 */
function encodeChunkSize(n: number): number {
  return Math.min(CHUNK, Math.max(4096, n + (n >> 7) + 1024));
}
export const MAX_DECODED_BYTES = (1 << 30) + (1 << 20);
/** Inputs (encode) or recorded raw sizes (decode) up to this use the synchronous calls. */
export const SYNC_MAX_BYTES = 1 << 20;

const ZSTD_LEVEL_1 = { [zlib.constants.ZSTD_c_compressionLevel]: 1 };
const zstdCompress = promisify(zlib.zstdCompress);
const zstdDecompress = promisify(zlib.zstdDecompress);
const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);

/** The handle of a zlib stream, driven synchronously (Node internals). */
export interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

/**
 * The handle and write state ([availOut, availIn] after each writeSync) of a
 * zstd stream, or false when this Node does not offer those internals (the
 * stream is then destroyed and callers use the one-shot calls).
 */
export function zlibInternals(stream: zlib.ZstdCompress | zlib.ZstdDecompress): { handle: ZlibHandle; state: Uint32Array } | false {
  const internals = stream as unknown as { _handle?: Partial<ZlibHandle>; _writeState?: unknown };
  const handle = internals._handle;
  const state = internals._writeState;
  if (typeof handle?.writeSync !== "function" || !(state instanceof Uint32Array) || state.length < 2) {
    stream.destroy();
    return false;
  }
  return { handle: handle as ZlibHandle, state };
}

/**
 * The zstd compression context synchronous encodes reuse (one: they run one at
 * a time on the main thread). zlib.zstdCompressSync creates a context per
 * call (~1.3 MB of tables for level 1, malloc'd and freed each time): on 128
 * KiB blocks that is half the CPU of the call, and glibc's allocator keeps the
 * churn resident (measured on pgbench blocks, docs/decisions.md "Push memory":
 * ~135 MB more peak RSS and 1.9x the CPU of a reused context). Node has no
 * public one-shot call on a kept context, so this drives the handle of one
 * long-lived ZstdCompress stream the way Node's own zstdCompressSync does
 * (`_handle.writeSync` with ZSTD_e_end, `_writeState` = [availOut, availIn]):
 * each call is one complete frame, byte-identical to the one-shot output.
 * Those fields are Node internals: when they are absent, or a call fails, the
 * context is dropped and the one-shot call is used instead.
 */
interface ReusedZstd {
  stream: zlib.ZstdCompress;
  handle: ZlibHandle;
  /** [availOut, availIn] after each writeSync. */
  state: Uint32Array;
  /** Output scratch: results are copied out at their exact size. */
  scratch: Buffer;
}
let reusedZstd: ReusedZstd | undefined | false;

function openReusedZstd(): ReusedZstd | false {
  try {
    const stream = zlib.createZstdCompress({ params: ZSTD_LEVEL_1 });
    const internals = zlibInternals(stream);
    if (!internals) return false;
    return { stream, ...internals, scratch: Buffer.allocUnsafeSlow(encodeChunkSize(128 * 1024)) };
  } catch {
    return false;
  }
}

/**
 * Writes one zstd frame of `raw` at level 1 on the reused context into
 * `dest` from `offset`, growing it (through `grow`, which must keep what is
 * written) while the frame does not fit; returns the frame's length, or
 * undefined when there is no reused context (then use the one-shot call).
 */
function zstdFrameInto(raw: Uint8Array, dest: { buf: Uint8Array }, offset: number, grow: (buf: Uint8Array, used: number) => Uint8Array): number | undefined {
  if (reusedZstd === undefined) reusedZstd = openReusedZstd();
  const z = reusedZstd;
  if (z === false) return undefined;
  try {
    let inOff = 0;
    let outLen = offset;
    for (;;) {
      z.handle.writeSync(zlib.constants.ZSTD_e_end, raw, inOff, raw.length - inOff, dest.buf, outLen, dest.buf.length - outLen);
      if (z.stream.destroyed) throw z.stream.errored ?? new Error("zstd context closed");
      const availOut = z.state[0]!;
      const availIn = z.state[1]!;
      inOff = raw.length - availIn;
      outLen = dest.buf.length - availOut;
      // As Node's own sync loop: output room left means the frame is complete.
      if (availOut > 0) break;
      dest.buf = grow(dest.buf, outLen);
    }
    if (inOff !== raw.length) throw new Error(`zstd left ${raw.length - inOff} input bytes`);
    return outLen - offset;
  } catch {
    // A context in an unknown state is never reused: this call and the next ones go one-shot.
    z.stream.destroy();
    reusedZstd = false;
    return undefined;
  }
}

/** A larger copy of `buf` (twice its size, or room for `need` more bytes after `used` if that is more), keeping its first `used` bytes. */
export function grown(buf: Uint8Array, used: number, need = 0): Buffer {
  const bigger = Buffer.allocUnsafeSlow(Math.max(buf.length * 2, used + need, 4096));
  bigger.set(buf.subarray(0, used));
  return bigger;
}

/** One zstd frame of `raw` at level 1 on the reused context; undefined when there is none (then use the one-shot call). */
function zstdCompressReused(raw: Uint8Array): Buffer | undefined {
  if (reusedZstd === undefined) reusedZstd = openReusedZstd();
  const z = reusedZstd;
  if (z === false) return undefined;
  if (z.scratch.length < encodeChunkSize(raw.length)) z.scratch = Buffer.allocUnsafeSlow(encodeChunkSize(raw.length));
  const into = { buf: z.scratch as Uint8Array };
  const n = zstdFrameInto(raw, into, 0, grown);
  if (n === undefined) return undefined;
  z.scratch = into.buf as Buffer;
  const out = Buffer.allocUnsafe(n);
  z.scratch.copy(out, 0, 0, n);
  return out;
}

/**
 * The zstd frame of `raw` at level 1 (byte for byte zstd's encode) written
 * into `out.buf` from `offset`, on this thread's reused context: no
 * allocation per call (an encode worker writes a batch's chunks back to back
 * into one buffer, agent/encode-worker.ts). `out.buf` is replaced by a
 * larger copy when the frame does not fit. Returns the frame's length, or
 * undefined when this Node offers no reused context (then encode and copy).
 */
export function zstdEncodeInto(raw: Uint8Array, out: { buf: Uint8Array }, offset: number): number | undefined {
  return zstdFrameInto(raw, out, offset, grown);
}

/** Whether synchronous zstd encodes run on the reused context (false: this Node lacks the internals, or a call failed). */
export function zstdContextReused(): boolean {
  if (reusedZstd === undefined) reusedZstd = openReusedZstd();
  return reusedZstd !== false;
}

const codecs: Record<CodecName, Codec> = {
  none: {
    name: "none",
    encode: async (raw) => Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength),
    decode: async (enc) => Buffer.from(enc.buffer, enc.byteOffset, enc.byteLength),
  },
  zstd: {
    name: "zstd",
    encode: async (raw) => {
      const options = { chunkSize: encodeChunkSize(raw.length), params: ZSTD_LEVEL_1 };
      if (raw.length > SYNC_MAX_BYTES) return zstdCompress(raw, options);
      return zstdCompressReused(raw) ?? zlib.zstdCompressSync(raw, options);
    },
    decode: async (enc, expectedSize) =>
      expectedSize !== undefined && expectedSize <= SYNC_MAX_BYTES
        ? zlib.zstdDecompressSync(enc, decodeOptions(expectedSize))
        : zstdDecompress(enc, decodeOptions(expectedSize)),
  },
  gzip: {
    name: "gzip",
    encode: async (raw) => {
      const options = { level: 1, chunkSize: encodeChunkSize(raw.length) };
      return raw.length <= SYNC_MAX_BYTES ? zlib.gzipSync(raw, options) : gzip(raw, options);
    },
    decode: async (enc, expectedSize) =>
      expectedSize !== undefined && expectedSize <= SYNC_MAX_BYTES
        ? zlib.gunzipSync(enc, decodeOptions(expectedSize))
        : gunzip(enc, decodeOptions(expectedSize)),
  },
  "fflate-gzip": {
    name: "fflate-gzip",
    encode: async (raw) => Buffer.from(fflateGzip(raw, { level: 1 })),
    decode: async (enc) => Buffer.from(fflateGunzip(enc)),
  },
};

export function isCodecName(name: string): name is CodecName {
  return (CODEC_NAMES as readonly string[]).includes(name);
}

export function getCodec(name: string): Codec {
  if (!isCodecName(name)) {
    throw new CodecError(`unknown codec '${name}' (known: ${CODEC_NAMES.join(", ")})`);
  }
  return codecs[name];
}

/** Decodes, turning any decoder failure into a CodecError naming the codec and the object. */
export async function decodeWith(name: string, encoded: Uint8Array, what: string, expectedSize?: number): Promise<Buffer> {
  const codec = getCodec(name);
  try {
    return await codec.decode(encoded, expectedSize);
  } catch (cause) {
    if (expectedSize !== undefined && (cause as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      throw new CodecError(`${what} decodes to more than the ${expectedSize} bytes it claims`, { cause });
    }
    throw new CodecError(`${what} does not decode as ${name}: ${(cause as Error).message}`, { cause });
  }
}
