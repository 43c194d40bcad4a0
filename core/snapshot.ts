/**
 * Snapshot manifests: the pure model of a content-addressed snapshot.
 *
 * A snapshot is a consistent directory tree (a PostgreSQL base backup, or a
 * generic database's snapshot directory). Every regular file is cut into
 * chunks (core/chunking.ts); each chunk is stored once per database under
 * `db/<id>/chunks/<sha256>` (the SHA-256 of its raw bytes) with the codec its
 * stored bytes are encoded with. The manifest lists the tree and, per file,
 * its chunks in order; it is uploaded LAST and is the commit point: a snapshot
 * exists once its manifest is in the vault, and a manifest refers only to
 * chunks that are there. Manifests live in the vault too
 * (`db/<id>/snapshots/<snapshotId>/manifest.json`), so the catalog can be
 * rebuilt from a bucket alone.
 *
 * Upload protocol (keys in core/keys.ts, design in docs/snapshots.md): the
 * agent uploads the chunks the vault does not have yet to
 * `incoming/db/<id>/chunks/<sha256>` (object metadata: SHA-256, codec, raw
 * size, as for WAL), then the manifest to
 * `incoming/db/<id>/snapshots/<snapshotId>/manifest.json`. Ingest runs
 * `validateManifest` (everything checkable without I/O), re-hashes and
 * promotes the chunks flagged `new`, checks that every chunk it returned is
 * in the vault with its recorded size, and only then promotes the manifest
 * and records the snapshot.
 *
 * Format, version 1 (`formatVersion: 1`; JSON, unknown fields are refused):
 *  - `snapshotId`: `YYYYMMDDTHHMMSSZ-xxxxxx`, the UTC start time to the second
 *    plus 6 random hex digits (`snapshotIdFor`), so ids sort by start time.
 *  - `kind` "postgres" with a `postgres` section, or "generic" with a
 *    `generic` section (never both).
 *  - `chunker`: how the chunks were cut (`chunkerDescriptor()`): restore does
 *    not need it (a file is the concatenation of its chunks, whatever cut
 *    them), dedup against older snapshots does. Files marked
 *    `chunking: "blocks"` (PostgreSQL relation files, docs/snapshots.md) are
 *    instead cut into fixed blocks of `blocks.blockSize` bytes from offset 0,
 *    the last block holding the remainder (`fixedBlocksDescriptor`).
 *  - `codec`: the codec new chunks were encoded with by default; each chunk
 *    records its own (chunks from older snapshots may use another).
 *  - `packs` (optional): the names (SHA-256 of the whole object) of the pack
 *    objects this push uploaded to `incoming/db/<id>/packs/<name>`
 *    (core/pack.ts, docs/packs.md), sorted and unique; together they hold
 *    exactly the chunks flagged `new`, so there are at most `newChunks` of
 *    them and at least one when any chunk is new. Ingest promotes them pack
 *    by pack without listing. Absent: the push uploaded one object per new
 *    chunk (`incoming/db/<id>/chunks/<sha256>`), as before packs. Where a
 *    chunk is stored is the catalog's to say (a chunk may move from pack to
 *    pack without its manifests changing); a chunk reference may name the
 *    pack it was in when the push wrote the manifest, as a hint readers
 *    look at first: `pack` for a new chunk, `reusedPack` for a reused one.
 *  - `reusedPacks` (optional): the names of the packs of earlier pushes the
 *    push found its reused chunks in (the previous manifest's, or the
 *    catalog's records), sorted and unique; a reused chunk's `reusedPack`
 *    indexes them. Absent: written before 2026-12-06, or nothing reused was
 *    in a pack.
 *  - `files`: one entry per directory, regular file and symlink under the
 *    snapshot root (the root itself is not an entry). Paths are relative
 *    POSIX paths (see `pathProblem`), unique, and every entry's parent is a
 *    directory entry, so nothing can lie under a symlink. A file's `chunks`
 *    are in file order and carry no offsets: chunk i starts at the sum of the
 *    sizes of chunks 0..i-1, and the sizes add up to the file's `size`. The
 *    file's `sha256`, when present, is of its whole content: always for an
 *    empty file (EMPTY_SHA256) and a file of one chunk (that chunk's name);
 *    for a file of two or more chunks only when the push was asked for it
 *    (`fileHashes`): the chunks' names and sizes already determine every
 *    byte, so a second SHA-256 of each byte proves nothing more
 *    (fileSha256Of; docs/decisions.md "No whole-file SHA-256 by default").
 *    Manifests written before 2026-12-05 have it on every file. A chunk record is
 *    { sha256, size (raw bytes), storedSize (encoded bytes in the vault),
 *    codec, new? }: `new: true` marks a chunk this snapshot's push uploaded
 *    (see totals); it is set on one occurrence at most in a manifest the
 *    builder writes, and any occurrence counts when reading.
 *  - `totals` (recomputed and compared by `validateManifest`):
 *      files, directories, symlinks — entries of each type;
 *      logicalBytes — sum of the sizes of all regular files (the tree's bytes);
 *      chunks — chunk references over all files, repeats included;
 *      uniqueChunks — distinct chunk SHA-256s referenced (a chunk repeated
 *        inside a file or across files counts once);
 *      storedBytes — sum of storedSize over the unique chunks: the vault bytes
 *        this snapshot needs, whether it uploaded them or shares them with
 *        older snapshots (what keeping this snapshot alone would cost);
 *      newChunks — unique chunks this snapshot's push uploaded because the
 *        vault did not have them (flagged `new`);
 *      newStoredBytes — sum of storedSize over those new chunks: what this
 *        snapshot added to the vault.
 *    "New" is the agent's view when it pushed. If another push promoted the
 *    same chunk first, promotion is a no-op and the figure over-counts by
 *    that chunk; if the agent wrongly believed a chunk was in the vault,
 *    ingest finds it missing and refuses the snapshot.
 *  - PostgreSQL (`postgres`): server version number, system identifier,
 *    wal segment size, start timeline, start/checkpoint/stop LSNs as
 *    PostgreSQL prints them ("0/2000028"), the start (and optional stop) WAL
 *    file names, and the parsed backup_label fields (`label`, `backupMethod`,
 *    `backupFrom`); the label's full text is the `backup_label` file entry,
 *    which must be present (with `global/pg_control`). Tablespaces: each
 *    tablespace's contents are recorded inline under `pg_tblspc/<oid>/` (a
 *    directory entry, not the symlink), and `tablespaces` keeps its oid and
 *    original location (tablespace_map); relocating them is the restore
 *    executor's decision (and so is the `tablespace_map` file: PostgreSQL
 *    replaces each pg_tblspc/<oid> it lists with a symlink at recovery, which
 *    fails on a non-empty directory).
 *  - Generic (`generic`): the WAL streams and, per stream, the last segment
 *    closed at or before the snapshot (`lastSegment`, its path, and
 *    `lastSegno`, its position): restore replays the segments after it.
 *
 * Scale: one JSON document, ~136 bytes per chunk record. Measured (Node 22,
 * 1M chunks = 61 GiB in 64 KiB blocks): 136 MB of JSON, build ~3 s, parse +
 * validate ~3 s, ~800 MB of heap. V8 strings stop near 512 MiB, so one
 * manifest holds at most ~3.5M chunk records (~440 GiB in the default 128
 * KiB blocks, ~7 TiB in 2 MiB chunks). Format 2 (core/manifest-pages.ts)
 * moves the files to bounded pages beside a header; store/manifest-pages.ts
 * reads both.
 *
 * Pure: no I/O, no clock (snapshotIdFor draws 3 random bytes unless given a
 * suffix).
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { z } from "zod";
import type { SnapshotHeader } from "./manifest-header.js";
import { CHUNKER_VERSION, chunkerDescriptor, validateChunkerParams, type ChunkerDescriptor } from "./chunking.js";
import { DEFAULT_CODEC, isCodecName, type CodecName } from "./codec.js";
import { InvalidInputError, ManifestInvalidError, UnsafePathError, type WalvaultError } from "./errors.js";
import { SHA256_RE } from "./hash.js";
import { SNAPSHOT_ID_RE, assertSnapshotId, vaultChunkKey } from "./keys.js";
import { formatTime, timeFromNs, tryParseTime } from "./time.js";
import type { DatabaseKind, SnapshotInfo } from "./restore-plan.js";
import { META_CODEC, META_DATABASE, META_SHA256, META_SIZE, codecSchema, databaseIdSchema, sha256Schema } from "./schemas.js";
import { assertSegmentSize, formatLsn, lsnToSegno, parseLsn, segmentName } from "./wal.js";

export { SNAPSHOT_ID_RE, assertSnapshotId };

export const SNAPSHOT_FORMAT_VERSION = 1;

/** SHA-256 of no bytes: the `sha256` of every empty file. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Linux limits: PATH_MAX (with its NUL) and NAME_MAX, in bytes. */
export const MAX_PATH_BYTES = 4095;
export const MAX_NAME_BYTES = 255;

/** Permission bits plus setuid, setgid and sticky. */
export const MAX_MODE = 0o7777;

/**
 * Fixed-size, page-aligned cutting: chunk i is bytes [i * blockSize,
 * (i + 1) * blockSize) of the file, the last one shorter if the file ends
 * first. The whole algorithm is that sentence; the id names it in manifests.
 */
export const FIXED_BLOCKS_ALGORITHM = "fixed-blocks-v1";
export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 64 * 1024 * 1024;

export interface FixedBlocksDescriptor {
  algorithm: typeof FIXED_BLOCKS_ALGORITHM;
  blockSize: number;
}

