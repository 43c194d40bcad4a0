/**
 * Catalog in memory: the Catalog contract (store/catalog.ts) with no service
 * behind it, for fast tests, and the reference semantics of DynamoCatalog
 * (store/dynamo-catalog.ts) written down as plain code.
 *
 * It is DynamoCatalog run over an emulated DynamoDB table rather than a
 * second implementation of the contract: the same items (record fields plus
 * pk/sk, `gpos`, `replicaKey`, `pending:<region>`, `expiresAt`) under the same
 * keys, the same sparse indexes (`gpos`, and `pending-<region>` for each of
 * `replicaRegions`), and each method the same sequence of requests, each
 * answered as DynamoDB answers it: conditional writes, Query pages (Limit =
 * `pageSize`, a page ends at 1 MB, a full page names its last key even when
 * nothing follows), string keys and comparisons in UTF-8 byte order, and
 * DynamoDB's refusals (ValidationException: an item over 400 KB, a sort key
 * over 1024 bytes, a number out of range, one key twice in a BatchWriteItem
 * request; the SDK's: NaN, Infinity or an unsafe integer in a
 * DocumentClient request), reported with DynamoCatalog's error classes and
 * messages (table 'memory'; DynamoDB's part in DynamoDB Local's words, which
 * the contract suite runs on). So a test that passes here fails where
 * DynamoDB would, and listings come out in DynamoDB's order, page by page.
 * The layout, its limits, the checks, cursors and outcomes, and the page
 * walks are not copies: both import them from store/catalog-layout.ts (which
 * loads no AWS SDK); what is here is the emulated table and each method's
 * requests to it.
 *
 * What it does not do: persist anything (the catalog lives as long as the
 * object), share anything between processes or workers (one process, one
 * object), throttle (no unprocessed batch items, no retries), lag (its
 * indexes are consistent at once, DynamoDB's eventually), expire items (TTL:
 * pack log items and promotion claims stay), or check IAM. Requests take no
 * time: where DynamoCatalog keeps several in flight and one fails, those
 * sent with it are done, later ones not (DynamoDB's outcome depends on
 * timing). The position index always exists (a table createTable made), so
 * listGenericWalRange's ConfigError for a table without it cannot happen here.
 *
 * Stored items are copies: nothing a caller passes in or gets back aliases
 * what the catalog holds.
 */
import type { z } from "zod";
import { ConfigError, NotFoundError, type WalvaultError } from "../core/errors.js";
import {
  auditRecordSchema,
  chunkItemSchema,
  databaseRecordSchema,
  headRecordSchema,
  packItemSchema,
  quarantineRecordSchema,
  sha256Schema,
  snapshotRecordSchema,
  verificationRecordSchema,
  walRecordSchema,
  type AuditRecord,
  type ChunkItem,
  type DatabaseRecord,
  type HeadRecord,
  type PackItem,
  type QuarantineRecord,
  type SnapshotRecord,
  type VerificationRecord,
  type WalRecord,
} from "../core/schemas.js";
import type {
  Catalog,
  ChunkPage,
  DatabasePage,
  GenericWalRangeOptions,
  MarkUnreplicatedPage,
  PackLogPage,
  PackPage,
  RecordOutcome,
  SnapshotOutcome,
  UnreplicatedOptions,
  UnreplicatedPage,
  WalIndexBackfillPage,
  WalPage,
  WalRangeOptions,
  WalTimeline,
} from "./catalog.js";
import {
  auditSk,
  BATCH_CONCURRENCY,
  BATCH_GET_MAX_KEYS,
  BATCH_WRITE_MAX_ITEMS,
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
  existingSnapshotOutcome,
  existingWalOutcome,
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
  REPLICA_PENDING_PREFIX,
  replicaIndexName,
  replicaKey,
  replicaPendingAttribute,
  replicaStatusValues,
  replicaTargetMissing,
  snapshotChangedError,
  snapshotItem,
  snapshotSk,
  uniqueHashes,
  unreachableError,
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
  type ItemKey,
  type PartitionQuery,
  type QueryPage,
  type SortKeyCondition,
} from "./catalog-layout.js";

export interface MemoryCatalogOptions {
  /** Query Limit per page, as DynamoCatalog's (default: pages end at 1 MB only); small values exercise paging. A Limit DynamoDB refuses is refused per Query, as there. */
  pageSize?: number;
  /** Regions with a replication index, as createTable's: listUnreplicated of another region rejects with ConfigError. */
  replicaRegions?: readonly string[];
  /** An endpoint-like text: every request fails as DynamoCatalog's do when nothing answers there (ServiceUnavailableError naming it). */
  unavailable?: string;
  /**
   * Items the sparse indexes do not list yet (DynamoDB's global secondary
   * indexes are eventually consistent: an item written a moment ago may be
   * missing from a Query of an index while reads of the table see it).
   * Queries of the position and replication indexes skip the items this
   * returns true for; nothing else changes. Default: none.
   */
  lagging?: (item: Readonly<Record<string, unknown>>) => boolean;
}

// ------------------------------------------------------------- DynamoDB

/** DynamoDB's largest item (attribute names and values), bytes. */
export const DYNAMODB_ITEM_MAX_BYTES = 400 * 1024;
/** DynamoDB's largest partition key / sort key value, bytes (table and index keys alike). */
const PARTITION_KEY_MAX_BYTES = 2048;
const SORT_KEY_MAX_BYTES = 1024;
/** A Query page ends once it has read this much (DynamoDB's 1 MB). */
const QUERY_PAGE_BYTES = 1024 * 1024;
/** Numbers DynamoDB stores: at most 38 significant digits, magnitudes from 1E-130 to 9.99…E+125. */
const NUMBER_MIN_MAGNITUDE = 1e-130;
const NUMBER_MAX_MAGNITUDE = 9.9999999999999999999999999999999999999e125;

type Item = CatalogItem;
type Key = ItemKey;
type Condition = (existing: Item | undefined) => boolean;

/**
 * Orders strings as DynamoDB orders string keys and compares strings in
 * conditions: by UTF-8 bytes, i.e. by code point (JavaScript's `<` compares
 * UTF-16 units, which puts U+E000..U+FFFF after the surrogate pairs of
 * U+10000 and up).
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const fx = x >= 0xd800 && x <= 0xdfff ? x + 0x2000 : x >= 0xe000 ? x - 0x800 : x;
    const fy = y >= 0xd800 && y <= 0xdfff ? y + 0x2000 : y >= 0xe000 ? y - 0x800 : y;
    return fx - fy;
  }
  return a.length - b.length;
}

function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/**
 * Bytes a number takes in DynamoDB: its significant digits in base-100
 * digits aligned on the decimal point (1.5 is 01.50: two), plus one; zero
 * takes one. (The guide's "one byte per two significant digits, plus one" is
 * this rounded; DynamoDB Local counts the aligned digits.)
 */
