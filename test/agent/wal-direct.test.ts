/**
 * Direct WAL (docs/wal.md): wal-push with WALVAULT_WAL_DIRECT=1 writes each
 * segment into the vault under its content-addressed key and starts the
 * wal-record workflow; against the real local stack (s3rver + DynamoDB Local
 * + statemachines/wal-record.asl.json). Needs `npm run build` first.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { walPush } from "../../agent/wal-push.js";
import { getCodec } from "../../core/codec.js";
import type { AgentConfig } from "../../core/config.js";
import { ServiceUnavailableError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingWalKey, parseVaultWalKey, vaultWalDirectKey, vaultWalKey } from "../../core/keys.js";
import { META_DATABASE } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { parseWalFileName } from "../../core/wal.js";
import { openCatalogTable, rebuildCatalog } from "../../store/catalog-rebuild.js";
import { createWorkflowRunner, type WorkflowRunner } from "../../store/workflows.js";
import { listKeys, poll, quietPeriod, recordingCalls, stackClients, tempDir, writeWal, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-direct";
const DIRECT = { WALVAULT_WAL_DIRECT: "1" };

let stack: TestStack;
let clients: StackClients;
let dir: string;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }]);
  clients = stackClients(stack);
  dir = tempDir("walvault-direct-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The key wal-push writes `raw` to (zstd, the agent's default codec). */
async function directKeyOf(name: string, raw: Buffer): Promise<{ key: string; encoded: Buffer }> {
  const encoded = Buffer.from(await getCodec("zstd").encode(raw));
  return { key: vaultWalDirectKey(DB, parseWalFileName(name), sha256Hex(encoded)), encoded };
}

function runner(): WorkflowRunner {
  const c = stack.config;
  return createWorkflowRunner({ region: c.region, stepFunctionsEndpoint: c.stepFunctionsEndpoint, credentials: c.credentials });
}

