/**
 * Catalog: the per-database record of what the vault holds (DynamoDB in AWS,
 * DynamoDB Local on the local stack). Items are keyed by database, so one
 * database's agent can be limited to its own items (IAM LeadingKeys).
 *
 * Contract (every implementation, checked by test/store/catalog.contract.ts):
 * - WAL names are PostgreSQL file names, or `<stream>/<file>` for a generic
 *   database's segments (core/generic-wal.ts): equal file names in two
 *   streams are two records.
 * - recordWal() is a conditional, idempotent create: when no item exists for
 *   (databaseId, name) it writes one and resolves "created"; when one exists
 *   with the same sha256 it changes nothing and resolves "duplicate" with the
 *   existing record; when one exists with a different sha256 it changes
 *   nothing and rejects with SegmentConflictError naming both hashes.
 *   A generic segment's record (core/generic-wal.ts gposOfRecord: a
 *   `<stream>/<file>` segment with a position) is written with its position
 *   key, so listGenericWalRange() finds it; every other record without.
 *   A created segment record the index cannot hold (a PostgreSQL-like name
 *   whose startLsn is not an LSN: a generic database's older naming) removes
 *   its database's walIndex mark, if any (see putDatabase below).
 * - getWal() resolves undefined for a name never recorded.
 * - listWal() returns every WAL record of a database ordered by timeline, then
 *   name (so segments come in LSN order within a timeline), across pages;
 *   generic segments by stream, then file name.
 * - listWalPage(databaseId, after, limit) returns WAL records (every kind) in
 *   listWal() order, those after the record named `after` (none: from the
 *   first; it need not exist any more), at most `limit` (default and most:
 *   1000), and `next` (the last record's name) when more may follow: pass it
 *   as `after`. Following `next` from the first page yields every record
 *   exactly once (a Query, never a Scan). An `after` that is not a WAL name
 *   rejects with InvalidInputError.
 * - listWalRange(databaseId, timeline, fromName, toName, { limit, newestFirst })
 *   returns the WAL records (every kind) of one PostgreSQL timeline whose
 *   names lie from fromName through toName, both included (toName undefined:
 *   through the timeline's last), in name order (newestFirst: reversed), at
 *   most `limit` of them (default: all, across pages). It reads only that
 *   range (a Query on the sort-key range), never the rest of the archive.
 * - listGenericWalRange(databaseId, stream, fromPosition, toPosition, { limit, after })
 *   returns the generic segment records of one stream whose position
 *   (core/generic-wal.ts genericRecordPosition) lies from fromPosition through
 *   toPosition, both included (toPosition undefined: through the stream's
 *   last), in position order (records at one position: in no given order),
 *   at most `limit` (default and most: 1000), and `next` when more may
 *   follow: pass it as `after`. Following `next` yields every such record
 *   once. It reads only that range (a Query on the sparse position index,
 *   never a Scan, never the rest of the archive): its cost grows with the
 *   range, not with the archive. The index is eventually consistent: a record
 *   recorded a moment ago may be missing for a moment (readers that must not
 *   miss it read the newest records too: store/catalog-state.ts). Records
 *   written before the index (no position key) are not listed: use it for a
 *   database only while its registration says walIndex "complete". A stream
 *   that is not a stream id, a limit out of range, or an `after` this did
 *   not return for the stream, rejects with InvalidInputError; a catalog
 *   without the index, with ConfigError.
 * - listGenericWalNewest(databaseId, stream, limit) returns the WAL records
 *   of one generic stream whose file names sort last, greatest first, at most
 *   `limit` (1 to 100), read consistently from the record keys (one Query,
 *   not the index). For names that sort by position (fixed-width numbers,
 *   the usual case) these are the newest segments: readers add them to a
 *   listGenericWalRange read, so a segment recorded a moment ago, which the
 *   eventually consistent index may not list yet, is not missed. A stream
 *   that is not a stream id or a limit out of range rejects with
 *   InvalidInputError.
 * - backfillWalIndex(databaseId, after?, limit?) gives the generic segment
 *   records of a database registered before the position index their
 *   position key (idempotent: a record that has it is left), examining at
 *   most `limit` WAL records (default and most: 1000) in listWal order after
 *   the cursor `after`; it resolves how many it examined and updated, and
 *   `next` when more may follow. The call that examines the last record marks
 *   the registration walIndex "complete" (`marked`), unless a segment record
 *   cannot carry a key (a name not `<stream>/<file>`, written before those
 *   names; no position): then it resolves `refused` saying which, marks
 *   nothing, and the database stays read by pages. A database marked
 *   already is walked all the same (its mark stays): a record written
 *   without its key after the mark, by ingest from before the key, gets it
 *   (the repair `walvault catalog index-wal` makes). An unknown one rejects with
 *   NotFoundError, a PostgreSQL one (its names sort by position) or a cursor
 *   it did not return with InvalidInputError. Run it after every writer
 *   writes the key (ingest from this version on): a record written without
 *   it behind the cursor would be missed by the index.
 * - listWalTimelines() returns, in ascending order, every PostgreSQL timeline
 *   holding at least one WAL record, each with its history file record
 *   (`<timeline>.history`) when one is archived. It reads one item per
 *   timeline (a history file sorts first among its timeline's names), never
 *   the segments: its cost grows with timelines, not with WAL.
 * - setReplicaStatus() / setSnapshotReplicaStatus() set one region's status
 *   on an existing WAL / snapshot record (NotFoundError when there is none)
 *   and leave other regions alone; a "failed" or "pending" status never
 *   replaces "replicated" (a late failure report of a retried copy must not
 *   hide a good copy).
 * - What a replica region lacks (docs/replication.md, "What a region lacks"):
 *   a WAL or snapshot record is *pending* in region R while replicas[R]
 *   exists and is not "replicated": created so (recordWal/recordSnapshot
 *   with replicas[R] "pending" or "failed"; ingest creates every configured
 *   replica region "pending") or set so by setReplicaStatus /
 *   setSnapshotReplicaStatus ("pending" or "failed": a failed copy stays
 *   pending, it is retried); it stops being pending when R is set
 *   "replicated", in the same write. A record without replicas[R] is not
 *   pending in R, except as markUnreplicated() below makes it so.
 * - listUnreplicated(region, { databaseId?, after?, limit }) returns the
 *   records pending in `region` (of one database when given), ordered by
 *   database id, then as the database's items sort (snapshots by id, then
 *   WAL by timeline and name: listSnapshots / listWal order), at most
 *   `limit` (default and most: 1000), and `next` when more may follow: pass
 *   it as `after`. It reads only pending records (an index holding nothing
 *   else): its cost grows with the page, never with the catalog. An `after`
 *   it did not return, or a region name that cannot be one, rejects with
 *   InvalidInputError; a region the catalog keeps no index for, with ConfigError.
 * - markUnreplicated(databaseId, region, after?, limit?) makes every
 *   snapshot and WAL record of the database that is not "replicated" in
 *   `region` pending there (a missing replicas[region] becomes "pending"; a
 *   present status is kept), examining at most `limit` records (default and
 *   most: 1000) in listSnapshots-then-listWal order after the cursor `after`;
 *   it resolves how many it examined and marked, and `next` when more may
 *   follow. Idempotent: for catalogs written before the index, or a region
 *   added later (docs/replication.md).
 * - getHead() resolves the database's newest archived segment. For
 *   PostgreSQL it is read from the WAL records themselves: the segment with
 *   the greatest timeline, then position (history files, backup labels and
 *   `.partial` files are passed over), whether or not advanceHead() was
 *   called, so recording a segment costs one write. Otherwise (generic
 *   databases, whose order is the segments' close time, which their keys do
 *   not hold) it is what advanceHead() left.
 * - advanceHead() moves the stored head forward only: a record older than
 *   the current head leaves it unchanged; never rejects for that. Ingest
 *   calls it for generic WAL only.
 * - recordQuarantine() appends; listQuarantine() returns newest last, and
 *   filters by file name when given one.
 * - putDatabase() creates or replaces the registration; getDatabase() resolves
 *   undefined for an unknown id. Once putDatabase() resolves, the
 *   registration is listed too (one write: never registered but unlisted).
 *   A registration's `walIndex` is the catalog's, not the caller's (a value
 *   passed in is not taken as such): a generic database's registration says
 *   walIndex "complete" when putDatabase() finds it registered so already
 *   (a re-registration keeps it), or finds no WAL record of the database yet
 *   (every record it will have carries its position key); otherwise it is
 *   left out. A PostgreSQL registration never has it (its names sort by
 *   position already).
 * - listDatabasePage(after, limit) returns registrations with ids after
 *   `after` (none: from the first), in id order, at most `limit` of them
 *   (default: one service page), and `next` when more may follow: pass it as
 *   `after` for the next page. Following `next` from the first page until it
 *   is absent yields every registration exactly once; an `after` that is not
 *   a database id rejects with InvalidInputError. listDatabases() is every
 *   page, in id order. Listing reads a registry of its own, never the
 *   database's other items (no Scan: its cost grows with registrations only).
 * - missingChunks() returns, of the given hashes, those with no chunk record,
 *   each once, in input order; it asks in batches (BatchGetItem, <= 100 keys
 *   per request), never one round trip per chunk.
 * - recordChunks() writes chunk records in batches; writing an existing one
 *   again is harmless (a record describes content-addressed bytes). A record
 *   keeps its `offset` (a chunk inside the pack `vaultKey`) or its absence (a
 *   chunk stored as its own object) exactly as written, and listChunks() and
 *   getChunks() return it so.
 * - getChunks() returns, of the given hashes, the chunk records found, each
 *   once, in input order (of first appearance); a hash without a record is
 *   left out. It asks in batches (BatchGetItem, <= 100 keys per request),
 *   never one round trip per chunk.
 * - recordPacks() writes pack records (core/schemas.ts PackItem) in batches
 *   (BatchWriteItem, 25 per request); writing an existing one again is
 *   harmless (a pack is content-addressed). getPack() resolves the record, or
 *   undefined for a pack never recorded. Pack records are not chunk records:
 *   listChunks() and missingChunks() never see them.
 * - Every pack recordPacks() writes is also entered in the database's pack
 *   log under its recordedAt. listPacksRecordedSince(db, since, after,
 *   limit) returns the entries recorded at or after `since` (ISO times,
 *   compared as strings), oldest first and by name within one time, at most
 *   `limit` (default and most: 1000), and `next` when more may follow: pass
 *   it as `after`. One Query, never a Scan. An entry is a hint: it outlives a
 *   pack deleted since (callers read the pack record), a pack recorded again
 *   at another time has two, and entries expire some weeks after their time
 *   (catalog-layout.ts PACK_LOG_TTL_DAYS). A `since` or `after` that is not
 *   what this returns rejects with InvalidInputError.
 * - getPacks() returns, of the given names, the pack records found, each once,
 *   in input order, in batches (BatchGetItem, <= 100 keys per request).
 * - listChunkPage(db, after, limit) / listPackPage(db, after, limit) return a
 *   database's chunk / pack records whose hash sorts after `after` (none: from
 *   the first), in hash order, at most `limit` (default and most: 1000), and
 *   `next` when more may follow: pass it as `after`. Following `next` from the
 *   first page yields every record exactly once (a Query, never a Scan).
 *   An `after` that is not a SHA-256 rejects with InvalidInputError.
 * - One promotion of a pack at a time (functions/snapshot/promote-packs.ts:
 *   a pack's upload and its manifest both start one): claimPackPromotion(db,
 *   name, owner, until, now) takes the pack's claim for `owner` until
 *   `until` (ISO times, compared as strings) when nobody holds it, its holder
 *   is `owner`, or its `until` is before `now`, and resolves undefined; else
 *   it resolves the holder's `until`. releasePackPromotion(db, name, owner)
 *   ends the claim (anyone may take it next) if `owner` still holds it. Claims are not pack
 *   records: getPacks() and listPackPage() never see them. One conditional
 *   write each.
 * - Pack retention, two phases (docs/retention.md, "Packs"):
 *   markPacksOrphaned(db, names, at) sets orphanedAt = at on each pack record
 *   that exists (replacing an earlier value) and resolves the names it
 *   marked; a name without a record is skipped, never created.
 *   clearPackOrphaned(db, name) removes orphanedAt when present and resolves
 *   true when the record exists (marked or not) and is not condemned, false
 *   when there is none or it is condemned. condemnPack(db, name, orphanedAt,
 *   at) sets deletingAt = at only when the record carries exactly that
 *   orphanedAt and no deletingAt (so a clear or a new mark since wins), and
 *   resolves whether it did; deleteCondemnedPack(db, name) deletes the
 *   record only while it carries a deletingAt, resolving whether it did.
 *   markPacksRepacked(db, names, at) sets
 *   repackedAt = at the same way (existing records only, the names marked);
 *   neither clearPackOrphaned nor a later mark removes it (a record written
 *   again by recordPacks has none). Each is one conditional write per pack.
 * - deleteChunksInPack(db, hashes, vaultKey) deletes each chunk record only
 *   while it points at `vaultKey` (a chunk recorded elsewhere since stays),
 *   resolving the hashes deleted. movePackedChunks(records, fromVaultKey)
 *   writes each record only while the stored one points at `fromVaultKey`
 *   (a repack re-pointing a chunk), resolving the hashes moved; a record that
 *   is gone or points elsewhere is left. One conditional write per chunk.
 * - recordSnapshot() is a conditional create like recordWal(): same
 *   manifestSha256 -> "duplicate", different -> SnapshotConflictError.
 * - listSnapshots() returns a database's snapshots ordered by snapshotId
 *   (which sorts by start time), across pages.
 * - recordVerification() writes one run item (keyed by start time and run
 *   id); listVerifications() returns them oldest first, across pages.
 * - setSnapshotVerification() updates only the snapshot's `verification`.
 * - deleteWal/deleteSnapshot/deleteChunks are idempotent; deletes and audit
 *   writes go in batches (BatchWriteItem, 25 per request).
 * - No operation but putDatabase() needs a multi-item transaction.
 * - Service failures reject with ServiceUnavailableError.
 */
