/**
 * Replicate FindMissing reads what a region lacks, not the catalog (issue 11,
 * point 6): on DynamoDB Local, over a database of 5,000 WAL records already
 * replicated and 10 not (pending or failed), it returns the 10 and reads a
 * number of catalog items bounded by the round, counted on the DynamoDB
 * responses the catalog receives.
 */
import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapLimit } from "../../core/concurrency.js";
import type { WalRecord } from "../../core/schemas.js";
import { overrideDeps, resetDeps } from "../../functions/deps.js";
import { handler as findMissing } from "../../functions/replicate/find-missing.js";
import { LOCAL_CREDENTIALS, startDynamo, type DynamoEmulator } from "../../local/emulators.js";
import { DynamoCatalog, createTable } from "../../store/dynamo-catalog.js";
import { createObjectStore } from "../../store/factory.js";
import { handlerEnvironment } from "../support/harness.js";

const REGION = "local-2";
const DB = "pg-big";
const REPLICATED = 5_000;
const PENDING = 10;

let ddb: DynamoEmulator;
const savedEnv = { ...process.env };
/** Items the catalog's DynamoDB responses carried (Query/Scan Items, GetItem Item, BatchGetItem Responses). */
let itemsRead = 0;
let requests = 0;

const hex8 = (n: number): string => n.toString(16).toUpperCase().padStart(8, "0");
const segment = (n: number): string => `00000001${hex8(Math.floor(n / 256))}${hex8(n % 256)}`;

function wal(n: number, replicas: WalRecord["replicas"]): WalRecord {
  const name = segment(n);
  return {
    databaseId: DB,
    name,
    kind: "segment",
    timeline: 1,
    size: 16 * 1024 * 1024,
    storedSize: 1024,
    sha256: n.toString(16).padStart(64, "0"),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${DB}/wal/00000001/${name}`,
    archivedAt: "2025-01-01T00:00:00.000Z",
    replicas,
  };
}

function countItems(output: unknown): number {
  const o = output as { Items?: unknown[]; Item?: unknown; Responses?: Record<string, unknown[]> };
  return (o.Items?.length ?? 0) + (o.Item === undefined ? 0 : 1) + Object.values(o.Responses ?? {}).reduce((n, r) => n + r.length, 0);
}

beforeAll(async () => {
  ddb = await startDynamo();
  Object.assign(process.env, handlerEnvironment(ddb.endpoint));
  const client = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  client.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      requests++;
      itemsRead += countItems(out.output);
      return out;
    },
    { step: "initialize", name: "walvaultTestItemsRead" },
  );
  const table = `walvault-find-missing-${randomUUID()}`;
  await createTable(client, table, { replicaRegions: [REGION] });
  const catalog = new DynamoCatalog({ tableName: table, client, where: ddb.endpoint });
  await catalog.putDatabase({ databaseId: DB, kind: "postgres", walSegmentSize: 16 * 1024 * 1024, createdAt: "2025-01-01T00:00:00.000Z" });
  const numbers = Array.from({ length: REPLICATED + PENDING }, (_, i) => i + 1);
  await mapLimit(numbers, 16, async (n) => {
    const status = n % 500 === 0 ? { status: (n % 1000 === 0 ? "failed" : "pending") as "failed" | "pending", at: "2025-01-01T00:00:00.000Z" } : { status: "replicated" as const, at: "2025-01-01T00:00:01.000Z" };
    await catalog.recordWal(wal(n, { [REGION]: status }));
  });
  overrideDeps({
    catalog,
    replicas: [{ region: REGION, bucket: "replica", store: createObjectStore({ region: REGION, name: REGION, s3Endpoint: "http://127.0.0.1:1" }) }],
  });
}, 300_000);

afterAll(async () => {
  resetDeps();
  process.env = savedEnv;
  await ddb?.stop();
});

describe("replicate FindMissing over a large, mostly replicated catalog", () => {
  it("returns the 10 records not replicated in the region, reading no more catalog items than it returns", async () => {
    // Prepare
    itemsRead = 0;
    requests = 0;

    // Act
    const out = await findMissing({ scope: { region: REGION, databaseId: DB }, round: 0, previous: [] });
    const all = await findMissing({ scope: { region: REGION }, round: 1, previous: [] });

    // Assess
    const expected = Array.from({ length: PENDING }, (_, i) => ({ databaseId: DB, name: segment((i + 1) * 500) }));
    expect(out).toEqual({ items: expected, count: PENDING, remaining: PENDING, round: 1, stalled: false, complete: false });
    expect(all.items).toEqual(expected);
    expect(itemsRead).toBe(2 * PENDING);
    expect(requests).toBe(2);
  });

  it("pages a round at `limit` records and says more follow", async () => {
    // Act
    const out = await findMissing({ scope: { region: REGION, databaseId: DB, limit: 4 }, round: 0, previous: [] });

    // Assess
    expect(out.items.map((i) => i.name)).toEqual([1, 2, 3, 4].map((i) => segment(i * 500)));
    expect(out.remaining).toBe(5);
    expect(out.complete).toBe(false);
  });
});
