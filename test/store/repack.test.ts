/**
 * store/repack.ts with the catalog on DynamoDB Local and the vault in
 * memory: live chunks of sparse packs move to one new, valid pack, put in
 * every region; a pack with a damaged live chunk is left exactly as it was
 * (nothing moved, not marked) while the others are repacked; a call never
 * takes more than REPACK_MAX_PACKS packs.
 */
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { vaultPackKey } from "../../core/keys.js";
import { verifyPack } from "../../core/pack.js";
import type { PackItem } from "../../core/schemas.js";
import { readPackIndex } from "../../store/pack-index.js";
import { REPACK_MAX_PACKS, repackPacks } from "../../store/repack.js";
import { GDB, memoryVault, packedFixtures } from "./pack-retention-fixture.js";
import { makeChunk, storeRecordedPacks, type Chunk } from "./packed-vault.js";

const newFixture = packedFixtures();
const NOW = new Date("2026-06-01T00:00:00.000Z");

async function sparsePack(f: Awaited<ReturnType<typeof newFixture>>, tag: string): Promise<{ item: PackItem; live: Chunk[] }> {
  const chunks = await Promise.all(Array.from({ length: 6 }, (_, i) => makeChunk(`${tag} ${i}`)));
  const [built] = await storeRecordedPacks(f.v, chunks);
  const item = (await f.catalog.getPack(GDB, built!.name))!;
  return { item, live: [chunks[1]!, chunks[4]!] };
}

describe("repackPacks", () => {
  it("moves the live chunks of two packs into one new pack in every region, marks the old ones repacked and candidates, and leaves a damaged one as it was", async () => {
    // Prepare: three sparse packs; a live chunk of the third is damaged in the vault. A second region.
    const f = await newFixture();
    const replica = memoryVault();
    const regions = [...f.regions, { region: "r2", store: replica, bucket: "vault", primary: false }];
    const [a, b, damaged] = [await sparsePack(f, "a"), await sparsePack(f, "b"), await sparsePack(f, "d")];
    const badRecord = (await f.catalog.getChunks(GDB, [damaged!.live[0]!.sha256]))[0]!;
    f.vault.objects.get(damaged!.item.vaultKey)![badRecord.offset! + 5]! ^= 0xff;
    const referenced = new Set([a, b, damaged].flatMap((p) => p!.live.map((c) => c.sha256)));

    // Act
    const results = await repackPacks(GDB, [a!.item, b!.item, damaged!.item], referenced, f.catalog, regions, { now: NOW, targetSize: 64 * 1024 });

    // Assess: a and b moved into one new pack, valid, in both regions, recorded.
    expect(results.map((r) => [r.name, r.moved, r.left, r.error === undefined])).toEqual([
      [a!.item.name, 2, 4, true],
      [b!.item.name, 2, 4, true],
      [damaged!.item.name, 0, 0, false],
    ]);
    expect(results[2]!.error).toMatch(/does not (decode|hash to its name)/);
    const newName = results[0]!.into[0]!;
    expect(results[1]!.into).toEqual([newName]);
    const newKey = vaultPackKey(GDB, newName);
    for (const store of [f.vault, replica]) expect(verifyPack(store.objects.get(newKey)!, newName).entries).toHaveLength(4);
    expect((await f.catalog.getPack(GDB, newName))?.entries).toBe(4);
    const moved = await f.catalog.getChunks(GDB, [...a!.live, ...b!.live].map((c) => c.sha256));
    expect(moved.map((r) => r.vaultKey)).toEqual([newKey, newKey, newKey, newKey]);
    // The old packs are repacked candidates now, still whole; the damaged one is untouched and not marked.
    for (const p of [a!, b!]) {
      expect((await f.catalog.getPack(GDB, p.item.name))?.orphanedAt).toBe(NOW.toISOString());
      expect((await f.catalog.getPack(GDB, p.item.name))?.repackedAt).toBe(NOW.toISOString());
      expect(f.vault.objects.has(p.item.vaultKey)).toBe(true);
    }
    expect(await f.catalog.getPack(GDB, damaged!.item.name)).toEqual(damaged!.item);
    expect((await f.catalog.getChunks(GDB, damaged!.live.map((c) => c.sha256))).map((r) => r.vaultKey)).toEqual([damaged!.item.vaultKey, damaged!.item.vaultKey]);
  });

  it("copies every live chunk its index lists, whichever pack the chunk's record names, and records each at the new pack (creating a missing record)", async () => {
    // Prepare: pack P of six chunks; live: 1 (record names P), 2 (record names pack A, uploaded again), 3 (no record). Dead: 4 (record names A).
    const f = await newFixture();
    const chunks = await Promise.all(Array.from({ length: 6 }, (_, i) => makeChunk(`p ${i}`)));
    const [built] = await storeRecordedPacks(f.v, chunks);
    const P = (await f.catalog.getPack(GDB, built!.name))!;
    const entries = (await readPackIndex(f.vault, "vault", P))!;
    const [c1, c2, c3, c4] = [1, 2, 3, 4].map((i) => chunks[i]!.sha256);
    const [A] = await storeRecordedPacks(f.v, [chunks[2]!, chunks[4]!]);
    const aKey = vaultPackKey(GDB, A!.name);
    await f.catalog.deleteChunks(GDB, [c3!]);
    const before = new Map((await f.catalog.getChunks(GDB, [c1!, c2!, c4!])).map((r) => [r.sha256, r.vaultKey]));

    // Act
    const [result] = await repackPacks(GDB, [P], new Set([c1!, c2!, c3!]), f.catalog, f.regions, { now: NOW, targetSize: 64 * 1024 });

    // Assess: all three live chunks copied and recorded at the new pack, with the sizes and codec its index gives; the dead one's record is untouched.
    expect(before.get(c2!)).toBe(aKey);
    expect(entries.map((e) => e.sha256)).toEqual(expect.arrayContaining([c1, c2, c3]));
    expect([result!.moved, result!.left, result!.error]).toEqual([3, 2, undefined]);
    const newKey = vaultPackKey(GDB, result!.into[0]!);
    const newEntries = verifyPack(f.vault.objects.get(newKey)!, result!.into[0]!).entries;
    expect(newEntries.map((e) => e.sha256).sort()).toEqual([c1, c2, c3].sort());
    const after = await f.catalog.getChunks(GDB, [c1!, c2!, c3!, c4!]);
    expect(after.map((r) => [r.sha256, r.vaultKey])).toEqual([
      [c1, newKey],
      [c2, newKey],
      [c3, newKey],
      [c4, aKey],
    ]);
    for (const r of after.slice(0, 3)) {
      const e = newEntries.find((x) => x.sha256 === r.sha256)!;
      expect([r.offset, r.storedSize, r.size, r.codec]).toEqual([e.offset, e.storedLength, e.rawSize, e.codec]);
    }
  });

  it("refuses more than REPACK_MAX_PACKS packs in one call", async () => {
    // Prepare
    const f = await newFixture();
    const { item } = await sparsePack(f, "x");
    // Act + Assess
    await expect(repackPacks(GDB, Array.from({ length: REPACK_MAX_PACKS + 1 }, () => item), new Set(), f.catalog, f.regions, { now: NOW })).rejects.toBeInstanceOf(InvalidInputError);
  });
});
