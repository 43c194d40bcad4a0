/**
 * `walvault wal-push <path>` — PostgreSQL's archive_command.
 * Exit 0 only when the file is durable at the requested level:
 *   none        uploaded to the incoming bucket;
 *   stored      the catalog records it in the vault (the ingest workflow finished);
 *   replicated  ...and every configured replica region holds a proven copy;
 *   quorum=N    ...in N regions counting the primary (quorum alone: a majority).
 * A wait that times out is a TimeoutError naming the regions still missing;
 * the segment stays recorded and will still replicate.
 * Idempotent: the same bytes already archived → exit 0 without uploading;
 * different bytes under the same name → SegmentConflictError, the archived
 * copy untouched. Ingest rejected the upload → QuarantinedError (exit 3);
 * ingest failed on something that says nothing about the upload (a Lambda
 * timeout, throttling, a service fault after retries) → IngestRetryableError
 * (exit 4), nothing quarantined: the next push uploads and ingests it again.
 *
 * Direct WAL (`direct`, WALVAULT_WAL_DIRECT=1 or the config's walDirect;
 * docs/wal.md): a segment, partial or backup label is written once, straight
 * into the vault under its content-addressed key (core/keys.ts
 * vaultWalDirectKey, create-only), then the agent starts the wal-record
 * workflow with the key; nothing goes through incoming/ or EventBridge.
 * With no replica region (or a wait for the replicas) the agent runs the
 * Express execution to its end in one call (StartSyncExecution) and reads
 * the record once, instead of polling the catalog for it.
 * History files always take the incoming/ path.
 */
import { existsSync, rmSync } from "node:fs";
import { z } from "zod";
import { basename, join } from "node:path";
import { getCodec, DEFAULT_CODEC } from "../core/codec.js";
import {
  ConfigError,
  FileAccessError,
  IngestRetryableError,
  InvalidInputError,
  QuarantinedError,
  SegmentConflictError,
  ServiceUnavailableError,
  TimeoutError,
  TRANSIENT_WORKFLOW_ERRORS,
  UnknownDatabaseError,
} from "../core/errors.js";
import { deadlineIn } from "../core/deadline.js";
import type { Deadline } from "../core/deadline.js";
import { sha256Hex } from "../core/hash.js";
import { failedMarkerKey, incomingWalKey, vaultWalDirectKey } from "../core/keys.js";
import { lambdaCauseMessage, safeText } from "../core/text.js";
import { META_BACKLOG, META_DATABASE } from "../core/schemas.js";
import { checkPgWalHeader, checkWalSize, objectMeta } from "../core/verify.js";
import { parseHistoryFile } from "../core/timeline.js";
import { parseWalFileName } from "../core/wal.js";
import type { Catalog } from "../store/catalog.js";
import type { ObjectStore } from "../store/object-store.js";
import type { DatabaseRecord, WalRecord } from "../core/schemas.js";
import type { AgentClients } from "./clients.js";
import type { AgentConfig } from "../core/config.js";
import type { ExecutionState, WorkflowRunner } from "../store/workflows.js";
import { backlogBeside } from "./archive-status.js";
import { walDirectEnabled } from "./config.js";
import { assertMayArchiveInto } from "./restore-marker.js";
import { PREFETCH_DIR } from "./wal-fetch.js";
import { ReadBuffers } from "./read-buffers.js";

export type WaitLevel = "none" | "stored" | "replicated" | { quorum: number };

/** Parses --wait: none | stored | replicated | quorum | quorum=N (regions including the primary; 1 + replicas at most). */
export function parseWaitLevel(text: string, replicaRegions: readonly string[]): WaitLevel {
  if (text === "none" || text === "stored" || text === "replicated") return text;
  const total = 1 + replicaRegions.length;
  const m = /^quorum(?:=(\d{1,3}))?$/.exec(text);
  if (!m) throw new InvalidInputError(`--wait must be none, stored, replicated or quorum[=N], not '${text}'`);
  const n = m[1] === undefined ? Math.floor(total / 2) + 1 : Number(m[1]);
  if (n < 1 || n > total) {
    throw new InvalidInputError(`--wait quorum=${n} asks for ${n} regions, but there are ${total} (the primary and ${replicaRegions.length} replica region(s): ${replicaRegions.join(", ") || "none"})`);
  }
  return { quorum: n };
}

