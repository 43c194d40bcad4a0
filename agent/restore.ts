/**
 * `walvault restore --to DIR [--target-time|--target-lsn|--target-name|--latest]`:
 * point-in-time restore from the vault (docs/snapshots.md, "Restore").
 *
 * 1. Plan first (loadPlanInput + core/restore-plan.ts): every typed planning
 *    error (no snapshot before the target, a WAL gap, an unknown timeline...)
 *    comes before a single chunk is downloaded. `--plan-only` stops here
 *    (formatPlan / planToJson).
 * 2. The target directory: refused when it is not empty unless `force`; a
 *    mount point is refused (the restore could not be renamed into place);
 *    with `force`, a directory a running PostgreSQL owns (postmaster.pid with
 *    a live pid) is still refused.
 * 3. The manifest comes from the vault (the catalog record's manifestKey); its
 *    SHA-256 must equal the record's manifestSha256, and it must agree with
 *    the record the plan was made from.
 * 4. Everything is built in a sibling `<DIR>.walvault-partial-<pid>` and
 *    renamed into place at the very end: a failed or interrupted restore never
 *    leaves a directory that looks complete. On failure the partial directory
 *    is removed; a later restore removes partial directories of processes
 *    that no longer exist. With `force` the old DIR is moved aside, the
 *    restore renamed in, then the old one deleted (if the second rename fails
 *    the old one is put back).
 * 5. The manifest is read a page at a time (store/manifest-read.ts; either
 *    format). When the header counts symlinks, a first pass validates every
 *    page and refuses symlinks out of the tree before any download; with
 *    none (nothing to refuse) the totals are the header's and the writing
 *    pass validates each page as it reads it. Then, batch by batch of at
 *    most a page's chunk references in tree order,
 *    core/snapshot.ts entryLayout gives the operations: mkdir, then files
 *    (chunks located in the catalog window by window and read from where
 *    they are: coalesced ranged GETs of packs, or a GET of a chunk's own
 *    object (older snapshots, or a chunk the catalog does not know), up to
 *    `parallel` reads in flight (see ChunkSource); each chunk decoded and its
 *    SHA-256 compared with its name, written at its offset with positioned writes;
 *    the size on disk must be the manifest's once the file is complete, and
 *    with `fileHashes` the whole file's SHA-256 too; then its recorded mtime
 *    and mode are set on its descriptor), then symlinks (a file cut between
 *    batches stays open), then directories' and symlinks' mtimes and modes
 *    deepest first (reverse tree order). A missing, undecodable or
 *    corrupt chunk stops the restore with a ChecksumMismatchError naming the
 *    chunk, the file and where it was read (pack and bytes, or object key).
 *    Memory is bounded: PLANNED_STORED_BYTES of chunks read ahead,
 *    IN_FLIGHT_BYTES of chunks being decoded and written, plus a small cache
 *    (CHUNK_CACHE_BYTES) of chunks the snapshot references more than once
 *    (runs of zero pages in relation files), never a whole file, and chunk
 *    locations for one window at a time.
 * 6. PostgreSQL: recovery.signal; the recovery settings
 *    (core/recovery.ts: restore_command = walvault wal-fetch, the planned
 *    target, a numeric timeline, promote) appended to postgresql.auto.conf;
 *    the restore marker (agent/restore-marker.ts) so the restored server can
 *    never archive into the source database; standby.signal and
 *    postmaster.pid removed; tablespace_map removed (tablespaces are restored
 *    in place under pg_tblspc/<oid>/: with the map PostgreSQL would replace
 *    those directories by links to the ORIGINAL locations); directory mode
 *    0700. WAL is not laid out: restore_command fetches (and prefetches) it.
 * 7. Generic: the snapshot, then every planned WAL segment of every stream
 *    (downloadVerified: SHA-256 against the catalog) written into that
 *    stream's WAL directory (the manifest's `generic.streams[].dir`, else the
 *    directory of its `lastSegment`; relative to the data directory, which
 *    is the snapshot's root), under the segment's file name. A file of that
 *    name already in the snapshot (the segment that was still open when the
 *    snapshot was taken) is replaced by the closed, archived one. The
 *    database replays what it finds when it starts.
 *
 * Generic WAL in the catalog (what `walvault watch` writes; core/generic-wal.ts):
 * a segment's name is `<stream>/<file>`, its position `startLsn` as decimal
 * text, its close time `closedAt`. Older records named by file alone take
 * their stream from the vault key (`db/<id>/wal/<stream>/<file>`) and their
 * position from the last run of digits in the name (genericSegno). A
 * snapshot record's `streams[stream]` is a decimal position (or, in older
 * records, the path of the last segment it includes); a record that cannot be
 * read that way is planned from its manifest. Either way the chosen
 * snapshot's manifest (`lastSegno`) has the last word: if it disagrees, that
 * snapshot is planned again from the manifest (settlePlan).
 *
 * Durability (`durable`, default on): each file is fdatasync'ed before it
 * counts, so are the recovery files written in step 6; every restored
 * directory is fsync'ed before the rename, the target's parent after it.
 * Files are never read back (see writeFiles: a read back comes from the page
 * cache, so it never proved more than that; the bytes reach the disk by
 * fdatasync). Large files' chunks mostly bypass the page cache: the decode
 * workers write them in 1 MiB runs with O_DIRECT (agent/direct-runs.ts,
 * DIRECT_MIN_BYTES), and the same fdatasync covers them.
 */
