/**
 * Cross-region replication end to end (issue #4) on the local stack with two
 * replica regions, each its own s3rver: a region that is down while WAL is
 * archived shows its lag, the replicate workflow brings it level once it is
 * back, and with the primary region's storage stopped a PostgreSQL 15 restore
 * from the replica reaches exactly the row count at the target time. Also the
 * durability levels of wal-push (--wait quorum=N / replicated).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { stackClients, tempDir, writeWal } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";
import { switchAndWaitArchived } from "../support/postgres.js";

const DB = "pg-repl";
const QUORUM_DB = "pg-quorum";
const A = "local-2";
const B = "local-3";

let stack: TestStack;
let primary: ScratchPostgres;
let workDir: string;
const at = { time: "", count: 0 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const region = (name: string) => stack.regions.find((r) => r.region === name)!;

interface RegionStatus {
  region: string;
  missingWal: number;
  missingSnapshots: number;
  lagSeconds: number;
  wal: number;
  snapshots: number;
  windows: { from: string; to: string }[];
}
async function regions(db = DB): Promise<RegionStatus[]> {
  const r = await stack.cli(["status", "--database", db, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { regions: RegionStatus[] }).regions;
}


beforeAll(async () => {
  stack = await startTestStack([{ id: DB }, { id: QUORUM_DB }], { replicaRegions: [A, B] });
  workDir = mkdtempSync(join(tmpdir(), "walvault-repl-"));
  chmodSync(workDir, 0o777);
}, 120_000);

afterAll(async () => {
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("replication to two regions, one of them down for a while", () => {
  it("archives while B is down (primary and A complete, B lagging), catches B up, then restores from B with the primary down", async () => {
    // Prepare: region B's storage is down while the database archives.
    await region(B).stop();
    primary = await ScratchPostgres.create({
      settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push --database ${DB} %p` },
      env: { WALVAULT_CONFIG: stack.configPath },
    });
    await primary.start();
    await primary.psql("create table events(id bigserial primary key, note text)");
    await primary.psql("insert into events(note) select 'a' from generate_series(1, 500)");
    const push = await stack.cli(["snapshot", "push", "--database", DB, "--host", primary.socketDir, "--port", String(primary.port), "--user", "postgres"]);
    expect(push.code, push.stderr).toBe(0);
    await primary.psql("insert into events(note) select 'b' from generate_series(1, 700)");
    await sleep(1100);
    at.count = Number(await primary.psql("select count(*) from events"));
    at.time = await primary.psql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await sleep(1100);
    await primary.psql("insert into events(note) select 'c' from generate_series(1, 900)");
    await switchAndWaitArchived(primary);
    await stack.idle();

    // Assess 1: the primary and A hold everything; B shows what it lacks and for how long.
    const before = await regions();
    const byName = new Map(before.map((r) => [r.region, r]));
    expect(byName.get("local-1")!.windows.length).toBe(1);
    expect(byName.get(A)).toMatchObject({ missingWal: 0, missingSnapshots: 0 });
    expect(byName.get(A)!.windows).toEqual(byName.get("local-1")!.windows);
    expect(byName.get(B)!.missingWal).toBeGreaterThan(0);
    expect(byName.get(B)!.missingSnapshots).toBe(1);
    expect(byName.get(B)!.windows).toEqual([]);

    // Act 2: B comes back; the replicate workflow brings it level.
    await region(B).start();
    const rep = await stack.cli(["replicate", "--region", B, "--json"]);
    expect(rep.code, rep.stderr).toBe(0);
    expect((JSON.parse(rep.stdout) as { output: { complete: boolean } }).output.complete).toBe(true);
    const after = new Map((await regions()).map((r) => [r.region, r]));
    expect(after.get(B)).toMatchObject({ missingWal: 0, missingSnapshots: 0, lagSeconds: 0 });
    expect(after.get(B)!.windows).toEqual(after.get("local-1")!.windows);

    // Act 3: the primary region's storage goes down; restore from B to the remembered time.
    await primary.stop();
    await region("local-1").stop();
    const dir = join(workDir, "from-b");
    const r = await stack.cli(["restore", "--database", DB, "--region", B, "--to", dir, "--target-time", at.time]);
    expect(r.code, r.stderr).toBe(0);
    const restored = await ScratchPostgres.fromDataDir(dir, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
    try {
      await restored.start();
      await restored.waitForRecoveryEnd(300_000);
      // Assess 3: exactly the rows at the target time, read from B alone.
      expect(Number(await restored.psql("select count(*) from events"))).toBe(at.count);
    } finally {
      await restored.destroy();
      await region("local-1").start();
    }
  }, 600_000);
});

describe("wal-push durability across regions", () => {
  it("--wait quorum=2 returns while one replica is down; --wait replicated times out naming it, and the segment stays recorded", async () => {
    // Prepare: region A down, B up.
    await region(A).stop();
    const dir = tempDir();
    const first = writeWal(dir, "000000010000000000000020", syntheticSegment("000000010000000000000020", 20));
    const second = writeWal(dir, "000000010000000000000021", syntheticSegment("000000010000000000000021", 21));
    try {
      // Act
      const quorum = await stack.cli(["wal-push", "--database", QUORUM_DB, "--wait", "quorum=2", "--timeout", "30", first]);
      const all = await stack.cli(["wal-push", "--database", QUORUM_DB, "--wait", "replicated", "--timeout", "4", second]);
      // Assess
      expect(quorum.code, quorum.stderr).toBe(0);
      expect(all.code).toBe(5);
      expect(all.stderr.trim().split("\n")).toHaveLength(1);
      expect(all.stderr).toContain(`not yet in ${A}`);
      expect(all.stderr).toContain("will still replicate");
      const rec = await stackClients(stack).catalog.getWal(QUORUM_DB, "000000010000000000000021");
      expect(rec?.status).toBe("stored");
      expect(rec?.replicas[B]?.status).toBe("replicated");
      expect(rec?.replicas[A]?.status).not.toBe("replicated");
    } finally {
      await region(A).start();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("refuses a quorum larger than the regions in one line", async () => {
    const r = await stack.cli(["wal-push", "--database", QUORUM_DB, "--wait", "quorum=4", "/nonexistent"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("asks for 4 regions, but there are 3");
  });
});
