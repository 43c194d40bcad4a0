import { describe, expect, it } from "vitest";
import { InvalidInputError, ManifestInvalidError, UnsafePathError } from "../../core/errors.js";
import { snapshotPageKey } from "../../core/keys.js";
import {
  INLINE_PAGES_BYTES,
  MAX_PAGE_BYTES,
  ManifestPageWriter,
  PAGE_CHUNKS,
  compareTreePaths,
  finishPagedValidation,
  inlinePageBytes,
  inlinePageRefs,
  manifestFormatOf,
  pageManifest,
  pagedHeaderOf,
  parsePage,
  serializePagedHeader,
  startPagedValidation,
  validatePage,
  validatePagedHeader,
  type PageEntry,
  type PagedManifestHeader,
  type PagedValidationState,
  type WrittenPage,
} from "../../core/manifest-pages.js";
import { sha256Hex } from "../../core/hash.js";
import { SnapshotBuilder, fixedBlocksDescriptor, type FixedBlocksDescriptor, type SnapshotManifest } from "../../core/snapshot.js";
import { MTIME, buildGeneric, chunk, genericManifest, joinParts, pgManifest, sha } from "../support/manifests.js";

const SMALL = { chunks: 2, bytes: 1024 * 1024 };

interface Paged {
  header: PagedManifestHeader;
  texts: string[];
}

function paged(m: SnapshotManifest, limits = SMALL): Paged {
  const { header, pages } = pageManifest(m, limits);
  return { header, texts: pages.map((p) => p.text) };
}

const bytesOf = (text: string): Buffer => Buffer.from(text, "utf8");

/** Validates every page in order, carrying the state through JSON (as a workflow would), then finishes; returns the entries. */
function validateAll(p: Paged): PageEntry[] {
  const header = validatePagedHeader(JSON.parse(JSON.stringify(p.header)));
  let state: PagedValidationState = startPagedValidation();
  const out: PageEntry[] = [];
  p.texts.forEach((text) => {
    const v = validatePage(header, state, bytesOf(text));
    out.push(...v.page.entries);
    state = JSON.parse(JSON.stringify(v.state)) as PagedValidationState;
  });
  finishPagedValidation(header, state);
  return out;
}

/** Page `index` changed by `mutate` and signed again, so that only the rule under test can refuse it. */
function resign(p: Paged, index: number, mutate: (page: { entries: Array<Record<string, unknown>>; [k: string]: unknown }) => void): Paged {
  const page = JSON.parse(p.texts[index]!) as { entries: Array<Record<string, unknown>> };
  mutate(page);
  const text = `${JSON.stringify(page)}\n`;
  const chunks = page.entries.reduce((n, e) => n + (Array.isArray(e.chunks) ? e.chunks.length : 0), 0);
  const header = structuredClone(p.header);
  const delta = chunks - header.pages[index]!.chunks;
  header.pages[index] = { sha256: sha256Hex(bytesOf(text)), bytes: bytesOf(text).byteLength, entries: page.entries.length, chunks };
  header.totals.chunks += delta;
  const texts = [...p.texts];
  texts[index] = text;
  return { header, texts };
}

/** `p` with chunk reference `j` of the first file of page `page` changed by `change`, the page signed again. */
function withChunk(p: Paged, page: number, j: number, change: Record<string, unknown>): Paged {
  return resign(p, page, (pg) => {
    const f = pg.entries.find((e) => Array.isArray(e.chunks))!;
    Object.assign((f.chunks as Array<Record<string, unknown>>)[j]!, change);
  });
}

const genericOf = (b: SnapshotBuilder, blocks?: FixedBlocksDescriptor): SnapshotManifest => buildGeneric(b, { streams: [{ id: "wal", dir: "wal", lastSegno: 0 }] }, blocks);

function failure(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure");
}

