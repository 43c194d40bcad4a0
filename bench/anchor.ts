/**
 * Anchor figures measured in the same run as ours: drives the pgBackRest
 * archive-push benchmark of `shared/anchors` (the scripts that produced
 * shared/anchors/RESULTS.md) so a benchmark can print its own figures and the
 * ratio against pgBackRest on the same machine, under the same load.
 *
 * The anchor scripts need root, Debian's pgbackrest / PostgreSQL 15 packages,
 * a loaded scratch cluster and two s3rver instances; `bench/anchor-setup.sh`
 * sets all of that up (several minutes the first time). Their scratch data
 * lives under /tmp/anchors (`ANCHORS_DIR` overrides it, as in lib.sh).
 *
 * What `runPgbackrestArchiveAnchor` measures (20_archive_direct.sh +
 * archive_loop.py): the 64 real 16 MB pgbench WAL segments of `segmentsDir()`
 * are presented as a 64-segment `.ready` backlog and `pgbackrest archive-push
 * %p` is called once per segment, one call after another, through
 * `/bin/sh -c` as user postgres, exactly like the archiver's archive_command.
 * Each run pushes into a fresh repo path. For a like-for-like comparison our
 * benchmark should push the same 64 segments of `segmentsDir()`.
 *
 * Dependency-free: node:child_process, node:fs, node:os, node:path, node:url.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** Number of WAL segments the anchor loop pushes. */
export const ANCHOR_SEGMENTS = 64;
const SEGMENT_SIZE = 16 * 1024 * 1024;
const SEGMENT_RE = /^[0-9A-F]{24}$/;
const MIB = 1024 * 1024;
/** Variants of 20_archive_direct.sh that run pgBackRest. */
const PGBR_VARIANT_RE = /^pgbr-(s3|posix)-(sync-(gz|lz4|zst)|async-(gz|lz4|zst)-pm[1-9][0-9]*)$/;

/** One JSON line as printed by shared/anchors/archive_loop.py. */
export interface ArchiveLoopRecord {
  test: "archive_direct";
  label: string;
  run: string | number;
  segments: number;
  seg_mb: number;
  wall_s: number;
  lat_median_s: number;
  lat_mean_s: number;
  lat_p90_s: number;
  lat_max_s: number;
  lat_first_s: number;
  seg_per_s: number;
  /** MiB (2^20 bytes) per second, despite the name. */
  mb_per_s: number;
  cpu_user_s: number;
  cpu_sys_s: number;
  s3rver_cpu_s: number;
  machine_busy_cpu_s: number;
  stored_bytes: number | null;
  cmd: string;
}

/**
 * Anchor figures. With runs > 1 every figure is the median over the runs
 * (as summarize.py does); `raw` holds each run's record.
 */
export interface AnchorResult {
  variant: string;
  runs: number;
  /** Segments pushed per run (64). */
  segments: number;
  /** Bytes of WAL pushed per run (64 x 16 MiB). */
  inputBytes: number;
  /** Median per-call latency of `pgbackrest archive-push`, seconds. */
  latencyMedianS: number;
  /** 90th percentile per-call latency, seconds. */
  latencyP90S: number;
  /** Wall clock for all 64 segments, seconds. */
  wallS: number;
  segPerS: number;
  /** MiB/s (2^20 bytes; archive_loop.py's "mb_per_s"); inputBytes / wallS / 2^20. */
  mbPerS: number;
  /** Stored object bytes in the repo (without archive.info) / 2^20; null when not measured. */
  storedMiB: number | null;
  /** CPU seconds (user+sys) of the tool's processes the loop waited for, per run. */
  toolCpuS: number;
  /** CPU seconds of both s3rver instances during the run. */
  s3rverCpuS: number;
  /** Busy CPU seconds of the whole machine during the run (includes other load). */
  machineCpuS: number;
  raw: ArchiveLoopRecord[];
}

