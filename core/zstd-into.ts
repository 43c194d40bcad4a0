/**
 * zstd decoding of snapshot chunks into a caller's buffer on one kept
 * decompression context, for the restore's decode worker
 * (agent/decode-worker.ts) and snapshot ingest's pack verification
 * (functions/snapshot/promote-packs.ts).
 *
 * `zlib.zstdDecompressSync` builds a whole stream object and a fresh
 * ZSTD_DCtx (plus its window buffer) for every call and returns a new output
 * buffer: on 128 KiB snapshot blocks that is about half the CPU of the
 * decode (measured: 145 µs one-shot vs 71 µs on a kept context per 128 KiB
 * block), and the malloc/free churn of ~12,000 contexts per 1.5 GB restore
 * keeps glibc arenas resident. As core/codec.ts does for encoding, this
 * drives the handle of one long-lived ZstdDecompress stream
 * (`_handle.writeSync`, `_writeState` = [availOut, availIn]) — Node
 * internals: when they are absent the caller uses the one-shot decode.
 *
 * Only an unambiguous success counts: all input consumed, exactly the
 * expected size produced, output room left over. Anything else (corrupt
 * bytes, a frame longer or shorter than recorded, trailing bytes) drops the
 * context (it may be mid-frame) and returns undefined: the caller decodes
 * the same bytes one-shot (core/codec.ts decodeWith), which gives the
 * canonical CodecError, or the bytes a success, so results never depend on
 * which path ran.
 */
import * as zlib from "node:zlib";
import { zlibInternals, type ZlibHandle } from "./codec.js";

interface Kept {
  stream: zlib.ZstdDecompress;
  handle: ZlibHandle;
  /** [availOut, availIn] after each writeSync. */
  state: Uint32Array;
}

/** Raw chunk sizes worth a kept context (snapshot chunks are at most 8 MiB); larger ones go one-shot. */
export const KEPT_MAX_BYTES = 16 * 1024 * 1024;

export class ZstdInto {
  private kept: Kept | undefined | false;
  /** decodeReused's output, grown to the largest chunk + 1. */
  private scratch = Buffer.allocUnsafeSlow(128 * 1024 + 1);

  private open(): Kept | false {
    try {
      const stream = zlib.createZstdDecompress();
      // A decoder error destroys the stream with it; nobody listens, so the event must not go unhandled.
      stream.on("error", () => undefined);
      const internals = zlibInternals(stream);
      if (!internals) return false;
      return { stream, ...internals };
    } catch {
      return false;
    }
  }

  /** Whether this Node offers the internals (false: always use the one-shot decode). */
  available(): boolean {
    if (this.kept === undefined) this.kept = this.open();
    return this.kept !== false;
  }

  /**
   * Decodes the single zstd frame `enc` into `out` (which must have room for
   * more than `size` bytes) and returns `size`, or undefined when it is not
   * exactly one frame of `size` bytes (see the file comment).
   */
  decode(enc: Uint8Array, size: number, out: Uint8Array): number | undefined {
    if (out.length <= size) throw new RangeError(`output of ${out.length} bytes has no room beyond ${size}`);
    if (this.kept === undefined) this.kept = this.open();
    const k = this.kept;
    if (k === false) return undefined;
    try {
      k.handle.writeSync(zlib.constants.ZSTD_e_end, enc, 0, enc.length, out, 0, size + 1);
      const availOut = k.state[0]!;
      const availIn = k.state[1]!;
      if (!k.stream.destroyed && availIn === 0 && availOut === 1) return size;
    } catch {
      // dropped below
    }
    k.stream.destroy();
    this.kept = undefined;
    return undefined;
  }

  /**
   * `enc` decoded (as `decode`) into this decoder's own reused buffer: a view
   * valid until the next call (hash or write it before anything else runs),
   * or undefined for a chunk over KEPT_MAX_BYTES or bytes that are not
   * exactly one frame of `size` (the caller then decodes one-shot).
   */
  decodeReused(enc: Uint8Array, size: number): Buffer | undefined {
    if (size > KEPT_MAX_BYTES) return undefined;
    if (this.scratch.length <= size) this.scratch = Buffer.allocUnsafeSlow(size + 1);
    const n = this.decode(enc, size, this.scratch);
    return n === undefined ? undefined : this.scratch.subarray(0, n);
  }

  close(): void {
    if (this.kept) this.kept.stream.destroy();
    this.kept = false;
  }
}
