import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { CHUNKER_VERSION, chunkerDescriptor } from "../../core/chunking.js";
import { InvalidInputError, ManifestInvalidError, UnsafePathError } from "../../core/errors.js";
import {
  SNAPSHOT_ID_RE as KEYS_SNAPSHOT_ID_RE,
  incomingChunkKey,
  incomingPackKey,
  incomingSnapshotKey,
  parseIncomingKey,
  parseIncomingSnapshotKey,
  vaultChunkKey,
  vaultSnapshotManifestKey,
  vaultSnapshotsPrefix,
} from "../../core/keys.js";
import { planRestore } from "../../core/restore-plan.js";
import {
  EMPTY_SHA256,
  FIXED_BLOCKS_ALGORITHM,
  RESTORE_DIR_MODE,
  RESTORE_FILE_MODE,
  SNAPSHOT_ID_RE,
  SnapshotBuilder,
  assertSafeRelativePath,
  assertSnapshotId,
  checkBackupLabel,
  fileSha256Of,
  fixedBlocksDescriptor,
  parseBackupLabel,
  parseManifest,
  pathProblem,
  resolveUnder,
  restoreLayout,
  serializeManifest,
  snapshotIdFor,
  snapshotIdTime,
  snapshotManifestSchema,
  toSnapshotInfo,
  validateManifest,
  type ChunkInput,
  type GenericSnapshotManifest,
  type PostgresSnapshotManifest,
  type RestoreOperation,
  type SnapshotManifest,
} from "../../core/snapshot.js";
import { segmentName } from "../../core/wal.js";
import { DB, FINISHED, MTIME, MiB, REAL_LABEL, SNAP_ID, STARTED, buildGeneric, chunk, genericManifest, pgBuilder, pgFields, pgManifest, sha } from "../support/manifests.js";

// --- fixtures ---------------------------------------------------------------

/** A deep, mutable copy to break. */
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function failure(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    if (e instanceof Error) return e;
    throw new Error(`threw a non-Error: ${String(e)}`);
  }
  throw new Error("expected a throw, but it returned");
}

const indexOf = (m: SnapshotManifest, path: string): number => {
  const i = m.files.findIndex((f) => f.path === path);
  if (i < 0) throw new Error(`fixture has no ${path}`);
  return i;
};

function fileAt(m: SnapshotManifest, path: string): Extract<SnapshotManifest["files"][number], { type: "file" }> {
  const e = m.files[indexOf(m, path)]!;
  if (e.type !== "file") throw new Error(`${path} is not a file in the fixture`);
  return e;
}

// --- snapshot ids -----------------------------------------------------------

describe("snapshot ids", () => {
  it("encode the UTC start time to the second and a 6-hex-digit suffix", () => {
    // Act
    const id = snapshotIdFor(new Date("2026-11-21T07:30:00.999Z"), "ab12cd");
    // Assess
    expect(id).toBe("20261121T073000Z-ab12cd");
    expect(SNAPSHOT_ID_RE.test(id)).toBe(true);
    expect(snapshotIdTime(id).toISOString()).toBe("2026-11-21T07:30:00.000Z");
  });

  it("sort as text in start-time order", () => {
    // Prepare: times whose unpadded forms would sort wrongly (9 < 10 h, Dec 31 < Jan 1)
    const times = ["2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z", "2026-11-21T07:30:00Z"];
    // Act
    const ids = times.map((t, i) => snapshotIdFor(new Date(t), ["ffffff", "000000", "aaaaaa", "111111", "999999"][i]));
    // Assess
    expect([...ids].sort()).toEqual(ids);
  });

  it("draw a random suffix when none is given", () => {
    const a = snapshotIdFor(STARTED);
    const b = snapshotIdFor(STARTED);
    expect(a).toMatch(/^20261121T073000Z-[0-9a-f]{6}$/);
    expect(b.slice(0, 16)).toBe(a.slice(0, 16));
    expect(a).not.toBe(b);
  });

  it.each([
    ["an invalid date", new Date(Number.NaN), "ab12cd", "not a valid date"],
    ["a year past 9999", new Date("+010000-01-01T00:00:00Z"), "ab12cd", "outside the years 0000-9999"],
    ["an upper-case suffix", STARTED, "AB12CD", "6 lowercase hex digits"],
    ["a short suffix", STARTED, "ab12c", "6 lowercase hex digits"],
    ["a suffix with a slash", STARTED, "ab/12c", "6 lowercase hex digits"],
  ])("refuses %s", (_label, date, suffix, message) => {
    const e = failure(() => snapshotIdFor(date, suffix));
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain(message);
  });

  it.each([
    ["empty", ""],
    ["no suffix", "20261121T073000Z"],
    ["upper-case hex", "20261121T073000Z-AB12CD"],
    ["a 7-digit suffix", "20261121T073000Z-ab12cd0"],
    ["a local time (no Z)", "20261121T073000-ab12cd"],
    ["month 13", "20261321T073000Z-ab12cd"],
    ["February 30", "20260230T073000Z-ab12cd"],
    ["February 29 of a common year", "20250229T073000Z-ab12cd"],
    ["hour 24", "20261121T243000Z-ab12cd"],
    ["second 60", "20261121T073060Z-ab12cd"],
    ["a trailing newline", "20261121T073000Z-ab12cd\n"],
    ["a path", "../20261121T073000Z-ab12cd"],
  ])("assertSnapshotId refuses %s", (_label, id) => {
    // Act
    const e = failure(() => assertSnapshotId(id));
    // Assess
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain(`snapshot id '${id}' is invalid`);
  });

  it("assertSnapshotId accepts February 29 of a leap year and is the regex keys.ts uses", () => {
    expect(assertSnapshotId("20240229T235959Z-000000")).toBe("20240229T235959Z-000000");
    expect(SNAPSHOT_ID_RE).toBe(KEYS_SNAPSHOT_ID_RE);
  });
});

// --- keys -------------------------------------------------------------------

describe("snapshot keys", () => {
  const A = sha("a");

  it("lay out the vault per database: chunks by SHA-256, one manifest per snapshot", () => {
    expect(vaultChunkKey(DB, A)).toBe(`db/orders/chunks/${A}`);
    expect(vaultSnapshotsPrefix(DB)).toBe("db/orders/snapshots/");
    expect(vaultSnapshotManifestKey(DB, SNAP_ID)).toBe("db/orders/snapshots/20261121T073000Z-ab12cd/manifest.json");
  });

  it("lay out incoming uploads as docs/snapshots.md fixes: one chunk pool per database, a manifest per snapshot", () => {
    expect(incomingSnapshotKey(DB, SNAP_ID)).toBe("incoming/db/orders/snapshots/20261121T073000Z-ab12cd/manifest.json");
    expect(incomingChunkKey(DB, A)).toBe(`incoming/db/orders/chunks/${A}`);
  });

  it.each([
    ["a bad database id", () => vaultChunkKey("Orders", A), "database id 'Orders' is invalid"],
    ["an upper-case chunk id", () => vaultChunkKey(DB, A.toUpperCase()), "is not a lowercase hex SHA-256"],
    ["a chunk id with a path", () => incomingChunkKey(DB, `../${A}`), "is not a lowercase hex SHA-256"],
    ["a bad snapshot id", () => vaultSnapshotManifestKey(DB, "latest"), "snapshot id 'latest' is invalid"],
    ["a snapshot id with a path", () => incomingSnapshotKey(DB, `${SNAP_ID}/..`), "is invalid"],
  ])("refuse %s", (_label, fn, message) => {
    const e = failure(fn);
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain(message);
  });

  it("parse back what they build", () => {
    expect(parseIncomingSnapshotKey(incomingSnapshotKey(DB, SNAP_ID))).toEqual({ databaseId: DB, object: "manifest", snapshotId: SNAP_ID });
    expect(parseIncomingSnapshotKey(incomingChunkKey(DB, A))).toEqual({ databaseId: DB, object: "chunk", sha256: A });
    expect(parseIncomingSnapshotKey(incomingPackKey(DB, A))).toEqual({ databaseId: DB, object: "pack", name: A });
  });

  it.each([
    ["a WAL key", "incoming/db/orders/wal/000000010000000000000002"],
    ["an absolute key", `/incoming/db/orders/snapshots/${SNAP_ID}/manifest.json`],
    ["a '..' segment", `incoming/db/orders/snapshots/${SNAP_ID}/../manifest.json`],
    ["an empty segment", `incoming/db/orders/snapshots//${SNAP_ID}/manifest.json`],
    ["another file name", `incoming/db/orders/snapshots/${SNAP_ID}/manifest.json.bak`],
    ["a manifest outside a snapshot", "incoming/db/orders/snapshots/manifest.json"],
    ["a chunk under a snapshot", `incoming/db/orders/snapshots/${SNAP_ID}/chunks/${A}`],
    ["a chunk without an id", "incoming/db/orders/chunks"],
    ["a chunk with a bad id", "incoming/db/orders/chunks/xyz"],
    ["an extra segment", `incoming/db/orders/chunks/${A}/x`],
    ["a chunk in another bucket prefix", `db/orders/chunks/${A}`],
    ["a pack with a bad name", "incoming/db/orders/packs/xyz"],
    ["a pack under a snapshot", `incoming/db/orders/snapshots/${SNAP_ID}/packs/${A}`],
    ["a page of a paged manifest", `incoming/db/orders/snapshots/${SNAP_ID}/pages/000003.json`],
    ["a page named manifest.json", `incoming/db/orders/snapshots/${SNAP_ID}/pages/manifest.json`],
    ["a bad snapshot id", "incoming/db/orders/snapshots/latest/manifest.json"],
    ["a bad database id", `incoming/db/ORDERS/snapshots/${SNAP_ID}/manifest.json`],
  ])("parseIncomingSnapshotKey refuses %s", (_label, key) => {
    expect(failure(() => parseIncomingSnapshotKey(key))).toBeInstanceOf(InvalidInputError);
  });

  it("are not mistaken for WAL uploads", () => {
    // Assess: the WAL parser refuses snapshot keys, the snapshot parser WAL keys
    expect(failure(() => parseIncomingKey(incomingSnapshotKey(DB, SNAP_ID)))).toBeInstanceOf(InvalidInputError);
    expect(failure(() => parseIncomingKey(incomingChunkKey(DB, A)))).toBeInstanceOf(InvalidInputError);
    expect(failure(() => parseIncomingKey(incomingPackKey(DB, A)))).toBeInstanceOf(InvalidInputError);
  });
});

