/**
 * An encode worker of agent/encode-pool.ts: hashes each chunk of a batch
 * (SHA-256, its name) and encodes with the push's codec the chunks the
 * previous manifest does not hold, off the push's main thread. Message in:
 * EncodeRequest; out: EncodeReply (the batch's buffer and the encoded bytes
 * transferred, never copied back).
 *
 * zstd runs on this thread's own kept context (core/codec.ts: module state is
 * per thread), so its output is byte for byte the main thread's, written
 * straight into the batch's output buffer.
 */
import { hash } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { getCodec, grown, SYNC_MAX_BYTES, zstdEncodeInto } from "../core/codec.js";
import { firstWords, KnownFilter } from "../core/known-filter.js";
import type { EncodeReply, EncodeRequest, EncodeWorkerData } from "./encode-pool.js";

if (!parentPort) throw new Error("agent/encode-worker.js runs only as a worker thread (agent/encode-pool.ts)");
const port = parentPort;
const data = workerData as EncodeWorkerData;
const codec = getCodec(data.codec);
const known = data.known === undefined ? undefined : new KnownFilter(data.known);

async function encodeBatch(m: EncodeRequest): Promise<{ reply: EncodeReply; transfer: ArrayBuffer[] }> {
  const raw = new Uint8Array(m.raw);
  const sha256: string[] = [];
  const storedLengths: number[] = [];
  // The encoded bytes go back to back into the request's output buffer (the pool reuses it), nothing allocated per
  // chunk: a worker that allocated each chunk's output left tens of MB of dead buffers between its collections.
  const out: { buf: Uint8Array } = { buf: new Uint8Array(m.out) };
  let at = 0;
  let off = 0;
  for (const len of m.lengths) {
    const chunk = raw.subarray(off, off + len);
    off += len;
    const digest = hash("sha256", chunk, "buffer") as unknown as Buffer;
    sha256.push(digest.toString("hex"));
    const [w0, w1] = firstWords(digest);
    if (known?.has(w0, w1)) {
      storedLengths.push(-1);
      continue;
    }
    // As codec.encode does: synchronous zstd on the kept context up to SYNC_MAX_BYTES, the one-shot call above (same bytes either way).
    let n = codec.name === "zstd" && chunk.length <= SYNC_MAX_BYTES ? zstdEncodeInto(chunk, out, at) : undefined;
    if (n === undefined) {
      // Another codec, a larger chunk, or no kept zstd context: encode, then copy (growing the output when it does not fit).
      const enc = await codec.encode(chunk);
      if (out.buf.length - at < enc.length) out.buf = grown(out.buf, at, enc.length);
      out.buf.set(enc, at);
      n = enc.length;
    }
    storedLengths.push(n);
    at += n;
  }
  const outBuffer = out.buf.buffer as ArrayBuffer;
  return { reply: { id: m.id, raw: m.raw, lengths: m.lengths, sha256, storedLengths, out: outBuffer }, transfer: [m.raw, outBuffer] };
}

port.on("message", (m: EncodeRequest) => {
  void encodeBatch(m).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (e: unknown) => port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies EncodeReply),
  );
});
