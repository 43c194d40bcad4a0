/**
 * `walvault snapshot push`: a content-addressed snapshot of a PostgreSQL
 * cluster (through pg_basebackup) or of a generic database's directory tree,
 * uploaded to the incoming bucket with the manifest last (docs/snapshots.md).
 *
 * Pipeline, one pass over the source, memory bounded whatever its size:
 *
 *   read ─ cut ─ SHA-256 ─ known? ─┬─ previous manifest / this push: reuse, nothing held
 *                                  └─ batch (≤ 200) ─ catalog.missingChunks ─┬─ missing: encode + PUT (32 in flight)
 *                                                                           └─ present: HEAD the vault copy
 *
 *  - Read. PostgreSQL: `pg_basebackup -D - -Ft -X none --checkpoint=fast
 *    --manifest-checksums=CRC32C` streams one tar on stdout, read once with
 *    core/tar.ts (no temporary copy of the cluster; one tablespace, which is
 *    all pg_basebackup writes to stdout). PostgreSQL with `method: "direct"`:
 *    pg_backup_start/stop in one psql session and the data directory read
 *    here, DEFAULT_DIRECT_READERS files at once (agent/pg-direct.ts,
 *    pushPostgresDirect). Generic: the directory is walked
 *    in name order with lstat (regular files, directories, symlinks; sockets,
 *    FIFOs and devices are refused).
 *  - Cut. PostgreSQL relation files — every fork of a relation, main, _fsm,
 *    _vm and _init, and their 1 GB segments (.1, .2...), under base/<db>/,
 *    global/ and pg_tblspc/<ts>/<version>/<db>/ (RELATION_FILE_RE) — are 8 KB
 *    pages updated in place: they are cut in fixed 128 KiB blocks (16 pages,
 *    `chunking: "blocks"`, FIXED_BLOCKS_ALGORITHM, DEFAULT_BLOCK_SIZE), so a
 *    changed page costs one 128 KiB block. _fsm and _vm forks are paged and
 *    rewritten in place just like the main fork, hence blocks too. Everything else (global/pg_control,
 *    pg_filenode.map, PG_VERSION, backup_label, backup_manifest, pg_xact/,
 *    configuration files) and every file of a generic snapshot is cut with
 *    FastCDC (DEFAULT_CHUNKER): small files are one chunk either way, and
 *    append-mostly or immutable files resynchronise after an insertion.
 *  - Known? A chunk is reused without asking anyone when the latest
 *    snapshot's manifest references it (fetched from the vault, checked
 *    against the catalog's manifestSha256 and validated), when a pack
 *    recorded since that snapshot began holds it (the catalog's pack log;
 *    each such pack's index read once: an interrupted push's packs, so a
 *    retry uploads nothing it landed; knownFromPackLog), or when this push
 *    has already met it (each chunk is uploaded once per push). The rest is asked
 *    from the catalog in batches of `lookupBatchSize` (missingChunks, never a
 *    round trip per chunk). A chunk the catalog has but the previous manifest
 *    does not (shared with an older snapshot only) needs its stored size and
 *    codec for the manifest: the agent HEADs its vault copy (rare: one request
 *    per such chunk). A push without a previous manifest first asks whether
 *    the catalog has any chunk of the database at all (one Query of one
 *    item): when it has none — a database's first snapshot — nothing can be
 *    found, so nothing is looked up and every chunk is new (a first snapshot
 *    of 100 GB skips ~800,000 reads). Only another push of the same database
 *    running at the same moment could have stored one of its chunks since;
 *    then both store it, which costs space, never a chunk.
 *  - Upload. New chunks are encoded with the configured codec (default zstd-1;
 *    synchronously up to 1 MiB, on libuv's thread pool beyond: core/codec.ts)
 *    and PUT to incoming/db/<id>/chunks/<sha256> with objectMeta (SHA-256,
 *    codec, raw size), `concurrency` (32) at a time.
 *    Backpressure: at most `maxQueuedBytes` (64 MiB) of raw chunk bytes and
 *    `maxQueuedChunks` chunks are held between the reader and the uploads;
 *    the reader (and so pg_basebackup, through the pipe) waits beyond that.
 *  - Packs (the default; `packs: false` or WALVAULT_PACKS=0 writes one object
 *    per chunk as above, the layout of vaults before packs): each chunk to ask the catalog about is
 *    encoded as soon as it is admitted (the queue then holds stored bytes, and the reader's buffers
 *    are free again: they are borrowed, reused read after read); a new one is copied
 *    into the one PackBuilder being filled (core/pack.ts, docs/packs.md) — every file,
 *    small ones included, so no object is written per chunk or per small
 *    file. A full pack (DEFAULT_PACK_TARGET_SIZE, 32 MiB) is finished and PUT
 *    to incoming/db/<id>/packs/<name> with its SHA-256 as the S3 checksum
 *    and packObjectMeta (entries, data length); at most `packUploads` (1)
 *    are in flight and the filling waits for a free one, so a push holds at
 *    most (1 + 1) pack buffers, reused from a pool once uploaded. The
 *    manifest lists the packs (`packs`, sorted) for ingest. A chunk the
 *    catalog has but the previous manifest does not is described by its
 *    catalog record (getChunks, batched) instead of a HEAD.
 *  - Encode workers (packed pushes; agent/encode-pool.ts, stop 28): the
 *    SHA-256 that names each chunk and its encoding run on
 *    PUSH_ENCODE_THREADS (1) worker thread (WALVAULT_ENCODE_THREADS=N; 0:
 *    on this thread), fed in batches of 1 MiB and given back in read order,
 *    so packs and manifest are byte for byte those of a push on one thread.
 *    The worker skips encoding the chunks the previous manifest holds (a
 *    filter of their digests shared with it, core/known-filter.ts). This
 *    thread keeps reading, cutting, the whole-file SHA-256 and packing:
 *    measured at pgbench scale 100, ~6.5 CPU-s were on one thread before.
 *  - Manifest. Format 2 (paged, the default): each entry goes to a temporary
 *    spool as its file finishes (agent/manifest-spool.ts: chunk references on
 *    disk, not in memory); once every chunk is settled the spool is read in
 *    tree order into pages, each uploaded as it is cut, then the header at
 *    incoming/db/<id>/snapshots/<sid>/manifest.json (codec none, SHA-256 of
 *    the bytes): the commit point (agent/manifest-upload.ts). Format 1
 *    (`manifestPages: false` / WALVAULT_MANIFEST_PAGES=0, the layout of older
 *    vaults): SnapshotBuilder.build, one document. With `wait` (the
 *    default) the push then polls catalog.getSnapshot until ingest records
 *    it; a quarantine record for the manifest fails the push with its reason.
 *    The direct source's stop segment is awaited at the same time
 *    (waitArchived: pg_backup_stop no longer waits for it).
 *
 * PostgreSQL fields: backup_label (the first tar member) gives the start,
 * backup_manifest's WAL-Ranges (the last member; only its tail is kept) the
 * stop LSN, pg_control's first 8 bytes the system identifier, and one psql
 * call over a replication connection (the same privileges pg_basebackup
 * needs) `SHOW server_version_num` and `SHOW wal_segment_size`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, hash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { lstat, readdir, readlink, stat } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { deadlineIn } from "../core/deadline.js";
import { BufferPool } from "../core/buffer-pool.js";
import { chunkStream, chunkerDescriptor, DEFAULT_CHUNKER, type ChunkerParams } from "../core/chunking.js";
import { decodeWith, DEFAULT_CODEC, getCodec, type Codec, type CodecName } from "../core/codec.js";
import type { AgentConfig } from "../core/config.js";
import {
  ConfigError,
  FileAccessError,
  InvalidInputError,
  QuarantinedError,
  ServiceUnavailableError,
  SnapshotConflictError,
  TimeoutError,
  UnknownDatabaseError,
  describeError,
} from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { incomingChunkKey, incomingPackKey, packNameOfKey, vaultChunkKey } from "../core/keys.js";
import { DEFAULT_PACK_TARGET_SIZE, PackBuilder, type BuiltPack } from "../core/pack.js";
import { META_DATABASE, type SnapshotRecord } from "../core/schemas.js";
import {
  directoryEntryOf,
  fileEntryOf,
  fileSha256Of,
  fixedBlocksDescriptor,
  manifestFieldsOf,
  namedPackOf,
  packObjectMeta,
  parseBackupLabel,
  postgresFieldsFromBackupLabel,
  SnapshotBuilder,
  snapshotIdFor,
  symlinkEntryOf,
  type ChunkRecord,
  type GenericSnapshotFields,
  type SnapshotFileHandle,
  type SnapshotMeta,
  type SnapshotTotals,
} from "../core/snapshot.js";
import { readTar } from "../core/tar.js";
import { backupManifestFileLine, backupManifestPieces } from "../core/backup-manifest.js";
import { LineSpool } from "./line-spool.js";
import { PsqlSession, quoteConn, readDataDirectory, sqlLiteral } from "./pg-direct.js";
import { openEncoder, type EncodePool } from "./encode-pool.js";
import { KnownFilter } from "../core/known-filter.js";
import { objectMeta, parseObjectMeta } from "../core/verify.js";
import { lsnToSegno, parseLsn, segmentName } from "../core/wal.js";
import type { Catalog } from "../store/catalog.js";
import type { ObjectStore } from "../store/object-store.js";
import type { AgentClients } from "./clients.js";
import { packsEnabled } from "./config.js";
import { ManifestSpool } from "./manifest-spool.js";
import { manifestPagesEnabled, uploadManifest, uploadPagedManifest, type PageLimits, type UploadedManifest } from "./manifest-upload.js";
import { ChunkTable, PackNumbering } from "../core/chunk-table.js";
import { StoreManifestObjects, openManifest } from "../store/manifest-pages.js";
import { readPackIndexOrDamage } from "../store/pack-index.js";
import { createProgress, type Progress, type TransferStats } from "./progress.js";
import { readFailureNote, type FailureNoteSource } from "./wal-push.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Block size for PostgreSQL relation files: 16 pages of 8 KB. Chosen by
 * measurement (bench/block-size.ts, docs/decisions.md "Block size"): half the
 * objects of 64 KiB blocks (per-object costs dominate push, ingest and
 * restore), while a contiguous 5% update still stores ≤ 10% new bytes; 256
 * KiB already stores 10.1% at pgbench scale 5, and a sparse random update
 * re-uploads far more with every doubling.
 */
export const DEFAULT_BLOCK_SIZE = 128 * KiB;
/**
 * Uploads in flight. Each PUT waits tens of milliseconds for S3, so eight at a
 * time cap a push at a few tens of MB/s of 128 KiB blocks; memory stays
 * bounded by maxQueuedBytes (the raw bytes of every chunk not yet uploaded).
 */
export const DEFAULT_CONCURRENCY = 32;
export const DEFAULT_MAX_QUEUED_BYTES = 64 * MiB;
export const DEFAULT_LOOKUP_BATCH = 200;
/**
 * Pack uploads in flight when packing (docs/packs.md): the reader waits
 * while all are busy, so a push holds (this + 1) packs of
 * DEFAULT_PACK_TARGET_SIZE, their buffers reused. One: bench/pack-size.ts at
 * 32 MiB wrote as fast with 1 in flight as with 3 (38.2 / 38.8 MiB/s) at 134
 * instead of 199 MB peak RSS, and the push's other memory (~180 MB at pgbench
 * scale 100) leaves room for 2 pack buffers, not 4, under 256 MB on any
 * database size (docs/decisions.md "Push memory"). A pack of stored bytes
 * takes far longer to fill than to PUT unless the data is incompressible.
 */
