/**
 * The retention chunk sweep in bounded rounds (issue #11: no invocation's
 * work or memory grows with a database's chunks). store/prune.ts runs it
 * after a plan's deletions; the retention workflow runs one round per Execute
 * invocation and passes the cursor on, `walvault prune` runs every round in
 * one process.
 *
 * Contract:
 * - sweepRound(ctx, scratch, cursor, budget) does the next part of one sweep
 *   and resolves the cursor to pass to the next round (phase "done" at the
 *   end) and what this round swept, marked and repacked. It goes through
 *   the phases in order, going on to the next while its budget lasts:
 *   1. mark: the kept snapshots (catalog order by id, from the cursor's
 *      `markedAfter`) whose manifests are read whole, each snapshot's chunk
 *      hashes into SWEEP_PARTITIONS sorted runs by the hash's first hex digit,
 *      written to the scratch every MARK_RUN_HASHES distinct hashes and at
 *      the end of the round (memory: one run, whatever the database's size);
 *      a round stops after the snapshot that reaches `markRefs` references.
 *   2. chunks: first, snapshots recorded since the mark began are marked
 *      too (whatever their ids: a push that started earlier); then the chunk records in hash order from `chunkAfter`, at most
 *      `chunkItems` a round (pages of at most SWEEP_PAGE); one partition's mark (every run's part of it,
 *      merged) is held at a time. A chunk stored as its own object that no
 *      kept snapshot references and was recorded longer ago than the grace
 *      period is swept (record, then object); a chunk in a pack adds to its
 *      pack's record tally, one entry per pack, kept in the scratch between rounds
 *      under a new name each round (a retried round reads the tallies it
 *      started from). A pack first seen is looked up (getPacks, per page):
 *      a chunk record pointing at a pack with no record (a pack deletion
 *      interrupted after the record) is remembered in its tally.
 *   3. indexes: the pack records in name order from `indexAfter`, pages of
 *      at most INDEX_PAGE; each pack has its index read (one ranged GET,
 *      readPackIndex) and its entries (chunk, pack, stored length) go into
 *      SWEEP_PARTITIONS index runs by the chunk's first hex digit, written to
 *      the scratch every INDEX_RUN_ENTRIES entries and at the end of the
 *      round. Of a repacked pack only the entries no chunk record places
 *      (getChunks: none found) go in, "unplaced": a chunk a manifest names
 *      this pack for whose record went with another pack, which the repack
 *      did not copy (it read the mark before that manifest was committed).
 *      An index that cannot be read (damaged, object missing) is noted in
 *      the pack's tally: the pack is kept and reported (phase 5).
 *   4. tally: first, late snapshots are marked (as in 2); then partition by
 *      partition from `tallied`, one partition's mark and that partition's
 *      part of each index run, one run at a time: each entry adds to its
 *      pack's index tally (a repacked pack's: its unplaced tally), live
 *      when the mark holds the chunk.
 *   5. packs: the pack records in name order from `packAfter`, each decided
 *      (core/pack-retention.ts) on its index tally, or on its record tally
 *      when it is repacked (`repackedAt`: the index still lists what was
 *      moved out; its unplaced tally is added); one whose index could not be
 *      read (not repacked) is kept and reported, every run; the rest are
 *      marked, unmarked, deleted (two
 *      phases) or chosen for a repack (at most REPACK_MAX_PACKS names, in
 *      the cursor). Phases 3 and 5 together read at most `packs` pack
 *      records a round.
 *   6. finish: packs with no record whose chunk records no kept snapshot
 *      uses, all older than the grace period, still unrecorded: their chunk
 *      records (conditional on the pack) and object go ("sweep-pack"); then
 *      the chosen packs are repacked, their live chunks known from the mark;
 *      then the scratch is cleared (but for DONE).
 * - A round interrupted and run again with the same cursor does the same
 *   work: what it had deleted is gone from the listings, marks are set to
 *   the same time, the mark runs, index runs and tallies it writes replace its own. The finish clears
 *   the scratch and leaves one empty DONE object in it: a round run again
 *   after its first attempt finished does nothing more.
 * - A mark run, index run or tallies object missing from the scratch
 *   (expired, deleted) stops the round with ConfigError before anything is
 *   swept: without its mark every chunk would look unreferenced, without an
 *   index run a pack's live chunks would go uncounted.
 * - The budget's `ms` ends a round at the next page boundary once spent, so
 *   a slow catalog makes more rounds, never a timeout.
 */
import { z } from "zod";
import { forEachLimit } from "../core/concurrency.js";
import { ConfigError, describeError } from "../core/errors.js";
import { SortedHashSet } from "../core/hash-set.js";
import { packNameOfKey, vaultChunkKey, vaultPackKey } from "../core/keys.js";
import type { PackEntry } from "../core/pack.js";
import { decidePack, DEFAULT_PACK_THRESHOLDS } from "../core/pack-retention.js";
import { planChunkSweep } from "../core/retention.js";
import type { AuditRecord, ChunkItem, DatabaseRecord, PackItem, SnapshotRecord } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";
import { openVaultManifest } from "./manifest-read.js";
import type { ObjectStore } from "./object-store.js";
import { readPackIndexOrDamage } from "./pack-index.js";
import type { PruneOptions, PruneSummary, RegionVault } from "./prune.js";
import { REPACK_MAX_PACKS, repackPacks } from "./repack.js";
import { WORK_PREFIX } from "./work-objects.js";

