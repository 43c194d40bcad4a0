/**
 * SweepScratch (store/sweep.ts) through its contract: in memory, and over
 * S3ObjectStore on a real s3rver under a work/ prefix (needs
 * dist/local/s3rver-child.js: `npm run build` first); a store scratch keeps
 * to its prefix and refuses one outside work/.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/errors.js";
import { MemorySweepScratch, StoreSweepScratch } from "../../store/sweep.js";
import { listKeys } from "../support/harness.js";
import { s3rverForSuite } from "../support/s3rver-suite.js";
import { sweepScratchContract } from "./sweep-scratch.contract.js";

const BUCKET = "walvault-incoming";
const { store } = s3rverForSuite([BUCKET]);

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
