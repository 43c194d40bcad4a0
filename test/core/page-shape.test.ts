/**
 * core/page-shape.ts against the schema it stands in for: every page the
 * hand-written check accepts, manifestPageSchema accepts unchanged (else a
 * page the schema refuses would pass ingest or restore); and it accepts the
 * pages walvault writes (else it saves nothing).
 */
import { describe, expect, it } from "vitest";
import { manifestPageSchema, PAGED_FORMAT_VERSION } from "../../core/manifest-pages.js";
import { isPageShape } from "../../core/page-shape.js";

const SHA = (c: string): string => c.repeat(64);

/** A page with every kind of entry and every optional field. */
function validPage(): Record<string, unknown> {
  return {
    formatVersion: PAGED_FORMAT_VERSION,
    databaseId: "pg-main",
    snapshotId: "20261121T073000Z-ab12cd",
    page: 3,
    entries: [
      { path: "base", type: "directory", mode: 0o700, mtime: "2026-11-21T07:30:00.123Z" },
      {
        path: "base/1/1259",
        type: "file",
        mode: 0o600,
        mtime: "2026-11-21T07:30:00Z",
        size: 393216,
        sha256: SHA("a"),
        chunking: "blocks",
        chunks: [
          { sha256: SHA("b"), size: 131072, storedSize: 4096, codec: "zstd", new: true, pack: 0 },
          { sha256: SHA("c"), size: 131072, storedSize: 131100, codec: "none" },
          { sha256: SHA("e"), size: 131072, storedSize: 5000, codec: "zstd", reusedPack: 1 },
        ],
      },
      { path: "big", type: "file", mode: 0o644, mtime: "2024-02-29T23:59:59.5Z", size: 0, sha256: SHA("d"), chunks: [], part: 2 },
      { path: "link", type: "symlink", mtime: "2026-11-21T07:30:00Z", linkTarget: "../elsewhere/x" },
    ],
  };
}

const zodAccepts = (v: unknown): boolean => manifestPageSchema.safeParse(v).success;

/** Sets `value` at `path` of a copy (undefined: deletes the key); the copy unchanged when `path` no longer leads anywhere. */
function withValue(page: Record<string, unknown>, path: (string | number)[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(page);
  let o = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) {
    const next = o[k];
    if (typeof next !== "object" || next === null) return copy; // a place an earlier change removed: nothing to set
    o = next as Record<string | number, unknown>;
  }
  const last = path.at(-1)!;
  if (value === undefined) delete o[last];
  else o[last] = value;
  return copy;
}

