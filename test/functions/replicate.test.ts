/**
 * The replicate steps on the local stack, driven the way AWS drives them: an
 * upload's ingest copies to the replica region; a copy whose bytes come out
 * wrong in the region is retried, recorded as failed and never marked
 * replicated; the replicate workflow later brings the region level. A record
 * from before the replication index (no status for the region) is not
 * found until `walvault replicate --mark` marks it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingWalKey } from "../../core/keys.js";
import { META_DATABASE, type WalRecord } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { getDeps, overrideDeps, resetDeps } from "../../functions/deps.js";
import { corruptingStore, settleRuns, stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
const REGION = "local-2";
let stack: TestStack;
let clients: StackClients;

const seg = (n: number): string => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;

async function archive(name: string): Promise<void> {
  const raw = syntheticSegment(name, parseInt(name.slice(-4), 16));
  const body = await getCodec("zstd").encode(raw);
  await stack.idle();
  const before = stack.stats.started;
  await clients.store.put(stack.config.incomingBucket, incomingWalKey(DB, name), body, {
    ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }),
    [META_DATABASE]: DB,
  });
  await settleRuns(stack, before, 1);
  await stack.idle();
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }], { replicaRegions: [REGION], lambdaRuntime: "in-process" }); // overrideDeps below
  clients = stackClients(stack);
}, 120_000);

afterAll(async () => {
  resetDeps();
  await stack?.destroy();
});

describe("replication steps", () => {
  it("ingest copies each recorded file to the replica region and marks it replicated there", async () => {
    // Act
    await archive(seg(0x10));
    // Assess
    const rec = await clients.catalog.getWal(DB, seg(0x10));
    expect(rec?.replicas[REGION]).toMatchObject({ status: "replicated" });
    expect(await getDeps().replicas[0]!.store.head(getDeps().replicas[0]!.bucket, rec!.vaultKey)).toBeDefined();
  }, 120_000);

  it("a copy whose bytes come out wrong in the region is retried, recorded as failed, never marked replicated; the replicate workflow repairs it", async () => {
    // Prepare: the region's storage damages every object written to it.
    const replica = getDeps().replicas[0]!;
    const bad = corruptingStore(replica.store);
    overrideDeps({ replicas: [{ ...replica, store: bad }] });
    try {
      // Act
      await archive(seg(0x11));
    } finally {
      resetDeps();
    }
    // Assess: retried, then failed with the reason; the primary's record is intact.
    const rec = await clients.catalog.getWal(DB, seg(0x11));
    expect(rec?.status).toBe("stored");
    expect(bad.puts).toBeGreaterThan(1);
    expect(rec?.replicas[REGION]).toMatchObject({ status: "failed" });
    expect(rec?.replicas[REGION]?.error).toMatch(/ChecksumMismatchError: copy of .* in local-2 has SHA-256/);

    // Act 2: the region's storage is healthy again; the replicate workflow catches up.
    const out = (await stack.startReplicate({ region: REGION })) as { complete: boolean };
    // Assess 2
    expect(out.complete).toBe(true);
    expect((await clients.catalog.getWal(DB, seg(0x11)))?.replicas[REGION]).toMatchObject({ status: "replicated" });
    const copy = await getDeps().replicas[0]!.store.get(getDeps().replicas[0]!.bucket, rec!.vaultKey);
    expect(copy?.body).toEqual((await clients.store.get(stack.config.vaultBucket, rec!.vaultKey))?.body);
  }, 300_000);

  it("the replicate workflow stops with ReplicationStalled when every copy of a round fails", async () => {
    // Prepare: a file not yet in the region, and a region that damages everything.
    const replica = getDeps().replicas[0]!;
    overrideDeps({ replicas: [{ ...replica, store: corruptingStore(replica.store) }] });
    try {
      await archive(seg(0x12));
      // Act
      const e = await stack.startReplicate({ region: REGION }).catch((x: unknown) => x);
      // Assess
      expect((e as Error).name).toBe("ReplicationStalled");
      expect((await clients.catalog.getWal(DB, seg(0x12)))?.replicas[REGION]?.status).toBe("failed");
    } finally {
      resetDeps();
    }
  }, 300_000);

  it("a record from before the replication index is copied only once `walvault replicate --mark` has marked it missing in the region", async () => {
    // Prepare: a WAL file in the primary vault whose record carries no status for the region (an older catalog).
    const name = seg(0x13);
    const raw = syntheticSegment(name, 0x13);
    const body = await getCodec("zstd").encode(raw);
    const vaultKey = `db/${DB}/wal/00000001/${name}`;
    await clients.store.put(stack.config.vaultBucket, vaultKey, body, objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }));
    const old: WalRecord = {
      databaseId: DB, name, kind: "segment", timeline: 1, size: raw.length, storedSize: body.length, sha256: sha256Hex(raw), codec: "zstd",
      status: "stored", vaultKey, archivedAt: new Date().toISOString(), replicas: {},
    };
    await clients.catalog.recordWal(old);

    // Act
    const plain = await stack.cli(["replicate", "--region", REGION, "--json"]);
    const before = await clients.catalog.getWal(DB, name);
    const marked = await stack.cli(["replicate", "--region", REGION, "--mark", "--json"]);
    const primary = await stack.cli(["replicate", "--region", stack.config.region, "--mark"]);

    // Assess: the normal path does not read records the index does not hold; --mark puts this one there.
    expect(plain.code, plain.stderr).toBe(0);
    expect(before?.replicas[REGION]).toBeUndefined();
    expect(primary.code).toBe(2);
    expect(primary.stderr).toContain(`--mark needs a replica region: ${stack.config.region} is the primary`);
    expect(marked.code, marked.stderr).toBe(0);
    expect(JSON.parse(marked.stdout)).toMatchObject({ output: { complete: true }, marked: { databases: 1, marked: 1 } });
    expect((await clients.catalog.getWal(DB, name))?.replicas[REGION]).toMatchObject({ status: "replicated" });
    expect((await getDeps().replicas[0]!.store.get(getDeps().replicas[0]!.bucket, vaultKey))?.body).toEqual(body);
  }, 300_000);
});