/** Whether a record is durable at `level` given the configured replica regions ("stored" or more is implied). */
export function durableAt(record: WalRecord, level: WaitLevel, replicaRegions: readonly string[]): { ok: boolean; missing: string[] } {
  const missing = replicaRegions.filter((r) => record.replicas[r]?.status !== "replicated");
  if (level === "replicated") return { ok: missing.length === 0, missing };
  if (typeof level === "object") return { ok: 1 + replicaRegions.length - missing.length >= level.quorum, missing };
  return { ok: true, missing: [] };
}

export interface WalPushOptions {
  wait: WaitLevel;
  timeoutMs: number;
  /**
   * How long ingest has recently taken (the resident agent keeps an average):
   * the first catalog poll waits most of it instead of polling from the start.
   */
  expectedStoreMs?: number;
  /** Directory PostgreSQL runs archive_command in (the data directory). */
  cwd: string;
  /** Direct WAL (write into the vault, start wal-record). Default: walDirectEnabled(cfg) (WALVAULT_WAL_DIRECT, config walDirect). */
  direct?: boolean;
  /** The Step Functions client direct WAL starts wal-record with. Default: one built from the configuration (loaded only then). */
  workflows?: WorkflowRunner;
}

export interface WalPushResult {
  name: string;
  outcome: "uploaded" | "stored" | "replicated" | "already-archived";
  sha256: string;
  size: number;
  storedSize?: number;
  /** Milliseconds from upload to the catalog record ("stored" only). */
  storeMs?: number;
}

function conflict(name: string, databaseId: string, archived: string, pushed: string): SegmentConflictError {
  return new SegmentConflictError(
    `${name} is already archived for database ${databaseId} with different contents ` +
      `(archived sha256 ${archived.slice(0, 12)}…, pushed ${pushed.slice(0, 12)}…); the archived copy was kept`,
  );
}

/**
 * The buffers WAL files are read into, kept from one push to the next
 * (agent/read-buffers.ts): as many as a resident agent pushes at once by
 * default, plus the one archive_command's own push may need.
 */
const WAL_READS = new ReadBuffers(3);

export async function walPush(
  path: string,
  cfg: AgentConfig & { databaseId: string },
  clients: AgentClients,
  opts: WalPushOptions,
): Promise<WalPushResult> {
  const { databaseId } = cfg;
  const name = basename(path);
  const reading = WAL_READS.read(path).catch((cause: NodeJS.ErrnoException) => {
    throw new FileAccessError(`cannot read WAL file ${path}: ${cause.code === "ENOENT" ? "no such file" : cause.message}`, { cause });
  });
  const [read, db, existing] = await Promise.all([reading, clients.catalog.getDatabase(databaseId), clients.catalog.getWal(databaseId, name)]).catch((e: unknown) => {
    void reading.then((r) => r.release(), () => undefined);
    throw e;
  });
  try {
    return await pushContent(path, name, read.bytes, db, existing, cfg, clients, opts);
  } finally {
    // The bytes are encoded, hashed and uploaded by now (or refused): the buffer goes to the next segment.
    read.release();
  }
}

