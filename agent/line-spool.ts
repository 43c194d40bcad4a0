/**
 * Text lines kept on disk instead of in memory, read back in the order they
 * were added: the direct source's backup_manifest lines, one per file read
 * (~170 bytes each: 170 MB for a cluster of a million files), which are
 * needed only once the last file is read. The file lives in its own
 * temporary directory (agent/temp-file.ts), removed by close().
 * A line must not contain a newline.
 */
import { readSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { FileAccessError, describeError } from "../core/errors.js";
import { TempFile } from "./temp-file.js";

/** Bytes buffered before a write, and read at once. */
const BLOCK = 256 * 1024;

export class LineSpool {
  private readonly file: TempFile;
  private pending: string[] = [];
  private pendingBytes = 0;
  private written = 0;
  private added = 0;

  /** `what`: the lines, for messages ("backup_manifest's lines"). */
  constructor(
    private readonly what: string,
    base = tmpdir(),
  ) {
    this.file = new TempFile(`a spool for ${what}`, "walvault-lines-", "lines", base);
  }

  /** Lines added so far. */
  get count(): number {
    return this.added;
  }

  add(line: string): void {
    if (line.includes("\n")) throw new Error("internal error: a spooled line holds a newline");
    this.pending.push(line);
    this.pendingBytes += line.length + 1;
    this.added++;
    if (this.pendingBytes >= BLOCK) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const bytes = Buffer.from(`${this.pending.join("\n")}\n`, "utf8");
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(this.file.fd, bytes, off, bytes.length - off, this.written + off);
    } catch (cause) {
      // ENOSPC in TMPDIR, most likely: one line that says where.
      throw new FileAccessError(`cannot write ${this.what} to ${this.file.dir} (${(cause as NodeJS.ErrnoException).code ?? describeError(cause)}): free space there or set TMPDIR`, { cause });
    }
    this.written += bytes.length;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Every line added, in order (the spool can still be read again; add no more while reading). */
  async *lines(): AsyncGenerator<string, void, undefined> {
    this.flush();
    const buf = Buffer.allocUnsafe(BLOCK);
    // The bytes after the last newline read so far: split on bytes, so a character cut by a block boundary is decoded whole.
    let carry = Buffer.alloc(0);
    for (let at = 0; at < this.written; ) {
      const n = readSync(this.file.fd, buf, 0, Math.min(BLOCK, this.written - at), at);
      if (n <= 0) throw new FileAccessError(`the line spool in ${this.file.dir} ended at ${at} of ${this.written} bytes`);
      at += n;
      const block = carry.length === 0 ? buf.subarray(0, n) : Buffer.concat([carry, buf.subarray(0, n)]);
      const end = block.lastIndexOf(0x0a);
      if (end >= 0) for (const line of block.toString("utf8", 0, end).split("\n")) yield line;
      carry = Buffer.from(block.subarray(end + 1));
    }
    if (carry.length > 0) throw new FileAccessError(`the line spool in ${this.file.dir} does not end with a newline`);
  }

  /** Removes the spool (idempotent). */
  close(): void {
    this.file.close();
  }
}