describe("wal-push with direct WAL", () => {
  const name = "000000010000000000000003";
  const bytes = syntheticSegment(name, 3);

  it("writes the segment once into the vault at its content-addressed key, records it there, and wal-fetch returns the same bytes", async () => {
    // Prepare
    const path = writeWal(dir, name, bytes);
    const { key } = await directKeyOf(name, bytes);
    const before = { walRecord: stack.walRecordStats.started, ingest: stack.workflowStats.ingest.started };

    // Act
    const r = await stack.cli(["wal-push", path, "--timeout", "30", "--json"], { env: DIRECT });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored", sha256: sha256Hex(bytes) });
    const rec = await clients.catalog.getWal(DB, name);
    expect(rec).toMatchObject({ name, kind: "segment", sha256: sha256Hex(bytes), vaultKey: key, status: "stored" });
    expect(parseVaultWalKey(rec!.vaultKey)).toMatchObject({ name, dir: "00000001", digest: key.slice(-16) });
    expect(stack.walRecordStats.started).toBe(before.walRecord + 1);
    expect(stack.workflowStats.ingest.started).toBe(before.ingest);
    expect(await listKeys(clients.store, stack.config.incomingBucket, incomingWalKey(DB, ""))).toEqual([]);
    expect(await clients.store.head(stack.config.vaultBucket, vaultWalKey(DB, parseWalFileName(name)))).toBeUndefined();
    const dest = join(dir, "RECOVERYXLOG");
    const fetched = await stack.cli(["wal-fetch", name, dest, "--no-prefetch"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(dest).equals(bytes)).toBe(true);
  });

  it("pushed again with the same bytes: already archived, no new record and no new execution", async () => {
    // Prepare
    await stack.idle();
    const recordBefore = await clients.catalog.getWal(DB, name);
    const started = stack.stats.started;
    const again = tempDir("walvault-direct-again-");

    // Act
    const r = await stack.cli(["wal-push", writeWal(again, name, bytes), "--json"], { env: DIRECT });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "already-archived" });
    await quietPeriod();
    expect(stack.stats.started).toBe(started);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
    rmSync(again, { recursive: true, force: true });
  });

  it("other bytes under the same name: one SegmentConflictError line, nothing written, the recorded copy untouched", async () => {
    // Prepare
    const other = syntheticSegment(name, 77);
    const conflictDir = tempDir("walvault-direct-conflict-");
    const recordBefore = await clients.catalog.getWal(DB, name);
    const vaultBefore = await listKeys(clients.store, stack.config.vaultBucket, `db/${DB}/wal/`);

    // Act
    const r = await stack.cli(["wal-push", writeWal(conflictDir, name, other)], { env: DIRECT });

    // Assess
    expect(r.code).not.toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/already archived.*different contents/);
    await quietPeriod();
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
    expect(await listKeys(clients.store, stack.config.vaultBucket, `db/${DB}/wal/`)).toEqual(vaultBefore);
    rmSync(conflictDir, { recursive: true, force: true });
  });

  it("an object already at its key but not recorded (a push that stopped before starting wal-record) is recorded by the next push", async () => {
    // Prepare
    const n = "000000010000000000000005";
    const raw = syntheticSegment(n, 5);
    const { key, encoded } = await directKeyOf(n, raw);
    await clients.store.put(stack.config.vaultBucket, key, encoded, { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: DB });

    // Act
    const r = await stack.cli(["wal-push", writeWal(dir, n, raw), "--json"], { env: DIRECT });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: n, outcome: "stored" });
    expect((await clients.catalog.getWal(DB, n))?.vaultKey).toBe(key);
  });

  it("retries a wal-record run that fails transiently, then stores the segment", async () => {
    // Prepare
    const n = "000000010000000000000006";
    const raw = syntheticSegment(n, 6);
    const real = runner();
    let attempts = 0;
    const flaky: WorkflowRunner = {
      start: (arn, input, o) => real.start(arn, input, o),
      describe: (id) => real.describe(id),
      runSync: async (arn, input, o) => {
        attempts++;
        if (attempts <= 2) throw new ServiceUnavailableError("Step Functions throttled (injected)");
        return real.runSync(arn, input, o);
      },
    };
    const cfg = { ...(stack.config as AgentConfig), databaseId: DB };

    // Act
    const result = await walPush(writeWal(dir, n, raw), cfg, clients, { wait: "stored", timeoutMs: 30_000, cwd: dir, direct: true, workflows: flaky });

    // Assess
    expect(attempts).toBe(3);
    expect(result.outcome).toBe("stored");
    expect((await clients.catalog.getWal(DB, n))?.sha256).toBe(sha256Hex(raw));
  });

  it("with no replica region, runs wal-record to its end and takes the stored size from its output instead of polling the catalog", async () => {
    // Prepare
    const n = "000000010000000000000008";
    const raw = syntheticSegment(n, 8);
    const real = runner();
    const calls = { start: 0, runSync: 0 };
    const counted: WorkflowRunner = {
      start: (arn, input, o) => (calls.start++, real.start(arn, input, o)),
      describe: (id) => real.describe(id),
      runSync: (arn, input, o) => (calls.runSync++, real.runSync(arn, input, o)),
    };
    const { proxy: catalog, calls: catalogCalls } = recordingCalls(clients.catalog, ["getWal"]);
    const cfg = { ...(stack.config as AgentConfig), databaseId: DB, replicas: [] };

    // Act
    const result = await walPush(writeWal(dir, n, raw), cfg, { ...clients, catalog }, { wait: "stored", timeoutMs: 30_000, cwd: dir, direct: true, workflows: counted });

    // Assess
    expect(result.outcome).toBe("stored");
    expect(calls).toEqual({ start: 0, runSync: 1 });
    // One read before the upload (already archived?), none after the execution ended.
    expect(catalogCalls.getWal).toHaveLength(1);
    expect(result.storedSize).toBe((await clients.catalog.getWal(DB, n))?.storedSize);
  });

  it("takes a timeout that is not a whole number of milliseconds (the resident agent's, from its deadline)", async () => {
    // Prepare
    const n = "00000001000000000000000A";
    const raw = syntheticSegment(n, 10);
    const cfg = { ...(stack.config as AgentConfig), databaseId: DB, replicas: [] };

    // Act
    const result = await walPush(writeWal(dir, n, raw), cfg, clients, { wait: "stored", timeoutMs: 29_999.978, cwd: dir, direct: true });

    // Assess
    expect(result.outcome).toBe("stored");
    expect((await clients.catalog.getWal(DB, n))?.sha256).toBe(sha256Hex(raw));
  });

  it("a bad object's run ends in QuarantinedError with the quarantine record's reason", async () => {
    // Prepare: a segment whose vault object the runner swaps for other bytes at the same key before the run
    const n = "000000010000000000000009";
    const raw = syntheticSegment(n, 9);
    const real = runner();
    const swapped: WorkflowRunner = {
      start: (arn, input, o) => real.start(arn, input, o),
      describe: (id) => real.describe(id),
      runSync: async (arn, input, o) => {
        const { key } = input as { key: string };
        const other = Buffer.from(await getCodec("zstd").encode(syntheticSegment(n, 90)));
        await clients.store.put(stack.config.vaultBucket, key, other, objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }));
        return real.runSync(arn, input, o);
      },
    };
    const cfg = { ...(stack.config as AgentConfig), databaseId: DB, replicas: [] };

    // Act
    const pushed = walPush(writeWal(dir, n, raw), cfg, clients, { wait: "stored", timeoutMs: 30_000, cwd: dir, direct: true, workflows: swapped });

    // Assess
    await expect(pushed).rejects.toThrow(/^000000010000000000000009 was rejected by ingest and quarantined: .*does not hold the bytes its key names/);
    expect(await clients.catalog.getWal(DB, n)).toBeUndefined();
    // The rejected object stays in the vault; removed here so that the catalog rebuild below sees only its own cases.
    const { key } = await directKeyOf(n, raw);
    await clients.store.delete(stack.config.vaultBucket, key);
  });

  it("a history file takes the incoming/ path even with direct WAL on", async () => {
    // Prepare
    const h = "00000002.history";
    const before = stack.workflowStats.ingest.started;

    // Act
    const r = await stack.cli(["wal-push", writeWal(dir, h, "1\t0/3000000\tno recovery target specified\n"), "--timeout", "30"], { env: DIRECT });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(stack.workflowStats.ingest.started).toBe(before + 1);
    expect((await clients.catalog.getWal(DB, h))?.vaultKey).toBe(`db/${DB}/history/${h}`);
  });
});

