/**
 * The manifest reader (store/manifest-pages.ts) through its contract: in
 * memory, and over S3ObjectStore on a real s3rver (local/emulators.ts; needs
 * dist/local/s3rver-child.js: `npm run build` first).
 */
import { MemoryManifestObjects, StoreManifestObjects } from "../../store/manifest-pages.js";
import { s3rverForSuite } from "../support/s3rver-suite.js";
import { manifestPagesContract } from "./manifest-pages.contract.js";

const BUCKET = "walvault-vault";
const s3 = s3rverForSuite([BUCKET]);

manifestPagesContract("MemoryManifestObjects", () => {
  const objects = new MemoryManifestObjects();
  return { objects, putRaw: async (key, body, metadata = {}) => void objects.objects.set(key, { body, metadata }) };
});

manifestPagesContract("StoreManifestObjects on s3rver", () => {
  const store = s3.store();
  return { objects: new StoreManifestObjects(store, BUCKET), putRaw: async (key, body, metadata = {}) => void (await store.put(BUCKET, key, body, metadata)) };
});
