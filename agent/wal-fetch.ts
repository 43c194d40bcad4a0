/**
 * `walvault wal-fetch <name> <dest>` — PostgreSQL's restore_command.
 *
 * Writes `dest` only with bytes whose SHA-256 matches the catalog, atomically
 * (temp file, fsync, rename). Exit 1 means exactly "this file was never
 * archived"; every other failure (unreachable storage, missing or corrupt
 * vault object) is reported as fatal to PostgreSQL (see cli.ts), because a
 * "not found" there would end recovery early at the wrong point.
 *
 * Prefetch: after serving a segment, a detached `walvault wal-prefetch`
 * downloads and verifies the next segments into pg_wal/.walvault-prefetch/,
 * each with a note of what the catalog said of it; the next wal-fetch serves
 * its file from there (agent/wal-fetch-spool.ts takeVerified: re-hashed
 * against the note, without the catalog), or here after re-hashing it
 * against the catalog's record.
 */
import { walInRegion } from "../core/regions.js";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { NotFoundError, UnknownDatabaseError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import type { WalRecord } from "../core/schemas.js";
import type { AgentConfig } from "../core/config.js";
import { fetchVerifiedWal } from "../store/catalog-state.js";
import type { AgentClients } from "./clients.js";
import { pidAlive } from "./pid.js";
import { mapLimit } from "../core/concurrency.js";
import { DEFAULT_WAL_SEGMENT_SIZE } from "../core/wal.js";
import { checkFetchDestination, checkFetchName, dropSpooled, followingSegments, PREFETCH_LOCK, spoolDirOf, VERIFIED_SUFFIX, writeAtomic, writeVerifiedNote } from "./wal-fetch-spool.js";

export { checkFetchDestination, followingSegments, PREFETCH_DIR, spawnPrefetch } from "./wal-fetch-spool.js";

export interface FetchResult {
  name: string;
  size: number;
  source: "vault" | "prefetch";
}

/** Downloads a recorded file from the vault and proves it against the catalog record. */
export function downloadVerified(clients: AgentClients, cfg: AgentConfig, rec: WalRecord): Promise<Buffer> {
  return fetchVerifiedWal(clients.store, cfg.vaultBucket, rec);
}

async function takePrefetched(dir: string, rec: WalRecord): Promise<Buffer | undefined> {
  const file = join(dir, rec.name);
  if (!existsSync(file)) return undefined;
  try {
    const data = await readFile(file);
    await dropSpooled(dir, rec.name);
    return sha256Hex(data) === rec.sha256 ? data : undefined;
  } catch {
    return undefined;
  }
}

export async function walFetch(
  name: string,
  dest: string,
  cfg: AgentConfig & { databaseId: string; replicaRegion?: string },
  clients: AgentClients,
): Promise<FetchResult> {
  checkFetchName(name);
  await checkFetchDestination(dest);
  const recorded = await clients.catalog.getWal(cfg.databaseId, name);
  const rec = recorded && walInRegion(recorded, cfg.replicaRegion);
  if (recorded && !rec) {
    // Restoring from a replica region: what it does not hold yet is, for this restore, the end of the archive.
    throw new NotFoundError(`${name} is archived but not (yet) in region ${cfg.replicaRegion}, which this restore reads from`);
  }
  if (!rec) {
    // "Not archived" ends recovery, so make sure it is not a mistyped database id.
    if (!(await clients.catalog.getDatabase(cfg.databaseId))) {
      throw new UnknownDatabaseError(`database '${cfg.databaseId}' is not registered in the catalog: check --database in restore_command`);
    }
    throw new NotFoundError(`${name} is not in the archive of database ${cfg.databaseId}`);
  }
  const pre = await takePrefetched(spoolDirOf(dest), rec);
  const data = pre ?? (await downloadVerified(clients, cfg, rec));
  await writeAtomic(dest, data);
  return { name, size: data.length, source: pre ? "prefetch" : "vault" };
}

/** Creates the prefetcher's lock file with this process's id; false while a live process holds it (a dead one's is taken over). */
async function takeLock(lock: string): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: "wx" });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const text = (await readFile(lock, "utf8").catch(() => "")).trim();
      const pid = Number(text);
      // Empty: being written by a prefetcher starting now.
      if (!/^\d+$/.test(text) || pid === process.pid || pidAlive(pid)) return false;
      await rm(lock, { force: true });
    }
  }
  return false;
}

