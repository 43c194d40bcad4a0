/**
 * Retention end to end (issue #6) on the local stack with a replica region
 * and a real PostgreSQL 15: six snapshots with WAL between them, their times
 * spread over a month through the catalog (not by waiting). `prune --dry-run`
 * shows the plan and deletes nothing; `prune` deletes exactly that plan in the
 * catalog and in both regions' vaults, audits every deletion, sweeps an
 * orphan chunk older than the grace period and keeps a fresh one; a restore
 * inside the recovery window still reaches the right row count, and an L3
 * verification of every retained snapshot passes.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey } from "../../core/keys.js";
import type { VerificationRecord } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { databasePk, snapshotSk, walSk } from "../../store/catalog-layout.js";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { createObjectStore } from "../../store/factory.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { switchAndWaitArchived } from "../support/postgres.js";

const DB = "pg-ret";
const REGION = "local-2";
const DAY = 86_400_000;
/** Snapshot i finished this many days ago. */
const AGES = [28, 22, 16, 10, 4, 1];
const POLICY = ["--daily", "2", "--weekly", "0", "--monthly", "0", "--window-days", "7"];

let stack: TestStack;
let clients: StackClients;
let primary: ScratchPostgres;
let workDir: string;
const snapshots: string[] = [];
const atLsn = { lsn: "", count: 0 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


async function put(item: Record<string, unknown>): Promise<void> {
  await (clients.catalog as DynamoCatalog).doc.send(new PutCommand({ TableName: stack.config.table, Item: item }));
}

/** Moves the history back in time: snapshot i to AGES[i] days ago, the WAL after it in between, chunks a month old. */
async function spreadOverAMonth(now: number): Promise<void> {
  const snaps = await clients.catalog.listSnapshots(DB);
  const times = snaps.map((_, i) => now - AGES[i]! * DAY);
  for (const [i, s] of snaps.entries()) {
    const t = new Date(times[i]!).toISOString();
    await put({ ...s, startedAt: t, finishedAt: t, recordedAt: t, pk: databasePk(DB), sk: snapshotSk(s.snapshotId) });
  }
  const wal = (await clients.catalog.listWal(DB)).filter((w) => w.kind === "segment");
  const originalSnapshotTimes = snaps.map((s) => Date.parse(s.finishedAt));
  for (const w of wal) {
    // A segment archived after snapshot i (originally) gets a time after snapshot i's new time.
    const real = Date.parse(w.archivedAt);
    const i = originalSnapshotTimes.filter((t) => t <= real).length - 1;
    const base = i < 0 ? times[0]! - DAY : times[i]!;
    const next = i + 1 < times.length ? times[i + 1]! : now;
    const t = new Date(base + ((real % 1000) / 1000) * (next - base) * 0.5 + 60_000).toISOString();
    await put({ ...w, archivedAt: t, pk: databasePk(DB), sk: walSk(w.timeline, w.name) });
  }
  for (const c of await clients.catalog.listChunks(DB)) await put({ ...c, recordedAt: new Date(now - 30 * DAY).toISOString(), pk: databasePk(DB), sk: `chunk#${c.sha256}` });
}

async function orphanChunk(text: string, recordedAt: Date): Promise<string> {
  const raw = Buffer.from(text.repeat(100));
  const sha = sha256Hex(raw);
  const body = await getCodec("zstd").encode(raw);
  await clients.store.put(stack.config.vaultBucket, vaultChunkKey(DB, sha), body, objectMeta({ sha256: sha, codec: "zstd", size: raw.length }));
  await clients.catalog.recordChunks([{ databaseId: DB, sha256: sha, size: raw.length, storedSize: body.length, codec: "zstd", vaultKey: vaultChunkKey(DB, sha), recordedAt: recordedAt.toISOString() }]);
  return sha;
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }], { replicaRegions: [REGION] });
  clients = stackClients(stack);
  workDir = mkdtempSync(join(tmpdir(), "walvault-ret-"));
  chmodSync(workDir, 0o777);
  primary = await ScratchPostgres.create({
    settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
    env: { WALVAULT_CONFIG: stack.configPath },
  });
  await primary.start();
  await primary.psql("create table events(id bigserial primary key, note text)");
  for (let i = 0; i < AGES.length; i++) {
    await primary.psql(`insert into events(note) select 's${i}' from generate_series(1, 300)`);
    const push = await stack.cli(["snapshot", "push", "--host", primary.socketDir, "--port", String(primary.port), "--user", "postgres", "--json"]);
    if (push.code !== 0) throw new Error(`snapshot push failed: ${push.stderr}`);
    snapshots.push((JSON.parse(push.stdout) as { snapshotId: string }).snapshotId);
    await primary.psql(`insert into events(note) select 'w${i}' from generate_series(1, 200)`);
    if (i === 3) {
      // A point inside the recovery window, after the snapshot that will start the window.
      atLsn.count = Number(await primary.psql("select count(*) from events"));
      atLsn.lsn = await primary.psql("select pg_current_wal_insert_lsn()");
      await primary.psql("insert into events(note) select 'after' from generate_series(1, 50)");
    }
    await switchAndWaitArchived(primary);
    await sleep(1100);
  }
  await switchAndWaitArchived(primary);
  await stack.idle();
  await primary.stop();
}, 600_000);

