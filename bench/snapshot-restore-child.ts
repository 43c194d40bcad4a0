/**
 * One walvault command of bench/snapshot-restore.ts in a process of its own
 * (for its own peak RSS and CPU): `node snapshot-restore-child.js SPEC`.
 * Kept apart from the bench so it loads what the agent loads (the agent's
 * modules, the push or the restore), not the local stack and PostgreSQL
 * tooling the bench itself needs: measured, importing those cost the
 * restore child ~0.6 s of CPU before its first request.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { constants, PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import type { RestoreResult } from "../agent/restore.js";
import type { SnapshotPushOptions, SnapshotPushResult, SnapshotSource } from "../agent/snapshot-push.js";
import { ownPeakRssBytes, procStatusBytes } from "./peak-rss.js";
import { ticksPerSecond } from "./processes.js";

/** `nodeFlags`: the child's Node flags instead of bin/walvault's for the command (the parent uses them to start it). */
export type ChildSpec = (
  | { op: "push"; configPath: string; databaseId: string; source: SnapshotSource; opts: SnapshotPushOptions }
  | { op: "restore"; configPath: string; databaseId: string; snapshotId: string; toDir: string; parallel: number }
) & { nodeFlags?: string[] };

export interface Usage {
  maxRssBytes: number;
  /** CPU seconds (user + system) of the Node process, all threads. */
  cpuSeconds: number;
  /** CPU seconds of its waited-for children (pg_basebackup, psql). */
  childCpuSeconds: number;
  /** Major (mark-compact) GCs of the main thread during the command (a restore's ran 37-38 with the heap growth before stop 47: docs/decisions.md); absent from a child built before. */
  majorGcs?: number;
}

/** Counts the main thread's major GCs from now on (a PerformanceObserver of gc entries); the function returns the count so far. */
function majorGcCounter(): () => number {
  let majors = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
  });
  gc.observe({ entryTypes: ["gc"] });
  return () => majors;
}

export type RestoreSummary = Omit<RestoreResult, "plan">;
/**
 * When a restore reached each point, in seconds since its process started
 * (Node's time origin): restore() called, planned, its first file bytes
 * written, returned. What comes before the first byte is start-up the decode
 * workers wait through.
 */
export interface RestoreMilestones {
  calledS: number;
  plannedS?: number;
  firstByteS?: number;
  doneS: number;
}

export type ChildOutput = ({ op: "push"; result: SnapshotPushResult } | { op: "restore"; result: RestoreSummary; milestones: RestoreMilestones }) & Usage;

/**
 * CPU seconds of the waited-for children of this process (/proc/self/stat
 * cutime + cstime). Only a push has any (pg_basebackup, psql); a restore
 * reports 0 without asking (getconf is a process start inside the timed wall).
 */
