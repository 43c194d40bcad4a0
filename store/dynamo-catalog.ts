/**
 * Catalog on one DynamoDB table (DynamoDB Local on the local stack).
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
 *        verify#<iso start>#<runId>                one verification run
 *        audit#<iso>#<runId>#<seq>                 one retention deletion (what, why, when, which run)
 *   pk = registry
 *   sk = db#<databaseId>                           the registration again, for listing databases
 * so one Query per database answers every listing, and IAM LeadingKeys on
 * pk can confine an agent to its own database. The registry partition lists
 * the databases by Query, page by page (a Scan would read every WAL, chunk
 * and snapshot item of every database to find them): putDatabase writes the
 * registration and its registry copy in one transaction, so a database is
 * never registered without being listed, nor listed with other contents.
 * Catalogs written before the registry get it from `walvault catalog
 * rebuild` (docs/decisions.md, "Databases are listed from a registry").
 *
 * What a replica region lacks (docs/replication.md, "What a region lacks"):
 * a sparse index per replica region R, `pending-<R>` (partition key
 * `pending:<R>`, sort key `replicaKey`; projects databaseId, name,
 * snapshotId). A WAL or snapshot item carries `replicaKey` =
 * `<databaseId>#<sk>` (written once, never changed) and `pending:<R>` =
 * "pending" exactly while replicas[R] exists and is not "replicated": set by
 * the create (recordWal/recordSnapshot, from the record's replicas) or by a
 * pending/failed status, removed by the UpdateItem that sets "replicated".
 * So the index holds only what R lacks; listUnreplicated() Queries it and
 * reads nothing else. Index writes: one when a record enters it, one when it
 * leaves (status updates in between change no indexed or projected
 * attribute). Items written before the index carry no marker:
 * markUnreplicated() adds them, page by page. Chunk lookups and writes go in
 * batches (BatchGetItem / BatchWriteItem), so the agent role needs
 * dynamodb:BatchGetItem and ingest dynamodb:BatchWriteItem. Items hold the record fields
 * plus pk/sk; reads strip the keys and parse with core/schemas.ts.
 *
 * Generic WAL by position (docs/decisions.md, "Generic WAL by position"): a
 * generic segment's name does not sort by position, so its item carries one
 * more attribute, `gpos` = `<stream>#<position, 20 digits>` (core/generic-wal.ts
 * gposOfRecord), and the sparse index `gpos` (partition key pk, sort key
 * gpos, projection ALL) holds those items only: one stream's range of
 * positions is one Query (listGenericWalRange). One more write unit per
 * generic segment, none for PostgreSQL WAL. A database registered before any
 * WAL (putDatabase) is marked walIndex "complete"; older ones keep the pass
 * over their WAL pages until a backfill marks them.
 */
import { deadlineIn } from "../core/deadline.js";
import { isNetworkError } from "./aws-errors.js";
import {
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  UpdateTableCommand,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
  type TableDescription,
  type AttributeDefinition,
  type AttributeValue,
  type WriteRequest as WireWriteRequest,
} from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  BatchWriteCommand,
  DynamoDBDocumentClient,
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type BatchWriteCommandInput,
  type QueryCommandInput,
  type QueryCommandOutput,
} from "@aws-sdk/lib-dynamodb";
import { randomBytes } from "node:crypto";
import type { z } from "zod";
import {
  ConcurrentUpdateError,
  CatalogFaultError,
  ConfigError,
  InvalidInputError,
  NotFoundError,
  SegmentConflictError,
  ServiceUnavailableError,
  SnapshotConflictError,
  TimeoutError,
  type WalvaultError,
} from "../core/errors.js";
import {
  chunkItemSchema,
  databaseRecordSchema,
  packItemSchema,
  headRecordSchema,
  quarantineRecordSchema,
  sha256Schema,
  snapshotRecordSchema,
  verificationRecordSchema,
  auditRecordSchema,
  walRecordSchema,
  type ChunkItem,
  type DatabaseRecord,
  type PackItem,
  type HeadRecord,
  type QuarantineRecord,
  type SnapshotRecord,
  type VerificationRecord,
  type AuditRecord,
  type WalRecord,
} from "../core/schemas.js";
import { headSortKey } from "../core/catalog-records.js";
import { GPOS_DIGITS, gposOfRecord, gposRange, isGenericWalName, parseGenericWalName, SEGMENT_FILE_RE, STREAM_ID_RE } from "../core/generic-wal.js";
import { DATABASE_ID_RE, timelineDir } from "../core/keys.js";
import { isLsn } from "../core/wal.js";
import type { Catalog, ChunkPage, DatabasePage, GenericWalRangeOptions, WalIndexBackfillPage, MarkUnreplicatedPage, PackLogPage, PackPage, RecordOutcome, SnapshotOutcome, UnreplicatedItem, UnreplicatedOptions, UnreplicatedPage, WalPage, WalRangeOptions, WalTimeline } from "./catalog.js";
import { SDK_LOGGER } from "./sdk-logger.js";

/** Key schema of the catalog table; infra/ mirrors it in the CDK stack. */
export const CATALOG_KEY_SCHEMA = {
  partitionKey: { name: "pk", type: "S" },
  sortKey: { name: "sk", type: "S" },
} as const;

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
const packLogEntrySchema = packItemSchema.pick({ name: true, recordedAt: true });
/** A pack log cursor or start: an ISO time, then `#<sha256>` for a cursor. */
const PACK_LOG_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
/** What a released claim's `until` becomes: before any time, so the next claim takes it at once. */
const RELEASED = "1970-01-01T00:00:00.000Z";

/** The attribute every WAL and snapshot item carries as the replication indexes' sort key: `<databaseId>#<sk>`. */
export const REPLICA_KEY_ATTRIBUTE = "replicaKey";
/** The attributes the replication indexes carry besides their keys (never changed once written: no index writes on updates). */
export const REPLICA_INDEX_PROJECTION = ["databaseId", "name", "snapshotId"] as const;
/** The value of a `pending:<region>` marker. */
export const REPLICA_PENDING = "pending";
/** Most records one listUnreplicated / markUnreplicated call returns or examines. */
export const UNREPLICATED_PAGE_MAX = 1000;
/** Region names the replication indexes accept (an index name allows [A-Za-z0-9_.-]). */
const REPLICA_REGION_RE = /^[a-z0-9][a-z0-9-]{0,49}$/;

/** The marker attribute of a region: present while the record is not replicated there. */
export function replicaPendingAttribute(region: string): string {
  return `pending:${region}`;
}

/** The sparse index of what `region` lacks. */
export function replicaIndexName(region: string): string {
  return `pending-${region}`;
}

/** The marker attributes a new WAL / snapshot item carries: replicaKey, and pending:<R> for each region not replicated. */
function replicaMarks(databaseId: string, sk: string, replicas: WalRecord["replicas"]): Item {
  const marks: Item = { [REPLICA_KEY_ATTRIBUTE]: `${databaseId}#${sk}` };
  for (const [region, st] of Object.entries(replicas)) if (st.status !== "replicated") marks[replicaPendingAttribute(region)] = REPLICA_PENDING;
  return marks;
}

/** The attribute a generic segment's item carries as the position index's sort key (core/generic-wal.ts gposOfRecord). */
export const GPOS_ATTRIBUTE = "gpos";
/** The sparse index of generic segments by stream and position (partition key pk, sort key gpos, projection ALL). */
export const GENERIC_WAL_INDEX = "gpos";
/** Most records one listGenericWalRange call returns. */
export const GENERIC_WAL_PAGE_MAX = 1000;
/** A listGenericWalRange cursor: the last record's position (20 digits) and file name. */
const GPOS_CURSOR_RE = /^(\d{20})#(.+)$/;