/** The rest of walPush once the file and the catalog's records are read (`content` is only valid until walPush returns). */
async function pushContent(
  path: string,
  name: string,
  content: Buffer,
  db: DatabaseRecord | undefined,
  existing: WalRecord | undefined,
  cfg: AgentConfig & { databaseId: string },
  clients: AgentClients,
  opts: WalPushOptions,
): Promise<WalPushResult> {
  const { databaseId } = cfg;
  if (!db) {
    throw new UnknownDatabaseError(
      `database '${databaseId}' is not registered in the catalog: register it with \`walvault db add ${databaseId}\` or fix --database`,
    );
  }
  const file = parseWalFileName(name, db.walSegmentSize);
  checkWalSize(file, content.length, db.walSegmentSize);
  if (db.kind === "postgres") checkPgWalHeader(file, content, db.walSegmentSize);
  // Ingest would quarantine it; refusing here names the problem before anything is uploaded.
  if (file.kind === "history") parseHistoryFile(content, file.timeline);
  clearLeftoverPrefetch(opts.cwd);
  assertMayArchiveInto(opts.cwd, databaseId);
  const codec = getCodec(cfg.codec ?? DEFAULT_CODEC);
  // Compression runs on the thread pool while this thread hashes.
  const encoding = existing ? undefined : codec.encode(content);
  const sha256 = sha256Hex(content);
  if (existing) {
    if (existing.sha256 !== sha256) throw conflict(name, databaseId, existing.sha256, sha256);
    if (opts.wait !== "none" && opts.wait !== "stored") {
      await waitReplicated(clients.catalog, existing, opts.wait, (cfg.replicas ?? []).map((r) => r.region), cfg.region, deadlineIn(opts.timeoutMs));
    }
    return { name, outcome: "already-archived", sha256, size: content.length, storedSize: existing.storedSize };
  }
  const encoded = await encoding!;
  const startedAt = new Date(); // wall time: compared with the record's and the execution's times
  const limit = deadlineIn(opts.timeoutMs);
  const t0 = performance.now();
  const key = incomingWalKey(databaseId, name);
  // The archiver's queue as this file leaves it: ingest publishes it (ArchiveBacklogSegments), no request of its own.
  const backlog = db.kind === "postgres" ? backlogBeside(path, opts.cwd) : undefined;
  const meta = {
    ...objectMeta({ sha256, codec: codec.name, size: content.length }),
    [META_DATABASE]: databaseId,
    ...(backlog === undefined ? {} : { [META_BACKLOG]: String(backlog) }),
  };
  // Both paths: a failed execution leaves failed/incoming/db/<id>/wal/<name>.json (wal-record.asl.json writes the same key).
  const note = { store: clients.store, bucket: cfg.incomingBucket, key };
  const replicaRegions = (cfg.replicas ?? []).map((r) => r.region);
  let record: WalRecord | undefined;
  if ((opts.direct ?? walDirectEnabled(cfg)) && file.kind !== "history") {
    // Same bytes, same key: a push run again re-puts (or, with S3's create-only write, keeps) the same object.
    // The key's digest is also the put's checksum and its signed payload hash (S3 checks both; the SDK does not hash the body again).
    const encodedSha256 = sha256Hex(encoded);
    const vaultKey = vaultWalDirectKey(databaseId, file, encodedSha256);
    await clients.store.put(cfg.vaultBucket, vaultKey, encoded, meta, { createOnly: true, sha256: encodedSha256 });
    const input = { databaseId, name, key: vaultKey, sha256 };
    // Waiting on the execution itself (Express, run to its end in one call) replaces polling the catalog,
    // when its end is what the wait needs: no replica region (it ends at the record), or a wait for the replicas.
    if (opts.wait !== "none" && (replicaRegions.length === 0 || opts.wait !== "stored")) {
      const ended = await callWalRecord(cfg, opts.workflows, (runner, arn) => runner.runSync(arn, input, { signal: AbortSignal.timeout(Math.ceil(opts.timeoutMs)) })).catch(
        (e: unknown) => {
          if (!(e instanceof TimeoutError)) throw e;
          throw new TimeoutError(
            `${name} was written to the vault but wal-record did not end within ${Math.round(opts.timeoutMs / 1000)} s; ` +
              `PostgreSQL will retry (the upload is idempotent) — check the wal-record workflow`,
            { cause: e },
          );
        },
      );
      // A wait for the primary only: the execution's output carries the stored size; no catalog read after it.
      const stored = opts.wait === "stored" ? storedFromOutput(ended, name, sha256) : undefined;
      if (stored) return { name, outcome: "stored", sha256, size: content.length, storedSize: stored.storedSize, storeMs: Math.round(performance.now() - t0) };
      record = await recordAfter(ended, clients.catalog, databaseId, name, sha256, startedAt, note);
    } else {
      await callWalRecord(cfg, opts.workflows, (runner, arn) => runner.start(arn, input));
    }
  } else {
    await clients.store.put(cfg.incomingBucket, key, encoded, meta);
  }
  if (opts.wait === "none") return { name, outcome: "uploaded", sha256, size: content.length, storedSize: encoded.length };
  record ??= await waitStored(clients.catalog, databaseId, name, sha256, startedAt, opts.timeoutMs, opts.expectedStoreMs, note);
  const storeMs = Math.round(performance.now() - t0);
  if (opts.wait !== "stored") {
    await waitReplicated(clients.catalog, record, opts.wait, replicaRegions, cfg.region, limit);
    return { name, outcome: "replicated", sha256, size: content.length, storedSize: record.storedSize, storeMs };
  }
  return { name, outcome: "stored", sha256, size: content.length, storedSize: record.storedSize, storeMs };
}