describe("the wal-record workflow", () => {
  it("quarantines an object whose bytes do not match its key's digest and never records it; the object stays where it is", async () => {
    // Prepare
    const n = "000000010000000000000007";
    const raw = syntheticSegment(n, 7);
    // A key naming other bytes than those put there.
    const { key } = await directKeyOf(n, syntheticSegment(n, 71));
    const corrupted = Buffer.from(await getCodec("zstd").encode(syntheticSegment(n, 70)));
    await clients.store.put(stack.config.vaultBucket, key, corrupted, { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: DB });
    const failedBefore = stack.walRecordStats.failed;

    // Act
    await runner().start(stack.config.walRecordStateMachineArn!, { databaseId: DB, name: n, key, sha256: sha256Hex(raw) });

    // Assess
    await poll(() => stack.walRecordStats.failed > failedBefore, 15_000, "the wal-record execution to end");
    const q = await clients.catalog.listQuarantine(DB, n);
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({ name: n, incomingKey: key, error: "ChecksumMismatchError" });
    expect(q[0]!.reason).toMatch(/does not hold the bytes its key names/);
    expect(await clients.catalog.getWal(DB, n)).toBeUndefined();
    expect(await clients.store.head(stack.config.vaultBucket, key)).toBeDefined();
    // Beside it, the marker that tells catalog rebuild (which has only the bucket) it was rejected, and why.
    const marker = await clients.store.get(stack.config.vaultBucket, `${key}.rejected`);
    expect(JSON.parse(marker!.body.toString())).toMatchObject({ name: n, error: "ChecksumMismatchError", reason: expect.stringMatching(/does not hold the bytes its key names/) });
  });

  it("catalog rebuild parses content-addressed keys and skips the rejected object of a recorded name", async () => {
    // Prepare: 000…07 has a rejected object (above); now a good push of it.
    const n = "000000010000000000000007";
    const raw = syntheticSegment(n, 7);
    const rejected = (await directKeyOf(n, syntheticSegment(n, 71))).key;
    const r = await stack.cli(["wal-push", writeWal(dir, n, raw), "--timeout", "30"], { env: DIRECT });
    expect(r.code, r.stderr).toBe(0);
    await stack.idle();
    const c = stack.config;
    const { catalog: target } = await openCatalogTable({ region: c.region, dynamodbEndpoint: c.dynamodbEndpoint, credentials: c.credentials, table: "walvault-rebuilt-direct" });

    // Act
    const summary = await rebuildCatalog({ store: clients.store, bucket: c.vaultBucket }, target, { databaseIds: [DB] });

    // Assess
    const original = (await clients.catalog.listWal(DB)).map((w) => [w.name, w.vaultKey, w.sha256]);
    const rebuilt = (await target.listWal(DB)).map((w) => [w.name, w.vaultKey, w.sha256]);
    expect(rebuilt).toEqual(original);
    expect(rebuilt.find((w) => w[0] === n)?.[1]).toBe((await directKeyOf(n, raw)).key);
    expect(summary.databases[0]!.skipped).toEqual([{ key: rejected, reason: expect.stringMatching(/do not match the digest/) }]);
  });

  it("catalog rebuild does not record a rejected direct object that is the only one of its name (its marker has it read and checked)", async () => {
    // Prepare: a key naming other bytes than those written there, rejected by wal-record, and no good copy after it
    const n = "00000001000000000000000B";
    const raw = syntheticSegment(n, 11);
    const { key } = await directKeyOf(n, syntheticSegment(n, 111));
    await clients.store.put(stack.config.vaultBucket, key, Buffer.from(await getCodec("zstd").encode(syntheticSegment(n, 112))), {
      ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }),
      [META_DATABASE]: DB,
    });
    const failedBefore = stack.walRecordStats.failed;
    await runner().start(stack.config.walRecordStateMachineArn!, { databaseId: DB, name: n, key, sha256: sha256Hex(raw) });
    await poll(() => stack.walRecordStats.failed > failedBefore, 15_000, "the wal-record execution to end");
    await poll(() => clients.store.head(stack.config.vaultBucket, `${key}.rejected`), 15_000, "the rejected marker");
    const c = stack.config;
    const { catalog: target } = await openCatalogTable({ region: c.region, dynamodbEndpoint: c.dynamodbEndpoint, credentials: c.credentials, table: "walvault-rebuilt-lone" });

    // Act
    const summary = await rebuildCatalog({ store: clients.store, bucket: c.vaultBucket }, target, { databaseIds: [DB] });

    // Assess: not recorded, named as skipped; the marker itself is not reported as a stray key
    expect(await target.getWal(DB, n)).toBeUndefined();
    const skipped = summary.databases[0]!.skipped;
    expect(skipped.filter((x) => x.key.includes(n))).toEqual([{ key, reason: expect.stringMatching(/do not match the digest/) }]);
  });

  it("catalog rebuild records a direct object whose marker is from a rejection that no longer holds (its bytes pass ingest's checks)", async () => {
    // Prepare: a good direct push, and a marker beside it as a rejection for a passing reason would leave (its database not yet registered)
    const n = "00000001000000000000000C";
    const raw = syntheticSegment(n, 12);
    const r = await stack.cli(["wal-push", writeWal(dir, n, raw), "--timeout", "30"], { env: DIRECT });
    expect(r.code, r.stderr).toBe(0);
    const { key } = await directKeyOf(n, raw);
    await clients.store.put(stack.config.vaultBucket, `${key}.rejected`, Buffer.from('{"error":"UnknownDatabaseError"}\n'), {});
    const c = stack.config;
    const { catalog: target } = await openCatalogTable({ region: c.region, dynamodbEndpoint: c.dynamodbEndpoint, credentials: c.credentials, table: "walvault-rebuilt-marked-good" });

    // Act
    const summary = await rebuildCatalog({ store: clients.store, bucket: c.vaultBucket }, target, { databaseIds: [DB] });

    // Assess
    expect(await target.getWal(DB, n)).toMatchObject({ vaultKey: key, sha256: sha256Hex(raw) });
    expect(summary.databases[0]!.skipped.filter((x) => x.key.includes(n))).toEqual([]);
  });

  /** `raw` of WAL file `n` written to the vault at its direct key, as wal-push writes it; the wal-record input naming it. */
  async function writtenDirect(n: string, raw: Buffer): Promise<{ databaseId: string; name: string; key: string; sha256: string }> {
    const { key, encoded } = await directKeyOf(n, raw);
    await clients.store.put(stack.config.vaultBucket, key, encoded, { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: DB });
    return { databaseId: DB, name: n, key, sha256: sha256Hex(raw) };
  }

  it("runs for a name recorded with the same bytes as a duplicate: it succeeds and the record stays as it was", async () => {
    // Prepare
    const n = "000000010000000000000011";
    const input = await writtenDirect(n, syntheticSegment(n, 11));
    const first = await runner().runSync(stack.config.walRecordStateMachineArn!, input);
    const recorded = await clients.catalog.getWal(DB, n);

    // Act
    const again = await runner().runSync(stack.config.walRecordStateMachineArn!, input);

    // Assess
    expect(first).toMatchObject({ status: "SUCCEEDED", output: { validated: { outcome: "created" } } });
    expect(again).toMatchObject({ status: "SUCCEEDED", output: { validated: { outcome: "duplicate", ingest: { duplicate: true } } } });
    expect(await clients.catalog.getWal(DB, n)).toEqual(recorded);
  });

  it("quarantines an object of a name recorded with other bytes as a SegmentConflictError, and the record stays as it was", async () => {
    // Prepare
    const n = "000000010000000000000012";
    await runner().runSync(stack.config.walRecordStateMachineArn!, await writtenDirect(n, syntheticSegment(n, 12)));
    const recorded = await clients.catalog.getWal(DB, n);
    const other = await writtenDirect(n, syntheticSegment(n, 120));

    // Act
    const run = await runner().runSync(stack.config.walRecordStateMachineArn!, other);

    // Assess
    expect(recorded).toBeDefined();
    expect(run.status).not.toBe("SUCCEEDED");
    const q = await clients.catalog.listQuarantine(DB, n);
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({ name: n, incomingKey: other.key, error: "SegmentConflictError" });
    expect(q[0]!.reason).toMatch(/already archived .* with different contents/);
    expect(await clients.catalog.getWal(DB, n)).toEqual(recorded);
  });
});
