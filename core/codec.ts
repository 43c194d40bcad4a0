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
      return raw.length <= SYNC_MAX_BYTES ? zlib.zstdCompressSync(raw, options) : zstdCompress(raw, options);
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
