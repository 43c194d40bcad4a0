/**
 * Verification L1 and L2 (agent/verify.ts) of snapshots whose chunks live
 * in packs (docs/packs.md): each chunk is checked where the catalog locates
 * it. Snapshots are put into the vault by test/support/snapshots.ts, then
 * their chunks moved into packs (test/support/pack-chunks.ts). Each case
 * runs over a manifest in format 1 and in format 2 (pages of a few chunk
 * references, files cut across them): the outcome must be the same.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { snapshotPageKey, vaultPackKey } from "../../core/keys.js";
import { verifySnapshot, type VerifyRequest } from "../../agent/verify.js";
import type { RestoreConfig } from "../../agent/restore.js";
import type { Catalog } from "../../store/catalog.js";
import { stackClients, tempDir } from "../support/harness.js";
import { packChunks } from "../support/pack-chunks.js";
import { seededBytes } from "../support/retention.js";
import { countingStore, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const FORMATS = [1, 2] as const;
const GOOD = "gen-verify-packed";
const FLIPPED = "gen-verify-flipped";
const GONE = "gen-verify-gone";
const BAD_PAGE = "gen-verify-bad-page";
/** Format 2 with small pages: several pages, files cut across them. */
const SMALL_PAGES = { chunks: 6, bytes: 2048 };

let stack: TestStack;
let cfg: RestoreConfig;
let store: ReturnType<typeof countingStore>;
let catalog: Catalog;
let work: string;
let source: string;

const upload = (databaseId: string, format: 1 | 2 = 1): Promise<UploadedSnapshot> =>
  uploadSnapshotDir({ store, catalog }, cfg, {
    ...(format === 2 ? { pages: SMALL_PAGES } : {}),
    databaseId,
    dir: source,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: "MANIFEST-000001", lastSegno: 0 }] },
    startedAt: new Date("2026-03-01T10:30:00.000Z"),
    finishedAt: new Date("2026-03-01T10:31:00.000Z"),
    chunker: SMALL_CHUNKER,
  });

const request = (databaseId: string, snap: UploadedSnapshot, level: 1 | 2): VerifyRequest => ({
  databaseId,
  snapshotId: snap.record.snapshotId,
  level,
  workDir: join(work, "verify"),
  log: () => undefined,
});