describe("compareTreePaths", () => {
  it("orders a directory's whole subtree right after it, before its siblings that extend its name", () => {
    // Prepare
    const paths = ["a-c", "a/b/c", "a", "a.d", "a/b", "b", "a/b-x"];

    // Act
    const sorted = [...paths].sort(compareTreePaths);

    // Assess
    expect(sorted).toEqual(["a", "a/b", "a/b/c", "a/b-x", "a-c", "a.d", "b"]);
  });
});

describe("ManifestPageWriter and pageManifest", () => {
  it("cuts a manifest into pages of at most the chunk limit, continuing a long file on the next page with part numbers", () => {
    // Prepare
    const m = pgManifest();

    // Act
    const p = paged(m);

    // Assess: base/1/1259 (3 chunks) is split; every page holds at most 2 chunk references
    expect(p.header.pages.every((r) => r.chunks <= 2)).toBe(true);
    const entries = p.texts.flatMap((t) => (JSON.parse(t) as { entries: PageEntry[] }).entries);
    const parts = entries.filter((e) => e.path === "base/1/1259").map((e) => (e.type === "file" ? e.part : "?"));
    expect(parts).toEqual([undefined, 1]);
    expect(p.header.pages.map((r) => r.chunks).reduce((a, b) => a + b, 0)).toBe(m.totals.chunks);
  });

  it("binds every page to the header by its SHA-256 and length", () => {
    // Act
    const p = paged(pgManifest());

    // Assess
    p.texts.forEach((t, i) => {
      expect(p.header.pages[i]!.sha256).toBe(sha256Hex(bytesOf(t)));
      expect(p.header.pages[i]!.bytes).toBe(bytesOf(t).byteLength);
    });
  });

  it("writes pages that validate and hold exactly the manifest's entries, in tree order", () => {
    // Prepare
    const m = pgManifest();

    // Act
    const entries = validateAll(paged(m));

    // Assess
    expect(joinParts(entries)).toEqual([...m.files].sort((a, b) => compareTreePaths(a.path, b.path)));
  });

  it("closes a page once its entries reach the byte limit", () => {
    // Act
    const p = paged(pgManifest(), { chunks: PAGE_CHUNKS, bytes: 400 });

    // Assess
    expect(p.header.pages.length).toBeGreaterThan(2);
    expect(validateAll(p).length).toBe(pgManifest().files.length);
  });

  it("validates a tree whose names sort differently as strings than as paths", () => {
    // Prepare: as strings "a-c" < "a/b"; in tree order a/b (inside a) comes first
    const b = new SnapshotBuilder();
    for (const d of ["a", "a/b", "a-c"]) b.addDirectory(d, 0o700, MTIME);
    const m = genericOf(b);

    // Act
    const entries = validateAll(paged(m));

    // Assess
    expect(entries.map((e) => e.path)).toEqual(["a", "a/b", "a-c"]);
  });

  it("carries a validation state of a few hundred bytes whatever the snapshot's size", () => {
    // Prepare: 20,000 chunk references in 100 files
    const b = new SnapshotBuilder();
    b.addDirectory("data", 0o700, MTIME);
    for (let f = 0; f < 100; f++) {
      const h = b.startFile(`data/${String(f).padStart(4, "0")}`, 0o600, MTIME);
      for (let c = 0; c < 200; c++) h.addChunk(chunk(`${f}/${c}`, 100, 100, true, "none"));
      h.finish(sha(`file ${f}`));
    }
    const p = paged(genericOf(b), { chunks: 1000, bytes: 1024 * 1024 });
    const header = validatePagedHeader(p.header);

    // Act
    let state = startPagedValidation();
    let largest = 0;
    for (const text of p.texts) {
      state = validatePage(header, state, bytesOf(text)).state;
      largest = Math.max(largest, JSON.stringify(state).length);
    }
    finishPagedValidation(header, state);

    // Assess
    expect(p.header.pages.length).toBe(20);
    expect(largest).toBeLessThan(1500);
  });

  it("refuses entries out of tree order", () => {
    // Prepare
    const w = new ManifestPageWriter({ databaseId: "orders", snapshotId: "20261121T073000Z-ab12cd" });
    w.add({ path: "a-c", type: "directory", mode: 0o700, mtime: MTIME.toISOString() });

    // Act
    const err = failure(() => w.add({ path: "a/b", type: "directory", mode: 0o700, mtime: MTIME.toISOString() }));

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err.message).toContain("tree order");
  });

  it("writes no page for a manifest without entries", () => {
    // Act
    const pages: WrittenPage[] = new ManifestPageWriter({ databaseId: "orders", snapshotId: "20261121T073000Z-ab12cd" }).finish();

    // Assess
    expect(pages).toEqual([]);
  });

  it("tells format 2 headers from format 1 manifests", () => {
    // Prepare
    const m = pgManifest();

    // Act + Assess
    expect(manifestFormatOf(paged(m).header)).toBe(2);
    expect(manifestFormatOf(m)).toBe(1);
  });
});

