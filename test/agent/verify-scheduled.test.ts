/**
 * `walvault verify --scheduled` when a verification fails: the reason reaches
 * whoever started it on stderr, not only in the results on stdout (npm start
 * once stopped with "verify --scheduled failed: " and nothing after it).
 * A generic database's snapshot is put straight into the vault and catalog
 * (test/support/snapshots.ts), then one of its chunks is deleted, so the
 * scheduled run's verification fails with a reason.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaultChunkKey } from "../../core/keys.js";
import { stackClients, tempDir } from "../support/harness.js";
import { archiveGenericSegment, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-verify";
const seg = (n: number): string => `00000001000000000000000${n}`;
const T0 = new Date("2026-03-01T10:00:00.000Z");
const at = (minutes: number): Date => new Date(T0.getTime() + minutes * 60_000);

let stack: TestStack;
let snap: UploadedSnapshot;

beforeAll(async () => {
  stack = await startTestStack([{ id: GEN, kind: "generic" }]);
  const clients = stackClients(stack);
  const source = join(tempDir("walvault-verify-scheduled-"), "source");
  mkdirSync(join(source, "wal"), { recursive: true });
  writeFileSync(join(source, "data.db"), Buffer.alloc(50_000, 7));
  const wal = Buffer.alloc(4096, 2);
  writeFileSync(join(source, "wal", seg(2)), wal);
  snap = await uploadSnapshotDir(clients, stack.config, {
    databaseId: GEN,
    dir: source,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: `wal/${seg(2)}`, lastSegno: 2 }] },
    startedAt: at(20),
    finishedAt: at(21),
    chunker: SMALL_CHUNKER,
  });
  await archiveGenericSegment(clients, stack.config, { databaseId: GEN, stream: "wal", name: seg(2), bytes: wal, archivedAt: at(21) });
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("walvault verify --scheduled", () => {
  it("a failed verification: exit 1 and the reason on stderr, naming the database and snapshot", async () => {
    // Prepare: a chunk of the snapshot's data file is gone from the vault.
    const { store } = stackClients(stack);
    const chunk = snap.chunksOf.get("data.db")![0]!;
    await store.delete(stack.config.vaultBucket, vaultChunkKey(GEN, chunk));

    // Act
    const r = await stack.cli(["verify", "--scheduled", "--database", GEN]);

    // Assess
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const lines = r.stderr.split("\n").filter((l) => l.length > 0);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^walvault: verification of ${GEN} snapshot ${snap.record.snapshotId} (failed|error): \\S`));
  }, 120_000);
});
