/**
 * agent/status.ts writeWalList: `wal list` written a page at a time prints
 * what printing the whole list at once printed (the JSON array byte for
 * byte, the same table rows), for any split into pages.
 */
import { describe, expect, it } from "vitest";
import { formatWalList, writeWalList } from "../../agent/status.js";
import type { WalRecord } from "../../core/schemas.js";
import { segmentName } from "../../core/wal.js";

const MIB16 = 16 * 1024 * 1024;

function record(segno: number): WalRecord {
  return {
    databaseId: "pg-main",
    name: segmentName(1, BigInt(segno), MIB16),
    kind: "segment",
    timeline: 1,
    startLsn: `0/${(segno * MIB16).toString(16).toUpperCase()}`,
    sha256: "ab".repeat(32),
    size: MIB16,
    storedSize: 1_000_000 + segno,
    codec: "zstd",
    vaultKey: `db/pg-main/wal/00000001/${segmentName(1, BigInt(segno), MIB16)}`,
    archivedAt: new Date(Date.UTC(2026, 11, 6, 0, 0, segno)).toISOString(),
    replicas: {},
  } as WalRecord;
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