import type { AuditRecord, ChunkItem, DatabaseRecord, HeadRecord, PackItem, QuarantineRecord, SnapshotRecord, VerificationRecord, WalRecord } from "../core/schemas.js";

export type RecordOutcome = { outcome: "created"; record: WalRecord } | { outcome: "duplicate"; record: WalRecord };
export type SnapshotOutcome = { outcome: "created" | "duplicate"; record: SnapshotRecord };

/** One page of chunk records; `next` is absent on the last. */
export interface ChunkPage {
  chunks: ChunkItem[];
  next?: string;
}

/** One page of pack records; `next` is absent on the last. */
export interface PackPage {
  packs: PackItem[];
  next?: string;
}

/** A pack entered in the pack log: its name and when it was recorded. */
export interface PackLogEntry {
  name: string;
  recordedAt: string;
}

/** One page of the pack log; `next` is absent on the last. */
export interface PackLogPage {
  packs: PackLogEntry[];
  next?: string;
}

/** One page of WAL records; `next` is absent on the last. */
export interface WalPage {
  records: WalRecord[];
  next?: string;
}

/** Options of listWalRange(). */
export interface WalRangeOptions {
  /** At most this many records (a positive integer); default: every record in the range. */
  limit?: number;
  /** Newest (greatest name) first. */
  newestFirst?: boolean;
}

