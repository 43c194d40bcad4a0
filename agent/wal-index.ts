/**
 * `walvault catalog index-wal <id>`: builds a generic database's position
 * index for a catalog from before it (docs/decisions.md, "Generic WAL by
 * position"): Catalog.backfillWalIndex a bounded page at a time, following
 * its cursor to the end, where the catalog marks the registration walIndex
 * "complete". Idempotent: run again after an interruption, it only examines
 * what is already done (records that carry their key are left alone); run
 * on a marked database, it gives a record written without its key since (by
 * ingest from before the key) its key.
 */
import type { Catalog } from "../store/catalog.js";

export interface WalIndexSummary {
  databaseId: string;
  /** WAL records examined, and given their position key. */
  examined: number;
  updated: number;
  /** backfillWalIndex calls made (each bounded by the page size). */
  calls: number;
  /** The registration is marked: readers read its WAL by position range. */
  marked: boolean;
  /** Why it could not be marked (it stays read by pages). */
  refused?: string;
}

export async function indexWal(
  catalog: Pick<Catalog, "backfillWalIndex">,
  databaseId: string,
  opts: { pageSize?: number; onPage?: (s: WalIndexSummary) => void } = {},
): Promise<WalIndexSummary> {
  const summary: WalIndexSummary = { databaseId, examined: 0, updated: 0, calls: 0, marked: false };
  let after: string | undefined;
  do {
    const page = await catalog.backfillWalIndex(databaseId, after, opts.pageSize);
    summary.calls++;
    summary.examined += page.examined;
    summary.updated += page.updated;
    if (page.marked) summary.marked = true;
    if (page.refused !== undefined) summary.refused = page.refused;
    after = page.next;
    opts.onPage?.(summary);
  } while (after !== undefined);
  return summary;
}
