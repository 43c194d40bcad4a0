/**
 * Chunk hashing and compression on worker threads, for packed snapshot
 * pushes (agent/snapshot-push.ts).
 *
 * A push's main thread read, cut, hashed (SHA-256 of every chunk, and of
 * every whole file) and compressed every chunk: measured at pgbench scale
 * 100 (bench:snapshot-restore, packed, 1.59 GB) ~6.5 s of CPU on one thread,
 * busy the whole push phase while the other core served the local stack.
 * With a pool the main thread reads, cuts, hashes whole files and packs;
 * the workers hash each chunk (its name) and compress the ones the previous
 * manifest does not hold (core/known-filter.ts, shared with them).
 *
 * Chunks travel in batches (BATCH_BYTES of raw bytes, copied back to back
 * into a buffer the batch owns, transferred both ways, reused): one message
 * each way per batch rather than per chunk. `inOrder` gives each file's
 * chunks back in the order they were read, so the pipeline, the packs and
 * the manifest are byte for byte what a push on one thread produces.
 *
 * The pool needs the compiled worker (dist/agent/encode-worker.js, next to
 * the compiled pool). Run from the TypeScript sources (tests), there is
 * none: `openEncoder` then returns undefined and the push hashes and
 * compresses on its own thread, as before.
 */
import type { CodecName } from "../core/codec.js";
import type { KnownFilter } from "../core/known-filter.js";
import { compiledWorkerBeside, threadsFromEnv, WorkerCalls } from "./worker-threads.js";

/** Raw bytes per batch: 8 blocks of 128 KiB (a larger chunk goes alone, in a buffer of its own). */
export const BATCH_BYTES = 1024 * 1024;
/** Encoded bytes a batch's output holds: a whole batch that does not compress, with zstd's and deflate's margins. */
export const OUT_BYTES = BATCH_BYTES + 64 * 1024;

/** Worker threads of a push by default (WALVAULT_ENCODE_THREADS=N overrides; 0: on the push's own thread). */
export const PUSH_ENCODE_THREADS = 1;

/** What the worker gets at start. */
export interface EncodeWorkerData {
  codec: CodecName;
  /** KnownFilter.buffer: chunks held by the previous manifest (not compressed); absent: compress every chunk. */
  known?: SharedArrayBuffer;
}

export interface EncodeRequest {
  id: number;
  /** The batch's chunks, back to back from offset 0. */
  raw: ArrayBuffer;
  lengths: number[];
  /** Where the worker writes the encoded bytes, back to back (OUT_BYTES; a batch that needs more gets a larger one back). */
  out: ArrayBuffer;
}

export type EncodeReply =
  | {
      id: number;
      /** The request's buffer, back for reuse, and its chunk lengths. */
      raw: ArrayBuffer;
      lengths: number[];
      /** Hex SHA-256 of each chunk. */
      sha256: string[];
      /** Each chunk's encoded bytes, back to back in `out` (-1: not encoded, the filter holds the chunk). */
      storedLengths: number[];
      out: ArrayBuffer;
    }
  | { id: number; error: string };

/** A batch done: its buffers back, each chunk's hash and encoding. */
type EncodeResult = Extract<EncodeReply, { raw: ArrayBuffer }>;

/** One chunk of a file, hashed and (unless the previous manifest holds it) encoded. */
export interface EncodedChunk {
  sha256: string;
  /** The raw bytes: borrowed, valid until the next chunk is asked for. */
  raw: Uint8Array;
  /** The encoded bytes (the push's codec; the caller's to keep), or undefined when the worker's filter holds the chunk. */
  stored: Buffer | undefined;
}

/** A worker holds a batch or two (outside its heap): a small heap keeps each worker's memory to a few MB. */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 };

/** Batches in flight per file being read: enough to keep every worker busy with one queued behind. */
const IN_FLIGHT_PER_THREAD = 2;

export class EncodePool {
  private readonly calls: WorkerCalls<EncodeReply, EncodeResult>;
  /** Batch buffers (BATCH_BYTES) and output buffers (OUT_BYTES) back from the workers, for the next batches. */
  private readonly spare: ArrayBuffer[] = [];
  private readonly spareOut: ArrayBuffer[] = [];
  /** Batches handed out and not yet back (`buffer` to `recycle`), and the most there have been at once: how many buffers are kept. */
  private lent = 0;
  private mostLent = 0;
  /** Batch and output buffers allocated (not taken from the spare ones): for tests and figures. */
  made = 0;

  constructor(workerFile: string | URL, threads: number, codec: CodecName, known: KnownFilter | undefined) {
    const data: EncodeWorkerData = { codec, ...(known === undefined ? {} : { known: known.buffer as SharedArrayBuffer }) };
    if (known !== undefined && !(known.buffer instanceof SharedArrayBuffer)) throw new TypeError("the encode pool's known-chunk filter must be shared");
    this.calls = new WorkerCalls(workerFile, threads, {
      name: "a push encode worker",
      options: { workerData: data, resourceLimits: WORKER_LIMITS },
      settle: (m) => ("error" in m ? new Error(`a push encode worker failed: ${m.error}`) : m),
    });
  }

  get threads(): number {
    return this.calls.threads;
  }

  /** A batch's buffer: a spare one, else a new one (a larger chunk gets one of its size). */
  private buffer(size: number): ArrayBuffer {
    this.mostLent = Math.max(this.mostLent, ++this.lent);
    if (size <= BATCH_BYTES) {
      const kept = this.spare.pop();
      if (kept !== undefined) return kept;
    }
    this.made++;
    return new ArrayBuffer(Math.max(size, BATCH_BYTES));
  }

