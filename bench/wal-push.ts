/**
 * WAL push benchmark: 64 real 16 MB segments presented as a `.ready` backlog
 * (as shared/anchors/archive_loop.py does), `walvault wal-push %p` called once
 * per segment, one after another, through /bin/sh as the database's OS user,
 * exactly like PostgreSQL's archiver — against the embedded local stack, so
 * every call waits for the whole ingest workflow (`--wait stored`).
 *
 * Modes (each sets the WAL path it measures, whatever the shell's WALVAULT_WAL_DIRECT):
 *   no-agent        each call pushes by itself (`--no-agent`: Node start, SDK load, push, wait), direct WAL
 *   agent           a resident `walvault agent --pgdata` pushes .ready segments ahead and
 *                   archive_command asks it over its Unix socket; direct WAL, the default
 *                   (docs/wal.md): one PUT into the vault and the wal-record workflow's one step
 *   agent-incoming  the same on the incoming/ path (WALVAULT_WAL_DIRECT=0): upload,
 *                   EventBridge, ingest's Validate, Promote, Record
 *
 * Where pgBackRest and the anchor scripts are set up (bench/anchor-setup.sh),
 * the pgBackRest archive-push anchor is measured in the same run and the
 * ratios printed. Usage: npm run bench:wal-push [-- --modes no-agent,agent,agent-incoming --segments 64]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, linkSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalStack, type LocalStack } from "../local/stack.js";
import { PACKAGE_ROOT, WALVAULT_BIN } from "../local/paths.js";
import { createCatalog } from "../store/factory.js";
import { osUser, pidsMatching, procCpu } from "./processes.js";
import { lambdaCost } from "./prices.js";
import { anchorAvailable, runPgbackrestArchiveAnchor, type AnchorResult } from "./anchor.js";
import { benchArgs, refuseOption, WAL_PATHS } from "./args.js";
import { benchSegments, latencySummary, runLoop } from "./archive-loop.js";

const MiB = 1024 * 1024;
const MODES = WAL_PATHS;

interface CpuSample {
  ingest: number;
  s3rver: number;
  dynamodb: number;
  agentAndClients: number;
}

function sampleCpu(stack: LocalStack, agentPid: number | undefined): CpuSample {
  const s3Port = new URL(stack.config.s3Endpoint!).port;
  const ddbPort = new URL(stack.config.dynamodbEndpoint!).port;
  return {
    ingest: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    s3rver: pidsMatching("s3rver-child", `"port":${s3Port}`).concat(pidsMatching("s3rver-child", stack.config.local!.stateDir)).filter((v, i, a) => a.indexOf(v) === i).reduce((a, p) => a + procCpu(p), 0),
    dynamodb: pidsMatching("DynamoDBLocal.jar", ddbPort).reduce((a, p) => a + procCpu(p), 0),
    agentAndClients: procCpu(process.pid, true) + (agentPid ? procCpu(agentPid) : 0),
  };
}

interface ModeResult {
  mode: string;
  segments: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  wallS: number;
  segPerS: number;
  mbPerS: number;
  storedMiB: number;
  failed: number;
  /** CPU seconds per segment by component (ingest = the local stack's handlers and interpreter). */
  cpuPerSegmentMs?: Record<keyof CpuSample, number>;
  /** The Lambda steps the mode's segments ran (by ASL placeholder), and what their measured durations cost per 1M segments. */
  lambda?: { steps: { step: string; invocations: number; avgMs: number; memoryMiB: number }[]; per1M: number };
}

/** What the local stack's Lambda steps did since its usage was reset, for `segments` segments, priced as Lambda bills it. */
function lambdaUsage(stack: LocalStack, segments: number): NonNullable<ModeResult["lambda"]> {
  const steps = [...stack.stepUsage.entries()]
    .filter(([, u]) => u.invocations > 0)
    .map(([placeholder, u]) => ({ step: placeholder.replace(/FunctionArn$/, ""), invocations: u.invocations, avgMs: Math.round(u.totalMs / u.invocations), memoryMiB: u.memoryBytes / MiB, totalMs: u.totalMs, memoryBytes: u.memoryBytes }));
  const per1M = (steps.reduce((a, s) => a + lambdaCost(s.invocations, s.totalMs, s.memoryBytes), 0) / segments) * 1e6;
  return { steps: steps.map(({ step, invocations, avgMs, memoryMiB }) => ({ step, invocations, avgMs, memoryMiB })), per1M };
}