describe("ManifestPageWriter fed in runs", () => {
  /** One file of `n` distinct new chunks of 100 bytes (20 stored) under data/. */
  function oneFile(n: number): SnapshotManifest {
    const b = new SnapshotBuilder();
    b.addDirectory("data", 0o700, MTIME);
    const f = b.startFile("data/f", 0o600, MTIME);
    for (let i = 0; i < n; i++) f.addChunk(chunk(`c${i}`, 100, 20, true));
    f.finish(sha("whole"));
    return genericOf(b);
  }

  it("writes a file given in runs (startFile, addChunks...) exactly as the same file given whole", () => {
    // Prepare
    const m = oneFile(7);
    const limits = { chunks: 3, bytes: 1024 * 1024 };
    const whole = pageManifest(m, limits).pages.map((p) => p.text);
    const file = m.files[1]!;
    if (file.type !== "file") throw new Error("fixture");

    // Act
    const writer = new ManifestPageWriter(m, limits);
    const texts: string[] = [];
    const keep = (pages: WrittenPage[]): void => void texts.push(...pages.map((p) => p.text));
    keep(writer.add(m.files[0]!));
    keep(writer.startFile({ ...file, chunks: [] }));
    for (let i = 0; i < file.chunks.length; i += 2) keep(writer.addChunks(file.chunks.slice(i, i + 2)));
    keep(writer.finish());

    // Assess
    expect(texts).toEqual(whole);
    expect(texts.length).toBe(3);
    expect(writer.totals).toEqual({ files: 1, directories: 1, symlinks: 0, logicalBytes: 700, chunks: 7, newChunks: 7, newStoredBytes: 140 });
  });

  it("keeps one `new` flag per chunk per page: a new chunk referenced on three pages is flagged on each, and the pages validate with newChunks above uniqueChunks", () => {
    // Prepare: z (new) six times, y (new) once; every reference flagged, 2 references a page.
    const m = oneFile(2);
    const z = { sha256: sha("z"), size: 100, storedSize: 20, codec: "zstd" as const, new: true as const };
    const y = { sha256: sha("y"), size: 100, storedSize: 30, codec: "zstd" as const, new: true as const };
    const writer = new ManifestPageWriter(m, { chunks: 2, bytes: 1024 * 1024 });
    const pages: WrittenPage[] = [];
    pages.push(...writer.add(m.files[0]!));
    pages.push(...writer.startFile({ path: "data/f", type: "file", mode: 0o600, mtime: MTIME.toISOString(), size: 700, sha256: sha("whole"), chunks: [] }));
    pages.push(...writer.addChunks([z, z, z, y, z, z, z]));

    // Act
    pages.push(...writer.finish());

    // Assess
    const flags = pages.map((p) => {
      const entries = (JSON.parse(p.text) as { entries: PageEntry[] }).entries;
      return entries.flatMap((e) => (e.type === "file" ? e.chunks.map((c) => (c.new === true ? (c.sha256 === z.sha256 ? "Z" : "Y") : c.sha256 === z.sha256 ? "z" : "y")) : []));
    });
    expect(flags).toEqual([["Z", "z"], ["Z", "Y"], ["Z", "z"], ["Z"]]);
    expect(writer.totals).toMatchObject({ chunks: 7, newChunks: 5, newStoredBytes: 4 * 20 + 30 });
    const header = pagedHeaderOf(m, pages.map((p) => p.ref));
    header.totals = { ...header.totals, ...writer.totals, uniqueChunks: 2, storedBytes: 50 };
    const entries = validateAll({ header, texts: pages.map((p) => p.text) });
    expect(entries.filter((e) => e.path === "data/f").map((e) => (e.type === "file" ? e.part : undefined))).toEqual([undefined, 1, 2, 3]);
  });
});

