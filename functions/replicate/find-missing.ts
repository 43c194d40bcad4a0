/**
 * Replicate workflow — FindMissing: what a replica region lacks, from the
 * catalog: WAL files and snapshots not marked "replicated" there, oldest
 * first, at most `limit` per round. Resumable by construction: whatever a
 * stopped execution copied is marked, so the next one starts after it.
 * Input: { scope: { region, databaseId? }, round, previous: CopyItem/RecordFailure results }.
 * Output: { items, count, remaining, round, stalled, complete }.
 *   stalled: the previous round copied nothing (every item failed): the
 *   workflow stops with ReplicationStalled instead of trying the same items forever.
 */
import { z } from "zod";
import { databaseIdSchema } from "../../core/schemas.js";
import { getDeps, replicaOf } from "../deps.js";
import { parseInput } from "../parse.js";
import { replicationResultSchema, type ReplicationItem } from "./common.js";

/** Items per round: one Map of this many iterations stays far below Standard's 25,000 history events. */
export const ROUND_ITEMS = 100;

const inputSchema = z.object({
  scope: z.object({ region: z.string().min(1), databaseId: databaseIdSchema.optional(), limit: z.number().int().positive().max(1000).optional() }),
  round: z.number().int().nonnegative(),
  previous: z.array(replicationResultSchema),
});

export async function handler(input: unknown): Promise<{
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
  const ids = scope.databaseId !== undefined ? [scope.databaseId] : (await deps.catalog.listDatabases()).map((d) => d.databaseId);
  const missing: { at: string; item: ReplicationItem }[] = [];
  for (const databaseId of ids) {
    const [wal, snapshots] = await Promise.all([deps.catalog.listWal(databaseId), deps.catalog.listSnapshots(databaseId)]);
    for (const w of wal) if (w.replicas[scope.region]?.status !== "replicated") missing.push({ at: w.archivedAt, item: { databaseId, name: w.name } });
    for (const s of snapshots) {
      if (s.replicas[scope.region]?.status !== "replicated") missing.push({ at: s.recordedAt, item: { databaseId, snapshotId: s.snapshotId } });
    }
  }
  missing.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const items = missing.slice(0, scope.limit ?? ROUND_ITEMS).map((m) => m.item);
  return { items, count: items.length, remaining: missing.length, round: round + 1, stalled, complete: missing.length === 0 };
}