/** Chunk and pack records read per catalog page by the sweep. */
export const SWEEP_PAGE = 1000;
/** The mark is split by the first hex digit of the hash: a chunk round holds one sixteenth of it. */
export const SWEEP_PARTITIONS = 16;
/** Distinct hashes the mark holds before it writes them out as a run (32 MB). */
export const MARK_RUN_HASHES = 1_000_000;
/** Pack records whose indexes the index phase reads per page (a page's entries are held: at most 64 × 6,144, core/pack.ts DEFAULT_MAX_PACK_ENTRIES). */
export const INDEX_PAGE = 64;
/** Index entries the index phase holds before it writes them out as a run (68 B each: 17 MB). */
export const INDEX_RUN_ENTRIES = 262_144;
/** One index run entry: the chunk's SHA-256, the pack's name (both binary), its stored length (u32 LE). */
const INDEX_ENTRY_BYTES = 68;
/** Snapshots recorded during a sweep that its cursor remembers as marked. */
export const LATE_LISTED = 100;
/** Chunk hashes of a manifest merged into the mark at once (each merge copies a partition). */
const MARK_BATCH = 65_536;

/** How much one round may do (module contract). */
export interface SweepBudget {
  /** Chunk references read from kept manifests before the mark phase stops (after a whole snapshot). */
  markRefs: number;
  /** Chunk records read. */
  chunkItems: number;
  /** Pack records read (the index and pack phases together). */
  packs: number;
  /** Wall time after which the round stops at the next page boundary. */
  ms: number;
}

/**
 * One round of the retention workflow: well within its Lambda's 15 minutes
 * on DynamoDB Local under load (0.7 ms per chunk record measured there at
 * 100 GB), a few seconds in AWS.
 */
export const DEFAULT_SWEEP_BUDGET: SweepBudget = { markRefs: 8_000_000, chunkItems: 250_000, packs: 20_000, ms: 300_000 };

export const sweepCursorSchema = z
  .object({
    phase: z.enum(["mark", "chunks", "indexes", "tally", "packs", "finish", "done"]),
    /** When the mark began (the control plane's clock). */
    markStarted: z.string().datetime().optional(),
    /** The last kept snapshot marked (snapshot ids in order). */
    markedAfter: z.string().optional(),
    /** Snapshots recorded since the mark began, marked since (at most LATE_LISTED). */
    late: z.array(z.string()).max(LATE_LISTED),
    /** Mark runs written. */
    runs: z.number().int().nonnegative(),
    /** The last chunk record read. */
    chunkAfter: z.string().optional(),
    /** Rounds that wrote tallies (chunks, indexes, tally): the generation of the tallies in the scratch. */
    tallies: z.number().int().nonnegative(),
    /** The last pack record whose index was read. */
    indexAfter: z.string().optional(),
    /** Index runs written (absent: none). */
    indexRuns: z.number().int().nonnegative().optional(),
    /** Partitions whose index entries are tallied (absent: none). */
    tallied: z.number().int().min(0).max(SWEEP_PARTITIONS).optional(),
    /** The last pack record read. */
    packAfter: z.string().optional(),
    /** Packs chosen for a repack in the finish phase. */
    repack: z.array(z.string()).max(REPACK_MAX_PACKS),
  })
  .strict();
export type SweepCursor = z.infer<typeof sweepCursorSchema>;

const START: SweepCursor = { phase: "mark", runs: 0, tallies: 0, repack: [], late: [] };

/**
 * Where a sweep keeps its mark and tallies between rounds.
 * Contract (test/store/sweep-scratch.contract.ts): put(name, body) stores the
 * bytes, replacing any earlier; get(name) resolves them, or undefined for a
 * name never put (or cleared); clear() removes every name put.
 */
export interface SweepScratch {
  put(name: string, body: Uint8Array): Promise<void>;
  get(name: string): Promise<Buffer | undefined>;
  clear(): Promise<void>;
}

/** A scratch in memory (`walvault prune`, tests): the mark takes ~32 B per referenced chunk of this process's memory. */
export class MemorySweepScratch implements SweepScratch {
  readonly names = new Map<string, Buffer>();
  async put(name: string, body: Uint8Array): Promise<void> {
    this.names.set(name, Buffer.from(body));
  }
  async get(name: string): Promise<Buffer | undefined> {
    return this.names.get(name);
  }
  async clear(): Promise<void> {
    this.names.clear();
  }
}

