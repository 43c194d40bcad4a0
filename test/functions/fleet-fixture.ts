/**
 * A fleet of fabricated databases for the tests of workflows that fan out
 * over every registered database (retention, verification): registrations,
 * snapshot records and WAL records written through the catalog API, with no
 * vault objects behind them (the tests plan or select; nothing is read back).
 */
import { mapLimit } from "../../core/concurrency.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";

export const DAY = 86_400_000;
export const fleetId = (i: number): string => `fleet-${String(i).padStart(4, "0")}`;
const hex8 = (n: number): string => n.toString(16).toUpperCase().padStart(8, "0");
const segment = (n: number): string => `00000001${hex8(Math.floor(n / 256))}${hex8(n % 256)}`;
const lsn = (at: number): string => `0/${at.toString(16).toUpperCase()}`;
const sha = (seed: string): string => Buffer.from(seed.padEnd(32, "#").slice(0, 32)).toString("hex");

function wal(databaseId: string, n: number, archivedAt: Date): WalRecord {
  const name = segment(n);
  return {
    databaseId,
    name,
    kind: "segment",
    timeline: 1,
    size: 16 * 1024 * 1024,
    storedSize: 1024,
    sha256: sha(`${databaseId} ${name}`),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${databaseId}/wal/00000001/${name}`,
    archivedAt: archivedAt.toISOString(),
    replicas: {},
  };
}

function snapshot(databaseId: string, n: number, finishedAt: Date): SnapshotRecord {
  const snapshotId = `${finishedAt.toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${hex8(n)}`;
  return {
    databaseId,
    snapshotId,
    kind: "postgres",
    timeline: 1,
    startLsn: lsn(n * 0x1000000 + 0x28),
    stopLsn: lsn(n * 0x1000000 + 0x100),
    startWalFile: segment(n),
    stopWalFile: segment(n),
    startedAt: new Date(finishedAt.getTime() - 60_000).toISOString(),
    finishedAt: finishedAt.toISOString(),
    manifestKey: `db/${databaseId}/snapshots/${snapshotId}/manifest.json`,
    manifestSha256: sha(`${databaseId} manifest ${n}`),
    manifestSize: 4096,
    totals: { files: 3, logicalBytes: 3 << 20, uniqueChunks: 4, newChunks: 2, storedBytes: 1 << 20, newStoredBytes: 1 << 19 },
    status: "restorable",
    recordedAt: finishedAt.toISOString(),
    replicas: {},
  };
}

/**
 * Registers `count` databases, each with `snapshots` snapshot records (one a
 * day, the newest a day before `now`) and the WAL segment each starts at.
 * Returns the ids, sorted.
 */
export async function fabricateFleet(catalog: Catalog, count: number, snapshots: number, now: number, retention?: DatabaseRecord["retention"]): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => fleetId(i));
  await mapLimit(ids, 8, async (databaseId) => {
    await catalog.putDatabase({ databaseId, kind: "postgres", walSegmentSize: 16 * 1024 * 1024, createdAt: new Date(now - 30 * DAY).toISOString(), ...(retention ? { retention } : {}) });
    for (let n = 1; n <= snapshots; n++) {
      const finishedAt = new Date(now - (snapshots + 1 - n) * DAY);
      await catalog.recordWal(wal(databaseId, n, new Date(finishedAt.getTime() - 120_000)));
      await catalog.recordSnapshot(snapshot(databaseId, n, finishedAt));
    }
  });
  return ids.sort();
}