/** A fake data directory: pg_wal with the segments (hard links) and a .ready for each. */
function fakePgdata(segDir: string, names: string[], user: { uid: number; gid: number } | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), "walvault-bench-pgdata-"));
  const status = join(dir, "pg_wal", "archive_status");
  mkdirSync(status, { recursive: true });
  for (const n of names) {
    try {
      linkSync(join(segDir, n), join(dir, "pg_wal", n));
    } catch {
      copyFileSync(join(segDir, n), join(dir, "pg_wal", n));
    }
    writeFileSync(join(status, `${n}.ready`), "");
  }
  chmodSync(dir, 0o700);
  if (user) {
    for (const p of [dir, join(dir, "pg_wal"), status, ...names.map((n) => join(dir, "pg_wal", n)), ...names.map((n) => join(status, `${n}.ready`))]) {
      chownSync(p, user.uid, user.gid);
    }
  }
  return dir;
}

async function archiveLoop(mode: string, pgdata: string, names: string[], env: Record<string, string>, user: ReturnType<typeof osUser>): Promise<Omit<ModeResult, "storedMiB">> {
  const { latenciesMs: lat, failed, wallMs } = await runLoop(pgdata, names, `'${WALVAULT_BIN}' wal-push${MODES[mode]!.agent ? "" : " --no-agent"} pg_wal/{name}`, env, user);
  const wallS = wallMs / 1000;
  const { p50Ms, p95Ms, maxMs } = latencySummary(lat);
  const bytes = names.reduce((a, n) => a + statSync(join(pgdata, "pg_wal", n)).size, 0);
  return {
    mode,
    segments: names.length,
    p50Ms,
    p95Ms,
    maxMs,
    wallS: Number(wallS.toFixed(2)),
    segPerS: Number((names.length / wallS).toFixed(2)),
    mbPerS: Number((bytes / MiB / wallS).toFixed(1)),
    failed,
  };
}