/** A scratch of objects under a `work/` prefix of a bucket (the retention workflow: the incoming bucket, expired after a day). */
export class StoreSweepScratch implements SweepScratch {
  constructor(
    private readonly store: ObjectStore,
    private readonly bucket: string,
    private readonly prefix: string,
  ) {
    if (!prefix.startsWith(WORK_PREFIX) || !prefix.endsWith("/")) throw new ConfigError(`a sweep scratch prefix must start with '${WORK_PREFIX}' and end with '/', not '${prefix}'`);
  }
  async put(name: string, body: Uint8Array): Promise<void> {
    await this.store.put(this.bucket, this.prefix + name, body, {});
  }
  async get(name: string): Promise<Buffer | undefined> {
    return (await this.store.get(this.bucket, this.prefix + name))?.body;
  }
  async clear(): Promise<void> {
    const keys: string[] = [];
    for await (const o of this.store.list(this.bucket, this.prefix)) keys.push(o.key);
    await forEachLimit(keys, 8, (k) => this.store.delete(this.bucket, k));
  }
}

export type Note = (action: AuditRecord["action"], subject: string, where: string[], reason: string) => void;
export type DeleteEverywhere = (key: string, versionOf: (r: RegionVault) => string | undefined) => Promise<string[]>;

/** What the sweep needs of the run it is part of (store/prune.ts executePrune). */
export interface SweepContext {
  database: DatabaseRecord;
  catalog: Catalog;
  regions: readonly RegionVault[];
  opts: PruneOptions;
  note: Note;
  deleteEverywhere: DeleteEverywhere;
}

export type SweepCounts = Pick<PruneSummary, "sweptChunks" | "freshChunks" | "packsSwept" | "packsMarked" | "packsRepacked">;

/** Live and dead chunks of a pack, and their stored bytes. */
interface Liveness {
  liveChunks: number;
  liveBytes: number;
  deadChunks: number;
  deadBytes: number;
}

/** One pack's chunk records as the chunk phase found them, and its index as the index and tally phases did. */
interface Tally extends Liveness {
  /** Its index's entries (phases indexes and tally); absent: not read (repacked, recorded since, or unreadable). */
  index?: Liveness;
  /** A repacked pack: the entries of its index no chunk record places (phases indexes and tally). */
  unplaced?: Liveness;
  /** Why its index could not be read: its records decide for it. */
  unreadable?: string;
  /** The pack had no record when its first chunk was read. */
  unrecorded?: true;
  /** Unrecorded, and a chunk pointing at it is younger than the grace period (a push under way). */
  fresh?: true;
  /** Unrecorded: the hashes of its chunk records older than the grace period. */
  hashes?: string[];
}

const livenessSchema = z.object({ liveChunks: z.number(), liveBytes: z.number(), deadChunks: z.number(), deadBytes: z.number() });
const talliesSchema = z.record(
  z.string(),
  livenessSchema.extend({
    index: livenessSchema.optional(),
    unplaced: livenessSchema.optional(),
    unreadable: z.string().optional(),
    unrecorded: z.literal(true).optional(),
    fresh: z.literal(true).optional(),
    hashes: z.array(z.string()).optional(),
  }),
);

/** What is left in the scratch once a sweep is finished: the mark that tells a retried round so. */
export const DONE = "done";
const runName = (run: number, partition: number): string => `mark-${String(run).padStart(6, "0")}-${partition.toString(16)}`;
const talliesName = (generation: number): string => `tallies-${String(generation).padStart(6, "0")}.json`;
const indexRunName = (run: number, partition: number): string => `index-${String(run).padStart(6, "0")}-${partition.toString(16)}`;
const noLiveness = (): Liveness => ({ liveChunks: 0, liveBytes: 0, deadChunks: 0, deadBytes: 0 });
const add = (l: Liveness, live: boolean, storedBytes: number): void => {
  if (live) {
    l.liveChunks++;
    l.liveBytes += storedBytes;
  } else {
    l.deadChunks++;
    l.deadBytes += storedBytes;
  }
};
const partitionOf = (sha256: string): number => parseInt(sha256[0]!, 16);

async function readTallies(scratch: SweepScratch, generation: number): Promise<Map<string, Tally>> {
  if (generation === 0) return new Map();
  const body = await scratch.get(talliesName(generation));
  if (body === undefined) throw new ConfigError(`the sweep's ${talliesName(generation)} is gone from its scratch (work/ objects expire after a day): start the run again`);
  return new Map(Object.entries(talliesSchema.parse(JSON.parse(body.toString("utf8")))) as [string, Tally][]);
}

/** Writes the tallies as the next generation (a retried round still reads the one it started from). */
async function writeTallies(scratch: SweepScratch, c: SweepCursor, tallies: ReadonlyMap<string, Tally>): Promise<void> {
  c.tallies++;
  await scratch.put(talliesName(c.tallies), Buffer.from(JSON.stringify(Object.fromEntries(tallies))));
}

/**
 * What decides a pack's fate: its own index (a pack is live while any chunk
 * it lists is referenced, whichever pack the chunk's record names), but for
 * a repacked pack, whose index still lists the chunks moved out: the chunk
 * records pointing at it and the entries of its index no record places; for
 * one whose index was not read: the chunk records pointing at it.
 */
function livenessOf(p: PackItem, t: Tally): Liveness {
  if (p.repackedAt === undefined) return t.index ?? t;
  const u = t.unplaced ?? noLiveness();
  return { liveChunks: t.liveChunks + u.liveChunks, liveBytes: t.liveBytes + u.liveBytes, deadChunks: t.deadChunks + u.deadChunks, deadBytes: t.deadBytes + u.deadBytes };
}

