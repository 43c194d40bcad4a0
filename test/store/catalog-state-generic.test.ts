/**
 * loadPlanningState of a generic database (store/catalog-state.ts): its WAL
 * names do not sort by position, so it is read a page at a time and only the
 * segments from the snapshots tried on are kept, never the whole list (the
 * fake catalog refuses listWal there); planning on it gives the plan, or the
 * error, planning on loadCatalogState's full read gives, for random archives
 * of one or two streams with gaps, scans and every kind of target. A
 * database marked walIndex "complete" reads the same by position range
 * (Catalog.listGenericWalRange), not by pages. The catalog is the
 * in-memory one (store/memory-catalog.ts: DynamoDB's pages, sparse index
 * and, where a test asks, an index that lags on a few records); the reader
 * sees it through a view that counts what it reads and refuses the whole
 * WAL list (test/support/counting-catalog.ts).
 */
import { describe, expect, it } from "vitest";
import { headSortKey } from "../../core/catalog-records.js";
import { buildPlanInput, type CatalogState } from "../../core/restore-input.js";
import { planRestore, type RestoreTarget } from "../../core/restore-plan.js";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { loadCatalogState, loadPlanningState } from "../../store/catalog-state.js";
import { MemoryCatalog } from "../../store/memory-catalog.js";
import { countingCatalog } from "../support/counting-catalog.js";
import type { ObjectStore } from "../../store/object-store.js";
import { pgSnapshotRecord } from "../support/pg-records.js";
import { seededRandom } from "../support/random.js";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const at = (minutes: number): string => new Date(T0 + minutes * 60_000).toISOString();
const noVault = {} as ObjectStore;

function segment(databaseId: string, stream: string, n: number, extra: Partial<WalRecord> = {}): WalRecord {
  // Names that do not sort by position: no zero padding.
  const name = `${stream}/seg-${n}.log`;
  return { databaseId, name, kind: "segment", timeline: 1, size: 100, storedSize: 10, sha256: "c".repeat(64), codec: "zstd", status: "stored", vaultKey: `db/${databaseId}/wal/${name}`, archivedAt: at(n + 0.5), closedAt: at(n), replicas: {}, ...extra };
}

function snapshot(databaseId: string, i: number, positions: Record<string, number>, finishedMinute: number): SnapshotRecord {
  const { timeline: _t, startLsn: _s, stopLsn: _p, ...rest } = pgSnapshotRecord(databaseId, `20260301T${String(i).padStart(6, "0")}Z-00000${i}`, 1n, at(finishedMinute), 16);
  return { ...rest, kind: "generic", streams: Object.fromEntries(Object.entries(positions).map(([s, p]) => [s, String(p)])) };
}

/**
 * A MemoryCatalog holding `db`'s registration, its snapshots and WAL, a Query
 * page of `pageSize` items; `marked`: walIndex "complete" (the WAL walked by
 * backfillWalIndex, as \`walvault catalog index-wal\` does); `lagging`: WAL
 * names the position index does not list yet.
 */
async function catalogOf(db: DatabaseRecord, snaps: readonly SnapshotRecord[], wal: readonly WalRecord[], opts: { pageSize: number; marked?: boolean; lagging?: ReadonlySet<string> }): Promise<MemoryCatalog> {
  const lagging = opts.lagging;
  const catalog = new MemoryCatalog({ pageSize: opts.pageSize, ...(lagging === undefined ? {} : { lagging: (item) => lagging.has(String(item["name"])) }) });
  // The WAL before the registration (a database registered after its WAL is not marked until it is walked), each
  // segment advancing the head as ingest's record step does (functions/ingest/record.ts).
  for (const w of wal) {
    await catalog.recordWal(w);
    const key = headSortKey(w);
    if (key !== undefined) await catalog.advanceHead(w.databaseId, w.name, key, w.archivedAt);
  }
  const { walIndex: _w, ...registration } = db;
  await catalog.putDatabase(registration);
  for (const snap of snaps) await catalog.recordSnapshot(snap);
  if (opts.marked === true) {
    let after: string | undefined;
    do after = (await catalog.backfillWalIndex(db.databaseId, after)).next;
    while (after !== undefined);
  }
  expect((await catalog.getDatabase(db.databaseId))?.walIndex).toBe(opts.marked === true ? "complete" : undefined);
  return catalog;
}

