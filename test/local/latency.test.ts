/**
 * local/latency.ts and the stack waiting out what AWS takes time for (issue
 * #13): event delivery before an ingest starts, cold starts of new
 * sandboxes, idle sandboxes reclaimed. The assertions are on what happened
 * (cold starts counted, idle() covering an event still on its way, a lower
 * bound the delay itself guarantees), never on how fast.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { ConfigError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingWalKey } from "../../core/keys.js";
import { META_DATABASE } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { AWS_LATENCY, describeLatency, NO_LATENCY, parseLatency, type CloudLatency } from "../../local/latency.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

describe("parseLatency", () => {
  it("reads 'aws', 'none' and overrides of either, and refuses anything else in one line naming it", () => {
    expect(parseLatency("aws")).toEqual(AWS_LATENCY);
    expect(parseLatency("none")).toEqual(NO_LATENCY);
    expect(parseLatency("aws,eventDeliveryMs=2000, coldStartMs=0")).toEqual({ ...AWS_LATENCY, eventDeliveryMs: 2000, coldStartMs: 0 });
    expect(() => parseLatency("fast")).toThrow(ConfigError);
    expect(() => parseLatency("fast")).toThrow("latency 'fast' does not start with 'aws' or 'none'");
    expect(() => parseLatency("aws,eventDelivery=5")).toThrow("latency override 'eventDelivery=5' is not <name>=<milliseconds>");
    expect(() => parseLatency("aws,coldStartMs=-1")).toThrow("latency override 'coldStartMs=-1'");
  });

  it("describes what is added in one line, and nothing as nothing", () => {
    expect(describeLatency(NO_LATENCY)).toBe("no added cloud latency");
    expect(describeLatency(AWS_LATENCY)).toBe(
      "cloud latency: event delivery 1000 ms, StartExecution 50 ms, Lambda invoke 25 ms, cold start +200 ms, idle sandboxes reclaimed after 300 s",
    );
  });
});

const DB = "pg-main";
// The reclaim time far above what separates two back-to-back uploads' uses of a step (delivery and the other steps), even on a loaded machine.
const LATENCY: CloudLatency = { eventDeliveryMs: 700, startExecutionMs: 0, invokeMs: 0, coldStartMs: 300, idleReclaimMs: 8_000 };
const seg = (n: number): string => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;

let stack: TestStack;
let clients: StackClients;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }], { latency: LATENCY });
  clients = stackClients(stack);
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

/** Uploads segment `n` as the agent does; resolves when the put returns (the ingest is still to come). */
async function upload(n: number): Promise<void> {
  const raw = syntheticSegment(seg(n), n);
  const body = await getCodec("zstd").encode(raw);
  const meta = { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: DB };
  await clients.store.put(stack.config.incomingBucket, incomingWalKey(DB, seg(n)), body, meta);
}

const coldStarts = (): number => [...stack.stepUsage.values()].reduce((n, u) => n + (u.coldStarts ?? 0), 0);

describe("a local stack with cloud latency", () => {
  it("delivers an upload's event only after the delivery delay, and idle() waits for an event still on its way", async () => {
    // Prepare
    await stack.idle();
    const t0 = performance.now();

    // Act: idle() right after the put, while the event is still being delivered
    await upload(1);
    await stack.idle();

    // Assess: the segment is recorded once idle() resolves, no sooner than the delivery delay allows
    expect(await clients.catalog.getWal(DB, seg(1))).toBeDefined();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(LATENCY.eventDeliveryMs);
    expect(stack.stats).toMatchObject({ started: 1, succeeded: 1, failed: 0 });
  });

  it("starts each step's first sandbox cold, reuses it warm, and starts it cold again once it was idle past the reclaim time", async () => {
    // Prepare: the first upload's steps each started one sandbox
    await stack.idle();
    const afterFirst = coldStarts();
    expect(afterFirst).toBeGreaterThanOrEqual(3); // Validate, Promote, Record

    // Act: a second upload at once (warm), then a third after the sandboxes were idle past the reclaim time
    await upload(2);
    await stack.idle();
    const afterWarm = coldStarts();
    await new Promise((r) => setTimeout(r, LATENCY.idleReclaimMs + 200));
    await upload(3);
    await stack.idle();

    // Assess
    expect(afterWarm).toBe(afterFirst);
    expect(coldStarts()).toBe(afterFirst * 2);
    expect(await clients.catalog.getWal(DB, seg(3))).toBeDefined();
  });
});
