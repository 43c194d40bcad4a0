/**
 * Test support: the resident agent as PostgreSQL's archive_command meets it —
 * run as the same OS user as the server (its socket is 0600), pushing ahead
 * from the server's data directory.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { WALVAULT_BIN } from "../../local/paths.js";

/** uid/gid of the OS user PostgreSQL runs as when this process is root (ScratchPostgres's rule); undefined otherwise. */
export function postgresOsUser(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const user = process.env.WALVAULT_PG_OS_USER ?? "postgres";
  const uid = spawnSync("id", ["-u", user], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", user], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) throw new Error(`no OS user ${user} to run the agent as`);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export interface PgAgent {
  child: ChildProcess;
  readonly stderr: string;
  exited: Promise<void>;
  done(): boolean;
}

/**
 * `walvault agent --database <db> --socket <socket> --pgdata <dataDir>` as
 * PostgreSQL's OS user, resolved once it listens; rejects if it exits or
 * does not listen within timeoutMs.
 */
export async function startPgAgent(
  opts: { configPath: string; socket: string; dataDir: string; database: string; home: string; timeoutSeconds?: number; env?: Record<string, string> },
  timeoutMs = 30_000,
): Promise<PgAgent> {
  const user = postgresOsUser();
  const child = spawn(
    WALVAULT_BIN,
    ["agent", "--database", opts.database, "--socket", opts.socket, "--pgdata", opts.dataDir, "--timeout", String(opts.timeoutSeconds ?? 30)],
    {
      env: { ...process.env, WALVAULT_CONFIG: opts.configPath, HOME: opts.home, ...opts.env },
      cwd: opts.home,
      stdio: ["ignore", "pipe", "pipe"],
      ...(user ?? {}),
    },
  );
  let stdout = "";
  let stderr = "";
  let finished = false;
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((r) =>
    child.on("exit", () => {
      finished = true;
      r();
    }),
  );
  const deadline = Date.now() + timeoutMs;
  while (!(stdout.includes("listening on") && existsSync(opts.socket))) {
    if (finished) throw new Error(`walvault agent exited before listening: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`walvault agent did not listen on ${opts.socket} within ${timeoutMs} ms: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    child,
    get stderr() {
      return stderr;
    },
    exited,
    done: () => finished,
  };
}
