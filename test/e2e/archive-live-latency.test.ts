/**
 * Archiving a busy PostgreSQL 15 through the resident agent at AWS's latency
 * (issue 13): the local stack waits out event delivery, invokes and cold
 * starts (local/latency.ts AWS_LATENCY), so a segment is "stored" a second
 * or more after its upload, as in AWS. pgbench writes while
 * `archive_command = walvault wal-push %p` asks `walvault agent --pgdata`,
 * which pushes .ready segments ahead. Then: every segment is archived,
 * contiguous and byte-identical to what PostgreSQL wrote, and a base backup
 * recovered with wal-fetch reaches the primary's row counts.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScratchPostgres } from "../../agent/postgres.js";
import { analyzeContinuity } from "../../core/continuity.js";
import type { WalRecord } from "../../core/schemas.js";
import { parseWalFileName } from "../../core/wal.js";
import { AWS_LATENCY } from "../../local/latency.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { startPgAgent, type PgAgent } from "../support/pg-agent.js";
import { archiveCommandKeeping, archivedSegments, archiveWorkDir, expectFetchedIdentical, pgbenchCounts, switchAndWaitArchived } from "../support/postgres.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "pg-live";
/** Segments pgbench must have written (and PostgreSQL archived) before the checks. */
const MIN_SEGMENTS = 8;

let stack: TestStack;
let primary: ScratchPostgres;
let restored: ScratchPostgres | undefined;
let agent: PgAgent | undefined;
let workDir: string;
let originals: string;
let backupDir: string;
let expected: { history: string; balance: string };
/** archive_command calls that failed (pg_stat_archiver), before the primary stopped. */
let failedCalls: number;


beforeAll(async () => {
  // Prepare: the stack at AWS's latency, a primary archiving through the agent (keeping a copy of what each call reported archived)
  stack = await startTestStack([{ id: DB }], { latency: AWS_LATENCY });
  ({ workDir, originals } = archiveWorkDir("walvault-live-"));
  backupDir = join(workDir, "backup");
  const socket = join(workDir, "agent.sock");
  primary = await ScratchPostgres.create({
    settings: { archive_mode: "on", archive_command: archiveCommandKeeping(originals) },
    env: { WALVAULT_CONFIG: stack.configPath, WALVAULT_DATABASE: DB, WALVAULT_AGENT_SOCKET: socket },
  });
  await primary.start();
  await primary.pgbench(["-i", "-s", "2", "-q"]);
  await primary.basebackup(backupDir, ["-X", "none"]);
  agent = await startPgAgent({ configPath: stack.configPath, socket, dataDir: primary.dataDir, database: DB, home: workDir, timeoutSeconds: 60 });

  // Act: pgbench rounds (4 clients, 2 threads) until enough segments were written
  const start = await primary.psql("select pg_walfile_name(pg_current_wal_lsn())");
  for (let round = 0; round < 20; round++) {
    await primary.pgbench(["-n", "-c", "4", "-j", "2", "-T", "5"]);
    const now = await primary.psql("select pg_walfile_name(pg_current_wal_lsn())");
    if (parseWalFileName(now).kind === "segment" && (parseWalFileName(now) as { segno: bigint }).segno - (parseWalFileName(start) as { segno: bigint }).segno >= BigInt(MIN_SEGMENTS)) break;
  }
  await switchAndWaitArchived(primary, 300_000);
  expected = await pgbenchCounts(primary);
  failedCalls = Number(await primary.psql("select failed_count from pg_stat_archiver"));
  await primary.stop({ mode: "fast" });
  await stack.idle();
}, 900_000);

afterAll(async () => {
  agent?.child.kill("SIGTERM");
  await restored?.destroy().catch(() => undefined);
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("archiving a busy PostgreSQL through the resident agent at AWS's latency", () => {
  it("archives every segment PostgreSQL closed, contiguous, with no failed archive_command call", async () => {
    // Act
    const list = await stack.cli(["wal", "list", "--json", "--database", DB]);

    // Assess
    expect(list.code, list.stderr).toBe(0);
    const segments = (JSON.parse(list.stdout) as WalRecord[]).filter((x) => x.kind === "segment");
    expect(archivedSegments(originals).length).toBeGreaterThanOrEqual(MIN_SEGMENTS);
    expect(segments.map((s) => s.name)).toEqual(expect.arrayContaining(archivedSegments(originals)));
    const continuity = analyzeContinuity(segments.map((s) => parseWalFileName(s.name) as { timeline: number; segno: bigint }));
    expect(continuity).toHaveLength(1);
    expect(continuity[0]!.gaps).toEqual([]);
    // The agent pushed ahead of the archiver: no call failed (a failure would make PostgreSQL retry it, late).
    expect(failedCalls).toBe(0);
  });

  it("holds every segment byte-identical to what PostgreSQL wrote", async () => {
    // Act and Assess
    await expectFetchedIdentical((args) => stack.cli(args), originals, ["--database", DB]);
  }, 300_000);

  it("recovers a base backup to the latest archived segment with the primary's row counts", async () => {
    // Prepare
    restored = await ScratchPostgres.fromDataDir(backupDir, {
      signal: "recovery",
      settings: { restore_command: `'${WALVAULT_BIN}' wal-fetch %f %p`, archive_mode: "off" },
      env: { WALVAULT_CONFIG: stack.configPath, WALVAULT_DATABASE: DB },
      ownDataDir: true,
    });

    // Act
    await restored.start();
    await restored.waitForRecoveryEnd(300_000);

    // Assess
    expect(await pgbenchCounts(restored)).toEqual(expected);
    expect(existsSync(join(backupDir, "walvault.restored-from"))).toBe(true);
  }, 400_000);
});