import { createHash, type Hash } from "node:crypto";
import { constants as fsc } from "node:fs";
import {
  appendFile,
  chmod,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
  type FileHandle,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import type { AgentConfig } from "../core/config.js";
import {
  ChecksumMismatchError,
  InvalidInputError,
  ManifestInvalidError,
  NotFoundError,
  UnsafePathError,
} from "../core/errors.js";
import { recoverySettings, renderRecoveryConf } from "../core/recovery.js";
import { buildPlanInput, genericSegno, restorePointsOf, streamOfRecord, type CatalogState } from "../core/restore-input.js";
import {
  planRestore,
  type DatabaseKind,
  type RestorePlan,
  type RestorePlanInput,
  type RestoreTarget,
} from "../core/restore-plan.js";
import type { SnapshotRecord, WalRecord } from "../core/schemas.js";
import type { SnapshotHeader } from "../core/manifest-header.js";
import {
  entryFinish,
  entryLayout,
  namesPacks,
  pathProblem,
  resolveUnder,
  RESTORE_FILE_MODE,
  streamDirOf,
  toSnapshotInfo,
  type FileEntry,
  type RestoreChunk,
  type RestoreOperation,
} from "../core/snapshot.js";
import { MAX_RESTORE_POINT_NAME_BYTES, RestorePointScanner } from "../core/restore-point.js";
import { parseTime, utimeSeconds } from "../core/time.js";
import { formatLsn, lsnToSegno, parseLsn } from "../core/wal.js";
import { isGenericWalName } from "../core/generic-wal.js";
import { WALVAULT_BIN } from "./paths.js";
import { ChunkReads, decodeChunk, decodeChunkInto, decodeChunksInto, locateChunks, sharedBodies, type ChunkLocation, type WantedChunk } from "./chunk-reader.js";
import type { BufferPool } from "../core/buffer-pool.js";
import { inThreadDecoder, openDecoder, writeError, type ChunkDecoder } from "./decode-pool.js";
import { RUN_BYTES } from "./direct-runs.js";
import { pidAlive } from "./pid.js";
import { loadPlanningState, mapLimit } from "../store/catalog-state.js";
import type { OpenedManifest } from "../store/manifest-pages.js";
import type { PageEntry } from "../core/manifest-pages.js";
import { DirsAndLinks, entryBatches, openVaultManifest, treeOrdered } from "../store/manifest-read.js";
import { KEPT_PACK_INDEXES, PackIndexCache } from "../store/pack-index.js";
import type { AgentClients } from "./clients.js";
import { RESTORE_MARKER } from "./restore-marker.js";
import { downloadVerified } from "./wal-fetch.js";
import { formatBytes, type RestoreFigures } from "./progress.js";

/** Decoded chunks kept for later references to the same chunk (bytes). */
export const CHUNK_CACHE_BYTES = 64 * 1024 * 1024;
/**
 * Chunks downloaded, and chunks (files) being written, at once by default.
 * Object stores answer each GET after tens of milliseconds, so with 128 KiB
 * blocks eight at a time cap a restore at a few tens of MB/s; on the local
 * stack 32 was as fast as 8 or slightly faster (docs/decisions.md,
 * "Snapshot speed"). 64 since stop 43: a small file is a chain of waits
 * (create, a worker's write, fstat, fdatasync, close), so the ~600 small
 * files before pgbench's tables were written ~32 at a time at ~2,000 a
 * second while the decode workers idled; A/B at scale 100, four rounds:
 * 2.47/2.76/3.54/3.34 s at 64 against 2.55/3.2/3.9/4.04 at 32.
 */
export const DEFAULT_RESTORE_PARALLEL = 64;
/**
 * Decode workers of a restore unless WALVAULT_DECODE_THREADS says otherwise
 * (agent/decode-pool.ts): one worker decodes, verifies and writes each chunk
 * used once (ChunkSource.get `into`), the main thread reads and dispatches.
 * Measured at scale 20 (docs/packs.md, "Restore speed"): 1 worker 2.7 s of
 * CPU and 248 MB, 2 workers 2.6 s and 305 MB and no faster on 2 cores. At
 * scale 100 (stop 26), where each worker's writes into the page cache cost
 * more system time than its decode and hash, 2 workers restore in 8.2–9.8 s
 * instead of 12.0 (docs/decisions.md, "Two decode workers").
 */
export const RESTORE_DECODE_THREADS = 2;
/**
 * Raw bytes of the chunks being downloaded, decoded and written at once (at
 * least one chunk). 32 MiB since stop 43 (64 before): with a run of chunks
 * asked of a worker at once (ChunkSource.getRun) 64 writers could claim
 * 64 MiB of runs, whose stored bytes wait at the workers; A/B at scale 100,
 * four rounds: peak RSS 233-235 MB at 32 MiB and 225-240 at 16 against
 * 241-243 at 64 (the limit is 256), no slower (medians 3.13 and 2.96 s
 * against 3.19).
 */
export const IN_FLIGHT_BYTES = 32 * 1024 * 1024;
/** WAL segments in memory at once while laying out a generic restore (bytes, at least one segment). */
const WAL_BYTES_IN_FLIGHT = 256 * 1024 * 1024;
/** Symlinks whose recorded times are set at once at the end of a restore, and how many are held for it at most (files get theirs as each is completed). */
const FINISH_PARALLEL = 16;
const FINISH_BATCH = 1024;

/** `replicaRegion`: plan and read from that replica region's vault (agent/regions.ts regionalConfig). */
export type RestoreConfig = AgentConfig & { path?: string; replicaRegion?: string };

// ---------------------------------------------------------------------------
// Planning

/** One generic WAL stream's plan (all for the same snapshot). */
export interface StreamPlan {
  stream: string;
  plan: RestorePlan;
}

/** A plan for one database, with what the executor needs to find its pieces. */
export interface PlannedRestore {
  databaseId: string;
  kind: DatabaseKind;
  segmentSize: number;
  /** PostgreSQL: the plan. Generic: the first stream's plan (the others use the same snapshot). */
  plan: RestorePlan;
  /** Generic: one plan per WAL stream, `plan` first. PostgreSQL: empty. */
  streams: StreamPlan[];
  /** The catalog record of the chosen snapshot (manifest key and checksum). */
  snapshotRecord: SnapshotRecord;
}

export { genericSegno, streamOfRecord };

/** The catalog state planning to `target` needs (store/catalog-state.ts), with the CLI's hint for an unknown database. */
function loadState(clients: AgentClients, cfg: RestoreConfig, databaseId: string, target: RestoreTarget): Promise<CatalogState> {
  return loadPlanningState(clients.catalog, clients.store, cfg.vaultBucket, databaseId, target, {
    unknownDatabaseHint: ": check --database (register it with 'walvault db add')",
    ...(cfg.replicaRegion ? { region: cfg.replicaRegion } : {}),
  });
}

function pickStream(state: CatalogState, stream: string | undefined): string | undefined {
  if (state.database.kind !== "generic") return undefined;
  if (stream !== undefined) {
    if (!state.streams.includes(stream)) {
      throw new InvalidInputError(`database ${state.database.databaseId} has no WAL stream '${stream}' (its snapshots name ${state.streams.join(", ") || "none"})`);
    }
    return stream;
  }
  if (state.streams.length > 1) {
    throw new InvalidInputError(
      `database ${state.database.databaseId} has ${state.streams.length} WAL streams (${state.streams.join(", ")}): name the one to plan`,
    );
  }
  return state.streams[0];
}

/**
 * What the catalog knows, shaped for core/restore-plan.ts: snapshots (from
 * the records' fields), WAL segments, parsed timeline histories (each history
 * file fetched and verified through downloadVerified) and the segment size.
 * Generic databases with several WAL streams plan one stream at a time
 * (`options.stream`).
 */
export async function loadPlanInput(
  clients: AgentClients,
  cfg: RestoreConfig,
  databaseId: string,
  target: RestoreTarget,
  options: { stream?: string } = {},
): Promise<RestorePlanInput> {
  const state = await loadState(clients, cfg, databaseId, target);
  return buildPlanInput(state, target, pickStream(state, options.stream));
}

function planFromState(state: CatalogState, target: RestoreTarget): PlannedRestore {
  const db = state.database;
  const recordOf = (id: string): SnapshotRecord => state.records.find((r) => r.snapshotId === id)!;
  const base = { databaseId: db.databaseId, kind: db.kind, segmentSize: db.walSegmentSize };
  if (db.kind === "postgres" || state.streams.length <= 1) {
    const stream = db.kind === "generic" ? state.streams[0] : undefined;
    const plan = planRestore(buildPlanInput(state, target, stream));
    return { ...base, plan, streams: stream === undefined ? [] : [{ stream, plan }], snapshotRecord: recordOf(plan.snapshot.id) };
  }
  // Several generic streams: one snapshot for all of them. The first stream picks the newest
  // snapshot that works for it; every other stream must reach the target from that same snapshot,
  // else the next older one is tried.
  if (target.kind === "lsn" || target.kind === "name") {
    throw new InvalidInputError(
      `database ${db.databaseId} has ${state.streams.length} WAL streams (${state.streams.join(", ")}): a segment-position or restore-point target would mean a different point in each; use a time, --latest or a snapshot`,
    );
  }
  const [first, ...rest] = state.streams as [string, ...string[]];
  const excluded = new Set<string>();
  let firstError: unknown;
  const warnings: string[] = [];
  for (;;) {
    const input = buildPlanInput(state, target, first);
    input.snapshots = input.snapshots.filter((s) => !excluded.has(s.id));
    let plan: RestorePlan;
    try {
      plan = planRestore(input);
    } catch (e) {
      throw firstError ?? e;
    }
    try {
      const streams: StreamPlan[] = [{ stream: first, plan }];
      for (const s of rest) streams.push({ stream: s, plan: planRestore(buildPlanInput(state, target, s, plan.snapshot.id)) });
      plan.warnings.unshift(...warnings);
      return { ...base, plan, streams, snapshotRecord: recordOf(plan.snapshot.id) };
    } catch (e) {
      firstError ??= e;
      warnings.push(`snapshot ${plan.snapshot.id} cannot be used: ${(e as Error).message}`);
      excluded.add(plan.snapshot.id);
    }
  }
}

/** Why a plan made from catalog records does not fit the snapshot's manifest, or undefined when it does. */
function disagreement(planned: PlannedRestore, manifest: SnapshotHeader): string | undefined {
  const s = planned.plan.snapshot;
  if (manifest.kind === "postgres") {
    const info = toSnapshotInfo(manifest);
    if (info.timeline === s.timeline && info.startLsn === s.startLsn && info.stopLsn === s.stopLsn) return undefined;
    return (
      `the catalog records timeline ${s.timeline}, ${formatLsn(s.startLsn)}..${formatLsn(s.stopLsn)}, ` +
      `its manifest says timeline ${info.timeline}, ${formatLsn(info.startLsn)}..${formatLsn(info.stopLsn)}`
    );
  }
  for (const sp of planned.streams) {
    const m = manifest.generic.streams.find((x) => x.id === sp.stream);
    if (!m) return `its manifest has no WAL stream '${sp.stream}'`;
    if (BigInt(m.lastSegno) !== sp.plan.snapshot.stopLsn) {
      return `stream '${sp.stream}': the catalog record gives position ${sp.plan.snapshot.stopLsn}, its manifest ${m.lastSegno}`;
    }
  }
  return undefined;
}

/** How settlePlan reads the chosen snapshot's manifest. */
interface SettleOptions {
  /** Read the manifest and check it against the record (a restore always; a plan only for a generic database). */
  verify: boolean;
  /** The caller walks the manifest's pages next (restore): page 0 is read with the header. */
  walk?: boolean;
}

/**
 * Plans, then (with `verify`) reads the chosen snapshot's manifest and checks
 * that it agrees with the record the plan came from. For a generic database
 * the catalog record names each stream's last segment, whose position is
 * derived (genericSegno); the manifest's lastSegno is authoritative, so on a
 * difference that snapshot is planned again from its manifest. For
 * PostgreSQL a difference is an error.
 */
async function settlePlan(
  clients: AgentClients,
  cfg: RestoreConfig,
  state: CatalogState,
  target: RestoreTarget,
  { verify, walk = false }: SettleOptions,
): Promise<{ planned: PlannedRestore; manifest: OpenedManifest | undefined }> {
  for (;;) {
    const planned = planFromState(state, target);
    if (!verify) return { planned, manifest: undefined };
    const record = planned.snapshotRecord;
    const known = state.manifests.get(record.snapshotId);
    // The header only (store/manifest-read.ts); the files are read page by page by whoever restores them.
    const manifest = await openVaultManifest(clients.store, cfg.vaultBucket, record, state.database, { readFirstPage: walk });
    const header = manifest.header;
    const why = disagreement(planned, header);
    if (why === undefined) return { planned, manifest };
    if (header.kind === "postgres" || known !== undefined) {
      throw new ManifestInvalidError(`snapshot ${record.snapshotId}: ${why}`, { field: header.kind });
    }
    state.manifests.set(record.snapshotId, header);
  }
}

/**
 * Plans a restore from the catalog: loadPlanInput + planRestore (typed
 * errors, no chunk downloaded). For a generic database the chosen snapshot's
 * manifest is read to confirm each stream's position (see settlePlan).
 */
export async function planFor(clients: AgentClients, cfg: RestoreConfig, databaseId: string, target: RestoreTarget): Promise<PlannedRestore> {
  const state = await loadState(clients, cfg, databaseId, target);
  return (await settlePlan(clients, cfg, state, target, { verify: state.database.kind === "generic" })).planned;
}

// ---------------------------------------------------------------------------
// Plan output

const pos = (kind: DatabaseKind, v: bigint): string => (kind === "postgres" ? formatLsn(v) : v.toString());

function describeTarget(plan: RestorePlan): string {
  const r = plan.recoveryTarget;
  if (!r) return plan.endLsn === undefined ? "the snapshot alone" : `through segment ${plan.endLsn}`;
  if (r.recovery_target === "immediate") return `the snapshot's consistent point (timeline ${r.recovery_target_timeline})`;
  if (r.recovery_target_time) return `time ${r.recovery_target_time} on timeline ${r.recovery_target_timeline}`;
  if (r.recovery_target_lsn) return `LSN ${r.recovery_target_lsn} on timeline ${r.recovery_target_timeline}`;
  if (r.recovery_target_name) return `restore point '${r.recovery_target_name}' on timeline ${r.recovery_target_timeline}`;
  return `the end of the archive on timeline ${r.recovery_target_timeline}`;
}

function walLine(kind: DatabaseKind, plan: RestorePlan, segmentSize: number): string {
  if (plan.wal.length === 0) return "none";
  const first = plan.wal[0]!.name;
  const last = plan.wal.at(-1)!.name;
  const size = kind === "postgres" ? ` (${formatBytes(plan.wal.length * segmentSize)})` : "";
  return `${plan.wal.length} segment${plan.wal.length === 1 ? "" : "s"}, ${first}${plan.wal.length > 1 ? ` .. ${last}` : ""}${size}`;
}

/** The plan for people (`restore --plan-only`). */
export function formatPlan(p: PlannedRestore): string {
  const { plan, kind } = p;
  const s = plan.snapshot;
  const t = p.snapshotRecord.totals;
  const lines = [
    `restore plan for database ${p.databaseId} (${kind})`,
    `  snapshot   ${s.id}  finished ${s.finishedAt.toISOString()}` +
      (kind === "postgres" ? `, timeline ${s.timeline}, consistent at ${formatLsn(s.stopLsn)}` : `, through segment ${s.stopLsn}`),
    `             ${t.files} files, ${(t.logicalBytes / 1e6).toFixed(1)} MB (${(t.storedBytes / 1e6).toFixed(1)} MB stored)`,
    `  target     ${describeTarget(plan)}`,
  ];
  if (kind === "postgres") {
    lines.push(`  timelines  ${plan.timelinePath.join(" -> ")}`);
    lines.push(`  WAL        ${walLine(kind, plan, p.segmentSize)}, fetched by restore_command during recovery`);
    if (plan.endLsn !== undefined) lines.push(`  replays to ${formatLsn(plan.endLsn)} at most`);
    for (const [k, v] of Object.entries(plan.recoveryTarget ?? {})) lines.push(`  ${k} = '${v}'`);
  } else {
    for (const sp of p.streams) lines.push(`  WAL ${sp.stream.padEnd(7)} ${walLine(kind, sp.plan, p.segmentSize)}`);
  }
  for (const w of [...plan.warnings, ...p.streams.slice(1).flatMap((sp) => sp.plan.warnings.map((x) => `${sp.stream}: ${x}`))]) {
    lines.push(`  warning: ${w}`);
  }
  return lines.join("\n");
}

/** JSON-safe form of one plan: LSNs as PostgreSQL prints them, generic positions and segment numbers as decimal text. */
export function restorePlanToJson(kind: DatabaseKind, plan: RestorePlan): Record<string, unknown> {
  const s = plan.snapshot;
  return {
    snapshot: {
      id: s.id,
      timeline: s.timeline,
      startLsn: pos(kind, s.startLsn),
      stopLsn: pos(kind, s.stopLsn),
      startedAt: s.startedAt.toISOString(),
      finishedAt: s.finishedAt.toISOString(),
    },
    targetTimeline: plan.targetTimeline,
    timelinePath: plan.timelinePath,
    wal: plan.wal.map((w) => ({ timeline: w.timeline, segno: w.segno.toString(), name: w.name })),
    recoveryTarget: plan.recoveryTarget ?? null,
    endLsn: plan.endLsn === undefined ? null : pos(kind, plan.endLsn),
    warnings: plan.warnings,
  };
}

/** The plan for `restore --plan-only --json`. */
export function planToJson(p: PlannedRestore): Record<string, unknown> {
  const r = p.snapshotRecord;
  return {
    databaseId: p.databaseId,
    kind: p.kind,
    walSegmentSize: p.segmentSize,
    ...restorePlanToJson(p.kind, p.plan),
    manifestKey: r.manifestKey,
    totals: r.totals,
    ...(p.kind === "generic" ? { streams: p.streams.map((sp) => ({ stream: sp.stream, ...restorePlanToJson(p.kind, sp.plan) })) } : {}),
  };
}

/**
 * A RestoreTarget from CLI flags. At most one of time / lsn / name /
 * snapshot / latest (none: latest). `lsn` is "X/Y" (PostgreSQL) or a decimal
 * segment position (generic). `timeline` is a number or "latest".
 */
export function targetFromFlags(flags: {
  targetTime?: string | undefined;
  targetLsn?: string | undefined;
  targetName?: string | undefined;
  snapshot?: string | undefined;
  latest?: boolean | undefined;
  timeline?: string | undefined;
}): RestoreTarget {
  const given = [
    flags.targetTime !== undefined && "--target-time",
    flags.targetLsn !== undefined && "--target-lsn",
    flags.targetName !== undefined && "--target-name",
    flags.snapshot !== undefined && "--snapshot",
    flags.latest === true && "--latest",
  ].filter((x): x is string => typeof x === "string");
  if (given.length > 1) throw new InvalidInputError(`give one restore target, not ${given.join(" and ")}`);
  let timeline: RestoreTarget["timeline"];
  if (flags.timeline !== undefined) {
    if (flags.timeline === "latest") timeline = "latest";
    else if (/^\d{1,10}$/.test(flags.timeline) && Number(flags.timeline) >= 1) timeline = Number(flags.timeline);
    else throw new InvalidInputError(`--timeline must be a timeline number or 'latest', not '${flags.timeline}'`);
  }
  const tl = timeline === undefined ? {} : { timeline };
  if (flags.targetTime !== undefined) {
    const t = parseTime(flags.targetTime, "--target-time");
    return { kind: "time", time: t.date, ...(t.subMsNanos === 0 ? {} : { subMsNanos: t.subMsNanos }), ...tl };
  }
  if (flags.targetLsn !== undefined) {
    const lsn = /^\d{1,20}$/.test(flags.targetLsn) ? BigInt(flags.targetLsn) : parseLsn(flags.targetLsn);
    return { kind: "lsn", lsn, ...tl };
  }
  if (flags.targetName !== undefined) return { kind: "name", name: flags.targetName, ...tl };
  if (flags.snapshot !== undefined) return { kind: "snapshot", id: flags.snapshot, ...tl };
  return { kind: "latest", ...tl };
}

// ---------------------------------------------------------------------------
// Restore

/** What a restore has done so far (onProgress): the figures its status line shows (agent/progress.ts). */
export type RestoreProgress = RestoreFigures;

export interface RestoreOptions {
  databaseId: string;
  target: RestoreTarget;
  /** The directory to restore into (created; must be empty unless force). */
  toDir: string;
  /** Replace a non-empty toDir (only once the restore is complete). */
  force?: boolean;
  /** Chunk reads in flight and chunks written at once (default DEFAULT_RESTORE_PARALLEL; IN_FLIGHT_BYTES of them at most). */
  parallel?: number;
  /** Symlinks that point out of the restored tree: refused (default) or created as recorded. */
  outsideSymlinks?: "refuse" | "keep";
  /** Sync each restored file to disk before it counts as done (default true). */
  durable?: boolean;
  /**
   * Also hash each whole file as it is written and compare with the manifest's
   * SHA-256, where the manifest records one (default false: every chunk is
   * already verified against its name, and the manifest's chunks tile each
   * file; see writeFiles).
   */
  fileHashes?: boolean;
  onProgress?: (p: RestoreProgress) => void;
  signal?: AbortSignal;
}

export interface RestoreResult {
  databaseId: string;
  kind: DatabaseKind;
  toDir: string;
  plan: PlannedRestore;
  snapshotId: string;
  files: number;
  directories: number;
  symlinks: number;
  /** Raw bytes written: snapshot files plus WAL segments laid out. */
  bytes: number;
  fileBytes: number;
  walSegments: number;
  walBytes: number;
  /** GET requests for chunks: one per chunk object, one per coalesced ranged read of a pack (repeated chunks are fetched once while they fit the cache). */
  chunksFetched: number;
  /** Encoded bytes downloaded for chunks and WAL. */
  downloadedBytes: number;
  /** Raw bytes of snapshot files written with direct I/O, bypassing the page cache (agent/direct-runs.ts). */
  directBytes: number;
  seconds: number;
  /** Raw MB (10^6 bytes) written per second of the whole restore, planning included. */
  mbPerSecond: number;
  warnings: string[];
}

/** One line for the end of a restore. */
export function formatRestoreResult(r: RestoreResult): string {
  const wal = r.walSegments > 0 ? ` + ${r.walSegments} WAL segment${r.walSegments === 1 ? "" : "s"}` : "";
  return (
    `restored snapshot ${r.snapshotId} of ${r.databaseId} into ${r.toDir}: ${r.files} files${wal}, ` +
    `${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s (${r.mbPerSecond.toFixed(1)} MB/s)`
  );
}

const PARTIAL_TAG = ".walvault-partial-";
const OLD_TAG = ".walvault-old-";

interface TargetState {
  /** toDir, symlinks in its parent path resolved. */
  dir: string;
  existed: boolean;
  nonEmpty: boolean;
  mode: number | undefined;
}

/** Checks toDir before anything is downloaded; one clear line for every refusal. */
async function inspectTarget(toDir: string, force: boolean): Promise<TargetState> {
  let dir = resolve(toDir);
  let st;
  try {
    st = await lstat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new InvalidInputError(`cannot inspect restore target ${dir}: ${(e as Error).message}`);
  }
  if (st?.isSymbolicLink()) {
    dir = await realpath(dir).catch(() => {
      throw new InvalidInputError(`restore target ${dir} is a symlink to nothing`);
    });
    st = await stat(dir);
  }
  if (st === undefined) {
    // Resolve the parent's symlinks so the partial directory lands on the same filesystem.
    const parent = await realpath(dirname(dir)).catch(() => undefined);
    return { dir: parent === undefined ? dir : join(parent, basename(dir)), existed: false, nonEmpty: false, mode: undefined };
  }
  if (!st.isDirectory()) throw new InvalidInputError(`restore target ${dir} exists and is not a directory`);
  if (dir === "/") throw new InvalidInputError("restore target must not be the root directory");
  const entries = await readdir(dir);
  if (entries.length > 0 && !force) {
    throw new InvalidInputError(
      `restore target ${dir} is not empty (${entries.length} entr${entries.length === 1 ? "y" : "ies"}): restore into an empty or new directory, or pass --force to replace it`,
    );
  }
  const parentSt = await stat(dirname(dir));
  if (parentSt.dev !== st.dev) {
    throw new InvalidInputError(
      `restore target ${dir} is a mount point: restore into a new directory inside it (e.g. ${join(dir, "data")}), so the finished restore can be renamed into place`,
    );
  }
  if (entries.includes("postmaster.pid")) {
    const pid = Number((await readFile(join(dir, "postmaster.pid"), "utf8").catch(() => "")).split("\n")[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
      throw new InvalidInputError(`restore target ${dir} belongs to a running PostgreSQL server (pid ${pid}): stop it first`);
    }
  }
  return { dir, existed: true, nonEmpty: entries.length > 0, mode: st.mode & 0o7777 };
}

/** Removes `<name>.walvault-partial-<pid>` siblings left by restores whose process is gone. */
async function removeStalePartials(dir: string): Promise<void> {
  const parent = dirname(dir);
  const prefix = `${basename(dir)}${PARTIAL_TAG}`;
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const pid = n.slice(prefix.length);
    if (/^\d+$/.test(pid) && Number(pid) !== process.pid && !pidAlive(Number(pid))) {
      await rm(join(parent, n), { recursive: true, force: true });
    }
  }
}

/**
 * Removes a restore's partial directory after a failure; returns why it could
 * not, or undefined. Recorded modes were applied before the WAL step, so a
 * directory may lack write permission for the user: a first failure makes
 * every directory writable and tries again.
 */
export async function removePartial(dir: string): Promise<string | undefined> {
  try {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  } catch {
    const writable = async (d: string): Promise<void> => {
      await chmod(d, 0o700).catch(() => undefined);
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await writable(join(d, e.name));
    };
    await writable(dir);
    try {
      await rm(dir, { recursive: true, force: true });
      return undefined;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    }
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new InvalidInputError("restore interrupted");
  }
}

/** Chunk references located and scheduled for reading at once, at most (one catalog lookup of up to this many hashes). */
export const PLAN_WINDOW_CHUNKS = 2048;
/** Stored bytes of one such window, at most (a single larger chunk still makes a window). */
export const PLAN_WINDOW_STORED_BYTES = 4 * 1024 * 1024;
/**
 * Stored bytes of chunks located and scheduled but not yet decoded: the next
 * window waits while this many are held (read ahead, or being read).
 */
export const PLANNED_STORED_BYTES = 8 * 1024 * 1024;
/** Bytes of chunk reads in flight at once (a single larger read still goes alone). */
export const READ_BYTES_IN_FLIGHT = 16 * 1024 * 1024;

/** A window's new chunks located, and their reads scheduled (by hash). */
type PlannedWindow = Promise<[Map<string, ChunkLocation>, Map<string, Promise<Buffer>>]>;

/**
 * A chunk located and its read scheduled (`window`: its window's, shared by
 * all its chunks: no promise is made per chunk until one is taken), with the
 * references planned against it not yet written.
 */
interface PlannedChunk {
  want: WantedChunk;
  window: PlannedWindow;
  refs: number;
}

/** The location and stored bytes of a planned chunk, once its window is located and its read is done. */
async function storedOf(entry: PlannedChunk): Promise<{ loc: ChunkLocation; bytes: Buffer }> {
  const [locs, reads] = await entry.window;
  const read = reads.get(entry.want.sha256);
  if (read === undefined) throw new Error(`chunk ${entry.want.sha256} of file ${JSON.stringify(entry.want.file)} was located but no read was scheduled for it`);
  return { loc: locs.get(entry.want.sha256)!, bytes: await read };
}

/**
 * Where the chunks come from (docs/packs.md, "Restore: coalesced ranged
 * reads"). A planner walks the chunk references in the order writeFiles
 * takes them, window by window (PLAN_WINDOW_CHUNKS references or
 * PLAN_WINDOW_STORED_BYTES): it locates the window's new chunks in the
 * catalog (agent/chunk-reader.ts: one getChunks call per window, batched by
 * the catalog) and schedules their reads: coalesced ranged GETs per pack,
 * one GET per chunk of its own, many in flight. It runs ahead of the writers
 * while fewer than PLANNED_STORED_BYTES are held, so reads overlap writes;
 * memory is bounded by that budget, never by the snapshot's chunk count.
 *
 * Decoded chunks are fetched once per restore while the cache allows: chunks
 * the snapshot references several times stay in memory (bounded by
 * CHUNK_CACHE_BYTES) until their last reference is written; concurrent
 * requests for a chunk share one decode, and a chunk referenced again in a
 * later window while its read is still held is not read twice.
 */
class ChunkSource {
  private readonly remaining = new Map<string, number>();
  private readonly cache = new Map<string, Buffer>();
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private cached = 0;
  private readonly reads: ChunkReads;
  /** Chunks with planned references not yet written. */
  private readonly live = new Map<string, PlannedChunk>();
  /** Planned references not yet taken, by position in the reference order (undefined: served by the cache). */
  private readonly bySeq = new Map<number, PlannedChunk | undefined>();
  private plannedThrough = 0;
  private held = 0;
  private failure: { error: unknown } | undefined;
  private stopped = false;
  private waiters: Array<() => void> = [];
  private planner: Promise<void> | undefined;

  constructor(
    private readonly clients: AgentClients,
    bucket: string,
    private readonly databaseId: string,
    private readonly ops: readonly RestoreOperation[],
    parallel: number,
    /** The restore's decode pool (agent/decode-pool.ts: opened once per restore, closed by it), or the in-thread decoder. */
    private readonly decoder: ChunkDecoder,
    /** The restore's pack indexes (a packed push's snapshot): its new chunks are located there first. */
    private readonly packs?: PackIndexCache,
    /** The restore's buffers for reads its decode workers take without a copy (none: each read its own, not shared). */
    bodies?: BufferPool,
    private readonly budget = CHUNK_CACHE_BYTES,
  ) {
    for (const op of ops) if (op.op === "writeFile") for (const c of op.chunks) this.remaining.set(c.sha256, (this.remaining.get(c.sha256) ?? 0) + 1);
    this.reads = new ChunkReads(clients.store, bucket, { parallel, bytesInFlight: READ_BYTES_IN_FLIGHT, ...(bodies === undefined ? {} : { sharedBodies: bodies }) });
  }

  /** Raw bytes the decode workers wrote with direct I/O (agent/direct-runs.ts). */
  directBytes = 0;

  /** GET requests for chunks (a coalesced ranged read of a pack counts once). */
  get fetched(): number {
    return this.reads.fetched;
  }

  /** Stored bytes those requests returned. */
  get downloaded(): number {
    return this.reads.downloaded;
  }

  /** Starts planning and reading (once; writeFiles starts a source nobody started ahead). */
  start(): void {
    if (this.planner !== undefined) return;
    this.planner = this.plan().catch((e: unknown) => {
      this.failure ??= { error: e };
      this.wake();
    });
  }

  /** Plans and reads nothing more; waits for the planner and the reads in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.planner;
    await this.reads.stop();
  }

  private sleep(): Promise<void> {
    return new Promise<void>((r) => this.waiters.push(r));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Every chunk reference in the order writeFiles takes them. */
  private *references(): Generator<{ chunk: RestoreChunk; file: string }> {
    for (const op of this.ops) if (op.op === "writeFile") for (const chunk of op.chunks) yield { chunk, file: op.relativePath };
  }

  private async plan(): Promise<void> {
    const refs = this.references();
    let next = refs.next();
    let seq = 0;
    while (!next.done && !this.stopped) {
      const window: { chunk: RestoreChunk; file: string }[] = [];
      let bytes = 0;
      while (!next.done && window.length < PLAN_WINDOW_CHUNKS && (window.length === 0 || bytes + next.value.chunk.storedSize <= PLAN_WINDOW_STORED_BYTES)) {
        window.push(next.value);
        bytes += next.value.chunk.storedSize;
        next = refs.next();
      }
      while (!this.stopped && this.held > 0 && this.held + bytes > PLANNED_STORED_BYTES) await this.sleep();
      if (this.stopped) return;

      // Each reference is bound now, synchronously: to a chunk already held, to the cache, or to a new read.
      const fresh: WantedChunk[] = [];
      let settle!: (m: Map<string, ChunkLocation>) => void;
      let fail!: (e: unknown) => void;
      const located = new Promise<Map<string, ChunkLocation>>((res, rej) => {
        settle = res;
        fail = rej;
      });
      const planned: PlannedWindow = located.then((locs) => [locs, this.reads.schedule(fresh.map((want) => ({ want, loc: locs.get(want.sha256)! })))]);
      planned.catch(() => undefined);
      window.forEach(({ chunk, file }, i) => {
        let entry = this.live.get(chunk.sha256);
        if (entry === undefined && !this.cache.has(chunk.sha256)) {
          const want: WantedChunk = { sha256: chunk.sha256, size: chunk.size, storedSize: chunk.storedSize, codec: chunk.codec, file, ...(chunk.pack === undefined ? {} : { pack: chunk.pack }) };
          fresh.push(want);
          entry = { want, window: planned, refs: 0 };
          this.live.set(chunk.sha256, entry);
          this.held += chunk.storedSize;
        }
        if (entry) entry.refs++;
        this.bySeq.set(seq + i, entry);
      });
      seq += window.length;
      this.plannedThrough = seq;
      this.wake();
      try {
        settle(await locateChunks(this.clients.catalog, this.databaseId, fresh, this.packs));
      } catch (e) {
        fail(e);
        located.catch(() => undefined);
        throw e;
      }
    }
  }

  /** Whether chunks used once are decoded and written by a pool's workers (`get` with `into`). */
  get writesInWorkers(): boolean {
    return this.decoder.decodeInto !== undefined;
  }

  /**
   * The chunk of reference `seq` (its `chunk` and `file`), decoded and verified.
   * With `into` (an open file and the chunk's offset in it) and a decode pool,
   * a chunk used only this once is verified and written there by the pool's
   * worker (resolves undefined: the caller writes nothing); with
   * `into.directFd` too, in a run with direct I/O (agent/direct-runs.ts).
   * `ready` is awaited once the chunk's stored bytes are here, before it is
   * decoded (the writers' bound on raw bytes in flight: a writer waiting for
   * the planner holds none of it, so it cannot starve the references the
   * planner waits on).
   */
  async get(chunk: RestoreChunk, file: string, seq: number, into?: { fd: number; position: number; directFd?: number }, ready?: () => Promise<void>): Promise<Buffer | undefined> {
    await this.plannedTo(seq);
    const entry = this.bySeq.get(seq);
    this.bySeq.delete(seq);
    try {
      const hit = this.cache.get(chunk.sha256);
      if (hit) {
        await ready?.();
        return hit;
      }
      if (entry === undefined) throw new Error(`chunk ${chunk.sha256} of file ${JSON.stringify(file)} was planned from the cache but is not in it`);
      const decoder = this.decoder;
      if (into !== undefined && decoder.decodeInto !== undefined && (this.remaining.get(chunk.sha256) ?? 0) <= 1 && !this.inflight.has(chunk.sha256)) {
        const { loc, bytes } = await storedOf(entry);
        await ready?.();
        if (await decodeChunkInto(entry.want, loc, bytes, { decodeInto: decoder.decodeInto.bind(decoder) }, into)) this.directBytes += chunk.size;
        return undefined;
      }
      const stored = await storedOf(entry);
      await ready?.();
      let p = this.inflight.get(chunk.sha256);
      if (!p) {
        p = decodeChunk(entry.want, stored.loc, stored.bytes, this.decoder).finally(() => this.inflight.delete(chunk.sha256));
        this.inflight.set(chunk.sha256, p);
      }
      const buf = await p;
      if ((this.remaining.get(chunk.sha256) ?? 0) > 1 && !this.cache.has(chunk.sha256) && this.cached + buf.length <= this.budget) {
        this.cache.set(chunk.sha256, buf);
        this.cached += buf.length;
      }
      return buf;
    } finally {
      if (entry !== undefined) this.referenceTaken(entry);
    }
  }

  /** Until reference `seq` is planned; the planner's failure, or the source's stop, rejects. */
  private async plannedTo(seq: number): Promise<void> {
    while (this.plannedThrough <= seq && this.failure === undefined && !this.stopped) await this.sleep();
    if (this.failure !== undefined) throw this.failure.error;
    if (this.plannedThrough <= seq) throw new InvalidInputError("restore stopped");
  }

  /** One planned reference of `entry` is done with: after its last, its stored bytes no longer count against the planner's budget. */
  private referenceTaken(entry: PlannedChunk): void {
    if (--entry.refs > 0) return;
    // Its last reference was decoded (or failed): its read's buffer may be used again once its other chunks are done too.
    this.reads.release(entry.want.sha256);
    this.held -= entry.want.storedSize;
    if (this.live.get(entry.want.sha256) === entry) this.live.delete(entry.want.sha256);
    this.wake();
  }

  /**
   * The chunks of references `items` (consecutive chunks of one file in
   * reference order, one run of agent/direct-runs.ts), each used only this
   * once, decoded, verified and written by a worker of the pool in one
   * request (decodeChunksInto) into `into`, the file's two descriptors: one
   * message and one promise instead of one per chunk. Resolves false, taking
   * nothing, when any of them is not such a chunk (cached, used again,
   * being decoded for another reference) or there is no pool: the caller
   * takes them one by one (get). A corrupt chunk rejects as get does;
   * `ready` is awaited as get awaits it.
   */
  async getRun(items: readonly { chunk: RestoreChunk; seq: number }[], file: string, into: { fd: number; directFd: number }, ready?: () => Promise<void>): Promise<boolean> {
    const decoder = this.decoder;
    const last = items.at(-1);
    if (decoder.decodeIntoMany === undefined || last === undefined) return false;
    await this.plannedTo(last.seq);
    const entries: PlannedChunk[] = [];
    for (const { chunk, seq } of items) {
      const entry = this.bySeq.get(seq);
      if (entry === undefined || this.cache.has(chunk.sha256) || (this.remaining.get(chunk.sha256) ?? 0) > 1 || this.inflight.has(chunk.sha256)) return false;
      entries.push(entry);
    }
    for (const { seq } of items) this.bySeq.delete(seq);
    try {
      const stored = await Promise.all(entries.map(storedOf));
      await ready?.();
      const direct = await decodeChunksInto(
        entries.map((e, i) => ({ want: e.want, loc: stored[i]!.loc, stored: stored[i]!.bytes, position: items[i]!.chunk.offset })),
        { decodeIntoMany: decoder.decodeIntoMany.bind(decoder) },
        into,
      );
      direct.forEach((d, i) => {
        if (d) this.directBytes += items[i]!.chunk.size;
      });
      return true;
    } finally {
      for (const entry of entries) this.referenceTaken(entry);
    }
  }

  /**
   * Resolves once the decode workers' direct writes into the file with
   * direct descriptor `directFd` (undefined: every file) are done; rejects
   * naming the file when one failed (ChunkDecoder.drainWrites). Nothing to
   * wait for without a pool.
   */
  drainWrites(directFd: number | undefined, file: string): Promise<void> {
    return this.decoder.drainWrites?.(directFd, `file ${JSON.stringify(file)}`) ?? Promise.resolve();
  }

  /** One reference of `sha256` is written: drop it from the cache after its last. */
  release(sha256: string): void {
    const left = (this.remaining.get(sha256) ?? 1) - 1;
    this.remaining.set(sha256, left);
    if (left <= 0) {
      const buf = this.cache.get(sha256);
      if (buf) {
        this.cached -= buf.length;
        this.cache.delete(sha256);
      }
    }
  }
}

/**
 * A file's chunks in one batch: `continued` from the batch before (its file
 * is open), or it `continues` in the next one; `recorded`, the file's
 * recorded mtime and mode (core/snapshot.ts entryFinish), set on its open
 * descriptor once it is complete.
 */
type WriteOp = Extract<RestoreOperation, { op: "writeFile" }> & { continued?: boolean; continues?: boolean; recorded?: readonly RestoreOperation[] };

/** Sets a complete file's recorded mtime and mode on its open descriptor (utimes and chmod ops of entryFinish). */
async function applyRecorded(fh: FileHandle, recorded: readonly RestoreOperation[], mode: number): Promise<void> {
  await Promise.all(
    recorded.map((op) => {
      // Seconds aimed so libuv sets exactly the recorded time (to its microsecond); a Date came back 1 µs early half the time.
      if (op.op === "utimes") {
        const t = utimeSeconds(op.mtimeNs);
        return fh.utimes(t, t);
      }
      return op.op === "chmod" && (mode & 0o7777) !== op.mode ? fh.chmod(op.mode) : undefined;
    }),
  );
}

/**
 * The mode a file is created with: its recorded one (entryFinish's chmod),
 * with owner read and write so that its own descriptors can write it (a
 * second one opens it for direct I/O); the partial directory is the owner's
 * alone. When the umask leaves it as recorded, no chmod follows.
 */
function creationMode(recorded: readonly RestoreOperation[]): number {
  const chmod = recorded.find((op) => op.op === "chmod");
  return chmod === undefined ? RESTORE_FILE_MODE : (chmod.mode | 0o600) & 0o777;
}

/**
 * Raw chunk bytes held, at most, after they are written while they wait for
 * an earlier chunk of the same file to be hashed (chunks of one file finish
 * out of order). Beyond it, workers take no new chunk until the file hash
 * catches up.
 */
export const REORDER_BYTES = 32 * 1024 * 1024;

interface FileState {
  op: WriteOp;
  left: number;
  handle: Promise<FileHandle> | undefined;
  /** SHA-256 of the file's bytes, fed in offset order with the verified bytes written. */
  hash: Hash;
  /** Offset up to which the file's bytes are hashed (and written). */
  hashed: number;
  /** Written chunks waiting for an earlier one to be hashed, by offset. */
  waiting: Map<number, Buffer>;
  /** The same file opened with O_DIRECT, for the decode workers' runs (openDirect); undefined when it is not used. */
  direct: Promise<FileHandle | undefined> | undefined;
}

const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/**
 * Files at least this large are also opened with O_DIRECT (where the platform
 * has it) for the decode workers' runs of chunks (agent/direct-runs.ts):
 * writes that bypass the page cache cost a fraction of the CPU and reach the
 * disk as they are made, so the file's fdatasync has almost nothing left to
 * do. Smaller files are written as before.
 */
export const DIRECT_MIN_BYTES = 4 * RUN_BYTES;
/**
 * False once a filesystem refused O_DIRECT (tmpfs, some FUSE): not tried
 * again in this process. WALVAULT_RESTORE_DIRECT=0 turns direct writes off
 * (an escape hatch, and the bench's A/B).
 */
let directOpens = fsc.O_DIRECT !== undefined && process.env["WALVAULT_RESTORE_DIRECT"] !== "0";

/**
 * The file just created at `path`, opened again with O_DIRECT for writing,
 * or undefined when that is refused: the file is then written through the
 * page cache, as it would have been (a second descriptor is an
 * optimisation, never a reason to fail). EINVAL (no direct I/O on this
 * filesystem) stops further tries.
 */
async function openDirect(path: string): Promise<FileHandle | undefined> {
  if (!directOpens) return undefined;
  try {
    return await open(path, fsc.O_WRONLY | fsc.O_DIRECT | fsc.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EINVAL") directOpens = false;
    return undefined;
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    if (bytesWritten <= 0) throw Object.assign(new Error(`short write at offset ${position + off}`), { code: "EIO", syscall: "write" });
    off += bytesWritten;
  }
}

/**
 * The file's own check, once all its chunks are written: its size on disk
 * (fstat) and the bytes written must be the manifest's size, and with
 * `fileHashes` its SHA-256 (fed with exactly the bytes written, in offset
 * order) the manifest's SHA-256.
 */
function checkFile(op: WriteOp, sha256: string | undefined, hashed: number, onDisk: number): void {
  if ((sha256 !== undefined && sha256 !== op.sha256) || hashed !== op.size || onDisk !== op.size) {
    throw new ChecksumMismatchError(
      `restored file ${JSON.stringify(op.relativePath)} does not match the snapshot: ${onDisk} bytes (${hashed} written)${sha256 === undefined ? "" : ` hashing to ${sha256.slice(0, 12)}…`}, ` +
        `manifest says ${op.size} bytes${op.sha256 === undefined ? "" : `, ${op.sha256.slice(0, 12)}…`}`,
    );
  }
}

/**
 * Writes every file of the layout: chunks `parallel` at a time, in file order.
 *
 * What proves a file: it is created empty (O_EXCL), every chunk's bytes are
 * verified against its SHA-256 and then written completely at its offset,
 * the recorded chunks tile [0, size) (restoreLayout; validateManifest checks
 * that their sizes add up), and fstat shows no byte beyond. With
 * `fileHashes` the whole file's SHA-256 is also computed from the chunk bytes
 * as they are written (in offset order; a chunk that finishes before an
 * earlier one of its file waits in `waiting`, REORDER_BYTES at most) and
 * compared with the manifest's: a second SHA-256 of every byte, on the
 * thread that writes, which cost ~40% of a restore's CPU (docs/packs.md,
 * "Restore speed"), so it is off by default. A read
 * back right after writing would come from the page cache, not from the disk,
 * so it never proved the bytes on disk: fdatasync (`durable`) does that, and
 * is still done for every file before it counts.
 */
async function writeFiles(
  ops: readonly RestoreOperation[],
  source: ChunkSource,
  opts: {
    parallel: number;
    durable: boolean;
    fileHashes: boolean;
    signal: AbortSignal | undefined;
    progress: () => void;
    counters: { filesDone: number; bytesDone: number };
    /** The file the batch before left open (its first op is `continued`). */
    carry?: FileState | undefined;
  },
): Promise<FileState | undefined> {
  const files = ops.filter((o): o is WriteOp => o.op === "writeFile");
  const carry = opts.carry;
  /** The file whose last op `continues`: left open, returned. */
  let carryOut: FileState | undefined;
  /** `seq`: the chunk reference's position in file order, as ChunkSource plans them. */
  type Task = { state: FileState; chunk: RestoreChunk | undefined; seq: number };
  function* tasks(): Generator<Task> {
    let seq = 0;
    for (const op of files) {
      let state: FileState;
      if (op.continued === true && carry !== undefined) {
        // restore() checked that it is the same file.
        state = carry;
        state.op = op;
        state.left = op.chunks.length;
      } else state = { op, left: op.chunks.length, handle: undefined, hash: createHash("sha256"), hashed: 0, waiting: new Map(), direct: undefined };
      if (op.chunks.length === 0) yield { state, chunk: undefined, seq: -1 };
      for (const chunk of op.chunks) yield { state, chunk, seq: seq++ };
    }
  }
  const open_ = new Set<FileState>(carry === undefined ? [] : [carry]);
  const openFile = (state: FileState): Promise<FileHandle> => {
    if (!state.handle) {
      open_.add(state);
      state.handle = open(state.op.path, CREATE_FLAGS, state.op.mode);
      if (writtenDirect(state.op)) {
        state.direct = state.handle.then(() => openDirect(state.op.path));
        state.direct.catch(() => undefined);
      }
    }
    return state.handle;
  };
  /** Both descriptors of a file closed (a failure: the open handle is awaited, errors ignored). */
  const closeFile = async (state: FileState): Promise<void> => {
    await Promise.all([state.handle, state.direct].map(async (h) => (await h?.catch(() => undefined))?.close().catch(() => undefined)));
  };
  let waitingBytes = 0;
  let inFlightBytes = 0;
  let wakeups: Array<() => void> = [];
  const sleep = (): Promise<void> => new Promise<void>((r) => wakeups.push(r));
  const wake = (): void => {
    const w = wakeups;
    wakeups = [];
    for (const f of w) f();
  };
  /** Whether this file's whole SHA-256 is computed: asked for, and the manifest records one to compare with (core/snapshot.ts fileSha256Of). */
  const hashed = (op: WriteOp): boolean => opts.fileHashes && op.sha256 !== undefined;
  /** Whether the decode workers write this file's chunks with direct I/O too (a second, O_DIRECT descriptor; runs of chunks). */
  const writtenDirect = (op: WriteOp): boolean => op.size >= DIRECT_MIN_BYTES && !hashed(op) && source.writesInWorkers;
  /** Feeds a written chunk to its file's hash, in offset order. */
  const hashInOrder = (state: FileState, offset: number, buf: Buffer): void => {
    if (!hashed(state.op)) {
      state.hashed += buf.length;
      return;
    }
    if (offset !== state.hashed) {
      state.waiting.set(offset, buf);
      waitingBytes += buf.length;
      return;
    }
    state.hash.update(buf);
    state.hashed += buf.length;
    let drained = false;
    for (let next = state.waiting.get(state.hashed); next !== undefined; next = state.waiting.get(state.hashed)) {
      state.waiting.delete(state.hashed);
      waitingBytes -= next.length;
      state.hash.update(next);
      state.hashed += next.length;
      drained = true;
    }
    if (drained) wake();
  };
  const finish = async (state: FileState): Promise<void> => {
    const fh = await state.handle!;
    try {
      // The workers' runs of this file written (their chunks were answered once verified and placed).
      const direct = await state.direct?.catch(() => undefined);
      if (direct !== undefined) await source.drainWrites(direct.fd, state.op.relativePath);
      const st = await fh.stat();
      checkFile(state.op, hashed(state.op) ? state.hash.digest("hex") : undefined, state.hashed, st.size);
      // Its recorded mtime and mode now, on the open descriptor, not by path in a pass over every file at the end.
      if (state.op.recorded !== undefined) await applyRecorded(fh, state.op.recorded, st.mode);
      // The direct descriptor's writes are the same file's: one fdatasync makes both durable.
      if (opts.durable) await fh.datasync();
    } finally {
      await fh.close();
      await (await state.direct?.catch(() => undefined))?.close();
      open_.delete(state);
    }
    opts.counters.filesDone++;
    opts.progress();
  };

  const iter = tasks();
  /** A task taken and given back: the writer gathering a run stopped at it (take returns it next). */
  let givenBack: Task | undefined;
  const take = (): Task | undefined => {
    const t = givenBack ?? iter.next().value;
    givenBack = undefined;
    return t ?? undefined;
  };
  /**
   * The task `first` and the tasks right after it that continue its run: the
   * next chunks of the same file, contiguous, within one RUN_BYTES stretch
   * (one run of agent/direct-runs.ts, one decode worker), for a file the
   * workers write with direct I/O. Taken at once, so no other writer gets
   * one of them in between.
   */
  const runOf = (first: Task): Task[] => {
    const run = [first];
    const c = first.chunk;
    if (c === undefined || !writtenDirect(first.state.op)) return run;
    const stretch = Math.floor(c.offset / RUN_BYTES);
    let end = c.offset + c.size;
    for (let t = take(); t !== undefined; t = take()) {
      const n = t.chunk;
      if (t.state !== first.state || n === undefined || n.offset !== end || Math.floor(n.offset / RUN_BYTES) !== stretch || n.offset + n.size - c.offset > RUN_BYTES) {
        givenBack = t;
        break;
      }
      run.push(t);
      end += n.size;
    }
    return run;
  };
  /** One chunk: decoded and written by a worker (get with `into`) or here (a chunk of the cache, or whole-file hashing). */
  const writeChunk = async (state: FileState, fh: FileHandle, direct: FileHandle | undefined, chunk: RestoreChunk, seq: number, ready: () => Promise<void>): Promise<void> => {
    const into = hashed(state.op) ? undefined : { fd: fh.fd, position: chunk.offset, ...(direct === undefined ? {} : { directFd: direct.fd }) };
    const buf = await source.get(chunk, state.op.relativePath, seq, into, ready);
    if (buf === undefined) state.hashed += chunk.size;
    else {
      await writeFully(fh, buf, chunk.offset).catch((e: unknown) => {
        throw writeError(`chunk ${chunk.sha256} of file ${JSON.stringify(state.op.relativePath)}`, chunk.offset, e);
      });
      hashInOrder(state, chunk.offset, buf);
    }
    source.release(chunk.sha256);
  };
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      // Chunks waiting for an earlier one: the earliest unfinished chunk of
      // each file is in another worker, which drains them when it is done.
      while (waitingBytes > REORDER_BYTES && failure === undefined) await sleep();
      if (failure !== undefined) return;
      const next = take();
      if (next === undefined) return;
      const { state, chunk } = next;
      const run = runOf(next);
      /** Raw bytes this writer counts in flight (IN_FLIGHT_BYTES): taken by `reserve` once a chunk's stored bytes are here, given back by `release`. */
      let held = 0;
      // Bounded memory whatever `parallel` and the chunk sizes (FastCDC chunks reach 8 MiB).
      const reserve = (bytes: number) => async (): Promise<void> => {
        while (inFlightBytes > 0 && inFlightBytes + bytes > IN_FLIGHT_BYTES && failure === undefined) await sleep();
        inFlightBytes += bytes;
        held += bytes;
      };
      const release = (): void => {
        inFlightBytes -= held;
        held = 0;
        wake();
      };
      try {
        throwIfAborted(opts.signal);
        const fh = await openFile(state);
        if (chunk !== undefined) {
          const bytes = run.reduce((n, t) => n + t.chunk!.size, 0);
          const direct = await state.direct;
          // A run of chunks used once, in one request to a decode worker; else (or when one of them is not such a chunk) one by one.
          const whole =
            run.length > 1 &&
            direct !== undefined &&
            (await source.getRun(run.map((t) => ({ chunk: t.chunk!, seq: t.seq })), state.op.relativePath, { fd: fh.fd, directFd: direct.fd }, reserve(bytes)));
          if (whole) {
            for (const t of run) {
              state.hashed += t.chunk!.size;
              source.release(t.chunk!.sha256);
            }
            release();
          } else {
            for (const t of run) {
              await writeChunk(state, fh, direct, t.chunk!, t.seq, reserve(t.chunk!.size));
              release();
            }
          }
          if (failure !== undefined) return;
          opts.counters.bytesDone += bytes;
          state.left -= run.length;
        }
        if (state.left === 0 && state.op.continues === true) carryOut = state;
        else if (state.left === 0) await finish(state);
        else opts.progress();
      } catch (e) {
        failure ??= e;
        release();
      }
    }
  };
  source.start();
  try {
    await Promise.all(Array.from({ length: opts.parallel }, worker));
  } finally {
    await source.stop();
  }
  // Close whatever a failure left open (the partial directory is removed next); a file that continues stays open.
  // No worker's write may still be in flight on a descriptor closed here (its number could be reused).
  if (failure !== undefined) await source.drainWrites(undefined, "the restored files").catch(() => undefined);
  if (failure === undefined && carryOut !== undefined) open_.delete(carryOut);
  await Promise.all([...open_].map(closeFile));
  if (failure !== undefined) throw failure;
  return carryOut;
}