/** What a succeeded wal-record execution's output says of the file it stored (statemachines/wal-record.asl.json, $.validated). */
const WalRecordOutput = z.object({ validated: z.object({ ingest: z.object({ name: z.string(), sha256: z.string(), storedSize: z.number().int().nonnegative() }) }) });

/**
 * The stored size from a SUCCEEDED wal-record execution that validated and
 * recorded (or found recorded) exactly this name and digest; undefined for any
 * other end or output, and the caller reads the catalog instead. A different
 * digest under the name never succeeds (SegmentConflictError is quarantined).
 */
export function storedFromOutput(ended: ExecutionState, name: string, sha256: string): { storedSize: number } | undefined {
  if (ended.status !== "SUCCEEDED") return undefined;
  const parsed = WalRecordOutput.safeParse(ended.output);
  if (!parsed.success) return undefined;
  const { ingest } = parsed.data.validated;
  return ingest.name === name && ingest.sha256 === sha256 ? { storedSize: ingest.storedSize } : undefined;
}

/** Attempts at starting wal-record when Step Functions is out of reach or throttles. */
const START_ATTEMPTS = 4;

const runners = new Map<string, WorkflowRunner>();

/**
 * Starts (or runs to its end) the wal-record workflow for a WAL file written
 * into the vault: `call` is given the runner and the state machine's ARN, and
 * is retried on transient failures (ServiceUnavailableError: unreachable,
 * throttled, a service fault) with backoff and full jitter. Starting it twice
 * for one object is harmless (the second finds it recorded).
 */
export async function callWalRecord<T>(cfg: AgentConfig, given: WorkflowRunner | undefined, call: (runner: WorkflowRunner, arn: string) => Promise<T>): Promise<T> {
  const arn = cfg.walRecordStateMachineArn;
  if (!arn) {
    throw new ConfigError(
      "direct WAL is on (WALVAULT_WAL_DIRECT or walDirect) but the configuration names no walRecordStateMachineArn (the stack output WalRecordStateMachineArn)",
    );
  }
  let runner = given;
  if (!runner) {
    const id = JSON.stringify([cfg.region, cfg.stepFunctionsEndpoint, cfg.credentials?.accessKeyId]);
    runner = runners.get(id);
    if (!runner) {
      // Loaded only on this path: the incoming/ path never loads the Step Functions SDK.
      const { createWorkflowRunner } = await import("../store/workflows.js");
      runner = createWorkflowRunner({ region: cfg.region, stepFunctionsEndpoint: cfg.stepFunctionsEndpoint, credentials: cfg.credentials });
      runners.set(id, runner);
    }
  }
  let delayMs = 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(runner, arn);
    } catch (e) {
      if (!(e instanceof ServiceUnavailableError) || attempt >= START_ATTEMPTS) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * delayMs));
      delayMs *= 4;
    }
  }
}

/**
 * The catalog record once a wal-record execution is over (`ended`, its final
 * state). Recorded → the record (SegmentConflictError when it names other
 * bytes). Otherwise as waitStored decides at its end: QuarantinedError with
 * the quarantine record's reason, the failure note's IngestRetryableError, or,
 * lacking both, an IngestRetryableError naming the execution's error. A
 * SUCCEEDED execution whose record a read does not yet show is left to
 * waitStored (undefined).
 */