/** What a manifest records about files cut in fixed blocks; blockSize a power of two, 4 KiB to 64 MiB. */
export function fixedBlocksDescriptor(blockSize: number): FixedBlocksDescriptor {
  const problem = blockSizeProblem(blockSize);
  if (problem !== undefined) throw new InvalidInputError(`block size ${String(blockSize)} ${problem}`);
  return { algorithm: FIXED_BLOCKS_ALGORITHM, blockSize };
}

function blockSizeProblem(n: number): string | undefined {
  const ok = Number.isSafeInteger(n) && n >= MIN_BLOCK_SIZE && n <= MAX_BLOCK_SIZE && (n & (n - 1)) === 0;
  return ok ? undefined : `is not a power of two between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE}`;
}

// ---------------------------------------------------------------------------
// Snapshot ids

/**
 * A new snapshot id for a snapshot started at `startedAt`:
 * "20261121T073000Z-ab12cd". `random` (6 lowercase hex digits) is for tests
 * and replays; by default 3 random bytes.
 */
export function snapshotIdFor(startedAt: Date, random?: string): string {
  if (!(startedAt instanceof Date) || Number.isNaN(startedAt.getTime())) {
    throw new InvalidInputError("snapshot start time is not a valid date");
  }
  const iso = startedAt.toISOString();
  if (!/^\d{4}-/.test(iso)) {
    throw new InvalidInputError(`snapshot start time ${iso} is outside the years 0000-9999`);
  }
  const suffix = random ?? randomBytes(3).toString("hex");
  if (!/^[0-9a-f]{6}$/.test(suffix)) {
    throw new InvalidInputError(`snapshot id suffix '${suffix}' must be 6 lowercase hex digits`);
  }
  return assertSnapshotId(`${iso.slice(0, 19).replace(/[-:]/g, "")}Z-${suffix}`);
}

/** The start time (to the second) a snapshot id encodes. */
export function snapshotIdTime(id: string): Date {
  const m = SNAPSHOT_ID_RE.exec(assertSnapshotId(id))!;
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}

// ---------------------------------------------------------------------------
// Paths

const CONTROL_RE = /[\u0001-\u001f\u007f]/;
const byteLength = (s: string): number => Buffer.byteLength(s, "utf8");

/**
 * Why `path` is not a safe relative POSIX path, or undefined when it is.
 * Safe: not empty; no NUL, other control character or backslash; not
 * absolute; no empty segment (`a//b`, a trailing '/'); no '.' or '..'
 * segment; at most MAX_PATH_BYTES bytes and MAX_NAME_BYTES per segment.
 * Nothing is normalised into acceptance: `a/./b` is refused, not read as `a/b`.
 */
