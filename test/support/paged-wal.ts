/**
 * A catalog's WAL as Catalog.listWalPage serves it, `size` records a page,
 * for tests of readers that must never hold the whole list: listWal fails,
 * and the pages read are counted.
 */
import type { WalRecord } from "../../core/schemas.js";

export function pagedWal(records: readonly WalRecord[], size: number): {
  listWal: () => Promise<never>;
  listWalPage: (databaseId: string, after?: string) => Promise<{ records: WalRecord[]; next?: string }>;
  pagesRead: () => number;
} {
  let pages = 0;
  return {
    listWal: async () => {
      throw new Error("the whole WAL list was read (Catalog.listWal)");
    },
    listWalPage: async (_databaseId, after) => {
      pages++;
      const from = after === undefined ? 0 : Number(after);
      return { records: records.slice(from, from + size), ...(from + size < records.length ? { next: String(from + size) } : {}) };
    },
    pagesRead: () => pages,
  };
}
