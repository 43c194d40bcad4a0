/**
 * Collects real PostgreSQL WAL segments for benchmarks: a scratch cluster with
 * archive_mode=on copies every closed segment into `dir`. The workload is
 * pgbench: `pgbench -i -s <scale>` loads the tables, a CHECKPOINT and
 * pg_switch_wal() start a fresh segment, then TPC-B-like pgbench runs until
 * `count` full 16 MB segments written *after* that checkpoint are archived.
 * Those are steady-state OLTP WAL with full-page images after each
 * checkpoint, like a production archive; the bulk-load segments of the
 * initialization are dropped. No segment is closed early by pg_switch_wal(),
 * so none has a zero-filled tail that would flatter the compression ratio.
 *
 * An existing collection with at least `count` segments (and the relation
 * file when asked for one) is reused.
 *
 * CLI: node dist/bench/collect-wal.js <count> <dir> [--relation <file>]
 */
import { existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { ScratchPostgres } from "../agent/postgres.js";

const SEGMENT_SIZE = 16 * 1024 * 1024;
const SEGMENT_RE = /^[0-9A-F]{24}$/;

export interface CollectOptions {
  /** pgbench scale factor (default 20: pgbench_accounts is ~256 MB). */
  scale?: number;
  /** Also copy the pgbench_accounts heap file (first 1 GB segment) here, after a clean shutdown. */
  relationFile?: string;
  /** Progress messages (default: stderr). */
  log?: (message: string) => void;
}

/** Metadata written next to the segments. */
export interface CollectionInfo {
  collectedAt: string;
  postgresVersion: string;
  scale: number;
  segments: number;
  workload: string;
}

/** The first `count` archived segments in `dir`, sorted, or undefined when there are fewer. */
async function existingSegments(dir: string, count: number): Promise<string[] | undefined> {
  if (!existsSync(dir)) return undefined;
  const names = (await fs.readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
  const full: string[] = [];
  for (const n of names) {
    const st = await fs.stat(path.join(dir, n));
    if (st.size === SEGMENT_SIZE) full.push(path.join(dir, n));
  }
  return full.length >= count ? full.slice(0, count) : undefined;
}

/**
 * Returns paths of `count` real 16 MB WAL segments in `dir`, collecting them
 * with a scratch PostgreSQL cluster unless `dir` already holds enough.
 */
export async function collectWalSegments(count: number, dir: string, options: CollectOptions = {}): Promise<string[]> {
  if (!Number.isInteger(count) || count < 1) throw new Error(`segment count must be a positive integer, got ${count}`);
  const log = options.log ?? ((m: string) => process.stderr.write(`collect-wal: ${m}\n`));
  const target = path.resolve(dir);
  const relationFile = options.relationFile === undefined ? undefined : path.resolve(options.relationFile);
  const scale = options.scale ?? 20;

  const reused = await existingSegments(target, count);
  if (reused && (relationFile === undefined || existsSync(relationFile))) {
    log(`reusing ${count} segments in ${target}`);
    return reused;
  }
  if (target.includes("%") || target.includes("'")) {
    throw new Error(`collection directory ${target} must not contain % or ' (it goes into archive_command)`);
  }

  // Start from an empty collection: names of a previous cluster would collide with the new one's.
  await fs.mkdir(target, { recursive: true });
  for (const n of await fs.readdir(target)) {
    if (SEGMENT_RE.test(n) || n.endsWith(".tmp") || n === "collection.json") await fs.rm(path.join(target, n));
  }
  // The archive_command runs as the PostgreSQL OS user (not root): let it write here.
  await fs.chmod(target, 0o777);

  const started = Date.now();
  const pg = await ScratchPostgres.create({
    settings: {
      archive_mode: "on",
      archive_command: `cp %p '${target}'/%f.tmp && mv '${target}'/%f.tmp '${target}'/%f`,
      // Checkpoints driven by WAL volume, as on a busy server: full-page images recur.
      max_wal_size: "512MB",
      checkpoint_timeout: "30min",
      shared_buffers: "128MB",
    },
  });
  try {
    await pg.start();
    const version = await pg.psql("show server_version");
    log(`PostgreSQL ${version} in ${pg.dataDir}: pgbench -i -s ${scale}`);
    await pg.pgbench(["-i", "-s", String(scale), "-q"]);
    await pg.psql("checkpoint");
    const boundary = await pg.psql("select pg_walfile_name(pg_switch_wal())");
    log(`initialized in ${((Date.now() - started) / 1000).toFixed(1)} s; collecting segments after ${boundary}`);

    const collected = async (): Promise<string[]> =>
      (await fs.readdir(target)).filter((n) => SEGMENT_RE.test(n) && n > boundary).sort();
    let rounds = 0;
    while ((await collected()).length < count) {
      rounds += 1;
      if (rounds > 200) throw new Error(`only ${(await collected()).length} of ${count} segments after 200 pgbench runs`);
      await pg.pgbench(["-n", "-c", "4", "-j", "2", "-T", "5"]);
      const failed = await pg.psql("select failed_count from pg_stat_archiver");
      if (failed !== "0") {
        throw new Error(`archive_command failed (can the PostgreSQL OS user write ${target}?):\n${await pg.logTail(10)}`);
      }
      log(`${(await collected()).length}/${count} segments archived`);
    }

    const relationPath = await pg.psql("select pg_relation_filepath('pgbench_accounts')");
    await pg.stop({ mode: "fast" });
    if (relationFile !== undefined) {
      // After a clean shutdown the heap file on disk is complete and consistent.
      await fs.mkdir(path.dirname(relationFile), { recursive: true });
      await fs.copyFile(path.join(pg.dataDir, relationPath), relationFile);
      log(`copied ${relationPath} (${((await fs.stat(relationFile)).size / 2 ** 20).toFixed(0)} MB) to ${relationFile}`);
    }

    for (const n of await fs.readdir(target)) {
      if ((SEGMENT_RE.test(n) && n <= boundary) || n.endsWith(".tmp")) await fs.rm(path.join(target, n));
    }
    const info: CollectionInfo = {
      collectedAt: new Date().toISOString(),
      postgresVersion: version,
      scale,
      segments: (await collected()).length,
      workload: `pgbench -i -s ${scale}; checkpoint; pg_switch_wal(); pgbench -n -c 4 -j 2 -T 5 x ${rounds} (max_wal_size=512MB, full_page_writes=on)`,
    };
    await fs.writeFile(path.join(target, "collection.json"), `${JSON.stringify(info, null, 2)}\n`);
    log(`collected ${info.segments} segments in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await pg.destroy();
  }
  await fs.chmod(target, 0o755);
  // Archived by the PostgreSQL OS user with mode 0600: make the collection readable by anyone.
  for (const n of await fs.readdir(target)) await fs.chmod(path.join(target, n), 0o644);
  if (relationFile !== undefined) await fs.chmod(relationFile, 0o644);
  const segments = await existingSegments(target, count);
  if (!segments) throw new Error(`collection in ${target} has fewer than ${count} full segments`);
  return segments;
}

function isMain(): boolean {
  const arg = process.argv[1];
  return arg !== undefined && import.meta.url === pathToFileURL(path.resolve(arg)).href;
}

if (isMain()) {
  const args = process.argv.slice(2);
  const relIndex = args.indexOf("--relation");
  const relationFile = relIndex >= 0 ? args.splice(relIndex, 2)[1] : undefined;
  const [countArg, dirArg] = args;
  const count = Number(countArg);
  if (!dirArg || !Number.isInteger(count) || count < 1) {
    process.stderr.write("usage: node dist/bench/collect-wal.js <count> <dir> [--relation <file>]\n");
    process.exit(2);
  }
  collectWalSegments(count, dirArg, { relationFile }).then(
    (paths) => {
      for (const p of paths) process.stdout.write(`${p}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`collect-wal: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
