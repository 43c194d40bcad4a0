/**
 * A scratch file in a temporary directory of its own (under os.tmpdir():
 * TMPDIR, unless told otherwise), open for reading and writing, mode 0600;
 * close() removes both, once, whatever happened. The agent's spools
 * (agent/manifest-spool.ts, agent/line-spool.ts) keep on disk what would
 * otherwise grow in memory with a snapshot's size.
 */
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileAccessError, describeError } from "../core/errors.js";

export class TempFile {
  readonly dir: string;
  readonly fd: number;
  private closed = false;

  /** `what` names it in the one-line error when it cannot be created ("the manifest spool"). */
  constructor(what: string, prefix: string, name: string, base = tmpdir()) {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(base, prefix));
      this.fd = openSync(join(dir, name), "w+", 0o600);
      this.dir = dir;
    } catch (cause) {
      // A directory made for a file that could not be opened is not left behind.
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      throw new FileAccessError(`cannot create ${what} under ${base} (${(cause as NodeJS.ErrnoException).code ?? describeError(cause)})`, { cause });
    }
  }

  /** Removes the file and its directory (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