export const DEFAULT_PACK_UPLOADS = 1;
/**
 * Bytes queued between the reader and the packs when packing. Chunks are
 * encoded when admitted, so these are stored bytes (~1/20 of raw on
 * pgbench): the bound is reached only on incompressible data, and
 * maxQueuedChunks usually binds first.
 */
export const DEFAULT_PACKED_MAX_QUEUED_BYTES = 32 * MiB;
/** Files the direct PostgreSQL source reads at once. */
export const DEFAULT_DIRECT_READERS = 4;
/** Snapshot ingest re-hashes and promotes every new chunk: give it time. */
export const DEFAULT_WAIT_TIMEOUT_MS = 30 * 60_000;

/** Read size for generic files: chunks come out as exact-size copies (never views pinning a large read). */
const FILE_READ_SIZE = 1 * MiB;
/** How much of backup_manifest's tail is kept to find WAL-Ranges. */
const MANIFEST_TAIL_BYTES = 1 * MiB;
const MAX_BACKUP_LABEL_BYTES = 1 * MiB;

/**
 * PostgreSQL relation files, cut in fixed blocks: <relfilenode>, its forks
 * (_fsm, _vm, _init) and segments (.N), in base/<dboid>/, global/ and
 * pg_tblspc/<tsoid>/<PG_version_catversion>/<dboid>/. Not global/pg_control,
 * pg_filenode.map, PG_VERSION, nor temporary relations (t<backend>_<node>,
 * which pg_basebackup skips anyway).
 */
export const RELATION_FILE_RE = /^(?:base\/\d+|global|pg_tblspc\/\d+\/[^/]+\/\d+)\/\d+(?:_(?:fsm|vm|init))?(?:\.\d+)?$/;

export function isRelationFile(path: string): boolean {
  return RELATION_FILE_RE.test(path);
}

// ---------------------------------------------------------------------------
// API

export interface PgBaseBackupSource {
  /** Directory holding pg_basebackup and psql. */
  binDir: string;
  /** Socket directory (or host name). */
  host: string;
  port: number;
  /** Database role with REPLICATION. */
  user: string;
  /** Run pg_basebackup and psql as this OS user (e.g. postgres, for peer authentication, when the agent runs as root). */
  asOsUser?: { uid: number; gid: number };
  /** Extra environment for both (e.g. PGPASSWORD, PGSSLMODE). */
  env?: Record<string, string>;
  /**
   * How the cluster is read (docs/snapshots.md "Direct source"): "basebackup"
   * (the default: pg_basebackup's tar stream) or "direct" (pg_backup_start and
   * pg_backup_stop in one psql session, the data directory read by this
   * process, which must be able to read it: its owner, or root).
   */
  method?: "basebackup" | "direct";
  /** direct: the data directory as this host sees it (default: the server's data_directory setting). */
  dataDir?: string;
  /** direct: the database psql connects to (default "postgres"). */
  database?: string;
  /** direct: files read at once (default DEFAULT_DIRECT_READERS). */
  readers?: number;
}

export type SnapshotSource =
  | { kind: "postgres"; pgbasebackup: PgBaseBackupSource }
  | {
      kind: "generic";
      /** The consistent tree to snapshot (a snapshot directory, or immutable files). */
      dir: string;
      /** The WAL streams and, per stream, the last segment closed at or before the snapshot (at least one). */
      streams: GenericSnapshotFields["streams"];
      /** Paths (relative to `dir`) left out, with everything under them. */
      exclude?: (relPath: string) => boolean;
      /**
       * Files allowed to change while they are read (open WAL segments: the
       * bytes read are what the snapshot holds). Any other file whose size or
       * mtime changes during its read fails the push, naming it: the tree was
       * not consistent.
       */
      mayChange?: (relPath: string) => boolean;
    };

export interface SnapshotPushOptions {
  /** Wait until the catalog records the snapshot (default true). */
  wait?: boolean;
  /** How long to wait for the record, ms (default 30 min). */
  timeoutMs?: number;
  /** Uploads (and vault HEADs) in flight (default DEFAULT_CONCURRENCY, 32). */
  concurrency?: number;
  /** Raw chunk bytes held between reading and uploading (default 64 MiB; 32 MiB when packing). */
  maxQueuedBytes?: number;
  /** Chunks held between reading and uploading (default 8 x lookupBatchSize). */
  maxQueuedChunks?: number;
  /** Chunks per catalog lookup (default 200). */
  lookupBatchSize?: number;
  /**
   * Group new chunks into pack objects (docs/packs.md) instead of one object
   * per chunk. Default: the WALVAULT_PACKS environment variable
   * (agent/config.ts packsEnabled), on when unset.
   */
  packs?: boolean;
  /** Pack target size in bytes (default DEFAULT_PACK_TARGET_SIZE, 32 MiB). */
  packTargetSize?: number;
  /** Pack uploads in flight (default DEFAULT_PACK_UPLOADS, 1). */
  packUploads?: number;
  /**
   * Packed pushes: worker threads that hash and compress chunks
   * (agent/encode-pool.ts; default WALVAULT_ENCODE_THREADS, else
   * PUSH_ENCODE_THREADS; 0: on the push's own thread), and the compiled
   * worker they run (tests; default the one next to the compiled pool).
   */
  encodeThreads?: number;
  encodeWorkerFile?: string;
  /**
   * Also hash each whole file, for the manifest's `sha256` and, direct
   * source, backup_manifest's SHA256 checksums (default false: each chunk's
   * SHA-256 already names its bytes, and a second hash of every byte costs
   * ~1 CPU-s per GB; a file of one chunk or none gets its SHA-256 either
   * way). docs/decisions.md "No whole-file SHA-256 by default".
   */
  fileHashes?: boolean;
  /** Fixed block size for PostgreSQL relation files (default DEFAULT_BLOCK_SIZE, 128 KiB). */
  blockSize?: number;
  /** Content-defined chunking parameters (default DEFAULT_CHUNKER). */
  chunker?: ChunkerParams;
  /** Progress line on stderr: default when stderr is a TTY. */
  progress?: boolean;
  progressStream?: NodeJS.WriteStream;
  /** pg_basebackup --label (default "walvault <snapshotId>"). */
  label?: string;
  /**
   * Write the manifest in format 2 (pages, then the header; agent/manifest-upload.ts).
   * Default: WALVAULT_MANIFEST_PAGES (on when unset; 0 writes format 1, as older agents did).
   */
  manifestPages?: boolean;
  /** Format 2 page limits (tests; default PAGE_CHUNKS and PAGE_BYTES). */
  manifestPageLimits?: PageLimits;
  /** Clock (tests). */
  now?: () => Date;
}

export interface SnapshotPushResult {
  databaseId: string;
  snapshotId: string;
  kind: "postgres" | "generic";
  /** "uploaded": the manifest is in incoming (wait: false); "recorded": the catalog records the snapshot. */
  outcome: "uploaded" | "recorded";
  /** Incoming key of the manifest. */
  manifestKey: string;
  manifestSha256: string;
  manifestSize: number;
  /** Snapshot whose manifest seeded the known chunks, if any. */
  previousSnapshotId?: string;
  /** The manifest's totals (files, logicalBytes, chunks, uniqueChunks, storedBytes, newChunks, newStoredBytes...). */
  totals: SnapshotTotals;
  /** Raw bytes of the chunks this push uploaded. */
  newBytes: number;
  /** Bytes sent to the incoming bucket: new chunks as encoded (or the packs holding them), plus the manifest. */
  uploadedBytes: number;
  /** Packed pushes: the pack objects uploaded (names sorted, as the manifest lists them) and their bytes. */
  packs?: { uploaded: number; bytes: number; names: string[] };
  lookups: {
    /** Distinct chunks the previous manifest made known. */
    previousManifestChunks: number;
    /**
     * Packs recorded since the previous snapshot began that its manifest
     * does not name (an interrupted or concurrent push's), read from the pack
     * log, and the chunks their indexes made known (format 2 only).
     */
    packLogPacks: number;
    packLogChunks: number;
    /** Catalog missingChunks calls, and the chunks they asked about. */
    catalogBatches: number;
    catalogChunks: number;
    /** Chunks the catalog had but the previous manifest did not (their vault copy was HEADed). */
    vaultHeads: number;
    /** Packed pushes: such chunks' catalog records read instead (getChunks, batched; a pack chunk has no object of its own to HEAD). */
    catalogRecords?: number;
    /** The catalog had no chunk of the database when the push began (a first snapshot): nothing was looked up, every chunk was new. */
    catalogEmpty: boolean;
  };
  seconds: {
    total: number;
    /** Reading, cutting, hashing and uploading the chunks (until the last chunk upload). */
    push: number;
    manifest: number;
    wait: number;
  };
  /** logicalBytes / seconds.push, in MB (10^6) per second. */
  mbPerSecond: number;
  /** Highest resident set size sampled during the push (every 100 ms), bytes. */
  peakRssBytes: number;
  postgres?: { timeline: number; startLsn: string; stopLsn: string; startWalFile: string; stopWalFile?: string; version: number };
  /** The catalog record (outcome "recorded"). */
  record?: SnapshotRecord;
  /** Things that went wrong without failing the push (e.g. the previous manifest could not be used). */
  warnings: string[];
}

export type PushConfig = AgentConfig & { databaseId: string };

/**
 * Pushes one snapshot. Throws (one-line messages): UnknownDatabaseError,
 * FileAccessError (dir missing / not a directory / unreadable),
 * InvalidInputError (special files, kind mismatch), ServiceUnavailableError
 * (pg_basebackup or psql failed, an upload failed, catalog unreachable),
 * ConfigError (no pg_basebackup in binDir), QuarantinedError,
 * SnapshotConflictError, TimeoutError.
 */
