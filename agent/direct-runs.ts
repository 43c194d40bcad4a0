/**
 * Restored chunks written to disk in runs with direct I/O, by a decode worker
 * (agent/decode-worker.ts) of a restore (agent/restore.ts).
 *
 * Why: on this project's reference machine (2 vCPUs, virtio disk; docs/decisions.md
 * "Restore writes large files with direct I/O") writing 1.6 GB through the page cache cost
 * ~1.3 CPU-s of two threads' `write()` and then ~0.5–0.9 s of fdatasync at the
 * end of each large file, while the same bytes written with O_DIRECT in
 * 1 MiB writes took ~0.3 CPU-s and went to the disk as they were written.
 * Direct writes of a single 128 KiB chunk cost more than buffered ones
 * (~100 µs of CPU per I/O), so chunks are gathered into runs first.
 *
 * A run is consecutive chunks of one file, in offset order, decoded straight
 * into one aligned slot of memory (a WebAssembly.Memory: its base is
 * page-aligned, which a Buffer's is not) and written with one pwrite on the
 * file's O_DIRECT descriptor. A run starts only at an offset that is a
 * multiple of DIRECT_ALIGN; its bytes past the last multiple of DIRECT_ALIGN
 * (a file's unaligned tail) are written on the file's ordinary descriptor.
 * A run is written when it is full (RUN_BYTES), when the next chunk of its
 * file is not the one right after it, when its slot is needed, and when its
 * file is drained. Runs are written asynchronously (libuv's pool): the
 * worker decodes the next chunks into other slots meanwhile; with no slot
 * free, placing waits for one.
 *
 * A chunk placed in a run is answered at once (it is decoded and verified;
 * its bytes are in the run); that it reached the file is proven by `drain`,
 * which writes the file's open run and resolves once every write of the
 * file placed before it is done, with the first failure if one failed.
 * The restore drains a file before it checks its size, syncs and closes it,
 * and drains every file before it closes descriptors after a failure: no
 * write is ever in flight on a closed descriptor (measured, stop 43: when
 * each answer waited for its run's write, the decode workers idled ~45% of
 * the bulk waiting for work; docs/decisions.md).
 *
 * When a direct write is refused with EINVAL (a filesystem or device that
 * wants another alignment, or no direct I/O at all), the run is written on the
 * ordinary descriptor and this writer stops using direct I/O.
 */

/** Bytes of one run at most (the write size that made direct I/O pay here: 1 MiB cost 0.26 CPU-s per 1.6 GB, 128 KiB 1.3). */
export const RUN_BYTES = 1024 * 1024;
/** Alignment of a direct write's memory, file offset and length (the largest logical block size in use: 4 KiB). */
export const DIRECT_ALIGN = 4096;

/** Writes all of `bytes` at `position` of file descriptor `fd`, or rejects (an fs error keeps its code). */
export type WriteAt = (fd: number, bytes: Uint8Array, position: number) => Promise<void>;

interface Run {
  fd: number;
  directFd: number;
  /** File offset of the run's first byte. */
  start: number;
  /** Bytes placed so far (the run's chunks, back to back). */
  length: number;
  slot: number;
}

/** A place for one chunk's raw bytes in a run: `view` has one byte more than the chunk (decoders want room beyond the expected size). */
export interface Placement {
  view: Uint8Array;
  /** The chunk's bytes are in `view` and verified: they join the run (written when it is full, cut or drained). */
  commit(): void;
}

/** A run whose write failed: the error (an fs error keeps its code) and the run's offset in its file. */
export interface WriteFailure {
  error: unknown;
  position: number;
}

/** Writes of one file (by direct descriptor) in flight, and the first that failed. */
interface FileWrites {
  writing: number;
  failure?: WriteFailure;
}

/** WebAssembly.Memory (the global exists in Node; this project's type libraries do not declare it): pages of 64 KiB, page-aligned. */
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory;

export class DirectRuns {
  private readonly memory: Uint8Array;
  private readonly free: number[] = [];
  /** Open runs, at most one per file (by direct descriptor), oldest first. */
  private readonly open = new Map<number, Run>();
  /** Per file (direct descriptor): its writes in flight and its first failure, until it is drained. */
  private readonly files = new Map<number, FileWrites>();
  /** Called when a write ends (a slot is free, a file may be drained). */
  private waiters: Array<() => void> = [];
  private direct = true;
  private writing = 0;