export interface PgbackrestArchiveAnchorOptions {
  /** A pgBackRest variant of 20_archive_direct.sh (default "pgbr-s3-sync-zst"). */
  variant?: string;
  /** Timed runs (default 1). */
  runs?: number;
  /** Receives the scripts' progress lines (default: written to stderr). */
  log?: (line: string) => void;
  /** Kill the scripts after this long (default 5 min + 5 min per run). */
  timeoutMs?: number;
}

/** Scratch dir of the anchor scripts (lib.sh's $A). */
function scratchDir(): string {
  return process.env["ANCHORS_DIR"] || "/tmp/anchors";
}

/** The 64 real 16 MB pgbench WAL segments the anchor pushes (05_collect_segments.sh). */
export function segmentsDir(): string {
  return path.join(scratchDir(), "walsrc");
}

/**
 * Directory holding the anchor scripts: $WALVAULT_ANCHOR_SCRIPTS, else the
 * first `shared/anchors` found walking up from this file (the repository is
 * cloned next to shared/, so from bench/ or dist/bench/ that is ../../shared
 * or ../../../shared). Undefined when there is none.
 */
export function anchorScriptsDir(): string | undefined {
  const override = process.env["WALVAULT_ANCHOR_SCRIPTS"];
  if (override) return existsSync(path.join(override, "lib.sh")) ? path.resolve(override) : undefined;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, "shared", "anchors");
    if (existsSync(path.join(candidate, "lib.sh")) && existsSync(path.join(candidate, "20_archive_direct.sh"))) {
      return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function onPath(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function fullSegments(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const name of readdirSync(dir)) {
    if (!SEGMENT_RE.test(name)) continue;
    try {
      if (statSync(path.join(dir, name)).size === SEGMENT_SIZE) n++;
    } catch {
      // vanished meanwhile
    }
  }
  return n;
}

/**
 * Whether the pgBackRest anchor can run here. Checks root, pgbackrest and the
 * other tools the scripts call, the anchor scripts, the 64 segments and the
 * files the loop copies from the cluster, then makes sure the anchor cluster
 * and both s3rver instances are up (`pg_running || pg_start; s3_start` from
 * lib.sh). Side effect: it may start those processes (they stay up; stop them
 * with shared/anchors/99_stop.sh).
 */
export function anchorAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== "linux") return { ok: false, reason: "anchor scripts need Linux" };
  if (process.getuid?.() !== 0) return { ok: false, reason: "anchor scripts must run as root" };
  if (!onPath("pgbackrest")) return { ok: false, reason: "pgbackrest not on PATH (run bench/anchor-setup.sh)" };
  for (const f of ["/usr/bin/time", "/usr/bin/python3", "/usr/lib/postgresql/15/bin/pg_ctl"]) {
    if (!existsSync(f)) return { ok: false, reason: `${f} missing (run bench/anchor-setup.sh)` };
  }
  for (const c of ["bc", "curl", "runuser"]) {
    if (!onPath(c)) return { ok: false, reason: `${c} not on PATH (run bench/anchor-setup.sh)` };
  }
  const scripts = anchorScriptsDir();
  if (!scripts) return { ok: false, reason: "shared/anchors not found next to the repository (or WALVAULT_ANCHOR_SCRIPTS)" };
  const a = scratchDir();
  if (!existsSync(path.join(a, "npm", "node_modules", ".bin", "s3rver"))) {
    return { ok: false, reason: `s3rver not installed in ${a}/npm (run bench/anchor-setup.sh)` };
  }
  if (!existsSync(path.join(a, "pgdata", "PG_VERSION"))) {
    return { ok: false, reason: `anchor cluster ${a}/pgdata missing (run bench/anchor-setup.sh)` };
  }
  const n = fullSegments(segmentsDir());
  if (n < ANCHOR_SEGMENTS) {
    return { ok: false, reason: `${segmentsDir()} has ${n} of ${ANCHOR_SEGMENTS} segments (run bench/anchor-setup.sh)` };
  }
  if (!existsSync(path.join(a, "pg_control.copy"))) {
    return { ok: false, reason: `${a}/pg_control.copy missing (run bench/anchor-setup.sh)` };
  }
  // pg_start is not idempotent by itself (pg_ctl start fails on a running
  // cluster), hence `pg_running ||` as in the anchor scripts; s3_start is.
  const r = spawnSync("bash", ["-c", '. "$1/lib.sh"; pg_running || pg_start; s3_start', "anchor", scripts], {
    encoding: "utf8",
    timeout: 300_000,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || r.error?.message || "").trim().split("\n").slice(-3).join(" | ");
    return { ok: false, reason: `could not start the anchor cluster / s3rver: ${why || `exit ${r.status}`}` };
  }
  return { ok: true };
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function isRecord(v: unknown, variant: string): v is ArchiveLoopRecord {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return o["test"] === "archive_direct" && o["label"] === variant && typeof o["wall_s"] === "number";
}