export async function snapshotPush(
  source: SnapshotSource,
  cfg: PushConfig,
  clients: AgentClients,
  opts: SnapshotPushOptions = {},
): Promise<SnapshotPushResult> {
  const now = opts.now ?? (() => new Date());
  const t0 = performance.now();
  const { databaseId } = cfg;
  const rss = startRssSampler();
  const warnings: string[] = [];
  let progress: Progress | undefined;
  let spool: ManifestSpool | undefined;
  let encoder: EncodePool | undefined;
  try {
    const db = await clients.catalog.getDatabase(databaseId);
    if (!db) {
      throw new UnknownDatabaseError(
        `database '${databaseId}' is not registered in the catalog: register it with \`walvault db add ${databaseId}\` or fix --database`,
      );
    }
    if (db.kind !== source.kind) {
      throw new InvalidInputError(`database '${databaseId}' is registered as ${db.kind}, but this is a ${source.kind} snapshot`);
    }
    if (source.kind === "generic") await assertDirectory(source.dir);
    else assertBinaries(source.pgbasebackup.binDir, source.pgbasebackup.method === "direct" ? ["psql"] : ["pg_basebackup", "psql"]);
    if (source.kind === "generic" && (!Array.isArray(source.streams) || source.streams.length === 0)) {
      throw new InvalidInputError("a generic snapshot must name at least one WAL stream and its last closed segment");
    }

    const codec = getCodec(cfg.codec ?? DEFAULT_CODEC);
    // Format 2 (the default): entries go to a temporary spool as they finish, never into memory.
    const paged = opts.manifestPages ?? manifestPagesEnabled();
    const previous = await loadPreviousManifest(clients, cfg, warnings, { paged });
    const known = previous?.known ?? new ChunkTable();
    const knownPacks = previous?.knownPacks ?? new PackNumbering();
    // Only format 2 can name the pack of a chunk it reuses, which is how ingest checks a chunk found this way.
    const fromLog = paged ? await knownFromPackLog(clients, cfg, previous?.startedAt, known, knownPacks) : { packs: 0, chunks: 0 };
    const catalogEmpty = previous === undefined && (await clients.catalog.listChunkPage(databaseId, undefined, 1)).chunks.length === 0;
    const stats: TransferStats = { bytesRead: 0, newBytes: 0, reusedBytes: 0, chunks: 0, newChunks: 0 };
    const startedAt = now();
    const snapshotId = snapshotIdFor(startedAt);
    progress = createProgress({
      label: `snapshot ${snapshotId}`,
      ...(opts.progress === undefined ? {} : { enabled: opts.progress }),
      ...(opts.progressStream === undefined ? {} : { stream: opts.progressStream }),
    });
    const packing = opts.packs ?? packsEnabled();
    const pipeline = new ChunkPipeline({
      databaseId,
      store: clients.store,
      catalog: clients.catalog,
      incomingBucket: cfg.incomingBucket,
      vaultBucket: cfg.vaultBucket,
      codec,
      chunks: known,
      knownPacks,
      catalogEmpty,
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      maxQueuedBytes: opts.maxQueuedBytes ?? (packing ? DEFAULT_PACKED_MAX_QUEUED_BYTES : DEFAULT_MAX_QUEUED_BYTES),
      maxQueuedChunks: opts.maxQueuedChunks ?? 8 * (opts.lookupBatchSize ?? DEFAULT_LOOKUP_BATCH),
      lookupBatchSize: opts.lookupBatchSize ?? DEFAULT_LOOKUP_BATCH,
      stats,
      onChange: () => progress?.update(stats),
      ...(packing
        ? { packs: { targetSize: opts.packTargetSize ?? DEFAULT_PACK_TARGET_SIZE, uploads: opts.packUploads ?? DEFAULT_PACK_UPLOADS } }
        : {}),
    });
    spool = paged ? new ManifestSpool() : undefined;
    if (packing) encoder = openEncoder({ codec: codec.name, ...knownFilterOf(known), ...(opts.encodeThreads === undefined ? {} : { threads: opts.encodeThreads }), ...(opts.encodeWorkerFile === undefined ? {} : { workerFile: opts.encodeWorkerFile }) });
    const files = new FileCollector(spool ?? new SnapshotBuilder(), pipeline, stats, () => progress?.update(stats), {
      blockSize: opts.blockSize ?? DEFAULT_BLOCK_SIZE,
      chunker: opts.chunker ?? DEFAULT_CHUNKER,
      fileHashes: opts.fileHashes === true,
    }, encoder);

    let meta: SnapshotMeta;
    const common = {
      databaseId,
      snapshotId,
      startedAt,
      chunker: chunkerDescriptor(opts.chunker ?? DEFAULT_CHUNKER),
      codec: codec.name,
    };
    // The pack names are known once the pipeline has finished: `meta` gets them then.
    const withPacks = <M extends SnapshotMeta>(m: M): M => (pipeline.packNames ? { ...m, packs: pipeline.packNames } : m);
    // Paged manifests (format 2) name the packs reused chunks were found in (format 1's builder writes no pack).
    const withReusedPacks = (m: SnapshotMeta): SnapshotMeta => {
      const { names } = pipeline.reusedPacks();
      return names.length === 0 ? m : { ...m, reusedPacks: names };
    };
    let pgSummary: SnapshotPushResult["postgres"];
    /** The direct source: where PostgreSQL marks the stop segment archived (the wait below watches it). */
    let stopSegment: { archiveStatus: string; name: string } | undefined;
    try {
      if (source.kind === "generic") {
        await walkGeneric(source.dir, files, source.exclude, source.mayChange);
        await pipeline.finish();
        meta = withPacks({ ...common, kind: "generic", finishedAt: now(), generic: { streams: source.streams } });
      } else {
        const label = opts.label ?? `walvault ${snapshotId}`;
        let pg: Awaited<ReturnType<typeof pushPostgres>>;
        if (source.pgbasebackup.method === "direct") {
          const direct = await pushPostgresDirect(source.pgbasebackup, db.walSegmentSize, files, opts.blockSize ?? DEFAULT_BLOCK_SIZE, label, warnings);
          pg = direct.fields;
          stopSegment = direct.stopSegment;
        } else pg = await pushPostgres(source.pgbasebackup, db.walSegmentSize, files, pipeline, label);
        await pipeline.finish();
        meta = withPacks({
          ...common,
          kind: "postgres",
          finishedAt: now(),
          blocks: fixedBlocksDescriptor(opts.blockSize ?? DEFAULT_BLOCK_SIZE),
          postgres: pg,
        });
        pgSummary = {
          timeline: pg.timeline,
          startLsn: pg.startLsn,
          stopLsn: pg.stopLsn,
          startWalFile: pg.startWalFile,
          ...(pg.stopWalFile === undefined ? {} : { stopWalFile: pg.stopWalFile }),
          version: pg.version,
        };
      }
    } catch (e) {
      pipeline.abort(e);
      await pipeline.settle();
      throw e;
    }
    const tPushed = performance.now();
    // Every chunk is encoded and every pack uploaded (pipeline.finish() let its pack buffers go): the workers and their
    // buffers go too before the manifest is written, which holds its pages when they are few (agent/manifest-upload.ts).
    // With them kept, the manifest's ~20 MB came on top of four 32 MiB pack buffers (peak RSS 256 MB on data that
    // compresses 2-3x).
    await encoder?.close();

    // The commit point: the manifest, last.
    stats.phase = "uploading manifest";
    progress.update(stats);
    let uploaded: UploadedManifest;
    let totals: SnapshotTotals;
    if (spool) {
      const from = spool;
      uploaded = await uploadPagedManifest(clients.store, cfg.incomingBucket, {
        fields: manifestFieldsOf(withReusedPacks(meta)),
        write: (writer, emit) => from.writeTo(writer, (sha256, size) => pipeline.settled(sha256, size), emit),
        distinct: () => pipeline.distinct(),
        ...(opts.manifestPageLimits === undefined ? {} : { pageLimits: opts.manifestPageLimits }),
      });
      totals = uploaded.totals!;
      spool.close();
    } else {
      const manifest = files.build(meta);
      uploaded = await uploadManifest(clients.store, cfg.incomingBucket, manifest, { paged: false });
      totals = manifest.totals;
    }
    const { key: manifestKey, sha256: manifestSha256, uploadedAt: manifestUploadedAt } = uploaded;
    const tManifest = performance.now();

    let record: SnapshotRecord | undefined;
    if (opts.wait !== false) {
      const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
      const note = { store: clients.store, bucket: cfg.incomingBucket, key: manifestKey, since: manifestUploadedAt };
      const recorded = waitRecorded(clients.catalog, databaseId, snapshotId, manifestSha256, manifestKey, timeoutMs, (s) => {
        stats.phase = `waiting for ingest ${Math.round(s)} s`;
        progress?.update(stats);
      }, note);
      // The direct source stops the backup without waiting for its WAL: the stop segment is awaited here, beside the ingest.
      const archived = stopSegment ? waitArchived(stopSegment.archiveStatus, stopSegment.name, timeoutMs) : undefined;
      archived?.catch(() => undefined);
      record = await recorded;
      await archived;
    }
    const tEnd = performance.now();
    stats.phase = record ? "recorded" : "uploaded";
    progress.done(stats);

    const pushSeconds = (tPushed - t0) / 1000;
    return {
      databaseId,
      snapshotId,
      kind: source.kind,
      outcome: record ? "recorded" : "uploaded",
      manifestKey,
      manifestSha256,
      manifestSize: uploaded.size,
      ...(previous ? { previousSnapshotId: previous.snapshotId } : {}),
      totals,
      newBytes: stats.newBytes,
      uploadedBytes: pipeline.uploadedStoredBytes + uploaded.uploadedBytes,
      ...(pipeline.packNames ? { packs: { uploaded: pipeline.packNames.length, bytes: pipeline.uploadedStoredBytes, names: [...pipeline.packNames].sort() } } : {}),
      lookups: {
        previousManifestChunks: previous?.knownCount ?? 0,
        packLogPacks: fromLog.packs,
        packLogChunks: fromLog.chunks,
        catalogBatches: pipeline.catalogBatches,
        catalogChunks: pipeline.catalogChunks,
        vaultHeads: pipeline.vaultHeads,
        ...(pipeline.packNames ? { catalogRecords: pipeline.catalogRecords } : {}),
        catalogEmpty,
      },
      seconds: {
        total: round3((tEnd - t0) / 1000),
        push: round3(pushSeconds),
        manifest: round3((tManifest - tPushed) / 1000),
        wait: round3((tEnd - tManifest) / 1000),
      },
      mbPerSecond: pushSeconds > 0 ? Math.round((totals.logicalBytes / pushSeconds / 1e6) * 10) / 10 : 0,
      peakRssBytes: rss.peak(),
      ...(pgSummary ? { postgres: pgSummary } : {}),
      ...(record ? { record } : {}),
      warnings,
    };
  } finally {
    spool?.close();
    progress?.done();
    rss.stop();
    await encoder?.close();
  }
}

/** The previous manifest's chunks as a filter the encode workers share (none: they compress every chunk). */
function knownFilterOf(known: ChunkTable | undefined): { known?: KnownFilter } {
  if (known === undefined || known.size === 0) return {};
  const filter = KnownFilter.forCount(known.size);
  known.forEachPrefix((w0, w1) => filter.add(w0, w1));
  return { known: filter };
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function startRssSampler(): { peak(): number; stop(): void } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 100);
  timer.unref();
  return {
    peak: () => (peak = Math.max(peak, process.memoryUsage.rss())),
    stop: () => clearInterval(timer),
  };
}

// ---------------------------------------------------------------------------
// Previous manifest

interface Previous {
  snapshotId: string;
  /** When the previous snapshot began: packs recorded since may hold chunks its manifest lacks. */
  startedAt: string;
  /** The previous manifest's chunks (not seen): the push's chunk table starts from them. */
  known: ChunkTable;
  knownCount: number;
  /** The packs the previous manifest places its chunks in, by the number `known` gives them (ChunkTableEntry.pack). */
  knownPacks: PackNumbering;
}

/**
 * The chunks of the database's latest recorded snapshot, from its manifest in
 * the vault: all of them are there. Anything wrong with it only costs dedup
 * (the catalog is asked instead) and is reported as a warning.
 */
async function loadPreviousManifest(clients: AgentClients, cfg: PushConfig, warnings: string[], opts: { paged: boolean }): Promise<Previous | undefined> {
  const snapshots = await clients.catalog.listSnapshots(cfg.databaseId);
  const latest = snapshots.at(-1);
  if (!latest) return undefined;
  const what = `the manifest of the previous snapshot ${latest.snapshotId}`;
  try {
    const obj = await clients.store.get(cfg.vaultBucket, latest.manifestKey);
    if (!obj) {
      warnings.push(`${what} is not in the vault at ${latest.manifestKey}; every chunk is looked up in the catalog instead`);
      return undefined;
    }
    let body: Buffer = obj.body;
    const codec = obj.metadata["walvault-codec"];
    if (codec !== undefined && codec !== "none") {
      const meta = parseObjectMeta(obj.metadata, what);
      body = await decodeWith(meta.codec, obj.body, what, meta.size);
    }
    if (sha256Hex(body) !== latest.manifestSha256) {
      warnings.push(`${what} does not match the SHA-256 the catalog recorded; not used for dedup`);
      return undefined;
    }
    const { known, knownPacks } = await previousChunks(clients, cfg, latest, body, opts);
    return { snapshotId: latest.snapshotId, startedAt: latest.startedAt, known, knownCount: known.size, knownPacks };
  } catch (e) {
    if (e instanceof ServiceUnavailableError) throw e;
    warnings.push(`${what} is unusable (${describeError(e)}); every chunk is looked up in the catalog instead`);
    return undefined;
  }
}