// --- schema -----------------------------------------------------------------

describe("snapshot manifest schema", () => {
  it("round-trips a PostgreSQL manifest through its stored JSON", () => {
    // Prepare
    const m = pgManifest();
    // Act
    const text = serializeManifest(m);
    const back = parseManifest(text, { databaseId: DB, snapshotId: SNAP_ID, kind: "postgres", walSegmentSize: 16 * MiB });
    // Assess
    expect(back.manifest).toEqual(m);
    expect(serializeManifest(back.manifest)).toBe(text);
    expect(text.endsWith("}\n")).toBe(true);
    expect(text.split("\n")).toHaveLength(2);
  });

  it("round-trips a generic manifest, bytes or text", () => {
    const m = genericManifest();
    const back = parseManifest(new TextEncoder().encode(serializeManifest(m)), { kind: "generic" });
    expect(back.manifest).toEqual(m);
  });

  it("records what restore and dedup need, in a readable order", () => {
    // Act
    const m = pgManifest();
    // Assess
    expect(Object.keys(m)).toEqual([
      "formatVersion",
      "databaseId",
      "snapshotId",
      "kind",
      "startedAt",
      "finishedAt",
      "chunker",
      "codec",
      "postgres",
      "totals",
      "files",
    ]);
    expect(m.formatVersion).toBe(1);
    expect(m.chunker).toEqual({ ...chunkerDescriptor(), algorithm: CHUNKER_VERSION });
    expect(m.codec).toBe("zstd");
    expect(m.startedAt).toBe("2026-11-21T07:30:00.250Z");
    expect(m.postgres).toEqual({
      version: 150018,
      systemIdentifier: "7710526393709302379",
      walSegmentSize: 16 * MiB,
      timeline: 1,
      startLsn: "0/2000028",
      checkpointLsn: "0/2000060",
      stopLsn: "0/2000100",
      startWalFile: "000000010000000000000002",
      stopWalFile: "000000010000000000000002",
      label: "walvault 20261121T073000Z-ab12cd",
      backupMethod: "streamed",
      backupFrom: "primary",
      tablespaces: [{ oid: "16385", location: "/tmp/snapmodel-pg/ts1" }],
    });
  });

  it("is a discriminated union: each kind carries its own section only", () => {
    // Prepare
    const both = { ...clone(pgManifest()), generic: { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] } };
    const wrongSection = { ...clone(genericManifest()), kind: "postgres" };
    // Act
    const e1 = failure(() => validateManifest(both));
    const e2 = failure(() => validateManifest(wrongSection));
    // Assess
    expect(e1).toBeInstanceOf(ManifestInvalidError);
    expect(e1.message).toContain("Unrecognized key(s) in object: 'generic'");
    expect(e2).toBeInstanceOf(ManifestInvalidError);
    expect((e2 as ManifestInvalidError).field).toBe("postgres");
    expect(snapshotManifestSchema.safeParse(pgManifest()).success).toBe(true);
  });
});

// --- builder ----------------------------------------------------------------

