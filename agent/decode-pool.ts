/**
 * Chunk decoding and hashing on worker threads, for restore (agent/restore.ts).
 *
 * A restore's main thread reads, decodes (zstd), hashes (SHA-256) and
 * writes every chunk; measured at pgbench scale 100 (bench:snapshot-restore,
 * packed) decode and hash were ~2.7 s of ~7.8 s of CPU on one thread while
 * the other core idled. With a pool the main thread only dispatches and
 * writes: each chunk's stored bytes (a few KB, copied out of the ranged
 * read so only they cross) go to a worker, which decodes, hashes and
 * transfers the raw bytes back (no copy).
 *
 * Returning the raw bytes cost more than it saved: measured in one run on
 * this 2-core machine, quiet (bench:snapshot-restore, scale 100, packed),
 * restore took 7.34 s and 253 MB peak RSS decoding in-thread, 7.92 s and
 * 399 MB with 2 workers (11.5 s of CPU instead of 9.0). So the worker also
 * writes (`decodeInto`): it decodes, hashes and, only when the hash is the
 * chunk's name, writes the bytes at their offset of the restore's open file
 * (a file descriptor is the process's, usable from any thread); only the hash
 * and length come back. restore (agent/restore.ts RESTORE_DECODE_THREADS)
 * uses one such worker by default; openDecoder's own default stays 0
 * (WALVAULT_DECODE_THREADS=N overrides both).
 *
 * The pool needs the compiled worker (dist/agent/decode-worker.js, next to
 * the compiled pool). Run from the TypeScript sources (tests), there is
 * none: `openDecoder` then decodes on the calling thread, as before — same
 * checks, same messages.
 */
