/**
 * statemachines/restore.asl.json on the real local stack (s3rver + DynamoDB
 * Local, the same handlers): a generic snapshot and WAL put straight into the
 * vault and the catalog (test/support/snapshots.ts), then startRestore plans,
 * thaws (s3rver has no storage classes: nothing pending) and outputs the plan;
 * a planning error fails the execution with its name.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stackClients, tempDir } from "../support/harness.js";
import { archiveGenericSegment, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-main";
const seg = (n: number): string => `00000001000000000000000${n}`;
const T0 = new Date("2026-03-01T10:00:00.000Z");
const at = (minutes: number): Date => new Date(T0.getTime() + minutes * 60_000);
const walBytes = (n: number): Buffer => Buffer.alloc(4096, n);

let stack: TestStack;
let snap: UploadedSnapshot;

beforeAll(async () => {
  stack = await startTestStack([{ id: GEN, kind: "generic" }]);
  const clients = stackClients(stack);
  const source = join(tempDir("walvault-restore-wf-"), "source");
  mkdirSync(join(source, "wal"), { recursive: true });
  writeFileSync(join(source, "data.db"), Buffer.alloc(50_000, 7));
  writeFileSync(join(source, "wal", seg(2)), walBytes(2));
  snap = await uploadSnapshotDir(clients, stack.config, {
    databaseId: GEN,
    dir: source,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: `wal/${seg(2)}`, lastSegno: 2 }] },
    startedAt: at(20),
    finishedAt: at(21),
    chunker: SMALL_CHUNKER,
  });
  for (const n of [1, 2, 3, 4]) {
    await archiveGenericSegment(clients, stack.config, { databaseId: GEN, stream: "wal", name: seg(n), segno: BigInt(n), bytes: walBytes(n), archivedAt: at(n * 10) });
  }
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("restore workflow (local stack)", () => {
  it("latest: outputs the plan naming the snapshot and the WAL after it, nothing pending", async () => {
    const out = (await stack.startRestore({ databaseId: GEN, target: { kind: "latest" } })) as Record<string, unknown>;
    expect(out).toMatchObject({
      databaseId: GEN,
      kind: "generic",
      snapshot: { id: snap.record.snapshotId },
      manifestKey: snap.record.manifestKey,
      chunkCount: snap.record.totals.uniqueChunks,
      walCount: 2,
    });
    expect((out.wal as { name: string; key: string }[]).map((w) => w.name)).toEqual([seg(3), seg(4)]);
    expect((out.wal as { key: string }[])[0]!.key).toBe(`db/${GEN}/wal/wal/${seg(3)}`);
    expect(out).not.toHaveProperty("thaw");
    expect(stack.restoreStats).toMatchObject({ succeeded: 1, failed: 0, inFlight: 0 });
  });

  it("a time target picks the WAL up to it; a Bulk tier is accepted", async () => {
    const out = (await stack.startRestore({ databaseId: GEN, target: { kind: "time", time: at(35).toISOString() }, tier: "Bulk" })) as {
      wal: { name: string }[];
    };
    expect(out.wal.map((w) => w.name)).toEqual([seg(3)]);
  });

  it("a target before the oldest snapshot fails with NoSnapshotBeforeTargetError", async () => {
    const run = stack.startRestore({ databaseId: GEN, target: { kind: "time", time: at(5).toISOString() } });
    await expect(run).rejects.toMatchObject({ name: "NoSnapshotBeforeTargetError" });
    await expect(run).rejects.toThrow(/NoSnapshotBeforeTargetError: \S/);
  });

  it("an unknown database fails with UnknownDatabaseError; a malformed target with InvalidInputError", async () => {
    await expect(stack.startRestore({ databaseId: "nope-db", target: { kind: "latest" } })).rejects.toMatchObject({ name: "UnknownDatabaseError" });
    await expect(stack.startRestore({ databaseId: GEN, target: { kind: "time" } })).rejects.toMatchObject({ name: "InvalidInputError" });
  });

  it("a time that is not ISO 8601 with a zone fails with InvalidInputError naming the accepted forms", async () => {
    for (const time of ["5", "2026-03-01 10:35:00", "2026-02-30T12:00:00Z"]) {
      await expect(stack.startRestore({ databaseId: GEN, target: { kind: "time", time } }), time).rejects.toThrow(/InvalidInputError.*is not a time/);
    }
  });
});