/** Options of listGenericWalRange(). */
export interface GenericWalRangeOptions {
  /** At most this many records (1 to 1000; default 1000). */
  limit?: number;
  /** The `next` of the previous page. */
  after?: string;
}

/** A PostgreSQL timeline with archived WAL, and its history file record when archived. */
export interface WalTimeline {
  timeline: number;
  history?: WalRecord;
}

/** One record a replica region lacks: a WAL file (by catalog name) or a snapshot. */
export type UnreplicatedItem = { databaseId: string; name: string; snapshotId?: undefined } | { databaseId: string; snapshotId: string; name?: undefined };

/** Options of listUnreplicated(). */
export interface UnreplicatedOptions {
  /** Only this database's records. */
  databaseId?: string;
  /** The `next` of the previous page. */
  after?: string;
  /** At most this many records (1 to 1000; default 1000). */
  limit?: number;
}

/** One page of records a region lacks; `next` is absent on the last. */
export interface UnreplicatedPage {
  items: UnreplicatedItem[];
  next?: string;
}

/** What one markUnreplicated() call did; `next` is absent once every record was examined. */
export interface MarkUnreplicatedPage {
  examined: number;
  marked: number;
  next?: string;
}

/** What one backfillWalIndex() call did; `next` is absent once every record was examined. */
export interface WalIndexBackfillPage {
  examined: number;
  updated: number;
  next?: string;
  /** The registration was marked walIndex "complete" (by this call, or before it). */
  marked?: boolean;
  /** Why the database cannot be marked (a record that cannot carry a position key). */
  refused?: string;
}

