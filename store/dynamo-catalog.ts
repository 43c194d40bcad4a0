/**
 * Catalog on one DynamoDB table (DynamoDB Local on the local stack).
 *
 * The table's layout (keys, attributes, sparse indexes, limits) and the pure
 * logic over it are store/catalog-layout.ts, which MemoryCatalog shares; this
 * module is what talks to DynamoDB. One Query per database answers every
 * listing, and IAM LeadingKeys on pk can confine an agent to its own
 * database. The registry partition lists the databases by Query, page by
 * page (a Scan would read every WAL, chunk and snapshot item of every
 * database to find them): putDatabase writes the registration and its
 * registry copy in one transaction, so a database is never registered
 * without being listed, nor listed with other contents. Catalogs written
 * before the registry get it from `walvault catalog rebuild`
 * (docs/decisions.md, "Databases are listed from a registry").
 *
 * What a replica region lacks (docs/replication.md, "What a region lacks"):
 * listUnreplicated() Queries the region's sparse index `pending-<R>` and
 * reads nothing else. Index writes: one when a record enters it, one when it
 * leaves (status updates in between change no indexed or projected
 * attribute). Chunk lookups and writes go in batches (BatchGetItem /
 * BatchWriteItem), so the agent role needs dynamodb:BatchGetItem and ingest
 * dynamodb:BatchWriteItem.
 *
 * Generic WAL by position (docs/decisions.md, "Generic WAL by position"): the
 * sparse index `gpos` costs one more write unit per generic segment, none for
 * PostgreSQL WAL.
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
} from "@aws-sdk/lib-dynamodb";
import type { z } from "zod";
import { ConfigError, NotFoundError, ServiceUnavailableError, TimeoutError, type WalvaultError } from "../core/errors.js";
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
import type { Catalog, ChunkPage, DatabasePage, GenericWalRangeOptions, WalIndexBackfillPage, MarkUnreplicatedPage, PackLogPage, PackPage, RecordOutcome, SnapshotOutcome, UnreplicatedOptions, UnreplicatedPage, WalPage, WalRangeOptions, WalTimeline } from "./catalog.js";
import {
  auditSk,
  BATCH_CONCURRENCY,
  BATCH_GET_MAX_KEYS,
  BATCH_WRITE_MAX_ITEMS,
  CATALOG_KEY_SCHEMA,
  CATALOG_SORT_KEYS,
  catalogRequestError,
  checkBackfillCursor,
  checkDatabaseCursor,
  checkGenericWalNewest,
  checkInput,
  checkPackLogPage,
  checkPageSize,
  checkReplicaRegion,
  checkSnapshotId,
  checkWalRecordName,
  chunkItems,
  chunkSk,
  DATABASE_PAGE_MAX,
  databasePk,
  errorName,
  existingSnapshotOutcome,
  existingWalOutcome,
  firstLine,
  GENERIC_WAL_INDEX,
  genericWalRangePage,
  GPOS_ATTRIBUTE,
  headOf,
  headValues,
  listAllDatabases,
  markUnreplicatedStart,
  markUnreplicatedValues,
  missingReplicaIndex,
  newestPostgresHead,
  outsideWalIndex,
  packItems,
  packKey,
  packLogEntrySchema,
  packLogRange,
  packSk,
  pageCursor,
  parseItem,
  promotionClaimItem,
  quarantineInOrder,
  quarantinePrefix,
  quarantineSk,
  queryItems,
  RECORD_PAGE_MAX,
  REGISTRY_PK,
  REGISTRY_SK_PREFIX,
  registrySk,
  RELEASED,
  REPLICA_INDEX_PROJECTION,
  REPLICA_KEY_ATTRIBUTE,
  REPLICA_PENDING,
  replicaIndexName,
  replicaPendingAttribute,
  replicaStatusValues,
  replicaTargetMissing,
  snapshotChangedError,
  snapshotItem,
  snapshotSk,
  uniqueHashes,
  UNREPLICATED_PAGE_MAX,
  unreplicatedPage,
  verificationSk,
  walChangedError,
  checkBackfillTarget,
  walItem,
  walkPositionKeys,
  walkReplicaMarks,
  walPage,
  walPageStart,
  walRangeQuery,
  walSkOfName,
  walStreamPrefix,
  walTimelines,
  type CatalogItem,
  type PartitionQuery,
  type QueryPage,
  type SortKeyCondition,
} from "./catalog-layout.js";
import { SDK_LOGGER } from "./sdk-logger.js";

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


function isConditionFailed(e: unknown): boolean {
  return e instanceof ConditionalCheckFailedException || errorName(e) === "ConditionalCheckFailedException";
}

type Item = CatalogItem;
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
    return catalogRequestError(op, e, this.tableName, this.where);
  }

  private parse<S extends z.ZodTypeAny>(schema: S, item: Item, what: string): z.infer<S> {
    return parseItem(this.tableName, schema, item, what);
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
  private queryItems(pk: string, cond: SortKeyCondition, op: string, opts: { limit?: number; forward: boolean }): Promise<Item[]> {
    return queryItems(this.partition(pk), this.pageSize, cond, op, opts);
  }

  /** queryOnce on one partition, for the shared page walks (store/catalog-layout.ts). */
  private partition(pk: string): PartitionQuery {
    return (cond, start, limit, forward, op) => this.queryOnce(pk, cond, start, limit, forward, op);
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
    const { walIndex: _asked, ...checked } = checkInput(databaseRecordSchema, record, "database record");
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
    return listAllDatabases(this.pageSize, (after, limit) => this.listDatabasePage(after, limit));
  }

  async listDatabasePage(after?: string, limit?: number): Promise<DatabasePage> {
    checkDatabaseCursor(after);
    const page = await this.queryPage(REGISTRY_PK, REGISTRY_SK_PREFIX, after, limit, DATABASE_PAGE_MAX, "database");
    // Sort keys are db#<id>, ids of [a-z0-9-]: the Query's byte order is the ids' order.
    const databases = page.items.map((item) => this.parse(databaseRecordSchema, item, "database registry entry"));
    return page.last === undefined ? { databases } : { databases, next: page.last };
  }

  // ---------------------------------------------------------------- WAL

  async recordWal(record: WalRecord): Promise<RecordOutcome> {
    const r = checkInput(walRecordSchema, record, "WAL record");
    checkWalRecordName(r);
    const pk = databasePk(r.databaseId);
    const sk = walSkOfName(r.name)!;
    // A write that loses to a concurrent writer reads the winner; if the winner vanished in between, try again once.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: walItem(r, sk),
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
      return existingWalOutcome(r, this.parse(walRecordSchema, existingItem, "WAL record"));
    }
    throw walChangedError(r);
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
    const start = walPageStart(databaseId, after);
    const { items, last } = await this.queryPage(databasePk(databaseId), CATALOG_SORT_KEYS.walPrefix, start, limit, RECORD_PAGE_MAX, "WAL record");
    return walPage(items.map((item) => this.parse(walRecordSchema, item, "WAL record")), last);
  }

  // WAL ranges for planning (store/catalog-state.ts loadPlanningState): Queries on a sort-key range of one timeline.

  async listWalRange(databaseId: string, timeline: number, fromName: string, toName: string | undefined, options: WalRangeOptions = {}): Promise<WalRecord[]> {
    const query = walRangeQuery(databaseId, timeline, fromName, toName, options);
    if (query === undefined) return [];
    const items = await this.queryItems(databasePk(databaseId), query.range, "Query (WAL range)", query.opts);
    return items.map((item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async listGenericWalRange(databaseId: string, stream: string, fromPosition: bigint, toPosition: bigint | undefined, options: GenericWalRangeOptions = {}): Promise<WalPage> {
    return genericWalRangePage(
      databaseId,
      stream,
      fromPosition,
      toPosition,
      options,
      this.pageSize,
      (pk, range) => (from, pageLimit) =>
        this.queryIndexPage(
          {
            IndexName: GENERIC_WAL_INDEX,
            KeyConditionExpression: "pk = :pk AND #gpos BETWEEN :from AND :to",
            ExpressionAttributeNames: { "#gpos": GPOS_ATTRIBUTE },
            ExpressionAttributeValues: { ":pk": pk, ":from": range.from, ":to": range.to },
            ...(from === undefined ? {} : { ExclusiveStartKey: from }),
            ...(pageLimit === undefined ? {} : { Limit: pageLimit }),
          },
          "Query (generic WAL range)",
          `catalog table '${this.tableName}' at ${this.where} has no index ${GENERIC_WAL_INDEX} (generic WAL by position): createTable adds it, the stack defines it`,
        ),
      (item) => this.parse(walRecordSchema, item, "WAL record"),
    );
  }

  async listGenericWalNewest(databaseId: string, stream: string, limit: number): Promise<WalRecord[]> {
    checkGenericWalNewest(databaseId, stream, limit);
    const items = await this.queryItems(databasePk(databaseId), { prefix: walStreamPrefix(stream) }, "Query (newest generic WAL)", { limit, forward: false });
    return items.map((item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async backfillWalIndex(databaseId: string, after?: string, limit?: number): Promise<WalIndexBackfillPage> {
    const max = checkPageSize(limit, UNREPLICATED_PAGE_MAX, "WAL records to index");
    checkBackfillCursor(databaseId, after);
    checkBackfillTarget(databaseId, await this.getDatabase(databaseId));
    const pk = databasePk(databaseId);
    const setKeys = (missing: { sk: string; gpos: string }[]): Promise<number> =>
      this.conditionalEach(
        missing,
        ({ sk, gpos }) =>
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
    const markComplete = async (): Promise<boolean> => {
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
        return true;
      } catch (e) {
        if (errorName(e) === "TransactionCanceledException") return false;
        throw this.fail("TransactWriteItems (mark WAL index complete)", e);
      }
    };
    return walkPositionKeys(databaseId, after, max, this.pageSize, this.partition(pk), (item) => this.parse(walRecordSchema, item, "WAL record"), setKeys, markComplete);
  }

  async listWalTimelines(databaseId: string): Promise<WalTimeline[]> {
    return walTimelines(this.partition(databasePk(databaseId)), this.pageSize, (item) => this.parse(walRecordSchema, item, "WAL record"));
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
    if (sk === undefined) throw replicaTargetMissing(what, databaseId, region);
    const value = checkInput(walRecordSchema.shape.replicas.element, status, "replica status");
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
          ExpressionAttributeValues: replicaStatusValues(databaseId, sk, value),
        }),
      );
    } catch (e) {
      if (!isConditionFailed(e)) throw this.fail("UpdateItem (replica status)", e);
      // Either the item does not exist, or it is already replicated there (and stays so).
      const item = await this.getItem(databasePk(databaseId), sk, "GetItem (replica status)");
      if (item === undefined) throw replicaTargetMissing(what, databaseId, region, e);
    }
  }

  // -------------------------------------------------- what a region lacks

  async listUnreplicated(region: string, options: UnreplicatedOptions = {}): Promise<UnreplicatedPage> {
    const pend = replicaPendingAttribute(region);
    return unreplicatedPage(region, options, this.pageSize, (prefix) => (from, pageLimit) =>
      this.queryIndexPage(
        {
          IndexName: replicaIndexName(region),
          KeyConditionExpression: prefix === undefined ? "#pend = :pending" : "#pend = :pending AND begins_with(#rk, :prefix)",
          ExpressionAttributeNames: { "#pend": pend, ...(prefix === undefined ? {} : { "#rk": REPLICA_KEY_ATTRIBUTE }) },
          ExpressionAttributeValues: { ":pending": REPLICA_PENDING, ...(prefix === undefined ? {} : { ":prefix": prefix }) },
          ...(from === undefined ? {} : { ExclusiveStartKey: from }),
          ...(pageLimit === undefined ? {} : { Limit: pageLimit }),
        },
        "Query (unreplicated records)",
        missingReplicaIndex(this.tableName, this.where, region),
      ),
    );
  }


  /** One Query page of a secondary index; a table without that index is a ConfigError saying `missing`, any other failure as fail(`what`). */
  private async queryIndexPage(input: Omit<QueryCommandInput, "TableName">, what: string, missing: string): Promise<QueryPage> {
    try {
      const out = await this.doc.send(new QueryCommand({ TableName: this.tableName, ...input }));
      return out.LastEvaluatedKey === undefined ? { items: out.Items ?? [] } : { items: out.Items ?? [], start: out.LastEvaluatedKey };
    } catch (e) {
      if (errorName(e) === "ValidationException" && /index/i.test(firstLine(e))) throw new ConfigError(missing, { cause: e });
      throw this.fail(what, e);
    }
  }

  async markUnreplicated(databaseId: string, region: string, after?: string, limit?: number): Promise<MarkUnreplicatedPage> {
    const max = markUnreplicatedStart(region, after, limit);
    const pk = databasePk(databaseId);
    const pend = replicaPendingAttribute(region);
    const mark = (unmarked: Item[]): Promise<number> =>
      this.conditionalEach(
        unmarked.map((item) => String(item.sk)),
        (sk) =>
          this.doc.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { pk, sk },
              UpdateExpression: "SET replicas.#region = if_not_exists(replicas.#region, :status), #pend = :pending, #rk = :rk",
              ConditionExpression: "attribute_exists(pk) AND (attribute_not_exists(replicas.#region) OR replicas.#region.#st <> :replicated)",
              ExpressionAttributeNames: { "#region": region, "#pend": pend, "#st": "status", "#rk": REPLICA_KEY_ATTRIBUTE },
              ExpressionAttributeValues: markUnreplicatedValues(databaseId, sk),
            }),
          ),
        "UpdateItem (mark unreplicated)",
      );
    return walkReplicaMarks(databaseId, region, after, max, this.pageSize, this.partition(pk), mark);
  }

  // --------------------------------------------------------------- head

  async advanceHead(databaseId: string, name: string, sortKey: string, archivedAt: string): Promise<void> {
    const head = headOf(databaseId, name, sortKey, archivedAt);
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: databasePk(databaseId), sk: CATALOG_SORT_KEYS.head },
          UpdateExpression: "SET databaseId = :db, lastName = :name, lastSortKey = :sk, lastArchivedAt = :at",
          ConditionExpression: "attribute_not_exists(lastSortKey) OR lastSortKey < :sk",
          ExpressionAttributeValues: headValues(head),
        }),
      );
    } catch (e) {
      if (isConditionFailed(e)) return; // the head is already at or past this record
      throw this.fail("UpdateItem (head)", e);
    }
  }

  async getHead(databaseId: string): Promise<HeadRecord | undefined> {
    const newest = await newestPostgresHead(databaseId, this.partition(databasePk(databaseId)), (item) => this.parse(walRecordSchema, item, "WAL record"));
    if (newest) return newest;
    const item = await this.getItem(databasePk(databaseId), CATALOG_SORT_KEYS.head, "GetItem (head)");
    return item === undefined ? undefined : this.parse(headRecordSchema, item, "head");
  }

  // --------------------------------------------------------- quarantine

  async recordQuarantine(record: QuarantineRecord): Promise<void> {
    const r = checkInput(quarantineRecordSchema, record, "quarantine record");
    const sk = quarantineSk(r);
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
    const items = await this.queryAll(databasePk(databaseId), quarantinePrefix(name), "Query (quarantine)");
    return quarantineInOrder(items.map((item) => ({ sk: String(item.sk), record: this.parse(quarantineRecordSchema, item, "quarantine record") })), name);
  }

  // ------------------------------------------------------------- chunks

  /** Waits before retry number `retry` (1-based) of unprocessed batch work: full jitter, exponential, capped. */
  private async backoff(retry: number): Promise<void> {
    const ceiling = Math.min(2_000, this.batchBaseDelayMs * 2 ** (retry - 1));
    const ms = Math.random() * ceiling;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
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
    const unique = uniqueHashes(databaseId, sha256s);
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
    const unique = uniqueHashes(databaseId, sha256s);
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
    const checked = records.map((r) => checkInput(chunkItemSchema, r, "chunk record"));
    await this.batchWriteAll(
      chunkItems(checked).map((item) => ({ PutRequest: { Item: item } })),
      "chunk records",
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
    const size = checkPageSize(limit, max, what);
    const out = await this.queryOnce(pk, { prefix }, after === undefined ? undefined : { pk, sk: `${prefix}${after}` }, size, true, `Query (${what}s)`);
    const last = pageCursor(out.items, out.start !== undefined, prefix);
    return last === undefined ? { items: out.items } : { items: out.items, last };
  }

  /** One page of a database's content-addressed records (chunks, packs), after the hash `after`. */
  private async recordPage(databaseId: string, prefix: string, after: string | undefined, limit: number | undefined, what: string): Promise<{ items: Item[]; last?: string }> {
    if (after !== undefined) checkInput(sha256Schema, after, `${what} listing cursor`);
    return this.queryPage(databasePk(databaseId), prefix, after, limit, RECORD_PAGE_MAX, what);
  }

  async movePackedChunks(records: readonly ChunkItem[], fromVaultKey: string): Promise<string[]> {
    const checked = records.map((r) => checkInput(chunkItemSchema, r, "chunk record"));
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
    await inParallel(uniqueHashes(databaseId, sha256s), BATCH_CONCURRENCY, async (h) => {
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

  /** One conditional write per item, BATCH_CONCURRENCY in flight: how many were done (the others' conditions failed). */
  private async conditionalEach<T>(items: readonly T[], send: (item: T) => Promise<unknown>, op: string): Promise<number> {
    let done = 0;
    await inParallel(items, BATCH_CONCURRENCY, async (item) => {
      if (await this.conditional(() => send(item), op)) done++;
    });
    return done;
  }

  async deleteChunks(databaseId: string, sha256s: readonly string[]): Promise<void> {
    await this.batchWriteAll(
      [...new Set(sha256s)].map((h) => ({ DeleteRequest: { Key: { pk: databasePk(databaseId), sk: chunkSk(h) } } })),
      "chunk deletions",
    );
  }

  // ------------------------------------------------------------- packs

  async recordPacks(records: readonly PackItem[]): Promise<void> {
    const checked = records.map((r) => checkInput(packItemSchema, r, "pack record"));
    await this.batchWriteAll(
      packItems(checked).map((item) => ({ PutRequest: { Item: item } })),
      "pack records",
    );
  }

  async listPacksRecordedSince(databaseId: string, since: string, after?: string, limit?: number): Promise<PackLogPage> {
    const size = checkPackLogPage(since, after, limit);
    const pk = databasePk(databaseId);
    const prefix = CATALOG_SORT_KEYS.packLogPrefix;
    const start = after === undefined ? undefined : { pk, sk: `${prefix}${after}` };
    const out = await this.queryOnce(pk, packLogRange(since), start, size, true, "Query (pack log)");
    const packs = out.items.map((item) => this.parse(packLogEntrySchema, item, "pack log item"));
    const next = pageCursor(out.items, out.start !== undefined, prefix);
    return next === undefined ? { packs } : { packs, next };
  }

  async getPack(databaseId: string, name: string): Promise<PackItem | undefined> {
    const key = packKey(databaseId, name);
    const item = await this.getItem(key.pk, key.sk, "GetItem (pack)");
    return item === undefined ? undefined : this.parse(packItemSchema, item, "pack record");
  }

  async getPacks(databaseId: string, names: readonly string[]): Promise<PackItem[]> {
    const unique = uniqueHashes(databaseId, names);
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
    const unique = uniqueHashes(databaseId, names);
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
    const key = packKey(databaseId, name, CATALOG_SORT_KEYS.promotingPrefix);
    // A claim released between the refused put and the read: try once more; still contested, report it as ending now.
    for (let attempt = 0; attempt < 2; attempt++) {
      const taken = await this.conditional(
        () =>
          this.doc.send(
            new PutCommand({
              TableName: this.tableName,
              Item: promotionClaimItem(key, databaseId, name, owner, until),
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
    const key = packKey(databaseId, name, CATALOG_SORT_KEYS.promotingPrefix);
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
    const key = packKey(databaseId, name);
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
    const key = packKey(databaseId, name);
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
    const key = packKey(databaseId, name);
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
    const checked = records.map((r) => checkInput(auditRecordSchema, r, "audit record"));
    await this.batchWriteAll(
      checked.map((r) => ({ PutRequest: { Item: { ...r, pk: databasePk(r.databaseId), sk: auditSk(r) } } })),
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
    const r = checkInput(snapshotRecordSchema, record, "snapshot record");
    checkSnapshotId(r);
    const pk = databasePk(r.databaseId);
    const sk = snapshotSk(r.snapshotId);
    // As recordWal: a write that loses to a concurrent writer reads the winner; if it vanished in between, try again once.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: snapshotItem(r, sk),
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
        return { outcome: "created", record: r };
      } catch (e) {
        if (!isConditionFailed(e)) throw this.fail("PutItem (snapshot)", e);
      }
      const existingItem = await this.getItem(pk, sk, "GetItem (snapshot)");
      if (existingItem === undefined) continue;
      return existingSnapshotOutcome(r, this.parse(snapshotRecordSchema, existingItem, "snapshot record"));
    }
    throw snapshotChangedError(r);
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
    const r = checkInput(verificationRecordSchema, record, "verification record");
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...r, pk: databasePk(r.databaseId), sk: verificationSk(r) },
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
    const value = checkInput(snapshotRecordSchema.shape.verification.unwrap(), v, "snapshot verification");
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
  for (const r of regions) checkReplicaRegion(r);
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
