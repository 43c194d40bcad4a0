/**
 * The local stack runs each Lambda Task under the step's timeout, as AWS
 * does (local/stack.ts, core/steps.ts): a handler still running at its
 * timeout fails the invocation with Sandbox.Timedout, which the ingest
 * workflow retries once and then reports without quarantining anything.
 * Needs `npm run build` (s3rver runs from dist/).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { failedMarkerKey, incomingWalKey } from "../../core/keys.js";
import { META_DATABASE } from "../../core/schemas.js";
import { STEP_TIMEOUT_SECONDS } from "../../core/steps.js";
import { objectMeta } from "../../core/verify.js";
import { settleRuns, stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
let stack: TestStack;
let clients: StackClients;

beforeAll(async () => {
  // Validate of a 16 MiB segment (decode, hash) takes far longer than 1 ms.
  stack = await startTestStack([{ id: DB }], { lambdaTimeoutMs: { Validate: 1 } });
  clients = stackClients(stack);
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("Lambda timeouts on the local stack", () => {
  it("fails a handler that runs past its step's timeout with Sandbox.Timedout: retried once, then reported, nothing quarantined", async () => {
    // Prepare
    const name = "000000010000000000000031";
    const raw = syntheticSegment(name, 31);
    const body = await getCodec("zstd").encode(raw);
    const key = incomingWalKey(DB, name);
    const startedBefore = stack.stats.started;
    const failedBefore = stack.stats.failed;

    // Act
    await clients.store.put(stack.config.incomingBucket, key, body, { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: DB });
    await settleRuns(stack, startedBefore, 1);

    // Assess: the execution failed, with the workflow's note naming the timeout.
    expect(stack.stats.failed).toBe(failedBefore + 1);
    const note = await clients.store.get(stack.config.incomingBucket, failedMarkerKey(key));
    expect(note).toBeDefined();
    const parsed = JSON.parse(note!.body.toString("utf8")) as { state: string; error: { Error: string; Cause: string }; upload: { key: string } };
    expect(parsed).toMatchObject({ state: "Validate", error: { Error: "Sandbox.Timedout" }, upload: { key } });
    expect(parsed.error.Cause).toMatch(/^Task timed out after 0\.00 seconds/);
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
  });

  it("declares a timeout for every Lambda placeholder of every workflow the stack runs", async () => {
    const { WORKFLOWS, RESTORE_WORKFLOW, REPLICATE_WORKFLOW, VERIFY_WORKFLOW, RETENTION_WORKFLOW } = await import("../../local/stack.js");
    const placeholders = [WORKFLOWS, [RESTORE_WORKFLOW, REPLICATE_WORKFLOW, VERIFY_WORKFLOW, RETENTION_WORKFLOW]].flat().flatMap((w) => Object.keys(w.functions));
    for (const p of placeholders) expect(STEP_TIMEOUT_SECONDS, p).toHaveProperty(p);
  });
});