/** Chunk records the agent reads per catalog call while naming the packs of a previous manifest's unnamed chunks. */
const NAMING_BATCH = 1000;

/**
 * The distinct chunks of a previous manifest (its verified bytes `body`):
 * format 1 parsed whole, format 2 a page at a time; with the pack the
 * manifest places each in (its `pack` or `reusedPack`), numbered by their
 * place in `knownPacks`.
 *
 * `paged` (this push writes format 2, whose references can name a reused
 * chunk's pack; format 1 pushes leave out the chunks the manifest places in
 * a pack, below): a manifest with packs but no `reusedPacks` (written
 * before reused chunks named their pack, or in format 1) leaves the chunks
 * it reused unnamed, and every later manifest would too (a chunk is named
 * from the previous manifest, or from the catalog only when that manifest
 * lacks it), so CheckReferenced would read their records on every snapshot.
 * Their records are read here, once, a page's unnamed chunks at a time in
 * batches of NAMING_BATCH, and a record in a pack names it; from this push
 * on, the manifests carry the names. A chunk stored as its own object stays
 * unnamed.
 */
async function previousChunks(
  clients: AgentClients,
  cfg: PushConfig,
  latest: SnapshotRecord,
  body: Buffer,
  opts: { paged: boolean },
): Promise<{ known: ChunkTable; knownPacks: PackNumbering }> {
  const ids = { databaseId: cfg.databaseId, snapshotId: latest.snapshotId };
  const vault = new StoreManifestObjects(clients.store, cfg.vaultBucket);
  // The header read and checked above is the one whose pages are read.
  const objects = { get: (key: string, maxBytes: number) => (key === latest.manifestKey ? Promise.resolve(body) : vault.get(key, maxBytes)) };
  const opened = await openManifest(objects, latest.manifestKey, ids);
  if (!opened) throw new InvalidInputError(`manifest ${latest.manifestKey} is missing`);
  const known = new ChunkTable();
  const knownPacks = new PackNumbering();
  const naming = opts.paged && opened.header.packs !== undefined && opened.header.reusedPacks === undefined;
  const unnamed = new Set<string>();
  const nameFromRecords = async (hashes: string[]): Promise<void> => {
    for (let i = 0; i < hashes.length; i += NAMING_BATCH) {
      for (const r of await clients.catalog.getChunks(cfg.databaseId, hashes.slice(i, i + NAMING_BATCH))) {
        const e = known.get(r.sha256);
        if (e === undefined || r.offset === undefined || r.size !== e.size || r.storedSize !== e.storedSize || r.codec !== e.codec) continue;
        known.set(r.sha256, { ...e, pack: knownPacks.numberOf(packNameOfKey(r.vaultKey)) });
      }
    }
  };
  // Format 1 (this push writes it) names no reused chunk's pack, and ingest checks such a chunk by its record, which
  // a chunk in a pack has only once a repack moved it (docs/packs.md, "Step 3"): those are not reused from the
  // manifest but looked up like any chunk it lacks (reused when a record has them, else uploaded).
  const unvouched = new Set<string>();
  for (let i = 0; i < opened.pageCount; i++) {
    for (const c of (await opened.page(i)).chunks) {
      // A page names the pack on its first reference to a chunk: one on a later page without it keeps what an earlier one said.
      const name = namedPackOf(c, opened.header);
      if (!opts.paged && (name !== undefined || unvouched.has(c.sha256))) {
        unvouched.add(c.sha256);
        continue;
      }
      const pack = name === undefined ? known.get(c.sha256)?.pack : knownPacks.numberOf(name);
      known.set(c.sha256, { size: c.size, storedSize: c.storedSize, codec: c.codec, isNew: false, seen: false, ...(pack === undefined ? {} : { pack }) });
      if (pack === undefined && naming) unnamed.add(c.sha256);
    }
    if (unnamed.size > 0) await nameFromRecords([...unnamed]);
    unnamed.clear();
  }
  return { known, knownPacks };
}

/** When the pack log is read from without a previous snapshot: every entry it still holds. */
const PACK_LOG_ORIGIN = "1970-01-01T00:00:00.000Z";
/** Pack records the agent reads per getPacks call while reading the pack log. */
const PACK_LOG_BATCH = 100;

/**
 * The chunks of packs recorded since the previous snapshot began (`since`;
 * none: every pack the log holds) that neither its manifest nor anything
 * else in `known` names: packs an interrupted or concurrent push landed
 * (ingest promotes a pack as it arrives). PromotePacks writes no chunk
 * record (docs/packs.md, "Step 3"), so without this a retried push would
 * upload again every chunk its first attempt landed. Each pack is taken from
 * its record (gone or repacked: skipped) and its index (one ranged GET;
 * missing or damaged: skipped), and its entries join `known` named by it,
 * where `known` lacks them. A hint like any reused chunk's: CheckReferenced
 * checks the pack again when the snapshot is ingested. Resolves the packs
 * read and the chunks they added.
 */
async function knownFromPackLog(
  clients: AgentClients,
  cfg: PushConfig,
  since: string | undefined,
  known: ChunkTable,
  knownPacks: PackNumbering,
): Promise<{ packs: number; chunks: number }> {
  let packs = 0;
  let chunks = 0;
  let after: string | undefined;
  // The log is keyed by ISO times (toISOString's form): a start time written otherwise is read from the log's beginning.
  const start = since !== undefined && !Number.isNaN(Date.parse(since)) ? new Date(since).toISOString() : PACK_LOG_ORIGIN;
  do {
    const page = await clients.catalog.listPacksRecordedSince(cfg.databaseId, start, after);
    const names = [...new Set(page.packs.map((p) => p.name))].filter((n) => !knownPacks.has(n));
    for (let i = 0; i < names.length; i += PACK_LOG_BATCH) {
      const records = await clients.catalog.getPacks(cfg.databaseId, names.slice(i, i + PACK_LOG_BATCH));
      for (const p of records) {
        if (p.repackedAt !== undefined || p.deletingAt !== undefined || knownPacks.has(p.name)) continue;
        const { entries } = await readPackIndexOrDamage(clients.store, cfg.vaultBucket, p);
        if (entries === undefined) continue; // missing or damaged: its chunks are uploaded again if met
        const number = knownPacks.numberOf(p.name);
        packs++;
        for (const e of entries) {
          if (known.get(e.sha256) !== undefined) continue;
          known.set(e.sha256, { size: e.rawSize, storedSize: e.storedLength, codec: e.codec, isNew: false, seen: false, pack: number });
          chunks++;
        }
      }
    }
    after = page.next;
  } while (after !== undefined);
  return { packs, chunks };
}

// ---------------------------------------------------------------------------
// Chunk pipeline

interface ChunkResult {
  storedSize: number;
  codec: CodecName;
  isNew: boolean;
  /**
   * Packed: a new chunk's pack, by the sequence number of the pack it went
   * into (its index in packNames; settled() turns it into its place in the
   * manifest's sorted `packs`); a reused one's, by its known pack number
   * (settled() turns it into its place in `reusedPacks`).
   */
  pack?: number;
}

/**
 * One distinct chunk of this push. `bytes` is held only until it is settled:
 * the raw bytes (one object per chunk), or, when packing, the stored bytes
 * (encoded when the chunk was admitted; `heldSize` is what the queue counts).
 */
interface Slot {
  sha256: string;
  size: number;
  bytes?: Uint8Array;
  heldSize?: number;
  result?: ChunkResult;
}

/** Runs at most `limit` tasks at once, in submission order. */
class Limiter {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  run<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.active++;
        task()
          .then(resolve, reject)
          .finally(() => {
            this.active--;
            this.queue.shift()?.();
          });
      };
      if (this.active < this.limit) start();
      else this.queue.push(start);
    });
  }
}

interface PipelineDeps {
  databaseId: string;
  store: ObjectStore;
  catalog: Catalog;
  incomingBucket: string;
  vaultBucket: string;
  codec: Codec;
  /** The previous manifest's chunks (not seen); the pipeline adds every chunk of this push as it settles. */
  chunks: ChunkTable;
  /** The packs of earlier pushes `chunks` places chunks in, by their number there (Previous.knownPacks); the pipeline numbers those it finds in catalog records too. */
  knownPacks?: PackNumbering;
  /** The catalog had no chunk of this database when the push began: every chunk this push has not met is new, none is looked up. */
  catalogEmpty: boolean;
  concurrency: number;
  maxQueuedBytes: number;
  maxQueuedChunks: number;
  lookupBatchSize: number;
  stats: TransferStats;
  onChange: () => void;
  /** Group new chunks into packs of `targetSize`, at most `uploads` pack uploads in flight; absent: one object per chunk. */
  packs?: { targetSize: number; uploads: number };
}

/** For each name of `names`, by its index there, its index in the sorted list. */
function sortedPlaces(names: readonly string[]): number[] {
  const places = new Array<number>(names.length);
  [...names.keys()].sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0)).forEach((seq, place) => (places[seq] = place));
  return places;
}

/**
 * Decides for each chunk whether it must be uploaded, and uploads it. `add`
 * waits (backpressure) while too many bytes or chunks are held; the first
 * failure of any lookup or upload is thrown by the next `add` or by `finish`.
 */
class ChunkPipeline {
  /** Chunks of this push not settled yet (bounded by the queue and the uploads in flight); settled ones are in d.chunks. */
  private readonly pending = new Map<string, Slot>();
  private batch: Slot[] = [];
  private batchBytes = 0;
  private heldBytes = 0;
  private heldChunks = 0;
  private readonly maxBatchBytes: number;
  private readonly tasks = new Set<Promise<void>>();
  private waiters: Array<() => void> = [];
  private failure: { error: unknown } | undefined;
  private readonly uploads: Limiter;
  private readonly lookups = new Limiter(4);
  catalogBatches = 0;
  catalogChunks = 0;
  vaultHeads = 0;
  catalogRecords = 0;
  uploadedStoredBytes = 0;
  /** Packed pushes: names of the packs sealed so far, in the order they were sealed (undefined: one object per chunk); all uploaded once finish() resolves. */
  readonly packNames: string[] | undefined;
  private packsUploaded = 0;
  /** After finish(): each pack's place in the sorted list of packNames, by sequence number. */
  private packPlaces: number[] | undefined;
  /** Packs of earlier pushes holding chunks of this one, by number (ChunkTableEntry.pack of a chunk not new). */
  private readonly knownPacks: PackNumbering;
  /** After finish(): the sorted names of the known packs holding chunks this push references, and each one's place there by number. */
  private reused: { names: string[]; places: Map<number, number> } | undefined;
  private readonly builder: PackBuilder | undefined;
  /** Buffers of uploaded packs, reused for the next ones: memory is (uploads + 1) packs, whatever the garbage collector does. */
  private readonly packPool: Buffer[] = [];
  private packsInFlight = 0;
  /** Serialises additions to the one pack being filled. */
  private packChain: Promise<void> = Promise.resolve();

