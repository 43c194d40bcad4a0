/**
 * Snapshot push and restore of a pgbench cluster, against pgBackRest's full
 * backup and restore of the same cluster in the same run.
 *
 * One scratch PostgreSQL 15 (`ScratchPostgres`, as user postgres when root),
 * loaded with `pgbench -i -s <scale>` (100: ~1.5 GB) and CHECKPOINTed, then:
 * (pgbench's tables compress ~21x with zstd-1; `--random-mb N` adds a table
 * of N MB of hex digests, which compress ~2-3x as most real data does (at
 * --scale 20 --random-mb 1200 the cluster stores 588 MB for 1.59 GB), so the
 * restore moves many more stored bytes per byte written)
 *
 *   walvault (embedded local stack: s3rver + DynamoDB Local + the ingest
 *   workflows in this process)
 *   1. archive_command = `walvault wal-push %p` (WAL of the load went to
 *      /bin/true; a pg_switch_wal() checks the path), CHECKPOINT, sync;
 *   2. `snapshotPush` in a child process (peak RSS is the agent's alone),
 *      with the CLI's default source (direct: pg_backup_start, the data
 *      directory read by the agent, pg_backup_stop; `--source basebackup`:
 *      pg_basebackup -X none): chunk, compress (zstd-1), upload, then wait
 *      until ingest records the snapshot and (direct) PostgreSQL has archived
 *      the stop segment (by walvault wal-push; pg_basebackup waits for it
 *      itself), so the snapshot is restorable when the push returns;
 *      then the vault is listed: its packs and the snapshot's manifest
 *      objects, and objects per GB stored (issue 11's bound: 64);
 *   3. `restore` (agent/restore.ts, the executor behind `walvault restore`)
 *      of that snapshot (`--snapshot ID`: recovery_target = 'immediate', WAL
 *      from the start to the stop segment, all archived in step 2) into an
 *      empty directory, in a child process, durable (each file fdatasync'ed)
 *      as the CLI does;
 *   4. (verify) the restored directory is started: restore_command fetches the
 *      WAL, recovery stops at the consistent point and promotes; the row
 *      counts must equal the source's. Timed separately, not in the ratios.
 *
 *   pgBackRest (when installed; repo and compression as shared/anchors/30_backup.sh)
 *   5. stanza-create; archive_command = `pgbackrest archive-push %p` to the
 *      same repo; switch WAL, CHECKPOINT, sync;
 *   6. `pgbackrest backup --type=full` (start-fast, archive-check on,
 *      compress-type zst at pgBackRest's default level unless
 *      --pgbr-compress-level, process-max --pgbr-process-max), repo on
 *      the anchors' TLS s3rver (or a posix repo with --pgbr-repo posix);
 *   7. `pgbackrest restore --type=immediate --target-action=promote` into an
 *      empty directory;
 *   8. (verify) as 4, restore_command = pgbackrest archive-get.
 *
 * Each tool's command is timed from process start to exit (walvault: the
 * child Node process; pgBackRest: under /usr/bin/time -v). Backup MB/s =
 * the tool's logical bytes (walvault: the snapshot's logicalBytes;
 * pgBackRest: `info` size) / that wall; restore MB/s = bytes written / wall.
 * MB = 10^6 bytes. The ratios (walvault / pgBackRest, >1 = walvault faster)
 * come from this run only. Peak RSS: walvault = the child's own high-water
 * RSS (VmHWM, bench/peak-rss.ts; not pg_basebackup's, not the stack's, not
 * the bench's that getrusage would report); pgBackRest = GNU time's maximum RSS,
 * i.e. its largest single process (with process-max 2 there are 3).
 *
 * Before each restore (walvault's and pgBackRest's alike) the same number of
 * bytes, 1.25x the data directory (2 GB at least), is written to a scratch
 * file and deleted, untimed (warmFreePages). On this VM a page the kernel has
 * not used for a while costs ~13x more to fill than one freed recently (the
 * host backs guest memory lazily: measured 3.3 GB/s for the first ~2 GB of
 * new page cache, then 210-580 MB/s, sys time 1.9 s per 512 MB), so
 * whichever restore ran right after another one's tree was deleted wrote
 * into warm pages and the other into cold ones. A database host's memory is
 * backed; both restores now start from the same warm free memory. Before
 * the warm-up, SETTLE_S seconds of nothing (settleBeforeRestore): the
 * kernel finishes in the background what the deletion of the restore
 * before left (measured: walvault restores one right after another spent
 * 0.2, 0.27, 0.36 ... 0.65 CPU-s in file-system calls over seven rounds,
 * each ~0.05 s slower than the one before; with 8 s between them 0.17-0.32
 * CPU-s and no drift), so that no restore pays for the one before it. The
 * pause comes before the warm-up, not after it: 8 s after it the host had
 * taken the warm pages back, and pgBackRest's restore (through the page
 * cache) took 4.2-4.5 s instead of 2.7-2.9 (5.0 CPU-s instead of 1.9).
 *
 * `--lambda-nice N` (default 10, LAMBDA_NICE): the local stack's Lambda
 * sandboxes run at nice N. In AWS they are not on the database host; here
 * they would take half the cores from the agent's push. The end-to-end
 * figure still counts all of their CPU.
 *
 * `--restore-pairs N` (with pgBackRest): after both timed restores, N more
 * pairs of restores into scratch directories, walvault's and pgBackRest's
 * alternately first, each after the same warm-up; prints each pair's ratio
 * and their median (JSON `restorePairs`). On a shared machine whose speed
 * moves by tens of percent within minutes, one pair is one sample; the
 * median of a few adjacent pairs is the figure to quote.
 *
 * The push and restore children run with the Node flags bin/walvault gives
 * those commands (bench/launcher-flags.ts reads them from the launcher). Diagnostics,
 * by environment: WALVAULT_BENCH_CPU_PROF=DIR (V8 CPU profiles of every
 * thread), WALVAULT_BENCH_MEM=1 and WALVAULT_BENCH_HEAPPROF=FILE (the child's
 * memory over time, its sampling heap profile: bench/snapshot-restore-child.ts),
 * WALVAULT_BENCH_THREAD_CPU=1 (the restore's CPU per thread name),
 * WALVAULT_BENCH_TL=1 (the restore's files and MB done every 0.1 s: where it
 * waits, e.g. on the disk at the end),
 * WALVAULT_BENCH_RESTORE_AB="FLAGS|FLAGS" (after the timed restore, three
 * rounds, or WALVAULT_BENCH_AB_ROUNDS, of the restore with each set of Node
 * flags in turn; a set with flags replaces bin/walvault's, which only a set
 * without any keeps, so a set that adds one flag repeats the launcher's
 * too; each round starting with the next set, each restore after
 * the same warm-up; then each set's median: an A/B of V8 settings within one
 * run; a NAME=VALUE word is
 * set in that child's environment instead, and WALVAULT_BENCH_CHILD=FILE
 * runs another build's child, e.g. a worktree of the commit before: an A/B
 * of two versions of the code within one run).
 *
 * Usage: npm run build && node dist/bench/snapshot-restore.js [--scale 100]
 *        [--concurrency 32] [--parallel 32] [--block-size BYTES] [--source direct|basebackup] [--pgbr-process-max 2]
 *        [--pgbr-compress-level N] [--pgbr-repo s3|posix] [--no-pgbackrest]
 *        [--no-verify] [--restore-pairs N] [--lambda-nice 10] [--out bench/results/snapshot-restore.json]
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, lstatSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_RESTORE_PARALLEL } from "../agent/restore.js";
import { DEFAULT_BLOCK_SIZE, DEFAULT_CONCURRENCY, type SnapshotSource } from "../agent/snapshot-push.js";
import { BENCH_BUNDLE_DIR, PACKAGE_ROOT, WALVAULT_BIN } from "../local/paths.js";
import { ScratchPostgres } from "../agent/postgres.js";
import { startLocalStack, type LocalStack } from "../local/stack.js";
import { vaultPacksPrefix, vaultSnapshotsPrefix } from "../core/keys.js";
import { createObjectStore } from "../store/factory.js";
import type { ChildOutput, ChildSpec } from "./snapshot-restore-child.js";
import { anchorScriptsDir, median } from "./anchor.js";
import { launcherFlags } from "./launcher-flags.js";
import { osUser, pidsMatching, procCpu, ticksPerSecond } from "./processes.js";
import { benchArgs } from "./args.js";

/** The vault's packs and the snapshot's manifest objects after the push: how many, their bytes, objects per GB stored. */
async function vaultObjects(stack: LocalStack, snapshotId: string): Promise<{ packs: number; manifestObjects: number; storedMB: number; objectsPerGbStored: number }> {
  const store = createObjectStore({ ...stack.config, name: "vault" });
  let bytes = 0;
  const count = async (prefix: string): Promise<number> => {
    let n = 0;
    for await (const o of store.list(stack.config.vaultBucket, prefix)) {
      n++;
      bytes += o.size;
    }
    return n;
  };
  const packs = await count(vaultPacksPrefix(DB_ID));
  const manifestObjects = await count(`${vaultSnapshotsPrefix(DB_ID)}${snapshotId}/`);
  return { packs, manifestObjects, storedMB: round(bytes / 1e6, 2), objectsPerGbStored: round((packs + manifestObjects) / (bytes / 1e9), 1) };
}

