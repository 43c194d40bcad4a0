/**
 * The retention workflow (statemachines/retention.asl.json, functions/retention/)
 * on the local stack with a replica region, over a generic database's month
 * of history: its dry run returns the very plan `walvault prune --dry-run
 * --json` prints and deletes nothing; `walvault prune --workflow` carries it
 * out in the catalog and in both regions' vaults, sweeps an old orphan chunk
 * and keeps a fresh one, audits every deletion as "retention workflow
 * <execution>", and lists (and audits) an object Object Lock refused to
 * delete, leaving it in place. Run as the schedule runs it ({}), it touches
 * no database's archive before its first snapshot, and deletes nothing more.
 */
import { chmodSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ObjectLockedError } from "../../core/errors.js";
import { vaultChunkKey } from "../../core/keys.js";
import type { WalRecord } from "../../core/schemas.js";
import { getDeps, overrideDeps, resetDeps } from "../../functions/deps.js";
import type { ObjectStore } from "../../store/object-store.js";
import { stackClients, tempDir, type StackClients } from "../support/harness.js";
import { buildGenericHistory, DAY, orphanChunk, seededBytes, type GenericHistory } from "../support/retention.js";
import { archiveGenericSegment } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { segmentName } from "../../core/wal.js";

const DB = "gen-ret";
/** A database whose first snapshot is still being taken: WAL only. */
const NEW_DB = "gen-new";
const REGION = "local-2";
/** Snapshot i finished this many days ago. */
const AGES = [28, 22, 16, 10, 4, 1];
const POLICY_FLAGS = ["--daily", "2", "--weekly", "0", "--monthly", "0", "--window-days", "7"];
const POLICY = { daily: 2, weekly: 0, monthly: 0, recoveryWindowDays: 7 };

let stack: TestStack;
let clients: StackClients;
let work: string;
let history: GenericHistory;
let oldOrphan: string;
let freshOrphan: string;

interface PlanJson {
  databaseId: string;
  policy: unknown;
  windowStart?: string;
  windowBase?: string;
  keep: { snapshotId: string; reasons: string[] }[];
  deleteSnapshots: { snapshotId: string; finishedAt: string }[];
  deleteWal: string[];
  walBytesToDelete: number;
}
interface WorkflowPlan extends PlanJson {
  deleteSnapshotCount: number;
  deleteWalCount: number;
  listsKey?: string;
}
interface Summary {
  databaseId: string;
  runId: string;
  complete: boolean;
  deletedSnapshots: string[];
  deletedSnapshotCount: number;
  deletedWal: number;
  sweptChunks: number;
  freshChunks: number;
  audit: number;
  locked: { region: string; key: string; error: string }[];
  lockedCount: number;
}

/** What the plan is about, without the time it was computed at (windowStart moves with the clock). */
const comparable = (p: PlanJson): Omit<PlanJson, "windowStart"> => {
  const { windowStart: _ignored, ...rest } = p;
  void _ignored;
  return { ...rest, policy: p.policy, deleteWal: [...p.deleteWal].sort() };
};

/** A replica store whose deletes of `key` are refused as Object Lock refuses them. */
function lockedFor(store: ObjectStore, key: string): ObjectStore {
  const wrapper = Object.create(store) as ObjectStore;
  wrapper.delete = async (bucket, k, versionId) => {
    if (k === key) throw new ObjectLockedError(`S3 refused to delete s3://${bucket}/${k} (Object Lock retention or a policy protects it): AccessDenied`);
    return store.delete(bucket, k, versionId);
  };
  return wrapper;
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, kind: "generic" }, { id: NEW_DB, kind: "generic" }], { replicaRegions: [REGION], lambdaRuntime: "in-process" }); // overrideDeps below
  clients = stackClients(stack);
  work = tempDir("walvault-retention-");
  chmodSync(work, 0o755);
  const now = Date.now();
  history = await buildGenericHistory(clients, stack.config, work, DB, now, AGES);
  oldOrphan = await orphanChunk(clients, stack.config, DB, "old orphan ", new Date(now - 3 * DAY));
  freshOrphan = await orphanChunk(clients, stack.config, DB, "fresh orphan ", new Date(now - 3_600_000));
  for (let n = 1; n <= 3; n++) {
    await archiveGenericSegment(clients, stack.config, { databaseId: NEW_DB, stream: "wal", name: segmentName(1, BigInt(n)), segno: BigInt(n), bytes: seededBytes(n, 2048), archivedAt: new Date(now - 40 * DAY + n * 3_600_000) });
  }
  // Every region holds the whole history.
  const rep = (await stack.startReplicate({ region: REGION })) as { complete: boolean };
  if (!rep.complete) throw new Error("the replica region was not brought level");
}, 180_000);

