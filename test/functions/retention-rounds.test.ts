/**
 * The retention workflow with a plan too large for the workflow state and
 * for one Execute round (the limits shrunk for the test): the deletion lists
 * go to a work/ object, Execute loops in bounded rounds, then sweeps chunks
 * in rounds of a few records each (the mark in work/ objects); a round interrupted by an S3 failure between the catalog and the
 * vault is retried, and the retry finishes the vault deletions the catalog
 * no longer names (the round's journal), so no object is left behind and
 * every deletion is audited once.
 */
import { chmodSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ServiceUnavailableError } from "../../core/errors.js";
import { getDeps, overrideDeps, resetDeps } from "../../functions/deps.js";
import type { ObjectStore } from "../../store/object-store.js";
import { listKeys, stackClients, tempDir, type StackClients } from "../support/harness.js";
import { buildGenericHistory, type GenericHistory } from "../support/retention.js";
import { startTestStack, type TestStack } from "../support/stack.js";

vi.mock("../../functions/retention/common.js", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../functions/retention/common.js")>()),
  INLINE_PLAN_MAX_BYTES: 256,
  ROUND_SNAPSHOTS: 1,
  ROUND_WAL: 4,
  SWEEP_ROUND_BUDGET: { markRefs: 1, chunkItems: 3, packs: 1, ms: 600_000 },
}));

const DB = "gen-rounds";
const AGES = [28, 22, 16, 10, 4, 1];
const POLICY = { daily: 2, weekly: 0, monthly: 0, recoveryWindowDays: 7 };

let stack: TestStack;
let clients: StackClients;
let work: string;
let history: GenericHistory;

/** A store whose first delete of `key` fails as an S3 outage would. */
function failingOnceFor(store: ObjectStore, key: string): ObjectStore & { failed: number } {
  const wrapper = Object.create(store) as ObjectStore & { failed: number };
  wrapper.failed = 0;
  wrapper.delete = async (bucket, k, versionId) => {
    if (k === key && wrapper.failed === 0) {
      wrapper.failed++;
      throw new ServiceUnavailableError(`S3 DeleteObject of s3://${bucket}/${k} failed: InternalError`);
    }
    return store.delete(bucket, k, versionId);
  };
  return wrapper;
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, kind: "generic" }], { lambdaRuntime: "in-process" }); // overrideDeps below
  clients = stackClients(stack);
  work = tempDir("walvault-retention-rounds-");
  chmodSync(work, 0o755);
  history = await buildGenericHistory(clients, stack.config, work, DB, Date.now(), AGES);
}, 120_000);

afterAll(async () => {
  resetDeps();
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("retention workflow, large plans", () => {
  it("keeps large deletion lists out of the state, deletes in bounded rounds, and finishes an interrupted round on retry", async () => {
    // Act 1: the dry run.
    const dry = (await stack.startRetention({ databaseId: DB, dryRun: true, policy: POLICY })) as {
      databases: { deleteSnapshots: unknown[]; deleteWal: unknown[]; deleteSnapshotCount: number; deleteWalCount: number; listsKey?: string }[];
    };
    // Assess 1: counts in the state, lists in a work/ object.
    const plan = dry.databases[0]!;
    expect(plan).toMatchObject({ deleteSnapshots: [], deleteWal: [], deleteSnapshotCount: 3, deleteWalCount: 12 });
    expect(plan.listsKey).toMatch(/^work\/retention\/.+\/gen-rounds\.json$/);
    const lists = JSON.parse((await clients.store.get(stack.config.incomingBucket, plan.listsKey!))!.body.toString("utf8")) as { deleteWal: string[] };
    expect(lists.deleteWal.sort()).toEqual(history.wal.slice(0, 12).map((w) => w.name).sort());

    // Prepare 2: the vault fails once while deleting a WAL file of the second round (after its records went).
    const failing = failingOnceFor(getDeps().vault, history.wal[5]!.vaultKey);
    overrideDeps({ vault: failing });
    let out;
    try {
      // Act 2
      out = (await stack.startRetention({ databaseId: DB, policy: POLICY })) as {
        results: { round: number; complete: boolean; deletedSnapshotCount: number; deletedWal: number; sweptChunks: number; audit: number; runId: string }[];
      };
    } finally {
      resetDeps();
    }
    // Assess 2: round 1 deleted one snapshot and four WAL files; round 2 failed after its catalog deletes and was
    // retried: the retry finished the journaled ones and went on with the next snapshot and four WAL files, the
    // last of the plan, and swept. Nothing left behind.
    expect(failing.failed).toBe(1);
    const summary = out.results[0]!;
    // Then the sweep, three chunk records a round: more rounds, every swept chunk audited once.
    expect(summary).toMatchObject({ complete: true, deletedSnapshotCount: 3, deletedWal: 12 });
    expect(summary.round).toBeGreaterThan(4);
    expect(summary.sweptChunks).toBeGreaterThan(0);
    expect((await clients.catalog.listWal(DB)).map((w) => w.name).sort()).toEqual(history.wal.slice(12).map((w) => w.name).sort());
    for (const w of history.wal.slice(0, 12)) expect(await clients.store.head(stack.config.vaultBucket, w.vaultKey), w.name).toBeUndefined();
    for (const w of history.wal.slice(12)) expect(await clients.store.head(stack.config.vaultBucket, w.vaultKey), w.name).toBeDefined();
    // Every deletion audited exactly once; the journals are gone.
    const audit = await clients.catalog.listAudit(DB);
    expect(audit).toHaveLength(summary.audit);
    const walAudits = audit.filter((a) => a.action === "delete-wal").map((a) => a.subject);
    expect(walAudits.sort()).toEqual(history.wal.slice(0, 12).map((w) => w.name).sort());
    expect(audit.filter((a) => a.action === "delete-snapshot")).toHaveLength(3);
    expect(audit.filter((a) => a.action === "sweep-chunk")).toHaveLength(summary.sweptChunks);
    const workKeys = await listKeys(clients.store, stack.config.incomingBucket, "work/retention/");
    expect(workKeys.filter((k) => k.endsWith(".journal.json"))).toEqual([]);
    // The sweep's scratch: only the mark that it is done (the rest expires with work/).
    expect(workKeys.filter((k) => k.includes("/sweep/"))).toEqual([expect.stringMatching(/\/gen-rounds\/sweep\/done$/)]);
  }, 120_000);
});