/** One page of registrations; `next` is absent on the last. */
export interface DatabasePage {
  databases: DatabaseRecord[];
  next?: string;
}

export interface Catalog {
  putDatabase(record: DatabaseRecord): Promise<void>;
  getDatabase(databaseId: string): Promise<DatabaseRecord | undefined>;
  /** Every registration, in id order (all pages of listDatabasePage). */
  listDatabases(): Promise<DatabaseRecord[]>;
  /** One page of registrations after `after`, for callers that must not hold all of them. */
  listDatabasePage(after?: string, limit?: number): Promise<DatabasePage>;

  recordWal(record: WalRecord): Promise<RecordOutcome>;
  getWal(databaseId: string, name: string): Promise<WalRecord | undefined>;
  listWal(databaseId: string): Promise<WalRecord[]>;
  /** One page of WAL records after the one named `after`, for callers that must not hold all of them (see the contract above). */
  listWalPage(databaseId: string, after?: string, limit?: number): Promise<WalPage>;
  /** PostgreSQL WAL records of one timeline by name range, for planning without reading the whole archive (see the contract above). */
  listWalRange(databaseId: string, timeline: number, fromName: string, toName: string | undefined, options?: WalRangeOptions): Promise<WalRecord[]>;
  /** One stream's generic segment records by position range, a page at a time, from the position index (see the contract above). */
  listGenericWalRange(databaseId: string, stream: string, fromPosition: bigint, toPosition: bigint | undefined, options?: GenericWalRangeOptions): Promise<WalPage>;
  /** One stream's records with the greatest file names, consistently (see the contract above). */
  listGenericWalNewest(databaseId: string, stream: string, limit: number): Promise<WalRecord[]>;
  /** Gives older generic segment records their position key, a page at a time, and marks the registration at the end (see the contract above). */
  backfillWalIndex(databaseId: string, after?: string, limit?: number): Promise<WalIndexBackfillPage>;
  /** Every PostgreSQL timeline with a WAL record, with its history file record (see the contract above). */
  listWalTimelines(databaseId: string): Promise<WalTimeline[]>;
  /** Sets the replica status of one region on an existing record. */
  setReplicaStatus(databaseId: string, name: string, region: string, status: WalRecord["replicas"][string]): Promise<void>;
  /** The same for a snapshot record. */
  setSnapshotReplicaStatus(databaseId: string, snapshotId: string, region: string, status: SnapshotRecord["replicas"][string]): Promise<void>;

