/**
 * The WAL archive path end to end on a real PostgreSQL 15:
 * archive_command = walvault wal-push → incoming bucket → ingest workflow
 * (the deployed ASL on aws-local-stepfunctions) → vault + catalog; then
 * wal-fetch of every segment, and a base backup recovered with
 * restore_command = walvault wal-fetch to the end of the archive.
 */
import { readFileSync, rmSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyzeContinuity } from "../../core/continuity.js";
import { lastXactField } from "../../core/catalog-records.js";
import { lastXactTimeInSegment } from "../../core/xact-time.js";
import type { WalRecord } from "../../core/schemas.js";
import { parseWalFileName } from "../../core/wal.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { archiveCommandKeeping, archivedSegments, archiveWorkDir, expectFetchedIdentical, pgbenchCounts, switchAndWaitArchived } from "../support/postgres.js";

const MIN_SEGMENTS = 16;

let stack: TestStack;
let primary: ScratchPostgres;
let restored: ScratchPostgres | undefined;
let workDir: string;
let originals: string;
let backupDir: string;
let expected: { history: string; balance: string };
/** Just before the last pgbench run: it commits after this. */
let lastRunStarted: Date;

beforeAll(async () => {
  // Prepare: the local stack, and a primary whose archive_command pushes through walvault
  // (and keeps a copy of each archived file to compare against).
  stack = await startTestStack([{ id: "pg-main" }]);
  ({ workDir, originals } = archiveWorkDir("walvault-e2e-"));
  backupDir = join(workDir, "backup");
  const env = { WALVAULT_CONFIG: stack.configPath };
  primary = await ScratchPostgres.create({
    settings: {
      archive_mode: "on",
      archive_command: archiveCommandKeeping(originals),
    },
    env,
  });
  await primary.start();
  await primary.pgbench(["-i", "-s", "2", "-q"]);
  // The base backup comes before the writes it must replay.
  await primary.basebackup(backupDir, ["-X", "none"]);
  for (let i = 0; i < MIN_SEGMENTS; i++) {
    lastRunStarted = new Date();
    await primary.pgbench(["-c", "2", "-t", "150", "-n"]);
    await primary.psql("select pg_switch_wal()");
  }
  await primary.psql("checkpoint");
  await switchAndWaitArchived(primary);
  expected = await pgbenchCounts(primary);
  // A clean shutdown archives whatever is left; after it, the archive no longer moves.
  await primary.stop({ mode: "fast" });
  await stack.idle();
}, 600_000);

afterAll(async () => {
  await restored?.destroy().catch(() => undefined);
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("archive_command = walvault wal-push on PostgreSQL 15", () => {
  it("archives every segment, contiguous with no gap, and lists them with --json", async () => {
    // Prepare: what archive_command reported archived (copied only after wal-push exited 0).
    const archivedHere = archivedSegments(originals);

    // Act
    const r = await stack.cli(["wal", "list", "--json"]);
    const status = await stack.cli(["status", "--json"]);

    // Assess: every segment PostgreSQL saw archived is in the catalog, contiguous.
    expect(r.code, r.stderr).toBe(0);
    const records = JSON.parse(r.stdout) as WalRecord[];
    const segments = records.filter((x) => x.kind === "segment");
    expect(segments.length).toBeGreaterThanOrEqual(MIN_SEGMENTS);
    expect(segments.map((s) => s.name)).toEqual(expect.arrayContaining(archivedHere));
    expect(archivedHere.length).toBeGreaterThanOrEqual(MIN_SEGMENTS);
    const continuity = analyzeContinuity(segments.map((s) => parseWalFileName(s.name) as { timeline: number; segno: bigint }));
    expect(continuity).toHaveLength(1);
    expect(continuity[0]!.gaps).toEqual([]);
    expect(continuity[0]!.ranges).toHaveLength(1);
    expect(JSON.parse(status.stdout)).toMatchObject({ databaseId: "pg-main", gaps: 0, segments: segments.length });
  });

  it("records each segment's latest commit time, read from the WAL PostgreSQL wrote, the last of them after the last pgbench run began", async () => {
    // Prepare
    const r = await stack.cli(["wal", "list", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const segments = (JSON.parse(r.stdout) as WalRecord[]).filter((x) => x.kind === "segment" && existsSync(join(originals, x.name)));
    // Act: what the walk finds in PostgreSQL's own bytes.
    const fromWal = segments.map((s) => lastXactField(lastXactTimeInSegment(readFileSync(join(originals, s.name)))).lastXactAt);
    // Assess: ingest recorded exactly that; every pgbench stretch committed, so most segments hold a commit;
    // the latest lies after the last run began and not in the future.
    expect(segments.map((s) => s.lastXactAt)).toEqual(fromWal);
    expect(fromWal.filter(Boolean).length).toBeGreaterThanOrEqual(MIN_SEGMENTS / 2);
    const latest = new Date(fromWal.filter((t): t is string => t !== undefined).sort().at(-1)!);
    expect(latest.getTime()).toBeGreaterThanOrEqual(lastRunStarted.getTime());
    expect(latest.getTime()).toBeLessThanOrEqual(Date.now());
  });

  it("fetches every archived segment byte-identical to what PostgreSQL wrote", async () => {
    // Act and Assess: one wal-fetch process per segment, as restore_command runs them, three at a time.
    await expectFetchedIdentical((args) => stack.cli(args), originals);
  }, 300_000);

  it("recovers a base backup to the end of the archive with restore_command = walvault wal-fetch, and keeps the copy out of the source's stream", async () => {
    // Prepare: the backup inherits the primary's archive_command (push into pg-main): the classic trap.
    restored = await ScratchPostgres.fromDataDir(backupDir, {
      signal: "recovery",
      settings: { restore_command: `'${WALVAULT_BIN}' wal-fetch %f %p` },
      env: { WALVAULT_CONFIG: stack.configPath },
      ownDataDir: true,
    });

    // Act
    await restored.start();
    await restored.waitForRecoveryEnd(300_000);
    const got = await pgbenchCounts(restored);

    // Assess: exactly the primary's rows.
    expect(got).toEqual(expected);
    expect(readFileSync(join(backupDir, "walvault.restored-from"), "utf8").trim()).toBe("pg-main");

    // Assess: the promoted copy tried to archive (its timeline history at least) and was refused.
    await restored.psql("create table after_restore(x int); insert into after_restore values (1); select pg_switch_wal();");
    const deadline = Date.now() + 60_000;
    let failed = 0;
    while (failed === 0 && Date.now() < deadline) {
      failed = Number(await restored.psql("select failed_count from pg_stat_archiver"));
      if (failed === 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(failed).toBeGreaterThan(0);
    // ...and its first archive_command cleared what wal-fetch had prefetched during recovery.
    const prefetchDir = join(restored.dataDir, "pg_wal", ".walvault-prefetch");
    for (let i = 0; i < 100 && existsSync(prefetchDir); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(prefetchDir)).toBe(false);
    expect(await restored.logTail(200)).toContain("restored from database 'pg-main'");
    await stack.idle();
    const after = await stack.cli(["wal", "list", "--json"]);
    expect(after.code, after.stderr).toBe(0);
    const list = JSON.parse(after.stdout) as WalRecord[];
    expect(list.filter((x) => x.timeline !== 1)).toEqual([]);
    expect(existsSync(join(restored.dataDir, "pg_wal", "00000002.history"))).toBe(true);
  }, 400_000);
});