  constructor(private readonly d: PipelineDeps) {
    if (!Number.isSafeInteger(d.concurrency) || d.concurrency < 1) throw new InvalidInputError(`concurrency must be a positive integer, got ${d.concurrency}`);
    if (!Number.isSafeInteger(d.lookupBatchSize) || d.lookupBatchSize < 1 || d.lookupBatchSize > 10_000) {
      throw new InvalidInputError(`lookup batch size must be between 1 and 10000, got ${d.lookupBatchSize}`);
    }
    this.uploads = new Limiter(d.concurrency);
    this.knownPacks = d.knownPacks ?? new PackNumbering();
    this.maxBatchBytes = Math.max(1, Math.floor(d.maxQueuedBytes / 4));
    if (d.packs) {
      const { uploads, targetSize } = d.packs;
      if (!Number.isSafeInteger(uploads) || uploads < 1) throw new InvalidInputError(`pack uploads in flight must be a positive integer, got ${uploads}`);
      this.builder = new PackBuilder({ targetSize, allocate: (capacity) => this.allocatePack(capacity) });
      this.packNames = [];
    }
  }

  /**
   * Registers the next chunk of the source; resolves once it is accepted (not
   * uploaded). `bytes` is borrowed: it is not kept after this resolves (the
   * reader may reuse its memory), so a chunk that must wait is copied or,
   * when packing, encoded right away and only its stored bytes are held.
   * `encoded`: when packing, its stored bytes with the push's codec, encoded
   * already (by an encode worker); held as they are (not copied).
   */
  async add(sha256: string, bytes: Uint8Array, encoded?: Uint8Array): Promise<Slot> {
    this.check();
    const { stats } = this.d;
    const pending = this.pending.get(sha256);
    if (pending) {
      stats.reusedBytes += bytes.length;
      return pending;
    }
    // Settled earlier in this push, or in the previous manifest (seen from now on).
    const settled = this.d.chunks.markSeen(sha256);
    if (settled) {
      stats.reusedBytes += bytes.length;
      return { sha256, size: settled.size, result: { storedSize: settled.storedSize, codec: settled.codec, isNew: settled.isNew } };
    }
    // Packing: encoded now (synchronous for chunk-sized inputs, core/codec.ts), so the queue holds
    // stored bytes, ~1/20 of raw ones on pgbench (and the catalog lookups have that many more chunks to
    // batch), and no raw buffer outlives this call. Wasted only for a chunk the catalog turns out to
    // have while the previous manifest does not (rare: shared with an older snapshot only).
    let own: Uint8Array = this.builder ? (encoded ?? (await this.d.codec.encode(bytes))) : bytes;
    if (own.buffer === bytes.buffer) own = new Uint8Array(own); // codec "none" returns its input: copy, as unpacked chunks are
    await this.reserve(own.length);
    const slot: Slot = { sha256, size: bytes.length, bytes: own, heldSize: own.length };
    this.pending.set(sha256, slot);
    if (this.d.catalogEmpty) {
      // Nothing to look up: every chunk this push has not met is new.
      this.track(this.uploads.run(() => this.upload(slot)));
      return slot;
    }
    this.batch.push(slot);
    this.batchBytes += bytes.length;
    if (this.batch.length >= this.d.lookupBatchSize || this.batchBytes >= this.maxBatchBytes) this.flush();
    return slot;
  }

  /** Flushes the last batch and waits for every lookup and upload (the last pack included); throws the first failure. */
  async finish(): Promise<void> {
    this.flush();
    await this.settle();
    this.check();
    if (this.builder) {
      await this.packChain;
      this.check();
      if (this.builder.count > 0) await this.sealPack();
      await this.settle();
      this.check();
      // Every pack is uploaded: the buffers kept for the next ones go (the manifest, written next, may hold its pages).
      this.packPool.length = 0;
    }
  }

  /**
   * After finish(): chunk `sha256` of this push as a manifest reference,
   * flagged `new` when this push uploaded it (on every reference: the page
   * writer keeps one flag per page).
   */
  settled(sha256: string, size: number): ChunkRecord {
    const r = this.d.chunks.get(sha256);
    if (!r?.seen || r.size !== size) throw new Error(`internal error: chunk ${sha256} (${size} bytes) was never settled`);
    const { storedSize, codec, isNew, pack } = r;
    if (!isNew) {
      const place = pack === undefined ? undefined : this.reusedPacks().places.get(pack);
      return { sha256, size, storedSize, codec, ...(place === undefined ? {} : { reusedPack: place }) };
    }
    if (pack === undefined) return { sha256, size, storedSize, codec, new: true };
    // The manifest lists the packs sorted (core/snapshot.ts): a chunk names its pack's place there.
    this.packPlaces ??= sortedPlaces(this.packNames!);
    return { sha256, size, storedSize, codec, new: true, pack: this.packPlaces[pack]! };
  }

  /**
   * After finish(): the packs of earlier pushes the reused chunks of this
   * push were found in (the previous manifest's, or the catalog's records),
   * as the manifest's `reusedPacks` lists them (sorted), and each one's place
   * there by its number.
   */
  reusedPacks(): { names: string[]; places: Map<number, number> } {
    if (this.reused === undefined) {
      const names = this.knownPacks.names;
      const numbers = [...this.d.chunks.seenReusedPacks()].sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
      this.reused = { names: numbers.map((n) => names[n]!), places: new Map(numbers.map((n, place) => [n, place])) };
    }
    return this.reused;
  }

  /** After finish(): the distinct chunks of this push and their stored bytes (the manifest's uniqueChunks and storedBytes). */
  distinct(): { uniqueChunks: number; storedBytes: number } {
    const t = this.d.chunks.seenTotals();
    return { uniqueChunks: t.chunks + this.pending.size, storedBytes: t.storedBytes };
  }

  /** A chunk's outcome: on its slot (a format 1 file holds it) and in the table; no longer pending. */
  private settleChunk(slot: Slot, result: ChunkResult): void {
    slot.result = result;
    this.d.chunks.set(slot.sha256, { size: slot.size, ...result, seen: true });
    this.pending.delete(slot.sha256);
  }

  /** Waits for everything in flight (whatever its outcome). */
  async settle(): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  /** Stops admitting chunks: later adds throw `error`; work in flight finishes or fails on its own. */
  abort(error: unknown): void {
    this.failure ??= { error };
    this.batch = [];
    this.wake();
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
  }

  private async reserve(n: number): Promise<void> {
    while (
      (this.heldChunks > 0 && this.heldChunks + 1 > this.d.maxQueuedChunks) ||
      (this.heldBytes > 0 && this.heldBytes + n > this.d.maxQueuedBytes)
    ) {
      // When everything held waits in the batch, nothing else will release memory: send it. Otherwise
      // wait for lookups and uploads to release some (flushing here would send tiny batches).
      if (this.heldChunks === this.batch.length) this.flush();
      await new Promise<void>((r) => this.waiters.push(r));
      this.check();
    }
    this.heldBytes += n;
    this.heldChunks++;
  }

