/**
 * Databases are listed by Query on the registry partition, never by a table
 * Scan (issue #11, point 6): on a real DynamoDB Local, with the DynamoDB
 * commands the catalog sends counted by name, the handlers that list every
 * database (retention Plan, verify SelectCandidates) find each registered
 * database among thousands of WAL and chunk items, and the listing costs one
 * Query per 1,000 databases whatever else the table holds. Replicate
 * FindMissing lists no database: it reads the region's index of pending
 * records alone.
 */
import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mapLimit } from "../../core/concurrency.js";
import type { ChunkItem, DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { overrideDeps, resetDeps } from "../../functions/deps.js";
import { handler as findMissing } from "../../functions/replicate/find-missing.js";
import { planPage as retentionPlan } from "../../functions/retention/plan.js";
import { selectPage as selectCandidates } from "../../functions/verify/select.js";
import { LOCAL_CREDENTIALS, startDynamo, type DynamoEmulator } from "../../local/emulators.js";
import { REGISTRY_PK } from "../../store/catalog-layout.js";
import { DynamoCatalog, createTable } from "../../store/dynamo-catalog.js";
import { createObjectStore } from "../../store/factory.js";
import { handlerEnvironment } from "../support/harness.js";

const REGION = "local-2";
const DATABASES = 30;
const WAL_PER_DATABASE = 40;
const CHUNKS_PER_DATABASE = 200;
const PENDING = { status: "pending" as const, at: "2025-01-01T00:00:00.000Z" };

let ddb: DynamoEmulator;
const savedEnv = { ...process.env };

beforeAll(async () => {
  ddb = await startDynamo();
  // The handlers' dependencies are built from the environment; the catalog is replaced below.
  Object.assign(process.env, handlerEnvironment(ddb.endpoint));
}, 60_000);

afterAll(async () => {
  resetDeps();
  process.env = savedEnv;
  await ddb?.stop();
});

/** Commands sent by a catalog, by name, and the Queries that read the registry partition. */
interface CommandLog {
  byName: Record<string, number>;
  registryQueries: number;
  reset(): void;
}

function pkOf(values: unknown): unknown {
  const pk = (values as Record<string, unknown> | undefined)?.[":pk"];
  return typeof pk === "object" && pk !== null && "S" in pk ? (pk as { S: unknown }).S : pk;
}

/** A DynamoCatalog on its own client whose every command is counted before it is sent. */
function countingCatalog(tableName: string): { catalog: DynamoCatalog; log: CommandLog } {
  const client = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  const log: CommandLog = {
    byName: {},
    registryQueries: 0,
    reset() {
      this.byName = {};
      this.registryQueries = 0;
    },
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName);
      log.byName[name] = (log.byName[name] ?? 0) + 1;
      const input = args.input as { ExpressionAttributeValues?: unknown };
      if (name === "QueryCommand" && pkOf(input.ExpressionAttributeValues) === REGISTRY_PK) log.registryQueries++;
      return next(args);
    },
    { step: "initialize", name: "walvaultTestCommandLog" },
  );
  return { catalog: new DynamoCatalog({ tableName, client, where: ddb.endpoint }), log };
}

const dbId = (i: number): string => `fleet-${String(i).padStart(4, "0")}`;
const hex8 = (n: number): string => n.toString(16).toUpperCase().padStart(8, "0");
const segment = (n: number): string => `00000001${hex8(Math.floor(n / 256))}${hex8(n % 256)}`;
const sha = (seed: string): string => Buffer.from(seed.padEnd(32, "#").slice(0, 32)).toString("hex");

function database(databaseId: string): DatabaseRecord {
  return { databaseId, kind: "postgres", walSegmentSize: 16 * 1024 * 1024, createdAt: "2025-01-01T00:00:00.000Z" };
}

