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
import { PackBuilder } from "../../core/pack.js";
import type { DatabaseRecord } from "../../core/schemas.js";
import { packObjectMeta } from "../../core/snapshot.js";
import { overrideDeps, resetDeps } from "../../functions/deps.js";
import { handler as promotePacks, type PromotePacksOutput } from "../../functions/snapshot/promote-packs.js";
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

describe("PromotePacks, two invocations for one pack at once", () => {
  it("verifies, puts and records the pack once: one takes the claim and promotes it, the other waits for its record and skips it", async () => {
    // Prepare: a pack of 600 zstd chunks in incoming.
    const pb = new PackBuilder({ targetSize: 64 * 1024 * 1024 });
    for (let i = 0; i < 600; i++) {
      const raw = seededBytes(9000 + i, 4096);
      pb.add({ sha256: sha256Hex(raw), rawSize: raw.length, codec: "zstd", stored: await getCodec("zstd").encode(raw) });
    }
    const pack = pb.finish();
    const key = incomingPackKey(DB, pack.name);
    await clients.store.put(stack.config.incomingBucket, key, Buffer.from(pack.bytes), packObjectMeta(DB, { name: pack.name, size: pack.bytes.length, entries: pack.entries.length, dataLength: pack.dataLength }));
    await stack.idle(); // the stack's own execution: an unknown database, nothing written
    const counted = recordingCalls(clients.catalog, ["recordChunks", "recordPacks", "claimPackPromotion"]);
    const registered: DatabaseRecord = { ...(await clients.catalog.getDatabase("registered"))!, databaseId: DB };
    const catalog = Object.assign(Object.create(counted.proxy) as typeof counted.proxy, { getDatabase: async () => registered });
    overrideDeps(stackDeps(stack, clients, catalog));
    const event = { "detail-type": "Object Created", source: "aws.s3", detail: { bucket: { name: stack.config.incomingBucket }, object: { key } } };
    try {
      // Act: two promotions of the pack started together (as the upload's and the manifest's are; both take the same claim).
      const outs = (await Promise.all([promotePacks({ landed: event }), promotePacks({ landed: event })])) as PromotePacksOutput[];
      // Assess
      expect(outs.map((o) => ("pack" in o ? o.promoted : undefined)).sort()).toEqual([false, true]);
      expect(counted.calls.recordChunks).toHaveLength(1);
      expect(counted.calls.recordPacks).toHaveLength(1);
      expect(counted.calls.claimPackPromotion.length).toBeGreaterThanOrEqual(2);
      expect((await clients.store.head(stack.config.vaultBucket, vaultPackKey(DB, pack.name)))?.size).toBe(pack.bytes.length);
      expect(await clients.catalog.getChunks(DB, pack.entries.map((e) => e.sha256))).toHaveLength(600);
    } finally {
      resetDeps();
    }
  }, 120_000);
});
