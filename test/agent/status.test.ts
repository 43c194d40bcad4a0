/**
 * agent/status.ts writeWalList: `wal list` written a page at a time prints
 * what printing the whole list at once printed (the JSON array byte for
 * byte, the same table rows), for any split into pages. status(): ranges,
 * gaps, totals and archive times from the catalog's WAL read a page at a
 * time, never the whole list.
 */
import { describe, expect, it } from "vitest";
import type { AgentClients } from "../../agent/clients.js";
import { formatWalList, status, writeWalList } from "../../agent/status.js";
import type { DatabaseRecord, WalRecord } from "../../core/schemas.js";
import { segmentName } from "../../core/wal.js";
import { MemoryCatalog } from "../../store/memory-catalog.js";
import { countingCatalog } from "../support/counting-catalog.js";
import { pgSegmentRecord } from "../support/pg-records.js";

const MIB16 = 16 * 1024 * 1024;

function record(segno: number): WalRecord {
  return pgSegmentRecord("pg-main", segno, new Date(Date.UTC(2026, 11, 6, 0, 0, segno)).toISOString(), MIB16, { storedSize: 1_000_000 + segno });
}

async function written(pages: WalRecord[][], json: boolean): Promise<string> {
  let out = "";
  async function* each(): AsyncGenerator<WalRecord[]> {
    yield* pages;
  }
  await writeWalList(each(), json, async (t) => {
    out += t;
  });
  return out;
}

describe("writeWalList", () => {
  const all = Array.from({ length: 7 }, (_, i) => record(i + 1));
  const splits = [[all], [all.slice(0, 3), all.slice(3)], all.map((r) => [r])];

  it("--json: the array JSON.stringify(all, null, 2) gives, however the pages split it, and [] for none", async () => {
    // Act
    const outs = await Promise.all(splits.map((p) => written(p, true)));
    // Assess
    for (const o of outs) expect(o).toBe(`${JSON.stringify(all, null, 2)}\n`);
    expect(await written([], true)).toBe("[]\n");
    expect(JSON.parse(outs[2]!)).toEqual(all);
  });

  it("the table: the header once, then one row per record, as the whole-list table, and the header alone for none", async () => {
    // Act
    const outs = await Promise.all(splits.map((p) => written(p, false)));
    // Assess
    for (const o of outs) expect(o.trimEnd().split("\n").map((l) => l.split(/\s+/))).toEqual(formatWalList(all).split("\n").map((l) => l.split(/\s+/)));
    expect(outs[0]).toBe(`${formatWalList(all)}\n`);
    expect((await written([], false)).trim()).toBe("NAME  KIND  TL  START LSN  SIZE  STORED  CODEC  ARCHIVED");
  });
});

/**
 * An agent's clients over an in-memory catalog (store/memory-catalog.ts:
 * 1,000 records a page, as DynamoDB) holding `records`, the database
 * registered after them (so a generic one is not marked as indexed and is
 * read by pages); listWal (the whole list) fails, pages are counted.
 */
async function catalogClients(db: DatabaseRecord, records: WalRecord[]): Promise<{ clients: AgentClients; pagesRead: () => number }> {
  const memory = new MemoryCatalog();
  for (const r of records) await memory.recordWal(r);
  await memory.putDatabase(db);
  const counted = countingCatalog(memory);
  return { clients: { catalog: counted.catalog } as unknown as AgentClients, pagesRead: counted.pagesRead };
}

