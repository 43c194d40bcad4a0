/**
 * Ingest step 1 — Validate: the uploaded object is what it claims to be.
 * Input: { event: EventBridge S3 "Object Created" event }.
 * Output: ValidatedWal (duplicate=true when the catalog already has these bytes).
 */
import { z } from "zod";
import { InvalidInputError, NotFoundError, SegmentConflictError, UnknownDatabaseError } from "../../core/errors.js";
import { lastXactField, restorePointFields, walFileLsns } from "../../core/catalog-records.js";
import { sha256Hex } from "../../core/hash.js";
import { parseGenericSegmentMeta } from "../../core/generic-wal.js";
import { parseIncomingKey, vaultGenericWalKey, vaultWalKey, type IncomingWalKey } from "../../core/keys.js";
import { pageLayout, restorePointsInSegment, type LayoutScratch } from "../../core/restore-point.js";
import { lastXactTimeInSegment } from "../../core/xact-time.js";
import { objectCreatedEventSchema, type DatabaseRecord, type ValidatedWal, type WalRecord } from "../../core/schemas.js";
import { parseBacklogMeta, parseObjectMeta, verifyEncodedBytes, withVerifiedWalBytes } from "../../core/verify.js";
import { ZstdInto } from "../../core/zstd-into.js";
import { parseWalFileName, segmentStartLsn } from "../../core/wal.js";
import type { StoredObject } from "../../store/object-store.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";
import { backlogMetric, emitMetric, lambdaHandler } from "../observability.js";

const inputSchema = z.object({ event: objectCreatedEventSchema });

async function handle(input: unknown): Promise<ValidatedWal> {
  const { event } = parseInput(inputSchema, input, "ingest event");
  const deps = getDeps();
  const { name: bucket } = event.detail.bucket;
  const { key, "version-id": versionId } = event.detail.object;
  if (bucket !== deps.incomingBucket) {
    throw new InvalidInputError(`event names bucket '${bucket}', not the incoming bucket '${deps.incomingBucket}'`);
  }
  // The key's shape first (to learn the database); the file name is parsed
  // once below, with that database's own segment size.
  const parsed = parseIncomingKey(key);
  const { databaseId, generic } = parsed;
  const db = await deps.catalog.getDatabase(databaseId);
  if (!db) throw new UnknownDatabaseError(`database '${databaseId}' is not registered`);
  if ((generic !== undefined) !== (db.kind === "generic")) {
    throw new InvalidInputError(
      db.kind === "generic"
        ? `database '${databaseId}' is generic: its WAL is uploaded per stream, as incoming/db/${databaseId}/wal/<stream>/<file>, not ${key}`
        : `database '${databaseId}' is PostgreSQL: its WAL is uploaded as incoming/db/${databaseId}/wal/<WAL file name>, not ${key}`,
    );
  }

  const obj = await deps.incoming.get(bucket, key, versionId);
  if (!obj) throw new NotFoundError(`incoming object ${key} no longer exists`);
  const validated = await validateWalObject(deps, {
    databaseId,
    db,
    parsed,
    obj,
    location: { bucket, key, ...(versionId ? { versionId } : {}) },
  });
  emitBacklog(validated);
  return validated;
}

/** ArchiveBacklogSegments for the database, when the validated upload reported its host's backlog. */
export function emitBacklog(v: Pick<ValidatedWal, "databaseId" | "name" | "hostBacklog">): void {
  if (v.hostBacklog !== undefined) emitMetric(backlogMetric(v.databaseId, v.hostBacklog, v.name));
}

export interface WalObjectToValidate {
  databaseId: string;
  db: DatabaseRecord;
  /** What the key names (core/keys.ts parseIncomingKey's shape). */
  parsed: Pick<IncomingWalKey, "walName" | "generic">;
  obj: StoredObject;
  /** Where the object is (ValidatedWal.incoming: the incoming upload, or the vault object of a direct push). */
  location: { bucket: string; key: string; versionId?: string };
  /** The vault key it is (or will be) kept at; default the plain key (Promote writes it). */
  vaultKey?: string;
  /**
   * True when the caller records the file with recordValidatedWal next, whose
   * conditional write makes the duplicate-or-conflict decision (a record of
   * the same bytes: duplicate; of others: SegmentConflictError): the record
   * is then not read here. Only for a PostgreSQL file name (the generic
   * catalog name is known after the metadata is read).
   */
  decidedAtWrite?: true;
  /** SHA-256 of `obj.body`, when the caller hashed it already (the direct path checks it against the key). */
  encodedSha256?: string;
}

/**
 * The checks every WAL object passes before it is recorded, wherever it was
 * written (incoming/ upload or direct vault write): the walvault metadata,
 * size, SHA-256 of the decoded bytes, the PostgreSQL header (or the generic
 * segment's metadata), then the catalog's duplicate-or-conflict decision.
 * Throws the validation errors the workflows quarantine on.
 */
