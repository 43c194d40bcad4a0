/**
 * Carrying out a retention plan (core/retention.ts) in the catalog and in
 * every region's vault (issue #6).
 *
 * Contract:
 * - Order: a snapshot's or WAL file's catalog record goes first (from then on
 *   no restore plans from it), then its vault object in every region. A
 *   vault delete refused by Object Lock (ObjectLockedError) leaves the object,
 *   is reported and audited ("locked"), and never stops the run. When the
 *   refused delete named a version (WAL files), the key gets a delete marker
 *   instead (allowed under any lock: the locked version itself stays intact
 *   and readable by its version id), so the vault's noncurrent-version
 *   lifecycle (Object Lock days + 1, infra/vault.ts) removes the version once
 *   its retention has ended, instead of it staying current with no catalog
 *   record naming it.
 * - Chunks are swept after the snapshots: mark every chunk a remaining
 *   snapshot's manifest references (a SortedHashSet, ~32 B per chunk), then
 *   read the chunk records a page at a time: a chunk stored as its own
 *   object that is unmarked and recorded longer ago than the grace period is
 *   swept (planChunkSweep; record, then object); a chunk in a pack only adds
 *   to its pack's tally (live/dead chunks and bytes: memory grows with packs,
 *   not chunks). A push in progress whose chunks are younger than the grace
 *   survives; one that reuses an old chunk swept meanwhile is refused by
 *   snapshot ingest (CheckReferenced), never recorded half-present.
 * - Packs, two phases (core/pack-retention.ts decides): a run marks an
 *   unreferenced pack (orphanedAt); a run at least a grace period later
 *   deletes it only by a conditional delete of its record on the orphanedAt
 *   it read (a push that reused a chunk of it cleared the mark and wins),
 *   then the chunk records still pointing at it, then the object in every
 *   region ("sweep-pack"). A sparse pack's live chunks are moved to new
 *   packs (store/repack.ts, at most REPACK_MAX_PACKS per run, "repack"), and
 *   the old pack marked, to be deleted like any other. Chunk records left
 *   pointing at a pack with no record (a deletion interrupted after it) are
 *   finished off when no kept snapshot uses them (sweepDangling).
 * - One audit item per deletion: what, why, when, which run, where.
 * - Idempotent: running the same plan again deletes nothing more.
 */
import { forEachLimit } from "../core/concurrency.js";
import { InvalidInputError, ObjectLockedError, describeError } from "../core/errors.js";
import { SortedHashSet } from "../core/hash-set.js";
import { vaultChunkKey } from "../core/keys.js";
import { parsePackIndex } from "../core/pack.js";
import { decidePack, DEFAULT_PACK_THRESHOLDS, type PackThresholds } from "../core/pack-retention.js";
import { snapshotInfoOf, streamsOf, walOf, type CatalogState } from "../core/restore-input.js";
import { planChunkSweep, planRetention, type KeepReason, type RetentionPlan, type RetentionPolicy } from "../core/retention.js";
import type { AuditRecord, ChunkItem, DatabaseRecord, PackItem, SnapshotRecord, WalRecord } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";
import { fetchManifest } from "./catalog-state.js";
import type { ObjectStore } from "./object-store.js";
import { REPACK_MAX_PACKS, repackPacks } from "./repack.js";

/** Chunk and pack records read per catalog page by the sweep. */
export const SWEEP_PAGE = 1000;

export interface PrunePlanView {
  databaseId: string;
  policy: RetentionPolicy;
  plan: RetentionPlan;
  /** Records of the snapshots to delete (for their manifests and sizes). */
  snapshotsToDelete: SnapshotRecord[];
  /** Records of the WAL files to delete (each region's version ids). */
  walToDelete: WalRecord[];
  walBytesToDelete: number;
}

/**
 * The retention plan of one database from its catalog records (core/retention.ts
 * over what the catalog records; generic databases with several WAL streams:
 * planned per stream). Shared by `walvault prune` and the retention workflow.
 */