  /** Records pending in a replica region, a page at a time (see the contract above). */
  listUnreplicated(region: string, options?: UnreplicatedOptions): Promise<UnreplicatedPage>;
  /** Makes a database's records not replicated in `region` pending there, a page at a time (older catalogs). */
  markUnreplicated(databaseId: string, region: string, after?: string, limit?: number): Promise<MarkUnreplicatedPage>;

  advanceHead(databaseId: string, name: string, sortKey: string, archivedAt: string): Promise<void>;
  getHead(databaseId: string): Promise<HeadRecord | undefined>;

  recordQuarantine(record: QuarantineRecord): Promise<void>;
  listQuarantine(databaseId: string, name?: string): Promise<QuarantineRecord[]>;

  missingChunks(databaseId: string, sha256s: readonly string[]): Promise<string[]>;
  recordChunks(records: readonly ChunkItem[]): Promise<void>;
  listChunks(databaseId: string): Promise<ChunkItem[]>;
  /** The records of these chunks that exist (where each one is stored), each once, in input order. */
  getChunks(databaseId: string, sha256s: readonly string[]): Promise<ChunkItem[]>;

  /** Records packs in the vault (idempotent). */
  recordPacks(records: readonly PackItem[]): Promise<void>;
  getPack(databaseId: string, name: string): Promise<PackItem | undefined>;
  /** The records of these packs that exist, each once, in input order. */
  getPacks(databaseId: string, names: readonly string[]): Promise<PackItem[]>;
  /** One page of chunk records (retention: memory bounded by the page, not the database). */
  listChunkPage(databaseId: string, after?: string, limit?: number): Promise<ChunkPage>;
  listPackPage(databaseId: string, after?: string, limit?: number): Promise<PackPage>;
  /** The packs recorded at or after `since`, oldest first, a page at a time (see the contract above). */
  listPacksRecordedSince(databaseId: string, since: string, after?: string, limit?: number): Promise<PackLogPage>;
  /** Takes the claim to promote a pack (see the contract above): undefined when taken, else the holder's `until`. */
  claimPackPromotion(databaseId: string, name: string, owner: string, until: string, now: string): Promise<string | undefined>;
  /** Gives a claim up, if `owner` still holds it. */
  releasePackPromotion(databaseId: string, name: string, owner: string): Promise<void>;
  /** Marks existing packs as deletion candidates at `at`; resolves the names marked. */
  markPacksOrphaned(databaseId: string, names: readonly string[], at: string): Promise<string[]>;
  /** Records that a repack is copying these packs' live chunks out (repackedAt = at); resolves the names marked. */
  markPacksRepacked(databaseId: string, names: readonly string[], at: string): Promise<string[]>;
  /** Unmarks a pack; false when its record is gone. */
  clearPackOrphaned(databaseId: string, name: string): Promise<boolean>;
  /** Condemns a pack (deletingAt = at) only while it carries this orphanedAt and is not condemned yet; whether it did. */
  condemnPack(databaseId: string, name: string, orphanedAt: string, at: string): Promise<boolean>;
  /** Deletes a pack record only while it is condemned; whether it did. */
  deleteCondemnedPack(databaseId: string, name: string): Promise<boolean>;
  /** Deletes chunk records only while they point at `vaultKey`; the hashes deleted. */
  deleteChunksInPack(databaseId: string, sha256s: readonly string[], vaultKey: string): Promise<string[]>;
  /** Rewrites chunk records only while they point at `fromVaultKey` (a repack); the hashes moved. */
  movePackedChunks(records: readonly ChunkItem[], fromVaultKey: string): Promise<string[]>;