/** The mark of one partition: every run's part of it, merged. */
async function markOf(scratch: SweepScratch, runs: number, partition: number): Promise<SortedHashSet> {
  const set = new SortedHashSet();
  for (let run = 0; run < runs; run++) {
    const body = await scratch.get(runName(run, partition));
    // Without its mark every chunk would look unreferenced: stop rather than sweep what kept snapshots use.
    if (body === undefined) throw new ConfigError(`the sweep's mark ${runName(run, partition)} is gone from its scratch (work/ objects expire after a day): start the run again`);
    set.addSorted(body);
  }
  return set;
}

const zero = (): SweepCounts => ({ sweptChunks: 0, freshChunks: 0, packsSwept: 0, packsMarked: 0, packsRepacked: 0 });

/** The phases in order. */
const NEXT: Record<Exclude<SweepCursor["phase"], "done">, SweepCursor["phase"]> = { mark: "chunks", chunks: "indexes", indexes: "tally", tally: "packs", packs: "finish", finish: "done" };

/** What a round has spent of the budgets its phases share. */
interface Spent {
  packs: number;
}

/** The next part of a sweep (module contract). */
export async function sweepRound(
  ctx: SweepContext,
  scratch: SweepScratch,
  cursor: SweepCursor | undefined,
  budget: SweepBudget = DEFAULT_SWEEP_BUDGET,
): Promise<{ cursor: SweepCursor; counts: SweepCounts }> {
  const started = Date.now();
  const timeUp = (): boolean => Date.now() - started >= budget.ms;
  let c: SweepCursor = { ...(cursor ?? START), repack: [...(cursor ?? START).repack], late: [...(cursor ?? START).late] };
  const counts = zero();
  const spent: Spent = { packs: 0 };
  // A retried round whose first attempt finished the sweep: nothing is left to do (and its scratch is gone).
  if (cursor !== undefined && (await scratch.get(DONE)) !== undefined) return { cursor: { ...c, phase: "done" }, counts };
  for (;;) {
    let finished: boolean;
    if (c.phase === "mark") finished = await markPhase(ctx, scratch, c, budget, timeUp);
    else if (c.phase === "chunks") finished = await chunkPhase(ctx, scratch, c, budget, timeUp, counts);
    else if (c.phase === "indexes") finished = await indexPhase(ctx, scratch, c, budget, spent, timeUp);
    else if (c.phase === "tally") finished = await tallyPhase(ctx, scratch, c, timeUp);
    else if (c.phase === "packs") finished = await packPhase(ctx, scratch, c, budget, spent, timeUp, counts);
    else if (c.phase === "finish") finished = await finishPhase(ctx, scratch, c, counts);
    else break;
    if (!finished) break;
    c = { ...c, phase: NEXT[c.phase] };
    if (c.phase !== "done" && timeUp()) break;
  }
  return { cursor: c, counts };
}

/** Marks whole snapshots until the budget's references are read; true when every kept snapshot is marked. */
async function markPhase(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor, budget: SweepBudget, timeUp: () => boolean): Promise<boolean> {
  c.markStarted ??= new Date().toISOString();
  const snapshots = (await ctx.catalog.listSnapshots(ctx.database.databaseId))
    .filter((s) => c.markedAfter === undefined || s.snapshotId > c.markedAfter)
    .sort((a, b) => (a.snapshotId < b.snapshotId ? -1 : a.snapshotId > b.snapshotId ? 1 : 0));
  const done = await markSnapshots(ctx, scratch, c, snapshots, (refs, s) => {
    c.markedAfter = s.snapshotId;
    return refs >= budget.markRefs || timeUp();
  });
  return done === snapshots.length;
}

/**
 * Snapshots recorded since the mark started, whatever their ids (a push that
 * started before the newest one marked), are marked before any more chunk
 * records are read: a chunk they reuse is then not swept. (One swept before
 * they were recorded was refused by their CheckReferenced, or falls in the
 * window docs/retention.md describes.) Up to LATE_LISTED are remembered;
 * beyond, they are marked again each round.
 */
async function markLate(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor): Promise<void> {
  const started = c.markStarted;
  if (started === undefined) return;
  const late = (await ctx.catalog.listSnapshots(ctx.database.databaseId)).filter((s) => s.recordedAt >= started && !c.late.includes(s.snapshotId));
  if (late.length === 0) return;
  await markSnapshots(ctx, scratch, c, late, () => false);
  for (const s of late) if (c.late.length < LATE_LISTED) c.late.push(s.snapshotId);
}

