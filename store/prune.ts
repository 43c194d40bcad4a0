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
 * - Chunks are swept after the snapshots (store/sweep.ts, in bounded rounds):
 *   mark every chunk a remaining snapshot's manifest references, then read
 *   the chunk records a page at a time: a chunk stored as its own object
 *   that is unmarked and recorded longer ago than the grace period is swept
 *   (planChunkSweep; record, then object); a chunk in a pack only adds to its
 *   pack's record tally. Then each pack's own index is read and tallied
 *   against the mark: that index decides whether a pack is live, but for a
 *   repacked pack (its records decide). A push in progress whose chunks are younger than the grace
 *   survives; one that reuses an old chunk swept meanwhile is refused by
 *   snapshot ingest (CheckReferenced), never recorded half-present.
 * - Packs, two phases (core/pack-retention.ts decides): a run marks an
 *   unreferenced pack (orphanedAt); a run at least a grace period later
 *   deletes it only by a conditional delete of its record on the orphanedAt
 *   it read (a push that reused a chunk of it cleared the mark and wins),
 *   then the chunk records still pointing at it, then the object in every
 *   region ("sweep-pack"). A sparse pack's live chunks are moved to new
 *   packs (store/repack.ts, at most REPACK_MAX_PACKS per run, "repack"), and
 *   the old pack marked repacked and a candidate, to be deleted like any other. Chunk records left
 *   pointing at a pack with no record (a deletion interrupted after it) are
 *   finished off when no kept snapshot uses them (sweepDangling).
 * - One audit item per deletion: what, why, when, which run, where.
 * - Idempotent: running the same plan again deletes nothing more.
 */
import { forEachLimit, mapLimit } from "../core/concurrency.js";
import { CodecError, InvalidInputError, ManifestInvalidError, ObjectLockedError, UnsafePathError, describeError } from "../core/errors.js";
import { parseWalFileName, segmentName } from "../core/wal.js";
import type { PackThresholds } from "../core/pack-retention.js";
import type { WalSegmentInfo } from "../core/restore-plan.js";
import { genericSegno, snapshotInfoOf, streamOfRecord, streamsOf, walOf, type CatalogState } from "../core/restore-input.js";
import { inRanges, intersectRanges, planRetention, type KeepReason, type PositionRange, type RetentionPlan, type RetentionPolicy } from "../core/retention.js";
import type { AuditRecord, DatabaseRecord, SnapshotRecord, WalRecord } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";
import { openManifest, StoreManifestObjects } from "./manifest-pages.js";
import { pageKeysOf } from "./manifest-read.js";
import type { ObjectStore } from "./object-store.js";
import { DEFAULT_SWEEP_BUDGET, MemorySweepScratch, sweepRound, type SweepBudget, type SweepCursor, type SweepScratch } from "./sweep.js";

/** WAL records read per catalog page while going through deletion ranges. */
export const WAL_PAGE = 1000;
/** WAL files a plan lists by name (`prune --dry-run`, the workflow's Plan): more are counted by range only. */
export const WAL_LISTED = 1000;
/** Records the plan reads at most to list WAL_LISTED of them (a generic database's deletable files may be spread over its names). */
export const WAL_LIST_READ = 4 * WAL_LISTED;

/**
 * WAL a plan deletes, one range of one PostgreSQL timeline (`from` and
 * `through`: segment names) or of one generic stream (`from` and `through`:
 * positions, decimal). Only segments go (never history, .partial or .backup
 * files), and only those that are recorded.
 */
export interface WalDeletionRange {
  timeline?: number | undefined;
  stream?: string | undefined;
  from: string;
  through: string;
}

