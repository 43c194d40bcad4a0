/**
 * Restore workflow helpers shared by its steps: the catalog state of a
 * database (store/catalog-state.ts) shaped for core/restore-plan.ts by
 * core/restore-input.ts, the same implementation `walvault restore`
 * (agent/restore.ts) uses, bound to the workflow's Deps.
 */
import type { DatabaseRecord, SnapshotRecord } from "../../core/schemas.js";
import type { SnapshotHeader } from "../../core/manifest-header.js";
import type { RestoreTarget } from "../../core/restore-plan.js";
import { fetchManifestHeader as fetchManifestHeaderFrom, loadPlanningState as loadPlanningStateFrom, type CatalogState } from "../../store/catalog-state.js";
import type { Deps } from "../deps.js";

export { buildPlanInput, genericSegno, segmentsOf, streamOfRecord, type CatalogState } from "../../core/restore-input.js";

/** Reads a snapshot's manifest header from the vault (no page); its SHA-256 must be the catalog's. */
export function fetchManifestHeader(deps: Deps, record: SnapshotRecord, database: DatabaseRecord): Promise<SnapshotHeader> {
  return fetchManifestHeaderFrom(deps.vault, deps.vaultBucket, record, database);
}

/** What planning a restore to `target` needs of the catalog, without reading every WAL record (store/catalog-state.ts). */
export function loadPlanningState(deps: Deps, databaseId: string, target: RestoreTarget): Promise<CatalogState> {
  return loadPlanningStateFrom(deps.catalog, deps.vault, deps.vaultBucket, databaseId, target);
}
