/**
 * Catalog rebuild: the catalog of every database in one vault bucket, made
 * again from that bucket alone (the vault is self-describing), for the day
 * the table is lost. `walvault catalog rebuild` runs it
 * (agent/catalog-rebuild.ts); docs/decisions.md ("Catalog rebuild") says what
 * comes back and what cannot.
 *
 * What the bucket holds, per database (core/keys.ts):
 *   db/<id>/wal/<timeline>/<file>     PostgreSQL segments, .partial, .backup  (HEAD: metadata)
 *   db/<id>/wal/<timeline>/<file>.<16 hex>  the same, written by the agent (direct WAL): the suffix is the
 *                                     SHA-256 of the stored bytes. Two objects of one name (a rejected or
 *                                     conflicting direct write left unreferenced): each is read and only
 *                                     those whose bytes match their key are candidates; the earliest written
 *                                     is recorded (the one ingest recorded first), the others are skipped.
 *   db/<id>/history/<tl>.history      PostgreSQL timeline histories           (HEAD)
 *   db/<id>/wal/<stream>/<file>       generic segments, with position and times (HEAD)
 *   db/<id>/chunks/<sha256>           snapshot chunks from before packs       (HEAD, only those the target lacks)
 *   db/<id>/packs/<sha256>            packs of snapshot chunks (core/pack.ts)  (one ranged GET of the tail: the index)
 *   db/<id>/snapshots/<sid>/manifest.json   snapshot manifests               (GET, decoded, hashed, validated)
 *   db/<id>/snapshots/<sid>/pages/<i>.json  format-2 manifest pages          (read through their header, a page at a time)
 * Records are derived exactly as ingest derives them (core/catalog-records.ts)
 * and written with the Catalog's idempotent calls, in ingest's order: the
 * registration, WAL (then the head), packs, chunks, and last the snapshots,
 * each only once every chunk it references is recorded. A pack's chunk
 * locations come from its own index: one GET of its last
 * min(size, PACK_TAIL_READ_BYTES) bytes (an explicit range, the size from the
 * listing), parsed and checked (parsePackIndex: magic, checksum of index and
 * footer, entries tiling the data, the size the footer implies); a pack that
 * fails is skipped, named with its problem, and the snapshots referencing its
 * chunks are skipped as for any missing chunk. A chunk in two packs (a repack
 * interrupted before the old pack was deleted: either location holds its
 * bytes) is recorded in the newest pack (Last-Modified, then the greater
 * name); a chunk in a pack and also stored as its own object (an older
 * layout) is recorded in the pack. Record times are the objects'
 * Last-Modified. Running it again changes nothing. A registration the target
 * already holds is written again unchanged, which lists it in the database
 * registry of a catalog written before there was one (the migration).

 *
 * Never guessed:
 * - an object with missing or malformed metadata, a key walvault does not
 *   write, a manifest that does not hash or validate, a snapshot referencing a
 *   chunk the bucket lacks (or holds with another size), a record the target
 *   already holds with other contents: skipped, each with its reason;
 * - a database whose kind or WAL segment size the bucket does not tell (and
 *   the target does not already register), or tells two ways: refused, with
 *   one line saying why; nothing of it is written.
 * The bytes of WAL files and chunks are not read (a pack's data neither, nor
 * is its name checked against its bytes): their metadata was proven at
 * ingest, and the verify workflow checks bytes. So a rebuilt WAL record
 * holds no restore points (ingest finds them in the bytes): `restore
 * --target-name` then finds a name by scanning the archived WAL, as for WAL
 * archived before ingest recorded restore points.
 */
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { headSortKey, snapshotRecordOf, snapshotSummary, walFileLsns } from "../core/catalog-records.js";
import { decodeWith } from "../core/codec.js";
import { mapLimit } from "../core/concurrency.js";
import {
  ChecksumMismatchError,
  CodecError,
  ConfigError,
  CorruptPackError,
  InvalidInputError,
  InvalidWalNameError,
  ManifestInvalidError,
  SegmentConflictError,
  ServiceUnavailableError,
  SnapshotConflictError,
  UnsafePathError,
} from "../core/errors.js";
import { META_POSITION, parseGenericSegmentMeta, parseGenericWalName } from "../core/generic-wal.js";
import { SHA256_RE, sha256Hex } from "../core/hash.js";
import {
  DATABASE_ID_RE,
  SNAPSHOT_ID_RE,
  SNAPSHOT_MANIFEST_NAME,
  SNAPSHOT_PAGES_DIR,
  assertDatabaseId,
  parseVaultWalKey,
  REJECTED_SUFFIX,
  vaultGenericWalKey,
  vaultWalKey,
  walKeyDigest,
} from "../core/keys.js";
import { PACK_TAIL_READ_BYTES, parsePackFooter, parsePackIndex, type PackEntry, type PackIndex } from "../core/pack.js";
import type { DatabaseKind } from "../core/restore-plan.js";
import { META_DATABASE, type ChunkItem, type DatabaseRecord, type PackItem, type SnapshotRecord, type SnapshotSummary, type WalRecord } from "../core/schemas.js";
import type { ManifestExpectations } from "../core/snapshot.js";
import { checkWalSize, parseObjectMeta, verifyWalBytes, type ClaimedMeta } from "../core/verify.js";
import { DEFAULT_WAL_SEGMENT_SIZE, assertSegmentSize, parseWalFileName } from "../core/wal.js";
import { isNetworkError } from "./aws-errors.js";
import type { Catalog } from "./catalog.js";
import { DynamoCatalog, createTable } from "./dynamo-catalog.js";
import type { Endpoints } from "./factory.js";
import { openManifest, StoreManifestObjects, type ManifestObjects, type OpenedManifest } from "./manifest-pages.js";
import { entryBatches } from "./manifest-read.js";
import type { ListedObject, ObjectInfo, ObjectStore } from "./object-store.js";