export interface PrunePlanView {
  databaseId: string;
  policy: RetentionPolicy;
  /** The plan; `plan.deleteWal` holds the WAL files listed (walToDelete), not necessarily all. */
  plan: RetentionPlan;
  /** Records of the snapshots to delete (for their manifests and sizes). */
  snapshotsToDelete: SnapshotRecord[];
  /** What the plan deletes of the WAL, by range (bounded by kept snapshots and timelines or streams, not by WAL). */
  walRanges: WalDeletionRange[];
  /** Records of the first WAL files to delete, at most WAL_LISTED (each region's version ids). */
  walToDelete: WalRecord[];
  /** Whether walToDelete is every WAL file the ranges hold. */
  walListComplete: boolean;
  /** Stored bytes of walToDelete. */
  walBytesToDelete: number;
}

/**
 * The retention plan of one database from its catalog records (core/retention.ts
 * over the snapshot records; generic databases with several WAL streams:
 * planned per stream). Shared by `walvault prune` and the retention workflow.
 * It reads the registration, the snapshot records (bounded by retention),
 * one item per PostgreSQL timeline (Catalog.listWalTimelines), and lists the
 * first `listed` (WAL_LISTED) WAL files of the deletion ranges: never the
 * whole WAL catalog (docs/retention.md, "WAL by range").
 */
export async function prunePlan(catalog: Catalog, databaseId: string, policy: RetentionPolicy, now = new Date(), options: { listed?: number } = {}): Promise<PrunePlanView> {
  const [database, records] = await Promise.all([catalog.getDatabase(databaseId), catalog.listSnapshots(databaseId)]);
  if (!database) throw new InvalidInputError(`database '${databaseId}' is not registered in the catalog`);
  const state: CatalogState = { database, records, segments: [], histories: new Map(), streams: streamsOf(database, records, new Map()), manifests: new Map() };
  const planOf = (stream: string | undefined): RetentionPlan =>
    planRetention({ snapshots: records.flatMap((r) => snapshotInfoOf(state, r, stream) ?? []), wal: [], segmentSize: database.walSegmentSize, policy, now });
  const plan = planOf(database.kind === "generic" ? state.streams[0] : undefined);
  const size = database.walSegmentSize;
  const walRanges: WalDeletionRange[] =
    database.kind === "postgres"
      ? (await catalog.listWalTimelines(databaseId)).flatMap((t) =>
          plan.deleteRanges.map((r) => ({ timeline: t.timeline, from: segmentName(t.timeline, r.from, size), through: segmentName(t.timeline, r.through, size) })),
        )
      : state.streams.flatMap((s, i) => (i === 0 ? plan : planOf(s)).deleteRanges.map((r) => ({ stream: s, from: r.from.toString(), through: r.through.toString() })));
  const listed = options.listed ?? WAL_LISTED;
  const batch = listed === 0 ? { records: [], after: "" } : await nextWalBatch(catalog, database, walRanges, undefined, { records: listed, read: Math.max(WAL_LIST_READ, listed + 1) });
  const walToDelete = batch.records;
  plan.deleteWal = walInfos(database, walToDelete);
  return {
    databaseId,
    policy,
    plan,
    snapshotsToDelete: records.filter((r) => plan.deleteSnapshots.some((d) => d.snapshotId === r.snapshotId)),
    walRanges,
    walToDelete,
    walListComplete: batch.after === undefined,
    walBytesToDelete: walToDelete.reduce((a, w) => a + w.storedSize, 0),
  };
}

/** WAL records as the plan names them (timeline and position). */
function walInfos(database: DatabaseRecord, records: readonly WalRecord[]): WalSegmentInfo[] {
  return walOf({ database, records: [], segments: [...records], histories: new Map(), streams: [], manifests: new Map() }, undefined);
}

/** A range's positions (PostgreSQL: segment numbers of its names). */
function positionsOf(database: DatabaseRecord, r: WalDeletionRange): PositionRange {
  if (r.timeline === undefined) return { from: BigInt(r.from), through: BigInt(r.through) };
  const segno = (name: string): bigint => parseWalFileName(name, database.walSegmentSize).segno!;
  return { from: segno(r.from), through: segno(r.through) };
}

/**
 * What both lists of ranges delete (a plan shown earlier and a fresh one):
 * per timeline or stream, the positions in both.
 */
