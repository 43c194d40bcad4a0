/**
 * walRecordsFrom (store/wal-from.ts): a database's WAL records from one
 * segment on, range by range, over a catalog whose listWalTimelines and
 * listWalRange keep their contract (store/catalog.ts) on an in-memory list.
 */
import { describe, expect, it } from "vitest";
import type { WalRecord } from "../../core/schemas.js";
import { historyName, parseWalFileName, segmentName } from "../../core/wal.js";
import type { Catalog, WalRangeOptions } from "../../store/catalog.js";
import { genericWalRecordsFrom, WAL_FROM_PAGE, walRecordsFrom } from "../../store/wal-from.js";
import { RECORD_PAGE_MAX } from "../../store/catalog-layout.js";
import { MemoryCatalog } from "../../store/memory-catalog.js";

const DB = "pg-main";
const SIZE = 16 * 1024 * 1024;

function record(name: string): WalRecord {
  return { databaseId: DB, name, kind: name.endsWith(".history") ? "history" : "segment" } as WalRecord;
}

/** The two listings walRecordsFrom uses, over `names`, counting the records each range call returns. */
function rangeCatalog(names: string[]): { catalog: Catalog; read: string[]; calls: number } {
  const sorted = [...names].sort();
  const out = { read: [] as string[], calls: 0, catalog: {} as Catalog };
  const timelineOf = (n: string): number => parseInt(n.slice(0, 8), 16);
  out.catalog = {
    listWalTimelines: async () =>
      [...new Set(sorted.map(timelineOf))].sort((a, b) => a - b).map((timeline) => ({ timeline, history: sorted.includes(historyName(timeline)) ? record(historyName(timeline)) : undefined })),
    listWalRange: async (_db: string, timeline: number, from: string, to: string | undefined, opts: WalRangeOptions = {}) => {
      out.calls++;
      const page = sorted.filter((n) => timelineOf(n) === timeline && n >= from && (to === undefined || n <= to)).slice(0, opts.limit ?? Infinity);
      out.read.push(...page);
      return page.map(record);
    },
  } as unknown as Catalog;
  return out;
}

async function collect(it: AsyncIterable<WalRecord>): Promise<string[]> {
  const names: string[] = [];
  for await (const w of it) names.push(w.name);
  return names;
}

describe("walRecordsFrom", () => {
  it("yields each timeline's records from the segment on, each once, across pages, and nothing before it", async () => {
    // Prepare: timeline 1 holds segments 1..2,600, timeline 2 (with its history file) 2,000..2,700.
    const tl1 = Array.from({ length: 2600 }, (_, i) => segmentName(1, BigInt(i + 1), SIZE));
    const tl2 = [historyName(2), ...Array.from({ length: 701 }, (_, i) => segmentName(2, BigInt(i + 2000), SIZE))];
    const { catalog, read } = rangeCatalog([...tl1, ...tl2]);

    // Act
    const names = await collect(walRecordsFrom(catalog, DB, SIZE, 2500n));

    // Assess
    const expected = [...tl1.slice(2499), ...tl2.slice(1).filter((n) => parseWalFileName(n, SIZE).segno! >= 2500n)];
    expect(names).toEqual(expected);
    expect(read.filter((n) => n.endsWith(".history") || parseWalFileName(n, SIZE).segno! < 2500n)).toEqual([]);
  });

  it("follows a timeline across pages of WAL_FROM_PAGE records", async () => {
    // Prepare
    const all = Array.from({ length: 2 * WAL_FROM_PAGE + 5 }, (_, i) => segmentName(1, BigInt(i), SIZE));
    const counted = rangeCatalog(all);

    // Act
    const names = await collect(walRecordsFrom(counted.catalog, DB, SIZE, 0n));

    // Assess
    expect(names).toEqual(all);
    expect(counted.calls).toBe(3);
  });

  it("stops reading a timeline after the record stopAfter accepts, and goes on with the next timeline", async () => {
    // Prepare: 5,000 segments on timeline 1 and 10 on timeline 3.
    const tl1 = Array.from({ length: 5000 }, (_, i) => segmentName(1, BigInt(i), SIZE));
    const tl3 = Array.from({ length: 10 }, (_, i) => segmentName(3, BigInt(i + 100), SIZE));
    const counted = rangeCatalog([...tl1, ...tl3]);
    const stopAt = segmentName(1, 120n, SIZE);

    // Act
    const names = await collect(walRecordsFrom(counted.catalog, DB, SIZE, 100n, (w) => w.name === stopAt));

    // Assess: timeline 1 from 100 through 120 (its first page only), then all of timeline 3.
    expect(names).toEqual([...tl1.slice(100, 121), ...tl3]);
    expect(counted.read.length).toBeLessThanOrEqual(WAL_FROM_PAGE + tl3.length);
  });
});

describe("genericWalRecordsFrom", () => {
  it("yields one stream's segments from a position on, in position order, following the index's pages to the end, never those before", async () => {
    // Prepare: stream "wal" positions 1..2,500 and stream "aux" 1..5, in the in-memory catalog (a range read answers RECORD_PAGE_MAX records at most, its Query pages 250 items each)
    const seg = (stream: string, n: number): WalRecord => ({
      databaseId: "gen-g",
      name: `${stream}/seg-${n}.log`,
      kind: "segment",
      timeline: 1,
      startLsn: String(n),
      size: 1,
      storedSize: 1,
      sha256: "a".repeat(64),
      codec: "none",
      status: "stored",
      vaultKey: `db/gen-g/wal/${stream}/seg-${n}.log`,
      archivedAt: "2026-01-01T00:00:00.000Z",
      replicas: {},
    });
    const records = [...Array.from({ length: 2_500 }, (_, i) => seg("wal", 2_500 - i)), ...Array.from({ length: 5 }, (_, i) => seg("aux", i + 1))];
    const catalog = new MemoryCatalog({ pageSize: 250 });
    for (const r of records) await catalog.recordWal(r);
    let ranges = 0;
    let read = 0;
    const index: Pick<Catalog, "listGenericWalRange"> = {
      listGenericWalRange: async (...args) => {
        ranges++;
        const page = await catalog.listGenericWalRange(...args);
        read += page.records.length;
        return page;
      },
    };

    // Act
    const got: string[] = [];
    for await (const w of genericWalRecordsFrom(index, "gen-g", "wal", 10n)) got.push(w.name);

    // Assess: 2,491 records over three range reads, none of another stream or before 10 read
    expect(got).toEqual(Array.from({ length: 2_491 }, (_, i) => `wal/seg-${10 + i}.log`));
    expect(read).toBe(2_491);
    expect(ranges).toBe(Math.ceil(2_491 / RECORD_PAGE_MAX));
  });
});

