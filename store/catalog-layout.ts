/**
 * The catalog table's layout: the table both DynamoCatalog
 * (store/dynamo-catalog.ts, on DynamoDB) and MemoryCatalog
 * (store/memory-catalog.ts, on an emulated table) use, and the layout infra/
 * (the CDK stacks' key schema, TTL attribute and indexes) and the Catalog
 * contract (store/catalog.ts: listing order, cursors) rely on. One place for
 * its keys, attributes, indexes and limits, and for the logic both
 * implementations run over it: key builders and parsers, cursors, input
 * checks, the items a record is written as, the outcome of a write that
 * found an item already there, the error a failed request becomes, and the
 * page walks both make (over the Query each sends: they do no I/O of their
 * own). No AWS SDK, not even its types: MemoryCatalog imports this module
 * without loading the SDK.
 *
 * Item layout (string keys pk, sk):
 *   pk = db#<databaseId>
 *   sk = meta                                      the database registration
 *        head                                      last archived position
 *        wal#<timeline 8 upper hex>#<name>         one archived WAL file (PostgreSQL)
 *        wal#<stream>#<file>                       one generic segment (name <stream>/<file>)
 *        quarantine#<name>#<iso time>#<random>     one rejected upload
 *        snap#<snapshotId>                         one restorable snapshot
 *        chunk#<sha256>                            one chunk in the vault (its own object, or
 *                                                  `offset` into the pack named by vaultKey)
 *        pack#<sha256>                             one pack in the vault (db/<id>/packs/<sha256>)
 *        packlog#<iso recordedAt>#<sha256>         the same pack in the order packs were recorded
 *                                                  (listPacksRecordedSince; expires PACK_LOG_TTL_DAYS later)
 *        promoting#<sha256>                        a pack's promotion claim (expires an hour after it ends)
 *        verify#<iso start>#<runId>                one verification run
 *        audit#<iso>#<runId>#<seq>                 one retention deletion (what, why, when, which run)
 *   pk = registry
 *   sk = db#<databaseId>                           the registration again, for listing databases
 * so one Query per database answers every listing, and the registry
 * partition lists the databases by Query, page by page. Items hold the
 * record fields plus pk/sk; reads strip the keys and parse with
 * core/schemas.ts (parseItem).
 *
 * What a replica region lacks (docs/replication.md, "What a region lacks"):
 * a sparse index per replica region R, `pending-<R>` (partition key
 * `pending:<R>`, sort key `replicaKey`; projects databaseId, name,
 * snapshotId). A WAL or snapshot item carries `replicaKey` =
 * `<databaseId>#<sk>` (written once, never changed) and `pending:<R>` =
 * "pending" exactly while replicas[R] exists and is not "replicated": set by
 * the create (recordWal/recordSnapshot, from the record's replicas) or by a
 * pending/failed status, removed by the update that sets "replicated". So
 * the index holds only what R lacks. Items written before the index carry no
 * marker: markUnreplicated() adds them, page by page.
 *
 * Generic WAL by position (docs/decisions.md, "Generic WAL by position"): a
 * generic segment's name does not sort by position, so its item carries one
 * more attribute, `gpos` = `<stream>#<position, 20 digits>` (core/generic-wal.ts
 * gposOfRecord), and the sparse index `gpos` (partition key pk, sort key
 * gpos, projection ALL) holds those items only: one stream's range of
 * positions is one Query (listGenericWalRange). A database registered before
 * any WAL is marked walIndex "complete"; older ones keep the pass over their
 * WAL pages until a backfill marks them.
 */
import { randomBytes } from "node:crypto";
import type { z } from "zod";
import { headSortKey } from "../core/catalog-records.js";
import { ConcurrentUpdateError, CatalogFaultError, ConfigError, InvalidInputError, NotFoundError, SegmentConflictError, ServiceUnavailableError, SnapshotConflictError, type WalvaultError } from "../core/errors.js";
import { GPOS_DIGITS, gposOfRecord, gposRange, gposValue, isGenericWalName, parseGenericWalName, parseGpos, SEGMENT_FILE_RE, STREAM_ID_RE } from "../core/generic-wal.js";
import { DATABASE_ID_RE, timelineDir } from "../core/keys.js";
import { headRecordSchema, packItemSchema, sha256Schema, type ChunkItem, type DatabaseRecord, type HeadRecord, type PackItem, type SnapshotRecord, type WalRecord } from "../core/schemas.js";
import { isLsn } from "../core/wal.js";
import { isNetworkError } from "./aws-errors.js";
import type {
  DatabasePage,
  GenericWalRangeOptions,
  MarkUnreplicatedPage,
  RecordOutcome,
  SnapshotOutcome,
  UnreplicatedItem,
  UnreplicatedOptions,
  UnreplicatedPage,
  WalIndexBackfillPage,
  WalPage,
  WalRangeOptions,
  WalTimeline,
} from "./catalog.js";

// ------------------------------------------------------------------ keys

/** Key schema of the catalog table; infra/ mirrors it in the CDK stack. */
export const CATALOG_KEY_SCHEMA = {
  partitionKey: { name: "pk", type: "S" },
  sortKey: { name: "sk", type: "S" },
} as const;

/** Sort keys and sort key prefixes: key order is listing order. */
export const CATALOG_SORT_KEYS = {
  meta: "meta",
  head: "head",
  walPrefix: "wal#",
  quarantinePrefix: "quarantine#",
  snapshotPrefix: "snap#",
  chunkPrefix: "chunk#",
  packPrefix: "pack#",
  /** The pack log: one item per recorded pack, by time (not a pack record: `pack#` prefixes never match it). */
  packLogPrefix: "packlog#",
  /** A pack being promoted (claimPackPromotion): not a pack record. */
  promotingPrefix: "promoting#",
  verifyPrefix: "verify#",
  auditPrefix: "audit#",
} as const;

/** Bounds after every WAL / snapshot sort key (`$` follows `#`). */
export const WAL_END = "wal$";
export const SNAPSHOT_END = "snap$";

/** An item: the record's fields plus pk/sk (and index attributes). */
export type CatalogItem = Record<string, unknown>;
export type ItemKey = { pk: string; sk: string };
/** A Query key condition on the sort key: a prefix, or a range with both ends included. */
export type SortKeyCondition = { prefix: string } | { from: string; to: string };

