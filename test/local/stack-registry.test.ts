/**
 * The local stack on an existing state directory registers its configured
 * databases again, so a catalog written before the database registry
 * (store/dynamo-catalog.ts, pk "registry") gets its registry entries and its
 * databases are listed by retention, verification and replication again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeleteItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, describe, expect, it } from "vitest";
import { startLocalStack, type LocalStack } from "../../local/stack.js";
import { REGISTRY_PK, registrySk } from "../../store/catalog-layout.js";
import { DynamoCatalog } from "../../store/dynamo-catalog.js";

const stateDir = mkdtempSync(join(tmpdir(), "walvault-registry-"));
let stack: LocalStack | undefined;

function catalogOf(s: LocalStack): DynamoCatalog {
  const c = s.config;
  return new DynamoCatalog({ tableName: c.table, region: c.region, endpoint: c.dynamodbEndpoint, credentials: c.credentials });
}

afterAll(async () => {
  await stack?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("local stack on an existing state directory", () => {
  it("lists a database registered before the registry once the stack has restarted", async () => {
    // Prepare: a persistent stack, then its registry entry removed, as in a catalog from before the registry.
    stack = await startLocalStack({ stateDir, databases: [{ id: "pg-old" }], persistent: true });
    const before = catalogOf(stack);
    await before.client.send(new DeleteItemCommand({ TableName: stack.config.table, Key: { pk: { S: REGISTRY_PK }, sk: { S: registrySk("pg-old") } } }));
    const unlisted = (await before.listDatabases()).map((d) => d.databaseId);
    await stack.stop();
    stack = undefined;
    // Act
    stack = await startLocalStack({ stateDir, databases: [{ id: "pg-old" }], persistent: true });
    // Assess
    expect(unlisted).toEqual([]);
    expect((await catalogOf(stack).listDatabases()).map((d) => d.databaseId)).toEqual(["pg-old"]);
    expect(await catalogOf(stack).getDatabase("pg-old")).toMatchObject({ databaseId: "pg-old", kind: "postgres" });
  }, 300_000);
});
