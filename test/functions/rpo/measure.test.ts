/**
 * The rpo-watch workflow on the local stack, run on its timer as its
 * schedule runs it in AWS: a database that stops archiving crosses its RPO
 * threshold in the metric the alarm reads (walvault/Archive RpoBreached), and
 * clears once archiving resumes; another database is measured beside it.
 * Needs `npm run build` first.
 */
import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARCHIVE_NAMESPACE } from "../../../core/metrics.js";
import { poll, tempDir, writeWal } from "../../support/harness.js";
import { startTestStack, type TestStack } from "../../support/stack.js";
import { syntheticSegment } from "../../support/wal.js";

const WATCHED = "pg-rpo";
const OTHER = "pg-other";
/** The watched database's threshold: short, so the test sees it pass. */
const RPO_SECONDS = 3;

interface ArchiveMetric {
  DatabaseId: string;
  ArchiveLagSeconds: number;
  RpoSeconds: number;
  RpoBreached: number;
  Since: string;
  LastWal?: string;
  _aws: { Timestamp: number; CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: string }> }> };
}

let stack: TestStack;
let dir: string;

beforeAll(async () => {
  stack = await startTestStack([{ id: WATCHED, rpoSeconds: RPO_SECONDS }, { id: OTHER }], { rpoWatchEveryMs: 400 });
  dir = tempDir("walvault-rpo-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The archive metrics the stack's handlers emitted for `db` since `after` (epoch ms). */
function readings(db: string, after: number): ArchiveMetric[] {
  let text = "";
  try {
    text = readFileSync(stack.metricsFile, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.includes(ARCHIVE_NAMESPACE))
    .map((l) => JSON.parse(l) as ArchiveMetric)
    .filter((m) => m.DatabaseId === db && m._aws.Timestamp > after);
}

async function archive(name: string, seed: number): Promise<void> {
  const r = await stack.cli(["wal-push", writeWal(dir, name, syntheticSegment(name, seed)), "--database", WATCHED, "--timeout", "30"]);
  expect(r.code, r.stderr).toBe(0);
}

describe("rpo-watch on its timer", () => {
  it("reports a database over its RPO once archiving stops, and under it again once archiving resumes", async () => {
    // Prepare: archiving, so the watched database starts under its threshold
    const t0 = Date.now();
    await archive("000000010000000000000001", 1);
    const fresh = await poll(() => readings(WATCHED, Date.now() - 200).find((m) => m.LastWal === "000000010000000000000001"), 20_000);
    expect(fresh.RpoBreached).toBe(0);
    expect(fresh.RpoSeconds).toBe(RPO_SECONDS);

    // Act 1: nothing archived for longer than the threshold
    const stopped = Date.now();
    const breached = await poll(() => readings(WATCHED, stopped).find((m) => m.RpoBreached === 1), 30_000);

    // Assess 1: the metric the alarm reads crossed, with the lag and the last file named
    expect(breached.ArchiveLagSeconds).toBeGreaterThan(RPO_SECONDS);
    expect(breached.LastWal).toBe("000000010000000000000001");
    expect(breached._aws.CloudWatchMetrics[0]).toEqual({
      Namespace: ARCHIVE_NAMESPACE,
      Dimensions: [["DatabaseId"]],
      Metrics: [
        { Name: "ArchiveLagSeconds", Unit: "Seconds" },
        { Name: "RpoSeconds", Unit: "Seconds" },
        { Name: "RpoBreached", Unit: "Count" },
      ],
    });

    // Act 2: archiving resumes
    await archive("000000010000000000000002", 2);
    const resumed = Date.now();
    const cleared = await poll(() => readings(WATCHED, resumed).find((m) => m.LastWal === "000000010000000000000002"), 20_000);

    // Assess 2: under the threshold again; the other database (default 5-minute RPO, never archived) measured all along
    expect(cleared.RpoBreached).toBe(0);
    expect(cleared.ArchiveLagSeconds).toBeLessThanOrEqual(RPO_SECONDS);
    const other = readings(OTHER, t0);
    expect(other.length).toBeGreaterThan(0);
    expect(other.every((m) => m.RpoBreached === 0 && m.RpoSeconds === 300)).toBe(true);
    expect(stack.rpoWatchStats.failed).toBe(0);
  });
});

describe("db add --rpo", () => {
  it("sets a new database's threshold and changes a registered one's; the next measurements use them; 0 is refused in one line", async () => {
    // Act
    const added = await stack.cli(["db", "add", "pg-added", "--rpo", "45", "--json"]);
    const changed = await stack.cli(["db", "add", OTHER, "--rpo", "120"]);
    const zero = await stack.cli(["db", "add", "pg-zero", "--rpo", "0"]);
    // Assess
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ databaseId: "pg-added", rpoSeconds: 45 });
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout.trim()).toBe(`database ${OTHER} is already registered; its RPO is now 120 s`);
    expect(zero.code).toBe(2);
    expect(zero.stderr.trim().split("\n")).toHaveLength(1);
    const after = Date.now();
    const [a, o] = await poll(() => {
      const a = readings("pg-added", after).at(-1);
      const o = readings(OTHER, after).at(-1);
      return a && o ? ([a, o] as const) : undefined;
    }, 20_000);
    expect(a.RpoSeconds).toBe(45);
    expect(o.RpoSeconds).toBe(120);
  });
});
