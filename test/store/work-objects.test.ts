/**
 * WorkObjects (store/work-objects.ts) through its contract: in memory, and
 * over S3ObjectStore on a real s3rver (local/emulators.ts; needs
 * dist/local/s3rver-child.js: `npm run build` first).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { LOCAL_CREDENTIALS, startS3, type S3Emulator } from "../../local/emulators.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { MemoryWorkObjects, StoreWorkObjects } from "../../store/work-objects.js";
import { workObjectsContract } from "./work-objects.contract.js";

const BUCKET = "walvault-incoming";
let s3: S3Emulator;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "walvault-work-test-"));
  s3 = await startS3({ directory: dir, buckets: [BUCKET] });
});

afterAll(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

workObjectsContract("MemoryWorkObjects", () => {
  const work = new MemoryWorkObjects();
  return { work, putRaw: async (key, text) => void work.docs.set(key, text) };
});

workObjectsContract("StoreWorkObjects on s3rver", () => {
  const store = new S3ObjectStore({ name: "local", region: "us-east-1", endpoint: s3.endpoint, credentials: LOCAL_CREDENTIALS, forcePathStyle: true });
  return { work: new StoreWorkObjects(store, BUCKET), putRaw: async (key, text) => void (await store.put(BUCKET, key, Buffer.from(text), {})) };
});
