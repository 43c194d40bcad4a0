/**
 * agent/wal-index.ts (`walvault catalog index-wal`): follows
 * Catalog.backfillWalIndex's cursor to the end, summing what each bounded
 * call did, and reports whether the database was marked or why not.
 */
import { describe, expect, it } from "vitest";
import { indexWal } from "../../agent/wal-index.js";
import type { Catalog, WalIndexBackfillPage } from "../../store/catalog.js";

/** A catalog whose backfill answers these pages in turn, recording the cursors it was given. */
function backfilling(pages: WalIndexBackfillPage[]): Pick<Catalog, "backfillWalIndex"> & { cursors: (string | undefined)[] } {
  const cursors: (string | undefined)[] = [];
  return {
    cursors,
    backfillWalIndex: async (_db, after) => {
      cursors.push(after);
      const page = pages.shift();
      if (page === undefined) throw new Error("called past the last page");
      return page;
    },
  };
}

describe("walvault catalog index-wal", () => {
  it("follows the cursor to the end, summing each call, and reports the database marked", async () => {
    // Prepare
    const catalog = backfilling([
      { examined: 1000, updated: 990, next: "wal#wal#a" },
      { examined: 1000, updated: 1000, next: "wal#wal#b" },
      { examined: 12, updated: 3, marked: true },
    ]);
    const seen: number[] = [];

    // Act
    const s = await indexWal(catalog, "gen-old", { onPage: (x) => seen.push(x.examined) });

    // Assess
    expect(s).toEqual({ databaseId: "gen-old", examined: 2012, updated: 1993, calls: 3, marked: true });
    expect(catalog.cursors).toEqual([undefined, "wal#wal#a", "wal#wal#b"]);
    expect(seen).toEqual([1000, 2000, 2012]);
  });

  it("stops where the catalog refuses, unmarked, with its reason", async () => {
    // Prepare
    const catalog = backfilling([
      { examined: 1000, updated: 10, next: "wal#wal#a" },
      { examined: 4, updated: 0, refused: "WAL record 000000010000000000000002 cannot carry a position key" },
    ]);

    // Act
    const s = await indexWal(catalog, "gen-legacy");

    // Assess
    expect(s.marked).toBe(false);
    expect(s.refused).toMatch(/cannot carry a position key/);
    expect(s.calls).toBe(2);
  });
});