function parseRecords(text: string, variant: string): ArchiveLoopRecord[] {
  const out: ArchiveLoopRecord[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t.startsWith("{")) continue;
    try {
      const v: unknown = JSON.parse(t);
      if (isRecord(v, variant)) out.push(v);
    } catch {
      // not a result line
    }
  }
  return out;
}

/**
 * Runs `shared/anchors/20_archive_direct.sh <runs> <variant>` with
 * ANCHORS_RES (lib.sh's results dir) pointed at a fresh temp dir, and returns
 * the figures archive_loop.py printed (median over runs). The loop's own
 * results file is read back; its stdout is the fallback. Runs are serialized
 * with flock on <ANCHORS_DIR>/.walvault-anchor.lock, because every run reuses
 * the scratch dir <ANCHORS_DIR>/fakepg. Call `anchorAvailable()` first.
 */
export async function runPgbackrestArchiveAnchor(options: PgbackrestArchiveAnchorOptions = {}): Promise<AnchorResult> {
  const { variant = "pgbr-s3-sync-zst", runs = 1 } = options;
  if (!PGBR_VARIANT_RE.test(variant)) {
    throw new Error(`not a pgBackRest variant of 20_archive_direct.sh: ${variant} (e.g. pgbr-s3-sync-zst, pgbr-posix-async-gz-pm2)`);
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, got ${runs}`);
  const scripts = anchorScriptsDir();
  if (!scripts) throw new Error("shared/anchors not found next to the repository (or WALVAULT_ANCHOR_SCRIPTS)");
  const log = options.log ?? ((line: string) => process.stderr.write(`[anchor] ${line}\n`));
  const timeoutMs = options.timeoutMs ?? (5 + 5 * runs) * 60_000;

  const res = mkdtempSync(path.join(os.tmpdir(), "walvault-anchor-"));
  try {
    const script = path.join(scripts, "20_archive_direct.sh");
    const a = scratchDir();
    const lock = path.join(a, ".walvault-anchor.lock");
    const [cmd, args] = onPath("flock") && existsSync(a)
      ? ["flock", [lock, "bash", script, String(runs), variant]]
      : ["bash", [script, String(runs), variant]];
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn(cmd, args as string[], {
        env: { ...process.env, ANCHORS_RES: res },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true, // own process group, so a timeout kills pgbackrest too
      });
      let out = "";
      let errTail = "";
      let pending = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        errTail = (errTail + d).slice(-4000);
        pending += d;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const l of lines) if (l.trim()) log(l);
      });
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, "SIGTERM");
        } catch {
          // already gone
        }
        reject(new Error(`20_archive_direct.sh ${variant} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (pending.trim()) log(pending);
        if (code === 0) resolve(out);
        else reject(new Error(`20_archive_direct.sh ${runs} ${variant} failed (${signal ?? `exit ${code}`}): ${errTail.trim().split("\n").slice(-5).join(" | ")}`));
      });
    });

    const jsonl = path.join(res, "archive_direct.jsonl");
    let raw = existsSync(jsonl) ? parseRecords(readFileSync(jsonl, "utf8"), variant) : [];
    if (raw.length === 0) raw = parseRecords(stdout, variant);
    if (raw.length !== runs) {
      throw new Error(`expected ${runs} result line(s) for ${variant} from archive_loop.py, got ${raw.length}`);
    }
    const med = (f: (r: ArchiveLoopRecord) => number) => median(raw.map(f));
    const stored = raw.map((r) => r.stored_bytes).filter((b): b is number => typeof b === "number");
    const first = raw[0]!;
    return {
      variant,
      runs,
      segments: first.segments,
      inputBytes: Math.round(first.segments * first.seg_mb * MIB),
      latencyMedianS: med((r) => r.lat_median_s),
      latencyP90S: med((r) => r.lat_p90_s),
      wallS: med((r) => r.wall_s),
      segPerS: med((r) => r.seg_per_s),
      mbPerS: med((r) => r.mb_per_s),
      storedMiB: stored.length ? Math.round((median(stored) / MIB) * 10) / 10 : null,
      toolCpuS: Math.round(med((r) => r.cpu_user_s + r.cpu_sys_s) * 1000) / 1000,
      s3rverCpuS: med((r) => r.s3rver_cpu_s),
      machineCpuS: med((r) => r.machine_busy_cpu_s),
      raw,
    };
  } finally {
    rmSync(res, { recursive: true, force: true });
  }
}

