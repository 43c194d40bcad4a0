/**
 * The real CLI as a child process, bounded: a run that has not ended after
 * `timeoutMs` (a command that started something it should not have, like a
 * stack on `local up --help`) is stopped with SIGTERM, then SIGKILL, and
 * reported with code -1 and `timedOut`, so that a failing test leaves nothing
 * running behind it.
 */
import { spawn } from "node:child_process";
import { WALVAULT_BIN } from "../../local/paths.js";
import type { CliResult } from "./stack.js";

export interface BoundedCliResult extends CliResult {
  timedOut: boolean;
}

export function runCliBounded(args: string[], opts: { env?: Record<string, string>; cwd: string; timeoutMs?: number }): Promise<BoundedCliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(WALVAULT_BIN, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const term = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
    }, opts.timeoutMs ?? 30_000);
    const kill = setTimeout(() => child.kill("SIGKILL"), (opts.timeoutMs ?? 30_000) + 10_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve({ code: timedOut ? -1 : (code ?? -1), stdout, stderr, timedOut });
    });
  });
}

/** Runs fn over items, at most `limit` at a time; results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
