/**
 * Manifest format 2 end to end on the local stack: `snapshotPush` with
 * `manifestPages` (WALVAULT_MANIFEST_PAGES=1) and small page limits uploads
 * the pages and then the header; the snapshot ingest workflow validates,
 * checks and promotes it page by page, a few pages per invocation
 * (WALVAULT_INGEST_PAGES=2 here), and records it; a page changed after the
 * header bound it is quarantined, naming the page, and nothing is recorded.
 * The vault's objects are asserted, and the paged snapshot restores byte for
 * byte through `walvault restore`'s executor (which reads it page by page).
 * Format 1 (WALVAULT_MANIFEST_PAGES=0, what older agents wrote) is still
 * written on request, recorded, restored, and seeds the next paged push.
 */
import { randomFillSync } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { manifestPagesEnabled } from "../../agent/manifest-upload.js";
import { restore } from "../../agent/restore.js";
import { snapshotPush, type PushConfig, type SnapshotPushResult, type SnapshotSource } from "../../agent/snapshot-push.js";
import { ConfigError, QuarantinedError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { validatePagedHeader, type PagedManifestHeader } from "../../core/manifest-pages.js";
import { parseObjectMeta } from "../../core/verify.js";
import type { FaultContext, InjectedFault } from "../../local/stack.js";
import type { ObjectStore } from "../../store/object-store.js";
import { listKeys, stackClients, tempDir, type StackClients } from "../support/harness.js";
import { SMALL_CHUNKER } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-paged";
const STREAMS = [{ id: "wal", lastSegment: "wal/00000042.wal", lastSegno: 42 }];
const KiB = 1024;
/** Small pages: a ~1 MiB tree in 4 KiB chunks makes a dozen of them. */
const PAGE_LIMITS = { chunks: 24, bytes: 16 * KiB };
const INGEST_PAGES = 2;

let stack: TestStack;
let clients: StackClients;
let work: string;
const savedPages = process.env.WALVAULT_INGEST_PAGES;
/** Task invocations of the snapshot ingest workflow, by state name, with the size of their input. */
const invocations: Array<{ state: string; inputBytes: number }> = [];

function onInvoke(ctx: FaultContext): InjectedFault {
  if (ctx.workflow === "snapshot-ingest") invocations.push({ state: ctx.state, inputBytes: JSON.stringify(ctx.input).length });
  return undefined;
}

beforeAll(async () => {
  process.env.WALVAULT_INGEST_PAGES = String(INGEST_PAGES);
  stack = await startTestStack([{ id: GEN, kind: "generic" }], { injectFault: onInvoke });
  clients = stackClients(stack);
  work = tempDir("walvault-pages-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
  if (savedPages === undefined) delete process.env.WALVAULT_INGEST_PAGES;
  else process.env.WALVAULT_INGEST_PAGES = savedPages;
});

const cfg = (): PushConfig => ({ ...stack.config, databaseId: GEN });
const source = (dir: string): SnapshotSource => ({ kind: "generic", dir, streams: STREAMS, mayChange: () => false });

/** 3 files of 256 KiB of random bytes and 40 small files. */
function makeTree(name: string): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "data", "small"), { recursive: true });
  mkdirSync(join(dir, "wal"));
  for (let f = 0; f < 3; f++) writeFileSync(join(dir, "data", `big-${f}`), randomFillSync(Buffer.alloc(256 * KiB)));
  for (let i = 0; i < 40; i++) writeFileSync(join(dir, "data", "small", `s${String(i).padStart(3, "0")}`), randomFillSync(Buffer.alloc(200 + i * 10)));
  writeFileSync(join(dir, "wal", "00000042.wal"), Buffer.alloc(16 * KiB, 7));
  return dir;
}

async function headerOf(r: SnapshotPushResult, bucket: string, key: string): Promise<PagedManifestHeader> {
  const obj = await clients.store.get(bucket, key);
  expect(obj, key).toBeDefined();
  return validatePagedHeader(JSON.parse(obj!.body.toString("utf8")), { databaseId: r.databaseId, snapshotId: r.snapshotId });
}

/** Every regular file under dir (relative path -> SHA-256). */
function filesOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.set(join(e.parentPath, e.name).slice(dir.length + 1), sha256Hex(readFileSync(join(e.parentPath, e.name))));
  }
  return out;
}

const countOf = (state: string, since: number): number => invocations.slice(since).filter((i) => i.state === state).length;