export function pathProblem(path: unknown): string | undefined {
  if (typeof path !== "string") return "is not a string";
  if (path === "") return "is empty";
  if (path.includes("\0")) return "contains a NUL byte";
  if (CONTROL_RE.test(path)) return "contains a control character";
  if (path.includes("\\")) return "contains a backslash";
  if (path.startsWith("/")) return "is absolute";
  const segments = path.split("/");
  if (segments.some((s) => s === "")) return "has an empty segment";
  if (segments.some((s) => s === "." || s === "..")) return "contains a '.' or '..' segment";
  if (byteLength(path) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  if (segments.some((s) => byteLength(s) > MAX_NAME_BYTES)) return `has a name longer than ${MAX_NAME_BYTES} bytes`;
  return undefined;
}

/** Returns `path` when it is safe (pathProblem), else throws UnsafePathError naming `what`. */
export function assertSafeRelativePath(path: string, what = "path"): string {
  const problem = pathProblem(path);
  if (problem !== undefined) throw new UnsafePathError(`${what} ${JSON.stringify(path)} ${problem}`, { path });
  return path;
}

/** Why a symlink target is unusable, or undefined. Targets are data (never joined or followed here). */
export function linkTargetProblem(target: string): string | undefined {
  if (target === "") return "is empty";
  if (target.includes("\0")) return "contains a NUL byte";
  if (byteLength(target) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  return undefined;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

function depthOf(path: string): number {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return n;
}

// ---------------------------------------------------------------------------
// Schema

const LSN_TEXT_RE = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
/** PostgreSQL's own spelling of an LSN: upper-case hex halves without leading zeros. */
function isCanonicalLsn(text: string): boolean {
  return LSN_TEXT_RE.test(text) && formatLsn(parseLsn(text)) === text;
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const positive = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const isoTime = z.string().datetime({ message: "not an ISO 8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ)" });
const modeSchema = z.number().int().min(0).max(MAX_MODE);
const lsnText = z.string().refine(isCanonicalLsn, "not an LSN as PostgreSQL prints it (e.g. 0/2000028)");
const walSegmentNameSchema = z.string().regex(/^[0-9A-F]{24}$/, "not a WAL segment file name");

export const snapshotIdSchema = z.string().refine((id) => {
  try {
    assertSnapshotId(id);
    return true;
  } catch {
    return false;
  }
}, "not a snapshot id (e.g. 20261121T073000Z-ab12cd)");

/** A safe relative path (pathProblem); an unsafe one is an issue carrying `params.unsafePath`. */
export const relativePathSchema = z.string().superRefine((path, ctx) => {
  const problem = pathProblem(path);
  if (problem !== undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `path ${JSON.stringify(path)} ${problem}`, params: { unsafePath: path } });
  }
});

const pathTextSchema = (what: string): z.ZodEffects<z.ZodString> =>
  z.string().superRefine((text, ctx) => {
    const problem = linkTargetProblem(text);
    if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${what} ${problem}` });
  });
const linkTargetSchema = pathTextSchema("symlink target");

export const chunkRecordSchema = z
  .object({
    sha256: sha256Schema,
    /** Raw (decoded) bytes. */
    size: positive,
    /** Encoded bytes, as stored in the vault. */
    storedSize: positive,
    codec: codecSchema,
    /** Uploaded by this snapshot's push (the vault did not have it). */
    new: z.literal(true).optional(),
    /**
     * A new chunk of a packed push: the index in the manifest's `packs` of
     * the pack it was uploaded in. Ingest then checks it against that pack's
     * index instead of reading the chunk's catalog record (docs/packs.md,
     * "Checked against the pack"). Absent: the record is read.
     */
    pack: z.number().int().nonnegative().optional(),
    /**
     * A chunk this push did not upload: the index in the manifest's
     * `reusedPacks` of the pack the push found it in (the previous
     * manifest's pack for it, or its catalog record's). Where a reader looks
     * first; the catalog's record stays the authority, so a chunk since
     * repacked or swept is found there (docs/packs.md, "Chunk references
     * that name their pack").
     */
    reusedPack: z.number().int().nonnegative().optional(),
  })
  .strict();

export const regularFileEntrySchema = z
  .object({
    path: relativePathSchema,
    type: z.literal("file"),
    mode: modeSchema,
    mtime: isoTime,
    size: count,
    /** The whole file's SHA-256; absent for a file of two or more chunks pushed without `fileHashes` (fileSha256Of). */
    sha256: sha256Schema.optional(),
    /** Cut in fixed blocks (`blocks`); absent: content-defined (`chunker`). */
    chunking: z.literal("blocks").optional(),
    chunks: z.array(chunkRecordSchema),
  })
  .strict();
export const directoryEntrySchema = z.object({ path: relativePathSchema, type: z.literal("directory"), mode: modeSchema, mtime: isoTime }).strict();
export const symlinkEntrySchema = z.object({ path: relativePathSchema, type: z.literal("symlink"), mtime: isoTime, linkTarget: linkTargetSchema }).strict();

export const fileEntrySchema = z.discriminatedUnion("type", [regularFileEntrySchema, directoryEntrySchema, symlinkEntrySchema]);

export const chunkerSchema = z
  .object({ algorithm: z.string(), minSize: positive, avgSize: positive, maxSize: positive })
  .strict();

export const blocksSchema = z.object({ algorithm: z.string(), blockSize: positive }).strict();

export const snapshotTotalsSchema = z
  .object({
    files: count,
    directories: count,
    symlinks: count,
    logicalBytes: count,
    chunks: count,
    uniqueChunks: count,
    newChunks: count,
    storedBytes: count,
    newStoredBytes: count,
  })
  .strict();

export const postgresSnapshotSchema = z
  .object({
    /** server_version_num, e.g. 150018. */
    version: positive,
    /** pg_control's database system identifier (uint64, decimal). */
    systemIdentifier: z.string().regex(/^\d{1,20}$/, "not a decimal system identifier").optional(),
    walSegmentSize: positive,
    /** START TIMELINE. */
    timeline: z.number().int().min(1).max(0xffff_ffff),
    /** START WAL LOCATION: the backup's redo point. */
    startLsn: lsnText,
    /** CHECKPOINT LOCATION. */
    checkpointLsn: lsnText,
    /** pg_backup_stop's LSN: replay must reach it to be consistent. */
    stopLsn: lsnText,
    /** The file in START WAL LOCATION. */
    startWalFile: walSegmentNameSchema,
    /** The WAL file holding stopLsn (or ending at it: pg_walfile_name's view). */
    stopWalFile: walSegmentNameSchema.optional(),
    /** LABEL (the full backup_label text is the `backup_label` file entry). */
    label: z.string(),
    /** BACKUP METHOD, e.g. "streamed". */
    backupMethod: z.string().min(1),
    /** BACKUP FROM. */
    backupFrom: z.enum(["primary", "standby"]),
    /** From tablespace_map; contents inline under pg_tblspc/<oid>/. */
    tablespaces: z.array(
      z
        .object({
          oid: z.string().regex(/^[1-9]\d{0,9}$/, "not a tablespace oid"),
          location: pathTextSchema("tablespace location"),
          name: z.string().optional(),
        })
        .strict(),
    ),
  })
  .strict();

export const genericSnapshotSchema = z
  .object({
    streams: z
      .array(
        z
          .object({
            /** Stream name, e.g. "wal" or "stripe-0". */
            id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "not a stream id (letters, digits, '.', '_', '-')"),
            /** The stream's WAL directory, relative to the data directory (default: lastSegment's directory). */
            dir: relativePathSchema.optional(),
            /** Path (relative to the data directory) of the last segment closed at or before the snapshot; absent when none was closed yet. */
            lastSegment: relativePathSchema.optional(),
            /** Its position (with no lastSegment: the position before the stream's first segment): restore lays out the segments after it. */
            lastSegno: count,
            /**
             * A marker-closed stream's marker suffix (e.g. ".done": `<segment>.done` seals a segment). Restore
             * writes it beside every segment it lays out after the snapshot, as the database sealed them.
             */
            closedMarker: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, "a marker is a file-name suffix such as '.done'").optional(),
          })
          .strict(),
      )
      .min(1, "a generic snapshot names at least one WAL stream"),
  })
  .strict();

/** The ids every manifest format and every page of format 2 carries (core/manifest-pages.ts). */
export const manifestIdFields = { databaseId: databaseIdSchema, snapshotId: snapshotIdSchema };
const header = { formatVersion: z.literal(SNAPSHOT_FORMAT_VERSION), ...manifestIdFields };
/** The fields of a manifest besides ids, kind, its kind's section, totals and files; shared by format 2's header. */
export const manifestCommonFields = {
  startedAt: isoTime,
  finishedAt: isoTime,
  chunker: chunkerSchema,
  blocks: blocksSchema.optional(),
  codec: codecSchema,
  /** Pack objects this push uploaded (core/pack.ts names), sorted and unique; absent: one object per new chunk. */
  packs: z.array(sha256Schema).optional(),
  /** Packs of earlier pushes holding this manifest's reused chunks, as the push found them, sorted and unique (a reused chunk's `reusedPack` indexes them). */
  reusedPacks: z.array(sha256Schema).optional(),
};
const tail = { totals: snapshotTotalsSchema, files: z.array(fileEntrySchema) };

export const postgresManifestSchema = z
  .object({ ...header, kind: z.literal("postgres"), ...manifestCommonFields, postgres: postgresSnapshotSchema, ...tail })
  .strict();
export const genericManifestSchema = z
  .object({ ...header, kind: z.literal("generic"), ...manifestCommonFields, generic: genericSnapshotSchema, ...tail })
  .strict();
export const snapshotManifestSchema = z.discriminatedUnion("kind", [postgresManifestSchema, genericManifestSchema]);

export type SnapshotManifest = z.infer<typeof snapshotManifestSchema>;
export type PostgresSnapshotManifest = z.infer<typeof postgresManifestSchema>;
export type GenericSnapshotManifest = z.infer<typeof genericManifestSchema>;
export type PostgresSnapshotFields = z.infer<typeof postgresSnapshotSchema>;
export type GenericSnapshotFields = z.infer<typeof genericSnapshotSchema>;
export type FileEntry = z.infer<typeof fileEntrySchema>;
export type RegularFileEntry = Extract<FileEntry, { type: "file" }>;
export type DirectoryEntry = Extract<FileEntry, { type: "directory" }>;
export type SymlinkEntry = Extract<FileEntry, { type: "symlink" }>;
export type ChunkRecord = z.infer<typeof chunkRecordSchema>;
export type SnapshotTotals = z.infer<typeof snapshotTotalsSchema>;

/** Object metadata of a pack (beside the checksum fields): its entry count and data length, as its footer says. */
export const META_PACK_ENTRIES = "walvault-pack-entries";
export const META_PACK_DATA_LENGTH = "walvault-pack-data-length";

/**
 * The metadata a pack object carries, in incoming (the agent's upload) and in
 * the vault: the usual checksum fields (SHA-256 = its name, codec none: the
 * object is the pack itself, size), its entry count and data length (so a
 * listing tool can size it without reading its tail) and the database.
 */
export function packObjectMeta(databaseId: string, pack: { name: string; size: number; entries: number; dataLength: number }): Record<string, string> {
  return {
    [META_SHA256]: pack.name,
    [META_CODEC]: "none",
    [META_SIZE]: String(pack.size),
    [META_PACK_ENTRIES]: String(pack.entries),
    [META_PACK_DATA_LENGTH]: String(pack.dataLength),
    [META_DATABASE]: databaseId,
  };
}

/** The manifest as stored: compact JSON, one trailing newline. */
export function serializeManifest(manifest: SnapshotManifest): string {
  return `${JSON.stringify(manifest)}\n`;
}

// ---------------------------------------------------------------------------
// Validation

/** What the caller knows independently of the manifest (the object key, the catalog). */
export interface ManifestExpectations {
  /** The database id of the key it was uploaded under. */
  databaseId?: string;
  /** The snapshot id of the key it was uploaded under. */
  snapshotId?: string;
  /** The database's registered kind. */
  kind?: DatabaseKind;
  /** The database's registered wal_segment_size (PostgreSQL). */
  walSegmentSize?: number;
}

/** One distinct chunk a manifest references. */
export interface UniqueChunk {
  sha256: string;
  size: number;
  storedSize: number;
  codec: CodecName;
  /** Uploaded with this snapshot (to be promoted from incoming). */
  new: boolean;
  /** The index in the manifest's `packs` of the pack it was uploaded in, when the manifest says. */
  pack?: number;
  /** A reused chunk: the index in the manifest's `reusedPacks` of the pack the push found it in, when the manifest says. */
  reusedPack?: number;
}

export interface ValidatedManifest {
  manifest: SnapshotManifest;
  /** Every distinct chunk referenced, in order of first reference: each must exist before the manifest is promoted. */
  chunks: UniqueChunk[];
}

const fieldOf = (path: ReadonlyArray<string | number>): string =>
  path.length === 0
    ? "(top level)"
    : path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");

function invalid(field: string, message: string): ManifestInvalidError {
  return new ManifestInvalidError(`snapshot manifest ${field}: ${message}`, { field });
}

function schemaError(error: z.ZodError): WalvaultError {
  const issue = error.issues[0]!;
  const field = fieldOf(issue.path);
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem(s))` : "";
  const unsafe = issue.code === z.ZodIssueCode.custom ? (issue.params as { unsafePath?: unknown } | undefined)?.unsafePath : undefined;
  if (typeof unsafe === "string") {
    return new UnsafePathError(`snapshot manifest ${field}: ${issue.message}${more}`, { path: unsafe });
  }
  return new ManifestInvalidError(`snapshot manifest ${field}: ${issue.message}${more}`, { field });
}

interface Analysis {
  totals: SnapshotTotals;
  chunks: UniqueChunk[];
  byPath: Map<string, FileEntry>;
}

/**
 * Checks the tree (unique paths, parents are directories) and every file's
 * chunks (sizes add up, a repeated SHA-256 always has the same size, stored
 * size and codec), and computes the totals.
 */
function analyseFiles(files: readonly FileEntry[], maxChunkSize: number, blockSize: number | undefined, packs: number | undefined, reusedPacks: number | undefined): Analysis {
  const index = new Map<string, number>();
  files.forEach((e, i) => {
    const first = index.get(e.path);
    if (first !== undefined) {
      throw invalid(`files[${i}].path`, `${JSON.stringify(e.path)} is listed twice (first as files[${first}])`);
    }
    index.set(e.path, i);
  });
  const byPath = new Map<string, FileEntry>();
  const unique = new Map<string, UniqueChunk>();
  const totals: SnapshotTotals = {
    files: 0,
    directories: 0,
    symlinks: 0,
    logicalBytes: 0,
    chunks: 0,
    uniqueChunks: 0,
    newChunks: 0,
    storedBytes: 0,
    newStoredBytes: 0,
  };
  files.forEach((e, i) => {
    const at = `files[${i}]`;
    byPath.set(e.path, e);
    const parent = parentOf(e.path);
    if (parent !== "") {
      const p = index.get(parent);
      if (p === undefined) {
        throw invalid(`${at}.path`, `the parent directory of ${JSON.stringify(e.path)}, ${JSON.stringify(parent)}, is not in the snapshot`);
      }
      const type = files[p]!.type;
      if (type === "symlink") {
        throw new UnsafePathError(
          `snapshot manifest ${at}.path: ${JSON.stringify(e.path)} lies under the symlink ${JSON.stringify(parent)} (files[${p}]); restoring it would write through the link`,
          { path: e.path },
        );
      }
      if (type !== "directory") {
        throw invalid(`${at}.path`, `the parent of ${JSON.stringify(e.path)}, ${JSON.stringify(parent)}, is a ${type} (files[${p}]), not a directory`);
      }
    }
    if (e.type === "directory") {
      totals.directories++;
      return;
    }
    if (e.type === "symlink") {
      totals.symlinks++;
      return;
    }
    totals.files++;
    const blocks = e.chunking === "blocks";
    if (blocks && blockSize === undefined) {
      throw invalid(`${at}.chunking`, `${JSON.stringify(e.path)} is cut in blocks, but the manifest has no blocks descriptor`);
    }
    let sum = 0;
    e.chunks.forEach((c, j) => {
      const cat = `${at}.chunks[${j}]`;
      checkChunkRecord(c, cat, e.path, j, { blocks, blockSize, maxChunkSize, last: j === e.chunks.length - 1, packs, reusedPacks });
      const prior = unique.get(c.sha256);
      if (prior === undefined) unique.set(c.sha256, uniqueChunkOf(c));
      else mergeSameChunk(c, prior, cat);
      sum += c.size;
      totals.chunks++;
    });
    checkFileEnd(at, e, sum, e.chunks.length, e.chunks[0]?.sha256);
    totals.logicalBytes += e.size;
  });
  const chunks = [...unique.values()];
  for (const c of chunks) {
    totals.uniqueChunks++;
    totals.storedBytes += c.storedSize;
    if (c.new) {
      totals.newChunks++;
      totals.newStoredBytes += c.storedSize;
    }
  }
  checkSafeTotals(totals);
  return { totals, chunks, byPath };
}

/** Every computed total is a safe integer. */
export function checkSafeTotals(totals: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(totals)) {
    if (!Number.isSafeInteger(v)) throw invalid(`totals.${k}`, `the files add up to more than ${Number.MAX_SAFE_INTEGER}`);
  }
}

/** How the files of a manifest are cut, for checkChunkRecord. */
export interface ChunkCut {
  /** The file is cut in fixed blocks of `blockSize` bytes. */
  blocks: boolean;
  blockSize: number | undefined;
  /** The content-defined chunker's maxSize. */
  maxChunkSize: number;
  /** Whether this is (or may be) the file's last chunk: only the last block may be shorter. */
  last: boolean;
  /** How many packs the manifest lists (undefined: none, so no chunk may name one). */
  packs: number | undefined;
  /** How many reused packs the manifest lists (undefined: none, so no chunk may name one). */
  reusedPacks: number | undefined;
}

/** The rules one chunk record (chunk `j` of `path`, at field `cat`) obeys on its own: its size for how its file is cut, and codec none stores it raw. */
export function checkChunkRecord(c: ChunkRecord, cat: string, path: string, j: number, cut: ChunkCut): void {
  if (cut.blocks) {
    if (cut.last ? c.size > cut.blockSize! : c.size !== cut.blockSize) {
      throw invalid(
        `${cat}.size`,
        `${JSON.stringify(path)} is cut in ${cut.blockSize}-byte blocks, but chunk ${j} has ${c.size} bytes (only the last may be shorter)`,
      );
    }
  } else if (c.size > cut.maxChunkSize) {
    throw invalid(`${cat}.size`, `chunk of ${c.size} bytes is larger than the chunker's maxSize ${cut.maxChunkSize}`);
  }
  if (c.codec === "none" && c.storedSize !== c.size) {
    throw invalid(`${cat}.storedSize`, `chunk ${c.sha256} is stored with codec none, so its storedSize ${c.storedSize} must equal its size ${c.size}`);
  }
  if (c.pack !== undefined) {
    if (c.new !== true) throw invalid(`${cat}.pack`, `chunk ${c.sha256} names a pack but is not flagged new: only a chunk this push uploaded has a pack of this push`);
    if (cut.packs === undefined) throw invalid(`${cat}.pack`, `chunk ${c.sha256} names pack ${c.pack}, but the manifest lists no packs`);
    if (c.pack >= cut.packs) throw invalid(`${cat}.pack`, `chunk ${c.sha256} names pack ${c.pack}, but the manifest lists ${cut.packs} pack(s)`);
  }
  if (c.reusedPack !== undefined) {
    if (c.new === true) throw invalid(`${cat}.reusedPack`, `chunk ${c.sha256} is flagged new but names a reused pack: a new chunk is in a pack of this push`);
    if (cut.reusedPacks === undefined) throw invalid(`${cat}.reusedPack`, `chunk ${c.sha256} names reused pack ${c.reusedPack}, but the manifest lists no reused packs`);
    if (c.reusedPack >= cut.reusedPacks) {
      throw invalid(`${cat}.reusedPack`, `chunk ${c.sha256} names reused pack ${c.reusedPack}, but the manifest lists ${cut.reusedPacks} reused pack(s)`);
    }
  }
}

/** A manifest's chunk reference as the first of its distinct chunk. */
export function uniqueChunkOf(c: ChunkRecord): UniqueChunk {
  const u: UniqueChunk = { sha256: c.sha256, size: c.size, storedSize: c.storedSize, codec: c.codec, new: c.new === true };
  if (c.pack !== undefined) u.pack = c.pack;
  if (c.reusedPack !== undefined) u.reusedPack = c.reusedPack;
  return u;
}

/** Another reference `c` (at field `cat`) to the distinct chunk `prior`: the same sizes, codec and pack (checkSameChunk); a `new` flag or a pack on any reference holds for the chunk. */
export function mergeSameChunk(c: ChunkRecord, prior: UniqueChunk, cat: string): void {
  checkSameChunk(c, prior, cat);
  if (c.new === true) prior.new = true;
  if (c.pack !== undefined) prior.pack ??= c.pack;
  if (c.reusedPack !== undefined) prior.reusedPack ??= c.reusedPack;
  if (prior.new && prior.reusedPack !== undefined) {
    throw invalid(`${cat}.reusedPack`, `chunk ${c.sha256} is flagged new on one reference and names a reused pack on another: a new chunk is in a pack of this push`);
  }
}

/** A chunk recorded twice has the same size, stored size and codec both times. */
export function checkSameChunk(c: ChunkRecord, prior: Pick<ChunkRecord, "size" | "storedSize" | "codec" | "pack" | "reusedPack">, cat: string): void {
  if (prior.size !== c.size || prior.storedSize !== c.storedSize || prior.codec !== c.codec) {
    throw invalid(
      cat,
      `chunk ${c.sha256} is recorded as ${c.size} bytes, ${c.storedSize} stored, codec ${c.codec}, ` +
        `but elsewhere as ${prior.size} bytes, ${prior.storedSize} stored, codec ${prior.codec}`,
    );
  }
  if (c.pack !== undefined && prior.pack !== undefined && c.pack !== prior.pack) {
    throw invalid(`${cat}.pack`, `chunk ${c.sha256} is in pack ${c.pack} here but in pack ${prior.pack} elsewhere`);
  }
  if (c.reusedPack !== undefined && prior.reusedPack !== undefined && c.reusedPack !== prior.reusedPack) {
    throw invalid(`${cat}.reusedPack`, `chunk ${c.sha256} is in reused pack ${c.reusedPack} here but in reused pack ${prior.reusedPack} elsewhere`);
  }
}

/**
 * The `sha256` a manifest records for a file of `count` chunks, the first
 * named `first`: the whole file's SHA-256 when the push computed one
 * (`whole`), else what the chunks already say: the SHA-256 of no bytes for
 * an empty file, the chunk's name for a file of one chunk, nothing for more.
 */
export function fileSha256Of(count: number, first: string | undefined, whole?: string): string | undefined {
  if (whole !== undefined) return whole;
  if (count === 0) return EMPTY_SHA256;
  return count === 1 ? first : undefined;
}

/** A file's chunks (`count` of them adding up to `sum` bytes, the first `firstSha256`) agree with its size and, when recorded, its SHA-256. */
export function checkFileEnd(at: string, e: { path: string; size: number; sha256?: string | undefined }, sum: number, count: number, firstSha256: string | undefined): void {
  if (sum !== e.size) {
    throw invalid(`${at}.size`, `the chunks of ${JSON.stringify(e.path)} add up to ${sum} bytes, but its size is ${e.size}`);
  }
  if (e.sha256 === undefined) return;
  if (count === 0 && e.sha256 !== EMPTY_SHA256) {
    throw invalid(`${at}.sha256`, `${JSON.stringify(e.path)} is empty, so its sha256 must be the SHA-256 of no bytes (${EMPTY_SHA256})`);
  }
  if (count === 1 && firstSha256 !== e.sha256) {
    throw invalid(`${at}.sha256`, `${JSON.stringify(e.path)} is one chunk, so its sha256 must be that chunk's (${firstSha256})`);
  }
}

function checkPostgres(m: Pick<PostgresSnapshotManifest, "databaseId" | "postgres">, expect: ManifestExpectations): void {
  const pg = m.postgres;
  try {
    assertSegmentSize(pg.walSegmentSize);
  } catch (e) {
    throw invalid("postgres.walSegmentSize", (e as Error).message);
  }
  const size = pg.walSegmentSize;
  if (expect.walSegmentSize !== undefined && expect.walSegmentSize !== size) {
    throw invalid(
      "postgres.walSegmentSize",
      `is ${size}, but database '${m.databaseId}' is registered with ${expect.walSegmentSize}-byte WAL segments`,
    );
  }
  const start = parseLsn(pg.startLsn);
  const checkpoint = parseLsn(pg.checkpointLsn);
  const stop = parseLsn(pg.stopLsn);
  if (start > stop) throw invalid("postgres.stopLsn", `${pg.stopLsn} is before startLsn ${pg.startLsn}`);
  if (checkpoint < start || checkpoint > stop) {
    throw invalid("postgres.checkpointLsn", `${pg.checkpointLsn} is not between startLsn ${pg.startLsn} and stopLsn ${pg.stopLsn}`);
  }
  const mb = `${size / (1 << 20)} MB segments`;
  const startName = segmentName(pg.timeline, lsnToSegno(start, size), size);
  if (pg.startWalFile !== startName) {
    throw invalid(
      "postgres.startWalFile",
      `is ${pg.startWalFile}, but timeline ${pg.timeline} and startLsn ${pg.startLsn} are in ${startName} (${mb})`,
    );
  }
  if (pg.stopWalFile !== undefined) {
    const holding = segmentName(pg.timeline, lsnToSegno(stop, size), size);
    const ending = stop > 0n ? segmentName(pg.timeline, lsnToSegno(stop - 1n, size), size) : holding;
    if (pg.stopWalFile !== holding && pg.stopWalFile !== ending) {
      throw invalid(
        "postgres.stopWalFile",
        `is ${pg.stopWalFile}, but timeline ${pg.timeline} and stopLsn ${pg.stopLsn} are in ${holding === ending ? holding : `${ending} or ${holding}`} (${mb})`,
      );
    }
  }
  const oids = new Set<string>();
  pg.tablespaces.forEach((t, i) => {
    if (oids.has(t.oid)) throw invalid(`postgres.tablespaces[${i}].oid`, `tablespace ${t.oid} is listed twice`);
    oids.add(t.oid);
  });
}

/** The paths a postgres manifest's files must include (checkPostgresFiles): few, whatever the snapshot's size. */
export function postgresRequiredPaths(pg: PostgresSnapshotFields): string[] {
  return ["backup_label", "global/pg_control", ...pg.tablespaces.map((t) => `pg_tblspc/${t.oid}`)];
}

/** backup_label and global/pg_control are files, and each tablespace's pg_tblspc/<oid> a directory; `typeOf` says what a path is in the snapshot. */
export function checkPostgresFiles(pg: PostgresSnapshotFields, typeOf: (path: string) => FileEntry["type"] | undefined): void {
  for (const required of ["backup_label", "global/pg_control"]) {
    const type = typeOf(required);
    if (type !== "file") {
      throw invalid("files", `a postgres snapshot needs the file ${required}, ${type === undefined ? "which is missing" : `but it is a ${type}`}`);
    }
  }
  pg.tablespaces.forEach((t, i) => {
    const dir = `pg_tblspc/${t.oid}`;
    const type = typeOf(dir);
    if (type !== "directory") {
      throw invalid(
        `postgres.tablespaces[${i}]`,
        `the contents of tablespace ${t.oid} belong inline under ${dir}/, but ${dir} is ${type === undefined ? "not in the snapshot" : `a ${type}`}`,
      );
    }
  });
}

function checkGeneric(m: Pick<GenericSnapshotManifest, "generic">): void {
  const ids = new Set<string>();
  m.generic.streams.forEach((s, i) => {
    if (ids.has(s.id)) throw invalid(`generic.streams[${i}].id`, `stream '${s.id}' is listed twice`);
    ids.add(s.id);
    if (s.dir === undefined && s.lastSegment === undefined) throw invalid(`generic.streams[${i}]`, `stream '${s.id}' names neither its directory nor its last segment`);
    if (s.dir !== undefined && s.lastSegment !== undefined && posix.dirname(s.lastSegment) !== s.dir) {
      throw invalid(`generic.streams[${i}].lastSegment`, `${s.lastSegment} is not in the stream's directory ${s.dir}`);
    }
  });
}

/**
 * `packs`: each name once; every pack holds at least one chunk and every
 * chunk it holds is flagged new, so there are no more packs than new chunks,
 * and new chunks need at least one pack.
 */
export function checkPacks(packs: readonly string[], newChunks: number): void {
  const seen = new Set<string>();
  packs.forEach((name, i) => {
    if (seen.has(name)) throw invalid(`packs[${i}]`, `pack ${name} is listed twice`);
    seen.add(name);
  });
  if (packs.length > newChunks) {
    throw invalid("packs", `lists ${packs.length} pack(s), but only ${newChunks} chunk(s) are flagged new: every pack holds at least one new chunk`);
  }
  if (packs.length === 0 && newChunks > 0) {
    throw invalid("packs", `lists no pack, but ${newChunks} chunk(s) are flagged new: they would never be promoted`);
  }
}

/** `reusedPacks`: each name once (which chunks name them is checked per reference). */
export function checkReusedPacks(reusedPacks: readonly string[]): void {
  const seen = new Set<string>();
  reusedPacks.forEach((name, i) => {
    if (seen.has(name)) throw invalid(`reusedPacks[${i}]`, `pack ${name} is listed twice`);
    seen.add(name);
  });
}

/** A generic stream's WAL directory relative to the snapshot root ("." for the root itself). */
export function streamDirOf(s: GenericSnapshotFields["streams"][number]): string {
  return s.dir ?? posix.dirname(s.lastSegment!);
}

/**
 * Everything ingest can check about a manifest without I/O: the schema (and
 * so path safety), the tree, every file's chunks, the totals, the chunker
 * and codecs, the key's ids and the database's kind, and for PostgreSQL the
 * LSNs, WAL file names and the presence of backup_label. Throws
 * ManifestInvalidError (its `field` says where) or UnsafePathError. Returns
 * the parsed manifest and the distinct chunks it references.
 */
export function validateManifest(input: unknown, expect: ManifestExpectations = {}): ValidatedManifest {
  const parsed = snapshotManifestSchema.safeParse(input);
  if (!parsed.success) throw schemaError(parsed.error);
  const m = parsed.data;
  checkManifestHeader(m, expect);
  const analysis = analyseFiles(m.files, m.chunker.maxSize, m.blocks?.blockSize, m.packs?.length, m.reusedPacks?.length);
  if (m.kind === "postgres") checkPostgresFiles(m.postgres, (path) => analysis.byPath.get(path)?.type);
  checkTotals(m.totals, analysis.totals, Object.keys(analysis.totals) as Array<keyof SnapshotTotals>);
  if (m.packs !== undefined) checkPacks(m.packs, analysis.totals.newChunks);
  if (m.reusedPacks !== undefined) checkReusedPacks(m.reusedPacks);
  return { manifest: m, chunks: analysis.chunks };
}

/** What checkManifestHeader reads: a manifest of either format without its files. */
export type ManifestHeaderFields = Pick<SnapshotManifest, "databaseId" | "snapshotId" | "startedAt" | "finishedAt" | "chunker" | "blocks"> &
  ({ kind: "postgres"; postgres: PostgresSnapshotFields } | { kind: "generic"; generic: GenericSnapshotFields });

/**
 * The checks of a manifest that need none of its files (schema-valid input):
 * the ids against the key, the kind, the times, the chunker and block
 * cutter, the postgres LSNs and WAL names, the generic streams.
 */
export function checkManifestHeader(m: ManifestHeaderFields, expect: ManifestExpectations): void {
  if (expect.databaseId !== undefined && m.databaseId !== expect.databaseId) {
    throw invalid("databaseId", `names database '${m.databaseId}', but it was uploaded for '${expect.databaseId}'`);
  }
  if (expect.snapshotId !== undefined && m.snapshotId !== expect.snapshotId) {
    throw invalid("snapshotId", `is '${m.snapshotId}', but it was uploaded as snapshot '${expect.snapshotId}'`);
  }
  if (expect.kind !== undefined && m.kind !== expect.kind) {
    throw invalid("kind", `is ${m.kind}, but database '${m.databaseId}' is registered as ${expect.kind}`);
  }
  const startedAt = new Date(m.startedAt);
  if (new Date(m.finishedAt) < startedAt) throw invalid("finishedAt", `${m.finishedAt} is before startedAt ${m.startedAt}`);
  const idTime = snapshotIdTime(m.snapshotId);
  if (idTime.getTime() !== Math.floor(startedAt.getTime() / 1000) * 1000) {
    const prefix = snapshotIdFor(startedAt, "000000").slice(0, 16);
    throw invalid("snapshotId", `'${m.snapshotId}' does not encode startedAt ${m.startedAt} (expected the prefix ${prefix})`);
  }
  if (m.chunker.algorithm !== CHUNKER_VERSION) {
    throw invalid("chunker.algorithm", `'${m.chunker.algorithm}' is not a chunker this walvault knows (it knows ${CHUNKER_VERSION})`);
  }
  try {
    validateChunkerParams(m.chunker);
  } catch (e) {
    throw invalid("chunker", (e as Error).message);
  }
  if (m.blocks !== undefined) {
    if (m.blocks.algorithm !== FIXED_BLOCKS_ALGORITHM) {
      throw invalid("blocks.algorithm", `'${m.blocks.algorithm}' is not a block cutter this walvault knows (it knows ${FIXED_BLOCKS_ALGORITHM})`);
    }
    const problem = blockSizeProblem(m.blocks.blockSize);
    if (problem !== undefined) throw invalid("blocks.blockSize", `${m.blocks.blockSize} ${problem}`);
  }
  if (m.kind === "postgres") checkPostgres(m, expect);
  else checkGeneric(m);
}

/** The stated totals equal the computed ones, for `keys`. */
export function checkTotals(stated: SnapshotTotals, computed: SnapshotTotals, keys: ReadonlyArray<keyof SnapshotTotals>): void {
  for (const key of keys) {
    if (stated[key] !== computed[key]) {
      throw invalid(`totals.${key}`, `states ${stated[key]}, but the files add up to ${computed[key]}`);
    }
  }
}

/** A ManifestInvalidError naming `field` (for core/manifest-pages.ts). */
export const manifestInvalid = invalid;
/** The first zod issue as ManifestInvalidError, or UnsafePathError for an unsafe path (for core/manifest-pages.ts). */
export const manifestSchemaError = schemaError;

/** Parses manifest bytes (JSON) and validates them. */
export function parseManifest(bytes: string | Uint8Array, expect: ManifestExpectations = {}): ValidatedManifest {
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ManifestInvalidError(`snapshot manifest is not JSON: ${(e as Error).message}`, { field: "(top level)", cause: e });
  }
  return validateManifest(json, expect);
}

// ---------------------------------------------------------------------------
// Builder

/** One chunk as the pipeline produced it. */
export interface ChunkInput {
  sha256: string;
  size: number;
  storedSize: number;
  codec: CodecName;
  /** True when the pipeline uploaded it because the vault does not have it. */
  isNew: boolean;
  /** A new chunk in a pack: the pack's place in the manifest's sorted `packs` (written on its first reference flagged new). */
  pack?: number;
}

export interface SnapshotFileHandle {
  readonly path: string;
  /** Raw bytes added so far. */
  readonly size: number;
  /** Appends the next chunk of the file. */
  addChunk(chunk: ChunkInput): void;
  /**
   * Closes the file with the SHA-256 of its whole content, if the push
   * computed one (else what its chunks say: fileSha256Of); `size`, when
   * given (the bytes read), must equal the sum of the chunk sizes.
   */
  finish(sha256: string | undefined, size?: number): void;
}

interface MetaCommon {
  databaseId: string;
  snapshotId: string;
  startedAt: Date;
  finishedAt: Date;
  /** Default: chunkerDescriptor() (the default chunker). */
  chunker?: ChunkerDescriptor;
  /** Needed when a file was started with chunking "blocks". */
  blocks?: FixedBlocksDescriptor;
  /** Default: DEFAULT_CODEC. */
  codec?: CodecName;
  /** Names of the packs the push uploaded (written sorted and unique); absent: one object per new chunk. */
  packs?: readonly string[];
  /** Names of the packs holding the reused chunks, as the push found them (written sorted and unique; chunk references index that order). */
  reusedPacks?: readonly string[];
}

export type SnapshotMeta =
  | (MetaCommon & { kind: "postgres"; postgres: PostgresSnapshotFields })
  | (MetaCommon & { kind: "generic"; generic: GenericSnapshotFields });

const entryField = (path: string): string => `files[${JSON.stringify(path)}]`;

function checkMode(mode: number, path: string): void {
  if (!Number.isInteger(mode) || mode < 0 || mode > MAX_MODE) {
    throw new ManifestInvalidError(`mode ${String(mode)} of ${JSON.stringify(path)} is not a file mode (0 to 0o7777)`, { field: entryField(path) });
  }
}

/** An mtime as recorded: a Date (milliseconds), or bigint epoch nanoseconds (`lstat(p, { bigint: true }).mtimeNs`), kept to the nanosecond. */
export type MtimeInput = Date | bigint;

function isoOf(d: MtimeInput, what: string, field: string): string {
  if (typeof d === "bigint") return formatTime(timeFromNs(d));
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) {
    throw new ManifestInvalidError(`${what} is not a valid date`, { field });
  }
  return d.toISOString();
}

