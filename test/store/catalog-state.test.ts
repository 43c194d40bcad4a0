/**
 * loadCatalogState (store/catalog-state.ts) on the local stack: what the
 * catalog and the vault hold, shaped for the planner. Records are put
 * straight into the catalog (and history files into the vault), as archives
 * written before wal-push and ingest checked histories may hold them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { InvalidInputError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { buildPlanInput } from "../../core/restore-input.js";
import { planRestore, type RestoreTarget } from "../../core/restore-plan.js";
import type { SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { historyName, segmentName } from "../../core/wal.js";
import { loadCatalogState } from "../../store/catalog-state.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { countingStore } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const BOGUS = "pg-bogus-history";
const POINTS = "pg-restore-points";

let stack: TestStack;
let clients: StackClients;
let store: ReturnType<typeof countingStore>;

function snapshotRecord(databaseId: string): SnapshotRecord {
  const id = "20250101T000000Z-00000001";
  return {
    databaseId,
    snapshotId: id,
    kind: "postgres",
    timeline: 1,
    startLsn: "0/3000028",
    stopLsn: "0/3000100",
    startWalFile: segmentName(1, 3n),
    stopWalFile: segmentName(1, 3n),
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:01:00.000Z",
    manifestKey: `db/${databaseId}/snapshots/${id}/manifest.json`,
    manifestSha256: sha256Hex(Buffer.from("not read: the record is complete")),
    manifestSize: 4096,
    totals: { files: 3, logicalBytes: 3 << 20, uniqueChunks: 4, newChunks: 2, storedBytes: 1 << 20, newStoredBytes: 1 << 19 },
    status: "restorable",
    recordedAt: "2025-01-01T00:02:00.000Z",
    replicas: {},
  };
}

function walRecord(databaseId: string, name: string, kind: WalRecord["kind"], timeline: number, extra: Partial<WalRecord> = {}): WalRecord {
  return {
    databaseId,
    name,
    kind,
    timeline,
    size: 16 << 20,
    storedSize: 1 << 20,
    sha256: sha256Hex(Buffer.from(name)),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${databaseId}/wal/${name}`,
    archivedAt: `2025-01-01T00:0${Number(name.slice(16, 24)) % 10}:30.000Z`,
    replicas: {},
    ...extra,
  };
}

/** A history file put into the vault and the catalog as it is, unchecked. */
async function archiveHistory(databaseId: string, timeline: number, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  const body = await getCodec("zstd").encode(bytes);
  const name = historyName(timeline);
  const sha256 = sha256Hex(bytes);
  const vaultKey = `db/${databaseId}/wal/${name}`;
  await clients.store.put(stack.config.vaultBucket, vaultKey, body, objectMeta({ sha256, codec: "zstd", size: bytes.length }));
  await clients.catalog.recordWal({ ...walRecord(databaseId, name, "history", timeline), size: bytes.length, storedSize: body.length, sha256, archivedAt: "2025-01-01T00:09:00.000Z" });
}

async function plan(databaseId: string, target: RestoreTarget) {
  const state = await loadCatalogState(clients.catalog, store, stack.config.vaultBucket, databaseId);
  return planRestore(buildPlanInput(state, target, undefined));
}

beforeAll(async () => {
  stack = await startTestStack([{ id: BOGUS }, { id: POINTS }]);
  const base = stackClients(stack);
  store = countingStore(base.store);
  clients = { store, catalog: base.catalog };
  // Prepare: a snapshot on timeline 1, segments 3-5 on timeline 1, and a history file of timeline 2
  // whose content is no history (no WAL on timeline 2).
  await clients.catalog.recordSnapshot(snapshotRecord(BOGUS));
  for (const n of [3n, 4n, 5n]) await clients.catalog.recordWal(walRecord(BOGUS, segmentName(1, n), "segment", 1));
  await archiveHistory(BOGUS, 2, "garbage in\u001b[31m a history\n");
  // A snapshot on timeline 1, segments 3-7; ingest recorded a restore point in segment 5.
  await clients.catalog.recordSnapshot(snapshotRecord(POINTS));
  for (const n of [3n, 4n, 5n, 6n, 7n]) {
    const restorePoints = n === 5n ? [{ name: "before_migration", lsn: "0/5000A48", time: "2025-01-01T00:05:10.123456Z" }] : undefined;
    await clients.catalog.recordWal(walRecord(POINTS, segmentName(1, n), "segment", 1, restorePoints ? { restorePoints } : {}));
  }
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("history files that are no history", () => {
  it("are passed over for the latest timeline with a warning naming the file, and the plan restores timeline 1", async () => {
    // Act
    const p = await plan(BOGUS, { kind: "latest" });

    // Assess
    expect(p.targetTimeline).toBe(1);
    expect(p.wal.map((w) => w.name)).toEqual([segmentName(1, 3n), segmentName(1, 4n), segmentName(1, 5n)]);
    const warning = p.warnings.find((w) => w.includes(historyName(2)));
    expect(warning).toContain("timeline 2 (00000002.history is not a timeline history file: timeline history line 1 is malformed");
    expect(warning).toContain("\\e[31m"); // quoted escaped, never raw
    expect(warning).not.toContain("\u001b");
    expect(warning).toContain("restoring timeline 1");
  });

  it("make an explicit timeline naming them fail with one line naming the file", async () => {
    // Act
    const err = await plan(BOGUS, { kind: "latest", timeline: 2 }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    const msg = (err as Error).message;
    expect(msg).toContain("timeline 2's ancestry is unknown: 00000002.history is not a timeline history file");
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).not.toContain("\u001b");
  });
});

describe("restore points recorded by ingest", () => {
  it("reach the planner: a name resolves to its exact LSN, replay stops in its segment, nothing is read from the vault", async () => {
    // Prepare
    store.reset();

    // Act
    const p = await plan(POINTS, { kind: "name", name: "before_migration" });
    const unknown = await plan(POINTS, { kind: "name", name: "nosuchpoint" });

    // Assess
    expect(store.gets).toEqual([]);
    expect(p.recoveryTarget).toMatchObject({ recovery_target_name: "before_migration", recovery_target_timeline: "1" });
    expect(p.wal.map((w) => w.name)).toEqual([segmentName(1, 3n), segmentName(1, 4n), segmentName(1, 5n)]);
    expect(p.warnings).toEqual([]);
    // A name the catalog does not know: replay to the end, with the warning that restore scans the WAL for it.
    expect(unknown.wal.at(-1)!.name).toBe(segmentName(1, 7n));
    expect(unknown.warnings.join("\n")).toContain("restore point 'nosuchpoint' is not in the catalog");
  });
});