afterAll(async () => {
  resetDeps();
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("retention workflow", () => {
  it("a dry run returns the same plan as `prune --dry-run --json` and deletes nothing", async () => {
    // Prepare
    const walBefore = await clients.catalog.listWal(DB);
    // Act
    const cli = await stack.cli(["prune", "--dry-run", "--json", "--database", DB, ...POLICY_FLAGS]);
    const out = (await stack.startRetention({ databaseId: DB, dryRun: true, policy: POLICY })) as { dryRun: boolean; execution: string; count: number; databases: WorkflowPlan[] };
    // Assess
    expect(cli.code, cli.stderr).toBe(0);
    const { dryRun: cliDryRun, ...fromCli } = JSON.parse(cli.stdout) as PlanJson & { dryRun: boolean };
    expect(cliDryRun).toBe(true);
    expect(out.dryRun).toBe(true);
    expect(out.count).toBe(1);
    const plan = out.databases[0]!;
    const { deleteSnapshotCount, deleteWalCount, ...rest } = plan;
    expect(plan.listsKey).toBeUndefined();
    expect(comparable(rest)).toEqual(comparable(fromCli));
    expect(deleteSnapshotCount).toBe(fromCli.deleteSnapshots.length);
    expect(deleteWalCount).toBe(fromCli.deleteWal.length);
    // The plan itself: the window's base (10 days ago) and the two dailies stay, the three older go with their WAL.
    expect(plan.keep.map((k) => k.snapshotId).sort()).toEqual(history.snapshots.slice(3).sort());
    expect(plan.windowBase).toBe(history.snapshots[3]);
    expect(plan.deleteSnapshots.map((d) => d.snapshotId).sort()).toEqual(history.snapshots.slice(0, 3).sort());
    expect([...plan.deleteWal].sort()).toEqual(history.wal.slice(0, 12).map((w) => w.name).sort());
    expect(await clients.catalog.listSnapshots(DB)).toHaveLength(AGES.length);
    expect(await clients.catalog.listWal(DB)).toEqual(walBefore);
    expect(await clients.catalog.listAudit(DB)).toEqual([]);
  }, 60_000);

  it("`prune --workflow` carries the plan out in both regions, sweeps past the grace period, audits, and leaves a locked object in place", async () => {
    // Prepare: the replica region refuses to delete one WAL file (as Object Lock would).
    const lockedWal: WalRecord = history.wal[0]!;
    const replica = getDeps().replicas[0]!;
    overrideDeps({ replicas: [{ ...replica, store: lockedFor(replica.store, lockedWal.vaultKey) }] });
    let run;
    try {
      // Act
      run = await stack.cli(["prune", "--workflow", "--json", "--database", DB, ...POLICY_FLAGS]);
    } finally {
      resetDeps();
    }
    // Assess: exit 1 (an object was left locked); the summary names it.
    expect(run.code, run.stderr).toBe(1);
    const out = JSON.parse(run.stdout) as { executionId: string; execution: string; dryRun: boolean; results: Summary[] };
    expect(out.dryRun).toBe(false);
    expect(out.executionId.endsWith(`:${out.execution}`)).toBe(true);
    expect(out.results).toHaveLength(1);
    const summary = out.results[0]!;
    expect(summary).toMatchObject({ databaseId: DB, complete: true, deletedSnapshotCount: 3, deletedWal: 12, lockedCount: 1 });
    expect(summary.deletedSnapshots.sort()).toEqual(history.snapshots.slice(0, 3).sort());
    expect(summary.locked).toEqual([{ region: REGION, key: lockedWal.vaultKey, error: expect.stringMatching(/Object Lock/) as string }]);

    // The catalog: exactly the plan is gone.
    expect((await clients.catalog.listSnapshots(DB)).map((s) => s.snapshotId).sort()).toEqual(history.snapshots.slice(3).sort());
    expect((await clients.catalog.listWal(DB)).map((w) => w.name).sort()).toEqual(history.wal.slice(12).map((w) => w.name).sort());
    // The vaults: deleted in both regions, except the locked copy, which stays.
    const regions = [
      { region: "local-1", store: getDeps().vault, bucket: getDeps().vaultBucket },
      { region: REGION, store: getDeps().replicas[0]!.store, bucket: getDeps().replicas[0]!.bucket },
    ];
    for (const w of history.wal.slice(0, 12)) {
      for (const r of regions) {
        const expected = w === lockedWal && r.region === REGION;
        expect(await r.store.head(r.bucket, w.vaultKey), `${w.name} in ${r.region}`)[expected ? "toBeDefined" : "toBeUndefined"]();
      }
    }
    for (const w of history.wal.slice(12)) for (const r of regions) expect(await r.store.head(r.bucket, w.vaultKey), `${w.name} in ${r.region}`).toBeDefined();
    // Chunks: the old orphan and the deleted snapshots' own chunks are swept; the fresh orphan and every kept snapshot's chunks stay.
    expect(summary.sweptChunks).toBeGreaterThan(1);
    expect(summary.freshChunks).toBe(1);
    expect(await getDeps().vault.head(getDeps().vaultBucket, vaultChunkKey(DB, oldOrphan))).toBeUndefined();
    expect(await getDeps().vault.head(getDeps().vaultBucket, vaultChunkKey(DB, freshOrphan))).toBeDefined();
    const kept = await clients.catalog.listSnapshots(DB);
    expect(kept.every((s) => s.status === "restorable")).toBe(true);
    const verify = await stack.cli(["verify", "--level", "2", "--snapshot", kept[0]!.snapshotId, "--database", DB, "--json", "--work-dir", work]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    // The audit: one item per deletion and one for the locked object, by the workflow's execution.
    const audit = await clients.catalog.listAudit(DB);
    expect(audit).toHaveLength(summary.audit);
    for (const a of audit) expect(a).toMatchObject({ runId: summary.runId, by: `retention workflow ${out.execution}` });
    expect(audit.filter((a) => a.action === "delete-snapshot").map((a) => a.subject).sort()).toEqual(summary.deletedSnapshots.sort());
    expect(audit.filter((a) => a.action === "delete-wal")).toHaveLength(12);
    expect(audit.find((a) => a.action === "delete-wal" && a.subject === lockedWal.name)?.regions).toEqual(["local-1"]);
    expect(audit.filter((a) => a.action === "locked")).toMatchObject([{ subject: lockedWal.vaultKey, regions: [REGION] }]);
    expect(audit.find((a) => a.action === "sweep-chunk" && a.subject === oldOrphan)).toMatchObject({ regions: ["local-1", REGION] });
    expect(stack.retentionStats).toMatchObject({ started: 2, succeeded: 2, failed: 0 });
  }, 120_000);

  it("run as the schedule runs it ({}), it plans every database, empties no archive before its first snapshot, and deletes nothing more", async () => {
    // Prepare
    const auditBefore = (await clients.catalog.listAudit(DB)).length;
    // Act
    const out = (await stack.startRetention({})) as { dryRun: boolean; count: number; results: Summary[] };
    // Assess
    expect(out.dryRun).toBe(false);
    expect(out.count).toBe(2);
    expect(out.results.map((r) => r.databaseId).sort()).toEqual([DB, NEW_DB].sort());
    for (const r of out.results) expect(r).toMatchObject({ complete: true, deletedSnapshotCount: 0, deletedWal: 0, sweptChunks: 0, lockedCount: 0 });
    expect(await clients.catalog.listWal(NEW_DB)).toHaveLength(3);
    expect((await clients.catalog.listAudit(DB)).length).toBe(auditBefore);
  }, 60_000);
});
