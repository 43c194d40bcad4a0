/**
 * store/pack-index.ts: a recorded pack's index read with one ranged GET and
 * checked against the record; the cache reads each pack's record and index
 * once while it is kept, remembers packs the catalog does not know, and
 * keeps no more than it was told to.
 */
import { describe, expect, it } from "vitest";
import { CorruptPackError } from "../../core/errors.js";
import { PackBuilder, type BuiltPack } from "../../core/pack.js";
import type { PackItem } from "../../core/schemas.js";
import { PackIndexCache, readPackIndex } from "../../store/pack-index.js";
import { memoryVault } from "./pack-retention-fixture.js";
import { makeChunk, packItem } from "./packed-vault.js";

const DB = "db-pack-index";

async function packOf(tag: string, chunks = 3): Promise<BuiltPack> {
  const b = new PackBuilder({ targetSize: 1024 * 1024 });
  for (let i = 0; i < chunks; i++) {
    const c = await makeChunk(`${tag} ${i}`);
    b.add({ sha256: c.sha256, rawSize: c.raw.length, codec: "zstd", stored: c.stored });
  }
  return b.finish();
}

/** A vault holding `packs`, and a catalog whose getPack knows their records and counts its calls. */
async function vaultWith(packs: readonly BuiltPack[]): Promise<{ vault: ReturnType<typeof memoryVault>; records: Map<string, PackItem>; catalog: { getPack(db: string, name: string): Promise<PackItem | undefined>; calls: string[] } }> {
  const vault = memoryVault();
  const records = new Map<string, PackItem>();
  for (const p of packs) {
    const item = packItem(DB, p, "2026-12-01T00:00:00.000Z");
    records.set(p.name, item);
    await vault.put("vault", item.vaultKey, p.bytes, {});
  }
  const calls: string[] = [];
  const catalog = {
    calls,
    async getPack(db: string, name: string): Promise<PackItem | undefined> {
      calls.push(name);
      return db === DB ? records.get(name) : undefined;
    },
  };
  return { vault, records, catalog };
}

describe("readPackIndex", () => {
  it("returns a recorded pack's entries in offset order, as the pack was built", async () => {
    // Prepare
    const p = await packOf("a", 4);
    const { vault, records } = await vaultWith([p]);

    // Act
    const entries = await readPackIndex(vault, "vault", records.get(p.name)!);

    // Assess
    expect(entries?.map((e) => [e.sha256, e.offset, e.storedLength])).toEqual(p.entries.map((e) => [e.sha256, e.offset, e.storedLength]));
  });

  it("answers undefined when the pack's object is not in the vault", async () => {
    // Prepare
    const p = await packOf("gone");
    const { vault, records } = await vaultWith([p]);
    await vault.delete("vault", records.get(p.name)!.vaultKey);

    // Act / Assess
    expect(await readPackIndex(vault, "vault", records.get(p.name)!)).toBeUndefined();
  });

  it("refuses with CorruptPackError naming the pack when the record's size does not end where the index does", async () => {
    // Prepare: a byte after the footer, and a record that counts it.
    const p = await packOf("short");
    const { vault, records } = await vaultWith([p]);
    const item = { ...records.get(p.name)!, size: p.bytes.length + 1 };
    await vault.put("vault", item.vaultKey, Buffer.concat([p.bytes, Buffer.alloc(1)]), {});

    // Act / Assess
    await expect(readPackIndex(vault, "vault", item)).rejects.toSatisfy((e: unknown) => e instanceof CorruptPackError && (e as Error).message.includes(p.name));
  });
});

