/**
 * Replicate workflow — FindMissing: what a replica region lacks, from the
 * catalog's index of records pending there (store/catalog.ts,
 * listUnreplicated): WAL files and snapshots not marked "replicated" in the
 * region (a failed copy stays pending: it is tried again), by database id,
 * then snapshots before WAL in LSN order, at most `limit` per round. One
 * Query of at most `limit` index items: the work grows with the round, never
 * with the catalog. Resumable by construction: whatever a stopped execution
 * copied is marked, so the next one starts after it.
 * Input: { scope: { region, databaseId?, limit? }, round, previous: CopyItem/RecordFailure results }.
 * Output: { items, count, remaining, round, stalled, complete }.
 *   remaining: a lower bound of what is missing: this round's items, plus
 *   one when more follow (counting them all would read them all).
 *   complete: nothing is missing.
 *   stalled: the previous round copied nothing (every item failed): the
 *   workflow stops with ReplicationStalled instead of trying the same items forever.
 * Records from before the index are listed once `walvault replicate --mark` has marked them (docs/replication.md).
 */
import { z } from "zod";
import { databaseIdSchema } from "../../core/schemas.js";
import { getDeps, replicaOf } from "../deps.js";
import { parseInput } from "../parse.js";
import { replicationResultSchema, type ReplicationItem } from "./common.js";
import { lambdaHandler } from "../observability.js";

/** Items per round: one Map of this many iterations stays far below Standard's 25,000 history events. */
export const ROUND_ITEMS = 100;

const inputSchema = z.object({
  scope: z.object({ region: z.string().min(1), databaseId: databaseIdSchema.optional(), limit: z.number().int().positive().max(1000).optional() }),
  round: z.number().int().nonnegative(),
  previous: z.array(replicationResultSchema),
});

async function handle(input: unknown): Promise<{
  items: ReplicationItem[];
  count: number;
  remaining: number;
  round: number;
  stalled: boolean;
  complete: boolean;
}> {
  const { scope, round, previous } = parseInput(inputSchema, input, "find missing input");
  const deps = getDeps();
  replicaOf(deps, scope.region);
  const stalled = previous.length > 0 && previous.every((r) => r.status !== "replicated");
  const page = await deps.catalog.listUnreplicated(scope.region, {
    ...(scope.databaseId === undefined ? {} : { databaseId: scope.databaseId }),
    limit: scope.limit ?? ROUND_ITEMS,
  });
  const items = page.items.map((i): ReplicationItem => (i.name !== undefined ? { databaseId: i.databaseId, name: i.name } : { databaseId: i.databaseId, snapshotId: i.snapshotId }));
  return { items, count: items.length, remaining: items.length + (page.next === undefined ? 0 : 1), round: round + 1, stalled, complete: items.length === 0 };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
