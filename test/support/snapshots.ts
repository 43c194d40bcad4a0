/**
 * Test support for restore suites: snapshots and generic WAL put straight
 * into the vault and the catalog, the way snapshot ingest and `walvault
 * watch` leave them (so restore can be tested on its own), and an
 * ObjectStore that counts what is read.
 *
 * uploadSnapshotDir walks a directory in path order (directories, regular
 * files, symlinks), cuts every file with FastCDC (small parameters make
 * multi-chunk files out of small test files), stores each new chunk encoded
 * under db/<id>/chunks/<sha256> with the usual object metadata, writes the
 * manifest to db/<id>/snapshots/<sid>/manifest.json and records chunks and
 * snapshot in the catalog. Nothing goes through incoming/ or ingest.
 * With `pages` the manifest is stored in format 2 (core/manifest-pages.ts
 * pageManifest with those limits): the pages, then the header, which the
 * record's manifestSha256 names.
 */
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { pendingReplicas } from "../../core/catalog-records.js";
import { chunkerDescriptor, chunkStream, type ChunkerParams, DEFAULT_CHUNKER } from "../../core/chunking.js";
import { getCodec, type CodecName } from "../../core/codec.js";
import type { AgentConfig } from "../../core/config.js";
import { sha256Hex, Sha256Stream } from "../../core/hash.js";
import { snapshotPageKey, vaultChunkKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { pageManifest, serializePagedHeader, type PagedManifestHeader } from "../../core/manifest-pages.js";
import type { SnapshotRecord, WalRecord } from "../../core/schemas.js";
import {
  fixedBlocksDescriptor,
  parseBackupLabel,
  postgresFieldsFromBackupLabel,
  serializeManifest,
  SnapshotBuilder,
  snapshotIdFor,
  type GenericSnapshotFields,
  type PostgresSnapshotFields,
  type SnapshotManifest,
} from "../../core/snapshot.js";
import { objectMeta } from "../../core/verify.js";
import { parseLsn } from "../../core/wal.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectStore } from "../../store/object-store.js";

export interface VaultClients {
  store: ObjectStore;
  catalog: Catalog;
}

/** Small FastCDC parameters: a 100 KB file becomes a few dozen chunks. */
export const SMALL_CHUNKER: ChunkerParams = { minSize: 1024, avgSize: 4096, maxSize: 16384 };

export interface UploadSnapshotOptions {
  databaseId: string;
  /** The snapshot's root (the data directory). */
  dir: string;
  kind: "generic" | "postgres";
  generic?: GenericSnapshotFields;
  postgres?: PostgresSnapshotFields;
  startedAt?: Date;
  finishedAt?: Date;
  /** Six hex digits of the snapshot id (default random). */
  idSuffix?: string;
  chunker?: ChunkerParams;
  /** Cut every file into fixed blocks of this many bytes (the last one the remainder), as a PostgreSQL push cuts relation files, instead of content-defined chunks. */
  blockSize?: number;
  codec?: CodecName;
  /** Store the manifest in format 2 with these page limits (small ones make several pages and files cut across them). */
  pages?: { chunks: number; bytes: number };
  /** With `pages`: the header as stored and recorded (its digest in the record), e.g. one whose totals lie about its pages. */
  header?: (h: PagedManifestHeader) => PagedManifestHeader;
  /** The whole-file SHA-256 a file's entry records (default: its bytes'; undefined: what its chunks say, as a push without fileHashes). */
  fileSha256?: (path: string, whole: string) => string | undefined;
}

export interface UploadedSnapshot {
  manifest: SnapshotManifest;
  record: SnapshotRecord;
  /** Chunk SHA-256s per file path, in file order. */
  chunksOf: Map<string, string[]>;
}

function* blocksOf(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function walk(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  const names = (await readdir(rel === "" ? root : join(root, rel))).sort();
  for (const n of names) {
    const p = rel === "" ? n : `${rel}/${n}`;
    out.push(p);
    if ((await lstat(join(root, p))).isDirectory()) out.push(...(await walk(root, p)));
  }
  return out;
}

/** Puts a directory into the vault as a snapshot and records it (see the file comment). */
export async function uploadSnapshotDir(clients: VaultClients, cfg: AgentConfig, o: UploadSnapshotOptions): Promise<UploadedSnapshot> {
  const params = o.chunker ?? DEFAULT_CHUNKER;
  const codec = getCodec(o.codec ?? "zstd");
  const startedAt = o.startedAt ?? new Date();
  const snapshotId = snapshotIdFor(startedAt, o.idSuffix);
  const builder = new SnapshotBuilder();
  const stored = new Map<string, { size: number; storedSize: number }>();
  const chunksOf = new Map<string, string[]>();
  for (const rel of await walk(o.dir)) {
    const abs = join(o.dir, rel);
    const st = await lstat(abs);
    if (st.isDirectory()) builder.addDirectory(rel, st.mode & 0o7777, st.mtime);
    else if (st.isSymbolicLink()) builder.addSymlink(rel, await readlink(abs), st.mtime);
    else if (st.isFile()) {
      const handle = builder.startFile(rel, st.mode & 0o7777, st.mtime, o.blockSize === undefined ? {} : { chunking: "blocks" });
      const whole = new Sha256Stream();
      const list: string[] = [];
      const pieces = o.blockSize === undefined ? chunkStream(createReadStream(abs, { highWaterMark: 2 * params.maxSize }) as AsyncIterable<Buffer>, params) : blocksOf(await readFile(abs), o.blockSize);
      for await (const chunk of pieces) {
        whole.update(chunk);
        const sha = sha256Hex(chunk);
        list.push(sha);
        let known = stored.get(sha);
        const isNew = known === undefined;
        if (known === undefined) {
          const body = await codec.encode(chunk);
          await clients.store.put(cfg.vaultBucket, vaultChunkKey(o.databaseId, sha), body, objectMeta({ sha256: sha, codec: codec.name, size: chunk.length }));
          known = { size: chunk.length, storedSize: body.length };
          stored.set(sha, known);
        }
        handle.addChunk({ sha256: sha, size: known.size, storedSize: known.storedSize, codec: codec.name, isNew });
      }
      handle.finish(o.fileSha256 ? o.fileSha256(rel, whole.digest()) : whole.digest(), whole.size);
      chunksOf.set(rel, list);
    }
  }
  const finishedAt = o.finishedAt ?? new Date(Math.max(Date.now(), startedAt.getTime()));
  const common = {
    databaseId: o.databaseId,
    snapshotId,
    startedAt,
    finishedAt,
    chunker: chunkerDescriptor(params),
    codec: codec.name,
    ...(o.blockSize === undefined ? {} : { blocks: fixedBlocksDescriptor(o.blockSize) }),
  };
  const manifest =
    o.kind === "postgres"
      ? builder.build({ ...common, kind: "postgres", postgres: o.postgres! })
      : builder.build({ ...common, kind: "generic", generic: o.generic! });
  const manifestKey = vaultSnapshotManifestKey(o.databaseId, snapshotId);
  let text = serializeManifest(manifest);
  if (o.pages !== undefined) {
    const paged = pageManifest(manifest, o.pages);
    for (const p of paged.pages) {
      const body = Buffer.from(p.text, "utf8");
      await clients.store.put(cfg.vaultBucket, snapshotPageKey(manifestKey, p.index), body, objectMeta({ sha256: p.ref.sha256, codec: "none", size: body.length }));
    }
    text = serializePagedHeader(o.header ? o.header(paged.header) : paged.header);
  }
  const bytes = Buffer.from(text, "utf8");
  const manifestSha256 = sha256Hex(bytes);
  await clients.store.put(cfg.vaultBucket, manifestKey, bytes, objectMeta({ sha256: manifestSha256, codec: "none", size: bytes.length }));
  const now = new Date().toISOString();
  await clients.catalog.recordChunks(
    [...stored].map(([sha256, c]) => ({
      databaseId: o.databaseId,
      sha256,
      size: c.size,
      storedSize: c.storedSize,
      codec: codec.name,
      vaultKey: vaultChunkKey(o.databaseId, sha256),
      recordedAt: now,
    })),
  );
  const t = manifest.totals;
  const record: SnapshotRecord = {
    databaseId: o.databaseId,
    snapshotId,
    kind: manifest.kind,
    ...(manifest.kind === "postgres"
      ? {
          timeline: manifest.postgres.timeline,
          startLsn: manifest.postgres.startLsn,
          stopLsn: manifest.postgres.stopLsn,
          startWalFile: manifest.postgres.startWalFile,
        }
      : { streams: Object.fromEntries(manifest.generic.streams.map((s) => [s.id, String(s.lastSegno)])) }),
    startedAt: manifest.startedAt,
    finishedAt: manifest.finishedAt,
    manifestKey,
    manifestSha256,
    manifestSize: bytes.length,
    totals: {
      files: t.files,
      logicalBytes: t.logicalBytes,
      uniqueChunks: t.uniqueChunks,
      newChunks: t.newChunks,
      storedBytes: t.storedBytes,
      newStoredBytes: t.newStoredBytes,
    },
    status: "restorable",
    recordedAt: now,
    replicas: pendingReplicas((cfg.replicas ?? []).map((r) => r.region), now),
  };
  await clients.catalog.recordSnapshot(record);
  return { manifest, record, chunksOf };
}

/** Archives one generic WAL segment straight into the vault and the catalog, as `walvault watch` + ingest would. */
export async function archiveGenericSegment(
  clients: VaultClients,
  cfg: AgentConfig,
  o: { databaseId: string; stream: string; name: string; segno?: bigint; bytes: Buffer; archivedAt: Date; timeline?: number },
): Promise<WalRecord> {
  const codec = getCodec("zstd");
  const body = await codec.encode(o.bytes);
  const sha256 = sha256Hex(o.bytes);
  const vaultKey = `db/${o.databaseId}/wal/${o.stream}/${o.name}`;
  const put = await clients.store.put(cfg.vaultBucket, vaultKey, body, objectMeta({ sha256, codec: "zstd", size: o.bytes.length }));
  const rec: WalRecord = {
    databaseId: o.databaseId,
    name: o.name,
    kind: "segment",
    // The catalog keys WAL by timeline and name (a name must start with its timeline): streams whose
    // file names coincide need distinct timelines there.
    timeline: o.timeline ?? 1,
    ...(o.segno === undefined ? {} : { startLsn: o.segno.toString() }),
    size: o.bytes.length,
    storedSize: body.length,
    sha256,
    codec: "zstd",
    status: "stored",
    vaultKey,
    ...(put.versionId === undefined ? {} : { vaultVersionId: put.versionId }),
    archivedAt: o.archivedAt.toISOString(),
    replicas: pendingReplicas((cfg.replicas ?? []).map((r) => r.region), o.archivedAt.toISOString()),
  };
  await clients.catalog.recordWal(rec);
  return rec;
}

/** The manifest's postgres section for a plain-format pg_basebackup directory (backup_label + backup_manifest). */
export async function postgresFieldsOf(backupDir: string, version: number, walSegmentSize = 16 * 1024 * 1024): Promise<PostgresSnapshotFields> {
  const label = parseBackupLabel(await readFile(join(backupDir, "backup_label"), "utf8"), walSegmentSize);
  const bm = JSON.parse(await readFile(join(backupDir, "backup_manifest"), "utf8")) as { "WAL-Ranges": { "End-LSN": string }[] };
  const end = bm["WAL-Ranges"].at(-1)!["End-LSN"];
  return postgresFieldsFromBackupLabel(label, { stopLsn: parseLsn(end), walSegmentSize, version });
}

/** An ObjectStore that records every key it is asked to get (and passes everything through). */
export function countingStore(inner: ObjectStore): ObjectStore & { gets: string[]; reset(): void } {
  const gets: string[] = [];
  return {
    name: inner.name,
    gets,
    reset: () => void gets.splice(0),
    put: (b, k, body, m, o) => inner.put(b, k, body, m, o),
    get: (b, k, v) => {
      gets.push(k);
      return inner.get(b, k, v);
    },
    getRange: (b, k, start, end) => {
      gets.push(k);
      return inner.getRange(b, k, start, end);
    },
    head: (b, k, v, o) => inner.head(b, k, v, o),
    copy: (f, t) => inner.copy(f, t),
    delete: (b, k, v) => inner.delete(b, k, v),
    list: (b, p) => inner.list(b, p),
    requestRestore: (b, k, r) => inner.requestRestore(b, k, r),
  };
}