describe("WALVAULT_MANIFEST_PAGES", () => {
  it("is on when unset or 1/true/yes/on, off for 0/false/no/off, and refuses anything else in one line", () => {
    // Act + Assess
    expect(manifestPagesEnabled({})).toBe(true);
    expect(manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "" })).toBe(true);
    expect(manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "off" })).toBe(false);
    expect(manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "0" })).toBe(false);
    expect(manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "1" })).toBe(true);
    expect(manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "on" })).toBe(true);
    expect(() => manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "2" })).toThrow(ConfigError);
    expect(() => manifestPagesEnabled({ WALVAULT_MANIFEST_PAGES: "2" })).toThrow(/^WALVAULT_MANIFEST_PAGES='2' is not 1 or 0/);
  });
});

describe("a paged (format 2) snapshot push, one object per chunk", () => {
  let dir: string;
  let pushed: SnapshotPushResult;
  let header: PagedManifestHeader;
  let since: number;

  beforeAll(async () => {
    dir = makeTree("tree");
    since = invocations.length;
    pushed = await snapshotPush(source(dir), cfg(), clients, {
      packs: false,
      manifestPages: true,
      manifestPageLimits: PAGE_LIMITS,
      chunker: SMALL_CHUNKER,
      timeoutMs: 180_000,
    });
    header = await headerOf(pushed, stack.config.incomingBucket, pushed.manifestKey);
  }, 240_000);

  it("uploads the pages beside the manifest key and the header, which binds them, and is recorded with the header's SHA-256", async () => {
    // Assess
    expect(pushed.outcome).toBe("recorded");
    expect(header.formatVersion).toBe(2);
    expect(header.pages.length).toBeGreaterThanOrEqual(6);
    const keys = await listKeys(clients.store, stack.config.incomingBucket, pushed.manifestKey.replace(/manifest\.json$/, "pages/"));
    expect(keys).toEqual(header.pages.map((_, i) => snapshotPageKey(pushed.manifestKey, i)));
    expect(pushed.record!.manifestSha256).toBe(pushed.manifestSha256);
    expect(pushed.record!.manifestKey).toBe(vaultSnapshotManifestKey(GEN, pushed.snapshotId));
    expect(pushed.totals.files).toBe(44);
  });

  it("takes the pages a bounded number per invocation: ValidatePages, CheckReferenced and PromoteManifest each run ceil(pages / WALVAULT_INGEST_PAGES) times", () => {
    // Assess
    const rounds = Math.ceil(header.pages.length / INGEST_PAGES);
    expect(countOf("ValidateManifest", since)).toBe(1);
    expect(countOf("ValidatePages", since)).toBe(rounds);
    expect(countOf("CheckReferenced", since)).toBe(rounds);
    expect(countOf("PromoteManifest", since)).toBe(rounds);
    // The state carries cursors and batch indexes, not page contents or chunk lists.
    const largest = Math.max(...invocations.slice(since).filter((i) => i.state === "ValidatePages").map((i) => i.inputBytes));
    expect(largest).toBeLessThan(8 * KiB);
    console.log("paged push", JSON.stringify({ pages: header.pages.length, rounds, largestValidatePagesInput: largest, largestState: stack.workflowStats["snapshot-ingest"].largestState }));
  });

  it("promotes every page and then the header into the vault, byte for byte, each with its digest", async () => {
    // Assess
    const vaultKey = vaultSnapshotManifestKey(GEN, pushed.snapshotId);
    const vaultHeader = await clients.store.get(stack.config.vaultBucket, vaultKey);
    expect(sha256Hex(vaultHeader!.body)).toBe(pushed.manifestSha256);
    const keys = await listKeys(clients.store, stack.config.vaultBucket, vaultKey.replace(/manifest\.json$/, "pages/"));
    expect(keys).toHaveLength(header.pages.length);
    for (const [i, ref] of header.pages.entries()) {
      const page = await clients.store.get(stack.config.vaultBucket, snapshotPageKey(vaultKey, i));
      expect(page!.body.length, `page ${i}`).toBe(ref.bytes);
      expect(sha256Hex(page!.body), `page ${i}`).toBe(ref.sha256);
      expect(parseObjectMeta(page!.metadata, `page ${i}`)).toEqual({ sha256: ref.sha256, codec: "none", size: ref.bytes });
    }
  });

  it("puts every new chunk into the vault and the catalog", async () => {
    // Assess
    const chunks = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/chunks/`);
    expect(chunks.length).toBe(pushed.totals.uniqueChunks);
    const recorded = await clients.catalog.missingChunks(GEN, chunks.map((k) => k.slice(k.lastIndexOf("/") + 1)));
    expect(recorded).toEqual([]);
  });

  it("a second, packed, paged push of the changed tree reuses the stored chunks (known from the previous paged manifest) and is recorded", async () => {
    // Prepare
    writeFileSync(join(dir, "data", "big-1"), randomFillSync(Buffer.alloc(256 * KiB)));
    // Act
    const second = await snapshotPush(source(dir), cfg(), clients, {
      packs: true,
      manifestPages: true,
      manifestPageLimits: PAGE_LIMITS,
      chunker: SMALL_CHUNKER,
      timeoutMs: 180_000,
    });
    // Assess
    expect(second.outcome).toBe("recorded");
    // The previous (paged) manifest seeded the known chunks, a page at a time: only the changed file's chunks were looked up.
    expect(second.warnings).toEqual([]);
    expect(second.previousSnapshotId).toBe(pushed.snapshotId);
    expect(second.lookups.previousManifestChunks).toBe(pushed.totals.uniqueChunks);
    expect(second.totals.newChunks).toBeLessThan(second.totals.chunks);
    expect(second.totals.newChunks).toBeGreaterThan(0);
    expect(second.packs!.uploaded).toBeGreaterThan(0);
    const h = await headerOf(second, stack.config.vaultBucket, vaultSnapshotManifestKey(GEN, second.snapshotId));
    expect(h.packs).toEqual(second.packs!.names);
    expect(h.pages.length).toBeGreaterThan(1);

    // Act: restore the latest (the second, paged and packed) snapshot.
    const to = join(work, "restored");
    const restored = await restore(clients, { ...stack.config }, { databaseId: GEN, target: { kind: "latest" }, toDir: to, parallel: 4 });

    // Assess: every file as it is in the changed tree, byte for byte.
    expect(restored.snapshotId).toBe(second.snapshotId);
    expect(filesOf(to)).toEqual(filesOf(dir));
  }, 240_000);
});

describe("a paged push whose page changed after the header bound it", () => {
  it("is quarantined, the reason naming the page and its key, and not recorded", async () => {
    // Prepare: a store that changes page 1 on its way to incoming (same length, other bytes).
    const dir = makeTree("tampered");
    const tampered = (key: string): boolean => key.endsWith("/pages/000001.json");
    const store = new Proxy(clients.store, {
      get(target, prop, receiver) {
        if (prop === "put") {
          return (bucket: string, key: string, body: Uint8Array, meta: Record<string, string>) =>
            target.put(bucket, key, tampered(key) ? Buffer.from(Buffer.from(body).toString("utf8").replace('"mode":420', '"mode":384'), "utf8") : body, meta);
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as ObjectStore;
    // Act
    const refused = await snapshotPush(source(dir), cfg(), { ...clients, store }, {
      packs: false,
      manifestPages: true,
      manifestPageLimits: PAGE_LIMITS,
      chunker: SMALL_CHUNKER,
      timeoutMs: 180_000,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Assess
    expect(refused).toBeInstanceOf(QuarantinedError);
    expect((refused as Error).message).toMatch(/pages\[1\]\.sha256/);
    expect((refused as Error).message).toContain("pages/000001.json");
    const snapshotId = /snapshot (\d{8}T\d{6}Z-[0-9a-f]{6})/.exec((refused as Error).message)?.[1];
    const recorded = await clients.catalog.listSnapshots(GEN);
    expect(recorded.map((s) => s.snapshotId)).not.toContain(snapshotId);
    expect(recorded).toHaveLength(2);
    const q = (await clients.catalog.listQuarantine(GEN)).filter((r) => r.error === "ManifestInvalidError");
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toContain("pages/000001.json");
  }, 240_000);
});

describe("format 1, as older agents wrote it (WALVAULT_MANIFEST_PAGES=0)", () => {
  it("is still written on request and recorded, and the next (paged, default) push seeds its known chunks from it and restores", async () => {
    // Prepare
    const dir = makeTree("format1");
    const saved = process.env.WALVAULT_MANIFEST_PAGES;
    process.env.WALVAULT_MANIFEST_PAGES = "0";
    let first: SnapshotPushResult;
    try {
      // Act
      first = await snapshotPush(source(dir), cfg(), clients, { packs: true, chunker: SMALL_CHUNKER, timeoutMs: 180_000 });
    } finally {
      if (saved === undefined) delete process.env.WALVAULT_MANIFEST_PAGES;
      else process.env.WALVAULT_MANIFEST_PAGES = saved;
    }
    writeFileSync(join(dir, "data", "big-2"), randomFillSync(Buffer.alloc(256 * KiB)));
    const second = await snapshotPush(source(dir), cfg(), clients, { packs: true, chunker: SMALL_CHUNKER, timeoutMs: 180_000 });

    // Assess: one JSON document with its files, then a paged one seeded from it.
    const doc = JSON.parse((await clients.store.get(stack.config.vaultBucket, vaultSnapshotManifestKey(GEN, first.snapshotId)))!.body.toString("utf8")) as { formatVersion: number; files: unknown[] };
    expect(first.outcome).toBe("recorded");
    expect(doc.formatVersion).toBe(1);
    expect(doc.files).toHaveLength(first.totals.files + first.totals.directories + first.totals.symlinks);
    expect(second.outcome).toBe("recorded");
    expect(second.warnings).toEqual([]);
    expect(second.previousSnapshotId).toBe(first.snapshotId);
    expect(second.lookups.previousManifestChunks).toBe(first.totals.uniqueChunks);
    expect((await headerOf(second, stack.config.vaultBucket, vaultSnapshotManifestKey(GEN, second.snapshotId))).formatVersion).toBe(2);
    const to = join(work, "restored-format1");
    const restored = await restore(clients, { ...stack.config }, { databaseId: GEN, target: { kind: "snapshot", id: first.snapshotId }, toDir: to, parallel: 4 });
    expect(restored.snapshotId).toBe(first.snapshotId);
    expect(filesOf(to).get("data/big-0")).toBe(filesOf(dir).get("data/big-0"));
    expect(filesOf(to).get("data/big-2")).not.toBe(filesOf(dir).get("data/big-2"));
  }, 240_000);
});

describe("a small manifest is one object: the header carries its pages", () => {
  const pagesUnder = (bucket: string, manifestKey: string): Promise<string[]> => listKeys(clients.store, bucket, manifestKey.replace(/manifest\.json$/, "pages/"));

  it("with the default limits: no page object in incoming or the vault, recorded, restored byte for byte", async () => {
    // Prepare
    const dir = makeTree("inline-default");
    // Act
    const pushed = await snapshotPush(source(dir), cfg(), clients, { packs: true, chunker: SMALL_CHUNKER, timeoutMs: 180_000 });
    // Assess
    const vaultKey = vaultSnapshotManifestKey(GEN, pushed.snapshotId);
    const header = await headerOf(pushed, stack.config.vaultBucket, vaultKey);
    expect(pushed.outcome).toBe("recorded");
    expect(header.pages.length).toBeGreaterThan(0);
    expect(header.pages.every((r) => r.text !== undefined)).toBe(true);
    expect(await pagesUnder(stack.config.incomingBucket, pushed.manifestKey)).toEqual([]);
    expect(await pagesUnder(stack.config.vaultBucket, vaultKey)).toEqual([]);
    const to = join(work, "restored-inline-default");
    const restored = await restore(clients, { ...stack.config }, { databaseId: GEN, target: { kind: "snapshot", id: pushed.snapshotId }, toDir: to, parallel: 4 });
    expect(restored.snapshotId).toBe(pushed.snapshotId);
    expect(filesOf(to)).toEqual(filesOf(dir));
  }, 240_000);

  it("of many pages, while they fit: ingest still takes them a bounded number per invocation; past the bound, every page is an object again", async () => {
    // Prepare: the same small pages, all of them fitting the header
    const dir = makeTree("inline-pages");
    const since = invocations.length;
    // Act
    const inline = await snapshotPush(source(dir), cfg(), clients, {
      packs: true,
      manifestPageLimits: { ...PAGE_LIMITS, inlineBytes: 1024 * KiB },
      chunker: SMALL_CHUNKER,
      timeoutMs: 180_000,
    });
    const rounds = countOf("ValidatePages", since);
    const inlineKey = vaultSnapshotManifestKey(GEN, inline.snapshotId);
    const h1 = await headerOf(inline, stack.config.vaultBucket, inlineKey);
    // Act: a bound the first two pages fill; the third outgrows it
    const outgrown = await snapshotPush(source(dir), cfg(), clients, {
      packs: true,
      manifestPageLimits: { ...PAGE_LIMITS, inlineBytes: h1.pages[0]!.bytes + h1.pages[1]!.bytes },
      chunker: SMALL_CHUNKER,
      timeoutMs: 180_000,
    });
    // Assess
    expect(inline.outcome).toBe("recorded");
    expect(h1.pages.length).toBeGreaterThanOrEqual(6);
    expect(h1.pages.every((r) => r.text !== undefined)).toBe(true);
    expect(await pagesUnder(stack.config.vaultBucket, inlineKey)).toEqual([]);
    expect(rounds).toBe(Math.ceil(h1.pages.length / INGEST_PAGES));
    const outgrownKey = vaultSnapshotManifestKey(GEN, outgrown.snapshotId);
    const h2 = await headerOf(outgrown, stack.config.vaultBucket, outgrownKey);
    expect(outgrown.outcome).toBe("recorded");
    expect(h2.pages.length).toBe(h1.pages.length);
    expect(h2.pages.some((r) => r.text !== undefined)).toBe(false);
    expect(await pagesUnder(stack.config.incomingBucket, outgrown.manifestKey)).toEqual(h2.pages.map((_, i) => snapshotPageKey(outgrown.manifestKey, i)));
    expect(await pagesUnder(stack.config.vaultBucket, outgrownKey)).toEqual(h2.pages.map((_, i) => snapshotPageKey(outgrownKey, i)));
  }, 240_000);
});