describe("a new chunk's pack", () => {
  /** data/f of seven references, 2 a page: z (new, in pack 1) six times around y (new, in pack 0); the header lists two packs. */
  function packedPages(): Paged {
    const b = new SnapshotBuilder();
    b.addDirectory("data", 0o700, MTIME);
    const m: SnapshotManifest = { ...genericOf(b), packs: [sha("p0"), sha("p1")] };
    const z = { sha256: sha("z"), size: 100, storedSize: 20, codec: "zstd" as const, new: true as const, pack: 1 };
    const y = { sha256: sha("y"), size: 100, storedSize: 30, codec: "zstd" as const, new: true as const, pack: 0 };
    const writer = new ManifestPageWriter(m, { chunks: 2, bytes: 1024 * 1024 });
    const pages: WrittenPage[] = [...writer.add(m.files[0]!)];
    pages.push(...writer.startFile({ path: "data/f", type: "file", mode: 0o600, mtime: MTIME.toISOString(), size: 700, sha256: sha("whole"), chunks: [] }));
    pages.push(...writer.addChunks([z, z, z, y, z, z, z]), ...writer.finish());
    const header = pagedHeaderOf(m, pages.map((p) => p.ref));
    header.totals = { ...header.totals, ...writer.totals, files: 1, logicalBytes: 700, uniqueChunks: 2, storedBytes: 50 };
    return { header, texts: pages.map((p) => p.text) };
  }
  const refs = (p: Paged): string[][] =>
    p.texts.map((t) =>
      (JSON.parse(t) as { entries: PageEntry[] }).entries.flatMap((e) => (e.type === "file" ? e.chunks.map((c) => `${c.sha256 === sha("z") ? "z" : "y"}${c.new ? "!" : ""}${c.pack ?? ""}`) : [])),
    );

  it("is written with the flag, on a page's first reference only, and the pages validate", () => {
    // Act
    const p = packedPages();
    // Assess
    expect(refs(p)).toEqual([["z!1", "z"], ["z!1", "y!0"], ["z!1", "z"], ["z!1"]]);
    expect(() => validateAll(p)).not.toThrow();
    expect(parsePage(p.header, 1, bytesOf(p.texts[1]!)).chunks.map((c) => c.pack)).toEqual([1, 0]);
  });

  it("is refused on a reference not flagged new, past the manifest's packs, in a manifest without packs, or differing between references", () => {
    // Prepare
    const p = packedPages();
    const setChunk = (page: number, j: number, change: Record<string, unknown>): Paged => withChunk(p, page, j, change);
    const noPacks = structuredClone(p);
    delete noPacks.header.packs;
    // Act
    const unflagged = failure(() => validateAll(setChunk(0, 1, { pack: 1 })));
    const past = failure(() => validateAll(setChunk(1, 1, { pack: 2 })));
    const without = failure(() => validateAll(noPacks));
    const differing = failure(() => {
      const q = setChunk(0, 1, { new: true, pack: 0 });
      parsePage(q.header, 0, bytesOf(q.texts[0]!));
    });
    // Assess
    expect(unflagged).toBeInstanceOf(ManifestInvalidError);
    expect(unflagged.message).toMatch(/names a pack but is not flagged new/);
    expect(past.message).toMatch(/names pack 2, but the manifest lists 2 pack\(s\)/);
    expect(without.message).toMatch(/names pack 1, but the manifest lists no packs/);
    expect(differing.message).toMatch(/is in pack 0 here but in pack 1 elsewhere/);
  });
});