export async function prunePlan(catalog: Catalog, databaseId: string, policy: RetentionPolicy, now = new Date()): Promise<PrunePlanView> {
  const [database, records, wal] = await Promise.all([catalog.getDatabase(databaseId), catalog.listSnapshots(databaseId), catalog.listWal(databaseId)]);
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
  const walToDelete = wal.filter((w) => goneWal.has(w.name));
  return {
    databaseId,
    policy,
    plan,
    snapshotsToDelete: records.filter((r) => gone.has(r.snapshotId)),
    walToDelete,
    walBytesToDelete: walToDelete.reduce((a, w) => a + w.storedSize, 0),
  };
}

/** A plan as JSON (`walvault prune --json`, the retention workflow's Plan step): dates as ISO text, WAL by name. */
export interface PrunePlanJson {
  databaseId: string;
  policy: RetentionPolicy;
  windowStart?: string | undefined;
  windowBase?: string | undefined;
  keep: { snapshotId: string; reasons: KeepReason[] }[];
  deleteSnapshots: { snapshotId: string; finishedAt: string }[];
  deleteWal: string[];
  keepWal: number;
  walBytesToDelete: number;
}

export function planToJson(v: PrunePlanView): PrunePlanJson {
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
  /** Mark and sweep chunks after the deletions (default true; a run carried out in several parts sweeps in its last). */
  sweepChunks?: boolean;
  /** Packs: when one is sparse (default DEFAULT_PACK_THRESHOLDS) and the target size of the packs a repack writes. */
  packs?: { thresholds?: PackThresholds; targetSize?: number };
}

export interface PruneSummary {
  runId: string;
  deletedSnapshots: string[];
  deletedWal: number;
  sweptChunks: number;
  /** Unreferenced chunks kept because they are younger than the grace period. */
  freshChunks: number;
  /** Packs deleted (their chunk records and objects), marked as deletion candidates, and rewritten without their dead chunks. */
  packsSwept: number;
  packsMarked: number;
  packsRepacked: number;
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
        let hidden = false;
        if (versionOf(r) !== undefined) {
          try {
            await r.store.delete(r.bucket, key);
            hidden = true;
          } catch (marker) {
            if (!(marker instanceof ObjectLockedError)) throw marker;
          }
        }
        const why = describeError(e) + (hidden ? "; the key got a delete marker: the locked version stays until its retention ends, then the noncurrent-version lifecycle removes it" : "");
        locked.push({ region: r.region, key, error: why });
        note("locked", key, [r.region], why);
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
  const done = { runId: opts.runId, deletedSnapshots, deletedWal: walGone.length, locked };
  if (opts.sweepChunks === false) {
    await catalog.recordAudit(audit);
    return { ...done, sweptChunks: 0, freshChunks: 0, packsSwept: 0, packsMarked: 0, packsRepacked: 0, audit: audit.length };
  }
  const swept = await sweepChunks(database, catalog, regions, opts, { note, deleteEverywhere });
  await catalog.recordAudit(audit);
  return { ...done, ...swept, audit: audit.length };
}

type Note = (action: AuditRecord["action"], subject: string, where: string[], reason: string) => void;
type DeleteEverywhere = (key: string, versionOf: (r: RegionVault) => string | undefined) => Promise<string[]>;

interface Tally {
  liveChunks: number;
  liveBytes: number;
  deadChunks: number;
  deadBytes: number;
}

/**
 * The sweep (module contract): mark, then chunk records by page (loose
 * chunks swept, packed ones tallied per pack), then pack records by page
 * (decided, then marked, unmarked, deleted or repacked).
 */
