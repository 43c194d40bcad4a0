/** Test support for suites that drive a real PostgreSQL (local/postgres.ts). */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { ScratchPostgres } from "../../agent/postgres.js";
import { isWalFileName, parseWalFileName } from "../../core/wal.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { mapLimit } from "./cli-run.js";
import type { CliResult } from "./stack.js";

/** What pgbench wrote, to compare a restored copy with its primary: pgbench_history's rows and the accounts' total balance. */
export async function pgbenchCounts(pg: ScratchPostgres): Promise<{ history: string; balance: string }> {
  const [history, balance] = (await pg.psql("select count(*) from pgbench_history; select sum(abalance) from pgbench_accounts;")).split("\n");
  return { history: history!, balance: balance! };
}

/**
 * Fetches every WAL file of `originals` (what archive_command kept of each
 * file it reported archived) with one `wal-fetch` process each, as
 * restore_command runs them, three at a time, and expects each to exit 0
 * with the same bytes.
 */
export async function expectFetchedIdentical(cli: (args: string[]) => Promise<CliResult>, originals: string, extraArgs: string[] = []): Promise<void> {
  const dest = mkdtempSync(join(tmpdir(), "walvault-fetch-"));
  const names = readdirSync(originals).filter((f) => isWalFileName(f));
  try {
    const results = await mapLimit(names, 3, (name) => cli(["wal-fetch", name, join(dest, name), "--no-prefetch", ...extraArgs]));
    for (const [i, name] of names.entries()) {
      expect(results[i]!.code, results[i]!.stderr).toBe(0);
      expect(readFileSync(join(dest, name)).equals(readFileSync(join(originals, name))), name).toBe(true);
    }
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
}

/**
 * What the archiver was doing, for a test that waited too long: its counters
 * and last failure (pg_stat_archiver), the segments still waiting
 * (archive_status/*.ready), and the archive_command calls running now.
 */
async function archiverState(pg: ScratchPostgres): Promise<string> {
  const stats = await pg
    .psql("select format('archived %s, last %s at %s; failed %s, last failed %s at %s', archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time) from pg_stat_archiver")
    .catch((e: unknown) => `pg_stat_archiver unreadable: ${(e as Error).message}`);
  let ready: string;
  try {
    ready = readdirSync(join(pg.dataDir, "pg_wal", "archive_status")).filter((f) => f.endsWith(".ready")).join(", ") || "none";
  } catch (e) {
    ready = `unreadable: ${(e as Error).message}`;
  }
  const running = spawnSync("ps", ["-eo", "pid,etimes,args"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((l) => l.includes("wal-push") && !l.includes("ps -eo"))
    .map((l) => l.trim())
    .join("; ");
  return `archiver: ${stats}; .ready: ${ready}; wal-push running: ${running || "none"}`;
}

/** Closes the current WAL segment and waits until PostgreSQL reports it archived; returns its name. */
export async function switchAndWaitArchived(pg: ScratchPostgres, timeoutMs = 120_000): Promise<string> {
  const closed = await pg.psql("select pg_walfile_name(pg_switch_wal())");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await pg.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
    if (last >= closed) return closed;
    if (Date.now() > deadline) throw new Error(`${closed} was not archived (last ${last})\n${await archiverState(pg)}\n${await pg.logTail(20)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A work directory PostgreSQL's OS user can write (the suites run as root,
 * the server as postgres), with `originals/` in it: where archive_command
 * keeps a copy of each file wal-push reported archived (archiveCommandKeeping).
 */
export function archiveWorkDir(prefix: string): { workDir: string; originals: string } {
  const workDir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(workDir, 0o777);
  const originals = join(workDir, "originals");
  mkdirSync(originals);
  chmodSync(originals, 0o777);
  return { workDir, originals };
}

/**
 * archive_command = `walvault wal-push [pushArgs] %p`, then a copy of the file
 * into `originals`, taken only once wal-push exited 0: the files PostgreSQL
 * considers archived, to compare the vault with.
 */
export function archiveCommandKeeping(originals: string, pushArgs = ""): string {
  return `'${WALVAULT_BIN}' wal-push ${pushArgs ? `${pushArgs} ` : ""}%p && cp %p '${originals}/%f'`;
}

/** The WAL segments (no history, partial or backup files) archive_command kept in `originals`, in name order. */
export function archivedSegments(originals: string, walSegmentSize?: number): string[] {
  return readdirSync(originals)
    .filter((f) => isWalFileName(f) && parseWalFileName(f, walSegmentSize).kind === "segment")
    .sort();
}
