/**
 * Carrying out a retention plan (core/retention.ts) in the catalog and in
 * every region's vault (issue #6).
 *
 * Contract:
 * - Order: a snapshot's or WAL file's catalog record goes first (from then on
 *   no restore plans from it), then its vault object in every region. A
 *   vault delete refused by Object Lock (ObjectLockedError) leaves the object,
 *   is reported and audited ("locked"), and never stops the run.
 * - Chunks are swept after the snapshots: mark every chunk a remaining
 *   snapshot's manifest references, sweep the unmarked ones recorded longer
 *   ago than the grace period (planChunkSweep). A push in progress whose
 *   chunks are younger than the grace survives; one that reuses an old chunk
 *   swept meanwhile is refused by snapshot ingest (CheckReferenced), never
 *   recorded half-present.
 * - One audit item per deletion: what, why, when, which run, where.
 * - Idempotent: running the same plan again deletes nothing more.
 */
import { forEachLimit } from "../core/concurrency.js";
import { ObjectLockedError, describeError } from "../core/errors.js";
import { vaultChunkKey } from "../core/keys.js";
import { planChunkSweep, type RetentionPlan } from "../core/retention.js";
import type { AuditRecord, DatabaseRecord, SnapshotRecord, WalRecord } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";
import { fetchManifest } from "./catalog-state.js";
import type { ObjectStore } from "./object-store.js";

export interface RegionVault {
  region: string;
  store: ObjectStore;
  bucket: string;
  primary: boolean;
}

export interface PruneOptions {
  runId: string;
  now: Date;
  /** Chunks recorded less than this long ago are never swept. */
  graceMs: number;
  /** Who runs it (the CLI user, the retention workflow). */
  by: string;
  concurrency?: number;
}

export interface PruneSummary {
  runId: string;
  deletedSnapshots: string[];
  deletedWal: number;
  sweptChunks: number;
  /** Unreferenced chunks kept because they are younger than the grace period. */
  freshChunks: number;
  locked: { region: string; key: string; error: string }[];
  audit: number;
}

export async function executePrune(
  database: DatabaseRecord,
  plan: RetentionPlan,
  records: { snapshots: readonly SnapshotRecord[]; wal: readonly WalRecord[] },
  catalog: Catalog,
  regions: readonly RegionVault[],
  opts: PruneOptions,
): Promise<PruneSummary> {
  const databaseId = database.databaseId;
  const conc = opts.concurrency ?? 8;
  const audit: AuditRecord[] = [];
  const locked: PruneSummary["locked"] = [];
  const at = opts.now.toISOString();
  const note = (action: AuditRecord["action"], subject: string, where: string[], reason: string): void => {
    audit.push({ databaseId, runId: opts.runId, seq: audit.length, at, action, subject, regions: where, reason, by: opts.by });
  };
  /** Deletes one key in every region; returns the regions it was deleted in. */
  const deleteEverywhere = async (key: string, versionOf: (r: RegionVault) => string | undefined): Promise<string[]> => {
    const done: string[] = [];
    for (const r of regions) {
      try {
        await r.store.delete(r.bucket, key, versionOf(r));
        done.push(r.region);
      } catch (e) {
        if (!(e instanceof ObjectLockedError)) throw e;
        locked.push({ region: r.region, key, error: describeError(e) });
        note("locked", key, [r.region], describeError(e));
      }
    }
    return done;
  };

  // Snapshots: record first, then manifest objects.
  const bySnap = new Map(records.snapshots.map((s) => [s.snapshotId, s]));
  const deletedSnapshots: string[] = [];
  for (const d of plan.deleteSnapshots) {
    const rec = bySnap.get(d.snapshotId);
    if (!rec) continue;
    await catalog.deleteSnapshot(databaseId, d.snapshotId);
    const where = await deleteEverywhere(rec.manifestKey, () => undefined);
    note("delete-snapshot", d.snapshotId, where, `finished ${d.finishedAt.toISOString()}: outside the daily/weekly/monthly slots and not needed by the recovery window`);
    deletedSnapshots.push(d.snapshotId);
  }

  // WAL: records in batches, then objects (each region's own version).
  const byName = new Map(records.wal.map((w) => [w.name, w]));
  const walGone = plan.deleteWal.flatMap((w) => byName.get(w.name) ?? []);
  await catalog.deleteWal(databaseId, walGone.map((w) => w.name));
  await forEachLimit(walGone, conc, async (w) => {
    const where = await deleteEverywhere(w.vaultKey, (r) => (r.primary ? w.vaultVersionId : w.replicas[r.region]?.versionId));
    note("delete-wal", w.name, where, "not needed by any kept snapshot nor by the recovery window");
  });

  // Chunks: mark what remaining snapshots reference, sweep the rest past the grace period.
  const primary = regions.find((r) => r.primary) ?? regions[0]!;
  const remaining = await catalog.listSnapshots(databaseId);
  const referenced = new Set<string>();
  await forEachLimit(remaining, 4, async (s) => {
    const m = await fetchManifest(primary.store, primary.bucket, s, database);
    for (const f of m.files) if (f.type === "file") for (const c of f.chunks) referenced.add(c.sha256);
  });
  const chunks = await catalog.listChunks(databaseId);
  const { sweep, fresh } = planChunkSweep(chunks.map((c) => ({ sha256: c.sha256, recordedAt: new Date(c.recordedAt) })), referenced, opts.now, opts.graceMs);
  await catalog.deleteChunks(databaseId, sweep);
  await forEachLimit(sweep, conc, async (sha) => {
    const where = await deleteEverywhere(vaultChunkKey(databaseId, sha), () => undefined);
    note("sweep-chunk", sha, where, `referenced by no kept snapshot, recorded more than ${Math.round(opts.graceMs / 3_600_000)} h ago`);
  });

  await catalog.recordAudit(audit);
  return { runId: opts.runId, deletedSnapshots, deletedWal: walGone.length, sweptChunks: sweep.length, freshChunks: fresh.length, locked, audit: audit.length };
}
