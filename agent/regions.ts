/**
 * Regions as the agent sees them (issue #4): the primary (the config's
 * region, vault bucket and endpoints) and each replica (`replicas[]`).
 *
 * - regionalConfig(): the configuration for reading one region's vault
 *   (restore --region, wal-fetch --region): that region's bucket and S3
 *   endpoint; the catalog stays the global table.
 * - regionStatus(): per region, what it holds, how far behind it is and the
 *   windows point-in-time recovery can reach from it — from the catalog
 *   alone, so it answers while a region's storage is down.
 * - replicate(): starts statemachines/replicate.asl.json for one region and
 *   waits for it.
 * - markUnreplicated(): before it, for catalogs whose records do not say
 *   they are missing in a region (written before the replication index, a
 *   region added later, a rebuilt catalog), marks them so the workflow finds
 *   them (store/catalog.ts markUnreplicated), a page at a time.
 */
import type { AgentConfig } from "../core/config.js";
import { ConfigError } from "../core/errors.js";
import { ArchivedThrough } from "../core/generic-wal.js";
import { RegionLagTally, restorableWindowsOf, snapshotInRegion, walInRegion, WalLines, type RegionLag, type RestorableWindow } from "../core/regions.js";
import { snapshotInfoOf, streamsOf, type CatalogState } from "../core/restore-input.js";
import type { SnapshotInfo } from "../core/restore-plan.js";
import type { SnapshotRecord } from "../core/schemas.js";
import type { Catalog } from "../store/catalog.js";
import { createWorkflowRunner, type ExecutionState } from "../store/workflows.js";
import { executionError, waitForExecution } from "./restore-remote.js";

export interface RegionInfo {
  region: string;
  primary: boolean;
  vaultBucket: string;
  s3Endpoint?: string | undefined;
}

export function regionsOf(cfg: AgentConfig): RegionInfo[] {
  return [
    { region: cfg.region, primary: true, vaultBucket: cfg.vaultBucket, s3Endpoint: cfg.s3Endpoint },
    ...(cfg.replicas ?? []).map((r) => ({ region: r.region, primary: false, vaultBucket: r.vaultBucket, s3Endpoint: r.s3Endpoint })),
  ];
}

/** The region named `region` (undefined: the primary); ConfigError naming the known ones otherwise. */
export function findRegion(cfg: AgentConfig, region: string | undefined): RegionInfo {
  const all = regionsOf(cfg);
  if (region === undefined) return all[0]!;
  const r = all.find((x) => x.region === region);
  if (!r) throw new ConfigError(`region '${region}' is not configured (regions: ${all.map((x) => x.region).join(", ")})`);
  return r;
}

/**
 * The configuration that reads `region`'s vault: that region, its bucket and S3 endpoint,
 * and `replicaRegion` set so catalog reads keep only what that region holds.
 * The primary (or undefined) returns the configuration as it is.
 */
export function regionalConfig<C extends AgentConfig>(cfg: C, region: string | undefined): C & { replicaRegion?: string } {
  const r = findRegion(cfg, region);
  if (r.primary) return cfg;
  const replica = (cfg.replicas ?? []).find((x) => x.region === r.region)!;
  const { s3Endpoint: _primaryS3, ...rest } = cfg;
  return {
    ...(rest as C),
    // Clients for that region (in AWS an S3 client must be built for the bucket's region; the catalog is a global table replica there).
    region: r.region,
    vaultBucket: r.vaultBucket,
    ...(r.s3Endpoint ? { s3Endpoint: r.s3Endpoint } : {}),
    ...(replica.dynamodbEndpoint ? { dynamodbEndpoint: replica.dynamodbEndpoint } : {}),
    replicaRegion: r.region,
  };
}

export interface RegionStatus extends RegionLag {
  region: string;
  primary: boolean;
  /** WAL files and snapshots the region holds. */
  wal: number;
  snapshots: number;
  /** Stretches of time a restore from this region can reach (generic: every stream at once). */
  windows: { from: string; to: string; snapshots: string[] }[];
}

/** Intersection of two sorted window lists. */
function intersect(a: RestorableWindow[], b: RestorableWindow[]): RestorableWindow[] {
  const out: RestorableWindow[] = [];
  for (const x of a) {
    for (const y of b) {
      const from = x.from > y.from ? x.from : y.from;
      const to = x.to < y.to ? x.to : y.to;
      if (from <= to) out.push({ from, to, snapshots: x.snapshots.filter((s) => y.snapshots.includes(s)) });
    }
  }
  return out;
}

/** What regionStatus gathers for one region while it reads the WAL a page at a time. */
interface RegionTally {
  info: RegionInfo;
  /** undefined: the primary (holds everything recorded). */
  key: string | undefined;
  snapshots: SnapshotRecord[];
  streams: string[];
  /** WAL files the region holds. */
  held: number;
  /** The segments it holds, per WAL line. */
  lines: WalLines;
  through: ArchivedThrough;
  lag: RegionLagTally | undefined;
}

/**
 * Per region: what it holds, its lag and its restorable windows
 * (core/regions.ts), from the catalog's WAL read a page at a time (walPages)
 * into each region's positions and times (~20 bytes a segment it holds,
 * core/wal-positions.ts), never the records: at 1M segments the whole list
 * was ~0.7 GB in the agent's CLI.
 */
