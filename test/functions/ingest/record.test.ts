/**
 * functions/ingest/record.ts recordValidatedWal: the catalog writes of one
 * validated WAL file, against a real DynamoDB Local table (the run's shared one).
 */
import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Promoted, ValidatedWal } from "../../../core/schemas.js";
import { recordValidatedWal } from "../../../functions/ingest/record.js";
import { LOCAL_CREDENTIALS } from "../../../local/emulators.js";
import { DynamoCatalog, createTable } from "../../../store/dynamo-catalog.js";
import { recordingCalls } from "../../support/harness.js";

const DB = "pg-record";
const SHA = "a".repeat(64);
let client: DynamoDBClient;
let catalog: DynamoCatalog;

beforeAll(async () => {
  const endpoint = inject("sharedDynamodbEndpoint");
  const tableName = `record-${randomUUID()}`;
  client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: LOCAL_CREDENTIALS });
  await createTable(client, tableName);
  catalog = new DynamoCatalog({ tableName, region: "us-east-1", endpoint, credentials: LOCAL_CREDENTIALS });
});

afterAll(() => client?.destroy());

function validated(name: string, overrides: Partial<ValidatedWal> = {}): ValidatedWal {
  return {
    databaseId: DB,
    name,
    kind: "segment",
    timeline: 1,
    size: 1024,
    storedSize: 512,
    sha256: SHA,
    encodedSha256: SHA,
    codec: "zstd",
    incoming: { bucket: "incoming", key: `incoming/db/${DB}/wal/${name}` },
    vaultKey: `db/${DB}/wal/${name}`,
    duplicate: false,
    replicaRegions: [],
    ...overrides,
  };
}

const promoted = (v: ValidatedWal): Promoted => ({ vaultBucket: "vault", vaultKey: v.vaultKey, copied: true });

describe("recordValidatedWal", () => {
  it("records a PostgreSQL segment with the record alone: no head write, and getHead names it", async () => {
    // Prepare
    const { proxy, calls } = recordingCalls(catalog, ["recordWal", "advanceHead"]);
    const v = validated("000000010000000000000007", { startLsn: "0/7000000", endLsn: "0/8000000" });

    // Act
    const out = await recordValidatedWal({ catalog: proxy }, v, promoted(v));

    // Assess
    expect(out.outcome).toBe("created");
    expect(calls.recordWal).toHaveLength(1);
    expect(calls.advanceHead).toEqual([]);
    expect((await catalog.getHead(DB))?.lastName).toBe(v.name);
  });

  it("advances the stored head for a generic segment (ordered by its close time, which its key does not hold)", async () => {
    // Prepare
    const generic = "gen-record";
    const { proxy, calls } = recordingCalls(catalog, ["advanceHead"]);
    const v = validated("stripe-0/00000003.wal", { databaseId: generic, startLsn: "0/3000000", closedAt: "2025-01-01T00:03:00.000Z" });

    // Act
    await recordValidatedWal({ catalog: proxy }, v, promoted(v));

    // Assess
    expect(calls.advanceHead).toHaveLength(1);
    expect((await catalog.getHead(generic))?.lastName).toBe(v.name);
  });
});
