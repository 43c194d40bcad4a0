/**
 * agent/manifest-spool.ts: entries spooled out of tree order, files
 * interleaved and longer than a spooled run, come back as format-2 pages in
 * tree order that the ingest validator accepts, each chunk reference
 * completed by the resolver; the spool holds no entry in memory and removes
 * its temporary directory.
 */
import { existsSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ManifestSpool, SPOOL_RUN } from "../../agent/manifest-spool.js";
import { InvalidInputError } from "../../core/errors.js";
import {
  ManifestPageWriter,
  finishPagedValidation,
  pagedHeaderOf,
  startPagedValidation,
  validatePage,
  validatePagedHeader,
  type PageEntry,
  type WrittenPage,
} from "../../core/manifest-pages.js";
import { directoryEntryOf, fileEntryOf, symlinkEntryOf, type ChunkRecord } from "../../core/snapshot.js";
import { tempDir } from "../support/harness.js";
import { MTIME, genericManifest, sha } from "../support/manifests.js";

const chunkOf = (name: string): { sha256: string; size: number } => ({ sha256: sha(name), size: 100 });

/** Every chunk 100 bytes, stored in 40, new when its name starts with "n". */
function resolver(names: Map<string, string>): (sha256: string, size: number) => ChunkRecord {
  return (sha256, size) => {
    const name = names.get(sha256);
    if (name === undefined) throw new Error(`unknown chunk ${sha256}`);
    return { sha256, size, storedSize: 40, codec: "zstd", ...(name.startsWith("n") ? { new: true as const } : {}) };
  };
}

async function pagesOf(spool: ManifestSpool, names: Map<string, string>, limits: { chunks: number; bytes: number }): Promise<{ pages: WrittenPage[]; writer: ManifestPageWriter }> {
  const ids = genericManifest();
  const writer = new ManifestPageWriter(ids, limits);
  const pages: WrittenPage[] = [];
  await spool.writeTo(writer, resolver(names), async (p) => void pages.push(...p));
  return { pages, writer };
}

describe("ManifestSpool", () => {
  it("writes entries spooled out of tree order, files interleaved and longer than a run, as pages in tree order that validate", async () => {
    // Prepare: two files read at once (their runs interleave), added before their directory; a long file of 2.5 runs.
    const base = tempDir("walvault-spool-");
    const spool = new ManifestSpool(base);
    const names = new Map<string, string>();
    const name = (n: string): { sha256: string; size: number } => {
      const c = chunkOf(n);
      names.set(c.sha256, n);
      return c;
    };
    const long = Math.floor(SPOOL_RUN * 2.5);
    const a = spool.startFile();
    const b = spool.startFile();
    for (let i = 0; i < long; i++) {
      const c = name(i % 3 === 0 ? "n-shared" : `n-long-${i}`);
      a.add(c.sha256, c.size);
      if (i < 3) {
        const d = name(i === 0 ? "n-shared" : `old-${i}`);
        b.add(d.sha256, d.size);
      }
    }
    b.finish({ ...fileEntryOf("data/b", 0o600, MTIME), size: 300, sha256: sha("b") });
    a.finish({ ...fileEntryOf("data/a", 0o600, MTIME), size: long * 100, sha256: sha("a") });
    spool.entry(symlinkEntryOf("link", "data/a", MTIME));
    spool.entry(directoryEntryOf("data-x", 0o700, MTIME));
    spool.entry(directoryEntryOf("data", 0o700, MTIME));

    // Act
    const { pages, writer } = await pagesOf(spool, names, { chunks: 1000, bytes: 1024 * 1024 });
    spool.close();

    // Assess: tree order ("data/..." before "data-x"), the long file continued in parts, every page valid as ingest checks it.
    const ids = genericManifest();
    const header = pagedHeaderOf(ids, pages.map((p) => p.ref));
    header.totals = { ...writer.totals, uniqueChunks: names.size, storedBytes: names.size * 40 };
    validatePagedHeader(JSON.parse(JSON.stringify(header)));
    let state = startPagedValidation();
    const entries: PageEntry[] = [];
    for (const p of pages) {
      const v = validatePage(header, state, Buffer.from(p.text, "utf8"));
      entries.push(...v.page.entries);
      state = v.state;
    }
    finishPagedValidation(header, state);
    expect(entries.filter((e) => e.type !== "file" || e.part === undefined).map((e) => e.path)).toEqual(["data", "data/a", "data/b", "data-x", "link"]);
    expect(pages.length).toBe(Math.ceil((long + 3) / 1000));
    const aChunks = entries.filter((e) => e.path === "data/a").flatMap((e) => (e.type === "file" ? e.chunks : []));
    expect(aChunks.map((c) => names.get(c.sha256))).toEqual(Array.from({ length: long }, (_, i) => (i % 3 === 0 ? "n-shared" : `n-long-${i}`)));
    // "n-shared" is new: flagged once on each page that references it; "old-*" are not.
    for (const p of pages) {
      const onPage = (JSON.parse(p.text) as { entries: PageEntry[] }).entries.flatMap((e) => (e.type === "file" ? e.chunks : []));
      expect(onPage.filter((c) => c.sha256 === sha("n-shared") && c.new === true)).toHaveLength(1);
      expect(onPage.some((c) => names.get(c.sha256)!.startsWith("old") && c.new === true)).toBe(false);
    }
    expect(readdirSync(base)).toEqual([]);
  });

  it("refuses a path spooled twice", async () => {
    // Prepare
    const spool = new ManifestSpool(tempDir("walvault-spool-"));
    spool.entry(directoryEntryOf("data", 0o700, MTIME));
    spool.entry(directoryEntryOf("data", 0o700, MTIME));

    // Act
    const err = await pagesOf(spool, new Map(), { chunks: 10, bytes: 1024 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    spool.close();

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toBe('path "data" was added to the snapshot twice');
  });

  it("keeps in memory per entry only its path and line positions, the chunk references on disk", () => {
    // Prepare
    const base = tempDir("walvault-spool-");
    const spool = new ManifestSpool(base);
    const f = spool.startFile();

    // Act
    for (let i = 0; i < 5000; i++) f.add(sha(`c${i}`), 100);
    f.finish({ ...fileEntryOf("big", 0o600, MTIME), size: 500_000, sha256: sha("big") });

    // Assess: ~80 bytes per reference went to the spool file.
    expect(spool.entries).toBe(1);
    expect(spool.bytes).toBeGreaterThan(5000 * 70);
    const inMemory = (spool as unknown as { index: Array<{ at: number[] }> }).index[0]!.at.length;
    expect(inMemory).toBe(2 * (Math.ceil(5000 / SPOOL_RUN) + 1));
    spool.close();
    expect(existsSync(base) && readdirSync(base).length === 0).toBe(true);
  });
});
