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
 * downloads and verifies the next segments into pg_wal/.walvault-prefetch/;
 * the next wal-fetch takes its file from there after re-hashing it.
 */
import { walInRegion } from "../core/regions.js";
import { spawn } from "node:child_process";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { InvalidInputError, NotFoundError, UnknownDatabaseError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import type { WalRecord } from "../core/schemas.js";
import { nextSegmentName, walFileShape, DEFAULT_WAL_SEGMENT_SIZE } from "../core/wal.js";
import type { AgentConfig } from "../core/config.js";
import { fetchVerifiedWal } from "../store/catalog-state.js";
import type { AgentClients } from "./clients.js";

export const PREFETCH_DIR = ".walvault-prefetch";

export interface FetchResult {
  name: string;
  size: number;
  source: "vault" | "prefetch";
}

/** Writes dest through a temporary file beside it; on any failure the temporary file is removed. */
async function writeAtomic(dest: string, data: Uint8Array): Promise<void> {
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

/** Downloads a recorded file from the vault and proves it against the catalog record. */
export function downloadVerified(clients: AgentClients, cfg: AgentConfig, rec: WalRecord): Promise<Buffer> {
  return fetchVerifiedWal(clients.store, cfg.vaultBucket, rec);
}

async function takePrefetched(dir: string, rec: WalRecord): Promise<Buffer | undefined> {
  const file = join(dir, rec.name);
  if (!existsSync(file)) return undefined;
  try {
    const data = await readFile(file);
    await rm(file, { force: true });
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
  if (name.includes("/") || name === "" || name.startsWith(".")) {
    throw new InvalidInputError(`'${name}' is not a WAL file name`);
  }
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
  const prefetchDir = join(dirname(dest), PREFETCH_DIR);
  const pre = await takePrefetched(prefetchDir, rec);
  const data = pre ?? (await downloadVerified(clients, cfg, rec));
  await writeAtomic(dest, data);
  return { name, size: data.length, source: pre ? "prefetch" : "vault" };
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

/** Starts a detached prefetcher for the segments after `name`; never blocks or fails the fetch. */
/** `self`: how to run this CLI (agent/paths.ts selfCommand). */
export function spawnPrefetch(name: string, dest: string, cfg: AgentConfig & { replicaRegion?: string }, self: { file: string; args: readonly string[] }): void {
  const count = cfg.prefetch ?? 8;
  if (count === 0) return;
  try {
    // The name's shape only: the prefetcher reads the database's segment size (a 1 MiB database's 257th segment is no 16 MiB name).
    if (walFileShape(name) !== "segment") return;
  } catch {
    return;
  }
  const args = [...self.args, "wal-prefetch", name, join(dirname(dest), PREFETCH_DIR), "--count", String(count)];
  if (cfg.databaseId) args.push("--database", cfg.databaseId);
  if ("path" in cfg && typeof cfg.path === "string") args.push("--config", cfg.path);
  if (cfg.replicaRegion) args.push("--region", cfg.replicaRegion);
  const child = spawn(self.file, args, { detached: true, stdio: "ignore" });
  child.unref();
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
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, ".lock");
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
        if (existsSync(join(dir, n))) return true;
        const recorded = await clients.catalog.getWal(cfg.databaseId, n);
        const rec = recorded && walInRegion(recorded, cfg.replicaRegion);
        if (!rec) return false;
        const data = await downloadVerified(clients, cfg, rec);
        await writeAtomic(join(dir, n), data);
        return true;
      }),
    );
    return results.filter(Boolean).length;
  } finally {
    await rm(lock, { force: true });
  }
}