/** The position-index attribute a new WAL item carries: `gpos` for a generic segment, nothing otherwise. */
function gposMark(record: WalRecord): Item {
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
function outsideWalIndex(record: WalRecord): boolean {
  return record.kind === "segment" && !isGenericWalName(record.name) && !isLsn(record.startLsn);
}

/** DynamoDB's limits per BatchGetItem / BatchWriteItem request. */
export const BATCH_GET_MAX_KEYS = 100;
export const BATCH_WRITE_MAX_ITEMS = 25;
/** Batch requests one call keeps in flight. */
export const BATCH_CONCURRENCY = 4;

export function databasePk(databaseId: string): string {
  return `db#${databaseId}`;
}

/** The partition listing every registered database (no database id can make `db#<id>` equal it). */
export const REGISTRY_PK = "registry";
export const REGISTRY_SK_PREFIX = "db#";

export function registrySk(databaseId: string): string {
  return `${REGISTRY_SK_PREFIX}${databaseId}`;
}

/** Most registrations one listDatabasePage call returns. */
export const DATABASE_PAGE_MAX = 1000;
/** Most chunk or pack records one listChunkPage / listPackPage call returns. */
export const RECORD_PAGE_MAX = 1000;

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

/** Sort key of a WAL record by its name: generic `<stream>/<file>`, else by the timeline its name starts with. */
function walSkOfName(name: string): string | undefined {
  if (isGenericWalName(name)) {
    try {
      const g = parseGenericWalName(name);
      return `${CATALOG_SORT_KEYS.walPrefix}${g.stream}#${g.file}`;
    } catch {
      return undefined; // not a valid name: it can never have been recorded
    }
  }
  const timeline = timelineOfName(name);
  return timeline === undefined ? undefined : walSk(timeline, name);
}

/** Greatest timeline number (8 hex digits). */
const MAX_TIMELINE = 0xffffffff;
/** getHead's newest-first read of PostgreSQL WAL records: records a page, and most records read before giving up on finding a segment. */
const NEWEST_SEGMENT_PAGE = 8;
const NEWEST_SEGMENT_READS = 64;

/** A bound after every sort key of a timeline's WAL records (`$` follows `#`). */
function walTimelineEnd(timeline: number): string {
  return `${CATALOG_SORT_KEYS.walPrefix}${timelineDir(timeline)}$`;
}

/** The timeline of a PostgreSQL WAL record's sort key, wal#<8 upper hex>#<name>. */
function timelineOfSk(sk: string): number | undefined {
  const m = /^wal#([0-9A-F]{8})#/.exec(sk);
  return m?.[1] === undefined ? undefined : Number.parseInt(m[1], 16);
}

/** Timeline of a WAL file name (the first 8 hex digits of every kind walvault archives). */
function timelineOfName(name: string): number | undefined {
  const m = /^([0-9A-F]{8})/.exec(name);
  if (!m?.[1]) return undefined;
  const tli = Number.parseInt(m[1], 16);
  return tli > 0 ? tli : undefined;
}

export interface DynamoCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface DynamoCatalogOptions {
  tableName: string;
  region: string;
  /** Custom endpoint (DynamoDB Local), e.g. http://127.0.0.1:8000. */
  endpoint?: string;
  credentials?: DynamoCredentials;
  /** SDK attempts per call (default: SDK default, 3). */
  maxAttempts?: number;
  /** Query/Scan Limit per page (default: DynamoDB's 1 MB pages); small values exercise paging. */
  pageSize?: number;
  batchRetry?: BatchRetryOptions;
  /** Called once with the new SDK client, before any call; the client it returns is used (a tracer's capture). */
  instrument?: <C extends object>(client: C) => C;
}

/**
 * How batch calls retry the keys/items DynamoDB leaves unprocessed (under
 * throttling it may process only part of a batch, without an error).
 */
export interface BatchRetryOptions {
  /** Requests per batch, the first included, before giving up (default 8). */
  attempts?: number;
  /** First backoff; doubles each retry, with full jitter, capped at 2 s (default 50 ms). */
  baseDelayMs?: number;
}

export interface DynamoCatalogFromClient {
  tableName: string;
  client: DynamoDBClient;
  /** Endpoint or region text for messages. */
  where?: string;
  pageSize?: number;
  batchRetry?: BatchRetryOptions;
}


function errorName(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const name = (e as { name?: unknown }).name;
  return typeof name === "string" ? name : undefined;
}

function firstLine(e: unknown): string {
  if (e instanceof Error) return (e.message.split("\n")[0] ?? "").trim() || e.name;
  return String(e);
}

function isConditionFailed(e: unknown): boolean {
  return e instanceof ConditionalCheckFailedException || errorName(e) === "ConditionalCheckFailedException";
}

type Item = Record<string, unknown>;
/** A Query key condition on the sort key: a prefix, or a range with both ends included. */
type SortKeyCondition = { prefix: string } | { from: string; to: string };
type WriteRequests = NonNullable<BatchWriteCommandInput["RequestItems"]>[string];

/** A flat item (strings, finite numbers, booleans; undefined left out) in DynamoDB's wire form; undefined for anything else. */
function flatWireItem(item: Record<string, unknown>): Record<string, AttributeValue> | undefined {
  const out: Record<string, AttributeValue> = {};
  for (const k in item) {
    const v = item[k];
    if (typeof v === "string") out[k] = { S: v };
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) return undefined;
      out[k] = { N: String(v) };
    } else if (typeof v === "boolean") out[k] = { BOOL: v };
    else if (v !== undefined) return undefined;
  }
  return out;
}

/**
 * Write requests whose items are all flat (chunk, pack and key-only
 * records), in wire form: sent by the low-level client, without the
 * DocumentClient's walk over every key of the request, which took ~1.1 CPU-s
 * of PromotePacks for the 12,817 chunk records of a pgbench scale-100
 * snapshot (a profile in stop 35). Undefined when any item is not flat (the
 * DocumentClient marshals those).
 */
function flatWireRequests(all: WriteRequests): WireWriteRequest[] | undefined {
  const out: WireWriteRequest[] = [];
  for (const r of all) {
    if (r.PutRequest?.Item !== undefined) {
      const item = flatWireItem(r.PutRequest.Item);
      if (item === undefined) return undefined;
      out.push({ PutRequest: { Item: item } });
    } else if (r.DeleteRequest?.Key !== undefined) {
      const key = flatWireItem(r.DeleteRequest.Key);
      if (key === undefined) return undefined;
      out.push({ DeleteRequest: { Key: key } });
    } else return undefined;
  }
  return out;
}

function stripKeys(item: Item): Item {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest;
}

function short(sha256: string): string {
  return `${sha256.slice(0, 12)}…`;
}

export class DynamoCatalog implements Catalog {
  readonly tableName: string;
  /** Low-level client (createTable, DescribeTable...). */
  readonly client: DynamoDBClient;
  /** Document client used for items. */
  readonly doc: DynamoDBDocumentClient;
  private readonly where: string;
  private readonly pageSize: number | undefined;
  private readonly batchAttempts: number;
  private readonly batchBaseDelayMs: number;

  constructor(opts: DynamoCatalogOptions | DynamoCatalogFromClient) {
    this.tableName = opts.tableName;
    this.pageSize = opts.pageSize;
    this.batchAttempts = Math.max(1, Math.floor(opts.batchRetry?.attempts ?? 8));
    this.batchBaseDelayMs = Math.max(0, opts.batchRetry?.baseDelayMs ?? 50);
    if ("client" in opts) {
      this.client = opts.client;
      this.where = opts.where ?? "DynamoDB";
    } else {
      const client = new DynamoDBClient({
        region: opts.region,
        logger: SDK_LOGGER,
        ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
        ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
        ...(opts.maxAttempts === undefined ? {} : { maxAttempts: opts.maxAttempts }),
      });
      this.client = opts.instrument ? opts.instrument(client) : client;
      this.where = opts.endpoint ?? `region ${opts.region}`;
    }
    this.doc = DynamoDBDocumentClient.from(this.client, { marshallOptions: { removeUndefinedValues: true } });
  }

  // ------------------------------------------------------------- errors

  private fail(op: string, e: unknown): WalvaultError {
    if (isNetworkError(e)) {
      const local = this.where.startsWith("http://127.0.0.1") || this.where.startsWith("http://localhost");
      const hint = local ? " (is the local stack running? `walvault local up`)" : "";
      return new ServiceUnavailableError(`cannot reach DynamoDB at ${this.where}${hint}: ${firstLine(e)}`, { cause: e });
    }
    const name = errorName(e);
    if (name === "ResourceNotFoundException") {
      return new ConfigError(`DynamoDB table '${this.tableName}' does not exist at ${this.where}: ${firstLine(e)}`, { cause: e });
    }
    if (name === "CredentialsProviderError" || name === "UnrecognizedClientException" || name === "InvalidSignatureException") {
      return new ConfigError(`DynamoDB at ${this.where} rejected the credentials (${op}): ${firstLine(e)}`, { cause: e });
    }
    if (name === "AccessDeniedException") {
      return new ConfigError(`DynamoDB at ${this.where} denied ${op} on table '${this.tableName}': ${firstLine(e)}`, { cause: e });
    }
    if (name === "ValidationException") {
      return new CatalogFaultError(`DynamoDB rejected ${op} on table '${this.tableName}' as malformed (a walvault fault, not bad input): ${firstLine(e)}`, { cause: e });
    }
    return new ServiceUnavailableError(`DynamoDB ${op} on table '${this.tableName}' failed at ${this.where}: ${name ?? "error"}: ${firstLine(e)}`, {
      cause: e,
    });
  }

  private parse<S extends z.ZodTypeAny>(schema: S, item: Item, what: string): z.infer<S> {
    const result = schema.safeParse(stripKeys(item));
    if (!result.success) {
      throw new CatalogFaultError(
        `catalog item ${String(item.pk)} ${String(item.sk)} in table '${this.tableName}' is not a valid ${what}: ${result.error.issues
          .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
          .join("; ")}`,
        { cause: result.error },
      );
    }
    return result.data as z.infer<S>;
  }

  private check<S extends z.ZodTypeAny>(schema: S, value: unknown, what: string): z.infer<S> {
    const result = schema.safeParse(value);
    if (!result.success) {
      throw new InvalidInputError(
        `invalid ${what}: ${result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`,
        { cause: result.error },
      );
    }
    return result.data as z.infer<S>;
  }

