/**
 * store/factory.ts: the one place callers get store adapters from. The
 * handlers pass their tracer's capture as `instrument` (functions/deps.ts),
 * so each SDK client the stores build goes through it before any call.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { createCatalog, createObjectStore } from "../../store/factory.js";
import type { S3ObjectStore } from "../../store/s3-object-store.js";

describe("createObjectStore and createCatalog with instrument", () => {
  it("pass each new SDK client through it once and use the client it returns", () => {
    // Prepare: an instrument that records what it got and marks what it gives back
    const seen: object[] = [];
    const instrument = <C extends object>(client: C): C => {
      seen.push(client);
      return Object.assign(client, { instrumented: true });
    };

    // Act
    const store = createObjectStore({ region: "us-east-1", s3Endpoint: "http://127.0.0.1:1", instrument }) as S3ObjectStore;
    const catalog = createCatalog({ region: "us-east-1", dynamodbEndpoint: "http://127.0.0.1:1", table: "t", instrument }) as DynamoCatalog;

    // Assess
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBeInstanceOf(S3Client);
    expect(seen[1]).toBeInstanceOf(DynamoDBClient);
    expect(store.client).toBe(seen[0]);
    expect(catalog.client).toBe(seen[1]);
    expect((catalog.client as unknown as { instrumented?: boolean }).instrumented).toBe(true);
  });

  it("leave the clients as the SDK built them without one", () => {
    const store = createObjectStore({ region: "us-east-1" }) as S3ObjectStore;
    expect(store.client).toBeInstanceOf(S3Client);
    expect(store.client).not.toHaveProperty("instrumented");
  });
});