describe("a reused chunk's pack", () => {
  /** data/f of five references, 2 a page: r (reused, found in reused pack 1) four times around n (new, in pack 0). */
  function reusedPages(): Paged {
    const b = new SnapshotBuilder();
    b.addDirectory("data", 0o700, MTIME);
    const m: SnapshotManifest = { ...genericOf(b), packs: [sha("p0")], reusedPacks: [sha("q0"), sha("q1")] };
    const r = { sha256: sha("r"), size: 100, storedSize: 20, codec: "zstd" as const, reusedPack: 1 };
    const n = { sha256: sha("n"), size: 100, storedSize: 30, codec: "zstd" as const, new: true as const, pack: 0 };
    const writer = new ManifestPageWriter(m, { chunks: 2, bytes: 1024 * 1024 });
    const pages: WrittenPage[] = [...writer.add(m.files[0]!)];
    pages.push(...writer.startFile({ path: "data/f", type: "file", mode: 0o600, mtime: MTIME.toISOString(), size: 500, sha256: sha("whole"), chunks: [] }));
    pages.push(...writer.addChunks([r, r, n, r, r]), ...writer.finish());
    const header = pagedHeaderOf(m, pages.map((p) => p.ref));
    header.totals = { ...header.totals, ...writer.totals, files: 1, logicalBytes: 500, uniqueChunks: 2, storedBytes: 50 };
    return { header, texts: pages.map((p) => p.text) };
  }

  it("is written on every reference of the chunk, and the pages validate and read it back", () => {
    // Act
    const p = reusedPages();
    // Assess
    const refs = p.texts.map((t) =>
      (JSON.parse(t) as { entries: PageEntry[] }).entries.flatMap((e) => (e.type === "file" ? e.chunks.map((c) => `${c.sha256 === sha("r") ? "r" : "n"}${c.reusedPack ?? ""}`) : [])),
    );
    expect(refs).toEqual([["r1", "r1"], ["n", "r1"], ["r1"]]);
    expect(() => validateAll(p)).not.toThrow();
    expect(parsePage(p.header, 1, bytesOf(p.texts[1]!)).chunks.map((c) => [c.sha256 === sha("r") ? "r" : "n", c.reusedPack, c.pack])).toEqual([
      ["n", undefined, 0],
      ["r", 1, undefined],
    ]);
  });

  it("is refused on a chunk flagged new, past the manifest's reused packs, in a manifest without them, differing between references, or listed twice", () => {
    // Prepare
    const p = reusedPages();
    const setChunk = (page: number, j: number, change: Record<string, unknown>): Paged => withChunk(p, page, j, change);
    const without = structuredClone(p);
    delete without.header.reusedPacks;
    const twice = structuredClone(p);
    twice.header.reusedPacks = [sha("q0"), sha("q0")];
    // Act
    const flaggedNew = failure(() => validateAll(setChunk(1, 0, { reusedPack: 0 })));
    const past = failure(() => validateAll(setChunk(2, 0, { reusedPack: 2 })));
    const none = failure(() => validateAll(without));
    const differing = failure(() => {
      const q = setChunk(0, 1, { reusedPack: 0 });
      parsePage(q.header, 0, bytesOf(q.texts[0]!));
    });
    const listedTwice = failure(() => validateAll(twice));
    // Assess
    expect(flaggedNew).toBeInstanceOf(ManifestInvalidError);
    expect(flaggedNew.message).toMatch(/is flagged new but names a reused pack/);
    expect(past.message).toMatch(/names reused pack 2, but the manifest lists 2 reused pack\(s\)/);
    expect(none.message).toMatch(/names reused pack 1, but the manifest lists no reused packs/);
    expect(differing.message).toMatch(/is in reused pack 0 here but in reused pack 1 elsewhere/);
    expect(listedTwice.message).toMatch(/reusedPacks\[1\]: pack .* is listed twice/);
  });
});

