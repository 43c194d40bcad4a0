/**
 * Loads what the catalog knows about one database for restore planning
 * (core/restore-input.ts shapes it for core/restore-plan.ts): the
 * registration, the snapshot records, the WAL records, the parsed timeline
 * histories (each history file fetched from the vault, decoded and verified
 * against its catalog SHA-256 and size), and the manifests of snapshot
 * records that lack what planning needs (each verified against the record's
 * manifestSha256). Shared by `walvault restore` and the restore workflow.
 * loadCatalogState reads every WAL record; loadPlanningState reads what a
 * plan to one target can use (see there and docs/snapshots.md, "What
 * planning reads").
 */
import { snapshotInRegion, walInRegion } from "../core/regions.js";
import { mapLimit } from "../core/concurrency.js";
import { decodeWith } from "../core/codec.js";
import { ChecksumMismatchError, ConfigError, InvalidInputError, TargetAfterArchiveEndError, UnknownDatabaseError, WalGapError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { ArchivedThrough, genericRecordPosition, isGenericWalName, parseGenericWalName } from "../core/generic-wal.js";
import { buildPlanInput, recordIsIncomplete, segmentPlace, snapshotInfoOf, streamOfRecord, streamsOf, type CatalogState } from "../core/restore-input.js";
import { planRestore, restoreCandidates, type RestoreTarget, type SnapshotInfo } from "../core/restore-plan.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "../core/schemas.js";
import type { SnapshotHeader } from "../core/manifest-header.js";
import { parseHistoryFile, parseTimelineHistory, type TimelineHistoryEntry } from "../core/timeline.js";
import { timelineDir } from "../core/keys.js";
import { lsnToSegno, segmentName } from "../core/wal.js";
import type { Catalog } from "./catalog.js";
import type { ObjectStore } from "./object-store.js";
import { readVaultHeader } from "./manifest-read.js";
import { genericWalRecordsFrom } from "./wal-from.js";

export type { CatalogState } from "../core/restore-input.js";
export { mapLimit };

/** Vault objects (history files, manifests) fetched at once while loading. */
const FETCH_CONCURRENCY = 8;

/** A WAL (or history) file's bytes from the vault, decoded; its SHA-256 and size must be the catalog's. */
export async function fetchVerifiedWal(vault: ObjectStore, vaultBucket: string, rec: WalRecord): Promise<Buffer> {
  const obj = await vault.get(vaultBucket, rec.vaultKey, rec.vaultVersionId);
  if (!obj) {
    throw new ChecksumMismatchError(`${rec.name} is recorded in the catalog but its vault object ${rec.vaultKey} is missing`);
  }
  const raw = await decodeWith(rec.codec, obj.body, `vault object ${rec.vaultKey}`, rec.size);
  const sha = sha256Hex(raw);
  if (sha !== rec.sha256 || raw.length !== rec.size) {
    throw new ChecksumMismatchError(
      `vault object ${rec.vaultKey} is corrupt: SHA-256 ${sha.slice(0, 12)}… (${raw.length} bytes), catalog says ${rec.sha256.slice(0, 12)}… (${rec.size} bytes)`,
    );
  }
  return raw;
}

/**
 * Reads and checks a snapshot's manifest header from the vault (either
 * format; store/manifest-read.ts): its SHA-256 must be the catalog record's.
 * No page of a format-2 manifest is read; a format-1 manifest is validated whole.
 */
export function fetchManifestHeader(vault: ObjectStore, vaultBucket: string, record: SnapshotRecord, database: DatabaseRecord): Promise<SnapshotHeader> {
  return readVaultHeader(vault, vaultBucket, record, database);
}

export interface LoadCatalogStateOptions {
  /** Appended to the UnknownDatabaseError message (e.g. how to register the database). */
  unknownDatabaseHint?: string;
  /**
   * Plan from what this replica region holds (core/regions.ts): only records
   * proven there, with that region's version ids; `vault` must then be that
   * region's vault.
   */
  region?: string;
}

/** Reads what the catalog (and, where needed, the vault) knows about `databaseId`, once, for planning. */
export async function loadCatalogState(
  catalog: Catalog,
  vault: ObjectStore,
  vaultBucket: string,
  databaseId: string,
  options: LoadCatalogStateOptions = {},
  /** The registration and snapshot records, when the caller has read them already (loadPlanningState): not read again. */
  read?: { database: DatabaseRecord | undefined; allRecords: readonly SnapshotRecord[] },
): Promise<CatalogState> {
  const [database, allRecords, allWal] = await Promise.all([
    read ? read.database : catalog.getDatabase(databaseId),
    read ? read.allRecords : catalog.listSnapshots(databaseId),
    catalog.listWal(databaseId),
  ]);
  const records = allRecords.flatMap((r) => snapshotInRegion(r, options.region) ?? []);
  const wal = allWal.flatMap((w) => walInRegion(w, options.region) ?? []);
  if (!database) {
    throw new UnknownDatabaseError(`database '${databaseId}' is not registered in the catalog${options.unknownDatabaseHint ?? ""}`);
  }
  const { histories, unreadableHistories } = await readHistories(vault, vaultBucket, database, wal.filter((w) => w.kind === "history"));
  const manifests = await readManifests(vault, vaultBucket, database, records);
  return {
    database,
    records,
    segments: wal.filter((w) => w.kind === "segment"),
    histories,
    unreadableHistories,
    streams: streamsOf(database, records, manifests),
    manifests,
  };
}

/** Parsed history files by timeline, and those that are no history (PostgreSQL; a generic database has none). */
async function readHistories(
  vault: ObjectStore,
  vaultBucket: string,
  database: DatabaseRecord,
  files: readonly WalRecord[],
): Promise<{ histories: Map<number, TimelineHistoryEntry[]>; unreadableHistories: Map<number, string> }> {
  const histories = new Map<number, TimelineHistoryEntry[]>();
  const unreadableHistories = new Map<number, string>();
  if (database.kind !== "postgres") return { histories, unreadableHistories };
  // A history file that does not parse (archived before wal-push and ingest checked histories) is
  // handed over as unreadable: the planner passes its timeline over for 'latest' and refuses it by name.
  const parsed = await mapLimit(files, FETCH_CONCURRENCY, async (rec): Promise<TimelineHistoryEntry[] | { unreadable: string }> => {
    const raw = await fetchVerifiedWal(vault, vaultBucket, rec);
    try {
      // Timeline 1 needs no history; one that does not parse is left out (there is nothing to pass over).
      return rec.timeline === 1 ? parseTimelineHistory(raw.toString("utf8")) : parseHistoryFile(raw, rec.timeline);
    } catch (e) {
      if (!(e instanceof InvalidInputError)) throw e;
      return { unreadable: e.message };
    }
  });
  files.forEach((rec, i) => {
    const p = parsed[i]!;
    if (Array.isArray(p)) histories.set(rec.timeline, p);
    else if (rec.timeline !== 1) unreadableHistories.set(rec.timeline, p.unreadable);
  });
  return { histories, unreadableHistories };
}

/** Manifest headers of the records that lack what planning needs (older or partial records), by snapshot id. */
async function readManifests(vault: ObjectStore, vaultBucket: string, database: DatabaseRecord, records: readonly SnapshotRecord[]): Promise<Map<string, SnapshotHeader>> {
  const incomplete = records.filter((r) => recordIsIncomplete(r, database));
  const read = await mapLimit(incomplete, FETCH_CONCURRENCY, (r) => fetchManifestHeader(vault, vaultBucket, r, database));
  const manifests = new Map<string, SnapshotHeader>();
  incomplete.forEach((r, i) => manifests.set(r.snapshotId, read[i]!));
  return manifests;
}

/**
 * Plans with the WAL of the newest 1, 2, 4 candidate snapshots before the
 * range of all of them: an older candidate is needed only when the newer ones
 * cannot reach the target (a gap, or a stop segment not archived yet).
 */
export const PLANNING_WINDOWS = 3;
/** Records per Query while looking for a timeline's nearest segment before or after a position. */
const LOOK_BACK_PAGE = 16;
/**
 * Pages one such look goes through before giving up (records it passes over
 * are not segments, or not in the replica region). Past it the window is
 * `tooFar` and the caller reads the whole catalog instead: a region whose
 * replication lags by more than that must not turn one look into a walk
 * through the whole timeline.
 */
const LOOK_BACK_MAX_PAGES = 64;

/**
 * The segment records of each timeline from one position (segment number) on,
 * through `upTo` when the target bounds the range (else to the end), plus
 * each timeline's last segment before the range, first after it and newest:
 * what the planner reads of the archive beyond the range (which timelines
 * have WAL, where a gap starts and ends). Read range by range
 * (Catalog.listWalRange), never the whole archive; moving the start back
 * reads only the records between the old and the new start.
 */
class WalWindow {
  /** A look went past LOOK_BACK_MAX_PAGES pages without finding a segment: what was read is incomplete. */
  tooFar = false;
  private from: bigint | undefined;
  private readonly since = new Map<number, WalRecord[]>();
  private readonly edges = new Map<number, { before?: WalRecord | undefined; after?: WalRecord | undefined; newest?: WalRecord | undefined }>();
  /** The nearest segment before each switch point, per timeline. */
  private readonly switches = new Map<number, WalRecord[]>();

  constructor(
    private readonly catalog: Catalog,
    private readonly databaseId: string,
    private readonly timelines: readonly number[],
    private readonly segmentSize: number,
    private readonly region: string | undefined,
  ) {}

  private keep(records: readonly WalRecord[]): WalRecord[] {
    return records.flatMap((w) => (w.kind === "segment" ? (walInRegion(w, this.region) ?? []) : []));
  }

  private name(timeline: number, segno: bigint): string {
    return segmentName(timeline, segno, this.segmentSize);
  }

  private edge(timeline: number): { before?: WalRecord | undefined; after?: WalRecord | undefined; newest?: WalRecord | undefined } {
    const e = this.edges.get(timeline) ?? {};
    this.edges.set(timeline, e);
    return e;
  }

  /** The nearest segment of `timeline` going from `start` (a name) towards `end` (undefined: the timeline's end), a page at a time. */
  private async nearest(timeline: number, start: string, end: string | undefined, newestFirst: boolean): Promise<WalRecord | undefined> {
    let from = start;
    for (let pages = 1; ; pages++) {
      const page = await this.catalog.listWalRange(
        this.databaseId,
        timeline,
        newestFirst ? (end ?? "") : from,
        newestFirst ? from : end,
        { limit: LOOK_BACK_PAGE, newestFirst },
      );
      const found = this.keep(page)[0];
      if (found !== undefined || page.length < LOOK_BACK_PAGE) return found;
      if (pages >= LOOK_BACK_MAX_PAGES) {
        this.tooFar = true;
        return undefined;
      }
      from = page.at(-1)!.name; // listed again first (the range includes it): pages still move on, LOOK_BACK_PAGE > 1
    }
  }

  /** Each timeline's newest segment: enough to know which timelines have WAL. */
  async newest(): Promise<WalRecord[]> {
    const found = await mapLimit(this.timelines, FETCH_CONCURRENCY, async (tl) => {
      // `~` sorts after every hex digit: from past the timeline's last name back to its first segment.
      const newest = await this.nearest(tl, `${timelineDir(tl)}~`, this.name(tl, 0n), true);
      this.edge(tl).newest = newest;
      return newest;
    });
    return found.flatMap((w) => w ?? []);
  }

  /**
   * Each timeline's nearest segment before each of these segments (the
   * switch points of the histories): where the planner looks for the last
   * WAL before two histories diverge, and, with the range's edges, the last
   * segment before a gap on any path (paths change timeline only there).
   */
  async switchEdges(segnos: readonly bigint[]): Promise<void> {
    const pairs = this.timelines.flatMap((tl) => [...new Set(segnos)].filter((n) => n > 0n).map((n) => ({ tl, n })));
    const found = await mapLimit(pairs, FETCH_CONCURRENCY, ({ tl, n }) => this.nearest(tl, this.name(tl, n - 1n), this.name(tl, 0n), true));
    pairs.forEach(({ tl }, i) => {
      const w = found[i];
      if (w !== undefined) this.switches.set(tl, [...(this.switches.get(tl) ?? []), w]);
    });
  }

  /** Reads back to `segno` (no-op when the window already starts there or earlier), through `upTo` (undefined: the end). */
  async extendTo(segno: bigint, upTo: bigint | undefined): Promise<void> {
    if (this.from !== undefined && this.from <= segno) return;
    const until = this.from === undefined ? upTo : this.from - 1n;
    const first = this.from === undefined;
    await mapLimit(this.timelines, FETCH_CONCURRENCY, async (tl) => {
      const [added, before, after] = await Promise.all([
        until !== undefined && until < segno ? [] : this.catalog.listWalRange(this.databaseId, tl, this.name(tl, segno), until === undefined ? undefined : this.name(tl, until)),
        segno === 0n ? undefined : this.nearest(tl, this.name(tl, segno - 1n), this.name(tl, 0n), true),
        first && upTo !== undefined ? this.nearest(tl, this.name(tl, upTo + 1n), undefined, false) : this.edge(tl).after,
      ]);
      this.since.set(tl, [...this.keep(added), ...(this.since.get(tl) ?? [])]);
      Object.assign(this.edge(tl), { before, after });
    });
    this.from = segno;
  }

  /** What the window holds, each record once, ordered as Catalog.listWal orders them (timeline, then name). */
  segments(): WalRecord[] {
    return this.timelines.flatMap((tl) => {
      const e = this.edge(tl);
      const byName = new Map<string, WalRecord>();
      for (const w of [e.before, ...(this.since.get(tl) ?? []), e.after, e.newest, ...(this.switches.get(tl) ?? [])]) if (w !== undefined && !byName.has(w.name)) byName.set(w.name, w);
      return [...byName.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    });
  }
}

/**
 * The catalog state a restore to `target` needs, read without loading every
 * WAL record (a PostgreSQL database with a target other than a restore point
 * name): the registration, every snapshot record (bounded by retention: it
 * keeps a number of snapshots, not of WAL segments), the history files (one
 * catalog item per timeline, Catalog.listWalTimelines), and the segments from
 * the start segment of the snapshot the plan can use on, on every timeline
 * with WAL, to the end of the archive (for a snapshot or LSN target: to
 * its consistent segment, or the target's segment and the next), plus each
 * timeline's nearest segment before and after that range, before each
 * switch point of the histories, and its newest (what the planner reads of
 * the archive beyond the range: which timelines have WAL, where a gap
 * starts and ends, where two histories diverge). The snapshots the planner
 * would try come from core/restore-plan.ts restoreCandidates; the range
 * starts at the newest one's start, and widens to the newest 2 and 4 when the
 * plan has to fall back to an older snapshot (or fails where an older one
 * might not), then to all of them: PLANNING_WINDOWS attempts, then the range
 * any candidate can need. Planning on the state gives the plan (or the
 * error) planning on loadCatalogState's gives. When a look for a timeline's
 * nearest segment passes LOOK_BACK_MAX_PAGES pages of other records (a
 * replica region far behind), it reads the whole catalog as
 * loadCatalogState does. A restore point name target (whose restore points
 * may be recorded on any segment) is loaded whole, as loadCatalogState does.
 * A generic database: loadGenericPlanningState (its WAL read a page at a
 * time, only the segments from the snapshots tried on kept).
 */
export async function loadPlanningState(
  catalog: Catalog,
  vault: ObjectStore,
  vaultBucket: string,
  databaseId: string,
  target: RestoreTarget,
  options: LoadCatalogStateOptions = {},
): Promise<CatalogState> {
  // The registration and the first two reads at once (one round trip, not two: ~20 ms of a restore's start on
  // DynamoDB Local); for a generic database the snapshot records are used, the timelines (one small Query) not.
  const [database, allRecords, timelines] = await Promise.all([catalog.getDatabase(databaseId), catalog.listSnapshots(databaseId), catalog.listWalTimelines(databaseId)]);
  if (database?.kind === "generic") return loadGenericPlanningState(catalog, vault, vaultBucket, database, target, options, allRecords);
  const read = { database, allRecords };
  if (!database || database.kind !== "postgres" || target.kind === "name") return loadCatalogState(catalog, vault, vaultBucket, databaseId, options, read);
  const records = allRecords.flatMap((r) => snapshotInRegion(r, options.region) ?? []);
  const files = timelines.flatMap((t) => (t.history === undefined ? [] : (walInRegion(t.history, options.region) ?? [])));
  const window = new WalWindow(catalog, databaseId, timelines.map((t) => t.timeline), database.walSegmentSize, options.region);
  const [, { histories, unreadableHistories }, manifests] = await Promise.all([
    window.newest(),
    readHistories(vault, vaultBucket, database, files),
    readManifests(vault, vaultBucket, database, records),
  ]);
  const size = database.walSegmentSize;
  await window.switchEdges([...histories.values()].flatMap((entries) => entries.map((e) => lsnToSegno(e.switchLsn, size))));
  const whole = (): Promise<CatalogState> => loadCatalogState(catalog, vault, vaultBucket, databaseId, options, read);
  if (window.tooFar) return whole();
  const stateOf = (segments: WalRecord[]): CatalogState => ({ database, records, segments, histories, unreadableHistories, streams: [], manifests });

  // Which snapshots the planner tries depends on the timelines with WAL, not on the segments: the newest of each is enough.
  const bare = stateOf(window.segments());
  let candidates: SnapshotInfo[];
  try {
    candidates = restoreCandidates(buildPlanInput(bare, target, undefined));
  } catch {
    return bare; // the planner fails before it reads any WAL range, the same way on this state
  }
  if (candidates.length === 0) return bare;
  // The target bounds the range for a snapshot (its consistent segment) or an LSN (its segment and the next).
  const upTo = target.kind === "snapshot" ? consistentSegno(candidates[0]!, size) : target.kind === "lsn" ? lsnToSegno(target.lsn, size) + 1n : undefined;
  for (let attempt = 1, tried = 1; ; attempt++, tried = attempt > PLANNING_WINDOWS ? candidates.length : tried * 2) {
    const using = candidates.slice(0, tried);
    await window.extendTo(
      using.reduce((min, s) => bigMin(min, lsnToSegno(s.startLsn, size)), lsnToSegno(using[0]!.startLsn, size)),
      upTo,
    );
    if (window.tooFar) return whole();
    const state = stateOf(window.segments());
    if (tried >= candidates.length) return state;
    try {
      const plan = planRestore(buildPlanInput(state, target, undefined));
      if (using.some((s) => s.id === plan.snapshot.id)) return state;
    } catch (e) {
      // Only a snapshot's WAL failing can come out differently with older snapshots in range.
      if (!(e instanceof WalGapError) && !(e instanceof TargetAfterArchiveEndError)) return state;
    }
  }
}

const bigMin = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/**
 * A generic database's planning state without its whole WAL in memory: its
 * names do not sort by position, so the catalog cannot be read by range, but
 * the WAL is read a page at a time and only the segments the planner can use
 * are kept: for each stream, those from the position of the oldest snapshot
 * tried on. The snapshots tried are restoreCandidates' newest 1, then 2 and
 * 4, then all (as for PostgreSQL, PLANNING_WINDOWS attempts, each a pass
 * over the pages); how far the archive is complete is counted over every
 * segment. So memory holds the WAL from the chosen snapshot on (what the
 * restore replays), not the archive's. Planning on it gives the plan, or
 * the error, planning on loadCatalogState's gives.
 *
 * A database whose registration says walIndex "complete" (every segment
 * record carries its position key) reads the same segments by range instead
 * (readIndexed: Catalog.listGenericWalRange, each stream from its cut on):
 * the work grows with the WAL from the snapshots tried on, not with the
 * archive; the last attempt too (every candidate's range). Two things still
 * take the pass over the pages: a plan that fails on the last attempt (so
 * every failing plan, gap or archive end, is reported from the consistent
 * full read, never from the eventually consistent index), and a time target
 * later than what the range proves complete (archivedThrough counted over
 * the range's scans only, which can be earlier than the full count: the
 * pass decides).
 */
async function loadGenericPlanningState(
  catalog: Catalog,
  vault: ObjectStore,
  vaultBucket: string,
  database: DatabaseRecord,
  target: RestoreTarget,
  options: LoadCatalogStateOptions,
  /** The database's snapshot records, read already (all regions). */
  allRecords: readonly SnapshotRecord[],
): Promise<CatalogState> {
  const databaseId = database.databaseId;
  const records = allRecords.flatMap((r) => snapshotInRegion(r, options.region) ?? []);
  const manifests = await readManifests(vault, vaultBucket, database, records);
  const streams = streamsOf(database, records, manifests);
  const base: CatalogState = { database, records, segments: [], histories: new Map(), streams, manifests };
  let candidates: SnapshotInfo[];
  try {
    candidates = restoreCandidates(buildPlanInput(base, target, streams[0]));
  } catch {
    candidates = [];
  }
  const byId = new Map(records.map((r) => [r.snapshotId, r]));
  // By range only when the index holds every segment and the snapshots name the streams to read.
  let indexed = database.walIndex === "complete" && streams.length > 0;
  /** One pass: the segments of each stream from `from` on (every one when `from` is undefined), and archivedThrough over all. */
  const read = async (from: Map<string, bigint> | undefined): Promise<CatalogState> => {
    const segments: WalRecord[] = [];
    const through = new ArchivedThrough();
    let after: string | undefined;
    do {
      const page = await catalog.listWalPage(databaseId, after);
      const held = page.records.flatMap((w) => (w.kind === "segment" ? (walInRegion(w, options.region) ?? []) : []));
      through.add(held);
      for (const w of held) {
        const cut = from?.get(streams.length > 1 ? (streamOfRecord(w) ?? "") : (streams[0] ?? ""));
        if (from !== undefined && (cut === undefined || (segmentPlace(database, w)?.segno ?? -1n) < cut)) continue;
        segments.push(w);
      }
      after = page.next;
    } while (after !== undefined);
    return { ...base, segments, archivedThrough: through.result() };
  };
  // Nothing to try (or the target fails before any WAL is read): the planner says so from the full read's state.
  if (candidates.length === 0) return read(undefined);
  for (let attempt = 1, tried = 1; ; attempt++, tried = attempt > PLANNING_WINDOWS ? candidates.length : tried * 2) {
    const using = candidates.slice(0, tried);
    const last = tried >= candidates.length;
    if (last && !indexed) return read(undefined);
    // Each stream's cut: the oldest position a snapshot tried starts from there (a stream a snapshot lacks: all of it).
    const from = new Map<string, bigint>();
    for (const stream of streams) {
      for (const s of using) {
        const rec = byId.get(s.id);
        const info = rec === undefined ? undefined : snapshotInfoOf(base, rec, stream);
        const pos = info?.stopLsn ?? 0n;
        from.set(stream, from.has(stream) ? bigMin(from.get(stream)!, pos) : pos);
      }
    }
    let byRange: Awaited<ReturnType<typeof readIndexed>> | undefined;
    if (indexed) {
      // A catalog that cannot read the index (a table without it, a role not granted it: ConfigError) is read by pages.
      byRange = await readIndexed(catalog, database, streams, from, options.region).catch((e: unknown) => {
        if (e instanceof ConfigError) return undefined;
        throw e;
      });
      indexed = byRange !== undefined;
      if (!indexed && last) return read(undefined);
    }
    let state: CatalogState;
    if (byRange !== undefined) {
      state = { ...base, ...byRange };
      // A time target past what the range proves complete: the pass counts every scan.
      if (target.kind === "time" && (state.archivedThrough === undefined || target.time > state.archivedThrough)) {
        if (last) return read(undefined);
        state = await read(from);
      }
    } else state = await read(from);
    try {
      const plan = planRestore(buildPlanInput(state, target, streams[0]));
      if (using.some((s) => s.id === plan.snapshot.id)) return state;
    } catch (e) {
      // Every candidate in range and still no plan: the consistent full read says why (never a lagging index).
      if (last) return read(undefined);
      // Only a snapshot's WAL failing can come out differently with older snapshots in range.
      if (!(e instanceof WalGapError) && !(e instanceof TargetAfterArchiveEndError)) return state;
    }
  }
}

/**
 * One pass of loadGenericPlanningState through the position index: each
 * stream's segments from its cut on (Catalog.listGenericWalRange, a page at
 * a time), with archivedThrough counted over them. With one stream named by
 * the snapshots, that stream's (the pass takes every record as that
 * stream's). The index is eventually consistent: the database's head (its
 * newest segment by close time, read consistently before the ranges) and
 * each stream's INDEX_TAIL records with the greatest names (read
 * consistently from the record keys: the newest segments when names sort by
 * position) are added when the index does not list them yet, so a segment
 * archived a moment before the restore is planned with; one the index lags
 * on before them is a gap, which the caller's last attempt reports from the
 * consistent pass only if it is real (docs/decisions.md, "Generic WAL by
 * position").
 */
async function readIndexed(catalog: Catalog, database: DatabaseRecord, streams: readonly string[], from: ReadonlyMap<string, bigint>, region: string | undefined): Promise<{ segments: WalRecord[]; archivedThrough: Date | undefined }> {
  const databaseId = database.databaseId;
  const head = await catalog.getHead(databaseId);
  const segments: WalRecord[] = [];
  const names = new Set<string>();
  const keep = (w: WalRecord): void => {
    const held = w.kind === "segment" ? walInRegion(w, region) : undefined;
    if (held === undefined || names.has(held.name)) return;
    names.add(held.name);
    segments.push(held);
  };
  /** A record read consistently beside the index (newest by name, the head): kept when it is a segment of `stream` from its cut on. */
  const keepFromCut = (w: WalRecord | undefined, stream: string): void => {
    if (w !== undefined && w.kind === "segment" && (genericRecordPosition(w) ?? -1n) >= (from.get(stream) ?? 0n)) keep(w);
  };
  await mapLimit(streams, FETCH_CONCURRENCY, async (stream) => {
    for await (const w of genericWalRecordsFrom(catalog, databaseId, stream, from.get(stream) ?? 0n)) keep(w);
    // The stream's newest records by name, from the record keys (consistent): what the index may not list yet.
    for (const w of await catalog.listGenericWalNewest(databaseId, stream, INDEX_TAIL)) keepFromCut(w, stream);
  });
  const headStream = head !== undefined && isGenericWalName(head.lastName) ? parseGenericWalName(head.lastName).stream : undefined;
  if (head !== undefined && headStream !== undefined && streams.includes(headStream) && !names.has(head.lastName)) {
    keepFromCut(await catalog.getWal(databaseId, head.lastName), headStream);
  }
  const through = new ArchivedThrough();
  through.add(segments);
  return { segments, archivedThrough: through.result() };
}

/** Records per stream read from the record keys beside an index read (Catalog.listGenericWalNewest): a moment's worth of segments. */
const INDEX_TAIL = 8;

/** The segment a snapshot is consistent in (holding stopLsn - 1), as core/restore-plan.ts reads it. */
function consistentSegno(s: SnapshotInfo, segmentSize: number): bigint {
  return lsnToSegno(s.stopLsn > s.startLsn ? s.stopLsn - 1n : s.startLsn, segmentSize);
}
