/**
 * The direct PostgreSQL snapshot source's two halves (docs/snapshots.md,
 * "Direct source"): a psql session kept open across the backup (a
 * non-exclusive backup lives as long as the session that started it, so the
 * server ends it by itself if the agent dies), and the walk of the data
 * directory that reads what pg_basebackup would send (PostgreSQL 15's
 * basebackup.c excludes), several files at a time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { open, readdir, lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { FileAccessError, InvalidInputError, ServiceUnavailableError, describeError } from "../core/errors.js";
import { BufferPool } from "../core/buffer-pool.js";

// ---------------------------------------------------------------------------
// psql session

export interface PsqlTarget {
  binDir: string;
  host: string;
  port: number;
  user: string;
  database: string;
  asOsUser?: { uid: number; gid: number } | undefined;
  env?: Record<string, string> | undefined;
}

const MARK = "__walvault_psql_done__";

/**
 * One psql process reading statements from its stdin: each `query` sends a
 * statement and an `\echo` marker, and resolves with the unaligned, tuples-only
 * output before the marker. ON_ERROR_STOP: a failing statement ends psql, and
 * the pending query rejects with psql's last error line.
 */
export class PsqlSession {
  private out = "";
  private err = "";
  private pending: { resolve: (s: string) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly what: string,
  ) {
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => {
      this.out += d;
      const i = this.out.indexOf(`${MARK}\n`);
      if (i >= 0 && this.pending) {
        const text = this.out.slice(0, i);
        this.out = this.out.slice(i + MARK.length + 1);
        const p = this.pending;
        this.pending = undefined;
        p.resolve(text.replace(/\n$/, ""));
      }
    });
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => (this.err = (this.err + d).slice(-16_384)));
    child.stdin!.on("error", () => undefined); // a dead psql is reported by 'close'
    this.exited = new Promise((resolve) => {
      const fail = (how: string, cause?: Error): void => {
        const line = psqlErrorLine(this.err);
        this.ended ??= new ServiceUnavailableError(`${this.what} failed (${how})${line ? `: ${line}` : ""}`, cause ? { cause } : {});
        this.pending?.reject(this.ended);
        this.pending = undefined;
        resolve();
      };
      child.on("error", (e) => fail(e.message, e));
      child.on("close", (code, signal) => fail(signal ? `killed by ${signal}` : `exit ${code}`));
    });
  }

  static open(t: PsqlTarget, what: string): PsqlSession {
    const conn = `host=${quoteConn(t.host)} port=${t.port} user=${quoteConn(t.user)} dbname=${quoteConn(t.database)}`;
    const child = spawn(join(t.binDir, "psql"), ["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d", conn], {
      cwd: "/",
      env: { ...process.env, ...t.env },
      stdio: ["pipe", "pipe", "pipe"],
      ...(t.asOsUser ? { uid: t.asOsUser.uid, gid: t.asOsUser.gid } : {}),
    });
    return new PsqlSession(child, what);
  }

  /** Runs one statement (no trailing semicolon needed) and resolves with its output (rows on lines, fields split by '|'). */
  query(sql: string): Promise<string> {
    if (this.ended) return Promise.reject(this.ended);
    if (this.pending) return Promise.reject(new Error("internal error: one psql statement at a time"));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.child.stdin!.write(`${sql};\n\\echo ${MARK}\n`);
    });
  }

  /** Ends the session (and so any backup it started); resolves once psql has exited. */
  async close(): Promise<void> {
    if (!this.ended) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill("SIGTERM"), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

function psqlErrorLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  return (lines.filter((l) => /\b(error|FATAL|ERROR|PANIC):/.test(l)).at(-1) ?? lines.at(-1) ?? "").trim();
}

