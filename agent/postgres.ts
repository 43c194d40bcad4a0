/**
 * Scratch PostgreSQL clusters: the agent's L4 verification (agent/verify.ts)
 * starts a restored copy in one; end-to-end tests, the `npm start` demo and
 * benchmarks create them. A throwaway data directory, a private Unix socket, no TCP, and
 * helpers to run SQL, pgbench and pg_basebackup against it.
 *
 * PostgreSQL refuses to run as root. When this process is root (CI
 * containers), every PostgreSQL binary (server and clients) runs as the
 * `postgres` OS user (or WALVAULT_PG_OS_USER) through child_process `uid`/`gid`,
 * and the directories it needs are chowned to that user. Otherwise the
 * binaries run as the current user.
 *
 * Permissions checked on the reference container (root, postgres uid 101):
 * `/`, `/work`, `/work/main`, `bin/`, `dist/`, `node_modules/` are 0755 and
 * root-owned, so the postgres user can traverse and read them and run
 * `bin/walvault` (on node_modules/node, Node 22) from an archive_command;
 * os.tmpdir() is /tmp (1777). `create()` checks that the postgres user can
 * reach the cluster directory and fails with a clear message when it cannot
 * (e.g. a baseDir under /root, which is 0700).
 *
 * Environment: PG* variables of this process are removed (a stray PGDATA or
 * PGPORT would point pg_ctl elsewhere); `env` given to create()/fromDataDir()
 * reaches initdb, pg_ctl and therefore the postmaster and its archive_command
 * / restore_command children. Client commands get PGHOST/PGPORT/PGUSER/
 * PGDATABASE pointing at the cluster, so any libpq tool works without flags.
 *
 * Binaries are looked up in `binDir`, WALVAULT_PG_BINDIR, the newest
 * /usr/lib/postgresql/<v>/bin (Debian/Ubuntu), /usr/pgsql-<v>/bin (RHEL),
 * Homebrew prefixes, then `pg_config --bindir` and PATH.
 */
import { deadlineIn } from "../core/deadline.js";
import { spawn, spawnSync, type SpawnOptions } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, readdirSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not read the port of a listening socket"))));
    });
  });
}

export type SettingValue = string | number | boolean;
export type Settings = Record<string, SettingValue>;
export type StopMode = "smart" | "fast" | "immediate";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Extra environment, on top of the cluster's environment and libpq variables. */
  env?: Record<string, string>;
  /** Written to the child's stdin (stdin is /dev/null otherwise). */
  input?: string | Uint8Array;
  /** Working directory (default: the cluster's scratch directory, always accessible). */
  cwd?: string;
  /** Kill the child (SIGKILL) after this many ms and fail. */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface CommonOptions {
  /** Directory holding initdb, pg_ctl, postgres, psql... (auto-detected otherwise). */
  binDir?: string;
  /** Port number (also names the socket file). Default: a free TCP port. */
  port?: number;
  /** postgresql.conf settings, written to postgresql.auto.conf (they win over postgresql.conf). */
  settings?: Settings;
  /** Environment for the server (and so archive_command/restore_command) and every command run. */
  env?: Record<string, string>;
  /** OS user to run as when this process is root (default WALVAULT_PG_OS_USER or "postgres"). */
  osUser?: string;
  /** pg_ctl start -t, in seconds (default 60). */
  startTimeoutSec?: number;
}

export interface CreateOptions extends CommonOptions {
  /** Parent directory of the cluster's temp directory (default os.tmpdir()). */
  baseDir?: string;
  /** Extra initdb arguments (e.g. ["--data-checksums"] or ["--wal-segsize=1"]). */
  initdbArgs?: string[];
}

export interface FromDataDirOptions extends CommonOptions {
  /** Write recovery.signal or standby.signal into the data directory. */
  signal?: "recovery" | "standby";
  /** destroy() also removes the data directory (default false: it belongs to the caller). */
  ownDataDir?: boolean;
}

export interface StopOptions {
  mode?: StopMode;
  timeoutSec?: number;
}

