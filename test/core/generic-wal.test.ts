import { describe, expect, it } from "vitest";
import { ConfigError, InvalidInputError, InvalidWalNameError } from "../../core/errors.js";
import {
  archivedThrough,
  compileWatchConfig,
  genericRecordPosition,
  GPOS_MAX_POSITION,
  gposOfRecord,
  gposRange,
  gposValue,
  parseGpos,
  genericSegmentMeta,
  genericWalName,
  globToRegExp,
  parseGenericSegmentMeta,
  parseGenericWalName,
  segmentPosition,
  snapshotStreamEntry,
  streamIdFor,
  streamSegments,
  type DirEntry,
} from "../../core/generic-wal.js";
import { genericSegno } from "../../core/restore-input.js";

const spec = (stream: Record<string, unknown>) => compileWatchConfig({ dataDir: "/d", streams: [{ id: "wal", dir: "wal", pattern: "(\\d+)\\.wal", ...stream }] }).streams[0]!;
const files = (...e: [string, number, number?][]): DirEntry[] => e.map(([name, size, mtimeMs]) => ({ name, size, mtimeMs: mtimeMs ?? 1 }));

describe("generic WAL names", () => {
  it("joins and splits <stream>/<file>", () => {
    expect(genericWalName("stripe-001", "000007.wal")).toBe("stripe-001/000007.wal");
    expect(parseGenericWalName("stripe-001/000007.wal")).toEqual({ stream: "stripe-001", file: "000007.wal", name: "stripe-001/000007.wal" });
  });

  it.each(["a/b/c", "nostream", "../x", "s/..", "s/.x", "s p/x"])("rejects %j with InvalidWalNameError", (name) => {
    expect(() => parseGenericWalName(name)).toThrow(InvalidWalNameError);
  });
});

describe("generic segment metadata", () => {
  it("round-trips position, close time and scan", () => {
    // Prepare
    const meta = { position: 123456789012n, closedAt: "2026-11-21T10:00:00.123Z", scan: { at: "2026-11-21T10:00:01.000Z", count: 4 } };
    // Act / Assess
    expect(parseGenericSegmentMeta(genericSegmentMeta(meta), "x")).toEqual(meta);
  });

  it.each([
    [{ "walvault-closed-at": "2026-11-21T10:00:00Z" }, /walvault-position/],
    [{ "walvault-position": "-1", "walvault-closed-at": "2026-11-21T10:00:00Z" }, /position is not a decimal integer/],
    [{ "walvault-position": "1", "walvault-closed-at": "yesterday" }, /not an ISO-8601 UTC time/],
    [{ "walvault-position": "1", "walvault-closed-at": "2026-11-21T10:00:00Z", "walvault-scan-at": "2026-11-21T10:00:00Z" }, /scan time without a count/],
  ])("rejects %j naming the problem", (metadata, problem) => {
    expect(() => parseGenericSegmentMeta(metadata as Record<string, string>, "upload k")).toThrow(InvalidInputError);
    expect(() => parseGenericSegmentMeta(metadata as Record<string, string>, "upload k")).toThrow(problem);
  });
});

describe("archivedThrough", () => {
  it("is the start of the newest scan whose segments are all recorded", () => {
    // Prepare: scan A complete (2 of 2), scan B complete (1 of 1), scan C incomplete (1 of 3).
    const records = [
      { scanAt: "2026-11-21T10:00:00.000Z", scanCount: 2 },
      { scanAt: "2026-11-21T10:00:00.000Z", scanCount: 2 },
      { scanAt: "2026-11-21T10:05:00.000Z", scanCount: 1 },
      { scanAt: "2026-11-21T10:09:00.000Z", scanCount: 3 },
      {},
    ];
    // Act / Assess
    expect(archivedThrough(records)).toEqual(new Date("2026-11-21T10:05:00.000Z"));
    expect(archivedThrough(records.slice(3))).toBeUndefined();
  });
});

