/**
 * WorkObjects (store/work-objects.ts) through its contract: in memory, and
 * over S3ObjectStore on a real s3rver (local/emulators.ts; needs
 * dist/local/s3rver-child.js: `npm run build` first).
 */
import { MemoryWorkObjects, StoreWorkObjects } from "../../store/work-objects.js";
import { s3rverForSuite } from "../support/s3rver-suite.js";
import { workObjectsContract } from "./work-objects.contract.js";

const BUCKET = "walvault-incoming";
const s3 = s3rverForSuite([BUCKET]);

workObjectsContract("MemoryWorkObjects", () => {
  const work = new MemoryWorkObjects();
  return { work, putRaw: async (key, text) => void work.docs.set(key, text) };
});

workObjectsContract("StoreWorkObjects on s3rver", () => {
  const store = s3.store();
  return { work: new StoreWorkObjects(store, BUCKET), putRaw: async (key, text) => void (await store.put(BUCKET, key, Buffer.from(text), {})) };
});
