/**
 * Large buffers kept for reuse, each lent to one user at a time: a process
 * that reads one 16 MiB WAL segment (or its 1.5 MiB object) after another
 * takes the last one's buffer instead of allocating, so the kernel does not
 * fault in fresh pages for every read and the V8 heap does not see a
 * segment's worth of new external memory, which brought it a full garbage
 * collection every one or two segments. Users running at once each get a
 * buffer of their own (`take` hands a kept buffer to one user only).
 */
/** The largest buffer a pool keeps by default: a 64 MiB WAL segment's; larger ones (1 GiB segments) are left to the collector. */
export const KEEP_MAX_BYTES = 64 << 20;

export interface BufferPoolOptions {
  /** Bytes kept at most, all buffers together (default: no bound but `keep` and `maxBytes`). */
  keepBytes?: number;
  /** Makes a buffer of at least `size` bytes when none kept fits (default Buffer.allocUnsafeSlow; e.g. shared memory). */
  allocate?: (size: number) => Buffer;
}

export class BufferPool {
  private readonly free: Buffer[] = [];
  private freeBytes = 0;
  /** Buffers made (not taken from the kept ones): for tests and figures. */
  made = 0;

  /** `keep`: how many buffers are kept at most (the users expected at once); none larger than `maxBytes`. */
  constructor(
    private readonly keep: number,
    private readonly maxBytes = KEEP_MAX_BYTES,
    private readonly options: BufferPoolOptions = {},
  ) {}

  /** Buffers kept now (not lent). */
  get kept(): number {
    return this.free.length;
  }

  /** A kept buffer of at least `size` bytes (the smallest such), or a new one of `size` (or what `allocate` makes). Give it back when done. */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.length >= size && (best < 0 || b.length < this.free[best]!.length)) best = i;
    }
    if (best >= 0) {
      const b = this.free.splice(best, 1)[0]!;
      this.freeBytes -= b.length;
      return b;
    }
    this.made++;
    return this.options.allocate?.(size) ?? Buffer.allocUnsafeSlow(size);
  }

  /** Keeps `buf` for a later take (its user must not touch it again); when `keep` are kept, it replaces the smallest if larger. Not one over `maxBytes`, nor past `keepBytes` in all. */
  give(buf: Buffer): void {
    if (buf.length > this.maxBytes || this.free.includes(buf)) return;
    if (this.options.keepBytes !== undefined && this.freeBytes + buf.length > this.options.keepBytes) return;
    if (this.free.length < this.keep) {
      this.free.push(buf);
      this.freeBytes += buf.length;
      return;
    }
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i]!.length < this.free[smallest]!.length) smallest = i;
    if (this.free.length > 0 && this.free[smallest]!.length < buf.length) {
      this.freeBytes += buf.length - this.free[smallest]!.length;
      this.free[smallest] = buf;
    }
  }
}
