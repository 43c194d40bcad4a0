/**
 * The retention workflow over many databases (issue #11: "retention over
 * many databases"), on the local stack with Step Functions' limits enforced
 * (256 KiB per state, 25,000 history events): 300 registered databases, each
 * with twelve snapshots its policy keeps, are planned a page at a time. The
 * run succeeds, every database is planned (the pages' work/ objects hold all
 * 300 plans; the output lists as many as fit its bound), and no state comes
 * near the limit: one state holding every plan, as the workflow did before,
 * is past 256 KiB at this size (States.DataLimitExceeded).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLAN_PAGE, pageKey } from "../../functions/retention/common.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { fabricateFleet } from "./fleet-fixture.js";

const DATABASES = 300;
const SNAPSHOTS = 12;
const POLICY = { daily: SNAPSHOTS, weekly: 0, monthly: 0, recoveryWindowDays: 0 };

let stack: TestStack;
let clients: StackClients;
let ids: string[];

beforeAll(async () => {
  stack = await startTestStack([]);
  clients = stackClients(stack);
  ids = await fabricateFleet(clients.catalog, DATABASES, SNAPSHOTS, Date.now(), POLICY);
}, 600_000);

afterAll(async () => {
  await stack?.destroy();
});

interface Output {
  dryRun: boolean;
  execution: string;
  count: number;
  databases: { databaseId: string; keep: unknown[] }[];
  listed?: number;
  pagesPrefix?: string;
}

describe("the retention workflow over 300 databases", () => {
  it("plans every database a page at a time, with no state growing with the fleet", async () => {
    // Act
    const out = (await stack.startRetention({ dryRun: true })) as Output;

    // Assess: every database planned, each keeping its twelve snapshots
    expect(out.dryRun).toBe(true);
    expect(out.count).toBe(DATABASES);
    const pages = Math.ceil(DATABASES / PLAN_PAGE);
    const planned: { databaseId: string; keep: unknown[] }[] = [];
    for (let p = 0; p <= pages; p++) {
      const obj = await clients.store.get(stack.config.incomingBucket, pageKey(out.execution, p));
      if (obj) planned.push(...(JSON.parse(obj.body.toString("utf8")) as typeof planned));
    }
    expect(planned.map((d) => d.databaseId)).toEqual(ids);
    expect(planned.every((d) => d.keep.length === SNAPSHOTS)).toBe(true);
    // The output lists what fits its bound, in order, and says where the rest is.
    expect(out.databases.map((d) => d.databaseId)).toEqual(ids.slice(0, out.databases.length));
    expect(out.listed ?? out.databases.length).toBe(out.databases.length);
    if (out.databases.length < DATABASES) expect(out.pagesPrefix).toMatch(/^work\/retention\//);

    // Assess: the largest state is a page's worth, far under 256 KiB, and so is the history
    const stats = stack.retentionStats;
    expect(stats.failed).toBe(0);
    expect(stats.largestState!.bytes).toBeLessThan(64 * 1024);
    expect(stats.mostHistoryEvents ?? 0).toBeLessThan(25_000);
    console.log(`retention over ${DATABASES} databases: largest state ${stats.largestState!.bytes} bytes at ${stats.largestState!.where}, ${stats.mostHistoryEvents ?? "?"} history events`);
  }, 600_000);
});
