/**
 * `npm start`: the whole archive path on one machine. Starts the embedded
 * stack, a scratch PostgreSQL 15 whose archive_command is `walvault wal-push`,
 * runs pgbench while switching WAL segments, waits until everything is
 * archived (and copied to two replica regions, each its own S3 endpoint),
 * prints what the vault holds and each region's restorable window, and
 * restores from a replica region to a remembered moment, checked by row count,
 * runs the scheduled L4 verification and prints the retention plan (dry run).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { spawn } from "node:child_process";
import { startLocalStack } from "./stack.js";
import { ScratchPostgres } from "../agent/postgres.js";
import { WALVAULT_BIN } from "./paths.js";

const SEGMENTS = Number(process.env.WALVAULT_DEMO_SEGMENTS ?? 12);
const REPLICAS = ["local-2", "local-3"];

function step(msg: string): void {
  process.stdout.write(`\n== ${msg}\n`);
}

/**
 * Runs the CLI without blocking this process: the embedded stack's ingest
 * runs on this event loop, and commands like `snapshot push` wait for it.
 */
function walvault(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(WALVAULT_BIN, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) return resolve(out);
      // The reason may be on stderr, on stdout (a command that prints its results and exits 1), or nowhere: say which.
      const reason = err.trim() || out.trim().split("\n").slice(-10).join("\n") || "no output";
      reject(new Error(`walvault ${args.join(" ")} failed (${signal ? `signal ${signal}` : `exit ${code}`}): ${reason}`));
    });
  });
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), "walvault-demo-"));
  step("starting the embedded stack (s3rver per region, DynamoDB Local, the workflows on aws-local-stepfunctions)");
  const stack = await startLocalStack({
    stateDir,
    databases: [{ id: "demo-pg" }],
    persistent: false,
    verbose: true,
    replicaRegions: REPLICAS,
    verifyChecks: { sql: [{ name: "pgbench accounts intact", query: "select count(*) = 200000 from pgbench_accounts", expect: "t" }] },
  });
  const env = { WALVAULT_CONFIG: stack.configPath };
  let pg: ScratchPostgres | undefined;
  try {
    process.stdout.write(
      `S3 ${stack.regions.map((r) => `${r.region} ${r.endpoint}`).join(", ")}; DynamoDB ${stack.config.dynamodbEndpoint}\n`,
    );
    step("scratch PostgreSQL 15 with archive_command = 'walvault wal-push %p'");
    pg = await ScratchPostgres.create({
      settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
      env,
    });
    await pg.start();
    process.stdout.write(`data directory ${pg.dataDir}, port ${pg.port}\n`);
    step("walvault snapshot push (the data directory read between pg_backup_start and pg_backup_stop, into packs of content-addressed chunks)");
    await pg.pgbench(["-i", "-s", "2", "-q"]);
    process.stdout.write(
      await walvault(["snapshot", "push", "--host", pg.socketDir, "--port", String(pg.port), "--user", "postgres"], env),
    );
    // Writes after the snapshot: the target below is a point in this WAL, not the snapshot itself.
    await pg.pgbench(["-c", "2", "-t", "300", "-n"]);
    const t1 = await pg.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    const countAtT1 = await pg.psql("select count(*) from pgbench_history");
    await new Promise((r) => setTimeout(r, 1100));
    step(`pgbench while switching WAL ${SEGMENTS} times`);
    const t0 = Date.now();
    for (let i = 0; i < SEGMENTS; i++) {
      await pg.pgbench(["-c", "2", "-t", "200", "-n"]);
      await pg.psql("select pg_switch_wal()");
      process.stdout.write(".");
    }
    const closed = await pg.psql("select pg_walfile_name(pg_switch_wal())");
    for (;;) {
      const last = await pg.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
      if (last >= closed) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const archiver = await pg.psql("select archived_count || ' archived, ' || failed_count || ' failed' from pg_stat_archiver");
    process.stdout.write(`\nPostgreSQL reports ${archiver} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    await stack.idle(); // the copies to the replica regions finish after each segment is recorded
    step("walvault wal list");
    process.stdout.write(await walvault(["wal", "list"], env));
    step("walvault status  (per region: what it holds, its lag, the windows point-in-time recovery reaches)");
    process.stdout.write(await walvault(["status"], env));
    const countNow = await pg.psql("select count(*) from pgbench_history");
    const from = REPLICAS.at(-1)!;
    step(`walvault restore --region ${from} --target-time ${t1}  (from the replica's vault alone; pgbench_history had ${countAtT1} rows then, ${countNow} now)`);
    const restoreDir = join(stateDir, "restored");
    process.stdout.write((await walvault(["restore", "--region", from, "--to", restoreDir, "--target-time", t1], env)) + "\n");
    const restored = await ScratchPostgres.fromDataDir(restoreDir, { env, ownDataDir: true });
    try {
      await restored.start();
      await restored.waitForRecoveryEnd(300_000);
      const got = await restored.psql("select count(*) from pgbench_history");
      process.stdout.write(
        `restored server recovered to ${t1}: pgbench_history has ${got} rows ` +
          `(${got === countAtT1 ? "exactly as at the target" : `expected ${countAtT1}!`})\n`,
      );
      if (got !== countAtT1) process.exitCode = 1;
    } finally {
      await restored.destroy();
    }
    step("walvault verify --scheduled  (the verification workflow, fired as its schedule would: L4 restore to a random moment in a task)");
    process.stdout.write(await walvault(["verify", "--scheduled"], env));
    process.stdout.write(await walvault(["verify", "history"], env));
    step("walvault prune --dry-run  (the retention plan: GFS slots, the recovery window, what could go; nothing is deleted)");
    process.stdout.write(await walvault(["prune", "--dry-run"], env));
    // Outside the state directory, which goes when the demo ends: the page is self-contained and stays.
    const report = join(tmpdir(), "walvault-demo-report.html");
    step("walvault report --html  (per database and region: the restorable windows, the snapshots and their verification, WAL coverage and gaps)");
    process.stdout.write(await walvault(["report", "--html", report], env));
    process.stdout.write(`open it in a browser: ${pathToFileURL(report).href}\n`);
    process.stdout.write(
      `\ningest executions: ${stack.stats.succeeded} succeeded, ${stack.stats.failed} failed\n` +
        `\nNext: point your own PostgreSQL at it — see README.md.\n`,
    );
  } finally {
    await pg?.destroy().catch(() => undefined);
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`walvault demo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
