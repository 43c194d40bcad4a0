/**
 * A catalog's generic WAL as Catalog.listGenericWalRange serves it from the
 * position index (core/generic-wal.ts gposOfRecord), `size` records a page,
 * with the consistent reads beside it (getWal, getHead: the newest segment by
 * close time, as ingest's advanceHead leaves it), for tests of readers that
 * must read by range: the ranges and records read are counted. `lagging`
 * names records the index does not list yet (eventual consistency); the
 * consistent reads (getWal, listGenericWalNewest) list them.
 */
import { headSortKey } from "../../core/catalog-records.js";
import { genericRecordPosition, gposOfRecord } from "../../core/generic-wal.js";
import type { HeadRecord, WalRecord } from "../../core/schemas.js";
import type { GenericWalRangeOptions, WalPage } from "../../store/catalog.js";

export function indexedWal(
  records: readonly WalRecord[],
  size: number,
  lagging: ReadonlySet<string> = new Set(),
): {
  listGenericWalRange: (databaseId: string, stream: string, from: bigint, to: bigint | undefined, options?: GenericWalRangeOptions) => Promise<WalPage>;
  listGenericWalNewest: (databaseId: string, stream: string, limit: number) => Promise<WalRecord[]>;
  getWal: (databaseId: string, name: string) => Promise<WalRecord | undefined>;
  getHead: (databaseId: string) => Promise<HeadRecord | undefined>;
  rangesRead: () => number;
  recordsRead: () => number;
} {
  const indexed = records
    .flatMap((w) => {
      const gpos = gposOfRecord(w);
      return gpos === undefined || lagging.has(w.name) ? [] : [{ gpos, w }];
    })
    .sort((a, b) => (a.gpos < b.gpos ? -1 : a.gpos > b.gpos ? 1 : a.w.name < b.w.name ? -1 : 1));
  let ranges = 0;
  let read = 0;
  return {
    listGenericWalRange: async (_db, stream, from, to, options = {}) => {
      ranges++;
      const start = options.after === undefined ? 0 : Number(options.after);
      const inRange = indexed.filter(({ gpos, w }) => {
        const p = genericRecordPosition(w)!;
        return gpos.startsWith(`${stream}#`) && p >= from && (to === undefined || p <= to);
      });
      const page = inRange.slice(start, start + Math.min(size, options.limit ?? size)).map((x) => x.w);
      read += page.length;
      const end = start + page.length;
      return end < inRange.length ? { records: page, next: String(end) } : { records: page };
    },
    listGenericWalNewest: async (_db, stream, limit) =>
      records
        .filter((w) => w.name.startsWith(`${stream}/`))
        .sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0))
        .slice(0, limit),
    getWal: async (_db, name) => records.find((w) => w.name === name),
    getHead: async (databaseId) => {
      let best: { key: string; w: WalRecord } | undefined;
      for (const w of records) {
        const key = headSortKey(w);
        if (key !== undefined && (best === undefined || key > best.key)) best = { key, w };
      }
      return best === undefined ? undefined : { databaseId, lastName: best.w.name, lastSortKey: best.key, lastArchivedAt: best.w.archivedAt };
    },
    rangesRead: () => ranges,
    recordsRead: () => read,
  };
}
