/**
 * Schemas for everything that crosses a boundary: events, workflow state,
 * object metadata, catalog records, configuration. Handlers parse their input
 * with these; nothing trusts a shape it did not check.
 */
import { z } from "zod";
import { CODEC_NAMES, type CodecName } from "./codec.js";
import { SHA256_RE } from "./hash.js";
import { DATABASE_ID_RE } from "./keys.js";
import { MAX_RECORDED_RESTORE_POINTS } from "./restore-point.js";

export const databaseIdSchema = z.string().regex(DATABASE_ID_RE, "invalid database id");
export const sha256Schema = z.string().regex(SHA256_RE, "not a lowercase hex SHA-256");
export const codecSchema = z.enum(CODEC_NAMES as [CodecName, ...CodecName[]]);

/** EventBridge "Object Created" event from S3 (the fields ingest uses). */
export const objectCreatedEventSchema = z.object({
  "detail-type": z.literal("Object Created"),
  source: z.literal("aws.s3"),
  time: z.string().optional(),
  region: z.string().optional(),
  detail: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      etag: z.string().optional(),
      "version-id": z.string().optional(),
      sequencer: z.string().optional(),
    }),
  }),
});
export type ObjectCreatedEvent = z.infer<typeof objectCreatedEventSchema>;

/** User metadata walvault writes on every object (S3 lowercases keys). Untrusted on input. */
export const META_SHA256 = "walvault-sha256";
export const META_CODEC = "walvault-codec";
export const META_SIZE = "walvault-size";
export const META_DATABASE = "walvault-database";
/**
 * The archiver's backlog on the database host when a PostgreSQL WAL file was
 * uploaded: the `.ready` files in its pg_wal/archive_status, this one
 * included (agent/wal-push.ts archiveBacklog). Telemetry only: ingest
 * publishes it as ArchiveBacklogSegments and never rejects an upload over it
 * (core/verify.ts parseBacklogMeta).
 */
export const META_BACKLOG = "walvault-backlog";

export const objectMetaSchema = z.object({
  [META_SHA256]: sha256Schema,
  [META_CODEC]: codecSchema,
  [META_SIZE]: z.string().regex(/^\d+$/, "size is not a decimal integer"),
});

export const walKindSchema = z.enum(["segment", "partial", "history", "backup"]);

/**
 * A restore point (pg_create_restore_point) ingest found in a PostgreSQL WAL
 * segment (core/restore-point.ts): its name, the LSN pg_create_restore_point
 * returned (the end of its record, "X/Y") and its rp_time (ISO 8601 UTC,
 * microseconds). At most MAX_RECORDED_RESTORE_POINTS per segment
 * (core/restore-point.ts); `restorePointsTruncated` says more were found.
 */
export const walRestorePointSchema = z.object({
  name: z.string().min(1).max(64),
  lsn: z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/),
  time: z.string(),
});
export type WalRestorePoint = z.infer<typeof walRestorePointSchema>;

/** The restore point fields of a WAL record (and of a validated upload). */
const restorePointFields = {
  restorePoints: z.array(walRestorePointSchema).max(MAX_RECORDED_RESTORE_POINTS).optional(),
  restorePointsTruncated: z.boolean().optional(),
  /**
   * PostgreSQL segments: the latest commit or abort time among the records
   * wholly in the segment (core/xact-time.ts; ISO 8601 UTC, microseconds),
   * absent when it holds none or was recorded before ingest read it (and in a
   * rebuilt catalog). A time target is reachable only before a transaction end
   * in the archive.
   */
  lastXactAt: z.string().optional(),
};

/** Output of the Validate step: a WAL file proven well formed, ready to promote. */
export const validatedWalSchema = z.object({
  databaseId: databaseIdSchema,
  name: z.string(),
  kind: walKindSchema,
  timeline: z.number().int().positive(),
  /** Hex LSN text, segments/partials only. */
  startLsn: z.string().optional(),
  endLsn: z.string().optional(),
  size: z.number().int().nonnegative(),
  storedSize: z.number().int().nonnegative(),
  sha256: sha256Schema,
  /** SHA-256 of the stored (encoded) bytes Validate proved: Promote checks its re-read against it. */
  encodedSha256: sha256Schema,
  codec: codecSchema,
  incoming: z.object({ bucket: z.string(), key: z.string(), versionId: z.string().optional() }),
  vaultKey: z.string(),
  /** Generic segments: when the agent saw it last written, and the watch scan that shipped it (core/generic-wal.ts). */
  closedAt: z.string().optional(),
  scanAt: z.string().optional(),
  scanCount: z.number().int().positive().optional(),
  ...restorePointFields,
  /** True when the catalog already holds this exact file: nothing more to do. */
  duplicate: z.boolean(),
  replicaRegions: z.array(z.string()),
  /** The host's archive backlog the upload carried (META_BACKLOG), when it carried one. */
  hostBacklog: z.number().int().nonnegative().optional(),
});
export type ValidatedWal = z.infer<typeof validatedWalSchema>;

