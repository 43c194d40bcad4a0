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
import { DEFAULT_WAL_SEGMENT_SIZE } from "../core/wal.js";
import { checkFetchDestination, checkFetchName, dropSpooled, followingSegments, spoolDirOf, VERIFIED_SUFFIX, writeAtomic, writeVerifiedNote } from "./wal-fetch-spool.js";

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

/**
 * `walvault wal-prefetch <after> <dir>`: fetch and verify the next segments in
 * parallel into dir, each written atomically; stops at the end of the archive.
 * One prefetcher per directory at a time (a lock file), so a fast recovery does
 * not pile them up.
 */
export async function walPrefetch(
  after: string,
  dir: string,
  count: number,
  cfg: AgentConfig & { databaseId: string; replicaRegion?: string },
  clients: AgentClients,
): Promise<number> {
  // The spool only, in the pg_wal PostgreSQL writes %p into: a data directory removed meanwhile (a restore given up)
  // is not made again. An absolute path: Node's recursive mkdir of a relative path whose working directory was
  // removed never returns, and a detached prefetcher spun on it at full CPU.
  const spool = resolve(dir);
  await mkdir(spool, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
  const lock = join(spool, ".lock");
  try {
    await writeFile(lock, String(process.pid), { flag: "wx" });
  } catch {
    return 0; // another prefetcher is running
  }
  try {
    const db = await clients.catalog.getDatabase(cfg.databaseId);
    const names = followingSegments(after, count, db?.walSegmentSize);
    const results = await Promise.all(
      names.map(async (n) => {
        if (existsSync(join(spool, n + VERIFIED_SUFFIX))) return true;
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
          segmentSize: db?.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE,
        });
        return true;
      }),
    );
    return results.filter(Boolean).length;
  } finally {
    await rm(lock, { force: true });
  }
}
