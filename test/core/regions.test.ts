import { describe, expect, it } from "vitest";
import { regionLag, restorableWindows, snapshotInRegion, walInRegion } from "../../core/regions.js";
import type { SnapshotInfo, WalSegmentInfo } from "../../core/restore-plan.js";
import type { SnapshotRecord, WalRecord } from "../../core/schemas.js";

const MB16 = 16 * 1024 * 1024;
const T0 = Date.parse("2026-11-21T10:00:00Z");
const at = (min: number): Date => new Date(T0 + min * 60_000);
const seg = (segno: number, min: number, timeline = 1): WalSegmentInfo => ({ timeline, segno: BigInt(segno), name: `seg${segno}`, archivedAt: at(min) });
/** A PostgreSQL snapshot starting in segment `first` and consistent in segment `consistent`. */
const snap = (id: string, first: number, consistent: number, finishedMin: number): SnapshotInfo => ({
  id,
  databaseId: "db1",
  kind: "postgres",
  timeline: 1,
  startLsn: BigInt(first) * BigInt(MB16) + 40n,
  stopLsn: BigInt(consistent) * BigInt(MB16) + 100n,
  startedAt: at(finishedMin - 1),
  finishedAt: at(finishedMin),
});

describe("restorableWindows", () => {
  it("runs from each snapshot's end to the last contiguous segment, merging overlaps", () => {
    // Prepare: segments 2..8 then a gap, 10..12; snapshots in 2 and 5.
    const wal = [2, 3, 4, 5, 6, 7, 8, 10, 11, 12].map((n) => seg(n, n * 10));
    // Act
    const w = restorableWindows({ snapshots: [snap("s1", 2, 3, 25), snap("s2", 5, 5, 55)], wal, segmentSize: MB16 });
    // Assess
    expect(w).toEqual([{ from: at(25), to: at(80), snapshots: ["s1", "s2"] }]);
  });

  it("has no window for a snapshot whose WAL does not reach its consistent point", () => {
    const w = restorableWindows({ snapshots: [snap("s1", 2, 4, 25)], wal: [seg(2, 20), seg(3, 30)], segmentSize: MB16 });
    expect(w).toEqual([]);
  });

  it("keeps separate stretches apart when a gap separates them", () => {
    const wal = [2, 3, 10, 11].map((n) => seg(n, n * 10));
    const w = restorableWindows({ snapshots: [snap("a", 2, 2, 21), snap("b", 10, 10, 101)], wal, segmentSize: MB16 });
    expect(w).toEqual([
      { from: at(21), to: at(30), snapshots: ["a"] },
      { from: at(101), to: at(110), snapshots: ["b"] },
    ]);
  });
});

const rec = (name: string, replicas: WalRecord["replicas"], archivedMin = 0): WalRecord => ({
  databaseId: "db1",
  name,
  kind: "segment",
  timeline: 1,
  size: 1,
  storedSize: 1,
  sha256: "0".repeat(64),
  codec: "none",
  status: "stored",
  vaultKey: `db/db1/wal/00000001/${name}`,
  vaultVersionId: "primary-v",
  archivedAt: at(archivedMin).toISOString(),
  replicas,
});

describe("what a region holds", () => {
  it("keeps only records replicated there, with that region's version id", () => {
    const r = rec("a", { "eu-west-1": { status: "replicated", at: "x", versionId: "eu-v" }, "us-west-2": { status: "failed", at: "x", error: "down" } });
    expect(walInRegion(r, undefined)).toBe(r);
    expect(walInRegion(r, "eu-west-1")?.vaultVersionId).toBe("eu-v");
    expect(walInRegion(r, "us-west-2")).toBeUndefined();
    const s = { replicas: { "eu-west-1": { status: "replicated", at: "x" } } } as unknown as SnapshotRecord;
    expect(snapshotInRegion(s, "eu-west-1")).toBe(s);
    expect(snapshotInRegion(s, "ap-south-1")).toBeUndefined();
  });

  it("measures a region's lag from the oldest WAL file it lacks, and reports the latest failure", () => {
    // Prepare
    const wal = [
      rec("a", { r: { status: "replicated", at: "2026-11-21T10:00:00Z" } }, 0),
      rec("b", { r: { status: "failed", at: "2026-11-21T10:05:00Z", error: "old error" } }, 5),
      rec("c", { r: { status: "failed", at: "2026-11-21T10:07:00Z", error: "new error" } }, 7),
      rec("d", {}, 9),
    ];
    // Act
    const lag = regionLag(wal, [], "r", at(10));
    // Assess
    expect(lag).toEqual({ missingWal: 3, missingSnapshots: 0, failed: 2, lastError: "new error", lagSeconds: 300 });
    expect(regionLag(wal.slice(0, 1), [], "r", at(10)).lagSeconds).toBe(0);
  });
});