beforeAll(async () => {
  const ids = [...FORMATS.flatMap((f) => [GOOD, FLIPPED, GONE].map((id) => `${id}-${f}`)), BAD_PAGE];
  stack = await startTestStack(ids.map((id) => ({ id, kind: "generic" as const })));
  const base = stackClients(stack);
  store = countingStore(base.store);
  catalog = base.catalog;
  cfg = { ...stack.config, path: stack.configPath };
  work = tempDir("walvault-verify-packs-");
  source = join(work, "source");
  mkdirSync(join(source, "sst"), { recursive: true });
  writeFileSync(join(source, "sst", "000001.sst"), seededBytes(5, 200_000));
  writeFileSync(join(source, "sst", "000002.sst"), seededBytes(6, 80_000));
  writeFileSync(join(source, "MANIFEST-000001"), "generation 1\n");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe.each(FORMATS)("verification of a snapshot whose chunks are in packs (manifest format %i)", (format) => {
  const GOOD_DB = `${GOOD}-${format}`;
  const FLIPPED_DB = `${FLIPPED}-${format}`;
  const GONE_DB = `${GONE}-${format}`;
  it("passes L2 reading packed chunks with coalesced ranged GETs and old single-object chunks whole", async () => {
    // Prepare: the first file's chunks in packs of up to 128 KiB; the others stay objects of their own
    const snap = await upload(GOOD_DB, format);
    const { packs, packOf } = await packChunks({ store, catalog }, cfg, GOOD_DB, snap.chunksOf.get("sst/000001.sst")!, 128 * 1024);
    const singles = new Set([...snap.chunksOf.values()].flat().filter((h) => !packOf.has(h)));
    store.reset();

    // Act
    const run = await verifySnapshot({ store, catalog }, cfg, request(GOOD_DB, snap, 2));

    // Assess: one ranged GET per pack, one GET per single chunk, never one per packed chunk
    expect(run).toMatchObject({ outcome: "passed", level: 2 });
    expect(run.checks.find((c) => c.level === 1 && c.name.startsWith("objects"))?.detail).toContain(`(${packs.length} packs)`);
    expect(packs.length).toBeGreaterThanOrEqual(2);
    expect(packOf.size).toBeGreaterThan(packs.length * 5);
    const gets = store.gets.filter((k) => !k.includes("/snapshots/"));
    expect(gets.filter((k) => k.includes("/packs/")).sort()).toEqual(packs.map((p) => vaultPackKey(GOOD_DB, p.name)).sort());
    expect(gets.filter((k) => k.includes("/chunks/"))).toHaveLength(singles.size);
  });

  it("fails L2 on a flipped byte in a pack, naming the chunk, a file that uses it and the pack", async () => {
    // Prepare
    const snap = await upload(FLIPPED_DB, format);
    const { packs } = await packChunks({ store, catalog }, cfg, FLIPPED_DB, [...snap.chunksOf.values()].flat(), 1024 * 1024);
    const pack = packs[0]!;
    const victim = snap.chunksOf.get("sst/000002.sst")![2]!;
    const entry = pack.entries.find((e) => e.sha256 === victim)!;
    const key = vaultPackKey(FLIPPED_DB, pack.name);
    const bytes = Buffer.from(pack.bytes);
    bytes[entry.offset + (entry.storedLength >> 1)]! ^= 0x01;
    await store.put(cfg.vaultBucket, key, bytes, {});

    // Act
    const l1 = await verifySnapshot({ store, catalog }, cfg, request(FLIPPED_DB, snap, 1));
    const l2 = await verifySnapshot({ store, catalog }, cfg, request(FLIPPED_DB, snap, 2));

    // Assess: L1 (sizes and presence) cannot see it; L2 does
    expect(l1).toMatchObject({ outcome: "passed" });
    expect(l2).toMatchObject({ outcome: "failed", failedLevel: 2 });
    expect(l2.failure).toContain(`chunk ${victim} of file "sst/000002.sst"`);
    expect(l2.failure).toContain(`pack ${key}, bytes ${entry.offset}-${entry.offset + entry.storedLength - 1}`);
  });

  it("fails L1 when a pack is missing, naming the chunk and the pack, with HEADs only", async () => {
    // Prepare
    const snap = await upload(GONE_DB, format);
    const { packs } = await packChunks({ store, catalog }, cfg, GONE_DB, [...snap.chunksOf.values()].flat(), 128 * 1024);
    const gone = vaultPackKey(GONE_DB, packs[1]!.name);
    await store.delete(cfg.vaultBucket, gone);
    store.reset();

    // Act
    const run = await verifySnapshot({ store, catalog }, cfg, request(GONE_DB, snap, 1));

    // Assess
    expect(run).toMatchObject({ outcome: "failed", failedLevel: 1 });
    expect(run.failure).toMatch(new RegExp(`^chunk [0-9a-f]{64} of file \\S+ is missing from the vault: its pack ${gone} does not exist$`));
    expect(store.gets.filter((k) => !k.includes("/snapshots/"))).toEqual([]);
  });
});

describe("verification of a format-2 snapshot", () => {
  it("fails L1 on a page that does not match the header's digest, naming the page, before reading a chunk", async () => {
    // Prepare: one byte of page 1 changed
    const snap = await upload(BAD_PAGE, 2);
    const key = snapshotPageKey(snap.record.manifestKey, 1);
    const page = (await store.get(cfg.vaultBucket, key))!;
    const body = Buffer.from(page.body);
    body[10] = body[10] === 0x61 ? 0x62 : 0x61;
    await store.put(cfg.vaultBucket, key, body, page.metadata);
    store.reset();

    // Act
    const run = await verifySnapshot({ store, catalog }, cfg, request(BAD_PAGE, snap, 2));

    // Assess
    expect(run).toMatchObject({ outcome: "failed", failedLevel: 1 });
    expect(run.checks.find((c) => !c.ok)?.name).toBe("manifest");
    expect(run.failure).toContain("pages[1]");
    expect(store.gets.filter((k) => !k.includes("/snapshots/"))).toEqual([]);
  });
});