describe("status", () => {
  it("PostgreSQL: ranges and gaps per timeline, totals, and the archive times of the segments at their ends, reading the WAL a page at a time", async () => {
    // Prepare: timeline 1 has 1-3 and 5-6 (4 missing), timeline 2 has 7-2,006, and a history file: 2,006 records, three pages.
    const onTl = (tl: number, segno: number): WalRecord => {
      const r = record(segno);
      const name = segmentName(tl, BigInt(segno), MIB16);
      return { ...r, timeline: tl, name, vaultKey: `db/pg-main/wal/${name}` };
    };
    const history = { ...record(0), name: "00000002.history", timeline: 2, kind: "history", size: 40, storedSize: 40, vaultKey: "db/pg-main/wal/00000002.history" } as WalRecord;
    const records = [...[2, 1, 5, 3, 6].map((n) => onTl(1, n)), history, ...Array.from({ length: 2_000 }, (_, i) => onTl(2, 7 + i))];
    const { clients, pagesRead } = await catalogClients({ databaseId: "pg-main", kind: "postgres", walSegmentSize: MIB16, createdAt: "2026-01-01T00:00:00.000Z" }, records);

    // Act
    const s = await status(clients, "pg-main");

    // Assess
    const seg = (tl: number, n: number): string => segmentName(tl, BigInt(n), MIB16);
    const at = (n: number): string => record(n).archivedAt;
    expect(s.timelines).toEqual([
      {
        timeline: 1,
        ranges: [
          { first: seg(1, 1), last: seg(1, 3), segments: 3, from: at(1), to: at(3) },
          { first: seg(1, 5), last: seg(1, 6), segments: 2, from: at(5), to: at(6) },
        ],
        gaps: [{ after: seg(1, 3), before: seg(1, 5), missing: 1, from: at(3), to: at(5) }],
      },
      { timeline: 2, ranges: [{ first: seg(2, 7), last: seg(2, 2_006), segments: 2_000, from: at(7), to: at(2_006) }], gaps: [] },
    ]);
    expect([s.segments, s.historyFiles, s.gaps]).toEqual([2_005, 1, 1]);
    expect(s.storedBytes).toBe(records.reduce((a, r) => a + r.storedSize, 0));
    expect(s.streams).toBeUndefined();
    expect(pagesRead()).toBe(3); // one pass: names come from positions
  });

  it("generic: streams by position, though names do not sort by it, with the records' names at the ends and how far the archive is complete", async () => {
    // Prepare: stream a has positions 9, 10, 12 (11 missing), stream b has 1-2,000 (2,003 records, three pages); a's three came from one complete watch scan.
    const scanAt = "2026-12-06T01:00:00.000Z";
    const gen = (name: string, n: number, scanned: boolean): WalRecord =>
      ({ ...record(n), databaseId: "gen", name, startLsn: undefined, vaultKey: `db/gen/wal/${name}`, ...(scanned ? { scanAt, scanCount: 3 } : {}) }) as WalRecord;
    const records = [gen("a/wal-10.log", 10, true), gen("a/wal-12.log", 12, true), gen("a/wal-9.log", 9, true), ...Array.from({ length: 2_000 }, (_, i) => gen(`b/x-${i + 1}.log`, i + 1, false))];
    const { clients, pagesRead } = await catalogClients({ databaseId: "gen", kind: "generic", walSegmentSize: MIB16, createdAt: "2026-01-01T00:00:00.000Z" }, records);

    // Act
    const s = await status(clients, "gen");

    // Assess
    const at = (n: number): string => record(n).archivedAt;
    expect(s.streams).toEqual([
      {
        stream: "a",
        ranges: [
          { first: "a/wal-9.log", last: "a/wal-10.log", segments: 2, from: at(9), to: at(10) },
          { first: "a/wal-12.log", last: "a/wal-12.log", segments: 1, from: at(12), to: at(12) },
        ],
        gaps: [{ after: "a/wal-10.log", before: "a/wal-12.log", missing: 1, from: at(10), to: at(12) }],
      },
      { stream: "b", ranges: [{ first: "b/x-1.log", last: "b/x-2000.log", segments: 2_000, from: at(1), to: at(2_000) }], gaps: [] },
    ]);
    expect(s.timelines).toEqual([]);
    expect(s.archivedThrough).toBe(scanAt);
    expect([s.segments, s.gaps]).toEqual([2_003, 1]);
    expect(pagesRead()).toBe(2 * 3); // a second pass for the records' names at the ends
  });
});