/** A PostgreSQL binary failed, or the server would not start/stop. */
export class PostgresHarnessError extends Error {
  constructor(
    message: string,
    readonly result?: RunResult,
  ) {
    super(message);
    this.name = "PostgresHarnessError";
  }
}

interface RunAs {
  uid: number;
  gid: number;
  user: string;
}

const DEFAULT_SETTINGS: Settings = {
  listen_addresses: "",
  wal_level: "replica",
  archive_mode: "off",
  fsync: "off",
  max_wal_size: "512MB",
  max_wal_senders: 10,
  max_connections: 50,
  shared_buffers: "64MB",
};

let cachedBinDir: string | undefined;

/** Finds the directory with the PostgreSQL server binaries; throws a clear error when there is none. */
export function findPgBinDir(explicit?: string): string {
  const has = (dir: string): boolean => existsSync(path.join(dir, "pg_ctl")) && existsSync(path.join(dir, "initdb"));
  if (explicit) {
    if (!has(explicit)) throw new PostgresHarnessError(`no pg_ctl/initdb in ${explicit}`);
    return explicit;
  }
  const fromEnv = process.env.WALVAULT_PG_BINDIR;
  if (fromEnv) {
    if (!has(fromEnv)) throw new PostgresHarnessError(`WALVAULT_PG_BINDIR=${fromEnv} has no pg_ctl/initdb`);
    return fromEnv;
  }
  if (cachedBinDir) return cachedBinDir;
  const candidates: string[] = [];
  const versioned = (parent: string, prefix: string, suffix: string): void => {
    let names: string[] = [];
    try {
      names = readdirSync(parent).filter((n) => n.startsWith(prefix));
    } catch {
      return;
    }
    const version = (n: string): number => Number.parseFloat(n.slice(prefix.length).replace(/^@/, "")) || 0;
    names.sort((a, b) => version(b) - version(a));
    for (const n of names) candidates.push(path.join(parent, n, suffix));
  };
  versioned("/usr/lib/postgresql", "", "bin");
  versioned("/usr", "pgsql-", "bin");
  versioned("/opt/homebrew/opt", "postgresql", "bin");
  versioned("/usr/local/opt", "postgresql", "bin");
  for (const dir of candidates) {
    if (has(dir)) return (cachedBinDir = dir);
  }
  const pgConfig = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" });
  if (pgConfig.status === 0 && has(pgConfig.stdout.trim())) return (cachedBinDir = pgConfig.stdout.trim());
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && has(dir)) return (cachedBinDir = dir);
  }
  throw new PostgresHarnessError(
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL or set WALVAULT_PG_BINDIR",
  );
}

/** When this process is root, the uid/gid to run PostgreSQL as; undefined otherwise. */
function resolveRunAs(osUser?: string): RunAs | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const user = osUser ?? process.env.WALVAULT_PG_OS_USER ?? "postgres";
  const uid = spawnSync("id", ["-u", user], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", user], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) {
    throw new PostgresHarnessError(
      `running as root, and PostgreSQL refuses root: OS user '${user}' does not exist (create it, or set WALVAULT_PG_OS_USER)`,
    );
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()), user };
}