export async function recordAfter(
  ended: ExecutionState,
  catalog: Catalog,
  databaseId: string,
  name: string,
  sha256: string,
  since: Date,
  note: FailureNoteSource,
): Promise<WalRecord | undefined> {
  const rec = await catalog.getWal(databaseId, name);
  if (rec) {
    if (rec.sha256 !== sha256) throw conflict(name, databaseId, rec.sha256, sha256);
    return rec;
  }
  if (ended.status === "SUCCEEDED") return undefined;
  const settled = await settledElsewhere(catalog, databaseId, name, sha256, since, note);
  if (settled) return settled;
  throw new IngestRetryableError(
    `${name} was uploaded but not yet stored: the wal-record execution ended ${ended.status} ` +
      `(${safeText(ended.error ?? "no error name", 80)}${ended.cause ? `: ${safeText(ended.cause, 200)}` : ""}); nothing was recorded and pushing the file again will record it`,
  );
}

/**
 * Polls the record until it is durable at `level` (every 50 ms, growing to
 * 500 ms). Past `deadline` (monotonic): TimeoutError naming the regions that have not
 * confirmed (and why, when a region's copy is recorded as failed).
 */
export async function waitReplicated(
  catalog: Catalog,
  first: WalRecord,
  level: WaitLevel,
  replicaRegions: readonly string[],
  primaryRegion: string,
  deadline: Deadline,
): Promise<WalRecord> {
  let rec = first;
  let delay = 50;
  for (;;) {
    const d = durableAt(rec, level, replicaRegions);
    if (d.ok) return rec;
    if (deadline.passed()) {
      const have = [primaryRegion, ...replicaRegions.filter((r) => !d.missing.includes(r))];
      const why = d.missing
        .map((r) => (rec.replicas[r]?.status === "failed" ? `${r} (copy failed: ${rec.replicas[r]!.error ?? "unknown"})` : r))
        .join(", ");
      const wanted = level === "replicated" ? "every region" : `${(level as { quorum: number }).quorum} regions`;
      throw new TimeoutError(
        `${rec.name} is stored in ${have.join(", ")} but not yet in ${why}, short of ${wanted}; it is recorded and will still replicate ` +
          `(walvault status shows each region's lag)`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, deadline.left())));
    delay = Math.min(delay * 1.5, 500);
    rec = (await catalog.getWal(rec.databaseId, rec.name)) ?? rec;
  }
}

/**
 * Segments wal-fetch prefetched during a recovery that has ended are of no
 * further use (up to 8 x 16 MB in pg_wal): the first archive_command after
 * recovery removes them. Never while recovery or standby mode is on.
 */
export function clearLeftoverPrefetch(dataDir: string): void {
  const dir = join(dataDir, "pg_wal", PREFETCH_DIR);
  if (!existsSync(dir)) return;
  if (existsSync(join(dataDir, "recovery.signal")) || existsSync(join(dataDir, "standby.signal"))) return;
  rmSync(dir, { recursive: true, force: true });
}

/** Where the ingest workflow leaves its note when it ends without storing or quarantining an upload. */
export interface FailureNoteSource {
  store: ObjectStore;
  /** The incoming bucket. */
  bucket: string;
  /** The upload's incoming key (the note is failed/<key>.json). */
  key: string;
}

/**
 * The ingest workflow's note for an upload made at `since`, as an
 * IngestRetryableError, or undefined: no note, an older one (a previous
 * attempt's: its execution started before this upload, by the note's
 * executionStartedAt, to the millisecond; a note without it is judged by its
 * S3 time, whole seconds, where the same second counts: at worst one needless
 * retry), or unreadable (best effort, like the note itself: the wait then
 * ends in its timeout).
 */
