/**
 * Restore workflow helpers shared by its steps: a thin catalog/vault loader
 * that shapes what the catalog knows for core/restore-plan.ts, and the
 * manifest read. functions/ may not import agent/, so this is the store-based
 * counterpart of agent/restore.ts loadPlanInput/planFor, with the same rules
 * for generic positions (decimal startLsn, else a PostgreSQL-style segment
 * number, else the last run of digits in the name; a record's stream is the
 * directory of its vault key db/<id>/wal/<stream>/<name>).
 */
import { posix } from "node:path";
import { decodeWith } from "../../core/codec.js";
import { ChecksumMismatchError, InvalidInputError, UnknownDatabaseError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import type { RestorePlanInput, RestoreTarget, SnapshotInfo, WalSegmentInfo } from "../../core/restore-plan.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { parseManifest, toSnapshotInfo, type SnapshotManifest } from "../../core/snapshot.js";
import { parseTimelineHistory, type TimelineHistoryEntry } from "../../core/timeline.js";
import { parseLsn, parseWalFileName } from "../../core/wal.js";
import type { Deps } from "../deps.js";

export function genericSegno(rec: { name: string; startLsn?: string | undefined }, segmentSize?: number): bigint | undefined {
  if (rec.startLsn !== undefined && /^\d{1,20}$/.test(rec.startLsn)) return BigInt(rec.startLsn);
  try {
    const p = parseWalFileName(rec.name, segmentSize);
    if (p.kind === "segment" && p.segno !== undefined) return p.segno;
  } catch {
    // not a PostgreSQL-style name
  }
  const last = rec.name.match(/\d+/g)?.at(-1);
  return last === undefined ? undefined : BigInt(last);
}

export function streamOfRecord(rec: WalRecord): string | undefined {
  const parts = rec.vaultKey.split("/");
  if (parts.length === 5 && parts[0] === "db" && parts[1] === rec.databaseId && parts[2] === "wal" && parts[4] === rec.name) return parts[3];
  return undefined;
}

function recordedPosition(last: string, segmentSize: number): bigint | undefined {
  return /^\d{1,20}$/.test(last) ? BigInt(last) : genericSegno({ name: posix.basename(last) }, segmentSize);
}

/** Reads a snapshot's manifest from the vault; its SHA-256 must be the catalog's. */
export async function fetchManifest(deps: Deps, record: SnapshotRecord, database: DatabaseRecord): Promise<SnapshotManifest> {
  const obj = await deps.vault.get(deps.vaultBucket, record.manifestKey);
  if (!obj) {
    throw new ChecksumMismatchError(`snapshot ${record.snapshotId} is recorded but its manifest ${record.manifestKey} is missing from the vault`);
  }
  const sha = sha256Hex(obj.body);
  if (sha !== record.manifestSha256) {
    throw new ChecksumMismatchError(
      `manifest of snapshot ${record.snapshotId} (${record.manifestKey}) is corrupt: SHA-256 ${sha.slice(0, 12)}…, catalog says ${record.manifestSha256.slice(0, 12)}…`,
    );
  }
  return parseManifest(obj.body, {
    databaseId: record.databaseId,
    snapshotId: record.snapshotId,
    kind: database.kind,
    ...(database.kind === "postgres" ? { walSegmentSize: database.walSegmentSize } : {}),
  }).manifest;
}

async function fetchHistory(deps: Deps, rec: WalRecord): Promise<TimelineHistoryEntry[]> {
  const obj = await deps.vault.get(deps.vaultBucket, rec.vaultKey, rec.vaultVersionId);
  if (!obj) throw new ChecksumMismatchError(`${rec.name} is recorded in the catalog but its vault object ${rec.vaultKey} is missing`);
  const raw = await decodeWith(rec.codec, obj.body, `vault object ${rec.vaultKey}`, rec.size);
  if (sha256Hex(raw) !== rec.sha256) throw new ChecksumMismatchError(`vault object ${rec.vaultKey} is corrupt (SHA-256 differs from the catalog)`);
  try {
    return parseTimelineHistory(raw.toString("utf8"));
  } catch (e) {
    throw new InvalidInputError(`history file ${rec.name} of database ${rec.databaseId} is unreadable: ${(e as Error).message}`, { cause: e });
  }
}

/** What the catalog knows about one database, read once for planning. */
export interface CatalogState {
  database: DatabaseRecord;
  records: SnapshotRecord[];
  segments: WalRecord[];
  histories: Map<number, TimelineHistoryEntry[]>;
  /** Generic: WAL stream ids, sorted (the first picks the snapshot). */
  streams: string[];
  /** Manifests read because their records lack what planning needs. */
  manifests: Map<string, SnapshotManifest>;
}

export async function loadCatalogState(deps: Deps, databaseId: string): Promise<CatalogState> {
  const [database, records, wal] = await Promise.all([
    deps.catalog.getDatabase(databaseId),
    deps.catalog.listSnapshots(databaseId),
    deps.catalog.listWal(databaseId),
  ]);
  if (!database) throw new UnknownDatabaseError(`database '${databaseId}' is not registered in the catalog`);
  const histories = new Map<number, TimelineHistoryEntry[]>();
  if (database.kind === "postgres") {
    for (const rec of wal.filter((w) => w.kind === "history")) histories.set(rec.timeline, await fetchHistory(deps, rec));
  }
  const manifests = new Map<string, SnapshotManifest>();
  for (const r of records) {
    const incomplete =
      database.kind === "postgres"
        ? r.timeline === undefined || r.startLsn === undefined || r.stopLsn === undefined
        : r.streams === undefined ||
          Object.keys(r.streams).length === 0 ||
          Object.values(r.streams).some((last) => recordedPosition(last, database.walSegmentSize) === undefined);
    if (incomplete) manifests.set(r.snapshotId, await fetchManifest(deps, r, database));
  }
  const streams = new Set<string>();
  if (database.kind === "generic") {
    for (const r of records) {
      const m = manifests.get(r.snapshotId);
      for (const id of m?.kind === "generic" ? m.generic.streams.map((s) => s.id) : Object.keys(r.streams ?? {})) streams.add(id);
    }
  }
  return { database, records, segments: wal.filter((w) => w.kind === "segment"), histories, streams: [...streams].sort(), manifests };
}

function snapshotInfoOf(state: CatalogState, rec: SnapshotRecord, stream: string | undefined): SnapshotInfo | undefined {
  const manifest = state.manifests.get(rec.snapshotId);
  if (manifest) {
    if (manifest.kind === "generic" && !manifest.generic.streams.some((s) => s.id === stream)) return undefined;
    return { ...toSnapshotInfo(manifest, stream === undefined ? {} : { stream }), ...(rec.pinned ? { pinned: true } : {}) };
  }
  const common = {
    id: rec.snapshotId,
    databaseId: rec.databaseId,
    startedAt: new Date(rec.startedAt),
    finishedAt: new Date(rec.finishedAt),
    ...(rec.pinned ? { pinned: true } : {}),
  };
  if (state.database.kind === "postgres") {
    return { ...common, kind: "postgres", timeline: rec.timeline!, startLsn: parseLsn(rec.startLsn!), stopLsn: parseLsn(rec.stopLsn!) };
  }
  const last = stream === undefined ? undefined : rec.streams?.[stream];
  if (last === undefined) return undefined;
  const segno = recordedPosition(last, state.database.walSegmentSize)!;
  return { ...common, kind: "generic", timeline: 1, startLsn: segno, stopLsn: segno };
}

/** WAL segment records by name (per stream for several generic streams), for vault keys after planning. */
export function segmentsOf(state: CatalogState, stream: string | undefined): WalRecord[] {
  if (state.database.kind === "generic" && state.streams.length > 1) return state.segments.filter((w) => streamOfRecord(w) === stream);
  return state.segments;
}

function walOf(state: CatalogState, stream: string | undefined): WalSegmentInfo[] {
  const size = state.database.walSegmentSize;
  const out: WalSegmentInfo[] = [];
  for (const w of segmentsOf(state, stream)) {
    if (state.database.kind === "postgres") {
      const p = parseWalFileName(w.name, size);
      if (p.kind !== "segment" || p.segno === undefined) continue;
      out.push({ timeline: w.timeline, segno: p.segno, name: w.name, archivedAt: new Date(w.archivedAt) });
      continue;
    }
    const segno = genericSegno(w, size);
    if (segno === undefined) {
      throw new InvalidInputError(`WAL segment '${w.name}' of database ${w.databaseId} has no position (no decimal startLsn, no number in its name)`);
    }
    out.push({ timeline: 1, segno, name: w.name, archivedAt: new Date(w.archivedAt) });
  }
  return out;
}

export function buildPlanInput(state: CatalogState, target: RestoreTarget, stream: string | undefined, onlySnapshot?: string): RestorePlanInput {
  const snapshots: SnapshotInfo[] = [];
  for (const r of state.records) {
    if (onlySnapshot !== undefined && r.snapshotId !== onlySnapshot) continue;
    const info = snapshotInfoOf(state, r, stream);
    if (info) snapshots.push(info);
  }
  return { snapshots, wal: walOf(state, stream), histories: state.histories, segmentSize: state.database.walSegmentSize, target };
}
