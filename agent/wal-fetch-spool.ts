/**
 * wal-fetch's spool of prefetched segments (pg_wal/.walvault-prefetch/), and
 * the call that serves from it without the catalog. Kept free of heavy
 * imports (no AWS SDK, no zod): PostgreSQL runs restore_command once per
 * segment and waits for each, and loading the SDK and asking the catalog cost
 * a call ~0.3 s here, most of a recovery's time (docs/decisions.md
 * "wal-fetch serves prefetched segments without the catalog").
 *
 * The prefetcher (agent/wal-fetch.ts walPrefetch) downloads a segment, proves
 * it against its catalog record (SHA-256), writes it atomically, then writes
 * beside it `<name>.verified`: the database, region, SHA-256, size and
 * segment size that record gave. takeVerified serves a spooled segment only
 * when that note is there, names the database and region asked for, and the
 * file still hashes to it: WAL records are immutable (a name's bytes never
 * change once archived), so the catalog's answer at prefetch time is its
 * answer now. Anything else (no note, another database or region, a damaged
 * file, any error) and the caller takes the path through the catalog, which
 * re-hashes the file against the record or downloads the segment again.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { InvalidInputError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { DEFAULT_WAL_SEGMENT_SIZE, nextSegmentName, walFileShape } from "../core/wal.js";

export const PREFETCH_DIR = ".walvault-prefetch";
/** The prefetcher's note beside a spooled segment: `<name>` + this. */
export const VERIFIED_SUFFIX = ".verified";
/** The running prefetcher's lock in the spool (its process id). */
export const PREFETCH_LOCK = ".lock";
/** Segments prefetched ahead unless the configuration's `prefetch` says otherwise. */
export const DEFAULT_PREFETCH = 8;

/** What the prefetcher proved of a spooled segment (the `.verified` note). */
export interface VerifiedNote {
  databaseId: string;
  /** The replica region it was read from; absent: the primary. */
  region?: string;
  sha256: string;
  size: number;
  /** The database's WAL segment size (which names follow this one). */
  segmentSize: number;
}

/** The spool beside restore_command's destination (%p is pg_wal/RECOVERYXLOG, relative to the data directory): an absolute path. */
export function spoolDirOf(dest: string): string {
  return join(dirname(resolve(dest)), PREFETCH_DIR);
}