/** listWalPage calls a walk of the database's whole WAL takes (each page once). */
async function wholeWalPages(catalog: Catalog, databaseId: string): Promise<number> {
  let n = 0;
  let after: string | undefined;
  do {
    n++;
    after = (await catalog.listWalPage(databaseId, after)).next;
  } while (after !== undefined);
  return n;
}

/** The plans plan.ts makes: the first stream picks the snapshot, every other stream from the same one; or the error. */
function outcome(state: CatalogState, target: RestoreTarget): unknown {
  try {
    const first = planRestore(buildPlanInput(state, target, state.streams[0]));
    const rest = state.streams.slice(1).map((s) => planRestore(buildPlanInput(state, target, s, first.snapshot.id)));
    return JSON.parse(JSON.stringify([first, ...rest], (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

describe("planning state of a generic database", () => {
  it("keeps the WAL from the newest snapshot on, read a page at a time, and plans as the full read does", async () => {
    // Prepare: one stream, positions 1..3,000; snapshots at 100 and 2,900.
    const db: DatabaseRecord = { databaseId: "gen-bounded", kind: "generic", walSegmentSize: 16, createdAt: at(0) };
    const wal = Array.from({ length: 3_000 }, (_, i) => segment(db.databaseId, "s", i + 1));
    const snaps = [snapshot(db.databaseId, 1, { s: 100 }, 100.5), snapshot(db.databaseId, 2, { s: 2_900 }, 2_900.5)];
    const full = await catalogOf(db, snaps, wal, { pageSize: 500 });
    const paged = countingCatalog(full);

    // Act
    const state = await loadPlanningState(paged.catalog, noVault, "vault", db.databaseId, { kind: "latest" });

    // Assess
    expect(state.segments.length).toBeLessThanOrEqual(101);
    // Every page once (names do not sort by position: the whole list is walked), never more.
    expect(paged.pagesRead()).toBe(await wholeWalPages(full, db.databaseId));
    expect(outcome(state, { kind: "latest" })).toEqual(outcome(await loadCatalogState(full, noVault, "vault", db.databaseId), { kind: "latest" }));
  });

  it("gives the plan, or the error, the full read gives, for random archives and every target", async () => {
    for (let seed = 1; seed <= 40; seed++) {
      // Prepare: one or two streams, positions 1..N with gaps, some segments from complete or incomplete scans, 1-4 snapshots.
      const rnd = seededRandom(seed);
      const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
      const db: DatabaseRecord = { databaseId: `gen-rand-${seed}`, kind: "generic", walSegmentSize: 16, createdAt: at(0) };
      const streams = rnd() < 0.5 ? ["a"] : ["a", "b"];
      const wal: WalRecord[] = [];
      const end = int(20, 60);
      for (const s of streams) {
        const scanAt = at(end + 1);
        const scanned = rnd() < 0.5;
        for (let n = 1; n <= end; n++) if (rnd() > 0.05) wal.push(segment(db.databaseId, s, n, scanned && n > end - 3 ? { scanAt, scanCount: 3 } : {}));
      }
      // Listed in name order, as the catalog lists them (not position order).
      wal.sort((x, y) => (x.name < y.name ? -1 : 1));
      const snaps: SnapshotRecord[] = [];
      for (let i = 1; i <= int(1, 4); i++) {
        const p = int(1, end);
        snaps.push(snapshot(db.databaseId, i, Object.fromEntries(streams.map((s) => [s, s === "a" ? p : Math.max(1, p + int(-2, 2))])), p + 0.75));
      }
      const full = await catalogOf(db, snaps, wal, { pageSize: int(3, 20) });
      const catalog = countingCatalog(full).catalog;
      const byRange = countingCatalog(await catalogOf(db, snaps, wal, { pageSize: int(3, 20), marked: true })).catalog;
      const targets: RestoreTarget[] = [
        { kind: "latest" },
        { kind: "time", time: new Date(T0 + int(1, end + 5) * 60_000 + 20_000) },
        { kind: "snapshot", id: snaps[int(0, snaps.length - 1)]!.snapshotId },
        ...(streams.length === 1 ? [{ kind: "lsn" as const, lsn: BigInt(int(1, end + 3)) }, { kind: "name" as const, name: "no-such-point" }] : []),
      ];

      // Act + Assess
      const whole = await loadCatalogState(full, noVault, "vault", db.databaseId);
      for (const target of targets) {
        const bounded = await loadPlanningState(catalog, noVault, "vault", db.databaseId, target);
        const ranged = await loadPlanningState(byRange, noVault, "vault", db.databaseId, target);
        const what = `seed ${seed}, target ${JSON.stringify(target, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`;
        expect(outcome(bounded, target), what).toEqual(outcome(whole, target));
        expect(outcome({ ...ranged, database: db }, target), `${what}, by range`).toEqual(outcome(whole, target));
      }
    }
  });

  it("reads a database marked walIndex complete by position range, never a page of its WAL, and plans as the full read does", async () => {
    // Prepare: one stream, positions 1..3,000, each shipped by a watch scan of its own; snapshots at 100 and 2,900; listWalPage and listWal refuse.
    const db: DatabaseRecord = { databaseId: "gen-indexed", kind: "generic", walSegmentSize: 16, createdAt: at(0), walIndex: "complete" };
    const wal = Array.from({ length: 3_000 }, (_, i) => segment(db.databaseId, "s", i + 1, { startLsn: String(i + 1), scanAt: at(i + 1.25), scanCount: 1 }));
    const snaps = [snapshot(db.databaseId, 1, { s: 100 }, 100.5), snapshot(db.databaseId, 2, { s: 2_900 }, 2_900.5)];
    const full = await catalogOf(db, snaps, wal, { pageSize: 50, marked: true });
    const index = countingCatalog(full, { pages: false });

    // Act
    const latest = await loadPlanningState(index.catalog, noVault, "vault", db.databaseId, { kind: "latest" });
    const time = await loadPlanningState(index.catalog, noVault, "vault", db.databaseId, { kind: "time", time: new Date(T0 + 2_950 * 60_000) });

    // Assess: the range from the newest snapshot's position (2,900) on, 101 records, not 3,000.
    expect(latest.segments).toHaveLength(101);
    expect(index.recordsRead()).toBeLessThanOrEqual(2 * 101);
    const whole = await loadCatalogState(full, noVault, "vault", db.databaseId);
    expect(outcome(latest, { kind: "latest" })).toEqual(outcome(whole, { kind: "latest" }));
    const t = { kind: "time" as const, time: new Date(T0 + 2_950 * 60_000) };
    expect(outcome(time, t)).toEqual(outcome(whole, t));
  });

  it("plans with a segment archived a moment before the restore that the index does not list yet (the head, read from its record)", async () => {
    // Prepare: positions 1..300, the newest (300: the head) not in the index yet.
    const db: DatabaseRecord = { databaseId: "gen-lag", kind: "generic", walSegmentSize: 16, createdAt: at(0), walIndex: "complete" };
    const wal = Array.from({ length: 300 }, (_, i) => segment(db.databaseId, "s", i + 1, { startLsn: String(i + 1) }));
    const snaps = [snapshot(db.databaseId, 1, { s: 100 }, 100.5), snapshot(db.databaseId, 2, { s: 250 }, 250.5)];
    const catalog = countingCatalog(await catalogOf(db, snaps, wal, { pageSize: 100, marked: true, lagging: new Set(["s/seg-300.log"]) }), { pages: false });

    // Act
    const state = await loadPlanningState(catalog.catalog, noVault, "vault", db.databaseId, { kind: "latest" });
    const plan = planRestore(buildPlanInput(state, { kind: "latest" }, "s"));

    // Assess
    expect(plan.snapshot.id).toBe(snaps[1]!.snapshotId);
    expect(plan.endLsn).toBe(300n);
  });

  it("plans with another stream's segments archived a moment before the restore that the index does not list yet (the newest by name, from the record keys)", async () => {
    // Prepare: streams a and b, positions 1..300 with fixed-width names; the index lags on b's newest two (a's 300 is the head).
    const db: DatabaseRecord = { databaseId: "gen-lag-streams", kind: "generic", walSegmentSize: 16, createdAt: at(0), walIndex: "complete" };
    const padded = (stream: string, n: number, closed: number): WalRecord => ({ ...segment(db.databaseId, stream, n, { startLsn: String(n), closedAt: at(closed) }), name: `${stream}/${String(n).padStart(6, "0")}.log` });
    const wal = [...Array.from({ length: 300 }, (_, i) => padded("a", i + 1, i + 1)), ...Array.from({ length: 300 }, (_, i) => padded("b", i + 1, i + 0.5))];
    const snaps = [snapshot(db.databaseId, 1, { a: 100, b: 100 }, 100.75), snapshot(db.databaseId, 2, { a: 250, b: 250 }, 250.75)];
    const catalog = countingCatalog(await catalogOf(db, snaps, wal, { pageSize: 100, marked: true, lagging: new Set(["b/000299.log", "b/000300.log"]) }), { pages: false });

    // Act
    const state = await loadPlanningState(catalog.catalog, noVault, "vault", db.databaseId, { kind: "latest" });
    const plans = outcome(state, { kind: "latest" }) as { endLsn: string }[];

    // Assess
    expect(plans.map((p) => p.endLsn)).toEqual(["300", "300"]);
  });

  it("reports a gap the index shows only from the consistent pass over the pages: a segment the index lags on is no gap", async () => {
    // Prepare: positions 1..300; the index lags on 260, which the pages hold.
    const db: DatabaseRecord = { databaseId: "gen-lag-gap", kind: "generic", walSegmentSize: 16, createdAt: at(0), walIndex: "complete" };
    const wal = Array.from({ length: 300 }, (_, i) => segment(db.databaseId, "s", i + 1, { startLsn: String(i + 1) }));
    const snaps = [snapshot(db.databaseId, 1, { s: 100 }, 100.5), snapshot(db.databaseId, 2, { s: 250 }, 250.5)];
    const full = await catalogOf(db, snaps, wal, { pageSize: 100, marked: true, lagging: new Set(["s/seg-260.log"]) });
    const paged = countingCatalog(full);

    // Act
    const state = await loadPlanningState(paged.catalog, noVault, "vault", db.databaseId, { kind: "latest" });
    const plan = planRestore(buildPlanInput(state, { kind: "latest" }, "s"));

    // Assess
    expect(plan.snapshot.id).toBe(snaps[1]!.snapshotId);
    expect(plan.endLsn).toBe(300n);
    expect(paged.pagesRead()).toBe(await wholeWalPages(full, db.databaseId));
  });

  it("reads a database not marked walIndex complete page by page, as before (its older records have no position key)", async () => {
    // Prepare
    const db: DatabaseRecord = { databaseId: "gen-unmarked", kind: "generic", walSegmentSize: 16, createdAt: at(0) };
    const wal = Array.from({ length: 300 }, (_, i) => segment(db.databaseId, "s", i + 1, { startLsn: String(i + 1) }));
    const snaps = [snapshot(db.databaseId, 1, { s: 100 }, 100.5), snapshot(db.databaseId, 2, { s: 250 }, 250.5)];
    const full = await catalogOf(db, snaps, wal, { pageSize: 100 });
    const paged = countingCatalog(full);

    // Act
    const state = await loadPlanningState(paged.catalog, noVault, "vault", db.databaseId, { kind: "latest" });

    // Assess
    expect(state.segments).toHaveLength(51);
    expect(paged.pagesRead()).toBe(await wholeWalPages(full, db.databaseId));
    expect(paged.rangesRead()).toBe(0);
  });

  it("reads a marked database page by page when the catalog cannot read the index (no index, or no grant: ConfigError)", async () => {
    // Prepare
    const db: DatabaseRecord = { databaseId: "gen-no-grant", kind: "generic", walSegmentSize: 16, createdAt: at(0), walIndex: "complete" };
    const wal = Array.from({ length: 300 }, (_, i) => segment(db.databaseId, "s", i + 1, { startLsn: String(i + 1) }));
    const snaps = [snapshot(db.databaseId, 1, { s: 100 }, 100.5), snapshot(db.databaseId, 2, { s: 250 }, 250.5)];
    const full = await catalogOf(db, snaps, wal, { pageSize: 100, marked: true });
    const paged = countingCatalog(full, { index: "denied" });

    // Act
    const state = await loadPlanningState(paged.catalog, noVault, "vault", db.databaseId, { kind: "latest" });

    // Assess
    expect(state.segments).toHaveLength(51);
    expect(paged.pagesRead()).toBe(await wholeWalPages(full, db.databaseId));
    expect(planRestore(buildPlanInput(state, { kind: "latest" }, "s")).endLsn).toBe(300n);
  });
});
