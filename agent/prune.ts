/**
 * `walvault prune [--dry-run] [--json]` and `walvault snapshot pin|unpin ID`
 * (issue #6). The plan comes from core/retention.ts over what the catalog
 * records; `--dry-run` prints it and changes nothing.
 */
import { randomBytes } from "node:crypto";
import { hostname, userInfo } from "node:os";
import type { AgentConfig } from "../core/config.js";
import { InvalidInputError } from "../core/errors.js";
import { executePrune, type RegionVault } from "../store/prune.js";
import { agentClients } from "./clients.js";
import { regionalConfig, regionsOf } from "./regions.js";
import { DEFAULT_RETENTION, planRetention, type RetentionPlan, type RetentionPolicy } from "../core/retention.js";
import { walOf, snapshotInfoOf, streamsOf, type CatalogState } from "../core/restore-input.js";
import type { SnapshotRecord } from "../core/schemas.js";
import type { AgentClients } from "./clients.js";

export interface PruneFlags {
  daily?: string | undefined;
  weekly?: string | undefined;
  monthly?: string | undefined;
  "window-days"?: string | undefined;
}

export function policyFromFlags(flags: PruneFlags, base: RetentionPolicy = DEFAULT_RETENTION): RetentionPolicy {
  const num = (v: string | undefined, name: string, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!/^\d{1,4}$/.test(v)) throw new InvalidInputError(`--${name} must be a whole number, not '${v}'`);
    return Number(v);
  };
  return {
    daily: num(flags.daily, "daily", base.daily),
    weekly: num(flags.weekly, "weekly", base.weekly),
    monthly: num(flags.monthly, "monthly", base.monthly),
    recoveryWindowDays: num(flags["window-days"], "window-days", base.recoveryWindowDays),
    minSnapshots: base.minSnapshots ?? 2,
  };
}

export interface PrunePlanView {
  databaseId: string;
  policy: RetentionPolicy;
  plan: RetentionPlan;
  /** Records of the snapshots to delete (for their manifests and sizes). */
  snapshotsToDelete: SnapshotRecord[];
  walBytesToDelete: number;
}

/** The retention plan of one database from its catalog records (generic databases: the first stream's WAL line per stream is kept from the window base). */
export async function prunePlan(clients: AgentClients, databaseId: string, policy: RetentionPolicy, now = new Date()): Promise<PrunePlanView> {
  const [database, records, wal] = await Promise.all([clients.catalog.getDatabase(databaseId), clients.catalog.listSnapshots(databaseId), clients.catalog.listWal(databaseId)]);
  if (!database) throw new InvalidInputError(`database '${databaseId}' is not registered in the catalog`);
  const state: CatalogState = {
    database,
    records,
    segments: wal.filter((w) => w.kind === "segment"),
    histories: new Map(),
    streams: streamsOf(database, records, new Map()),
    manifests: new Map(),
  };
  const stream = database.kind === "generic" ? state.streams[0] : undefined;
  const snapshots = records.flatMap((r) => snapshotInfoOf(state, r, stream) ?? []);
  // Generic databases with several streams: WAL is planned per stream below.
  const plan = planRetention({ snapshots, wal: walOf(state, stream), segmentSize: database.walSegmentSize, policy, now });
  if (database.kind === "generic" && state.streams.length > 1) {
    const deleteWal = [...plan.deleteWal];
    for (const s of state.streams.slice(1)) {
      const p = planRetention({ snapshots: records.flatMap((r) => snapshotInfoOf(state, r, s) ?? []), wal: walOf(state, s), segmentSize: database.walSegmentSize, policy, now });
      deleteWal.push(...p.deleteWal);
    }
    plan.deleteWal = deleteWal;
  }
  const gone = new Set(plan.deleteSnapshots.map((s) => s.snapshotId));
  const goneWal = new Set(plan.deleteWal.map((w) => w.name));
  return {
    databaseId,
    policy,
    plan,
    snapshotsToDelete: records.filter((r) => gone.has(r.snapshotId)),
    walBytesToDelete: wal.filter((w) => goneWal.has(w.name)).reduce((a, w) => a + w.storedSize, 0),
  };
}