/** A page object's name under snapshots/<sid>/pages/ (core/keys.ts snapshotPageKey). */
const PAGE_FILE_RE = /^\d{6}\.json$/;

export interface RebuildSource {
  store: ObjectStore;
  bucket: string;
}

export interface RebuildProgress {
  databaseId: string;
  phase: "listing" | "reading" | "recording";
  /** Objects listed under the database's prefix. */
  listed: number;
  /** Objects read (HEAD or GET) so far. */
  read: number;
  /** Records written to (or found in) the target so far. */
  recorded: number;
}

export interface RebuildOptions {
  /** Only these databases (default: every database in the bucket). */
  databaseIds?: readonly string[];
  /** Object reads and catalog writes in flight (default 16). */
  concurrency?: number;
  onProgress?: (p: RebuildProgress) => void;
  /** Clock, for objects whose store gives no Last-Modified (default: now). */
  now?: () => Date;
}

export interface SkippedObject {
  key: string;
  reason: string;
}

export interface DatabaseRebuild {
  databaseId: string;
  kind?: DatabaseKind;
  walSegmentSize?: number;
  /** "created": this rebuild registered the database; "existing": the target already did. */
  registration?: "created" | "existing";
  /** Records the target holds for what the bucket holds (written now or before). */
  segments: number;
  partials: number;
  backupLabels: number;
  historyFiles: number;
  snapshots: number;
  chunks: number;
  /** Packs whose index was read and recorded. */
  packs: number;
  /** Records this run added (all zero when the target already had everything). */
  added: { wal: number; snapshots: number; chunks: number };
  skipped: SkippedObject[];
  /** Why nothing of this database was rebuilt. */
  refused?: string;
}

export interface RebuildSummary {
  bucket: string;
  databases: DatabaseRebuild[];
  /** Keys under db/ that name no valid database id. */
  skipped: SkippedObject[];
}

/** Chunks looked up in the target, read and recorded per round. */
const CHUNK_ROUND = 1000;
/** Manifests are read whole: fewer at once. */
const MANIFEST_CONCURRENCY = 4;

/** Problems with an object's content or metadata: the object is skipped. Anything else (the store, the target) stops the rebuild. */
function isObjectProblem(e: unknown): e is Error {
  return (
    e instanceof InvalidInputError ||
    e instanceof InvalidWalNameError ||
    e instanceof ChecksumMismatchError ||
    e instanceof CodecError ||
    e instanceof ManifestInvalidError ||
    e instanceof UnsafePathError ||
    e instanceof CorruptPackError
  );
}