export function databasePk(databaseId: string): string {
  return `db#${databaseId}`;
}

/** The partition listing every registered database (no database id can make `db#<id>` equal it). */
export const REGISTRY_PK = "registry";
export const REGISTRY_SK_PREFIX = "db#";

export function registrySk(databaseId: string): string {
  return `${REGISTRY_SK_PREFIX}${databaseId}`;
}

export function walSk(timeline: number, name: string): string {
  return `${CATALOG_SORT_KEYS.walPrefix}${timelineDir(timeline)}#${name}`;
}

export function snapshotSk(snapshotId: string): string {
  return `${CATALOG_SORT_KEYS.snapshotPrefix}${snapshotId}`;
}

export function chunkSk(sha256: string): string {
  return `${CATALOG_SORT_KEYS.chunkPrefix}${sha256}`;
}

export function packSk(name: string): string {
  return `${CATALOG_SORT_KEYS.packPrefix}${name}`;
}

export function packLogSk(recordedAt: string, name: string): string {
  return `${CATALOG_SORT_KEYS.packLogPrefix}${recordedAt}#${name}`;
}

/** A new quarantine record's sort key: by name and time, made unique by a random suffix. */
export function quarantineSk(r: { name: string; at: string }): string {
  return `${CATALOG_SORT_KEYS.quarantinePrefix}${r.name}#${r.at}#${randomBytes(6).toString("hex")}`;
}

/** The sort key prefix of a database's quarantine records (of one name, when given). */
export function quarantinePrefix(name?: string): string {
  return `${CATALOG_SORT_KEYS.quarantinePrefix}${name === undefined ? "" : `${name}#`}`;
}

export function verificationSk(r: { startedAt: string; runId: string }): string {
  return `${CATALOG_SORT_KEYS.verifyPrefix}${r.startedAt}#${r.runId}`;
}

export function auditSk(r: { at: string; runId: string; seq: number }): string {
  return `${CATALOG_SORT_KEYS.auditPrefix}${r.at}#${r.runId}#${String(r.seq).padStart(6, "0")}`;
}

/** Greatest timeline number (8 hex digits). */
export const MAX_TIMELINE = 0xffffffff;

/** The first sort key a timeline's PostgreSQL WAL records can have. */
export function walTimelineStart(timeline: number): string {
  return `${CATALOG_SORT_KEYS.walPrefix}${timelineDir(timeline)}#`;
}

/** A bound after every sort key of a timeline's WAL records (`$` follows `#`). */
export function walTimelineEnd(timeline: number): string {
  return `${CATALOG_SORT_KEYS.walPrefix}${timelineDir(timeline)}$`;
}

/** Every PostgreSQL WAL record's sort key, of every timeline. */
const POSTGRES_WAL_RANGE = { from: walSk(0, ""), to: walTimelineEnd(MAX_TIMELINE) } as const;

/** The sort key prefix of a generic stream's segments. */
export function walStreamPrefix(stream: string): string {
  return `${CATALOG_SORT_KEYS.walPrefix}${stream}#`;
}

/** The timeline of a PostgreSQL WAL record's sort key, wal#<8 upper hex>#<name>. */
export function timelineOfSk(sk: string): number | undefined {
  const m = /^wal#([0-9A-F]{8})#/.exec(sk);
  return m?.[1] === undefined ? undefined : Number.parseInt(m[1], 16);
}

/** Timeline of a WAL file name (the first 8 hex digits of every kind walvault archives). */
export function timelineOfName(name: string): number | undefined {
  const m = /^([0-9A-F]{8})/.exec(name);
  if (!m?.[1]) return undefined;
  const tli = Number.parseInt(m[1], 16);
  return tli > 0 ? tli : undefined;
}

/** Sort key of a WAL record by its name: generic `<stream>/<file>`, else by the timeline its name starts with. */
export function walSkOfName(name: string): string | undefined {
  if (isGenericWalName(name)) {
    try {
      const g = parseGenericWalName(name);
      return `${walStreamPrefix(g.stream)}${g.file}`;
    } catch {
      return undefined; // not a valid name: it can never have been recorded
    }
  }
  const timeline = timelineOfName(name);
  return timeline === undefined ? undefined : walSk(timeline, name);
}

// ------------------------------------------------------------ attributes

/**
 * The table's TTL attribute (infra/primary-stack.ts), epoch seconds: a pack's
 * promotion claim carries it, an hour after the claim's end, and a pack log
 * item, PACK_LOG_TTL_DAYS after its pack was recorded, so neither piles up
 * (DynamoDB deletes expired items by itself, at no cost).
 */
export const CATALOG_TTL_ATTRIBUTE = "expiresAt";
/**
 * How long a pack log item is kept: the log serves a push's dedup with packs
 * recorded since the previous snapshot (docs/packs.md, "Step 3"); a push more
 * than this after its previous snapshot re-uploads what an interrupted push
 * left, which costs space, never a chunk.
 */
export const PACK_LOG_TTL_DAYS = 45;
/** What a pack log item holds besides its keys and TTL. */
export const packLogEntrySchema = packItemSchema.pick({ name: true, recordedAt: true });
/** A pack log cursor or start: an ISO time, then `#<sha256>` for a cursor. */
const PACK_LOG_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
/** What a released claim's `until` becomes: before any time, so the next claim takes it at once. */
export const RELEASED = "1970-01-01T00:00:00.000Z";

/** The attribute every WAL and snapshot item carries as the replication indexes' sort key: `<databaseId>#<sk>`. */
export const REPLICA_KEY_ATTRIBUTE = "replicaKey";
/** The attributes the replication indexes carry besides their keys (never changed once written: no index writes on updates). */
export const REPLICA_INDEX_PROJECTION = ["databaseId", "name", "snapshotId"] as const;
/** The value of a `pending:<region>` marker. */
export const REPLICA_PENDING = "pending";
/** Region names the replication indexes accept (an index name allows [A-Za-z0-9_.-]). */
const REPLICA_REGION_RE = /^[a-z0-9][a-z0-9-]{0,49}$/;

/** What every region's marker attribute starts with. */
export const REPLICA_PENDING_PREFIX = "pending:";

/** The marker attribute of a region: present while the record is not replicated there. */
export function replicaPendingAttribute(region: string): string {
  return `${REPLICA_PENDING_PREFIX}${region}`;
}

