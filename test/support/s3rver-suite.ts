/**
 * One real s3rver for the calling test file (its beforeAll/afterAll), for the
 * contract suites that run an ObjectStore-backed implementation against it
 * (needs dist/local/s3rver-child.js: `npm run build` first).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { LOCAL_CREDENTIALS, startS3, type S3Emulator } from "../../local/emulators.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";

/** Starts s3rver with `buckets` before the file's tests; `store()` is a client of it (call it inside a test or a fixture maker). */
export function s3rverForSuite(buckets: readonly string[]): { store(): S3ObjectStore } {
  let s3: S3Emulator | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "walvault-s3rver-suite-"));
    s3 = await startS3({ directory: dir, buckets: [...buckets] });
  });
  afterAll(async () => {
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    store() {
      if (!s3) throw new Error("s3rverForSuite: the store is asked for before the suite's beforeAll ran");
      return new S3ObjectStore({ name: "local", region: "us-east-1", endpoint: s3.endpoint, credentials: LOCAL_CREDENTIALS, forcePathStyle: true });
    },
  };
}
