/**
 * A decode worker of agent/decode-pool.ts: decodes one chunk's stored bytes
 * with its codec and hashes the raw bytes, off the restore's main thread.
 * Message in: DecodeBatch (the requests of one turn, their bytes in one buffer); out: DecodeReply[] (the raw bytes transferred,
 * never copied back). A request with `parts` is a run of chunks handled
 * one after the other and answered together; a `drain` request is answered
 * once the runs of its file (agent/direct-runs.ts) are written.
 *
 * zstd chunks decode on one kept context (core/zstd-into.ts) into a reused
 * output buffer when the worker writes them itself (`write`): nothing is
 * allocated per chunk. Any other codec, or a chunk the kept context does not
 * decode cleanly, goes through core/codec.ts decodeWith (same bytes, same
 * errors).
 */
import { hash } from "node:crypto";
import { write, writeSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { decodeWith } from "../core/codec.js";
import { CodecError } from "../core/errors.js";
import type { DecodeBatch, DecodeReply, DecodeRequest } from "./decode-pool.js";
import { KEPT_MAX_BYTES, ZstdInto } from "../core/zstd-into.js";
import { DirectRuns } from "./direct-runs.js";

if (!parentPort) throw new Error("agent/decode-worker.js runs only as a worker thread (agent/decode-pool.ts)");
const port = parentPort;

const zstd = new ZstdInto();
/** Runs open at once (agent/direct-runs.ts): files being written by this worker at the same time. */
const RUN_SLOTS = 4;
/** The raw bytes of a chunk: a view of the kept decoder's reused output (`reused`: written here, not sent back) or a buffer of its own. */
async function decode(m: DecodeRequest, reused: boolean): Promise<Buffer> {
  if (m.codec === "zstd" && m.size <= KEPT_MAX_BYTES) {
    if (reused) {
      const raw = zstd.decodeReused(m.stored, m.size);
      if (raw !== undefined) return raw;
    } else {
      const into = Buffer.allocUnsafeSlow(m.size + 1);
      const n = zstd.decode(m.stored, m.size, into);
      if (n !== undefined) return into.subarray(0, n);
    }
  }
  return decodeWith(m.codec, m.stored, m.what, m.size);
}

/** Writes all of `raw` at `position` of `fd`; an fs error keeps its code, errno and syscall. */
function writeAll(fd: number, raw: Uint8Array, position: number): void {
  for (let off = 0; off < raw.length; ) {
    const n = writeSync(fd, raw, off, raw.length - off, position + off);
    if (n <= 0) throw Object.assign(new Error(`short write at offset ${position + off}`), { code: "EIO", syscall: "write" });
    off += n;
  }
}

/** writeAll on libuv's pool: this thread goes on decoding meanwhile. */
function writeAllAsync(fd: number, bytes: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const from = (off: number): void =>
      write(fd, bytes, off, bytes.length - off, position + off, (err, n) => {
        if (err) reject(err);
        else if (n <= 0) reject(Object.assign(new Error(`short write at offset ${position + off}`), { code: "EIO", syscall: "write" }));
        else if (off + n < bytes.length) from(off + n);
        else resolve();
      });
    from(0);
  });
}

function errorReply(id: number, e: unknown, position?: number): DecodeReply {
  const err = e as NodeJS.ErrnoException;
  return {
    id,
    ...(position === undefined ? {} : { position }),
    error: e instanceof Error ? e.message : String(e),
    codecError: e instanceof CodecError,
    ...(typeof err?.code === "string" ? { errno: { code: err.code, ...(err.errno === undefined ? {} : { errno: err.errno }), ...(err.syscall === undefined ? {} : { syscall: err.syscall }) } } : {}),
  };
}

/**
 * Replies go back in batches: every reply of the requests that arrived
 * together, in one message once they are all done (setImmediate runs after
 * the port has delivered what was queued). One message per chunk cost the
 * worker ~1 s of 9 in a scale-100 restore profile.
 */
let replies: DecodeReply[] = [];
let transfers: ArrayBuffer[] = [];
let flushing = false;
function send(reply: DecodeReply, transfer: ArrayBuffer[] = []): void {
  replies.push(reply);
  transfers.push(...transfer);
  endOfTurn();
}

