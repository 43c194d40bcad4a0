/**
 * What an ingest handler throws when S3 or DynamoDB throttles, fails with a
 * 5xx or cannot be reached: ServiceUnavailableError, which the workflows
 * retry and never quarantine (issue #10, point 3), never an error that reads
 * as a bad upload. Unit test of the error paths: the SDK clients' send() is
 * replaced by one that throws what the SDK throws.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { CatalogFaultError, INGEST_VALIDATION_ERRORS, SNAPSHOT_VALIDATION_ERRORS, ServiceUnavailableError } from "../../core/errors.js";
import { isNetworkError } from "../../store/aws-errors.js";
import { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";

/** An error shaped like the SDK's service exceptions. */
function sdkError(name: string, status: number | undefined, extra: Record<string, unknown> = {}): Error {
  const e = new Error(`${name}: simulated`);
  e.name = name;
  Object.assign(e, { $fault: status !== undefined && status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status }, ...extra });
  return e;
}

function networkError(code: string): Error {
  const e = new Error(`connect ${code} 10.0.0.1:443`);
  Object.assign(e, { code });
  return e;
}

const FAULTS: [string, () => Error][] = [
  ["S3 SlowDown (503)", () => sdkError("SlowDown", 503)],
  ["S3 InternalError (500)", () => sdkError("InternalError", 500)],
  ["S3 ServiceUnavailable (503)", () => sdkError("ServiceUnavailable", 503)],
  ["DynamoDB ProvisionedThroughputExceededException", () => sdkError("ProvisionedThroughputExceededException", 400)],
  ["DynamoDB ThrottlingException", () => sdkError("ThrottlingException", 400)],
  ["DynamoDB RequestLimitExceeded", () => sdkError("RequestLimitExceeded", 400)],
  ["DynamoDB InternalServerError (500)", () => sdkError("InternalServerError", 500)],
  ["a connection reset", () => networkError("ECONNRESET")],
  ["a DNS failure", () => networkError("EAI_AGAIN")],
  ["a socket timeout", () => sdkError("TimeoutError", undefined)],
];

function failingS3(make: () => Error): S3ObjectStore {
  const client = new S3Client({ region: "us-east-1" });
  client.send = (() => Promise.reject(make())) as never;
  return new S3ObjectStore({ name: "s3", client, where: "s3.test" });
}

function failingDynamo(make: () => Error): DynamoCatalog {
  const client = new DynamoDBClient({ region: "us-east-1" });
  client.send = (() => Promise.reject(make())) as never;
  const catalog = new DynamoCatalog({ tableName: "t", client, where: "dynamodb.test" });
  catalog.doc.send = (() => Promise.reject(make())) as never;
  return catalog;
}

describe("store adapters under throttling, 5xx and network faults", () => {
  it.each(FAULTS)("S3 get, head and put reject %s with ServiceUnavailableError", async (_what, make) => {
    // Prepare
    const store = failingS3(make);
    // Act
    const errors = await Promise.all([
      store.get("b", "k").catch((e: unknown) => e),
      store.head("b", "k").catch((e: unknown) => e),
      store.put("b", "k", Buffer.from("x"), {}).catch((e: unknown) => e),
    ]);
    // Assess
    for (const e of errors) {
      expect(e).toBeInstanceOf(ServiceUnavailableError);
      expect((INGEST_VALIDATION_ERRORS as readonly string[]).includes((e as Error).name)).toBe(false);
    }
  });

  it.each(FAULTS)("DynamoDB getWal, getDatabase and listQuarantine reject %s with ServiceUnavailableError", async (_what, make) => {
    // Prepare
    const catalog = failingDynamo(make);
    // Act
    const errors = await Promise.all([
      catalog.getWal("pg-main", "000000010000000000000001").catch((e: unknown) => e),
      catalog.getDatabase("pg-main").catch((e: unknown) => e),
      catalog.listQuarantine("pg-main").catch((e: unknown) => e),
    ]);
    // Assess
    for (const e of errors) expect(e).toBeInstanceOf(ServiceUnavailableError);
  });

  it("DynamoDB's ValidationException (an item over 400 KB, a malformed request) is CatalogFaultError, which no workflow quarantines", async () => {
    // Prepare
    const catalog = failingDynamo(() => sdkError("ValidationException", 400, { message: "Item size has exceeded the maximum allowed size" }));
    // Act
    const e = await catalog.getWal("pg-main", "000000010000000000000001").catch((x: unknown) => x);
    // Assess
    expect(e).toBeInstanceOf(CatalogFaultError);
    expect([...INGEST_VALIDATION_ERRORS, ...SNAPSHOT_VALIDATION_ERRORS] as readonly string[]).not.toContain((e as Error).name);
  });

  it("tells network failures from service answers", () => {
    expect(isNetworkError(networkError("ECONNREFUSED"))).toBe(true);
    expect(isNetworkError(sdkError("TimeoutError", undefined))).toBe(true);
    expect(isNetworkError(sdkError("SlowDown", 503))).toBe(false);
  });
});
