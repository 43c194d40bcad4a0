/**
 * A real PostgreSQL 15 cluster initialised with 1 MiB WAL segments
 * (initdb --wal-segsize=1): a snapshot, then 300+ segments of real WAL pushed
 * by the agent's wal-push through the local stack's ingest workflow, then
 * `walvault restore --latest`, replayed to the last row.
 *
 * PostgreSQL's own archive_command copies each segment aside (cp) and the
 * test pushes them 8 at a time with walPush, in-process: 300 archive_command
 * processes would take minutes on a loaded machine. For the same reason the
 * restored cluster's restore_command copies from a directory that walFetch
 * (walvault's own fetch, SHA-256 checked, in-process) filled from the archive.
 * Everything else is the product: ingest with the database's segment size,
 * the catalog, the vault, snapshot push, the restore plan and layout.
 *
 * Issue #10, point 2: ingest parsed the key with the default 16 MiB size and
 * quarantined the 257th segment (…00000100).
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapLimit } from "../../core/concurrency.js";
import { analyzeContinuity } from "../../core/continuity.js";
import type { WalRecord } from "../../core/schemas.js";
import { parseWalFileName, walFileShape } from "../../core/wal.js";
import { walFetch } from "../../agent/wal-fetch.js";
import { walPush } from "../../agent/wal-push.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { switchAndWaitArchived } from "../support/postgres.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "pg-small";
const MIB = 1 << 20;
const SWITCHES = 310;

let stack: TestStack;
let clients: StackClients;
let primary: ScratchPostgres;
let workDir: string;
let copies: string;
let rows = 0;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, walSegmentSize: MIB }]);
  clients = stackClients(stack);
  workDir = mkdtempSync(join(tmpdir(), "walvault-small-pg-"));
  chmodSync(workDir, 0o777);
  copies = join(workDir, "archived");
  mkdirSync(copies);
  chmodSync(copies, 0o777);
  primary = await ScratchPostgres.create({
    initdbArgs: ["--wal-segsize=1"],
    settings: { archive_mode: "on", archive_command: `cp %p '${copies}/%f'`, max_wal_size: "64MB" },
    env: { WALVAULT_CONFIG: stack.configPath },
  });
  await primary.start();
  expect(await primary.psql("show wal_segment_size")).toBe("1MB");
  await primary.psql("create table events(id int primary key, note text)");
  const push = await stack.cli(["snapshot", "push", "--database", DB, "--host", primary.socketDir, "--port", String(primary.port), "--user", "postgres", "--json"]);
  if (push.code !== 0) throw new Error(`snapshot push failed: ${push.stderr}`);
  // One row per segment after the snapshot, each segment closed by a switch.
  await primary.psql(
    `do $$ begin for i in 1..${SWITCHES} loop insert into events values (i, repeat('x', 100)); perform pg_switch_wal(); end loop; end $$`,
  );
  rows = Number(await primary.psql("select count(*) from events"));
  await switchAndWaitArchived(primary);
}, 300_000);

afterAll(async () => {
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("PostgreSQL 15 with 1 MiB WAL segments", () => {
  it("archives 300+ real segments through ingest, contiguous, and restores to the latest row", async () => {
    // Prepare: every file PostgreSQL archived (segments and the backup's .backup file).
    const names = readdirSync(copies).sort();
    const segments = names.filter((n) => walFileShape(n) === "segment");
    expect(segments.length).toBeGreaterThanOrEqual(300);
    expect(segments).toContain("000000010000000000000100"); // the 257th: out of range for 16 MiB segments
    const cfg = { ...stack.config, databaseId: DB };

    // Act: push each as archive_command would, waiting until stored.
    const pushed = await mapLimit(names, 8, (n) => walPush(join(copies, n), cfg, clients, { wait: "stored", timeoutMs: 60_000, cwd: workDir }));

    // Assess: all stored, none quarantined, contiguous in `wal list`.
    expect(new Set(pushed.map((p) => p.outcome))).toEqual(new Set(["stored"]));
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
    const listed = await stack.cli(["wal", "list", "--json", "--database", DB]);
    expect(listed.code, listed.stderr).toBe(0);
    const records = (JSON.parse(listed.stdout) as WalRecord[]).filter((r) => r.kind === "segment");
    expect(records.map((r) => r.name).sort()).toEqual(segments);
    const [tl1, ...others] = analyzeContinuity(records.map((r) => ({ timeline: r.timeline, segno: parseWalFileName(r.name, MIB).segno! })));
    expect(others).toEqual([]);
    expect(tl1!.gaps).toEqual([]);
    expect(tl1!.ranges).toHaveLength(1);

    // Act: restore to the latest; replay from what walFetch brings back from the archive.
    const restoredDir = join(workDir, "restored");
    const r = await stack.cli(["restore", "--database", DB, "--to", restoredDir, "--latest"]);
    expect(r.code, r.stderr).toBe(0);
    const fetched = join(workDir, "fetched");
    mkdirSync(fetched);
    chmodSync(fetched, 0o777);
    await mapLimit(segments, 8, async (n) => {
      await walFetch(n, join(fetched, n), cfg, clients);
      chmodSync(join(fetched, n), 0o644); // the server (user postgres) copies it
      expect(readFileSync(join(fetched, n)).equals(readFileSync(join(copies, n))), n).toBe(true);
    });
    appendFileSync(join(restoredDir, "postgresql.auto.conf"), `restore_command = 'cp ${fetched}/%f %p'\n`);
    const restored = await ScratchPostgres.fromDataDir(restoredDir, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
    try {
      await restored.start().catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}\n${await restored.logTail(30)}`);
      });
      await restored.waitForRecoveryEnd(120_000);
      // Assess: every row, the last one written in the last segments.
      expect(Number(await restored.psql("select count(*) from events"))).toBe(rows);
      expect(rows).toBe(SWITCHES);
    } finally {
      await restored.destroy();
    }
  }, 240_000);
});