export async function readFailureNote(
  src: FailureNoteSource,
  name: string,
  since: Date,
  retry = "PostgreSQL will retry it",
): Promise<IngestRetryableError | undefined> {
  let obj;
  try {
    obj = await src.store.get(src.bucket, failedMarkerKey(src.key));
  } catch {
    return undefined;
  }
  if (!obj) return undefined;
  let note: { state?: unknown; error?: { Error?: unknown; Cause?: unknown }; executionStartedAt?: unknown };
  try {
    note = JSON.parse(obj.body.toString("utf8")) as typeof note;
  } catch {
    note = {};
  }
  // The execution this upload started began after the upload did; a previous attempt's, before.
  const startedAt = typeof note.executionStartedAt === "string" ? Date.parse(note.executionStartedAt) : Number.NaN;
  if (!Number.isNaN(startedAt) ? startedAt < since.getTime() : obj.lastModified !== undefined && obj.lastModified.getTime() < Math.floor(since.getTime() / 1000) * 1000) {
    return undefined;
  }
  const error = typeof note.error?.Error === "string" ? note.error.Error : "an unknown error";
  const state = typeof note.state === "string" ? note.state : "an ingest step";
  const transient = (TRANSIENT_WORKFLOW_ERRORS as readonly string[]).includes(error);
  const cause = typeof note.error?.Cause === "string" && !transient ? `: ${lambdaCauseMessage(note.error.Cause)}` : "";
  return new IngestRetryableError(
    `${name} was uploaded but not yet stored: the control plane failed ${transient ? "transiently" : "unexpectedly"} ` +
      `(${safeText(error, 80)} in ${safeText(state, 40)}${safeText(cause, 300)}); nothing was quarantined and ${retry}`,
  );
}

/**
 * What a push whose record is not (yet) in the catalog came to, read from
 * where ingest leaves it: a quarantine record since `since` →
 * QuarantinedError with its reason; a failure note → its
 * IngestRetryableError (or the record, had it landed meanwhile: a step that
 * did its work, then timed out); neither → undefined (still running).
 */
async function settledElsewhere(
  catalog: Catalog,
  databaseId: string,
  name: string,
  sha256: string,
  since: Date,
  note: FailureNoteSource | undefined,
): Promise<WalRecord | undefined> {
  const [quarantined, failed] = await Promise.all([catalog.listQuarantine(databaseId, name), note ? readFailureNote(note, name, since) : undefined]);
  const last = quarantined.filter((r) => r.at >= since.toISOString()).at(-1);
  if (last) throw new QuarantinedError(`${name} was rejected by ingest and quarantined: ${last.reason}`);
  if (!failed) return undefined;
  const rec = await catalog.getWal(databaseId, name);
  if (rec?.sha256 === sha256) return rec;
  throw failed;
}

/**
 * Polls the catalog until the record appears (or a quarantine record for this
 * upload does, or, given `note`, the workflow's note that it failed without
 * storing or quarantining: IngestRetryableError, exit 4). Every 10 ms at first, growing by a quarter each poll to 100 ms,
 * and to 500 ms after 10 s: ingest usually takes tens to a few hundred ms, and a
 * steep backoff would notice it late. With `expectedMs` (recent ingest time)
 * the first poll comes at 80% of it: fewer polls, each costing a catalog read.
 */
export async function waitStored(
  catalog: Catalog,
  databaseId: string,
  name: string,
  sha256: string,
  since: Date,
  timeoutMs: number,
  expectedMs?: number,
  note?: FailureNoteSource,
): Promise<WalRecord> {
  const started = performance.now();
  const deadline = deadlineIn(timeoutMs);
  let delay = 10;
  let polls = 0;
  if (expectedMs !== undefined && expectedMs > 20) {
    await new Promise((r) => setTimeout(r, Math.min(expectedMs * 0.8, 2_000)));
  }
  for (;;) {
    const rec = await catalog.getWal(databaseId, name);
    if (rec) {
      if (rec.sha256 !== sha256) throw conflict(name, databaseId, rec.sha256, sha256);
      return rec;
    }
    if (++polls % 4 === 0 || deadline.left() <= delay) {
      const settled = await settledElsewhere(catalog, databaseId, name, sha256, since, note);
      if (settled) return settled;
    }
    if (deadline.passed()) {
      throw new TimeoutError(
        `${name} was uploaded but the catalog did not record it within ${Math.round(timeoutMs / 1000)} s; ` +
          `PostgreSQL will retry (the upload is idempotent) — check the ingest workflow`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 1.25, performance.now() - started > 10_000 ? 500 : 100);
  }
}