/** Chunks of `write` requests with a direct descriptor, gathered into runs (agent/direct-runs.ts); a `drain` request proves their writes. */
const runs = new DirectRuns(RUN_SLOTS, writeAllAsync);

/** Once this turn's requests are done: every answer sent, in one message. */
function endOfTurn(): void {
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    const batch = replies;
    const t = transfers;
    replies = [];
    transfers = [];
    flushing = false;
    if (batch.length > 0) port.postMessage(batch, t);
  });
}

/**
 * One request at a time, in the order sent: a `write` request decodes into
 * the kept context's one reused buffer, which the next request overwrites,
 * so each is hashed and written before the next starts.
 */
let queue: Promise<void> = Promise.resolve();
port.on("message", (batch: DecodeBatch) => {
  const bytesOf = (at: number, length: number, src: number | undefined): Uint8Array =>
    src === undefined ? batch.bytes.subarray(at, at + length) : new Uint8Array(batch.shared[src]!, at, length);
  queue = queue.then(async () => {
    for (const { at, length, src, parts, ...r } of batch.requests) {
      await answer({ ...r, stored: bytesOf(at, length, src), ...(parts === undefined ? {} : { parts: parts.map(({ at: a, length: l, src: s, ...p }) => ({ ...p, stored: bytesOf(a, l, s) })) }) });
    }
  });
});

async function answer(m: DecodeRequest): Promise<void> {
  if (m.drain !== undefined) {
    // After every request sent before it (they were placed in order); answered once the file's runs are written, without holding up the next requests.
    void runs.drain(m.drain < 0 ? undefined : m.drain).then((failed) =>
      send(failed === undefined ? { id: m.id, raw: undefined, sha256: "", length: 0 } : errorReply(m.id, failed.error, failed.position)),
    );
    return;
  }
  if (m.parts !== undefined) {
    // A run's chunks, one after the other as if sent one by one, answered together.
    const parts: DecodeReply[] = [];
    for (const p of m.parts) parts.push((await outcome({ ...p, id: m.id })).reply);
    send({ id: m.id, parts });
    return;
  }
  const { reply, transfer } = await outcome(m);
  send(reply, transfer);
}

/** One chunk's answer (decoded, verified, written or sent back), or its failure as a reply. */
async function outcome(m: DecodeRequest): Promise<{ reply: DecodeReply; transfer: ArrayBuffer[] }> {
  try {
    if (m.write) {
      const w = m.write;
      // A zstd chunk of a file with a direct descriptor: decoded straight into its run and answered at once; a drain of its file proves the write.
      const place = w.directFd !== undefined && m.codec === "zstd" ? await runs.place(w.fd, w.directFd, w.position, m.size) : undefined;
      if (place !== undefined) {
        const n = zstd.decode(m.stored, m.size, place.view);
        if (n !== undefined) {
          const raw = place.view.subarray(0, n);
          const sha256 = hash("sha256", raw, "hex");
          if (sha256 !== w.sha256 || n !== m.size) return { reply: { id: m.id, raw: undefined, sha256, length: n }, transfer: [] };
          place.commit();
          return { reply: { id: m.id, raw: undefined, sha256, length: n, direct: true }, transfer: [] };
        }
      }
      const raw = await decode(m, true);
      // Written only once verified; only the hash and length go back.
      const sha256 = hash("sha256", raw, "hex");
      if (sha256 === w.sha256 && raw.length === m.size) writeAll(w.fd, raw, w.position);
      return { reply: { id: m.id, raw: undefined, sha256, length: raw.length }, transfer: [] };
    }
    let raw = await decode(m, false);
    // Transfer the raw bytes' own buffer; a view of a larger one (a decoder's output block) is copied first.
    if (raw.byteOffset !== 0 || raw.buffer.byteLength > raw.byteLength + 1) {
      const own = Buffer.allocUnsafeSlow(raw.length);
      raw.copy(own);
      raw = own;
    }
    return { reply: { id: m.id, raw, sha256: hash("sha256", raw, "hex"), length: raw.length }, transfer: [raw.buffer as ArrayBuffer] };
  } catch (e) {
    return { reply: errorReply(m.id, e), transfer: [] };
  }
}