/** The sparse index of what `region` lacks. */
export function replicaIndexName(region: string): string {
  return `pending-${region}`;
}

/** The replicaKey of the WAL or snapshot item at `sk`. */
export function replicaKey(databaseId: string, sk: string): string {
  return `${databaseId}#${sk}`;
}

/** The marker attributes a new WAL / snapshot item carries: replicaKey, and pending:<R> for each region not replicated. */
function replicaMarks(databaseId: string, sk: string, replicas: WalRecord["replicas"]): CatalogItem {
  const marks: CatalogItem = { [REPLICA_KEY_ATTRIBUTE]: replicaKey(databaseId, sk) };
  for (const [region, st] of Object.entries(replicas)) if (st.status !== "replicated") marks[replicaPendingAttribute(region)] = REPLICA_PENDING;
  return marks;
}

/** The attribute a generic segment's item carries as the position index's sort key (core/generic-wal.ts gposOfRecord). */
export const GPOS_ATTRIBUTE = "gpos";
/** The sparse index of generic segments by stream and position (partition key pk, sort key gpos, projection ALL). */
export const GENERIC_WAL_INDEX = "gpos";
/** A listGenericWalRange cursor: the last record's position (20 digits) and file name. */
const GPOS_CURSOR_RE = /^(\d{20})#(.+)$/;

/** The position-index attribute a new WAL item carries: `gpos` for a generic segment, nothing otherwise. */
function gposMark(record: WalRecord): CatalogItem {
  const gpos = gposOfRecord(record);
  return gpos === undefined ? {} : { [GPOS_ATTRIBUTE]: gpos };
}

/**
 * Whether a record is a generic database's segment the position index cannot
 * hold: a PostgreSQL-like name whose startLsn is a position, not an LSN (what
 * generic ingest wrote before `<stream>/<file>` names; written straight to the
 * catalog by older tools and test fixtures). Its database cannot stay
 * walIndex "complete".
 */
export function outsideWalIndex(record: WalRecord): boolean {
  return record.kind === "segment" && !isGenericWalName(record.name) && !isLsn(record.startLsn);
}

// ---------------------------------------------------------------- limits

/** DynamoDB's limits per BatchGetItem / BatchWriteItem request. */
export const BATCH_GET_MAX_KEYS = 100;
export const BATCH_WRITE_MAX_ITEMS = 25;
/** Batch requests one call keeps in flight. */
export const BATCH_CONCURRENCY = 4;
/** Most registrations one listDatabasePage call returns. */
export const DATABASE_PAGE_MAX = 1000;
/** Most chunk or pack records one listChunkPage / listPackPage call returns. */
export const RECORD_PAGE_MAX = 1000;
/** Most records one listGenericWalRange call returns. */
export const GENERIC_WAL_PAGE_MAX = 1000;
/** Most records one listUnreplicated / markUnreplicated call returns or examines. */
export const UNREPLICATED_PAGE_MAX = 1000;
/** getHead's newest-first read of PostgreSQL WAL records: records a page, and most records read before giving up on finding a segment. */
const NEWEST_SEGMENT_PAGE = 8;
const NEWEST_SEGMENT_READS = 64;

// ---------------------------------------------------- checks and parsing

/** `value` checked against `schema`: InvalidInputError naming what is wrong. */
export function checkInput<S extends z.ZodTypeAny>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new InvalidInputError(
      `invalid ${what}: ${result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`,
      { cause: result.error },
    );
  }
  return result.data as z.infer<S>;
}

function stripKeys(item: CatalogItem): CatalogItem {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest;
}

/** A stored item read as a record: its keys stripped, parsed with `schema`; CatalogFaultError when it is not one. */
export function parseItem<S extends z.ZodTypeAny>(tableName: string, schema: S, item: CatalogItem, what: string): z.infer<S> {
  const result = schema.safeParse(stripKeys(item));
  if (!result.success) {
    throw new CatalogFaultError(
      `catalog item ${String(item.pk)} ${String(item.sk)} in table '${tableName}' is not a valid ${what}: ${result.error.issues
        .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
        .join("; ")}`,
      { cause: result.error },
    );
  }
  return result.data as z.infer<S>;
}

/** A page size checked to be an integer from 1 to `max`; `max` when none is given. */
export function checkPageSize(limit: number | undefined, max: number, what: string): number {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > max)) {
    throw new InvalidInputError(`${what} page size ${limit} is not an integer from 1 to ${max}`);
  }
  return limit ?? max;
}

/** The cursor of a page under `prefix`: the last item's sort key after the prefix, when more may follow. */
export function pageCursor(items: readonly CatalogItem[], more: boolean, prefix: string): string | undefined {
  const lastSk = items.at(-1)?.sk;
  return !more || typeof lastSk !== "string" ? undefined : lastSk.slice(prefix.length);
}

/** Distinct hashes in input order (of first appearance), each checked to be a SHA-256. */
export function uniqueHashes(databaseId: string, sha256s: readonly string[]): string[] {
  const unique: string[] = [];
  const seen = new Set<string>();
  for (const h of sha256s) {
    if (seen.has(h)) continue;
    seen.add(h);
    unique.push(checkInput(sha256Schema, h, `chunk hash '${String(h)}' for database ${databaseId}`));
  }
  return unique;
}

/** Content-addressed records as items, one per key (the last given: BatchWriteItem refuses a request naming one key twice). */
function oneItemPerKey<T extends { databaseId: string }>(records: readonly T[], sk: (r: T) => string): CatalogItem[] {
  const byKey = new Map<string, CatalogItem>();
  for (const r of records) {
    const key = { pk: databasePk(r.databaseId), sk: sk(r) };
    byKey.set(`${key.pk} ${key.sk}`, { ...r, ...key });
  }
  return [...byKey.values()];
}

export function chunkItems(records: readonly ChunkItem[]): CatalogItem[] {
  return oneItemPerKey(records, (r) => chunkSk(r.sha256));
}

// ------------------------------------------------------------- databases

export function checkDatabaseCursor(after: string | undefined): void {
  if (after !== undefined && !DATABASE_ID_RE.test(after)) {
    throw new InvalidInputError(`database listing cursor '${after}' is not a database id`);
  }
}

