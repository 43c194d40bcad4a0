/**
 * `npm start`: the whole archive path on one machine. Starts the embedded
 * stack, a scratch PostgreSQL 15 whose archive_command is `walvault wal-push`,
 * runs pgbench while switching WAL segments, waits until everything is
 * archived, and prints what the vault holds.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { startLocalStack } from "./stack.js";
import { ScratchPostgres } from "./postgres.js";
import { WALVAULT_BIN } from "./paths.js";

const SEGMENTS = Number(process.env.WALVAULT_DEMO_SEGMENTS ?? 12);

function step(msg: string): void {
  process.stdout.write(`\n== ${msg}\n`);
}

function walvault(args: string[], env: Record<string, string>): string {
  const r = spawnSync(WALVAULT_BIN, args, { env: { ...process.env, ...env }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`walvault ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), "walvault-demo-"));
  step("starting the embedded stack (s3rver, DynamoDB Local, ingest workflow on aws-local-stepfunctions)");
  const stack = await startLocalStack({ stateDir, databases: [{ id: "demo-pg" }], persistent: false, verbose: true });
  const env = { WALVAULT_CONFIG: stack.configPath };
  let pg: ScratchPostgres | undefined;
  try {
    process.stdout.write(`S3 ${stack.config.s3Endpoint}, DynamoDB ${stack.config.dynamodbEndpoint}\n`);
    step("scratch PostgreSQL 15 with archive_command = 'walvault wal-push %p'");
    pg = await ScratchPostgres.create({
      settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
      env,
    });
    await pg.start();
    process.stdout.write(`data directory ${pg.dataDir}, port ${pg.port}\n`);
    step(`pgbench while switching WAL ${SEGMENTS} times`);
    await pg.pgbench(["-i", "-s", "2", "-q"]);
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
    step("walvault wal list");
    process.stdout.write(walvault(["wal", "list"], env));
    step("walvault status");
    process.stdout.write(walvault(["status"], env));
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
