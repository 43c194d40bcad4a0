/**
 * Snapshot push benchmark: `snapshotPush` (agent/snapshot-push.ts) on a real
 * PostgreSQL cluster loaded by `pgbench -i -s <scale>` and on a generic tree
 * of incompressible files, against the embedded local stack.
 *
 * Each push runs in its own child process (this file with --child), so its
 * peak RSS is the agent's alone, not the stack's (s3rver and DynamoDB Local are
 * child processes of the stack; the ingest state machine runs in this one).
 *
 * PostgreSQL runs, in order (each waits for snapshot ingest to record it):
 *   0. first with a null store (PUTs dropped, no wait): the agent's own rate
 *   1. first     every chunk new
 *   2. same      nothing changed (only pg_control, backup_label... differ)
 *   3. update 5% contiguous: update ... where aid <= 5% of the rows; checkpoint
 *   4. update 5% scattered:  update ... where aid % 20 = 7 (one row in 20,
 *                            so nearly every heap page); checkpoint
 * plus `pg_basebackup -Ft -D - > /dev/null` alone (the source's own rate).
 * Generic: `--generic-mib` MiB of random bytes in 64 MiB files, pushed with
 * the real store and again with a null store (PUTs dropped: the agent's own
 * read + cut + hash + compress rate), both without waiting for ingest.
 *
 * Usage: npm run build && node dist/bench/snapshot.js [--scale 20] [--generic-mib 1024]
 *        [--concurrency 32] [--block-size BYTES] [--out bench/results/snapshot.json]
 */
import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { cpus, loadavg, tmpdir } from "node:os";
import { mkdirSync, mkdtempSync, openSync, closeSync, writeSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { agentClients } from "../agent/clients.js";
import { loadConfig } from "../agent/config.js";
import { DEFAULT_BLOCK_SIZE, DEFAULT_CONCURRENCY, snapshotPush, type SnapshotPushOptions, type SnapshotPushResult, type SnapshotSource } from "../agent/snapshot-push.js";
import { ScratchPostgres } from "../agent/postgres.js";
import { startLocalStack } from "../local/stack.js";
import type { ObjectStore } from "../store/object-store.js";
import { ownPeakRssBytes } from "./peak-rss.js";
import { osUser } from "./processes.js";
import { benchArgs } from "./args.js";

const MiB = 1024 * 1024;
const SELF = fileURLToPath(import.meta.url);

interface ChildSpec {
  configPath: string;
  databaseId: string;
  source: SnapshotSource;
  opts: SnapshotPushOptions;
  nullStore?: boolean;
}

interface ChildOutput {
  result: SnapshotPushResult;
  maxRssBytes: number;
  cpuSeconds: number;
}

async function child(spec: ChildSpec): Promise<void> {
  const cfg = loadConfig({ config: spec.configPath, database: spec.databaseId });
  const clients = agentClients(cfg);
  if (spec.nullStore) {
    const real = clients.store;
    const nul: ObjectStore = Object.create(real) as ObjectStore;
    nul.put = async () => ({});
    clients.store = nul;
  }
  const result = await snapshotPush(spec.source, { ...cfg, databaseId: spec.databaseId }, clients, { ...spec.opts, progress: false });
  const cpu = process.cpuUsage();
  const out: ChildOutput = { result, maxRssBytes: ownPeakRssBytes(), cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  process.stdout.write(JSON.stringify(out));
}

function runChild(spec: ChildSpec): Promise<ChildOutput> {
  return new Promise((resolve, reject) => {
    // WALVAULT_BENCH_CPU_PROF=DIR: a V8 CPU profile of every push, in DIR.
    const prof = process.env.WALVAULT_BENCH_CPU_PROF;
    const node = prof ? ["--cpu-prof", "--cpu-prof-dir", prof] : [];
    const c = spawn(process.execPath, [...node, SELF, "--child", JSON.stringify(spec)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.on("error", reject);
    c.on("close", (code) => {
      if (code !== 0) reject(new Error(`push child exited ${code}`));
      else resolve(JSON.parse(out) as ChildOutput);
    });
  });
}

function row(name: string, o: ChildOutput): Record<string, unknown> {
  const r = o.result;
  const t = r.totals;
  return {
    run: name,
    logicalMB: +(t.logicalBytes / 1e6).toFixed(1),
    chunks: t.chunks,
    uniqueChunks: t.uniqueChunks,
    newChunks: t.newChunks,
    newMB: +(r.newBytes / 1e6).toFixed(2),
    storedMB: +(t.storedBytes / 1e6).toFixed(2),
    newStoredMB: +(t.newStoredBytes / 1e6).toFixed(2),
    newOverLogical: t.logicalBytes ? +(r.newBytes / t.logicalBytes).toFixed(4) : 0,
    newStoredOverStored: t.storedBytes ? +(t.newStoredBytes / t.storedBytes).toFixed(4) : 0,
    catalogBatches: r.lookups.catalogBatches,
    pushS: r.seconds.push,
    waitS: r.seconds.wait,
    mbPerS: r.mbPerSecond,
    cpuS: +o.cpuSeconds.toFixed(2),
    peakRssMB: Math.round(o.maxRssBytes / 1e6),
  };
}

async function basebackupAlone(pg: ScratchPostgres): Promise<{ seconds: number; bytes: number }> {
  const user = osUser();
  const t0 = performance.now();
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    const c = spawn(join(pg.binDir, "pg_basebackup"), ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-w"], {
      cwd: "/",
      stdio: ["ignore", "pipe", "inherit"],
      ...(user ?? {}),
    });
    c.stdout.on("data", (d: Buffer) => (bytes += d.length));
    c.on("error", reject);
    c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`pg_basebackup exited ${code}`))));
  });
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

