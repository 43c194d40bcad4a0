/**
 * Moves a snapshot's chunks into packs as snapshot ingest leaves them
 * (docs/packs.md), for tests of the read path: restore and verification
 * against a vault the write path has not produced yet, or a mix of packed
 * and old single-object chunks.
 */
import type { AgentConfig } from "../../core/config.js";
import { vaultChunkKey, vaultPackKey } from "../../core/keys.js";
import { PackBuilder, type BuiltPack } from "../../core/pack.js";
import type { ChunkItem } from "../../core/schemas.js";
import type { VaultClients } from "./snapshots.js";

export interface PackedChunks {
  packs: BuiltPack[];
  /** Chunk hash -> pack key. */
  packOf: Map<string, string>;
}

/**
 * Moves these chunks of a database (recorded, each its own object) into packs
 * of about `targetSize` bytes, in the order given (repeats ignored): packs PUT
 * at vaultPackKey with their SHA-256, chunk records re-recorded with the pack
 * key and offset, pack records written, the chunk objects deleted (a read of
 * one would fail).
 */
export async function packChunks(clients: VaultClients, cfg: AgentConfig, databaseId: string, order: readonly string[], targetSize: number): Promise<PackedChunks> {
  const { store, catalog } = clients;
  const records = new Map((await catalog.listChunks(databaseId)).map((c) => [c.sha256, c]));
  const builder = new PackBuilder({ targetSize });
  const packs: BuiltPack[] = [];
  const packOf = new Map<string, string>();
  const moved: ChunkItem[] = [];
  const flush = async (): Promise<void> => {
    const pack = builder.finish();
    const key = vaultPackKey(databaseId, pack.name);
    await store.put(cfg.vaultBucket, key, pack.bytes, {}, { sha256: pack.name });
    packs.push(pack);
    for (const e of pack.entries) {
      moved.push({ ...records.get(e.sha256)!, vaultKey: key, offset: e.offset, storedSize: e.storedLength });
      packOf.set(e.sha256, key);
    }
    await catalog.recordPacks([
      { databaseId, name: pack.name, size: pack.bytes.length, entries: pack.entries.length, dataLength: pack.dataLength, vaultKey: key, recordedAt: new Date().toISOString() },
    ]);
  };
  for (const sha of new Set(order)) {
    const r = records.get(sha);
    if (r === undefined) throw new Error(`chunk ${sha} of database ${databaseId} is not recorded`);
    const stored = (await store.get(cfg.vaultBucket, vaultChunkKey(databaseId, sha)))!.body;
    if (!builder.fits(stored.length)) await flush();
    builder.add({ sha256: sha, rawSize: r.size, codec: r.codec, stored });
  }
  if (builder.count > 0) await flush();
  await catalog.recordChunks(moved);
  for (const sha of packOf.keys()) await store.delete(cfg.vaultBucket, vaultChunkKey(databaseId, sha));
  return { packs, packOf };
}
