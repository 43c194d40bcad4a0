/**
 * Retention workflow step 2 — Execute: carries out one database's plan
 * (store/prune.ts executePrune) in the catalog and in every region's vault,
 * one round at a time (functions/retention/common.ts).
 *
 * What is deleted is what the plan showed AND what a fresh plan for the same
 * time still deletes: a snapshot pinned since the Plan step, or a WAL file a
 * snapshot recorded since then needs, stays. A vault object still under
 * Object Lock is left, listed and audited ("locked"), never forced. Chunks
 * no remaining snapshot references are swept once the deletions are done,
 * in as many rounds as the sweep needs (store/sweep.ts, SWEEP_ROUND_BUDGET
 * each, the cursor in `progress.sweep`), except those recorded within the
 * grace period (WALVAULT_RETENTION_GRACE_HOURS, default 24). Every deletion gets an audit item (by "retention workflow <execution>").
 * WAL goes by range: each round deletes the next WAL files (at most
 * ROUND_WAL, reading at most ROUND_WAL_READ records) in the ranges both
 * plans delete, from the cursor `progress.walAfter` on (store/prune.ts
 * nextWalBatch), never listing the whole WAL catalog.
 * Safe to retry: a round re-plans from the catalog, and journals the records
 * it is about to delete (work/retention/<execution>/<database>.journal.json in
 * the incoming bucket) so that a retry finishes the vault deletions of an
 * interrupted attempt (store/prune.ts executePruneJournaled).
 * Input: { plan: PlannedDatabase, execution, now, progress: { round, ...totals } }.
 * Output: the new progress: totals, `complete`, and `remaining` while not complete.
 */
import { z } from "zod";
import { NotFoundError, UnknownDatabaseError } from "../../core/errors.js";
import { snapshotRecordSchema, walRecordSchema } from "../../core/schemas.js";
import { executePruneJournaled, intersectWalRanges, nextWalBatch, prunePlan, type PruneJournal, type RegionVault } from "../../store/prune.js";
import { StoreSweepScratch } from "../../store/sweep.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import {
  DELETED_SNAPSHOTS_LISTED,
  graceMsFromEnv,
  LOCKED_LISTED,
  journalKey,
  planListsSchema,
  plannedDatabaseSchema,
  progressSchema,
  ROUND_SNAPSHOTS,
  ROUND_WAL,
  ROUND_WAL_READ,
  SWEEP_ROUND_BUDGET,
  sweepScratchPrefix,
  type PlanLists,
  type RetentionDatabaseSummary,
} from "./common.js";
import { lambdaHandler, logger } from "../observability.js";

const inputSchema = z.object({ plan: plannedDatabaseSchema, execution: z.string().min(1), now: z.string().datetime(), progress: progressSchema });

async function readLists(deps: Deps, key: string, databaseId: string): Promise<PlanLists> {
  const obj = await deps.incoming.get(deps.incomingBucket, key);
  if (!obj) throw new NotFoundError(`the retention plan's lists ${key} are gone (work/ objects expire after a day): start the workflow again`);
  const lists = planListsSchema.parse(JSON.parse(obj.body.toString("utf8")));
  if (lists.databaseId !== databaseId) throw new NotFoundError(`${key} holds the lists of ${lists.databaseId}, not of ${databaseId}`);
  return lists;
}

const journalSchema = z.object({ snapshots: z.array(snapshotRecordSchema), wal: z.array(walRecordSchema) });

/** The round's journal: one work/ object per execution and database. */
function journalOf(deps: Deps, key: string): PruneJournal {
  return {
    async read() {
      const obj = await deps.incoming.get(deps.incomingBucket, key);
      return obj ? journalSchema.parse(JSON.parse(obj.body.toString("utf8"))) : undefined;
    },
    async write(entries) {
      await deps.incoming.put(deps.incomingBucket, key, Buffer.from(JSON.stringify(entries)), {});
    },
    async clear() {
      await deps.incoming.delete(deps.incomingBucket, key);
    },
  };
}

/** Every region's vault: the primary first, then the replicas. */
function regionsOf(deps: Deps): RegionVault[] {
  return [
    { region: deps.region, store: deps.vault, bucket: deps.vaultBucket, primary: true },
    ...deps.replicas.map((r) => ({ region: r.region, store: r.store, bucket: r.bucket, primary: false })),
  ];
}