import { decodeWith, type CodecName } from "../core/codec.js";
import { CodecError, describeError, FileAccessError, isWalvaultError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { RUN_BYTES } from "./direct-runs.js";
import { compiledWorkerBeside, threadsFromEnv, WorkerCalls } from "./worker-threads.js";

export interface DecodeRequest {
  id: number;
  codec: CodecName;
  stored: Uint8Array;
  /** The recorded raw size (the decode refuses anything larger). */
  size: number;
  /** For messages: which chunk of which file. */
  what: string;
  /** Write the raw bytes at `position` of the open file `fd` (from this process) if they hash to `sha256` and have `size` bytes; do not send them back. */
  write?: WriteInto;
  /** No chunk (`stored` empty): answer once every run of the file with this direct descriptor (-1: of every file) placed before is written (agent/direct-runs.ts drain). */
  drain?: number;
  /** No chunk of its own (`stored` empty): these chunks, each decoded, verified and written as a `write` request is, in order, answered together (`parts` of the reply, one each). */
  parts?: DecodePart[];
}

/** One chunk of a request with `parts` (decodeIntoMany: decodeInto's arguments): consecutive chunks of one file, one run (agent/direct-runs.ts). */
export type DecodePart = Omit<DecodeRequest, "id" | "drain" | "parts"> & { write: WriteInto };

/** A part as sent: its stored bytes are bytes[at, at + length] of the batch's `bytes`, or of `shared[src]` when `src` is given. */
export type PackedPart = Omit<DecodePart, "stored"> & { at: number; length: number; src?: number };

/** An fs error's identity, kept across the thread boundary (a write the worker made). */
export interface ErrnoInfo {
  code: string;
  errno?: number;
  syscall?: string;
}

/**
 * What a worker receives: the requests of one turn. Stored bytes in shared
 * memory (a restore's reads, agent/chunk-reader.ts sharedBodies) stay where
 * they are: request i's bytes are shared[src][at, at + length). Any others
 * are copied into one buffer (one allocation and one transfer per message,
 * not one per chunk): bytes[at, at + length).
 */
export interface DecodeBatch {
  bytes: Uint8Array;
  shared: SharedArrayBuffer[];
  requests: (Omit<DecodeRequest, "stored" | "parts"> & { at: number; length: number; src?: number; parts?: PackedPart[] })[];
}

/**
 * The requests of one turn as one DecodeBatch: views of shared memory are
 * sent as they are (the memory is shared, not copied); only the other
 * chunks' own bytes are copied, never the reads they are views of.
 */
export function packDecodeRequests(requests: readonly DecodeRequest[]): { message: DecodeBatch; transfer: ArrayBuffer[] } {
  const isShared = (stored: Uint8Array): boolean => stored.buffer instanceof SharedArrayBuffer;
  let total = 0;
  for (const r of requests) {
    if (!isShared(r.stored)) total += r.stored.byteLength;
    for (const p of r.parts ?? []) if (!isShared(p.stored)) total += p.stored.byteLength;
  }
  const bytes = new Uint8Array(total);
  const shared: SharedArrayBuffer[] = [];
  const sharedIndex = new Map<SharedArrayBuffer, number>();
  let at = 0;
  const place = (stored: Uint8Array): { at: number; length: number; src?: number } => {
    if (isShared(stored)) {
      const sab = stored.buffer as SharedArrayBuffer;
      let src = sharedIndex.get(sab);
      if (src === undefined) {
        src = shared.push(sab) - 1;
        sharedIndex.set(sab, src);
      }
      return { at: stored.byteOffset, length: stored.byteLength, src };
    }
    bytes.set(stored, at);
    at += stored.byteLength;
    return { at: at - stored.byteLength, length: stored.byteLength };
  };
  const packed = requests.map(({ stored, parts, ...r }) => {
    const m = { ...r, ...place(stored) };
    return parts === undefined ? m : { ...m, parts: parts.map(({ stored: s, ...p }) => ({ ...p, ...place(s) })) };
  });
  return { message: { bytes, shared, requests: packed }, transfer: [bytes.buffer] };
}

/** A decode's outcome on this thread: the raw bytes (not for decodeInto), their hash and length, `direct` when written with direct I/O. */
export interface DecodeResult {
  raw: Buffer | undefined;
  sha256: string;
  length: number;
  direct?: boolean;
  /** A request with `parts`: each part's outcome (a failed one as its Error, replyError). */
  parts?: (DecodeResult | Error)[];
}

/** A reply on this thread: its result, or its failure as an Error (replyError). */
function settleReply(m: DecodeReply): DecodeResult | Error {
  if ("error" in m) return replyError(m);
  if ("parts" in m) return { raw: undefined, sha256: "", length: 0, parts: m.parts.map(settleReply) };
  return { raw: m.raw && Buffer.from(m.raw.buffer, m.raw.byteOffset, m.raw.byteLength), sha256: m.sha256, length: m.length, ...(m.direct === true ? { direct: true } : {}) };
}

export type DecodeReply =
  | { id: number; raw: Buffer | undefined; sha256: string; length: number; direct?: boolean }
  | { id: number; error: string; codecError: boolean; errno?: ErrnoInfo; position?: number }
  | { id: number; parts: DecodeReply[] };

/** The worker's failure as an Error on this thread: a CodecError, or an Error with the fs error's code, errno and syscall (and `position`, a failed run's offset in its file). */
export function replyError(m: { error: string; codecError: boolean; errno?: ErrnoInfo; position?: number }): Error {
  if (m.codecError) return new CodecError(m.error);
  const e = new Error(m.error) as NodeJS.ErrnoException & { position?: number };
  if (m.position !== undefined) e.position = m.position;
  if (m.errno) {
    e.code = m.errno.code;
    if (m.errno.errno !== undefined) e.errno = m.errno.errno;
    if (m.errno.syscall !== undefined) e.syscall = m.errno.syscall;
  }
  return e;
}

/**
 * A failed write of restored bytes (ENOSPC, EIO, EBADF...), made on this
 * thread or by a worker: a FileAccessError naming what was written and
 * where, its cause the fs error (code, errno, syscall kept). Anything that is
 * not an fs error (a walvault error, no `code`) is returned as it is.
 */
export function writeError(what: string, position: number, cause: unknown): unknown {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (isWalvaultError(cause) || typeof code !== "string" || !/^E[A-Z0-9]+$/.test(code)) return cause;
  return new FileAccessError(`cannot write ${what} at offset ${position}: ${code} (${describeError(cause)})`, { cause });
}

/** Decodes a chunk's stored bytes and hashes the result; a decoder failure rejects with CodecError. */
export interface ChunkDecoder {
  decode(codec: CodecName, stored: Uint8Array, size: number, what: string): Promise<{ raw: Buffer; sha256: string }>;
  /**
   * Decodes and hashes, and only when the bytes hash to `into.sha256` with
   * `size` bytes writes them at `into.position` of file descriptor `into.fd`
   * (on the worker: the raw bytes never come back). Resolves with the hash
   * and length found either way, and `direct` when the bytes joined a run
   * written with direct I/O (agent/direct-runs.ts): written by the time
   * drainWrites of their file resolves, not necessarily before. Only a pool
   * offers it.
   */
  decodeInto?(codec: CodecName, stored: Uint8Array, size: number, what: string, into: WriteInto): Promise<DecodedInto>;
  /**
   * decodeInto of several chunks in one request (consecutive chunks of one
   * file, one run of agent/direct-runs.ts): each outcome in order, a failed
   * one as its Error (CodecError, or a FileAccessError naming the chunk).
   * Only a pool offers it.
   */
  decodeIntoMany?(parts: readonly DecodePart[]): Promise<(DecodedInto | Error)[]>;
  /**
   * Resolves once every chunk decodeInto answered `direct` for the file with
   * this direct descriptor (undefined: for every file) is written; rejects
   * with a FileAccessError naming `what` and the offset when a write failed.
   * A `direct` answer means the chunk is verified and in a run, not yet that
   * it is on disk: the file is drained before it is checked, synced or
   * closed. Only a pool offers it (with decodeInto).
   */
  drainWrites?(directFd: number | undefined, what: string): Promise<void>;
  close(): Promise<void>;
}

/** What decodeInto resolves with. */
export interface DecodedInto {
  sha256: string;
  length: number;
  direct?: boolean;
}

/**
 * Where decodeInto writes: `position` of the open file `fd`; with
 * `directFd` (the same file opened with O_DIRECT), consecutive chunks of the
 * file are gathered and written in runs (agent/direct-runs.ts), and the chunks
 * of one run go to the same worker.
 */
export interface WriteInto {
  fd: number;
  position: number;
  sha256: string;
  directFd?: number;
}

/** On the calling thread. */
export const inThreadDecoder: ChunkDecoder = {
  async decode(codec, stored, size, what) {
    const raw = await decodeWith(codec, stored, what, size);
    return { raw, sha256: sha256Hex(raw) };
  },
  async close() {},
};

const NO_BYTES = new Uint8Array(0);

/** A run's chunks (agent/direct-runs.ts) go to one worker: the file and the run's place in it choose which (none without a direct descriptor). */
function runAffinity(into: WriteInto): number | undefined {
  return into.directFd === undefined ? undefined : into.directFd + Math.floor(into.position / RUN_BYTES);
}

/** A worker holds one chunk at a time (its bytes are outside the heap): a small heap keeps each worker's memory to a few MB. */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 };

