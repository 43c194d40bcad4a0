/**
 * store/replication.ts against two real s3rver endpoints (the local stack's
 * primary and one replica region): copies are proven in the replica, a copy
 * whose bytes come out wrong is refused every time it is tried, a damaged
 * source is never copied, and snapshots go chunks first, in bounded batches
 * from a cursor, manifest last.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { ChecksumMismatchError, InvalidInputError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey } from "../../core/keys.js";
import { META_SHA256 } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { createObjectStore } from "../../store/factory.js";
import type { ObjectStore } from "../../store/object-store.js";
import { replicateObject, replicateSnapshotBatch } from "../../store/replication.js";
import { corruptingStore, stackClients, tempDir } from "../support/harness.js";
import { SMALL_CHUNKER, uploadSnapshotDir } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const REGION = "local-2";
let stack: TestStack;
let primary: { store: ObjectStore; bucket: string };
let replica: { store: ObjectStore; bucket: string };

async function vaultObject(key: string, text: string): Promise<{ sha256: string; size: number }> {
  const raw = Buffer.from(text.repeat(200));
  const body = await getCodec("zstd").encode(raw);
  await primary.store.put(primary.bucket, key, body, objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }));
  return { sha256: sha256Hex(raw), size: raw.length };
}

beforeAll(async () => {
  stack = await startTestStack([{ id: "pg-main" }], { replicaRegions: [REGION] });
  primary = { store: stackClients(stack).store, bucket: stack.config.vaultBucket };
  const r = stack.config.replicas![0]!;
  replica = { store: createObjectStore({ region: REGION, s3Endpoint: r.s3Endpoint, credentials: stack.config.credentials }), bucket: r.vaultBucket };
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("replicateObject", () => {
  it("copies the bytes and metadata, proves them in the replica, and does not copy again the second time", async () => {
    // Prepare
    const key = "db/pg-main/wal/00000001/000000010000000000000001";
    const expected = await vaultObject(key, "segment one ");
    // Act
    const first = await replicateObject(primary, replica, key, expected, { region: REGION });
    const second = await replicateObject(primary, replica, key, expected, { region: REGION });
    // Assess
    expect(first.copied).toBe(true);
    expect(second.copied).toBe(false);
    const copy = await replica.store.get(replica.bucket, key);
    expect(copy?.body).toEqual((await primary.store.get(primary.bucket, key))?.body);
    expect(copy?.metadata[META_SHA256]).toBe(expected.sha256);
  });

  it("refuses a copy whose bytes come out wrong in the replica, on every attempt, naming the region", async () => {
    // Prepare
    const key = "db/pg-main/wal/00000001/000000010000000000000002";
    const expected = await vaultObject(key, "segment two ");
    const bad = { store: corruptingStore(replica.store), bucket: replica.bucket };
    // Act: three attempts, as the workflow's retries would make.
    const errors: unknown[] = [];
    for (let i = 0; i < 3; i++) errors.push(await replicateObject(primary, bad, key, expected, { region: REGION }).catch((e: unknown) => e));
    // Assess
    for (const e of errors) {
      expect(e).toBeInstanceOf(ChecksumMismatchError);
      expect((e as Error).message).toContain(`copy of ${key} in ${REGION}`);
    }
    expect((bad.store as ObjectStore & { puts: number }).puts).toBe(3);
  });

  it("repairs a damaged copy already in the replica (same SHA-256 metadata, wrong bytes)", async () => {
    // Prepare: a damaged copy sits in the replica.
    const key = "db/pg-main/wal/00000001/000000010000000000000003";
    const expected = await vaultObject(key, "segment three ");
    await replicateObject(primary, { store: corruptingStore(replica.store), bucket: replica.bucket }, key, expected, { region: REGION }).catch(() => undefined);
    // Act
    const r = await replicateObject(primary, replica, key, expected, { region: REGION });
    // Assess
    expect(r.copied).toBe(true);
    expect((await replica.store.get(replica.bucket, key))?.body).toEqual((await primary.store.get(primary.bucket, key))?.body);
  });

  it("never copies a source whose bytes do not prove the catalog's SHA-256", async () => {
    // Prepare
    const key = "db/pg-main/wal/00000001/000000010000000000000004";
    const expected = await vaultObject(key, "segment four ");
    // Act
    const e = await replicateObject(primary, replica, key, { ...expected, sha256: sha256Hex(Buffer.from("something else")) }, { region: REGION }).catch((x: unknown) => x);
    // Assess
    expect(e).toBeInstanceOf(ChecksumMismatchError);
    expect((e as Error).message).toContain(`vault object ${key}`);
    expect(await replica.store.head(replica.bucket, key)).toBeUndefined();
  });
});

describe("replicateSnapshotBatch", () => {
  it("copies at most maxChunks from the cursor, writes the manifest only with the last batch, and refuses a cursor past the end", async () => {
    // Prepare: a snapshot of some 15 distinct chunks in the primary vault.
    const dir = join(tempDir("walvault-repl-batch-"), "data");
    mkdirSync(dir);
    writeFileSync(join(dir, "f.bin"), randomBytes(60 * 1024));
    const snap = await uploadSnapshotDir({ store: primary.store, catalog: stackClients(stack).catalog }, stack.config, {
      databaseId: "pg-main",
      dir,
      kind: "generic",
      generic: { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] },
      chunker: SMALL_CHUNKER,
    });
    const chunks = snap.chunksOf.get("f.bin")!;
    const { manifestKey, manifestSha256 } = snap.record;
    const batch = (cursor: number) => replicateSnapshotBatch(primary, replica, manifestKey, manifestSha256, { region: REGION, cursor, maxChunks: 4 });
    // Act
    const first = await batch(0);
    const manifestAfterFirst = await replica.store.head(replica.bucket, manifestKey);
    const fifthAfterFirst = await replica.store.head(replica.bucket, vaultChunkKey("pg-main", chunks[4]!));
    const outside = await batch(chunks.length + 1).catch((e: unknown) => e);
    let last = first;
    while (!last.done) last = await batch(last.cursor);
    // Assess
    expect(first).toEqual({ done: false, cursor: 4, chunks: chunks.length, copiedChunks: 4 });
    expect(manifestAfterFirst).toBeUndefined();
    expect(fifthAfterFirst).toBeUndefined();
    expect(outside).toBeInstanceOf(InvalidInputError);
    expect(last).toMatchObject({ done: true, cursor: chunks.length, chunks: chunks.length });
    expect((await replica.store.get(replica.bucket, manifestKey))?.body).toEqual((await primary.store.get(primary.bucket, manifestKey))?.body);
  });
});