/** A recorded mtime in epoch nanoseconds, every digit kept (core/time.ts); Date's parse for text the strict parser does not take. */
function mtimeNsOf(iso: string): bigint {
  const r = tryParseTime(iso);
  return r.ok ? r.time.epochNs : BigInt(Date.parse(iso)) * 1_000_000n;
}

/** A manifest's fields but its files, totals and formatVersion (both formats), from what a push knows: times as ISO text, packs sorted. */
export type ManifestFields<M = SnapshotManifest> = M extends unknown ? Omit<M, "files" | "totals" | "formatVersion"> : never;

export function manifestFieldsOf(meta: SnapshotMeta): ManifestFields {
  const chunker = meta.chunker ?? chunkerDescriptor();
  const common = {
    databaseId: meta.databaseId,
    snapshotId: meta.snapshotId,
  };
  const times = {
    startedAt: isoOf(meta.startedAt, "startedAt", "startedAt"),
    finishedAt: isoOf(meta.finishedAt, "finishedAt", "finishedAt"),
    chunker: { algorithm: chunker.algorithm, minSize: chunker.minSize, avgSize: chunker.avgSize, maxSize: chunker.maxSize },
    ...(meta.blocks === undefined ? {} : { blocks: { algorithm: meta.blocks.algorithm, blockSize: meta.blocks.blockSize } }),
    codec: meta.codec ?? DEFAULT_CODEC,
    ...(meta.packs === undefined ? {} : { packs: [...new Set(meta.packs)].sort() }),
    ...(meta.reusedPacks === undefined ? {} : { reusedPacks: [...new Set(meta.reusedPacks)].sort() }),
  };
  return meta.kind === "postgres" ? { ...common, kind: "postgres", ...times, postgres: meta.postgres } : { ...common, kind: "generic", ...times, generic: meta.generic };
}

