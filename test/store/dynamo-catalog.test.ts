/**
 * DynamoCatalog against a real DynamoDB Local (local/emulators.ts), through
 * the shared Catalog contract, plus the table layout it promises infra/.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../core/errors.js";
import type { WalRecord } from "../../core/schemas.js";
import { LOCAL_CREDENTIALS, freePort, startDynamo, type DynamoEmulator } from "../../local/emulators.js";
import { CATALOG_KEY_SCHEMA, DynamoCatalog, createTable } from "../../store/dynamo-catalog.js";
import { catalogContract } from "./catalog.contract.js";

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

function catalogAt(endpoint: string, tableName: string, pageSize?: number): DynamoCatalog {
  return new DynamoCatalog({
    tableName,
    region: "us-east-1",
    endpoint,
    credentials: LOCAL_CREDENTIALS,
    ...(pageSize === undefined ? {} : { pageSize }),
  });
}

async function freshTable(): Promise<string> {
  const name = `walvault-test-${randomUUID()}`;
  await createTable(client, name);
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