/** Every registration, page by page (listDatabasePage's pages at most `pageSize`, when given). */
export async function listAllDatabases(pageSize: number | undefined, listPage: (after?: string, limit?: number) => Promise<DatabasePage>): Promise<DatabaseRecord[]> {
  const records: DatabaseRecord[] = [];
  let after: string | undefined;
  do {
    const page = await listPage(after, pageSize === undefined ? undefined : Math.min(pageSize, DATABASE_PAGE_MAX));
    records.push(...page.databases);
    after = page.next;
  } while (after !== undefined);
  return records;
}

// ------------------------------------------------------------------- WAL

/** A WAL record's name checked against its timeline (a generic one's name parsed: timeline 1). */
export function checkWalRecordName(r: WalRecord): void {
  if (isGenericWalName(r.name)) {
    parseGenericWalName(r.name);
    if (r.timeline !== 1) throw new InvalidInputError(`generic WAL record ${r.name} for database ${r.databaseId} claims timeline ${r.timeline}; generic streams have timeline 1`);
  } else if (timelineOfName(r.name) !== r.timeline) {
    throw new InvalidInputError(`WAL record ${r.name} for database ${r.databaseId} claims timeline ${r.timeline}, which its name does not start with`);
  }
}

/** The item a new WAL record is written as: the record, its replication markers and (generic segments) its position key. */
export function walItem(r: WalRecord, sk: string): CatalogItem {
  return { ...r, ...replicaMarks(r.databaseId, sk, r.replicas), ...gposMark(r), pk: databasePk(r.databaseId), sk };
}

function short(sha256: string): string {
  return `${sha256.slice(0, 12)}…`;
}

/** recordWal's outcome when `existing` is already recorded: a duplicate of the same contents, else SegmentConflictError. */
export function existingWalOutcome(r: WalRecord, existing: WalRecord): RecordOutcome {
  if (existing.sha256 === r.sha256) return { outcome: "duplicate", record: existing };
  throw new SegmentConflictError(
    `${r.name} is already archived for database ${r.databaseId} with different contents ` +
      `(archived sha256 ${short(existing.sha256)}, pushed sha256 ${short(r.sha256)}); the archived copy was kept`,
  );
}

/** recordWal's failure when the record it lost to vanished twice. */
export function walChangedError(r: WalRecord): ConcurrentUpdateError {
  return new ConcurrentUpdateError(`${r.name} for database ${r.databaseId} changed while it was being recorded; retry the push`);
}

/** The sort key after the WAL prefix that a listWalPage cursor (a WAL name) starts after. */
export function walPageStart(databaseId: string, after: string | undefined): string | undefined {
  const sk = after === undefined ? undefined : walSkOfName(after);
  if (after !== undefined && sk === undefined) throw new InvalidInputError(`WAL listing cursor '${after}' of database ${databaseId} is not a WAL name`);
  return sk?.slice(CATALOG_SORT_KEYS.walPrefix.length);
}

/** A WAL page: its next cursor is the last record's name. */
export function walPage(records: WalRecord[], last: string | undefined): WalPage {
  return last === undefined || records.length === 0 ? { records } : { records, next: records.at(-1)!.name };
}

/** listWalRange's Query: its sort key range, limit and direction; undefined when the range is empty. */
export function walRangeQuery(
  databaseId: string,
  timeline: number,
  fromName: string,
  toName: string | undefined,
  options: WalRangeOptions,
): { range: { from: string; to: string }; opts: { limit?: number; forward: boolean } } | undefined {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > MAX_TIMELINE) {
    throw new InvalidInputError(`WAL range of database ${databaseId}: timeline ${String(timeline)} is not a timeline number`);
  }
  const { limit, newestFirst = false } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new InvalidInputError(`WAL range of database ${databaseId}: limit ${String(limit)} is not a positive integer`);
  }
  if (toName !== undefined && toName < fromName) return undefined;
  const to = toName === undefined ? walTimelineEnd(timeline) : walSk(timeline, toName);
  return { range: { from: walSk(timeline, fromName), to }, opts: { ...(limit === undefined ? {} : { limit }), forward: !newestFirst } };
}

/** listGenericWalRange's page size and the position index key it starts after (from its cursor). */
export function genericWalRangeStart(databaseId: string, stream: string, options: GenericWalRangeOptions): { limit: number; start?: CatalogItem } {
  const what = `generic WAL range of database ${databaseId}`;
  if (!STREAM_ID_RE.test(stream)) throw new InvalidInputError(`${what}: '${stream}' is not a WAL stream id`);
  const { limit = GENERIC_WAL_PAGE_MAX, after } = options;
  if (!Number.isInteger(limit) || limit < 1 || limit > GENERIC_WAL_PAGE_MAX) {
    throw new InvalidInputError(`${what}: page size ${String(limit)} is not an integer from 1 to ${GENERIC_WAL_PAGE_MAX}`);
  }
  if (after === undefined) return { limit };
  const m = GPOS_CURSOR_RE.exec(after);
  if (!m || !SEGMENT_FILE_RE.test(m[2]!)) throw new InvalidInputError(`${what}: cursor '${after}' is not one this listing returned`);
  return { limit, start: { pk: databasePk(databaseId), sk: `${walStreamPrefix(stream)}${m[2]!}`, [GPOS_ATTRIBUTE]: gposValue(stream, BigInt(m[1]!)) } };
}

/** A listGenericWalRange cursor after the item `last`: its position (20 digits) and file name. */
export function genericWalCursor(last: CatalogItem): string {
  const { position } = parseGpos(String(last[GPOS_ATTRIBUTE]));
  const sk = String(last.sk);
  return `${position.toString().padStart(GPOS_DIGITS, "0")}#${sk.slice(sk.lastIndexOf("#") + 1)}`;
}

export function checkGenericWalNewest(databaseId: string, stream: string, limit: number): void {
  if (!STREAM_ID_RE.test(stream)) throw new InvalidInputError(`newest generic WAL of database ${databaseId}: '${stream}' is not a WAL stream id`);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new InvalidInputError(`newest generic WAL of database ${databaseId}: limit ${String(limit)} is not an integer from 1 to 100`);
}

export function checkBackfillCursor(databaseId: string, after: string | undefined): void {
  if (after !== undefined && (!after.startsWith(CATALOG_SORT_KEYS.walPrefix) || after > WAL_END)) {
    throw new InvalidInputError(`WAL index backfill cursor '${after}' of database ${databaseId} is not one backfillWalIndex returned`);
  }
}