/** Writes bytes to `dest` through a temporary file beside it (replacing a file of that name from the snapshot). */
async function writeReplacing(dest: string, data: Uint8Array, durable: boolean): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.walvault-tmp-${process.pid}`);
  const fh = await open(tmp, CREATE_FLAGS, 0o600);
  try {
    await fh.writeFile(data);
    if (durable) await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, dest);
}

interface WalPlacement {
  stream: string;
  dir: string;
  /** `marker`: the stream's closing marker beside the segment (a marker-closed stream), written once the segment is. */
  segments: { rec: WalRecord; dest: string; marker?: string }[];
}

/** Where each planned generic WAL segment goes, given the types of the snapshot's paths it goes through; checked before any WAL is downloaded. */
function placeGenericWal(
  planned: PlannedRestore,
  manifest: SnapshotHeader,
  segments: readonly WalRecord[],
  root: string,
  entries: { get(path: string): FileEntry["type"] | undefined },
): WalPlacement[] {
  if (manifest.kind !== "generic") return [];
  const out: WalPlacement[] = [];
  for (const sp of planned.streams) {
    const s = manifest.generic.streams.find((x) => x.id === sp.stream);
    if (!s) throw new ManifestInvalidError(`snapshot ${manifest.snapshotId} has no WAL stream '${sp.stream}'`, { field: "generic.streams" });
    const rel = streamDirOf(s);
    if (rel !== ".") {
      const parts = rel.split("/");
      for (let i = 1; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join("/");
        const type = entries.get(prefix);
        if (type !== undefined && type !== "directory") {
          throw new UnsafePathError(`WAL directory ${JSON.stringify(rel)} of stream '${sp.stream}' goes through the ${type} ${JSON.stringify(prefix)} of the snapshot`, {
            path: rel,
          });
        }
      }
    }
    const byName = new Map<string, WalRecord>();
    for (const w of segments) if (planned.streams.length === 1 || streamOfRecord(w) === sp.stream) byName.set(w.name, w);
    const dir = rel === "." ? root : resolveUnder(root, rel);
    const placed = sp.plan.wal.map((seg) => {
      const rec = byName.get(seg.name);
      if (!rec) throw new InvalidInputError(`planned WAL segment ${seg.name} of stream '${sp.stream}' has no catalog record`);
      // Generic names are <stream>/<file> (older records: the bare file name).
      const file = isGenericWalName(rec.name) ? rec.name.slice(rec.name.indexOf("/") + 1) : rec.name;
      const problem = pathProblem(file) ?? (file.includes("/") ? "contains a '/'" : undefined);
      if (problem !== undefined) throw new UnsafePathError(`WAL segment name ${JSON.stringify(rec.name)} ${problem}`, { path: rec.name });
      const relPath = rel === "." ? file : `${rel}/${file}`;
      const type = entries.get(relPath);
      if (type !== undefined && type !== "file") {
        throw new UnsafePathError(`WAL segment ${rec.name} of stream '${sp.stream}' would replace the ${type} ${JSON.stringify(relPath)} of the snapshot`, { path: relPath });
      }
      if (s.closedMarker === undefined) return { rec, dest: resolveUnder(root, relPath) };
      const markerPath = `${relPath}${s.closedMarker}`;
      const markerType = entries.get(markerPath);
      if (markerType !== undefined && markerType !== "file") {
        throw new UnsafePathError(`the marker of WAL segment ${rec.name} of stream '${sp.stream}' would replace the ${markerType} ${JSON.stringify(markerPath)} of the snapshot`, {
          path: markerPath,
        });
      }
      return { rec, dest: resolveUnder(root, relPath), marker: resolveUnder(root, markerPath) };
    });
    out.push({ stream: sp.stream, dir, segments: placed });
  }
  return out;
}

/** PostgreSQL: what makes the restored directory recover to the planned target and never archive into the source. */
async function preparePostgres(root: string, planned: PlannedRestore, cfg: RestoreConfig, manifest: SnapshotHeader, warnings: string[]): Promise<void> {
  const settings = recoverySettings(planned.plan, {
    walvaultBin: WALVAULT_BIN,
    databaseId: planned.databaseId,
    ...(cfg.path === undefined ? {} : { configPath: cfg.path }),
    ...(cfg.replicaRegion ? { region: cfg.replicaRegion } : {}),
  });
  const note = `walvault restore of database ${planned.databaseId}, snapshot ${planned.plan.snapshot.id}, at ${new Date().toISOString()}`;
  const conf = join(root, "postgresql.auto.conf");
  const before = await readFile(conf, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  const sep = before === undefined || before === "" || before.endsWith("\n") ? "" : "\n";
  await appendFile(conf, sep + renderRecoveryConf(settings, note), { mode: 0o600 });
  await writeFile(join(root, "recovery.signal"), "", { mode: 0o600, flag: "w" });
  await writeFile(join(root, RESTORE_MARKER), `${planned.databaseId}\n`, { mode: 0o600, flag: "w" });
  await rm(join(root, "standby.signal"), { force: true });
  await rm(join(root, "postmaster.pid"), { force: true });
  if (manifest.kind === "postgres") {
    let hadMap = false;
    try {
      await lstat(join(root, "tablespace_map"));
      hadMap = true;
    } catch {
      // none
    }
    // Only with tablespaces: an empty map is harmless (PostgreSQL reads it
    // and renames it), and pg_verifybackup expects it since the backup has it.
    if (hadMap && manifest.postgres.tablespaces.length > 0) {
      await rm(join(root, "tablespace_map"), { force: true });
      if (manifest.postgres.tablespaces.length > 0) {
        warnings.push(
          `tablespaces ${manifest.postgres.tablespaces.map((t) => `${t.oid} (was ${t.location})`).join(", ")} are restored in place under pg_tblspc/`,
        );
      }
    }
  }
}

/** fsync of one file's data and metadata (a file this restore wrote whole). */
async function syncFile(path: string): Promise<void> {
  const fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY).catch(() => undefined);
  if (!fh) return;
  try {
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories
  } finally {
    await fh.close();
  }
}

/**
 * PostgreSQL, a restore point target: a name ingest recorded in the catalog
 * was resolved by the planner (nothing to read); any other name is searched
 * for in the archived WAL replay reads after the snapshot is consistent
 * (core/restore-point.ts) before anything is written. Absent, PostgreSQL would replay everything and then fail with
 * "recovery ended before configured recovery target was reached".
 */
async function checkRestorePoint(clients: AgentClients, cfg: RestoreConfig, state: CatalogState, planned: PlannedRestore, name: string, signal: AbortSignal | undefined): Promise<void> {
  if (Buffer.byteLength(name, "utf8") > MAX_RESTORE_POINT_NAME_BYTES) {
    throw new InvalidInputError(`restore point name ${JSON.stringify(name)} is longer than PostgreSQL's ${MAX_RESTORE_POINT_NAME_BYTES} bytes: no such restore point can exist`);
  }
  // Known to the catalog (recorded by ingest): the planner resolved it to its exact LSN, nothing to download.
  if (restorePointsOf(state).some((rp) => rp.name === name)) return;
  const { snapshot, wal } = planned.plan;
  const consistent = lsnToSegno(snapshot.stopLsn > snapshot.startLsn ? snapshot.stopLsn - 1n : snapshot.startLsn, planned.segmentSize);
  const records = new Map(state.segments.map((r) => [`${r.timeline}/${r.name}`, r]));
  const scanner = new RestorePointScanner(name);
  const scanned = wal.filter((w) => w.segno >= consistent);
  for (const w of scanned) {
    throwIfAborted(signal);
    const rec = records.get(`${w.timeline}/${w.name}`);
    if (!rec) throw new InvalidInputError(`planned WAL segment ${w.name} has no catalog record`);
    if (scanner.push(await downloadVerified(clients, cfg, rec))) return;
  }
  const range = scanned.length === 0 ? "none is archived after it" : `searched ${scanned[0]!.name} to ${scanned.at(-1)!.name}`;
  throw new NotFoundError(
    `restore point ${JSON.stringify(name)} is not in the archived WAL replayed after snapshot ${snapshot.id} is consistent (${range}): ` +
      `PostgreSQL would fail at the end of replay; check the name, or restore to a time or an LSN`,
  );
}

