/**
 * Scheduled verification end to end (issue #5) on the local stack and a real
 * PostgreSQL 15: the verify workflow (statemachines/verify.asl.json, fired as
 * its schedule would) restores the snapshot in a child-process task, recovers
 * to a random target, runs pg_amcheck and a user SQL check, and records the
 * run with its restore time; a flipped byte in a chunk fails L2 naming the
 * chunk and the file, is recorded and notified; a WAL segment removed from
 * the middle fails L3 naming the gap.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeleteCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VerificationRecord } from "../../core/schemas.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { databasePk, walSk } from "../../store/catalog-layout.js";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { readPackIndex } from "../../store/pack-index.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { switchAndWaitArchived } from "../support/postgres.js";

const DB = "pg-verify";
const CHECKS = { sql: [{ name: "events were restored", query: "select count(*) > 0 from events", expect: "t" }] };

let stack: TestStack;
let clients: StackClients;
let primary: ScratchPostgres;
let workDir: string;
let snapshotId: string;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


async function history(): Promise<VerificationRecord[]> {
  const r = await stack.cli(["verify", "history", "--database", DB, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as VerificationRecord[];
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }], { verifyChecks: CHECKS });
  clients = stackClients(stack);
  workDir = mkdtempSync(join(tmpdir(), "walvault-verify-"));
  chmodSync(workDir, 0o777);
  primary = await ScratchPostgres.create({
    settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
    env: { WALVAULT_CONFIG: stack.configPath },
  });
  await primary.start();
  await primary.psql("create table events(id bigserial primary key, note text)");
  await primary.psql("insert into events(note) select 'a' from generate_series(1, 1000)");
  const push = await stack.cli(["snapshot", "push", "--host", primary.socketDir, "--port", String(primary.port), "--user", "postgres", "--json"]);
  if (push.code !== 0) throw new Error(`snapshot push failed: ${push.stderr}`);
  snapshotId = (JSON.parse(push.stdout) as { snapshotId: string }).snapshotId;
  for (let i = 0; i < 3; i++) {
    await sleep(1100);
    await primary.psql("insert into events(note) select 'b' from generate_series(1, 500)");
    await switchAndWaitArchived(primary);
  }
  await stack.idle();
}, 600_000);

afterAll(async () => {
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("verification of a PostgreSQL snapshot", () => {
  it("the scheduled workflow passes L4 at a random target with pg_amcheck and the user's SQL check, and records the restore time", async () => {
    // Act: fire the schedule.
    const r = await stack.cli(["verify", "--scheduled", "--json"]);
    // Assess
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const out = JSON.parse(r.stdout) as { count: number; results: { outcome: string; snapshotId: string }[] };
    expect(out.count).toBe(1);
    expect(out.results).toEqual([expect.objectContaining({ outcome: "passed", snapshotId })]);
    const [run] = await history();
    expect(run).toMatchObject({ snapshotId, level: 4, outcome: "passed", trigger: "schedule", reason: "newest" });
    expect(run!.targetTime).toBeDefined();
    expect(Date.parse(run!.targetTime!)).toBeGreaterThan(0);
    expect(run!.restoreSeconds).toBeGreaterThan(0);
    expect(run!.recoverySeconds).toBeGreaterThan(0);
    const names = run!.checks.map((c) => [c.level, c.name, c.ok]);
    expect(names).toEqual(
      expect.arrayContaining([
        [1, "manifest", true],
        [2, "every checksum", true],
        [3, "WAL continuity to the target", true],
        [3, "pg_verifybackup", true],
        [4, "recover to the target and start", true],
        [4, "pg_amcheck", true],
        [4, "sql: events were restored", true],
      ]),
    );
    expect((await clients.catalog.getSnapshot(DB, snapshotId))?.verification).toMatchObject({ level: 4, outcome: "passed", runId: run!.runId });
    expect(stack.notifications).toEqual([]);
  }, 600_000);

  it("one flipped byte in one chunk fails L2 naming the chunk and the file; the failure is recorded and notified", async () => {
    // Prepare: flip a byte of one chunk's stored bytes in the vault (keeping the object's metadata): in its pack, found
    // by the pack's index (ingest records no chunk), or its own object in a vault written before packs.
    const packs = (await clients.catalog.listPackPage(DB)).packs;
    const recs =
      packs.length > 0
        ? (await Promise.all(packs.map(async (p) => (await readPackIndex(clients.store, stack.config.vaultBucket, p))!.map((e) => ({ sha256: e.sha256, vaultKey: p.vaultKey, offset: e.offset as number | undefined, storedSize: e.storedLength })))))
            .flat()
            .filter((r) => r.storedSize > 16)
            .sort((a, b) => a.sha256.localeCompare(b.sha256))
        : (await clients.catalog.listChunks(DB)).filter((r) => r.storedSize > 16).sort((a, b) => a.sha256.localeCompare(b.sha256));
    const rec = recs[Math.floor(recs.length / 2)]!;
    const key = rec.vaultKey;
    const original = (await clients.store.get(stack.config.vaultBucket, key))!;
    const bad = Buffer.from(original.body);
    const at = (rec.offset ?? 0) + (rec.storedSize >> 1);
    bad[at] = (bad[at] ?? 0) ^ 0x01;
    await clients.store.put(stack.config.vaultBucket, key, bad, original.metadata);
    const chunk = rec.sha256;
    try {
      // Act: the workflow, forced to this snapshot at L2.
      const out = (await stack.startVerify({ databaseId: DB, snapshotId, level: 2 })) as { results: { outcome: string; failure?: string }[] };
      // Assess
      expect(out.results[0]).toMatchObject({ outcome: "failed" });
      const last = (await history()).at(-1)!;
      expect(last).toMatchObject({ outcome: "failed", failedLevel: 2, level: 2 });
      expect(last.failure).toMatch(new RegExp(`chunk ${chunk}( of file \\S+)? (is corrupt|does not decode)`));
      expect(last.failure).toMatch(/ of file \S+/);
      expect(stack.notifications).toHaveLength(1);
      expect(stack.notifications[0]!.message).toContain(chunk);
      expect(stack.notifications[0]!.subject).toContain("FAILED");
    } finally {
      await clients.store.put(stack.config.vaultBucket, key, original.body, original.metadata);
    }
  }, 300_000);

  it("a WAL segment removed from the middle fails L3 naming the gap", async () => {
    // Prepare: remove the second segment after the snapshot from the vault and the catalog.
    const wal = (await clients.catalog.listWal(DB)).filter((w) => w.kind === "segment");
    const victim = wal[wal.length - 2]!;
    await clients.store.delete(stack.config.vaultBucket, victim.vaultKey);
    await (clients.catalog as DynamoCatalog).doc.send(new DeleteCommand({ TableName: stack.config.table, Key: { pk: databasePk(DB), sk: walSk(1, victim.name) } }));
    // Act: a target after the gap.
    const r = await stack.cli(["verify", "--database", DB, "--level", "3", "--target-time", new Date(Date.now() - 500).toISOString(), "--json", "--work-dir", workDir]);
    // Assess
    expect(r.code).toBe(1);
    const rec = JSON.parse(r.stdout) as VerificationRecord;
    expect(rec).toMatchObject({ outcome: "failed", failedLevel: 3 });
    expect(rec.failure).toMatch(/WAL gap on timeline 1 between \S+ and \S+ \(1 segment missing\)/);
    expect(rec.checks.filter((c) => c.level < 3).every((c) => c.ok)).toBe(true);
  }, 300_000);
});