/**
 * A database backfillWalIndex can walk: a registered generic one, marked or
 * not (a marked one is walked all the same, so that a record written without
 * its key after the mark, by ingest from before the key, gets it);
 * NotFoundError / InvalidInputError when it can have no index.
 */
export function checkBackfillTarget(databaseId: string, database: DatabaseRecord | undefined): void {
  if (database === undefined) throw new NotFoundError(`database '${databaseId}' is not registered: no WAL index to build`);
  if (database.kind !== "generic") throw new InvalidInputError(`database '${databaseId}' is a PostgreSQL database: its WAL names sort by position, it has no position index`);
}

/**
 * The position keys a page of WAL items lacks (segments whose `gpos` is
 * missing or stale), or why the database cannot have them (the first
 * segment that cannot carry one).
 */
function positionKeysMissing(databaseId: string, items: readonly CatalogItem[], parse: (item: CatalogItem) => WalRecord): { missing: { sk: string; gpos: string }[] } | { refused: string } {
  const missing: { sk: string; gpos: string }[] = [];
  for (const item of items) {
    const record = parse(item);
    if (record.kind !== "segment") continue;
    const gpos = gposOfRecord(record);
    if (gpos === undefined) {
      return { refused: `WAL record ${record.name} of database ${databaseId} cannot carry a position key (not a <stream>/<file> name with a position): the database stays read by pages` };
    }
    if (item[GPOS_ATTRIBUTE] !== gpos) missing.push({ sk: String(item.sk), gpos });
  }
  return { missing };
}

/** Why backfillWalIndex could not mark a database complete (its registration's transaction was canceled). */
function walIndexMarkRefused(databaseId: string): string {
  return `the registration of database '${databaseId}' changed while its WAL index was built, or is not listed in the registry (register it again): run it again`;
}

// ------------------------------------------------------------------ head

/** advanceHead's head, checked. */
export function headOf(databaseId: string, name: string, sortKey: string, archivedAt: string): HeadRecord {
  return checkInput(headRecordSchema, { databaseId, lastName: name, lastSortKey: sortKey, lastArchivedAt: archivedAt }, "head");
}

/** The request values of advanceHead's update. */
export function headValues(head: HeadRecord): Record<string, string> {
  return { ":db": head.databaseId, ":name": head.lastName, ":sk": head.lastSortKey, ":at": head.lastArchivedAt };
}

/**
 * What getHead's newest-first read of POSTGRES_WAL_RANGE makes of a record:
 * "skip" past history files, backup labels, `.partial` files and generic
 * names; the first PostgreSQL segment decides: the head when it has an LSN,
 * none when it has a position (a generic database's records written before
 * `<stream>/<file>` names: its head is the stored item).
 */
function newestSegmentHead(databaseId: string, record: WalRecord): HeadRecord | undefined | "skip" {
  if (record.kind !== "segment" || isGenericWalName(record.name)) return "skip";
  // A segment with an LSN always has a head sort key.
  return isLsn(record.startLsn) ? { databaseId, lastName: record.name, lastSortKey: headSortKey(record)!, lastArchivedAt: record.archivedAt } : undefined;
}

/**
 * The PostgreSQL segment with the greatest sort key (timeline, then
 * position) as a head: the records themselves, read newest first a page of
 * NEWEST_SEGMENT_PAGE at a time past the history files, backup labels and
 * `.partial` files that may sort above it, at most NEWEST_SEGMENT_READS
 * records. Undefined for a database with none, or whose newest such
 * segment has no LSN (a generic one).
 */
export async function newestPostgresHead(databaseId: string, query: PartitionQuery, parse: (item: CatalogItem) => WalRecord): Promise<HeadRecord | undefined> {
  let start: CatalogItem | undefined;
  for (let read = 0; read < NEWEST_SEGMENT_READS; ) {
    const out = await query(POSTGRES_WAL_RANGE, start, NEWEST_SEGMENT_PAGE, false, "Query (newest WAL segment)");
    for (const item of out.items) {
      const head = newestSegmentHead(databaseId, parse(item));
      if (head !== "skip") return head;
    }
    read += out.items.length;
    if (out.start === undefined) return undefined;
    start = out.start;
  }
  return undefined;
}

// ---------------------------------------------------------------- replicas

/** A region name checked to be one the replication indexes accept. */
export function checkReplicaRegion(region: string): string {
  if (!REPLICA_REGION_RE.test(region)) throw new InvalidInputError(`'${region}' is not a replica region name`);
  return region;
}

/** The request values of a replica status update: the status, and while not replicated the region's marker and replicaKey. */
export function replicaStatusValues(databaseId: string, sk: string, value: WalRecord["replicas"][string]): Record<string, unknown> {
  return { ":status": value, ...(value.status !== "replicated" ? { ":replicated": "replicated", ":pending": REPLICA_PENDING, ":rk": replicaKey(databaseId, sk) } : {}) };
}

/** setReplicaStatus / setSnapshotReplicaStatus of a record that is not there. */
export function replicaTargetMissing(what: string, databaseId: string, region: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`no ${what} for database ${databaseId} to set the ${region} replica status on`, { cause });
}

/** listUnreplicated's page size, database and the index key it starts after (from its cursor). */
export function unreplicatedStart(region: string, options: UnreplicatedOptions): { limit: number; databaseId: string | undefined; start?: CatalogItem } {
  checkReplicaRegion(region);
  const limit = checkPageSize(options.limit, UNREPLICATED_PAGE_MAX, "unreplicated records");
  const { databaseId, after } = options;
  if (databaseId !== undefined && !DATABASE_ID_RE.test(databaseId)) throw new InvalidInputError(`'${databaseId}' is not a database id`);
  if (after === undefined) return { limit, databaseId };
  const m = /^([a-z0-9-]+)#((?:wal|snap)#.+)$/.exec(after);
  if (!m || !DATABASE_ID_RE.test(m[1]!) || (databaseId !== undefined && m[1] !== databaseId)) {
    throw new InvalidInputError(`unreplicated records cursor '${after}' is not one this listing returned`);
  }
  return { limit, databaseId, start: { [replicaPendingAttribute(region)]: REPLICA_PENDING, [REPLICA_KEY_ATTRIBUTE]: after, pk: databasePk(m[1]!), sk: m[2]! } };
}