type SymlinkOp = Extract<RestoreOperation, { op: "symlink" }>;

/** The refusal of symlinks pointing out of the restored tree (`what`: how many), naming one of them. */
function outsideSymlinksError(snapshotId: string, o: SymlinkOp, what: string): UnsafePathError {
  return new UnsafePathError(
    `snapshot ${snapshotId} has ${what} pointing out of the restored tree, e.g. ${JSON.stringify(o.relativePath)} -> ${JSON.stringify(o.target)}: ` +
      `the restored database would write there; move them into the tree or allow them explicitly (outsideSymlinks "keep")`,
    { path: o.relativePath },
  );
}

/**
 * Restores a database into `toDir` (see the file comment for the steps and
 * guarantees). Planning errors are thrown before anything is downloaded or
 * created; any later failure removes the partial directory and leaves
 * `toDir` as it was.
 */
export async function restore(clients: AgentClients, cfg: RestoreConfig, opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = performance.now();
  const parallel = opts.parallel ?? DEFAULT_RESTORE_PARALLEL;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 256) {
    throw new InvalidInputError(`--parallel must be a whole number from 1 to 256, not ${String(opts.parallel)}`);
  }
  const durable = opts.durable ?? true;
  const warnings: string[] = [];

  // 1. Plan: every planning error before any download (a first plan from the records alone).
  const state = await loadState(clients, cfg, opts.databaseId, opts.target);
  planFromState(state, opts.target);

  // 2. The target directory.
  const target = await inspectTarget(opts.toDir, opts.force === true);
  throwIfAborted(opts.signal);

  // 3. The manifest, checked against the record the plan came from.
  const settled = await settlePlan(clients, cfg, state, opts.target, { verify: true, walk: true });
  const planned = settled.planned;
  const manifest = settled.manifest!;
  const header = manifest.header;
  if (opts.target.kind === "name" && planned.kind === "postgres") await checkRestorePoint(clients, cfg, state, planned, opts.target.name, opts.signal);
  const counters = { filesDone: 0, bytesDone: 0, walDone: 0 };
  // The header's totals (checked against the pages when they have all been validated, before anything is put in place).
  const filesTotal = header.totals.files;
  const bytesTotal = header.totals.logicalBytes;
  const walTotal = planned.kind === "generic" ? planned.streams.reduce((n, sp) => n + sp.plan.wal.length, 0) : 0;
  const emit = (phase: RestoreProgress["phase"]): void =>
    opts.onProgress?.({ phase, filesDone: counters.filesDone, filesTotal, bytesDone: counters.bytesDone, bytesTotal, walDone: counters.walDone, walTotal });
  emit("planned");

  const partial = `${target.dir}${PARTIAL_TAG}${process.pid}`;
  const reads = { fetched: 0, downloaded: 0, direct: 0 };
  /** The open file of a `carry` (see below). */
  let carryState: FileState | undefined;
  let walBytes = 0;
  let walDownloaded = 0;
  // The decode workers start now (their start is ~0.1-0.2 s of CPU each), while the refusals below read the manifest;
  // one pool serves the whole restore. Small restores decode on this thread (openDecoder).
  let decoder: ChunkDecoder = openDecoder({ chunks: header.totals.chunks, defaultThreads: RESTORE_DECODE_THREADS });
  // Chunks the manifest places in packs (a packed push's new ones, any push's reused ones) are located in those packs'
  // indexes, kept across batches (store/pack-index.ts). The first packs' indexes (a record and a tail read each, as
  // many as the cache keeps) are read while the refusals below read the pages, so the first batch's reads start at
  // once; a refused restore has read those few KiB of indexes and nothing else.
  // With a pool, reads land in shared memory its workers decode from without a copy, in buffers used again
  // (what two batches' reads and read-ahead hold at once); without one, each read has its own.
  const bodies = decoder.decodeInto !== undefined ? sharedBodies(2 * (READ_BYTES_IN_FLIGHT + PLANNED_STORED_BYTES)) : undefined;
  const packIndexes = namesPacks(header) ? new PackIndexCache(clients.catalog, clients.store, cfg.vaultBucket, planned.databaseId) : undefined;
  if (packIndexes !== undefined) {
    for (const name of [...(header.packs ?? []), ...(header.reusedPacks ?? [])].slice(0, KEPT_PACK_INDEXES)) void packIndexes.get(name).catch(() => undefined);
  }
  try {
    // 4. Refusals before any download: one pass over the entries (every page
    // read and validated, one at a time) for symlinks pointing out of the
    // tree. A snapshot whose header counts no symlink (a PostgreSQL cluster
    // without tablespaces, most generic ones) has nothing to refuse: no such
    // pass, whose time grows with the manifest (~30 ms a page, seconds before
    // the first byte at 100 GB): the writing pass validates each page as it
    // reads it (a bad page fails the restore there, before anything is put
    // in place; the totals are checked at its end), and refuses a symlink
    // out of the tree before its batch's reads start. The types of the
    // paths the generic WAL goes to are taken as the writing pass meets
    // them, and checked (placeGenericWal) before any WAL is downloaded.
    const walPaths = new Set<string>();
    placeGenericWal(planned, header, state.segments, partial, { get: (path) => void walPaths.add(path) });
    const walTypes = new Map<string, FileEntry["type"]>();
    if (header.totals.symlinks > 0) {
      let outside = 0;
      let firstOutside: SymlinkOp | undefined;
      for await (const e of treeOrdered(manifest)) {
        throwIfAborted(opts.signal);
        if (e.type !== "symlink") continue;
        const op = entryLayout(e, partial, header.databaseId, 0);
        if (op.op === "symlink" && op.outside) {
          outside++;
          firstOutside ??= op;
        }
      }
      if (firstOutside !== undefined && opts.outsideSymlinks !== "keep") throw outsideSymlinksError(header.snapshotId, firstOutside, `${outside} symlink(s)`);
    }

    // The first batch's page is read and validated while the partial directory is made (four file-system calls
    // on libuv's pool, ~0.1 s here at the start, when the pool and this thread are busiest); a bad page still fails
    // only once it is awaited below, after the directory exists, and the partial directory is removed as before.
    const batches = entryBatches(manifest)[Symbol.asyncIterator]();
    let firstBatch: ReturnType<typeof batches.next> | undefined = batches.next();
    firstBatch.catch(() => undefined); // awaited by the first prepareNext, or dropped with the restore
    await mkdir(dirname(target.dir), { recursive: true });
    await removeStalePartials(target.dir);
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { mode: 0o700 });
    // 5. Batch by batch (a page's worth of chunk references, in tree order,
    // so a directory comes before what it holds): directories, files,
    // symlinks. A file cut between batches stays open, its hash running.
    emit("files");
    // One batch is looked ahead (prepareNext): while a batch's chunks are
    // written, the next page is read, its directories made, its chunks
    // located and their reads started, so the writers do not wait at each
    // batch's start for the page, the pack indexes and the first reads
    // (measured ~0.15 s of idle decode workers per 8,192 references).
    /** The file cut at the end of the batch before: where its next part starts, and its open state. */
    let carry: { path: string; offset: number } | undefined;
    /** What the recorded times and modes at the end take, met by the writing pass (kept, when few: no page read again). */
    const dirsAndLinks = new DirsAndLinks();
    /** The next batch's operations, its directories made and its chunk source started; undefined after the last. */
    const prepareNext = async (): Promise<{ ops: RestoreOperation[]; source: ChunkSource } | undefined> => {
      const step = await (firstBatch ?? batches.next());
      firstBatch = undefined;
      if (step.done === true) return undefined;
      const batch = step.value;
      throwIfAborted(opts.signal);
      const ops: RestoreOperation[] = [];
      for (const e of batch.entries) {
        if (walPaths.has(e.path)) walTypes.set(e.path, e.type);
        dirsAndLinks.add(e);
        if (e.type !== "file") {
          const op = entryLayout(e, partial, header.databaseId, 0);
          // The refusal pass found none, or did not run (the header counts no symlink): a manifest that says
          // otherwise stops here, before this batch's reads start.
          if (op.op === "symlink" && op.outside && opts.outsideSymlinks !== "keep") throw outsideSymlinksError(header.snapshotId, op, "a symlink");
          ops.push(op);
          continue;
        }
        const continued = e.part !== undefined;
        if (continued !== (carry !== undefined) || (carry !== undefined && carry.path !== e.path)) {
          const what = carry === undefined ? `a part of ${JSON.stringify(e.path)} continues no file` : `${JSON.stringify(carry.path)} ends before all its chunks are listed`;
          throw new ManifestInvalidError(`snapshot ${header.snapshotId}: ${what}`, { field: "pages" });
        }
        const offset = carry?.offset ?? 0;
        const end = offset + e.chunks.reduce((n, c) => n + c.size, 0);
        const recorded = entryFinish(e, partial);
        const op: WriteOp = { ...(entryLayout(e, partial, header.databaseId, offset, header) as WriteOp), mode: creationMode(recorded), continued, continues: end < e.size, recorded };
        const prev = ops.at(-1) as WriteOp | undefined;
        // A part whose file is already in this batch: one op (writeFiles takes a file once per batch).
        if (continued && prev?.op === "writeFile" && prev.relativePath === e.path) {
          prev.chunks.push(...op.chunks);
          prev.continues = op.continues;
        } else ops.push(op);
        carry = op.continues ? { path: e.path, offset: end } : undefined;
      }
      for (const op of ops) if (op.op === "mkdir") await mkdir(op.path, { mode: op.mode });
      const source = new ChunkSource(clients, cfg.vaultBucket, planned.databaseId, ops, parallel, decoder, packIndexes, bodies);
      source.start();
      return { ops, source };
    };
    let next = prepareNext();
    try {
      for (let cur = await next; cur !== undefined; cur = await next) {
        next = prepareNext();
        next.catch(() => undefined); // awaited by the next round, or below
        const { ops, source } = cur;
        try {
          carryState = await writeFiles(ops, source, { parallel, durable, fileHashes: opts.fileHashes === true, signal: opts.signal, counters, progress: () => emit("files"), carry: carryState });
        } finally {
          reads.fetched += source.fetched;
          reads.downloaded += source.downloaded;
          reads.direct += source.directBytes;
        }
        for (const op of ops) if (op.op === "symlink") await symlink(op.target, op.path);
      }
    } finally {
      // After a failure: the batch looked ahead reads nothing more, and no page is read.
      const ahead = await next.catch(() => undefined);
      if (ahead !== undefined) await ahead.source.stop();
      await batches.return(undefined).catch(() => undefined);
    }
    if (carry !== undefined) throw new ManifestInvalidError(`snapshot ${header.snapshotId}: ${JSON.stringify(carry.path)} ends before all its chunks are listed`, { field: "pages" });
    const walPlacements = placeGenericWal(planned, header, state.segments, partial, walTypes);
    await decoder.close();
    decoder = inThreadDecoder;

    // 6/7. Database specifics, before recorded modes close anything.
    // Files got their recorded mtime and mode as each was completed (on its
    // descriptor, in writeFiles). Directories and symlinks get theirs here
    // (those the writing pass kept, or the pages read again: DirsAndLinks),
    // deepest first (reverse tree order: every directory after what it
    // holds, so a recorded mode without search permission never blocks its
    // children; creating a file or link changes its directory's mtime),
    // before the steps below add, change or remove files (tablespace_map,
    // recovery settings, WAL). Each directory's entries are synced once it is
    // done. The symlinks between two directories are finished FINISH_PARALLEL
    // at a time.
    const finishEntry = async (e: PageEntry): Promise<void> => {
      for (const op of entryFinish(e, partial)) {
        if (op.op === "utimes") {
          const t = utimeSeconds(op.mtimeNs); // as applyRecorded
          await (op.noFollow ? lutimes(op.path, t, t) : utimes(op.path, t, t));
        } else if (op.op === "chmod") await chmod(op.path, op.mode);
      }
      if (durable && e.type === "directory") await syncDir(resolveUnder(partial, e.path));
    };
    let links: PageEntry[] = [];
    const finishLinks = async (): Promise<void> => {
      await mapLimit(links, FINISH_PARALLEL, finishEntry);
      links = [];
    };
    for await (const e of dirsAndLinks.reversed(manifest)) {
      if (e.type === "directory") {
        await finishLinks(); // everything under it first
        await finishEntry(e);
        continue;
      }
      links.push(e);
      if (links.length >= FINISH_BATCH) await finishLinks();
    }
    await finishLinks();
    if (planned.kind === "postgres") {
      await preparePostgres(partial, planned, cfg, header, warnings);
      if (durable) for (const f of ["postgresql.auto.conf", "recovery.signal", RESTORE_MARKER]) await syncFile(join(partial, f));
    } else {
      emit("wal");
      const all = walPlacements.flatMap((p) => p.segments);
      const largest = all.reduce((m, s) => Math.max(m, s.rec.size), 1);
      const limit = Math.max(1, Math.min(parallel, Math.floor(WAL_BYTES_IN_FLIGHT / largest)));
      for (const p of walPlacements) await mkdir(p.dir, { recursive: true, mode: 0o700 });
      await mapLimit(all, limit, async ({ rec, dest, marker }) => {
        throwIfAborted(opts.signal);
        const data = await downloadVerified(clients, cfg, rec);
        await writeReplacing(dest, data, durable);
        // Sealed as the database sealed it (an empty marker: the segment is complete), never before the segment is whole.
        if (marker !== undefined) await writeReplacing(marker, new Uint8Array(0), durable);
        walBytes += data.length;
        walDownloaded += rec.storedSize;
        counters.walDone++;
        emit("wal");
      });
    }
    throwIfAborted(opts.signal);
    emit("finishing");
    await chmod(partial, planned.kind === "postgres" ? 0o700 : (target.mode ?? 0o700));
    if (durable) {
      // The WAL directories' entries (the snapshot's directories were synced above; files were fdatasync'ed, which does not cover the names).
      for (const d of [...new Set(walPlacements.map((p) => p.dir))].reverse()) await syncDir(d);
      await syncDir(partial);
    }

    // Into place.
    if (target.nonEmpty) {
      const old = `${target.dir}${OLD_TAG}${process.pid}`;
      await rm(old, { recursive: true, force: true });
      await rename(target.dir, old);
      try {
        await rename(partial, target.dir);
      } catch (e) {
        await rename(old, target.dir).catch(() => undefined);
        throw e;
      }
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(partial, target.dir);
    }
    if (durable) await syncDir(dirname(target.dir));
  } catch (e) {
    // Every step above has settled (mapLimit and writeFiles wait for their work in flight, and drain the workers'
    // writes after a failure); the file carried across batches may still have runs being written: drained first.
    await decoder.drainWrites?.(undefined, "the restored files").catch(() => undefined);
    await decoder.close().catch(() => undefined);
    await (await carryState?.handle?.catch(() => undefined))?.close().catch(() => undefined);
    const left = await removePartial(partial);
    if (left !== undefined && e instanceof Error) e.message += `; and the partial directory ${partial} could not be removed (${left}): remove it by hand`;
    throw e;
  }

  const seconds = (performance.now() - t0) / 1000;
  const bytes = counters.bytesDone + walBytes;
  const result: RestoreResult = {
    databaseId: planned.databaseId,
    kind: planned.kind,
    toDir: target.dir,
    plan: planned,
    snapshotId: planned.plan.snapshot.id,
    files: filesTotal,
    directories: header.totals.directories,
    symlinks: header.totals.symlinks,
    bytes,
    fileBytes: counters.bytesDone,
    walSegments: counters.walDone,
    walBytes,
    chunksFetched: reads.fetched,
    directBytes: reads.direct,
    downloadedBytes: reads.downloaded + walDownloaded,
    seconds,
    mbPerSecond: seconds > 0 ? bytes / 1e6 / seconds : 0,
    warnings: [...planned.plan.warnings, ...warnings],
  };
  emit("done");
  return result;
}