  private async getItem(pk: string, sk: string, op: string): Promise<Item | undefined> {
    try {
      const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk, sk }, ConsistentRead: true }));
      return out.Item;
    } catch (e) {
      throw this.fail(op, e);
    }
  }

  /** Every item of `pk` whose sort key begins with `skPrefix`, across pages. */
  private queryAll(pk: string, skPrefix: string, op: string): Promise<Item[]> {
    return this.queryItems(pk, { prefix: skPrefix }, op, { forward: true });
  }

  /** Items of `pk` matching `cond`, in sort-key order (or reversed), at most `limit`, across pages. */
  private async queryItems(pk: string, cond: SortKeyCondition, op: string, opts: { limit?: number; forward: boolean }): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const left = opts.limit === undefined ? undefined : opts.limit - items.length;
      const out = await this.queryOnce(pk, cond, start, left === undefined ? this.pageSize : Math.min(left, this.pageSize ?? left), opts.forward, op);
      items.push(...out.items);
      start = out.start;
    } while (start !== undefined && (opts.limit === undefined || items.length < opts.limit));
    return items;
  }

  /**
   * One consistent Query page of the items of `pk` matching `cond`, after `start`;
   * `start` of the next page when more may follow. The one place a partition is queried.
   */
  private async queryOnce(pk: string, cond: SortKeyCondition, start: Item | undefined, limit: number | undefined, forward: boolean, op: string): Promise<{ items: Item[]; start?: Item }> {
    const range = "prefix" in cond
      ? { KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)", ExpressionAttributeValues: { ":pk": pk, ":prefix": cond.prefix } }
      : { KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to", ExpressionAttributeValues: { ":pk": pk, ":from": cond.from, ":to": cond.to } };
    let out;
    try {
      out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          ...range,
          ConsistentRead: true,
          ScanIndexForward: forward,
          ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          ...(limit === undefined ? {} : { Limit: limit }),
        }),
      );
    } catch (e) {
      throw this.fail(op, e);
    }
    return out.LastEvaluatedKey === undefined ? { items: out.Items ?? [] } : { items: out.Items ?? [], start: out.LastEvaluatedKey };
  }

  // ---------------------------------------------------------- databases

  async putDatabase(record: DatabaseRecord): Promise<void> {
    const { walIndex: _asked, ...checked } = this.check(databaseRecordSchema, record, "database record");
    // walIndex is the catalog's: kept from the stored registration, or set for a generic database with no WAL yet
    // (two reads, generic registrations only). A backfill's mark racing a re-registration can be lost: the backfill
    // then runs again (its writes are idempotent), never a flag on a database whose records lack the key.
    const r: DatabaseRecord = checked.kind === "generic" && (await this.walIndexComplete(checked.databaseId)) ? { ...checked, walIndex: "complete" } : checked;
    try {
      // One transaction: the registration and its registry entry are written together or not at all.
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: this.tableName, Item: { ...r, pk: databasePk(r.databaseId), sk: CATALOG_SORT_KEYS.meta } } },
            { Put: { TableName: this.tableName, Item: { ...r, pk: REGISTRY_PK, sk: registrySk(r.databaseId) } } },
          ],
        }),
      );
    } catch (e) {
      throw this.fail("TransactWriteItems (database registration)", e);
    }
  }

  /** Whether a generic registration of the database may say walIndex "complete": it says so already, or there is no WAL yet. */
  private async walIndexComplete(databaseId: string): Promise<boolean> {
    const pk = databasePk(databaseId);
    const existing = await this.getItem(pk, CATALOG_SORT_KEYS.meta, "GetItem (database)");
    if (existing?.walIndex === "complete") return true;
    const wal = await this.queryOnce(pk, { prefix: CATALOG_SORT_KEYS.walPrefix }, undefined, 1, true, "Query (any WAL)");
    return wal.items.length === 0;
  }

  /**
   * Removes a registration's walIndex mark (and its registry copy's), if it
   * has one: a record the index cannot hold was written (recordWal). A read,
   * then one transaction only when marked.
   */
  private async unmarkWalIndex(databaseId: string): Promise<void> {
    const pk = databasePk(databaseId);
    const existing = await this.getItem(pk, CATALOG_SORT_KEYS.meta, "GetItem (database)");
    if (existing?.walIndex === undefined) return;
    const unmark = (key: Item) => ({ Update: { TableName: this.tableName, Key: key, UpdateExpression: "REMOVE walIndex", ConditionExpression: "attribute_exists(pk)" } });
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: [unmark({ pk, sk: CATALOG_SORT_KEYS.meta }), unmark({ pk: REGISTRY_PK, sk: registrySk(databaseId) })] }));
    } catch (e) {
      if (errorName(e) === "TransactionCanceledException") {
        // No registry copy (a catalog from before the registry): the registration itself must not stay marked.
        await this.doc.send(new UpdateCommand({ TableName: this.tableName, Key: { pk, sk: CATALOG_SORT_KEYS.meta }, UpdateExpression: "REMOVE walIndex" })).catch((e2: unknown) => {
          throw this.fail("UpdateItem (unmark WAL index)", e2);
        });
        return;
      }
      throw this.fail("TransactWriteItems (unmark WAL index)", e);
    }
  }

  async getDatabase(databaseId: string): Promise<DatabaseRecord | undefined> {
    const item = await this.getItem(databasePk(databaseId), CATALOG_SORT_KEYS.meta, "GetItem (database)");
    return item === undefined ? undefined : this.parse(databaseRecordSchema, item, "database record");
  }

  async listDatabases(): Promise<DatabaseRecord[]> {
    const records: DatabaseRecord[] = [];
    let after: string | undefined;
    do {
      const page = await this.listDatabasePage(after, this.pageSize === undefined ? undefined : Math.min(this.pageSize, DATABASE_PAGE_MAX));
      records.push(...page.databases);
      after = page.next;
    } while (after !== undefined);
    return records;
  }

  async listDatabasePage(after?: string, limit?: number): Promise<DatabasePage> {
    if (after !== undefined && !DATABASE_ID_RE.test(after)) {
      throw new InvalidInputError(`database listing cursor '${after}' is not a database id`);
    }
    const page = await this.queryPage(REGISTRY_PK, REGISTRY_SK_PREFIX, after, limit, DATABASE_PAGE_MAX, "database");
    // Sort keys are db#<id>, ids of [a-z0-9-]: the Query's byte order is the ids' order.
    const databases = page.items.map((item) => this.parse(databaseRecordSchema, item, "database registry entry"));
    return page.last === undefined ? { databases } : { databases, next: page.last };
  }

  // ---------------------------------------------------------------- WAL

  async recordWal(record: WalRecord): Promise<RecordOutcome> {
    const r = this.check(walRecordSchema, record, "WAL record");
    if (isGenericWalName(r.name)) {
      parseGenericWalName(r.name);
      if (r.timeline !== 1) throw new InvalidInputError(`generic WAL record ${r.name} for database ${r.databaseId} claims timeline ${r.timeline}; generic streams have timeline 1`);
    } else if (timelineOfName(r.name) !== r.timeline) {
      throw new InvalidInputError(`WAL record ${r.name} for database ${r.databaseId} claims timeline ${r.timeline}, which its name does not start with`);
    }
    const pk = databasePk(r.databaseId);
    const sk = walSkOfName(r.name)!;
    // A write that loses to a concurrent writer reads the winner; if the winner vanished in between, try again once.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...r, ...replicaMarks(r.databaseId, sk, r.replicas), ...gposMark(r), pk, sk },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
        if (outsideWalIndex(r)) await this.unmarkWalIndex(r.databaseId);
        return { outcome: "created", record: r };
      } catch (e) {
        if (!isConditionFailed(e)) throw this.fail("PutItem (WAL)", e);
      }
      const existingItem = await this.getItem(pk, sk, "GetItem (WAL)");
      if (existingItem === undefined) continue;
      const existing = this.parse(walRecordSchema, existingItem, "WAL record");
      if (existing.sha256 === r.sha256) return { outcome: "duplicate", record: existing };
      throw new SegmentConflictError(
        `${r.name} is already archived for database ${r.databaseId} with different contents ` +
          `(archived sha256 ${short(existing.sha256)}, pushed sha256 ${short(r.sha256)}); the archived copy was kept`,
      );
    }
    throw new ConcurrentUpdateError(
      `${r.name} for database ${r.databaseId} changed while it was being recorded; retry the push`,
    );
  }

  async getWal(databaseId: string, name: string): Promise<WalRecord | undefined> {
    const sk = walSkOfName(name);
    if (sk === undefined) return undefined; // not a WAL file name: it can never have been recorded
    const item = await this.getItem(databasePk(databaseId), sk, "GetItem (WAL)");
    return item === undefined ? undefined : this.parse(walRecordSchema, item, "WAL record");
  }

  async listWal(databaseId: string): Promise<WalRecord[]> {
    const items = await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.walPrefix, "Query (WAL)");
    return items.map((item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async listWalPage(databaseId: string, after?: string, limit?: number): Promise<WalPage> {
    const sk = after === undefined ? undefined : walSkOfName(after);
    if (after !== undefined && sk === undefined) throw new InvalidInputError(`WAL listing cursor '${after}' of database ${databaseId} is not a WAL name`);
    const prefix = CATALOG_SORT_KEYS.walPrefix;
    const { items, last } = await this.queryPage(databasePk(databaseId), prefix, sk?.slice(prefix.length), limit, RECORD_PAGE_MAX, "WAL record");
    const records = items.map((item) => this.parse(walRecordSchema, item, "WAL record"));
    return last === undefined || records.length === 0 ? { records } : { records, next: records.at(-1)!.name };
  }

  // WAL ranges for planning (store/catalog-state.ts loadPlanningState): Queries on a sort-key range of one timeline.

  async listWalRange(databaseId: string, timeline: number, fromName: string, toName: string | undefined, options: WalRangeOptions = {}): Promise<WalRecord[]> {
    if (!Number.isInteger(timeline) || timeline < 1 || timeline > MAX_TIMELINE) {
      throw new InvalidInputError(`WAL range of database ${databaseId}: timeline ${String(timeline)} is not a timeline number`);
    }
    const { limit, newestFirst = false } = options;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw new InvalidInputError(`WAL range of database ${databaseId}: limit ${String(limit)} is not a positive integer`);
    }
    if (toName !== undefined && toName < fromName) return [];
    const to = toName === undefined ? walTimelineEnd(timeline) : walSk(timeline, toName);
    const items = await this.queryItems(databasePk(databaseId), { from: walSk(timeline, fromName), to }, "Query (WAL range)", { ...(limit === undefined ? {} : { limit }), forward: !newestFirst });
    return items.map((item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async listGenericWalRange(databaseId: string, stream: string, fromPosition: bigint, toPosition: bigint | undefined, options: GenericWalRangeOptions = {}): Promise<WalPage> {
    const what = `generic WAL range of database ${databaseId}`;
    if (!STREAM_ID_RE.test(stream)) throw new InvalidInputError(`${what}: '${stream}' is not a WAL stream id`);
    const { limit = GENERIC_WAL_PAGE_MAX, after } = options;
    if (!Number.isInteger(limit) || limit < 1 || limit > GENERIC_WAL_PAGE_MAX) {
      throw new InvalidInputError(`${what}: page size ${String(limit)} is not an integer from 1 to ${GENERIC_WAL_PAGE_MAX}`);
    }
    const pk = databasePk(databaseId);
    let start: Item | undefined;
    if (after !== undefined) {
      const m = GPOS_CURSOR_RE.exec(after);
      if (!m || !SEGMENT_FILE_RE.test(m[2]!)) throw new InvalidInputError(`${what}: cursor '${after}' is not one this listing returned`);
      start = { pk, sk: `${CATALOG_SORT_KEYS.walPrefix}${stream}#${m[2]!}`, [GPOS_ATTRIBUTE]: `${stream}#${m[1]!}` };
    }
    const range = gposRange(stream, fromPosition, toPosition);
    if (range === undefined) return { records: [] };
    const records: WalRecord[] = [];
    let last: Item | undefined;
    do {
      const out = await this.queryIndexPage(
        {
          IndexName: GENERIC_WAL_INDEX,
          KeyConditionExpression: "pk = :pk AND #gpos BETWEEN :from AND :to",
          ExpressionAttributeNames: { "#gpos": GPOS_ATTRIBUTE },
          ExpressionAttributeValues: { ":pk": pk, ":from": range.from, ":to": range.to },
          ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          Limit: Math.min(limit - records.length, this.pageSize ?? limit),
        },
        "Query (generic WAL range)",
        `catalog table '${this.tableName}' at ${this.where} has no index ${GENERIC_WAL_INDEX} (generic WAL by position): createTable adds it, the stack defines it`,
      );
      for (const item of out.Items ?? []) {
        records.push(this.parse(walRecordSchema, item, "WAL record"));
        last = item;
      }
      start = out.LastEvaluatedKey;
    } while (start !== undefined && records.length < limit);
    if (start === undefined || last === undefined) return { records };
    const gpos = String(last[GPOS_ATTRIBUTE]);
    const sk = String(last.sk);
    return { records, next: `${gpos.slice(-GPOS_DIGITS)}#${sk.slice(sk.lastIndexOf("#") + 1)}` };
  }

  async listGenericWalNewest(databaseId: string, stream: string, limit: number): Promise<WalRecord[]> {
    if (!STREAM_ID_RE.test(stream)) throw new InvalidInputError(`newest generic WAL of database ${databaseId}: '${stream}' is not a WAL stream id`);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new InvalidInputError(`newest generic WAL of database ${databaseId}: limit ${String(limit)} is not an integer from 1 to 100`);
    const items = await this.queryItems(databasePk(databaseId), { prefix: `${CATALOG_SORT_KEYS.walPrefix}${stream}#` }, "Query (newest generic WAL)", { limit, forward: false });
    return items.map((item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async backfillWalIndex(databaseId: string, after?: string, limit?: number): Promise<WalIndexBackfillPage> {
    const max = this.checkPageLimit(limit, "WAL records to index");
    const walEnd = "wal$";
    if (after !== undefined && (!after.startsWith(CATALOG_SORT_KEYS.walPrefix) || after > walEnd)) {
      throw new InvalidInputError(`WAL index backfill cursor '${after}' of database ${databaseId} is not one backfillWalIndex returned`);
    }
    const database = await this.getDatabase(databaseId);
    if (database === undefined) throw new NotFoundError(`database '${databaseId}' is not registered: no WAL index to build`);
    if (database.kind !== "generic") throw new InvalidInputError(`database '${databaseId}' is a PostgreSQL database: its WAL names sort by position, it has no position index`);
    if (database.walIndex === "complete") return { examined: 0, updated: 0, marked: true };
    const pk = databasePk(databaseId);
    let examined = 0;
    let updated = 0;
    let cursor = after;
    let start: Item | undefined = after === undefined ? undefined : { pk, sk: after };
    do {
      const out = await this.queryOnce(pk, { from: CATALOG_SORT_KEYS.walPrefix, to: walEnd }, start, Math.min(max - examined, this.pageSize ?? max), true, "Query (WAL to index)");
      examined += out.items.length;
      const missing: { sk: string; gpos: string }[] = [];
      for (const item of out.items) {
        const record = this.parse(walRecordSchema, item, "WAL record");
        if (record.kind !== "segment") continue;
        const gpos = gposOfRecord(record);
        if (gpos === undefined) {
          return { examined, updated, refused: `WAL record ${record.name} of database ${databaseId} cannot carry a position key (not a <stream>/<file> name with a position): the database stays read by pages` };
        }
        if (item[GPOS_ATTRIBUTE] !== gpos) missing.push({ sk: String(item.sk), gpos });
      }
      await inParallel(missing, BATCH_CONCURRENCY, async ({ sk, gpos }) => {
        const done = await this.conditional(
          () =>
            this.doc.send(
              new UpdateCommand({
                TableName: this.tableName,
                Key: { pk, sk },
                UpdateExpression: "SET #gpos = :gpos",
                ConditionExpression: "attribute_exists(pk)",
                ExpressionAttributeNames: { "#gpos": GPOS_ATTRIBUTE },
                ExpressionAttributeValues: { ":gpos": gpos },
              }),
            ),
          "UpdateItem (WAL position key)",
        );
        if (done) updated++;
      });
      const last = out.items.at(-1)?.sk;
      if (typeof last === "string") cursor = last;
      start = out.start;
    } while (start !== undefined && examined < max);
    if (start !== undefined && cursor !== undefined) return { examined, updated, next: cursor };
    // Every WAL record examined carries its key: the registration (and its registry copy) says so, unless it changed kind meanwhile.
    try {
      const mark = (key: Item) => ({
        Update: {
          TableName: this.tableName,
          Key: key,
          UpdateExpression: "SET walIndex = :complete",
          ConditionExpression: "attribute_exists(pk) AND kind = :generic",
          ExpressionAttributeValues: { ":complete": "complete", ":generic": "generic" },
        },
      });
      await this.doc.send(new TransactWriteCommand({ TransactItems: [mark({ pk, sk: CATALOG_SORT_KEYS.meta }), mark({ pk: REGISTRY_PK, sk: registrySk(databaseId) })] }));
    } catch (e) {
      if (errorName(e) === "TransactionCanceledException") return { examined, updated, refused: `the registration of database '${databaseId}' changed while its WAL index was built, or is not listed in the registry (register it again): run it again` };
      throw this.fail("TransactWriteItems (mark WAL index complete)", e);
    }
    return { examined, updated, marked: true };
  }

  async listWalTimelines(databaseId: string): Promise<WalTimeline[]> {
    // A skip scan: the first item at or after each timeline's sort keys. `<tl>.history` sorts before every other
    // name of its timeline ('.' < '0'), so that item is the history file when one is archived.
    const out: WalTimeline[] = [];
    for (let next = 1; next <= MAX_TIMELINE; ) {
      const [item] = await this.queryItems(databasePk(databaseId), { from: `${CATALOG_SORT_KEYS.walPrefix}${timelineDir(next)}#`, to: walTimelineEnd(MAX_TIMELINE) }, "Query (WAL timelines)", { limit: 1, forward: true });
      const timeline = item === undefined ? undefined : timelineOfSk(String(item.sk));
      if (item === undefined || timeline === undefined) break; // no more timelines (or a generic stream's key: no timelines there)
      const record = this.parse(walRecordSchema, item, "WAL record");
      out.push(record.kind === "history" ? { timeline, history: record } : { timeline });
      next = timeline + 1;
    }
    return out;
  }

  async setReplicaStatus(
    databaseId: string,
    name: string,
    region: string,
    status: WalRecord["replicas"][string],
  ): Promise<void> {
    const what = `WAL record ${name}`;
    await this.updateReplica(databaseId, walSkOfName(name), region, status, what);
  }

  async setSnapshotReplicaStatus(databaseId: string, snapshotId: string, region: string, status: SnapshotRecord["replicas"][string]): Promise<void> {
    await this.updateReplica(databaseId, snapshotId.length === 0 ? undefined : snapshotSk(snapshotId), region, status, `snapshot record ${snapshotId}`);
  }

  /**
   * Sets replicas[region] on an existing item; "failed"/"pending" never replace "replicated".
   * The same write keeps the region's marker: removed with "replicated", set (with replicaKey) otherwise.
   */
  private async updateReplica(databaseId: string, sk: string | undefined, region: string, status: WalRecord["replicas"][string], what: string): Promise<void> {
    const missing = (cause?: unknown): NotFoundError =>
      new NotFoundError(`no ${what} for database ${databaseId} to set the ${region} replica status on`, { cause });
    if (sk === undefined) throw missing();
    const value = this.check(walRecordSchema.shape.replicas.element, status, "replica status");
    const keep = value.status !== "replicated";
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: databasePk(databaseId), sk },
          UpdateExpression: keep ? "SET replicas.#region = :status, #pend = :pending, #rk = :rk" : "SET replicas.#region = :status REMOVE #pend",
          ConditionExpression: keep
            ? "attribute_exists(pk) AND (attribute_not_exists(replicas.#region) OR replicas.#region.#st <> :replicated)"
            : "attribute_exists(pk)",
          ExpressionAttributeNames: { "#region": region, "#pend": replicaPendingAttribute(region), ...(keep ? { "#st": "status", "#rk": REPLICA_KEY_ATTRIBUTE } : {}) },
          ExpressionAttributeValues: {
            ":status": value,
            ...(keep ? { ":replicated": "replicated", ":pending": REPLICA_PENDING, ":rk": `${databaseId}#${sk}` } : {}),
          },
        }),
      );
    } catch (e) {
      if (!isConditionFailed(e)) throw this.fail("UpdateItem (replica status)", e);
      // Either the item does not exist, or it is already replicated there (and stays so).
      const item = await this.getItem(databasePk(databaseId), sk, "GetItem (replica status)");
      if (item === undefined) throw missing(e);
    }
  }

  // -------------------------------------------------- what a region lacks

  private checkReplicaRegion(region: string): string {
    if (!REPLICA_REGION_RE.test(region)) throw new InvalidInputError(`'${region}' is not a replica region name`);
    return region;
  }

  private checkPageLimit(limit: number | undefined, what: string): number {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > UNREPLICATED_PAGE_MAX)) {
      throw new InvalidInputError(`${what} page size ${limit} is not an integer from 1 to ${UNREPLICATED_PAGE_MAX}`);
    }
    return limit ?? UNREPLICATED_PAGE_MAX;
  }

  async listUnreplicated(region: string, options: UnreplicatedOptions = {}): Promise<UnreplicatedPage> {
    this.checkReplicaRegion(region);
    const limit = this.checkPageLimit(options.limit, "unreplicated records");
    const { databaseId, after } = options;
    if (databaseId !== undefined && !DATABASE_ID_RE.test(databaseId)) throw new InvalidInputError(`'${databaseId}' is not a database id`);
    const pend = replicaPendingAttribute(region);
    let start: Item | undefined;
    if (after !== undefined) {
      const m = /^([a-z0-9-]+)#((?:wal|snap)#.+)$/.exec(after);
      if (!m || !DATABASE_ID_RE.test(m[1]!) || (databaseId !== undefined && m[1] !== databaseId)) {
        throw new InvalidInputError(`unreplicated records cursor '${after}' is not one this listing returned`);
      }
      start = { [pend]: REPLICA_PENDING, [REPLICA_KEY_ATTRIBUTE]: after, pk: databasePk(m[1]!), sk: m[2]! };
    }
    const items: UnreplicatedItem[] = [];
    let lastKey: string | undefined;
    do {
      const out = await this.queryIndexPage(
        {
          IndexName: replicaIndexName(region),
          KeyConditionExpression: databaseId === undefined ? "#pend = :pending" : "#pend = :pending AND begins_with(#rk, :prefix)",
          ExpressionAttributeNames: { "#pend": pend, ...(databaseId === undefined ? {} : { "#rk": REPLICA_KEY_ATTRIBUTE }) },
          ExpressionAttributeValues: { ":pending": REPLICA_PENDING, ...(databaseId === undefined ? {} : { ":prefix": `${databaseId}#` }) },
          ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          Limit: Math.min(limit - items.length, this.pageSize ?? limit),
        },
        "Query (unreplicated records)",
        `catalog table '${this.tableName}' at ${this.where} has no index ${replicaIndexName(region)}: is ${region} a configured replica region? ` +
          `(the stacks create one per replica region; the local stack at start)`,
      );
      for (const item of out.Items ?? []) {
        const sk = String(item.sk);
        const db = String(item.databaseId);
        items.push(sk.startsWith(CATALOG_SORT_KEYS.snapshotPrefix) ? { databaseId: db, snapshotId: String(item.snapshotId) } : { databaseId: db, name: String(item.name) });
        lastKey = String(item[REPLICA_KEY_ATTRIBUTE]);
      }
      start = out.LastEvaluatedKey;
    } while (start !== undefined && items.length < limit);
    return start === undefined || lastKey === undefined ? { items } : { items, next: lastKey };
  }

  /** One Query page of a secondary index; a table without that index is a ConfigError saying `missing`, any other failure as fail(`what`). */
  private async queryIndexPage(input: Omit<QueryCommandInput, "TableName">, what: string, missing: string): Promise<QueryCommandOutput> {
    try {
      return await this.doc.send(new QueryCommand({ TableName: this.tableName, ...input }));
    } catch (e) {
      if (errorName(e) === "ValidationException" && /index/i.test(firstLine(e))) throw new ConfigError(missing, { cause: e });
      throw this.fail(what, e);
    }
  }

  async markUnreplicated(databaseId: string, region: string, after?: string, limit?: number): Promise<MarkUnreplicatedPage> {
    this.checkReplicaRegion(region);
    const max = this.checkPageLimit(limit, "records to mark");
    if (after !== undefined && !after.startsWith(CATALOG_SORT_KEYS.snapshotPrefix) && !after.startsWith(CATALOG_SORT_KEYS.walPrefix)) {
      throw new InvalidInputError(`marking cursor '${after}' is not one markUnreplicated returned`);
    }
    const pk = databasePk(databaseId);
    const pend = replicaPendingAttribute(region);
    // Snapshot items, then WAL items: two sort-key ranges ('$' follows '#'), nothing else of the database.
    const ranges: [string, string][] = [
      [CATALOG_SORT_KEYS.snapshotPrefix, "snap$"],
      [CATALOG_SORT_KEYS.walPrefix, "wal$"],
    ];
    let examined = 0;
    let marked = 0;
    let cursor = after;
    for (const [i, [from, to]] of ranges.entries()) {
      if (cursor !== undefined && cursor > to) continue;
      let start: Item | undefined = cursor !== undefined && cursor >= from ? { pk, sk: cursor } : undefined;
      do {
        const out = await this.queryOnce(pk, { from, to }, start, Math.min(max - examined, this.pageSize ?? max), true, "Query (records to mark)");
        const page = out.items;
        examined += page.length;
        const unmarked = page.filter((item) => item[pend] === undefined && (item.replicas as WalRecord["replicas"] | undefined)?.[region]?.status !== "replicated");
        await inParallel(unmarked, BATCH_CONCURRENCY, async (item) => {
          const sk = String(item.sk);
          const done = await this.conditional(
            () =>
              this.doc.send(
                new UpdateCommand({
                  TableName: this.tableName,
                  Key: { pk, sk },
                  UpdateExpression: "SET replicas.#region = if_not_exists(replicas.#region, :status), #pend = :pending, #rk = :rk",
                  ConditionExpression: "attribute_exists(pk) AND (attribute_not_exists(replicas.#region) OR replicas.#region.#st <> :replicated)",
                  ExpressionAttributeNames: { "#region": region, "#pend": pend, "#st": "status", "#rk": REPLICA_KEY_ATTRIBUTE },
                  ExpressionAttributeValues: {
                    ":status": { status: "pending", at: new Date().toISOString() },
                    ":pending": REPLICA_PENDING,
                    ":replicated": "replicated",
                    ":rk": `${databaseId}#${sk}`,
                  },
                }),
              ),
            "UpdateItem (mark unreplicated)",
          );
          if (done) marked++;
        });
        const last = page.at(-1)?.sk;
        if (typeof last === "string") cursor = last;
        start = out.start;
      } while (start !== undefined && examined < max);
      if (examined >= max) {
        const more = start !== undefined || i < ranges.length - 1;
        return more && cursor !== undefined ? { examined, marked, next: cursor } : { examined, marked };
      }
    }
    return { examined, marked };
  }

  // --------------------------------------------------------------- head

  async advanceHead(databaseId: string, name: string, sortKey: string, archivedAt: string): Promise<void> {
    const head = this.check(
      headRecordSchema,
      { databaseId, lastName: name, lastSortKey: sortKey, lastArchivedAt: archivedAt },
      "head",
    );
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: databasePk(databaseId), sk: CATALOG_SORT_KEYS.head },
          UpdateExpression: "SET databaseId = :db, lastName = :name, lastSortKey = :sk, lastArchivedAt = :at",
          ConditionExpression: "attribute_not_exists(lastSortKey) OR lastSortKey < :sk",
          ExpressionAttributeValues: {
            ":db": head.databaseId,
            ":name": head.lastName,
            ":sk": head.lastSortKey,
            ":at": head.lastArchivedAt,
          },
        }),
      );
    } catch (e) {
      if (isConditionFailed(e)) return; // the head is already at or past this record
      throw this.fail("UpdateItem (head)", e);
    }
  }

  async getHead(databaseId: string): Promise<HeadRecord | undefined> {
    const newest = await this.newestPostgresSegment(databaseId);
    // A segment with an LSN (newestPostgresSegment's rule) always has a head sort key.
    if (newest) return { databaseId, lastName: newest.name, lastSortKey: headSortKey(newest)!, lastArchivedAt: newest.archivedAt };
    const item = await this.getItem(databasePk(databaseId), CATALOG_SORT_KEYS.head, "GetItem (head)");
    return item === undefined ? undefined : this.parse(headRecordSchema, item, "head");
  }

  /**
   * The PostgreSQL segment with the greatest sort key (timeline, then
   * position): the records themselves, read newest first a page of
   * NEWEST_SEGMENT_PAGE at a time past the history files, backup labels and
   * `.partial` files that may sort above it, at most NEWEST_SEGMENT_READS
   * records. Undefined for a database with none, or whose newest such
   * segment has no LSN (a generic one).
   */
  private async newestPostgresSegment(databaseId: string): Promise<WalRecord | undefined> {
    const range = { from: walSk(0, ""), to: walTimelineEnd(MAX_TIMELINE) };
    let start: Item | undefined;
    for (let read = 0; read < NEWEST_SEGMENT_READS; ) {
      const out = await this.queryOnce(databasePk(databaseId), range, start, NEWEST_SEGMENT_PAGE, false, "Query (newest WAL segment)");
      for (const item of out.items) {
        const record = this.parse(walRecordSchema, item, "WAL record");
        if (record.kind !== "segment" || isGenericWalName(record.name)) continue;
        // A generic database's records written before `<stream>/<file>` names have PostgreSQL-like names but a
        // position, not an LSN: its head is the stored item.
        return isLsn(record.startLsn) ? record : undefined;
      }
      read += out.items.length;
      if (out.start === undefined) return undefined;
      start = out.start;
    }
    return undefined;
  }

  // --------------------------------------------------------- quarantine

  async recordQuarantine(record: QuarantineRecord): Promise<void> {
    const r = this.check(quarantineRecordSchema, record, "quarantine record");
    const sk = `${CATALOG_SORT_KEYS.quarantinePrefix}${r.name}#${r.at}#${randomBytes(6).toString("hex")}`;
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...r, pk: databasePk(r.databaseId), sk },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
    } catch (e) {
      throw this.fail("PutItem (quarantine)", e);
    }
  }

  async listQuarantine(databaseId: string, name?: string): Promise<QuarantineRecord[]> {
    const prefix = `${CATALOG_SORT_KEYS.quarantinePrefix}${name === undefined ? "" : `${name}#`}`;
    const items = await this.queryAll(databasePk(databaseId), prefix, "Query (quarantine)");
    const keyed = items.map((item) => ({ sk: String(item.sk), record: this.parse(quarantineRecordSchema, item, "quarantine record") }));
    // A name containing '#' could share a prefix with another name: keep exact matches only.
    const matching = name === undefined ? keyed : keyed.filter((k) => k.record.name === name);
    // Newest last: by time, then by key for a stable order within one instant.
    matching.sort((a, b) => compareTime(a.record.at, b.record.at) || (a.sk < b.sk ? -1 : a.sk > b.sk ? 1 : 0));
    return matching.map((k) => k.record);
  }

  // ------------------------------------------------------------- chunks

  /** Waits before retry number `retry` (1-based) of unprocessed batch work: full jitter, exponential, capped. */
  private async backoff(retry: number): Promise<void> {
    const ceiling = Math.min(2_000, this.batchBaseDelayMs * 2 ** (retry - 1));
    const ms = Math.random() * ceiling;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  /** Distinct hashes in input order (of first appearance), each checked to be a SHA-256. */
  private uniqueHashes(databaseId: string, sha256s: readonly string[]): string[] {
    const unique: string[] = [];
    const seen = new Set<string>();
    for (const h of sha256s) {
      if (seen.has(h)) continue;
      seen.add(h);
      unique.push(this.check(sha256Schema, h, `chunk hash '${String(h)}' for database ${databaseId}`));
    }
    return unique;
  }

  /**
   * BatchGetItem of the chunk items of these (distinct) hashes, <= 100 keys per
   * request, a few requests in flight, unprocessed keys retried with backoff;
   * `onItem` sees every item found. `keysOnly` fetches the sort key alone.
   */
  private async batchGetChunks(databaseId: string, unique: readonly string[], keysOnly: boolean, onItem: (item: Item) => void, sk: (h: string) => string = chunkSk, what = "chunk"): Promise<void> {
    const pk = databasePk(databaseId);
    const batches: string[][] = [];
    for (let i = 0; i < unique.length; i += BATCH_GET_MAX_KEYS) batches.push(unique.slice(i, i + BATCH_GET_MAX_KEYS));

    await inParallel(batches, BATCH_CONCURRENCY, async (batch) => {
      let keys: Record<string, unknown>[] = batch.map((h) => ({ pk, sk: sk(h) }));
      for (let attempt = 1; ; attempt++) {
        let out;
        try {
          out = await this.doc.send(
            new BatchGetCommand({
              RequestItems: {
                [this.tableName]: {
                  Keys: keys,
                  ...(keysOnly ? { ProjectionExpression: "#sk", ExpressionAttributeNames: { "#sk": "sk" } } : {}),
                  ConsistentRead: true,
                },
              },
            }),
          );
        } catch (e) {
          throw this.fail(`BatchGetItem (${what}s)`, e);
        }
        for (const item of out.Responses?.[this.tableName] ?? []) onItem(item);
        const left = out.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
        if (left.length === 0) return;
        if (attempt >= this.batchAttempts) {
          throw new ServiceUnavailableError(
            `DynamoDB left ${left.length} of ${batch.length} ${what} keys of database ${databaseId} unprocessed ` +
              `after ${attempt} BatchGetItem requests on table '${this.tableName}' at ${this.where} (throttled?); retry later`,
          );
        }
        keys = left;
        await this.backoff(attempt);
      }
    });
  }

  async missingChunks(databaseId: string, sha256s: readonly string[]): Promise<string[]> {
    const unique = this.uniqueHashes(databaseId, sha256s);
    if (unique.length === 0) return [];
    const present = new Set<string>();
    await this.batchGetChunks(databaseId, unique, true, (item) => {
      const sk = item.sk;
      if (typeof sk === "string" && sk.startsWith(CATALOG_SORT_KEYS.chunkPrefix)) {
        present.add(sk.slice(CATALOG_SORT_KEYS.chunkPrefix.length));
      }
    });
    return unique.filter((h) => !present.has(h));
  }

  async getChunks(databaseId: string, sha256s: readonly string[]): Promise<ChunkItem[]> {
    const unique = this.uniqueHashes(databaseId, sha256s);
    if (unique.length === 0) return [];
    const found = new Map<string, ChunkItem>();
    await this.batchGetChunks(databaseId, unique, false, (item) => {
      const record = this.parse(chunkItemSchema, item, "chunk record");
      found.set(record.sha256, record);
    });
    return unique.flatMap((h) => {
      const r = found.get(h);
      return r === undefined ? [] : [r];
    });
  }

  async recordChunks(records: readonly ChunkItem[]): Promise<void> {
    await this.putEach(records, chunkItemSchema, "chunk record", (r) => chunkSk(r.sha256));
  }

  /** Puts content-addressed items in batches; BatchWriteItem rejects a request naming one key twice, so the last record per key is kept. */
  private async putEach<T extends { databaseId: string }>(records: readonly T[], schema: z.ZodType<T>, what: string, sk: (r: T) => string): Promise<void> {
    const byKey = new Map<string, { pk: string; sk: string; record: T }>();
    for (const record of records) {
      const r = this.check(schema, record, what);
      const key = { pk: databasePk(r.databaseId), sk: sk(r) };
      byKey.set(`${key.pk} ${key.sk}`, { ...key, record: r });
    }
    await this.batchWriteAll(
      [...byKey.values()].map(({ pk, sk: s, record }) => ({ PutRequest: { Item: { ...record, pk, sk: s } } })),
      `${what}s`,
    );
  }

  async listChunks(databaseId: string): Promise<ChunkItem[]> {
    const items = await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.chunkPrefix, "Query (chunks)");
    return items.map((item) => this.parse(chunkItemSchema, item, "chunk record"));
  }

  async listChunkPage(databaseId: string, after?: string, limit?: number): Promise<ChunkPage> {
    const { items, last } = await this.recordPage(databaseId, CATALOG_SORT_KEYS.chunkPrefix, after, limit, "chunk");
    const chunks = items.map((item) => this.parse(chunkItemSchema, item, "chunk record"));
    return last === undefined ? { chunks } : { chunks, next: last };
  }

  /**
   * One Query page of the items of `pk` under `prefix` whose sort key after
   * the prefix sorts after `after` (the caller checked it), at most `limit`
   * (1 to `max`, default `max`); `last` is the last item's sort key after the
   * prefix when more may follow.
   */
  private async queryPage(pk: string, prefix: string, after: string | undefined, limit: number | undefined, max: number, what: string): Promise<{ items: Item[]; last?: string }> {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > max)) {
      throw new InvalidInputError(`${what} page size ${limit} is not an integer from 1 to ${max}`);
    }
    const out = await this.queryOnce(pk, { prefix }, after === undefined ? undefined : { pk, sk: `${prefix}${after}` }, limit ?? max, true, `Query (${what}s)`);
    const items = out.items;
    const lastSk = items.at(-1)?.sk;
    return out.start === undefined || typeof lastSk !== "string" ? { items } : { items, last: lastSk.slice(prefix.length) };
  }

  /** One page of a database's content-addressed records (chunks, packs), after the hash `after`. */
  private async recordPage(databaseId: string, prefix: string, after: string | undefined, limit: number | undefined, what: string): Promise<{ items: Item[]; last?: string }> {
    if (after !== undefined) this.check(sha256Schema, after, `${what} listing cursor`);
    return this.queryPage(databasePk(databaseId), prefix, after, limit, RECORD_PAGE_MAX, what);
  }

  async movePackedChunks(records: readonly ChunkItem[], fromVaultKey: string): Promise<string[]> {
    const checked = records.map((r) => this.check(chunkItemSchema, r, "chunk record"));
    const moved: string[] = [];
    await inParallel(checked, BATCH_CONCURRENCY, async (r) => {
      if (await this.conditional(() => this.doc.send(new PutCommand({ TableName: this.tableName, Item: { ...r, pk: databasePk(r.databaseId), sk: chunkSk(r.sha256) }, ConditionExpression: "vaultKey = :from", ExpressionAttributeValues: { ":from": fromVaultKey } })), "PutItem (move chunk)")) {
        moved.push(r.sha256);
      }
    });
    return moved;
  }

  async deleteChunksInPack(databaseId: string, sha256s: readonly string[], vaultKey: string): Promise<string[]> {
    const deleted: string[] = [];
    await inParallel(this.uniqueHashes(databaseId, sha256s), BATCH_CONCURRENCY, async (h) => {
      if (await this.conditional(() => this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { pk: databasePk(databaseId), sk: chunkSk(h) }, ConditionExpression: "vaultKey = :k", ExpressionAttributeValues: { ":k": vaultKey } })), "DeleteItem (chunk in pack)")) {
        deleted.push(h);
      }
    });
    return deleted;
  }

  /** Sends one conditional write: true when done, false when its condition failed. */
  private async conditional(send: () => Promise<unknown>, op: string): Promise<boolean> {
    try {
      await send();
      return true;
    } catch (e) {
      if (isConditionFailed(e)) return false;
      throw this.fail(op, e);
    }
  }

  async deleteChunks(databaseId: string, sha256s: readonly string[]): Promise<void> {
    await this.batchWriteAll(
      [...new Set(sha256s)].map((h) => ({ DeleteRequest: { Key: { pk: databasePk(databaseId), sk: chunkSk(h) } } })),
      "chunk deletions",
    );
  }

  // ------------------------------------------------------------- packs

  async recordPacks(records: readonly PackItem[]): Promise<void> {
    // One record per pack (the last given: BatchWriteItem refuses a request naming one key twice), one log item per
    // pack and time (a pack given at two times is logged at both).
    const byPack = new Map<string, { record: PackItem; logged: Map<string, PackItem> }>();
    for (const record of records) {
      const r = this.check(packItemSchema, record, "pack record");
      const key = `${r.databaseId} ${r.name}`;
      const entry = byPack.get(key) ?? { record: r, logged: new Map<string, PackItem>() };
      entry.record = r;
      entry.logged.set(r.recordedAt, r);
      byPack.set(key, entry);
    }
    // Each pack's record and its log items, in the same batches (a log item is a hint: a pack recorded without it is only not found by the log).
    await this.batchWriteAll(
      [...byPack.values()].flatMap(({ record, logged }) => {
        const pk = databasePk(record.databaseId);
        return [
          { PutRequest: { Item: { ...record, pk, sk: packSk(record.name) } } },
          ...[...logged.values()].map((r) => {
            const expiresAt = Math.ceil(Date.parse(r.recordedAt) / 1000) + PACK_LOG_TTL_DAYS * 86_400;
            return { PutRequest: { Item: { pk, sk: packLogSk(r.recordedAt, r.name), databaseId: r.databaseId, name: r.name, recordedAt: r.recordedAt, [CATALOG_TTL_ATTRIBUTE]: expiresAt } } };
          }),
        ];
      }),
      "pack records",
    );
  }

  async listPacksRecordedSince(databaseId: string, since: string, after?: string, limit?: number): Promise<PackLogPage> {
    if (!PACK_LOG_TIME_RE.test(since)) throw new InvalidInputError(`pack log start '${String(since)}' is not an ISO time (YYYY-MM-DDTHH:MM:SS.sssZ)`);
    if (after !== undefined) {
      const [time, name] = after.split("#");
      if (time === undefined || name === undefined || !PACK_LOG_TIME_RE.test(time)) throw new InvalidInputError(`pack log cursor '${after}' is not <ISO time>#<pack name>`);
      this.check(sha256Schema, name, "pack log cursor");
    }
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > RECORD_PAGE_MAX)) {
      throw new InvalidInputError(`pack log page size ${limit} is not an integer from 1 to ${RECORD_PAGE_MAX}`);
    }
    const pk = databasePk(databaseId);
    const prefix = CATALOG_SORT_KEYS.packLogPrefix;
    const start = after === undefined ? undefined : { pk, sk: `${prefix}${after}` };
    // "~" sorts after every ISO time character: the range is every item from `since` on.
    const out = await this.queryOnce(pk, { from: `${prefix}${since}`, to: `${prefix}~` }, start, limit ?? RECORD_PAGE_MAX, true, "Query (pack log)");
    const packs = out.items.map((item) => this.parse(packLogEntrySchema, item, "pack log item"));
    const last = out.items.at(-1)?.sk;
    return out.start === undefined || typeof last !== "string" ? { packs } : { packs, next: last.slice(prefix.length) };
  }

  /** The key of a pack's record (or, with `prefix`, its promotion claim), its name checked first (InvalidInputError). */
  private packKey(databaseId: string, name: string, prefix: string = CATALOG_SORT_KEYS.packPrefix): { pk: string; sk: string } {
    const checked = this.check(sha256Schema, name, `pack name '${String(name)}' for database ${databaseId}`);
    return { pk: databasePk(databaseId), sk: `${prefix}${checked}` };
  }

  async getPack(databaseId: string, name: string): Promise<PackItem | undefined> {
    const key = this.packKey(databaseId, name);
    const item = await this.getItem(key.pk, key.sk, "GetItem (pack)");
    return item === undefined ? undefined : this.parse(packItemSchema, item, "pack record");
  }

  async getPacks(databaseId: string, names: readonly string[]): Promise<PackItem[]> {
    const unique = this.uniqueHashes(databaseId, names);
    if (unique.length === 0) return [];
    const found = new Map<string, PackItem>();
    await this.batchGetChunks(
      databaseId,
      unique,
      false,
      (item) => {
        const record = this.parse(packItemSchema, item, "pack record");
        found.set(record.name, record);
      },
      packSk,
      "pack",
    );
    return unique.flatMap((h) => found.get(h) ?? []);
  }

  async listPackPage(databaseId: string, after?: string, limit?: number): Promise<PackPage> {
    const { items, last } = await this.recordPage(databaseId, CATALOG_SORT_KEYS.packPrefix, after, limit, "pack");
    const packs = items.map((item) => this.parse(packItemSchema, item, "pack record"));
    return last === undefined ? { packs } : { packs, next: last };
  }

  async markPacksOrphaned(databaseId: string, names: readonly string[], at: string): Promise<string[]> {
    return this.markPacks(databaseId, names, "orphanedAt", at, "UpdateItem (mark pack)");
  }

  async markPacksRepacked(databaseId: string, names: readonly string[], at: string): Promise<string[]> {
    return this.markPacks(databaseId, names, "repackedAt", at, "UpdateItem (mark pack repacked)");
  }

  /** Sets one time attribute on each existing pack record (never creates one); the names set, in input order. */
  private async markPacks(databaseId: string, names: readonly string[], attribute: "orphanedAt" | "repackedAt", at: string, op: string): Promise<string[]> {
    const unique = this.uniqueHashes(databaseId, names);
    const marked = new Set<string>();
    await inParallel(unique, BATCH_CONCURRENCY, async (name) => {
      const key = { pk: databasePk(databaseId), sk: packSk(name) };
      if (await this.conditional(() => this.doc.send(new UpdateCommand({ TableName: this.tableName, Key: key, UpdateExpression: `SET ${attribute} = :at`, ConditionExpression: "attribute_exists(pk)", ExpressionAttributeValues: { ":at": at } })), op)) {
        marked.add(name);
      }
    });
    return unique.filter((n) => marked.has(n));
  }

  async claimPackPromotion(databaseId: string, name: string, owner: string, until: string, now: string): Promise<string | undefined> {
    const key = this.packKey(databaseId, name, CATALOG_SORT_KEYS.promotingPrefix);
    // A claim released between the refused put and the read: try once more; still contested, report it as ending now.
    for (let attempt = 0; attempt < 2; attempt++) {
      const taken = await this.conditional(
        () =>
          this.doc.send(
            new PutCommand({
              TableName: this.tableName,
              Item: { ...key, databaseId, name, owner, until, [CATALOG_TTL_ATTRIBUTE]: Math.ceil(Date.parse(until) / 1000) + 3600 },
              ConditionExpression: "attribute_not_exists(pk) OR #owner = :owner OR #until < :now",
              ExpressionAttributeNames: { "#owner": "owner", "#until": "until" },
              ExpressionAttributeValues: { ":owner": owner, ":now": now },
            }),
          ),
        "PutItem (claim pack promotion)",
      );
      if (taken) return undefined;
      const held = await this.getItem(key.pk, key.sk, "GetItem (pack promotion claim)");
      if (held !== undefined) return String(held.until);
    }
    return now;
  }

  async releasePackPromotion(databaseId: string, name: string, owner: string): Promise<void> {
    const key = this.packKey(databaseId, name, CATALOG_SORT_KEYS.promotingPrefix);
    // Ended, not deleted (snapshot ingest deletes nothing); the TTL removes the item later.
    await this.conditional(
      () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: key,
            UpdateExpression: "SET #until = :released",
            ConditionExpression: "#owner = :owner",
            ExpressionAttributeNames: { "#owner": "owner", "#until": "until" },
            ExpressionAttributeValues: { ":owner": owner, ":released": RELEASED },
          }),
        ),
      "UpdateItem (release pack promotion)",
    );
  }

  async clearPackOrphaned(databaseId: string, name: string): Promise<boolean> {
    const key = this.packKey(databaseId, name);
    const cleared = await this.conditional(
      () =>
        this.doc.send(
          new UpdateCommand({ TableName: this.tableName, Key: key, UpdateExpression: "REMOVE orphanedAt", ConditionExpression: "attribute_exists(orphanedAt) AND attribute_not_exists(deletingAt)" }),
        ),
      "UpdateItem (unmark pack)",
    );
    if (cleared) return true;
    // The condition also fails on a record that is there without a mark (cleared meanwhile): only a missing or condemned record is "gone".
    const item = await this.getItem(key.pk, key.sk, "GetItem (pack)");
    return item !== undefined && item["deletingAt"] === undefined;
  }

  async condemnPack(databaseId: string, name: string, orphanedAt: string, at: string): Promise<boolean> {
    const key = this.packKey(databaseId, name);
    return this.conditional(
      () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: key,
            UpdateExpression: "SET deletingAt = :at",
            ConditionExpression: "orphanedAt = :o AND attribute_not_exists(deletingAt)",
            ExpressionAttributeValues: { ":o": orphanedAt, ":at": at },
          }),
        ),
      "UpdateItem (condemn pack)",
    );
  }

  async deleteCondemnedPack(databaseId: string, name: string): Promise<boolean> {
    const key = this.packKey(databaseId, name);
    return this.conditional(
      () => this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: key, ConditionExpression: "attribute_exists(deletingAt)" })),
      "DeleteItem (pack)",
    );
  }

  async deleteWal(databaseId: string, names: readonly string[]): Promise<void> {
    const keys = [...new Set(names)].flatMap((n) => {
      const sk = walSkOfName(n);
      return sk === undefined ? [] : [{ DeleteRequest: { Key: { pk: databasePk(databaseId), sk } } }];
    });
    await this.batchWriteAll(keys, "WAL deletions");
  }

  async deleteSnapshot(databaseId: string, snapshotId: string): Promise<void> {
    try {
      await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { pk: databasePk(databaseId), sk: snapshotSk(snapshotId) } }));
    } catch (e) {
      throw this.fail("DeleteItem (snapshot)", e);
    }
  }

  async recordAudit(records: readonly AuditRecord[]): Promise<void> {
    const checked = records.map((r) => this.check(auditRecordSchema, r, "audit record"));
    await this.batchWriteAll(
      checked.map((r) => ({ PutRequest: { Item: { ...r, pk: databasePk(r.databaseId), sk: `${CATALOG_SORT_KEYS.auditPrefix}${r.at}#${r.runId}#${String(r.seq).padStart(6, "0")}` } } })),
      "audit records",
    );
  }

  async listAudit(databaseId: string): Promise<AuditRecord[]> {
    const items = await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.auditPrefix, "Query (audit)");
    return items.map((item) => this.parse(auditRecordSchema, item, "audit record"));
  }

  /** BatchWriteItem in requests of 25, a few in flight, retrying unprocessed items with backoff. */
  private async batchWriteAll(all: WriteRequests, what: string): Promise<void> {
    if (all.length === 0) return;
    const wire = flatWireRequests(all);
    const batches: (WriteRequests | WireWriteRequest[])[] = [];
    for (let i = 0; i < all.length; i += BATCH_WRITE_MAX_ITEMS) batches.push((wire ?? all).slice(i, i + BATCH_WRITE_MAX_ITEMS));
    // Either form, sent by the client that reads it; what comes back unprocessed is in the same form.
    const send = async (requests: WriteRequests | WireWriteRequest[]): Promise<(WriteRequests | WireWriteRequest[]) | undefined> =>
      wire !== undefined
        ? (await this.client.send(new BatchWriteItemCommand({ RequestItems: { [this.tableName]: requests as WireWriteRequest[] } }))).UnprocessedItems?.[this.tableName]
        : (await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: requests as WriteRequests } }))).UnprocessedItems?.[this.tableName];
    await inParallel(batches, BATCH_CONCURRENCY, async (batch) => {
      let requests = batch;
      for (let attempt = 1; ; attempt++) {
        let unprocessed;
        try {
          unprocessed = await send(requests);
        } catch (e) {
          throw this.fail(`BatchWriteItem (${what})`, e);
        }
        const left = unprocessed ?? [];
        if (left.length === 0) return;
        if (attempt >= this.batchAttempts) {
          throw new ServiceUnavailableError(
            `DynamoDB left ${left.length} of ${batch.length} ${what} unprocessed after ${attempt} BatchWriteItem requests ` +
              `on table '${this.tableName}' at ${this.where} (throttled?); retry later`,
          );
        }
        requests = left;
        await this.backoff(attempt);
      }
    });
  }

  // ---------------------------------------------------------- snapshots

  async recordSnapshot(record: SnapshotRecord): Promise<SnapshotOutcome> {
    const r = this.check(snapshotRecordSchema, record, "snapshot record");
    if (r.snapshotId.length === 0) {
      throw new InvalidInputError(`snapshot record for database ${r.databaseId} has an empty snapshotId`);
    }
    const pk = databasePk(r.databaseId);
    const sk = snapshotSk(r.snapshotId);
    // As recordWal: a write that loses to a concurrent writer reads the winner; if it vanished in between, try again once.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { ...r, ...replicaMarks(r.databaseId, sk, r.replicas), pk, sk },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
        return { outcome: "created", record: r };
      } catch (e) {
        if (!isConditionFailed(e)) throw this.fail("PutItem (snapshot)", e);
      }
      const existingItem = await this.getItem(pk, sk, "GetItem (snapshot)");
      if (existingItem === undefined) continue;
      const existing = this.parse(snapshotRecordSchema, existingItem, "snapshot record");
      if (existing.manifestSha256 === r.manifestSha256) return { outcome: "duplicate", record: existing };
      throw new SnapshotConflictError(
        `snapshot ${r.snapshotId} is already recorded for database ${r.databaseId} with a different manifest ` +
          `(recorded manifest sha256 ${short(existing.manifestSha256)}, new manifest sha256 ${short(r.manifestSha256)}); ` +
          `the recorded snapshot was kept`,
      );
    }
    throw new ConcurrentUpdateError(
      `snapshot ${r.snapshotId} for database ${r.databaseId} changed while it was being recorded; retry`,
    );
  }

  async getSnapshot(databaseId: string, snapshotId: string): Promise<SnapshotRecord | undefined> {
    if (snapshotId.length === 0) return undefined;
    const item = await this.getItem(databasePk(databaseId), snapshotSk(snapshotId), "GetItem (snapshot)");
    return item === undefined ? undefined : this.parse(snapshotRecordSchema, item, "snapshot record");
  }

  async listSnapshots(databaseId: string): Promise<SnapshotRecord[]> {
    // Query returns items in sort-key order, i.e. by snapshotId.
    const items = await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.snapshotPrefix, "Query (snapshots)");
    return items.map((item) => this.parse(snapshotRecordSchema, item, "snapshot record"));
  }

  // --------------------------------------------------------------- verification

  async recordVerification(record: VerificationRecord): Promise<void> {
    const r = this.check(verificationRecordSchema, record, "verification record");
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...r, pk: databasePk(r.databaseId), sk: `${CATALOG_SORT_KEYS.verifyPrefix}${r.startedAt}#${r.runId}` },
        }),
      );
    } catch (e) {
      throw this.fail("PutItem (verification)", e);
    }
  }

  async listVerifications(databaseId: string, snapshotId?: string): Promise<VerificationRecord[]> {
    const items = await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.verifyPrefix, "Query (verifications)");
    const all = items.map((item) => this.parse(verificationRecordSchema, item, "verification record"));
    return snapshotId === undefined ? all : all.filter((v) => v.snapshotId === snapshotId);
  }

  async setSnapshotPinned(databaseId: string, snapshotId: string, pinned: boolean): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: databasePk(databaseId), sk: snapshotSk(snapshotId) },
          UpdateExpression: "SET pinned = :p",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":p": pinned },
        }),
      );
    } catch (e) {
      if (isConditionFailed(e)) throw new NotFoundError(`no snapshot ${snapshotId} of database ${databaseId} to ${pinned ? "pin" : "unpin"}`, { cause: e });
      throw this.fail("UpdateItem (pin)", e);
    }
  }

  async setSnapshotVerification(databaseId: string, snapshotId: string, v: NonNullable<SnapshotRecord["verification"]>): Promise<void> {
    const value = this.check(snapshotRecordSchema.shape.verification.unwrap(), v, "snapshot verification");
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: databasePk(databaseId), sk: snapshotSk(snapshotId) },
          UpdateExpression: "SET verification = :v",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":v": value },
        }),
      );
    } catch (e) {
      if (isConditionFailed(e)) throw new NotFoundError(`no snapshot ${snapshotId} of database ${databaseId} to record a verification on`, { cause: e });
      throw this.fail("UpdateItem (snapshot verification)", e);
    }
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight; rejects with the first failure (after the others settle). */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, () => worker()));
  if (failure !== undefined) throw failure.error;
}