/** Writes dest through a temporary file beside it (fsync, rename); on any failure the temporary file is removed. */
export async function writeAtomic(dest: string, data: Uint8Array): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.walvault-tmp-${process.pid}`);
  const fh = await open(tmp, "w", 0o600);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

/** restore_command's %f: a file name of pg_wal, nothing with a directory in it. */
export function checkFetchName(name: string): void {
  if (name.includes("/") || name === "" || name.startsWith(".")) throw new InvalidInputError(`'${name}' is not a WAL file name`);
}

/**
 * The destination of a fetch must be a file path in an existing directory,
 * and not a directory itself: checked before anything is downloaded. An
 * InvalidInputError, so restore_command exits fatally (126), never "not
 * archived" (1).
 */
export async function checkFetchDestination(dest: string): Promise<void> {
  const shown = JSON.stringify(dest);
  if (dest === "") throw new InvalidInputError("wal-fetch: the destination is empty: give the path PostgreSQL passes as %p");
  const kind = async (p: string): Promise<"dir" | "other" | undefined> => {
    try {
      return (await stat(p)).isDirectory() ? "dir" : "other";
    } catch {
      return undefined;
    }
  };
  if ((await kind(dest)) === "dir") throw new InvalidInputError(`wal-fetch: destination ${shown} is a directory, not a file path`);
  if ((await kind(dirname(resolve(dest)))) !== "dir") throw new InvalidInputError(`wal-fetch: destination ${shown}: its directory ${JSON.stringify(dirname(dest))} does not exist`);
}

/** Writes the note for a segment the prefetcher has just spooled (after the segment itself, atomically). */
export function writeVerifiedNote(dir: string, name: string, note: VerifiedNote): Promise<void> {
  return writeAtomic(join(dir, name + VERIFIED_SUFFIX), Buffer.from(JSON.stringify(note)));
}

function readNote(path: string): VerifiedNote | undefined {
  try {
    const n = JSON.parse(readFileSync(path, "utf8")) as Partial<VerifiedNote>;
    if (typeof n.databaseId !== "string" || typeof n.sha256 !== "string" || typeof n.size !== "number" || typeof n.segmentSize !== "number") return undefined;
    if (n.region !== undefined && typeof n.region !== "string") return undefined;
    return n as VerifiedNote;
  } catch {
    return undefined;
  }
}

/** Removes a spooled segment and its note (taken, or found unusable by the path through the catalog). */
export async function dropSpooled(dir: string, name: string): Promise<void> {
  await rm(join(dir, name), { force: true });
  await rm(join(dir, name + VERIFIED_SUFFIX), { force: true });
}

/**
 * Serves `name` into `dest` from the spool when its note names `databaseId`
 * and `region` and the file hashes to the note (see the file comment), then
 * removes it from the spool. Undefined (nothing written, nothing removed)
 * when it cannot: the caller goes through the catalog. A name that is no file
 * name, or a destination that cannot be one, is refused (InvalidInputError)
 * as walFetch refuses it.
 */
export async function takeVerified(name: string, dest: string, databaseId: string, region: string | undefined): Promise<{ size: number; note: VerifiedNote } | undefined> {
  checkFetchName(name);
  await checkFetchDestination(dest);
  const dir = spoolDirOf(dest);
  const note = readNote(join(dir, name + VERIFIED_SUFFIX));
  if (note === undefined || note.databaseId !== databaseId || note.region !== region) return undefined;
  let data: Buffer;
  try {
    data = await readFile(join(dir, name));
  } catch {
    return undefined;
  }
  if (data.length !== note.size || sha256Hex(data) !== note.sha256) return undefined;
  // The spooled file is already durable (the prefetcher's writeAtomic): moved into place in the same directory, not
  // copied and synced again; copied only where a rename cannot do it.
  try {
    await rename(join(dir, name), dest);
  } catch {
    await writeAtomic(dest, data);
  }
  await dropSpooled(dir, name);
  return { size: data.length, note };
}

/** Names of the segments after `name` on its timeline. */
export function followingSegments(name: string, count: number, segmentSize = DEFAULT_WAL_SEGMENT_SIZE): string[] {
  const out: string[] = [];
  let cur = name;
  for (let i = 0; i < count; i++) {
    cur = nextSegmentName(cur, segmentSize);
    out.push(cur);
  }
  return out;
}

/**
 * Whether the spool needs a prefetcher after `name` was served from it: one
 * of the next `count` segments is not spooled and none is running (its
 * lock). Recovery takes a spooled segment in ~0.1 s and a prefetcher needs
 * ~0.5 s to start and fill the gap, so waiting until half the spool was gone
 * left recovery asking for segments not there yet (bench:wal-fetch).
 */
export function spoolNeedsPrefetcher(dir: string, name: string, count: number, segmentSize: number): boolean {
  if (count === 0 || existsSync(join(dir, PREFETCH_LOCK))) return false;
  let spooled = 0;
  try {
    for (const n of followingSegments(name, count, segmentSize)) if (existsSync(join(dir, n + VERIFIED_SUFFIX))) spooled++;
  } catch {
    return false; // past the last segment name
  }
  return spooled < count;
}

/** How the prefetcher is started: this CLI (agent/paths.ts selfCommand) and what it needs of the configuration. */
export interface PrefetchSpawn {
  self: { file: string; args: readonly string[] };
  count: number;
  databaseId?: string | undefined;
  configPath?: string | undefined;
  region?: string | undefined;
}

/** Starts a detached prefetcher for the segments after `name`; never blocks or fails the fetch. */
export function spawnPrefetch(name: string, dest: string, p: PrefetchSpawn): void {
  if (p.count === 0) return;
  try {
    // The name's shape only: the prefetcher reads the database's segment size (a 1 MiB database's 257th segment is no 16 MiB name).
    if (walFileShape(name) !== "segment") return;
  } catch {
    return;
  }
  const args = [...p.self.args, "wal-prefetch", name, spoolDirOf(dest), "--count", String(p.count)];
  if (p.databaseId) args.push("--database", p.databaseId);
  if (p.configPath) args.push("--config", p.configPath);
  if (p.region) args.push("--region", p.region);
  try {
    const child = spawn(p.self.file, args, { detached: true, stdio: "ignore" });
    child.on("error", () => undefined);
    child.unref();
  } catch {
    // a prefetcher that cannot start only makes the next fetch slower
  }
}