describe("PackIndexCache", () => {
  it("reads a pack's record and index once while it is kept, and a pack the catalog does not know once", async () => {
    // Prepare
    const [a, b] = [await packOf("ca"), await packOf("cb")];
    const { vault, catalog } = await vaultWith([a, b]);
    const cache = new PackIndexCache(catalog, vault, "vault", DB);

    // Act
    const first = await cache.get(a.name);
    const again = await cache.get(a.name);
    const other = await cache.get(b.name);
    const unknown = [await cache.get("f".repeat(64)), await cache.get("f".repeat(64))];

    // Assess
    expect(first?.entries?.get(a.entries[1]!.sha256)?.offset).toBe(a.entries[1]!.offset);
    expect(again).toBe(first);
    expect(other?.pack.name).toBe(b.name);
    expect(unknown).toEqual([undefined, undefined]);
    expect(catalog.calls).toEqual([a.name, b.name, "f".repeat(64)]);
  });

  it("reads a pack asked for by several callers at once once, and gives each the same index", async () => {
    // Prepare
    const [a] = [await packOf("cc")];
    const { vault, catalog } = await vaultWith([a]);
    const cache = new PackIndexCache(catalog, vault, "vault", DB);

    // Act: three callers before the first read is back.
    const reads = await Promise.all([cache.get(a.name), cache.get(a.name), cache.get(a.name)]);

    // Assess
    expect(catalog.calls).toEqual([a.name]);
    expect(reads[1]).toBe(reads[0]);
    expect(reads[2]).toBe(reads[0]);
    expect(reads[0]?.entries?.size).toBe(3);
  });

  it("keeps only the packs used last, reading an evicted one again", async () => {
    // Prepare: room for two.
    const packs = [await packOf("k1"), await packOf("k2"), await packOf("k3")];
    const { vault, catalog } = await vaultWith(packs);
    const cache = new PackIndexCache(catalog, vault, "vault", DB, 2);

    // Act: 1, 2, 1 (1 used last), 3 (evicts 2), then 1 (kept) and 2 (read again).
    for (const i of [0, 1, 0, 2, 0, 1]) await cache.get(packs[i]!.name);

    // Assess
    expect(catalog.calls).toEqual([packs[0]!.name, packs[1]!.name, packs[2]!.name, packs[1]!.name]);
  });

  it("reads a damaged index once and throws its CorruptPackError again each time the pack is asked for", async () => {
    // Prepare: the pack's tail overwritten, so its index does not parse.
    const p = await packOf("damaged");
    const { vault, records, catalog } = await vaultWith([p]);
    const key = records.get(p.name)!.vaultKey;
    const bytes = Buffer.from(p.bytes);
    bytes[bytes.length - 40]! ^= 0xff;
    await vault.put("vault", key, bytes, {});
    let tailReads = 0;
    const counting = Object.create(vault) as typeof vault;
    counting.getRange = (...args: Parameters<typeof vault.getRange>) => {
      tailReads++;
      return vault.getRange(...args);
    };
    const cache = new PackIndexCache(catalog, counting, "vault", DB);

    // Act
    const errors = [await cache.get(p.name).catch((e: unknown) => e), await cache.get(p.name).catch((e: unknown) => e)];

    // Assess
    for (const e of errors) expect(e).toBeInstanceOf(CorruptPackError);
    expect(errors[1]).toBe(errors[0]);
    expect(tailReads).toBe(1);
    expect(catalog.calls).toEqual([p.name]);
  });

  it("says a recorded pack whose object is gone has no entries", async () => {
    // Prepare
    const p = await packOf("lost");
    const { vault, records, catalog } = await vaultWith([p]);
    await vault.delete("vault", records.get(p.name)!.vaultKey);

    // Act
    const read = await new PackIndexCache(catalog, vault, "vault", DB).get(p.name);

    // Assess
    expect(read?.pack.name).toBe(p.name);
    expect(read?.entries).toBeUndefined();
  });

  it("holding: finds a chunk its named pack holds as the manifest describes it, and answers undefined for other sizes, a repacked, unknown, lost or damaged pack", async () => {
    // Prepare: four packs; one repacked, one lost, one with a damaged index.
    const [ok, repacked, lost, damaged] = await Promise.all(["ok", "repacked", "lost", "damaged"].map((t) => packOf(t)));
    const { vault, records, catalog } = await vaultWith([ok!, repacked!, lost!, damaged!]);
    records.set(repacked!.name, { ...records.get(repacked!.name)!, repackedAt: "2026-12-02T00:00:00.000Z" });
    await vault.delete("vault", records.get(lost!.name)!.vaultKey);
    vault.objects.get(records.get(damaged!.name)!.vaultKey)![damaged!.dataLength + 3]! ^= 0xff;
    const as = (p: BuiltPack, i = 0) => {
      const e = p.entries[i]!;
      return { sha256: e.sha256, size: e.rawSize, storedSize: e.storedLength, codec: e.codec };
    };
    const cache = new PackIndexCache(catalog, vault, "vault", DB);

    // Act
    const found = await cache.holding(ok!.name, as(ok!));
    const others = [
      await cache.holding(ok!.name, { ...as(ok!), storedSize: as(ok!).storedSize + 1 }),
      await cache.holding(ok!.name, as(repacked!)),
      await cache.holding(repacked!.name, as(repacked!)),
      await cache.holding("0".repeat(64), as(ok!)),
      await cache.holding(lost!.name, as(lost!)),
      await cache.holding(damaged!.name, as(damaged!)),
    ];
    const repackedAllowed = await cache.holding(repacked!.name, as(repacked!), { repacked: true });

    // Assess
    expect(found?.pack.name).toBe(ok!.name);
    expect(found?.entry).toEqual(ok!.entries[0]);
    expect(others).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(repackedAllowed?.entry).toEqual(repacked!.entries[0]);
  });
});
