/**
 * Retention workflow steps Plan, Collect and Summary (one Lambda: the input's
 * `step` says which; statemachines/retention.asl.json). The workflow walks the
 * registry a page at a time, so that neither its state nor any invocation
 * grows with the number of databases (functions/retention/common.ts).
 *
 * Plan (no `step`): the retention plans of one page of databases, at most
 * PLAN_PAGE of them after `cursor.after` (store/prune.ts prunePlan over the
 * catalog; core/retention.ts), with each database's own policy unless the
 * input overrides it; or the one database the input names. Changes nothing.
 * Input: { request: { databaseId?, dryRun?, policy?, trigger? }, execution, cursor }.
 * Output: { dryRun, execution, now, count, databases: PlannedDatabase[], next }:
 * per database the plan as `walvault prune --dry-run --json` shows it, with
 * counts; large deletion lists in work/ objects. `next` is "" on the last page.
 *
 * Collect (`step: "collect"`): writes the page's outcome (the plans on a dry
 * run, else each database's summary) to a work/ object and returns the cursor
 * for the next page with running totals.
 *
 * Summary (`step: "summary"`): the execution's output, as before the paging:
 * { dryRun, execution, now, count, databases | results }, listing databases up
 * to SUMMARY_MAX_BYTES; when more were planned, `listed` says how many are
 * listed and `pagesPrefix` where all of them are (incoming bucket, work/).
 */
import { z } from "zod";
import { forEachLimit } from "../../core/concurrency.js";
import { UnknownDatabaseError } from "../../core/errors.js";
import { effectivePolicy } from "../../core/retention.js";
import type { DatabaseRecord } from "../../core/schemas.js";
import { planToJson, prunePlan } from "../../store/prune.js";
import { readPagesWithin, StoreWorkObjects } from "../../store/work-objects.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import {
  cursorSchema,
  INLINE_PLAN_MAX_BYTES,
  PLAN_PAGE,
  pageKey,
  pagesPrefix,
  planListsKey,
  retentionInputSchema,
  SUMMARY_MAX_BYTES,
  type PlanLists,
  type PlannedDatabase,
  type RetentionCursor,
  type RetentionPlanOutput,
  type RetentionSummaryOutput,
} from "./common.js";
import { lambdaHandler } from "../observability.js";

const planInputSchema = z.object({ request: retentionInputSchema, execution: z.string().min(1), cursor: cursorSchema.optional() });
const collectInputSchema = z.object({
  step: z.literal("collect"),
  execution: z.string().min(1),
  cursor: cursorSchema,
  page: z.object({ dryRun: z.boolean(), now: z.string(), count: z.number().int().nonnegative(), next: z.string(), databases: z.array(z.unknown()) }).passthrough(),
  results: z.array(z.record(z.unknown())).optional(),
});
const summaryInputSchema = z.object({ step: z.literal("summary"), execution: z.string().min(1), cursor: cursorSchema });

async function handle(input: unknown): Promise<RetentionPlanOutput | RetentionCursor | RetentionSummaryOutput> {
  const step = typeof input === "object" && input !== null ? (input as { step?: unknown }).step : undefined;
  if (step === "collect") return collect(parseInput(collectInputSchema, input, "retention collect input"));
  if (step === "summary") return summary(parseInput(summaryInputSchema, input, "retention summary input"));
  return planPage(input);
}

/** Plan: one page's plans (the handler's default step). */
export async function planPage(input: unknown): Promise<RetentionPlanOutput> {
  const { request, execution, cursor } = parseInput(planInputSchema, input, "retention workflow input");
  const deps = getDeps();
  const now = cursor?.now ? new Date(cursor.now) : new Date();
  let databases: DatabaseRecord[];
  let next = "";
  if (request.databaseId !== undefined) {
    const db = await deps.catalog.getDatabase(request.databaseId);
    if (!db) throw new UnknownDatabaseError(`database '${request.databaseId}' is not registered in the catalog`);
    databases = [db];
  } else {
    const page = await deps.catalog.listDatabasePage(cursor?.after || undefined, PLAN_PAGE);
    databases = page.databases;
    next = page.next ?? "";
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
  return { dryRun: request.dryRun ?? false, execution, now: now.toISOString(), count: planned.length, databases: planned, next };
}

async function collect({ execution, cursor, page, results }: z.infer<typeof collectInputSchema>): Promise<RetentionCursor> {
  const deps = getDeps();
  const items = page.dryRun ? page.databases : (results ?? []);
  await new StoreWorkObjects(deps.incoming, deps.incomingBucket).put(pageKey(execution, cursor.page), items);
  const locked = page.dryRun ? 0 : (results ?? []).reduce((n, r) => n + (typeof r.lockedCount === "number" ? r.lockedCount : 0), 0);
  return {
    after: page.next,
    page: cursor.page + 1,
    count: cursor.count + page.count,
    now: page.now,
    dryRun: page.dryRun,
    lockedCount: (cursor.lockedCount ?? 0) + locked,
  };
}

async function summary({ execution, cursor }: z.infer<typeof summaryInputSchema>): Promise<RetentionSummaryOutput> {
  const deps = getDeps();
  const work = new StoreWorkObjects(deps.incoming, deps.incomingBucket);
  const listed = await readPagesWithin<unknown>(
    work,
    Array.from({ length: cursor.page }, (_, p) => pageKey(execution, p)),
    SUMMARY_MAX_BYTES,
  );
  const dryRun = cursor.dryRun ?? false;
  const more = listed.length < cursor.count ? { listed: listed.length, pagesPrefix: pagesPrefix(execution) } : {};
  return {
    dryRun,
    execution,
    now: cursor.now ?? new Date().toISOString(),
    count: cursor.count,
    lockedCount: cursor.lockedCount ?? 0,
    ...(dryRun ? { databases: listed as PlannedDatabase[] } : { results: listed as Record<string, unknown>[] }),
    ...more,
  };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
