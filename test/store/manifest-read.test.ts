/**
 * store/manifest-read.ts entryBatches: a format-2 manifest's entries in
 * batches of chunk references, read page by page from an in-memory
 * ManifestObjects that records which objects were read.
 */
import { describe, expect, it } from "vitest";
import { snapshotPageKey } from "../../core/keys.js";
import { pageManifest, serializePagedHeader, type PageEntry } from "../../core/manifest-pages.js";
import { MemoryManifestObjects, openManifest, type ManifestObjects } from "../../store/manifest-pages.js";
import { entryBatches, type EntryBatch } from "../../store/manifest-read.js";
import { DB, MiB, SNAP_ID, joinParts, pgManifest } from "../support/manifests.js";

const KEY = `db/${DB}/snapshots/${SNAP_ID}/manifest.json`;
/** Pages and batches of two chunk references: the fixture's seven references span four pages. */
const REFS = 2;

/**
 * The fixture manifest stored in format 2 with pages of REFS references, and
 * a reader that logs each key it reads; a read of page `held` waits until
 * `release` is called.
 */
function pagedFixture(held?: number): { objects: ManifestObjects; reads: string[]; pageCount: number; release: () => void } {
  const store = new MemoryManifestObjects();
  const { header, pages } = pageManifest(pgManifest(), { chunks: REFS, bytes: MiB });
  for (const p of pages) store.objects.set(snapshotPageKey(KEY, p.index), { body: Buffer.from(p.text), metadata: {} });
  store.objects.set(KEY, { body: Buffer.from(serializePagedHeader(header)), metadata: {} });
  const reads: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const objects: ManifestObjects = {
    async get(key, max) {
      reads.push(key);
      if (held !== undefined && key === snapshotPageKey(KEY, held)) await gate;
      return store.get(key, max);
    },
  };
  return { objects, reads, pageCount: pages.length, release };
}

const refsOf = (b: EntryBatch): number => b.entries.reduce((n, e) => n + (e.type === "file" ? e.chunks.length : 0), 0);

describe("entryBatches", () => {
  it("yields a full batch without waiting for the next page", async () => {
    // Prepare: page 0 holds exactly one batch of references; page 1 cannot be read until released.
    const { objects, reads, pageCount, release } = pagedFixture(1);
    const opened = (await openManifest(objects, KEY))!;
    const batches = entryBatches(opened, REFS)[Symbol.asyncIterator]();

    // Act
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([batches.next(), new Promise<"waited for page 1">((r) => (timer = setTimeout(() => r("waited for page 1"), 2000)))]);
    clearTimeout(timer);
    release();

    // Assess
    expect(pageCount).toBeGreaterThan(2);
    expect(first).not.toBe("waited for page 1");
    const batch = (first as IteratorResult<EntryBatch>).value as EntryBatch;
    expect(refsOf(batch)).toBe(REFS);
    expect(reads).not.toContain(snapshotPageKey(KEY, 2));
    expect((await batches.next()).done).toBe(false);
  });

  it("gives every entry once, in tree order, in batches of at most the limit", async () => {
    // Prepare
    const { objects, pageCount } = pagedFixture();
    const opened = (await openManifest(objects, KEY))!;
    const all: PageEntry[] = [];
    for await (const e of opened.entries()) all.push(e);
    const expected = joinParts(all);

    // Act
    const batches: EntryBatch[] = [];
    for await (const b of entryBatches(opened, REFS)) batches.push(b);

    // Assess
    expect(batches.length).toBeGreaterThanOrEqual(pageCount);
    for (const b of batches) expect(refsOf(b)).toBeLessThanOrEqual(REFS);
    expect(joinParts(batches.flatMap((b) => b.entries))).toEqual(expected);
    for (const b of batches) {
      const referenced = new Set(b.entries.flatMap((e) => (e.type === "file" ? e.chunks.map((c) => c.sha256) : [])));
      expect(new Set(b.chunks.map((c) => c.sha256))).toEqual(referenced);
    }
  });
});