async function handle(input: unknown): Promise<RetentionDatabaseSummary> {
  const { plan, execution, now, progress } = parseInput(inputSchema, input, "retention execute input");
  const deps = getDeps();
  const databaseId = plan.databaseId;
  const database = await deps.catalog.getDatabase(databaseId);
  if (!database) throw new UnknownDatabaseError(`database '${databaseId}' is not registered in the catalog`);
  const shownSnapshots = new Set((plan.listsKey === undefined ? plan.deleteSnapshots : (await readLists(deps, plan.listsKey, databaseId)).deleteSnapshots).map((d) => d.snapshotId));

  // What the plan showed, and a fresh plan for the same time still lets go (oldest first); WAL by range.
  const view = await prunePlan(deps.catalog, databaseId, plan.policy, new Date(now), { listed: 0 });
  const snapshots = view.plan.deleteSnapshots.filter((d) => shownSnapshots.has(d.snapshotId));
  const ranges = intersectWalRanges(database, plan.deleteWalRanges, view.walRanges);
  const batch = progress.walDone ? { records: [] } : await nextWalBatch(deps.catalog, database, ranges, progress.walAfter, { records: ROUND_WAL, read: ROUND_WAL_READ });
  const walDone = batch.after === undefined;
  const round = { snapshots: snapshots.slice(0, ROUND_SNAPSHOTS), wal: batch.records };
  const last = round.snapshots.length === snapshots.length && walDone;

  const runId = progress.runId ?? `retention-${execution}`;
  const summary = await executePruneJournaled(
    database,
    { ...view.plan, deleteSnapshots: round.snapshots, deleteWal: round.wal.map((w) => ({ timeline: w.timeline, segno: 0n, name: w.name, archivedAt: new Date(w.archivedAt) })) },
    { snapshots: view.snapshotsToDelete, wal: round.wal },
    deps.catalog,
    regionsOf(deps),
    {
      runId,
      now: new Date(),
      graceMs: graceMsFromEnv(),
      by: `retention workflow ${execution}`,
      sweepChunks: last,
      warn: (message) => logger.warn(message, { databaseId }),
      sweep: { scratch: new StoreSweepScratch(deps.incoming, deps.incomingBucket, sweepScratchPrefix(execution, databaseId)), ...(progress.sweep === undefined ? {} : { cursor: progress.sweep }), budget: SWEEP_ROUND_BUDGET },
    },
    journalOf(deps, journalKey(execution, databaseId)),
  );
  const locked = [...(progress.locked ?? []), ...summary.locked];
  if (summary.locked.length > 0) {
    logger.warn(`${summary.locked.length} object(s) still under Object Lock left in place, e.g. ${summary.locked[0]!.region}:${summary.locked[0]!.key}`, { databaseId });
  }
  const after = batch.after;
  return {
    round: progress.round + 1,
    databaseId,
    runId,
    complete: last && summary.sweep?.phase === "done",
    deletedSnapshots: [...(progress.deletedSnapshots ?? []), ...summary.deletedSnapshots].slice(0, DELETED_SNAPSHOTS_LISTED),
    deletedSnapshotCount: (progress.deletedSnapshotCount ?? 0) + summary.deletedSnapshots.length,
    deletedWal: (progress.deletedWal ?? 0) + summary.deletedWal,
    sweptChunks: (progress.sweptChunks ?? 0) + summary.sweptChunks,
    freshChunks: (progress.freshChunks ?? 0) + summary.freshChunks,
    packsSwept: (progress.packsSwept ?? 0) + summary.packsSwept,
    packsMarked: (progress.packsMarked ?? 0) + summary.packsMarked,
    packsRepacked: (progress.packsRepacked ?? 0) + summary.packsRepacked,
    audit: (progress.audit ?? 0) + summary.audit,
    locked: locked.slice(0, LOCKED_LISTED),
    lockedCount: (progress.lockedCount ?? 0) + summary.locked.length,
    walDone,
    ...(after === undefined ? {} : { walAfter: after }),
    ...(summary.sweep === undefined ? {} : { sweep: summary.sweep }),
    remaining: { snapshots: snapshots.length - round.snapshots.length, walRanges: walDone ? 0 : database.kind === "postgres" ? ranges.filter((r) => r.through > after!).length : ranges.length },
  };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