  private release(slot: Slot): void {
    if (slot.bytes === undefined) return;
    slot.bytes = undefined;
    this.heldBytes -= slot.heldSize ?? slot.size;
    this.heldChunks--;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private track(p: Promise<void>): void {
    const t = p.then(
      () => {
        this.tasks.delete(t);
      },
      (e: unknown) => {
        this.tasks.delete(t);
        this.failure ??= { error: e };
        this.wake();
      },
    );
    this.tasks.add(t);
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.track(this.lookups.run(() => this.lookup(batch)));
  }

  private async lookup(batch: Slot[]): Promise<void> {
    if (this.failure) return;
    this.catalogBatches++;
    this.catalogChunks += batch.length;
    const missing = new Set(await this.d.catalog.missingChunks(this.d.databaseId, batch.map((s) => s.sha256)));
    const present: Slot[] = [];
    for (const slot of batch) {
      if (missing.has(slot.sha256)) this.track(this.uploads.run(() => this.upload(slot)));
      else if (this.builder) present.push(slot);
      else this.track(this.uploads.run(() => this.headVault(slot)));
    }
    if (present.length > 0) await this.fromRecords(present);
  }

  /**
   * Packed pushes: chunks the catalog has but the previous manifest does not
   * are described by their catalog records (one batched read), not by a HEAD:
   * a chunk in a pack has no object of its own. A record gone since the
   * lookup (a sweep): upload the chunk after all.
   */
  private async fromRecords(slots: Slot[]): Promise<void> {
    this.catalogRecords += slots.length;
    const records = new Map((await this.d.catalog.getChunks(this.d.databaseId, slots.map((s) => s.sha256))).map((r) => [r.sha256, r]));
    for (const slot of slots) {
      const r = records.get(slot.sha256);
      if (!r) {
        this.track(this.uploads.run(() => this.upload(slot)));
        continue;
      }
      if (r.size !== slot.size) {
        throw new InvalidInputError(`the catalog records chunk ${slot.sha256} as ${r.size} bytes; this push read ${slot.size} bytes with that SHA-256`);
      }
      // A record in a pack names it (vaultKey, with the chunk's offset in it): where this manifest says the chunk is.
      const pack = r.offset === undefined ? undefined : this.knownPacks.numberOf(packNameOfKey(r.vaultKey));
      this.settleChunk(slot, { storedSize: r.storedSize, codec: r.codec, isNew: false, ...(pack === undefined ? {} : { pack }) });
      this.d.stats.reusedBytes += slot.size;
      this.release(slot);
    }
  }

  private async upload(slot: Slot): Promise<void> {
    if (this.failure) return;
    if (this.builder) return this.uploadToPack(slot);
    const raw = slot.bytes!;
    const { codec, databaseId, stats } = this.d;
    const key = incomingChunkKey(databaseId, slot.sha256);
    const encoded = await codec.encode(raw);
    try {
      await this.d.store.put(this.d.incomingBucket, key, encoded, {
        ...objectMeta({ sha256: slot.sha256, codec: codec.name, size: raw.length }),
        [META_DATABASE]: databaseId,
      });
    } catch (cause) {
      throw new ServiceUnavailableError(`uploading chunk ${slot.sha256} (${raw.length} bytes) to ${key} failed: ${describeError(cause)}`, {
        cause,
      });
    }
    this.settleChunk(slot, { storedSize: encoded.length, codec: codec.name, isNew: true });
    this.uploadedStoredBytes += encoded.length;
    stats.newBytes += raw.length;
    stats.newChunks++;
    this.release(slot);
    this.d.onChange();
  }

  /**
   * Packed pushes: hands the chunk's stored bytes (encoded by `add`) to the
   * pack being filled; the queue counts them until they are in the pack.
   */
  private async uploadToPack(slot: Slot): Promise<void> {
    const { codec, stats } = this.d;
    const rawSize = slot.size;
    const encoded = slot.bytes!;
    slot.bytes = undefined;
    let pack: number;
    try {
      pack = await this.addToPack({ sha256: slot.sha256, rawSize, codec: codec.name, stored: encoded });
    } finally {
      this.heldBytes -= encoded.length;
      this.heldChunks--;
      this.wake();
    }
    this.settleChunk(slot, { storedSize: encoded.length, codec: codec.name, isNew: true, pack });
    stats.newBytes += rawSize;
    stats.newChunks++;
    this.d.onChange();
  }

  /** Adds a chunk's stored bytes to the pack being filled (one at a time), sealing the pack first when it is full; resolves the pack's sequence number. */
  private addToPack(chunk: { sha256: string; rawSize: number; codec: CodecName; stored: Uint8Array }): Promise<number> {
    const next = this.packChain.then(async () => {
      this.check();
      if (!this.builder!.fits(chunk.stored.byteLength)) await this.sealPack();
      this.builder!.add(chunk);
      return this.packNames!.length; // the pack being filled is sealed next
    });
    this.packChain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Finishes the pack being filled and starts its upload, once fewer than `uploads` are in flight (the reader waits meanwhile). */
  private async sealPack(): Promise<void> {
    while (this.packsInFlight >= this.d.packs!.uploads) {
      await new Promise<void>((r) => this.waiters.push(r));
      this.check();
    }
    const pack = this.builder!.finish();
    this.packNames!.push(pack.name);
    this.packsInFlight++;
    this.track(this.uploadPack(pack));
  }

  private async uploadPack(pack: BuiltPack): Promise<void> {
    const { databaseId, stats } = this.d;
    const key = incomingPackKey(databaseId, pack.name);
    try {
      if (this.failure) return;
      const meta = packObjectMeta(databaseId, { name: pack.name, size: pack.bytes.length, entries: pack.entries.length, dataLength: pack.dataLength });
      try {
        await this.d.store.put(this.d.incomingBucket, key, pack.bytes, meta, { sha256: pack.name });
      } catch (cause) {
        throw new ServiceUnavailableError(
          `uploading pack ${pack.name} (${pack.entries.length} chunks, ${pack.bytes.length} bytes) to ${key} failed: ${describeError(cause)}`,
          { cause },
        );
      }
      this.packsUploaded++;
      this.uploadedStoredBytes += pack.bytes.length;
      stats.phase = `${this.packsUploaded} pack${this.packsUploaded === 1 ? "" : "s"} uploaded`;
      this.d.onChange();
    } finally {
      this.packsInFlight--;
      // The whole buffer allocatePack gave (bytes is a view of its start); an oversized one (a chunk larger than a pack) is not kept.
      const whole = Buffer.from(pack.bytes.buffer, 0, pack.bytes.buffer.byteLength);
      if (whole.length === this.builder!.targetSize) this.packPool.push(whole);
      this.wake();
    }
  }

  private allocatePack(capacity: number): Buffer {
    const pooled = this.packPool.at(-1);
    if (pooled && pooled.length >= capacity) return this.packPool.pop()!;
    return Buffer.allocUnsafeSlow(capacity);
  }

  /** The catalog has it: its vault copy says how it is stored. Missing there after all: upload it. */
  private async headVault(slot: Slot): Promise<void> {
    if (this.failure) return;
    this.vaultHeads++;
    const key = vaultChunkKey(this.d.databaseId, slot.sha256);
    const info = await this.d.store.head(this.d.vaultBucket, key);
    if (!info) return this.upload(slot);
    const meta = parseObjectMeta(info.metadata, `vault chunk ${key}`);
    if (meta.sha256 !== slot.sha256 || meta.size !== slot.size) {
      throw new InvalidInputError(`vault chunk ${key} claims ${meta.size} bytes with SHA-256 ${meta.sha256}; expected ${slot.size} bytes`);
    }
    this.settleChunk(slot, { storedSize: info.size, codec: meta.codec, isNew: false });
    this.d.stats.reusedBytes += slot.size;
    this.release(slot);
  }
}

// ---------------------------------------------------------------------------
// Files

interface PendingFile {
  handle: SnapshotFileHandle;
  slots: Slot[];
  sha256: string | undefined;
  size: number;
}

/** Cutting buffers FileCollector keeps for later files: the direct source reads 4 files at once; a few more cost ~128 KiB each. */
const FILES_AT_ONCE_KEPT = 8;

/**
 * Feeds files to the pipeline and records the tree. Format 1: per file, its
 * chunks in order; they go into the builder at the end, once every chunk's
 * stored size is known. Format 2: every entry goes to the manifest spool as
 * it finishes (a file's chunk references as they are cut), nothing is held
 * here (agent/manifest-spool.ts).
 */
class FileCollector {
  private readonly files: PendingFile[] = [];
  /** fixedBlocks' buffers, kept from file to file (a fresh 128 KiB per file was garbage for the main thread's collector: docs/decisions.md, stop 47). At most one per file read at once is in use. */
  private readonly blockScratch = new BufferPool(FILES_AT_ONCE_KEPT);

  constructor(
    private readonly sink: SnapshotBuilder | ManifestSpool,
    private readonly pipeline: ChunkPipeline,
    private readonly stats: TransferStats,
    private readonly onChange: () => void,
    /** How files are cut, and whether each whole file is hashed too (SnapshotPushOptions.fileHashes). */
    private readonly cut: { blockSize: number; chunker: ChunkerParams; fileHashes: boolean },
    /** Packed pushes: the workers that hash and encode chunks (none: this thread does). */
    private readonly encoder?: EncodePool,
  ) {}

  directory(path: string, mode: number, mtime: Date): void {
    if (this.sink instanceof SnapshotBuilder) this.sink.addDirectory(path, mode, mtime);
    else this.sink.entry(directoryEntryOf(path, mode, mtime));
  }

  symlink(path: string, target: string, mtime: Date): void {
    if (this.sink instanceof SnapshotBuilder) this.sink.addSymlink(path, target, mtime);
    else this.sink.entry(symlinkEntryOf(path, target, mtime));
  }

  /**
   * Reads one file into the push; resolves its size and the SHA-256 the
   * manifest records for it: of its whole content with `fileHashes`, else
   * only what its chunks say (core/snapshot.ts fileSha256Of: none for a file
   * of two or more chunks).
   */
  async file(path: string, mode: number, mtime: Date, body: AsyncIterable<Uint8Array>, blocks: boolean): Promise<{ size: number; sha256: string | undefined }> {
    const options = blocks ? { chunking: "blocks" as const } : {};
    const sink = this.sink;
    const handle = sink instanceof SnapshotBuilder ? sink.startFile(path, mode, mtime, options) : undefined;
    const head = sink instanceof SnapshotBuilder ? undefined : fileEntryOf(path, mode, mtime, options);
    const spooled = sink instanceof SnapshotBuilder ? undefined : sink.startFile();
    const whole = this.cut.fileHashes ? createHash("sha256") : undefined;
    const slots: Slot[] = [];
    let size = 0;
    let count = 0;
    let first: string | undefined;
    const chunks = blocks ? fixedBlocks(body, this.cut.blockSize, this.blockScratch) : chunkStream(body, this.cut.chunker);
    const take = async (sha256: string, chunk: Uint8Array, encoded?: Uint8Array): Promise<void> => {
      size += chunk.length;
      if (count++ === 0) first = sha256;
      const slot = await this.pipeline.add(sha256, chunk, encoded);
      if (spooled) spooled.add(slot.sha256, chunk.length);
      else slots.push(slot);
      this.stats.bytesRead += chunk.length;
      this.stats.chunks++;
      this.onChange();
    };
    if (this.encoder) {
      // Hashed and encoded by the workers, in order; with fileHashes this thread hashes the whole file as the chunks go out.
      for await (const c of this.encoder.inOrder(chunks, whole && ((chunk) => whole.update(chunk)))) await take(c.sha256, c.raw, c.stored);
    } else {
      for await (const chunk of chunks) {
        whole?.update(chunk);
        await take(hash("sha256", chunk, "hex"), chunk);
      }
    }
    const sha256 = fileSha256Of(count, first, whole?.digest("hex"));
    if (handle) this.files.push({ handle, slots, sha256, size });
    else {
      const { sha256: _empty, ...entry } = head!;
      spooled!.finish({ ...entry, size, ...(sha256 === undefined ? {} : { sha256 }) });
    }
    return { size, sha256 };
  }

  /** Format 1: the manifest. */
  build(meta: SnapshotMeta): ReturnType<SnapshotBuilder["build"]> {
    if (!(this.sink instanceof SnapshotBuilder)) throw new Error("internal error: a paged push builds no format 1 manifest");
    for (const f of this.files) {
      for (const s of f.slots) {
        const r = s.result;
        if (!r) throw new Error(`internal error: chunk ${s.sha256} of ${f.handle.path} was never settled`);
        // A new chunk names its pack (its place in the manifest's sorted `packs`), as format 2 does: CheckReferenced finds it there.
        const pack = r.isNew && r.pack !== undefined ? this.pipeline.settled(s.sha256, s.size).pack : undefined;
        f.handle.addChunk({ sha256: s.sha256, size: s.size, storedSize: r.storedSize, codec: r.codec, isNew: r.isNew, ...(pack === undefined ? {} : { pack }) });
      }
      f.handle.finish(f.sha256, f.size);
    }
    this.files.length = 0;
    return this.sink.build(meta);
  }
}

/**
 * Fixed-size cutting (FIXED_BLOCKS_ALGORITHM): blocks of `blockSize` from
 * offset 0, the last one shorter. A block is borrowed, valid until the next
 * one is asked for: a view of the source's piece when a whole block lies in
 * it (the direct source reads whole blocks: no copy), else this cutter's own
 * buffer, refilled for the next block (no allocation per block). The last,
 * shorter block is a copy of its own. The pipeline never keeps a block past
 * ChunkPipeline.add.
 */
export async function* fixedBlocks(source: AsyncIterable<Uint8Array>, blockSize: number, scratch?: BufferPool): AsyncGenerator<Uint8Array, void, undefined> {
  // The cutter's buffer comes from `scratch` when given (one per file read at once, kept from file to file) and goes back at the end.
  const taken = scratch?.take(blockSize);
  const block = taken?.subarray(0, blockSize) ?? Buffer.allocUnsafeSlow(blockSize);
  try {
    let n = 0;
    for await (const piece of source) {
      let off = 0;
      while (off < piece.length) {
        if (n === 0 && piece.length - off >= blockSize) {
          yield piece.subarray(off, off + blockSize);
          off += blockSize;
          continue;
        }
        const take = Math.min(blockSize - n, piece.length - off);
        block.set(piece.subarray(off, off + take), n);
        n += take;
        off += take;
        if (n === blockSize) {
          yield block;
          n = 0;
        }
      }
    }
    if (n > 0) yield new Uint8Array(block.subarray(0, n));
  } finally {
    // Every block is borrowed until the next is asked for: the consumer is done with this one.
    if (taken !== undefined) scratch?.give(taken);
  }
}

/** Passes pieces through, keeping a copy of the first `max` bytes (`head`) or of the last `max` bytes (`tail`). */
async function* keep(
  source: AsyncIterable<Uint8Array>,
  into: { bytes: Buffer; total: number },
  max: number,
  mode: "head" | "tail",
): AsyncGenerator<Uint8Array, void, undefined> {
  const parts: Buffer[] = [];
  let held = 0;
  for await (const piece of source) {
    into.total += piece.length;
    if (mode === "head") {
      if (held < max) {
        const part = Buffer.from(piece.subarray(0, max - held));
        parts.push(part);
        held += part.length;
      }
    } else {
      parts.push(Buffer.from(piece));
      held += piece.length;
      while (held - parts[0]!.length >= max) held -= parts.shift()!.length;
    }
    yield piece;
  }
  into.bytes = Buffer.concat(parts);
}

// ---------------------------------------------------------------------------
// Generic

async function assertDirectory(dir: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new FileAccessError(
      `snapshot directory ${dir} ${code === "ENOENT" ? "does not exist" : `is not accessible (${code ?? describeError(cause)})`}`,
      { cause },
    );
  }
  if (!st.isDirectory()) throw new FileAccessError(`snapshot directory ${dir} is not a directory`);
}

function fileError(path: string, cause: unknown): FileAccessError {
  const code = (cause as NodeJS.ErrnoException).code;
  return new FileAccessError(`cannot read ${path} (${code ?? describeError(cause)})`, { cause });
}

function specialKind(st: import("node:fs").Stats): string {
  if (st.isSocket()) return "a socket";
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file, directory or symlink";
}

/** Walks `root` in name order: directories, then their contents, depth first. */
async function walkGeneric(
  root: string,
  files: FileCollector,
  exclude: ((relPath: string) => boolean) | undefined,
  mayChange: ((relPath: string) => boolean) | undefined,
): Promise<void> {
  const visit = async (abs: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(abs);
    } catch (cause) {
      throw fileError(abs, cause);
    }
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const path = join(abs, name);
      const relPath = rel === "" ? name : `${rel}/${name}`;
      if (exclude?.(relPath)) continue;
      let st;
      try {
        st = await lstat(path);
      } catch (cause) {
        throw fileError(path, cause);
      }
      if (st.isDirectory()) {
        files.directory(relPath, st.mode & 0o7777, st.mtime);
        await visit(path, relPath);
      } else if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = await readlink(path);
        } catch (cause) {
          throw fileError(path, cause);
        }
        files.symlink(relPath, target, st.mtime);
      } else if (st.isFile()) {
        const stream = createReadStream(path, { highWaterMark: FILE_READ_SIZE });
        try {
          await files.file(relPath, st.mode & 0o7777, st.mtime, stream as AsyncIterable<Buffer>, false);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).syscall !== undefined) throw fileError(path, e);
          throw e;
        } finally {
          stream.destroy();
        }
        if (!mayChange?.(relPath)) {
          const after = await lstat(path).catch((cause: unknown) => {
            throw fileError(path, cause);
          });
          if (after.size !== st.size || after.mtimeMs !== st.mtimeMs) {
            throw new InvalidInputError(
              `${path} changed while the snapshot read it (${st.size} -> ${after.size} bytes): the directory is not a consistent snapshot; ` +
                `quiesce the database while it is read (watch: snapshot.before/after), or exclude the file`,
            );
          }
        }
      } else {
        throw new InvalidInputError(`${path} is ${specialKind(st)}; a snapshot holds only regular files, directories and symlinks`);
      }
    }
  };
  await visit(root, "");
}

