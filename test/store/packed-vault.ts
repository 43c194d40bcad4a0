/**
 * Test support for the replication and catalog rebuild suites: a vault with
 * packs, put straight into the bucket and the catalog the way snapshot
 * ingest leaves them (packs at db/<id>/packs/<name> with their SHA-256
 * checksum, pack records; chunk records with offsets only when asked, as
 * ingest wrote them before docs/packs.md step 3), chunk objects from
 * before packs, and generic snapshot manifests listing their own packs.
 */
import { randomBytes } from "node:crypto";
import { chunkerDescriptor } from "../../core/chunking.js";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey, vaultChunkKey, vaultPackKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { inlinePageRefs, pageManifest, serializePagedHeader } from "../../core/manifest-pages.js";
import { PackBuilder, type BuiltPack } from "../../core/pack.js";
import { META_DATABASE, type ChunkItem, type PackItem } from "../../core/schemas.js";
import { serializeManifest, SnapshotBuilder, snapshotIdFor, validateManifest } from "../../core/snapshot.js";
import { objectMeta } from "../../core/verify.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectStore } from "../../store/object-store.js";
import { SMALL_CHUNKER } from "../support/snapshots.js";

export interface PackedVault {
  store: ObjectStore;
  bucket: string;
  catalog: Catalog;
  databaseId: string;
}

export interface Chunk {
  sha256: string;
  raw: Buffer;
  stored: Buffer;
}

/** A chunk of ~7 KiB that does not compress: a 64 KiB-target pack holds 9 of them. */
export async function makeChunk(seed: string): Promise<Chunk> {
  const raw = Buffer.concat([randomBytes(7000), Buffer.from(seed)]);
  return { sha256: sha256Hex(raw), raw, stored: await getCodec("zstd").encode(raw) };
}

export function packItem(databaseId: string, p: BuiltPack, recordedAt: string): PackItem {
  const vaultKey = vaultPackKey(databaseId, p.name);
  return { databaseId, name: p.name, size: p.bytes.length, entries: p.entries.length, dataLength: p.dataLength, vaultKey, recordedAt };
}

/**
 * Packs the chunks in order (64 KiB-target packs), puts them in the vault and records the packs, as snapshot ingest does
 * (no chunk record: docs/packs.md "Step 3"); `chunkRecords`: the chunk locations too, as ingest wrote them before.
 */
export async function storePacks(v: PackedVault, chunks: readonly Chunk[], targetSize = 64 * 1024, opts: { chunkRecords?: boolean } = {}): Promise<BuiltPack[]> {
  const b = new PackBuilder({ targetSize });
  const packs: BuiltPack[] = [];
  for (const c of chunks) {
    if (!b.fits(c.stored.length)) packs.push(b.finish());
    b.add({ sha256: c.sha256, rawSize: c.raw.length, codec: "zstd", stored: c.stored });
  }
  if (b.count > 0) packs.push(b.finish());
  const now = new Date().toISOString();
  const db = v.databaseId;
  for (const p of packs) await v.store.put(v.bucket, vaultPackKey(db, p.name), p.bytes, { [META_DATABASE]: db }, { sha256: p.name });
  await v.catalog.recordPacks(packs.map((p) => packItem(db, p, now)));
  if (!opts.chunkRecords) return packs;
  await v.catalog.recordChunks(
    packs.flatMap((p) =>
      p.entries.map(
        (e): ChunkItem => ({ databaseId: db, sha256: e.sha256, size: e.rawSize, storedSize: e.storedLength, codec: e.codec, vaultKey: vaultPackKey(db, p.name), offset: e.offset, recordedAt: now }),
      ),
    ),
  );
  return packs;
}

/**
 * storePacks with every chunk's location recorded too: a vault from before docs/packs.md step 3, or the records a
 * repack leaves for the chunks it moves. The suites of the record-based paths (reused chunks a manifest names no
 * pack for; records pointing at another pack) build their vaults so.
 */