/** Reads the snapshots' manifests into mark runs until `stop` says so after one; returns how many were marked. */
async function markSnapshots(
  ctx: SweepContext,
  scratch: SweepScratch,
  c: SweepCursor,
  snapshots: readonly SnapshotRecord[],
  stop: (refs: number, last: SnapshotRecord) => boolean,
): Promise<number> {
  const primary = ctx.regions.find((r) => r.primary) ?? ctx.regions[0]!;
  const parts = Array.from({ length: SWEEP_PARTITIONS }, () => new SortedHashSet());
  const flush = async (): Promise<void> => {
    if (parts.every((p) => p.size === 0)) return;
    // Every partition, empty ones too: a part missing later means the scratch was lost, never "nothing referenced".
    for (let i = 0; i < SWEEP_PARTITIONS; i++) {
      await scratch.put(runName(c.runs, i), parts[i]!.toBuffer());
      parts[i] = new SortedHashSet();
    }
    c.runs++;
  };
  let refs = 0;
  let done = 0;
  for (const s of snapshots) {
    // Page by page (store/manifest-read.ts), merged into the partitions MARK_BATCH hashes at a time.
    const m = await openVaultManifest(primary.store, primary.bucket, s, ctx.database);
    let batch: string[][] = parts.map(() => []);
    let batched = 0;
    const merge = async (): Promise<void> => {
      batch.forEach((hashes, i) => parts[i]!.addAll(hashes));
      batch = parts.map(() => []);
      batched = 0;
      if (parts.reduce((n, p) => n + p.size, 0) >= MARK_RUN_HASHES) await flush();
    };
    for await (const e of m.entries()) {
      if (e.type !== "file") continue;
      for (const chunk of e.chunks) {
        batch[partitionOf(chunk.sha256)]!.push(chunk.sha256);
        batched++;
      }
      refs += e.chunks.length;
      if (batched >= MARK_BATCH) await merge();
    }
    await merge();
    done++;
    if (stop(refs, s)) break;
  }
  await flush();
  return done;
}

/** Reads chunk records until the budget's; true when the last has been read. */
async function chunkPhase(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor, budget: SweepBudget, timeUp: () => boolean, counts: SweepCounts): Promise<boolean> {
  const { catalog, opts } = ctx;
  const databaseId = ctx.database.databaseId;
  const conc = opts.concurrency ?? 8;
  const graceHours = `${Math.round(opts.graceMs / 3_600_000)} h`;
  await markLate(ctx, scratch, c);
  const tallies = await readTallies(scratch, c.tallies);
  let partition = -1;
  let mark = new SortedHashSet();
  let read = 0;
  let after = c.chunkAfter;
  do {
    const page = await catalog.listChunkPage(databaseId, after, Math.min(SWEEP_PAGE, budget.chunkItems));
    const firstSeen = [...new Set(page.chunks.flatMap((x) => (x.offset !== undefined && !tallies.has(x.vaultKey) ? [x.vaultKey] : [])))];
    const recorded = new Set(firstSeen.length === 0 ? [] : (await catalog.getPacks(databaseId, firstSeen.map(packNameOfKey))).map((p) => p.vaultKey));
    const loose: ChunkItem[] = [];
    for (const x of page.chunks) {
      if (partitionOf(x.sha256) !== partition) {
        partition = partitionOf(x.sha256);
        mark = await markOf(scratch, c.runs, partition);
      }
      const live = mark.has(x.sha256);
      if (x.offset === undefined) {
        if (!live) loose.push(x);
        continue;
      }
      let t = tallies.get(x.vaultKey);
      if (t === undefined) {
        t = { ...noLiveness(), ...(recorded.has(x.vaultKey) ? {} : { unrecorded: true as const }) };
        tallies.set(x.vaultKey, t);
      }
      add(t, live, x.storedSize);
      if (t.unrecorded) {
        if (opts.now.getTime() - Date.parse(x.recordedAt) < opts.graceMs) t.fresh = true;
        else (t.hashes ??= []).push(x.sha256);
      }
    }
    const { sweep, fresh } = planChunkSweep(loose.map((x) => ({ sha256: x.sha256, recordedAt: new Date(x.recordedAt) })), new Set(), opts.now, opts.graceMs);
    await catalog.deleteChunks(databaseId, sweep);
    await forEachLimit(sweep, conc, async (sha) => {
      const where = await ctx.deleteEverywhere(vaultChunkKey(databaseId, sha), () => undefined);
      ctx.note("sweep-chunk", sha, where, `referenced by no kept snapshot, recorded more than ${graceHours} ago`);
    });
    counts.sweptChunks += sweep.length;
    counts.freshChunks += fresh.length;
    read += page.chunks.length;
    after = page.next;
  } while (after !== undefined && read < budget.chunkItems && !timeUp());
  await writeTallies(scratch, c, tallies);
  if (after === undefined) delete c.chunkAfter;
  else c.chunkAfter = after;
  return after === undefined;
}

/** The entries of the index runs a round writes: per partition, the buffers of the packs read since the last run. */
class IndexRunWriter {
  private parts: Buffer[][] = Array.from({ length: SWEEP_PARTITIONS }, () => []);
  entries = 0;

  /** A pack's entries, each to its chunk's partition. */
  add(pack: string, entries: readonly PackEntry[]): void {
    const name = Buffer.from(pack, "hex");
    const counts = new Array<number>(SWEEP_PARTITIONS).fill(0);
    for (const e of entries) counts[partitionOf(e.sha256)]!++;
    const bufs = counts.map((n) => Buffer.allocUnsafe(n * INDEX_ENTRY_BYTES));
    const at = new Array<number>(SWEEP_PARTITIONS).fill(0);
    for (const e of entries) {
      const i = partitionOf(e.sha256);
      const buf = bufs[i]!;
      const o = at[i]!;
      buf.write(e.sha256, o, "hex");
      name.copy(buf, o + 32);
      buf.writeUInt32LE(e.storedLength, o + 64);
      at[i] = o + INDEX_ENTRY_BYTES;
    }
    bufs.forEach((b, i) => b.length > 0 && this.parts[i]!.push(b));
    this.entries += entries.length;
  }