/**
 * The child: bundled as the CLI is (local/bundle-handlers.ts), so its start
 * loads what `walvault` loads; the compiled module when tsc ran alone since.
 */
const CHILD = ((): string => {
  const compiled = fileURLToPath(new URL("./snapshot-restore-child.js", import.meta.url));
  const bundled = join(PACKAGE_ROOT, BENCH_BUNDLE_DIR, "snapshot-restore-child.js");
  return existsSync(bundled) && statSync(bundled).mtimeMs > statSync(compiled).mtimeMs ? bundled : compiled;
})();
const DB_ID = "bench-pg";
const STANZA = "walvault-bench";
const ANCHORS_DIR = process.env["ANCHORS_DIR"] || "/tmp/anchors";

// ---------------------------------------------------------------------------
// Child processes (one per walvault command, for its own peak RSS)

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait). */
function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return (total - v[3]! - v[4]!) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** CPU seconds so far of the local stack's parts: ingest (this process: handlers + ASL interpreter), s3rver, DynamoDB Local. */
interface StackCpu {
  ingest: number;
  s3rver: number;
  dynamodb: number;
}

function stackCpu(stack: LocalStack): StackCpu {
  const cpu = process.cpuUsage();
  const ddbPort = new URL(stack.config.dynamodbEndpoint!).port;
  return {
    ingest: (cpu.user + cpu.system) / 1e6,
    s3rver: pidsMatching("s3rver-child", stack.config.local!.stateDir).reduce((a, p) => a + procCpu(p), 0),
    dynamodb: pidsMatching("DynamoDBLocal.jar", ddbPort).reduce((a, p) => a + procCpu(p), 0),
  };
}

function stackCpuSince(stack: LocalStack, before: StackCpu): StackCpu {
  const now = stackCpu(stack);
  return { ingest: round(now.ingest - before.ingest, 1), s3rver: round(now.s3rver - before.s3rver, 1), dynamodb: round(now.dynamodb - before.dynamodb, 1) };
}

/** CPU seconds so far of the anchors' TLS s3rver (pgBackRest's S3), 0 when it is not running. */
function anchorS3rverCpu(): number {
  const f = join(ANCHORS_DIR, "s3rver-https.pid");
  return existsSync(f) ? procCpu(Number(readFileSync(f, "utf8").trim())) : 0;
}

/** Runs the child module (bench/snapshot-restore-child.ts: agent modules only, as the CLI loads them); resolves with its output and the wall time from spawn to exit. */
function runChild(spec: ChildSpec, env: Record<string, string> = {}): Promise<{ out: ChildOutput; wallS: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // WALVAULT_BENCH_CPU_PROF=DIR: a V8 CPU profile of every walvault command, in DIR (as bench/snapshot.ts).
    const prof = process.env["WALVAULT_BENCH_CPU_PROF"];
    // The V8 flags bin/walvault starts the command with (heap sizing counts in the peak RSS), or those of spec.nodeFlags.
    const flags = spec.nodeFlags ?? launcherFlags(spec.op === "push" ? "snapshot" : "restore");
    const node = [...flags, ...(prof ? ["--cpu-prof", "--cpu-prof-dir", prof] : [])];
    const c = spawn(process.execPath, [...node, env["WALVAULT_BENCH_CHILD"] ?? CHILD, JSON.stringify(spec)], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
    let text = "";
    c.stdout.on("data", (d: Buffer) => (text += d.toString()));
    c.on("error", reject);
    c.on("close", (code) => {
      const wallS = (performance.now() - t0) / 1000;
      if (code !== 0) reject(new Error(`${spec.op} child exited ${code}`));
      else resolve({ out: JSON.parse(text) as ChildOutput, wallS });
    });
  });
}

