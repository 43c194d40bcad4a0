/**
 * The resident agent (`walvault agent`): a long-lived process beside the
 * database that keeps its S3/DynamoDB connections warm and, given the data
 * directory, pushes closed segments as soon as PostgreSQL marks them .ready —
 * ahead of the archiver, several at a time. archive_command (`wal-push`)
 * then asks it over a Unix socket and usually gets "already stored" at once.
 *
 * Correctness does not depend on it: every answer is what walPush() returns
 * (exit 0 only once the catalog records the segment with these bytes), a
 * cached answer is given only for the same file (device, inode, size, mtime)
 * that was pushed, and when the agent is not running wal-push does the push
 * itself.
 */
import { deadlineIn } from "../core/deadline.js";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { existsSync, rmSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, join } from "node:path";
import { ConfigError, describeError, FileAccessError, isWalvaultError } from "../core/errors.js";
import type { AgentConfig } from "../core/config.js";
import { isNetworkError } from "../store/aws-errors.js";
import { followConfigFile, type AgentClients, type FollowedClients } from "./clients.js";
import { archiveBacklog, archiveStatusDir, readyFiles, type ArchiveBacklog } from "./archive-status.js";
import { walPush, type WaitLevel, type WalPushResult } from "./wal-push.js";

export type ResidentRequest = PushRequest | StatusRequest;

/** What `walvault status` asks: the agent's backlog and what it has done. */
export interface StatusRequest {
  op: "status";
  databaseId: string;
}

/** The resident agent's own view (`walvault status`, its `agent` field). */
export interface AgentStatus {
  databaseId: string;
  /** The data directory it pushes ahead from (absent: it only answers wal-push). */
  pgdata?: string;
  /** .ready segments PostgreSQL has not had archived yet: the archiver's backlog. */
  backlog?: ArchiveBacklog;
  /** Pushes ahead running now (at most `concurrency`). */
  pushingAhead: number;
  concurrency: number;
  stats: ResidentAgent["stats"];
  /** Moving average of upload to catalog record (ms): how long "stored" takes. */
  storeMs?: number;
}

export interface PushRequest {
  op: "push";
  /** The database the caller means; an agent for another database declines. */
  databaseId: string;
  path: string;
  wait: WaitLevel;
  timeoutMs: number;
  cwd: string;
}

export type ResidentResponse =
  | { ok: true; result: WalPushResult }
  | { ok: true; status: AgentStatus }
  | { ok: false; error: { name: string; message: string; exitCode: number } }
  /** Not this agent's business (another database): the caller pushes by itself. */
  | { ok: false; decline: string };

export interface ResidentOptions {
  socketPath: string;
  /** Data directory whose pg_wal/archive_status/*.ready files are pushed ahead. */
  pgdata?: string;
  /** Segments pushed at once ahead of the archiver. */
  concurrency: number;
  timeoutMs: number;
  log: (line: string) => void;
}

/** ctime is in it because programs can set mtime back but not ctime. */
interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

const CACHE_LIMIT = 4096;

