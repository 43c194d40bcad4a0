/**
 * restore_command benchmark: real 16 MB WAL segments archived, then fetched
 * one after another as PostgreSQL's recovery asks for them: through /bin/sh
 * as the database's OS user, from a data directory in archive recovery
 * (recovery.signal), `%p` = pg_wal/RECOVERYXLOG, each call timed from spawn
 * to exit and its file compared with the segment. Recovery waits for every
 * call, so the sum of the calls is what a point-in-time restore spends
 * fetching WAL.
 *
 * Modes: `prefetch` (walvault wal-fetch as configured by default: a
 * prefetcher spools and proves the next segments, later calls are served
 * from the spool, agent/wal-fetch-spool.ts) and `no-prefetch` (every call
 * asks the catalog and reads the vault). Where pgBackRest and the anchor
 * scripts are set up (bench/anchor-setup.sh), its `archive-get` is measured
 * in the same run on the same segments, synchronous and --archive-async, and
 * the ratios printed.
 * Usage: npm run bench:wal-fetch [-- --segments 32 --no-anchor]
 */
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalStack } from "../local/stack.js";
import { PACKAGE_ROOT, WALVAULT_BIN } from "../local/paths.js";
import { osUser } from "./processes.js";
import { anchorAvailable, anchorScriptsDir } from "./anchor.js";
import { benchArgs, refuseOption } from "./args.js";
import { benchSegments, latencySummary, runLoop } from "./archive-loop.js";

const DB = "bench-fetch";

interface FetchResult {
  tool: string;
  segments: number;
  p50Ms: number;
  p90Ms: number;
  maxMs: number;
  /** The calls' time summed: what recovery waits. */
  totalS: number;
  failed: number;
}

function summary(tool: string, latenciesMs: number[], failed: number): FetchResult {
  const { p50Ms, p90Ms, maxMs } = latencySummary(latenciesMs);
  return {
    tool,
    segments: latenciesMs.length,
    p50Ms,
    p90Ms,
    maxMs,
    totalS: Number((latenciesMs.reduce((a, b) => a + b, 0) / 1000).toFixed(2)),
    failed,
  };
}

/** A data directory in archive recovery: pg_wal/ and recovery.signal, owned by the database's OS user. */
function recoveringDir(user: { uid: number; gid: number } | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), "walvault-bench-recovery-"));
  mkdirSync(join(dir, "pg_wal"));
  writeFileSync(join(dir, "recovery.signal"), "");
  if (user) for (const p of [dir, join(dir, "pg_wal"), join(dir, "recovery.signal")]) chownSync(p, user.uid, user.gid);
  return dir;
}

/** `walvault wal-push` of every segment, four at a time (untimed set-up; asynchronous: the local stack runs in this process). */
async function archiveAll(segDir: string, names: string[], env: Record<string, string>): Promise<void> {
  const queue = [...names];
  const one = (n: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const c = spawn(WALVAULT_BIN, ["wal-push", "--no-agent", join(segDir, n)], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      c.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
      c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`archiving ${n} failed (exit ${code}): ${err.trim()}`))));
    });
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) await one(n);
  }));
}

/** Waits (at most `ms`) until no prefetcher holds the spool under `dir`, so the next mode does not share the CPU with it. */
async function prefetchersDone(dir: string, ms = 20_000): Promise<void> {
  const lock = join(dir, "pg_wal", ".walvault-prefetch", ".lock");
  for (const until = Date.now() + ms; Date.now() < until && existsSync(lock); ) await new Promise((r) => setTimeout(r, 50));
}

/**
 * A pgBackRest repository of its own on the anchors' TLS s3rver, the segments
 * archive-pushed into it (untimed): the shell lines of shared/anchors/lib.sh
 * (the configuration, the stanza of the anchors' running cluster).
 */
