/**
 * A decode worker of agent/decode-pool.ts: decodes one chunk's stored bytes
 * with its codec and hashes the raw bytes, off the restore's main thread.
 * Message in: DecodeRequest; out: DecodeReply (the raw bytes transferred,
 * never copied back).
 */
import { hash } from "node:crypto";
import { writeSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { decodeWith } from "../core/codec.js";
import { CodecError } from "../core/errors.js";
import type { DecodeReply, DecodeRequest } from "./decode-pool.js";

const port = parentPort;
if (!port) throw new Error("agent/decode-worker.js runs only as a worker thread (agent/decode-pool.ts)");

port.on("message", (m: DecodeRequest) => {
  void (async (): Promise<void> => {
    let reply: DecodeReply;
    let transfer: ArrayBuffer[] = [];
    try {
      let raw = await decodeWith(m.codec, m.stored, m.what, m.size);
      if (m.write) {
        // Written only once verified; only the hash and length go back.
        const sha256 = hash("sha256", raw, "hex");
        if (sha256 === m.write.sha256 && raw.length === m.size) {
          for (let off = 0; off < raw.length; ) {
            const n = writeSync(m.write.fd, raw, off, raw.length - off, m.write.position + off);
            if (n <= 0) throw new Error(`short write at offset ${m.write.position + off}`);
            off += n;
          }
        }
        port.postMessage({ id: m.id, raw: undefined, sha256, length: raw.length } satisfies DecodeReply);
        return;
      }
      // Transfer the raw bytes' own buffer; a view of a larger one (a decoder's output block) is copied first.
      if (raw.byteOffset !== 0 || raw.buffer.byteLength !== raw.byteLength) {
        const own = Buffer.allocUnsafeSlow(raw.length);
        raw.copy(own);
        raw = own;
      }
      reply = { id: m.id, raw, sha256: hash("sha256", raw, "hex"), length: raw.length };
      transfer = [raw.buffer as ArrayBuffer];
    } catch (e) {
      reply = { id: m.id, error: e instanceof Error ? e.message : String(e), codecError: e instanceof CodecError };
    }
    port.postMessage(reply, transfer);
  })();
});
