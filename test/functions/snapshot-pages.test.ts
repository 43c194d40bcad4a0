/**
 * functions/snapshot/pages.ts with the in-memory stores: ValidatePages takes
 * a format-2 manifest a bounded number of pages per invocation, carries only
 * a small progress object, checks each page's reused chunks against the
 * catalog and puts each page's new chunks into work/ batch objects, at most
 * MAX_BATCHES of them, whatever the budget.
 */
import { describe, expect, it } from "vitest";
import { ManifestInvalidError, NotFoundError } from "../../core/errors.js";
import { incomingSnapshotKey, snapshotPageKey } from "../../core/keys.js";
import { pageManifest, type PagedManifestHeader, type WrittenPage } from "../../core/manifest-pages.js";
import { SnapshotBuilder, type GenericSnapshotManifest } from "../../core/snapshot.js";
import { BATCH_CHUNKS, MAX_BATCHES, batchFileSchema, batchKey, batchesPrefix, type BatchChunk } from "../../functions/snapshot/common.js";
import {
  mayTakePage,
  pageBudget,
  pagedBatchSize,
  startPagedProgress,
  validatePages,
  type PageBudget,
  type PagedIngestIO,
  type PagedProgress,
  type PagedSnapshotRef,
} from "../../functions/snapshot/pages.js";
import { MemoryManifestObjects } from "../../store/manifest-pages.js";
import { MemoryWorkObjects } from "../../store/work-objects.js";
import { MTIME, buildGeneric, chunk, sha } from "../support/manifests.js";

/** Files f00..f(files-1), each of `perFile` distinct chunks; chunks named in `stored` are reused, the others new. */
function manifestOf(files: number, perFile: number, stored: ReadonlySet<string> = new Set()): GenericSnapshotManifest {
  const b = new SnapshotBuilder();
  b.addDirectory("data", 0o755, MTIME);
  for (let f = 0; f < files; f++) {
    const name = `data/f${String(f).padStart(2, "0")}`;
    const h = b.startFile(name, 0o644, MTIME);
    for (let c = 0; c < perFile; c++) h.addChunk(chunk(`${name}#${c}`, 3000, 1000, !stored.has(`${name}#${c}`)));
    h.finish(sha(`whole ${name}`));
  }
  return buildGeneric(b, { streams: [{ id: "wal", lastSegment: "wal/000042.wal", lastSegno: 42 }] });
}

interface Fixture {
  header: PagedManifestHeader;
  pages: WrittenPage[];
  io: PagedIngestIO & { pages: MemoryManifestObjects; work: MemoryWorkObjects };
  ref: PagedSnapshotRef;
  /** Catalog lookups: the hashes of each missingChunks call. */
  lookups: string[][];
}

function fixture(manifest: GenericSnapshotManifest, opts: { inCatalog?: ReadonlySet<string>; pageChunks?: number; packed?: boolean } = {}): Fixture {
  const { header, pages } = pageManifest(manifest, { chunks: opts.pageChunks ?? 16, bytes: 1024 * 1024 });
  const manifestKey = incomingSnapshotKey(manifest.databaseId, manifest.snapshotId);
  const objects = new MemoryManifestObjects();
  for (const p of pages) objects.objects.set(snapshotPageKey(manifestKey, p.index), { body: Buffer.from(p.text, "utf8"), metadata: {} });
  const lookups: string[][] = [];
  const known = opts.inCatalog ?? new Set<string>();
  const io = {
    pages: objects,
    work: new MemoryWorkObjects(),
    catalog: {
      async missingChunks(_db: string, sha256s: readonly string[]): Promise<string[]> {
        lookups.push([...sha256s]);
        return sha256s.filter((s) => !known.has(s));
      },
    },
  };
  const manifestSha256 = sha("header");
  const ref: PagedSnapshotRef = {
    databaseId: manifest.databaseId,
    snapshotId: manifest.snapshotId,
    manifestKey,
    manifestSha256,
    batchesPrefix: batchesPrefix(manifest.databaseId, manifest.snapshotId, manifestSha256),
    packed: opts.packed ?? false,
  };
  return { header, pages, io, ref, lookups };
}

const unlimited: PageBudget = { maxPages: 1_000_000, deadline: Number.POSITIVE_INFINITY, now: () => 0 };
const onePage: PageBudget = { maxPages: 1, deadline: Number.POSITIVE_INFINITY, now: () => 0 };

/** Calls validatePages as the workflow does, through JSON (the state), until done; returns every progress carried. */
async function runToDone(f: Fixture, budget: PageBudget): Promise<{ carried: PagedProgress[]; batchCount: number }> {
  let progress = startPagedProgress();
  const carried: PagedProgress[] = [];
  for (let i = 0; i < 10_000; i++) {
    const out = await validatePages(f.io, f.header, f.ref, JSON.parse(JSON.stringify(progress)) as PagedProgress, budget);
    progress = out.progress;
    carried.push(progress);
    if (progress.done) return { carried, batchCount: out.batchCount! };
  }
  throw new Error("validatePages never finished");
}

