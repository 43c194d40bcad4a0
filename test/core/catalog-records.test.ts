import { describe, expect, it } from "vitest";
import { headSortKey, restorePointFields, snapshotRecordOf, walFileLsns } from "../../core/catalog-records.js";
import { MAX_RECORDED_RESTORE_POINTS } from "../../core/restore-point.js";
import { parseWalFileName } from "../../core/wal.js";

const MiB = 1 << 20;

describe("catalog records derived from what was proven", () => {
  it("gives segments, partials and backup labels the LSNs of their segment, history files none", () => {
    expect(walFileLsns(parseWalFileName("000000010000000000000004.partial", MiB), MiB)).toEqual({ startLsn: "0/400000", endLsn: "0/500000" });
    expect(walFileLsns(parseWalFileName("0000000100000001000000FF"), 16 * MiB)).toEqual({ startLsn: "1/FF000000", endLsn: "2/0" });
    expect(walFileLsns(parseWalFileName("00000002.history"), 16 * MiB)).toEqual({});
  });

  it("orders the head by timeline then LSN for PostgreSQL, by close time then name for generic segments, and not by other files", () => {
    const common = { archivedAt: "2026-01-01T00:00:09.000Z" };
    const a = headSortKey({ ...common, name: "000000010000000000000009", kind: "segment", timeline: 1, startLsn: "0/9000000" });
    const b = headSortKey({ ...common, name: "00000002000000000000000A", kind: "segment", timeline: 2, startLsn: "0/A000000" });
    expect(a! < b!).toBe(true);
    expect(headSortKey({ ...common, name: "wal/000007.wal", kind: "segment", timeline: 1, startLsn: "7", closedAt: "2026-01-01T00:00:01.000Z" })).toBe(
      "2026-01-01T00:00:01.000Z#wal/000007.wal",
    );
    expect(headSortKey({ ...common, name: "wal/000008.wal", kind: "segment", timeline: 1, startLsn: "8" })).toBe("2026-01-01T00:00:09.000Z#wal/000008.wal");
    expect(headSortKey({ ...common, name: "00000002.history", kind: "history", timeline: 2 })).toBeUndefined();
    expect(headSortKey({ ...common, name: "000000010000000000000009.partial", kind: "partial", timeline: 1, startLsn: "0/9000000" })).toBeUndefined();
  });

  it("makes a restorable snapshot record with no replica status from the manifest's summary", () => {
    const summary = {
      streams: { wal: "41" },
      startedAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:00:05.000Z",
      totals: { files: 1, logicalBytes: 10, uniqueChunks: 1, newChunks: 1, storedBytes: 8, newStoredBytes: 8 },
    };
    const record = snapshotRecordOf({
      databaseId: "gen-db",
      snapshotId: "20260101T000000Z-abcdef",
      kind: "generic",
      summary,
      manifestKey: "db/gen-db/snapshots/20260101T000000Z-abcdef/manifest.json",
      manifestSha256: "ab".repeat(32),
      manifestSize: 123,
      recordedAt: "2026-01-01T00:00:06.000Z",
    });
    expect(record).toEqual({
      databaseId: "gen-db",
      snapshotId: "20260101T000000Z-abcdef",
      kind: "generic",
      streams: { wal: "41" },
      startedAt: summary.startedAt,
      finishedAt: summary.finishedAt,
      manifestKey: "db/gen-db/snapshots/20260101T000000Z-abcdef/manifest.json",
      manifestSha256: "ab".repeat(32),
      manifestSize: 123,
      totals: summary.totals,
      status: "restorable",
      recordedAt: "2026-01-01T00:00:06.000Z",
      replicas: {},
    });
  });
});

describe("restorePointFields", () => {
  it("records a segment's restore points as LSN text and microsecond time, at most MAX_RECORDED_RESTORE_POINTS, saying when it cut", () => {
    // Prepare
    const found = Array.from({ length: MAX_RECORDED_RESTORE_POINTS + 2 }, (_, i) => ({
      name: `rp${i}`,
      lsn: 0x1_0000_0000n + BigInt(1000 + i * 104),
      epochMicros: 1_796_159_554_265_123n + BigInt(i),
    }));

    // Act
    const none = restorePointFields([]);
    const one = restorePointFields(found.slice(0, 1));
    const many = restorePointFields(found);

    // Assess
    expect(none).toEqual({});
    expect(one).toEqual({ restorePoints: [{ name: "rp0", lsn: "1/3E8", time: "2026-12-01T21:12:34.265123Z" }] });
    expect(many.restorePoints).toHaveLength(MAX_RECORDED_RESTORE_POINTS);
    expect(many.restorePoints!.at(-1)!.name).toBe(`rp${MAX_RECORDED_RESTORE_POINTS - 1}`);
    expect(many.restorePointsTruncated).toBe(true);
  });
});