  /** Writes what it holds as run `c.indexRuns` (every partition, empty ones too: a part missing later means the scratch was lost). */
  async flush(scratch: SweepScratch, c: SweepCursor): Promise<void> {
    if (this.entries === 0) return;
    const run = c.indexRuns ?? 0;
    for (let i = 0; i < SWEEP_PARTITIONS; i++) await scratch.put(indexRunName(run, i), Buffer.concat(this.parts[i]!));
    c.indexRuns = run + 1;
    this.parts = Array.from({ length: SWEEP_PARTITIONS }, () => []);
    this.entries = 0;
  }
}

/**
 * Reads the indexes of pack records until the budget's, into index runs (a
 * repacked pack's entries no chunk record places only); true when the last
 * pack record has been read. An index that cannot be read is noted in its
 * pack's tally.
 */
async function indexPhase(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor, budget: SweepBudget, spent: Spent, timeUp: () => boolean): Promise<boolean> {
  if (spent.packs >= budget.packs) return false;
  const databaseId = ctx.database.databaseId;
  const primary = ctx.regions.find((r) => r.primary) ?? ctx.regions[0]!;
  const tallies = await readTallies(scratch, c.tallies);
  const writer = new IndexRunWriter();
  let after = c.indexAfter;
  do {
    const limit = Math.min(INDEX_PAGE, budget.packs - spent.packs);
    const page = await ctx.catalog.listPackPage(databaseId, after, limit);
    const read = new Map<string, PackEntry[]>();
    await forEachLimit(page.packs, ctx.opts.concurrency ?? 8, async (p) => {
      let t = tallies.get(p.vaultKey);
      if (t === undefined) tallies.set(p.vaultKey, (t = noLiveness()));
      delete t.index;
      delete t.unplaced;
      delete t.unreadable;
      // Condemned: the pack phase finishes its deletion whatever its index says.
      if (p.deletingAt !== undefined) return;
      const { entries, damaged } = await readPackIndexOrDamage(primary.store, primary.bucket, p);
      if (damaged !== undefined) t.unreadable = describeError(damaged);
      else if (entries === undefined) t.unreadable = `its object is missing from ${primary.region}`;
      else read.set(p.name, p.repackedAt === undefined ? entries : await unplaced(ctx, entries));
    });
    // In page order, so that a retried round writes the same runs.
    for (const p of page.packs) {
      const entries = read.get(p.name);
      if (entries === undefined) continue;
      const t = tallies.get(p.vaultKey)!;
      if (p.repackedAt === undefined) t.index = noLiveness();
      else t.unplaced = noLiveness();
      writer.add(p.name, entries);
    }
    if (writer.entries >= INDEX_RUN_ENTRIES) await writer.flush(scratch, c);
    // What was asked for, not what came: a round never asks for more than its budget.
    spent.packs += limit;
    after = page.next;
  } while (after !== undefined && spent.packs < budget.packs && !timeUp());
  await writer.flush(scratch, c);
  await writeTallies(scratch, c, tallies);
  if (after === undefined) delete c.indexAfter;
  else c.indexAfter = after;
  return after === undefined;
}

/** Of a repacked pack's index, the entries no chunk record places (a repack copies and records every live one: usually none). */
async function unplaced(ctx: SweepContext, entries: readonly PackEntry[]): Promise<PackEntry[]> {
  const placed = new Set((await ctx.catalog.getChunks(ctx.database.databaseId, entries.map((e) => e.sha256))).map((r) => r.sha256));
  return entries.filter((e) => !placed.has(e.sha256));
}

/**
 * Tallies the index runs partition by partition (one partition's mark and
 * one run's part of it held at a time) until the time is up; true when every
 * partition is tallied.
 */
async function tallyPhase(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor, timeUp: () => boolean): Promise<boolean> {
  const databaseId = ctx.database.databaseId;
  await markLate(ctx, scratch, c);
  const tallies = await readTallies(scratch, c.tallies);
  let partition = c.tallied ?? 0;
  while (partition < SWEEP_PARTITIONS) {
    const mark = await markOf(scratch, c.runs, partition);
    for (let run = 0; run < (c.indexRuns ?? 0); run++) {
      const body = await scratch.get(indexRunName(run, partition));
      // Without them a pack's live chunks would go uncounted: stop rather than delete what kept snapshots use.
      if (body === undefined) throw new ConfigError(`the sweep's index run ${indexRunName(run, partition)} is gone from its scratch (work/ objects expire after a day): start the run again`);
      let pack = "";
      let index: Liveness | undefined;
      for (let o = 0; o < body.length; o += INDEX_ENTRY_BYTES) {
        const name = body.toString("hex", o + 32, o + 64);
        if (name !== pack) {
          pack = name;
          const t = tallies.get(vaultPackKey(databaseId, name));
          index = t?.index ?? t?.unplaced;
        }
        if (index !== undefined) add(index, mark.has(body.toString("hex", o, o + 32)), body.readUInt32LE(o + 64));
      }
    }
    partition++;
    if (timeUp()) break;
  }
  c.tallied = partition;
  await writeTallies(scratch, c, tallies);
  return partition === SWEEP_PARTITIONS;
}

