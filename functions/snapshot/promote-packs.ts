/**
 * Snapshot ingest step 2, packed pushes — PromotePacks (one Map iteration):
 * put one batch of the manifest's packs into the vault and record them
 * (docs/packs.md, "Ingest per pack"; no record per chunk: "Step 3").
 * Input: { snapshot: ValidatedSnapshot, batch: PackBatchItem }.
 * Output: { index, promoted, present }.
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
 *  6. record the pack (recordPacks, which also enters it in the pack log):
 *     its record says the pack is promoted whole. No chunk record is
 *     written (docs/packs.md, "Step 3"): a manifest names the pack of each
 *     of its chunks and every reader goes there, the pack's index (in the
 *     object) says where in it each chunk is, and a push finds the chunks
 *     of packs recorded since its previous snapshot through the pack log.
 *     Chunk records remain for chunks stored as their own objects and for
 *     chunks a repack moved (the forwarding address of the pack a manifest
 *     names).
 * Checking, decoding and writing happen on the same bytes in memory, so
 * nothing can be swapped in between; the record is written only after the
 * bytes are in the vault, and is idempotent: a retried batch repairs one
 * lost after its put. Whether the chunks are the ones the manifest expects
 * (sizes, codec) is CheckReferenced's to prove, from the pack's index.
 * Neither an object nor a catalog item is written per chunk.
 *
 * A pack already recorded and not marked by retention (promoted as it
 * landed, below, or by an earlier run) is skipped: its record is written
 * after its object. One marked is promoted again,
 * which writes its record anew without the mark (docs/retention.md "Packs").
 *
 * A pack is promoted by one invocation at a time: its upload and its
 * manifest both start a promotion, and the manifest usually lands while the
 * upload's is still verifying the last packs. The promoter takes the pack's
 * claim in the catalog (claimPackPromotion, until the step's timeout);
 * another waits, polling the pack's record every CLAIM_POLL_MS, and skips
 * the pack once it is recorded, or takes the claim when it is released or
 * has expired (a promoter that failed or died) and looks at the record once
 * more before promoting. Without it both read and verified the whole pack.
 *
 * The same function promotes a pack **as it lands** (the pack-ingest
 * workflow, started by the upload: input { landed: EventBridge Object
 * Created event }; docs/packs.md "Promoted as they land"): the key must be
 * incoming/db/<id>/packs/<name> of a registered database; then the same
 * skip-or-promote. Output { pack, promoted, present }. The agent is still
 * uploading the snapshot's other packs meanwhile, so by the time the
 * manifest lands most of its packs are recorded and its ingest skips them.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, CodecError, InvalidInputError, NotFoundError, UnknownDatabaseError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingPackKey, parseIncomingSnapshotKey, vaultPackKey } from "../../core/keys.js";
import { parsePackIndex, verifyPack, type PackEntry } from "../../core/pack.js";
import { objectCreatedEventSchema, type PackItem } from "../../core/schemas.js";
import { packObjectMeta } from "../../core/snapshot.js";
import { stepsOf } from "../../core/workflows.js";
import { ZstdInto } from "../../core/zstd-into.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import {
  MAX_INGEST_PACK_BYTES,
  PROMOTE_CONCURRENCY,
  forEachLimit,
  packBatchFileSchema,
  packBatchItemSchema,
  promotedPacks,
  readBatchFile,
  validatedSnapshotSchema,
} from "./common.js";
import { lambdaHandler } from "../observability.js";

const batchInputSchema = z.object({ snapshot: validatedSnapshotSchema, batch: packBatchItemSchema });
const landedInputSchema = z.object({ landed: objectCreatedEventSchema });
const inputSchema = z.union([landedInputSchema, batchInputSchema]);

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
async function promotePack(deps: Deps, databaseId: string, name: string): Promise<{ written: boolean }> {
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
  // After the object: a pack record means the pack is in place (skipped when met again).
  const pack: PackItem = { databaseId, name, size: body.length, entries: entries.length, dataLength: footer.dataLength, vaultKey, recordedAt: new Date().toISOString() };
  await deps.catalog.recordPacks([pack]);
  return { written };
}

/** How long a pack's claim lasts: the step's timeout (an invocation cannot hold it longer). */
const CLAIM_MS = stepsOf("snapshot-ingest").promotePacks.timeoutSeconds * 1000;
/**
 * How often a promotion waiting for another one looks at the pack's record
 * and claim again. The manifest's ingest waits so for the last packs' promotions
 * on every push, so the interval is paid on every snapshot's end to end (half
 * of it on average): 100 ms, a BatchGetItem and a refused conditional put each.
 */