/** Requests queued per worker before a dispatch waits (keeps both sides busy without holding much). */
const PER_WORKER_QUEUE = 8;

export class DecodePool implements ChunkDecoder {
  private readonly calls: WorkerCalls<DecodeReply, DecodeResult>;

  constructor(workerFile: string | URL, size: number) {
    this.calls = new WorkerCalls<DecodeReply, DecodeResult>(workerFile, size, {
      name: "a decode worker",
      options: { resourceLimits: WORKER_LIMITS },
      settle: settleReply,
      // A restore asks for thousands of chunks of ~128 KiB: one message per turn, not per chunk.
      batch: (requests) => packDecodeRequests(requests as DecodeRequest[]),
    });
  }

  async decode(codec: CodecName, stored: Uint8Array, size: number, what: string): Promise<{ raw: Buffer; sha256: string }> {
    if (this.calls.failed) throw this.calls.failed;
    // Too many queued everywhere: decode here rather than queue without bound.
    if (this.calls.leastPending >= PER_WORKER_QUEUE) return inThreadDecoder.decode(codec, stored, size, what);
    const { raw, sha256 } = await this.post({ codec, stored, size, what });
    return { raw: raw!, sha256 };
  }

  async decodeInto(codec: CodecName, stored: Uint8Array, size: number, what: string, into: WriteInto): Promise<DecodedInto> {
    // No fallback to this thread: the callers (restore's writers) bound how many wait.
    try {
      return await this.post({ codec, stored, size, what, write: into }, runAffinity(into));
    } catch (e) {
      throw writeError(what, into.position, e);
    }
  }

  async decodeIntoMany(parts: readonly DecodePart[]): Promise<(DecodedInto | Error)[]> {
    const first = parts[0];
    if (first === undefined) return [];
    // The run's chunks to one worker, the one decodeInto sends each of them to.
    const out = await this.post({ codec: first.codec, stored: NO_BYTES, size: 0, what: first.what, parts: [...parts] }, runAffinity(first.write));
    return (out.parts ?? []).map((r, i) => (r instanceof Error ? (writeError(parts[i]!.what, parts[i]!.write.position, r) as Error) : r));
  }

  async drainWrites(directFd: number | undefined, what: string): Promise<void> {
    // Every worker: a file's runs go to either, by their place in it.
    const drained = await Promise.allSettled(Array.from({ length: this.calls.threads }, (_, i) => this.post({ codec: "zstd", stored: NO_BYTES, size: 0, what, drain: directFd ?? -1 }, i)));
    const failed = drained.find((d) => d.status === "rejected");
    if (failed !== undefined) {
      const e: unknown = failed.reason;
      throw writeError(what, (e as { position?: number }).position ?? 0, e);
    }
  }

  private post(req: Omit<DecodeRequest, "id">, affinity?: number): Promise<DecodeResult> {
    // The stored bytes are copied when the turn's requests are sent (packDecodeRequests): the view is read then.
    return this.calls.call((id) => ({ ...req, id }) satisfies DecodeRequest, [], affinity);
  }

  close(): Promise<void> {
    return this.calls.close("the decode pool is closed");
  }
}

/** The compiled worker next to this module, when there is one (not when run from the TypeScript sources). */
export function defaultWorkerFile(): string | undefined {
  return compiledWorkerBeside(import.meta.url, "decode-worker.js");
}

/**
 * A pool of `threads` decode workers (default WALVAULT_DECODE_THREADS, else `defaultThreads`, else 0), or the
 * in-thread decoder when `threads` is 0, when the compiled worker is not
 * there, or when the restore is small (`chunks` below 64: starting workers
 * costs more than it saves).
 */
export function openDecoder(opts: { threads?: number; defaultThreads?: number; chunks: number; workerFile?: string | URL }): ChunkDecoder {
  const threads = opts.threads ?? threadsFromEnv("WALVAULT_DECODE_THREADS") ?? opts.defaultThreads ?? 0;
  const file = opts.workerFile ?? defaultWorkerFile();
  if (threads <= 0 || file === undefined || opts.chunks < 64) return inThreadDecoder;
  return new DecodePool(file, threads);
}