export function formatPrunePlan(v: PrunePlanView, dryRun: boolean): string {
  const p = v.plan;
  const lines = [
    `retention plan for ${v.databaseId}${dryRun ? " (dry run: nothing deleted)" : ""}: keep ${v.policy.daily} daily, ${v.policy.weekly} weekly, ${v.policy.monthly} monthly, ` +
      `PITR over the last ${v.policy.recoveryWindowDays} day(s), at least ${v.policy.minSnapshots ?? 2} snapshots`,
  ];
  if (p.windowStart) lines.push(`  recovery window from ${p.windowStart.toISOString()}, based on snapshot ${p.windowBase}`);
  for (const k of p.keep) lines.push(`  keep    ${k.snapshotId}  (${k.reasons.join(", ")})`);
  for (const d of p.deleteSnapshots) lines.push(`  delete  ${d.snapshotId}  (finished ${d.finishedAt.toISOString()}: no daily/weekly/monthly slot, not needed by the window)`);
  lines.push(`  WAL: keep ${p.keepWal} segment(s), delete ${p.deleteWal.length} (${(v.walBytesToDelete / 1e6).toFixed(1)} MB stored)`);
  if (p.deleteWal.length > 0) lines.push(`       delete ${p.deleteWal[0]!.name} .. ${p.deleteWal.at(-1)!.name}`);
  return lines.join("\n");
}

export function planToJson(v: PrunePlanView): unknown {
  return {
    databaseId: v.databaseId,
    policy: v.policy,
    windowStart: v.plan.windowStart?.toISOString(),
    windowBase: v.plan.windowBase,
    keep: v.plan.keep,
    deleteSnapshots: v.plan.deleteSnapshots.map((d) => ({ snapshotId: d.snapshotId, finishedAt: d.finishedAt.toISOString() })),
    deleteWal: v.plan.deleteWal.map((w) => w.name),
    keepWal: v.plan.keepWal,
    walBytesToDelete: v.walBytesToDelete,
  };
}

export interface PruneCommandFlags extends PruneFlags {
  json: boolean;
  "dry-run": boolean;
  "grace-hours"?: string | undefined;
}

/** `walvault prune`: the plan, then (unless --dry-run) carried out in the catalog and every region's vault. */
export async function pruneCommand(
  cfg: AgentConfig,
  databaseId: string,
  flags: PruneCommandFlags,
  print: (json: boolean, value: unknown, human: () => string) => void,
  now = new Date(),
): Promise<number> {
  const clients = agentClients(cfg);
  const db = await clients.catalog.getDatabase(databaseId);
  const view = await prunePlan(clients, databaseId, policyFromFlags(flags, db?.retention ?? DEFAULT_RETENTION), now);
  if (flags["dry-run"]) {
    print(flags.json, { dryRun: true, ...(planToJson(view) as object) }, () => formatPrunePlan(view, true));
    return 0;
  }
  const grace = flags["grace-hours"] === undefined ? 24 : Number(flags["grace-hours"]);
  if (!(grace >= 0)) throw new InvalidInputError(`--grace-hours must be a number of hours >= 0, not '${flags["grace-hours"]}'`);
  const regions: RegionVault[] = regionsOf(cfg).map((r) => ({
    region: r.region,
    primary: r.primary,
    bucket: r.vaultBucket,
    store: r.primary ? clients.store : agentClients(regionalConfig(cfg, r.region)).store,
  }));
  const wal = await clients.catalog.listWal(databaseId);
  const summary = await executePrune(db!, view.plan, { snapshots: view.snapshotsToDelete, wal }, clients.catalog, regions, {
    runId: `prune-${now.toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${randomBytes(3).toString("hex")}`,
    now,
    graceMs: grace * 3_600_000,
    by: `walvault prune (${userInfo().username}@${hostname()})`,
  });
  print(flags.json, { ...(planToJson(view) as object), summary }, () =>
    `${formatPrunePlan(view, false)}\ndeleted ${summary.deletedSnapshots.length} snapshot(s), ${summary.deletedWal} WAL file(s), swept ${summary.sweptChunks} chunk(s) ` +
      `(${summary.freshChunks} unreferenced but within the grace period kept); ${summary.audit} audit item(s), run ${summary.runId}` +
      (summary.locked.length ? `\n${summary.locked.length} object(s) still locked, left in place: ${summary.locked.slice(0, 3).map((l) => `${l.region}:${l.key}`).join(", ")}` : ""),
  );
  return summary.locked.length > 0 ? 1 : 0;
}
