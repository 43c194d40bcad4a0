/**
 * Live archiving benchmark (issue #13), the shape of
 * shared/anchors/10_archive_live.sh: a real PostgreSQL 15 runs a fixed
 * pgbench workload (`-c 4 -j 2`, a fixed number of transactions per client,
 * right after a CHECKPOINT) with archive_command set to each variant, on the
 * local stack with AWS's latency on (local/latency.ts AWS_LATENCY unless
 * --latency says otherwise: event delivery, StartExecution, invokes, cold
 * starts). Every 0.5 s it samples pg_stat_archiver and the .ready backlog,
 * until pgbench has ended and the backlog has drained.
 *
 * Variants (each sets the WAL path it measures, whatever the shell's WALVAULT_WAL_DIRECT;
 * `true` runs first and last by default, and tps is compared with the mean of its runs):
 *   true            archive_command = /bin/true: the WAL rate with no archiving cost
 *   agent           'walvault wal-push %p' with a resident `walvault agent --pgdata`
 *                   pushing .ready segments ahead (the call waits for "stored"); direct
 *                   WAL, the default (docs/wal.md): one PUT into the vault and the
 *                   wal-record workflow's one step
 *   agent-incoming  as agent, on the incoming/ path (WALVAULT_WAL_DIRECT=0): upload,
 *                   EventBridge, ingest's Validate, Promote, Record
 *   no-agent        'walvault wal-push --no-agent %p': each call pushes by itself (direct WAL)
 *
 * It prints, per variant: tps (and against `true`), the largest backlog, the
 * backlog when pgbench ended, the drain time after it, segments archived,
 * failures, and host CPU (the archive_command calls, counted as the
 * archiver's children, plus the resident agent) per segment. Where the
 * pgBackRest anchor is installed (bench/anchor-setup.sh), the same run
 * measures `pgbackrest archive-push` sync and async with
 * 10_archive_live.sh on the anchor's own cluster and prints it beside.
 *
 * The cluster runs with the anchor's settings (shared/anchors/00_setup.sh:
 * shared_buffers 1GB, max_wal_size 8GB, fsync on); `--fsync off` runs it
 * without fsync, where pgbench is CPU-bound on 2 cores and every CPU-second
 * of archiving, the local stack's included (in AWS it is not on the
 * database host), comes out of its tps.
 *
 * `--host-nice=-10` runs the database host's processes (PostgreSQL, pgbench,
 * the agent) at that nice value and the emulated cloud at 0 (see hostNice).
 *
 * Usage: npm run bench:wal-live [-- --variants true,agent,agent-incoming,no-agent --tx 45000
 *        --scale 100 --latency aws --concurrency 4 --fsync on|off --no-anchor]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { ScratchPostgres } from "../agent/postgres.js";
import { describeLatency, parseLatency } from "../local/latency.js";
import { PACKAGE_ROOT, WALVAULT_BIN } from "../local/paths.js";
import { startLocalStack } from "../local/stack.js";
import { anchorAvailable, runLiveArchiveAnchor, type LiveArchiveRecord } from "./anchor.js";
import { osUser, parentPid, pidsMatching, procCpu } from "./processes.js";
import { benchArgs, refuseOption, WAL_PATHS } from "./args.js";

const SAMPLE_MS = 500;
const DRAIN_TIMEOUT_MS = 15 * 60_000;

interface Sample {
  t: number;
  walBytes: number;
  archived: number;
  failed: number;
  ready: number;
}

interface VariantResult {
  variant: string;
  tps: number;
  pgbenchS: number;
  walMiB: number;
  archived: number;
  failed: number;
  maxBacklog: number;
  backlogAtEnd: number;
  drainS: number;
  /** CPU seconds of the archive_command calls (the archiver's children) and of the resident agent. */
  callsCpuS: number;
  agentCpuS: number;
  cpuMsPerSegment: number;
  samples: Sample[];
}

/**
 * `--host-nice N` (default 0: nothing changed): the database host's
 * processes (PostgreSQL and what it forks, pgbench, the agent) run at nice
 * N. On this one machine the emulators stand in for S3, EventBridge, Step
 * Functions and Lambda, which in AWS run on other machines: at 0 they take
 * CPU from the database (tps lower than in AWS), at -10 the host is favoured
 * and the emulated cloud ingests slower than AWS would (a backlog AWS would
 * not have). The truth is between; the bench prints which it ran.
 */
let hostNice = 0;

