/**
 * Local stacks on one shared DynamoDB Local (LocalStackOptions
 * sharedDynamodbEndpoint, how the test suites run): each stack has a table of
 * its own, sees only its own databases, and drops its table on stop; a
 * persistent stack refuses a shared DynamoDB.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, describe, expect, inject, it } from "vitest";
import { startLocalStack, type LocalStack } from "../../local/stack.js";
import { DynamoCatalog } from "../../store/dynamo-catalog.js";

const dirs: string[] = [];
const stacks: LocalStack[] = [];

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), "walvault-shared-"));
  dirs.push(d);
  return d;
}

function catalogOf(s: LocalStack): DynamoCatalog {
  const c = s.config;
  return new DynamoCatalog({ tableName: c.table, region: c.region, endpoint: c.dynamodbEndpoint, credentials: c.credentials });
}

async function tableExists(s: LocalStack): Promise<boolean> {
  return catalogOf(s)
    .client.send(new DescribeTableCommand({ TableName: s.config.table }))
    .then(() => true)
    .catch((e: unknown) => {
      if ((e as Error).name === "ResourceNotFoundException") return false;
      throw e;
    });
}

afterAll(async () => {
  await Promise.allSettled(stacks.map((s) => s.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("local stacks on a shared DynamoDB Local", () => {
  it("keep their catalogs apart in tables of their own and drop them on stop", async () => {
    // Prepare
    const endpoint = inject("sharedDynamodbEndpoint");
    // Act
    const a = await startLocalStack({ stateDir: dir(), databases: [{ id: "db-a" }], persistent: false, sharedDynamodbEndpoint: endpoint });
    stacks.push(a);
    const b = await startLocalStack({ stateDir: dir(), databases: [{ id: "db-b", kind: "generic" }], persistent: false, sharedDynamodbEndpoint: endpoint });
    stacks.push(b);
    // Assess
    expect(a.config.dynamodbEndpoint).toBe(endpoint);
    expect(a.config.table).not.toBe(b.config.table);
    expect((await catalogOf(a).listDatabases()).map((d) => d.databaseId)).toEqual(["db-a"]);
    expect((await catalogOf(b).listDatabases()).map((d) => d.databaseId)).toEqual(["db-b"]);
    await a.stop();
    expect(await tableExists(a)).toBe(false);
    expect(await tableExists(b)).toBe(true);
  }, 120_000);

  it("refuses a shared DynamoDB for a persistent catalog, in one line", async () => {
    // Act
    const err = await startLocalStack({ stateDir: dir(), persistent: true, sharedDynamodbEndpoint: inject("sharedDynamodbEndpoint") }).catch((e: unknown) => e);
    // Assess
    expect((err as Error).name).toBe("ConfigError");
    expect((err as Error).message).toBe("a stack on a shared DynamoDB keeps its catalog in memory: pass persistent: false");
  });
});
