/**
 * A PostgreSQL database registered with 1 MiB WAL segments (initdb
 * --wal-segsize=1): 300 segments, well past the 256th where a 16 MiB reading
 * of the name breaks (segment part 0x100), pushed by the agent's wal-push
 * through the local stack's ingest workflow. All are recorded, contiguous in
 * `walvault wal list`, come back byte-identical from wal-fetch, and the
 * restore planner replays them all to reach the latest.
 *
 * Issue #10, point 2: ingest parsed the key with the default 16 MiB size
 * before reading the database's own, and quarantined the 257th segment.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapLimit } from "../../core/concurrency.js";
import { analyzeContinuity } from "../../core/continuity.js";
import { buildPlanInput } from "../../core/restore-input.js";
import { planRestore } from "../../core/restore-plan.js";
import type { WalRecord } from "../../core/schemas.js";
import { formatLsn, parseWalFileName, segmentName, segmentStartLsn } from "../../core/wal.js";
import { walFetch } from "../../agent/wal-fetch.js";
import { walPush } from "../../agent/wal-push.js";
import { loadCatalogState } from "../../store/catalog-state.js";
import { stackClients, tempDir, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-small";
const MIB = 1 << 20;
const COUNT = 300;
const names = Array.from({ length: COUNT }, (_, i) => segmentName(1, BigInt(i + 1), MIB));

let stack: TestStack;
let clients: StackClients;
let dir: string;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, walSegmentSize: MIB }]);
  clients = stackClients(stack);
  dir = tempDir("walvault-small-");
  mkdirSync(join(dir, "pg_wal"));
  names.forEach((name, i) => writeFileSync(join(dir, "pg_wal", name), syntheticSegment(name, i + 1, MIB)));
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a database with 1 MiB WAL segments", () => {
  it("archives 300 segments through wal-push and ingest, contiguous, byte-identical, restorable to the latest", async () => {
    // Prepare: the names cross segment part 0x100, out of range for 16 MiB segments.
    expect(names).toContain("000000010000000000000100");
    expect(names.at(-1)).toBe("00000001000000000000012C");
    const cfg = { ...stack.config, databaseId: DB };

    // Act: push every segment as archive_command would (8 at a time), waiting until each is stored.
    const results = await mapLimit(names, 8, (name) =>
      walPush(join(dir, "pg_wal", name), cfg, clients, { wait: "stored", timeoutMs: 60_000, cwd: dir }),
    );

    // Assess: every push stored, nothing quarantined.
    expect(results.map((r) => r.outcome)).toEqual(names.map(() => "stored"));
    expect(await clients.catalog.listQuarantine(DB)).toEqual([]);

    // ...`wal list` shows all 300, contiguous.
    const listed = await stack.cli(["wal", "list", "--json", "--database", DB]);
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    const records = JSON.parse(listed.stdout) as WalRecord[];
    expect(records.map((r) => r.name).sort()).toEqual(names);
    const continuity = analyzeContinuity(records.map((r) => ({ timeline: r.timeline, segno: parseWalFileName(r.name, MIB).segno! })));
    expect(continuity).toHaveLength(1);
    expect(continuity[0]!.ranges).toEqual([{ timeline: 1, first: 1n, last: BigInt(COUNT) }]);
    expect(continuity[0]!.gaps).toEqual([]);
    // ...with the LSNs of 1 MiB segments.
    const last = records.find((r) => r.name === names.at(-1))!;
    expect(last.startLsn).toBe(formatLsn(segmentStartLsn(BigInt(COUNT), MIB)));

    // ...wal-fetch returns every segment byte-identical.
    const out = join(dir, "fetched");
    mkdirSync(out);
    await mapLimit(names, 8, async (name) => {
      await walFetch(name, join(out, name), cfg, clients);
      expect(readFileSync(join(out, name)).equals(readFileSync(join(dir, "pg_wal", name))), name).toBe(true);
    });

    // ...and a restore to the latest from a backup taken in the first segment replays all 300.
    const state = await loadCatalogState(clients.catalog, clients.store, stack.config.vaultBucket, DB);
    const input = buildPlanInput(state, { kind: "latest" }, undefined);
    const backup = {
      id: "20261201T000000Z-000001",
      databaseId: DB,
      kind: "postgres" as const,
      timeline: 1,
      startLsn: segmentStartLsn(1n, MIB) + 40n,
      stopLsn: segmentStartLsn(1n, MIB) + 4096n,
      startedAt: new Date(0),
      finishedAt: new Date(1),
    };
    const plan = planRestore({ ...input, snapshots: [backup] });
    expect(plan.wal.map((s) => s.name)).toEqual(names);
    expect(plan.endLsn).toBe(segmentStartLsn(BigInt(COUNT + 1), MIB));
  }, 120_000);
});