export async function validateWalObject(deps: Deps, input: WalObjectToValidate): Promise<ValidatedWal> {
  const { databaseId, db, parsed, obj, location } = input;
  const { bucket, key, versionId } = location;
  const what = `upload ${key}`;
  const claimed = parseObjectMeta(obj.metadata, what);
  const hostBacklog = parseBacklogMeta(obj.metadata);
  // What every validated upload carries; `name` is the catalog name (generic: <stream>/<file>).
  const proven = async (name: string): Promise<Omit<ValidatedWal, "kind" | "timeline" | "vaultKey">> => {
    const existing = await recordedBefore(deps, input, name);
    if (existing && existing.sha256 !== claimed.sha256) throw conflict(name, databaseId, existing.sha256, claimed.sha256);
    return {
      databaseId,
      name,
      size: claimed.size,
      storedSize: obj.body.length,
      sha256: claimed.sha256,
      encodedSha256: input.encodedSha256 ?? sha256Hex(obj.body),
      codec: claimed.codec,
      incoming: { bucket, key, ...(versionId ? { versionId } : {}) },
      duplicate: existing !== undefined,
      replicaRegions: deps.replicas.map((r) => r.region),
      ...(hostBacklog === undefined ? {} : { hostBacklog }),
    };
  };
  if (parsed.generic !== undefined) {
    const generic = parsed.generic;
    const seg = parseGenericSegmentMeta(obj.metadata, what);
    await verifyEncodedBytes(obj.body, claimed, what);
    if (claimed.size === 0) throw new InvalidInputError(`${generic.name} is empty`);
    return {
      ...(await proven(generic.name)),
      kind: "segment",
      timeline: 1,
      startLsn: seg.position.toString(),
      vaultKey: input.vaultKey ?? vaultGenericWalKey(databaseId, generic.stream, generic.file),
      closedAt: seg.closedAt,
      ...(seg.scan ? { scanAt: seg.scan.at, scanCount: seg.scan.count } : {}),
    };
  }
  const file = parseWalFileName(parsed.walName!, db.walSegmentSize);
  const postgres = db.kind === "postgres";
  // What the record carries from the bytes is read from them before anything else runs (they may be KEPT_ZSTD's reused output).
  const fromBytes = await withVerifiedWalBytes(file, obj.body, claimed, db.walSegmentSize, what, { postgres, kept: KEPT_ZSTD }, (raw) =>
    file.kind === "segment" && postgres ? segmentFields(raw, file.segno, db.walSegmentSize) : {},
  );
  return {
    ...(await proven(file.name)),
    kind: file.kind,
    timeline: file.timeline,
    ...walFileLsns(file, db.walSegmentSize),
    ...fromBytes,
    vaultKey: input.vaultKey ?? vaultWalKey(databaseId, file),
  };
}

/**
 * The zstd context and output WAL objects are decoded on, kept from one
 * invocation to the next of this container (core/verify.ts
 * withVerifiedWalBytes): a segment-sized allocation less per segment, and
 * the full garbage collection of the heap its external memory brought on
 * about once per segment.
 */
const KEPT_ZSTD = new ZstdInto();

/** The catalog's record of `name` as the duplicate-or-conflict decision before the write sees it (WalObjectToValidate.decidedAtWrite). */
async function recordedBefore(deps: Deps, input: WalObjectToValidate, name: string): Promise<WalRecord | undefined> {
  return input.decidedAtWrite && input.parsed.generic === undefined ? undefined : deps.catalog.getWal(input.databaseId, name);
}

/**
 * The page bodies of the segment being validated, reused from one invocation
 * to the next of this container (a Lambda container runs one at a time, and
 * the layout is used and dropped inside segmentFields, which is synchronous,
 * so even handlers run concurrently in one process cannot share it): a 16 MiB allocation
 * less per segment, and the full garbage collections its external memory
 * brought on (core/restore-point.ts LayoutScratch).
 */
const LAYOUT_SCRATCH: LayoutScratch = { buf: Buffer.alloc(0) };

/**
 * What a PostgreSQL segment's record carries from its bytes, over one page
 * layout (the bodies without page headers, built once): the restore points in
 * it, so restore --target-name knows them without reading WAL, and its latest
 * transaction end, so a time target is drawn (and checked) where PostgreSQL
 * can stop.
 */
function segmentFields(raw: Uint8Array, segno: bigint | undefined, walSegmentSize: number): Partial<ValidatedWal> {
  const layout = pageLayout(raw, LAYOUT_SCRATCH);
  return {
    ...(segno !== undefined ? restorePointFields(restorePointsInSegment(raw, segmentStartLsn(segno, walSegmentSize), layout)) : {}),
    ...lastXactField(lastXactTimeInSegment(raw, layout)),
  };
}

function conflict(name: string, databaseId: string, archived: string, uploaded: string): SegmentConflictError {
  return new SegmentConflictError(
    `${name} is already archived for database ${databaseId} with different contents ` +
      `(archived sha256 ${archived.slice(0, 12)}…, uploaded ${uploaded.slice(0, 12)}…); the archived copy was kept`,
  );
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