export const CLAIM_POLL_MS = 100;

/**
 * Promotes a pack unless it is (or gets) recorded meanwhile, one promoter at
 * a time (see the header); resolves whether this invocation wrote it to the
 * vault.
 */
async function promoteOnce(deps: Deps, databaseId: string, name: string): Promise<{ written: boolean }> {
  const owner = randomUUID();
  for (;;) {
    if ((await promotedPacks(deps.catalog, databaseId, [name])).has(name)) return { written: false };
    const now = Date.now();
    const held = await deps.catalog.claimPackPromotion(databaseId, name, owner, new Date(now + CLAIM_MS).toISOString(), new Date(now).toISOString());
    if (held === undefined) break;
    await sleep(CLAIM_POLL_MS);
  }
  try {
    // Read again under the claim: a holder writes the record before it lets the claim go, so a claim taken after
    // its release (between this invocation's last look and its claim) finds the record here (reads are consistent).
    if ((await promotedPacks(deps.catalog, databaseId, [name])).has(name)) return { written: false };
    return await promotePack(deps, databaseId, name);
  } finally {
    await deps.catalog.releasePackPromotion(databaseId, name, owner).catch(() => undefined); // it expires anyway
  }
}

/** A pack upload landed (the pack-ingest workflow): promote it now unless it already is. */
async function promoteLanded(deps: Deps, event: z.infer<typeof objectCreatedEventSchema>): Promise<{ pack: string; promoted: boolean; present: boolean }> {
  const { name: bucket } = event.detail.bucket;
  const { key } = event.detail.object;
  if (bucket !== deps.incomingBucket) {
    throw new InvalidInputError(`event names bucket '${bucket}', not the incoming bucket '${deps.incomingBucket}'`);
  }
  const parsed = parseIncomingSnapshotKey(key);
  if (parsed.object !== "pack") throw new InvalidInputError(`object key '${key}' is not a pack upload (incoming/db/<databaseId>/packs/<sha256>)`);
  const { databaseId, name } = parsed;
  if (!(await deps.catalog.getDatabase(databaseId))) throw new UnknownDatabaseError(`database '${databaseId}' is not registered`);
  const r = await promoteOnce(deps, databaseId, name);
  return { pack: name, promoted: r.written, present: !r.written };
}

export type PromotePacksOutput =
  /** A batch of the manifest's packs: `promoted` written to the vault, `present` already there or already recorded. */
  | { index: number; promoted: number; present: number }
  /** A pack as it landed. */
  | { pack: string; promoted: boolean; present: boolean };

async function handle(input: unknown): Promise<PromotePacksOutput> {
  const parsed = parseInput(inputSchema, input, "promote packs input");
  const deps = getDeps();
  if ("landed" in parsed) return promoteLanded(deps, parsed.landed);
  const { snapshot, batch } = parsed;
  const packs = batch.packs ?? (await readBatchFile(deps, snapshot, batch.index, packBatchFileSchema)).packs;
  // ValidateManifest left out the packs recorded by then; one promoted as it landed since is skipped by promoteOnce.
  let promoted = 0;
  for (const name of packs) {
    if ((await promoteOnce(deps, snapshot.databaseId, name)).written) promoted++;
  }
  return { index: batch.index, promoted, present: packs.length - promoted };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