/** How long a prefetcher waits for recovery to take the next spooled segment before it exits. */
export const PREFETCH_IDLE_MS = 10_000;
const PREFETCH_POLL_MS = 25;
/** Segment bytes a prefetcher holds at once (at least one segment): 16 of 16 MiB, one of 1 GiB. */
const PREFETCH_BYTES_IN_FLIGHT = 256 * 1024 * 1024;

/**
 * `walvault wal-prefetch <after> <dir>`: keeps the `count` segments after the
 * one recovery took last spooled in dir, each downloaded, proved against its
 * catalog record and written atomically with its note
 * (agent/wal-fetch-spool.ts), in parallel. It stays while recovery takes
 * them (after each one taken, the `count` after it), drops those recovery
 * went past (it fetched them itself before they were spooled), and
 * exits at the end of the archive (a segment not archived), when recovery
 * has taken nothing for `idleMs` (it went elsewhere: a timeline switch, or
 * its end), or when the spool is gone. One per spool at a time (a lock
 * file): one process for a whole recovery, not a Node start and SDK load per
 * refill on the cores recovery replays on. Resolves with how many it spooled.
 */
export async function walPrefetch(
  after: string,
  dir: string,
  count: number,
  cfg: AgentConfig & { databaseId: string; replicaRegion?: string },
  clients: AgentClients,
  opts: { idleMs?: number } = {},
): Promise<number> {
  // The spool only, in the pg_wal PostgreSQL writes %p into: a data directory removed meanwhile (a restore given up)
  // is not made again. An absolute path: Node's recursive mkdir of a relative path whose working directory was
  // removed never returns, and a detached prefetcher spun on it at full CPU.
  const spool = resolve(dir);
  await mkdir(spool, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
  const lock = join(spool, PREFETCH_LOCK);
  if (!(await takeLock(lock))) return 0; // another prefetcher is running
  try {
    const db = await clients.catalog.getDatabase(cfg.databaseId);
    const segmentSize = db?.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
    const spooled = (n: string): boolean => existsSync(join(spool, n + VERIFIED_SUFFIX));
    /** Spools `n`; false when it is not archived (in this region). */
    const fetchOne = async (n: string): Promise<boolean> => {
      const recorded = await clients.catalog.getWal(cfg.databaseId, n);
      const rec = recorded && walInRegion(recorded, cfg.replicaRegion);
      if (!rec) return false;
      const data = await downloadVerified(clients, cfg, rec);
      await writeAtomic(join(spool, n), data);
      // What the record proved, for the next wal-fetch to serve it without the catalog (agent/wal-fetch-spool.ts).
      await writeVerifiedNote(spool, n, {
        databaseId: cfg.databaseId,
        ...(cfg.replicaRegion ? { region: cfg.replicaRegion } : {}),
        sha256: rec.sha256,
        size: data.length,
        segmentSize,
      });
      return true;
    };
    const idleMs = opts.idleMs ?? PREFETCH_IDLE_MS;
    let window = followingSegments(after, count, segmentSize);
    let fetched = 0;
    for (;;) {
      const got = await mapLimit(window.filter((n) => !spooled(n)), Math.max(1, Math.floor(PREFETCH_BYTES_IN_FLIGHT / segmentSize)), fetchOne);
      fetched += got.filter(Boolean).length;
      if (got.includes(false)) return fetched; // the end of the archive, for now: the next wal-fetch starts another
      // Until recovery takes one of them (all are spooled now: one missing was taken).
      for (const until = Date.now() + idleMs; window.every(spooled); ) {
        if (Date.now() > until || !existsSync(spool)) return fetched;
        await new Promise((r) => setTimeout(r, PREFETCH_POLL_MS));
      }
      // Recovery is at the last one taken; those before it it had fetched itself, before they were spooled: dropped.
      let at = window.length - 1;
      while (spooled(window[at]!)) at--;
      for (const n of window.slice(0, at)) await dropSpooled(spool, n);
      window = followingSegments(window[at]!, count, segmentSize);
    }
  } finally {
    await rm(lock, { force: true });
  }
}