function numberBytes(n: number): number {
  if (n === 0) return 1;
  const [mantissa = "", exponent = "0"] = Math.abs(n).toExponential().split("e");
  const digits = mantissa.replace(".", "").replace(/0+$/, "");
  // n = 0.<digits> x 10^e; an odd e puts a zero before the first digit.
  const e = Number(exponent) + 1;
  return Math.ceil((digits.length + (Math.abs(e) % 2)) / 2) + 1;
}

function valueBytes(v: unknown): number {
  if (typeof v === "string") return utf8Bytes(v);
  if (typeof v === "number") return numberBytes(v);
  if (typeof v === "boolean" || v === null) return 1;
  if (Array.isArray(v)) return 3 + v.reduce((n: number, e: unknown) => n + 1 + valueBytes(e), 0);
  if (typeof v === "object") {
    let n = 3;
    for (const [k, e] of Object.entries(v)) n += 1 + utf8Bytes(k) + valueBytes(e);
    return n;
  }
  return 0;
}

/**
 * An item's size as DynamoDB counts it against its 400 KB limit and its 1 MB
 * Query pages (developer guide, "Item sizes and formats"): each attribute's
 * UTF-8 name plus its value (strings: UTF-8 bytes; numbers: numberBytes;
 * booleans and null: one; lists and maps: three, plus one per element, plus
 * the elements, a map's with their names). DynamoDB Local refuses an item
 * exactly when this exceeds DYNAMODB_ITEM_MAX_BYTES.
 */
export function dynamoItemSize(item: Item): number {
  let n = 0;
  for (const [k, v] of Object.entries(item)) n += utf8Bytes(k) + valueBytes(v);
  return n;
}

