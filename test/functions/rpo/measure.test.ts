/**
 * The rpo-watch workflow on the local stack, run on its timer as its
 * schedule runs it in AWS: a database that stops archiving crosses its RPO
 * threshold in the metric the alarm reads (walvault/Archive RpoBreached), and
 * clears once archiving resumes; another database is measured beside it.
 * Needs `npm run build` first.
 */
import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARCHIVE_NAMESPACE, REPLICATION_NAMESPACE } from "../../../core/metrics.js";
import { poll, tempDir, writeWal } from "../../support/harness.js";
import { startTestStack, type TestStack } from "../../support/stack.js";
import { syntheticSegment } from "../../support/wal.js";

const WATCHED = "pg-rpo";
const OTHER = "pg-other";
const REPLICA = "local-2";
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
  stack = await startTestStack([{ id: WATCHED, rpoSeconds: RPO_SECONDS }, { id: OTHER }], { rpoWatchEveryMs: 400, replicaRegions: [REPLICA] });
  dir = tempDir("walvault-rpo-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The metrics of `namespace` the stack's handlers emitted for `db` since `after` (epoch ms). */
function metricsOf<M extends { DatabaseId: string; _aws: { Timestamp: number } }>(namespace: string, db: string, after: number): M[] {
  let text = "";
  try {
    text = readFileSync(stack.metricsFile, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.includes(`"Namespace":"${namespace}"`))
    .map((l) => JSON.parse(l) as M)
    .filter((m) => m.DatabaseId === db && m._aws.Timestamp > after);
}
const readings = (db: string, after: number): ArchiveMetric[] => metricsOf<ArchiveMetric>(ARCHIVE_NAMESPACE, db, after);

interface ReplicationMetric {
  DatabaseId: string;
  Region: string;
  ReplicationLagSeconds: number;
  PendingSince?: string;
  _aws: { Timestamp: number };
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

describe("replication lag on rpo-watch's timer", () => {
  it("grows in a region that is down while the database archives, and returns to 0 once replication catches up", async () => {
    // Prepare: the replica region's storage is down
    const region = stack.regions.find((r) => r.region === REPLICA)!;
    await region.stop();
    const stopped = Date.now();
    // Act 1: a segment archived while it is down (stored in the primary; its copy to the region fails)
    await archive("000000010000000000000003", 3);
    const lagging = await poll(() => metricsOf<ReplicationMetric>(REPLICATION_NAMESPACE, WATCHED, stopped).find((m) => m.Region === REPLICA && m.ReplicationLagSeconds >= 1), 30_000);
    // Assess 1: the lag names the region and since when the oldest pending record waits
    expect(lagging.PendingSince).toBeDefined();
    expect(Date.parse(lagging.PendingSince!)).toBeGreaterThanOrEqual(stopped - 1000);
    // Act 2: the region comes back and the replicate workflow brings it level
    await region.start();
    const rep = await stack.cli(["replicate", "--region", REPLICA, "--json"]);
    expect(rep.code, rep.stderr).toBe(0);
    const caughtUp = Date.now();
    // Assess 2: nothing pending there any more (a measurement that started before the catch-up ended may still report the lag once)
    const level = await poll(() => metricsOf<ReplicationMetric>(REPLICATION_NAMESPACE, WATCHED, caughtUp).find((m) => m.Region === REPLICA && m.ReplicationLagSeconds === 0), 20_000);
    expect(level.ReplicationLagSeconds).toBe(0);
    expect(level.PendingSince).toBeUndefined();
  });
});