describe("compileWatchConfig", () => {
  it.each([
    [{ dataDir: "/d", streams: [] }, /streams: name at least one WAL stream/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "../wal", pattern: "(\\d+)" }] }, /streams\[0\]\.dir '\.\.\/wal' has an empty, '\.' or '\.\.' component/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "wal", pattern: "\\d+" }] }, /has no capture group/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "wal", pattern: "(" }] }, /is not a regular expression/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "s*/wal", pattern: "(\\d+)" }] }, /'\*' must be a whole path component/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "s/*/wal", pattern: "(\\d+)" }] }, /must use \{1\}/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "wal", pattern: "(\\d+)", closed: { size: 0 } }] }, /closed/],
    [{ dataDir: "/d", streams: [{ id: "w", dir: "wal", pattern: "(\\d+)" }], surprise: 1 }, /Unrecognized key/],
  ])("refuses %j with a ConfigError naming the field", (raw, problem) => {
    expect(() => compileWatchConfig(raw)).toThrow(ConfigError);
    expect(() => compileWatchConfig(raw)).toThrow(problem);
  });

  it("names a stream from the directory components its '*' matched", () => {
    // Prepare
    const s = compileWatchConfig({ dataDir: "/d", streams: [{ id: "stripe-{1}", dir: "stripes/*/wal", pattern: "(\\d+)\\.wal" }] }).streams[0]!;
    // Act / Assess
    expect(s.dirParts).toEqual(["stripes", "*", "wal"]);
    expect(streamIdFor(s, ["007"])).toBe("stripe-007");
    expect(() => streamIdFor(s, ["a b"])).toThrow(ConfigError);
  });

  it("excludes with globs: '*' within a component, '**' at any depth, a directory with its contents", () => {
    expect(globToRegExp("backups").test("backups/full/x.tar")).toBe(true);
    expect(globToRegExp("backups").test("backups2")).toBe(false);
    expect(globToRegExp("*.lock").test("db.lock")).toBe(true);
    expect(globToRegExp("*.lock").test("sub/db.lock")).toBe(false);
    expect(globToRegExp("**/*.tmp").test("a/b/c.tmp")).toBe(true);
  });
});

describe("segment positions and closed rules", () => {
  it("reads positions in base 10 or 16 from the first capture group", () => {
    expect(segmentPosition(spec({}), "000042.wal")).toBe(42n);
    expect(segmentPosition(spec({}), "x000042.wal")).toBeUndefined();
    expect(segmentPosition(spec({ pattern: "wal-([0-9a-f]{8})\\.log", radix: 16 }), "wal-0000001f.log")).toBe(31n);
  });

  it("newest-open: every segment but the newest is closed, in position order", () => {
    // Act
    const segs = streamSegments(spec({}), "wal", files(["10.wal", 5], ["9.wal", 5], ["11.wal", 5], ["notes.txt", 3]));
    // Assess: 9 < 10 < 11 numerically, not by name.
    expect(segs.map((s) => [s.file, s.closed])).toEqual([["9.wal", true], ["10.wal", true], ["11.wal", false]]);
  });

  it("size: closed once full; nothing after an open segment is closed", () => {
    const segs = streamSegments(spec({ closed: { size: 100 } }), "wal", files(["1.wal", 100], ["2.wal", 40], ["3.wal", 100]));
    expect(segs.map((s) => s.closed)).toEqual([true, false, false]);
  });

  it("marker: closed when <segment><suffix> exists; an empty segment is never closed", () => {
    const segs = streamSegments(spec({ closed: { marker: ".done" } }), "wal", files(["1.wal", 9], ["1.wal.done", 0], ["2.wal", 0], ["2.wal.done", 0], ["3.wal", 5]));
    expect(segs.map((s) => [s.file, s.closed])).toEqual([["1.wal", true], ["2.wal", false], ["3.wal", false]]);
  });

  it("two files at one position are a ConfigError naming both", () => {
    expect(() => streamSegments(spec({}), "wal", files(["7.wal", 1], ["07.wal", 1]))).toThrow(/7\.wal and 07\.wal both have position 7/);
  });
});