function identity(path: string): FileIdentity {
  try {
    const s = statSync(path);
    return { dev: s.dev, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new FileAccessError(`cannot read WAL file ${path}: ${code === "ENOENT" ? "no such file" : describeError(cause)}`, { cause });
  }
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** True when something answers on the socket (another agent is running). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

export interface ResidentAgent {
  readonly stats: { requests: number; cached: number; aheadPushed: number; aheadFailed: number };
  close(): Promise<void>;
}

/** A failure of the way to the archive, not of the segment: worth another try, with new endpoints if they changed. */
function isTransient(e: unknown): boolean {
  if (isWalvaultError(e)) return e.exitCode === 4 || /Transient/.test(e.name);
  return isNetworkError(e);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * `cfg.path` (as loadConfig returns it) makes the agent follow its
 * configuration file: before each push, and after a push that failed for a
 * transient reason, a changed file is loaded again and the clients rebuilt,
 * so a local stack restarted on new ports (or an edited endpoint) needs no
 * agent restart.
 */
export async function startResidentAgent(
  cfg: AgentConfig & { databaseId: string; path?: string },
  clients: AgentClients,
  opts: ResidentOptions,
): Promise<ResidentAgent> {
  const source: FollowedClients =
    typeof cfg.path === "string"
      ? followConfigFile({ ...cfg, path: cfg.path }, clients, opts.log)
      : { cfg, clients, refresh: () => false };
  const stored = new Map<string, { id: FileIdentity; result: WalPushResult }>();
  // A push-ahead that failed is not retried at every scan: archive_command
  // gets the real error when it asks; the agent tries again after a backoff.
  const failedUntil = new Map<string, { until: number; delayMs: number }>();
  /** Segments whose running push has met a transient fault, with that fault. */
  const struggling = new Map<string, unknown>();
  const inFlight = new Map<string, Promise<WalPushResult>>();
  const stats = { requests: 0, cached: 0, aheadPushed: 0, aheadFailed: 0 };
  // Moving average of upload → catalog record, to time the first catalog poll.
  let storeMsAvg: number | undefined;

  /**
   * `patient`: the push-ahead, which tries transient failures again until its
   * time is up. A request from wal-push is not patient: it gets a transient
   * failure back at once (after one more try if the configuration changed),
   * and wal-push then pushes by itself.
   */
  async function push(path: string, wait: WaitLevel, timeoutMs: number, cwd: string, patient: boolean): Promise<WalPushResult> {
    const name = basename(path);
    for (;;) {
      const id = identity(path);
      const hit = stored.get(name);
      if (hit && sameFile(hit.id, id)) {
        stats.cached++;
        return { ...hit.result, outcome: "already-archived" };
      }
      const running = inFlight.get(name);
      if (running) {
        // A request does not wait with a push-ahead that is waiting out a fault: it gets the fault, and wal-push pushes by itself.
        while (!patient && inFlight.get(name) === running && !struggling.has(name)) await Promise.race([running.catch(() => undefined), sleep(100)]);
        const trouble = struggling.get(name);
        if (!patient && trouble !== undefined && inFlight.get(name) === running) throw trouble;
        if (patient) await running.catch(() => undefined);
        continue; // re-check: the running push may have been of another file under this name
      }
      const p = pushRetrying(path, wait, timeoutMs, cwd, patient);
      inFlight.set(name, p);
      try {
        const result = await p;
        if (result.storeMs !== undefined) storeMsAvg = storeMsAvg === undefined ? result.storeMs : storeMsAvg * 0.8 + result.storeMs * 0.2;
        if (wait === "stored") {
          stored.set(name, { id, result });
          if (stored.size > CACHE_LIMIT) stored.delete(stored.keys().next().value!);
        }
        return result;
      } finally {
        inFlight.delete(name);
        struggling.delete(name);
      }
    }
  }

  /** What answers and backoffs were learnt against one configuration says nothing about the next. */
  const refresh = (): boolean => {
    if (!source.refresh()) return false;
    stored.clear();
    failedUntil.clear();
    storeMsAvg = undefined;
    return true;
  };

  /**
   * walPush with the current clients. A transient failure (S3 or the catalog
   * out of reach, a workflow that failed for a passing reason) is tried again
   * at once if the configuration changed; a patient push (push-ahead) then
   * keeps trying with backoff and jitter until its time is up. Other failures
   * are the segment's and go back as they are.
   */
  async function pushRetrying(path: string, wait: WaitLevel, timeoutMs: number, cwd: string, patient: boolean): Promise<WalPushResult> {
    const name = basename(path);
    const deadline = deadlineIn(timeoutMs);
    let delayMs = 100;
    let triedNewConfig = false;
    refresh();
    for (;;) {
      try {
        return await walPush(path, source.cfg, source.clients, {
          wait,
          timeoutMs: Math.max(1000, deadline.left()),
          cwd,
          ...(storeMsAvg ? { expectedStoreMs: storeMsAvg } : {}),
        });
      } catch (e) {
        if (!isTransient(e) || closed) throw e;
        if (refresh() && !triedNewConfig) {
          triedNewConfig = !patient;
          continue; // new endpoints: try them at once
        }
        if (!patient) throw e;
        struggling.set(name, e);
        const pause = delayMs / 2 + Math.random() * (delayMs / 2);
        if (pause >= deadline.left()) throw e;
        await sleep(pause);
        delayMs = Math.min(delayMs * 2, 5000);
        if (closed) throw e;
        refresh();
      }
    }
  }

  // Push-ahead of .ready segments.
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  const ahead = new Set<string>();
  let closed = false;
  const scan = (): void => {
    if (!opts.pgdata || closed) return;
    const ready = readyFiles(archiveStatusDir(opts.pgdata));
    if (ready === undefined) return;
    for (const name of ready) {
      if (ahead.size >= opts.concurrency) break;
      if (ahead.has(name) || stored.has(name) || inFlight.has(name)) continue;
      if ((failedUntil.get(name)?.until ?? 0) > performance.now()) continue;
      const path = join(opts.pgdata, "pg_wal", name);
      if (!existsSync(path)) continue;
      ahead.add(name);
      push(path, "stored", opts.timeoutMs, opts.pgdata, true)
        .then(() => {
          stats.aheadPushed++;
          failedUntil.delete(name);
        })
        .catch((e: unknown) => {
          stats.aheadFailed++;
          const delayMs = Math.min((failedUntil.get(name)?.delayMs ?? 500) * 2, 60_000);
          failedUntil.set(name, { until: performance.now() + delayMs, delayMs });
          if (failedUntil.size > CACHE_LIMIT) failedUntil.delete(failedUntil.keys().next().value!);
          opts.log(`push-ahead of ${name} failed (archive_command will retry it; next try in ${delayMs / 1000} s): ${describeError(e)}`);
        })
        .finally(() => {
          ahead.delete(name);
          scan();
        });
    }
  };

  /** The archiver's backlog: the .ready files of the data directory, the oldest first. */
  const backlog = (): AgentStatus["backlog"] => (opts.pgdata ? archiveBacklog(archiveStatusDir(opts.pgdata)) : undefined);
  const agentStatus = (): AgentStatus => {
    const b = backlog();
    return {
      databaseId: cfg.databaseId,
      ...(opts.pgdata ? { pgdata: opts.pgdata } : {}),
      ...(b === undefined ? {} : { backlog: b }),
      pushingAhead: ahead.size,
      concurrency: opts.concurrency,
      stats: { ...stats },
      ...(storeMsAvg === undefined ? {} : { storeMs: Math.round(storeMsAvg) }),
    };
  };

  const handle = (sock: Socket): void => {
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = "";
      stats.requests++;
      void (async (): Promise<ResidentResponse> => {
        try {
          const req = JSON.parse(line) as ResidentRequest;
          if (req.databaseId !== cfg.databaseId) {
            return { ok: false, decline: `this agent archives database ${cfg.databaseId}, not ${String(req.databaseId)}` };
          }
          if (req.op === "status") return { ok: true, status: agentStatus() };
          if (req.op !== "push" || typeof req.path !== "string" || !req.path.startsWith("/")) {
            throw new Error("malformed request");
          }
          return { ok: true, result: await push(req.path, req.wait === "none" ? "none" : "stored", req.timeoutMs, req.cwd, false) };
        } catch (e) {
          return {
            ok: false,
            error: {
              name: e instanceof Error ? e.name : "Error",
              message: describeError(e),
              exitCode: isWalvaultError(e) ? e.exitCode : 2,
            },
          };
        }
      })().then((resp) => sock.end(JSON.stringify(resp) + "\n"));
    });
    sock.on("error", () => undefined);
  };

  if (existsSync(opts.socketPath)) {
    if (await socketAnswers(opts.socketPath)) {
      throw new ConfigError(`another walvault agent is already listening on ${opts.socketPath}`);
    }
    rmSync(opts.socketPath, { force: true }); // stale, from an agent that died
  }
  const server: Server = createServer(handle);
  // Only this OS user (the database's, which runs archive_command) may ask:
  // the socket is created 0600, with no window of wider permissions.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.socketPath, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  const ours = identity(opts.socketPath);

  // Push-ahead starts only once this agent owns the socket: a refused second
  // agent must neither push nor linger.
  if (opts.pgdata) {
    const statusDir = archiveStatusDir(opts.pgdata);
    try {
      watcher = watch(statusDir, () => scan());
    } catch (e) {
      opts.log(`cannot watch ${statusDir} (${describeError(e)}); polling only`);
    }
    timer = setInterval(scan, 250);
    scan();
  }

  return {
    stats,
    async close() {
      closed = true;
      watcher?.close();
      if (timer) clearInterval(timer);
      await new Promise<void>((r) => server.close(() => r()));
      // Remove the socket only if it is still the one this agent created.
      try {
        const now = identity(opts.socketPath);
        if (now.ino === ours.ino && now.dev === ours.dev) rmSync(opts.socketPath, { force: true });
      } catch {
        // already gone
      }
      await Promise.allSettled([...inFlight.values()]);
    },
  };
}