/** Decides pack records until the budget's; true when the last has been decided. */
async function packPhase(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor, budget: SweepBudget, spent: Spent, timeUp: () => boolean, counts: SweepCounts): Promise<boolean> {
  if (spent.packs >= budget.packs) return false;
  const { catalog, opts } = ctx;
  const databaseId = ctx.database.databaseId;
  const conc = opts.concurrency ?? 8;
  const graceHours = `${Math.round(opts.graceMs / 3_600_000)} h`;
  const primary = ctx.regions.find((r) => r.primary) ?? ctx.regions[0]!;
  const tallies = await readTallies(scratch, c.tallies);
  const thresholds = opts.packs?.thresholds ?? DEFAULT_PACK_THRESHOLDS;
  const at = opts.now.toISOString();

  /**
   * A pack (not repacked) whose index cannot be read is kept, whatever its
   * tally, and reported on every run: PromotePacks records no chunk of a pack
   * (docs/packs.md, "Step 3"), so nothing else says which chunks it holds,
   * and deleting it could lose chunks kept snapshots use. Verification (L2)
   * names the snapshots that do.
   */
  const keepUnreadable = (p: PackItem, why: string): void => {
    (opts.warn ?? console.error)(
      `walvault retention: ${databaseId}: the index of pack ${p.name} could not be read (${why}): kept, as nothing else says which chunks it holds; \`walvault verify --level 2\` names the snapshots that use it`,
    );
  };

  /**
   * Deletes a condemned pack: the chunk records its index names that still
   * point at it (a vault from before docs/packs.md step 3), its object in
   * every region, then its record (last: a deletion interrupted before it
   * is found condemned by the next sweep and finished).
   */
  const finishDeletion = async (p: PackItem, entries: readonly PackEntry[] | undefined, why: string): Promise<void> => {
    await catalog.deleteChunksInPack(databaseId, (entries ?? []).map((e) => e.sha256), p.vaultKey);
    const where = await ctx.deleteEverywhere(p.vaultKey, () => undefined);
    await catalog.deleteCondemnedPack(databaseId, p.name);
    ctx.note("sweep-pack", p.name, where, why);
  };

  /** A deletion a run condemned the pack for and did not finish: finished now, whatever the pack's index (or object) says. */
  const finishCondemned = async (p: PackItem): Promise<void> => {
    const { entries } = await readPackIndexOrDamage(primary.store, primary.bucket, p);
    await finishDeletion(p, entries, `an earlier deletion of this pack stopped after condemning it at ${p.deletingAt}: finished`);
  };

  /** Deletes a candidate pack unless a push unmarked it since it was read, or its index cannot be read now; true when deleted. */
  const sweepPack = async (p: PackItem): Promise<boolean> => {
    // The index names the chunk records to delete; read it while the pack is surely there.
    const { entries, damaged } = await readPackIndexOrDamage(primary.store, primary.bucket, p);
    if (damaged !== undefined) {
      // Damaged since the index phase read it: kept, as the pack phase keeps one it could not read.
      keepUnreadable(p, describeError(damaged));
      return false;
    }
    // Condemned first (conditional on the mark this run read): from then on no push can unmark it nor reader use it.
    if (!(await catalog.condemnPack(databaseId, p.name, p.orphanedAt!, at))) return false;
    await finishDeletion(p, entries, `no kept snapshot references a chunk of it; a deletion candidate since ${p.orphanedAt}, more than ${graceHours}, and no push reused it`);
    return true;
  };

  let after = c.packAfter;
  do {
    const limit = Math.min(SWEEP_PAGE, budget.packs - spent.packs);
    const page = await catalog.listPackPage(databaseId, after, limit);
    const toMark: string[] = [];
    const toDelete: PackItem[] = [];
    const toFinish: PackItem[] = [];
    for (const p of page.packs) {
      if (p.deletingAt !== undefined) {
        toFinish.push(p);
        continue;
      }
      const t: Tally = tallies.get(p.vaultKey) ?? noLiveness();
      if (t.unreadable !== undefined && p.repackedAt === undefined) {
        keepUnreadable(p, t.unreadable);
        continue;
      }
      const l = livenessOf(p, t);
      const orphanedAt = p.orphanedAt === undefined ? undefined : new Date(p.orphanedAt);
      const d = decidePack({ ...p, liveChunks: l.liveChunks, liveBytes: l.liveBytes, deadChunks: l.deadChunks, deadBytes: l.deadBytes, recordedAt: new Date(p.recordedAt), orphanedAt }, opts.now, opts.graceMs, thresholds);
      if (d.action === "mark") toMark.push(p.name);
      else if (d.action === "unmark") await catalog.clearPackOrphaned(databaseId, p.name);
      else if (d.action === "delete") toDelete.push(p);
      else if (d.action === "repack" && c.repack.length < REPACK_MAX_PACKS && !c.repack.includes(p.name)) c.repack.push(p.name);
    }
    counts.packsMarked += (await catalog.markPacksOrphaned(databaseId, toMark, at)).length;
    await forEachLimit(toDelete, conc, async (p) => {
      if (await sweepPack(p)) counts.packsSwept++;
    });
    await forEachLimit(toFinish, conc, async (p) => {
      await finishCondemned(p);
      counts.packsSwept++;
    });
    // What was asked for, not what came: a round never asks for more than its budget.
    spent.packs += limit;
    after = page.next;
  } while (after !== undefined && spent.packs < budget.packs && !timeUp());
  if (after === undefined) delete c.packAfter;
  else c.packAfter = after;
  return after === undefined;
}