/** A directory entry (path safety and mode checked). */
export function directoryEntryOf(path: string, mode: number, mtime: MtimeInput): DirectoryEntry {
  assertSafeRelativePath(path);
  checkMode(mode, path);
  return { path, type: "directory", mode, mtime: isoOf(mtime, `mtime of ${JSON.stringify(path)}`, entryField(path)) };
}

/** A symlink entry (path safety and target checked). */
export function symlinkEntryOf(path: string, linkTarget: string, mtime: MtimeInput): SymlinkEntry {
  assertSafeRelativePath(path);
  const problem = typeof linkTarget === "string" ? linkTargetProblem(linkTarget) : "is not a string";
  if (problem !== undefined) {
    throw new ManifestInvalidError(`symlink ${JSON.stringify(path)}: its target ${problem}`, { field: entryField(path) });
  }
  return { path, type: "symlink", mtime: isoOf(mtime, `mtime of ${JSON.stringify(path)}`, entryField(path)), linkTarget };
}

/** A regular file's entry before its chunks (size 0, the SHA-256 of no bytes; path safety and mode checked). */
export function fileEntryOf(path: string, mode: number, mtime: MtimeInput, options: { chunking?: "blocks" } = {}): RegularFileEntry {
  assertSafeRelativePath(path);
  if (options.chunking !== undefined && options.chunking !== "blocks") {
    throw new ManifestInvalidError(`file ${JSON.stringify(path)}: unknown chunking '${String(options.chunking)}'`, { field: entryField(path) });
  }
  checkMode(mode, path);
  return {
    path,
    type: "file",
    mode,
    mtime: isoOf(mtime, `mtime of ${JSON.stringify(path)}`, entryField(path)),
    size: 0,
    sha256: EMPTY_SHA256,
    ...(options.chunking === "blocks" ? { chunking: "blocks" as const } : {}),
    chunks: [],
  };
}