describe("SnapshotBuilder", () => {
  it("counts chunk references, distinct chunks and new chunks separately", () => {
    // Act
    const m = pgManifest();
    // Assess: chunks a, b, a | b, c | pg_control | 15 | label
    const label = Buffer.byteLength(REAL_LABEL);
    expect(m.totals).toEqual({
      files: 6,
      directories: 6,
      symlinks: 1,
      logicalBytes: 10 * MiB + 2 * MiB + 1000 + 8192 + 3 + label,
      chunks: 8,
      uniqueChunks: 6,
      newChunks: 4,
      storedBytes: 1 * MiB + 512 * 1024 + 900 + 300 + 3 + 220,
      newStoredBytes: 1 * MiB + 900 + 300 + 220,
    });
  });

  it("flags a new chunk on one occurrence only, and counts a chunk new if any occurrence was uploaded", () => {
    // Prepare
    const b = new SnapshotBuilder();
    const f = b.startFile("f", 0o600, MTIME);
    // Act: x uploaded twice (a pipeline race), y first known then uploaded
    f.addChunk(chunk("x", 10, 5, true));
    f.addChunk(chunk("x", 10, 5, true));
    f.addChunk(chunk("y", 20, 6, false));
    f.addChunk(chunk("y", 20, 6, true));
    f.finish(sha("f"), 60);
    const m = b.build({ databaseId: "ledger", snapshotId: "20261121T080000Z-00ff00", kind: "generic", startedAt: new Date("2026-11-21T08:00:00Z"), finishedAt: new Date("2026-11-21T08:01:00Z"), generic: { streams: [{ id: "wal", lastSegment: "f", lastSegno: 0 }] } });
    // Assess
    expect(fileAt(m, "f").chunks.map((c) => c.new)).toEqual([true, undefined, undefined, true]);
    expect(m.totals).toMatchObject({ chunks: 4, uniqueChunks: 2, newChunks: 2, storedBytes: 11, newStoredBytes: 11 });
    expect(validateManifest(m).chunks.map((c) => c.new)).toEqual([true, true]);
  });

  it("writes entries sorted by path whatever the order of work, with files open side by side", () => {
    // Prepare
    const b = new SnapshotBuilder();
    const z = b.startFile("z", 0o600, MTIME);
    const a = b.startFile("a", 0o600, MTIME);
    b.addDirectory("m", 0o700, MTIME);
    // Act
    a.addChunk(chunk("A", 1, 1, true, "none"));
    z.addChunk(chunk("Z", 2, 2, true, "none"));
    z.finish(sha("Z"));
    a.finish(sha("A"));
    const m = b.build({ databaseId: "ledger", snapshotId: "20261121T080000Z-00ff00", kind: "generic", startedAt: new Date("2026-11-21T08:00:00Z"), finishedAt: new Date("2026-11-21T08:00:00Z"), generic: { streams: [{ id: "wal", lastSegment: "m/1", lastSegno: 1 }] } });
    // Assess
    expect(m.files.map((f) => f.path)).toEqual(["a", "m", "z"]);
    expect(b.size).toBe(3);
  });

  it("returns the unique chunks in order of first reference, for the existence check", () => {
    // Act
    const { chunks } = validateManifest(pgManifest());
    // Assess: files sorted: PG_VERSION, backup_label, base/1/1249 (b, c), base/1/1259 (a, b, a), global/pg_control
    expect(chunks.map((c) => c.sha256)).toEqual([sha("15\n"), sha(REAL_LABEL), sha("b"), sha("c"), sha("a"), sha("pg_control")]);
    expect(chunks.find((c) => c.sha256 === sha("b"))).toEqual({ sha256: sha("b"), size: 2 * MiB, storedSize: 512 * 1024, codec: "zstd", new: false });
  });

  it("records a whole-file SHA-256 only where the push gave one or the chunks say it: none for a file of two chunks finished without one", () => {
    // Prepare
    const b = new SnapshotBuilder();
    b.addDirectory("wal", 0o700, MTIME);
    const empty = b.startFile("empty", 0o600, MTIME);
    const one = b.startFile("one", 0o600, MTIME);
    const two = b.startFile("two", 0o600, MTIME);
    const hashed = b.startFile("hashed", 0o600, MTIME);
    one.addChunk(chunk("o", 10, 5, true));
    for (const f of [two, hashed]) {
      f.addChunk(chunk("t1", 10, 5, true));
      f.addChunk(chunk("t2", 10, 5, true));
    }
    // Act
    empty.finish(undefined, 0);
    one.finish(undefined, 10);
    two.finish(undefined, 20);
    hashed.finish(sha("t1t2"), 20);
    const m = buildGeneric(b, { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] });
    // Assess
    expect(fileAt(m, "empty").sha256).toBe(EMPTY_SHA256);
    expect(fileAt(m, "one").sha256).toBe(sha("o"));
    expect("sha256" in fileAt(m, "two")).toBe(false);
    expect(fileAt(m, "hashed").sha256).toBe(sha("t1t2"));
    expect(() => parseManifest(serializeManifest(m), { kind: "generic" })).not.toThrow();
  });

  describe("refuses what would make a wrong manifest, naming the file", () => {
    it("a path added twice", () => {
      const b = new SnapshotBuilder();
      b.addDirectory("base", 0o700, MTIME);
      const e = failure(() => b.startFile("base", 0o600, MTIME));
      expect(e).toBeInstanceOf(ManifestInvalidError);
      expect(e.message).toBe('path "base" was added to the snapshot twice');
      expect((e as ManifestInvalidError).field).toBe('files["base"]');
    });

    it("files never finished", () => {
      const b = pgBuilder();
      b.startFile("global/pg_filenode.map", 0o600, MTIME).addChunk(chunk("map", 512, 100, true));
      const e = failure(() => b.build({ databaseId: DB, snapshotId: SNAP_ID, kind: "postgres", startedAt: STARTED, finishedAt: FINISHED, postgres: pgFields() }));
      expect(e).toBeInstanceOf(ManifestInvalidError);
      expect(e.message).toBe('1 file(s) were started but not finished: "global/pg_filenode.map"');
    });

    it("a size read that differs from the chunks'", () => {
      const f = new SnapshotBuilder().startFile("f", 0o600, MTIME);
      f.addChunk(chunk("x", 100, 50, true));
      const e = failure(() => f.finish(sha("f-whole"), 101));
      expect(e).toBeInstanceOf(ManifestInvalidError);
      expect(e.message).toBe('file "f": 101 bytes were read, but its chunks add up to 100');
    });

    it("a chunk after finish, and finishing twice", () => {
      const f = new SnapshotBuilder().startFile("f", 0o600, MTIME);
      f.finish(EMPTY_SHA256);
      expect(failure(() => f.addChunk(chunk("x", 1, 1, true))).message).toBe('file "f": a chunk was added after the file was finished');
      expect(failure(() => f.finish(EMPTY_SHA256)).message).toBe('file "f": finished twice');
    });

    it("the same chunk id with another size or codec", () => {
      const b = new SnapshotBuilder();
      b.startFile("f", 0o600, MTIME).addChunk(chunk("x", 100, 50, true));
      const g = b.startFile("g", 0o600, MTIME);
      const e = failure(() => g.addChunk(chunk("x", 100, 50, false, "gzip")));
      expect(e).toBeInstanceOf(ManifestInvalidError);
      expect(e.message).toContain('file "g": chunk 0');
      expect(e.message).toContain("codec gzip, but the same chunk was added as 100 bytes, 50 stored, codec zstd");
    });

    it("whole-file hashes that cannot be right", () => {
      const b = new SnapshotBuilder();
      const empty = b.startFile("empty", 0o600, MTIME);
      const one = b.startFile("one", 0o600, MTIME);
      one.addChunk(chunk("x", 10, 5, true));
      expect(failure(() => empty.finish(sha("not empty"))).message).toContain("it has no chunks, so its SHA-256 must be that of no bytes");
      expect(failure(() => one.finish(sha("other"))).message).toContain(`it is one chunk (${sha("x")}), so its SHA-256 cannot be`);
    });

    it.each([
      ["a chunk without a SHA-256", { ...chunk("x", 1, 1, true), sha256: "abc" }, "chunk 0 has no lowercase hex SHA-256"],
      ["an empty chunk", chunk("x", 0, 1, true), "chunk 0 has size 0, not a positive integer"],
      ["a fractional stored size", chunk("x", 10, 1.5, true), "chunk 0 has storedSize 1.5, not a positive integer"],
      ["an unknown codec", { ...chunk("x", 1, 1, true), codec: "lz4" as ChunkInput["codec"] }, "chunk 0 has unknown codec 'lz4'"],
      ["no isNew", { ...chunk("x", 1, 1, true), isNew: undefined as unknown as boolean }, "chunk 0 does not say whether it is new (isNew)"],
    ])("%s", (_label, input, message) => {
      const f = new SnapshotBuilder().startFile("f", 0o600, MTIME);
      const e = failure(() => f.addChunk(input));
      expect(e).toBeInstanceOf(ManifestInvalidError);
      expect(e.message).toBe(`file "f": ${message}`);
    });

    it("a mode that is not a file mode, and an invalid mtime", () => {
      const b = new SnapshotBuilder();
      expect(failure(() => b.addDirectory("d", 0o17777, MTIME)).message).toContain("mode 8191");
      expect(failure(() => b.addDirectory("d", -1, MTIME)).message).toContain("is not a file mode");
      expect(failure(() => b.addDirectory("d", 0o700, new Date("nope"))).message).toBe('mtime of "d" is not a valid date');
    });

    it("an entry whose parent directory was never added", () => {
      const b = new SnapshotBuilder();
      b.startFile("base/1/1259", 0o600, MTIME).finish(EMPTY_SHA256);
      const e = failure(() => genericBuild(b));
      expect(e).toBeInstanceOf(ManifestInvalidError);
      expect(e.message).toContain('the parent directory of "base/1/1259", "base/1", is not in the snapshot');
    });

    it("an entry under a symlink, as an unsafe path", () => {
      const b = new SnapshotBuilder();
      b.addSymlink("etc", "/etc", MTIME);
      b.startFile("etc/passwd", 0o644, MTIME).finish(EMPTY_SHA256);
      const e = failure(() => genericBuild(b));
      expect(e).toBeInstanceOf(UnsafePathError);
      expect(e.message).toContain('"etc/passwd" lies under the symlink "etc"');
    });

    it("a symlink with an empty or NUL target", () => {
      const b = new SnapshotBuilder();
      expect(failure(() => b.addSymlink("l", "", MTIME)).message).toBe('symlink "l": its target is empty');
      expect(failure(() => b.addSymlink("l", "/a\0b", MTIME)).message).toBe('symlink "l": its target contains a NUL byte');
    });
  });
});

function genericBuild(b: SnapshotBuilder): SnapshotManifest {
  return b.build({
    databaseId: "ledger",
    snapshotId: "20261121T080000Z-00ff00",
    kind: "generic",
    startedAt: new Date("2026-11-21T08:00:00Z"),
    finishedAt: new Date("2026-11-21T08:00:01Z"),
    generic: { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] },
  });
}

// --- fixed blocks -----------------------------------------------------------

