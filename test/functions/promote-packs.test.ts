/**
 * PromotePacks (functions/snapshot/promote-packs.ts) promotes a pack once
 * when two invocations want it at the same time — the pack's upload (the
 * pack-ingest workflow) and its manifest's Map, as for the last packs of a
 * push: one takes the pack's claim, verifies, puts and records it; the other
 * waits for the record and skips it. The handler runs in this process over
 * the local stack's stores with a catalog wrapped to count the writes; the
 * database is registered only in that wrapper, so the stack's own pack-ingest
 * execution for the upload ends NotPromoted and stays out of the race.
 * Needs `npm run build` first (the local stack runs the built handlers).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingPackKey, vaultPackKey } from "../../core/keys.js";
import { PackBuilder, type BuiltPack } from "../../core/pack.js";
import { ServiceUnavailableError } from "../../core/errors.js";
import type { DatabaseRecord } from "../../core/schemas.js";
import { packObjectMeta } from "../../core/snapshot.js";
import { overrideDeps, resetDeps } from "../../functions/deps.js";
import { handler as promotePacks, type PromotePacksOutput } from "../../functions/snapshot/promote-packs.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectStore } from "../../store/object-store.js";
import { recordingCalls, stackClients, stackDeps, type StackClients } from "../support/harness.js";
import { seededBytes } from "../support/retention.js";
import { startTestStack, type TestStack } from "../support/stack.js";

/** Known to the wrapped catalog only (see the header). */
const DB = "pack-claims";

let stack: TestStack;
let clients: StackClients;

beforeAll(async () => {
  stack = await startTestStack([{ id: "registered", kind: "generic" }]);
  clients = stackClients(stack);
}, 120_000);

afterAll(async () => {
  resetDeps();
  await stack?.destroy();
});

/** A pack of 600 zstd chunks (seeded by `seed`) uploaded to incoming; the stack's own execution for it has ended (unknown database). */
async function uploadedPack(seed: number): Promise<{ pack: BuiltPack; event: unknown }> {
  const pb = new PackBuilder({ targetSize: 64 * 1024 * 1024 });
  for (let i = 0; i < 600; i++) {
    const raw = seededBytes(seed + i, 4096);
    pb.add({ sha256: sha256Hex(raw), rawSize: raw.length, codec: "zstd", stored: await getCodec("zstd").encode(raw) });
  }
  const pack = pb.finish();
  const key = incomingPackKey(DB, pack.name);
  await clients.store.put(stack.config.incomingBucket, key, Buffer.from(pack.bytes), packObjectMeta(DB, { name: pack.name, size: pack.bytes.length, entries: pack.entries.length, dataLength: pack.dataLength }));
  await stack.idle();
  return { pack, event: { "detail-type": "Object Created", source: "aws.s3", detail: { bucket: { name: stack.config.incomingBucket }, object: { key } } } };
}

/** The stack's catalog counting `methods`, with DB registered. */
async function countingCatalog<M extends keyof Catalog & string>(methods: readonly M[]): Promise<{ catalog: Catalog; calls: Record<M, unknown[][]> }> {
  const counted = recordingCalls(clients.catalog, methods);
  const registered: DatabaseRecord = { ...(await clients.catalog.getDatabase("registered"))!, databaseId: DB };
  return { catalog: Object.assign(Object.create(counted.proxy) as Catalog, { getDatabase: async () => registered }), calls: counted.calls };
}

describe("PromotePacks, two invocations for one pack at once", () => {
  it("verifies, puts and records the pack once (no chunk record): one takes the claim and promotes it, the other waits for its record and skips it", async () => {
    // Prepare
    const { pack, event } = await uploadedPack(9000);
    const { catalog, calls } = await countingCatalog(["recordChunks", "recordPacks", "claimPackPromotion"]);
    overrideDeps(stackDeps(stack, clients, catalog));
    try {
      // Act: two promotions of the pack started together (as the upload's and the manifest's are; both take the same claim).
      const outs = (await Promise.all([promotePacks({ landed: event }), promotePacks({ landed: event })])) as PromotePacksOutput[];
      // Assess
      expect(outs.map((o) => ("pack" in o ? o.promoted : undefined)).sort()).toEqual([false, true]);
      expect(calls.recordChunks).toEqual([]);
      expect(calls.recordPacks).toHaveLength(1);
      expect(calls.claimPackPromotion.length).toBeGreaterThanOrEqual(2);
      expect((await clients.store.head(stack.config.vaultBucket, vaultPackKey(DB, pack.name)))?.size).toBe(pack.bytes.length);
      expect((await clients.catalog.getPack(DB, pack.name))?.entries).toBe(600);
      expect(await clients.catalog.getChunks(DB, pack.entries.map((e) => e.sha256))).toEqual([]);
    } finally {
      resetDeps();
    }
  }, 120_000);

  it("when the claim's holder fails, the waiting one takes the claim at once and promotes the pack (not after the claim's 5 minutes)", async () => {
    // Prepare: the first vault put of the pack fails (the test's timeout is shorter than the claim: only a release lets the other in).
    const { pack, event } = await uploadedPack(19000);
    const { catalog, calls } = await countingCatalog(["recordPacks"]);
    let puts = 0;
    const vault: ObjectStore = Object.create(clients.store) as ObjectStore;
    vault.put = async (...args) => {
      if (++puts === 1) throw new ServiceUnavailableError(`PutObject ${args[1]}: connection reset`);
      return clients.store.put(...args);
    };
    overrideDeps({ ...stackDeps(stack, clients, catalog), vault });
    try {
      // Act
      const outs = await Promise.allSettled([promotePacks({ landed: event }), promotePacks({ landed: event })]);
      // Assess: one failed with the put's error, the other promoted the pack.
      expect(outs.map((o) => o.status).sort()).toEqual(["fulfilled", "rejected"]);
      const failed = outs.find((o) => o.status === "rejected") as PromiseRejectedResult;
      expect(failed.reason).toBeInstanceOf(ServiceUnavailableError);
      const done = outs.find((o) => o.status === "fulfilled") as PromiseFulfilledResult<PromotePacksOutput>;
      expect(done.value).toMatchObject({ pack: pack.name, promoted: true });
      expect(calls.recordPacks).toHaveLength(1);
      expect(await clients.catalog.getPacks(DB, [pack.name])).toHaveLength(1);
    } finally {
      resetDeps();
    }
  }, 60_000);
});