function pgbackrestRepo(scripts: string, segDir: string, names: string[]): { base: string } {
  const rp = `/bench-fetch/${process.pid}-${Date.now()}`;
  const script = [
    `. '${scripts}/lib.sh'`,
    "pg_running || pg_start >/dev/null",
    "s3_start >/dev/null",
    "CS3=$(pgbr_conf direct-s3 s3)",
    `base="--config=$CS3 --stanza=$STANZA --repo1-path=${rp} --pg1-path=$FAKEPG"`,
    `aspg pgbackrest --config=$CS3 --stanza=$STANZA --repo1-path=${rp} stanza-create >/dev/null`,
    // A segment the anchors already keep in $FAKEPG/pg_wal (05_collect_segments.sh) is pushed from there and left alone.
    `for n in ${names.join(" ")}; do mine=; if [ ! -e "$FAKEPG/pg_wal/$n" ]; then cp '${segDir}'/$n "$FAKEPG/pg_wal/$n" && chown "$PGUSER_OS" "$FAKEPG/pg_wal/$n" && mine=1; fi`,
    `  aspg pgbackrest $base --compress-type=zst archive-push "$FAKEPG/pg_wal/$n" || exit 1; [ -n "$mine" ] && rm -f "$FAKEPG/pg_wal/$n"; done`,
    'echo "$base"',
  ].join("\n");
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`pgBackRest setup failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
  return { base: r.stdout.trim().split("\n").at(-1)! };
}

async function main(): Promise<void> {
  const { values } = benchArgs("wal-fetch", {
    options: { segments: { type: "string", default: "32" }, "no-anchor": { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
  });
  if (values.help) {
    console.log("usage: npm run bench:wal-fetch [-- --segments 32 --no-anchor]");
    return;
  }
  const count = Number(values.segments);
  if (!Number.isInteger(count) || count < 2 || count > 64) refuseOption("wal-fetch", `--segments must be a whole number from 2 to 64, not '${values.segments}'`);
  const { segDir, names } = await benchSegments(count);
  const user = osUser();
  const fetched = { dest: "pg_wal/RECOVERYXLOG", source: segDir };
  const results: FetchResult[] = [];

  const stateDir = mkdtempSync(join(tmpdir(), "walvault-bench-stack-"));
  const stack = await startLocalStack({ stateDir, databases: [{ id: DB }], persistent: false });
  try {
    const env = { WALVAULT_CONFIG: stack.configPath, WALVAULT_DATABASE: DB };
    process.stderr.write(`archiving ${names.length} segments (untimed) ...\n`);
    await archiveAll(segDir, names, env);
    await stack.idle();
    for (const mode of ["prefetch", "no-prefetch"]) {
      const dir = recoveringDir(user);
      try {
        process.stderr.write(`walvault wal-fetch (${mode}): ${names.length} segments ...\n`);
        const r = await runLoop(dir, names, `'${WALVAULT_BIN}' wal-fetch${mode === "no-prefetch" ? " --no-prefetch" : ""} {name} pg_wal/RECOVERYXLOG`, { ...env, HOME: dir }, user, fetched);
        results.push(summary(`walvault ${mode}`, r.latenciesMs, r.failed));
        await prefetchersDone(dir);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }

  const anchor = anchorAvailable();
  const scripts = anchorScriptsDir();
  if (values["no-anchor"]) process.stderr.write("anchor skipped (--no-anchor)\n");
  else if (!anchor.ok || scripts === undefined) process.stderr.write(`anchor not available: ${anchor.reason ?? "no shared/anchors scripts"}\n`);
  else {
    process.stderr.write(`pgBackRest: archiving ${names.length} segments into a repository of its own (untimed) ...\n`);
    const { base } = pgbackrestRepo(scripts, segDir, names);
    for (const async of [false, true]) {
      const dir = recoveringDir(user);
      try {
        const spool = join(dir, "spool");
        const opts = async ? ` --archive-async --spool-path='${spool}' --archive-get-queue-max=256MiB` : "";
        process.stderr.write(`pgbackrest archive-get (${async ? "async" : "sync"}): ${names.length} segments ...\n`);
        const r = await runLoop(dir, names, `pgbackrest ${base}${opts} archive-get {name} '${dir}/pg_wal/RECOVERYXLOG'`, { HOME: dir }, user, fetched);
        results.push(summary(`pgbackrest ${async ? "async" : "sync"}`, r.latenciesMs, r.failed));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  console.log(`\nrestore_command, ${names.length} x 16 MiB real WAL segments fetched in order (recovery waits for each call)`);
  console.log("tool                    p50 ms  p90 ms  max ms  total s  failed");
  for (const r of results) {
    console.log(`${r.tool.padEnd(22)}  ${String(r.p50Ms).padStart(6)}  ${String(r.p90Ms).padStart(6)}  ${String(r.maxMs).padStart(6)}  ${r.totalS.toFixed(2).padStart(7)}  ${r.failed}`);
  }
  const ours = results.find((r) => r.tool === "walvault prefetch");
  for (const a of results.filter((r) => r.tool.startsWith("pgbackrest"))) {
    if (ours) console.log(`ratio pgBackRest ${a.tool.split(" ")[1]} / walvault prefetch total (>1 = walvault faster): ${(a.totalS / ours.totalS).toFixed(2)}x; p50 ${(a.p50Ms / ours.p50Ms).toFixed(2)}x`);
  }
  mkdirSync(join(PACKAGE_ROOT, "bench", "results"), { recursive: true });
  const out = join(PACKAGE_ROOT, "bench", "results", "wal-fetch.json");
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), segments: names.length, segmentsFrom: segDir, results }, null, 2) + "\n");
  console.log(`\nresults written to ${out}`);
  if (results.some((r) => r.failed > 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`bench wal-fetch: ${e instanceof Error ? e.stack : String(e)}`);
  process.exitCode = 1;
});