describe("files cut in fixed blocks (PostgreSQL relation files)", () => {
  const KiB64 = 64 * 1024;

  /** base/1/16384 cut in 64 KiB blocks: two full blocks and a 100-byte tail; pg_filenode.map by FastCDC. */
  function blocksManifest(): GenericSnapshotManifest {
    const b = new SnapshotBuilder();
    b.addDirectory("base", 0o700, MTIME);
    b.addDirectory("base/1", 0o700, MTIME);
    const rel = b.startFile("base/1/16384", 0o600, MTIME, { chunking: "blocks" });
    rel.addChunk(chunk("page-0", KiB64, 900, true));
    rel.addChunk(chunk("page-1", KiB64, 800, false));
    rel.addChunk(chunk("tail", 100, 60, true));
    rel.finish(sha("16384"), 2 * KiB64 + 100);
    const map = b.startFile("base/1/pg_filenode.map", 0o600, MTIME);
    map.addChunk(chunk("map", 512, 200, true));
    map.finish(sha("map"));
    const m = b.build({
      databaseId: "ledger",
      snapshotId: "20261121T080000Z-00ff00",
      kind: "generic",
      startedAt: new Date("2026-11-21T08:00:00Z"),
      finishedAt: new Date("2026-11-21T08:00:01Z"),
      blocks: fixedBlocksDescriptor(KiB64),
      generic: { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] },
    });
    if (m.kind !== "generic") throw new Error("fixture is not generic");
    return m;
  }

  it("records the block size next to the chunker and marks the files it cut", () => {
    // Act
    const m = blocksManifest();
    const text = serializeManifest(m);
    // Assess
    expect(m.blocks).toEqual({ algorithm: FIXED_BLOCKS_ALGORITHM, blockSize: KiB64 });
    expect(Object.keys(m).slice(4, 9)).toEqual(["startedAt", "finishedAt", "chunker", "blocks", "codec"]);
    expect(fileAt(m, "base/1/16384").chunking).toBe("blocks");
    expect("chunking" in fileAt(m, "base/1/pg_filenode.map")).toBe(false);
    expect(serializeManifest(parseManifest(text).manifest)).toBe(text);
  });

  it.each<[string, (m: GenericSnapshotManifest) => void, string, string]>([
    ["a short block before the last", (m) => void (fileAt(m, "base/1/16384").chunks[0]!.size = KiB64 - 1), "chunks[0].size", "is cut in 65536-byte blocks, but chunk 0 has 65535 bytes (only the last may be shorter)"],
    ["a last block longer than a block", (m) => void (fileAt(m, "base/1/16384").chunks[2]!.size = KiB64 + 1), "chunks[2].size", "chunk 2 has 65537 bytes"],
    ["block files without a block size", (m) => void delete (m as { blocks?: unknown }).blocks, "chunking", '"base/1/16384" is cut in blocks, but the manifest has no blocks descriptor'],
  ])("names the chunk for %s", (_label, breakIt, suffix, message) => {
    // Prepare
    const m = clone(blocksManifest());
    breakIt(m);
    const f = fileAt(m, "base/1/16384");
    f.size = f.chunks.reduce((n, c) => n + c.size, 0);
    m.totals.logicalBytes = m.files.reduce((n, e) => n + (e.type === "file" ? e.size : 0), 0);
    // Act
    const e = failure(() => validateManifest(m));
    // Assess
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect((e as ManifestInvalidError).field).toBe(`files[${indexOf(m, "base/1/16384")}].${suffix}`);
    expect(e.message).toContain(message);
  });

  it.each<[string, Record<string, unknown>, string, string]>([
    ["an unknown block cutter", { algorithm: "fixed-blocks-v9", blockSize: KiB64 }, "blocks.algorithm", "'fixed-blocks-v9' is not a block cutter this walvault knows"],
    ["a block size that is not a power of two", { algorithm: FIXED_BLOCKS_ALGORITHM, blockSize: 3 * 8192 }, "blocks.blockSize", "24576 is not a power of two between 4096 and 67108864"],
  ])("names the descriptor field for %s", (_label, blocks, field, message) => {
    const m = { ...clone(blocksManifest()), blocks };
    const e = failure(() => validateManifest(m));
    expect((e as ManifestInvalidError).field).toBe(field);
    expect(e.message).toContain(message);
  });

  it("builds no manifest when a file was cut in blocks but no block size was given", () => {
    const b = new SnapshotBuilder();
    const f = b.startFile("rel", 0o600, MTIME, { chunking: "blocks" });
    f.addChunk(chunk("p", 8192, 10, true));
    f.finish(sha("p"));
    expect(failure(() => genericBuild(b)).message).toContain('"rel" is cut in blocks, but the manifest has no blocks descriptor');
  });

  it.each([2048, 3000, 128 * 1024 * 1024, 1.5])("fixedBlocksDescriptor refuses %s", (size) => {
    expect(failure(() => fixedBlocksDescriptor(size))).toBeInstanceOf(InvalidInputError);
  });
});

// --- validation -------------------------------------------------------------