/**
 * Collects a snapshot's tree as the pipeline walks and chunks it, then
 * builds the manifest. Pure; holds one small record per chunk. Several files
 * may be open at once (a parallel pipeline); entries come out sorted by
 * path, so the manifest does not depend on the order of work.
 */
export class SnapshotBuilder {
  private readonly entries = new Map<string, FileEntry>();
  private readonly open = new Set<string>();
  private readonly chunks = new Map<string, { size: number; storedSize: number; codec: CodecName; new: boolean }>();

  addDirectory(path: string, mode: number, mtime: MtimeInput): void {
    this.claim(path);
    this.add(directoryEntryOf(path, mode, mtime));
  }

  addSymlink(path: string, linkTarget: string, mtime: MtimeInput): void {
    this.claim(path);
    this.add(symlinkEntryOf(path, linkTarget, mtime));
  }

  /** Opens a regular file; `chunking: "blocks"` when the pipeline cuts it in fixed blocks (meta.blocks). */
  startFile(path: string, mode: number, mtime: MtimeInput, options: { chunking?: "blocks" } = {}): SnapshotFileHandle {
    this.claim(path);
    const entry = fileEntryOf(path, mode, mtime, options);
    this.add(entry);
    this.open.add(path);
    return this.handle(entry);
  }

  /** Number of entries so far. */
  get size(): number {
    return this.entries.size;
  }