export const promotedSchema = z.object({
  vaultBucket: z.string(),
  vaultKey: z.string(),
  versionId: z.string().optional(),
  /** False when the vault already held these exact bytes. */
  copied: z.boolean(),
});
export type Promoted = z.infer<typeof promotedSchema>;

/** Error object Step Functions puts at a Catch's ResultPath. */
export const stepErrorSchema = z.object({ Error: z.string(), Cause: z.string().optional() });

export const replicaStatusSchema = z.object({
  status: z.enum(["pending", "replicated", "failed"]),
  at: z.string(),
  versionId: z.string().optional(),
  error: z.string().optional(),
});

/** Catalog item of an archived WAL file (segment, partial, history, backup label). */
export const walRecordSchema = z.object({
  databaseId: databaseIdSchema,
  name: z.string(),
  kind: walKindSchema,
  timeline: z.number().int().positive(),
  startLsn: z.string().optional(),
  endLsn: z.string().optional(),
  size: z.number().int().nonnegative(),
  storedSize: z.number().int().nonnegative(),
  sha256: sha256Schema,
  codec: codecSchema,
  status: z.literal("stored"),
  vaultKey: z.string(),
  vaultVersionId: z.string().optional(),
  archivedAt: z.string(),
  /** Generic segments (name `<stream>/<file>`, startLsn = position as decimal text): see core/generic-wal.ts. */
  closedAt: z.string().optional(),
  scanAt: z.string().optional(),
  scanCount: z.number().int().positive().optional(),
  ...restorePointFields,
  replicas: z.record(z.string(), replicaStatusSchema),
});
export type WalRecord = z.infer<typeof walRecordSchema>;

export const quarantineRecordSchema = z.object({
  /** "_invalid" when the upload's key did not even name a valid database id. */
  databaseId: z.union([databaseIdSchema, z.literal("_invalid")]),
  /** The file name the upload claimed (may be invalid: it is what was rejected). */
  name: z.string(),
  incomingKey: z.string(),
  quarantineKey: z.string().optional(),
  error: z.string(),
  reason: z.string(),
  at: z.string(),
});
export type QuarantineRecord = z.infer<typeof quarantineRecordSchema>;

export const databaseRecordSchema = z.object({
  databaseId: databaseIdSchema,
  kind: z.enum(["postgres", "generic"]),
  walSegmentSize: z.number().int().positive(),
  createdAt: z.string(),
  /** Retention policy (core/retention.ts); absent: the default. */
  retention: z
    .object({
      daily: z.number().int().nonnegative(),
      weekly: z.number().int().nonnegative(),
      monthly: z.number().int().nonnegative(),
      recoveryWindowDays: z.number().int().nonnegative(),
      minSnapshots: z.number().int().positive().optional(),
    })
    .optional(),
  /** The archive lag (seconds since the newest recorded WAL) the rpo-watch workflow alarms on (core/rpo.ts); absent: DEFAULT_RPO_SECONDS. */
  rpoSeconds: z.number().int().positive().optional(),
  /**
   * Generic databases: "complete" when every generic segment record of the
   * database carries its position key (`gpos`), so readers may read WAL by
   * position from the catalog's index (store/catalog.ts listGenericWalRange).
   * The catalog's to set (putDatabase, backfillWalIndex), never the caller's.
   */
  walIndex: z.literal("complete").optional(),
});
export type DatabaseRecord = z.infer<typeof databaseRecordSchema>;

export const headRecordSchema = z.object({
  databaseId: databaseIdSchema,
  lastName: z.string(),
  lastSortKey: z.string(),
  lastArchivedAt: z.string(),
});
export type HeadRecord = z.infer<typeof headRecordSchema>;

