/**
 * The one catalogue of walvault errors. Every error a user can see is one of
 * these classes: it has a stable `code` (for --json output and Step Functions
 * Catch/Retry on `Error` names), a one-line message that names what was wrong
 * and what to do, and the underlying `cause` when there is one.
 *
 * Step Functions matches Catch `ErrorEquals` against the error's `name`, so
 * each class sets `name` to its class name (written out in ERROR_CLASSES, as
 * the bundles are minified) and the ASL refers to those names.
 */
import { safeText } from "./text.js";

export interface WalvaultErrorOptions {
  cause?: unknown;
}

/**
 * Marks a WalvaultError whichever copy of this module made it: the agent's
 * bundle (local/bundle-handlers.ts) has its own, and `walvault local up`'s
 * errors come from the compiled local stack's, so `instanceof` alone would
 * send them to the CLI as unknown failures (exit 2 instead of theirs).
 */
const BRAND = Symbol.for("walvault.error");

export abstract class WalvaultError extends Error {
  /** Stable machine-readable code, e.g. "segment_conflict". */
  abstract readonly code: string;
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number = 2;

  constructor(message: string, options: WalvaultErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** Input from a user, a config file or an event failed validation. */
export class InvalidInputError extends WalvaultError {
  readonly code = "invalid_input";
}

/** The database id is well formed but not registered in the catalog. */
export class UnknownDatabaseError extends WalvaultError {
  readonly code = "unknown_database";
}

/** A file name is not a WAL segment, history, backup or partial file. */
export class InvalidWalNameError extends WalvaultError {
  readonly code = "invalid_wal_name";
}

/** Bytes do not match what was recorded (SHA-256 or size). */
export class ChecksumMismatchError extends WalvaultError {
  readonly code = "checksum_mismatch";
}

/** Bytes could not be decoded with the codec they claim. */
export class CodecError extends WalvaultError {
  readonly code = "codec_error";
}

/**
 * The same name was already archived with different bytes. The archived copy
 * is never overwritten; the newcomer is quarantined.
 */
export class SegmentConflictError extends WalvaultError {
  readonly code = "segment_conflict";
  override readonly exitCode = 3;
}

/** Something asked for does not exist (segment, object, snapshot). */
export class NotFoundError extends WalvaultError {
  readonly code = "not_found";
  override readonly exitCode = 1;
}

/** A local file the user named does not exist or cannot be read. */
export class FileAccessError extends WalvaultError {
  readonly code = "file_access";
}

/** Configuration is missing or wrong (no config file, bad endpoint...). */
export class ConfigError extends WalvaultError {
  readonly code = "config_error";
}

/**
 * A delete refused by the vault's protection (Object Lock retention, or a
 * policy that denies deletes): retention leaves the object and reports it,
 * never forces it.
 */
export class ObjectLockedError extends WalvaultError {
  readonly code = "object_locked";
}

/**
 * An object is in an archive storage class (S3 GLACIER or DEEP_ARCHIVE) and
 * has not been restored, so it cannot be read (S3 InvalidObjectState): the
 * restore workflow must run with thaw (input "thaw": true) first.
 */
export class ObjectArchivedError extends WalvaultError {
  readonly code = "object_archived";
}

/** A service (S3, DynamoDB, the local stack) could not be reached. */
export class ServiceUnavailableError extends WalvaultError {
  readonly code = "service_unavailable";
  override readonly exitCode = 4;
}

/** Waiting for durability or a workflow did not finish in time. */
export class TimeoutError extends WalvaultError {
  readonly code = "timeout";
  override readonly exitCode = 5;
}

/**
 * A workflow execution (Step Functions) failed, timed out or was aborted with
 * an error that is not one of these classes (e.g. States.TaskFailed,
 * Lambda.Unknown); the message names the execution, the error and its cause.
 */
export class WorkflowFailedError extends WalvaultError {
  readonly code = "workflow_failed";
}

/** The object was quarantined by ingest; the reason is in the message. */
export class QuarantinedError extends WalvaultError {
  readonly code = "quarantined";
  override readonly exitCode = 3;
}

/**
 * The catalog refused a request as malformed (DynamoDB's ValidationException:
 * an item over 400 KB, a bad key or expression), or holds an item walvault
 * cannot read. The fault is walvault's or the catalog's, not the upload's:
 * it is never quarantined; the workflow fails without a record, and the
 * message names the operation or the item.
 */
export class CatalogFaultError extends WalvaultError {
  readonly code = "catalog_fault";
}

/** A conditional write lost against a concurrent writer. */
export class ConcurrentUpdateError extends WalvaultError {
  readonly code = "concurrent_update";
}

/** WAL is missing between two archived positions on a timeline. */
export class WalGapError extends WalvaultError {
  readonly code = "wal_gap";
}

/** Type guard usable on anything caught. */
export function isWalvaultError(e: unknown): e is WalvaultError {
  return e instanceof WalvaultError || (typeof e === "object" && e !== null && (e as Record<symbol, unknown>)[BRAND] === true);
}

/** Longest description describeError returns (characters, after escaping). */
export const DESCRIBE_ERROR_MAX = 2000;

/**
 * Best one-line description of any thrown value: the message's first line,
 * made safe to print (core/text.ts: control characters escaped, bounded),
 * since messages quote file contents, names and flags from outside.
 */
export function describeError(e: unknown): string {
  const line = e instanceof Error ? e.message.split(/\r?\n/)[0] || e.name : String(e);
  return safeText(line, DESCRIBE_ERROR_MAX);
}

// ---------------------------------------------------------------------------
// Restore planning (core/restore-plan.ts). The messages name the target, the
// snapshot or the WAL involved, and what to do instead.

/** No snapshot on the target timeline's history is consistent at or before the target. */
export class NoSnapshotBeforeTargetError extends WalvaultError {
  readonly code = "no_snapshot_before_target";
}

/** The target lies past the end of the archived WAL (or past what it can prove). */
export class TargetAfterArchiveEndError extends WalvaultError {
  readonly code = "target_after_archive_end";
}

/** The target could mean more than one point (duplicate restore point names, two histories). */
export class AmbiguousTargetError extends WalvaultError {
  readonly code = "ambiguous_target";
}

/** A restore asked for a snapshot id the catalog does not know. */
export class UnknownSnapshotError extends WalvaultError {
  readonly code = "unknown_snapshot";
}

/** A timeline was asked for (or is the latest) but its history file is not archived. */
export class TimelineNotFoundError extends WalvaultError {
  readonly code = "timeline_not_found";
}

/** The target (a restore point, a snapshot) exists, but not on the history of the timeline asked for. */
export class TargetNotOnTimelineError extends WalvaultError {
  readonly code = "target_not_on_timeline";
}

// ---------------------------------------------------------------------------
// Snapshot manifests (core/snapshot.ts). Ingest quarantines a snapshot whose
// manifest throws either of these; the message names the field or path.

export interface ManifestErrorOptions extends WalvaultErrorOptions {
  /** Where in the manifest, e.g. "files[3].chunks[0].size", "postgres.startWalFile", "totals.uniqueChunks". */
  field?: string;
}

/** A snapshot manifest (or what a pipeline fed the builder) is malformed or inconsistent. */
export class ManifestInvalidError extends WalvaultError {
  readonly code = "manifest_invalid";
  readonly field: string | undefined;

  constructor(message: string, options: ManifestErrorOptions = {}) {
    super(message, options);
    this.field = options.field;
  }
}

export interface UnsafePathErrorOptions extends WalvaultErrorOptions {
  /** The offending path, as given. */
  path?: string;
}

/**
 * A path in a snapshot could write outside the directory it belongs to
 * (absolute, '..', empty segments, NUL) or escapes a restore target. Never
 * followed, never normalised into something acceptable: refused.
 */
export class UnsafePathError extends WalvaultError {
  readonly code = "unsafe_path";
  readonly path: string | undefined;

  constructor(message: string, options: UnsafePathErrorOptions = {}) {
    super(message, options);
    this.path = options.path;
  }
}

/** A snapshot id was already recorded with a different manifest; the recorded one is kept. */
export class SnapshotConflictError extends WalvaultError {
  readonly code = "snapshot_conflict";
  override readonly exitCode = 3;
}

// ---------------------------------------------------------------------------
// Pack objects (core/pack.ts, docs/packs.md).

/** What is wrong with a pack: stable, so callers can branch on it. */
export type PackProblem =
  | "truncated"
  | "bad_magic"
  | "unsupported_version"
  | "bad_footer"
  | "index_hash_mismatch"
  | "bad_entry"
  | "out_of_bounds"
  | "overlap"
  | "gap"
  | "duplicate_chunk"
  | "name_mismatch";

export interface CorruptPackErrorOptions extends WalvaultErrorOptions {
  problem?: PackProblem;
  /** The index entry at fault (0-based), when one is. */
  entry?: number;
}

/** A pack object's bytes are not a valid pack (footer, index, layout or name); the message names the pack and what is wrong. */
export class CorruptPackError extends WalvaultError {
  readonly code = "corrupt_pack";
  readonly problem: PackProblem | undefined;
  readonly entry: number | undefined;

  constructor(message: string, options: CorruptPackErrorOptions = {}) {
    super(message, options);
    this.problem = options.problem;
    this.entry = options.entry;
  }
}

// ---------------------------------------------------------------------------
// Errors by kind, as the ingest workflows treat them (statemachines/*.asl.json,
// asserted in test/statemachines). Step Functions matches `Error` names.

/**
 * What the ingest handlers throw when the upload itself is bad: the workflow
 * quarantines it (a quarantine record, `wal-push` exit 3). Nothing else may be
 * quarantined: a good upload must never be recorded as bad.
 */
export const INGEST_VALIDATION_ERRORS = [
  "InvalidInputError",
  "InvalidWalNameError",
  "ChecksumMismatchError",
  "CodecError",
  "SegmentConflictError",
  "UnknownDatabaseError",
] as const;

/** Snapshot ingest adds the manifest's own errors, a referenced chunk that is missing (NotFoundError) and a pushed pack that is not one (CorruptPackError). */
export const SNAPSHOT_VALIDATION_ERRORS = [
  "InvalidInputError",
  "UnknownDatabaseError",
  "InvalidWalNameError",
  "ManifestInvalidError",
  "UnsafePathError",
  "SnapshotConflictError",
  "SegmentConflictError",
  "ChecksumMismatchError",
  "CodecError",
  "NotFoundError",
  "CorruptPackError",
] as const;

/**
 * What promoting a pack as it lands (the pack-ingest workflow) throws when the
 * upload is bad or its database unknown: the workflow ends without writing
 * anything (no quarantine: the manifest's ingest verifies the pack again and
 * quarantines the snapshot, naming the reason).
 */
export const PACK_VALIDATION_ERRORS = [
  "InvalidInputError",
  "UnknownDatabaseError",
  "ChecksumMismatchError",
  "CodecError",
  "NotFoundError",
  "CorruptPackError",
] as const;

/**
 * A Lambda function that ran past its timeout: Sandbox.Timedout (the error
 * type Lambda reports for a timed-out invocation on current runtimes),
 * Lambda.Unknown (as Step Functions documents timeouts and out-of-memory),
 * States.Timeout (a state's TimeoutSeconds). Retried once: a step that
 * timed out twice will not finish within an Express execution's 5 minutes.
 */
export const TIMEOUT_WORKFLOW_ERRORS = ["Sandbox.Timedout", "Lambda.Unknown", "States.Timeout"] as const;

/**
 * A service the handler needs (ServiceUnavailableError, ConcurrentUpdateError)
 * or Lambda's own service faults and throttling. Retried up to 4 times with
 * exponential backoff and full jitter.
 */
export const SERVICE_WORKFLOW_ERRORS = [
  "ServiceUnavailableError",
  "ConcurrentUpdateError",
  "Lambda.ServiceException",
  "Lambda.AWSLambdaException",
  "Lambda.SdkClientException",
  "Lambda.ClientExecutionTimeoutException",
  "Lambda.TooManyRequestsException",
] as const;

/**
 * Faults that say nothing about the upload: retried (the two lists above),
 * then the execution fails without a quarantine record.
 */
export const TRANSIENT_WORKFLOW_ERRORS = [...TIMEOUT_WORKFLOW_ERRORS, ...SERVICE_WORKFLOW_ERRORS] as const;

/**
 * An upload reached the incoming bucket, but the control plane failed
 * transiently (or unexpectedly) before storing it: no quarantine record, the
 * upload is intact, and pushing the same file again starts a new ingest.
 * Exit 4 like ServiceUnavailableError: PostgreSQL retries archive_command.
 */
export class IngestRetryableError extends WalvaultError {
  readonly code = "ingest_retryable";
  override readonly exitCode = 4;
}

/**
 * Every error class by its name, which is written out here: the bundles
 * (core/workflows.ts HANDLER_BUNDLE, the agent's) are minified without
 * esbuild's keepNames, so a class's own name would be a minified letter
 * (keepNames re-named every function of the SDK as a bundle loaded, ~25 ms
 * of each Lambda cold start). Step Functions' Retry and Catch match these
 * names, and WalvaultError's constructor takes its `name` from here.
 */
export const ERROR_CLASSES = {
  InvalidInputError,
  UnknownDatabaseError,
  InvalidWalNameError,
  ChecksumMismatchError,
  CodecError,
  SegmentConflictError,
  NotFoundError,
  FileAccessError,
  ConfigError,
  ObjectLockedError,
  ObjectArchivedError,
  ServiceUnavailableError,
  TimeoutError,
  WorkflowFailedError,
  QuarantinedError,
  CatalogFaultError,
  ConcurrentUpdateError,
  WalGapError,
  NoSnapshotBeforeTargetError,
  TargetAfterArchiveEndError,
  AmbiguousTargetError,
  UnknownSnapshotError,
  TimelineNotFoundError,
  TargetNotOnTimelineError,
  ManifestInvalidError,
  UnsafePathError,
  SnapshotConflictError,
  CorruptPackError,
  IngestRetryableError,
} as const;
for (const [name, c] of Object.entries(ERROR_CLASSES)) Object.defineProperty(c, "name", { value: name });