/** Interrupted pack deletions finished, chosen packs repacked, the scratch cleared; always true. */
async function finishPhase(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor, counts: SweepCounts): Promise<boolean> {
  const tallies = await readTallies(scratch, c.tallies);
  counts.packsSwept += await sweepDangling(ctx, tallies);
  counts.packsRepacked += await repackChosen(ctx, scratch, c);
  await scratch.clear();
  await scratch.put(DONE, new Uint8Array(0));
  return true;
}

/**
 * Chunk records that point at a pack with no record: a pack deletion
 * interrupted after its record (the record goes first). CheckReferenced
 * refuses to reuse such a chunk, so the records only hide the chunk from the
 * next push: when none of them is live and all are older than the grace
 * period, and the pack is still unrecorded, they are deleted (conditional on
 * the pack), then the object in every region. A pack with a live chunk is
 * only logged: the object may hold the only copy of bytes a kept snapshot
 * needs. Returns the packs swept.
 */
async function sweepDangling(ctx: SweepContext, tallies: ReadonlyMap<string, Tally>): Promise<number> {
  const databaseId = ctx.database.databaseId;
  const dangling = new Map<string, string[]>();
  for (const [key, t] of tallies) {
    if (!t.unrecorded || t.fresh) continue;
    if (t.liveChunks === 0) dangling.set(key, t.hashes ?? []);
    else (ctx.opts.warn ?? console.error)(`walvault retention: ${databaseId}: ${t.liveChunks} chunk record(s) that kept snapshots use point at ${key}, which has no pack record: left as they are`);
  }
  if (dangling.size === 0) return 0;
  // Recorded since the chunk phase read them: a push under way, not an interrupted deletion.
  const recorded = new Set((await ctx.catalog.getPacks(databaseId, [...dangling.keys()].map(packNameOfKey))).map((p) => p.vaultKey));
  let swept = 0;
  for (const [key, hashes] of dangling) {
    if (recorded.has(key)) continue;
    await ctx.catalog.deleteChunksInPack(databaseId, hashes, key);
    const where = await ctx.deleteEverywhere(key, () => undefined);
    ctx.note("sweep-pack", packNameOfKey(key), where, `an earlier deletion of this pack stopped after its record: ${hashes.length} chunk record(s), none used by a kept snapshot, still pointed at it`);
    swept++;
  }
  return swept;
}

/** Repacks the packs the pack phase chose; their live chunks are looked up in the mark, one partition at a time. Returns the packs repacked. */
async function repackChosen(ctx: SweepContext, scratch: SweepScratch, c: SweepCursor): Promise<number> {
  if (c.repack.length === 0) return 0;
  const { catalog, regions, opts, note } = ctx;
  const databaseId = ctx.database.databaseId;
  const primary = regions.find((r) => r.primary) ?? regions[0]!;
  const packs = await catalog.getPacks(databaseId, c.repack);
  // The hashes of the chosen packs (their indexes: at most REPACK_MAX_PACKS), then which of them the mark holds.
  const hashes = new Set<string>();
  for (const p of packs) {
    // A damaged index or a missing pack: repackPacks reads it again, leaves the pack as it is and says why.
    const { entries } = await readPackIndexOrDamage(primary.store, primary.bucket, p);
    for (const e of entries ?? []) hashes.add(e.sha256);
  }
  const live = new Set<string>();
  for (let partition = 0; partition < SWEEP_PARTITIONS; partition++) {
    const here = [...hashes].filter((h) => partitionOf(h) === partition);
    if (here.length === 0) continue;
    const mark = await markOf(scratch, c.runs, partition);
    for (const h of here) if (mark.has(h)) live.add(h);
  }
  const repacked = await repackPacks(databaseId, packs, live, catalog, regions, { now: opts.now, ...(opts.packs?.targetSize === undefined ? {} : { targetSize: opts.packs.targetSize }) });
  for (const r of repacked) {
    if (r.error !== undefined) {
      note("repack", r.name, [], `sparse, but left as it is: ${r.error}`);
      continue;
    }
    note("repack", r.name, regions.map((x) => x.region), `sparse: ${r.moved} live chunk(s) moved to ${r.into.join(", ") || "no new pack"}; ${r.left} dead chunk record(s) left with it, which is now a deletion candidate`);
  }
  return repacked.filter((r) => r.error === undefined).length;
}