async function sweepChunks(
  database: DatabaseRecord,
  catalog: Catalog,
  regions: readonly RegionVault[],
  opts: PruneOptions,
  { note, deleteEverywhere }: { note: Note; deleteEverywhere: DeleteEverywhere },
): Promise<Pick<PruneSummary, "sweptChunks" | "freshChunks" | "packsSwept" | "packsMarked" | "packsRepacked">> {
  const databaseId = database.databaseId;
  const conc = opts.concurrency ?? 8;
  const graceHours = `${Math.round(opts.graceMs / 3_600_000)} h`;
  const primary = regions.find((r) => r.primary) ?? regions[0]!;
  const remaining = await catalog.listSnapshots(databaseId);
  const referenced = new SortedHashSet();
  await forEachLimit(remaining, 4, async (s) => {
    const m = await fetchManifest(primary.store, primary.bucket, s, database);
    referenced.addAll(m.files.flatMap((f) => (f.type === "file" ? f.chunks.map((c) => c.sha256) : [])));
  });

  const tallies = new Map<string, Tally>();
  let sweptChunks = 0;
  let freshChunks = 0;
  let after: string | undefined;
  do {
    const page = await catalog.listChunkPage(databaseId, after, SWEEP_PAGE);
    const loose: ChunkItem[] = [];
    for (const c of page.chunks) {
      if (c.offset === undefined) {
        if (!referenced.has(c.sha256)) loose.push(c);
        continue;
      }
      const t = tallies.get(c.vaultKey) ?? { liveChunks: 0, liveBytes: 0, deadChunks: 0, deadBytes: 0 };
      if (referenced.has(c.sha256)) {
        t.liveChunks++;
        t.liveBytes += c.storedSize;
      } else {
        t.deadChunks++;
        t.deadBytes += c.storedSize;
      }
      tallies.set(c.vaultKey, t);
    }
    const { sweep, fresh } = planChunkSweep(loose.map((c) => ({ sha256: c.sha256, recordedAt: new Date(c.recordedAt) })), new Set(), opts.now, opts.graceMs);
    await catalog.deleteChunks(databaseId, sweep);
    await forEachLimit(sweep, conc, async (sha) => {
      const where = await deleteEverywhere(vaultChunkKey(databaseId, sha), () => undefined);
      note("sweep-chunk", sha, where, `referenced by no kept snapshot, recorded more than ${graceHours} ago`);
    });
    sweptChunks += sweep.length;
    freshChunks += fresh.length;
    after = page.next;
  } while (after !== undefined);

  /** Deletes a candidate pack unless a push unmarked it since it was read; true when deleted. */
  const sweepPack = async (p: PackItem): Promise<boolean> => {
    // The index names the chunk records to delete; read it while the pack is surely there.
    const tail = await primary.store.getRange(primary.bucket, p.vaultKey, p.dataLength, p.size - 1);
    if (!(await catalog.deletePackIfOrphaned(databaseId, p.name, p.orphanedAt!))) return false;
    const hashes = tail === undefined ? [] : parsePackIndex(tail, { what: `pack ${p.name}`, packSize: p.size }).entries.map((e) => e.sha256);
    await catalog.deleteChunksInPack(databaseId, hashes, p.vaultKey);
    const where = await deleteEverywhere(p.vaultKey, () => undefined);
    note("sweep-pack", p.name, where, `no kept snapshot references a chunk of it; a deletion candidate since ${p.orphanedAt}, more than ${graceHours}, and no push reused it`);
    return true;
  };

  const thresholds = opts.packs?.thresholds ?? DEFAULT_PACK_THRESHOLDS;
  const at = opts.now.toISOString();
  const toRepack: PackItem[] = [];
  let packsSwept = 0;
  let packsMarked = 0;
  after = undefined;
  do {
    const page = await catalog.listPackPage(databaseId, after, SWEEP_PAGE);
    const toMark: string[] = [];
    const toDelete: PackItem[] = [];
    for (const p of page.packs) {
      const t = tallies.get(p.vaultKey) ?? { liveChunks: 0, liveBytes: 0, deadChunks: 0, deadBytes: 0 };
      tallies.delete(p.vaultKey);
      const orphanedAt = p.orphanedAt === undefined ? undefined : new Date(p.orphanedAt);
      const d = decidePack({ ...p, ...t, recordedAt: new Date(p.recordedAt), orphanedAt }, opts.now, opts.graceMs, thresholds);
      if (d.action === "mark") toMark.push(p.name);
      else if (d.action === "unmark") await catalog.clearPackOrphaned(databaseId, p.name);
      else if (d.action === "delete") toDelete.push(p);
      else if (d.action === "repack" && toRepack.length < REPACK_MAX_PACKS) toRepack.push(p);
    }
    packsMarked += (await catalog.markPacksOrphaned(databaseId, toMark, at)).length;
    await forEachLimit(toDelete, conc, async (p) => {
      if (await sweepPack(p)) packsSwept++;
    });
    after = page.next;
  } while (after !== undefined);

  // What is left of the tallies: chunk records pointing at a pack with no record.
  packsSwept += await sweepDangling(databaseId, tallies, catalog, opts, { note, deleteEverywhere });

  let packsRepacked = 0;
  if (toRepack.length > 0) {
    const repacked = await repackPacks(databaseId, toRepack, referenced, catalog, regions, { now: opts.now, ...(opts.packs?.targetSize === undefined ? {} : { targetSize: opts.packs.targetSize }) });
    for (const r of repacked) {
      if (r.error !== undefined) {
        console.error(`walvault retention: ${databaseId}: pack ${r.name} not repacked: ${r.error}`);
        note("repack", r.name, [], `sparse, but left as it is: ${r.error}`);
        continue;
      }
      note("repack", r.name, regions.map((x) => x.region), `sparse: ${r.moved} live chunk(s) moved to ${r.into.join(", ") || "no new pack"}; ${r.left} dead chunk record(s) left with it, which is now a deletion candidate`);
    }
    packsRepacked = repacked.filter((r) => r.error === undefined).length;
  }
  return { sweptChunks, freshChunks, packsSwept, packsMarked, packsRepacked };
}