/** This process's environment without libpq/PG variables, plus `extra`. */
function cleanEnv(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("PG")) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Quotes a value for postgresql.conf: single quotes, with ' and \ escaped. */
export function quoteConfValue(value: SettingValue): string {
  return `'${String(value).replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** Replaces (or appends) `settings` in a postgresql.conf-format text; other lines are kept. */
export function mergeConf(text: string, settings: Settings): string {
  const keys = new Set(Object.keys(settings).map((k) => k.toLowerCase()));
  const kept = text
    .split("\n")
    .filter((line) => {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=|\s)/.exec(line);
      return !(m && keys.has(m[1]!.toLowerCase()));
    })
    .join("\n")
    .replace(/\n*$/, "\n");
  const added = Object.entries(settings)
    .map(([k, v]) => `${k} = ${quoteConfValue(v)}`)
    .join("\n");
  return `${kept === "\n" ? "" : kept}${added}\n`;
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Clusters started and not stopped, stopped (immediate) if this process exits without doing it. */
const running = new Set<ScratchPostgres>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pg of running) pg.stopSyncOnExit();
  });
}

export class ScratchPostgres {
  /** Scratch directory: socket, log file, HOME, and (for create()) the data directory. */
  readonly baseDir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly logFile: string;
  readonly binDir: string;
  /** Environment of every command and of the server (PG* variables removed, `env` added). */
  readonly env: Record<string, string>;
  private readonly runAs: RunAs | undefined;
  private readonly startTimeoutSec: number;
  private readonly removeDataDir: boolean;
  private started = false;

  private constructor(init: {
    baseDir: string;
    dataDir: string;
    port: number;
    binDir: string;
    env: Record<string, string> | undefined;
    runAs: RunAs | undefined;
    startTimeoutSec: number | undefined;
    removeDataDir: boolean;
  }) {
    this.baseDir = init.baseDir;
    this.dataDir = init.dataDir;
    this.socketDir = init.baseDir;
    this.port = init.port;
    this.logFile = path.join(init.baseDir, "postgres.log");
    this.binDir = init.binDir;
    this.runAs = init.runAs;
    this.startTimeoutSec = init.startTimeoutSec ?? 60;
    this.removeDataDir = init.removeDataDir;
    const home: Record<string, string> = init.runAs ? { HOME: init.baseDir } : {};
    this.env = cleanEnv({
      ...home,
      PATH: `${init.binDir}${path.delimiter}${process.env.PATH ?? "/usr/bin:/bin"}`,
      ...init.env,
    });
  }

  /** initdb a new cluster in a fresh temp directory and configure it; not started. */
  static async create(options: CreateOptions = {}): Promise<ScratchPostgres> {
    const binDir = findPgBinDir(options.binDir);
    const runAs = resolveRunAs(options.osUser);
    const baseDir = await makeScratchDir(options.baseDir ?? os.tmpdir(), runAs);
    const pg = new ScratchPostgres({
      baseDir,
      dataDir: path.join(baseDir, "data"),
      port: options.port ?? (await freePort()),
      binDir,
      env: options.env,
      runAs,
      startTimeoutSec: options.startTimeoutSec,
      removeDataDir: true,
    });
    try {
      await pg.assertAccessible(baseDir);
      await pg.run("initdb", [
        "-D",
        pg.dataDir,
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
        ...(options.initdbArgs ?? []),
      ]);
      const settings: Settings = { ...DEFAULT_SETTINGS, ...options.settings };
      const archiving = options.settings?.archive_command ?? options.settings?.archive_library;
      if (options.settings?.archive_mode === undefined && archiving) settings.archive_mode = "on";
      await pg.setSettings({ ...settings, ...pg.connectionSettings() });
    } catch (err) {
      await fs.rm(baseDir, { recursive: true, force: true });
      throw err;
    }
    return pg;
  }

  /**
   * Adopts an existing data directory (e.g. a restored base backup): makes it
   * owned by the PostgreSQL OS user with mode 0700 (files u+rw), and points
   * port/socket at a fresh scratch directory. Not started.
   */
  static async fromDataDir(dataDir: string, options: FromDataDirOptions = {}): Promise<ScratchPostgres> {
    const binDir = findPgBinDir(options.binDir);
    const runAs = resolveRunAs(options.osUser);
    const abs = path.resolve(dataDir);
    if (!existsSync(path.join(abs, "PG_VERSION"))) {
      throw new PostgresHarnessError(`${abs} is not a PostgreSQL data directory (no PG_VERSION)`);
    }
    const baseDir = await makeScratchDir(os.tmpdir(), runAs);
    const pg = new ScratchPostgres({
      baseDir,
      dataDir: abs,
      port: options.port ?? (await freePort()),
      binDir,
      env: options.env,
      runAs,
      startTimeoutSec: options.startTimeoutSec,
      removeDataDir: options.ownDataDir ?? false,
    });
    try {
      await fixOwnership(abs, runAs);
      await fs.chmod(abs, 0o700);
      await pg.assertAccessible(abs);
      if (options.signal) {
        const signalFile = path.join(abs, `${options.signal}.signal`);
        await fs.writeFile(signalFile, "");
        if (runAs) await fs.chown(signalFile, runAs.uid, runAs.gid);
      }
      await pg.setSettings({ ...options.settings, ...pg.connectionSettings() });
    } catch (err) {
      await fs.rm(baseDir, { recursive: true, force: true });
      throw err;
    }
    return pg;
  }

  /** The settings that tie the server to this harness's socket and port. */
  private connectionSettings(): Settings {
    return { unix_socket_directories: this.socketDir, port: this.port, listen_addresses: "" };
  }

  /** Writes settings into postgresql.auto.conf (replacing earlier values); takes effect on start/reload/restart. */
  async setSettings(settings: Settings): Promise<void> {
    const file = path.join(this.dataDir, "postgresql.auto.conf");
    const before = await fs.readFile(file, "utf8").catch(() => "");
    await fs.writeFile(file, mergeConf(before, settings));
    if (this.runAs) await fs.chown(file, this.runAs.uid, this.runAs.gid);
  }

  /** libpq environment pointing at this cluster. */
  get clientEnv(): Record<string, string> {
    return { PGHOST: this.socketDir, PGPORT: String(this.port), PGUSER: "postgres", PGDATABASE: "postgres" };
  }

  /**
   * Runs a PostgreSQL binary (name in binDir, or a path) as the right OS user,
   * with the cluster environment, libpq variables and `options.env`. Throws
   * PostgresHarnessError with the stderr on a non-zero exit unless allowFailure.
   */
  run(binary: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const file = binary.includes("/") ? binary : path.join(this.binDir, binary);
    const spawnOptions: SpawnOptions = {
      cwd: options.cwd ?? this.baseDir,
      env: { ...this.env, ...this.clientEnv, ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      ...(this.runAs ? { uid: this.runAs.uid, gid: this.runAs.gid } : {}),
    };
    const shown = `${path.basename(file)} ${args.join(" ")}`.slice(0, 300);
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, spawnOptions);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              child.kill("SIGKILL");
            }, options.timeoutMs);
      child.stdout?.on("data", (b: Buffer) => out.push(b));
      child.stderr?.on("data", (b: Buffer) => err.push(b));
      child.on("error", (e) => {
        if (timer) clearTimeout(timer);
        reject(new PostgresHarnessError(`${shown}: ${e.message}`));
      });
      child.on("close", (code, signal) => {
        if (timer) clearTimeout(timer);
        const result: RunResult = {
          code: code ?? 128,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        };
        if (timedOut) {
          reject(new PostgresHarnessError(`${shown}: timed out after ${options.timeoutMs} ms\n${tail(result.stderr, 20)}`, result));
        } else if (result.code !== 0 && !options.allowFailure) {
          const why = signal ? `killed by ${signal}` : `exit ${result.code}`;
          const detail = tail(result.stderr || result.stdout, 20);
          reject(new PostgresHarnessError(`${shown}: ${why}${detail ? `\n${detail}` : ""}`, result));
        } else {
          resolve(result);
        }
      });
      if (options.input !== undefined) {
        child.stdin?.on("error", () => undefined); // the child may exit before reading everything
        child.stdin?.end(options.input);
      }
    });
  }

  /** pg_ctl start -w; on failure the error includes the end of the server log. */
  async start(): Promise<void> {
    installExitHook();
    running.add(this);
    const result = await this.run(
      "pg_ctl",
      ["-D", this.dataDir, "-l", this.logFile, "-w", "-t", String(this.startTimeoutSec), "start"],
      { allowFailure: true },
    );
    if (result.code !== 0) {
      const status = await this.run("pg_ctl", ["-D", this.dataDir, "status"], { allowFailure: true });
      if (status.code !== 0) running.delete(this);
      throw new PostgresHarnessError(
        `PostgreSQL in ${this.dataDir} did not start (pg_ctl exit ${result.code}): ${tail(result.stderr || result.stdout, 5)}\n--- ${this.logFile} ---\n${await this.logTail(30)}`,
        result,
      );
    }
    this.started = true;
  }

  /** Whether a postmaster is running on this data directory (pg_ctl status). */
  async isRunning(): Promise<boolean> {
    const status = await this.run("pg_ctl", ["-D", this.dataDir, "status"], { allowFailure: true });
    return status.code === 0;
  }

  /** pg_ctl stop -w (default mode fast); a no-op when the server is not running. */
  async stop(options: StopOptions = {}): Promise<void> {
    const mode = options.mode ?? "fast";
    if (!(await this.isRunning())) {
      running.delete(this);
      this.started = false;
      return;
    }
    const result = await this.run(
      "pg_ctl",
      ["-D", this.dataDir, "-m", mode, "-w", "-t", String(options.timeoutSec ?? 60), "stop"],
      { allowFailure: true },
    );
    if (result.code !== 0 && (await this.isRunning())) {
      throw new PostgresHarnessError(
        `PostgreSQL in ${this.dataDir} did not stop (${mode}): ${tail(result.stderr, 5)}\n--- ${this.logFile} ---\n${await this.logTail(20)}`,
        result,
      );
    }
    running.delete(this);
    this.started = false;
  }

  /** stop + start (settings that need a restart). */
  async restart(options: StopOptions = {}): Promise<void> {
    await this.stop(options);
    await this.start();
  }

  /** pg_ctl reload (settings with sighup context). */
  async reload(): Promise<void> {
    await this.run("pg_ctl", ["-D", this.dataDir, "reload"]);
  }

  /** Polls pg_isready until the server accepts connections. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = deadlineIn(timeoutMs);
    for (;;) {
      const r = await this.run("pg_isready", ["-q", "-t", "2"], { allowFailure: true });
      if (r.code === 0) return;
      if (deadline.passed()) {
        throw new PostgresHarnessError(
          `PostgreSQL in ${this.dataDir} not ready after ${timeoutMs} ms\n--- ${this.logFile} ---\n${await this.logTail(20)}`,
        );
      }
      await sleep(200);
    }
  }

  /**
   * Waits until recovery has ended (pg_is_in_recovery() is false), e.g. after
   * starting a restored backup with a recovery target and
   * recovery_target_action=promote. Fails early, with the log, if the server stops.
   */
  async waitForRecoveryEnd(timeoutMs = 120_000): Promise<void> {
    const deadline = deadlineIn(timeoutMs);
    for (;;) {
      const r = await this.run("psql", ["-X", "-A", "-t", "-q", "-c", "select pg_is_in_recovery()"], {
        allowFailure: true,
      });
      if (r.code === 0 && r.stdout.trim() === "f") return;
      if (r.code !== 0 && !(await this.isRunning())) {
        throw new PostgresHarnessError(
          `PostgreSQL in ${this.dataDir} stopped during recovery\n--- ${this.logFile} ---\n${await this.logTail(30)}`,
        );
      }
      if (deadline.passed()) {
        throw new PostgresHarnessError(
          `PostgreSQL in ${this.dataDir} still in recovery after ${timeoutMs} ms\n--- ${this.logFile} ---\n${await this.logTail(20)}`,
        );
      }
      await sleep(250);
    }
  }

  /**
   * Runs SQL with psql -X -A -t -q -v ON_ERROR_STOP=1 (script on stdin, so
   * several statements run one after another and each result is printed).
   * Returns trimmed stdout; throws with psql's stderr on the first error.
   */
  async psql(sql: string, db = "postgres", options: RunOptions = {}): Promise<string> {
    const r = await this.run("psql", ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", "-"], {
      ...options,
      input: sql,
    });
    return r.stdout.trim();
  }

  /** Runs pgbench against this cluster (database postgres unless args name one). */
  pgbench(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.run("pgbench", args, options);
  }

  /**
   * pg_basebackup -D targetDir (created 0700 and owned by the PostgreSQL user;
   * must be empty). Adds --checkpoint=fast and --no-sync before `args`, so
   * args can override the checkpoint mode.
   */
  async basebackup(targetDir: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
    const target = path.resolve(targetDir);
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
    if (this.runAs) await fs.chown(target, this.runAs.uid, this.runAs.gid);
    await this.assertAccessible(target);
    return this.run("pg_basebackup", ["-D", target, "--checkpoint=fast", "--no-sync", ...args], options);
  }

  /** The last `lines` lines of the server log ("" when there is none yet). */
  async logTail(lines = 40): Promise<string> {
    const text = await fs.readFile(this.logFile, "utf8").catch(() => "");
    return tail(text, lines);
  }

  /** Stops the server (fast, then immediate if that fails) and removes the scratch directory (and an owned data dir). */
  async destroy(): Promise<void> {
    try {
      await this.stop({ mode: "fast", timeoutSec: 30 });
    } catch {
      await this.stop({ mode: "immediate", timeoutSec: 30 }).catch(() => undefined);
    }
    await fs.rm(this.baseDir, { recursive: true, force: true, maxRetries: 3 });
    if (this.removeDataDir) await fs.rm(this.dataDir, { recursive: true, force: true, maxRetries: 3 });
  }

  /** @internal process 'exit' hook: synchronous immediate stop so no postmaster outlives a crashed test run. */
  stopSyncOnExit(): void {
    if (!this.started && !running.has(this)) return;
    spawnSync(path.join(this.binDir, "pg_ctl"), ["-D", this.dataDir, "-m", "immediate", "-w", "-t", "10", "stop"], {
      cwd: this.baseDir,
      env: this.env,
      stdio: "ignore",
      ...(this.runAs ? { uid: this.runAs.uid, gid: this.runAs.gid } : {}),
    });
  }

  /** Throws a clear error unless the PostgreSQL OS user can enter and write `dir`. */
  private async assertAccessible(dir: string): Promise<void> {
    if (!this.runAs) return;
    const r = await new Promise<number>((resolve) => {
      const child = spawn("/bin/sh", ["-c", 'cd "$1" && test -w .', "sh", dir], {
        cwd: "/",
        stdio: "ignore",
        uid: this.runAs!.uid,
        gid: this.runAs!.gid,
      });
      child.on("error", () => resolve(127));
      child.on("close", (code) => resolve(code ?? 1));
    });
    if (r !== 0) {
      throw new PostgresHarnessError(
        `OS user '${this.runAs.user}' cannot enter or write ${dir}: every parent directory must be traversable (o+x) by it`,
      );
    }
  }
}

/** mkdtemp under parent, chowned to the PostgreSQL user when running as root. */
async function makeScratchDir(parent: string, runAs: RunAs | undefined): Promise<string> {
  await fs.mkdir(parent, { recursive: true });
  // realpath: a symlinked tmpdir (macOS /var -> /private/var) would otherwise give two names for one socket dir.
  const dir = await fs.realpath(await fs.mkdtemp(path.join(parent, "walvault-pg-")));
  // Unix socket paths are limited to ~107 bytes (103 on macOS): ".s.PGSQL.NNNNN" is 15 more.
  if (dir.length + 16 > 103) {
    await fs.rm(dir, { recursive: true, force: true });
    throw new PostgresHarnessError(`${dir} is too long for a Unix socket directory; use a shorter baseDir`);
  }
  if (runAs) await fs.chown(dir, runAs.uid, runAs.gid);
  return dir;
}

/** Recursively: owner = PostgreSQL user (when root), directories u+rwx, files u+rw. Symlinks are not followed. */
async function fixOwnership(dir: string, runAs: RunAs | undefined): Promise<void> {
  const visit = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (runAs && (st.uid !== runAs.uid || st.gid !== runAs.gid)) await fs.lchown(p, runAs.uid, runAs.gid);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) {
      if ((st.mode & 0o700) !== 0o700) await fs.chmod(p, (st.mode & 0o7777) | 0o700);
      const entries = await fs.readdir(p);
      for (const e of entries) await visit(path.join(p, e));
    } else if ((st.mode & 0o600) !== 0o600) {
      await fs.chmod(p, (st.mode & 0o7777) | 0o600);
    }
  };
  await visit(dir);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