function compareTime(a: string, b: string): number {
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (Number.isFinite(ta) && Number.isFinite(tb) && ta !== tb) return ta - tb;
  return a < b ? -1 : a > b ? 1 : 0;
}

// ------------------------------------------------------------------ table

/** The position index of generic segments, as createTable() and infra/ define it. */
export function genericWalIndexDefinition(): GlobalSecondaryIndex {
  return {
    IndexName: GENERIC_WAL_INDEX,
    KeySchema: [
      { AttributeName: CATALOG_KEY_SCHEMA.partitionKey.name, KeyType: "HASH" },
      { AttributeName: GPOS_ATTRIBUTE, KeyType: "RANGE" },
    ],
    Projection: { ProjectionType: "ALL" },
  };
}

/** What createTable() makes. */
export interface CreateTableOptions {
  /** One replication index per region (replicaIndexName); added to an existing table that lacks one. */
  replicaRegions?: readonly string[];
  timeoutMs?: number;
}

/** The replication index of a region, as createTable() and infra/ define it. */
export function replicaIndexDefinition(region: string): GlobalSecondaryIndex {
  return {
    IndexName: replicaIndexName(region),
    KeySchema: [
      { AttributeName: replicaPendingAttribute(region), KeyType: "HASH" },
      { AttributeName: REPLICA_KEY_ATTRIBUTE, KeyType: "RANGE" },
    ],
    Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...REPLICA_INDEX_PROJECTION] },
  };
}