describe("validatePagedHeader", () => {
  it("refuses a page reference of more chunks than a page may hold", () => {
    // Prepare
    const p = paged(pgManifest());
    const header = structuredClone(p.header);
    header.pages[0]!.chunks = PAGE_CHUNKS + 1;

    // Act
    const err = failure(() => validatePagedHeader(header));

    // Assess
    expect(err).toBeInstanceOf(ManifestInvalidError);
    expect(err.message).toContain("pages[0].chunks");
  });

  it("refuses page references whose chunks do not add up to totals.chunks", () => {
    // Prepare
    const header = structuredClone(paged(pgManifest()).header);
    header.totals.chunks += 1;

    // Act
    const err = failure(() => validatePagedHeader(header));

    // Assess
    expect(err.message).toMatch(/pages: reference \d+ chunk\(s\), but totals.chunks states/);
  });

  it("refuses a page larger than a reader accepts", () => {
    // Prepare
    const header = structuredClone(paged(pgManifest()).header);
    header.pages[0]!.bytes = MAX_PAGE_BYTES + 1;

    // Act
    const err = failure(() => validatePagedHeader(header));

    // Assess
    expect(err.message).toContain("pages[0].bytes");
  });

  it("accepts pages carried in the header, their text as long as their references say", () => {
    // Prepare
    const { header, pages } = pageManifest(pgManifest(), SMALL);

    // Act
    const h = validatePagedHeader(JSON.parse(serializePagedHeader({ ...header, pages: inlinePageRefs(pages) })));

    // Assess: each reference keeps its digest and length, and carries the page's text
    expect(h.pages.map((r) => r.text)).toEqual(pages.map((p) => p.text));
    expect(h.pages.map((r) => inlinePageBytes(r)!.length)).toEqual(pages.map((p) => p.ref.bytes));
    expect(h.pages.map((r) => sha256Hex(inlinePageBytes(r)!))).toEqual(pages.map((p) => p.ref.sha256));
  });

  it("refuses a page carried in the header whose text is not as long as its reference binds", () => {
    // Prepare
    const { header, pages } = pageManifest(pgManifest(), SMALL);
    const refs = inlinePageRefs(pages);
    refs[1] = { ...refs[1]!, text: `${refs[1]!.text!} ` };

    // Act
    const err = failure(() => validatePagedHeader({ ...header, pages: refs }));

    // Assess
    expect(err).toBeInstanceOf(ManifestInvalidError);
    expect(err.message).toBe(`snapshot manifest pages[1].text: has ${pages[1]!.ref.bytes + 1} bytes, but the reference binds ${pages[1]!.ref.bytes}`);
  });

  it("refuses more than INLINE_PAGES_BYTES of pages in the header", () => {
    // Prepare: references that claim (and carry) a page of MAX_PAGE_BYTES each, two more than fit
    const { header, pages } = pageManifest(pgManifest(), SMALL);
    const big = "x".repeat(MAX_PAGE_BYTES);
    const count = INLINE_PAGES_BYTES / MAX_PAGE_BYTES + 1;
    const refs = Array.from({ length: count }, (_, i) => ({ ...pages[0]!.ref, chunks: i === 0 ? header.totals.chunks : 0, bytes: MAX_PAGE_BYTES, text: big }));

    // Act
    const err = failure(() => validatePagedHeader({ ...header, pages: refs }));

    // Assess
    expect(err).toBeInstanceOf(ManifestInvalidError);
    expect(err.message).toBe(`snapshot manifest pages: carry ${count * MAX_PAGE_BYTES} bytes of pages in the header, more than the ${INLINE_PAGES_BYTES} allowed`);
  });

  it("checks the header as format 1 does (ids against the key)", () => {
    // Act
    const err = failure(() => validatePagedHeader(paged(pgManifest()).header, { snapshotId: "20261121T073000Z-000000" }));

    // Assess
    expect(err.message).toContain("snapshotId");
  });
});

