/**
 * The manifest reader (store/manifest-pages.ts) through its contract: in
 * memory, and over S3ObjectStore on a real s3rver (local/emulators.ts; needs
 * dist/local/s3rver-child.js: `npm run build` first).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { LOCAL_CREDENTIALS, startS3, type S3Emulator } from "../../local/emulators.js";
import { MemoryManifestObjects, StoreManifestObjects } from "../../store/manifest-pages.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { manifestPagesContract } from "./manifest-pages.contract.js";

const BUCKET = "walvault-vault";
let s3: S3Emulator;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "walvault-manifest-pages-test-"));
  s3 = await startS3({ directory: dir, buckets: [BUCKET] });
});

afterAll(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

manifestPagesContract("MemoryManifestObjects", () => {
  const objects = new MemoryManifestObjects();
  return { objects, putRaw: async (key, body, metadata = {}) => void objects.objects.set(key, { body, metadata }) };
});

manifestPagesContract("StoreManifestObjects on s3rver", () => {
  const store = new S3ObjectStore({ name: "local", region: "us-east-1", endpoint: s3.endpoint, credentials: LOCAL_CREDENTIALS, forcePathStyle: true });
  return { objects: new StoreManifestObjects(store, BUCKET), putRaw: async (key, body, metadata = {}) => void (await store.put(BUCKET, key, body, metadata)) };
});