export function intersectWalRanges(database: DatabaseRecord, a: readonly WalDeletionRange[], b: readonly WalDeletionRange[]): WalDeletionRange[] {
  const keyOf = (r: WalDeletionRange): string => (r.timeline === undefined ? `s:${r.stream}` : `t:${r.timeline}`);
  const group = (list: readonly WalDeletionRange[]): Map<string, PositionRange[]> => {
    const m = new Map<string, PositionRange[]>();
    for (const r of list) m.set(keyOf(r), [...(m.get(keyOf(r)) ?? []), positionsOf(database, r)]);
    for (const v of m.values()) v.sort((x, y) => (x.from < y.from ? -1 : x.from > y.from ? 1 : 0));
    return m;
  };
  const fresh = group(b);
  const out: WalDeletionRange[] = [];
  for (const [key, shown] of group(a)) {
    const sample = a.find((r) => keyOf(r) === key)!;
    for (const p of intersectRanges(shown, fresh.get(key) ?? [])) {
      out.push(
        sample.timeline === undefined
          ? { stream: sample.stream, from: p.from.toString(), through: p.through.toString() }
          : { timeline: sample.timeline, from: segmentName(sample.timeline, p.from, database.walSegmentSize), through: segmentName(sample.timeline, p.through, database.walSegmentSize) },
      );
    }
  }
  return out;
}

/** A batch of WAL files to delete, and where the next batch starts (absent: the ranges are done). */
export interface WalBatch {
  records: WalRecord[];
  /** The last WAL name looked at: everything in the ranges up to it is in `records` or stays. */
  after?: string;
}

/**
 * The next WAL segment records in `ranges` after the name `after`, at most
 * `limits.records` of them, reading at most about `limits.read` records;
 * `after` is absent only when the ranges are done (a full batch stops
 * before the next file to delete, so it knows there is one).
 * PostgreSQL: a Query per range of one timeline (Catalog.listWalRange), a
 * page at a time: it reads the ranges and nothing else. Generic: stream
 * file names need not sort by position, so the stream's records are read a
 * page at a time in name order (Catalog.listWalPage) and those whose
 * position lies in their stream's ranges are taken: a paged read of the
 * whole stream, bounded per call by `limits.read`, resumed from `after`.
 */
export async function nextWalBatch(
  catalog: Catalog,
  database: DatabaseRecord,
  ranges: readonly WalDeletionRange[],
  after: string | undefined,
  limits: { records: number; read: number },
): Promise<WalBatch> {
  const databaseId = database.databaseId;
  const out: WalRecord[] = [];
  let read = 0;
  let cursor = after;
  /** Takes `w` unless the batch is full (false: stop before it, so a full batch ends exactly where the next deletable file starts). */
  const look = (w: WalRecord, deletable: boolean): boolean => {
    if (deletable && out.length >= limits.records) return false;
    read++;
    cursor = w.name;
    if (deletable) out.push(w);
    return true;
  };
  const stopped = (): WalBatch => ({ records: out, after: cursor ?? "" });
  if (ranges.length === 0) return { records: out };
  if (database.kind === "postgres") {
    for (const r of [...ranges].sort((x, y) => (x.from < y.from ? -1 : x.from > y.from ? 1 : 0))) {
      if (cursor !== undefined && r.through <= cursor) continue;
      for (;;) {
        if (read >= limits.read) return stopped();
        const from = cursor !== undefined && cursor > r.from ? cursor : r.from;
        // + 1: the cursor's own record may come first; at least one more, so that every page moves on.
        const limit = Math.min(WAL_PAGE, Math.max(limits.read - read, 1), Math.max(limits.records - out.length, 1)) + 1;
        const page = await catalog.listWalRange(databaseId, r.timeline!, from, r.through, { limit });
        for (const w of page) {
          if (cursor !== undefined && w.name <= cursor) continue;
          if (read >= limits.read || !look(w, w.kind === "segment")) return stopped();
        }
        if (page.length < limit) break;
      }
    }
    return { records: out };
  }
  const byStream = new Map<string, PositionRange[]>();
  for (const r of ranges) byStream.set(r.stream!, [...(byStream.get(r.stream!) ?? []), positionsOf(database, r)].sort((x, y) => (x.from < y.from ? -1 : 1)));
  for (;;) {
    if (read >= limits.read) return stopped();
    const page = await catalog.listWalPage(databaseId, cursor, Math.min(WAL_PAGE, limits.read - read, Math.max(limits.records - out.length, 100)));
    for (const w of page.records) {
      const stream = streamOfRecord(w);
      const position = genericSegno(w, database.walSegmentSize);
      const rs = stream === undefined ? undefined : byStream.get(stream);
      if (read >= limits.read || !look(w, w.kind === "segment" && rs !== undefined && position !== undefined && inRanges(rs, position))) return stopped();
    }
    if (page.next === undefined) return { records: out };
  }
}

