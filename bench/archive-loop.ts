/**
 * The loop of archive_command or restore_command calls the WAL benchmarks
 * time (bench:wal-push, bench:wal-fetch), run by bench/archive-loop-child.ts.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../local/paths.js";
import { segmentsDir } from "./anchor.js";
import { collectWalSegments } from "./collect-wal.js";

const SEGMENT_NAME = /^[0-9A-F]{24}$/;

/** `count` real WAL segments: the anchors' (bench/anchor-setup.sh), else collected from a scratch pgbench into /tmp/walvault-bench/wal. */
export async function benchSegments(count: number): Promise<{ segDir: string; names: string[] }> {
  let segDir = segmentsDir();
  if (!existsSync(segDir) || readdirSync(segDir).filter((f) => SEGMENT_NAME.test(f)).length < count) {
    segDir = "/tmp/walvault-bench/wal";
    process.stderr.write(`collecting ${count} real segments into ${segDir} ...\n`);
    await collectWalSegments(count, segDir);
  }
  return { segDir, names: readdirSync(segDir).filter((f) => SEGMENT_NAME.test(f)).sort().slice(0, count) };
}

/** The p-th percentile of ascending `sorted` (nearest rank). */
function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A loop's call latencies in whole milliseconds: median, 90th and 95th percentile, slowest. */
export function latencySummary(latenciesMs: readonly number[]): { p50Ms: number; p90Ms: number; p95Ms: number; maxMs: number } {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return { p50Ms: Math.round(pct(sorted, 50)), p90Ms: Math.round(pct(sorted, 90)), p95Ms: Math.round(pct(sorted, 95)), maxMs: Math.round(sorted.at(-1)!) };
}

/**
 * The archiver's loop in a small process of its own (bench/archive-loop-child.ts,
 * as the anchor's archive_loop.py): forking each call from this process, which
 * holds the local stack, cost ~42 ms of CPU per call (profiled in stop 31).
 */
export function runLoop(
  pgdata: string,
  names: string[],
  command: string,
  env: Record<string, string>,
  user: { uid: number; gid: number } | undefined,
  fetched?: { dest: string; source: string },
): Promise<{ latenciesMs: number[]; failed: number; wallMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PACKAGE_ROOT, "dist", "bench", "archive-loop-child.js")], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("close", (code) => {
      try {
        if (code !== 0) throw new Error(`the archive loop exited ${code}`);
        resolve(JSON.parse(out) as { latenciesMs: number[]; failed: number; wallMs: number });
      } catch (e) {
        reject(e as Error);
      }
    });
    child.stdin.end(JSON.stringify({ names, pgdata, env, ...(user ? { user } : {}), command, ...(fetched ? { fetched } : {}) }));
  });
}