describe("validatePage", () => {
  it("refuses a tampered page: its SHA-256 is not the one the header binds", () => {
    // Prepare
    const p = paged(pgManifest());
    const header = validatePagedHeader(p.header);
    const tampered = p.texts[0]!.replace('"mode":384', '"mode":511');

    // Act
    const err = failure(() => validatePage(header, startPagedValidation(), bytesOf(tampered)));

    // Assess
    expect(err).toBeInstanceOf(ManifestInvalidError);
    expect(err.message).toMatch(/^snapshot manifest pages\[0\]\.sha256: the page object's SHA-256 is [0-9a-f]{64}, but the manifest binds [0-9a-f]{64}$/);
  });

  it("refuses a signed page that claims another page's place", () => {
    // Prepare
    const p = resign(paged(pgManifest()), 1, (page) => void (page.page = 0));

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain("says it is page 0");
  });

  it("names the page and entry of a schema problem", () => {
    // Prepare
    const p = resign(paged(pgManifest()), 1, (page) => void (page.entries[0]!.mode = -1));

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toMatch(/^snapshot manifest pages\[1\]\.entries\[0\]\.mode: /);
  });

  it("refuses a path repeated on the next page", () => {
    // Prepare: the first entry of page 1 gets the path of the last entry of page 0
    const base = paged(pgManifest(), { chunks: PAGE_CHUNKS, bytes: 400 });
    const last = (JSON.parse(base.texts[0]!) as { entries: PageEntry[] }).entries.at(-1)!;
    const p = resign(base, 1, (page) => {
      page.entries[0] = { ...last };
    });

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain(`${JSON.stringify(last.path)} is listed twice`);
  });

  it("refuses an unsafe path on a page as an unsafe path, naming the page and entry", () => {
    // Prepare
    const p = resign(paged(pgManifest()), 0, (page) => {
      page.entries.unshift({ path: "../escape", type: "directory", mode: 0o700, mtime: MTIME.toISOString() });
    });

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err).toBeInstanceOf(UnsafePathError);
    expect(err.message).toMatch(/^snapshot manifest pages\[0\]\.entries\[0\]\.path: path "\.\.\/escape" contains a '\.' or '\.\.' segment/);
  });

  it("refuses an entry whose parent directory is not in the snapshot", () => {
    // Prepare
    const p = resign(paged(pgManifest()), 0, (page) => {
      page.entries.unshift({ path: "a/b", type: "directory", mode: 0o700, mtime: MTIME.toISOString() });
    });

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain('the parent directory of "a/b", "a", is not in the snapshot');
  });

  it("refuses an entry under a symlink as an unsafe path", () => {
    // Prepare: pg_wal is a symlink; put a file under it right after it
    const m = pgManifest();
    const p = resign(paged(m, { chunks: PAGE_CHUNKS, bytes: 1024 * 1024 }), 0, (page) => {
      const i = page.entries.findIndex((e) => e.path === "pg_wal");
      page.entries.splice(i + 1, 0, { path: "pg_wal/x", type: "directory", mode: 0o700, mtime: MTIME.toISOString() });
    });

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err).toBeInstanceOf(UnsafePathError);
    expect(err.message).toContain('lies under the symlink "pg_wal"');
  });

  it("refuses a continuation that does not follow its file's previous part", () => {
    // Prepare: page 2 starts with base/1/1259 part 1; call it part 2
    const base = paged(pgManifest());
    const index = base.texts.findIndex((t) => t.includes('"part":1'));
    const p = resign(base, index, (page) => void (page.entries[0]!.part = 2));

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain('"base/1/1259" part 2 does not continue the last entry of the page before it');
  });

  it("checks a split file's size against all of its parts", () => {
    // Prepare: drop the last chunk of the continuation
    const base = paged(pgManifest());
    const index = base.texts.findIndex((t) => t.includes('"part":1'));
    const p = resign(base, index, (page) => void (page.entries[0]!.chunks as unknown[]).pop());

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain('the chunks of "base/1/1259" add up to');
  });

  it("refuses a short block that is not a file's last, across a page boundary", () => {
    // Prepare: a file in 8 KiB blocks whose second block (the last on page 0) is short
    const b = new SnapshotBuilder();
    const f = b.startFile("rel", 0o600, MTIME, { chunking: "blocks" });
    f.addChunk(chunk("block-0", 8192, 100, true));
    f.addChunk(chunk("block-1", 8192, 100, true));
    f.addChunk(chunk("block-2", 10, 10, true));
    f.finish(sha("rel"));
    const m = genericOf(b, fixedBlocksDescriptor(8192));
    const p = resign(paged(m), 0, (page) => {
      const chunks = page.entries[0]!.chunks as Array<{ size: number }>;
      chunks[1]!.size = 4096;
    });

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain('"rel" is cut in 8192-byte blocks, but chunk 1 has 4096 bytes (only the last may be shorter)');
  });
});