/** A plan as JSON (`walvault prune --json`, the retention workflow's Plan step): dates as ISO text, WAL by range, the first files by name. */
export interface PrunePlanJson {
  databaseId: string;
  policy: RetentionPolicy;
  windowStart?: string | undefined;
  windowBase?: string | undefined;
  keep: { snapshotId: string; reasons: KeepReason[] }[];
  deleteSnapshots: { snapshotId: string; finishedAt: string }[];
  /** WAL files deleted, by name: every one when deleteWalComplete, else the first WAL_LISTED. */
  deleteWal: string[];
  deleteWalComplete: boolean;
  /** Every WAL file deleted is in one of these ranges. */
  deleteWalRanges: WalDeletionRange[];
  /** Stored bytes of the WAL files listed in deleteWal. */
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
    deleteWalComplete: v.walListComplete,
    deleteWalRanges: v.walRanges,
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
  /** The first audit item's sequence number (default 0): a run carried out in several parts at one `now` numbers on. */
  auditSeq?: number;
  /** Mark and sweep chunks after the deletions (default true; a run carried out in several parts sweeps in its last). */
  sweepChunks?: boolean;
  /**
   * The chunk sweep in rounds (store/sweep.ts): this run does one round from
   * `cursor` (none: the start), keeping the mark in `scratch`, and returns the
   * next cursor as `sweep`. Without it, every round runs here with the mark
   * in memory.
   */
  sweep?: { scratch: SweepScratch; cursor?: SweepCursor; budget?: Partial<SweepBudget> };
  /** Packs: when one is sparse (default DEFAULT_PACK_THRESHOLDS) and the target size of the packs a repack writes. */
  packs?: { thresholds?: PackThresholds; targetSize?: number };
  /** Where the sweep says what it leaves alone and an operator may want to look at (default: stderr; the retention handler: its logger). */
  warn?: (message: string) => void;
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
  /** Where the chunk sweep is (phase "done" when finished); absent when this run did not sweep. */
  sweep?: SweepCursor;
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
    audit.push({ databaseId, runId: opts.runId, seq: (opts.auditSeq ?? 0) + audit.length, at, action, subject, regions: where, reason, by: opts.by });
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
    // Format 2: its pages before the header (which names them), so a run interrupted in between finds them again.
    await forEachLimit(await pageKeysIn(rec.manifestKey, regions), conc, async (key) => {
      await deleteEverywhere(key, () => undefined);
    });
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
  // One round (the workflow passes the cursor on), or every round here (`walvault prune`: the mark in memory).
  const ctx = { database, catalog, regions, opts, note, deleteEverywhere };
  const counts = { sweptChunks: 0, freshChunks: 0, packsSwept: 0, packsMarked: 0, packsRepacked: 0 };
  const scratch = opts.sweep?.scratch ?? new MemorySweepScratch();
  const budget = { ...DEFAULT_SWEEP_BUDGET, ...opts.sweep?.budget };
  let cursor = opts.sweep?.cursor;
  do {
    const round = await sweepRound(ctx, scratch, cursor, budget);
    for (const k of Object.keys(counts) as (keyof typeof counts)[]) counts[k] += round.counts[k];
    cursor = round.cursor;
  } while (opts.sweep === undefined && cursor.phase !== "done");
  await catalog.recordAudit(audit);
  return { ...done, ...counts, sweep: cursor, audit: audit.length };
}

