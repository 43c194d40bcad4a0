/**
 * Loads what the catalog knows about one database for restore planning
 * (core/restore-input.ts shapes it for core/restore-plan.ts): the
 * registration, the snapshot records, the WAL records, the parsed timeline
 * histories (each history file fetched from the vault, decoded and verified
 * against its catalog SHA-256 and size), and the manifests of snapshot
 * records that lack what planning needs (each verified against the record's
 * manifestSha256). Shared by `walvault restore` and the restore workflow.
 */
import { snapshotInRegion, walInRegion } from "../core/regions.js";
import { mapLimit } from "../core/concurrency.js";
import { decodeWith } from "../core/codec.js";
import { ChecksumMismatchError, InvalidInputError, UnknownDatabaseError } from "../core/errors.js";
import { sha256Hex } from "../core/hash.js";
import { recordIsIncomplete, streamsOf, type CatalogState } from "../core/restore-input.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "../core/schemas.js";
import { parseManifest, type SnapshotManifest } from "../core/snapshot.js";
import { parseHistoryFile, parseTimelineHistory, type TimelineHistoryEntry } from "../core/timeline.js";
import type { Catalog } from "./catalog.js";
import type { ObjectStore } from "./object-store.js";

export type { CatalogState } from "../core/restore-input.js";
export { mapLimit };

/** Vault objects (history files, manifests) fetched at once while loading. */
const FETCH_CONCURRENCY = 8;

/** A WAL (or history) file's bytes from the vault, decoded; its SHA-256 and size must be the catalog's. */
export async function fetchVerifiedWal(vault: ObjectStore, vaultBucket: string, rec: WalRecord): Promise<Buffer> {
  const obj = await vault.get(vaultBucket, rec.vaultKey, rec.vaultVersionId);
  if (!obj) {
    throw new ChecksumMismatchError(`${rec.name} is recorded in the catalog but its vault object ${rec.vaultKey} is missing`);
  }
  const raw = await decodeWith(rec.codec, obj.body, `vault object ${rec.vaultKey}`, rec.size);
  const sha = sha256Hex(raw);
  if (sha !== rec.sha256 || raw.length !== rec.size) {
    throw new ChecksumMismatchError(
      `vault object ${rec.vaultKey} is corrupt: SHA-256 ${sha.slice(0, 12)}… (${raw.length} bytes), catalog says ${rec.sha256.slice(0, 12)}… (${rec.size} bytes)`,
    );
  }
  return raw;
}

/** Reads, checks and parses a snapshot's manifest from the vault; its SHA-256 must be the catalog record's. */
export async function fetchManifest(vault: ObjectStore, vaultBucket: string, record: SnapshotRecord, database: DatabaseRecord): Promise<SnapshotManifest> {
  const obj = await vault.get(vaultBucket, record.manifestKey);
  if (!obj) {
    throw new ChecksumMismatchError(
      `snapshot ${record.snapshotId} is recorded in the catalog but its manifest ${record.manifestKey} is missing from the vault`,
    );
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

export interface LoadCatalogStateOptions {
  /** Appended to the UnknownDatabaseError message (e.g. how to register the database). */
  unknownDatabaseHint?: string;
  /**
   * Plan from what this replica region holds (core/regions.ts): only records
   * proven there, with that region's version ids; `vault` must then be that
   * region's vault.
   */
  region?: string;
}

/** Reads what the catalog (and, where needed, the vault) knows about `databaseId`, once, for planning. */
export async function loadCatalogState(
  catalog: Catalog,
  vault: ObjectStore,
  vaultBucket: string,
  databaseId: string,
  options: LoadCatalogStateOptions = {},
): Promise<CatalogState> {
  const [database, allRecords, allWal] = await Promise.all([catalog.getDatabase(databaseId), catalog.listSnapshots(databaseId), catalog.listWal(databaseId)]);
  const records = allRecords.flatMap((r) => snapshotInRegion(r, options.region) ?? []);
  const wal = allWal.flatMap((w) => walInRegion(w, options.region) ?? []);
  if (!database) {
    throw new UnknownDatabaseError(`database '${databaseId}' is not registered in the catalog${options.unknownDatabaseHint ?? ""}`);
  }
  const histories = new Map<number, TimelineHistoryEntry[]>();
  const unreadableHistories = new Map<number, string>();
  if (database.kind === "postgres") {
    const files = wal.filter((w) => w.kind === "history");
    // A history file that does not parse (archived before wal-push and ingest checked histories) is
    // handed over as unreadable: the planner passes its timeline over for 'latest' and refuses it by name.
    const parsed = await mapLimit(files, FETCH_CONCURRENCY, async (rec): Promise<TimelineHistoryEntry[] | { unreadable: string }> => {
      const raw = await fetchVerifiedWal(vault, vaultBucket, rec);
      try {
        // Timeline 1 needs no history; one that does not parse is left out (there is nothing to pass over).
        return rec.timeline === 1 ? parseTimelineHistory(raw.toString("utf8")) : parseHistoryFile(raw, rec.timeline);
      } catch (e) {
        if (!(e instanceof InvalidInputError)) throw e;
        return { unreadable: e.message };
      }
    });
    files.forEach((rec, i) => {
      const p = parsed[i]!;
      if (Array.isArray(p)) histories.set(rec.timeline, p);
      else if (rec.timeline !== 1) unreadableHistories.set(rec.timeline, p.unreadable);
    });
  }
  // Records that lack what planning needs (older or partial records): read their manifests.
  const incomplete = records.filter((r) => recordIsIncomplete(r, database));
  const read = await mapLimit(incomplete, FETCH_CONCURRENCY, (r) => fetchManifest(vault, vaultBucket, r, database));
  const manifests = new Map<string, SnapshotManifest>();
  incomplete.forEach((r, i) => manifests.set(r.snapshotId, read[i]!));
  return {
    database,
    records,
    segments: wal.filter((w) => w.kind === "segment"),
    histories,
    unreadableHistories,
    streams: streamsOf(database, records, manifests),
    manifests,
  };
}