/** Each variant: bench:wal-push's WAL paths, and `true`, which archives nothing. */
const VARIANTS: Readonly<Record<string, { agent: boolean; walDirect: boolean }>> = { true: { agent: false, walDirect: false }, ...WAL_PATHS };

function renice(pid: number | undefined): void {
  if (pid === undefined || hostNice === 0) return;
  try {
    setPriority(pid, hostNice);
  } catch {
    // not root, or gone: measured without the split
  }
}

/** The postmaster and every process it has forked so far (the archiver among them); later backends inherit. */
function reniceCluster(pg: ScratchPostgres): void {
  const postmaster = Number(readFileSync(join(pg.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  renice(postmaster);
  for (const pid of pidsMatching()) if (parentPid(pid) === postmaster) renice(pid);
}

/** pgbench once it runs (spawned by ScratchPostgres, so found by its command line). */
async function renicePgbench(): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const [pid] = pidsMatching("pgbench", "-c");
    if (pid !== undefined) return renice(pid);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function query(pg: ScratchPostgres, sql: string): Promise<string[]> {
  return (await pg.psql(sql)).trim().split("|");
}

async function backlog(pg: ScratchPostgres): Promise<number> {
  return Number((await query(pg, "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'"))[0]);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function startAgent(pg: ScratchPostgres, configPath: string, databaseId: string, socket: string, concurrency: string, home: string, walDirect: boolean): Promise<ChildProcess> {
  rmSync(socket, { force: true });
  // As PostgreSQL's OS user: the agent's socket is 0600, and archive_command runs as that user.
  const user = osUser();
  const child = spawn(WALVAULT_BIN, ["agent", "--database", databaseId, "--socket", socket, "--pgdata", pg.dataDir, "--concurrency", concurrency], {
    env: { ...process.env, WALVAULT_CONFIG: configPath, HOME: home, WALVAULT_WAL_DIRECT: walDirect ? "1" : "0" },
    cwd: home,
    stdio: ["ignore", "ignore", "inherit"],
    ...(user ?? {}),
  });
  renice(child.pid);
  await until("the resident agent to listen", async () => existsSync(socket), 30_000);
  return child;
}

async function runVariant(pg: ScratchPostgres, variant: string, command: string, opts: { clients: string; threads: string; tx: string }, agentPid: number | undefined): Promise<VariantResult> {
  await pg.psql(`alter system set archive_command = '${command.replace(/'/g, "''")}'`);
  await pg.psql("select pg_reload_conf()");
  await new Promise((r) => setTimeout(r, 1000));
  await pg.psql("select pg_switch_wal()");
  await until("the earlier backlog to drain", async () => (await backlog(pg)) === 0, DRAIN_TIMEOUT_MS);
  await pg.psql("checkpoint");
  const archiverPid = Number((await query(pg, "select pid from pg_stat_activity where backend_type = 'archiver'"))[0]);
  const [lsn0] = await query(pg, "select pg_current_wal_lsn()");
  const [ac0, fc0] = (await query(pg, "select archived_count, failed_count from pg_stat_archiver")).map(Number);
  const calls0 = procCpu(archiverPid, true);
  const agent0 = agentPid === undefined ? 0 : procCpu(agentPid);

  const t0 = performance.now();
  let output = "";
  let ended: number | undefined;
  const bench = pg.pgbench(["-n", "-c", opts.clients, "-j", opts.threads, "-t", opts.tx]).then((r) => {
    output = r.stdout;
    ended = performance.now();
  });
  await renicePgbench();
  const samples: Sample[] = [];
  let backlogAtEnd: number | undefined;
  let walAtEnd = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    const [wal, ac, fc, ready] = (
      await query(pg, `select pg_wal_lsn_diff(pg_current_wal_lsn(), '${lsn0}'), archived_count, failed_count, (select count(*) from pg_ls_archive_statusdir() where name like '%.ready') from pg_stat_archiver`)
    ).map(Number);
    const s: Sample = { t: Number(((performance.now() - t0) / 1000).toFixed(2)), walBytes: wal!, archived: ac! - ac0!, failed: fc! - fc0!, ready: ready! };
    samples.push(s);
    if (ended !== undefined && backlogAtEnd === undefined) {
      backlogAtEnd = s.ready;
      walAtEnd = s.walBytes;
    }
    if (backlogAtEnd !== undefined && s.ready === 0) break;
    if (performance.now() - t0 > DRAIN_TIMEOUT_MS) throw new Error(`${variant}: the backlog did not drain within ${DRAIN_TIMEOUT_MS / 60_000} minutes`);
  }
  await bench;
  const drained = performance.now();
  const [ac1, fc1] = (await query(pg, "select archived_count, failed_count from pg_stat_archiver")).map(Number);
  const archived = ac1! - ac0!;
  const callsCpuS = procCpu(archiverPid, true) - calls0;
  const agentCpuS = agentPid === undefined ? 0 : procCpu(agentPid) - agent0;
  return {
    variant,
    tps: Number(/tps = ([\d.]+)/.exec(output)?.[1] ?? "NaN"),
    pgbenchS: Number(((ended! - t0) / 1000).toFixed(2)),
    walMiB: Number((walAtEnd / 2 ** 20).toFixed(1)),
    archived,
    failed: fc1! - fc0!,
    maxBacklog: Math.max(...samples.map((s) => s.ready)),
    backlogAtEnd: backlogAtEnd!,
    drainS: Number(((drained - ended!) / 1000).toFixed(2)),
    callsCpuS: Number(callsCpuS.toFixed(2)),
    agentCpuS: Number(agentCpuS.toFixed(2)),
    cpuMsPerSegment: archived === 0 ? 0 : Math.round(((callsCpuS + agentCpuS) * 1000) / archived),
    samples,
  };
}

async function main(): Promise<void> {
  const { values } = benchArgs("wal-live", {
    options: {
      variants: { type: "string", default: "true,agent,agent-incoming,true" },
      tx: { type: "string", default: "45000" },
      clients: { type: "string", default: "4" },
      threads: { type: "string", default: "2" },
      scale: { type: "string", default: "100" },
      latency: { type: "string", default: "aws" },
      concurrency: { type: "string", default: "4" },
      "host-nice": { type: "string", default: "0" },
      fsync: { type: "string", default: "on" },
      "no-anchor": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log("usage: npm run bench:wal-live [-- --variants true,agent,agent-incoming,no-agent --tx 45000 --clients 4 --threads 2 --scale 100 --latency aws --concurrency 4 --host-nice=0 --fsync on|off --no-anchor]");
    return;
  }
  const latency = parseLatency(values.latency);
  hostNice = Number(values["host-nice"]);
  const variants = values.variants.split(",");
  const unknown = variants.find((v) => !Object.hasOwn(VARIANTS, v));
  if (variants.some((v, i) => v !== "true" && variants.indexOf(v) !== i)) refuseOption("wal-live", "only `true` may be listed more than once in --variants");
  if (values.fsync !== "on" && values.fsync !== "off") refuseOption("wal-live", `--fsync must be on or off, not '${values.fsync}'`);
  if (!Number.isInteger(hostNice) || hostNice < -20 || hostNice > 19) refuseOption("wal-live", `--host-nice must be an integer from -20 to 19, not '${values["host-nice"]}'`);
  if (unknown !== undefined) refuseOption("wal-live", `unknown variant '${unknown}' (${Object.keys(VARIANTS).join(", ")})`);

  const stateDir = mkdtempSync(join(tmpdir(), "walvault-bench-live-"));
  chmodSync(stateDir, 0o755);
  const home = join(stateDir, "home");
  mkdirSync(home, { mode: 0o777 });
  chmodSync(home, 0o777);
  const stack = await startLocalStack({ stateDir: join(stateDir, "stack"), databases: [...new Set(variants)].filter((v) => v !== "true").map((v) => ({ id: `live-${v}` })), persistent: false, latency });
  process.stderr.write(`local stack up, ${describeLatency(latency)}\n`);
  const pg = await ScratchPostgres.create({
    // The anchor's cluster settings (shared/anchors/00_setup.sh), so that both tables come from the same kind of server:
    // fsync on as in production (--fsync off: the scratch default, where pgbench is CPU-bound and any archiving CPU on
    // these 2 cores, the emulated cloud's included, costs tps).
    settings: { archive_mode: "on", archive_command: "/bin/true", shared_buffers: "1GB", max_wal_size: "8GB", min_wal_size: "1GB", checkpoint_timeout: "30min", fsync: values.fsync },
    env: { WALVAULT_CONFIG: stack.configPath, HOME: home },
  });
  const results: VariantResult[] = [];
  try {
    await pg.start();
    reniceCluster(pg);
    process.stderr.write(`pgbench -i -s ${values.scale} ...\n`);
    await pg.pgbench(["-i", "-s", values.scale, "-q"]);
    for (const v of variants) {
      const databaseId = `live-${v}`;
      const socket = join(home, `agent-${v}.sock`);
      const { agent: withAgent, walDirect } = VARIANTS[v]!;
      const agent = withAgent ? await startAgent(pg, stack.configPath, databaseId, socket, values.concurrency, home, walDirect) : undefined;
      const env = `WALVAULT_DATABASE=${databaseId} WALVAULT_AGENT_SOCKET='${socket}' WALVAULT_WAL_DIRECT=${walDirect ? 1 : 0}`;
      const command = v === "true" ? "/bin/true" : `${env} '${WALVAULT_BIN}' wal-push${withAgent ? "" : " --no-agent"} %p`;
      try {
        process.stderr.write(`variant ${v}: pgbench -c ${values.clients} -j ${values.threads} -t ${values.tx} with archive_command = ${command}\n`);
        results.push(await runVariant(pg, v, command, values, agent?.pid));
      } finally {
        agent?.kill("SIGTERM");
      }
    }
  } finally {
    await pg.destroy().catch(() => undefined);
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }

  let anchor: LiveArchiveRecord[] = [];
  const available = anchorAvailable();
  if (values["no-anchor"]) process.stderr.write("anchor skipped (--no-anchor)\n");
  else if (!available.ok) process.stderr.write(`anchor not available: ${available.reason}\n`);
  else {
    process.stderr.write("measuring pgBackRest archive-push live in the same run (10_archive_live.sh) ...\n");
    anchor = await runLiveArchiveAnchor(["true", "pgbr-s3-sync-zst", "pgbr-s3-async-zst-pm2"]);
  }

  // `true` may run more than once (--variants true,agent,true: before and after, so that the order a variant runs in,
  // with caches and the table's growth, does not pass for its cost): each variant against their mean.
  const trues = results.filter((r) => r.variant === "true");
  const base = trues.length === 0 ? undefined : { tps: trues.reduce((n, r) => n + r.tps, 0) / trues.length };
  console.log(`\nlive archiving: pgbench -c ${values.clients} -j ${values.threads} -t ${values.tx} (scale ${values.scale}) after CHECKPOINT; ${describeLatency(latency)}; host processes at nice ${hostNice}; cluster fsync ${values.fsync}, shared_buffers 1GB`);
  console.log("variant     tps   vs true  pgbench s  WAL MiB  archived  max backlog  backlog at end  drain s  failed  host CPU ms/segment (calls + agent)");
  for (const r of results) {
    const vsTrue = base ? `${((r.tps / base.tps) * 100).toFixed(1)}%` : "-";
    console.log(
      `${r.variant.padEnd(8)} ${r.tps.toFixed(0).padStart(6)}  ${vsTrue.padStart(7)}  ${r.pgbenchS.toFixed(1).padStart(9)}  ${r.walMiB.toFixed(0).padStart(7)}  ${String(r.archived).padStart(8)}  ${String(r.maxBacklog).padStart(11)}  ${String(r.backlogAtEnd).padStart(14)}  ${r.drainS.toFixed(1).padStart(7)}  ${String(r.failed).padStart(6)}  ${r.cpuMsPerSegment} (${r.callsCpuS} s + ${r.agentCpuS} s)`,
    );
  }
  const anchorBase = anchor.find((a) => a.label === "true");
  for (const a of anchor) {
    const vsTrue = anchorBase && a.tps && anchorBase.tps ? `${((a.tps / anchorBase.tps) * 100).toFixed(1)}%` : "-";
    const perSeg = a.segments_archived ? Math.round((a.archive_cmd_cpu_s * 1000) / a.segments_archived) : 0;
    console.log(
      `${("anchor " + a.label).padEnd(8)} ${String(Math.round(a.tps ?? 0)).padStart(6)}  ${vsTrue.padStart(7)}  ${a.pgbench_s.toFixed(1).padStart(9)}  ${a.wal_mb.toFixed(0).padStart(7)}  ${String(a.segments_archived).padStart(8)}  ${String(a.max_backlog_segs).padStart(11)}  ${String(a.backlog_at_pgbench_end).padStart(14)}  ${a.drain_after_pgbench_s.toFixed(1).padStart(7)}  ${String(a.failed).padStart(6)}  ${perSeg} (anchor cluster, s3rver without added latency)`,
    );
  }
  mkdirSync(join(PACKAGE_ROOT, "bench", "results"), { recursive: true });
  const out = join(PACKAGE_ROOT, "bench", "results", "wal-live.json");
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), latency, options: values, results, anchor }, null, 2) + "\n");
  console.log(`\nresults written to ${out}`);
}

main().catch((e: unknown) => {
  console.error(`bench wal-live: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