  /**
   * Keeps a reply's buffers for later batches: as many as have been in use
   * at once, so no more than the push's busiest moment held anyway. Each
   * file read at once has batches of its own (a small file one 1 MiB batch,
   * plus its output), so a fixed few per worker was too few: the push
   * allocated ~2 MiB per small file, garbage until the next collection
   * (docs/decisions.md, stop 47: with the read buffers below, peak RSS 208-211
   * MB against 221-227 at pgbench scale 100).
   */
  private recycle(reply: { raw: ArrayBuffer; out?: ArrayBuffer }): void {
    this.lent = Math.max(0, this.lent - 1);
    if (reply.raw.byteLength === BATCH_BYTES && this.spare.length < this.mostLent) this.spare.push(reply.raw);
    if (reply.out?.byteLength === OUT_BYTES && this.spareOut.length < this.mostLent) this.spareOut.push(reply.out);
  }

  private run(raw: ArrayBuffer, lengths: number[]): Promise<EncodeResult> {
    let out = this.spareOut.pop();
    if (out === undefined) {
      this.made++;
      out = new ArrayBuffer(OUT_BYTES);
    }
    return this.calls.call((id) => ({ id, raw, lengths, out }) satisfies EncodeRequest, [raw, out]);
  }

  /**
   * The chunks of one file, hashed and encoded by the workers, in the order
   * `source` gives them. `onRaw`, if given, sees each chunk's raw bytes
   * first, in order, on this thread (the file's own SHA-256, when the push
   * hashes whole files). A chunk from `source` is
   * borrowed (copied into a batch before the next one is asked for); a
   * yielded chunk's `raw` is valid until the next one is asked for, its
   * `stored` is a copy of its own (the batch's buffers go to the next batch).
   */
  async *inOrder(source: AsyncIterable<Uint8Array>, onRaw?: (chunk: Uint8Array) => void): AsyncGenerator<EncodedChunk, void, undefined> {
    const inFlight: Promise<EncodeResult>[] = [];
    const limit = this.threads * IN_FLIGHT_PER_THREAD;
    let buf: ArrayBuffer | undefined;
    let filled = 0;
    let lengths: number[] = [];
    const send = (): void => {
      const p = this.run(buf!, lengths);
      p.catch(() => undefined);
      inFlight.push(p);
      buf = undefined;
      filled = 0;
      lengths = [];
    };
    const self = this;
    async function* take(reply: EncodeResult): AsyncGenerator<EncodedChunk, void, undefined> {
      let off = 0;
      let storedOff = 0;
      const raw = new Uint8Array(reply.raw);
      const out = Buffer.from(reply.out);
      for (let i = 0; i < reply.sha256.length; i++) {
        const n = reply.storedLengths[i]!;
        const len = reply.lengths[i]!;
        // The encoded bytes are copied out at their size (a few KB on pgbench), as the one-thread encode gives them: the pipeline holds them until they are packed.
        let stored: Buffer | undefined;
        if (n >= 0) {
          stored = Buffer.allocUnsafe(n);
          out.copy(stored, 0, storedOff, storedOff + n);
          storedOff += n;
        }
        yield { sha256: reply.sha256[i]!, raw: raw.subarray(off, off + len), stored };
        off += len;
      }
      self.recycle(reply);
    }
    try {
      for await (const chunk of source) {
        onRaw?.(chunk);
        if (buf !== undefined && filled + chunk.length > buf.byteLength) send();
        buf ??= this.buffer(chunk.length);
        new Uint8Array(buf, filled, chunk.length).set(chunk);
        filled += chunk.length;
        lengths.push(chunk.length);
        while (inFlight.length >= limit) yield* take(await inFlight.shift()!);
      }
      if (buf !== undefined && lengths.length > 0) send();
      while (inFlight.length > 0) yield* take(await inFlight.shift()!);
    } finally {
      // Stopped early (a failure, or the consumer stopped): let the batches in flight end, keep their buffers (and the one being filled).
      for (const p of inFlight) {
        const r = await p.catch(() => undefined);
        if (r) this.recycle(r);
      }
      if (buf !== undefined) this.recycle({ raw: buf });
    }
  }

  /** Ends the workers and lets the kept buffers go (the push closes the pool once every chunk is encoded, before its manifest). */
  close(): Promise<void> {
    this.spare.length = 0;
    this.spareOut.length = 0;
    return this.calls.close("the push encode pool is closed");
  }
}

/** The compiled worker next to this module, when there is one (not when run from the TypeScript sources). */
export function defaultEncodeWorkerFile(): string | undefined {
  return compiledWorkerBeside(import.meta.url, "encode-worker.js");
}

/**
 * A pool of `threads` encode workers (default WALVAULT_ENCODE_THREADS, else
 * PUSH_ENCODE_THREADS), or undefined when that is 0 or the compiled worker
 * is not there.
 */
export function openEncoder(opts: { codec: CodecName; known?: KnownFilter; threads?: number; workerFile?: string | URL }): EncodePool | undefined {
  const threads = opts.threads ?? threadsFromEnv("WALVAULT_ENCODE_THREADS") ?? PUSH_ENCODE_THREADS;
  const file = opts.workerFile ?? defaultEncodeWorkerFile();
  if (threads <= 0 || file === undefined) return undefined;
  return new EncodePool(file, threads, opts.codec, opts.known);
}