/**
 * The page objects of the manifest at `manifestKey` (format 2), read from the
 * header in the first region that still has a readable one; none for format 1
 * or when no region has it any more.
 */
async function pageKeysIn(manifestKey: string, regions: readonly RegionVault[]): Promise<string[]> {
  for (const r of regions) {
    try {
      const m = await openManifest(new StoreManifestObjects(r.store, r.bucket), manifestKey);
      if (m !== undefined) return pageKeysOf(manifestKey, m);
    } catch (e) {
      if (!(e instanceof ManifestInvalidError || e instanceof UnsafePathError || e instanceof CodecError)) throw e;
    }
  }
  return [];
}

/** WAL files one executePlan step deletes (as the workflow's round: ROUND_WAL). */
export const PLAN_STEP_WAL = 5000;

/**
 * A whole plan carried out here (`walvault prune`): its snapshots, then its
 * WAL ranges a batch at a time (nextWalBatch: memory bounded by the batch,
 * not by the WAL catalog), then the chunk sweep.
 */
export async function executePlan(database: DatabaseRecord, view: PrunePlanView, catalog: Catalog, regions: readonly RegionVault[], opts: PruneOptions): Promise<PruneSummary> {
  const none = { ...view.plan, deleteSnapshots: [], deleteWal: [] };
  let total = await executePrune(database, { ...none, deleteSnapshots: view.plan.deleteSnapshots }, { snapshots: view.snapshotsToDelete, wal: [] }, catalog, regions, { ...opts, sweepChunks: false });
  const add = (s: PruneSummary): PruneSummary => ({
    ...s,
    deletedSnapshots: [...total.deletedSnapshots, ...s.deletedSnapshots],
    deletedWal: total.deletedWal + s.deletedWal,
    locked: [...total.locked, ...s.locked],
    audit: total.audit + s.audit,
  });
  let after: string | undefined;
  do {
    const batch = await nextWalBatch(catalog, database, view.walRanges, after, { records: PLAN_STEP_WAL, read: 20 * PLAN_STEP_WAL });
    if (batch.records.length > 0) {
      total = add(await executePrune(database, { ...none, deleteWal: walInfos(database, batch.records) }, { snapshots: [], wal: batch.records }, catalog, regions, { ...opts, sweepChunks: false, auditSeq: total.audit }));
    }
    after = batch.after;
  } while (after !== undefined);
  return opts.sweepChunks === false ? total : add(await executePrune(database, none, { snapshots: [], wal: [] }, catalog, regions, { ...opts, auditSeq: total.audit }));
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
  const conc = opts.concurrency ?? 8;
  const planned = { snapshots: new Set(plan.deleteSnapshots.map((d) => d.snapshotId)), wal: new Set(plan.deleteWal.map((w) => w.name)) };
  const prior = await journal.read();
  let unfinished: { snapshots: SnapshotRecord[]; wal: WalRecord[] } = { snapshots: [], wal: [] };
  if (prior) {
    // The journal holds one round (bounded): ask for its WAL names one by one, never the whole WAL catalog.
    const journaled = prior.wal.filter((w) => w.databaseId === databaseId && !planned.wal.has(w.name));
    const [snaps, found] = await Promise.all([catalog.listSnapshots(databaseId), mapLimit(journaled, conc, (w) => catalog.getWal(databaseId, w.name))]);
    const recordedSnaps = new Set(snaps.map((s) => s.snapshotId));
    const recordedWal = new Set(found.flatMap((w) => (w === undefined ? [] : [w.name])));
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
