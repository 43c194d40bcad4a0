/**
 * PostgreSQL's archiver queue on the database host: `pg_wal/archive_status`,
 * where the server leaves `<file>.ready` for each WAL file closed and not yet
 * archived (and renames it `<file>.done` once archive_command succeeded).
 * The resident agent pushes the .ready files ahead (agent/resident.ts); every
 * push reports their count with the upload (agent/wal-push.ts), so ingest can
 * publish the backlog as a metric (docs/alarms.md).
 */
import { readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const READY = ".ready";

/** The archive_status directory of a data directory. */
export function archiveStatusDir(pgdata: string): string {
  return join(pgdata, "pg_wal", "archive_status");
}

/** The WAL file names waiting for archive_command in `statusDir`, oldest (smallest name) first; undefined when it cannot be read. */
export function readyFiles(statusDir: string): string[] | undefined {
  try {
    return readdirSync(statusDir)
      .filter((f) => f.endsWith(READY))
      .map((f) => f.slice(0, -READY.length))
      .sort();
  } catch {
    return undefined;
  }
}

/** The archiver's backlog: how many files wait, the oldest and for how long (whole seconds). */
export interface ArchiveBacklog {
  segments: number;
  oldest?: string;
  oldestReadySeconds?: number;
}

export function archiveBacklog(statusDir: string, now = Date.now()): ArchiveBacklog | undefined {
  const ready = readyFiles(statusDir);
  if (ready === undefined) return undefined;
  if (ready.length === 0) return { segments: 0 };
  const oldest = ready[0]!;
  try {
    const oldestReadySeconds = Math.max(0, Math.round((now - statSync(join(statusDir, oldest + READY)).mtimeMs) / 1000));
    return { segments: ready.length, oldest, oldestReadySeconds };
  } catch {
    return { segments: ready.length, oldest }; // archived meanwhile
  }
}

/**
 * The backlog of the archiver that handed over WAL file `path` (relative to
 * `cwd`, as archive_command's %p is to the data directory): the .ready files
 * beside it, itself included while it waits. Undefined when the file is not
 * in a PostgreSQL pg_wal (no archive_status beside it).
 */
export function backlogBeside(path: string, cwd: string): number | undefined {
  // Once per push: a count, without the names readyFiles sorts.
  try {
    return readdirSync(join(dirname(resolve(cwd, path)), "archive_status")).filter((f) => f.endsWith(READY)).length;
  } catch {
    return undefined;
  }
}

/** The backlog (the file being pushed included) at which a push without the agent says archiving is falling behind. */
export const FALLING_BEHIND_BACKLOG = 3;
/** How often that hint is written at most, per database and OS user (PostgreSQL's log gets every line archive_command writes). */
export const HINT_EVERY_MS = 5 * 60_000;

/**
 * The one-line hint a push that no resident agent answered gives when
 * PostgreSQL's queue grows behind it (FALLING_BEHIND_BACKLOG files or more
 * waiting): a call per file, one at a time, is then slower than the server
 * writes WAL; the agent pushes the queue ahead in parallel. Undefined when
 * the queue is short or not known.
 */
export function fallingBehindHint(backlog: number | undefined, seconds: number, databaseId: string, pgdata: string): string | undefined {
  if (backlog === undefined || backlog < FALLING_BEHIND_BACKLOG) return undefined;
  return (
    `hint: archiving is falling behind: ${backlog} WAL files wait in pg_wal/archive_status and this push took ${seconds.toFixed(1)} s ` +
    `without a resident agent; start one beside PostgreSQL (walvault agent --database ${databaseId} --pgdata ${pgdata}) to push them ahead in parallel`
  );
}

/**
 * True at most once per `everyMs` for a stamp file (its mtime is the last
 * time): archive_command runs as a new process per file, so the stamp is
 * what remembers. Any trouble with the stamp says true (a hint more, never
 * a failed push).
 */
export function dueOnce(stamp: string, everyMs: number, now = Date.now()): boolean {
  try {
    if (now - statSync(stamp).mtimeMs < everyMs) return false;
  } catch {
    // no stamp yet
  }
  try {
    writeFileSync(stamp, "");
    const t = now / 1000;
    utimesSync(stamp, t, t);
  } catch {
    // not writable: say it every time rather than never
  }
  return true;
}