describe("validateManifest", () => {
  it("accepts the builder's manifest with the key's ids and the catalog's registration", () => {
    // Act
    const v = validateManifest(pgManifest(), { databaseId: DB, snapshotId: SNAP_ID, kind: "postgres", walSegmentSize: 16 * MiB });
    // Assess
    expect(v.chunks).toHaveLength(6);
    expect(v.chunks.filter((c) => c.new)).toHaveLength(4);
  });

  it("accepts a file without sha256 (its chunks name its bytes), and still checks one that is recorded against what its chunks say", () => {
    // Prepare: base/1/1259 has three chunks, PG_VERSION one
    const m = clone(pgManifest());
    const many = m.files.find((f) => f.path === "base/1/1259") as Extract<SnapshotManifest["files"][number], { type: "file" }>;
    const single = m.files.find((f) => f.path === "PG_VERSION") as Extract<SnapshotManifest["files"][number], { type: "file" }>;
    // Act + Assess
    delete many.sha256;
    expect(() => validateManifest(m)).not.toThrow();
    delete single.sha256;
    expect(() => validateManifest(m)).not.toThrow();
    single.sha256 = sha("not the chunk");
    expect(() => validateManifest(m)).toThrow(/PG_VERSION.*is one chunk, so its sha256 must be that chunk's/);
  });

  it("accepts a stop WAL file named either way PostgreSQL names it at a segment boundary", () => {
    // Prepare: stopLsn exactly at the start of segment 3
    const m = clone(pgManifest());
    m.postgres.stopLsn = "0/3000000";
    // Act + Assess: pg_walfile_name says ...02, the backup history file ...03
    m.postgres.stopWalFile = "000000010000000000000002";
    expect(() => validateManifest(m)).not.toThrow();
    m.postgres.stopWalFile = "000000010000000000000003";
    expect(() => validateManifest(m)).not.toThrow();
  });

  type Break = (m: PostgresSnapshotManifest) => void;
  const i = (path: string): number => indexOf(pgManifest(), path);
  const rel = (): number => i("base/1/1259");

  it.each<[string, Break, string, string]>([
    ["a format version this walvault does not read", (m) => void ((m as { formatVersion: number }).formatVersion = 2), "formatVersion", "Invalid literal value, expected 1"],
    ["an unknown top-level field", (m) => void ((m as Record<string, unknown>).extra = 1), "(top level)", "Unrecognized key(s) in object: 'extra'"],
    ["an unknown field in a file entry", (m) => void ((m.files[0] as Record<string, unknown>).owner = "root"), "files[0]", "Unrecognized key(s) in object: 'owner'"],
    ["a bad database id", (m) => void (m.databaseId = "Orders"), "databaseId", "invalid database id"],
    ["a bad snapshot id", (m) => void (m.snapshotId = "latest"), "snapshotId", "not a snapshot id"],
    ["a local start time", (m) => void (m.startedAt = "2026-11-21T07:30:00+01:00"), "startedAt", "not an ISO 8601 UTC time"],
    ["an unknown chunk codec", (m) => void ((fileAt(m, "base/1/1259").chunks[1] as { codec: string }).codec = "lz4"), `files[${rel()}].chunks[1].codec`, "Invalid enum value"],
    ["a chunk id that is not a SHA-256", (m) => void (fileAt(m, "base/1/1259").chunks[0]!.sha256 = "A".repeat(64)), `files[${rel()}].chunks[0].sha256`, "not a lowercase hex SHA-256"],
    ["an empty chunk", (m) => void (fileAt(m, "base/1/1259").chunks[0]!.size = 0), `files[${rel()}].chunks[0].size`, "greater than 0"],
    ["a mode past 0o7777", (m) => void ((m.files[i("base")] as { mode: number }).mode = 0o10000), `files[${i("base")}].mode`, "less than or equal to 4095"],
    ["a symlink with chunks", (m) => void ((m.files[i("pg_wal")] as Record<string, unknown>).chunks = []), `files[${i("pg_wal")}]`, "Unrecognized key(s) in object: 'chunks'"],
    ["a non-canonical LSN", (m) => void (m.postgres.startLsn = "0/02000028"), "postgres.startLsn", "not an LSN as PostgreSQL prints it"],
    ["a WAL file name that is not one", (m) => void (m.postgres.startWalFile = "000000010000000000000002.partial"), "postgres.startWalFile", "not a WAL segment file name"],
    ["an unknown chunker", (m) => void (m.chunker.algorithm = "rabin-v1"), "chunker.algorithm", "'rabin-v1' is not a chunker this walvault knows"],
    ["impossible chunker parameters", (m) => void (m.chunker.minSize = m.chunker.avgSize * 2), "chunker", "minSize < avgSize < maxSize"],
    ["a chunk larger than the chunker allows", (m) => void (m.chunker = { ...m.chunker, minSize: 64, avgSize: 256, maxSize: 1024 }), `files[${i("base/1/1249")}].chunks[0].size`, "larger than the chunker's maxSize 1024"],
    ["a file whose chunks do not add up to its size", (m) => void (fileAt(m, "base/1/1259").size += 1), `files[${rel()}].size`, `the chunks of "base/1/1259" add up to ${10 * MiB} bytes, but its size is ${10 * MiB + 1}`],
    ["an empty file with another hash", (m) => void (fileAt(m, "postmaster.opts").sha256 = sha("x")), `files[${i("postmaster.opts")}].sha256`, "is empty, so its sha256 must be the SHA-256 of no bytes"],
    ["a one-chunk file whose hash is not its chunk's", (m) => void (fileAt(m, "PG_VERSION").sha256 = sha("16\n")), `files[${i("PG_VERSION")}].sha256`, "is one chunk, so its sha256 must be that chunk's"],
    ["an uncompressed chunk stored at another size", (m) => void (fileAt(m, "PG_VERSION").chunks[0]!.storedSize = 4), `files[${i("PG_VERSION")}].chunks[0].storedSize`, "codec none, so its storedSize 4 must equal its size 3"],
    ["one chunk id with two sizes", (m) => void (fileAt(m, "base/1/1259").chunks[1]!.size = 2 * MiB + 1), `files[${rel()}].chunks[1]`, `chunk ${sha("b")} is recorded as ${2 * MiB + 1} bytes`],
    ["a path listed twice", (m) => void m.files.push(clone(m.files[i("base")]!)), `files[${pgManifest().files.length}].path`, `"base" is listed twice (first as files[${i("base")}])`],
    ["an entry whose parent is missing", (m) => void m.files.splice(i("base/1"), 1), `files[${i("base/1")}].path`, 'the parent directory of "base/1/1249", "base/1", is not in the snapshot'],
    ["an entry whose parent is a file", (m) => void m.files.push({ path: "PG_VERSION/x", type: "directory", mode: 0o700, mtime: MTIME.toISOString() }), `files[${pgManifest().files.length}].path`, 'the parent of "PG_VERSION/x", "PG_VERSION", is a file'],
    ["a wrong file count", (m) => void (m.totals.files = 5), "totals.files", "states 5, but the files add up to 6"],
    ["a wrong chunk count", (m) => void (m.totals.chunks = 6), "totals.chunks", "states 6, but the files add up to 8"],
    ["unique chunks counted as references", (m) => void (m.totals.uniqueChunks = 8), "totals.uniqueChunks", "states 8, but the files add up to 6"],
    ["a wrong new-chunk count", (m) => void (m.totals.newChunks = 6), "totals.newChunks", "states 6, but the files add up to 4"],
    ["stored bytes counted with repeats", (m) => void (m.totals.storedBytes += 1 * MiB), "totals.storedBytes", "but the files add up to"],
    ["a wrong new stored byte count", (m) => void (m.totals.newStoredBytes = 0), "totals.newStoredBytes", "states 0"],
    ["a wrong logical size", (m) => void (m.totals.logicalBytes -= 1), "totals.logicalBytes", "but the files add up to"],
    ["a snapshot id that is not its start time", (m) => void (m.snapshotId = "20261121T073001Z-ab12cd"), "snapshotId", "does not encode startedAt 2026-11-21T07:30:00.250Z (expected the prefix 20261121T073000Z)"],
    ["a finish before the start", (m) => void (m.finishedAt = "2026-11-21T07:29:59.000Z"), "finishedAt", "2026-11-21T07:29:59.000Z is before startedAt"],
    ["a start LSN after the stop LSN", (m) => void (m.postgres.stopLsn = "0/2000000"), "postgres.stopLsn", "0/2000000 is before startLsn 0/2000028"],
    ["a checkpoint outside the backup", (m) => void (m.postgres.checkpointLsn = "0/2000200"), "postgres.checkpointLsn", "0/2000200 is not between startLsn 0/2000028 and stopLsn 0/2000100"],
    ["a start WAL file on another timeline", (m) => void (m.postgres.startWalFile = "000000020000000000000002"), "postgres.startWalFile", "but timeline 1 and startLsn 0/2000028 are in 000000010000000000000002 (16 MB segments)"],
    ["a start WAL file for another LSN", (m) => void (m.postgres.startWalFile = "000000010000000000000003"), "postgres.startWalFile", "is 000000010000000000000003"],
    ["a stop WAL file that does not hold the stop LSN", (m) => void (m.postgres.stopWalFile = "000000010000000000000001"), "postgres.stopWalFile", "are in 000000010000000000000002"],
    ["a WAL segment size PostgreSQL cannot have", (m) => void (m.postgres.walSegmentSize = 3 * MiB), "postgres.walSegmentSize", "is not a power of two"],
    ["no backup_label", (m) => void m.files.splice(i("backup_label"), 1), "files", "needs the file backup_label, which is missing"],
    ["a backup_label that is a directory", (m) => void (m.files[i("backup_label")] = { path: "backup_label", type: "directory", mode: 0o700, mtime: MTIME.toISOString() }), "files", "needs the file backup_label, but it is a directory"],
    ["no pg_control", (m) => void m.files.splice(i("global/pg_control"), 1), "files", "needs the file global/pg_control"],
    ["a tablespace whose contents are not inline", (m) => void m.postgres.tablespaces.push({ oid: "16390", location: "/srv/ts2" }), "postgres.tablespaces[1]", "pg_tblspc/16390 is not in the snapshot"],
    ["a tablespace listed twice", (m) => void m.postgres.tablespaces.push({ oid: "16385", location: "/srv/ts2" }), "postgres.tablespaces[1].oid", "tablespace 16385 is listed twice"],
  ])("names the field for %s", (_label, breakIt, field, message) => {
    // Prepare
    const m = clone(pgManifest());
    breakIt(m);
    // Act
    const e = failure(() => validateManifest(m));
    // Assess
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect((e as ManifestInvalidError).field).toBe(field);
    expect(e.message).toContain(`snapshot manifest ${field}: `);
    expect(e.message).toContain(message);
  });

  it.each<[string, Parameters<typeof validateManifest>[1], string, string]>([
    ["another database than the key's", { databaseId: "billing" }, "databaseId", "names database 'orders', but it was uploaded for 'billing'"],
    ["another snapshot than the key's", { snapshotId: "20261121T073000Z-000000" }, "snapshotId", "it was uploaded as snapshot '20261121T073000Z-000000'"],
    ["another kind than the registration", { kind: "generic" }, "kind", "is postgres, but database 'orders' is registered as generic"],
    ["another segment size than the registration", { walSegmentSize: 64 * MiB }, "postgres.walSegmentSize", "registered with 67108864-byte WAL segments"],
  ])("names the field for %s", (_label, expectations, field, message) => {
    const e = failure(() => validateManifest(pgManifest(), expectations));
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect((e as ManifestInvalidError).field).toBe(field);
    expect(e.message).toContain(message);
  });

  it("checks the start WAL file against the registered segment size", () => {
    // Prepare: with 1 MB segments, 0/2000028 is in segment 0x20
    const m = clone(pgManifest());
    m.postgres.walSegmentSize = 1 * MiB;
    m.postgres.stopWalFile = undefined;
    // Act
    const e = failure(() => validateManifest(m));
    // Assess
    expect((e as ManifestInvalidError).field).toBe("postgres.startWalFile");
    expect(e.message).toContain(`are in ${segmentName(1, 0x20n, MiB)} (1 MB segments)`);
  });

  it("names the field for generic manifests too", () => {
    // Prepare
    const twice = clone(genericManifest());
    twice.generic.streams.push({ id: "wal", lastSegment: "wal/000043.wal", lastSegno: 43 });
    const none = { ...clone(genericManifest()), generic: { streams: [] } };
    const badId = clone(genericManifest());
    badId.generic.streams[0]!.id = "../wal";
    // Act + Assess
    expect((failure(() => validateManifest(twice)) as ManifestInvalidError).field).toBe("generic.streams[1].id");
    expect(failure(() => validateManifest(none)).message).toContain("a generic snapshot names at least one WAL stream");
    expect(failure(() => validateManifest(badId)).message).toContain("generic.streams[0].id: not a stream id");
  });

  it("says how many other problems there are", () => {
    const m = clone(pgManifest()) as Record<string, unknown>;
    m.databaseId = "X";
    m.codec = "lz4";
    expect(failure(() => validateManifest(m)).message).toMatch(/^snapshot manifest databaseId: invalid database id \(and 1 more problem\(s\)\)$/);
  });

  it("refuses bytes that are not JSON", () => {
    const e = failure(() => parseManifest('{"formatVersion": 1,'));
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect(e.message).toMatch(/^snapshot manifest is not JSON: /);
  });

  it("refuses what is not an object at all", () => {
    expect(failure(() => validateManifest(null))).toBeInstanceOf(ManifestInvalidError);
    expect(failure(() => validateManifest([]))).toBeInstanceOf(ManifestInvalidError);
  });
});

// --- path attacks -----------------------------------------------------------

const ATTACKS: ReadonlyArray<[string, string, string]> = [
  ["a parent escape", "../x", "contains a '.' or '..' segment"],
  ["an absolute path", "/etc/passwd", "is absolute"],
  ["an escape after a name", "a/../../b", "contains a '.' or '..' segment"],
  ["a '..' at the end", "a/..", "contains a '.' or '..' segment"],
  ["an empty segment", "a//b", "has an empty segment"],
  ["a trailing slash", "a/", "has an empty segment"],
  ["a '.' segment", "./a", "contains a '.' or '..' segment"],
  ["a NUL byte", "a\0/etc/passwd", "contains a NUL byte"],
  ["a newline", "a\nb", "contains a control character"],
  ["a backslash", "..\\..\\x", "contains a backslash"],
  ["an empty path", "", "is empty"],
  ["a name over 255 bytes", `a/${"é".repeat(128)}`, "has a name longer than 255 bytes"],
  ["a path over 4095 bytes", Array.from({ length: 20 }, () => "x".repeat(250)).join("/"), "is longer than 4095 bytes"],
];

describe("path safety", () => {
  it.each(ATTACKS)("pathProblem refuses %s", (_label, path, problem) => {
    expect(pathProblem(path)).toBe(problem);
    const e = failure(() => assertSafeRelativePath(path));
    expect(e).toBeInstanceOf(UnsafePathError);
    expect((e as UnsafePathError).path).toBe(path);
    expect(e.message).toBe(`path ${JSON.stringify(path)} ${problem}`);
  });

  it.each(["a", "base/1/1259", "pg_tblspc/16385/PG_15_202209061", ".hidden", "a..b", "a/b.c/..d", "ü/名前", "x".repeat(255)])("accepts %j", (path) => {
    expect(pathProblem(path)).toBeUndefined();
    expect(assertSafeRelativePath(path)).toBe(path);
  });

  it.each(ATTACKS)("validateManifest refuses a file at %s, naming the entry", (_label, path, problem) => {
    // Prepare
    const m = clone(genericManifest());
    m.files.push({ path, type: "file", mode: 0o600, mtime: MTIME.toISOString(), size: 0, sha256: EMPTY_SHA256, chunks: [] });
    m.totals.files += 1;
    // Act
    const e = failure(() => validateManifest(m));
    // Assess
    expect(e).toBeInstanceOf(UnsafePathError);
    expect((e as UnsafePathError).path).toBe(path);
    expect(e.message).toBe(`snapshot manifest files[${m.files.length - 1}].path: path ${JSON.stringify(path)} ${problem}`);
  });

  it.each(ATTACKS)("the builder refuses %s before recording it", (_label, path) => {
    const b = new SnapshotBuilder();
    expect(failure(() => b.startFile(path, 0o600, MTIME))).toBeInstanceOf(UnsafePathError);
    expect(failure(() => b.addDirectory(path, 0o700, MTIME))).toBeInstanceOf(UnsafePathError);
    expect(failure(() => b.addSymlink(path, "x", MTIME))).toBeInstanceOf(UnsafePathError);
    expect(b.size).toBe(0);
  });

  it("refuses an unsafe last segment path of a generic stream", () => {
    const m = clone(genericManifest());
    m.generic.streams[0]!.lastSegment = "../../wal/1";
    const e = failure(() => validateManifest(m));
    expect(e).toBeInstanceOf(UnsafePathError);
    expect(e.message).toContain("generic.streams[0].lastSegment");
  });
});

// --- restore layout ---------------------------------------------------------

describe("restoreLayout", () => {
  it("keeps an mtime recorded to the nanosecond, every digit, for the restorer", () => {
    // Prepare: a symlink and a directory with nanosecond mtimes, a file with a Date
    const b = new SnapshotBuilder();
    b.addDirectory("d", 0o755, 1796159554264123456n);
    b.addSymlink("d/link", "x", 1796159554264000001n);
    b.startFile("d/x", 0o644, new Date(1796159554264)).finish(EMPTY_SHA256);
    // Act
    const m = genericBuild(b);
    const times = restoreLayout(m, TARGET).flatMap((o) => (o.op === "utimes" ? [[o.relativePath, o.mtimeNs] as const] : []));
    // Assess
    expect(m.files.map((f) => f.mtime)).toEqual(["2026-12-01T21:12:34.264123456Z", "2026-12-01T21:12:34.264000001Z", "2026-12-01T21:12:34.264Z"]);
    expect(new Map(times)).toEqual(new Map([["d", 1796159554264123456n], ["d/link", 1796159554264000001n], ["d/x", 1796159554264000000n]]));
  });

  const TARGET = "/restore/orders";
  const ops = (): RestoreOperation[] => restoreLayout(pgManifest(), TARGET);
  const kinds = (list: RestoreOperation[]): string[] => list.map((o) => `${o.op} ${o.relativePath}`);

  it("creates directories parents first, writes files, makes links, then sets attributes deepest first", () => {
    // Act
    const list = ops();
    // Assess
    expect(kinds(list)).toEqual([
      "mkdir base",
      "mkdir global",
      "mkdir pg_tblspc",
      "mkdir base/1",
      "mkdir pg_tblspc/16385",
      "mkdir pg_tblspc/16385/PG_15_202209061",
      "writeFile PG_VERSION",
      "writeFile backup_label",
      "writeFile base/1/1249",
      "writeFile base/1/1259",
      "writeFile global/pg_control",
      "writeFile postmaster.opts",
      "symlink pg_wal",
      "utimes pg_tblspc/16385/PG_15_202209061",
      "chmod pg_tblspc/16385/PG_15_202209061",
      "utimes base/1/1259",
      "chmod base/1/1259",
      "utimes base/1/1249",
      "chmod base/1/1249",
      "utimes pg_tblspc/16385",
      "chmod pg_tblspc/16385",
      "utimes global/pg_control",
      "chmod global/pg_control",
      "utimes base/1",
      "chmod base/1",
      "utimes postmaster.opts",
      "chmod postmaster.opts",
      "utimes pg_wal",
      "utimes pg_tblspc",
      "chmod pg_tblspc",
      "utimes global",
      "chmod global",
      "utimes base",
      "chmod base",
      "utimes backup_label",
      "chmod backup_label",
      "utimes PG_VERSION",
      "chmod PG_VERSION",
    ]);
  });

  it("writes each file from its chunks at offsets implied by their order", () => {
    // Act
    const write = ops().find((o) => o.op === "writeFile" && o.relativePath === "base/1/1259");
    // Assess
    expect(write).toEqual({
      op: "writeFile",
      path: "/restore/orders/base/1/1259",
      relativePath: "base/1/1259",
      mode: RESTORE_FILE_MODE,
      size: 10 * MiB,
      sha256: sha("whole 1259"),
      chunks: [
        { offset: 0, sha256: sha("a"), size: 4 * MiB, storedSize: MiB, codec: "zstd", key: `db/orders/chunks/${sha("a")}` },
        { offset: 4 * MiB, sha256: sha("b"), size: 2 * MiB, storedSize: 512 * 1024, codec: "zstd", key: `db/orders/chunks/${sha("b")}` },
        { offset: 6 * MiB, sha256: sha("a"), size: 4 * MiB, storedSize: MiB, codec: "zstd", key: `db/orders/chunks/${sha("a")}` },
      ],
    });
  });

  it("works in writable modes and restores the recorded ones at the end, without setuid or setgid", () => {
    // Prepare: a read-only directory holding a setuid file
    const b = new SnapshotBuilder();
    b.addDirectory("ro", 0o500, MTIME);
    b.startFile("ro/tool", 0o4755, MTIME).finish(EMPTY_SHA256);
    // Act
    const list = restoreLayout(genericBuild(b), TARGET);
    // Assess
    expect(list).toEqual([
      { op: "mkdir", path: "/restore/orders/ro", relativePath: "ro", mode: RESTORE_DIR_MODE },
      { op: "writeFile", path: "/restore/orders/ro/tool", relativePath: "ro/tool", mode: RESTORE_FILE_MODE, size: 0, sha256: EMPTY_SHA256, chunks: [] },
      { op: "utimes", path: "/restore/orders/ro/tool", relativePath: "ro/tool", mtime: MTIME, mtimeNs: BigInt(MTIME.getTime()) * 1_000_000n, noFollow: false },
      { op: "chmod", path: "/restore/orders/ro/tool", relativePath: "ro/tool", mode: 0o755 },
      { op: "utimes", path: "/restore/orders/ro", relativePath: "ro", mtime: MTIME, mtimeNs: BigInt(MTIME.getTime()) * 1_000_000n, noFollow: false },
      { op: "chmod", path: "/restore/orders/ro", relativePath: "ro", mode: 0o500 },
    ]);
  });

  it("creates symlinks as recorded and touches them without following", () => {
    const list = ops();
    expect(list.find((o) => o.op === "symlink")).toEqual({
      op: "symlink",
      path: "/restore/orders/pg_wal",
      relativePath: "pg_wal",
      target: "/var/lib/pgwal/orders",
      outside: true,
    });
    expect(list.filter((o) => o.relativePath === "pg_wal").map((o) => o.op)).toEqual(["symlink", "utimes"]);
    expect(list.find((o) => o.op === "utimes" && o.relativePath === "pg_wal")).toMatchObject({ noFollow: true });
  });

  it.each([
    ["an absolute target", "/srv/wal", true],
    ["a sibling in the tree", "../data/current", false],
    ["a name beside the link", "000042.wal", false],
    ["a climb out of the tree", "../../../etc", true],
    ["a climb to the target itself", "..", true],
  ])("marks a link to %s as outside=%s", (_label, linkTarget, outside) => {
    // Prepare: the link is wal/latest
    const m = clone(genericManifest());
    m.files.push({ path: "wal", type: "directory", mode: 0o700, mtime: MTIME.toISOString() });
    m.files.push({ path: "wal/latest", type: "symlink", mtime: MTIME.toISOString(), linkTarget });
    m.totals = { ...m.totals, directories: m.totals.directories + 1, symlinks: 1 };
    // Act
    const link = restoreLayout(m, TARGET).find((o) => o.op === "symlink");
    // Assess
    expect(link).toMatchObject({ path: "/restore/orders/wal/latest", target: linkTarget, outside });
  });

  it.each(["/restore/orders", "/restore/orders/", "/restore/x/../orders", "//restore//orders"])(
    "never leaves the target %j",
    (target) => {
      // Act
      const list = restoreLayout(pgManifest(), target);
      // Assess
      for (const o of list) {
        expect(o.path.startsWith("/restore/orders/")).toBe(true);
        expect(posix.relative("/restore/orders", o.path)).toBe(o.relativePath);
        expect(posix.normalize(o.path)).toBe(o.path);
      }
      expect(list).toHaveLength(38);
    },
  );

  it.each(ATTACKS)("refuses a manifest with %s and plans nothing", (_label, path) => {
    // Prepare: a manifest that skipped ingest's validation
    const m = clone(genericManifest());
    m.files.push({ path, type: "directory", mode: 0o700, mtime: MTIME.toISOString() });
    m.totals.directories += 1;
    // Act + Assess
    expect(failure(() => restoreLayout(m, TARGET))).toBeInstanceOf(UnsafePathError);
  });

  it("refuses a manifest that would write through one of its symlinks", () => {
    // Prepare
    const m = clone(genericManifest());
    m.files.push({ path: "cron", type: "symlink", mtime: MTIME.toISOString(), linkTarget: "/etc/cron.d" });
    m.files.push({ path: "cron/job", type: "file", mode: 0o644, mtime: MTIME.toISOString(), size: 0, sha256: EMPTY_SHA256, chunks: [] });
    m.totals = { ...m.totals, symlinks: 1, files: m.totals.files + 1 };
    // Act
    const e = failure(() => restoreLayout(m, TARGET));
    // Assess
    expect(e).toBeInstanceOf(UnsafePathError);
    expect(e.message).toContain('"cron/job" lies under the symlink "cron"');
  });

  it.each([
    ["a relative target", "restore/orders", "must be an absolute path"],
    ["the root directory", "/", "must not be the root directory"],
    ["the root spelled oddly", "/restore/..", "must not be the root directory"],
    ["an empty target", "", "is not a directory path"],
    ["a NUL in the target", "/restore\0/x", "is not a directory path"],
  ])("refuses %s", (_label, target, message) => {
    const e = failure(() => restoreLayout(pgManifest(), target));
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain(message);
  });

  it.each(ATTACKS)("resolveUnder refuses %s", (_label, path) => {
    const e = failure(() => resolveUnder(TARGET, path));
    expect(e).toBeInstanceOf(UnsafePathError);
  });

  it("resolveUnder joins a safe path strictly inside the target", () => {
    expect(resolveUnder("/restore/orders/", "base/1/1259")).toBe("/restore/orders/base/1/1259");
    expect(resolveUnder("/restore/orders", "..a/b..")).toBe("/restore/orders/..a/b..");
  });
});

// --- restore planning -------------------------------------------------------

describe("toSnapshotInfo", () => {
  it("gives the planner a PostgreSQL snapshot with bigint LSNs", () => {
    // Act
    const info = toSnapshotInfo(pgManifest());
    // Assess
    expect(info).toEqual({
      id: SNAP_ID,
      databaseId: DB,
      kind: "postgres",
      timeline: 1,
      startLsn: 0x2000028n,
      stopLsn: 0x2000100n,
      startedAt: STARTED,
      finishedAt: FINISHED,
    });
  });

  it("keeps both halves of an LSN past 4 GB", () => {
    // Prepare
    const m = clone(pgManifest());
    m.postgres = { ...m.postgres, timeline: 3, startLsn: "1A/F0000028", checkpointLsn: "1A/F0000060", stopLsn: "1B/100", startWalFile: "000000030000001A000000F0", stopWalFile: "000000030000001B00000000" };
    // Act
    const info = toSnapshotInfo(validateManifest(m).manifest);
    // Assess
    expect(info.startLsn).toBe(0x1af0000028n);
    expect(info.stopLsn).toBe(0x1b00000100n);
    expect(info.timeline).toBe(3);
  });

  it("is what planRestore needs: the snapshot plus its WAL", () => {
    // Prepare: segments 2..4 archived after the backup
    const wal = [2n, 3n, 4n].map((segno) => ({ timeline: 1, segno, name: segmentName(1, segno), archivedAt: new Date(FINISHED.getTime() + Number(segno) * 60_000) }));
    // Act
    const plan = planRestore({ snapshots: [toSnapshotInfo(pgManifest())], wal, histories: new Map(), segmentSize: 16 * MiB, target: { kind: "latest" } });
    // Assess
    expect(plan.snapshot.id).toBe(SNAP_ID);
    expect(plan.wal.map((w) => w.name)).toEqual(["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"]);
  });

  it("gives a generic snapshot its stream's last segment position", () => {
    const info = toSnapshotInfo(genericManifest());
    expect(info).toMatchObject({ kind: "generic", timeline: 1, startLsn: 42n, stopLsn: 42n, databaseId: "ledger" });
  });

  it("needs the stream named when a generic snapshot has several", () => {
    // Prepare
    const m = genericManifest([
      { id: "stripe-0", lastSegment: "wal/0/000007.wal", lastSegno: 7 },
      { id: "stripe-1", lastSegment: "wal/1/000009.wal", lastSegno: 9 },
    ]);
    // Act + Assess
    expect(failure(() => toSnapshotInfo(m)).message).toContain("has 2 WAL streams (stripe-0, stripe-1): name the one to plan");
    expect(toSnapshotInfo(m, { stream: "stripe-1" }).stopLsn).toBe(9n);
    expect(failure(() => toSnapshotInfo(m, { stream: "stripe-2" }))).toBeInstanceOf(InvalidInputError);
  });
});

// --- backup_label -----------------------------------------------------------

describe("parseBackupLabel", () => {
  it("reads every field of a real PostgreSQL 15 backup_label", () => {
    // Act
    const label = parseBackupLabel(REAL_LABEL, 16 * MiB);
    // Assess
    expect(label).toEqual({
      startLsn: 0x2000028n,
      startWalFile: "000000010000000000000002",
      checkpointLsn: 0x2000060n,
      backupMethod: "streamed",
      backupFrom: "primary",
      startTime: "2026-11-21 07:40:25 UTC",
      startedAt: new Date("2026-11-21T07:40:25Z"),
      label: "walvault 20261121T073000Z-ab12cd",
      startTimeline: 1,
      other: {},
    });
  });

  it("reads a standby's label with a numeric zone, a label containing ': ', and PostgreSQL 17 lines", () => {
    // Prepare
    const text = [
      "START WAL LOCATION: 1A/F0000028 (file 000000030000001A000000F0)",
      "CHECKPOINT LOCATION: 1A/F0000060",
      "BACKUP METHOD: streamed",
      "BACKUP FROM: standby",
      "START TIME: 2026-11-21 09:40:25 +02",
      "LABEL: nightly: orders",
      "START TIMELINE: 3",
      "INCREMENTAL FROM LSN: 1A/E0000028",
      "INCREMENTAL FROM TLI: 3",
      "SOMETHING NEW: kept",
    ].join("\r\n");
    // Act
    const label = parseBackupLabel(text, 16 * MiB);
    // Assess
    expect(label.backupFrom).toBe("standby");
    expect(label.startLsn).toBe(0x1af0000028n);
    expect(label.startedAt).toEqual(new Date("2026-11-21T07:40:25Z"));
    expect(label.label).toBe("nightly: orders");
    expect(label.startTimeline).toBe(3);
    expect(label.incrementalFromLsn).toBe(0x1ae0000028n);
    expect(label.incrementalFromTimeline).toBe(3);
    expect(label.other).toEqual({ "SOMETHING NEW": "kept" });
  });

  it("keeps a start time in a named zone as text only", () => {
    const label = parseBackupLabel(REAL_LABEL.replace("UTC", "CET"));
    expect(label.startTime).toBe("2026-11-21 07:40:25 CET");
    expect(label.startedAt).toBeUndefined();
  });

  it("reads 'master' (before PostgreSQL 14) as primary", () => {
    expect(parseBackupLabel(REAL_LABEL.replace("BACKUP FROM: primary", "BACKUP FROM: master")).backupFrom).toBe("primary");
  });

  it.each([
    ["a missing line", REAL_LABEL.replace("START TIMELINE: 1\n", ""), "backup_label has no START TIMELINE line"],
    ["a garbled line", REAL_LABEL.replace("BACKUP METHOD: streamed", "BACKUP METHOD streamed"), "backup_label line 3 is not 'KEY: value'"],
    ["a repeated line", `${REAL_LABEL}LABEL: again\n`, "backup_label line 8 repeats LABEL"],
    ["a start location without its file", REAL_LABEL.replace(" (file 000000010000000000000002)", ""), "line 1: START WAL LOCATION '0/2000028' is not 'X/Y (file <segment>)'"],
    ["a bad checkpoint LSN", REAL_LABEL.replace("0/2000060", "0/2000060x"), "line 2: CHECKPOINT LOCATION '0/2000060x' is not an LSN"],
    ["an unknown BACKUP FROM", REAL_LABEL.replace("BACKUP FROM: primary", "BACKUP FROM: replica"), "BACKUP FROM 'replica' is neither primary nor standby"],
    ["timeline 0", REAL_LABEL.replace("START TIMELINE: 1", "START TIMELINE: 0"), "START TIMELINE '0' is not a timeline"],
  ])("refuses %s, naming it", (_label, text, message) => {
    const e = failure(() => parseBackupLabel(text));
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.message).toContain(message);
  });

  it("checks the start file against the LSN and timeline when the segment size is known", () => {
    // Prepare
    const renamed = REAL_LABEL.replace("(file 000000010000000000000002)", "(file 000000010000000000000003)");
    // Act
    const e = failure(() => parseBackupLabel(renamed, 16 * MiB));
    // Assess
    expect(e.message).toContain("file 000000010000000000000003 does not hold 0/2000028 on timeline 1 (expected 000000010000000000000002 with 16 MB segments)");
    expect(parseBackupLabel(renamed).startWalFile).toBe("000000010000000000000003");
  });
});