/**
 * Chunk records that point at a pack with no record: a pack deletion
 * interrupted after its record (the record goes first). CheckReferenced
 * refuses to reuse such a chunk, so the records only hide the chunk from the
 * next push: when none of them is live and all are older than the grace
 * period, and the pack is still unrecorded, they are deleted (conditional on
 * the pack) with a second pass over the chunk pages, then the object in every
 * region. A pack with a live chunk is only logged: the object may hold the
 * only copy of bytes a kept snapshot needs. Returns the packs swept.
 */
async function sweepDangling(
  databaseId: string,
  tallies: ReadonlyMap<string, Tally>,
  catalog: Catalog,
  opts: PruneOptions,
  { note, deleteEverywhere }: { note: Note; deleteEverywhere: DeleteEverywhere },
): Promise<number> {
  const dangling = new Map<string, string[]>();
  for (const [key, t] of tallies) {
    if (t.liveChunks === 0) dangling.set(key, []);
    else console.error(`walvault retention: ${databaseId}: ${t.liveChunks} chunk record(s) that kept snapshots use point at ${key}, which has no pack record: left as they are`);
  }
  if (dangling.size === 0) return 0;
  const fresh = new Set<string>();
  let after: string | undefined;
  do {
    const page = await catalog.listChunkPage(databaseId, after, SWEEP_PAGE);
    for (const c of page.chunks) {
      const hashes = dangling.get(c.vaultKey);
      if (hashes === undefined || c.offset === undefined) continue;
      if (opts.now.getTime() - Date.parse(c.recordedAt) < opts.graceMs) fresh.add(c.vaultKey);
      else hashes.push(c.sha256);
    }
    after = page.next;
  } while (after !== undefined);
  const name = (key: string): string => key.slice(key.lastIndexOf("/") + 1);
  const recorded = new Set((await catalog.getPacks(databaseId, [...dangling.keys()].map(name))).map((p) => p.vaultKey));
  let swept = 0;
  for (const [key, hashes] of dangling) {
    // Recorded again, or written by a push under way: not an interrupted deletion.
    if (recorded.has(key) || fresh.has(key)) continue;
    await catalog.deleteChunksInPack(databaseId, hashes, key);
    const where = await deleteEverywhere(key, () => undefined);
    note("sweep-pack", name(key), where, `an earlier deletion of this pack stopped after its record: ${hashes.length} chunk record(s), none used by a kept snapshot, still pointed at it`);
    swept++;
  }
  return swept;
}

