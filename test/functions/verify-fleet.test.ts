/**
 * The verify workflow over many databases (issue #11: verification fans out
 * per database), on the local stack with its state limit lowered to 64 KiB
 * (a quarter of Step Functions' 256 KiB, so that a fleet whose every
 * candidate runs a verification task stays small enough to run here):
 * 120 registered databases, one snapshot each, are selected a page at a time.
 * Every database's snapshot gets a verification run and a result (these
 * fabricated snapshots have no manifest in the vault, so each task ends at
 * once and its result says so), the summary counts them all, and no state
 * holds more than a page: selecting every database in one state, as the
 * workflow did before, is past the limit at this size.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { fabricateFleet } from "./fleet-fixture.js";

const DATABASES = 120;
const LIMIT = 64 * 1024;

let stack: TestStack;
let ids: string[];

beforeAll(async () => {
  stack = await startTestStack([], { stateLimits: { payloadBytes: LIMIT } });
  ids = await fabricateFleet(stackClients(stack).catalog, DATABASES, 1, Date.now());
}, 600_000);

afterAll(async () => {
  await stack?.destroy();
});

interface Output {
  count: number;
  results: { databaseId: string; snapshotId: string; outcome: string }[];
  outcomes: Record<string, number>;
  listed?: number;
  pagesPrefix?: string;
}

describe("the verify workflow over 120 databases", () => {
  it("selects and verifies every database's snapshot a page at a time, with no state growing with the fleet", async () => {
    // Act
    const out = (await stack.startVerify({ level: 1 })) as Output;

    // Assess: one verification per database, every one counted
    expect(out.count).toBe(DATABASES);
    expect(Object.values(out.outcomes).reduce((a, b) => a + b, 0)).toBe(DATABASES);
    const listed = out.results.map((r) => r.databaseId);
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed.every((id) => ids.includes(id))).toBe(true);
    if (listed.length < DATABASES) expect(out.pagesPrefix).toMatch(/^work\/verify\//);
    else expect([...listed].sort()).toEqual(ids);

    // Assess: under the lowered limit, with room to spare
    const stats = stack.verifyStats;
    expect(stats.failed).toBe(0);
    expect(stats.largestState!.bytes).toBeLessThan(LIMIT);
    console.log(`verify over ${DATABASES} databases: largest state ${stats.largestState!.bytes} bytes at ${stats.largestState!.where}, ${stats.mostHistoryEvents ?? "?"} history events; outcomes ${JSON.stringify(out.outcomes)}`);
  }, 900_000);
});
