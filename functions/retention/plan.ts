/**
 * Retention workflow step 1 — Plan: each database's retention plan
 * (store/prune.ts prunePlan over the catalog; core/retention.ts), with the
 * database's own policy unless the input overrides it. Changes nothing.
 * Input: { request: { databaseId?, dryRun?, policy?, trigger? }, execution } (the schedule sends {}).
 * Output: { dryRun, execution, now, count, databases: PlannedDatabase[] }:
 * per database the plan as `walvault prune --dry-run --json` shows it, with
 * counts; large deletion lists in work/ objects (functions/retention/common.ts).
 */
import { z } from "zod";
import { forEachLimit } from "../../core/concurrency.js";
import { UnknownDatabaseError } from "../../core/errors.js";
import { effectivePolicy } from "../../core/retention.js";
import type { DatabaseRecord } from "../../core/schemas.js";
import { planToJson, prunePlan } from "../../store/prune.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { INLINE_PLAN_MAX_BYTES, planListsKey, retentionInputSchema, type PlanLists, type PlannedDatabase, type RetentionPlanOutput } from "./common.js";

const inputSchema = z.object({ request: retentionInputSchema, execution: z.string().min(1) });

export async function handler(input: unknown): Promise<RetentionPlanOutput> {
  const { request, execution } = parseInput(inputSchema, input, "retention workflow input");
  const deps = getDeps();
  const now = new Date();
  let databases: DatabaseRecord[];
  if (request.databaseId !== undefined) {
    const db = await deps.catalog.getDatabase(request.databaseId);
    if (!db) throw new UnknownDatabaseError(`database '${request.databaseId}' is not registered in the catalog`);
    databases = [db];
  } else {
    databases = (await deps.catalog.listDatabases()).sort((a, b) => (a.databaseId < b.databaseId ? -1 : 1));
  }
  const planned: PlannedDatabase[] = [];
  for (const db of databases) {
    const view = await prunePlan(deps.catalog, db.databaseId, effectivePolicy(db.retention, request.policy), now);
    const json = planToJson(view);
    planned.push({
      ...json,
      ...(json.windowStart === undefined ? {} : { windowStart: json.windowStart }),
      ...(json.windowBase === undefined ? {} : { windowBase: json.windowBase }),
      deleteSnapshotCount: json.deleteSnapshots.length,
      deleteWalCount: json.deleteWal.length,
    });
  }
  if (JSON.stringify(planned).length > INLINE_PLAN_MAX_BYTES) {
    // Too big for the state: the deletion lists go to work/ objects, the state keeps the counts.
    await forEachLimit(planned, 8, async (p, i) => {
      if (p.deleteSnapshotCount === 0 && p.deleteWalCount === 0) return;
      const key = planListsKey(execution, p.databaseId);
      const lists: PlanLists = { databaseId: p.databaseId, deleteSnapshots: p.deleteSnapshots, deleteWal: p.deleteWal };
      await deps.incoming.put(deps.incomingBucket, key, Buffer.from(JSON.stringify(lists)), {});
      planned[i] = { ...p, deleteSnapshots: [], deleteWal: [], listsKey: key };
    });
  }
  return { dryRun: request.dryRun ?? false, execution, now: now.toISOString(), count: planned.length, databases: planned };
}
