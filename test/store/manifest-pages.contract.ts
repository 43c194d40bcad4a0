/**
 * The manifest reader's contract (store/manifest-pages.ts), as one suite
 * every ManifestObjects implementation runs: call manifestPagesContract()
 * from a *.test.ts file with a factory of fresh instances and a way to put
 * raw objects where they read. Each test works under its own random prefix.
 */
import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { getCodec } from "../../core/codec.js";
import { ManifestInvalidError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { objectMeta } from "../../core/verify.js";
import { snapshotPageKey } from "../../core/keys.js";
import { compareTreePaths, inlinePageRefs, manifestPageSchema, pageManifest, serializePagedHeader, type PageEntry } from "../../core/manifest-pages.js";
import { serializeManifest, validateManifest } from "../../core/snapshot.js";
import { openManifest, type ManifestObjects } from "../../store/manifest-pages.js";
import { DirsAndLinks } from "../../store/manifest-read.js";
import { SNAP_ID, joinParts, pgManifest } from "../support/manifests.js";
import { rejection } from "../support/rejection.js";

export interface ManifestObjectsFixture {
  objects: ManifestObjects;
  /** Stores bytes and user metadata under `key`, where `objects` reads. */
  putRaw(key: string, body: Uint8Array, metadata?: Record<string, string>): Promise<void>;
}

export type ManifestObjectsFactory = () => ManifestObjectsFixture | Promise<ManifestObjectsFixture>;

const SMALL = { chunks: 2, bytes: 1024 * 1024 };

async function collect(entries: AsyncIterable<PageEntry>): Promise<PageEntry[]> {
  const out: PageEntry[] = [];
  for await (const e of entries) out.push(e);
  return out;
}

export function manifestPagesContract(name: string, factory: ManifestObjectsFactory): void {
  describe(`manifest reader contract: ${name}`, () => {
    let f: ManifestObjectsFixture;
    let key: string;
    let reads: string[];
    let counted: ManifestObjects;

    beforeEach(async () => {
      f = await factory();
      key = `contract/${randomUUID()}/db/orders/snapshots/${SNAP_ID}/manifest.json`;
      reads = [];
      counted = { get: (k, max) => (reads.push(k), f.objects.get(k, max)) };
    });

    /** Puts the fixture manifest in format 2 (pages first, header last); returns the page texts. */
    async function putPaged(): Promise<string[]> {
      const { header, pages } = pageManifest(pgManifest(), SMALL);
      for (const p of pages) await f.putRaw(snapshotPageKey(key, p.index), Buffer.from(p.text));
      await f.putRaw(key, Buffer.from(serializePagedHeader(header)));
      return pages.map((p) => p.text);
    }

    describe("ManifestObjects", () => {
      it("returns the bytes put, and undefined for a missing key", async () => {
        // Prepare
        await f.putRaw(key, Buffer.from("{}\n"));

        // Act
        const got = await f.objects.get(key, 100);
        const missing = await f.objects.get(`${key}.missing`, 100);

        // Assess
        expect(Buffer.from(got!).toString()).toBe("{}\n");
        expect(missing).toBeUndefined();
      });

      it("returns an object stored encoded decoded, by its codec metadata", async () => {
        // Prepare
        const raw = Buffer.from(serializeManifest(pgManifest()));
        const encoded = await getCodec("zstd").encode(raw);
        await f.putRaw(key, encoded, objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }));

        // Act
        const got = await f.objects.get(key, raw.length);
        const err = await rejection(f.objects.get(key, raw.length - 1));

        // Assess
        expect(Buffer.from(got!).equals(raw)).toBe(true);
        expect(err.message).toBe(`object ${key} has ${raw.length} bytes, more than the ${raw.length - 1} a manifest object may have`);
      });

      it("refuses an object larger than asked for, naming it", async () => {
        // Prepare
        await f.putRaw(key, Buffer.alloc(101, 32));

        // Act
        const err = await rejection(f.objects.get(key, 100));

        // Assess
        expect(err).toBeInstanceOf(ManifestInvalidError);
        expect(err.message).toBe(`object ${key} has 101 bytes, more than the 100 a manifest object may have`);
      });
    });

    describe("openManifest", () => {
      it("resolves undefined when the manifest does not exist", async () => {
        // Act + Assess
        expect(await openManifest(counted, key)).toBeUndefined();
      });

      it("reads a format 1 manifest as one page holding every file", async () => {
        // Prepare
        const m = pgManifest();
        await f.putRaw(key, Buffer.from(serializeManifest(m)));

        // Act
        const opened = (await openManifest(counted, key, { snapshotId: SNAP_ID }))!;
        const entries = await collect(opened.entries());
        const page = await opened.page(0);

        // Assess
        expect(opened.format).toBe(1);
        expect(opened.pageCount).toBe(1);
        expect(opened.header.totals).toEqual(m.totals);
        expect(entries).toEqual(m.files);
        expect(page.chunks).toEqual(validateManifest(m).chunks);
      });

      it("reads a format 2 manifest's header alone, then its pages one at a time, in order, each once", async () => {
        // Prepare
        const m = pgManifest();
        const texts = await putPaged();

        // Act
        const opened = (await openManifest(counted, key, { snapshotId: SNAP_ID }))!;
        const afterOpen = [...reads];
        const entries = await collect(opened.entries());

        // Assess
        expect(opened.format).toBe(2);
        expect(opened.pageCount).toBe(texts.length);
        expect(opened.header.totals).toEqual(m.totals);
        expect(afterOpen).toEqual([key]);
        expect(reads.slice(1)).toEqual(texts.map((_, i) => snapshotPageKey(key, i)));
        expect(joinParts(entries)).toEqual([...m.files].sort((a, b) => compareTreePaths(a.path, b.path)));
      });

      it("with readFirstPage, reads page 0 together with the header and not again on the walk", async () => {
        // Prepare: the header's read held until page 0's has started
        const m = pgManifest();
        const texts = await putPaged();
        let headerRead!: () => void;
        const headerHeld = new Promise<void>((r) => (headerRead = r));
        const held: ManifestObjects = {
          get: async (k, max) => {
            reads.push(k);
            if (k === key) await headerHeld;
            else headerRead();
            return f.objects.get(k, max);
          },
        };

        // Act
        const opened = (await openManifest(held, key, { snapshotId: SNAP_ID }, { readFirstPage: true }))!;
        const entries = await collect(opened.entries());

        // Assess: page 0 was asked for while the header was still being read; every page once
        expect(reads.slice(0, 2)).toEqual([snapshotPageKey(key, 0), key]);
        expect(reads.slice(2)).toEqual(texts.slice(1).map((_, i) => snapshotPageKey(key, i + 1)));
        expect(joinParts(entries)).toEqual([...m.files].sort((a, b) => compareTreePaths(a.path, b.path)));
      });

      it("with readFirstPage, opens a format 1 manifest as before (the page read finds nothing) and still refuses a tampered page 0 of format 2", async () => {
        // Prepare
        const m = pgManifest();
        await f.putRaw(key, Buffer.from(serializeManifest(m)));

        // Act
        const one = (await openManifest(counted, key, { snapshotId: SNAP_ID }, { readFirstPage: true }))!;
        const entries = await collect(one.entries());
        const texts = await putPaged();
        await f.putRaw(snapshotPageKey(key, 0), Buffer.from(texts[0]!.replace(/"mode":/, '"mode": ')));
        const two = (await openManifest(counted, key, { snapshotId: SNAP_ID }, { readFirstPage: true }))!;
        const refused = await rejection(collect(two.entries()));

        // Assess
        expect(one.format).toBe(1);
        expect(entries).toEqual(m.files);
        expect(refused).toBeInstanceOf(ManifestInvalidError);
        expect((refused as Error).message).toContain("pages[0]");
      });

      it("walks a manifest it validated to the end again from the same pages, checking their bytes but not the schema again", async () => {
        // Prepare: one full walk (every page validated).
        await putPaged();
        const opened = (await openManifest(counted, key))!;
        const first = await collect(opened.entries());
        const schemaCalls = vi.spyOn(manifestPageSchema, "safeParse");

        // Act
        const second = await collect(opened.entries());

        // Assess: page 0 is kept parsed; every other page is read again (the last one parsed on the way, evicted by the second).
        expect(second).toEqual(first);
        expect(schemaCalls).not.toHaveBeenCalled();
        expect(opened.pageCount).toBeGreaterThan(2);
        const pageReads = reads.filter((k) => k !== key);
        expect(pageReads.slice(opened.pageCount)).toEqual(Array.from({ length: opened.pageCount - 1 }, (_, i) => snapshotPageKey(key, i + 1)));
        schemaCalls.mockRestore();
      });

      it("reads a two-page manifest once for a validating walk, a second walk and a walk back from the last page", async () => {
        // Prepare: the fixture cut into exactly two pages.
        const { header, pages } = pageManifest(pgManifest(), { chunks: 1000, bytes: 1024 * 1024 });
        const cut = pageManifest(pgManifest(), { chunks: Math.ceil(header.totals.chunks / 2), bytes: 1024 * 1024 });
        expect(pages).toHaveLength(1);
        expect(cut.pages).toHaveLength(2);
        for (const p of cut.pages) await f.putRaw(snapshotPageKey(key, p.index), Buffer.from(p.text));
        await f.putRaw(key, Buffer.from(serializePagedHeader(cut.header)));
        const opened = (await openManifest(counted, key))!;

        // Act
        const first = await collect(opened.entries());
        const second = await collect(opened.entries());
        const last = await opened.page(1);
        const back = [...(await opened.page(0)).entries, ...last.entries];

        // Assess
        expect(second).toEqual(first);
        expect(back).toEqual(first);
        expect(reads.filter((k) => k !== key)).toEqual([snapshotPageKey(key, 0), snapshotPageKey(key, 1)]);
      });

      it("hands out kept pages frozen, so that no reader can change what a later walk sees", async () => {
        // Prepare
        await putPaged();
        const opened = (await openManifest(counted, key))!;
        await collect(opened.entries());

        // Act
        const page = await opened.page(0);

        // Assess
        expect(Object.isFrozen(page.entries)).toBe(true);
        expect(() => (page.entries as PageEntry[]).reverse()).toThrow(TypeError);
      });

      it("refuses, on a second walk, a page whose object changed since the first one validated it", async () => {
        // Prepare: a full walk, then page 1 replaced by bytes of the same length.
        const texts = await putPaged();
        const opened = (await openManifest(counted, key))!;
        await collect(opened.entries());
        await f.putRaw(snapshotPageKey(key, 1), Buffer.from(texts[1]!.replace('"mode":384', '"mode":416')));

        // Act
        const err = await rejection(collect(opened.entries()));

        // Assess
        expect(err).toBeInstanceOf(ManifestInvalidError);
        expect(err.message).toMatch(/^snapshot manifest pages\[1\]\.sha256: the page object's SHA-256 is [0-9a-f]{64}, but the manifest binds [0-9a-f]{64}$/);
      });

      it("reads a header that carries its pages (PageRef.text) with no page object, every page verified, and names no page object", async () => {
        // Prepare: the header alone, its pages in it; no object under pages/
        const m = pgManifest();
        const { header, pages } = pageManifest(m, SMALL);
        await f.putRaw(key, Buffer.from(serializePagedHeader({ ...header, pages: inlinePageRefs(pages) })));

        // Act
        const opened = (await openManifest(counted, key, { snapshotId: SNAP_ID }, { readFirstPage: true }))!;
        const entries = await collect(opened.entries());
        const last = await opened.page(pages.length - 1);

        // Assess: the header read, and page 0's object looked for ahead (it finds none); nothing else
        expect(pages.length).toBeGreaterThan(1);
        expect(opened.pageCount).toBe(pages.length);
        expect(opened.pageObjects).toEqual([]);
        expect(reads.sort()).toEqual([key, snapshotPageKey(key, 0)].sort());
        expect(joinParts(entries)).toEqual([...m.files].sort((a, b) => compareTreePaths(a.path, b.path)));
        expect(last.entries).toEqual((JSON.parse(pages.at(-1)!.text) as { entries: PageEntry[] }).entries);
      });

      it("refuses a page the header carries whose text does not hash to its reference, naming the page", async () => {
        // Prepare: page 1's text changed in the header, its length kept
        const { header, pages } = pageManifest(pgManifest(), SMALL);
        const refs = inlinePageRefs(pages);
        refs[1] = { ...refs[1]!, text: refs[1]!.text!.replace('"mode":384', '"mode":416') };
        await f.putRaw(key, Buffer.from(serializePagedHeader({ ...header, pages: refs })));

        // Act
        const err = await rejection(collect((await openManifest(counted, key))!.entries()));

        // Assess
        expect(refs[1]!.text).not.toBe(pages[1]!.text);
        expect(err).toBeInstanceOf(ManifestInvalidError);
        expect(err.message).toMatch(/^snapshot manifest pages\[1\]\.sha256: the page object's SHA-256 is [0-9a-f]{64}, but the manifest binds [0-9a-f]{64}$/);
      });

      it("reads any one page of a format 2 manifest, verified", async () => {
        // Prepare
        const texts = await putPaged();
        const last = texts.length - 1;

        // Act
        const page = await (await openManifest(counted, key))!.page(last);

        // Assess
        expect(page.entries).toEqual((JSON.parse(texts[last]!) as { entries: PageEntry[] }).entries);
        expect(reads).toEqual([key, snapshotPageKey(key, last)]);
      });

      it("refuses a tampered page with one line naming the page", async () => {
        // Prepare: same length, one byte changed
        const texts = await putPaged();
        await f.putRaw(snapshotPageKey(key, 1), Buffer.from(texts[1]!.replace('"mode":384', '"mode":416')));

        // Act
        const err = await rejection(collect((await openManifest(counted, key))!.entries()));

        // Assess
        expect(err).toBeInstanceOf(ManifestInvalidError);
        expect(err.message).toMatch(/^snapshot manifest pages\[1\]\.sha256: the page object's SHA-256 is [0-9a-f]{64}, but the manifest binds [0-9a-f]{64}$/);
      });

      it("refuses a page longer than the header binds without reading it", async () => {
        // Prepare
        const texts = await putPaged();
        await f.putRaw(snapshotPageKey(key, 0), Buffer.from(`${texts[0]!} `));

        // Act
        const err = await rejection((await openManifest(counted, key))!.page(0));

        // Assess
        expect(err).toBeInstanceOf(ManifestInvalidError);
        expect(err.message).toContain(`object ${snapshotPageKey(key, 0)} has ${Buffer.byteLength(texts[0]!) + 1} bytes, more than the ${Buffer.byteLength(texts[0]!)}`);
      });

      it("refuses a missing page, naming its key", async () => {
        // Prepare
        const { header } = pageManifest(pgManifest(), SMALL);
        await f.putRaw(key, Buffer.from(serializePagedHeader(header)));

        // Act
        const err = await rejection((await openManifest(counted, key))!.page(0));

        // Assess
        expect(err.message).toBe(`snapshot manifest pages[0]: page object ${snapshotPageKey(key, 0)} is missing`);
      });

      it("refuses a header that does not belong to the key's snapshot before reading any page", async () => {
        // Prepare
        await putPaged();

        // Act
        const err = await rejection(openManifest(counted, key, { snapshotId: "20261121T073000Z-000000" }));

        // Assess
        expect(err).toBeInstanceOf(ManifestInvalidError);
        expect(reads).toEqual([key]);
      });
    });

    describe("DirsAndLinks", () => {
      it("takes the directories and symlinks a walk met in reverse tree order without reading a page; past its limit, from the pages read again", async () => {
        // Prepare: one full walk, each entry added (as restore's writing pass does)
        await putPaged();
        const opened = (await openManifest(counted, key))!;
        const kept = new DirsAndLinks();
        const few = new DirsAndLinks(2);
        const walked = await collect(opened.entries());
        for (const e of walked) {
          kept.add(e);
          few.add(e);
        }
        const expected = walked.filter((e) => e.type !== "file").reverse();
        expect(expected.length).toBeGreaterThan(2);
        reads.splice(0);

        // Act
        const fromMemory = await collect(kept.reversed(opened));
        const readsFromMemory = reads.length;
        const fromPages = await collect(few.reversed(opened));

        // Assess
        expect(fromMemory).toEqual(expected);
        expect(readsFromMemory).toBe(0);
        expect(fromPages).toEqual(expected);
        expect(reads.length).toBeGreaterThan(0);
      });
    });
  });
}
