/**
 * Test support for the resident agent (`walvault agent`): runs the real CLI as
 * a child process against a test stack, and builds fake PostgreSQL data
 * directories (pg_wal/ with synthetic segments, archive_status/ with .ready
 * files) for it to push ahead from.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, statSync, utimesSync, writeFileSync, type Stats } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WALVAULT_BIN } from "../../local/paths.js";
import { tempDir } from "./harness.js";
import type { TestStack } from "./stack.js";
import { syntheticSegment } from "./wal.js";

let socketCounter = 0;

/** A socket path nothing exists at yet, short enough for a Unix socket (< 104 bytes). */
export function uniqueSocketPath(): string {
  const path = join(tmpdir(), `wva-${process.pid}-${++socketCounter}.sock`);
  if (path.length >= 104) throw new Error(`socket path too long for a Unix socket: ${path}`);
  return path;
}

export interface FakeSegment {
  name: string;
  seed: number;
  /** Whether archive_status/<name>.ready exists (PostgreSQL has closed it and wants it archived). */
  ready: boolean;
}

/** A temp dir laid out like a data directory: pg_wal/<name> and pg_wal/archive_status/<name>.ready. */
export function fakeDataDir(segments: FakeSegment[]): string {
  const dir = tempDir("walvault-pgdata-");
  mkdirSync(join(dir, "pg_wal", "archive_status"), { recursive: true });
  for (const s of segments) {
    writeFileSync(join(dir, "pg_wal", s.name), syntheticSegment(s.name, s.seed));
    if (s.ready) writeFileSync(join(dir, "pg_wal", "archive_status", `${s.name}.ready`), "");
  }
  return dir;
}

/**
 * Writes other bytes of the same length into the file's own inode (opened
 * r+: no new file, no truncation) and sets atime/mtime back to what they
 * were, so that device, inode, size and mtime are all unchanged and only
 * ctime tells. Throws if mtime cannot be restored exactly (give the file a
 * whole-second mtime first: sub-millisecond parts do not survive utimes).
 */
export function rewriteInPlace(path: string, bytes: Uint8Array): { before: Stats; after: Stats } {
  const before = statSync(path);
  if (before.size !== bytes.length) throw new Error(`rewriteInPlace: ${path} has ${before.size} bytes, not ${bytes.length}`);
  writeFileSync(path, bytes, { flag: "r+" });
  utimesSync(path, before.atime, before.mtime);
  const after = statSync(path);
  if (after.mtimeMs !== before.mtimeMs) {
    throw new Error(`rewriteInPlace: could not set the mtime of ${path} back exactly (${before.mtimeMs} -> ${after.mtimeMs})`);
  }
  return { before, after };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface AgentProcess {
  child: ChildProcess;
  socketPath: string;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  hasExited(): boolean;
}

/**
 * Spawns `walvault agent --socket <socketPath> <args>` against the stack and
 * resolves once it says it is listening and the socket file exists; rejects
 * (with its stderr) if it exits or takes longer than timeoutMs first.
 */
export async function spawnAgent(stack: TestStack, socketPath: string, args: string[], timeoutMs = 20_000, env: Record<string, string> = {}): Promise<AgentProcess> {
  const child = spawn(WALVAULT_BIN, ["agent", "--socket", socketPath, ...args], {
    env: { ...process.env, WALVAULT_CONFIG: stack.configPath, ...env },
    cwd: tmpdir(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let done = false;
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.on("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  const agent: AgentProcess = {
    child,
    socketPath,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    hasExited: () => done,
  };
  const deadline = Date.now() + timeoutMs;
  while (!(stdout.includes("listening on") && existsSync(socketPath))) {
    if (done) throw new Error(`walvault agent exited before listening: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`walvault agent did not listen on ${socketPath} within ${timeoutMs} ms: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return agent;
}

/** Sends a signal and waits for the exit; SIGKILLs and throws if it has not exited within timeoutMs. */
export async function stopAgent(agent: AgentProcess, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 15_000): Promise<Exit> {
  if (!agent.hasExited()) agent.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
  const r = await Promise.race([agent.exited, timeout]);
  clearTimeout(timer);
  if (r === "timeout") {
    agent.child.kill("SIGKILL");
    await agent.exited;
    throw new Error(`walvault agent did not exit within ${timeoutMs} ms of ${signal}`);
  }
  return r;
}

/**
 * Runs `walvault <args>` against the stack and waits for it to exit, killing it
 * after timeoutMs (code null) — for commands that would run forever if they
 * wrongly started, like an agent given bad input.
 */
export function runToExit(
  stack: TestStack,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(WALVAULT_BIN, args, {
      env: { ...process.env, WALVAULT_CONFIG: stack.configPath },
      cwd: tmpdir(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGTERM");
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killed });
    });
  });
}