describe("snapshotStreamEntry", () => {
  it("records the newest closed segment, or the position before the first when none is closed", () => {
    const segs = streamSegments(spec({}), "wal", files(["3.wal", 1], ["4.wal", 1]));
    expect(snapshotStreamEntry("wal", "wal", segs)).toEqual({ id: "wal", dir: "wal", lastSegment: "wal/3.wal", lastSegno: 3 });
    expect(snapshotStreamEntry("wal", "wal", segs.slice(1).map((s) => ({ ...s, closed: false })))).toEqual({ id: "wal", dir: "wal", lastSegno: 3 });
    expect(() => snapshotStreamEntry("wal", "wal", streamSegments(spec({}), "wal", files(["0.wal", 1])))).toThrow(InvalidInputError);
  });

  it("records a marker-closed stream's marker, so restore seals every segment it lays out; other rules record none", () => {
    const segs = streamSegments(spec({}), "wal", files(["3.wal", 1], ["4.wal", 1]));
    expect(snapshotStreamEntry("wal", "wal", segs, { rule: "marker", suffix: ".done" })).toEqual({ id: "wal", dir: "wal", lastSegment: "wal/3.wal", lastSegno: 3, closedMarker: ".done" });
    expect(snapshotStreamEntry("wal", "wal", segs, { rule: "size", bytes: 4096 })).not.toHaveProperty("closedMarker");
    expect(snapshotStreamEntry("wal", "wal", segs, { rule: "newest-open" })).not.toHaveProperty("closedMarker");
  });
});

describe("generic WAL position keys (gpos)", () => {
  it("zero-pads positions to 20 digits, so string order is position order", () => {
    // Prepare
    const positions = [0n, 9n, 10n, 99n, 100n, 123456789012n, GPOS_MAX_POSITION];

    // Act
    const values = positions.map((p) => gposValue("wal", p));

    // Assess
    expect(values[1]).toBe("wal#00000000000000000009");
    expect([...values].reverse().sort()).toEqual(values);
    expect(values.map((v) => parseGpos(v))).toEqual(positions.map((position) => ({ stream: "wal", position })));
  });

  it.each([
    ["wal", -1n],
    ["wal", GPOS_MAX_POSITION + 1n],
    ["bad stream", 1n],
    ["a#b", 1n],
  ])("rejects stream %j at position %s with InvalidInputError", (stream, position) => {
    expect(() => gposValue(stream, position)).toThrow(InvalidInputError);
  });

  it.each(["wal#1", "wal#000000000000000000001", "#00000000000000000001", "s p#00000000000000000001", "wal00000000000000000001"])("parseGpos rejects %j", (value) => {
    expect(() => parseGpos(value)).toThrow(InvalidInputError);
  });

  it("gives a generic segment record its stream and position (decimal startLsn first, else the name's last number)", () => {
    // Act / Assess
    expect(gposOfRecord({ name: "stripe-1/000042.wal", kind: "segment", startLsn: "7" })).toBe("stripe-1#00000000000000000007");
    expect(gposOfRecord({ name: "stripe-1/000042.wal", kind: "segment" })).toBe("stripe-1#00000000000000000042");
    expect(gposOfRecord({ name: "stripe-1/000042.wal", kind: "segment", startLsn: "0/2A000000" })).toBe("stripe-1#00000000000000000042");
  });

  it("gives no value to PostgreSQL WAL, non-segments, and generic records without a position that fits", () => {
    // Act / Assess
    expect(gposOfRecord({ name: "000000010000000000000003", kind: "segment", startLsn: "0/3000000" })).toBeUndefined();
    expect(gposOfRecord({ name: "00000002.history", kind: "history" })).toBeUndefined();
    expect(gposOfRecord({ name: "wal/seg.wal", kind: "segment" })).toBeUndefined();
    expect(gposOfRecord({ name: "wal/seg-123456789012345678901.wal", kind: "segment" })).toBeUndefined();
  });

  it("reads a record's position as planning does (genericSegno)", () => {
    // Prepare
    const records = [{ name: "w/00012.seg" }, { name: "w/a1b22", startLsn: "5" }, { name: "w/x-7.log", startLsn: "not a number" }, { name: "w/none" }];

    // Act / Assess
    expect(records.map(genericRecordPosition)).toEqual(records.map((r) => genericSegno(r)));
  });

  it("bounds a range of one stream's positions, both ends included; none when it is empty", () => {
    // Act / Assess
    expect(gposRange("wal", 5n, 9n)).toEqual({ from: "wal#00000000000000000005", to: "wal#00000000000000000009" });
    expect(gposRange("wal", 5n, undefined)).toEqual({ from: "wal#00000000000000000005", to: `wal#${GPOS_MAX_POSITION}` });
    expect(gposRange("wal", -3n, 2n)?.from).toBe("wal#00000000000000000000");
    expect(gposRange("wal", 9n, 5n)).toBeUndefined();
    expect(gposRange("wal", GPOS_MAX_POSITION + 1n, undefined)).toBeUndefined();
  });
});