/**
 * Creates the catalog table (on-demand capacity) unless it exists, adds the
 * position index of generic segments (genericWalIndexDefinition) and the
 * replication index of each region it lacks (one UpdateTable each), and
 * waits until the table and its indexes are ACTIVE. Safe to call on every start.
 */
export async function createTable(client: DynamoDBClient, tableName: string, opts: CreateTableOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const regions = [...new Set(opts.replicaRegions ?? [])];
  for (const r of regions) if (!REPLICA_REGION_RE.test(r)) throw new InvalidInputError(`'${r}' is not a replica region name`);
  const keySchema: KeySchemaElement[] = [
    { AttributeName: CATALOG_KEY_SCHEMA.partitionKey.name, KeyType: "HASH" },
    { AttributeName: CATALOG_KEY_SCHEMA.sortKey.name, KeyType: "RANGE" },
  ];
  const indexAttributes = (rs: readonly string[]): AttributeDefinition[] =>
    rs.length === 0
      ? []
      : [{ AttributeName: REPLICA_KEY_ATTRIBUTE, AttributeType: "S" }, ...rs.map((r): AttributeDefinition => ({ AttributeName: replicaPendingAttribute(r), AttributeType: "S" }))];
  const gposAttribute: AttributeDefinition = { AttributeName: GPOS_ATTRIBUTE, AttributeType: "S" };
  const attributes: AttributeDefinition[] = [
    { AttributeName: CATALOG_KEY_SCHEMA.partitionKey.name, AttributeType: CATALOG_KEY_SCHEMA.partitionKey.type },
    { AttributeName: CATALOG_KEY_SCHEMA.sortKey.name, AttributeType: CATALOG_KEY_SCHEMA.sortKey.type },
    gposAttribute,
    ...indexAttributes(regions),
  ];
  const where = await describeEndpoint(client);
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        KeySchema: keySchema,
        AttributeDefinitions: attributes,
        BillingMode: "PAY_PER_REQUEST",
        GlobalSecondaryIndexes: [genericWalIndexDefinition(), ...regions.map(replicaIndexDefinition)],
      }),
    );
  } catch (e) {
    if (errorName(e) !== "ResourceInUseException") throw tableError(`create table '${tableName}'`, where, e);
  }
  const deadline = deadlineIn(timeoutMs);
  const added = new Set<string>();
  let addedGpos = false;
  for (;;) {
    let table: TableDescription | undefined;
    try {
      table = (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
    } catch (e) {
      if (errorName(e) !== "ResourceNotFoundException") throw tableError(`describe table '${tableName}'`, where, e);
    }
    const indexes = table?.GlobalSecondaryIndexes ?? [];
    const ready = table?.TableStatus === "ACTIVE" && indexes.every((i) => i.IndexStatus === "ACTIVE");
    const lackingGpos = !indexes.some((i) => i.IndexName === GENERIC_WAL_INDEX);
    const lacking = regions.filter((r) => !indexes.some((i) => i.IndexName === replicaIndexName(r)));
    if (ready && lacking.length === 0 && !lackingGpos) return;
    if (ready && lackingGpos && !addedGpos) {
      // A table from before the position index.
      try {
        await client.send(new UpdateTableCommand({ TableName: tableName, AttributeDefinitions: [gposAttribute], GlobalSecondaryIndexUpdates: [{ Create: genericWalIndexDefinition() }] }));
      } catch (e) {
        throw tableError(`add index ${GENERIC_WAL_INDEX} to table '${tableName}'`, where, e);
      }
      addedGpos = true;
      continue;
    }
    const r = lacking.find((x) => !added.has(x));
    if (ready && r !== undefined) {
      // A table from before the index, or a region added since: one index per UpdateTable.
      try {
        await client.send(
          new UpdateTableCommand({
            TableName: tableName,
            AttributeDefinitions: indexAttributes([r]),
            GlobalSecondaryIndexUpdates: [{ Create: replicaIndexDefinition(r) }],
          }),
        );
      } catch (e) {
        throw tableError(`add index ${replicaIndexName(r)} to table '${tableName}'`, where, e);
      }
      added.add(r);
      continue;
    }
    if (deadline.passed()) {
      throw new TimeoutError(`DynamoDB table '${tableName}' at ${where} is not ACTIVE with its indexes after ${timeoutMs} ms (status ${table?.TableStatus ?? "unknown"})`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Deletes a catalog table and everything in it; a table that does not exist
 * is not an error. For local stacks that borrow a shared DynamoDB Local
 * (tests): never called on a deployed catalog.
 */
export async function deleteTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new DeleteTableCommand({ TableName: tableName }));
  } catch (e) {
    if (errorName(e) !== "ResourceNotFoundException") throw tableError(`delete table '${tableName}'`, await describeEndpoint(client), e);
  }
}

async function describeEndpoint(client: DynamoDBClient): Promise<string> {
  try {
    const endpoint = client.config.endpoint ? await client.config.endpoint() : undefined;
    if (endpoint) return `${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ""}`;
    return `region ${await client.config.region()}`;
  } catch {
    return "DynamoDB";
  }
}

function tableError(op: string, where: string, e: unknown): WalvaultError {
  if (isNetworkError(e)) {
    return new ServiceUnavailableError(`cannot reach DynamoDB at ${where} to ${op}: ${firstLine(e)}`, { cause: e });
  }
  return new ServiceUnavailableError(`DynamoDB could not ${op} at ${where}: ${errorName(e) ?? "error"}: ${firstLine(e)}`, { cause: e });
}
