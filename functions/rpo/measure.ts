/**
 * rpo-watch workflow, its one step — MeasureRpo: the archive lag of a page
 * of databases (core/rpo.ts), each as a CloudWatch metric
 * (walvault/Archive, dimension DatabaseId: ArchiveLagSeconds, RpoSeconds,
 * RpoBreached 0 or 1), which the deployed alarm and dashboard read
 * (infra/rpo-watch.ts, docs/alarms.md).
 * Input: { after? } (the schedule sends {}). Output: { next?, measured, breached }.
 *
 * Bounded whatever the number of databases: one page of the registry
 * (listDatabasePage, a Query) and one GetItem of each database's head per
 * invocation; the workflow calls the step again with `next` until the
 * registry ends. `breached` names at most MAX_NAMED databases of the page.
 *
 * Replica regions (WALVAULT_REPLICAS): per database and region, the oldest
 * record still pending there (one Query of the region's replication index,
 * Limit 1, and one GetItem of that record) as walvault/Replication
 * ReplicationLagSeconds (dimensions DatabaseId, Region; 0 when nothing is
 * pending), which the replication alarm reads (infra/monitoring.ts).
 */
import { z } from "zod";
import { forEachLimit } from "../../core/concurrency.js";
import { ARCHIVE_NAMESPACE, REPLICATION_NAMESPACE } from "../../core/metrics.js";
import { replicationLagSeconds, rpoReading, type RpoReading } from "../../core/rpo.js";
import type { Catalog } from "../../store/catalog.js";
import { databaseIdSchema } from "../../core/schemas.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { emitMetric, lambdaHandler } from "../observability.js";

/** Databases measured per invocation. */
export const RPO_PAGE = 200;
/** Heads read at once. */
const HEAD_CONCURRENCY = 8;
/** Databases over their threshold named in the output, per page (the metrics carry every one). */
export const MAX_NAMED = 20;

const inputSchema = z.object({ after: databaseIdSchema.optional() }).passthrough();

export interface MeasureOutput {
  /** Pass as `after` for the next page; absent after the last. */
  next?: string;
  measured: number;
  /** Ids over their threshold on this page (at most MAX_NAMED). */
  breached: string[];
}

/** The metric record of one reading. */
export function rpoMetric(r: RpoReading): Parameters<typeof emitMetric>[0] {
  return {
    namespace: ARCHIVE_NAMESPACE,
    dimensions: ["DatabaseId"],
    metrics: [
      { name: "ArchiveLagSeconds", unit: "Seconds" },
      { name: "RpoSeconds", unit: "Seconds" },
      { name: "RpoBreached", unit: "Count" },
    ],
    values: {
      DatabaseId: r.databaseId,
      ArchiveLagSeconds: r.lagSeconds,
      RpoSeconds: r.thresholdSeconds,
      RpoBreached: r.breached ? 1 : 0,
      Since: r.since,
      ...(r.lastWal === undefined ? {} : { LastWal: r.lastWal }),
    },
  };
}

/** When the oldest record of `databaseId` still pending in `region` was recorded (undefined: nothing pending). */
async function pendingSince(catalog: Catalog, databaseId: string, region: string): Promise<string | undefined> {
  const [first] = (await catalog.listUnreplicated(region, { databaseId, limit: 1 })).items;
  if (first === undefined) return undefined;
  if (first.snapshotId !== undefined) return (await catalog.getSnapshot(databaseId, first.snapshotId))?.recordedAt;
  return (await catalog.getWal(databaseId, first.name))?.archivedAt;
}

/** The metric record of one database's replication lag in one region. */
export function replicationMetric(databaseId: string, region: string, lagSeconds: number, since: string | undefined): Parameters<typeof emitMetric>[0] {
  return {
    namespace: REPLICATION_NAMESPACE,
    dimensions: ["DatabaseId", "Region"],
    metrics: [{ name: "ReplicationLagSeconds", unit: "Seconds" }],
    values: { DatabaseId: databaseId, Region: region, ReplicationLagSeconds: lagSeconds, ...(since === undefined ? {} : { PendingSince: since }) },
  };
}

async function handle(input: unknown): Promise<MeasureOutput> {
  const { after } = parseInput(inputSchema, input ?? {}, "rpo-watch input");
  const { catalog, replicas } = getDeps();
  const page = await catalog.listDatabasePage(after, RPO_PAGE);
  const now = new Date();
  const breached: string[] = [];
  await forEachLimit(page.databases, HEAD_CONCURRENCY, async (db) => {
    const reading = rpoReading(db, await catalog.getHead(db.databaseId), now);
    emitMetric(rpoMetric(reading));
    if (reading.breached && breached.length < MAX_NAMED) breached.push(db.databaseId);
    for (const { region } of replicas) {
      const since = await pendingSince(catalog, db.databaseId, region);
      emitMetric(replicationMetric(db.databaseId, region, replicationLagSeconds(since, now), since));
    }
  });
  return { ...(page.next === undefined ? {} : { next: page.next }), measured: page.databases.length, breached: breached.sort() };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