describe("checkBackupLabel", () => {
  it("accepts the backup_label the manifest's fields came from", () => {
    expect(() => checkBackupLabel(pgManifest(), REAL_LABEL)).not.toThrow();
  });

  it.each([
    ["another start", REAL_LABEL.replace("0/2000028", "0/2000030"), "postgres.startLsn", 'is "0/2000028", but backup_label says START WAL LOCATION: "0/2000030"'],
    ["another checkpoint", REAL_LABEL.replace("0/2000060", "0/2000070"), "postgres.checkpointLsn", "CHECKPOINT LOCATION"],
    ["another label", REAL_LABEL.replace("LABEL: walvault", "LABEL: other"), "postgres.label", "LABEL"],
    ["a standby backup", REAL_LABEL.replace("BACKUP FROM: primary", "BACKUP FROM: standby"), "postgres.backupFrom", 'backup_label says BACKUP FROM: "standby"'],
  ])("names the field that disagrees: %s", (_label, text, field, message) => {
    const e = failure(() => checkBackupLabel(pgManifest(), text));
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect((e as ManifestInvalidError).field).toBe(field);
    expect(e.message).toContain(message);
  });

  it("refuses a backup_label it cannot read", () => {
    const e = failure(() => checkBackupLabel(pgManifest(), "not a label"));
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect((e as ManifestInvalidError).field).toBe("backup_label");
    expect(e.cause).toBeInstanceOf(InvalidInputError);
  });
});

