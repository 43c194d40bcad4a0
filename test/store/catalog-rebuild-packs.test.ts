/**
 * Catalog rebuild from pack indexes (store/catalog-rebuild.ts, docs/packs.md
 * item 6) on the local stack: a vault holding packs, chunk objects from
 * before packs and manifests using both is rebuilt, into a new table, to the
 * chunk locations that were recorded (pack and offset, or the chunk's own
 * object), reading one ranged tail per pack and no pack data; a pack whose
 * tail is corrupt is skipped and named, and so are the snapshots using its
 * chunks; a chunk in two packs is recorded in the newest.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey, vaultChunkKey, vaultPackKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { PACK_TAIL_READ_BYTES, PackBuilder } from "../../core/pack.js";
import { META_DATABASE } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { openCatalogTable, rebuildCatalog } from "../../store/catalog-rebuild.js";
import type { ObjectStore } from "../../store/object-store.js";
import { stackClients } from "../support/harness.js";
import { makeChunk, packItem, putPackedManifest, storeChunkObject, storeRecordedPacks, type PackedVault } from "./packed-vault.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "gen-packs";
let stack: TestStack;
let catalog: Catalog;
let store: ObjectStore;
let bucket: string;

const vault = (): PackedVault => ({ store, bucket, catalog, databaseId: DB });

const without = <T extends object>(o: T, ...keys: string[]): Partial<T> => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k))) as Partial<T>;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, kind: "generic" }]);
  const clients = stackClients(stack);
  catalog = clients.catalog;
  store = clients.store;
  bucket = stack.config.vaultBucket;
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("catalog rebuild from pack indexes", () => {
  it("rebuilds the recorded chunk locations from packs and chunk objects, skips and names a pack with a corrupt tail and the snapshot using it, and keeps the newest of two packs holding a chunk", async () => {
    // Prepare
    // S1: 12 new chunks in 2 packs, reusing one chunk object from before packs.
    const loose = await makeChunk("loose");
    await storeChunkObject(vault(), loose);
    const first = await Promise.all(Array.from({ length: 12 }, (_, i) => makeChunk(`s1 ${i}`)));
    const firstPacks = await storeRecordedPacks(vault(), first);
    const { snapshotId: s1 } = await putPackedManifest(vault(), [{ c: loose, isNew: false }, ...first.map((c) => ({ c, isNew: true }))], firstPacks, new Date("2026-11-01T00:00:00Z"));
    // S2: reuses 3 chunks of S1, 5 new ones, one of which a repack also wrote into a second pack.
    const second = await Promise.all(Array.from({ length: 5 }, (_, i) => makeChunk(`s2 ${i}`)));
    const secondPacks = await storeRecordedPacks(vault(), second);
    const repacked = await storeRecordedPacks(vault(), [second[0]!, await makeChunk("repack filler")]);
    const { snapshotId: s2 } = await putPackedManifest(vault(), [...first.slice(0, 3).map((c) => ({ c, isNew: false })), ...second.map((c) => ({ c, isNew: true }))], secondPacks, new Date("2026-11-02T00:00:00Z"));
    // S3: its own pack, whose index is then damaged in the vault.
    const third = await Promise.all(Array.from({ length: 3 }, (_, i) => makeChunk(`s3 ${i}`)));
    const [broken] = await storeRecordedPacks(vault(), third);
    const { snapshotId: s3 } = await putPackedManifest(vault(), third.map((c) => ({ c, isNew: true })), [broken!], new Date("2026-11-03T00:00:00Z"));
    const brokenKey = vaultPackKey(DB, broken!.name);
    const damaged = Buffer.from(broken!.bytes);
    damaged[broken!.dataLength + 40] = damaged[broken!.dataLength + 40]! ^ 0xff; // a byte of the first index entry
    await store.put(bucket, brokenKey, damaged, { [META_DATABASE]: DB });
    const all = [loose, ...first, ...second, ...third];
    const recorded = await catalog.getChunks(DB, all.map((c) => c.sha256));
    // The rule for the chunk in two packs: the pack listed with the later Last-Modified, then the greater name.
    const listed = new Map<string, number>();
    for await (const o of store.list(bucket, `db/${DB}/packs/`)) listed.set(o.key, o.lastModified?.getTime() ?? 0);
    const candidates = [secondPacks.find((p) => p.entries.some((e) => e.sha256 === second[0]!.sha256))!, repacked[0]!].map((p) => vaultPackKey(DB, p.name));
    const newest = [...candidates].sort((a, b) => listed.get(a)! - listed.get(b)! || (a < b ? -1 : 1)).at(-1)!;
    const target = (await openCatalogTable({ region: stack.config.region, dynamodbEndpoint: stack.config.dynamodbEndpoint, credentials: stack.config.credentials, table: "rebuilt-packs" })).catalog;
    const reads: string[] = [];
    const counted = Object.create(store) as ObjectStore;
    counted.get = (b, k, v) => (reads.push(`get ${k}`), store.get(b, k, v));
    counted.getRange = (b, k, s, e) => (reads.push(`range ${k} ${s}-${e}`), store.getRange(b, k, s, e));

    // Act
    const r = await rebuildCatalog({ store: counted, bucket }, target, { databaseIds: [DB] });
    const again = await rebuildCatalog({ store, bucket }, target, { databaseIds: [DB] });

    // Assess
    const d = r.databases[0]!;
    expect(d.skipped.map((s) => s.key).sort()).toEqual([brokenKey, vaultSnapshotManifestKey(DB, s3)].sort());
    expect(d.skipped.find((s) => s.key === brokenKey)!.reason).toMatch(/index does not match the checksum in its footer/);
    expect(d.skipped.find((s) => s.key.endsWith("manifest.json"))!.reason).toMatch(/references 3 chunk\(s\) the bucket does not hold/);
    expect(d).toMatchObject({ kind: "generic", snapshots: 2, packs: firstPacks.length + secondPacks.length + repacked.length, chunks: 1 + 12 + 5 + 1 });
    expect((await target.listSnapshots(DB)).map((s) => s.snapshotId)).toEqual([s1, s2]);
    // Locations: as recorded, except the chunk in two packs (the newest) and the broken pack's (none).
    const rebuilt = await target.getChunks(DB, all.map((c) => c.sha256));
    const expected = recorded
      .filter((c) => !third.some((t) => t.sha256 === c.sha256))
      .map((c) => (c.sha256 === second[0]!.sha256 ? { ...c, vaultKey: newest, offset: 0 } : c))
      .map((c) => without(c, "recordedAt"));
    expect(rebuilt.map((c) => without(c, "recordedAt"))).toEqual(expected);
    expect(rebuilt.find((c) => c.sha256 === loose.sha256)).toMatchObject({ vaultKey: vaultChunkKey(DB, loose.sha256) });
    expect(rebuilt.find((c) => c.sha256 === loose.sha256)?.offset).toBeUndefined();
    for (const p of [...firstPacks, ...secondPacks, ...repacked]) {
      expect(without((await target.getPack(DB, p.name))!, "recordedAt")).toEqual(without(packItem(DB, p, ""), "recordedAt"));
    }
    expect(await target.getPack(DB, broken!.name)).toBeUndefined();
    // One explicit-range read of each pack's tail (the whole pack: these are smaller than PACK_TAIL_READ_BYTES), no whole-pack GET.
    const packReads = reads.filter((x) => x.includes("/packs/"));
    expect(packReads.every((x) => x.startsWith("range "))).toBe(true);
    expect(packReads.length).toBe(listed.size);
    expect(firstPacks[0]!.bytes.length).toBeLessThan(PACK_TAIL_READ_BYTES);
    expect(packReads).toContain(`range ${vaultPackKey(DB, firstPacks[0]!.name)} 0-${firstPacks[0]!.bytes.length - 1}`);
    expect(again.databases[0]!.added).toEqual({ wal: 0, snapshots: 0, chunks: 0 });
  });

  it("records a format-2 snapshot read page by page, never takes a page for a manifest, and skips one whose page is missing", async () => {
    // Prepare: two snapshots with manifests on pages of 4 chunk references; page 2 of the second is gone.
    const db = "gen-paged-rb";
    const v: PackedVault = { ...vault(), databaseId: db };
    const pages = { chunks: 4, bytes: 1 << 20 };
    const a = await Promise.all(Array.from({ length: 14 }, (_, i) => makeChunk(`paged a ${i}`)));
    const { snapshotId: good, manifestKey: goodKey, manifestSha256 } = await putPackedManifest(v, a.map((c) => ({ c, isNew: true })), await storeRecordedPacks(v, a), new Date("2026-11-04T00:00:00Z"), pages);
    const b = await Promise.all(Array.from({ length: 14 }, (_, i) => makeChunk(`paged b ${i}`)));
    const { manifestKey: badKey } = await putPackedManifest(v, b.map((c) => ({ c, isNew: true })), await storeRecordedPacks(v, b), new Date("2026-11-05T00:00:00Z"), pages);
    await store.delete(bucket, snapshotPageKey(badKey, 2));
    const target = (await openCatalogTable({ region: stack.config.region, dynamodbEndpoint: stack.config.dynamodbEndpoint, credentials: stack.config.credentials, table: "rebuilt-paged" })).catalog;

    // Act
    const r = await rebuildCatalog({ store, bucket }, target, { databaseIds: [db] });

    // Assess: the good snapshot recorded with its header's SHA-256; the other skipped naming the page, and its pages reported with it.
    const d = r.databases[0]!;
    expect((await target.listSnapshots(db)).map((s) => [s.snapshotId, s.manifestKey, s.manifestSha256])).toEqual([[good, goodKey, manifestSha256]]);
    expect(d.skipped.find((s) => s.key === badKey)?.reason).toMatch(/pages\[2\]/);
    expect(d.skipped.filter((s) => s.key.startsWith(goodKey.replace("manifest.json", "")))).toEqual([]);
    expect(d.skipped.map((s) => s.key).sort()).toEqual([badKey, ...[0, 1, 3].map((i) => snapshotPageKey(badKey, i))].sort());
  });

  it("reads only the last PACK_TAIL_READ_BYTES of a pack larger than that", async () => {
    // Prepare: a pack over 1 MiB (incompressible chunks, 2 MiB target), in a database of its own.
    const db = "gen-bigpack";
    const b = new PackBuilder({ targetSize: 2 * 1024 * 1024 });
    for (let i = 0; i < 12; i++) {
      const raw = randomBytes(128 * 1024);
      b.add({ sha256: sha256Hex(raw), rawSize: raw.length, codec: "none", stored: raw });
    }
    const pack = b.finish();
    const key = vaultPackKey(db, pack.name);
    await store.put(bucket, key, pack.bytes, { [META_DATABASE]: db });
    const reads: string[] = [];
    const counted = Object.create(store) as ObjectStore;
    counted.get = (bk, k, v) => (reads.push(`get ${k}`), store.get(bk, k, v));
    counted.getRange = (bk, k, s, e) => (reads.push(`range ${k} ${s}-${e}`), store.getRange(bk, k, s, e));
    const target = (await openCatalogTable({ region: stack.config.region, dynamodbEndpoint: stack.config.dynamodbEndpoint, credentials: stack.config.credentials, table: "rebuilt-bigpack" })).catalog;
    await target.putDatabase({ databaseId: db, kind: "generic", walSegmentSize: 16 * 1024 * 1024, createdAt: new Date().toISOString() });

    // Act
    const r = await rebuildCatalog({ store: counted, bucket }, target, { databaseIds: [db] });

    // Assess
    expect(r.databases[0]).toMatchObject({ packs: 1, chunks: 12, skipped: [] });
    expect(reads).toEqual([`range ${key} ${pack.bytes.length - PACK_TAIL_READ_BYTES}-${pack.bytes.length - 1}`]);
    const located = await target.getChunks(db, pack.entries.map((e) => e.sha256));
    expect(located.map((c) => [c.vaultKey, c.offset, c.storedSize])).toEqual(pack.entries.map((e) => [key, e.offset, e.storedLength]));
  });
});