describe("isPageShape", () => {
  it("accepts the pages walvault writes, as the schema does, unchanged", () => {
    const page = validPage();
    expect(isPageShape(page, PAGED_FORMAT_VERSION)).toBe(true);
    const parsed = manifestPageSchema.safeParse(page);
    expect(parsed.success && parsed.data).toEqual(page);
  });

  it("accepts, as the schema does, a file without sha256 (a push without whole-file hashes)", () => {
    const page = withValue(validPage(), ["entries", 1, "sha256"], undefined);
    expect(zodAccepts(page)).toBe(true);
    expect(isPageShape(page, PAGED_FORMAT_VERSION)).toBe(true);
  });

  it("refuses, as the schema does, each field out of its schema", () => {
    const cases: [string, (string | number)[], unknown][] = [
      ["another format", ["formatVersion"], 1],
      ["a bad database id", ["databaseId"], "PG_Main"],
      ["a snapshot id on a day that does not exist", ["snapshotId"], "20261131T073000Z-ab12cd"],
      ["a negative page", ["page"], -1],
      ["a fractional page", ["page"], 1.5],
      ["no entries", ["entries"], []],
      ["an extra page field", ["extra"], 1],
      ["an unknown entry type", ["entries", 0, "type"], "fifo"],
      ["a '..' path", ["entries", 1, "path"], "base/../x"],
      ["an absolute path", ["entries", 0, "path"], "/etc"],
      ["a time with an offset", ["entries", 1, "mtime"], "2026-11-21T07:30:00+01:00"],
      ["February 30th", ["entries", 1, "mtime"], "2026-02-30T07:30:00Z"],
      ["a mode past 07777", ["entries", 1, "mode"], 0o10000],
      ["an upper-case SHA-256", ["entries", 1, "sha256"], SHA("A")],
      ["a null SHA-256", ["entries", 1, "sha256"], null],
      ["other chunking", ["entries", 1, "chunking"], "cdc"],
      ["part 0", ["entries", 2, "part"], 0],
      ["an extra file field", ["entries", 2, "owner"], "root"],
      ["a directory with chunks", ["entries", 0, "chunks"], []],
      ["a symlink without a target", ["entries", 3, "linkTarget"], undefined],
      ["an empty symlink target", ["entries", 3, "linkTarget"], ""],
      ["a chunk of 0 bytes", ["entries", 1, "chunks", 0, "size"], 0],
      ["an unknown codec", ["entries", 1, "chunks", 0, "codec"], "lz4"],
      ["new: false", ["entries", 1, "chunks", 0, "new"], false],
      ["a negative pack", ["entries", 1, "chunks", 0, "pack"], -1],
      ["a fractional reused pack", ["entries", 1, "chunks", 2, "reusedPack"], 0.5],
      ["a reused pack given as text", ["entries", 1, "chunks", 2, "reusedPack"], "1"],
      ["an extra chunk field", ["entries", 1, "chunks", 1, "offset"], 7],
      ["a chunk without its stored size", ["entries", 1, "chunks", 1, "storedSize"], undefined],
      ["a size past 2^53", ["entries", 1, "size"], 2 ** 53],
      ["a file without chunks", ["entries", 2, "chunks"], undefined],
    ];
    for (const [what, path, value] of cases) {
      const page = withValue(validPage(), path, value);
      expect(zodAccepts(page), what).toBe(false);
      expect(isPageShape(page, PAGED_FORMAT_VERSION), what).toBe(false);
    }
    // A "__proto__" key, as JSON.parse makes it (an own property): an unknown key like any other.
    const text = JSON.stringify(validPage()).replace('"type":"directory"', '"type":"directory","__proto__":{"x":1}');
    const proto = JSON.parse(text) as unknown;
    expect(zodAccepts(proto)).toBe(false);
    expect(isPageShape(proto, PAGED_FORMAT_VERSION)).toBe(false);
  });

  it("over 5,000 random corruptions, accepts nothing the schema refuses (and still accepts most of what it accepts)", () => {
    // Prepare: every place in the page, and values that are wrong in one place or another
    const places: (string | number)[][] = [];
    const walk = (v: unknown, path: (string | number)[]): void => {
      if (path.length > 0) places.push(path);
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
      else if (typeof v === "object" && v !== null) for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], [...path, k]);
    };
    walk(validPage(), []);
    const values: unknown[] = [undefined, null, true, false, 0, -0, 1, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, "", "x", "a/b", "a//b", "./a", "a\u0001", "blocks", "zstd", "file", "directory", "symlink", [], [{}], {}, SHA("f"), "2026-11-21T07:30:00Z", "2026-11-21T24:00:00Z", "20261121T073000Z-ab12cd", 2, "__proto__"];
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let schemaYes = 0;
    let bothYes = 0;
    // Act
    for (let i = 0; i < 5_000; i++) {
      let page = validPage();
      for (let k = 0, n = 1 + rand(2); k < n; k++) {
        const place = places[rand(places.length)]!;
        page = withValue(page, rand(10) === 0 ? [...place.slice(0, -1), `extra${k}`] : place, values[rand(values.length)]);
      }
      const fast = isPageShape(page, PAGED_FORMAT_VERSION);
      const schema = zodAccepts(page);
      // Assess
      if (fast) expect(schema, JSON.stringify(page)).toBe(true);
      if (schema) schemaYes++;
      if (fast && schema) bothYes++;
    }
    expect(schemaYes).toBeGreaterThan(100);
    expect(bothYes / schemaYes).toBeGreaterThan(0.9);
  });
});