/** Replicate step input: one Map item. */
export const replicateItemSchema = z.object({
  region: z.string(),
  ingest: validatedWalSchema,
  promoted: promotedSchema,
});

/**
 * What a snapshot's catalog record takes from its manifest (small: no file
 * list). Derived by core/catalog-records.ts snapshotSummary(), for snapshot
 * ingest (it travels in the workflow state) and for catalog rebuild alike.
 */
export const snapshotSummarySchema = z.object({
  timeline: z.number().int().positive().optional(),
  startLsn: z.string().optional(),
  stopLsn: z.string().optional(),
  startWalFile: z.string().optional(),
  stopWalFile: z.string().optional(),
  streams: z.record(z.string(), z.string()).optional(),
  startedAt: z.string(),
  finishedAt: z.string(),
  totals: z.object({
    files: z.number().int().nonnegative(),
    logicalBytes: z.number().int().nonnegative(),
    uniqueChunks: z.number().int().nonnegative(),
    newChunks: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
    newStoredBytes: z.number().int().nonnegative(),
  }),
});
export type SnapshotSummary = z.infer<typeof snapshotSummarySchema>;

/** Catalog item of a restorable snapshot (its manifest is in the vault at manifestKey). */
export const snapshotRecordSchema = z.object({
  databaseId: databaseIdSchema,
  snapshotId: z.string(),
  kind: z.enum(["postgres", "generic"]),
  /** PostgreSQL: backup start/stop (text LSNs), timeline and WAL files. */
  timeline: z.number().int().positive().optional(),
  startLsn: z.string().optional(),
  stopLsn: z.string().optional(),
  startWalFile: z.string().optional(),
  stopWalFile: z.string().optional(),
  /** Generic: per WAL stream, the last segment the snapshot includes. */
  streams: z.record(z.string(), z.string()).optional(),
  startedAt: z.string(),
  finishedAt: z.string(),
  manifestKey: z.string(),
  /** SHA-256 of the manifest bytes as stored (uncompressed JSON). */
  manifestSha256: sha256Schema,
  manifestSize: z.number().int().nonnegative(),
  totals: z.object({
    files: z.number().int().nonnegative(),
    logicalBytes: z.number().int().nonnegative(),
    uniqueChunks: z.number().int().nonnegative(),
    newChunks: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
    newStoredBytes: z.number().int().nonnegative(),
  }),
  status: z.literal("restorable"),
  recordedAt: z.string(),
  pinned: z.boolean().optional(),
  /** The latest verification of this snapshot (issue #5). */
  verification: z
    .object({ level: z.number().int().min(1).max(4), at: z.string(), outcome: z.enum(["passed", "failed", "error"]), runId: z.string() })
    .optional(),
  replicas: z.record(z.string(), replicaStatusSchema),
});
export type SnapshotRecord = z.infer<typeof snapshotRecordSchema>;

/**
 * Catalog item of a chunk in the vault. Chunks are content-addressed: a
 * record describes bytes, so writing it again is harmless.
 *
 * Where its stored bytes are: without `offset`, the whole object `vaultKey`
 * (db/<id>/chunks/<sha256>, one object per chunk, as snapshots before packs
 * stored them); with `offset`, `vaultKey` is a pack (db/<id>/packs/<name>,
 * docs/packs.md) and the bytes are [offset, offset + storedSize) of it. A
 * repack moves a chunk by rewriting this record; manifests never name packs.
 */
export const chunkItemSchema = z.object({
  databaseId: databaseIdSchema,
  sha256: sha256Schema,
  size: z.number().int().nonnegative(),
  storedSize: z.number().int().nonnegative(),
  codec: codecSchema,
  vaultKey: z.string(),
  /** Byte offset of the stored bytes in the pack `vaultKey`; absent for a chunk stored as its own object. */
  offset: z.number().int().nonnegative().optional(),
  recordedAt: z.string(),
});
export type ChunkItem = z.infer<typeof chunkItemSchema>;

/**
 * Catalog item of a pack in the vault (db/<id>/packs/<name>, core/pack.ts):
 * what its footer says, so retention and replication can size and find it
 * without reading its tail. Content-addressed like a chunk record.
 */
