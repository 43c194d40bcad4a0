/**
 * A reader's view of a real catalog (MemoryCatalog, DynamoCatalog) for tests
 * of readers that must not read a database's whole WAL: listWal (the whole
 * list) is refused, pages (listWalPage), position ranges
 * (listGenericWalRange) and the records of PostgreSQL timeline ranges
 * (listWalRange) are counted. `pages: false` refuses pages too;
 * `index: "denied"` answers a range read as a table without the index or
 * the grant does (ConfigError). Everything else is the catalog's own.
 */
import { ConfigError } from "../../core/errors.js";
import type { Catalog } from "../../store/catalog.js";

export interface CountingCatalog {
  catalog: Catalog;
  pagesRead(): number;
  rangesRead(): number;
  recordsRead(): number;
  /** Records returned by listWalRange (PostgreSQL: a timeline's stretch of WAL). */
  walRangeRecordsRead(): number;
}

export function countingCatalog(catalog: Catalog, opts: { pages?: false; index?: "denied" } = {}): CountingCatalog {
  let pages = 0;
  let ranges = 0;
  let records = 0;
  let walRangeRecords = 0;
  const view = Object.create(catalog) as Catalog;
  view.listWal = async () => {
    throw new Error("the whole WAL list was read (Catalog.listWal)");
  };
  view.listWalPage = async (...args) => {
    if (opts.pages === false) throw new Error("the WAL was read page by page (Catalog.listWalPage)");
    pages++;
    return catalog.listWalPage(...args);
  };
  view.listGenericWalRange = async (...args) => {
    if (opts.index === "denied") throw new ConfigError("DynamoDB denied Query on the index");
    ranges++;
    const page = await catalog.listGenericWalRange(...args);
    records += page.records.length;
    return page;
  };
  view.listWalRange = async (...args) => {
    const got = await catalog.listWalRange(...args);
    walRangeRecords += got.length;
    return got;
  };
  return { catalog: view, pagesRead: () => pages, rangesRead: () => ranges, recordsRead: () => records, walRangeRecordsRead: () => walRangeRecords };
}
