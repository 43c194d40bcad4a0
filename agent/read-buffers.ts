/**
 * Whole-file reads into buffers kept from one read to the next (core/buffer-pool.ts):
 * wal-push reads one 16 MiB WAL segment after another (a resident agent,
 * several at once). readFile allocates a fresh segment-sized Buffer per
 * read, whose pages the kernel faults in as the read fills them (measured
 * ~7 ms of CPU per 16 MiB segment vs ~3.5 ms into a kept buffer), and whose
 * external memory brought the agent's heap a full garbage collection every
 * few segments. A kept buffer is lent to one read at a time (`release`
 * gives it back): pushes running at once each have their own.
 */
import { open } from "node:fs/promises";
import { BufferPool } from "../core/buffer-pool.js";

/** Files smaller than this are read into a fresh buffer of their size, never kept (history files, backup labels). */
export const KEPT_MIN_BYTES = 1 << 20;

export interface FileRead {
  /** The file's bytes: a view of a kept buffer until `release`. */
  bytes: Buffer;
  /** Gives the buffer back for another read; `bytes` must not be used after. Idempotent. */
  release(): void;
}

export class ReadBuffers {
  private readonly pool: BufferPool;

  /** `keep`: how many buffers are kept for reuse at most (the reads expected at once). */
  constructor(keep: number) {
    this.pool = new BufferPool(keep);
  }

  /** Buffers kept now (not lent). */
  get kept(): number {
    return this.pool.kept;
  }

  /**
   * The whole file at `path`, as fs.readFile reads it (to its end, however
   * long it has become since its size was read), into a kept buffer when it
   * is at least KEPT_MIN_BYTES. Rejects as readFile does (ENOENT, EISDIR…).
   */
  async read(path: string): Promise<FileRead> {
    const fh = await open(path, "r");
    try {
      const { size } = await fh.stat();
      const kept = size >= KEPT_MIN_BYTES;
      let buf = kept ? this.pool.take(size) : Buffer.allocUnsafeSlow(size);
      let n = 0;
      for (;;) {
        if (n === buf.length) {
          // Full: read on into a small probe, as readFile reads to the end (a file longer than its size said).
          const probe = Buffer.allocUnsafe(64 * 1024);
          const { bytesRead } = await fh.read(probe, 0, probe.length, n);
          if (bytesRead === 0) break;
          const bigger = Buffer.allocUnsafeSlow(2 * buf.length + probe.length);
          buf.copy(bigger, 0, 0, n);
          probe.copy(bigger, n, 0, bytesRead);
          if (kept) this.pool.give(buf);
          buf = bigger;
          n += bytesRead;
          continue;
        }
        const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      const lent = kept ? buf : undefined;
      let released = false;
      return {
        bytes: buf.subarray(0, n),
        release: () => {
          if (released || lent === undefined) return;
          released = true;
          this.pool.give(lent);
        },
      };
    } finally {
      await fh.close();
    }
  }
}