  /** The manifest: entries sorted by path, totals computed, everything validated. */
  build(meta: SnapshotMeta): SnapshotManifest {
    if (this.open.size > 0) {
      const names = [...this.open].slice(0, 5).map((p) => JSON.stringify(p)).join(", ");
      throw new ManifestInvalidError(`${this.open.size} file(s) were started but not finished: ${names}${this.open.size > 5 ? ", ..." : ""}`, {
        field: "files",
      });
    }
    const files = [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const fields = manifestFieldsOf(meta);
    const { totals } = analyseFiles(files, Number.MAX_SAFE_INTEGER, meta.blocks?.blockSize, fields.packs?.length, undefined);
    const manifest = { formatVersion: SNAPSHOT_FORMAT_VERSION, ...fields, totals, files } as SnapshotManifest;
    validateManifest(manifest);
    return manifest;
  }

  private claim(path: string): string {
    assertSafeRelativePath(path);
    if (this.entries.has(path)) {
      throw new ManifestInvalidError(`path ${JSON.stringify(path)} was added to the snapshot twice`, { field: entryField(path) });
    }
    return path;
  }

  private add(entry: FileEntry): void {
    this.entries.set(entry.path, entry);
  }

  private handle(entry: RegularFileEntry): SnapshotFileHandle {
    const builder = this;
    const path = entry.path;
    let finished = false;
    const fail = (message: string): ManifestInvalidError =>
      new ManifestInvalidError(`file ${JSON.stringify(path)}: ${message}`, { field: entryField(path) });
    return {
      path,
      get size() {
        return entry.size;
      },
      addChunk(c: ChunkInput): void {
        if (finished) throw fail("a chunk was added after the file was finished");
        const j = entry.chunks.length;
        if (typeof c.sha256 !== "string" || !SHA256_RE.test(c.sha256)) throw fail(`chunk ${j} has no lowercase hex SHA-256`);
        if (!Number.isSafeInteger(c.size) || c.size <= 0) throw fail(`chunk ${j} has size ${String(c.size)}, not a positive integer`);
        if (!Number.isSafeInteger(c.storedSize) || c.storedSize <= 0) {
          throw fail(`chunk ${j} has storedSize ${String(c.storedSize)}, not a positive integer`);
        }
        if (typeof c.codec !== "string" || !isCodecName(c.codec)) throw fail(`chunk ${j} has unknown codec '${String(c.codec)}'`);
        if (typeof c.isNew !== "boolean") throw fail(`chunk ${j} does not say whether it is new (isNew)`);
        const prior = builder.chunks.get(c.sha256);
        if (prior !== undefined && (prior.size !== c.size || prior.storedSize !== c.storedSize || prior.codec !== c.codec)) {
          throw fail(
            `chunk ${j} (${c.sha256}) is ${c.size} bytes, ${c.storedSize} stored, codec ${c.codec}, ` +
              `but the same chunk was added as ${prior.size} bytes, ${prior.storedSize} stored, codec ${prior.codec}`,
          );
        }
        const record: ChunkRecord = { sha256: c.sha256, size: c.size, storedSize: c.storedSize, codec: c.codec };
        if (c.isNew && prior?.new !== true) {
          record.new = true;
          if (c.pack !== undefined) record.pack = c.pack;
        }
        if (prior === undefined) builder.chunks.set(c.sha256, { size: c.size, storedSize: c.storedSize, codec: c.codec, new: c.isNew });
        else if (c.isNew) prior.new = true;
        entry.chunks.push(record);
        entry.size += c.size;
      },
      finish(whole: string | undefined, size?: number): void {
        if (finished) throw fail("finished twice");
        if (whole !== undefined && (typeof whole !== "string" || !SHA256_RE.test(whole))) throw fail(`'${String(whole)}' is not a lowercase hex SHA-256`);
        if (size !== undefined && size !== entry.size) {
          throw fail(`${size} bytes were read, but its chunks add up to ${entry.size}`);
        }
        if (entry.chunks.length === 0 && whole !== undefined && whole !== EMPTY_SHA256) {
          throw fail(`it has no chunks, so its SHA-256 must be that of no bytes, not ${whole}`);
        }
        if (entry.chunks.length === 1 && whole !== undefined && entry.chunks[0]!.sha256 !== whole) {
          throw fail(`it is one chunk (${entry.chunks[0]!.sha256}), so its SHA-256 cannot be ${whole}`);
        }
        const sha256 = fileSha256Of(entry.chunks.length, entry.chunks[0]?.sha256, whole);
        if (sha256 === undefined) delete entry.sha256;
        else entry.sha256 = sha256;
        finished = true;
        builder.open.delete(path);
      },
    };
  }
}

// ---------------------------------------------------------------------------
// Restore layout

/** A chunk to read, decode and write at `offset`. */
export interface RestoreChunk {
  offset: number;
  sha256: string;
  size: number;
  storedSize: number;
  codec: CodecName;
  /** Its vault key. */
  key: string;
  /** The pack the manifest names for it (a new chunk's `pack`, a reused one's `reusedPack`), by name: where a restore looks first, the catalog's record deciding when the pack no longer holds it. */
  pack?: string;
}

export type RestoreOperation =
  | { op: "mkdir"; path: string; relativePath: string; mode: number }
  | { op: "writeFile"; path: string; relativePath: string; mode: number; size: number; sha256: string | undefined; chunks: RestoreChunk[] }
  | {
      op: "symlink";
      path: string;
      relativePath: string;
      target: string;
      /**
       * The link points out of the restored tree (an absolute target, or
       * '..' past the target directory), e.g. a pg_wal or tablespace link to
       * another disk. Created as is, the restored database would write where
       * the original did: the executor remaps or refuses it.
       */
      outside: boolean;
    }
  /** `mtime` to the millisecond; `mtimeNs` every recorded digit (set it with core/time.ts utimeSeconds). */
  | { op: "utimes"; path: string; relativePath: string; mtime: Date; mtimeNs: bigint; noFollow: boolean }
  | { op: "chmod"; path: string; relativePath: string; mode: number };

/** Modes while restoring: the restorer can always enter and write; recorded modes come at the end. */
export const RESTORE_DIR_MODE = 0o700;
export const RESTORE_FILE_MODE = 0o600;
/** setuid and setgid are never restored: a backup must not be a way to plant a privileged binary. */
const STRIPPED_MODE_BITS = 0o6000;

function restoreTarget(targetDir: string): string {
  if (typeof targetDir !== "string" || targetDir === "" || targetDir.includes("\0")) {
    throw new InvalidInputError(`restore target ${JSON.stringify(targetDir)} is not a directory path`);
  }
  if (!posix.isAbsolute(targetDir)) throw new InvalidInputError(`restore target '${targetDir}' must be an absolute path`);
  const dir = posix.normalize(targetDir).replace(/\/+$/, "");
  if (dir === "") throw new InvalidInputError("restore target must not be the root directory");
  return dir;
}

/**
 * `relativePath` joined under `targetDir`. Refuses (UnsafePathError) any
 * path that is not safe (pathProblem) or whose join does not land strictly
 * inside the normalised target: the result always starts with `target + "/"`.
 */
export function resolveUnder(targetDir: string, relativePath: string): string {
  const base = restoreTarget(targetDir);
  assertSafeRelativePath(relativePath);
  const joined = posix.join(base, relativePath);
  if (!joined.startsWith(`${base}/`) || posix.relative(base, joined) !== relativePath) {
    throw new UnsafePathError(`path ${JSON.stringify(relativePath)} escapes the restore target ${base}`, { path: relativePath });
  }
  return joined;
}

/**
 * The operations that rebuild a snapshot under `targetDir`, in order:
 *  1. mkdir every directory, parents first, mode 0700;
 *  2. write every file from its chunks (offsets computed), mode 0600;
 *  3. create every symlink (targets as recorded, nothing is written through
 *     them; `outside` marks those that point out of the tree);
 *  4. deepest entries first: utimes (lutimes for symlinks), then chmod to the
 *     recorded mode minus setuid/setgid (files and directories), so a
 *     read-only directory is closed only after everything inside it is done.
 * The manifest is validated first (validateManifest): every path is safe and
 * every parent is a directory, so no operation goes through a symlink of the
 * snapshot. The executor must start from an empty target it created, and
 * create files exclusively without following links (O_EXCL | O_NOFOLLOW).
 */
export function restoreLayout(manifest: SnapshotManifest, targetDir: string): RestoreOperation[] {
  const { manifest: m } = validateManifest(manifest);
  const base = restoreTarget(targetDir);
  const byDepth = (a: FileEntry, b: FileEntry): number => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const sorted = [...m.files].sort(byDepth);
  const ops: RestoreOperation[] = [];
  for (const type of ["directory", "file", "symlink"] as const) {
    for (const e of type === "directory" ? sorted : m.files) if (e.type === type) ops.push(entryLayout(e, base, m.databaseId, 0));
  }
  for (const e of sorted.reverse()) ops.push(...entryFinish(e, base));
  return ops;
}

/** The manifest's lists of pack names (`packs`: this push's; `reusedPacks`: earlier pushes'), as a chunk reference indexes them. */
export type PackNames = { packs?: readonly string[] | undefined; reusedPacks?: readonly string[] | undefined };

/** Whether a manifest names any pack, so that a reader may look chunks up in packs' indexes first. */
export function namesPacks(m: PackNames): boolean {
  return m.packs !== undefined || m.reusedPacks !== undefined;
}

/** The pack a chunk reference names (a new chunk's `pack`, a reused chunk's `reusedPack`), by name; undefined when it names none. */
export function namedPackOf(c: Pick<ChunkRecord, "pack" | "reusedPack">, m: PackNames): string | undefined {
  return c.pack !== undefined ? m.packs?.[c.pack] : c.reusedPack !== undefined ? m.reusedPacks?.[c.reusedPack] : undefined;
}

/**
 * The operation that creates one entry under `targetDir` (validated, see
 * restoreLayout): mkdir, writeFile (its chunks from `offset` on: a file
 * continued from a page before starts where that part ended) or symlink.
 * For readers that lay a snapshot out a page at a time (agent/restore.ts).
 * `names`: the manifest's `packs` and `reusedPacks`, so that a new chunk's
 * `pack` and a reused chunk's `reusedPack` (indexes into them) reach the
 * restore as the pack's name.
 */
export function entryLayout(e: FileEntry, targetDir: string, databaseId: string, offset: number, names: PackNames = {}): RestoreOperation {
  const base = restoreTarget(targetDir);
  const where = { path: resolveUnder(base, e.path), relativePath: e.path };
  if (e.type === "directory") return { op: "mkdir", ...where, mode: RESTORE_DIR_MODE };
  if (e.type === "symlink") {
    const resolved = posix.resolve(posix.dirname(where.path), e.linkTarget);
    const outside = posix.isAbsolute(e.linkTarget) || !resolved.startsWith(`${base}/`);
    return { op: "symlink", ...where, target: e.linkTarget, outside };
  }
  let at = offset;
  const chunks = e.chunks.map((c) => {
    const rc: RestoreChunk = { offset: at, sha256: c.sha256, size: c.size, storedSize: c.storedSize, codec: c.codec, key: vaultChunkKey(databaseId, c.sha256) };
    const pack = namedPackOf(c, names);
    if (pack !== undefined) rc.pack = pack;
    at += c.size;
    return rc;
  });
  return { op: "writeFile", ...where, mode: RESTORE_FILE_MODE, size: e.size, sha256: e.sha256, chunks };
}

/** The recorded mtime and mode of one entry (lutimes for a symlink, no chmod): applied deepest first, once everything is in place. */
export function entryFinish(e: FileEntry, targetDir: string): RestoreOperation[] {
  const where = { path: resolveUnder(targetDir, e.path), relativePath: e.path };
  const ops: RestoreOperation[] = [{ op: "utimes", ...where, mtime: new Date(e.mtime), mtimeNs: mtimeNsOf(e.mtime), noFollow: e.type === "symlink" }];
  if (e.type !== "symlink") ops.push({ op: "chmod", ...where, mode: e.mode & ~STRIPPED_MODE_BITS });
  return ops;
}

// ---------------------------------------------------------------------------
// Restore planning

/**
 * The snapshot as core/restore-plan.ts sees it. PostgreSQL: start timeline
 * and LSNs. Generic: timeline 1 and the position of `stream`'s last segment
 * (startLsn = stopLsn = lastSegno); `stream` may be left out when there is
 * only one.
 */
export function toSnapshotInfo(manifest: SnapshotHeader, options: { stream?: string } = {}): SnapshotInfo {
  const common = {
    id: manifest.snapshotId,
    databaseId: manifest.databaseId,
    startedAt: new Date(manifest.startedAt),
    finishedAt: new Date(manifest.finishedAt),
  };
  if (manifest.kind === "postgres") {
    const pg = manifest.postgres;
    return { ...common, kind: "postgres", timeline: pg.timeline, startLsn: parseLsn(pg.startLsn), stopLsn: parseLsn(pg.stopLsn) };
  }
  const streams = manifest.generic.streams;
  let stream = streams[0];
  if (options.stream !== undefined) {
    stream = streams.find((s) => s.id === options.stream);
    if (stream === undefined) {
      throw new InvalidInputError(
        `snapshot ${manifest.snapshotId} has no WAL stream '${options.stream}' (it has ${streams.map((s) => s.id).join(", ")})`,
      );
    }
  } else if (streams.length > 1) {
    throw new InvalidInputError(
      `snapshot ${manifest.snapshotId} has ${streams.length} WAL streams (${streams.map((s) => s.id).join(", ")}): name the one to plan`,
    );
  }
  const segno = BigInt(stream!.lastSegno);
  return { ...common, kind: "generic", timeline: 1, startLsn: segno, stopLsn: segno };
}

// ---------------------------------------------------------------------------
// backup_label

/** The fields of a PostgreSQL (15) backup_label file. */
export interface BackupLabel {
  /** START WAL LOCATION. */
  startLsn: bigint;
  /** The file named in START WAL LOCATION. */
  startWalFile: string;
  /** CHECKPOINT LOCATION. */
  checkpointLsn: bigint;
  /** BACKUP METHOD ("streamed" since PostgreSQL 15). */
  backupMethod: string;
  /** BACKUP FROM ("master" before PostgreSQL 14 reads as "primary"). */
  backupFrom: "primary" | "standby";
  /** START TIME, as written (server's log_timezone). */
  startTime: string;
  /** START TIME as a Date when its zone is UTC/GMT or a numeric offset. */
  startedAt: Date | undefined;
  /** LABEL. */
  label: string;
  /** START TIMELINE. */
  startTimeline: number;
  /** INCREMENTAL FROM LSN / TLI (PostgreSQL 17 incremental backups). */
  incrementalFromLsn?: bigint;
  incrementalFromTimeline?: number;
  /** Lines this parser does not know, verbatim. */
  other: Record<string, string>;
}

const LABEL_LINE_RE = /^([A-Z][A-Z ]*[A-Z]): (.*)$/;
const START_WAL_RE = /^([0-9A-F]{1,8}\/[0-9A-F]{1,8}) \(file ([0-9A-F]{24})\)$/;
const START_TIME_RE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (\S+)$/;

function startTimeDate(text: string): Date | undefined {
  const m = START_TIME_RE.exec(text);
  if (!m) return undefined;
  const zone = m[3]!;
  let offset: string | undefined;
  if (zone === "UTC" || zone === "GMT" || zone === "UCT" || zone === "Z") offset = "Z";
  else {
    const z2 = /^([+-])(\d{2})(?::?(\d{2}))?$/.exec(zone);
    if (z2) offset = `${z2[1]}${z2[2]}:${z2[3] ?? "00"}`;
  }
  if (offset === undefined) return undefined;
  const d = new Date(`${m[1]}T${m[2]}${offset}`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * Parses backup_label text. With `segmentSize`, the START WAL LOCATION file
 * must be the one holding the start LSN on START TIMELINE. Throws
 * InvalidInputError naming the line.
 */
export function parseBackupLabel(text: string, segmentSize?: number): BackupLabel {
  const fields = new Map<string, { value: string; line: number }>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line === "") return;
    const m = LABEL_LINE_RE.exec(line);
    if (!m) throw new InvalidInputError(`backup_label line ${i + 1} is not 'KEY: value': ${JSON.stringify(line)}`);
    if (fields.has(m[1]!)) throw new InvalidInputError(`backup_label line ${i + 1} repeats ${m[1]}`);
    fields.set(m[1]!, { value: m[2]!, line: i + 1 });
  });
  const take = (key: string): { value: string; line: number } => {
    const f = fields.get(key);
    if (f === undefined) throw new InvalidInputError(`backup_label has no ${key} line`);
    fields.delete(key);
    return f;
  };
  const lsn = (f: { value: string; line: number }, key: string): bigint => {
    if (!isCanonicalLsn(f.value)) throw new InvalidInputError(`backup_label line ${f.line}: ${key} '${f.value}' is not an LSN`);
    return parseLsn(f.value);
  };
  const tli = (f: { value: string; line: number }, key: string): number => {
    const n = /^\d{1,10}$/.test(f.value) ? Number(f.value) : NaN;
    if (!(n >= 1 && n <= 0xffff_ffff)) throw new InvalidInputError(`backup_label line ${f.line}: ${key} '${f.value}' is not a timeline`);
    return n;
  };