function wal(databaseId: string, n: number): WalRecord {
  const name = segment(n);
  return {
    databaseId,
    name,
    kind: "segment",
    timeline: 1,
    size: 16 * 1024 * 1024,
    storedSize: 1024,
    sha256: sha(`${databaseId} ${name}`),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${databaseId}/wal/00000001/${name}`,
    archivedAt: new Date(Date.UTC(2025, 0, 1, 0, n)).toISOString(),
    replicas: { [REGION]: PENDING },
  };
}

function chunk(databaseId: string, n: number): ChunkItem {
  const sha256 = sha(`${databaseId} chunk ${n}`);
  return { databaseId, sha256, size: 2 << 20, storedSize: 1 << 20, codec: "zstd", vaultKey: `db/${databaseId}/chunks/${sha256}`, recordedAt: "2025-01-01T00:00:00.000Z" };
}

function snapshot(databaseId: string): SnapshotRecord {
  const snapshotId = "20250101T000500Z-00000001";
  return {
    databaseId,
    snapshotId,
    kind: "postgres",
    timeline: 1,
    startLsn: "0/2000028",
    stopLsn: "0/2000100",
    startWalFile: segment(2),
    stopWalFile: segment(2),
    startedAt: "2025-01-01T00:02:00.000Z",
    finishedAt: "2025-01-01T00:03:00.000Z",
    manifestKey: `db/${databaseId}/snapshots/${snapshotId}/manifest.json`,
    manifestSha256: sha(`${databaseId} manifest`),
    manifestSize: 4096,
    totals: { files: 3, logicalBytes: 3 << 20, uniqueChunks: 4, newChunks: 2, storedBytes: 1 << 20, newStoredBytes: 1 << 19 },
    status: "restorable",
    recordedAt: "2025-01-01T00:04:00.000Z",
    replicas: { [REGION]: PENDING },
  };
}

async function freshTable(): Promise<string> {
  const admin = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  const name = `walvault-listing-${randomUUID()}`;
  try {
    await createTable(admin, name, { replicaRegions: [REGION] });
  } finally {
    admin.destroy();
  }
  return name;
}

describe("handlers that list every database, on DynamoDB Local", () => {
  const ids = Array.from({ length: DATABASES }, (_, i) => dbId(DATABASES - 1 - i)); // registered in reverse order
  let catalog: DynamoCatalog;
  let log: CommandLog;
  let items = 0;

  beforeAll(async () => {
    ({ catalog, log } = countingCatalog(await freshTable()));
    await mapLimit(ids, 6, async (id) => {
      await catalog.putDatabase(database(id));
      for (let n = 1; n <= WAL_PER_DATABASE; n++) await catalog.recordWal(wal(id, n));
      await catalog.recordChunks(Array.from({ length: CHUNKS_PER_DATABASE }, (_, n) => chunk(id, n)));
      await catalog.recordSnapshot(snapshot(id));
      await catalog.advanceHead(id, segment(WAL_PER_DATABASE), `00000001${hex8(0)}${hex8(WAL_PER_DATABASE)}`, "2025-01-01T01:00:00.000Z");
    });
    items = DATABASES * (2 + WAL_PER_DATABASE + CHUNKS_PER_DATABASE + 2);
    overrideDeps({
      catalog,
      replicas: [{ region: REGION, bucket: "replica", store: createObjectStore({ region: REGION, name: REGION, s3Endpoint: "http://127.0.0.1:1" }) }],
    });
  }, 180_000);

  beforeEach(() => log.reset());

  it("retention Plan plans every database page by page and sends no Scan, one registry Query a page", async () => {
    // Act: the workflow's page loop (statemachines/retention.asl.json)
    const planned: string[] = [];
    let pages = 0;
    let after = "";
    do {
      const out = await retentionPlan({ request: { dryRun: true }, execution: "exec-listing", cursor: { after, page: pages, count: planned.length } });
      planned.push(...out.databases.map((d) => d.databaseId));
      after = out.next;
      pages++;
    } while (after !== "");

    // Assess
    expect(items).toBeGreaterThan(7_000);
    expect(planned).toEqual([...ids].sort());
    expect(log.byName.ScanCommand ?? 0).toBe(0);
    expect(log.registryQueries).toBe(pages);
  });

  it("verify SelectCandidates picks a snapshot of every database page by page and sends no Scan, one registry Query a page", async () => {
    // Act: the workflow's page loop (statemachines/verify.asl.json)
    const picked: string[] = [];
    let pages = 0;
    let after = "";
    do {
      const out = await selectCandidates({ request: { level: 2 }, cursor: { after, page: pages, count: picked.length } });
      picked.push(...out.candidates.map((c) => c.databaseId));
      after = out.next;
      pages++;
    } while (after !== "");

    // Assess
    expect(new Set(picked)).toEqual(new Set(ids));
    expect(log.byName.ScanCommand ?? 0).toBe(0);
    expect(log.registryQueries).toBe(pages);
  });

  it("replicate FindMissing reads the region's pending records in one index Query, in database id order, and lists no database", async () => {
    // Act
    const out = await findMissing({ scope: { region: REGION, limit: 1000 }, round: 0, previous: [] });

    // Assess: 30 × 41 pending records; the first 1,000 by database id, then snapshot before WAL.
    const sorted = [...ids].sort();
    expect(out.count).toBe(1000);
    expect(out.remaining).toBe(1001);
    expect(out.complete).toBe(false);
    expect(out.items[0]).toEqual({ databaseId: sorted[0], snapshotId: "20250101T000500Z-00000001" });
    expect(out.items[1]).toEqual({ databaseId: sorted[0], name: segment(1) });
    expect(out.items.at(-1)?.databaseId).toBe(sorted[Math.floor(999 / (WAL_PER_DATABASE + 1))]);
    expect(log.byName).toEqual({ QueryCommand: 1 });
    expect(log.registryQueries).toBe(0);
  });
});

describe("DynamoCatalog listing 1,001 databases", () => {
  it("lists them in two Queries of the registry, in id order, none twice, with no Scan", async () => {
    // Prepare
    const { catalog, log } = countingCatalog(await freshTable());
    const ids = Array.from({ length: 1001 }, (_, i) => dbId(i));
    await mapLimit([...ids].reverse(), 16, async (id) => catalog.putDatabase(database(id)));
    log.reset();

    // Act
    const listed = await catalog.listDatabases();
    const first = await catalog.listDatabasePage();

    // Assess
    expect(listed.map((d) => d.databaseId)).toEqual(ids);
    expect(first.databases).toHaveLength(1000);
    expect(first.next).toBe(dbId(999));
    expect(log.byName.ScanCommand ?? 0).toBe(0);
    expect(log.registryQueries).toBe(3);
  }, 120_000);
});