// ---------------------------------------------------------------------------
// Helpers

type OsUser = NonNullable<ReturnType<typeof osUser>>;

function chownTree(path: string, user: OsUser | undefined): void {
  if (!user) return;
  chownSync(path, user.uid, user.gid);
  if (lstatSync(path).isDirectory()) for (const n of readdirSync(path)) chownTree(join(path, n), user);
}

function onPath(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Apparent size of a directory tree without pg_wal (as `du -sb --exclude=pg_wal`, files only). */
function treeBytes(dir: string): number {
  let n = 0;
  const visit = (p: string): void => {
    const st = lstatSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p)) if (!(p === dir && name === "pg_wal")) visit(join(p, name));
    } else if (st.isFile()) n += st.size;
  };
  visit(dir);
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Seconds of nothing before each timed restore's warm-up (see the header). */
const SETTLE_S = 8;

/** Before each timed restore, walvault's or pgBackRest's: SETTLE_S seconds, warm free pages, sync (see the header). */
async function settleBeforeRestore(dir: string, warmBytes: number): Promise<void> {
  await sleep(SETTLE_S * 1000);
  warmFreePages(dir, warmBytes);
  spawnSync("sync");
}

/** Writes `bytes` to a scratch file in `dir` and deletes it, so that the next restore's page cache comes from recently freed (warm) pages; see the header. */
function warmFreePages(dir: string, bytes: number): void {
  const path = join(dir, "warm-free-pages.tmp");
  const block = Buffer.alloc(1024 * 1024, 0x5a);
  const fd = openSync(path, "w");
  try {
    for (let n = 0; n < bytes; n += block.length) writeSync(fd, block);
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

/** Waits until the archiver has no .ready segment left (lib.sh's wait_archived). */
async function waitArchived(pg: ScratchPostgres, timeoutMs = 900_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = Number(await pg.psql("select count(*) from pg_ls_archive_statusdir() where name like '%.ready'"));
    if (ready === 0) return;
    const failed = await pg.psql("select coalesce(last_failed_wal, '') || ' ' || coalesce(last_failed_time::text, '') from pg_stat_archiver");
    if (Date.now() > deadline) throw new Error(`${ready} WAL segment(s) still not archived (last failure: ${failed.trim() || "none"})\n${await pg.logTail(10)}`);
    await sleep(200);
  }
}

async function setArchiveCommand(pg: ScratchPostgres, command: string): Promise<void> {
  await pg.setSettings({ archive_command: command });
  await pg.reload();
  await sleep(500);
  await pg.psql("select pg_switch_wal()");
  await waitArchived(pg);
}

/** What must be equal in the source and in every restored cluster. */
const FINGERPRINT_SQL =
  "select (select count(*) from pgbench_accounts) || ' ' || (select sum(bid) from pgbench_accounts) || ' ' || " +
  "(select count(*) from pgbench_tellers) || ' ' || (select count(*) from pgbench_branches) || ' ' || (select count(*) from pgbench_history)";

interface Verified {
  /** pg_ctl start until pg_is_in_recovery() is false (WAL fetched by restore_command, promoted). */
  startRecoverS: number;
  matches: boolean;
  fingerprint: string;
}

async function verifyRestored(dir: string, env: Record<string, string>, expected: string): Promise<Verified> {
  const restored = await ScratchPostgres.fromDataDir(dir, { env, settings: { archive_mode: "off" }, ownDataDir: true, startTimeoutSec: 600 });
  try {
    const t0 = performance.now();
    await restored.start();
    await restored.waitForRecoveryEnd(900_000);
    const startRecoverS = (performance.now() - t0) / 1000;
    const fingerprint = await restored.psql(FINGERPRINT_SQL);
    return { startRecoverS: round(startRecoverS, 2), matches: fingerprint === expected, fingerprint };
  } finally {
    await restored.destroy();
  }
}

const round = (x: number, d: number): number => +x.toFixed(d);
const mb = (bytes: number): number => round(bytes / 1e6, 1);

// ---------------------------------------------------------------------------
// pgBackRest

interface PgbrSetup {
  dir: string;
  conf: string;
  repo: "s3" | "posix";
  /** Where the repo's files are on local disk (removed at the end). */
  repoDiskPath: string;
  /** s3rver instances this run started (stopped at the end). */
  startedS3: boolean;
  scripts: string | undefined;
}

function s3rverAlive(): boolean {
  const f = join(ANCHORS_DIR, "s3rver-https.pid");
  if (!existsSync(f)) return false;
  try {
    process.kill(Number(readFileSync(f, "utf8").trim()), 0);
    return true;
  } catch {
    return false;
  }
}

function pgbrAvailable(repo: string): { ok: true; scripts: string | undefined } | { ok: false; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: "Linux only" };
  if (!onPath("pgbackrest")) return { ok: false, reason: "pgbackrest not on PATH (run bench/anchor-setup.sh as root)" };
  if (repo === "posix") return { ok: true, scripts: undefined };
  if (repo !== "s3") return { ok: false, reason: `--pgbr-repo must be s3 or posix, not ${repo}` };
  const scripts = anchorScriptsDir();
  if (!scripts) return { ok: false, reason: "shared/anchors not found (its lib.sh starts the TLS s3rver); or use --pgbr-repo posix" };
  if (!existsSync(join(ANCHORS_DIR, "npm", "node_modules", ".bin", "s3rver")) || !existsSync(join(ANCHORS_DIR, "tls", "cert.pem"))) {
    return { ok: false, reason: `no s3rver / TLS cert under ${ANCHORS_DIR} (run bench/anchor-setup.sh as root), or use --pgbr-repo posix` };
  }
  if (!onPath("curl")) return { ok: false, reason: "curl not on PATH (lib.sh's s3_start needs it)" };
  return { ok: true, scripts };
}