/** What DynamoDB (or its SDK) answered: the cause of the WalvaultError a method rejects with. */
function answer(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

const conditionFailed = (): Error => answer("ConditionalCheckFailedException", "The conditional request failed");

/** Items of one partition, in sort-key order. */
class Partition {
  readonly order: string[] = [];
  readonly items = new Map<string, Item>();

  /** Index of the first sort key at or after `sk` (`after`: strictly after). */
  seek(sk: string, after = false): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareUtf8(this.order[mid]!, sk);
      if (c < 0 || (after && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  set(sk: string, item: Item): void {
    if (!this.items.has(sk)) this.order.splice(this.seek(sk), 0, sk);
    this.items.set(sk, item);
  }

  delete(sk: string): void {
    if (this.items.delete(sk)) this.order.splice(this.seek(sk), 1);
  }
}

/** A write in a TransactWriteItems request. */
type TransactWrite = { put: Item } | { update: Key; condition: Condition; apply: (item: Item) => Item };
/** A write in a BatchWriteItem request. */
type BatchWrite = { put: Item } | { delete: Key };

/**
 * Runs `fn` over `items` as DynamoCatalog's inParallel does (BATCH_CONCURRENCY
 * calls in flight), each call taking as long as the others: a round of that
 * many at a time, and after a round with a failure, nothing more; the first
 * failure is thrown.
 */
function inRounds<T>(items: readonly T[], fn: (item: T) => void): void {
  for (let i = 0; i < items.length; i += BATCH_CONCURRENCY) {
    let failure: { error: unknown } | undefined;
    for (const item of items.slice(i, i + BATCH_CONCURRENCY)) {
      try {
        fn(item);
      } catch (e) {
        failure ??= { error: e };
      }
    }
    if (failure !== undefined) throw failure.error;
  }
}

/** inRounds of a conditional write per item: how many were done (the others' conditions failed). */
function countInRounds<T>(items: readonly T[], fn: (item: T) => boolean): number {
  let done = 0;
  inRounds(items, (item) => {
    if (fn(item)) done++;
  });
  return done;
}

export class MemoryCatalog implements Catalog {
  /** The table name messages name (DynamoCatalog's name its table). */
  readonly tableName = "memory";
  private readonly where: string;
  private readonly unavailable: string | undefined;
  private readonly pageSize: number | undefined;
  private readonly replicaRegions: ReadonlySet<string>;
  private readonly lagging: (item: Readonly<Record<string, unknown>>) => boolean;
  private readonly table = new Map<string, Partition>();

  constructor(opts: MemoryCatalogOptions = {}) {
    for (const r of opts.replicaRegions ?? []) checkReplicaRegion(r);
    this.pageSize = opts.pageSize;
    this.replicaRegions = new Set(opts.replicaRegions ?? []);
    this.unavailable = opts.unavailable;
    this.where = opts.unavailable ?? "memory";
    this.lagging = opts.lagging ?? (() => false);
  }

  // ------------------------------------------------------------- errors

  /** DynamoCatalog's error for a service answer (its fail()). */
  private fail(op: string, e: Error): WalvaultError {
    return catalogRequestError(op, e, this.tableName, this.where);
  }

  private refuse(op: string, message: string): WalvaultError {
    return this.fail(op, answer("ValidationException", message));
  }

  /** Every request starts here: an unavailable catalog fails it as DynamoCatalog does when nothing listens at its endpoint. */
  private reach(): void {
    if (this.unavailable === undefined) return;
    throw unreachableError(this.where, answer("Error", `nothing answers at ${this.unavailable} (a MemoryCatalog made unavailable)`));
  }

  private parse<S extends z.ZodTypeAny>(schema: S, item: Item, what: string): z.infer<S> {
    return parseItem(this.tableName, schema, item, what);
  }

  // ---------------------------------------------------- the emulated table

  /**
   * A value as the DocumentClient (removeUndefinedValues) sends it and
   * DynamoDB keeps it: a copy without undefined, -0 as 0; the SDK refuses
   * NaN, Infinity and unsafe integers (`flat`: the low-level client
   * DynamoCatalog sends flat batch items with, which does not), DynamoDB
   * numbers out of its range.
   */
  private marshal(v: unknown, op: string, flat: boolean): unknown {
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw this.fail(op, answer("Error", `Special numeric value ${String(v)} is not allowed`));
      if (!flat && v > Number.MAX_SAFE_INTEGER) throw this.fail(op, answer("Error", `Number ${String(v)} is greater than Number.MAX_SAFE_INTEGER. Use NumberValue from @aws-sdk/lib-dynamodb.`));
      if (!flat && v < Number.MIN_SAFE_INTEGER) throw this.fail(op, answer("Error", `Number ${String(v)} is lesser than Number.MIN_SAFE_INTEGER. Use NumberValue from @aws-sdk/lib-dynamodb.`));
      if (v !== 0 && Math.abs(v) < NUMBER_MIN_MAGNITUDE) throw this.refuse(op, "Number underflow. Attempting to store a number with magnitude smaller than supported range");
      if (Math.abs(v) > NUMBER_MAX_MAGNITUDE) throw this.refuse(op, "Number overflow. Attempting to store a number with magnitude larger than supported range");
      return v === 0 ? 0 : v;
    }
    if (Array.isArray(v)) return v.filter((e) => e !== undefined).map((e: unknown) => this.marshal(e, op, flat));
    if (typeof v === "object" && v !== null) {
      const out: Item = {};
      for (const [k, e] of Object.entries(v)) if (e !== undefined) out[k] = this.marshal(e, op, flat);
      return out;
    }
    return v;
  }

  private marshalItem(item: Item, op: string, flat = false): Item {
    return this.marshal(item, op, flat) as Item;
  }

  /**
   * What DynamoDB reads back through the DocumentClient: a copy, a number
   * past Number.MAX_SAFE_INTEGER as a BigInt (which no schema takes), as
   * DynamoCatalog gets an integer written through the flat path.
   */
  private unmarshal(item: Item, op: string): Item {
    const walk = (v: unknown): unknown => {
      if (typeof v === "number" && (v > Number.MAX_SAFE_INTEGER || v < Number.MIN_SAFE_INTEGER)) {
        try {
          return BigInt(String(v));
        } catch {
          throw this.fail(op, answer("Error", `${String(v)} can't be converted to BigInt. Set options.wrapNumbers to get string value.`));
        }
      }
      if (Array.isArray(v)) return v.map(walk);
      if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, e]) => [k, walk(e)]));
      return v;
    };
    return walk(structuredClone(item)) as Item;
  }

  /** DynamoDB's check of an item's key (DynamoDB Local's words). */
  private checkKey(key: Key, op: string): void {
    if (utf8Bytes(key.pk) > PARTITION_KEY_MAX_BYTES || utf8Bytes(key.sk) > SORT_KEY_MAX_BYTES) {
      throw this.refuse(op, `Hash primary key values must be under ${PARTITION_KEY_MAX_BYTES} bytes, and range primary key values must be under ${SORT_KEY_MAX_BYTES} bytes`);
    }
  }

  /** DynamoDB Local's check of a Query's sort key condition values (a partition key too long for any item matches nothing). */
  private checkKeyCondition(sortKeyValues: readonly string[], op: string): void {
    if (sortKeyValues.some((v) => utf8Bytes(v) > SORT_KEY_MAX_BYTES)) {
      throw this.refuse(op, `One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of ${SORT_KEY_MAX_BYTES} bytes`);
    }
  }

  /** DynamoDB's checks of an item to be stored: its key, its index keys (gpos, replicaKey, pending:<region>), its size. */
  private checkItem(item: Item, op: string, update = false): void {
    this.checkKey({ pk: String(item.pk), sk: String(item.sk) }, op);
    for (const [name, v] of Object.entries(item)) {
      const max = name === GPOS_ATTRIBUTE || name === REPLICA_KEY_ATTRIBUTE ? SORT_KEY_MAX_BYTES : name.startsWith(REPLICA_PENDING_PREFIX) ? PARTITION_KEY_MAX_BYTES : undefined;
      if (max !== undefined && typeof v === "string" && utf8Bytes(v) > max) throw this.refuse(op, "One or more parameter values were invalid: Size limit exceeded");
    }
    if (dynamoItemSize(item) > DYNAMODB_ITEM_MAX_BYTES) {
      throw this.refuse(op, update ? "Item size to update has exceeded the maximum allowed size" : "Item size has exceeded the maximum allowed size");
    }
  }

  private stored(key: Key): Item | undefined {
    return this.table.get(key.pk)?.items.get(key.sk);
  }

  private store(item: Item): void {
    const pk = String(item.pk);
    let partition = this.table.get(pk);
    if (partition === undefined) this.table.set(pk, (partition = new Partition()));
    partition.set(String(item.sk), item);
  }

  private remove(key: Key): void {
    const partition = this.table.get(key.pk);
    partition?.delete(key.sk);
    if (partition?.order.length === 0) this.table.delete(key.pk);
  }

  /** GetItem (consistent). */
  private getItem(pk: string, sk: string, op: string): Item | undefined {
    this.reach();
    this.checkKey({ pk, sk }, op);
    const item = this.stored({ pk, sk });
    return item === undefined ? undefined : this.unmarshal(item, op);
  }

  /** PutItem; false when `condition` (on the item there, if any) fails. */
  private putItem(item: Item, op: string, condition?: Condition): boolean {
    this.reach();
    const copy = this.marshalItem(item, op);
    this.checkItem(copy, op);
    if (condition !== undefined && !condition(this.stored({ pk: String(copy.pk), sk: String(copy.sk) }))) return false;
    this.store(copy);
    return true;
  }

  /**
   * UpdateItem: `apply` makes the new item from the one there (or from the
   * key alone: an update creates what is missing, unless its condition
   * requires it); `values` are the request's ExpressionAttributeValues. False
   * when `condition` fails. As DynamoDB Local does, a map or list value over
   * 400 KB is refused, and so is an update that would make the item too
   * large, before the condition is evaluated (even when no item is there).
   */
  private updateItem(key: Key, op: string, values: Readonly<Record<string, unknown>>, apply: (item: Item) => Item, condition?: Condition): boolean {
    this.reach();
    for (const [name, v] of Object.entries(values)) {
      const value = this.marshal(v, op, false);
      if (typeof value === "object" && value !== null && valueBytes(value) > DYNAMODB_ITEM_MAX_BYTES) {
        throw this.refuse(op, `ExpressionAttributeValues contains invalid value: Item size has exceeded the maximum allowed size for key ${name}`);
      }
    }
    this.checkKey(key, op);
    const existing = this.stored(key);
    const next = this.marshalItem(apply(structuredClone(existing ?? { ...key })), op);
    this.checkItem(next, op, true);
    if (condition !== undefined && !condition(existing)) return false;
    this.store(next);
    return true;
  }

  /** DeleteItem; false when `condition` fails. */
  private deleteItem(key: Key, op: string, condition?: Condition): boolean {
    this.reach();
    this.checkKey(key, op);
    if (condition !== undefined && !condition(this.stored(key))) return false;
    this.remove(key);
    return true;
  }

  /**
   * TransactWriteItems: every write or none; "canceled" when a condition
   * fails (DynamoDB's TransactionCanceledException).
   */
  private transact(writes: readonly TransactWrite[], op: string): "done" | "canceled" {
    this.reach();
    const next: Item[] = [];
    for (const w of writes) {
      if ("put" in w) {
        const copy = this.marshalItem(w.put, op);
        this.checkItem(copy, op);
        next.push(copy);
      } else this.checkKey(w.update, op);
    }
    if (writes.some((w) => "update" in w && !w.condition(this.stored(w.update)))) return "canceled";
    for (const w of writes) {
      if (!("update" in w)) continue;
      const item = this.marshalItem(w.apply(structuredClone(this.stored(w.update) ?? { ...w.update })), op);
      this.checkItem(item, op, true);
      next.push(item);
    }
    for (const item of next) this.store(item);
    return "done";
  }

  /**
   * BatchWriteItem in requests of 25, BATCH_CONCURRENCY in flight (as
   * DynamoCatalog's batchWriteAll): a request naming one key twice or with an
   * item DynamoDB refuses fails whole. Items all flat (strings, numbers,
   * booleans) go as DynamoCatalog sends them, by the low-level client.
   */
  private batchWrite(all: readonly BatchWrite[], what: string): void {
    if (all.length === 0) return;
    const op = `BatchWriteItem (${what})`;
    const isFlat = (item: Item): boolean =>
      Object.values(item).every((v) => v === undefined || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)));
    const flat = all.every((w) => ("put" in w ? isFlat(w.put) : isFlat(w.delete)));
    const batches: BatchWrite[][] = [];
    for (let i = 0; i < all.length; i += BATCH_WRITE_MAX_ITEMS) batches.push(all.slice(i, i + BATCH_WRITE_MAX_ITEMS));
    inRounds(batches, (batch) => {
      this.reach();
      const writes = batch.map((w) => ("put" in w ? { put: this.marshalItem(w.put, op, flat) } : w));
      const keys = new Set<string>();
      for (const w of writes) {
        const key = "put" in w ? { pk: String(w.put.pk), sk: String(w.put.sk) } : w.delete;
        if ("put" in w) this.checkItem(w.put, op);
        else this.checkKey(key, op);
        const k = `${key.pk}\u0000${key.sk}`;
        if (keys.has(k)) throw this.refuse(op, "Provided list of item keys contains duplicates");
        keys.add(k);
      }
      for (const w of writes) {
        if ("put" in w) this.store(w.put);
        else this.remove(w.delete);
      }
    });
  }

  /** BatchGetItem (consistent) of distinct keys, in requests of 100, BATCH_CONCURRENCY in flight. */
  private batchGet(keys: readonly Key[], op: string): Item[] {
    const found: Item[] = [];
    const batches: Key[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_MAX_KEYS) batches.push(keys.slice(i, i + BATCH_GET_MAX_KEYS));
    inRounds(batches, (batch) => {
      this.reach();
      for (const key of batch) this.checkKey(key, op);
      for (const key of batch) {
        const item = this.stored(key);
        if (item !== undefined) found.push(this.unmarshal(item, op));
      }
    });
    return found;
  }

  /**
   * One page of `candidates` (already in order, after the start key): at
   * most `limit` items, ending once 1 MB is read; `start` (the last item's
   * key) when the page ended so, as DynamoDB's LastEvaluatedKey, whether or
   * not anything follows.
   */
  private page(candidates: Iterable<Item>, limit: number | undefined, keyOf: (item: Item) => Item, op: string): { items: Item[]; start?: Item } {
    const items: Item[] = [];
    let bytes = 0;
    for (const item of candidates) {
      items.push(this.unmarshal(item, op));
      bytes += dynamoItemSize(item);
      if (items.length === limit || bytes >= QUERY_PAGE_BYTES) return { items, start: keyOf(item) };
    }
    return { items };
  }

  private checkLimit(limit: number | undefined, op: string): void {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw this.refuse(op, `1 validation error detected: Value '${String(limit)}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1`);
    }
  }

  /** Query (consistent) of `pk`'s items matching `cond`, after `start`, in sort-key order (or reversed). */
  private query(pk: string, cond: SortKeyCondition, start: Item | undefined, limit: number | undefined, forward: boolean, op: string): { items: Item[]; start?: Item } {
    this.reach();
    this.checkLimit(limit, op);
    const inRange =
      "prefix" in cond ? (sk: string): boolean => sk.startsWith(cond.prefix) : (sk: string): boolean => compareUtf8(sk, cond.from) >= 0 && compareUtf8(sk, cond.to) <= 0;
    this.checkKeyCondition("prefix" in cond ? [cond.prefix] : [cond.from, cond.to], op);
    if ("from" in cond && compareUtf8(cond.from, cond.to) > 0) {
      throw this.refuse(op, "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound");
    }
    if (start !== undefined && (start.pk !== pk || !inRange(String(start.sk)))) throw this.refuse(op, "The provided starting key does not match the range key predicate");
    const partition = this.table.get(pk);
    if (partition === undefined) return { items: [] };
    const from = "prefix" in cond ? cond.prefix : cond.from;
    let lo = partition.seek(from);
    let hi = lo;
    while (hi < partition.order.length && inRange(partition.order[hi]!)) hi++;
    if (start !== undefined) {
      if (forward) lo = Math.max(lo, partition.seek(String(start.sk), true));
      else hi = Math.min(hi, partition.seek(String(start.sk)));
    }
    const order = partition.order;
    function* candidates(): Generator<Item> {
      if (forward) for (let i = lo; i < hi; i++) yield partition!.items.get(order[i]!)!;
      else for (let i = hi - 1; i >= lo; i--) yield partition!.items.get(order[i]!)!;
    }
    return this.page(candidates(), limit, (item) => ({ pk: item.pk, sk: item.sk }), op);
  }

  /** Every item of `pk` under `prefix`, across pages (DynamoCatalog's queryAll). */
  private queryAll(pk: string, prefix: string, op: string): Promise<Item[]> {
    return this.queryItems(pk, { prefix }, op, { forward: true });
  }

  /** Items of `pk` matching `cond`, at most `limit`, across pages (DynamoCatalog's queryItems). */
  private queryItems(pk: string, cond: SortKeyCondition, op: string, opts: { limit?: number; forward: boolean }): Promise<Item[]> {
    return queryItems(this.partition(pk), this.pageSize, cond, op, opts);
  }

  /** query on one partition, for the shared page walks (store/catalog-layout.ts). */
  private partition(pk: string): PartitionQuery {
    return (cond, start, limit, forward, op) => this.query(pk, cond, start, limit, forward, op);
  }

  /** DynamoCatalog's queryPage: one page under `prefix` after `after`, `last` (after the prefix) when more may follow. */
  private queryPage(pk: string, prefix: string, after: string | undefined, limit: number | undefined, max: number, what: string): { items: Item[]; last?: string } {
    const size = checkPageSize(limit, max, what);
    const out = this.query(pk, { prefix }, after === undefined ? undefined : { pk, sk: `${prefix}${after}` }, size, true, `Query (${what}s)`);
    const last = pageCursor(out.items, out.start !== undefined, prefix);
    return last === undefined ? { items: out.items } : { items: out.items, last };
  }

  /**
   * Query of the position index (partition pk, sort key gpos; projection
   * ALL) between two gpos values, after `start` ({pk, sk, gpos}); one
   * position's items in sort-key order (DynamoDB gives them in no stated order).
   */
  private queryGpos(pk: string, range: { from: string; to: string }, start: Item | undefined, limit: number | undefined, op: string): QueryPage {
    this.reach();
    this.checkLimit(limit, op);
    const gposOf = (item: Item): string => String(item[GPOS_ATTRIBUTE]);
    const inRange = (g: string): boolean => compareUtf8(g, range.from) >= 0 && compareUtf8(g, range.to) <= 0;
    if (start !== undefined && !inRange(gposOf(start))) throw this.refuse(op, "The provided starting key does not match the range key predicate");
    const order = (a: Item, b: Item): number => compareUtf8(gposOf(a), gposOf(b)) || compareUtf8(String(a.sk), String(b.sk));
    const indexed = [...(this.table.get(pk)?.items.values() ?? [])].filter(
      (item) => typeof item[GPOS_ATTRIBUTE] === "string" && inRange(gposOf(item)) && (start === undefined || order(item, start) > 0) && !this.lagging(item),
    );
    indexed.sort(order);
    return this.page(indexed, limit, (item) => ({ pk: item.pk, sk: item.sk, [GPOS_ATTRIBUTE]: item[GPOS_ATTRIBUTE] }), op);
  }

  /**
   * Query of a region's replication index (partition `pending:<region>` =
   * "pending", sort key replicaKey; projecting databaseId, name,
   * snapshotId), replicaKeys under `prefix`, after `start`.
   */
  private queryPending(region: string, prefix: string | undefined, start: Item | undefined, limit: number | undefined, op: string, missing: string): QueryPage {
    this.reach();
    if (!this.replicaRegions.has(region)) throw new ConfigError(missing, { cause: answer("ValidationException", `The table does not have the specified index: ${replicaIndexName(region)}`) });
    this.checkLimit(limit, op);
    const pend = replicaPendingAttribute(region);
    const rk = (item: Item): string => String(item[REPLICA_KEY_ATTRIBUTE]);
    if (start !== undefined && prefix !== undefined && !rk(start).startsWith(prefix)) throw this.refuse(op, "The provided starting key does not match the range key predicate");
    const indexed: Item[] = [];
    for (const partition of this.table.values()) {
      for (const item of partition.items.values()) {
        if (item[pend] !== REPLICA_PENDING || typeof item[REPLICA_KEY_ATTRIBUTE] !== "string" || this.lagging(item)) continue;
        if (prefix !== undefined && !rk(item).startsWith(prefix)) continue;
        if (start !== undefined && compareUtf8(rk(item), rk(start)) <= 0) continue;
        indexed.push(item);
      }
    }
    indexed.sort((a, b) => compareUtf8(rk(a), rk(b)));
    const projected = (item: Item): Item => {
      const out: Item = { pk: item.pk, sk: item.sk, [pend]: item[pend], [REPLICA_KEY_ATTRIBUTE]: item[REPLICA_KEY_ATTRIBUTE] };
      for (const a of REPLICA_INDEX_PROJECTION) if (item[a] !== undefined) out[a] = item[a];
      return out;
    };
    return this.page(indexed.map(projected), limit, (item) => ({ pk: item.pk, sk: item.sk, [pend]: item[pend], [REPLICA_KEY_ATTRIBUTE]: item[REPLICA_KEY_ATTRIBUTE] }), op);
  }

  // ---------------------------------------------------------- databases

  async putDatabase(record: DatabaseRecord): Promise<void> {
    const { walIndex: _asked, ...checked } = checkInput(databaseRecordSchema, record, "database record");
    const r: DatabaseRecord = checked.kind === "generic" && this.walIndexComplete(checked.databaseId) ? { ...checked, walIndex: "complete" } : checked;
    // Puts without conditions: the transaction is never canceled, only refused.
    this.transact(
      [{ put: { ...r, pk: databasePk(r.databaseId), sk: CATALOG_SORT_KEYS.meta } }, { put: { ...r, pk: REGISTRY_PK, sk: registrySk(r.databaseId) } }],
      "TransactWriteItems (database registration)",
    );
  }

  private walIndexComplete(databaseId: string): boolean {
    const pk = databasePk(databaseId);
    const existing = this.getItem(pk, CATALOG_SORT_KEYS.meta, "GetItem (database)");
    if (existing?.walIndex === "complete") return true;
    return this.query(pk, { prefix: CATALOG_SORT_KEYS.walPrefix }, undefined, 1, true, "Query (any WAL)").items.length === 0;
  }

  private unmarkWalIndex(databaseId: string): void {
    const pk = databasePk(databaseId);
    const existing = this.getItem(pk, CATALOG_SORT_KEYS.meta, "GetItem (database)");
    if (existing?.walIndex === undefined) return;
    const unmark = (key: Key): TransactWrite => ({
      update: key,
      condition: (item) => item !== undefined,
      apply: ({ walIndex: _w, ...rest }) => rest,
    });
    const outcome = this.transact([unmark({ pk, sk: CATALOG_SORT_KEYS.meta }), unmark({ pk: REGISTRY_PK, sk: registrySk(databaseId) })], "TransactWriteItems (unmark WAL index)");
    if (outcome === "canceled") this.updateItem({ pk, sk: CATALOG_SORT_KEYS.meta }, "UpdateItem (unmark WAL index)", {}, ({ walIndex: _w, ...rest }) => rest);
  }

  async getDatabase(databaseId: string): Promise<DatabaseRecord | undefined> {
    const item = this.getItem(databasePk(databaseId), CATALOG_SORT_KEYS.meta, "GetItem (database)");
    return item === undefined ? undefined : this.parse(databaseRecordSchema, item, "database record");
  }

  async listDatabases(): Promise<DatabaseRecord[]> {
    return listAllDatabases(this.pageSize, (after, limit) => this.listDatabasePage(after, limit));
  }

  async listDatabasePage(after?: string, limit?: number): Promise<DatabasePage> {
    checkDatabaseCursor(after);
    const page = this.queryPage(REGISTRY_PK, REGISTRY_SK_PREFIX, after, limit, DATABASE_PAGE_MAX, "database");
    const databases = page.items.map((item) => this.parse(databaseRecordSchema, item, "database registry entry"));
    return page.last === undefined ? { databases } : { databases, next: page.last };
  }

  // ---------------------------------------------------------------- WAL

  async recordWal(record: WalRecord): Promise<RecordOutcome> {
    const r = checkInput(walRecordSchema, record, "WAL record");
    checkWalRecordName(r);
    const pk = databasePk(r.databaseId);
    const sk = walSkOfName(r.name)!;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.putItem(walItem(r, sk), "PutItem (WAL)", (existing) => existing === undefined)) {
        if (outsideWalIndex(r)) this.unmarkWalIndex(r.databaseId);
        return { outcome: "created", record: r };
      }
      const existingItem = this.getItem(pk, sk, "GetItem (WAL)");
      if (existingItem === undefined) continue;
      return existingWalOutcome(r, this.parse(walRecordSchema, existingItem, "WAL record"));
    }
    throw walChangedError(r);
  }

  async getWal(databaseId: string, name: string): Promise<WalRecord | undefined> {
    const sk = walSkOfName(name);
    if (sk === undefined) return undefined; // not a WAL file name: it can never have been recorded
    const item = this.getItem(databasePk(databaseId), sk, "GetItem (WAL)");
    return item === undefined ? undefined : this.parse(walRecordSchema, item, "WAL record");
  }

  async listWal(databaseId: string): Promise<WalRecord[]> {
    return (await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.walPrefix, "Query (WAL)")).map((item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async listWalPage(databaseId: string, after?: string, limit?: number): Promise<WalPage> {
    const start = walPageStart(databaseId, after);
    const { items, last } = this.queryPage(databasePk(databaseId), CATALOG_SORT_KEYS.walPrefix, start, limit, RECORD_PAGE_MAX, "WAL record");
    return walPage(items.map((item) => this.parse(walRecordSchema, item, "WAL record")), last);
  }

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
      (pk, range) => (from, pageLimit) => this.queryGpos(pk, range, from, pageLimit, "Query (generic WAL range)"),
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
    const setKeys = (missing: { sk: string; gpos: string }[]): number =>
      countInRounds(missing, ({ sk, gpos }) => this.updateItem({ pk, sk }, "UpdateItem (WAL position key)", { ":gpos": gpos }, (item) => ({ ...item, [GPOS_ATTRIBUTE]: gpos }), (item) => item !== undefined));
    const mark = (key: Key): TransactWrite => ({
      update: key,
      condition: (item) => item !== undefined && item.kind === "generic",
      apply: (item) => ({ ...item, walIndex: "complete" }),
    });
    const markComplete = (): boolean =>
      this.transact([mark({ pk, sk: CATALOG_SORT_KEYS.meta }), mark({ pk: REGISTRY_PK, sk: registrySk(databaseId) })], "TransactWriteItems (mark WAL index complete)") === "done";
    return walkPositionKeys(databaseId, after, max, this.pageSize, this.partition(pk), (item) => this.parse(walRecordSchema, item, "WAL record"), setKeys, markComplete);
  }

  async listWalTimelines(databaseId: string): Promise<WalTimeline[]> {
    return walTimelines(this.partition(databasePk(databaseId)), this.pageSize, (item) => this.parse(walRecordSchema, item, "WAL record"));
  }

  async setReplicaStatus(databaseId: string, name: string, region: string, status: WalRecord["replicas"][string]): Promise<void> {
    this.updateReplica(databaseId, walSkOfName(name), region, status, `WAL record ${name}`);
  }

  async setSnapshotReplicaStatus(databaseId: string, snapshotId: string, region: string, status: SnapshotRecord["replicas"][string]): Promise<void> {
    this.updateReplica(databaseId, snapshotId.length === 0 ? undefined : snapshotSk(snapshotId), region, status, `snapshot record ${snapshotId}`);
  }

  /** Sets replicas[region] on an existing item; "failed"/"pending" never replace "replicated"; the region's marker follows. */
  private updateReplica(databaseId: string, sk: string | undefined, region: string, status: WalRecord["replicas"][string], what: string): void {
    if (sk === undefined) throw replicaTargetMissing(what, databaseId, region);
    const value = checkInput(walRecordSchema.shape.replicas.element, status, "replica status");
    const keep = value.status !== "replicated";
    const op = "UpdateItem (replica status)";
    const pk = databasePk(databaseId);
    const pend = replicaPendingAttribute(region);
    const done = this.updateItem(
      { pk, sk },
      op,
      replicaStatusValues(databaseId, sk, value),
      (item) => {
        const next: Item = { ...item, replicas: { ...this.replicasOf(item, op), [region]: value } };
        if (keep) return { ...next, [pend]: REPLICA_PENDING, [REPLICA_KEY_ATTRIBUTE]: replicaKey(databaseId, sk) };
        delete next[pend];
        return next;
      },
      (item) => item !== undefined && (!keep || notReplicated(item, region)),
    );
    if (done) return;
    const item = this.getItem(pk, sk, "GetItem (replica status)");
    if (item === undefined) throw replicaTargetMissing(what, databaseId, region, conditionFailed());
  }

  /**
   * The `replicas` map an update sets one region of (SET replicas.<region>):
   * a value there that is not a map is DynamoDB's invalid document path; none
   * (no item) is taken as empty, the update's condition refusing it.
   */
  private replicasOf(item: Item, op: string): Item {
    const replicas = item.replicas;
    if (replicas === undefined) return {};
    if (typeof replicas !== "object" || replicas === null || Array.isArray(replicas)) throw this.refuse(op, "The document path provided in the update expression is invalid for update");
    return replicas as Item;
  }

  // -------------------------------------------------- what a region lacks

  async listUnreplicated(region: string, options: UnreplicatedOptions = {}): Promise<UnreplicatedPage> {
    return unreplicatedPage(region, options, this.pageSize, (prefix) => (from, pageLimit) =>
      this.queryPending(region, prefix, from, pageLimit, "Query (unreplicated records)", missingReplicaIndex(this.tableName, this.where, region)),
    );
  }

  async markUnreplicated(databaseId: string, region: string, after?: string, limit?: number): Promise<MarkUnreplicatedPage> {
    const max = markUnreplicatedStart(region, after, limit);
    const pk = databasePk(databaseId);
    const pend = replicaPendingAttribute(region);
    const op = "UpdateItem (mark unreplicated)";
    const mark = (unmarked: Item[]): number =>
      countInRounds(unmarked, (item) => {
        const sk = String(item.sk);
        const values = markUnreplicatedValues(databaseId, sk);
        return this.updateItem(
          { pk, sk },
          op,
          values,
          (existing) => {
            const replicas = this.replicasOf(existing, op);
            return { ...existing, replicas: { ...replicas, [region]: replicas[region] ?? values[":status"] }, [pend]: REPLICA_PENDING, [REPLICA_KEY_ATTRIBUTE]: values[":rk"] };
          },
          (existing) => existing !== undefined && notReplicated(existing, region),
        );
      });
    return walkReplicaMarks(databaseId, region, after, max, this.pageSize, this.partition(pk), mark);
  }

  // --------------------------------------------------------------- head

  async advanceHead(databaseId: string, name: string, sortKey: string, archivedAt: string): Promise<void> {
    const head = headOf(databaseId, name, sortKey, archivedAt);
    this.updateItem(
      { pk: databasePk(databaseId), sk: CATALOG_SORT_KEYS.head },
      "UpdateItem (head)",
      headValues(head),
      (item) => ({ ...item, databaseId: head.databaseId, lastName: head.lastName, lastSortKey: head.lastSortKey, lastArchivedAt: head.lastArchivedAt }),
      (item) => item?.lastSortKey === undefined || (typeof item.lastSortKey === "string" && compareUtf8(item.lastSortKey, head.lastSortKey) < 0),
    );
  }

  async getHead(databaseId: string): Promise<HeadRecord | undefined> {
    const newest = await newestPostgresHead(databaseId, this.partition(databasePk(databaseId)), (item) => this.parse(walRecordSchema, item, "WAL record"));
    if (newest) return newest;
    const item = this.getItem(databasePk(databaseId), CATALOG_SORT_KEYS.head, "GetItem (head)");
    return item === undefined ? undefined : this.parse(headRecordSchema, item, "head");
  }

  // --------------------------------------------------------- quarantine

  async recordQuarantine(record: QuarantineRecord): Promise<void> {
    const r = checkInput(quarantineRecordSchema, record, "quarantine record");
    const sk = quarantineSk(r);
    const op = "PutItem (quarantine)";
    if (!this.putItem({ ...r, pk: databasePk(r.databaseId), sk }, op, (existing) => existing === undefined)) throw this.fail(op, conditionFailed());
  }

  async listQuarantine(databaseId: string, name?: string): Promise<QuarantineRecord[]> {
    const items = await this.queryAll(databasePk(databaseId), quarantinePrefix(name), "Query (quarantine)");
    return quarantineInOrder(items.map((item) => ({ sk: String(item.sk), record: this.parse(quarantineRecordSchema, item, "quarantine record") })), name);
  }

  // ------------------------------------------------------------- chunks

  async missingChunks(databaseId: string, sha256s: readonly string[]): Promise<string[]> {
    const unique = uniqueHashes(databaseId, sha256s);
    if (unique.length === 0) return [];
    const pk = databasePk(databaseId);
    const present = new Set(this.batchGet(unique.map((h) => ({ pk, sk: chunkSk(h) })), "BatchGetItem (chunks)").map((item) => String(item.sk).slice(CATALOG_SORT_KEYS.chunkPrefix.length)));
    return unique.filter((h) => !present.has(h));
  }

  async getChunks(databaseId: string, sha256s: readonly string[]): Promise<ChunkItem[]> {
    const unique = uniqueHashes(databaseId, sha256s);
    if (unique.length === 0) return [];
    const pk = databasePk(databaseId);
    const found = new Map<string, ChunkItem>();
    for (const item of this.batchGet(unique.map((h) => ({ pk, sk: chunkSk(h) })), "BatchGetItem (chunks)")) {
      const record = this.parse(chunkItemSchema, item, "chunk record");
      found.set(record.sha256, record);
    }
    return unique.flatMap((h) => found.get(h) ?? []);
  }

  async recordChunks(records: readonly ChunkItem[]): Promise<void> {
    const checked = records.map((r) => checkInput(chunkItemSchema, r, "chunk record"));
    this.batchWrite(chunkItems(checked).map((item) => ({ put: item })), "chunk records");
  }

  async listChunks(databaseId: string): Promise<ChunkItem[]> {
    return (await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.chunkPrefix, "Query (chunks)")).map((item) => this.parse(chunkItemSchema, item, "chunk record"));
  }

  async listChunkPage(databaseId: string, after?: string, limit?: number): Promise<ChunkPage> {
    const { items, last } = this.recordPage(databaseId, CATALOG_SORT_KEYS.chunkPrefix, after, limit, "chunk");
    const chunks = items.map((item) => this.parse(chunkItemSchema, item, "chunk record"));
    return last === undefined ? { chunks } : { chunks, next: last };
  }

  private recordPage(databaseId: string, prefix: string, after: string | undefined, limit: number | undefined, what: string): { items: Item[]; last?: string } {
    if (after !== undefined) checkInput(sha256Schema, after, `${what} listing cursor`);
    return this.queryPage(databasePk(databaseId), prefix, after, limit, RECORD_PAGE_MAX, what);
  }

  async movePackedChunks(records: readonly ChunkItem[], fromVaultKey: string): Promise<string[]> {
    const checked = records.map((r) => checkInput(chunkItemSchema, r, "chunk record"));
    const moved: string[] = [];
    inRounds(checked, (r) => {
      if (this.putItem({ ...r, pk: databasePk(r.databaseId), sk: chunkSk(r.sha256) }, "PutItem (move chunk)", (existing) => existing?.vaultKey === fromVaultKey)) moved.push(r.sha256);
    });
    return moved;
  }

  async deleteChunksInPack(databaseId: string, sha256s: readonly string[], vaultKey: string): Promise<string[]> {
    const deleted: string[] = [];
    inRounds(uniqueHashes(databaseId, sha256s), (h) => {
      if (this.deleteItem({ pk: databasePk(databaseId), sk: chunkSk(h) }, "DeleteItem (chunk in pack)", (existing) => existing?.vaultKey === vaultKey)) deleted.push(h);
    });
    return deleted;
  }

  async deleteChunks(databaseId: string, sha256s: readonly string[]): Promise<void> {
    this.batchWrite(
      [...new Set(sha256s)].map((h) => ({ delete: { pk: databasePk(databaseId), sk: chunkSk(h) } })),
      "chunk deletions",
    );
  }

  // ------------------------------------------------------------- packs

  async recordPacks(records: readonly PackItem[]): Promise<void> {
    const checked = records.map((r) => checkInput(packItemSchema, r, "pack record"));
    this.batchWrite(
      packItems(checked).map((item) => ({ put: item })),
      "pack records",
    );
  }

  async listPacksRecordedSince(databaseId: string, since: string, after?: string, limit?: number): Promise<PackLogPage> {
    const size = checkPackLogPage(since, after, limit);
    const pk = databasePk(databaseId);
    const prefix = CATALOG_SORT_KEYS.packLogPrefix;
    const start = after === undefined ? undefined : { pk, sk: `${prefix}${after}` };
    const out = this.query(pk, packLogRange(since), start, size, true, "Query (pack log)");
    const packs = out.items.map((item) => this.parse(packLogEntrySchema, item, "pack log item"));
    const next = pageCursor(out.items, out.start !== undefined, prefix);
    return next === undefined ? { packs } : { packs, next };
  }

  async getPack(databaseId: string, name: string): Promise<PackItem | undefined> {
    const key = packKey(databaseId, name);
    const item = this.getItem(key.pk, key.sk, "GetItem (pack)");
    return item === undefined ? undefined : this.parse(packItemSchema, item, "pack record");
  }

  async getPacks(databaseId: string, names: readonly string[]): Promise<PackItem[]> {
    const unique = uniqueHashes(databaseId, names);
    if (unique.length === 0) return [];
    const pk = databasePk(databaseId);
    const found = new Map<string, PackItem>();
    for (const item of this.batchGet(unique.map((n) => ({ pk, sk: packSk(n) })), "BatchGetItem (packs)")) {
      const record = this.parse(packItemSchema, item, "pack record");
      found.set(record.name, record);
    }
    return unique.flatMap((h) => found.get(h) ?? []);
  }

  async listPackPage(databaseId: string, after?: string, limit?: number): Promise<PackPage> {
    const { items, last } = this.recordPage(databaseId, CATALOG_SORT_KEYS.packPrefix, after, limit, "pack");
    const packs = items.map((item) => this.parse(packItemSchema, item, "pack record"));
    return last === undefined ? { packs } : { packs, next: last };
  }

  async markPacksOrphaned(databaseId: string, names: readonly string[], at: string): Promise<string[]> {
    return this.markPacks(databaseId, names, "orphanedAt", at, "UpdateItem (mark pack)");
  }

  async markPacksRepacked(databaseId: string, names: readonly string[], at: string): Promise<string[]> {
    return this.markPacks(databaseId, names, "repackedAt", at, "UpdateItem (mark pack repacked)");
  }

  private markPacks(databaseId: string, names: readonly string[], attribute: "orphanedAt" | "repackedAt", at: string, op: string): string[] {
    const unique = uniqueHashes(databaseId, names);
    const marked = new Set<string>();
    inRounds(unique, (name) => {
      if (this.updateItem({ pk: databasePk(databaseId), sk: packSk(name) }, op, { ":at": at }, (item) => ({ ...item, [attribute]: at }), (item) => item !== undefined)) marked.add(name);
    });
    return unique.filter((n) => marked.has(n));
  }

  async claimPackPromotion(databaseId: string, name: string, owner: string, until: string, now: string): Promise<string | undefined> {
    const key = packKey(databaseId, name, CATALOG_SORT_KEYS.promotingPrefix);
    for (let attempt = 0; attempt < 2; attempt++) {
      const taken = this.putItem(
        promotionClaimItem(key, databaseId, name, owner, until),
        "PutItem (claim pack promotion)",
        (existing) => existing === undefined || existing.owner === owner || (typeof existing.until === "string" && compareUtf8(existing.until, now) < 0),
      );
      if (taken) return undefined;
      const held = this.getItem(key.pk, key.sk, "GetItem (pack promotion claim)");
      if (held !== undefined) return String(held.until);
    }
    return now;
  }

  async releasePackPromotion(databaseId: string, name: string, owner: string): Promise<void> {
    const key = packKey(databaseId, name, CATALOG_SORT_KEYS.promotingPrefix);
    this.updateItem(key, "UpdateItem (release pack promotion)", { ":owner": owner, ":released": RELEASED }, (item) => ({ ...item, until: RELEASED }), (item) => item?.owner === owner);
  }

  async clearPackOrphaned(databaseId: string, name: string): Promise<boolean> {
    const key = packKey(databaseId, name);
    const cleared = this.updateItem(
      key,
      "UpdateItem (unmark pack)",
      {},
      ({ orphanedAt: _o, ...rest }) => rest,
      (item) => item?.orphanedAt !== undefined && item.deletingAt === undefined,
    );
    if (cleared) return true;
    const item = this.getItem(key.pk, key.sk, "GetItem (pack)");
    return item !== undefined && item["deletingAt"] === undefined;
  }

  async condemnPack(databaseId: string, name: string, orphanedAt: string, at: string): Promise<boolean> {
    const key = packKey(databaseId, name);
    return this.updateItem(key, "UpdateItem (condemn pack)", { ":o": orphanedAt, ":at": at }, (item) => ({ ...item, deletingAt: at }), (item) => item?.orphanedAt === orphanedAt && item.deletingAt === undefined);
  }

  async deleteCondemnedPack(databaseId: string, name: string): Promise<boolean> {
    const key = packKey(databaseId, name);
    return this.deleteItem(key, "DeleteItem (pack)", (item) => item?.deletingAt !== undefined);
  }

  async deleteWal(databaseId: string, names: readonly string[]): Promise<void> {
    const keys = [...new Set(names)].flatMap((n): BatchWrite[] => {
      const sk = walSkOfName(n);
      return sk === undefined ? [] : [{ delete: { pk: databasePk(databaseId), sk } }];
    });
    this.batchWrite(keys, "WAL deletions");
  }

  async deleteSnapshot(databaseId: string, snapshotId: string): Promise<void> {
    this.deleteItem({ pk: databasePk(databaseId), sk: snapshotSk(snapshotId) }, "DeleteItem (snapshot)");
  }

  async recordAudit(records: readonly AuditRecord[]): Promise<void> {
    const checked = records.map((r) => checkInput(auditRecordSchema, r, "audit record"));
    this.batchWrite(
      checked.map((r) => ({ put: { ...r, pk: databasePk(r.databaseId), sk: auditSk(r) } })),
      "audit records",
    );
  }

  async listAudit(databaseId: string): Promise<AuditRecord[]> {
    return (await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.auditPrefix, "Query (audit)")).map((item) => this.parse(auditRecordSchema, item, "audit record"));
  }

  // ---------------------------------------------------------- snapshots

  async recordSnapshot(record: SnapshotRecord): Promise<SnapshotOutcome> {
    const r = checkInput(snapshotRecordSchema, record, "snapshot record");
    checkSnapshotId(r);
    const pk = databasePk(r.databaseId);
    const sk = snapshotSk(r.snapshotId);
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.putItem(snapshotItem(r, sk), "PutItem (snapshot)", (existing) => existing === undefined)) {
        return { outcome: "created", record: r };
      }
      const existingItem = this.getItem(pk, sk, "GetItem (snapshot)");
      if (existingItem === undefined) continue;
      return existingSnapshotOutcome(r, this.parse(snapshotRecordSchema, existingItem, "snapshot record"));
    }
    throw snapshotChangedError(r);
  }

  async getSnapshot(databaseId: string, snapshotId: string): Promise<SnapshotRecord | undefined> {
    if (snapshotId.length === 0) return undefined;
    const item = this.getItem(databasePk(databaseId), snapshotSk(snapshotId), "GetItem (snapshot)");
    return item === undefined ? undefined : this.parse(snapshotRecordSchema, item, "snapshot record");
  }

  async listSnapshots(databaseId: string): Promise<SnapshotRecord[]> {
    return (await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.snapshotPrefix, "Query (snapshots)")).map((item) => this.parse(snapshotRecordSchema, item, "snapshot record"));
  }

  // ------------------------------------------------------- verification

  async recordVerification(record: VerificationRecord): Promise<void> {
    const r = checkInput(verificationRecordSchema, record, "verification record");
    this.putItem({ ...r, pk: databasePk(r.databaseId), sk: verificationSk(r) }, "PutItem (verification)");
  }

  async listVerifications(databaseId: string, snapshotId?: string): Promise<VerificationRecord[]> {
    const all = (await this.queryAll(databasePk(databaseId), CATALOG_SORT_KEYS.verifyPrefix, "Query (verifications)")).map((item) => this.parse(verificationRecordSchema, item, "verification record"));
    return snapshotId === undefined ? all : all.filter((v) => v.snapshotId === snapshotId);
  }

  async setSnapshotPinned(databaseId: string, snapshotId: string, pinned: boolean): Promise<void> {
    const done = this.updateItem({ pk: databasePk(databaseId), sk: snapshotSk(snapshotId) }, "UpdateItem (pin)", { ":p": pinned }, (item) => ({ ...item, pinned }), (item) => item !== undefined);
    if (!done) throw new NotFoundError(`no snapshot ${snapshotId} of database ${databaseId} to ${pinned ? "pin" : "unpin"}`, { cause: conditionFailed() });
  }

  async setSnapshotVerification(databaseId: string, snapshotId: string, v: NonNullable<SnapshotRecord["verification"]>): Promise<void> {
    const value = checkInput(snapshotRecordSchema.shape.verification.unwrap(), v, "snapshot verification");
    const done = this.updateItem(
      { pk: databasePk(databaseId), sk: snapshotSk(snapshotId) },
      "UpdateItem (snapshot verification)",
      { ":v": value },
      (item) => ({ ...item, verification: value }),
      (item) => item !== undefined,
    );
    if (!done) throw new NotFoundError(`no snapshot ${snapshotId} of database ${databaseId} to record a verification on`, { cause: conditionFailed() });
  }
}

/** DynamoCatalog's condition `attribute_not_exists(replicas.<region>) OR replicas.<region>.status <> "replicated"`. */
function notReplicated(item: Item, region: string): boolean {
  const replicas = item.replicas;
  if (typeof replicas !== "object" || replicas === null) return true;
  const current = (replicas as Record<string, unknown>)[region];
  if (current === undefined) return true;
  const status = typeof current === "object" && current !== null ? (current as Record<string, unknown>).status : undefined;
  return status !== undefined && status !== "replicated";
}