export async function regionStatus(catalog: Catalog, cfg: AgentConfig, databaseId: string, only: string | undefined, now = new Date()): Promise<RegionStatus[]> {
  const regions = only === undefined ? regionsOf(cfg) : [findRegion(cfg, only)];
  const [database, records] = await Promise.all([catalog.getDatabase(databaseId), catalog.listSnapshots(databaseId)]);
  if (!database) throw new ConfigError(`database '${databaseId}' is not registered in the catalog`);
  const size = database.walSegmentSize;
  const tallies: RegionTally[] = regions.map((r) => {
    const key = r.primary ? undefined : r.region;
    const snapshots = records.flatMap((x) => snapshotInRegion(x, key) ?? []);
    const streams = streamsOf(database, snapshots, new Map());
    return { info: r, key, snapshots, streams, held: 0, lines: new WalLines(database, streams), through: new ArchivedThrough(), lag: r.primary ? undefined : new RegionLagTally(r.region) };
  });
  let after: string | undefined;
  do {
    const page = await catalog.listWalPage(databaseId, after);
    for (const t of tallies) {
      t.lag?.add(page.records);
      const held = page.records.flatMap((w) => walInRegion(w, t.key) ?? []);
      t.held += held.length;
      const segments = held.filter((w) => w.kind === "segment");
      if (database.kind === "generic") t.through.add(segments);
      // Generic: only the lines of the streams its snapshots have are planned (none: no window).
      if (database.kind === "postgres" || t.streams.length > 0) t.lines.add(segments);
    }
    after = page.next;
  } while (after !== undefined);

  return tallies.map((t) => {
    const state: CatalogState = { database, records: t.snapshots, segments: [], histories: new Map(), streams: t.streams, manifests: new Map() };
    const infos = (stream: string | undefined): SnapshotInfo[] => t.snapshots.flatMap((x) => snapshotInfoOf(state, x, stream) ?? []);
    let windows: RestorableWindow[];
    if (database.kind === "generic" && t.streams.length > 0) {
      const through = t.through.result();
      const per = t.streams.map((s) => restorableWindowsOf(infos(s), t.lines.of(s), size, through));
      windows = per.reduce((acc, w) => intersect(acc, w));
    } else {
      windows = database.kind === "postgres" ? restorableWindowsOf(infos(undefined), t.lines.of(undefined), size) : [];
    }
    const lag: RegionLag = t.lag === undefined ? { missingWal: 0, missingSnapshots: 0, failed: 0, lagSeconds: 0 } : t.lag.result(records, now);
    return {
      region: t.info.region,
      primary: t.info.primary,
      wal: t.held,
      snapshots: t.snapshots.length,
      ...lag,
      windows: windows.map((w) => ({ from: w.from.toISOString(), to: w.to.toISOString(), snapshots: w.snapshots })),
    };
  });
}

export function formatRegionStatus(list: RegionStatus[]): string {
  const lines: string[] = [];
  for (const r of list) {
    const lag = r.primary ? "primary" : r.missingWal + r.missingSnapshots === 0 ? "level" : `${r.missingWal} WAL file(s), ${r.missingSnapshots} snapshot(s) behind, lag ${r.lagSeconds} s`;
    lines.push(`  region ${r.region.padEnd(12)} ${r.wal} WAL file(s), ${r.snapshots} snapshot(s); ${lag}${r.failed ? `; ${r.failed} failed copy(ies): ${r.lastError ?? ""}` : ""}`);
    if (r.windows.length === 0) lines.push(`    restorable: nothing yet`);
    for (const w of r.windows) lines.push(`    restorable ${w.from} .. ${w.to}`);
  }
  return lines.join("\n");
}

export interface MarkTotals {
  databases: number;
  examined: number;
  marked: number;
}

/**
 * Makes every WAL and snapshot record not replicated in `region` pending
 * there, in the databases given or in every registered one (listed a page
 * at a time), each database a page of records at a time: memory holds one
 * page, never the catalog. Idempotent: run again after a stop, it re-reads
 * and writes only the marks still missing.
 */
export async function markUnreplicated(catalog: Catalog, region: string, databaseIds?: readonly string[], onDatabase?: (databaseId: string, t: MarkTotals) => void): Promise<MarkTotals> {
  const totals: MarkTotals = { databases: 0, examined: 0, marked: 0 };
  const markDatabase = async (databaseId: string): Promise<void> => {
    let after: string | undefined;
    do {
      const page = await catalog.markUnreplicated(databaseId, region, after);
      totals.examined += page.examined;
      totals.marked += page.marked;
      after = page.next;
    } while (after !== undefined);
    totals.databases++;
    onDatabase?.(databaseId, totals);
  };
  if (databaseIds !== undefined) {
    for (const id of databaseIds) await markDatabase(id);
    return totals;
  }
  let after: string | undefined;
  do {
    const page = await catalog.listDatabasePage(after);
    for (const d of page.databases) await markDatabase(d.databaseId);
    after = page.next;
  } while (after !== undefined);
  return totals;
}

export interface ReplicateOptions {
  region: string;
  databaseId?: string;
  stateMachineArn: string;
  timeoutMs?: number;
  onState?: (s: ExecutionState) => void;
}

/** Starts the replicate workflow for one region and waits for it; throws the execution's error when it does not succeed. */
export async function replicate(cfg: AgentConfig, opts: ReplicateOptions): Promise<{ executionId: string; output: unknown }> {
  findRegion(cfg, opts.region);
  const runner = createWorkflowRunner({ ...cfg, region: cfg.region });
  const executionId = await runner.start(opts.stateMachineArn, { region: opts.region, ...(opts.databaseId ? { databaseId: opts.databaseId } : {}) });
  const state = await waitForExecution(runner, executionId, {
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    ...(opts.onState ? { onState: opts.onState } : {}),
  });
  if (state.status !== "SUCCEEDED") throw executionError(state);
  return { executionId, output: state.output };
}