  const startWal = take("START WAL LOCATION");
  const sw = START_WAL_RE.exec(startWal.value);
  if (!sw || !isCanonicalLsn(sw[1]!)) {
    throw new InvalidInputError(`backup_label line ${startWal.line}: START WAL LOCATION '${startWal.value}' is not 'X/Y (file <segment>)'`);
  }
  const startLsn = parseLsn(sw[1]!);
  const startWalFile = sw[2]!;
  const checkpointLsn = lsn(take("CHECKPOINT LOCATION"), "CHECKPOINT LOCATION");
  const backupMethod = take("BACKUP METHOD").value;
  const from = take("BACKUP FROM");
  const backupFrom = from.value === "master" ? "primary" : from.value;
  if (backupFrom !== "primary" && backupFrom !== "standby") {
    throw new InvalidInputError(`backup_label line ${from.line}: BACKUP FROM '${from.value}' is neither primary nor standby`);
  }
  const startTime = take("START TIME").value;
  const label = take("LABEL").value;
  const startTimeline = tli(take("START TIMELINE"), "START TIMELINE");

  const out: BackupLabel = {
    startLsn,
    startWalFile,
    checkpointLsn,
    backupMethod,
    backupFrom,
    startTime,
    startedAt: startTimeDate(startTime),
    label,
    startTimeline,
    other: {},
  };
  const incLsn = fields.get("INCREMENTAL FROM LSN");
  if (incLsn !== undefined) out.incrementalFromLsn = lsn(take("INCREMENTAL FROM LSN"), "INCREMENTAL FROM LSN");
  const incTli = fields.get("INCREMENTAL FROM TLI");
  if (incTli !== undefined) out.incrementalFromTimeline = tli(take("INCREMENTAL FROM TLI"), "INCREMENTAL FROM TLI");
  for (const [k, v] of fields) out.other[k] = v.value;

  if (segmentSize !== undefined) {
    const expected = segmentName(startTimeline, lsnToSegno(startLsn, segmentSize), segmentSize);
    if (startWalFile !== expected) {
      throw new InvalidInputError(
        `backup_label line ${startWal.line}: file ${startWalFile} does not hold ${formatLsn(startLsn)} on timeline ${startTimeline} ` +
          `(expected ${expected} with ${segmentSize / (1 << 20)} MB segments)`,
      );
    }
  }
  return out;
}

/** What the pipeline knows besides backup_label when a PostgreSQL backup has stopped. */
export interface PostgresBackupStop {
  stopLsn: bigint;
  walSegmentSize: number;
  /** server_version_num. */
  version: number;
  systemIdentifier?: string;
  stopWalFile?: string;
  tablespaces?: PostgresSnapshotFields["tablespaces"];
}

/** The manifest's postgres section from a parsed backup_label and what pg_backup_stop returned. */
export function postgresFieldsFromBackupLabel(label: BackupLabel, stop: PostgresBackupStop): PostgresSnapshotFields {
  return {
    version: stop.version,
    ...(stop.systemIdentifier === undefined ? {} : { systemIdentifier: stop.systemIdentifier }),
    walSegmentSize: stop.walSegmentSize,
    timeline: label.startTimeline,
    startLsn: formatLsn(label.startLsn),
    checkpointLsn: formatLsn(label.checkpointLsn),
    stopLsn: formatLsn(stop.stopLsn),
    startWalFile: label.startWalFile,
    ...(stop.stopWalFile === undefined ? {} : { stopWalFile: stop.stopWalFile }),
    label: label.label,
    backupMethod: label.backupMethod,
    backupFrom: label.backupFrom,
    tablespaces: stop.tablespaces ?? [],
  };
}

/**
 * Checks a manifest's postgres fields against the text of its backup_label
 * file (read back from its chunks by ingest or verification). Throws
 * ManifestInvalidError naming the first field that disagrees.
 */
export function checkBackupLabel(manifest: PostgresSnapshotManifest, labelText: string): void {
  let label: BackupLabel;
  try {
    label = parseBackupLabel(labelText, manifest.postgres.walSegmentSize);
  } catch (e) {
    throw new ManifestInvalidError(`snapshot ${manifest.snapshotId}: its backup_label file is unreadable: ${(e as Error).message}`, {
      field: "backup_label",
      cause: e,
    });
  }
  const pg = manifest.postgres;
  const pairs: Array<[keyof PostgresSnapshotFields, string, string, string]> = [
    ["startLsn", "START WAL LOCATION", formatLsn(label.startLsn), pg.startLsn],
    ["startWalFile", "START WAL LOCATION file", label.startWalFile, pg.startWalFile],
    ["checkpointLsn", "CHECKPOINT LOCATION", formatLsn(label.checkpointLsn), pg.checkpointLsn],
    ["timeline", "START TIMELINE", String(label.startTimeline), String(pg.timeline)],
    ["label", "LABEL", label.label, pg.label],
    ["backupMethod", "BACKUP METHOD", label.backupMethod, pg.backupMethod],
    ["backupFrom", "BACKUP FROM", label.backupFrom, pg.backupFrom],
  ];
  for (const [field, key, inLabel, inManifest] of pairs) {
    if (inLabel !== inManifest) {
      throw invalid(`postgres.${field}`, `is ${JSON.stringify(inManifest)}, but backup_label says ${key}: ${JSON.stringify(inLabel)}`);
    }
  }
}
