/**
 * The format-2 manifest of a push, kept out of memory while the push runs
 * (docs/snapshots.md "The agent writes pages as files finish").
 *
 * Sources do not emit entries in tree order (pg_basebackup's tar follows
 * the server's readdir order, the direct source reads several files at
 * once and global/pg_control and backup_label last), and a file's chunk
 * references are only complete (stored size, codec, new) once the chunk
 * pipeline has settled them. So each entry is appended to a temporary
 * NDJSON file as it finishes: a file's chunk references (SHA-256 and size)
 * in lines of at most SPOOL_RUN as they are cut, then its entry line. In
 * memory per entry: its path and where its lines are (a few numbers, one
 * pair per SPOOL_RUN chunks), never a chunk reference. Once every chunk is
 * settled, writeTo() sorts that index in tree order and reads each entry
 * back run by run into the ManifestPageWriter, the chunk references
 * completed by `resolve`; memory is then one page and one run.
 *
 * The temporary directory (under os.tmpdir(): TMPDIR) is removed by
 * close(), whatever happened.
 */
import { readSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { FileAccessError, InvalidInputError, describeError } from "../core/errors.js";
import { TempFile } from "./temp-file.js";
import { compareTreePaths, type ManifestPageWriter, type WrittenPage } from "../core/manifest-pages.js";
import type { ChunkRecord, FileEntry, RegularFileEntry } from "../core/snapshot.js";

/** Chunk references per spooled line. */
export const SPOOL_RUN = 1024;
/** Bytes buffered before a write to the spool file. */
const WRITE_BUFFER = 1024 * 1024;

/** Where an entry's lines are: [offset, length] of each run line, then of the entry line. */
interface Located {
  path: string;
  /** offset, length pairs: the runs in order, the entry line last. */
  at: number[];
}

/** A regular file being spooled: add its chunk references as they are cut, then finish it. */
export interface SpooledFile {
  add(sha256: string, size: number): void;
  /** The entry (its size and SHA-256; chunks are the ones added). */
  finish(entry: RegularFileEntry): void;
}

export class ManifestSpool {
  private readonly file: TempFile;
  private offset = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly index: Located[] = [];

  constructor(base = tmpdir()) {
    this.file = new TempFile("the manifest spool", "walvault-manifest-", "entries.ndjson", base);
  }

  /** Entries spooled so far. */
  get entries(): number {
    return this.index.length;
  }

  /** Bytes of the spool file. */
  get bytes(): number {
    return this.offset;
  }

  /** A directory or symlink entry. */
  entry(e: Exclude<FileEntry, RegularFileEntry>): void {
    this.index.push({ path: e.path, at: this.line(JSON.stringify(e)) });
  }

  /** Starts a regular file; several may be open at once (their lines interleave). */
  startFile(): SpooledFile {
    const at: number[] = [];
    let run: Array<[string, number]> = [];
    let done = false;
    const flush = (): void => {
      if (run.length === 0) return;
      at.push(...this.line(JSON.stringify(run)));
      run = [];
    };
    return {
      add: (sha256, size) => {
        run.push([sha256, size]);
        if (run.length >= SPOOL_RUN) flush();
      },
      finish: (entry) => {
        if (done) throw new InvalidInputError(`internal error: file ${JSON.stringify(entry.path)} was spooled twice`);
        done = true;
        flush();
        at.push(...this.line(JSON.stringify({ ...entry, chunks: [] })));
        this.index.push({ path: entry.path, at });
      },
    };
  }

  /**
   * Feeds every entry, in tree order, to `writer`, each chunk reference
   * completed by `resolve` (throws for a chunk it does not know), and hands
   * the pages it completes to `emit` (awaited: backpressure). Throws
   * InvalidInputError for a path spooled twice.
   */
  async writeTo(
    writer: ManifestPageWriter,
    resolve: (sha256: string, size: number) => ChunkRecord,
    emit: (pages: WrittenPage[]) => Promise<void>,
  ): Promise<void> {
    this.flush();
    this.index.sort((a, b) => compareTreePaths(a.path, b.path));
    for (let i = 0; i < this.index.length; i++) {
      const { path, at } = this.index[i]!;
      if (i > 0 && this.index[i - 1]!.path === path) throw new InvalidInputError(`path ${JSON.stringify(path)} was added to the snapshot twice`);
      const entry = JSON.parse(this.read(at[at.length - 2]!, at[at.length - 1]!)) as FileEntry;
      if (entry.type !== "file") {
        await emit(writer.add(entry));
        continue;
      }
      await emit(writer.startFile(entry));
      for (let r = 0; r < at.length - 2; r += 2) {
        const run = JSON.parse(this.read(at[r]!, at[r + 1]!)) as Array<[string, number]>;
        await emit(writer.addChunks(run.map(([sha256, size]) => resolve(sha256, size))));
      }
    }
    await emit(writer.finish());
  }

  /** Removes the spool (idempotent). */
  close(): void {
    this.file.close();
  }

  /** Appends `text` and a newline; returns [offset, length] of `text`. */
  private line(text: string): [number, number] {
    const bytes = Buffer.from(`${text}\n`, "utf8");
    const at: [number, number] = [this.offset, bytes.length - 1];
    this.offset += bytes.length;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= WRITE_BUFFER) this.flush();
    return at;
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    const all = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let done = 0;
    try {
      while (done < all.length) done += writeSync(this.file.fd, all, done, all.length - done);
    } catch (cause) {
      throw new FileAccessError(`cannot write the manifest spool in ${this.file.dir} (${(cause as NodeJS.ErrnoException).code ?? describeError(cause)})`, { cause });
    }
  }

  private read(offset: number, length: number): string {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.file.fd, buf, done, length - done, offset + done);
      if (n === 0) throw new FileAccessError(`the manifest spool in ${this.file.dir} is shorter than written`);
      done += n;
    }
    return buf.toString("utf8");
  }
}
