/**
 * DynamoCatalog against a real DynamoDB Local (local/emulators.ts), through
 * the shared Catalog contract, plus the table layout it promises infra/.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapLimit } from "../../core/concurrency.js";
import { ConfigError, InvalidInputError, ServiceUnavailableError, SnapshotConflictError } from "../../core/errors.js";
import type { ChunkItem, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { LOCAL_CREDENTIALS, freePort, startDynamo, type DynamoEmulator } from "../../local/emulators.js";
import { CATALOG_KEY_SCHEMA, GENERIC_WAL_INDEX, GPOS_ATTRIBUTE } from "../../store/catalog-layout.js";
import { DynamoCatalog, createTable, genericWalIndexDefinition, type BatchRetryOptions } from "../../store/dynamo-catalog.js";
import { indexWal } from "../../agent/wal-index.js";
import { CONTRACT_REPLICA_REGIONS, catalogContract } from "./catalog.contract.js";

let ddb: DynamoEmulator;
let client: DynamoDBClient;
let closedEndpoint: string;

beforeAll(async () => {
  ddb = await startDynamo();
  client = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  closedEndpoint = `http://127.0.0.1:${await freePort()}`;
});

afterAll(async () => {
  client?.destroy();
  await ddb?.stop();
});

function catalogAt(endpoint: string, tableName: string, pageSize?: number, batchRetry?: BatchRetryOptions): DynamoCatalog {
  return new DynamoCatalog({
    tableName,
    region: "us-east-1",
    endpoint,
    credentials: LOCAL_CREDENTIALS,
    ...(pageSize === undefined ? {} : { pageSize }),
    ...(batchRetry === undefined ? {} : { batchRetry }),
  });
}

async function freshTable(): Promise<string> {
  const name = `walvault-test-${randomUUID()}`;
  await createTable(client, name, { replicaRegions: CONTRACT_REPLICA_REGIONS });
  return name;
}

catalogContract("DynamoCatalog on DynamoDB Local", async (opts) => ({
  catalog: catalogAt(ddb.endpoint, await freshTable(), opts?.pageSize),
  unreachable: { catalog: catalogAt(closedEndpoint, "walvault-catalog"), endpoint: closedEndpoint },
}));

const SEG = "000000010000000000000003";
function record(overrides: Partial<WalRecord> = {}): WalRecord {
  return {
    databaseId: "pg-main",
    name: SEG,
    kind: "segment",
    timeline: 1,
    size: 16,
    storedSize: 16,
    sha256: "ab12".repeat(16),
    codec: "none",
    status: "stored",
    vaultKey: `db/pg-main/wal/00000001/${SEG}`,
    archivedAt: "2025-01-01T00:00:00.000Z",
    replicas: {},
    ...overrides,
  };
}

/** A catalog table as createTable made it before any secondary index: the keys only. */
async function tableWithoutIndexes(): Promise<string> {
  const name = `walvault-test-${randomUUID()}`;
  await client.send(
    new CreateTableCommand({
      TableName: name,
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  return name;
}

describe("DynamoCatalog on DynamoDB Local, beyond the contract", () => {
  it("createTable makes a pay-per-request table with the published key schema, and is idempotent", async () => {
    // Prepare
    const name = `walvault-test-${randomUUID()}`;

    // Act
    await createTable(client, name);
    await createTable(client, name);
    const described = await client.send(new DescribeTableCommand({ TableName: name }));

    // Assess
    const table = described.Table;
    expect(table?.TableStatus).toBe("ACTIVE");
    expect(table?.BillingModeSummary?.BillingMode).toBe("PAY_PER_REQUEST");
    expect(table?.KeySchema).toEqual([
      { AttributeName: CATALOG_KEY_SCHEMA.partitionKey.name, KeyType: "HASH" },
      { AttributeName: CATALOG_KEY_SCHEMA.sortKey.name, KeyType: "RANGE" },
    ]);
    expect(table?.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ]),
    );
  });

  it("createTable adds the position index of generic segments to a table from before it, and it lists what recordWal writes", async () => {
    // Prepare: a table as createTable made it before the index.
    const name = await tableWithoutIndexes();

    // Act
    await createTable(client, name);
    const described = await client.send(new DescribeTableCommand({ TableName: name }));
    const catalog = catalogAt(ddb.endpoint, name);
    await catalog.recordWal(record({ name: "wal/000007.log", startLsn: "7", vaultKey: "db/pg-main/wal/wal/000007.log" }));
    const listed = await catalog.listGenericWalRange("pg-main", "wal", 0n, undefined);

    // Assess
    const index = described.Table?.GlobalSecondaryIndexes?.find((i) => i.IndexName === GENERIC_WAL_INDEX);
    expect(index?.KeySchema).toEqual(genericWalIndexDefinition().KeySchema);
    expect(index?.Projection?.ProjectionType).toBe("ALL");
    expect(listed.records.map((r) => r.name)).toEqual(["wal/000007.log"]);
  });

  it("records a generic segment with its position key and PostgreSQL WAL without one (the index stays sparse)", async () => {
    // Prepare
    const name = await freshTable();
    const catalog = catalogAt(ddb.endpoint, name);

    // Act
    await catalog.recordWal(record({ name: "wal/000007.log", startLsn: "7", vaultKey: "db/pg-main/wal/wal/000007.log" }));
    await catalog.recordWal(record());
    const generic = await catalog.doc.send(new GetCommand({ TableName: name, Key: { pk: "db#pg-main", sk: "wal#wal#000007.log" } }));
    const pg = await catalog.doc.send(new GetCommand({ TableName: name, Key: { pk: "db#pg-main", sk: `wal#00000001#${SEG}` } }));

    // Assess
    expect(generic.Item?.[GPOS_ATTRIBUTE]).toBe("wal#00000000000000000007");
    expect(pg.Item).toBeDefined();
    expect(pg.Item?.[GPOS_ATTRIBUTE]).toBeUndefined();
  });

  it("backfillWalIndex gives records written before the index their position key, so the index lists them, and marks the database", async () => {
    // Prepare: generic segments whose items lack gpos, as code before the index wrote them.
    const name = await freshTable();
    const catalog = catalogAt(ddb.endpoint, name, 2);
    const files = [7, 8, 9, 10, 11].map((n) => `seg-${n}.log`);
    for (const [i, f] of files.entries()) await catalog.recordWal(record({ name: `wal/${f}`, startLsn: String(7 + i), vaultKey: `db/pg-main/wal/wal/${f}` }));
    for (const f of files) await catalog.doc.send(new UpdateCommand({ TableName: name, Key: { pk: "db#pg-main", sk: `wal#wal#${f}` }, UpdateExpression: "REMOVE gpos" }));
    await catalog.putDatabase({ databaseId: "pg-main", kind: "generic", walSegmentSize: 16, createdAt: "2025-01-01T00:00:00.000Z" });
    const before = await catalog.listGenericWalRange("pg-main", "wal", 0n, undefined);

    // Act
    const { updated } = await indexWal(catalog, "pg-main", { pageSize: 2 });
    const listed = await catalog.listGenericWalRange("pg-main", "wal", 8n, 10n);

    // Assess
    expect(before.records).toEqual([]);
    expect(updated).toBe(5);
    expect(listed.records.map((r) => r.name)).toEqual(["wal/seg-8.log", "wal/seg-9.log", "wal/seg-10.log"]);
    expect((await catalog.getDatabase("pg-main"))?.walIndex).toBe("complete");
  });

  it("backfillWalIndex of a marked database gives a record written without its key after the mark (ingest from before the key) its key, and keeps the mark", async () => {
    // Prepare: a generic database marked from its registration, then segments of which one lost its key, as older ingest wrote it.
    const name = await freshTable();
    const catalog = catalogAt(ddb.endpoint, name, 2);
    await catalog.putDatabase({ databaseId: "pg-main", kind: "generic", walSegmentSize: 16, createdAt: "2025-01-01T00:00:00.000Z" });
    for (const n of [7, 8, 9]) await catalog.recordWal(record({ name: `wal/seg-${n}.log`, startLsn: String(n), vaultKey: `db/pg-main/wal/wal/seg-${n}.log` }));
    await catalog.doc.send(new UpdateCommand({ TableName: name, Key: { pk: "db#pg-main", sk: "wal#wal#seg-8.log" }, UpdateExpression: "REMOVE gpos" }));
    const marked = (await catalog.getDatabase("pg-main"))?.walIndex;
    const before = await catalog.listGenericWalRange("pg-main", "wal", 7n, 9n);

    // Act
    const { updated } = await indexWal(catalog, "pg-main", { pageSize: 2 });
    const listed = await catalog.listGenericWalRange("pg-main", "wal", 7n, 9n);

    // Assess
    expect(marked).toBe("complete");
    expect(before.records.map((r) => r.name)).toEqual(["wal/seg-7.log", "wal/seg-9.log"]);
    expect(updated).toBe(1);
    expect(listed.records.map((r) => r.name)).toEqual(["wal/seg-7.log", "wal/seg-8.log", "wal/seg-9.log"]);
    expect((await catalog.getDatabase("pg-main"))?.walIndex).toBe("complete");
  });

  it("listGenericWalRange reads only the range: Queries on the index whose items scanned are the records returned, however large the archive", async () => {
    // Prepare: 600 generic segments of two streams and 100 PostgreSQL records beside them, counted from here.
    const name = await freshTable();
    const client2 = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
    const catalog = new DynamoCatalog({ tableName: name, client: client2, where: ddb.endpoint });
    for (const stream of ["wal", "wal-2"]) {
      await mapLimit(Array.from({ length: 300 }, (_, i) => i + 1), 16, (n) => catalog.recordWal(record({ name: `${stream}/seg-${n}.log`, startLsn: String(n), vaultKey: `db/pg-main/wal/${stream}/seg-${n}.log` })));
    }
    const pgName = (n: number): string => `0000000100000000${n.toString(16).toUpperCase().padStart(8, "0")}`;
    await mapLimit(Array.from({ length: 100 }, (_, i) => i + 1), 16, (n) => catalog.recordWal(record({ name: pgName(n), vaultKey: `db/pg-main/wal/00000001/${pgName(n)}` })));
    const sent: { name: string; index?: string; scanned?: number }[] = [];
    client2.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const input = args.input as { IndexName?: string };
        const output = out.output as { ScannedCount?: number };
        sent.push({ name: String(context.commandName), ...(input.IndexName === undefined ? {} : { index: input.IndexName }), ...(output.ScannedCount === undefined ? {} : { scanned: output.ScannedCount }) });
        return out;
      },
      { step: "initialize", name: "walvaultTestRangeLog" },
    );

    // Act
    const page = await catalog.listGenericWalRange("pg-main", "wal", 101n, 120n);

    // Assess
    expect(page.records.map((r) => r.name)).toEqual(Array.from({ length: 20 }, (_, i) => `wal/seg-${101 + i}.log`));
    expect(page.next).toBeUndefined();
    expect(sent).toEqual([{ name: "QueryCommand", index: GENERIC_WAL_INDEX, scanned: 20 }]);
    client2.destroy();
  }, 60_000);

  it("listGenericWalRange on a table without the position index rejects with ConfigError", async () => {
    // Prepare
    const name = await tableWithoutIndexes();

    // Act
    const e = await catalogAt(ddb.endpoint, name).listGenericWalRange("pg-main", "wal", 0n, undefined).then(
      () => undefined,
      (err: unknown) => err,
    );

    // Assess
    expect(e).toBeInstanceOf(ConfigError);
  });

  it("createTable adds the replication index of each region an existing table lacks", async () => {
    // Prepare: a table from before the replication indexes.
    const name = `walvault-test-${randomUUID()}`;
    await createTable(client, name);

    // Act
    await createTable(client, name, { replicaRegions: ["eu-west-1", "us-west-2"] });
    const described = await client.send(new DescribeTableCommand({ TableName: name }));

    // Assess
    const indexes = described.Table?.GlobalSecondaryIndexes ?? [];
    expect(indexes.map((i) => [i.IndexName, i.IndexStatus]).sort()).toEqual([
      ["gpos", "ACTIVE"],
      ["pending-eu-west-1", "ACTIVE"],
      ["pending-us-west-2", "ACTIVE"],
    ]);
    expect(indexes.find((i) => i.IndexName === "pending-eu-west-1")?.KeySchema).toEqual([
      { AttributeName: "pending:eu-west-1", KeyType: "HASH" },
      { AttributeName: "replicaKey", KeyType: "RANGE" },
    ]);
  });

  it("keeps a pending:<region> marker on a record exactly while it is not replicated there, and lists a region without an index as a ConfigError", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const key = { pk: "db#pg-main", sk: `wal#00000001#${SEG}` };
    await catalog.recordWal(record({ replicas: { "eu-west-1": { status: "pending", at: "2025-01-01T00:00:00.000Z" } } }));
    const created = await catalog.doc.send(new GetCommand({ TableName: table, Key: key }));

    // Act
    await catalog.setReplicaStatus("pg-main", SEG, "eu-west-1", { status: "failed", at: "2025-01-01T00:00:01.000Z" });
    const failed = await catalog.doc.send(new GetCommand({ TableName: table, Key: key }));
    await catalog.setReplicaStatus("pg-main", SEG, "eu-west-1", { status: "replicated", at: "2025-01-01T00:00:02.000Z" });
    const replicated = await catalog.doc.send(new GetCommand({ TableName: table, Key: key }));
    const noIndex = await catalog.listUnreplicated("ap-south-1").catch((e: unknown) => e);

    // Assess
    expect(created.Item).toMatchObject({ "pending:eu-west-1": "pending", replicaKey: `pg-main#wal#00000001#${SEG}` });
    expect(failed.Item).toMatchObject({ "pending:eu-west-1": "pending" });
    expect(replicated.Item?.["pending:eu-west-1"]).toBeUndefined();
    expect(replicated.Item?.replicaKey).toBe(`pg-main#wal#00000001#${SEG}`);
    expect(noIndex).toBeInstanceOf(ConfigError);
    expect((noIndex as Error).message).toContain("pending-ap-south-1");
  });

  it("stores items under pk db#<id> and sk wal#<timeline hex>#<name>, head, meta and quarantine#<name>#...", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const tl10 = `0000000A0000000000000001`;

    // Act
    await catalog.recordWal(record());
    await catalog.recordWal(record({ name: tl10, timeline: 10, vaultKey: `db/pg-main/wal/0000000A/${tl10}` }));
    await catalog.advanceHead("pg-main", SEG, "0000000100000003", "2025-01-01T00:00:00.000Z");
    await catalog.putDatabase({ databaseId: "pg-main", kind: "postgres", walSegmentSize: 16 << 20, createdAt: "2025-01-01T00:00:00.000Z" });
    await catalog.recordQuarantine({
      databaseId: "pg-main",
      name: SEG,
      incomingKey: `incoming/db/pg-main/wal/${SEG}`,
      error: "ChecksumMismatchError",
      reason: "r",
      at: "2025-01-01T00:00:00.000Z",
    });
    const items = await catalog.doc.send(
      new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": "db#pg-main" } }),
    );

    // Assess
    const sks = (items.Items ?? []).map((i) => String(i.sk));
    expect(sks.slice(0, 2)).toEqual(["head", "meta"]);
    expect(sks[2]).toMatch(new RegExp(`^quarantine#${SEG}#2025-01-01T00:00:00.000Z#[0-9a-f]+$`));
    expect(sks.slice(3)).toEqual([`wal#00000001#${SEG}`, `wal#0000000A#${tl10}`]);
    const walItem = await catalog.doc.send(new GetCommand({ TableName: table, Key: { pk: "db#pg-main", sk: `wal#00000001#${SEG}` } }));
    expect(walItem.Item).toMatchObject({ pk: "db#pg-main", sk: `wal#00000001#${SEG}`, replicas: {}, sha256: "ab12".repeat(16) });
  });

  it("explains a conflict in one line naming the file, the database and both hash prefixes", async () => {
    // Prepare
    const catalog = catalogAt(ddb.endpoint, await freshTable());
    await catalog.recordWal(record({ sha256: "ab12".repeat(16) }));

    // Act
    const err = await catalog.recordWal(record({ sha256: "cd34".repeat(16) })).catch((e: unknown) => e);

    // Assess
    expect((err as Error).message).toBe(
      `${SEG} is already archived for database pg-main with different contents ` +
        "(archived sha256 ab12ab12ab12…, pushed sha256 cd34cd34cd34…); the archived copy was kept",
    );
  });

  it("rejects with ConfigError naming the table when the table does not exist", async () => {
    // Prepare
    const catalog = catalogAt(ddb.endpoint, "walvault-no-such-table");

    // Act
    const err = await catalog.getWal("pg-main", SEG).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("walvault-no-such-table");
  });

  it("suggests `walvault local up` when a loopback endpoint is down", async () => {
    // Act
    const err = await catalogAt(closedEndpoint, "t").getHead("pg-main").catch((e: unknown) => e);

    // Assess
    expect((err as Error).message).toContain(`cannot reach DynamoDB at ${closedEndpoint}`);
    expect((err as Error).message).toContain("walvault local up");
  });
});