async function startAgent(pgdata: string, env: Record<string, string>, user: ReturnType<typeof osUser>, socket: string, concurrency: string): Promise<ChildProcess> {
  rmSync(socket, { force: true });
  const child = spawn(WALVAULT_BIN, ["agent", "--pgdata", pgdata, "--socket", socket, "--concurrency", concurrency], {
    env: { ...process.env, ...env, WALVAULT_AGENT_SOCKET: socket },
    stdio: ["ignore", "ignore", "inherit"],
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(socket)) throw new Error("resident agent did not start");
  return child;
}

async function storedMiB(stack: LocalStack, databaseId: string): Promise<number> {
  const catalog = createCatalog({ region: stack.config.region, s3Endpoint: stack.config.s3Endpoint, dynamodbEndpoint: stack.config.dynamodbEndpoint, credentials: stack.config.credentials, table: stack.config.table });
  const recs = await catalog.listWal(databaseId);
  return Number((recs.reduce((a, r) => a + r.storedSize, 0) / MiB).toFixed(1));
}

async function main(): Promise<void> {
  const { values } = benchArgs("wal-push", { options: { modes: { type: "string", default: Object.keys(MODES).join(",") }, segments: { type: "string", default: "64" }, concurrency: { type: "string", default: "4" }, anchor: { type: "boolean", default: true }, "no-anchor": { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } } });
  if (values.help) {
    console.log(`usage: npm run bench:wal-push [-- --modes ${Object.keys(MODES).join(",")} --segments 64 --concurrency 4 --no-anchor]`);
    return;
  }
  const count = Number(values.segments);
  const modes = values.modes.split(",");
  const unknown = modes.find((m) => !Object.hasOwn(MODES, m));
  if (unknown !== undefined) refuseOption("wal-push", `unknown mode '${unknown}' (${Object.keys(MODES).join(", ")})`);
  const anchor = anchorAvailable();
  const { segDir, names } = await benchSegments(count);
  const user = osUser();
  const stateDir = mkdtempSync(join(tmpdir(), "walvault-bench-stack-"));
  const stack = await startLocalStack({ stateDir, databases: modes.map((m) => ({ id: `bench-${m}` })), persistent: false });
  const results: ModeResult[] = [];
  try {
    for (const mode of modes) {
      const databaseId = `bench-${mode}`;
      const pgdata = fakePgdata(segDir, names, user);
      // Each mode says which WAL path it measures, whatever this shell's WALVAULT_WAL_DIRECT.
      const env = { WALVAULT_CONFIG: stack.configPath, WALVAULT_DATABASE: databaseId, HOME: pgdata, WALVAULT_WAL_DIRECT: MODES[mode]!.walDirect ? "1" : "0" };
      const socket = join(tmpdir(), `walvault-bench-${process.pid}-${mode}.sock`);
      const agent = MODES[mode]!.agent ? await startAgent(pgdata, env, user, socket, values.concurrency) : undefined;
      try {
        process.stderr.write(`mode ${mode}: pushing ${names.length} segments ...\n`);
        stack.resetStepUsage();
        const cpu0 = sampleCpu(stack, agent?.pid);
        const r = await archiveLoop(mode, pgdata, names, { ...env, WALVAULT_AGENT_SOCKET: socket }, user);
        await stack.idle();
        const cpu1 = sampleCpu(stack, agent?.pid);
        const per = Object.fromEntries(
          (Object.keys(cpu0) as (keyof CpuSample)[]).map((k) => [k, Math.round(((cpu1[k] - cpu0[k]) * 1000) / names.length)]),
        ) as Record<keyof CpuSample, number>;
        results.push({ ...r, storedMiB: await storedMiB(stack, databaseId), cpuPerSegmentMs: per, lambda: lambdaUsage(stack, names.length) });
      } finally {
        agent?.kill("SIGTERM");
        rmSync(pgdata, { recursive: true, force: true });
      }
    }
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }

  let anchorResult: AnchorResult | undefined;
  if (values["no-anchor"]) process.stderr.write("anchor skipped (--no-anchor)\n");
  else if (!anchor.ok) process.stderr.write(`anchor not available: ${anchor.reason}\n`);
  else {
    process.stderr.write("measuring the pgBackRest anchor (pgbr-s3-sync-zst) in the same run ...\n");
    anchorResult = await runPgbackrestArchiveAnchor({ variant: "pgbr-s3-sync-zst", runs: 1, log: () => undefined });
  }

  console.log(`\nwal-push --wait stored, ${names.length} x 16 MiB real WAL segments, sequential archive_command calls`);
  console.log("mode              p50 ms  p95 ms  max ms  wall s  seg/s   MiB/s   stored MiB  failed");
  for (const r of results) {
    console.log(`${r.mode.padEnd(16)}  ${String(r.p50Ms).padStart(6)}  ${String(r.p95Ms).padStart(6)}  ${String(r.maxMs).padStart(6)}  ${r.wallS.toFixed(2).padStart(6)}  ${r.segPerS.toFixed(2).padStart(5)}  ${r.mbPerS.toFixed(1).padStart(6)}  ${r.storedMiB.toFixed(1).padStart(10)}  ${r.failed}`);
  }
  for (const r of results) {
    if (r.cpuPerSegmentMs) console.log(`${r.mode.padEnd(16)}  CPU ms per segment: ${Object.entries(r.cpuPerSegmentMs).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  }
  for (const r of results) {
    if (!r.lambda) continue;
    const steps = r.lambda.steps.map((s) => `${s.step} ${s.invocations} x ${s.avgMs} ms at ${s.memoryMiB} MB`).join(", ");
    console.log(`${r.mode.padEnd(16)}  Lambda: ${steps}; $${r.lambda.per1M.toFixed(2)} per 1M segments at list price (durations measured on this machine)`);
  }
  if (anchorResult) {
    const a = anchorResult;
    console.log(`pgbackrest         ${String(Math.round(a.latencyMedianS * 1000)).padStart(6)}  p90 ${Math.round(a.latencyP90S * 1000)}        ${a.wallS.toFixed(2).padStart(6)}  ${a.segPerS.toFixed(2).padStart(5)}  ${a.mbPerS.toFixed(1).padStart(6)}  ${String(a.storedMiB ?? "-").padStart(10)}   (pgbr-s3-sync-zst, acks when in S3)`);
    // pgBackRest's own CPU (user + system of its archive-push processes) per segment: the host CPU walvault's agent and calls compare with.
    const toolMs = (a.toolCpuS * 1000) / a.segments;
    console.log(`pgbackrest         tool CPU ms per segment: ${Math.round(toolMs)}`);
    for (const r of results) {
      const host = r.cpuPerSegmentMs ? `, host CPU per segment ${(r.cpuPerSegmentMs.agentAndClients / toolMs).toFixed(2)}x` : "";
      console.log(`ratio ${r.mode}/pgbackrest: throughput ${(r.mbPerS / a.mbPerS).toFixed(2)}x, p50 latency ${(r.p50Ms / (a.latencyMedianS * 1000)).toFixed(2)}x${host}`);
    }
  }
  mkdirSync(join(PACKAGE_ROOT, "bench", "results"), { recursive: true });
  const out = join(PACKAGE_ROOT, "bench", "results", "wal-push.json");
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), segments: names.length, segmentsFrom: segDir, results, anchor: anchorResult ?? null }, null, 2) + "\n");
  console.log(`\nresults written to ${out}`);
}

main().catch((e: unknown) => {
  console.error(`bench wal-push: ${e instanceof Error ? e.stack : String(e)}`);
  process.exitCode = 1;
});