describe("manifest packs (the packs a push uploaded)", () => {
  const packName = (n: number): string => sha(`pack-${n}`);
  const withPacks = (packs: string[]): PostgresSnapshotManifest => ({ ...clone(pgManifest()), packs });

  it("are absent from a manifest built without them, and written sorted and unique by the builder", () => {
    // Prepare
    const b = pgBuilder();
    // Act
    const m = b.build({ databaseId: DB, snapshotId: SNAP_ID, kind: "postgres", startedAt: STARTED, finishedAt: FINISHED, postgres: pgFields(), packs: [packName(2), packName(1), packName(2)] });
    // Assess
    expect(pgManifest().packs).toBeUndefined();
    expect(m.packs).toEqual([packName(1), packName(2)].sort());
    expect(validateManifest(m).manifest.packs).toEqual(m.packs);
  });

  it.each<[string, string[], string, RegExp]>([
    ["a pack listed twice", [packName(1), packName(1)], "packs[1]", /listed twice/],
    ["a name that is not a SHA-256", ["pack-1"], "packs[0]", /not a lowercase hex SHA-256/],
    ["more packs than new chunks (4)", [1, 2, 3, 4, 5].map(packName), "packs", /5 pack\(s\), but only 4 chunk\(s\) are flagged new/],
    ["no pack while chunks are flagged new", [], "packs", /lists no pack, but 4 chunk\(s\) are flagged new/],
  ])("refuses %s, naming the field", (_what, packs, field, message) => {
    // Act
    const e = failure(() => validateManifest(withPacks(packs)));
    // Assess
    expect(e).toBeInstanceOf(ManifestInvalidError);
    expect((e as ManifestInvalidError).field).toBe(field);
    expect(e.message).toMatch(message);
  });
});

describe("fileSha256Of", () => {
  it("is the whole file's SHA-256 when given, else the empty SHA-256, the one chunk's name, or nothing for two or more chunks", () => {
    expect(fileSha256Of(3, sha("a"), sha("whole"))).toBe(sha("whole"));
    expect(fileSha256Of(0, undefined)).toBe(EMPTY_SHA256);
    expect(fileSha256Of(1, sha("a"))).toBe(sha("a"));
    expect(fileSha256Of(2, sha("a"))).toBeUndefined();
  });
});
