/**
 * SweepScratch (store/sweep.ts) through its contract: in memory, and over
 * S3ObjectStore on a real s3rver under a work/ prefix (needs
 * dist/local/s3rver-child.js: `npm run build` first); a store scratch keeps
 * to its prefix and refuses one outside work/.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../core/errors.js";
import { LOCAL_CREDENTIALS, startS3, type S3Emulator } from "../../local/emulators.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { MemorySweepScratch, StoreSweepScratch } from "../../store/sweep.js";
import { listKeys } from "../support/harness.js";
import { sweepScratchContract } from "./sweep-scratch.contract.js";

const BUCKET = "walvault-incoming";
let s3: S3Emulator;
let dir: string;
const store = (): S3ObjectStore => new S3ObjectStore({ name: "local", region: "us-east-1", endpoint: s3.endpoint, credentials: LOCAL_CREDENTIALS, forcePathStyle: true });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "walvault-sweep-scratch-"));
  s3 = await startS3({ directory: dir, buckets: [BUCKET] });
});

afterAll(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

sweepScratchContract("MemorySweepScratch", () => new MemorySweepScratch());
sweepScratchContract("StoreSweepScratch on s3rver", () => new StoreSweepScratch(store(), BUCKET, `work/retention/${randomUUID()}/db/sweep/`));

describe("StoreSweepScratch", () => {
  it("clears only its own prefix", async () => {
    // Prepare: two scratches side by side.
    const run = randomUUID();
    const a = new StoreSweepScratch(store(), BUCKET, `work/retention/${run}/a/sweep/`);
    const b = new StoreSweepScratch(store(), BUCKET, `work/retention/${run}/b/sweep/`);
    await a.put("x", Buffer.from("a"));
    await b.put("x", Buffer.from("b"));
    // Act
    await a.clear();
    // Assess
    expect(await listKeys(store(), BUCKET, `work/retention/${run}/`)).toEqual([`work/retention/${run}/b/sweep/x`]);
  });

  it("refuses a prefix outside work/ or not ending in /", () => {
    expect(() => new StoreSweepScratch(store(), BUCKET, "db/x/sweep/")).toThrow(ConfigError);
    expect(() => new StoreSweepScratch(store(), BUCKET, "work/retention/x")).toThrow(ConfigError);
  });
});