function childrenCpuSeconds(op: ChildSpec["op"]): number {
  if (op !== "push") return 0;
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return (Number(f[13]) + Number(f[14])) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/**
 * WALVAULT_BENCH_MEM=1: on stderr, each time the process's high-water RSS
 * (VmHWM) grows by 4 MB, when and with how much of it anonymous; at the end,
 * the sample with the highest RSS (with V8's heap and ArrayBuffer figures)
 * and the number of major GCs. Sampled every 20 ms, so the peak sample can be
 * a few MB below the reported maxRSS.
 */
function memSampler(majors: () => number): () => void {
  if (process.env["WALVAULT_BENCH_MEM"] === undefined) return () => {};
  const mb = (b: number): string => (b / 1048576).toFixed(1);
  const t0 = performance.now();
  let peak = 0;
  let lastHwm = 0;
  let atPeak = "";
  const timer = setInterval(() => {
    const st = procStatusBytes();
    const field = (k: string): number => st.get(k) ?? 0;
    const [rss, hwm, anon] = [field("VmRSS"), field("VmHWM"), field("RssAnon")];
    if (hwm > lastHwm + 4 * 1048576) {
      process.stderr.write(`[mem] t=${((performance.now() - t0) / 1000).toFixed(2)} s: high-water ${mb(hwm)} MB, rss ${mb(rss)} (anon ${mb(anon)})\n`);
      lastHwm = hwm;
    }
    if (rss > peak) {
      peak = rss;
      const m = process.memoryUsage();
      atPeak = `rss ${mb(rss)} MB: anon ${mb(anon)}, file ${mb(field("RssFile"))}; V8 heap ${mb(m.heapUsed)} used of ${mb(m.heapTotal)}, ArrayBuffers ${mb(m.arrayBuffers)}`;
    }
  }, 20);
  return () => {
    clearInterval(timer);
    process.stderr.write(`[mem] highest sample: ${atPeak}; ${majors()} major GCs\n`);
  };
}

/**
 * WALVAULT_BENCH_HEAPPROF=FILE: V8's sampling heap profile of the command,
 * objects later freed by a major GC included (what was promoted to old space
 * and then became garbage: what grows the heap between major GCs), written
 * to FILE (.heapprofile, for Chrome DevTools).
 */
async function heapProfile<T>(run: () => Promise<T>): Promise<T> {
  const file = process.env["WALVAULT_BENCH_HEAPPROF"];
  if (file === undefined) return run();
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.startSampling", { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true });
  const out = await run();
  const { profile } = await session.post("HeapProfiler.stopSampling");
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
  return out;
}

async function child(spec: ChildSpec): Promise<void> {
  const majorGcs = majorGcCounter();
  const stopMem = memSampler(majorGcs);
  const { agentClients } = await import("../agent/clients.js");
  const { loadConfig } = await import("../agent/config.js");
  const cfg = loadConfig({ config: spec.configPath, database: spec.databaseId });
  const clients = agentClients(cfg);
  let out: ChildOutput;
  const usage = (): Usage => {
    const cpu = process.cpuUsage();
    return { maxRssBytes: ownPeakRssBytes(), cpuSeconds: (cpu.user + cpu.system) / 1e6, childCpuSeconds: childrenCpuSeconds(spec.op), majorGcs: majorGcs() };
  };
  if (spec.op === "push") {
    const { snapshotPush } = await import("../agent/snapshot-push.js");
    const result = await heapProfile(() => snapshotPush(spec.source, { ...cfg, databaseId: spec.databaseId }, clients, { ...spec.opts, progress: false }));
    out = { op: "push", result, ...usage() };
  } else {
    const { restore } = await import("../agent/restore.js");
    const at = (): number => Math.round(performance.now()) / 1000;
    const milestones: RestoreMilestones = { calledS: at(), doneS: 0 };
    const threads = process.env["WALVAULT_BENCH_THREAD_CPU"] === "1" ? sampleThreads() : undefined;
    // WALVAULT_BENCH_TL=1: files and MB done every 0.1 s (progress events), printed at the end.
    const tl: string[] | undefined = process.env["WALVAULT_BENCH_TL"] === "1" ? [] : undefined;
    let tlLast = 0;
    const r = await heapProfile(() =>
      restore(clients, cfg, {
        databaseId: spec.databaseId,
        target: { kind: "snapshot", id: spec.snapshotId },
        toDir: spec.toDir,
        parallel: spec.parallel,
        onProgress: (p) => {
          if (tl !== undefined && at() - tlLast >= 0.1) {
            tlLast = at();
            tl.push(`${tlLast.toFixed(2)} s: ${p.filesDone} files, ${(p.bytesDone / 1e6).toFixed(0)} MB`);
          }
          if (p.phase === "planned") milestones.plannedS ??= at();
          if (p.bytesDone > 0) milestones.firstByteS ??= at();
        },
      }),
    );
    milestones.doneS = at();
    if (tl !== undefined) process.stderr.write(`[bench] restore timeline: ${tl.join(" | ")}\n`);
    if (threads) process.stderr.write(`[bench] restore CPU by thread (s): ${JSON.stringify(threads.stop())}\n`);
    const { plan: _plan, ...result } = r; // the plan holds bigints
    out = { op: "restore", result, milestones, ...usage() };
  }
  stopMem();
  process.stdout.write(JSON.stringify(out));
}

/**
 * WALVAULT_BENCH_THREAD_CPU=1: the restore's CPU per thread of this process
 * (/proc/self/task/<tid>/stat user + system time, sampled every 50 ms so a
 * worker that has exited still counts), summed by thread name: the main
 * thread (main), the decode workers (node), libuv's threadpool (libuv-worker),
 * V8's helpers. Linux only.
 */
function sampleThreads(): { stop(): Record<string, number> } {
  const seen = new Map<string, { name: string; ticks: number }>();
  const sample = (): void => {
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        // The main thread's id is the process's; workers and V8's helpers go by their thread names.
        const name = tid === String(process.pid) ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        seen.set(tid, { name, ticks: Number(f[11]) + Number(f[12]) });
      } catch {
        // the thread has just exited: its last sample stands
      }
    }
  };
  sample();
  const base = new Map([...seen].map(([tid, v]) => [tid, v.ticks]));
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const out: Record<string, number> = {};
      // utime + stime are in clock ticks (getconf CLK_TCK).
      const hz = ticksPerSecond();
      for (const [tid, v] of seen) out[v.name] = Math.round((((out[v.name] ?? 0) * hz + v.ticks - (base.get(tid) ?? 0)) / hz) * 100) / 100;
      return out;
    },
  };
}

await child(JSON.parse(process.argv[2]!) as ChildSpec);