function hash(n: number): string {
  return n.toString(16).padStart(64, "0");
}

function chunkItem(sha256: string, overrides: Partial<ChunkItem> = {}): ChunkItem {
  return {
    databaseId: "pg-main",
    sha256,
    size: 100,
    storedSize: 50,
    codec: "zstd",
    vaultKey: `db/pg-main/chunks/${sha256}`,
    recordedAt: "2025-01-01T00:00:00.000Z",
    ...overrides,
  };
}

function snapshotRecord(overrides: Partial<SnapshotRecord> = {}): SnapshotRecord {
  const snapshotId = overrides.snapshotId ?? "20250101T000000Z-0001";
  return {
    databaseId: "pg-main",
    snapshotId,
    kind: "postgres",
    timeline: 1,
    startLsn: "0/3000028",
    stopLsn: "0/3000100",
    startWalFile: SEG,
    stopWalFile: SEG,
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:01:00.000Z",
    manifestKey: `db/pg-main/snapshots/${snapshotId}/manifest.json`,
    manifestSha256: "ab12".repeat(16),
    manifestSize: 10,
    totals: { files: 1, logicalBytes: 100, uniqueChunks: 1, newChunks: 1, storedBytes: 50, newStoredBytes: 50 },
    status: "restorable",
    recordedAt: "2025-01-01T00:02:00.000Z",
    replicas: {},
    ...overrides,
  };
}

