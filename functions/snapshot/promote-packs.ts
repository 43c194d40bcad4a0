/**
 * Snapshot ingest step 2, packed pushes — PromotePacks (one Map iteration):
 * put one batch of the manifest's packs into the vault and record them and
 * the chunks they hold (docs/packs.md, "Ingest per pack").
 * Input: { snapshot: ValidatedSnapshot, batch: PackBatchItem }.
 * Output: { index, promoted, present, chunks }.
 *
 * Per pack, one at a time (memory: one pack, at most MAX_INGEST_PACK_BYTES,
 * plus PROMOTE_CONCURRENCY decoded chunks):
 *  1. HEAD incoming/db/<id>/packs/<name> (a pack larger than
 *     MAX_INGEST_PACK_BYTES is refused unread), then GET it;
 *  2. parse its index (parsePackIndex with the object's size:
 *     CorruptPackError names the pack and what is wrong);
 *  3. decode every chunk with its entry's codec and raw size (zstd on one
 *     kept context into a reused buffer); its SHA-256 must be the entry's
 *     name (ChecksumMismatchError naming the chunk, its bytes and the pack);
 *  4. verifyPack: the index again and the whole pack's SHA-256 = its name;
 *  5. PUT the same bytes to db/<id>/packs/<name> with the SHA-256 as the S3
 *     checksum, unless the vault already has an object of that name and size
 *     (content-addressed: same name, same bytes; Object Lock: no needless
 *     version);
 *  6. record the pack (recordPacks) and, for every entry, the chunk's
 *     location in it (recordChunks: vaultKey = the pack's key, offset = the
 *     entry's), both batched by the catalog.
 * Checking, decoding and writing happen on the same bytes in memory, so
 * nothing can be swapped in between; a record is written only after its
 * bytes are in the vault. Records are idempotent: a retried batch repairs
 * one lost after its put. Whether the chunks are the ones the manifest
 * expects (sizes, codec) is CheckReferenced's to prove, from the records.
 * No object is touched per chunk.
 */
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, CodecError, InvalidInputError, NotFoundError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingPackKey, vaultPackKey } from "../../core/keys.js";
import { parsePackIndex, verifyPack, type PackEntry } from "../../core/pack.js";
import type { ChunkItem, PackItem } from "../../core/schemas.js";
import { packObjectMeta } from "../../core/snapshot.js";
import { ZstdInto } from "../../core/zstd-into.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import {
  MAX_INGEST_PACK_BYTES,
  PROMOTE_CONCURRENCY,
  forEachLimit,
  packBatchFileSchema,
  packBatchItemSchema,
  readBatchFile,
  validatedSnapshotSchema,
} from "./common.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema, batch: packBatchItemSchema });

const bytesOf = (e: PackEntry): string => `bytes ${e.offset}-${e.offset + e.storedLength - 1}`;

/** One kept zstd context and output buffer per sandbox: no decoder or output allocated per chunk (core/zstd-into.ts). */
const zstd = new ZstdInto();

/** Decodes one entry's stored bytes and checks them against its name. */
async function verifyChunk(what: string, body: Buffer, e: PackEntry): Promise<void> {
  const where = `chunk ${e.sha256} (${bytesOf(e)} of ${what})`;
  const stored = body.subarray(e.offset, e.offset + e.storedLength);
  // The kept path runs and is hashed below without yielding, so its reused output is not overwritten meanwhile.
  let raw = e.codec === "zstd" ? zstd.decodeReused(stored, e.rawSize) : undefined;
  if (raw === undefined) {
    try {
      raw = await decodeWith(e.codec, stored, where, e.rawSize);
    } catch (cause) {
      if (cause instanceof CodecError) throw new ChecksumMismatchError(`${cause.message}; not promoted`, { cause });
      throw cause;
    }
  }
  if (raw.length !== e.rawSize) {
    throw new ChecksumMismatchError(`${where} decodes to ${raw.length} bytes, not the ${e.rawSize} its index records; not promoted`);
  }
  const actual = sha256Hex(raw);
  if (actual !== e.sha256) {
    throw new ChecksumMismatchError(`${where} hashes to ${actual.slice(0, 12)}…, not to its name; not promoted`);
  }
}

/** Verifies, promotes and records one pack; true when it was written, false when the vault had it. */
async function promotePack(deps: Deps, databaseId: string, name: string): Promise<{ written: boolean; chunks: number }> {
  const key = incomingPackKey(databaseId, name);
  const what = `pack ${name}`;
  const info = await deps.incoming.head(deps.incomingBucket, key);
  if (!info) throw new NotFoundError(`${what} is listed by the manifest, but ${key} was never uploaded (or has expired)`);
  if (info.size > MAX_INGEST_PACK_BYTES) {
    throw new InvalidInputError(`${what} is ${info.size} bytes, more than the ${MAX_INGEST_PACK_BYTES} snapshot ingest reads; not promoted`);
  }
  const obj = await deps.incoming.get(deps.incomingBucket, key);
  if (!obj) throw new NotFoundError(`${what} disappeared from ${key} while it was read`);
  const body = obj.body;
  if (body.length > MAX_INGEST_PACK_BYTES) {
    throw new InvalidInputError(`${what} is ${body.length} bytes, more than the ${MAX_INGEST_PACK_BYTES} snapshot ingest reads; not promoted`);
  }
  // Index first, then every chunk (so a damaged chunk is named), then the whole pack's name.
  const { entries, footer } = parsePackIndex(body, { what, packSize: body.length });
  await forEachLimit(entries, PROMOTE_CONCURRENCY, (e) => verifyChunk(what, body, e));
  verifyPack(body, name, { what });

  const vaultKey = vaultPackKey(databaseId, name);
  const existing = await deps.vault.head(deps.vaultBucket, vaultKey);
  const written = existing?.size !== body.length;
  if (written) {
    const meta = packObjectMeta(databaseId, { name, size: body.length, entries: entries.length, dataLength: footer.dataLength });
    await deps.vault.put(deps.vaultBucket, vaultKey, body, meta, { sha256: name });
  }
  const recordedAt = new Date().toISOString();
  const pack: PackItem = { databaseId, name, size: body.length, entries: entries.length, dataLength: footer.dataLength, vaultKey, recordedAt };
  await deps.catalog.recordPacks([pack]);
  const chunks: ChunkItem[] = entries.map((e) => ({
    databaseId,
    sha256: e.sha256,
    size: e.rawSize,
    storedSize: e.storedLength,
    codec: e.codec,
    vaultKey,
    offset: e.offset,
    recordedAt,
  }));
  await deps.catalog.recordChunks(chunks);
  return { written, chunks: chunks.length };
}

export async function handler(input: unknown): Promise<{ index: number; promoted: number; present: number; chunks: number }> {
  const { snapshot, batch } = parseInput(inputSchema, input, "promote packs input");
  const deps = getDeps();
  const packs = batch.packs ?? (await readBatchFile(deps, snapshot, batch.index, packBatchFileSchema)).packs;
  let promoted = 0;
  let chunks = 0;
  for (const name of packs) {
    const r = await promotePack(deps, snapshot.databaseId, name);
    if (r.written) promoted++;
    chunks += r.chunks;
  }
  return { index: batch.index, promoted, present: packs.length - promoted, chunks };
}