export const packItemSchema = z.object({
  databaseId: databaseIdSchema,
  /** SHA-256 of the whole pack: its name. */
  name: sha256Schema,
  /** Object size in bytes (data, index and footer). */
  size: z.number().int().positive(),
  /** Chunks in its index. */
  entries: z.number().int().positive(),
  /** Bytes of chunk data (the index starts here). */
  dataLength: z.number().int().positive(),
  vaultKey: z.string(),
  recordedAt: z.string(),
  /**
   * Retention (docs/retention.md, "Packs"): when a run found it a candidate
   * (every chunk recorded in it referenced by no kept snapshot, or repacked).
   * A later run deletes it only with the record still carrying this value;
   * snapshot ingest (CheckReferenced) removes it when a push reuses one of
   * its chunks. Absent: not a candidate.
   */
  orphanedAt: z.string().optional(),
  /**
   * Retention (docs/packs.md, "The sweep tallies packs from their indexes"):
   * when a repack began copying its live chunks out (store/repack.ts). From
   * then on its index no longer says what it serves: the sweep counts only
   * the chunk records still pointing at it (deleted a grace period after the
   * move whatever its index lists), and CheckReferenced never accepts a chunk
   * by it, only by the chunk's record. Absent: the index decides. A record
   * written again (PromotePacks promoting the same pack anew) has none.
   */
  repackedAt: z.string().optional(),
  /**
   * Retention (docs/retention.md, "Packs"): when a sweep condemned it, the
   * first step of deleting it (conditional on the orphanedAt it had read).
   * From then on no reader takes a chunk from it and no push can unmark it;
   * the sweep deletes its chunk records, its object everywhere and last this
   * record, and a later sweep finishes a deletion interrupted in between.
   */
  deletingAt: z.string().optional(),
});
export type PackItem = z.infer<typeof packItemSchema>;

/** One check a verification made (core/verify-levels: L1 catalog/manifest, L2 checksums, L3 structure, L4 restore and start). */
export const verificationCheckSchema = z.object({
  level: z.number().int().min(1).max(4),
  name: z.string(),
  ok: z.boolean(),
  detail: z.string().optional(),
  seconds: z.number().nonnegative(),
});
export type VerificationCheck = z.infer<typeof verificationCheckSchema>;

/** Catalog item of one verification run of one snapshot (the verification history). */
export const verificationRecordSchema = z.object({
  databaseId: databaseIdSchema,
  runId: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, "not a run id"),
  snapshotId: z.string(),
  /** The level asked for. */
  level: z.number().int().min(1).max(4),
  /** ISO time of the point-in-time target (level 4), absent: the snapshot itself. */
  targetTime: z.string().optional(),
  region: z.string().optional(),
  /** passed: every check of every level up to `level`; failed: a check failed; error: the run could not check. */
  outcome: z.enum(["passed", "failed", "error"]),
  /** The level whose check failed, and the one-line reason naming what (chunk, file, gap...). */
  failedLevel: z.number().int().min(1).max(4).optional(),
  failure: z.string().optional(),
  errorName: z.string().optional(),
  checks: z.array(verificationCheckSchema),
  startedAt: z.string(),
  finishedAt: z.string(),
  /** Level 3+: seconds to rebuild the files; level 4: to recover to the target and start. */
  restoreSeconds: z.number().nonnegative().optional(),
  recoverySeconds: z.number().nonnegative().optional(),
  walReplayedBytes: z.number().int().nonnegative().optional(),
  walReplayBytesPerSecond: z.number().nonnegative().optional(),
  /** Who started it and why it was chosen. */
  trigger: z.enum(["schedule", "cli", "console"]).optional(),
  reason: z.string().optional(),
});
export type VerificationRecord = z.infer<typeof verificationRecordSchema>;

/** Catalog item of one retention deletion: what went, why, when, by which run (issue #6). */
export const auditRecordSchema = z.object({
  databaseId: databaseIdSchema,
  runId: z.string().min(1),
  seq: z.number().int().nonnegative(),
  at: z.string(),
  action: z.enum(["delete-snapshot", "delete-wal", "sweep-chunk", "locked", "sweep-pack", "repack"]),
  /** Snapshot id, WAL name, chunk SHA-256 or pack name. */
  subject: z.string(),
  /** Regions whose vault object was deleted (or, for "locked", where it is still locked). */
  regions: z.array(z.string()),
  reason: z.string(),
  by: z.string(),
});
export type AuditRecord = z.infer<typeof auditRecordSchema>;