type BatchCall = { command: string; size: number; input: Record<string, unknown> };

/**
 * Watches the batch requests a catalog sends (document-level input, before
 * marshalling). With unprocess "half", DynamoDB Local gets only the first
 * half of each request and the rest comes back unprocessed, as DynamoDB does
 * under throttling; with "all", nothing is sent and everything comes back.
 */
function probe(catalog: DynamoCatalog, table: string, unprocess: "none" | "half" | "all" = "none") {
  const calls: BatchCall[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  catalog.client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName);
      if (command !== "BatchGetItemCommand" && command !== "BatchWriteItemCommand") return next(args);
      const input = args.input as { RequestItems: Record<string, unknown> };
      const isGet = command === "BatchGetItemCommand";
      const request = input.RequestItems[table] as { Keys: unknown[] } | unknown[];
      const entries = isGet ? (request as { Keys: unknown[] }).Keys : (request as unknown[]);
      calls.push({ command, size: entries.length, input: structuredClone(input.RequestItems[table]) as Record<string, unknown> });
      const keep = unprocess === "none" ? entries.length : unprocess === "half" ? Math.ceil(entries.length / 2) : 0;
      const sent = entries.slice(0, keep);
      const left = entries.slice(keep);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        let result;
        if (sent.length === 0) {
          await new Promise((r) => setTimeout(r, 5));
          result = { output: { $metadata: {} } as Record<string, unknown>, response: {} };
        } else {
          const narrowed = isGet ? { ...(request as object), Keys: sent } : sent;
          result = await next({ ...args, input: { ...input, RequestItems: { [table]: narrowed } } });
        }
        const output = result.output as Record<string, unknown>;
        if (left.length > 0) {
          if (isGet) output.UnprocessedKeys = { [table]: { ...(request as object), Keys: left } };
          else output.UnprocessedItems = { [table]: left };
        }
        return result as typeof result & { output: never };
      } finally {
        inFlight--;
      }
    },
    { step: "initialize", name: "walvaultTestBatchProbe" },
  );
  return { calls, maxInFlight: () => maxInFlight };
}

