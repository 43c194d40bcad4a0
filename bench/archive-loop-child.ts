/**
 * bench:wal-push's archiver: calls `walvault wal-push` once per segment, one
 * after another, through /bin/sh as the database's OS user, as PostgreSQL's
 * archiver does, and renames each .ready to .done on exit 0. With `fetched`
 * (bench:wal-fetch), it is recovery's restore_command instead: after each
 * call the file written must be the segment's bytes, and no .ready is
 * renamed. A small
 * process of its own, like the anchor's archive_loop.py: spawning from the
 * benchmark's own process (the local stack's handlers, interpreter and
 * buffers) cost ~42 ms of CPU per call in fork alone (profiled, stop 31),
 * which was counted as ingest and added to every call's latency.
 *
 * Input (stdin, JSON): { names, pgdata, env, user?, command, fetched? }; output (stdout,
 * JSON): { latenciesMs, failed, wallMs }.
 */
import { spawn } from "node:child_process";
import { readFileSync, renameSync } from "node:fs";
import { join } from "node:path";

interface LoopInput {
  names: string[];
  pgdata: string;
  env: Record<string, string>;
  user?: { uid: number; gid: number };
  /** The command for one segment, with {name} replaced. */
  command: string;
  /** restore_command's loop: each call must leave `dest` (under pgdata) equal to `source`/<name>; a call that does not counts as failed. */
  fetched?: { dest: string; source: string };
}

function runAs(cmd: string, cwd: string, env: Record<string, string>, user: LoopInput["user"]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", cmd], { cwd, env: { PATH: "/usr/bin:/bin", ...env }, stdio: ["ignore", "ignore", "inherit"], ...(user ?? {}) });
    child.on("close", (code) => resolve(code ?? -1));
  });
}

let text = "";
process.stdin.setEncoding("utf8").on("data", (d: string) => (text += d));
process.stdin.on("end", () => {
  void (async () => {
    const input = JSON.parse(text) as LoopInput;
    const latenciesMs: number[] = [];
    let failed = 0;
    const t0 = performance.now();
    for (const n of input.names) {
      const s = performance.now();
      const code = await runAs(input.command.replaceAll("{name}", n), input.pgdata, input.env, input.user);
      latenciesMs.push(performance.now() - s);
      const f = input.fetched;
      if (f !== undefined) {
        if (code !== 0 || !readFileSync(join(input.pgdata, f.dest)).equals(readFileSync(join(f.source, n)))) failed++;
      } else if (code === 0) renameSync(join(input.pgdata, "pg_wal/archive_status", `${n}.ready`), join(input.pgdata, "pg_wal/archive_status", `${n}.done`));
      else failed++;
    }
    process.stdout.write(JSON.stringify({ latenciesMs, failed, wallMs: performance.now() - t0 }) + "\n");
  })();
});