// ---------------------------------------------------------------------------
// PostgreSQL

function assertBinaries(binDir: string, binaries: string[]): void {
  for (const b of binaries) {
    if (!existsSync(join(binDir, b))) throw new ConfigError(`no ${b} in ${binDir}: point the PostgreSQL bin directory at a PostgreSQL installation`);
  }
}

function spawnPg(src: PgBaseBackupSource, binary: string, args: string[]): ChildProcess {
  return spawn(join(src.binDir, binary), args, {
    cwd: "/",
    env: { ...process.env, ...src.env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(src.asOsUser ? { uid: src.asOsUser.uid, gid: src.asOsUser.gid } : {}),
  });
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  error?: Error;
}

/** Resolves when the child has exited and its pipes are closed; keeps the last 16 KiB of stderr. */
function exitOf(child: ChildProcess): Promise<Exit> {
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString("utf8")).slice(-16 * KiB);
  });
  return new Promise((resolve) => {
    let error: Error | undefined;
    child.on("error", (e) => {
      error = e;
      // 'close' may never come when spawn itself failed.
      if (child.pid === undefined) resolve({ code: null, signal: null, stderr, error: e });
    });
    child.on("close", (code, signal) => resolve({ code, signal, stderr, ...(error ? { error } : {}) }));
  });
}

/**
 * The line of a PostgreSQL tool's stderr that says what went wrong: the last
 * error line ("pg_basebackup: error: ...", "FATAL: ..."), else the last line
 * that is not an indented continuation or hint.
 */
export function lastErrorLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const errors = lines.filter((l) => /\b(error|FATAL|ERROR|PANIC):/.test(l));
  const pick = errors.at(-1) ?? lines.filter((l) => !/^\s/.test(l)).at(-1) ?? lines.at(-1) ?? "";
  return pick.trim();
}

function exitFailure(what: string, exit: Exit, cause?: unknown): ServiceUnavailableError {
  const how = exit.error ? exit.error.message : exit.signal ? `killed by ${exit.signal}` : `exit ${exit.code}`;
  const line = lastErrorLine(exit.stderr);
  const why = exit.error ?? cause;
  return new ServiceUnavailableError(`${what} failed (${how})${line ? `: ${line}` : ""}`, why === undefined ? {} : { cause: why });
}

function connectionArgs(src: PgBaseBackupSource): string[] {
  return ["-h", src.host, "-p", String(src.port), "-U", src.user, "-w"];
}

/** "16MB" -> 16777216 (PostgreSQL's memory units). */
function parseMemoryUnit(text: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB|TB)?$/.exec(text.trim());
  if (!m) throw new InvalidInputError(`unexpected wal_segment_size '${text}' from the server`);
  const mult = { B: 1, kB: KiB, MB: MiB, GB: 1024 * MiB, TB: 1024 * 1024 * MiB }[(m[2] ?? "B") as "B"];
  return Number(m[1]) * mult;
}

/** server_version_num and wal_segment_size, over a replication connection (what pg_basebackup needs anyway). */
async function serverSettings(src: PgBaseBackupSource): Promise<{ version: number; walSegmentSize: number }> {
  const conn = `host=${quoteConn(src.host)} port=${src.port} user=${quoteConn(src.user)} dbname=replication replication=true`;
  const child = spawnPg(src, "psql", ["-X", "-A", "-t", "-w", "-d", conn, "-c", "SHOW server_version_num", "-c", "SHOW wal_segment_size"]);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const exit = await exitOf(child);
  if (exit.code !== 0) throw exitFailure("psql (SHOW server_version_num over a replication connection)", exit);
  const [v, seg] = out.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const version = Number(v);
  if (!Number.isSafeInteger(version) || version <= 0 || seg === undefined) {
    throw new InvalidInputError(`unexpected answer from the server to SHOW server_version_num / wal_segment_size: ${JSON.stringify(out.slice(0, 200))}`);
  }
  return { version, walSegmentSize: parseMemoryUnit(seg) };
}


/** WAL-Ranges of backup_manifest (its tail): the last range's timeline and End-LSN. */
export function stopFromBackupManifest(tail: string): { timeline: number; stopLsn: bigint } {
  const i = tail.lastIndexOf('"WAL-Ranges"');
  if (i < 0) throw new InvalidInputError("backup_manifest has no WAL-Ranges");
  const ranges = [...tail.slice(i).matchAll(/\{\s*"Timeline"\s*:\s*(\d+)\s*,\s*"Start-LSN"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"\s*,\s*"End-LSN"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"\s*\}/gi)];
  const last = ranges.at(-1);
  if (!last) throw new InvalidInputError("backup_manifest's WAL-Ranges lists no range");
  return { timeline: Number(last[1]), stopLsn: parseLsn(last[3]!.toUpperCase()) };
}

async function pushPostgres(
  src: PgBaseBackupSource,
  registeredSegmentSize: number,
  files: FileCollector,
  pipeline: ChunkPipeline,
  label: string,
): Promise<ReturnType<typeof postgresFieldsFromBackupLabel>> {
  // Asked while the backup streams; a connection problem is reported as pg_basebackup's.
  const settings = serverSettings(src).then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  const args = ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "--manifest-checksums=CRC32C", "-l", label, ...connectionArgs(src)];
  const child = spawnPg(src, "pg_basebackup", args);
  const exited = exitOf(child);
  const backupLabel = { bytes: Buffer.alloc(0), total: 0 };
  const manifestTail = { bytes: Buffer.alloc(0), total: 0 };
  const pgControl = { bytes: Buffer.alloc(0), total: 0 };
  let sawLabel = false;
  let sawManifest = false;
  let sawControl = false;
  try {
    for await (const entry of readTar(child.stdout!)) {
      // The server names one member "./pg_wal/archive_status" (basebackup.c), the others without "./".
      const path = entry.path.replace(/^(?:\.\/)+/, "");
      if (path === "" || path === ".") continue;
      if (entry.type === "directory") files.directory(path, entry.mode, entry.mtime);
      else if (entry.type === "symlink") files.symlink(path, entry.linkName!, entry.mtime);
      else if (entry.type === "file") {
        let body: AsyncIterable<Uint8Array> = entry.body;
        if (path === "backup_label") {
          sawLabel = true;
          body = keep(body, backupLabel, MAX_BACKUP_LABEL_BYTES, "head");
        } else if (path === "backup_manifest") {
          sawManifest = true;
          body = keep(body, manifestTail, MANIFEST_TAIL_BYTES, "tail");
        } else if (path === "global/pg_control") {
          sawControl = true;
          body = keep(body, pgControl, 8, "head");
        }
        await files.file(path, entry.mode, entry.mtime, body, isRelationFile(path));
      } else {
        throw new InvalidInputError(`pg_basebackup's archive has ${entry.type} entry ${JSON.stringify(entry.path)} (type '${entry.typeflag}'), which a snapshot cannot hold`);
      }
    }
  } catch (e) {
    // An archive cut short is pg_basebackup failing by itself (connection, authentication, tablespaces...):
    // its own last stderr line says why. Anything else is ours (a failed upload, an unsafe path): stop it.
    const truncated = e instanceof InvalidInputError && /truncated tar archive/.test(e.message);
    if (truncated) {
      const exit = await Promise.race([exited, new Promise<undefined>((r) => void setTimeout(() => r(undefined), 10_000).unref())]);
      if (exit && exit.code !== 0) throw exitFailure("pg_basebackup", exit, e);
    }
    child.kill("SIGTERM");
    await exited;
    throw e;
  }
  const exit = await exited;
  if (exit.code !== 0) throw exitFailure("pg_basebackup", exit);
  if (!sawLabel) throw new InvalidInputError("pg_basebackup's archive has no backup_label");
  if (!sawControl || pgControl.bytes.length < 8) throw new InvalidInputError("pg_basebackup's archive has no global/pg_control");
  if (!sawManifest) throw new InvalidInputError("pg_basebackup's archive has no backup_manifest (was it run with --no-manifest?)");

  const answer = await settings;
  if (!answer.ok) throw answer.e;
  const server = answer.v;
  if (server.walSegmentSize !== registeredSegmentSize) {
    throw new InvalidInputError(
      `the server's wal_segment_size is ${server.walSegmentSize} bytes, but the database is registered with ${registeredSegmentSize}: wrong server or wrong --database`,
    );
  }
  const size = server.walSegmentSize;
  const parsed = parseBackupLabel(backupLabel.bytes.toString("utf8"), size);
  const stop = stopFromBackupManifest(manifestTail.bytes.toString("utf8"));
  const systemIdentifier = (endianness() === "LE" ? pgControl.bytes.readBigUInt64LE(0) : pgControl.bytes.readBigUInt64BE(0)).toString();
  return postgresFieldsFromBackupLabel(parsed, {
    stopLsn: stop.stopLsn,
    walSegmentSize: size,
    version: server.version,
    systemIdentifier,
    // The file holding the stop LSN, as PostgreSQL's backup history file names it.
    ...(stop.timeline === parsed.startTimeline ? { stopWalFile: segmentName(stop.timeline, lsnToSegno(stop.stopLsn, size), size) } : {}),
    tablespaces: [],
  });
}

/**
 * The direct source: `pg_backup_start(label, fast)` in one psql session, the
 * data directory read by this process (readDataDirectory: what pg_basebackup
 * sends, `readers` files at once, global/pg_control last), then
 * `pg_backup_stop(true)` in the same session (it returns once the stop
 * segment is archived, as pg_basebackup -X none waits), whose backup_label
 * (and tablespace_map, when not empty) become files of the snapshot. Closing
 * the session ends the backup on any failure.
 */