export function storeRecordedPacks(v: PackedVault, chunks: readonly Chunk[], targetSize = 64 * 1024): Promise<BuiltPack[]> {
  return storePacks(v, chunks, targetSize, { chunkRecords: true });
}

/** A chunk stored as its own object and recorded so, as before packs. */
export async function storeChunkObject(v: PackedVault, c: Chunk): Promise<void> {
  const key = vaultChunkKey(v.databaseId, c.sha256);
  await v.store.put(v.bucket, key, c.stored, { ...objectMeta({ sha256: c.sha256, codec: "zstd", size: c.raw.length }), [META_DATABASE]: v.databaseId });
  await v.catalog.recordChunks([
    { databaseId: v.databaseId, sha256: c.sha256, size: c.raw.length, storedSize: c.stored.length, codec: "zstd", vaultKey: key, recordedAt: new Date().toISOString() },
  ]);
}

/** A generic snapshot's manifest put in the vault: one file of these chunks; `packs`, its own. */
export async function putPackedManifest(
  v: PackedVault,
  chunks: readonly { c: Chunk; isNew: boolean }[],
  packs: readonly BuiltPack[] | undefined,
  at = new Date(),
  /** Format 2 with these page limits; `inline`: the header carries the pages (PageRef.text), no page object is written. */
  pages?: { chunks: number; bytes: number; inline?: boolean },
  /** Reused chunks' packs as the manifest names them (`reusedPacks`, `reusedPack`), by chunk SHA-256. */
  reusedIn?: ReadonlyMap<string, string>,
): Promise<{ snapshotId: string; manifestKey: string; manifestSha256: string }> {
  const builder = new SnapshotBuilder();
  const f = builder.startFile("data.bin", 0o600, new Date(0));
  for (const { c, isNew } of chunks) f.addChunk({ sha256: c.sha256, size: c.raw.length, storedSize: c.stored.length, codec: "zstd", isNew });
  const whole = Buffer.concat(chunks.map((x) => x.c.raw));
  f.finish(sha256Hex(whole), whole.length);
  const snapshotId = snapshotIdFor(at);
  const manifest = builder.build({
    databaseId: v.databaseId,
    snapshotId,
    startedAt: at,
    finishedAt: at,
    chunker: chunkerDescriptor(SMALL_CHUNKER),
    codec: "zstd",
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] },
    ...(packs === undefined ? {} : { packs: packs.map((p) => p.name) }),
  });
  if (reusedIn !== undefined && reusedIn.size > 0) {
    const names = [...new Set(reusedIn.values())].sort();
    manifest.reusedPacks = names;
    for (const f of manifest.files) {
      if (f.type !== "file") continue;
      for (const c of f.chunks) {
        const name = reusedIn.get(c.sha256);
        if (name !== undefined && c.new !== true) c.reusedPack = names.indexOf(name);
      }
    }
    validateManifest(manifest);
  }
  const manifestKey = vaultSnapshotManifestKey(v.databaseId, snapshotId);
  let text = serializeManifest(manifest);
  if (pages !== undefined) {
    // Format 2 (core/manifest-pages.ts): the pages, then the header.
    const paged = pageManifest(manifest, pages);
    for (const p of pages.inline === true ? [] : paged.pages) {
      const body = Buffer.from(p.text, "utf8");
      await v.store.put(v.bucket, snapshotPageKey(manifestKey, p.index), body, { ...objectMeta({ sha256: p.ref.sha256, codec: "none", size: body.length }), [META_DATABASE]: v.databaseId });
    }
    text = serializePagedHeader(pages.inline === true ? { ...paged.header, pages: inlinePageRefs(paged.pages) } : paged.header);
  }
  const bytes = Buffer.from(text, "utf8");
  const manifestSha256 = sha256Hex(bytes);
  await v.store.put(v.bucket, manifestKey, bytes, { ...objectMeta({ sha256: manifestSha256, codec: "none", size: bytes.length }), [META_DATABASE]: v.databaseId });
  return { snapshotId, manifestKey, manifestSha256 };
}
