/**
 * Point-in-time restore end to end on a real PostgreSQL 15, through the CLI:
 * snapshot push while pgbench writes, then restores to a time, an LSN and a
 * named restore point, each reaching exactly the row count at that point;
 * pg_verifybackup passes on the restored base backup.
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { switchAndWaitArchived } from "../support/postgres.js";

let stack: TestStack;
let primary: ScratchPostgres;
let workDir: string;
const points: { time: string; lsn: string; count: number; timeCount: number; lsnCount: number; nameCount: number } = {
  time: "",
  lsn: "",
  count: 0,
  timeCount: 0,
  lsnCount: 0,
  nameCount: 0,
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function insert(n: number): Promise<number> {
  await primary.psql(`insert into events(note) select 'row' from generate_series(1, ${n})`);
  return Number(await primary.psql("select count(*) from events"));
}


beforeAll(async () => {
  stack = await startTestStack([{ id: "pg-pitr" }]);
  workDir = mkdtempSync(join(tmpdir(), "walvault-pitr-"));
  chmodSync(workDir, 0o777);
  primary = await ScratchPostgres.create({
    settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
    env: { WALVAULT_CONFIG: stack.configPath },
  });
  await primary.start();
  await primary.psql("create table events(id bigserial primary key, at timestamptz not null default clock_timestamp(), note text)");
  await primary.pgbench(["-i", "-s", "2", "-q"]);
  await insert(100);

  // The snapshot is taken while pgbench writes.
  const load = primary.pgbench(["-c", "2", "-T", "8", "-n"]);
  const push = await stack.cli(["snapshot", "push", "--host", primary.socketDir, "--port", String(primary.port), "--user", "postgres", "--json"]);
  await load;
  if (push.code !== 0) throw new Error(`snapshot push failed: ${push.stderr}`);

  // T1: a time after the snapshot, with a known count.
  await sleep(1100);
  points.timeCount = await insert(250);
  points.time = await primary.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  await sleep(1100);
  // An LSN with a known count.
  points.lsnCount = await insert(300);
  points.lsn = await primary.psql("select pg_current_wal_insert_lsn()");
  // A named restore point with a known count.
  points.nameCount = await insert(350);
  await primary.psql("select pg_create_restore_point('before_the_rest')");
  points.count = await insert(400);
  await primary.pgbench(["-c", "2", "-t", "200", "-n"]);
  await switchAndWaitArchived(primary);
  await stack.idle();
}, 600_000);

afterAll(async () => {
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

async function restoreAndCount(target: string[], name: string): Promise<{ count: number; verify: string }> {
  const dir = join(workDir, name);
  const r = await stack.cli(["restore", "--to", dir, ...target]);
  expect(r.code, r.stderr).toBe(0);
  const restored = await ScratchPostgres.fromDataDir(dir, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
  try {
    // pg_verifybackup before the server touches the files: WAL comes from the archive (-n);
    // the restore marker is walvault's own file (-i).
    const verify = await restored.run("pg_verifybackup", ["-n", "-i", "walvault.restored-from", dir], { allowFailure: true });
    expect(verify.code, verify.stderr).toBe(0);
    await restored.start();
    await restored.waitForRecoveryEnd(300_000);
    return { count: Number(await restored.psql("select count(*) from events")), verify: verify.stdout };
  } finally {
    await restored.destroy();
  }
}

describe("point-in-time restore of PostgreSQL 15", () => {
  it("--target-time reaches exactly the row count at that time", async () => {
    const { count } = await restoreAndCount(["--target-time", points.time], "by-time");
    expect(count).toBe(points.timeCount);
  }, 400_000);

  it("--target-lsn reaches exactly the row count at that LSN", async () => {
    const { count } = await restoreAndCount(["--target-lsn", points.lsn], "by-lsn");
    expect(count).toBe(points.lsnCount);
  }, 400_000);

  it("--target-name reaches exactly the row count at the restore point", async () => {
    const { count } = await restoreAndCount(["--target-name", "before_the_rest"], "by-name");
    expect(count).toBe(points.nameCount);
  }, 400_000);

  it("refuses a target after the end of the archive in one line, creating nothing", async () => {
    // Prepare
    const dir = join(workDir, "too-late");
    const future = new Date(Date.now() + 3_600_000).toISOString();
    // Act
    const r = await stack.cli(["restore", "--to", dir, "--target-time", future]);
    const lsn = await stack.cli(["restore", "--to", dir, "--target-lsn", "FF/0"]);
    // Assess
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^walvault: .*is later than the last archived WAL/);
    expect(lsn.code).not.toBe(0);
    expect(lsn.stderr).toMatch(/^walvault: .*is after the end of the archive/);
    expect(existsSync(dir)).toBe(false);
  });

  it("lists the snapshot with --json", async () => {
    const r = await stack.cli(["snapshot", "list", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; status: string }[];
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ kind: "postgres", status: "restorable" });
  });
});