/** Where a run carried out in parts keeps the records it is about to delete (the retention workflow: a work/ object). */
export interface PruneJournal {
  read(): Promise<{ snapshots: SnapshotRecord[]; wal: WalRecord[] } | undefined>;
  write(entries: { snapshots: SnapshotRecord[]; wal: WalRecord[] }): Promise<void>;
  clear(): Promise<void>;
}

/**
 * executePrune, safe to interrupt and run again. executePrune deletes a
 * catalog record before its vault objects, so an attempt interrupted between
 * the two (a Lambda timeout, an S3 error) would leave objects no record
 * names, and a plan made afterwards no longer lists them. Here the records
 * about to be deleted are journaled first; the next attempt (the journal is
 * still there) also finishes the journaled items whose records are gone —
 * only those: an item recorded again or no longer planned is left — and the
 * journal is cleared when an attempt completes.
 */
export async function executePruneJournaled(
  database: DatabaseRecord,
  plan: RetentionPlan,
  records: { snapshots: readonly SnapshotRecord[]; wal: readonly WalRecord[] },
  catalog: Catalog,
  regions: readonly RegionVault[],
  opts: PruneOptions,
  journal: PruneJournal,
): Promise<PruneSummary> {
  const databaseId = database.databaseId;
  const planned = { snapshots: new Set(plan.deleteSnapshots.map((d) => d.snapshotId)), wal: new Set(plan.deleteWal.map((w) => w.name)) };
  const prior = await journal.read();
  let unfinished: { snapshots: SnapshotRecord[]; wal: WalRecord[] } = { snapshots: [], wal: [] };
  if (prior) {
    const [snaps, wal] = await Promise.all([catalog.listSnapshots(databaseId), catalog.listWal(databaseId)]);
    const recordedSnaps = new Set(snaps.map((s) => s.snapshotId));
    const recordedWal = new Set(wal.map((w) => w.name));
    unfinished = {
      snapshots: prior.snapshots.filter((s) => s.databaseId === databaseId && !recordedSnaps.has(s.snapshotId) && !planned.snapshots.has(s.snapshotId)),
      wal: prior.wal.filter((w) => w.databaseId === databaseId && !recordedWal.has(w.name) && !planned.wal.has(w.name)),
    };
  }
  const round = {
    snapshots: [...unfinished.snapshots, ...records.snapshots.filter((s) => planned.snapshots.has(s.snapshotId))],
    wal: [...unfinished.wal, ...records.wal.filter((w) => planned.wal.has(w.name))],
  };
  await journal.write(round);
  const whole: RetentionPlan = {
    ...plan,
    deleteSnapshots: [...unfinished.snapshots.map((s) => ({ snapshotId: s.snapshotId, finishedAt: new Date(s.finishedAt) })), ...plan.deleteSnapshots],
    // executePrune finds each WAL file by name; position and time are not used to delete.
    deleteWal: [...unfinished.wal.map((w) => ({ timeline: w.timeline, segno: 0n, name: w.name, archivedAt: new Date(w.archivedAt) })), ...plan.deleteWal],
  };
  const summary = await executePrune(database, whole, round, catalog, regions, opts);
  await journal.clear();
  return summary;
}