afterAll(async () => {
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("retention over a month of snapshots", () => {
  it("dry-run shows the plan and deletes nothing; prune deletes exactly it everywhere, audits it, and restores and verifications still pass", async () => {
    // Prepare
    const now = Date.now();
    await spreadOverAMonth(now);
    const oldOrphan = await orphanChunk("old orphan ", new Date(now - 3 * DAY));
    const freshOrphan = await orphanChunk("fresh orphan ", new Date(now - 3_600_000));
    const walBefore = await clients.catalog.listWal(DB);

    // Act 1: dry run.
    const dry = await stack.cli(["prune", "--dry-run", "--json", ...POLICY]);
    // Assess 1: the plan: keep the window base (10 days) and the two dailies; nothing deleted.
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as { dryRun: boolean; keep: { snapshotId: string; reasons: string[] }[]; deleteSnapshots: { snapshotId: string }[]; deleteWal: string[]; windowBase: string };
    expect(plan.dryRun).toBe(true);
    expect(plan.keep.map((k) => k.snapshotId).sort()).toEqual(snapshots.slice(3).sort());
    expect(plan.windowBase).toBe(snapshots[3]);
    expect(plan.deleteSnapshots.map((d) => d.snapshotId).sort()).toEqual(snapshots.slice(0, 3).sort());
    expect(plan.deleteWal.length).toBeGreaterThan(0);
    expect(await clients.catalog.listSnapshots(DB)).toHaveLength(6);
    expect(await clients.catalog.listWal(DB)).toEqual(walBefore);

    // Act 2: prune for real.
    const run = await stack.cli(["prune", "--json", ...POLICY]);
    // Assess 2: exactly the plan is gone from the catalog and from both vaults; everything else stays.
    expect(run.code, run.stderr).toBe(0);
    const summary = (JSON.parse(run.stdout) as { summary: { deletedSnapshots: string[]; deletedWal: number; sweptChunks: number; audit: number; runId: string } }).summary;
    expect(summary.deletedSnapshots.sort()).toEqual(plan.deleteSnapshots.map((d) => d.snapshotId).sort());
    expect(summary.deletedWal).toBe(plan.deleteWal.length);
    expect((await clients.catalog.listSnapshots(DB)).map((s) => s.snapshotId)).toEqual(snapshots.slice(3));
    const walAfter = await clients.catalog.listWal(DB);
    expect(walAfter.map((w) => w.name).sort()).toEqual(walBefore.map((w) => w.name).filter((n) => !plan.deleteWal.includes(n)).sort());
    const replica = createObjectStore({ region: REGION, s3Endpoint: stack.config.replicas![0]!.s3Endpoint, credentials: stack.config.credentials });
    const replicaBucket = stack.config.replicas![0]!.vaultBucket;
    for (const name of plan.deleteWal) {
      const rec = walBefore.find((w) => w.name === name)!;
      expect(await clients.store.head(stack.config.vaultBucket, rec.vaultKey), `${name} in the primary`).toBeUndefined();
      expect(await replica.head(replicaBucket, rec.vaultKey), `${name} in ${REGION}`).toBeUndefined();
    }
    for (const w of walAfter) expect(await clients.store.head(stack.config.vaultBucket, w.vaultKey)).toBeDefined();
    // The orphan chunk past the grace period is swept, the fresh one kept; chunks of kept snapshots stay.
    expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(DB, oldOrphan))).toBeUndefined();
    expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(DB, freshOrphan))).toBeDefined();
    expect(summary.sweptChunks).toBeGreaterThan(0);
    // Every deletion audited with what, why, when and the run.
    const audit = await clients.catalog.listAudit(DB);
    expect(audit).toHaveLength(summary.audit);
    expect(audit.filter((a) => a.action === "delete-snapshot").map((a) => a.subject).sort()).toEqual(summary.deletedSnapshots);
    expect(audit.filter((a) => a.action === "delete-wal")).toHaveLength(summary.deletedWal);
    expect(audit.find((a) => a.action === "sweep-chunk" && a.subject === oldOrphan)).toMatchObject({ runId: summary.runId, regions: ["local-1", REGION] });
    for (const a of audit) expect(a.reason.length).toBeGreaterThan(10);

    // Act 3: a restore inside the window.
    const dir = join(workDir, "in-window");
    const r = await stack.cli(["restore", "--to", dir, "--target-lsn", atLsn.lsn]);
    expect(r.code, r.stderr).toBe(0);
    const restored = await ScratchPostgres.fromDataDir(dir, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
    try {
      await restored.start();
      await restored.waitForRecoveryEnd(300_000);
      // Assess 3
      expect(Number(await restored.psql("select count(*) from events"))).toBe(atLsn.count);
    } finally {
      await restored.destroy();
    }

    // Act 4 + Assess 4: L3 verification of every retained snapshot passes.
    for (const id of snapshots.slice(3)) {
      const v = await stack.cli(["verify", "--level", "3", "--snapshot", id, "--json", "--work-dir", workDir]);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect((JSON.parse(v.stdout) as VerificationRecord).outcome).toBe("passed");
    }

    // And again: nothing more to delete.
    const again = await stack.cli(["prune", "--json", ...POLICY]);
    expect((JSON.parse(again.stdout) as { summary: { deletedSnapshots: string[]; deletedWal: number } }).summary).toMatchObject({ deletedSnapshots: [], deletedWal: 0 });
  }, 900_000);
});