/** What a replication index item names: a snapshot, or a WAL record. */
export function unreplicatedItem(item: CatalogItem): UnreplicatedItem {
  const db = String(item.databaseId);
  return String(item.sk).startsWith(CATALOG_SORT_KEYS.snapshotPrefix) ? { databaseId: db, snapshotId: String(item.snapshotId) } : { databaseId: db, name: String(item.name) };
}

/** The ConfigError message of a listUnreplicated on a table without the region's index. */
export function missingReplicaIndex(tableName: string, where: string, region: string): string {
  return (
    `catalog table '${tableName}' at ${where} has no index ${replicaIndexName(region)}: is ${region} a configured replica region? ` +
    `(the stacks create one per replica region; the local stack at start)`
  );
}

/** markUnreplicated's page size and cursor, checked. */
export function markUnreplicatedStart(region: string, after: string | undefined, limit: number | undefined): number {
  checkReplicaRegion(region);
  const max = checkPageSize(limit, UNREPLICATED_PAGE_MAX, "records to mark");
  if (after !== undefined && !after.startsWith(CATALOG_SORT_KEYS.snapshotPrefix) && !after.startsWith(CATALOG_SORT_KEYS.walPrefix)) {
    throw new InvalidInputError(`marking cursor '${after}' is not one markUnreplicated returned`);
  }
  return max;
}

/** What markUnreplicated examines: snapshot items, then WAL items (two sort-key ranges, nothing else of the database). */
const MARK_RANGES: readonly (readonly [string, string])[] = [
  [CATALOG_SORT_KEYS.snapshotPrefix, SNAPSHOT_END],
  [CATALOG_SORT_KEYS.walPrefix, WAL_END],
];

/** Whether markUnreplicated marks an item: no marker of the region, and not replicated there. */
function needsReplicaMark(item: CatalogItem, region: string): boolean {
  return item[replicaPendingAttribute(region)] === undefined && (item.replicas as WalRecord["replicas"] | undefined)?.[region]?.status !== "replicated";
}

/** The request values of markUnreplicated's update of one item (its status if it has none: pending, now). */
export function markUnreplicatedValues(databaseId: string, sk: string): { ":status": { status: "pending"; at: string }; ":pending": string; ":replicated": string; ":rk": string } {
  return { ":status": { status: "pending", at: new Date().toISOString() }, ":pending": REPLICA_PENDING, ":replicated": "replicated", ":rk": replicaKey(databaseId, sk) };
}

// --------------------------------------------------------------- snapshots

export function checkSnapshotId(r: SnapshotRecord): void {
  if (r.snapshotId.length === 0) throw new InvalidInputError(`snapshot record for database ${r.databaseId} has an empty snapshotId`);
}

/** The item a new snapshot record is written as: the record and its replication markers. */
export function snapshotItem(r: SnapshotRecord, sk: string): CatalogItem {
  return { ...r, ...replicaMarks(r.databaseId, sk, r.replicas), pk: databasePk(r.databaseId), sk };
}

/** recordSnapshot's outcome when `existing` is already recorded: a duplicate of the same manifest, else SnapshotConflictError. */
export function existingSnapshotOutcome(r: SnapshotRecord, existing: SnapshotRecord): SnapshotOutcome {
  if (existing.manifestSha256 === r.manifestSha256) return { outcome: "duplicate", record: existing };
  throw new SnapshotConflictError(
    `snapshot ${r.snapshotId} is already recorded for database ${r.databaseId} with a different manifest ` +
      `(recorded manifest sha256 ${short(existing.manifestSha256)}, new manifest sha256 ${short(r.manifestSha256)}); ` +
      `the recorded snapshot was kept`,
  );
}

/** recordSnapshot's failure when the record it lost to vanished twice. */
export function snapshotChangedError(r: SnapshotRecord): ConcurrentUpdateError {
  return new ConcurrentUpdateError(`snapshot ${r.snapshotId} for database ${r.databaseId} changed while it was being recorded; retry`);
}

// -------------------------------------------------------------- quarantine