describe("finishPagedValidation", () => {
  it("refuses totals the pages do not add up to", () => {
    // Prepare
    const p = paged(pgManifest());
    p.header.totals.files += 1;

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toMatch(/^snapshot manifest totals.files: states \d+, but the files add up to \d+$/);
  });

  it("refuses a postgres snapshot without backup_label", () => {
    // Prepare
    const p = resign(paged(pgManifest(), { chunks: PAGE_CHUNKS, bytes: 1024 * 1024 }), 0, (page) => {
      page.entries = page.entries.filter((e) => e.path !== "backup_label");
    });
    p.header.totals.files -= 1;
    p.header.totals.logicalBytes = pgManifest().totals.logicalBytes - (pgManifest().files.find((e) => e.path === "backup_label") as { size: number }).size;
    p.header.totals.newChunks -= 1;
    p.header.totals.newStoredBytes -= 220;

    // Act
    const err = failure(() => validateAll(p));

    // Assess
    expect(err.message).toContain("a postgres snapshot needs the file backup_label, which is missing");
  });

  it("refuses to finish before the last page", () => {
    // Prepare
    const p = paged(genericManifest());
    const header = validatePagedHeader(p.header);

    // Act
    const err = failure(() => finishPagedValidation(header, startPagedValidation()));

    // Assess
    expect(err.message).toContain("validation stopped after 0 of 1 page(s)");
  });
});

describe("parsePage", () => {
  it("returns a verified page's distinct chunks with their new flags", () => {
    // Prepare: the fixture's base/1/1259 references a, b, a
    const p = paged(pgManifest(), { chunks: PAGE_CHUNKS, bytes: 1024 * 1024 });
    const header = validatePagedHeader(p.header);

    // Act
    const { chunks } = parsePage(header, 0, bytesOf(p.texts[0]!));

    // Assess
    expect(chunks.filter((c) => c.sha256 === sha("a"))).toEqual([{ sha256: sha("a"), size: 4 * 1024 * 1024, storedSize: 1024 * 1024, codec: "zstd", new: true }]);
    expect(chunks.length).toBe(pgManifest().totals.uniqueChunks);
  });
});

describe("snapshotPageKey", () => {
  it("puts pages beside the manifest, six digits each", () => {
    // Act + Assess
    expect(snapshotPageKey("db/orders/snapshots/20261121T073000Z-ab12cd/manifest.json", 42)).toBe("db/orders/snapshots/20261121T073000Z-ab12cd/pages/000042.json");
    expect(() => snapshotPageKey("db/orders/snapshots/x/other.json", 0)).toThrow(InvalidInputError);
  });
});