/** One JSON line as printed by shared/anchors/live_archive.py (10_archive_live.sh). */
export interface LiveArchiveRecord {
  test: "archive_live";
  label: string;
  pgbench_s: number;
  tps: number | null;
  wal_mb: number;
  segments_archived: number;
  max_backlog_segs: number;
  backlog_at_pgbench_end: number;
  drain_after_pgbench_s: number;
  kept_up: boolean;
  failed: number;
  archive_cmd_cpu_s: number;
  s3rver_cpu_s: number;
  machine_busy_cpu_s: number;
  cmd: string;
}

/**
 * Runs `shared/anchors/10_archive_live.sh 1 <variants...>` (pgbench on the
 * anchor's own cluster with archive_command set to each variant, sampled
 * every 0.5 s by live_archive.py) and returns its records, one per variant.
 * Call `anchorAvailable()` first.
 */
export async function runLiveArchiveAnchor(variants: readonly string[], log: (line: string) => void = (l) => process.stderr.write(`[anchor] ${l}\n`)): Promise<LiveArchiveRecord[]> {
  const scripts = anchorScriptsDir();
  if (!scripts) throw new Error("shared/anchors not found next to the repository (or WALVAULT_ANCHOR_SCRIPTS)");
  const res = mkdtempSync(path.join(os.tmpdir(), "walvault-anchor-live-"));
  try {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn("bash", [path.join(scripts, "10_archive_live.sh"), "1", ...variants], { env: { ...process.env, ANCHORS_RES: res }, stdio: ["ignore", "ignore", "pipe"] });
      let pending = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        pending += d;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const l of lines) if (l.trim()) log(l);
      });
      child.on("close", resolve);
    });
    const file = path.join(res, "archive_live.jsonl");
    const records = existsSync(file)
      ? readFileSync(file, "utf8").split("\n").filter((l) => l.trim().startsWith("{")).map((l) => JSON.parse(l) as LiveArchiveRecord).filter((r) => r.test === "archive_live")
      : [];
    if (code !== 0 && records.length === 0) throw new Error(`10_archive_live.sh ${variants.join(" ")} failed (exit ${code})`);
    return records;
  } finally {
    rmSync(res, { recursive: true, force: true });
  }
}
