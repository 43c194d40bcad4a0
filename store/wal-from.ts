/**
 * A PostgreSQL database's WAL records from one segment on, read range by
 * range (Catalog.listWalRange, WAL_FROM_PAGE records per call) instead of
 * every record of the archive (Catalog.listWal): what verification needs of
 * the WAL after a snapshot. Its reads grow with the WAL between the
 * snapshot and where the caller stops, never with the WAL before it.
 *
 * Contract:
 * - Yields, for every timeline holding WAL (Catalog.listWalTimelines, in
 *   ascending order), that timeline's records (every kind, as listWalRange
 *   returns them) whose segment is `fromSegno` or later, in name order.
 * - `stopAfter(record)`: once it returns true for a record of a timeline,
 *   that record is the timeline's last yielded (the rest of the timeline is
 *   not read). Records come timeline by timeline: a caller merging them
 *   across timelines sorts what it collected.
 * - `timeline`: only that timeline is read (no listWalTimelines call).
 */
import { segmentName } from "../core/wal.js";
import type { WalRecord } from "../core/schemas.js";
import type { Catalog } from "./catalog.js";

/** Records per listWalRange call. */
export const WAL_FROM_PAGE = 1000;

export async function* walRecordsFrom(
  catalog: Catalog,
  databaseId: string,
  segmentSize: number,
  fromSegno: bigint,
  stopAfter: (record: WalRecord) => boolean = () => false,
  only: { timeline?: number } = {},
): AsyncGenerator<WalRecord> {
  const timelines = only.timeline === undefined ? (await catalog.listWalTimelines(databaseId)).map((t) => t.timeline) : [only.timeline];
  for (const timeline of timelines) {
    let from = segmentName(timeline, fromSegno, segmentSize);
    let last: string | undefined;
    for (;;) {
      const page = await catalog.listWalRange(databaseId, timeline, from, undefined, { limit: WAL_FROM_PAGE });
      // The range includes its first name: a page after the first lists the previous page's last record again.
      const fresh = last === undefined ? page : page.filter((w) => w.name > last!);
      let stopped = false;
      for (const w of fresh) {
        yield w;
        if (stopAfter(w)) {
          stopped = true;
          break;
        }
      }
      if (stopped || page.length < WAL_FROM_PAGE) break;
      last = page.at(-1)!.name;
      from = last;
    }
  }
}

/**
 * A generic database's WAL records of one stream from position `from` on, in
 * position order, read through the catalog's position index a page at a time
 * (Catalog.listGenericWalRange): its reads grow with the WAL from `from` on,
 * never with the rest of the archive. For a database whose registration says
 * walIndex "complete" (otherwise the index may lack records); a catalog that
 * cannot read the index rejects with ConfigError.
 */
export async function* genericWalRecordsFrom(catalog: Pick<Catalog, "listGenericWalRange">, databaseId: string, stream: string, from: bigint): AsyncGenerator<WalRecord> {
  let after: string | undefined;
  do {
    const page = await catalog.listGenericWalRange(databaseId, stream, from, undefined, after === undefined ? {} : { after });
    yield* page.records;
    after = page.next;
  } while (after !== undefined);
}
