/**
 * Codec registry. Every stored object records the codec its bytes are encoded
 * with (object metadata and catalog), so decoding never guesses and the
 * default can change without rewriting the archive.
 *
 * The default is zstd level 1 through node:zlib: measured by bench/codec.ts on
 * real PostgreSQL WAL (docs/decisions.md has the figures). The async zlib calls
 * run on libuv's thread pool, so compression of several objects overlaps.
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
export const MAX_DECODED_BYTES = (1 << 30) + (1 << 20);
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
    encode: (raw) =>
      zstdCompress(raw, { chunkSize: CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } }),
    decode: (enc, expectedSize) => zstdDecompress(enc, decodeOptions(expectedSize)),
  },
  gzip: {
    name: "gzip",
    encode: (raw) => gzip(raw, { level: 1, chunkSize: CHUNK }),
    decode: (enc, expectedSize) => gunzip(enc, decodeOptions(expectedSize)),
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