const PG_WAL_FILE_RE = /^[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?$/;
const PG_SEGMENT_RE = /^[0-9A-F]{24}$/;
const TIMELINE_DIR_RE = /^[0-9A-F]{8}$/;

interface WalObject {
  key: string;
  /** "wal" (db/<id>/wal/<dir>/<file>) or "history" (db/<id>/history/<file>). */
  area: "wal" | "history";
  dir: string;
  /** The WAL file name (a direct key's digest suffix taken off). */
  file: string;
  /** A direct key's digest (16 hex of the stored bytes' SHA-256). */
  digest?: string;
  info: ObjectInfo;
  /** Its walvault metadata, when well formed. */
  meta?: ClaimedMeta;
}

interface ManifestObject {
  key: string;
  snapshotId: string;
  kind: DatabaseKind;
  /** PostgreSQL manifests: the database's wal_segment_size. */
  walSegmentSize?: number;
  summary: SnapshotSummary;
  sha256: string;
  size: number;
  lastModified?: Date;
}

interface PackObject {
  name: string;
  listed: ListedObject;
  index: PackIndex;
}

/** Where a chunk's bytes are in a pack. */
interface PackedChunk {
  pack: PackObject;
  entry: PackEntry;
}

/** Whether pack `a` is newer than `b`: later Last-Modified, then the greater name (deterministic). */
function newerPack(a: PackObject, b: PackObject): boolean {
  const ta = a.listed.lastModified?.getTime() ?? 0;
  const tb = b.listed.lastModified?.getTime() ?? 0;
  return ta !== tb ? ta > tb : a.name > b.name;
}

interface Context {
  source: RebuildSource;
  target: Catalog;
  concurrency: number;
  progress: (p: RebuildProgress) => void;
  started: Date;
}

/** Rebuilds the catalog of the databases in `source.bucket` into `target` (see the file comment). */
export async function rebuildCatalog(source: RebuildSource, target: Catalog, opts: RebuildOptions = {}): Promise<RebuildSummary> {
  const ctx: Context = {
    source,
    target,
    concurrency: Math.max(1, Math.floor(opts.concurrency ?? 16)),
    progress: opts.onProgress ?? (() => undefined),
    started: (opts.now ?? (() => new Date()))(),
  };
  const databases: DatabaseRebuild[] = [];
  const skipped: SkippedObject[] = [];
  if (opts.databaseIds !== undefined) {
    for (const id of [...new Set(opts.databaseIds.map(assertDatabaseId))]) {
      const objects: ListedObject[] = [];
      for await (const o of source.store.list(source.bucket, `db/${id}/`)) {
        objects.push(o);
        if (objects.length % 1000 === 0) ctx.progress({ databaseId: id, phase: "listing", listed: objects.length, read: 0, recorded: 0 });
      }
      if (objects.length === 0) {
        // Nothing to rebuild, but a registration the target holds is listed (see rebuildDatabase).
        const existing = await ctx.target.getDatabase(id);
        if (existing) await ctx.target.putDatabase(existing);
        databases.push({ ...emptyRebuild(id), refused: `bucket ${source.bucket} holds nothing under db/${id}/: nothing to rebuild for database ${id}` });
        continue;
      }
      databases.push(await rebuildDatabase(ctx, id, objects));
    }
    return { bucket: source.bucket, databases, skipped };
  }
  // Every database: keys sharing the prefix db/<id>/ are contiguous in a listing, so one pass, one database at a time.
  let current: { id: string; objects: ListedObject[] } | undefined;
  for await (const o of source.store.list(source.bucket, "db/")) {
    const id = o.key.split("/")[1] ?? "";
    if (!DATABASE_ID_RE.test(id)) {
      skipped.push({ key: o.key, reason: `'${id}' is not a database id` });
      continue;
    }
    if (current?.id !== id) {
      if (current) databases.push(await rebuildDatabase(ctx, current.id, current.objects));
      current = { id, objects: [] };
    }
    current.objects.push(o);
    if (current.objects.length % 1000 === 0) ctx.progress({ databaseId: id, phase: "listing", listed: current.objects.length, read: 0, recorded: 0 });
  }
  if (current) databases.push(await rebuildDatabase(ctx, current.id, current.objects));
  return { bucket: source.bucket, databases, skipped };
}

function emptyRebuild(databaseId: string): DatabaseRebuild {
  return {
    databaseId,
    segments: 0,
    partials: 0,
    backupLabels: 0,
    historyFiles: 0,
    snapshots: 0,
    chunks: 0,
    packs: 0,
    added: { wal: 0, snapshots: 0, chunks: 0 },
    skipped: [],
  };
}

function iso(d: Date | undefined, fallback: Date): string {
  return (d ?? fallback).toISOString();
}

function short(sha256: string): string {
  return `${sha256.slice(0, 12)}…`;
}

async function rebuildDatabase(ctx: Context, id: string, listed: ListedObject[]): Promise<DatabaseRebuild> {
  const { source, target } = ctx;
  const out = emptyRebuild(id);
  const skip = (key: string, reason: string): void => void out.skipped.push({ key, reason });
  const counts = { listed: listed.length, read: 0, recorded: 0 };
  const report = (phase: RebuildProgress["phase"]): void => ctx.progress({ databaseId: id, phase, ...counts });

  // 1. What each key is.
  const prefix = `db/${id}/`;
  const walKeys: { key: string; area: "wal" | "history"; dir: string; file: string; digest?: string }[] = [];
  const chunks = new Map<string, ListedObject>();
  const packKeys: { name: string; listed: ListedObject }[] = [];
  const manifestKeys: { key: string; snapshotId: string; listed: ListedObject }[] = [];
  /** Format-2 page objects by snapshot: read through their manifest, never taken for one. */
  const pageKeys = new Map<string, string[]>();
  /** Direct WAL objects the wal-record workflow rejected (their `.rejected` marker is listed): read and verified before any is recorded. */
  const rejected = new Set<string>();
  for (const o of listed) {
    const parts = o.key.slice(prefix.length).split("/");
    const [area, a, b] = parts;
    if (area === "wal" && parts.length === 3 && o.key.endsWith(REJECTED_SUFFIX) && parseVaultWalKey(o.key.slice(0, -REJECTED_SUFFIX.length))?.digest !== undefined) {
      rejected.add(o.key.slice(0, -REJECTED_SUFFIX.length));
      continue;
    }
    const direct = area === "wal" && parts.length === 3 ? parseVaultWalKey(o.key) : undefined;
    if (direct?.digest !== undefined) walKeys.push({ key: o.key, area: "wal", dir: direct.dir, file: direct.name, digest: direct.digest });
    else if (area === "wal" && parts.length === 3 && a && b) walKeys.push({ key: o.key, area: "wal", dir: a, file: b });
    else if (area === "history" && parts.length === 2 && a) walKeys.push({ key: o.key, area: "history", dir: "", file: a });
    else if (area === "chunks" && parts.length === 2 && a && SHA256_RE.test(a)) chunks.set(a, o);
    else if (area === "packs" && parts.length === 2 && a && SHA256_RE.test(a)) packKeys.push({ name: a, listed: o });
    else if (area === "snapshots" && parts.length === 3 && a && SNAPSHOT_ID_RE.test(a) && b === SNAPSHOT_MANIFEST_NAME) {
      manifestKeys.push({ key: o.key, snapshotId: a, listed: o });
    } else if (area === "snapshots" && parts.length === 4 && a && SNAPSHOT_ID_RE.test(a) && b === SNAPSHOT_PAGES_DIR && PAGE_FILE_RE.test(parts[3]!)) {
      pageKeys.set(a, [...(pageKeys.get(a) ?? []), o.key]);
    } else {
      skip(o.key, "not a key walvault writes in a vault (db/<id>/wal/, history/, chunks/<sha256>, packs/<sha256> or snapshots/<id>/manifest.json)");
    }
  }
  const existing = await target.getDatabase(id);
  // Written again as it is (even if the bucket is refused below): a catalog
  // from before the database registry gets the entry that lists it.
  if (existing) await target.putDatabase(existing);

  // 2. Read WAL metadata and manifests.
  report("reading");
  const heads = await mapLimit(walKeys, ctx.concurrency, async (w): Promise<WalObject | undefined> => {
    const info = await source.store.head(source.bucket, w.key);
    counts.read++;
    if (counts.read % 100 === 0) report("reading");
    if (!info) {
      skip(w.key, "disappeared between listing and reading");
      return undefined;
    }
    try {
      return { ...w, info, meta: checkedMeta(info, id, w.key) };
    } catch (e) {
      if (!isObjectProblem(e)) throw e;
      skip(w.key, e.message);
      return { ...w, info };
    }
  });
  const walObjects = heads.filter((w): w is WalObject => w !== undefined);
  // Pack indexes, before manifests: a manifest is checked against the chunks they hold.
  const packs = (
    await mapLimit(packKeys, Math.min(ctx.concurrency, MANIFEST_CONCURRENCY), async (p): Promise<PackObject | undefined> => {
      try {
        const index = await readPackIndex(source, p.listed);
        if (index !== undefined) return { ...p, index };
        skip(p.listed.key, "disappeared between listing and reading");
        return undefined;
      } catch (e) {
        if (!isObjectProblem(e)) throw e;
        skip(p.listed.key, e.message);
        return undefined;
      } finally {
        counts.read++;
        if (counts.read % 100 === 0) report("reading");
      }
    })
  ).filter((p): p is PackObject => p !== undefined);
  const packed = new Map<string, PackedChunk>();
  for (const pack of packs) {
    for (const entry of pack.index.entries) {
      const held = packed.get(entry.sha256);
      if (held === undefined || newerPack(pack, held.pack)) packed.set(entry.sha256, { pack, entry });
    }
  }
  const storedSizeOf = (sha: string): number | undefined => packed.get(sha)?.entry.storedLength ?? chunks.get(sha)?.size;
  const manifests = (
    await mapLimit(manifestKeys, Math.min(ctx.concurrency, MANIFEST_CONCURRENCY), async (m) => {
      try {
        return await readManifest(source, id, m.key, m.snapshotId, storedSizeOf);
      } catch (e) {
        if (!isObjectProblem(e)) throw e;
        skip(m.key, e.message);
        return undefined;
      } finally {
        counts.read++;
        report("reading");
      }
    })
  ).filter((m): m is ManifestObject => m !== undefined);
  manifests.sort((a, b) => (a.snapshotId < b.snapshotId ? -1 : a.snapshotId > b.snapshotId ? 1 : 0));
  const readable = new Set(manifests.map((m) => m.snapshotId));
  for (const [sid, keys] of pageKeys) {
    if (!readable.has(sid)) for (const k of keys) skip(k, `a page of snapshot ${sid}, whose manifest is missing or was skipped`);
  }

  // 3. What the database is.
  const identity = identify(id, existing, walObjects.filter((w) => w.meta !== undefined), manifests);
  if ("refused" in identity) {
    out.refused = identity.refused;
    return out;
  }
  const { kind, walSegmentSize } = identity;
  out.kind = kind;
  out.walSegmentSize = walSegmentSize;

  // 4. The registration (first, as `walvault db add` comes before any upload).
  report("recording");
  if (existing) {
    out.registration = "existing";
  } else {
    // When its first object was written: the registration came before it.
    let first: number | undefined;
    for (const o of listed) {
      const t = o.lastModified?.getTime();
      if (t !== undefined && (first === undefined || t < first)) first = t;
    }
    const createdAt = first === undefined ? ctx.started : new Date(first);
    const record: DatabaseRecord = { databaseId: id, kind, walSegmentSize, createdAt: createdAt.toISOString() };
    await target.putDatabase(record);
    out.registration = "created";
  }

  // 5. WAL records, then the head.
  const records: WalRecord[] = [];
  for (const w of walObjects) {
    if (w.meta === undefined) continue; // skipped above
    try {
      records.push(kind === "postgres" ? postgresWalRecord(id, w, w.meta, walSegmentSize, ctx.started) : genericWalRecord(id, w, w.meta, ctx.started));
    } catch (e) {
      if (!isObjectProblem(e)) throw e;
      skip(w.key, e.message);
    }
  }
  const head: { best?: { sortKey: string; record: WalRecord } } = {};
  await mapLimit(await onePerName(ctx, records, rejected, walSegmentSize, skip), ctx.concurrency, async (record) => {
    let stored: WalRecord;
    try {
      const r = await target.recordWal(record);
      if (r.outcome === "created") out.added.wal++;
      stored = r.record;
    } catch (e) {
      if (!(e instanceof SegmentConflictError)) throw e;
      skip(record.vaultKey, `the target catalog already records ${record.name} with other contents: ${e.message}`);
      return;
    }
    if (stored.kind === "segment") out.segments++;
    else if (stored.kind === "partial") out.partials++;
    else if (stored.kind === "backup") out.backupLabels++;
    else out.historyFiles++;
    counts.recorded++;
    if (counts.recorded % 100 === 0) report("recording");
    const sortKey = headSortKey(stored);
    if (sortKey !== undefined && (head.best === undefined || sortKey > head.best.sortKey)) head.best = { sortKey, record: stored };
  });
  // The head item generic ingest leaves: the record with the greatest sort key (advanceHead only moves forward).
  // A PostgreSQL database's head is read from its records (Catalog.getHead), so the item is only a spare there.
  if (head.best) await target.advanceHead(id, head.best.record.name, head.best.sortKey, head.best.record.archivedAt);

  // 6. Packs (before the chunk locations that name them), then chunks: those the target lacks are recorded, in rounds.
  for (let i = 0; i < packs.length; i += CHUNK_ROUND) {
    const round = packs.slice(i, i + CHUNK_ROUND).map(
      (p): PackItem => ({
        databaseId: id,
        name: p.name,
        size: p.listed.size,
        entries: p.index.footer.entryCount,
        dataLength: p.index.footer.dataLength,
        vaultKey: p.listed.key,
        recordedAt: iso(p.listed.lastModified, ctx.started),
      }),
    );
    await target.recordPacks(round);
    out.packs += round.length;
    counts.recorded += round.length;
    report("recording");
  }
  const badChunks = new Set<string>();
  // A chunk both in a pack and stored as its own object is recorded in the pack.
  const shas = [...packed.keys(), ...[...chunks.keys()].filter((sha) => !packed.has(sha))];
  for (let i = 0; i < shas.length; i += CHUNK_ROUND) {
    const round = shas.slice(i, i + CHUNK_ROUND);
    const missing = await target.missingChunks(id, round);
    const items = await mapLimit(missing, ctx.concurrency, async (sha): Promise<ChunkItem | undefined> => {
      const inPack = packed.get(sha);
      if (inPack !== undefined) {
        const { pack, entry } = inPack;
        return {
          databaseId: id,
          sha256: sha,
          size: entry.rawSize,
          storedSize: entry.storedLength,
          codec: entry.codec,
          vaultKey: pack.listed.key,
          offset: entry.offset,
          recordedAt: iso(pack.listed.lastModified, ctx.started),
        };
      }
      const key = chunks.get(sha)!.key;
      const info = await source.store.head(source.bucket, key);
      counts.read++;
      if (!info) {
        skip(key, "disappeared between listing and reading");
        badChunks.add(sha);
        return undefined;
      }
      try {
        const meta = checkedMeta(info, id, key);
        if (meta.sha256 !== sha) throw new ChecksumMismatchError(`chunk ${key} claims SHA-256 ${short(meta.sha256)}, not its name`);
        return { databaseId: id, sha256: sha, size: meta.size, storedSize: info.size, codec: meta.codec, vaultKey: key, recordedAt: iso(info.lastModified, ctx.started) };
      } catch (e) {
        if (!isObjectProblem(e)) throw e;
        skip(key, e.message);
        badChunks.add(sha);
        return undefined;
      }
    });
    const good = items.filter((c): c is ChunkItem => c !== undefined);
    await target.recordChunks(good);
    out.added.chunks += good.length;
    out.chunks += round.length - missing.length + good.length;
    counts.recorded += round.length - missing.length + good.length;
    report("recording");
  }

  // 7. Snapshots, last: each once every chunk it references is recorded.
  const unusable = badChunks.size === 0 ? new Map<string, string>() : await snapshotsUsing(ctx, id, manifests, badChunks);
  for (const m of manifests) {
    const bad = unusable.get(m.snapshotId);
    if (bad !== undefined) {
      skip(m.key, `snapshot ${m.snapshotId} references chunk ${bad}, which was skipped`);
      continue;
    }
    if (m.kind !== kind) {
      skip(m.key, `snapshot ${m.snapshotId} is a ${m.kind} snapshot, but database ${id} is ${kind}`);
      continue;
    }
    if (m.walSegmentSize !== undefined && m.walSegmentSize !== walSegmentSize) {
      skip(m.key, `snapshot ${m.snapshotId} has ${m.walSegmentSize}-byte WAL segments, database ${id} ${walSegmentSize}`);
      continue;
    }
    const record: SnapshotRecord = snapshotRecordOf({
      databaseId: id,
      snapshotId: m.snapshotId,
      kind: m.kind,
      summary: m.summary,
      manifestKey: m.key,
      manifestSha256: m.sha256,
      manifestSize: m.size,
      recordedAt: iso(m.lastModified, ctx.started),
    });
    try {
      const r = await target.recordSnapshot(record);
      if (r.outcome === "created") out.added.snapshots++;
      out.snapshots++;
      counts.recorded++;
      report("recording");
    } catch (e) {
      if (!(e instanceof SnapshotConflictError)) throw e;
      skip(m.key, `the target catalog already records snapshot ${m.snapshotId} with another manifest: ${e.message}`);
    }
  }
  return out;
}

/** The object's walvault metadata; it must not name another database. */
function checkedMeta(info: ObjectInfo, databaseId: string, key: string): ClaimedMeta {
  const meta = parseObjectMeta(info.metadata, `vault object ${key}`);
  const owner = info.metadata[META_DATABASE];
  if (owner !== undefined && owner !== databaseId) {
    throw new InvalidInputError(`vault object ${key} belongs to database '${owner}' by its metadata, not '${databaseId}'`);
  }
  return meta;
}

/**
 * The index of the listed pack: one ranged GET of its last
 * min(size, PACK_TAIL_READ_BYTES) bytes (explicit first-last: s3rver misreads
 * suffix ranges), a second only for a pack written with a larger entry cap
 * than the default (its footer says how much to read). Undefined when the
 * object is gone; CorruptPackError when the tail is not a valid pack's.
 */
async function readPackIndex(source: RebuildSource, listed: ListedObject): Promise<PackIndex | undefined> {
  const { key, size } = listed;
  const what = `pack ${key}`;
  if (size === 0) throw new CorruptPackError(`${what} is empty`, { problem: "truncated" });
  const read = async (length: number): Promise<Buffer | undefined> => {
    const tail = await source.store.getRange(source.bucket, key, size - length, size - 1);
    if (tail !== undefined && tail.length !== length) {
      throw new InvalidInputError(`${what}: asked for its last ${length} bytes, got ${tail.length} (changed since it was listed at ${size} bytes?)`);
    }
    return tail;
  };
  let tail = await read(Math.min(size, PACK_TAIL_READ_BYTES));
  if (tail === undefined) return undefined;
  const footer = parsePackFooter(tail, { what, packSize: size });
  if (footer.tailLength > tail.length && footer.tailLength <= size) {
    tail = await read(footer.tailLength);
    if (tail === undefined) return undefined;
  }
  return parsePackIndex(tail, { what, packSize: size });
}

/** Reads, decodes, hashes and validates one manifest; its chunks must all be in the bucket (in a pack or as objects) with the sizes it records. */
async function readManifest(
  source: RebuildSource,
  databaseId: string,
  key: string,
  snapshotId: string,
  storedSizeOf: (sha256: string) => number | undefined,
): Promise<ManifestObject> {
  const obj = await source.store.get(source.bucket, key);
  if (!obj) throw new InvalidInputError(`manifest ${key} disappeared between listing and reading`);
  const meta = checkedMeta(obj, databaseId, key);
  const raw = await decodeWith(meta.codec, obj.body, `manifest ${key}`, meta.size);
  const sha256 = sha256Hex(raw);
  if (raw.length !== meta.size || sha256 !== meta.sha256) {
    throw new ChecksumMismatchError(
      `manifest ${key} decodes to ${raw.length} bytes with SHA-256 ${short(sha256)}, its metadata says ${meta.size} bytes, ${short(meta.sha256)}`,
    );
  }
  // Either format (store/manifest-read.ts): a format-2 manifest's pages are read and validated one at a time.
  const opened = await openRead(source, key, raw, { databaseId, snapshotId });
  const manifest = opened.header;
  let absent = 0;
  let first: string | undefined;
  for await (const batch of entryBatches(opened)) {
    for (const c of batch.chunks) {
      const stored = storedSizeOf(c.sha256);
      if (stored === undefined || stored !== c.storedSize) {
        absent++;
        first ??= stored === undefined ? `${c.sha256} (not in the bucket)` : `${c.sha256} (${stored} bytes stored, the manifest says ${c.storedSize})`;
      }
    }
  }
  if (first !== undefined) {
    throw new InvalidInputError(`snapshot ${snapshotId} references ${absent} chunk(s) the bucket does not hold as recorded, first ${first}`);
  }
  return {
    key,
    snapshotId,
    kind: manifest.kind,
    ...(manifest.kind === "postgres" ? { walSegmentSize: manifest.postgres.walSegmentSize } : {}),
    summary: snapshotSummary(manifest),
    sha256,
    size: raw.length,
    ...(obj.lastModified ? { lastModified: obj.lastModified } : {}),
  };
}

/** The manifest at `key` (its bytes `raw`, already read and decoded) opened for reading; its pages come from the bucket. */
async function openRead(source: RebuildSource, key: string, raw: Uint8Array, expect: ManifestExpectations): Promise<OpenedManifest> {
  const pages = new StoreManifestObjects(source.store, source.bucket);
  const objects: ManifestObjects = { get: async (k, maxBytes) => (k === key ? raw : pages.get(k, maxBytes)) };
  return (await openManifest(objects, key, expect))!;
}

/** Snapshots referencing any of `bad` (read again: rare, only when a chunk was skipped), with the first such chunk. */
async function snapshotsUsing(ctx: Context, databaseId: string, manifests: readonly ManifestObject[], bad: ReadonlySet<string>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await mapLimit(manifests, Math.min(ctx.concurrency, MANIFEST_CONCURRENCY), async (m) => {
    const obj = await ctx.source.store.get(ctx.source.bucket, m.key);
    if (!obj) {
      out.set(m.snapshotId, "(its manifest disappeared)");
      return;
    }
    const raw = await decodeWith(parseObjectMeta(obj.metadata, m.key).codec, obj.body, `manifest ${m.key}`);
    const opened = await openRead(ctx.source, m.key, raw, { databaseId, snapshotId: m.snapshotId });
    for await (const batch of entryBatches(opened)) {
      const hit = batch.chunks.find((c) => bad.has(c.sha256));
      if (hit) {
        out.set(m.snapshotId, hit.sha256);
        return;
      }
    }
  });
  return out;
}

/**
 * One record per WAL name. Several objects of one name happen only with
 * direct WAL (a rejected or conflicting write stays in the vault, unreferenced):
 * each direct object is read and kept as a candidate only when its bytes hash
 * to its key's digest; of the candidates the earliest written wins (ingest
 * recorded the first good one; a later one of other bytes was a conflict).
 * A direct object the wal-record workflow rejected (its `.rejected` marker is
 * in `rejected`) is read even when it is the only one of its name, and kept
 * only if it passes the checks ingest makes of the bytes (digest, decoding,
 * size, SHA-256): a rejection for a reason that has since gone (its database
 * registered later) leaves a marker beside an object that was then recorded.
 */
async function onePerName(
  ctx: Context,
  records: WalRecord[],
  rejected: ReadonlySet<string>,
  segmentSize: number,
  skip: (key: string, reason: string) => void,
): Promise<WalRecord[]> {
  const byName = new Map<string, WalRecord[]>();
  for (const r of records) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  const out: WalRecord[] = [];
  for (const [name, group] of byName) {
    if (group.length === 1 && !rejected.has(group[0]!.vaultKey)) {
      out.push(group[0]!);
      continue;
    }
    const good: WalRecord[] = [];
    for (const r of group) {
      const digest = parseVaultWalKey(r.vaultKey)?.digest;
      if (digest === undefined) {
        good.push(r);
        continue;
      }
      const obj = await ctx.source.store.get(ctx.source.bucket, r.vaultKey);
      if (!obj || walKeyDigest(sha256Hex(obj.body)) !== digest) {
        skip(r.vaultKey, `its bytes do not match the digest in its key (a rejected direct write of ${name})`);
        continue;
      }
      if (rejected.has(r.vaultKey)) {
        const problem = await bytesProblem(r, obj.body, segmentSize);
        if (problem !== undefined) {
          skip(r.vaultKey, `rejected by ingest (${r.vaultKey}${REJECTED_SUFFIX}), and its bytes fail ingest's checks: ${problem}`);
          continue;
        }
      }
      good.push(r);
    }
    good.sort((a, b) => (a.archivedAt < b.archivedAt ? -1 : a.archivedAt > b.archivedAt ? 1 : a.vaultKey < b.vaultKey ? -1 : 1));
    const [first, ...rest] = good;
    if (first) out.push(first);
    for (const r of rest) skip(r.vaultKey, `another object of ${name} was written earlier (${first!.vaultKey}); this one was never recorded`);
  }
  return out;
}

/** What ingest would refuse in a PostgreSQL WAL object's bytes (core/verify.ts verifyWalBytes), or undefined. */
async function bytesProblem(r: WalRecord, body: Uint8Array, segmentSize: number): Promise<string | undefined> {
  try {
    const file = parseWalFileName(r.name, segmentSize);
    await verifyWalBytes(file, body, { sha256: r.sha256, codec: r.codec, size: r.size }, segmentSize, `vault object ${r.vaultKey}`, { postgres: true });
    return undefined;
  } catch (e) {
    if (!isObjectProblem(e)) throw e;
    return e.message;
  }
}

/** What a WAL key looks like: PostgreSQL's timeline directories and file names, or a generic stream. */
function walShape(w: WalObject): DatabaseKind {
  if (w.area === "history") return "postgres";
  if (w.info.metadata[META_POSITION] !== undefined) return "generic";
  return TIMELINE_DIR_RE.test(w.dir) && PG_WAL_FILE_RE.test(w.file) ? "postgres" : "generic";
}

type Identity = { kind: DatabaseKind; walSegmentSize: number } | { refused: string };

/**
 * The database's kind and WAL segment size: the target's registration when
 * it has one (the bucket must agree), else what the bucket tells: kind from
 * manifests and key shapes, PostgreSQL segment size from manifests and full
 * segments' sizes. Refused when the bucket tells nothing, or two things.
 */
function identify(id: string, existing: DatabaseRecord | undefined, wal: readonly WalObject[], manifests: readonly ManifestObject[]): Identity {
  const kinds = new Map<DatabaseKind, string>();
  for (const m of manifests) if (!kinds.has(m.kind)) kinds.set(m.kind, `${m.kind === "postgres" ? "PostgreSQL" : "generic"} snapshot manifest ${m.key}`);
  for (const w of wal) {
    const k = walShape(w);
    if (!kinds.has(k)) kinds.set(k, `${k === "postgres" ? "PostgreSQL WAL file" : "generic WAL segment"} ${w.key}`);
  }
  let kind: DatabaseKind;
  if (existing) {
    kind = existing.kind;
    const other = kinds.get(kind === "postgres" ? "generic" : "postgres");
    if (other !== undefined) return { refused: `database ${id} is registered in the target as ${kind}, but the bucket holds a ${other}` };
  } else if (kinds.size === 2) {
    return { refused: `cannot tell what database ${id} is: the bucket holds both a ${kinds.get("postgres")} and a ${kinds.get("generic")}` };
  } else if (kinds.size === 0) {
    return {
      refused:
        `cannot tell whether database ${id} is PostgreSQL or generic: the bucket holds no snapshot manifest, WAL or history file of it with walvault metadata; ` +
        `register it in the target table (walvault db add) and run again`,
    };
  } else {
    kind = [...kinds.keys()][0]!;
  }
  if (kind === "generic") return { kind, walSegmentSize: existing?.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE };

  const sizes = new Map<number, string>();
  for (const m of manifests) if (m.walSegmentSize !== undefined && !sizes.has(m.walSegmentSize)) sizes.set(m.walSegmentSize, `manifest ${m.key}`);
  for (const w of wal) {
    if (w.area === "wal" && PG_SEGMENT_RE.test(w.file) && w.meta && !sizes.has(w.meta.size)) sizes.set(w.meta.size, `segment ${w.key}`);
  }
  const [first, second] = [...sizes.entries()];
  if (existing) {
    const other = [...sizes.entries()].find(([size]) => size !== existing.walSegmentSize);
    if (other) {
      return { refused: `database ${id} is registered in the target with ${existing.walSegmentSize}-byte WAL segments, but ${other[1]} has ${other[0]}-byte ones` };
    }
    return { kind, walSegmentSize: existing.walSegmentSize };
  }
  if (first === undefined) {
    return {
      refused:
        `cannot tell the WAL segment size of PostgreSQL database ${id}: the bucket holds no snapshot manifest and no full WAL segment of it; ` +
        `register it in the target table (walvault db add --wal-segment-size) and run again`,
    };
  }
  if (second !== undefined) {
    return { refused: `cannot tell the WAL segment size of database ${id}: ${first[1]} has ${first[0]}-byte segments, ${second[1]} ${second[0]}-byte ones` };
  }
  try {
    assertSegmentSize(first[0]);
  } catch (e) {
    return { refused: `cannot tell the WAL segment size of database ${id}: ${first[1]} says ${first[0]} bytes: ${(e as Error).message}` };
  }
  return { kind, walSegmentSize: first[0] };
}

function postgresWalRecord(databaseId: string, w: WalObject, meta: ClaimedMeta, segmentSize: number, fallback: Date): WalRecord {
  const file = parseWalFileName(w.file, segmentSize);
  const expected = vaultWalKey(databaseId, file) + (w.digest === undefined ? "" : `.${w.digest}`);
  if (w.key !== expected) throw new InvalidInputError(`vault object ${w.key} is not where walvault keeps ${file.name} (${expected})`);
  checkWalSize(file, meta.size, segmentSize);
  return {
    databaseId,
    name: file.name,
    kind: file.kind,
    timeline: file.timeline,
    ...walFileLsns(file, segmentSize),
    ...walRecordCommon(w, meta, fallback),
  };
}

function genericWalRecord(databaseId: string, w: WalObject, meta: ClaimedMeta, fallback: Date): WalRecord {
  if (w.area === "history") throw new InvalidInputError(`vault object ${w.key} is a PostgreSQL history file, but database ${databaseId} is generic`);
  const name = parseGenericWalName(`${w.dir}/${w.file}`);
  const expected = vaultGenericWalKey(databaseId, name.stream, name.file);
  if (w.key !== expected) throw new InvalidInputError(`vault object ${w.key} is not where walvault keeps ${name.name} (${expected})`);
  const seg = parseGenericSegmentMeta(w.info.metadata, `vault object ${w.key}`);
  if (meta.size === 0) throw new InvalidInputError(`vault object ${w.key} is empty`);
  return {
    databaseId,
    name: name.name,
    kind: "segment",
    timeline: 1,
    startLsn: seg.position.toString(),
    ...walRecordCommon(w, meta, fallback),
    closedAt: seg.closedAt,
    ...(seg.scan ? { scanAt: seg.scan.at, scanCount: seg.scan.count } : {}),
  };
}

function walRecordCommon(w: WalObject, meta: ClaimedMeta, fallback: Date) {
  return {
    size: meta.size,
    storedSize: w.info.size,
    sha256: meta.sha256,
    codec: meta.codec,
    status: "stored" as const,
    vaultKey: w.key,
    ...(w.info.versionId ? { vaultVersionId: w.info.versionId } : {}),
    archivedAt: iso(w.info.lastModified, fallback),
    replicas: {},
  };
}

// ------------------------------------------------------------------ target table

function errorName(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const name = (e as { name?: unknown }).name;
  return typeof name === "string" ? name : undefined;
}

/**
 * The catalog table `e.table` at `e`'s DynamoDB endpoint, created (on-demand
 * capacity, the catalog's key schema) when it does not exist yet.
 */
export async function openCatalogTable(e: Endpoints & { table: string }): Promise<{ catalog: DynamoCatalog; created: boolean }> {
  const catalog = new DynamoCatalog({
    tableName: e.table,
    region: e.region,
    ...(e.dynamodbEndpoint ? { endpoint: e.dynamodbEndpoint } : {}),
    ...(e.credentials ? { credentials: e.credentials } : {}),
  });
  const where = e.dynamodbEndpoint ?? `region ${e.region}`;
  try {
    await catalog.client.send(new DescribeTableCommand({ TableName: e.table }));
    return { catalog, created: false };
  } catch (err) {
    if (errorName(err) !== "ResourceNotFoundException") {
      const line = err instanceof Error ? (err.message.split("\n")[0] ?? err.name) : String(err);
      if (isNetworkError(err)) throw new ServiceUnavailableError(`cannot reach DynamoDB at ${where}: ${line}`, { cause: err });
      throw new ConfigError(`cannot look up DynamoDB table '${e.table}' at ${where}: ${errorName(err) ?? "error"}: ${line}`, { cause: err });
    }
  }
  await createTable(catalog.client, e.table);
  return { catalog, created: true };
}