async function pushPostgresDirect(
  src: PgBaseBackupSource,
  registeredSegmentSize: number,
  files: FileCollector,
  blockSize: number,
  label: string,
  warnings: string[],
): Promise<{ fields: ReturnType<typeof postgresFieldsFromBackupLabel>; stopSegment: { archiveStatus: string; name: string } }> {
  const session = PsqlSession.open(
    { binDir: src.binDir, host: src.host, port: src.port, user: src.user, database: src.database ?? "postgres", asOsUser: src.asOsUser, env: src.env },
    "psql (the direct snapshot source's session)",
  );
  let manifestLines: LineSpool | undefined;
  // A role short of what the direct source needs: one line saying what to grant, or to use the other source.
  const privileged = async (query: Promise<string>): Promise<string> => {
    try {
      return await query;
    } catch (e) {
      if (!/permission denied|must be superuser/i.test(describeError(e))) throw e;
      throw new ConfigError(
        `role ${src.user} may not take a backup with the direct source (${describeError(e)}): connect as a superuser, or GRANT it pg_read_all_settings ` +
          "and EXECUTE ON FUNCTION pg_backup_start, pg_backup_stop; or use --source basebackup with a REPLICATION role",
        { cause: e },
      );
    }
  };
  try {
    const settings = (
      await privileged(session.query(
        "SELECT concat_ws(E'\\n', current_setting('server_version_num'), current_setting('wal_segment_size'), " +
          "(SELECT system_identifier FROM pg_control_system()), current_setting('data_directory'))",
      ))
    ).split("\n");
    const version = Number(settings[0]);
    if (!Number.isSafeInteger(version) || version <= 0 || settings.length < 4) {
      throw new InvalidInputError(`unexpected answer from the server to the direct source's settings query: ${JSON.stringify(settings.join("|").slice(0, 200))}`);
    }
    const walSegmentSize = parseMemoryUnit(settings[1]!);
    if (walSegmentSize !== registeredSegmentSize) {
      throw new InvalidInputError(
        `the server's wal_segment_size is ${walSegmentSize} bytes, but the database is registered with ${registeredSegmentSize}: wrong server or wrong --database`,
      );
    }
    const systemIdentifier = settings[2]!;
    const dataDir = src.dataDir ?? settings.slice(3).join("\n");
    try {
      await assertClusterDirectory(dataDir);
    } catch (e) {
      if (!(e instanceof FileAccessError) || src.dataDir !== undefined) throw e;
      throw new FileAccessError(
        `${e.message} (the server's data_directory): the direct source reads it on this host; run the agent on the database host as its owner or root, pass --pgdata, or use --source basebackup`,
        { cause: e },
      );
    }
    const v15 = version >= 150000;
    await privileged(session.query(v15 ? `SELECT pg_backup_start(${sqlLiteral(label)}, true)` : `SELECT pg_start_backup(${sqlLiteral(label)}, true, false)`));
    const pgControl = { bytes: Buffer.alloc(0), total: 0 };
    // backup_manifest's lines, one per file read (~170 B each), on disk until the last file is read: memory does not grow with the file count.
    manifestLines = new LineSpool("backup_manifest's lines");
    const lines = manifestLines;
    const addFile = async (path: string, mode: number, mtime: Date, body: AsyncIterable<Uint8Array>, blocks: boolean): Promise<void> => {
      const { size, sha256 } = await files.file(path, mode, mtime, body, blocks);
      lines.add(backupManifestFileLine({ path, size, mtime, sha256 }));
    };
    const walk = await readDataDirectory(
      dataDir,
      {
        directory: (path, mode, mtime) => files.directory(path, mode, mtime),
        symlink: (path, target, mtime) => files.symlink(path, target, mtime),
        file: (path, mode, mtime, body) => addFile(path, mode, mtime, path === "global/pg_control" ? keep(body, pgControl, 8, "head") : body, isRelationFile(path)),
      },
      { readers: src.readers ?? DEFAULT_DIRECT_READERS, readSize: blockSize, last: new Set(["global/pg_control"]) },
    );
    if (walk.vanished.length > 0) {
      warnings.push(`${walk.vanished.length} file(s) vanished while the snapshot was read and were left out (dropped meanwhile; WAL replay recreates what matters): ${walk.vanished.slice(0, 5).join(", ")}`);
    }
    if (pgControl.bytes.length < 8) throw new InvalidInputError(`${dataDir} has no readable global/pg_control`);
    const fileSysid = (endianness() === "LE" ? pgControl.bytes.readBigUInt64LE(0) : pgControl.bytes.readBigUInt64BE(0)).toString();
    if (fileSysid !== systemIdentifier) {
      throw new InvalidInputError(`${dataDir} is not the data directory of the server at ${src.host}:${src.port} (system identifier ${fileSysid}, the server's ${systemIdentifier})`);
    }
    // wait_for_archive false, as WAL-G and pgBackRest stop: the stop segment is awaited beside the ingest (snapshotPush, waitArchived).
    const stopSql = v15
      ? "SELECT lsn, encode(convert_to(labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') FROM pg_backup_stop(false)"
      : "SELECT lsn, encode(convert_to(labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') FROM pg_stop_backup(false, false)";
    const [lsnText, labelHex, mapHex] = (await session.query(stopSql)).trim().split("|");
    if (lsnText === undefined || labelHex === undefined || mapHex === undefined) throw new InvalidInputError("unexpected answer from the server to pg_backup_stop");
    const now = new Date();
    const labelBytes = Buffer.from(labelHex, "hex");
    await addFile("backup_label", 0o600, now, once(labelBytes), false);
    if (mapHex !== "") await addFile("tablespace_map", 0o600, now, once(Buffer.from(mapHex, "hex")), false);
    const parsed = parseBackupLabel(labelBytes.toString("utf8"), walSegmentSize);
    const stopLsn = parseLsn(lsnText.toUpperCase());
    // What pg_basebackup would have sent with the files, so pg_verifybackup checks a restore of this snapshot too.
    await files.file("backup_manifest", 0o600, now, backupManifestPieces(lines.lines(), [{ timeline: parsed.startTimeline, startLsn: parsed.startLsn, endLsn: stopLsn }]), false);
    const stopWalFile = segmentName(parsed.startTimeline, lsnToSegno(stopLsn, walSegmentSize), walSegmentSize);
    const fields = postgresFieldsFromBackupLabel(parsed, { stopLsn, walSegmentSize, version, systemIdentifier, stopWalFile, tablespaces: [] });
    return { fields, stopSegment: { archiveStatus: join(dataDir, "pg_wal", "archive_status"), name: stopWalFile } };
  } finally {
    manifestLines?.close();
    await session.close();
  }
}

/** How often waitArchived looks at archive_status (ms). */
const ARCHIVED_POLL_MS = 100;

/**
 * Waits until PostgreSQL has archived WAL segment `name`, as pg_backup_stop
 * with wait_for_archive does (XLogArchiveIsBusy): its `.ready` file in
 * `archiveStatus` is gone (archive_command succeeded: `.done` instead, or
 * the segment already recycled). No `.ready` at all (archive_mode off) is
 * not waited for either, as pg_backup_stop then returns at once. Past
 * `timeoutMs`: TimeoutError naming the segment and where to look.
 */
export async function waitArchived(archiveStatus: string, name: string, timeoutMs: number): Promise<void> {
  const deadline = deadlineIn(timeoutMs);
  const ready = join(archiveStatus, `${name}.ready`);
  for (;;) {
    try {
      await stat(ready);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new FileAccessError(`cannot read ${ready} (${(e as NodeJS.ErrnoException).code ?? describeError(e)}) to see whether PostgreSQL archived the snapshot's stop segment`, { cause: e });
    }
    if (deadline.passed()) {
      throw new TimeoutError(
        `PostgreSQL did not archive WAL segment ${name}, the snapshot's stop segment, within ${Math.round(timeoutMs / 1000)} s: ` +
          "the snapshot is not restorable without it; check archive_command (pg_stat_archiver.last_failed_wal and the server log)",
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(ARCHIVED_POLL_MS, Math.max(1, deadline.left()))));
  }
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array, void, undefined> {
  yield bytes;
}

/** A PostgreSQL data directory: readable, with PG_VERSION and global/pg_control. */
async function assertClusterDirectory(dir: string): Promise<void> {
  await assertDirectory(dir);
  for (const f of ["PG_VERSION", "global/pg_control"]) {
    try {
      await stat(join(dir, f));
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new FileAccessError(
        code === "ENOENT" ? `${dir} is not a PostgreSQL data directory (no ${f})` : `cannot read ${join(dir, f)} (${code ?? describeError(cause)})`,
        { cause },
      );
    }
  }
}

// ---------------------------------------------------------------------------
// Waiting for the record

/**
 * Polls until the catalog records the snapshot (same manifest bytes, else
 * SnapshotConflictError), a quarantine record names its manifest
 * (QuarantinedError with the reason), or `timeoutMs` passes (TimeoutError).
 * Polls every 100 ms for the first minute, when ingest usually records a
 * snapshot (a record is noticed at most a tenth of a second late: at 250 ms
 * the wait was measured in quarter seconds, an eighth of a second lost on
 * average of a ~1 s wait), then growing by half each poll to 1 s
 * (nextPollDelay); quarantine and the failure note every fifth poll. A
 * minute of fast polls is 600 GetItems, 120 quarantine Queries and 120
 * failure-note reads: under $0.0003.
 */
export async function waitRecorded(
  catalog: Catalog,
  databaseId: string,
  snapshotId: string,
  manifestSha256: string,
  manifestKey: string,
  timeoutMs: number,
  onTick?: (elapsedSeconds: number) => void,
  /** The workflow's note on a run that ended without recording or quarantining (agent/wal-push.ts): IngestRetryableError. */
  note?: FailureNoteSource & { since: Date },
): Promise<SnapshotRecord> {
  const started = performance.now();
  const deadline = deadlineIn(timeoutMs);
  let delay = FAST_POLL_MS;
  let polls = 0;
  for (;;) {
    const rec = await catalog.getSnapshot(databaseId, snapshotId);
    if (rec) {
      if (rec.manifestSha256 !== manifestSha256) {
        throw new SnapshotConflictError(
          `snapshot ${snapshotId} is recorded with another manifest (sha256 ${rec.manifestSha256.slice(0, 12)}…, pushed ${manifestSha256.slice(0, 12)}…); the recorded one was kept`,
        );
      }
      return rec;
    }
    if (++polls % 5 === 0 || deadline.left() <= delay) {
      // Snapshot ingest records a rejected manifest as `snapshots/<snapshotId>/manifest.json`.
      const q = await catalog.listQuarantine(databaseId, `snapshots/${snapshotId}/manifest.json`);
      const last = q.at(-1);
      if (last) throw new QuarantinedError(`snapshot ${snapshotId} was rejected by ingest and quarantined: ${last.reason}`);
      const failed = note ? await readFailureNote(note, `snapshot ${snapshotId}`, note.since, "pushing the snapshot again will ingest it") : undefined;
      if (failed && !(await catalog.getSnapshot(databaseId, snapshotId))) throw failed;
    }
    if (deadline.passed()) {
      throw new TimeoutError(
        `snapshot ${snapshotId} was uploaded (${manifestKey}) but the catalog did not record it within ${Math.round(timeoutMs / 1000)} s; ` +
          `check the snapshot ingest workflow (\`walvault snapshot list\` shows it once recorded)`,
      );
    }
    onTick?.((performance.now() - started) / 1000);
    await new Promise((r) => setTimeout(r, Math.min(delay, deadline.left())));
    delay = nextPollDelay(performance.now() - started, delay);
  }
}

/** waitRecorded's first poll interval, and its interval for the first FAST_POLL_FOR_MS of waiting (ms). */
export const FAST_POLL_MS = 100;
export const FAST_POLL_FOR_MS = 60_000;

/** The interval after `previous` once `elapsedMs` have been waited: FAST_POLL_MS for the first minute, then half again longer each time, up to 1 s. */
export function nextPollDelay(elapsedMs: number, previous: number): number {
  return elapsedMs < FAST_POLL_FOR_MS ? FAST_POLL_MS : Math.min(Math.max(previous, FAST_POLL_MS) * 1.5, 1_000);
}
