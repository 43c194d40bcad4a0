/** SHA-256 of raw bytes, in one shot or streamed; always lowercase hex. */
import { createHash } from "node:crypto";

export const SHA256_RE = /^[0-9a-f]{64}$/;

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Incremental hasher for pipelines that see bytes in pieces. */
export class Sha256Stream {
  private readonly hash = createHash("sha256");
  private bytes = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.byteLength;
  }
  get size(): number {
    return this.bytes;
  }
  digest(): string {
    return this.hash.digest("hex");
  }
}