  /** `slots` runs can be open or being written at once; `write` writes (either descriptor). */
  constructor(
    slots: number,
    private readonly write: WriteAt,
  ) {
    const slotBytes = RUN_BYTES + DIRECT_ALIGN;
    const pages = Math.ceil((slots * slotBytes) / 65536);
    this.memory = new Uint8Array(new WasmMemory({ initial: pages, maximum: pages }).buffer);
    for (let i = 0; i < slots; i++) this.free.push(i);
  }

  /** Whether direct writes are still tried (false after an EINVAL). */
  get usingDirect(): boolean {
    return this.direct;
  }

  /** Runs open or being written. */
  get busy(): number {
    return this.open.size + this.writing;
  }

  /**
   * Where the chunk of `size` bytes at `position` of the file (`fd`, and
   * `directFd` opened on it with O_DIRECT) goes: the end of the file's open
   * run when it is the next byte of it and fits, else a new run if
   * `position` is aligned (waiting for a slot while every slot's run is
   * being written); undefined when it cannot join a run (the caller writes
   * it as before). Placing may start writing runs.
   */
  async place(fd: number, directFd: number, position: number, size: number): Promise<Placement | undefined> {
    for (;;) {
      const p = this.tryPlace(fd, directFd, position, size);
      if (p !== "wait") return p;
      await this.writeEnded();
    }
  }

  private tryPlace(fd: number, directFd: number, position: number, size: number): Placement | undefined | "wait" {
    if (!this.direct || size > RUN_BYTES) return undefined;
    let run = this.open.get(directFd);
    if (run !== undefined && (run.start + run.length !== position || run.length + size > RUN_BYTES)) {
      this.writeRun(run);
      run = undefined;
    }
    if (run === undefined) {
      if (position % DIRECT_ALIGN !== 0) return undefined;
      if (this.free.length === 0 && this.open.size > 0) this.writeRun(this.open.values().next().value!);
      const slot = this.free.pop();
      if (slot === undefined) return "wait";
      run = { fd, directFd, start: position, length: 0, slot };
      this.open.set(directFd, run);
    }
    const r = run;
    const at = r.slot * (RUN_BYTES + DIRECT_ALIGN) + r.length;
    return {
      view: this.memory.subarray(at, at + size + 1),
      commit: () => {
        r.length += size;
        if (r.length === RUN_BYTES && this.open.get(r.directFd) === r) this.writeRun(r);
      },
    };
  }

  /** Starts writing every open run. */
  flush(): void {
    for (const run of [...this.open.values()]) this.writeRun(run);
  }

  /**
   * Writes the open run of the file `directFd` (without one: of every file)
   * and resolves once every write of it (of all files) placed so far is
   * done: undefined when all succeeded, else the first failure. A drained
   * file is forgotten: its descriptor may be closed and its number reused.
   */
  async drain(directFd?: number): Promise<WriteFailure | undefined> {
    if (directFd === undefined) {
      this.flush();
      while (this.writing > 0) await this.writeEnded();
      const failure = [...this.files.values()].find((f) => f.failure !== undefined)?.failure;
      this.files.clear();
      return failure;
    }
    const run = this.open.get(directFd);
    if (run !== undefined) this.writeRun(run);
    while ((this.files.get(directFd)?.writing ?? 0) > 0) await this.writeEnded();
    const failure = this.files.get(directFd)?.failure;
    this.files.delete(directFd);
    return failure;
  }

  private writeEnded(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private writeRun(run: Run): void {
    this.open.delete(run.directFd);
    if (run.length === 0) {
      this.free.push(run.slot);
      return;
    }
    this.writing++;
    let file = this.files.get(run.directFd);
    if (file === undefined) {
      file = { writing: 0 };
      this.files.set(run.directFd, file);
    }
    file.writing++;
    const f = file;
    void this.writeBytes(run).then(
      () => this.done(run, f, undefined),
      (e: unknown) => this.done(run, f, e),
    );
  }

  private done(run: Run, file: FileWrites, error: unknown): void {
    this.writing--;
    file.writing--;
    if (error !== undefined) file.failure ??= { error, position: run.start };
    this.free.push(run.slot);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** The run's bytes: the aligned part on the direct descriptor (the ordinary one after an EINVAL), the rest on the ordinary one. */
  private async writeBytes(run: Run): Promise<void> {
    const base = run.slot * (RUN_BYTES + DIRECT_ALIGN);
    const bytes = this.memory.subarray(base, base + run.length);
    const aligned = run.length - (run.length % DIRECT_ALIGN);
    let from = 0;
    if (aligned > 0 && this.direct) {
      try {
        await this.write(run.directFd, bytes.subarray(0, aligned), run.start);
        from = aligned;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw e;
        this.direct = false;
      }
    }
    if (from < run.length) await this.write(run.fd, bytes.subarray(from), run.start + from);
  }
}