function compareTime(a: string, b: string): number {
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (Number.isFinite(ta) && Number.isFinite(tb) && ta !== tb) return ta - tb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Quarantine records under quarantinePrefix(name) as listQuarantine returns them: of that name exactly, newest last. */
export function quarantineInOrder<R extends { name: string; at: string }>(keyed: { sk: string; record: R }[], name: string | undefined): R[] {
  // A name containing '#' could share a prefix with another name: keep exact matches only.
  const matching = name === undefined ? keyed : keyed.filter((k) => k.record.name === name);
  // Newest last: by time, then by key for a stable order within one instant.
  matching.sort((a, b) => compareTime(a.record.at, b.record.at) || (a.sk < b.sk ? -1 : a.sk > b.sk ? 1 : 0));
  return matching.map((k) => k.record);
}

// ------------------------------------------------------------------- packs

/**
 * The items recordPacks writes: one record per pack (the last given:
 * BatchWriteItem refuses a request naming one key twice), then one log item
 * per pack and time (a pack given at two times is logged at both), each
 * pack's side by side (a log item is a hint: a pack recorded without it is
 * only not found by the log).
 */
export function packItems(records: readonly PackItem[]): CatalogItem[] {
  const byPack = new Map<string, { record: PackItem; logged: Map<string, PackItem> }>();
  for (const r of records) {
    const key = `${r.databaseId} ${r.name}`;
    const entry = byPack.get(key) ?? { record: r, logged: new Map<string, PackItem>() };
    entry.record = r;
    entry.logged.set(r.recordedAt, r);
    byPack.set(key, entry);
  }
  return [...byPack.values()].flatMap(({ record, logged }) => {
    const pk = databasePk(record.databaseId);
    return [
      { ...record, pk, sk: packSk(record.name) },
      ...[...logged.values()].map((r) => {
        const expiresAt = Math.ceil(Date.parse(r.recordedAt) / 1000) + PACK_LOG_TTL_DAYS * 86_400;
        return { pk, sk: packLogSk(r.recordedAt, r.name), databaseId: r.databaseId, name: r.name, recordedAt: r.recordedAt, [CATALOG_TTL_ATTRIBUTE]: expiresAt };
      }),
    ];
  });
}

/** listPacksRecordedSince's start, cursor and page size, checked; the page size. */
export function checkPackLogPage(since: string, after: string | undefined, limit: number | undefined): number {
  if (!PACK_LOG_TIME_RE.test(since)) throw new InvalidInputError(`pack log start '${String(since)}' is not an ISO time (YYYY-MM-DDTHH:MM:SS.sssZ)`);
  if (after !== undefined) {
    const [time, name] = after.split("#");
    if (time === undefined || name === undefined || !PACK_LOG_TIME_RE.test(time)) throw new InvalidInputError(`pack log cursor '${after}' is not <ISO time>#<pack name>`);
    checkInput(sha256Schema, name, "pack log cursor");
  }
  return checkPageSize(limit, RECORD_PAGE_MAX, "pack log");
}

/** The pack log's items from `since` on ("~" sorts after every ISO time character). */
export function packLogRange(since: string): { from: string; to: string } {
  return { from: `${CATALOG_SORT_KEYS.packLogPrefix}${since}`, to: `${CATALOG_SORT_KEYS.packLogPrefix}~` };
}

/** The key of a pack's record (or, with `prefix`, its promotion claim), its name checked first (InvalidInputError). */
export function packKey(databaseId: string, name: string, prefix: string = CATALOG_SORT_KEYS.packPrefix): ItemKey {
  const checked = checkInput(sha256Schema, name, `pack name '${String(name)}' for database ${databaseId}`);
  return { pk: databasePk(databaseId), sk: `${prefix}${checked}` };
}

/** A pack's promotion claim item: it expires (TTL) an hour after the claim ends. */
export function promotionClaimItem(key: ItemKey, databaseId: string, name: string, owner: string, until: string): CatalogItem {
  return { ...key, databaseId, name, owner, until, [CATALOG_TTL_ATTRIBUTE]: Math.ceil(Date.parse(until) / 1000) + 3600 };
}

// ------------------------------------------------------ request sequences
//
// The page walks both implementations make, over the Query each sends (its
// queryOnce: DynamoDB's, or the emulated table's): one definition of which
// pages are read, where a walk stops and what cursor it returns.

type Awaitable<T> = T | Promise<T>;
/** One Query page: its items, and the key the next page starts after when more may follow (DynamoDB's LastEvaluatedKey). */
export type QueryPage = { items: CatalogItem[]; start?: CatalogItem };
/** One Query page after `start`, at most `limit` items (none: a page ends at 1 MB only). */
export type PageQuery = (start: CatalogItem | undefined, limit: number | undefined) => Awaitable<QueryPage>;
/** One consistent Query page of one partition's items matching `cond`, after `start`, in sort-key order (or reversed). */
export type PartitionQuery = (cond: SortKeyCondition, start: CatalogItem | undefined, limit: number | undefined, forward: boolean, op: string) => Awaitable<QueryPage>;

/**
 * Query pages from `start`, each at most `pageSize`, until `limit` items in
 * all (none: to the end), each item handed to `onItem` as its page comes;
 * the key the next page would start after, when more may follow.
 */
export async function queryPages(
  query: PageQuery,
  pageSize: number | undefined,
  limit: number | undefined,
  start: CatalogItem | undefined,
  onItem: (item: CatalogItem) => void,
): Promise<CatalogItem | undefined> {
  let count = 0;
  let next = start;
  do {
    const left = limit === undefined ? undefined : limit - count;
    const out = await query(next, left === undefined ? pageSize : Math.min(left, pageSize ?? left));
    for (const item of out.items) onItem(item);
    count += out.items.length;
    next = out.start;
  } while (next !== undefined && (limit === undefined || count < limit));
  return next;
}

/**
 * listGenericWalRange, either catalog: its checks and cursor
 * (genericWalRangeStart), then pages of the position index (`pageOf`: one
 * Query of partition `pk` between the range's two gpos keys, after a start
 * key) until `limit` records, each parsed by `parse`; a cursor after the
 * last when more may follow.
 */
export async function genericWalRangePage(
  databaseId: string,
  stream: string,
  fromPosition: bigint,
  toPosition: bigint | undefined,
  options: GenericWalRangeOptions,
  pageSize: number | undefined,
  pageOf: (pk: string, range: { from: string; to: string }) => PageQuery,
  parse: (item: CatalogItem) => WalRecord,
): Promise<WalPage> {
  const { limit, start } = genericWalRangeStart(databaseId, stream, options);
  const range = gposRange(stream, fromPosition, toPosition);
  if (range === undefined) return { records: [] };
  const records: WalRecord[] = [];
  let last: CatalogItem | undefined;
  const more = await queryPages(pageOf(databasePk(databaseId), range), pageSize, limit, start, (item) => {
    records.push(parse(item));
    last = item;
  });
  return more === undefined || last === undefined ? { records } : { records, next: genericWalCursor(last) };
}

/**
 * listUnreplicated, either catalog: its checks and cursor
 * (unreplicatedStart), then pages of the region's replication index
 * (`pageOf`: one Query of the pending items whose replicaKey starts with
 * `prefix`, all of them for undefined, after a start key) until `limit`.
 */
export async function unreplicatedPage(region: string, options: UnreplicatedOptions, pageSize: number | undefined, pageOf: (prefix: string | undefined) => PageQuery): Promise<UnreplicatedPage> {
  const { limit, databaseId, start } = unreplicatedStart(region, options);
  const items: UnreplicatedItem[] = [];
  let lastKey: string | undefined;
  const more = await queryPages(pageOf(databaseId === undefined ? undefined : `${databaseId}#`), pageSize, limit, start, (item) => {
    items.push(unreplicatedItem(item));
    lastKey = String(item[REPLICA_KEY_ATTRIBUTE]);
  });
  return more === undefined || lastKey === undefined ? { items } : { items, next: lastKey };
}

/** The items of a partition matching `cond`, in sort-key order (or reversed), at most `limit`, across pages of at most `pageSize`. */
export async function queryItems(query: PartitionQuery, pageSize: number | undefined, cond: SortKeyCondition, op: string, opts: { limit?: number; forward: boolean }): Promise<CatalogItem[]> {
  const items: CatalogItem[] = [];
  await queryPages((start, limit) => query(cond, start, limit, opts.forward, op), pageSize, opts.limit, undefined, (item) => items.push(item));
  return items;
}

/**
 * listWalTimelines' skip scan: the first item at or after each timeline's
 * sort keys. `<tl>.history` sorts before every other name of its timeline
 * ('.' < '0'), so that item is the history file when one is archived.
 */
export async function walTimelines(query: PartitionQuery, pageSize: number | undefined, parse: (item: CatalogItem) => WalRecord): Promise<WalTimeline[]> {
  const out: WalTimeline[] = [];
  for (let next = 1; next <= MAX_TIMELINE; ) {
    const [item] = await queryItems(query, pageSize, { from: walTimelineStart(next), to: walTimelineEnd(MAX_TIMELINE) }, "Query (WAL timelines)", { limit: 1, forward: true });
    const timeline = item === undefined ? undefined : timelineOfSk(String(item.sk));
    if (item === undefined || timeline === undefined) break; // no more timelines (or a generic stream's key: no timelines there)
    const record = parse(item);
    out.push(record.kind === "history" ? { timeline, history: record } : { timeline });
    next = timeline + 1;
  }
  return out;
}

/**
 * backfillWalIndex's walk over a generic database's WAL items from `after`,
 * at most `max` in all, pages of at most `pageSize`: each page's missing
 * position keys handed to `setKeys` (how many it set), until a record that
 * cannot carry one (refused) or `max` (next); past the last record,
 * `markComplete` marks the registration (false: its transaction was
 * canceled, refused).
 */
export async function walkPositionKeys(
  databaseId: string,
  after: string | undefined,
  max: number,
  pageSize: number | undefined,
  query: PartitionQuery,
  parse: (item: CatalogItem) => WalRecord,
  setKeys: (missing: { sk: string; gpos: string }[]) => Awaitable<number>,
  markComplete: () => Awaitable<boolean>,
): Promise<WalIndexBackfillPage> {
  let examined = 0;
  let updated = 0;
  let cursor = after;
  let start: CatalogItem | undefined = after === undefined ? undefined : { pk: databasePk(databaseId), sk: after };
  do {
    const out = await query({ from: CATALOG_SORT_KEYS.walPrefix, to: WAL_END }, start, Math.min(max - examined, pageSize ?? max), true, "Query (WAL to index)");
    examined += out.items.length;
    const found = positionKeysMissing(databaseId, out.items, parse);
    if ("refused" in found) return { examined, updated, refused: found.refused };
    updated += await setKeys(found.missing);
    const last = out.items.at(-1)?.sk;
    if (typeof last === "string") cursor = last;
    start = out.start;
  } while (start !== undefined && examined < max);
  if (start !== undefined && cursor !== undefined) return { examined, updated, next: cursor };
  // Every WAL record examined carries its key: the registration (and its registry copy) says so, unless it changed kind meanwhile.
  if (!(await markComplete())) return { examined, updated, refused: walIndexMarkRefused(databaseId) };
  return { examined, updated, marked: true };
}

/**
 * markUnreplicated's walk over MARK_RANGES from `after`, at most `max`
 * records in all, pages of at most `pageSize`: each page's items that lack
 * the region's marker (needsReplicaMark) handed to `mark` (how many it marked).
 */
export async function walkReplicaMarks(
  databaseId: string,
  region: string,
  after: string | undefined,
  max: number,
  pageSize: number | undefined,
  query: PartitionQuery,
  mark: (items: CatalogItem[]) => Awaitable<number>,
): Promise<MarkUnreplicatedPage> {
  let examined = 0;
  let marked = 0;
  let cursor = after;
  for (const [i, [from, to]] of MARK_RANGES.entries()) {
    if (cursor !== undefined && cursor > to) continue;
    let start: CatalogItem | undefined = cursor !== undefined && cursor >= from ? { pk: databasePk(databaseId), sk: cursor } : undefined;
    do {
      const out = await query({ from, to }, start, Math.min(max - examined, pageSize ?? max), true, "Query (records to mark)");
      examined += out.items.length;
      marked += await mark(out.items.filter((item) => needsReplicaMark(item, region)));
      const last = out.items.at(-1)?.sk;
      if (typeof last === "string") cursor = last;
      start = out.start;
    } while (start !== undefined && examined < max);
    if (examined >= max) {
      const more = start !== undefined || i < MARK_RANGES.length - 1;
      return more && cursor !== undefined ? { examined, marked, next: cursor } : { examined, marked };
    }
  }
  return { examined, marked };
}

// ------------------------------------------------------------------ errors

export function errorName(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const name = (e as { name?: unknown }).name;
  return typeof name === "string" ? name : undefined;
}

export function firstLine(e: unknown): string {
  if (e instanceof Error) return (e.message.split("\n")[0] ?? "").trim() || e.name;
  return String(e);
}

/** A request that reached nothing at `where` (a hint to start the local stack when it is local). */
export function unreachableError(where: string, e: unknown): ServiceUnavailableError {
  const local = where.startsWith("http://127.0.0.1") || where.startsWith("http://localhost");
  const hint = local ? " (is the local stack running? `walvault local up`)" : "";
  return new ServiceUnavailableError(`cannot reach DynamoDB at ${where}${hint}: ${firstLine(e)}`, { cause: e });
}

/** The WalvaultError a failed request `op` on the catalog table rejects with, by what DynamoDB (or its SDK) answered. */
export function catalogRequestError(op: string, e: unknown, tableName: string, where: string): WalvaultError {
  if (isNetworkError(e)) return unreachableError(where, e);
  const name = errorName(e);
  if (name === "ResourceNotFoundException") {
    return new ConfigError(`DynamoDB table '${tableName}' does not exist at ${where}: ${firstLine(e)}`, { cause: e });
  }
  if (name === "CredentialsProviderError" || name === "UnrecognizedClientException" || name === "InvalidSignatureException") {
    return new ConfigError(`DynamoDB at ${where} rejected the credentials (${op}): ${firstLine(e)}`, { cause: e });
  }
  if (name === "AccessDeniedException") {
    return new ConfigError(`DynamoDB at ${where} denied ${op} on table '${tableName}': ${firstLine(e)}`, { cause: e });
  }
  if (name === "ValidationException") {
    return new CatalogFaultError(`DynamoDB rejected ${op} on table '${tableName}' as malformed (a walvault fault, not bad input): ${firstLine(e)}`, { cause: e });
  }
  return new ServiceUnavailableError(`DynamoDB ${op} on table '${tableName}' failed at ${where}: ${name ?? "error"}: ${firstLine(e)}`, { cause: e });
}
