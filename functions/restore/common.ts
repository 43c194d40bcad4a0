/**
 * Restore workflow helpers shared by its steps: the catalog state of a
 * database (store/catalog-state.ts) shaped for core/restore-plan.ts by
 * core/restore-input.ts, the same implementation `walvault restore`
 * (agent/restore.ts) uses, bound to the workflow's Deps.
 */
import type { DatabaseRecord, SnapshotRecord } from "../../core/schemas.js";
import type { SnapshotManifest } from "../../core/snapshot.js";
import type { RestoreTarget } from "../../core/restore-plan.js";
import { fetchManifest as fetchManifestFrom, loadPlanningState as loadPlanningStateFrom, type CatalogState } from "../../store/catalog-state.js";
import type { Deps } from "../deps.js";

export { buildPlanInput, genericSegno, segmentsOf, streamOfRecord, type CatalogState } from "../../core/restore-input.js";

/** Reads a snapshot's manifest from the vault; its SHA-256 must be the catalog's. */
export function fetchManifest(deps: Deps, record: SnapshotRecord, database: DatabaseRecord): Promise<SnapshotManifest> {
  return fetchManifestFrom(deps.vault, deps.vaultBucket, record, database);
}

/** What planning a restore to `target` needs of the catalog, without reading every WAL record (store/catalog-state.ts). */
export function loadPlanningState(deps: Deps, databaseId: string, target: RestoreTarget): Promise<CatalogState> {
  return loadPlanningStateFrom(deps.catalog, deps.vault, deps.vaultBucket, databaseId, target);
}