describe("DynamoCatalog snapshots and chunks on DynamoDB Local", () => {
  it("stores snapshots under sk snap#<snapshotId> and chunks under sk chunk#<sha256>, with the record fields", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const snap = snapshotRecord();

    // Act
    await catalog.recordSnapshot(snap);
    await catalog.recordChunks([chunkItem(hash(1))]);
    const items = await catalog.doc.send(
      new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": "db#pg-main" } }),
    );

    // Assess
    expect((items.Items ?? []).map((i) => String(i.sk))).toEqual([`chunk#${hash(1)}`, `snap#${snap.snapshotId}`]);
    expect(items.Items?.[0]).toEqual({ ...chunkItem(hash(1)), pk: "db#pg-main", sk: `chunk#${hash(1)}` });
    expect(items.Items?.[1]).toEqual({ ...snap, pk: "db#pg-main", sk: `snap#${snap.snapshotId}`, replicaKey: `pg-main#snap#${snap.snapshotId}` });
  });

  it("explains a snapshot conflict in one line naming the snapshot, the database and both manifest hash prefixes", async () => {
    // Prepare
    const catalog = catalogAt(ddb.endpoint, await freshTable());
    await catalog.recordSnapshot(snapshotRecord({ manifestSha256: "ab12".repeat(16) }));

    // Act
    const err = await catalog.recordSnapshot(snapshotRecord({ manifestSha256: "cd34".repeat(16) })).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(SnapshotConflictError);
    expect((err as Error).message).toBe(
      "snapshot 20250101T000000Z-0001 is already recorded for database pg-main with a different manifest " +
        "(recorded manifest sha256 ab12ab12ab12…, new manifest sha256 cd34cd34cd34…); the recorded snapshot was kept",
    );
  });

  it("asks for missing chunks in consistent BatchGetItem requests of at most 100 keys, at most 4 in flight, projecting sk only", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    await catalog.recordChunks([chunkItem(hash(5))]);
    const watch = probe(catalog, table);
    const hashes = Array.from({ length: 1_050 }, (_, i) => hash(i));

    // Act
    const none = await catalog.missingChunks("pg-main", []);
    const missing = await catalog.missingChunks("pg-main", [...hashes, ...hashes]);

    // Assess
    expect(none).toEqual([]);
    expect(missing).toEqual(hashes.filter((h) => h !== hash(5)));
    expect(watch.calls.map((c) => c.command)).toEqual(Array(11).fill("BatchGetItemCommand"));
    expect(watch.calls.map((c) => c.size).sort((a, b) => b - a)).toEqual([...Array(10).fill(100), 50]);
    expect(watch.maxInFlight()).toBeGreaterThan(1);
    expect(watch.maxInFlight()).toBeLessThanOrEqual(4);
    for (const call of watch.calls) {
      expect(call.input).toMatchObject({ ConsistentRead: true, ProjectionExpression: "#sk", ExpressionAttributeNames: { "#sk": "sk" } });
    }
  }, 60_000);

  it("reads chunk locations in consistent BatchGetItem requests of at most 100 keys, at most 4 in flight, retrying unprocessed keys", async () => {
    // Prepare: 250 chunks in a pack; each request only half processed
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table, undefined, { baseDelayMs: 1 });
    const pack = `db/pg-main/packs/${hash(9_999)}`;
    const records = Array.from({ length: 250 }, (_, i) => chunkItem(hash(i), { vaultKey: pack, offset: i * 10 }));
    await catalog.recordChunks(records);
    const watch = probe(catalog, table, "half");

    // Act
    const got = await catalog.getChunks("pg-main", records.map((r) => r.sha256));

    // Assess
    expect(got).toEqual(records);
    const firstRound = watch.calls.filter((c) => c.size > 50);
    expect(firstRound.map((c) => c.size).sort((a, b) => b - a)).toEqual([100, 100]);
    expect(watch.calls.every((c) => c.command === "BatchGetItemCommand" && c.size <= 100)).toBe(true);
    expect(watch.calls.length).toBeLessThan(30);
    expect(watch.maxInFlight()).toBeLessThanOrEqual(4);
    for (const call of watch.calls) {
      expect(call.input).toMatchObject({ ConsistentRead: true });
      expect(call.input).not.toHaveProperty("ProjectionExpression");
    }
  }, 60_000);

  it("stores packs under sk pack#<name> with the record fields", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const pack = { databaseId: "pg-main", name: hash(1), size: 1_000, entries: 2, dataLength: 832, vaultKey: `db/pg-main/packs/${hash(1)}`, recordedAt: "2025-01-01T00:00:00.000Z" };

    // Act
    await catalog.recordPacks([pack]);
    const item = await catalog.doc.send(new GetCommand({ TableName: table, Key: { pk: "db#pg-main", sk: `pack#${hash(1)}` } }));

    // Assess
    expect(item.Item).toEqual({ ...pack, pk: "db#pg-main", sk: `pack#${hash(1)}` });
  });

  it("writes chunk records in BatchWriteItem requests of at most 25, one item per key", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const watch = probe(catalog, table);
    const records = Array.from({ length: 120 }, (_, i) => chunkItem(hash(i)));

    // Act
    await catalog.recordChunks([]);
    await catalog.recordChunks([...records, ...records.slice(0, 30)]);

    // Assess
    expect(watch.calls.every((c) => c.command === "BatchWriteItemCommand")).toBe(true);
    expect(watch.calls.map((c) => c.size).sort((a, b) => b - a)).toEqual([25, 25, 25, 25, 20]);
    expect(watch.maxInFlight()).toBeLessThanOrEqual(4);
    expect(await catalog.missingChunks("pg-main", records.map((r) => r.sha256))).toEqual([]);
  });

  it("sends flat records (chunks) in DynamoDB's wire form and others (audit, with a list) through the DocumentClient; both read back as written", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const watch = probe(catalog, table);
    const chunk = chunkItem(hash(1), { vaultKey: `db/pg-main/packs/${hash(2)}`, offset: 7 });
    const audit = { databaseId: "pg-main", runId: "run-1", seq: 0, at: "2026-12-06T00:00:00.000Z", action: "repack" as const, subject: hash(2), regions: ["r1", "r2"], reason: "sparse", by: "test" };

    // Act
    await catalog.recordChunks([chunk]);
    await catalog.recordAudit([audit]);
    const readChunk = await catalog.getChunks("pg-main", [chunk.sha256]);
    const readAudit = await catalog.listAudit("pg-main");

    // Assess
    const [chunkPut, auditPut] = watch.calls.filter((c) => c.command === "BatchWriteItemCommand").map((c) => (c.input as unknown as [{ PutRequest: { Item: Record<string, unknown> } }])[0].PutRequest.Item);
    expect(chunkPut).toMatchObject({ sha256: { S: chunk.sha256 }, offset: { N: "7" }, size: { N: String(chunk.size) } });
    expect(auditPut).toMatchObject({ regions: ["r1", "r2"], seq: 0 });
    expect(readChunk).toEqual([chunk]);
    expect(readAudit).toEqual([audit]);
  });

  it("retries the keys and items DynamoDB leaves unprocessed until every one is answered", async () => {
    // Prepare: each request is only half processed
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table, undefined, { baseDelayMs: 1 });
    const watch = probe(catalog, table, "half");
    const hashes = Array.from({ length: 130 }, (_, i) => hash(i));
    const recorded = hashes.filter((_, i) => i % 2 === 0);

    // Act
    await catalog.recordChunks(recorded.map((h) => chunkItem(h)));
    const missing = await catalog.missingChunks("pg-main", hashes);

    // Assess
    expect(missing).toEqual(hashes.filter((_, i) => i % 2 === 1));
    const writes = watch.calls.filter((c) => c.command === "BatchWriteItemCommand");
    const gets = watch.calls.filter((c) => c.command === "BatchGetItemCommand");
    expect(writes.length).toBeGreaterThan(3);
    expect(gets.length).toBeGreaterThan(2);
    for (const get of gets) expect(get.input).toMatchObject({ ConsistentRead: true });
  });

  it("rejects with ServiceUnavailableError when DynamoDB keeps leaving keys or items unprocessed", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table, undefined, { attempts: 3, baseDelayMs: 1 });
    const watch = probe(catalog, table, "all");

    // Act
    const getErr = await catalog.missingChunks("pg-main", [hash(1), hash(2)]).catch((e: unknown) => e);
    const writeErr = await catalog.recordChunks([chunkItem(hash(1))]).catch((e: unknown) => e);

    // Assess
    expect(getErr).toBeInstanceOf(ServiceUnavailableError);
    expect((getErr as Error).message).toContain("2 of 2 chunk keys of database pg-main unprocessed after 3 BatchGetItem requests");
    expect(writeErr).toBeInstanceOf(ServiceUnavailableError);
    expect((writeErr as Error).message).toContain("1 of 1 chunk records unprocessed after 3 BatchWriteItem requests");
    expect(watch.calls).toHaveLength(6);
  });

  it("rejects malformed hashes and chunk records with InvalidInputError before sending anything", async () => {
    // Prepare
    const table = await freshTable();
    const catalog = catalogAt(ddb.endpoint, table);
    const watch = probe(catalog, table);

    // Act
    const upper = await catalog.missingChunks("pg-main", [hash(1), hash(2).toUpperCase().replace(/^0/, "A")]).catch((e: unknown) => e);
    const short = await catalog.recordChunks([chunkItem(hash(1)), chunkItem("abc")]).catch((e: unknown) => e);
    const badDb = await catalog.recordChunks([chunkItem(hash(1), { databaseId: "Not Valid" })]).catch((e: unknown) => e);
    const badSnap = await catalog.recordSnapshot(snapshotRecord({ manifestSha256: "xyz" })).catch((e: unknown) => e);

    // Assess
    for (const err of [upper, short, badDb, badSnap]) expect(err).toBeInstanceOf(InvalidInputError);
    expect(watch.calls).toEqual([]);
    expect(await catalog.listSnapshots("pg-main")).toEqual([]);
  });
});

describe("startDynamo", () => {
  it("with dbPath keeps one shared database file there (every access key and region see the same tables)", async () => {
    // Prepare
    const dir = await mkdtemp(join(tmpdir(), "walvault-ddb-test-"));
    try {
      const emulator = await startDynamo({ dbPath: dir });
      const other = new DynamoCatalog({
        tableName: "persisted",
        region: "eu-west-1",
        endpoint: emulator.endpoint,
        credentials: { accessKeyId: "another", secretAccessKey: "key" },
      });
      const catalog = catalogAt(emulator.endpoint, "persisted");

      // Act
      await createTable(catalog.client, "persisted");
      await catalog.recordWal(record());
      const seenByOther = await other.getWal("pg-main", SEG);
      catalog.client.destroy();
      other.client.destroy();
      await emulator.stop();
      await emulator.stop();

      // Assess
      expect(seenByOther).toEqual(record());
      expect(await readdir(dir)).toContain("shared-local-instance.db");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