function setupPgbr(pg: ScratchPostgres, work: string, repo: "s3" | "posix", scripts: string | undefined, processMax: number, compressLevel: string | undefined, user: OsUser | undefined): PgbrSetup {
  const dir = join(work, "pgbackrest");
  for (const d of ["log", "lock", "spool", "repo"]) mkdirSync(join(dir, d), { recursive: true });
  const tag = `${new Date().toISOString().replace(/[-:.TZ]/g, "")}-${process.pid}`;
  let startedS3 = false;
  const lines = [
    "[global]",
    `log-path=${dir}/log`,
    `lock-path=${dir}/lock`,
    `spool-path=${dir}/spool`,
    "log-level-console=warn",
    "log-level-file=info",
    "start-fast=y",
    "repo1-retention-full=100",
    "compress-type=zst",
    ...(compressLevel === undefined ? [] : [`compress-level=${compressLevel}`]),
    `process-max=${processMax}`,
  ];
  let repoDiskPath: string;
  if (repo === "s3") {
    const before = s3rverAlive();
    const r = spawnSync("bash", ["-c", '. "$1/lib.sh"; s3_start', "s3", scripts!], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
    if (r.status !== 0) throw new Error(`could not start the anchors' s3rver: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
    startedS3 = !before;
    const repoPath = `/walvault-bench/${tag}`;
    lines.push(
      "repo1-type=s3",
      `repo1-path=${repoPath}`,
      "repo1-s3-bucket=pgbackrest",
      "repo1-s3-endpoint=localhost",
      "repo1-storage-port=4570",
      "repo1-s3-region=us-east-1",
      "repo1-s3-key=S3RVER",
      "repo1-s3-key-secret=S3RVER",
      "repo1-s3-uri-style=path",
      `repo1-storage-ca-file=${join(ANCHORS_DIR, "tls", "cert.pem")}`,
    );
    repoDiskPath = join(ANCHORS_DIR, "s3tls", "pgbackrest", repoPath);
  } else {
    lines.push("repo1-type=posix", `repo1-path=${dir}/repo`);
    repoDiskPath = join(dir, "repo");
  }
  lines.push("", `[${STANZA}]`, `pg1-path=${pg.dataDir}`, `pg1-port=${pg.port}`, `pg1-socket-path=${pg.socketDir}`, "");
  const conf = join(dir, "pgbackrest.conf");
  writeFileSync(conf, lines.join("\n"));
  chownTree(dir, user);
  return { dir, conf, repo, repoDiskPath, startedS3, scripts };
}

interface TimedRun {
  wallS: number;
  stdout: string;
  maxRssBytes: number | null;
  cpuSeconds: number | null;
}

/** Runs pgbackrest as the cluster's OS user, under /usr/bin/time -v when it exists. */
async function pgbackrest(pg: ScratchPostgres, setup: PgbrSetup, args: string[]): Promise<TimedRun> {
  const base = ["pgbackrest", `--config=${setup.conf}`, `--stanza=${STANZA}`, ...args];
  const hasTime = existsSync("/usr/bin/time");
  const timeFile = join(setup.dir, "time.txt");
  rmSync(timeFile, { force: true });
  const t0 = performance.now();
  const r = hasTime ? await pg.run("/usr/bin/time", ["-v", "-o", timeFile, ...base]) : await pg.run("pgbackrest", base.slice(1));
  const wallS = (performance.now() - t0) / 1000;
  let maxRssBytes: number | null = null;
  let cpuSeconds: number | null = null;
  if (hasTime && existsSync(timeFile)) {
    const t = readFileSync(timeFile, "utf8");
    const num = (re: RegExp): number | undefined => {
      const m = re.exec(t);
      return m ? Number(m[1]) : undefined;
    };
    const rss = num(/Maximum resident set size \(kbytes\): (\d+)/);
    const u = num(/User time \(seconds\): ([\d.]+)/);
    const s = num(/System time \(seconds\): ([\d.]+)/);
    if (rss !== undefined) maxRssBytes = rss * 1024;
    if (u !== undefined && s !== undefined) cpuSeconds = round(u + s, 2);
  }
  return { wallS, stdout: r.stdout, maxRssBytes, cpuSeconds };
}

interface PgbrInfoBackup {
  label: string;
  info: { size: number; delta: number; repository: { size: number; delta: number } };
}

// ---------------------------------------------------------------------------
// Main

/** `--lambda-nice`'s default (see the header; docs/decisions.md, stop 45): both tools' s3rvers stay at the default priority. */
const LAMBDA_NICE = 10;

const USAGE = `usage: node dist/bench/snapshot-restore.js [--scale 100] [--concurrency N] [--parallel N] [--block-size BYTES]
       [--source direct|basebackup] [--pgbr-process-max 2] [--pgbr-compress-level N] [--pgbr-repo s3|posix]
       [--no-pgbackrest] [--no-verify] [--restore-pairs N] [--lambda-nice 10] [--random-mb 0] [--out bench/results/snapshot-restore.json]
Snapshot push and restore of a pgbench cluster on the local stack, against pgBackRest in the same run (bench/README.md).
--lambda-nice N: the local stack's Lambda sandboxes at nice N (0 to 19; default 10), as Lambda is not on the database host.
--random-mb N: also load a table of about N MB of hex digests (compresses ~2-3x, as real data; pgbench's ~21x).`;

function parseOptions() {
  return benchArgs("snapshot-restore", {
    options: {
      scale: { type: "string", default: "100" },
      concurrency: { type: "string", default: String(DEFAULT_CONCURRENCY) },
      parallel: { type: "string", default: String(DEFAULT_RESTORE_PARALLEL) },
      "block-size": { type: "string" },
      source: { type: "string", default: "direct" },
      "pgbr-process-max": { type: "string", default: "2" },
      "pgbr-compress-level": { type: "string" },
      "pgbr-repo": { type: "string", default: "s3" },
      "no-pgbackrest": { type: "boolean", default: false },
      "no-verify": { type: "boolean", default: false },
      "restore-pairs": { type: "string", default: "0" },
      "lambda-nice": { type: "string", default: String(LAMBDA_NICE) },
      "random-mb": { type: "string", default: "0" },
      out: { type: "string", default: "bench/results/snapshot-restore.json" },
    },
  });
}

async function main(): Promise<void> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    console.log(USAGE);
    return;
  }
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions();
  } catch (e) {
    console.error(`bench:snapshot-restore: ${(e as Error).message} (--help lists the options)`);
    process.exitCode = 2;
    return;
  }
  const { values } = parsed;

  const scale = Number(values.scale);
  const concurrency = Number(values.concurrency);
  const parallel = Number(values.parallel);
  const blockSize = values["block-size"] === undefined ? undefined : Number(values["block-size"]);
  const processMax = Number(values["pgbr-process-max"]);
  const compressLevel = values["pgbr-compress-level"];
  const repo = values["pgbr-repo"];
  const verify = !values["no-verify"];
  const restorePairs = Number(values["restore-pairs"]);
  const lambdaNice = Number(values["lambda-nice"]);
  const randomMB = Number(values["random-mb"]);
  // Bad values: one line and exit 2, as for an unknown option.
  const bad = (what: string): void => {
    console.error(`bench:snapshot-restore: ${what} (--help lists the options)`);
    process.exitCode = 2;
  };
  if (!Number.isInteger(restorePairs) || restorePairs < 0) return bad(`--restore-pairs must be a whole number, not ${JSON.stringify(values["restore-pairs"])}`);
  if (!Number.isInteger(randomMB) || randomMB < 0) return bad(`--random-mb must be a whole number, not ${JSON.stringify(values["random-mb"])}`);
  if (!Number.isInteger(lambdaNice) || lambdaNice < 0 || lambdaNice > 19) return bad(`--lambda-nice must be a whole number from 0 to 19, not ${JSON.stringify(values["lambda-nice"])}`);
  for (const [name, v, given] of [
    ["--scale", scale, values.scale],
    ["--concurrency", concurrency, values.concurrency],
    ["--parallel", parallel, values.parallel],
    ["--pgbr-process-max", processMax, values["pgbr-process-max"]],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) return bad(`${name} must be a positive integer, not ${JSON.stringify(given)}`);
  }
  if (values.source !== "basebackup" && values.source !== "direct") return bad(`--source must be basebackup or direct, not ${JSON.stringify(values.source)}`);
  const log = (s: string): void => console.error(`[bench] ${s}`);
  const loads: { at: string; loadavg: number[] }[] = [];
  const markLoad = (at: string): void => {
    loads.push({ at, loadavg: loadavg().map((x) => round(x, 2)) });
  };
  markLoad("start");

  const pgbrCheck = values["no-pgbackrest"] ? ({ ok: false, reason: "--no-pgbackrest" } as const) : pgbrAvailable(repo);
  if (!pgbrCheck.ok) log(`pgBackRest skipped: ${pgbrCheck.reason}`);

  const user = osUser();
  const stateDir = mkdtempSync(join(tmpdir(), "walvault-bench-sr-stack-"));
  const work = mkdtempSync(join(tmpdir(), "walvault-bench-sr-"));
  chmodSync(work, 0o755);
  log(`local stack in ${stateDir}, work dir ${work}; its Lambda sandboxes at nice ${lambdaNice}`);
  const stack = await startLocalStack({ stateDir, databases: [{ id: DB_ID, kind: "postgres" }], persistent: false, lambdaNice });
  let pg: ScratchPostgres | undefined;
  let pgbr: PgbrSetup | undefined;
  try {
    pg = await ScratchPostgres.create({
      settings: { max_wal_size: "2GB", autovacuum: "off", archive_mode: "on", archive_command: "/bin/true" },
      env: { WALVAULT_CONFIG: stack.configPath },
    });
    await pg.start();
    log(`pgbench -i -s ${scale}`);
    const tLoad = performance.now();
    await pg.pgbench(["-i", "-s", String(scale), "-q"]);
    if (randomMB > 0) {
      // ~160 bytes a row on disk (four 32-character digests, the row and item headers): N MB of text zstd-1 roughly halves (~2.2x).
      log(`bench_random: ~${randomMB} MB of hex digests`);
      const rows = Math.round((randomMB * 1e6) / 160);
      await pg.psql(
        `create table bench_random as select g as id, md5(g::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) as v from generate_series(1, ${rows}) g`,
      );
    }
    await pg.psql("checkpoint");
    const loadS = (performance.now() - tLoad) / 1000;
    const fingerprint = await pg.psql(FINGERPRINT_SQL);
    const dbBytes = Number(await pg.psql("select pg_database_size('postgres')"));
    const dataDirBytes = treeBytes(pg.dataDir);
    const pgVersion = await pg.psql("show server_version");
    log(`loaded in ${loadS.toFixed(0)} s: database ${mb(dbBytes)} MB, data dir without pg_wal ${mb(dataDirBytes)} MB`);

    // --- walvault ---------------------------------------------------------
    await setArchiveCommand(pg, `'${WALVAULT_BIN}' wal-push %p`);
    await stack.idle();
    await pg.psql("checkpoint");
    spawnSync("sync");
    markLoad("walvault push");
    const source: SnapshotSource = {
      kind: "postgres",
      pgbasebackup: {
        binDir: pg.binDir,
        host: pg.socketDir,
        port: pg.port,
        user: "postgres",
        ...(user ? { asOsUser: user } : {}),
        ...(values.source === "direct" ? { method: "direct" as const } : {}),
      },
    };
    log(`walvault snapshot push (source ${values.source}) ...`);
    let busy0 = machineBusySeconds();
    let stack0 = stackCpu(stack);
    stack.resetStepUsage();
    const push = await runChild({ op: "push", configPath: stack.configPath, databaseId: DB_ID, source, opts: { concurrency, timeoutMs: 30 * 60_000, ...(blockSize === undefined ? {} : { blockSize }) } });
    const pushBusy = machineBusySeconds() - busy0;
    const pushStackCpu = stackCpuSince(stack, stack0);
    if (push.out.op !== "push") throw new Error("unexpected child output");
    const p = push.out.result;
    const pushRow = {
      wallS: round(push.wallS, 2),
      logicalMB: mb(p.totals.logicalBytes),
      mbPerS: round(p.totals.logicalBytes / 1e6 / push.wallS, 1),
      storedMB: round(p.totals.storedBytes / 1e6, 2),
      newMB: round(p.newBytes / 1e6, 1),
      newStoredMB: round(p.totals.newStoredBytes / 1e6, 2),
      manifestMB: round(p.manifestSize / 1e6, 2),
      peakRssMB: Math.round(push.out.maxRssBytes / 1e6),
      toolCpuS: round(push.out.cpuSeconds, 2),
      // The main thread's major GCs; a child built before stop 47 reports none.
      majorGcs: push.out.majorGcs ?? null,
      pgBasebackupCpuS: round(push.out.childCpuSeconds, 2),
      machineCpuS: round(pushBusy, 1),
      stackCpuS: pushStackCpu,
      agent: { pushS: p.seconds.push, manifestS: p.seconds.manifest, waitS: p.seconds.wait, totalS: p.seconds.total, mbPerSPushPhase: p.mbPerSecond },
      // What the wait is made of: each Lambda step that ran during the push (ingest of the snapshot, and of the WAL it waited for).
      steps: Object.fromEntries(
        [...stack.stepUsage].map(([placeholder, u]) => [
          placeholder.replace(/FunctionArn$/, ""),
          { invocations: u.invocations, totalS: round(u.totalMs / 1000, 2), longestS: round(u.maxMs / 1000, 2), peakMB: Math.round(u.maxBytes / 1e6) },
        ]),
      ),
      snapshotId: p.snapshotId,
      files: p.totals.files,
      chunks: p.totals.chunks,
      // What the snapshot left in the vault (its packs and manifest objects; the vault holds this one snapshot): the
      // issue's bound is 64 objects per GB stored.
      vault: await vaultObjects(stack, p.snapshotId),
      postgres: p.postgres,
    };
    log(`push: ${JSON.stringify(pushRow)}`);

    await stack.idle();
    const warmBytes = Math.max(2e9, Math.round(dataDirBytes * 1.25));
    log(`before each restore, untimed: ${mb(warmBytes)} MB written to a scratch file and deleted (warm free pages) after ${SETTLE_S} s, then sync (see the header)`);
    await settleBeforeRestore(work, warmBytes);
    markLoad("walvault restore");
    const wvDir = join(work, "restore-walvault");
    log("walvault restore --snapshot ...");
    busy0 = machineBusySeconds();
    stack0 = stackCpu(stack);
    const rst = await runChild({ op: "restore", configPath: stack.configPath, databaseId: DB_ID, snapshotId: p.snapshotId, toDir: wvDir, parallel });
    const restoreBusy = machineBusySeconds() - busy0;
    const restoreStackCpu = stackCpuSince(stack, stack0);
    if (rst.out.op !== "restore") throw new Error("unexpected child output");
    const r = rst.out.result;
    const restoreRow = {
      wallS: round(rst.wallS, 2),
      bytesMB: mb(r.bytes),
      mbPerS: round(r.bytes / 1e6 / rst.wallS, 1),
      downloadedMB: round(r.downloadedBytes / 1e6, 2),
      // Written with direct I/O (agent/direct-runs.ts); a child built before it reports none.
      directMB: round((r.directBytes ?? 0) / 1e6, 1),
      chunksFetched: r.chunksFetched,
      files: r.files,
      peakRssMB: Math.round(rst.out.maxRssBytes / 1e6),
      toolCpuS: round(rst.out.cpuSeconds, 2),
      majorGcs: rst.out.majorGcs ?? null,
      machineCpuS: round(restoreBusy, 1),
      stackCpuS: restoreStackCpu,
      executorS: round(r.seconds, 2),
      executorMbPerS: round(r.mbPerSecond, 1),
      milestonesS: rst.out.milestones,
      restoredTreeMB: mb(treeBytes(wvDir)),
      warnings: r.warnings,
    };
    log(`restore: ${JSON.stringify(restoreRow)}`);
    // WALVAULT_BENCH_RESTORE_AB="FLAGS|FLAGS...": the restore again, 3 rounds of each set of Node flags in turn (see the header).
    let restoreAb: { round: number; set: string; wallS: number; firstByteS?: number; cpuS: number; peakRssMB: number; majorGcs?: number }[] | undefined;
    const ab = process.env["WALVAULT_BENCH_RESTORE_AB"];
    if (ab !== undefined) {
      restoreAb = [];
      if (!verify) rmSync(wvDir, { recursive: true, force: true });
      const abDir = join(work, "restore-ab");
      const sets = ab.split("|");
      const rounds = Number(process.env["WALVAULT_BENCH_AB_ROUNDS"] ?? 3);
      for (let i = 0; i < rounds; i++) {
        // Each round starts with the next set: a restore runs slower after another (the disk's writeback), so no set is always first.
        for (const set of [...sets.slice(i % sets.length), ...sets.slice(0, i % sets.length)]) {
          const words = set.split(" ").filter((f) => f !== "");
          // NAME=VALUE words are the child's environment for this set (WALVAULT_BENCH_CHILD=FILE: another build's child), the rest Node flags.
          const env = words.filter((w) => /^[A-Z][A-Z0-9_]*=/.test(w));
          const nodeFlags = words.filter((w) => !env.includes(w));
          await settleBeforeRestore(work, warmBytes);
          const x = await runChild({ op: "restore", configPath: stack.configPath, databaseId: DB_ID, snapshotId: p.snapshotId, toDir: abDir, parallel, ...(nodeFlags.length > 0 ? { nodeFlags } : {}) }, Object.fromEntries(env.map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)])));
          // A child of a build before milestones has none.
          const firstByteS = x.out.op === "restore" ? x.out.milestones?.firstByteS : undefined;
          log(`restore A/B round ${i + 1} [${words.join(" ")}]: ${round(x.wallS, 2)} s${firstByteS === undefined ? "" : ` (first byte at ${firstByteS} s)`}, ${round(x.out.cpuSeconds, 2)} CPU-s, peak RSS ${Math.round(x.out.maxRssBytes / 1e6)} MB${x.out.majorGcs === undefined ? "" : `, ${x.out.majorGcs} major GCs`}`);
          restoreAb.push({ round: i + 1, set, wallS: round(x.wallS, 2), ...(firstByteS === undefined ? {} : { firstByteS }), cpuS: round(x.out.cpuSeconds, 2), peakRssMB: Math.round(x.out.maxRssBytes / 1e6), ...(x.out.majorGcs === undefined ? {} : { majorGcs: x.out.majorGcs }) });
          rmSync(abDir, { recursive: true, force: true });
        }
      }
      for (const set of sets) log(`restore A/B median [${set}]: ${median(restoreAb.filter((r) => r.set === set).map((r) => r.wallS)).toFixed(2)} s`);
    }
    let wvVerified: Verified | undefined;
    if (verify) {
      log("starting the walvault-restored cluster (wal-fetch, recovery to the consistent point) ...");
      wvVerified = await verifyRestored(wvDir, { WALVAULT_CONFIG: stack.configPath }, fingerprint);
      log(`verified: ${JSON.stringify(wvVerified)}`);
      if (!wvVerified.matches) throw new Error(`walvault restore does not match the source: ${wvVerified.fingerprint} vs ${fingerprint}`);
    } else {
      rmSync(wvDir, { recursive: true, force: true });
    }

    // --- pgBackRest -------------------------------------------------------
    let pgbrResult: Record<string, unknown> | null = null;
    const restorePairRows: { round: number; first: string; walvaultS: number; pgbackrestS: number; ratio: number }[] = [];
    let ratios: Record<string, number> | null = null;
    if (pgbrCheck.ok) {
      pgbr = setupPgbr(pg, work, repo === "posix" ? "posix" : "s3", pgbrCheck.scripts, processMax, compressLevel, user);
      await pgbackrest(pg, pgbr, ["stanza-create"]);
      await setArchiveCommand(pg, `pgbackrest --config=${pgbr.conf} --stanza=${STANZA} archive-push %p`);
      await pg.psql("checkpoint");
      spawnSync("sync");
      markLoad("pgbackrest backup");
      log(`pgbackrest backup --type=full (zst${compressLevel === undefined ? "" : ` level ${compressLevel}`}, process-max ${processMax}, ${pgbr.repo} repo) ...`);
      busy0 = machineBusySeconds();
      let s30 = anchorS3rverCpu();
      const b = await pgbackrest(pg, pgbr, ["--type=full", "backup"]);
      const backupBusy = machineBusySeconds() - busy0;
      const backupS3Cpu = pgbr.repo === "s3" ? round(anchorS3rverCpu() - s30, 1) : 0;
      const info = JSON.parse((await pgbackrest(pg, pgbr, ["info", "--output=json"])).stdout) as { backup: PgbrInfoBackup[] }[];
      const last = info[0]?.backup.at(-1);
      if (!last) throw new Error("pgbackrest info lists no backup");
      const backupRow = {
        wallS: round(b.wallS, 2),
        logicalMB: mb(last.info.size),
        mbPerS: round(last.info.size / 1e6 / b.wallS, 1),
        storedMB: round(last.info.repository.delta / 1e6, 2),
        peakRssMB: b.maxRssBytes === null ? null : Math.round(b.maxRssBytes / 1e6),
        toolCpuS: b.cpuSeconds,
        machineCpuS: round(backupBusy, 1),
        s3rverCpuS: backupS3Cpu,
        label: last.label,
      };
      log(`pgbackrest backup: ${JSON.stringify(backupRow)}`);

      const pbDir = join(work, "restore-pgbackrest");
      mkdirSync(pbDir, { mode: 0o700 });
      chownTree(pbDir, user);
      await settleBeforeRestore(work, warmBytes);
      markLoad("pgbackrest restore");
      log("pgbackrest restore --type=immediate ...");
      busy0 = machineBusySeconds();
      s30 = anchorS3rverCpu();
      const rr = await pgbackrest(pg, pgbr, [`--pg1-path=${pbDir}`, `--set=${last.label}`, "--type=immediate", "--target-action=promote", "restore"]);
      const pbRestoreBusy = machineBusySeconds() - busy0;
      const restoreS3Cpu = pgbr.repo === "s3" ? round(anchorS3rverCpu() - s30, 1) : 0;
      const pbRestoreRow = {
        wallS: round(rr.wallS, 2),
        bytesMB: mb(last.info.size),
        mbPerS: round(last.info.size / 1e6 / rr.wallS, 1),
        peakRssMB: rr.maxRssBytes === null ? null : Math.round(rr.maxRssBytes / 1e6),
        toolCpuS: rr.cpuSeconds,
        machineCpuS: round(pbRestoreBusy, 1),
        s3rverCpuS: restoreS3Cpu,
        restoredTreeMB: mb(treeBytes(pbDir)),
      };
      log(`pgbackrest restore: ${JSON.stringify(pbRestoreRow)}`);
      let pbVerified: Verified | undefined;
      if (verify) {
        log("starting the pgBackRest-restored cluster (archive-get, recovery to the consistent point) ...");
        pbVerified = await verifyRestored(pbDir, {}, fingerprint);
        log(`verified: ${JSON.stringify(pbVerified)}`);
        if (!pbVerified.matches) throw new Error(`pgBackRest restore does not match the source: ${pbVerified.fingerprint} vs ${fingerprint}`);
      } else {
        rmSync(pbDir, { recursive: true, force: true });
      }
      // --restore-pairs N: N more restores of each, alternating which goes first, each after the same warm-up (see the header).
      const pgNow = pg;
      const pgbrNow = pgbr;
      for (let i = 0; i < restorePairs; i++) {
        const one = async (tool: "walvault" | "pgbackrest"): Promise<number> => {
          const dir = join(work, `restore-pair-${tool}`);
          await settleBeforeRestore(work, warmBytes);
          let wallS: number;
          if (tool === "walvault") {
            wallS = (await runChild({ op: "restore", configPath: stack.configPath, databaseId: DB_ID, snapshotId: p.snapshotId, toDir: dir, parallel })).wallS;
          } else {
            mkdirSync(dir, { mode: 0o700 });
            chownTree(dir, user);
            wallS = (await pgbackrest(pgNow, pgbrNow, [`--pg1-path=${dir}`, `--set=${last.label}`, "--type=immediate", "--target-action=promote", "restore"])).wallS;
          }
          rmSync(dir, { recursive: true, force: true });
          return round(wallS, 2);
        };
        const order = i % 2 === 0 ? (["pgbackrest", "walvault"] as const) : (["walvault", "pgbackrest"] as const);
        const got: Record<string, number> = {};
        for (const tool of order) got[tool] = await one(tool);
        const pair = { round: i + 1, first: order[0], walvaultS: got["walvault"]!, pgbackrestS: got["pgbackrest"]!, ratio: round(got["pgbackrest"]! / got["walvault"]!, 2) };
        log(`restore pair ${pair.round} (${pair.first} first): walvault ${pair.walvaultS} s, pgBackRest ${pair.pgbackrestS} s, ratio ${pair.ratio}x`);
        restorePairRows.push(pair);
      }
      await setArchiveCommand(pg, "/bin/true");
      const version = spawnSync("pgbackrest", ["version"], { encoding: "utf8" }).stdout.trim();
      pgbrResult = {
        version,
        repo: pgbr.repo === "s3" ? "s3 (anchors' s3rver over TLS, https://localhost:4570)" : "posix (local disk)",
        compress: `zst, level ${compressLevel ?? "default (3 in 2.45)"}`,
        processMax,
        backup: backupRow,
        restore: pbRestoreRow,
        verified: pbVerified ?? null,
      };
      ratios = {
        backupMbPerS: round(pushRow.mbPerS / backupRow.mbPerS, 2),
        restoreMbPerS: round(restoreRow.mbPerS / pbRestoreRow.mbPerS, 2),
        // The agent's own phase (read, chunk, compress, upload), without the wait for ingest to record the snapshot.
        backupPushPhaseMbPerS: round(pushRow.agent.mbPerSPushPhase / backupRow.mbPerS, 2),
        // Logical MB per CPU-second of the tool's own processes (walvault: agent + pg_basebackup; no stack, no s3rver).
        ...(backupRow.toolCpuS ? { backupMbPerToolCpuS: round(pushRow.logicalMB / (pushRow.toolCpuS + pushRow.pgBasebackupCpuS) / (backupRow.logicalMB / backupRow.toolCpuS), 2) } : {}),
        ...(pbRestoreRow.toolCpuS ? { restoreMbPerToolCpuS: round(restoreRow.bytesMB / restoreRow.toolCpuS / (pbRestoreRow.bytesMB / pbRestoreRow.toolCpuS), 2) } : {}),
        storedBytes: round(pushRow.storedMB / backupRow.storedMB, 2),
        ...(backupRow.peakRssMB ? { backupPeakRss: round(pushRow.peakRssMB / backupRow.peakRssMB, 1) } : {}),
        ...(pbRestoreRow.peakRssMB ? { restorePeakRss: round(restoreRow.peakRssMB / pbRestoreRow.peakRssMB, 1) } : {}),
      };
    }
    markLoad("end");

    // --- report -------------------------------------------------------------
    const rows: Record<string, unknown>[] = [
      { step: "walvault snapshot push", wallS: pushRow.wallS, MB: pushRow.logicalMB, mbPerS: pushRow.mbPerS, storedMB: pushRow.storedMB, peakRssMB: pushRow.peakRssMB, toolCpuS: pushRow.toolCpuS, machineCpuS: pushRow.machineCpuS },
      { step: "walvault restore", wallS: restoreRow.wallS, MB: restoreRow.bytesMB, mbPerS: restoreRow.mbPerS, storedMB: null, peakRssMB: restoreRow.peakRssMB, toolCpuS: restoreRow.toolCpuS, machineCpuS: restoreRow.machineCpuS },
    ];
    if (pgbrResult) {
      const b = pgbrResult["backup"] as { wallS: number; logicalMB: number; mbPerS: number; storedMB: number; peakRssMB: number | null; toolCpuS: number | null; machineCpuS: number };
      const rr = pgbrResult["restore"] as { wallS: number; bytesMB: number; mbPerS: number; peakRssMB: number | null; toolCpuS: number | null; machineCpuS: number };
      rows.push(
        { step: `pgbackrest backup (zst, pm${processMax})`, wallS: b.wallS, MB: b.logicalMB, mbPerS: b.mbPerS, storedMB: b.storedMB, peakRssMB: b.peakRssMB, toolCpuS: b.toolCpuS, machineCpuS: b.machineCpuS },
        { step: `pgbackrest restore (pm${processMax})`, wallS: rr.wallS, MB: rr.bytesMB, mbPerS: rr.mbPerS, storedMB: null, peakRssMB: rr.peakRssMB, toolCpuS: rr.toolCpuS, machineCpuS: rr.machineCpuS },
      );
    }
    const out = {
      when: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memGB: round(totalmem() / 2 ** 30, 1), node: process.version, loadavg: loads },
      cluster: { postgres: pgVersion, scale, ...(randomMB > 0 ? { randomMB } : {}), loadS: round(loadS, 1), databaseMB: mb(dbBytes), dataDirWithoutWalMB: mb(dataDirBytes), fingerprint },
      walvault: { source: values.source, concurrency, parallel, blockSize: blockSize ?? DEFAULT_BLOCK_SIZE, lambdaNice, push: pushRow, restore: restoreRow, verified: wvVerified ?? null },
      pgbackrest: pgbrResult ?? { skipped: pgbrCheck.ok ? "not run" : pgbrCheck.reason },
      ratios,
      table: rows,
      ...(restoreAb === undefined ? {} : { restoreAb }),
      ...(restorePairRows.length === 0 ? {} : { restorePairs: { pairs: restorePairRows, medianRatio: round(median(restorePairRows.map((r) => r.ratio)), 2) } }),
    };
    mkdirSync(join(values.out, ".."), { recursive: true });
    writeFileSync(values.out, JSON.stringify(out, null, 2) + "\n");
    console.table(rows);
    console.log(
      `walvault push: ${pushRow.agent.pushS.toFixed(1)} s reading + chunking + uploading (${pushRow.agent.mbPerSPushPhase.toFixed(1)} MB/s), ` +
        `${pushRow.agent.manifestS.toFixed(1)} s manifest, ${pushRow.agent.waitS.toFixed(1)} s waiting for ingest to record the snapshot (local stack, same host); ` +
        `${pushRow.newMB} MB new, ${pushRow.storedMB} MB stored + ${pushRow.manifestMB} MB manifest; in the vault ${pushRow.vault.packs} packs + ${pushRow.vault.manifestObjects} manifest objects, ${pushRow.vault.objectsPerGbStored} objects per GB stored (issue 11: <= 64)`,
    );
    if (wvVerified) console.log(`walvault restore: started, recovered and promoted in ${wvVerified.startRecoverS} s; rows match the source: ${wvVerified.matches}`);
    const pv = pgbrResult?.["verified"] as Verified | null | undefined;
    if (pv) console.log(`pgBackRest restore: started, recovered and promoted in ${pv.startRecoverS} s; rows match the source: ${pv.matches}`);
    if (ratios) {
      console.log(
        `ratios walvault / pgBackRest (same run; >1 = walvault faster): backup MB/s ${ratios["backupMbPerS"]}x ` +
          `(agent push phase alone, without the wait for ingest: ${ratios["backupPushPhaseMbPerS"]}x), restore MB/s ${ratios["restoreMbPerS"]}x; ` +
          `MB per tool CPU-second: backup ${ratios["backupMbPerToolCpuS"] ?? "-"}x, restore ${ratios["restoreMbPerToolCpuS"] ?? "-"}x; ` +
          `stored bytes ${ratios["storedBytes"]}x (>1 = walvault stores more)`,
      );
    }
    if (restorePairRows.length > 0) {
      console.log(`restore pairs (same warm-up and settling, alternating order): ratios ${restorePairRows.map((r) => `${r.ratio}x`).join(", ")}; median ${round(median(restorePairRows.map((r) => r.ratio)), 2)}x`);
    }
    console.log(`loadavg (1/5/15 min) at each step: ${loads.map((l) => `${l.at} ${l.loadavg.join("/")}`).join("; ")}`);
    log(`written ${values.out}`);
  } finally {
    await pg?.destroy();
    await stack.idle();
    await stack.stop();
    if (pgbr) {
      rmSync(pgbr.repoDiskPath, { recursive: true, force: true });
      if (pgbr.repo === "s3") {
        const parent = join(pgbr.repoDiskPath, "..");
        if (existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
      }
      if (pgbr.startedS3 && pgbr.scripts) spawnSync("bash", ["-c", '. "$1/lib.sh"; s3_stop', "s3", pgbr.scripts], { stdio: "ignore" });
    }
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