export function quoteConn(v: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(v) ? v : `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** A SQL string literal (standard_conforming_strings, on by default since 9.1). */
export function sqlLiteral(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

// ---------------------------------------------------------------------------
// What pg_basebackup leaves out (PostgreSQL 15, src/backend/backup/basebackup.c)

/** Directories whose contents are skipped (the directory itself is kept, empty). */
const EXCLUDED_DIR_CONTENTS = new Set(["pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans", "pg_wal"]);
/** Top-level files skipped; backup_label and tablespace_map are written from pg_backup_stop's answer instead. */
const EXCLUDED_TOP_FILES = new Set([
  "postgresql.auto.conf.tmp",
  "current_logfiles.tmp",
  "postmaster.pid",
  "postmaster.opts",
  "backup_label",
  "tablespace_map",
  "backup_manifest",
  "backup_manifest.tmp",
]);
const TEMP_PREFIX = "pgsql_tmp";
const RELCACHE_INIT = "pg_internal.init";
/** A database directory: base/<oid>. */
const DB_DIR_RE = /^base\/\d+$/;
const TEMP_RELATION_RE = /^t\d+_\d+(?:_(?:fsm|vm|init))?(?:\.\d+)?$/;
const RELATION_NAME_RE = /^(\d+)(?:_(fsm|vm|init))?(?:\.\d+)?$/;

/**
 * Whether the walk leaves `name` (in directory `dir`, relative to the data
 * directory, "" at the top) out: what pg_basebackup does not send.
 * `unlogged` holds the relfilenodes of `dir` that have an _init fork (unlogged
 * relations: only the init fork is kept, the rest is reset at recovery).
 */
export function excludedFromBackup(dir: string, name: string, unlogged: ReadonlySet<string>): boolean {
  if (name.startsWith(TEMP_PREFIX) || name.startsWith(RELCACHE_INIT)) return true;
  if (dir === "" && EXCLUDED_TOP_FILES.has(name)) return true;
  if (EXCLUDED_DIR_CONTENTS.has(dir) || dir === "pg_wal/archive_status") return true;
  if (DB_DIR_RE.test(dir)) {
    if (TEMP_RELATION_RE.test(name)) return true;
    const m = RELATION_NAME_RE.exec(name);
    if (m && m[2] !== "init" && unlogged.has(m[1]!)) return true;
  }
  return false;
}

/** The relfilenodes of a database directory's listing that have an _init fork. */
export function unloggedRelations(dir: string, names: readonly string[]): Set<string> {
  const out = new Set<string>();
  if (!DB_DIR_RE.test(dir)) return out;
  for (const n of names) {
    const m = RELATION_NAME_RE.exec(n);
    if (m && m[2] === "init") out.add(m[1]!);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The walk

export interface DataDirSink {
  directory(path: string, mode: number, mtime: Date): void;
  symlink(path: string, target: string, mtime: Date): void;
  /**
   * One regular file's bytes, in order; resolves once they are all taken. A
   * piece is borrowed: its memory is read into again once the next piece is
   * asked for (copy what must be kept).
   */
  file(path: string, mode: number, mtime: Date, body: AsyncIterable<Uint8Array>): Promise<void>;
}

/** Bytes asked for per read: 8 blocks of 128 KiB (the walk holds two such buffers per reader: one read ahead). */
export const READ_BYTES = 1024 * 1024;

/**
 * Files at least this large are read alone (no other file read meanwhile).
 * The push packs chunks in the order they are read, so files read at once
 * interleave in the packs; a restore, which reads a file's chunks with
 * coalesced ranged GETs, then downloads the other files' chunks in between
 * as gap filler, and again for those files: measured at pgbench scale 100
 * (4 readers), 180 MB downloaded for 74 MB stored. Read alone, a large
 * file's chunks are contiguous in its packs. Small files (most of a
 * cluster's files, few of its bytes) still go `readers` at a time.
 */
export const READ_ALONE_BYTES = 16 * 1024 * 1024;

export interface WalkOptions {
  /** Files read at once. */
  readers: number;
  /**
   * The fixed block size: each read is the largest multiple of it up to
   * READ_BYTES (at least one block), into two buffers per file used in turn
   * (the next read runs while the previous piece is consumed), so relation
   * files come out as whole blocks without a copy or an allocation per
   * block, and with one thread-pool round trip per READ_BYTES instead of
   * per block.
   */
  readSize: number;
  /** Paths read after every other file (global/pg_control, as basebackup.c sends it last). */
  last: ReadonlySet<string>;
}

export interface WalkResult {
  /** Files that disappeared between the listing and their read (dropped relations): left out, as pgBackRest does. */
  vanished: string[];
}

/**
 * Reads the data directory `root` into `sink`: directories and symlinks as
 * they are met, regular files `readers` at a time, `opts.last` at the end.
 * A file is read to its end as it is then (torn pages and a file that grows
 * or shrinks meanwhile are what WAL replay repairs); one that vanished is
 * skipped. Tablespaces (links in pg_tblspc) are refused, as pg_basebackup
 * refuses them on a single stream.
 */
export async function readDataDirectory(root: string, sink: DataDirSink, opts: WalkOptions): Promise<WalkResult> {
  const readBytes = opts.readSize * Math.max(1, Math.floor(READ_BYTES / opts.readSize));
  // Two per file read at once, kept from file to file: a fresh pair per file was 2 MiB of garbage for every file
  // of 1 MiB or more and its size for each smaller one, until the next collection (docs/decisions.md, stop 47).
  const buffers = new BufferPool(2 * opts.readers, readBytes);
  const vanished: string[] = [];
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const deferred: string[] = [];

  const readOne = async (rel: string): Promise<void> => {
    const abs = join(root, rel);
    let fh;
    try {
      fh = await open(abs, "r");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        vanished.push(rel);
        return;
      }
      throw fileError(abs, e);
    }
    try {
      const st = await fh.stat();
      // Two buffers per file, alternating: the next read runs while the consumer works on the
      // previous piece (without it the main thread idled through every read's thread-pool round trip).
      const fill = async (buf: Buffer): Promise<number> => {
        let n = 0;
        while (n < buf.length) {
          const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
        return n;
      };
      const body = async function* (): AsyncGenerator<Uint8Array> {
        // Small files (most of a cluster's files) read into the start of a kept buffer, as many bytes as they have.
        const size = Math.max(1, Math.min(readBytes, st.size + 1));
        const taken = [buffers.take(readBytes)];
        let buf: Buffer = taken[0]!.subarray(0, size);
        let spare: Buffer | undefined;
        let pending = fill(buf);
        try {
          for (;;) {
            const n = await pending;
            if (n === 0) return;
            if (n < buf.length) {
              yield buf.subarray(0, n);
              return;
            }
            if (spare === undefined) {
              taken.push(buffers.take(readBytes));
              spare = taken[1]!.subarray(0, size);
            }
            const next = spare;
            spare = buf;
            pending = fill(next);
            yield buf;
            buf = next;
          }
        } finally {
          // A consumer that stops early (a failure) leaves a read in flight: let it end before the file is closed.
          await pending.catch(() => undefined);
          // The consumer is done with every piece (each is borrowed until the next is asked for): the buffers go to the next file.
          for (const b of taken) buffers.give(b);
        }
      };
      try {
        await sink.file(rel, st.mode & 0o7777, st.mtime, body());
      } catch (e) {
        if ((e as NodeJS.ErrnoException).syscall !== undefined) throw fileError(abs, e);
        throw e;
      }
    } finally {
      await fh.close();
    }
  };

  /** A large file being read alone: nothing else starts until it ends. */
  let alone = false;
  const schedule = async (rel: string, size: number): Promise<void> => {
    const large = size >= READ_ALONE_BYTES;
    while (running.size >= opts.readers || (running.size > 0 && (large || alone))) await Promise.race(running);
    if (failure) throw failure.error;
    alone = large;
    const p: Promise<void> = readOne(rel).then(
      () => void running.delete(p),
      (e: unknown) => {
        running.delete(p);
        failure ??= { error: e };
      },
    );
    running.add(p);
  };

  const visit = async (absDir: string, relDir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(absDir);
    } catch (e) {
      if (relDir !== "" && (e as NodeJS.ErrnoException).code === "ENOENT") return; // a database dropped meanwhile
      throw fileError(absDir, e);
    }
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const unlogged = unloggedRelations(relDir, names);
    for (const name of names) {
      if (excludedFromBackup(relDir, name, unlogged)) continue;
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      const abs = join(absDir, name);
      let st;
      try {
        st = await lstat(abs);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw fileError(abs, e);
      }
      if (relDir === "pg_tblspc") {
        throw new InvalidInputError(
          `the cluster has a tablespace (pg_tblspc/${name}); the direct source reads one tablespace only, as pg_basebackup to one stream does`,
        );
      }
      // pg_wal may be a link to another disk (initdb -X): kept as the (empty) directory pg_basebackup writes.
      if (st.isDirectory() || (rel === "pg_wal" && st.isSymbolicLink())) {
        sink.directory(rel, st.isDirectory() ? st.mode & 0o7777 : 0o700, st.mtime);
        if (rel === "pg_wal") sink.directory("pg_wal/archive_status", 0o700, st.mtime);
        else await visit(abs, rel);
      } else if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = await readlink(abs);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
          throw fileError(abs, e);
        }
        sink.symlink(rel, target, st.mtime);
      } else if (st.isFile()) {
        if (opts.last.has(rel)) deferred.push(rel);
        else await schedule(rel, st.size);
      }
      // Sockets, FIFOs and devices: skipped, as basebackup.c skips "special files".
    }
  };

  try {
    await visit(root, "");
  } finally {
    while (running.size > 0) await Promise.race(running);
  }
  if (failure) throw failure.error;
  for (const rel of deferred) await readOne(rel);
  return { vanished };
}

function fileError(path: string, cause: unknown): FileAccessError {
  const code = (cause as NodeJS.ErrnoException).code;
  return new FileAccessError(`cannot read ${path} (${code ?? describeError(cause)})`, { cause });
}