function writeRandomTree(dir: string, mib: number): void {
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.allocUnsafe(8 * MiB);
  for (let i = 0; i * 64 < mib; i++) {
    const fd = openSync(join(dir, `data-${String(i).padStart(4, "0")}.bin`), "w");
    for (let w = 0; w < Math.min(64, mib - i * 64); w += 8) writeSync(fd, randomFillSync(buf));
    closeSync(fd);
  }
}

async function main(): Promise<void> {
  const { values } = benchArgs("snapshot", {
    options: {
      child: { type: "string" },
      scale: { type: "string", default: "20" },
      "generic-mib": { type: "string", default: "1024" },
      concurrency: { type: "string", default: String(DEFAULT_CONCURRENCY) },
      "block-size": { type: "string" },
      out: { type: "string", default: "bench/results/snapshot.json" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log("usage: node dist/bench/snapshot.js [--scale 20] [--generic-mib 1024] [--concurrency 32] [--block-size BYTES] [--out bench/results/snapshot.json]");
    return;
  }
  if (values.child !== undefined) return child(JSON.parse(values.child) as ChildSpec);

  const scale = Number(values.scale);
  const genericMiB = Number(values["generic-mib"]);
  const concurrency = Number(values.concurrency);
  const blockSize = values["block-size"] === undefined ? DEFAULT_BLOCK_SIZE : Number(values["block-size"]);
  const stateDir = mkdtempSync(join(tmpdir(), "walvault-bench-snap-"));
  const log = (s: string): void => console.error(`[bench] ${s}`);
  log(`local stack in ${stateDir}`);
  const stack = await startLocalStack({
    stateDir,
    databases: [
      { id: "bench-pg", kind: "postgres" },
      { id: "bench-gen", kind: "generic" },
    ],
    persistent: false,
  });
  const rows: Record<string, unknown>[] = [];
  let pg: ScratchPostgres | undefined;
  const work = mkdtempSync(join(tmpdir(), "walvault-bench-gen-"));
  try {
    pg = await ScratchPostgres.create({ settings: { max_wal_size: "2GB", autovacuum: "off" } });
    await pg.start();
    log(`pgbench -i -s ${scale}`);
    await pg.pgbench(["-i", "-s", String(scale), "-q"]);
    await pg.psql("checkpoint");
    const alone = await basebackupAlone(pg);
    log(`pg_basebackup alone: ${(alone.bytes / 1e6).toFixed(0)} MB in ${alone.seconds.toFixed(2)} s`);
    const pgSource: SnapshotSource = {
      kind: "postgres",
      pgbasebackup: { binDir: pg.binDir, host: pg.socketDir, port: pg.port, user: "postgres", ...(osUser() ? { asOsUser: osUser()! } : {}) },
    };
    const pgPush = async (name: string, nullStore = false): Promise<ChildOutput> => {
      const opts: SnapshotPushOptions = nullStore ? { concurrency, blockSize, wait: false } : { concurrency, blockSize, timeoutMs: 30 * 60_000 };
      const o = await runChild({ configPath: stack.configPath, databaseId: "bench-pg", source: pgSource, opts, nullStore });
      const r = row(name, o);
      rows.push({ data: `postgres scale ${scale}`, ...r });
      log(JSON.stringify(r));
      return o;
    };
    const empty = join(work, "empty");
    mkdirSync(empty);
    const base = await runChild({
      configPath: stack.configPath,
      databaseId: "bench-gen",
      source: { kind: "generic", dir: empty, streams: [{ id: "wal", lastSegment: "wal/0000", lastSegno: 0 }] },
      opts: { wait: false },
    });
    rows.push({ data: "empty directory", ...row("baseline (process, SDK, config)", base) });
    await pgPush("first, null store (agent only)", true);
    await pgPush("first");
    await pgPush("unchanged");
    const rowsTotal = scale * 100_000;
    await pg.psql(`update pgbench_accounts set abalance = abalance + 1 where aid <= ${rowsTotal / 20}`);
    await pg.psql("checkpoint");
    await pgPush("5% rows, contiguous");
    await pg.psql("update pgbench_accounts set abalance = abalance + 1 where aid % 20 = 7");
    await pg.psql("checkpoint");
    await pgPush("5% rows, scattered");

    if (genericMiB > 0) {
      const dir = join(work, "tree");
      log(`writing ${genericMiB} MiB of random files`);
      writeRandomTree(dir, genericMiB);
      const genSource: SnapshotSource = { kind: "generic", dir, streams: [{ id: "wal", lastSegment: "wal/0001", lastSegno: 1 }] };
      for (const nullStore of [true, false]) {
        const o = await runChild({ configPath: stack.configPath, databaseId: "bench-gen", source: genSource, opts: { concurrency, wait: false }, nullStore });
        const r = row(nullStore ? "all new, null store (agent only)" : "all new, s3rver", o);
        rows.push({ data: `generic ${genericMiB} MiB random`, ...r });
        log(JSON.stringify(r));
      }
    }
    const out = {
      when: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg(), node: process.version },
      scale,
      concurrency,
      blockSize,
      basebackupAlone: { mb: +(alone.bytes / 1e6).toFixed(1), seconds: +alone.seconds.toFixed(2), mbPerS: +(alone.bytes / 1e6 / alone.seconds).toFixed(1) },
      rows,
    };
    mkdirSync(join(values.out, ".."), { recursive: true });
    writeFileSync(values.out, JSON.stringify(out, null, 2) + "\n");
    console.table(rows);
    log(`written ${values.out}`);
  } finally {
    await pg?.destroy();
    await stack.idle();
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