async function batches(f: Fixture, count: number): Promise<BatchChunk[][]> {
  const out: BatchChunk[][] = [];
  for (let i = 0; i < count; i++) out.push(batchFileSchema.parse(await f.io.work.get(batchKey(f.ref.batchesPrefix, i))).chunks);
  return out;
}

describe("ValidatePages over a paged manifest", () => {
  it("validates page by page, one page per invocation, carrying a progress object of a few hundred bytes", async () => {
    // Prepare: 10 files of 10 chunks, 16 chunk references per page: 7 pages.
    const f = fixture(manifestOf(10, 10));
    expect(f.pages.length).toBe(7);
    // Act
    const { carried } = await runToDone(f, onePage);
    // Assess
    expect(carried).toHaveLength(7);
    expect(carried.map((p) => p.validation.next)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(carried.at(-1)!.done).toBe(true);
    for (const p of carried) expect(JSON.stringify(p).length).toBeLessThan(2048);
  });

  it("puts every new chunk into work/ batch objects of BATCH_CHUNKS, in order, once per page, the last batch partial", async () => {
    // Prepare: 100 new chunks over 7 pages: batches of 32, 32, 32, 4, filled across page boundaries.
    const f = fixture(manifestOf(10, 10));
    // Act
    const { batchCount } = await runToDone(f, onePage);
    // Assess
    expect(batchCount).toBe(4);
    const got = await batches(f, batchCount);
    expect(got.map((b) => b.length)).toEqual([BATCH_CHUNKS, BATCH_CHUNKS, BATCH_CHUNKS, 4]);
    const expected: string[] = [];
    for (let file = 0; file < 10; file++) for (let c = 0; c < 10; c++) expected.push(sha(`data/f${String(file).padStart(2, "0")}#${c}`));
    expect(got.flat().map((c) => c.sha256)).toEqual(expected);
    expect(got[0]![0]).toEqual({ sha256: sha("data/f00#0"), size: 3000, storedSize: 1000, codec: "zstd", file: "data/f00" });
    expect(await f.io.work.get(batchKey(f.ref.batchesPrefix, batchCount))).toBeUndefined();
  });

  it("writes the same batch objects whatever the budget per invocation", async () => {
    // Prepare
    const one = fixture(manifestOf(10, 10));
    const all = fixture(manifestOf(10, 10));
    // Act
    const a = await runToDone(one, onePage);
    const b = await runToDone(all, unlimited);
    // Assess
    expect(b.carried).toHaveLength(1);
    expect(b.batchCount).toBe(a.batchCount);
    expect(await batches(all, b.batchCount)).toEqual(await batches(one, a.batchCount));
  });

  it("gives the same result when an invocation is retried after it had written its batches", async () => {
    // Prepare: run page 0 twice more from the same progress (a Lambda retry), then go on.
    const f = fixture(manifestOf(10, 10));
    const first = await validatePages(f.io, f.header, f.ref, startPagedProgress(), { ...onePage, maxPages: 3 });
    await validatePages(f.io, f.header, f.ref, first.progress, onePage);
    // Act: the retry of the second invocation
    let progress = (await validatePages(f.io, f.header, f.ref, first.progress, onePage)).progress;
    while (!progress.done) progress = (await validatePages(f.io, f.header, f.ref, progress, onePage)).progress;
    // Assess
    const clean = fixture(manifestOf(10, 10));
    const expected = await runToDone(clean, unlimited);
    expect(progress.batch.index).toBe(expected.batchCount);
    expect(await batches(f, expected.batchCount)).toEqual(await batches(clean, expected.batchCount));
  });

  it("sizes batches so that there are at most MAX_BATCHES", () => {
    expect(pagedBatchSize(0)).toBe(BATCH_CHUNKS);
    expect(pagedBatchSize(BATCH_CHUNKS * MAX_BATCHES)).toBe(BATCH_CHUNKS);
    expect(pagedBatchSize(819_200)).toBe(820);
    expect(Math.ceil(819_200 / pagedBatchSize(819_200))).toBeLessThanOrEqual(MAX_BATCHES);
  });

  it("asks the catalog about each page's reused chunks only, once per page that has any, and batches none of them", async () => {
    // Prepare: the first 5 chunks of every file are reused (in the catalog).
    const stored = new Set<string>();
    for (let file = 0; file < 10; file++) for (let c = 0; c < 5; c++) stored.add(`data/f${String(file).padStart(2, "0")}#${c}`);
    const f = fixture(manifestOf(10, 10, stored), { inCatalog: new Set([...stored].map(sha)) });
    // Act
    const { batchCount } = await runToDone(f, onePage);
    // Assess
    const pagesWithReused = f.pages.filter((p) => [...stored].some((name) => p.text.includes(sha(name)))).length;
    expect(f.lookups).toHaveLength(pagesWithReused);
    expect(pagesWithReused).toBeGreaterThan(1);
    expect(new Set(f.lookups.flat())).toEqual(new Set([...stored].map(sha)));
    const batched = (await batches(f, batchCount)).flat().map((c) => c.sha256);
    expect(batched).toHaveLength(50);
    expect(batched.some((s) => f.lookups.flat().includes(s))).toBe(false);
  });

  it("asks the catalog nothing for a packed push, even of a reused chunk it lacks: CheckReferenced reads those records once", async () => {
    // Prepare: reused chunks, one of them missing from the catalog.
    const stored = new Set(["data/f00#0", "data/f01#1", "data/f03#2"]);
    const f = fixture(manifestOf(4, 10, stored), { packed: true, inCatalog: new Set([sha("data/f00#0"), sha("data/f01#1")]) });
    // Act
    const { batchCount } = await runToDone(f, onePage);
    // Assess
    expect(f.lookups).toEqual([]);
    expect(batchCount).toBe(0);
  });

  it("writes no batches for a packed push (its packs are batched from the header)", async () => {
    // Prepare
    const f = fixture(manifestOf(4, 10), { packed: true });
    // Act
    const { batchCount } = await runToDone(f, onePage);
    // Assess
    expect(batchCount).toBe(0);
    expect(f.io.work.docs.size).toBe(0);
  });

  it("stops taking new pages well before half the step's timeout, so a step with one more page still ends under half", () => {
    // Prepare
    const timeoutSeconds = 300;
    // Act
    const budget = pageBudget(timeoutSeconds, {}, () => 0);
    // Assess: the page in hand may take a fifth of the timeout and the step still ends under half of it
    expect(budget.deadline + (timeoutSeconds * 1000) / 5).toBeLessThanOrEqual((timeoutSeconds * 1000) / 2);
    expect(mayTakePage({ ...budget, now: () => budget.deadline - 1 }, 1)).toBe(true);
    expect(mayTakePage({ ...budget, now: () => budget.deadline }, 1)).toBe(false);
  });

  it("takes at least one page per invocation, even past its deadline", async () => {
    // Prepare
    const f = fixture(manifestOf(10, 10));
    const late: PageBudget = { maxPages: 100, deadline: 10, now: () => 20 };
    // Act
    const out = await validatePages(f.io, f.header, f.ref, startPagedProgress(), late);
    // Assess
    expect(out.progress.validation.next).toBe(1);
    expect(mayTakePage(late, 0)).toBe(true);
    expect(mayTakePage(late, 1)).toBe(false);
  });
});

describe("ValidatePages refuses", () => {
  it("a tampered page: ManifestInvalidError naming the page and its object key", async () => {
    // Prepare: page 2's bytes changed after the header bound them.
    const f = fixture(manifestOf(10, 10));
    const key = snapshotPageKey(f.ref.manifestKey, 2);
    const obj = f.io.pages.objects.get(key)!;
    obj.body = Buffer.from(Buffer.from(obj.body).toString("utf8").replace('"mode":420', '"mode":384'), "utf8");
    // Act
    const refused = await runToDone(f, onePage).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Assess
    expect(refused).toBeInstanceOf(ManifestInvalidError);
    expect((refused as Error).message).toContain(key);
    expect((refused as Error).message).toMatch(/pages\[2\]\.sha256/);
  });

  it("a missing page: ManifestInvalidError naming its key", async () => {
    // Prepare
    const f = fixture(manifestOf(10, 10));
    const key = snapshotPageKey(f.ref.manifestKey, 4);
    f.io.pages.objects.delete(key);
    // Act
    const refused = await runToDone(f, unlimited).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Assess
    expect(refused).toBeInstanceOf(ManifestInvalidError);
    expect((refused as Error).message).toContain(key);
  });

  it("a reused chunk the catalog does not have: NotFoundError naming the chunk and a file using it", async () => {
    // Prepare: data/f03#2 is referenced as stored, but the catalog lacks it.
    const f = fixture(manifestOf(10, 10, new Set(["data/f03#2"])));
    // Act
    const refused = await runToDone(f, onePage).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Assess
    expect(refused).toBeInstanceOf(NotFoundError);
    expect((refused as Error).message).toContain(sha("data/f03#2"));
    expect((refused as Error).message).toContain('"data/f03"');
  });

  it("totals that disagree with the pages, after the last page", async () => {
    // Prepare: the header states one file too many (its page counts still agree).
    const f = fixture(manifestOf(3, 4));
    const header = { ...f.header, totals: { ...f.header.totals, logicalBytes: f.header.totals.logicalBytes + 1 } };
    // Act
    const refused = await validatePages(f.io, header, f.ref, startPagedProgress(), unlimited).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Assess
    expect(refused).toBeInstanceOf(ManifestInvalidError);
    expect((refused as Error).message).toMatch(/logicalBytes/);
  });
});