  /** Retention: remove records (idempotent: deleting what is not there succeeds). */
  deleteChunks(databaseId: string, sha256s: readonly string[]): Promise<void>;
  deleteWal(databaseId: string, names: readonly string[]): Promise<void>;
  deleteSnapshot(databaseId: string, snapshotId: string): Promise<void>;
  /** Appends audit items (one per deletion); listAudit returns them oldest first. */
  recordAudit(records: readonly AuditRecord[]): Promise<void>;
  listAudit(databaseId: string): Promise<AuditRecord[]>;
  recordSnapshot(record: SnapshotRecord): Promise<SnapshotOutcome>;
  getSnapshot(databaseId: string, snapshotId: string): Promise<SnapshotRecord | undefined>;
  listSnapshots(databaseId: string): Promise<SnapshotRecord[]>;

  /** Appends one verification run (runIds are unique; writing the same run again replaces it). */
  recordVerification(record: VerificationRecord): Promise<void>;
  /** Verification runs of a database, oldest first (optionally of one snapshot). */
  listVerifications(databaseId: string, snapshotId?: string): Promise<VerificationRecord[]>;
  /** Pins (keep forever) or unpins a snapshot; NotFoundError when it is not recorded. */
  setSnapshotPinned(databaseId: string, snapshotId: string, pinned: boolean): Promise<void>;
  /** Sets a snapshot's latest verification; NotFoundError when the snapshot is not recorded. */
  setSnapshotVerification(databaseId: string, snapshotId: string, v: NonNullable<SnapshotRecord["verification"]>): Promise<void>;
}
