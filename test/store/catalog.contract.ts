/**
 * The Catalog contract (store/catalog.ts), as one suite every implementation
 * runs: call catalogContract() from a *.test.ts file with a factory that
 * returns a fresh, empty catalog for each test.
 */
import { createHash } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { headSortKey } from "../../core/catalog-records.js";
import { CatalogFaultError, InvalidInputError, NotFoundError, SegmentConflictError, ServiceUnavailableError, SnapshotConflictError } from "../../core/errors.js";
import type { ChunkItem, DatabaseRecord, PackItem, QuarantineRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { rejection } from "../support/rejection.js";

export interface CatalogFixture {
  /** A fresh, empty catalog. */
  catalog: Catalog;
  /** A catalog of the same kind pointed at an endpoint where nothing listens, and that endpoint's text. */
  unreachable: { catalog: Catalog; endpoint: string };
}

export interface CatalogFactoryOptions {
  /** Items per page for listings; small values make them cross pages with few items. */
  pageSize?: number;
}

export type CatalogFactory = (opts?: CatalogFactoryOptions) => CatalogFixture | Promise<CatalogFixture>;

/** Replica regions whose pending records the factory's catalogs must be able to list (listUnreplicated). */
export const CONTRACT_REPLICA_REGIONS = ["us-west-2", "eu-west-1"] as const;

const DB = "pg-main";

function sha(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, "0");
}

function segmentName(timeline: number, segno: number): string {
  return `${hex8(timeline)}${hex8(Math.floor(segno / 256))}${hex8(segno % 256)}`;
}

function wal(name: string, overrides: Partial<WalRecord> = {}): WalRecord {
  const timeline = Number.parseInt(name.slice(0, 8), 16);
  const kind = name.endsWith(".history") ? "history" : name.endsWith(".partial") ? "partial" : "segment";
  return {
    databaseId: DB,
    name,
    kind,
    timeline,
    size: 16 * 1024 * 1024,
    storedSize: 1024,
    sha256: sha(name),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${DB}/wal/${hex8(timeline)}/${name}`,
    archivedAt: "2025-01-01T00:00:00.000Z",
    replicas: {},
    ...overrides,
  };
}

/** A generic segment `<stream>/<file>` at `position` (decimal startLsn, as ingest records it). */
function genericSegment(stream: string, file: string, position: number, overrides: Partial<WalRecord> = {}): WalRecord {
  const name = `${stream}/${file}`;
  return wal(name, { timeline: 1, startLsn: String(position), vaultKey: `db/${DB}/wal/${name}`, closedAt: "2025-01-01T00:00:00.000Z", ...overrides });
}

function database(databaseId: string, overrides: Partial<DatabaseRecord> = {}): DatabaseRecord {
  return { databaseId, kind: "postgres", walSegmentSize: 16 * 1024 * 1024, createdAt: "2025-01-01T00:00:00.000Z", ...overrides };
}

function quarantine(name: string, at: string, overrides: Partial<QuarantineRecord> = {}): QuarantineRecord {
  return {
    databaseId: DB,
    name,
    incomingKey: `incoming/db/${DB}/wal/${name}`,
    error: "ChecksumMismatchError",
    reason: `bytes of ${name} do not match`,
    at,
    ...overrides,
  };
}

/** Snapshot ids sort by start time: zero-padded UTC time first. */
function snapshotId(n: number): string {
  return `2025010${1 + Math.floor(n / 100)}T${String(n % 100).padStart(2, "0")}0000Z-${hex8(n).toLowerCase()}`;
}

function snapshot(id: string, overrides: Partial<SnapshotRecord> = {}): SnapshotRecord {
  return {
    databaseId: DB,
    snapshotId: id,
    kind: "postgres",
    timeline: 1,
    startLsn: "0/3000028",
    stopLsn: "0/3000100",
    startWalFile: segmentName(1, 3),
    stopWalFile: segmentName(1, 3),
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:01:00.000Z",
    manifestKey: `db/${DB}/snapshots/${id}/manifest.json`,
    manifestSha256: sha(`manifest ${id}`),
    manifestSize: 4096,
    totals: { files: 3, logicalBytes: 3 << 20, uniqueChunks: 4, newChunks: 2, storedBytes: 1 << 20, newStoredBytes: 1 << 19 },
    status: "restorable",
    recordedAt: "2025-01-01T00:02:00.000Z",
    replicas: {},
    ...overrides,
  };
}

function chunkHash(n: number): string {
  return sha(`chunk ${n}`);
}

function chunk(sha256: string, overrides: Partial<ChunkItem> = {}): ChunkItem {
  const databaseId = overrides.databaseId ?? DB;
  return {
    databaseId,
    sha256,
    size: 2 << 20,
    storedSize: 1 << 20,
    codec: "zstd",
    vaultKey: `db/${databaseId}/chunks/${sha256}`,
    recordedAt: "2025-01-01T00:00:00.000Z",
    ...overrides,
  };
}

export function catalogContract(name: string, factory: CatalogFactory): void {
  describe(`Catalog contract: ${name}`, () => {
    let catalog: Catalog;
    let fixture: CatalogFixture;

    beforeEach(async () => {
      fixture = await factory();
      catalog = fixture.catalog;
    });

    describe("databases", () => {
      it("getDatabase resolves undefined for an unknown id", async () => {
        // Act
        const got = await catalog.getDatabase("never-registered");

        // Assess
        expect(got).toBeUndefined();
      });

      it("putDatabase creates a registration that getDatabase returns", async () => {
        // Prepare
        const record = database(DB);

        // Act
        await catalog.putDatabase(record);

        // Assess
        expect(await catalog.getDatabase(DB)).toEqual(record);
      });

      it("putDatabase replaces an existing registration", async () => {
        // Prepare
        await catalog.putDatabase(database(DB, { kind: "postgres" }));

        // Act
        await catalog.putDatabase(database(DB, { kind: "generic", walSegmentSize: 64 * 1024 * 1024 }));

        // Assess: a generic database with no WAL is marked walIndex "complete" (see "walIndex" below).
        expect(await catalog.getDatabase(DB)).toEqual(database(DB, { kind: "generic", walSegmentSize: 64 * 1024 * 1024, walIndex: "complete" }));
        expect(await catalog.listDatabases()).toHaveLength(1);
      });

      it("putDatabase marks a generic database registered before any WAL walIndex complete, and a re-registration without the mark keeps it", async () => {
        // Prepare
        await catalog.putDatabase(database(DB, { kind: "generic" }));
        await catalog.recordWal(genericSegment("wal", "000001.log", 1));

        // Act: registered again as a caller that read no mark would write it (a new RPO threshold).
        await catalog.putDatabase(database(DB, { kind: "generic", rpoSeconds: 60 }));

        // Assess
        expect(await catalog.getDatabase(DB)).toEqual(database(DB, { kind: "generic", rpoSeconds: 60, walIndex: "complete" }));
        expect((await catalog.listDatabases()).map((d) => d.walIndex)).toEqual(["complete"]);
      });

      it("putDatabase does not mark a generic database whose WAL was recorded before, even when the record passed says so, nor a PostgreSQL one", async () => {
        // Prepare: WAL recorded before the registration (a catalog from before the index looks so).
        await catalog.recordWal(genericSegment("wal", "000001.log", 1));

        // Act
        await catalog.putDatabase(database(DB, { kind: "generic", walIndex: "complete" }));
        await catalog.putDatabase(database("pg-new", { walIndex: "complete" }));

        // Assess
        expect(await catalog.getDatabase(DB)).toEqual(database(DB, { kind: "generic" }));
        expect(await catalog.getDatabase("pg-new")).toEqual(database("pg-new"));
      });

      it("recordWal of a segment the position index cannot hold (a PostgreSQL-like name with a position) removes the walIndex mark; PostgreSQL WAL does not", async () => {
        // Prepare: two marked generic databases.
        await catalog.putDatabase(database(DB, { kind: "generic" }));
        await catalog.putDatabase(database("gen-other", { kind: "generic" }));
        await catalog.recordWal(genericSegment("wal", "seg-1.log", 1));

        // Act: an upload under a PostgreSQL-like key to one, a PostgreSQL segment (an LSN) to the other.
        await catalog.recordWal(wal(segmentName(1, 2), { startLsn: "2", vaultKey: `db/${DB}/wal/00000001/${segmentName(1, 2)}` }));
        await catalog.recordWal(wal(segmentName(1, 2), { databaseId: "gen-other", startLsn: "0/2000000" }));

        // Assess
        expect((await catalog.getDatabase(DB))?.walIndex).toBeUndefined();
        expect((await catalog.getDatabase("gen-other"))?.walIndex).toBe("complete");
        expect((await catalog.listDatabases()).map((d) => [d.databaseId, d.walIndex])).toEqual([
          ["gen-other", "complete"],
          [DB, undefined],
        ]);
      });

      it("listDatabases returns every registration across pages, and none of the other items", async () => {
        // Prepare: five databases with WAL and heads beside them, listed two per page
        const paged = (await factory({ pageSize: 2 })).catalog;
        const ids = ["db-e", "db-a", "db-c", "db-b", "db-d"];
        for (const id of ids) {
          await paged.putDatabase(database(id));
          await paged.recordWal(wal(segmentName(1, 1), { databaseId: id }));
          await paged.advanceHead(id, segmentName(1, 1), "0000000100000001", "2025-01-01T00:00:00.000Z");
        }

        // Act
        const listed = await paged.listDatabases();

        // Assess
        expect(listed.map((d) => d.databaseId).sort()).toEqual([...ids].sort());
        expect(listed.every((d) => d.kind === "postgres")).toBe(true);
      });

      it("listDatabases lists a registration as soon as putDatabase resolves, once, with its latest contents", async () => {
        // Prepare
        await catalog.putDatabase(database("db-a"));
        const before = await catalog.listDatabases();

        // Act: register another, and replace the first twice
        await catalog.putDatabase(database("db-b"));
        await catalog.putDatabase(database("db-a", { kind: "generic" }));
        await catalog.putDatabase(database("db-a", { kind: "generic", walSegmentSize: 64 * 1024 * 1024 }));
        const after = await catalog.listDatabases();

        // Assess
        expect(before).toEqual([database("db-a")]);
        expect(after).toEqual([database("db-a", { kind: "generic", walSegmentSize: 64 * 1024 * 1024, walIndex: "complete" }), database("db-b")]);
      });

      it("listDatabasePage pages through many registrations in id order, each exactly once, beside their other items", async () => {
        // Prepare: 23 databases registered out of order, each with WAL, chunks and a head
        const ids = Array.from({ length: 23 }, (_, i) => `db-${String((i * 7) % 23).padStart(3, "0")}`);
        for (const id of ids) {
          await catalog.putDatabase(database(id));
          await catalog.recordWal(wal(segmentName(1, 1), { databaseId: id }));
          await catalog.recordChunks([chunk(chunkHash(1), { databaseId: id }), chunk(chunkHash(2), { databaseId: id })]);
          await catalog.advanceHead(id, segmentName(1, 1), "0000000100000001", "2025-01-01T00:00:00.000Z");
        }

        // Act: pages of 4, each continuing after the last one's `next`
        const pages: string[][] = [];
        let after: string | undefined;
        do {
          const page = await catalog.listDatabasePage(after, 4);
          pages.push(page.databases.map((d) => d.databaseId));
          after = page.next;
        } while (after !== undefined && pages.length < 50);

        // Assess
        expect(pages.every((p) => p.length <= 4)).toBe(true);
        expect(pages.flat()).toEqual([...ids].sort());
        expect(pages.length).toBeGreaterThanOrEqual(6);
      });

      it("listDatabases follows every page, so a small page size still lists every registration once", async () => {
        // Prepare: three per page
        const paged = (await factory({ pageSize: 3 })).catalog;
        const ids = Array.from({ length: 17 }, (_, i) => `pg-${String(16 - i).padStart(2, "0")}`);
        for (const id of ids) await paged.putDatabase(database(id));

        // Act
        const listed = await paged.listDatabases();

        // Assess
        expect(listed.map((d) => d.databaseId)).toEqual([...ids].sort());
      });

      it("listDatabasePage of a catalog without registrations is one empty page", async () => {
        // Prepare: items of a database that was never registered
        await catalog.recordWal(wal(segmentName(1, 1), { databaseId: "never-registered" }));

        // Act
        const page = await catalog.listDatabasePage();

        // Assess
        expect(page).toEqual({ databases: [] });
      });

      it("listDatabasePage rejects a cursor that is not a database id with InvalidInputError", async () => {
        // Act
        const err = await rejection(catalog.listDatabasePage("NOT AN ID"));

        // Assess
        expect(err).toBeInstanceOf(InvalidInputError);
        expect((err as Error).message).toContain("NOT AN ID");
      });
    });

    describe("recordWal", () => {
      it("creates the record when the name is new and getWal returns it", async () => {
        // Prepare
        const record = wal(segmentName(1, 3));

        // Act
        const outcome = await catalog.recordWal(record);

        // Assess
        expect(outcome).toEqual({ outcome: "created", record });
        expect(await catalog.getWal(DB, record.name)).toEqual(record);
      });

      it("resolves duplicate with the existing record and changes nothing when the same bytes come again", async () => {
        // Prepare
        const first = wal(segmentName(1, 3), { archivedAt: "2025-01-01T00:00:00.000Z" });
        await catalog.recordWal(first);
        const again = wal(segmentName(1, 3), { archivedAt: "2025-01-02T00:00:00.000Z", storedSize: 999 });

        // Act
        const outcome = await catalog.recordWal(again);

        // Assess
        expect(outcome).toEqual({ outcome: "duplicate", record: first });
        expect(await catalog.getWal(DB, first.name)).toEqual(first);
      });

      it("rejects with SegmentConflictError naming the file, the database and both hashes when the bytes differ, keeping the first", async () => {
        // Prepare
        const first = wal(segmentName(1, 3), { sha256: sha("first") });
        await catalog.recordWal(first);
        const other = wal(segmentName(1, 3), { sha256: sha("second") });

        // Act
        const err = await rejection(catalog.recordWal(other));

        // Assess
        expect(err).toBeInstanceOf(SegmentConflictError);
        const message = (err as Error).message;
        expect(message).toContain(first.name);
        expect(message).toContain(DB);
        expect(message).toContain(sha("first").slice(0, 8));
        expect(message).toContain(sha("second").slice(0, 8));
        expect(await catalog.getWal(DB, first.name)).toEqual(first);
      });

      it("keeps records of different databases apart", async () => {
        // Prepare
        await catalog.recordWal(wal(segmentName(1, 3), { databaseId: "pg-one", sha256: sha("one") }));

        // Act
        const outcome = await catalog.recordWal(wal(segmentName(1, 3), { databaseId: "pg-one-b", sha256: sha("two") }));

        // Assess
        expect(outcome.outcome).toBe("created");
        expect((await catalog.getWal("pg-one", segmentName(1, 3)))?.sha256).toBe(sha("one"));
        expect((await catalog.getWal("pg-one-b", segmentName(1, 3)))?.sha256).toBe(sha("two"));
      });

      it("keeps generic segments of the same file name in two streams apart, and sets their replica status by name", async () => {
        // Prepare: stripe-1/000001.wal and stripe-2/000001.wal of one generic database.
        const gen = (stream: string, bytes: string): WalRecord =>
          wal(segmentName(1, 1), {
            databaseId: "gen-one",
            name: `${stream}/000001.wal`,
            timeline: 1,
            startLsn: "1",
            sha256: sha(bytes),
            vaultKey: `db/gen-one/wal/${stream}/000001.wal`,
            closedAt: "2025-01-01T00:00:00.000Z",
          });
        // Act
        const a = await catalog.recordWal(gen("stripe-1", "a"));
        const b = await catalog.recordWal(gen("stripe-2", "b"));
        const conflict = await catalog.recordWal(gen("stripe-1", "c")).catch((e: unknown) => e);
        await catalog.setReplicaStatus("gen-one", "stripe-2/000001.wal", "eu-west-1", { status: "replicated", at: "2025-01-01T00:00:01.000Z" });
        // Assess
        expect([a.outcome, b.outcome]).toEqual(["created", "created"]);
        expect(conflict).toBeInstanceOf(SegmentConflictError);
        expect((await catalog.getWal("gen-one", "stripe-1/000001.wal"))?.sha256).toBe(sha("a"));
        expect((await catalog.getWal("gen-one", "stripe-2/000001.wal"))?.replicas["eu-west-1"]?.status).toBe("replicated");
        expect((await catalog.listWal("gen-one")).map((r) => r.name)).toEqual(["stripe-1/000001.wal", "stripe-2/000001.wal"]);
        expect(await catalog.getWal("gen-one", "stripe-1/../x")).toBeUndefined();
      });

      it("treats concurrent pushes of the same bytes as one create and the rest duplicates", async () => {
        // Prepare
        const record = wal(segmentName(1, 9));

        // Act
        const outcomes = await Promise.all(Array.from({ length: 6 }, () => catalog.recordWal(record)));

        // Assess
        expect(outcomes.filter((o) => o.outcome === "created")).toHaveLength(1);
        expect(outcomes.filter((o) => o.outcome === "duplicate")).toHaveLength(5);
        for (const o of outcomes) expect(o.record).toEqual(record);
      });
    });

    describe("getWal and listWal", () => {
      it("getWal resolves undefined for a name never recorded", async () => {
        // Prepare: another name of the same database is recorded
        await catalog.recordWal(wal(segmentName(1, 1)));

        // Act
        const got = await catalog.getWal(DB, segmentName(1, 2));

        // Assess
        expect(got).toBeUndefined();
        expect(await catalog.getWal("pg-other", segmentName(1, 1))).toBeUndefined();
      });

      it("listWal returns every record ordered by timeline, then name, across pages", async () => {
        // Prepare: timelines 1, 2, 9, 10 (0xA) and 16 (0x10), history and partial files, written shuffled, 3 per page
        const paged = (await factory({ pageSize: 3 })).catalog;
        const expected = [
          segmentName(1, 1),
          segmentName(1, 2),
          segmentName(1, 255),
          segmentName(1, 256),
          `${segmentName(1, 257)}.partial`,
          "00000002.history",
          segmentName(2, 257),
          segmentName(2, 258),
          segmentName(9, 1),
          segmentName(10, 1),
          segmentName(16, 1),
        ];
        const shuffled = [...expected].sort(() => Math.random() - 0.5);
        for (const name of shuffled) await paged.recordWal(wal(name));
        await paged.recordWal(wal(segmentName(1, 5), { databaseId: "pg-other" }));
        await paged.putDatabase(database(DB));
        await paged.advanceHead(DB, segmentName(16, 1), "0000001000000001", "2025-01-01T00:00:00.000Z");
        await paged.recordQuarantine(quarantine(segmentName(1, 3), "2025-01-01T00:00:00.000Z"));

        // Act
        const listed = await paged.listWal(DB);

        // Assess
        expect(listed.map((r) => r.name)).toEqual(expected);
        expect(listed.every((r) => r.databaseId === DB)).toBe(true);
      });

      it("getWal and listWal return the restore points ingest recorded on a segment, as written", async () => {
        // Prepare
        const restorePoints = [
          { name: "before_migration", lsn: "0/3000A48", time: "2025-01-01T00:00:01.123456Z" },
          { name: "naïve name", lsn: "0/3001000", time: "2025-01-01T00:00:02Z" },
        ];
        await catalog.recordWal(wal(segmentName(1, 3), { restorePoints, restorePointsTruncated: true }));
        await catalog.recordWal(wal(segmentName(1, 4)));

        // Act
        const got = await catalog.getWal(DB, segmentName(1, 3));
        const listed = await catalog.listWal(DB);

        // Assess
        expect(got?.restorePoints).toEqual(restorePoints);
        expect(got?.restorePointsTruncated).toBe(true);
        expect(listed.map((r) => r.restorePoints)).toEqual([restorePoints, undefined]);
      });

      it("listWalPage pages through every WAL record in listWal order, each once, from a cursor that need not exist any more", async () => {
        // Prepare: PostgreSQL names on two timelines, generic names in two streams, other items and another database beside them.
        const names = [segmentName(1, 1), segmentName(1, 2), `${segmentName(1, 3)}.partial`, "00000002.history", segmentName(2, 3), segmentName(2, 4)];
        for (const name of [...names].reverse()) await catalog.recordWal(wal(name));
        const generic = ["a/0001.wal", "a/0002.wal", "b/0001.wal"];
        for (const name of generic) await catalog.recordWal(wal(name, { timeline: 1, vaultKey: `db/${DB}/wal/${name}` }));
        await catalog.recordWal(wal(segmentName(1, 9), { databaseId: "pg-other" }));
        await catalog.putDatabase(database(DB));
        const all = (await catalog.listWal(DB)).map((r) => r.name);

        // Act: pages of 2, and a cursor whose record is deleted before it is used.
        const seen: string[] = [];
        let after: string | undefined;
        let pages = 0;
        do {
          const page = await catalog.listWalPage(DB, after, 2);
          seen.push(...page.records.map((r) => r.name));
          if (pages++ === 1) await catalog.deleteWal(DB, [page.next!]);
          after = page.next;
        } while (after !== undefined);
        const bad = await catalog.listWalPage(DB, "not a wal name!", 2).then(
          () => undefined,
          (e: unknown) => e,
        );

        // Assess
        expect(seen).toEqual(all);
        expect(all).toHaveLength(names.length + generic.length);
        expect(pages).toBeLessThanOrEqual(Math.ceil(all.length / 2) + 1);
        expect(bad).toBeInstanceOf(InvalidInputError);
      });

      it("listWal returns an empty list for a database without WAL", async () => {
        // Act
        const listed = await catalog.listWal("pg-empty");

        // Assess
        expect(listed).toEqual([]);
      });
    });

    describe("listWalRange and listWalTimelines", () => {
      /** Timelines 1, 2 and 16 (0x10) with history, partial and backup files, written shuffled, 3 per page; another database beside them. */
      async function archive(): Promise<Catalog> {
        const paged = (await factory({ pageSize: 3 })).catalog;
        const names = [
          ...[1, 2, 3, 255, 256].map((n) => segmentName(1, n)),
          `${segmentName(1, 2)}.00000028.backup`,
          `${segmentName(1, 257)}.partial`,
          ...["00000002.history", segmentName(2, 257), segmentName(2, 258)],
          ...["00000010.history", segmentName(16, 1)],
        ];
        for (const name of [...names].sort(() => Math.random() - 0.5)) {
          await paged.recordWal(wal(name, name.endsWith(".backup") ? { kind: "backup" } : {}));
        }
        await paged.recordWal(wal(segmentName(1, 2), { databaseId: "pg-other" }));
        await paged.recordWal(wal("00000003.history", { databaseId: "pg-other" }));
        await paged.putDatabase(database(DB));
        await paged.advanceHead(DB, segmentName(16, 1), "0000001000000001", "2025-01-01T00:00:00.000Z");
        return paged;
      }

      it("listWalRange returns the records of one timeline from one name through another, in name order, across pages", async () => {
        // Prepare
        const paged = await archive();

        // Act
        const range = await paged.listWalRange(DB, 1, segmentName(1, 2), segmentName(1, 255));
        const toEnd = await paged.listWalRange(DB, 1, segmentName(1, 255), undefined);
        const other = await paged.listWalRange(DB, 2, segmentName(2, 0), undefined);

        // Assess
        expect(range.map((r) => r.name)).toEqual([segmentName(1, 2), `${segmentName(1, 2)}.00000028.backup`, segmentName(1, 3), segmentName(1, 255)]);
        expect(toEnd.map((r) => r.name)).toEqual([segmentName(1, 255), segmentName(1, 256), `${segmentName(1, 257)}.partial`]);
        expect(other.map((r) => r.name)).toEqual([segmentName(2, 257), segmentName(2, 258)]);
        expect([...range, ...toEnd, ...other].every((r) => r.databaseId === DB)).toBe(true);
      });

      it("listWalRange stops at the limit, newest first when asked, and is empty for a range with no records", async () => {
        // Prepare
        const paged = await archive();

        // Act
        const newest = await paged.listWalRange(DB, 1, segmentName(1, 0), segmentName(1, 255), { limit: 4, newestFirst: true });
        const oldest = await paged.listWalRange(DB, 1, segmentName(1, 0), undefined, { limit: 2 });
        const empty = await paged.listWalRange(DB, 1, segmentName(1, 4), segmentName(1, 254));
        const reversed = await paged.listWalRange(DB, 1, segmentName(1, 3), segmentName(1, 2));
        const none = await paged.listWalRange(DB, 3, segmentName(3, 0), undefined);

        // Assess
        expect(newest.map((r) => r.name)).toEqual([segmentName(1, 255), segmentName(1, 3), `${segmentName(1, 2)}.00000028.backup`, segmentName(1, 2)]);
        expect(oldest.map((r) => r.name)).toEqual([segmentName(1, 1), segmentName(1, 2)]);
        expect(empty).toEqual([]);
        expect(reversed).toEqual([]);
        expect(none).toEqual([]);
      });

      it("listWalRange rejects a timeline that is not a timeline number, or a limit that is not positive, with InvalidInputError", async () => {
        // Act
        const badTimeline = await rejection(catalog.listWalRange(DB, 0, segmentName(1, 0), undefined));
        const badLimit = await rejection(catalog.listWalRange(DB, 1, segmentName(1, 0), undefined, { limit: 0 }));

        // Assess
        expect(badTimeline).toBeInstanceOf(InvalidInputError);
        expect(badLimit).toBeInstanceOf(InvalidInputError);
      });

      /**
       * Generic segments of streams `wal` and `wal-2` whose file names do not sort by position (seg-9 after seg-10),
       * written shuffled, 3 per page; PostgreSQL WAL, a generic history-like record and another database beside them.
       */
      async function genericArchive(): Promise<Catalog> {
        const paged = (await factory({ pageSize: 3 })).catalog;
        const records = [
          ...[1, 2, 3, 9, 10, 11, 100, 101].map((n) => genericSegment("wal", `seg-${n}.log`, n)),
          ...[5, 6, 7].map((n) => genericSegment("wal-2", `seg-${n}.log`, n)),
          wal(segmentName(1, 5)),
          genericSegment("wal", "seg-4.partial", 4, { kind: "partial" }),
          genericSegment("wal", "seg-5.log", 5, { databaseId: "pg-other", vaultKey: "db/pg-other/wal/wal/seg-5.log" }),
        ];
        for (const r of [...records].sort(() => Math.random() - 0.5)) await paged.recordWal(r);
        return paged;
      }

      it("listGenericWalRange returns one stream's segments from one position through another, in position order, whatever their names", async () => {
        // Prepare
        const paged = await genericArchive();

        // Act
        const range = await paged.listGenericWalRange(DB, "wal", 3n, 100n);
        const toEnd = await paged.listGenericWalRange(DB, "wal", 10n, undefined);
        const other = await paged.listGenericWalRange(DB, "wal-2", 0n, undefined);

        // Assess
        expect(range.records.map((r) => r.name)).toEqual(["wal/seg-3.log", "wal/seg-9.log", "wal/seg-10.log", "wal/seg-11.log", "wal/seg-100.log"]);
        expect(range.records[0]).toEqual(genericSegment("wal", "seg-3.log", 3));
        expect(range.next).toBeUndefined();
        expect(toEnd.records.map((r) => r.name)).toEqual(["wal/seg-10.log", "wal/seg-11.log", "wal/seg-100.log", "wal/seg-101.log"]);
        expect(other.records.map((r) => r.name)).toEqual(["wal-2/seg-5.log", "wal-2/seg-6.log", "wal-2/seg-7.log"]);
        expect([...range.records, ...toEnd.records, ...other.records].every((r) => r.databaseId === DB)).toBe(true);
      });

      it("listGenericWalRange pages by `limit` with `next`, each record once, and is empty for a range with no segments", async () => {
        // Prepare
        const paged = await genericArchive();

        // Act
        const seen: string[] = [];
        let after: string | undefined;
        let pages = 0;
        do {
          const page = await paged.listGenericWalRange(DB, "wal", 2n, 101n, { limit: 2, ...(after === undefined ? {} : { after }) });
          expect(page.records.length).toBeLessThanOrEqual(2);
          seen.push(...page.records.map((r) => r.name));
          after = page.next;
          pages++;
        } while (after !== undefined);
        const empty = await paged.listGenericWalRange(DB, "wal", 12n, 99n);
        const reversed = await paged.listGenericWalRange(DB, "wal", 10n, 9n);
        const none = await paged.listGenericWalRange(DB, "wal-3", 0n, undefined);
        const pg = await paged.listGenericWalRange(DB, "00000001", 0n, undefined);

        // Assess
        expect(seen).toEqual(["wal/seg-2.log", "wal/seg-3.log", "wal/seg-9.log", "wal/seg-10.log", "wal/seg-11.log", "wal/seg-100.log", "wal/seg-101.log"]);
        expect(pages).toBeLessThanOrEqual(5);
        expect([empty, reversed, none, pg]).toEqual([{ records: [] }, { records: [] }, { records: [] }, { records: [] }]);
      });

      it("listGenericWalRange rejects a stream that is not a stream id, a page size out of range, or a cursor it did not return, with InvalidInputError", async () => {
        // Act
        const rejected = await Promise.all([
          rejection(catalog.listGenericWalRange(DB, "no/stream", 0n, undefined)),
          rejection(catalog.listGenericWalRange(DB, "wal", 0n, undefined, { limit: 0 })),
          rejection(catalog.listGenericWalRange(DB, "wal", 0n, undefined, { limit: 1001 })),
          rejection(catalog.listGenericWalRange(DB, "wal", 0n, undefined, { after: "wal/seg-1.log" })),
        ]);

        // Assess
        for (const e of rejected) expect(e).toBeInstanceOf(InvalidInputError);
      });

      it("listGenericWalNewest returns one stream's records with the greatest file names, greatest first, consistently", async () => {
        // Prepare
        const paged = await genericArchive();

        // Act
        const newest = await paged.listGenericWalNewest(DB, "wal", 3);
        const other = await paged.listGenericWalNewest(DB, "wal-2", 100);
        const none = await paged.listGenericWalNewest(DB, "wal-3", 5);
        const rejected = await Promise.all([rejection(paged.listGenericWalNewest(DB, "no/stream", 1)), rejection(paged.listGenericWalNewest(DB, "wal", 0)), rejection(paged.listGenericWalNewest(DB, "wal", 101))]);

        // Assess: name order, not position order (seg-9 sorts after seg-101).
        expect(newest.map((r) => r.name)).toEqual(["wal/seg-9.log", "wal/seg-4.partial", "wal/seg-3.log"]);
        expect(other.map((r) => r.name)).toEqual(["wal-2/seg-7.log", "wal-2/seg-6.log", "wal-2/seg-5.log"]);
        expect(none).toEqual([]);
        for (const e of rejected) expect(e).toBeInstanceOf(InvalidInputError);
      });

      it("backfillWalIndex goes through a database registered after its WAL a bounded page at a time, then marks it walIndex complete; walked again, it finds every key in place", async () => {
        // Prepare: WAL first (so the registration is not marked), 7 records with a history-like partial among them.
        const paged = (await factory({ pageSize: 3 })).catalog;
        for (const n of [1, 2, 3, 9, 10, 11]) await paged.recordWal(genericSegment("wal", `seg-${n}.log`, n));
        await paged.recordWal(genericSegment("wal", "seg-4.partial", 4, { kind: "partial" }));
        await paged.putDatabase(database(DB, { kind: "generic" }));
        const before = await paged.getDatabase(DB);

        // Act
        const calls = [];
        let after: string | undefined;
        do {
          const page = await paged.backfillWalIndex(DB, after, 2);
          calls.push(page);
          after = page.next;
        } while (after !== undefined);
        const again = await paged.backfillWalIndex(DB);

        // Assess
        expect(before?.walIndex).toBeUndefined();
        expect(calls.every((c) => c.examined <= 2)).toBe(true);
        expect(calls.reduce((n, c) => n + c.examined, 0)).toBe(7);
        expect(calls.at(-1)).toMatchObject({ marked: true });
        expect(calls.slice(0, -1).every((c) => c.marked === undefined)).toBe(true);
        expect((await paged.getDatabase(DB))?.walIndex).toBe("complete");
        expect((await paged.listDatabases()).map((d) => d.walIndex)).toEqual(["complete"]);
        expect(again).toEqual({ examined: 7, updated: 0, marked: true });
        expect((await paged.listGenericWalRange(DB, "wal", 0n, undefined)).records.map((r) => r.name)).toEqual(["wal/seg-1.log", "wal/seg-2.log", "wal/seg-3.log", "wal/seg-9.log", "wal/seg-10.log", "wal/seg-11.log"]);
      });

      it("backfillWalIndex refuses to mark a database with a segment record that cannot carry a position key, and rejects what has no index to build", async () => {
        // Prepare: a generic database whose older segments have PostgreSQL-like names (the stream in the vault key).
        await catalog.recordWal(genericSegment("wal", "seg-1.log", 1));
        await catalog.recordWal(wal(segmentName(1, 2), { startLsn: "2", vaultKey: `db/${DB}/wal/wal/${segmentName(1, 2)}` }));
        await catalog.putDatabase(database(DB, { kind: "generic" }));
        await catalog.putDatabase(database("pg-plain"));

        // Act
        const page = await catalog.backfillWalIndex(DB);
        const pg = await rejection(catalog.backfillWalIndex("pg-plain"));
        const unknown = await rejection(catalog.backfillWalIndex("never-registered"));
        const badCursor = await rejection(catalog.backfillWalIndex(DB, "snap#x"));

        // Assess
        expect(page.refused).toMatch(new RegExp(segmentName(1, 2)));
        expect(page.marked).toBeUndefined();
        expect((await catalog.getDatabase(DB))?.walIndex).toBeUndefined();
        expect(pg).toBeInstanceOf(InvalidInputError);
        expect(unknown).toBeInstanceOf(NotFoundError);
        expect(badCursor).toBeInstanceOf(InvalidInputError);
      });

      it("listWalTimelines lists every timeline with WAL in order, each with its history file record, and nothing of other databases", async () => {
        // Prepare
        const paged = await archive();

        // Act
        const timelines = await paged.listWalTimelines(DB);

        // Assess
        expect(timelines.map((t) => [t.timeline, t.history?.name])).toEqual([
          [1, undefined],
          [2, "00000002.history"],
          [16, "00000010.history"],
        ]);
        expect(timelines[1]!.history).toEqual(wal("00000002.history"));
        expect(await paged.listWalTimelines("pg-empty")).toEqual([]);
      });
    });

    describe("setReplicaStatus", () => {
      it("sets one region's status and leaves the other regions and fields untouched", async () => {
        // Prepare
        const record = wal(segmentName(1, 4), {
          replicas: { "eu-west-1": { status: "pending", at: "2025-01-01T00:00:00.000Z" } },
        });
        await catalog.recordWal(record);

        // Act
        await catalog.setReplicaStatus(DB, record.name, "us-west-2", {
          status: "replicated",
          at: "2025-01-01T00:01:00.000Z",
          versionId: "v1",
        });
        await catalog.setReplicaStatus(DB, record.name, "eu-west-1", {
          status: "failed",
          at: "2025-01-01T00:02:00.000Z",
          error: "AccessDenied",
        });

        // Assess
        expect(await catalog.getWal(DB, record.name)).toEqual({
          ...record,
          replicas: {
            "eu-west-1": { status: "failed", at: "2025-01-01T00:02:00.000Z", error: "AccessDenied" },
            "us-west-2": { status: "replicated", at: "2025-01-01T00:01:00.000Z", versionId: "v1" },
          },
        });
      });

      it("rejects with NotFoundError for a record that does not exist, creating nothing", async () => {
        // Act
        const err = await rejection(
          catalog.setReplicaStatus(DB, segmentName(1, 77), "us-west-2", { status: "replicated", at: "2025-01-01T00:00:00.000Z" }),
        );

        // Assess
        expect(err).toBeInstanceOf(NotFoundError);
        expect(await catalog.getWal(DB, segmentName(1, 77))).toBeUndefined();
        expect(await catalog.listWal(DB)).toEqual([]);
      });

      it("never lets a later failed or pending report replace replicated", async () => {
        // Prepare
        const record = wal(segmentName(1, 5));
        await catalog.recordWal(record);
        const good = { status: "replicated" as const, at: "2025-01-01T00:01:00.000Z", versionId: "v1" };
        await catalog.setReplicaStatus(DB, record.name, "us-west-2", good);
        // Act
        await catalog.setReplicaStatus(DB, record.name, "us-west-2", { status: "failed", at: "2025-01-01T00:02:00.000Z", error: "timeout" });
        await catalog.setReplicaStatus(DB, record.name, "us-west-2", { status: "pending", at: "2025-01-01T00:03:00.000Z" });
        // Assess
        expect((await catalog.getWal(DB, record.name))?.replicas["us-west-2"]).toEqual(good);
      });

      it("sets a snapshot's region status the same way, and NotFoundError for an unknown snapshot", async () => {
        // Prepare
        const record = snapshot(snapshotId(31));
        await catalog.recordSnapshot(record);
        // Act
        await catalog.setSnapshotReplicaStatus(DB, record.snapshotId, "eu-west-1", { status: "failed", at: "2025-01-01T00:01:00.000Z", error: "down" });
        await catalog.setSnapshotReplicaStatus(DB, record.snapshotId, "eu-west-1", { status: "replicated", at: "2025-01-01T00:02:00.000Z" });
        await catalog.setSnapshotReplicaStatus(DB, record.snapshotId, "eu-west-1", { status: "failed", at: "2025-01-01T00:03:00.000Z", error: "late" });
        const err = await rejection(catalog.setSnapshotReplicaStatus(DB, snapshotId(32), "eu-west-1", { status: "replicated", at: "2025-01-01T00:00:00.000Z" }));
        // Assess
        expect((await catalog.getSnapshot(DB, record.snapshotId))?.replicas).toEqual({ "eu-west-1": { status: "replicated", at: "2025-01-01T00:02:00.000Z" } });
        expect(err).toBeInstanceOf(NotFoundError);
        expect(await catalog.getSnapshot(DB, snapshotId(32))).toBeUndefined();
      });
    });

    describe("what a replica region lacks", () => {
      const PENDING = { status: "pending" as const, at: "2025-01-01T00:00:00.000Z" };
      const REPLICATED = { status: "replicated" as const, at: "2025-01-01T00:00:01.000Z" };

      /** Every page of listUnreplicated, following next. */
      async function allUnreplicated(c: Catalog, region: string, options: { databaseId?: string; limit?: number } = {}): Promise<unknown[]> {
        const out: unknown[] = [];
        let after: string | undefined;
        do {
          const page = await c.listUnreplicated(region, { ...options, ...(after === undefined ? {} : { after }) });
          out.push(...page.items);
          after = page.next;
        } while (after !== undefined);
        return out;
      }

      it("lists a record created pending in a region for that region only, until it is marked replicated there", async () => {
        // Prepare
        const w = wal(segmentName(1, 6), { replicas: { "us-west-2": PENDING } });
        const s = snapshot(snapshotId(40), { replicas: { "us-west-2": PENDING, "eu-west-1": REPLICATED } });
        await catalog.recordWal(w);
        await catalog.recordSnapshot(s);
        await catalog.recordWal(wal(segmentName(1, 7)));

        // Act
        const before = await catalog.listUnreplicated("us-west-2");
        const elsewhere = await catalog.listUnreplicated("eu-west-1");
        await catalog.setReplicaStatus(DB, w.name, "us-west-2", REPLICATED);
        const after = await catalog.listUnreplicated("us-west-2");

        // Assess: snapshots sort before WAL within a database.
        expect(before).toEqual({ items: [{ databaseId: DB, snapshotId: s.snapshotId }, { databaseId: DB, name: w.name }] });
        expect(elsewhere).toEqual({ items: [] });
        expect(after).toEqual({ items: [{ databaseId: DB, snapshotId: s.snapshotId }] });
      });

      it("keeps a failed copy listed, lists a record once a copy of it failed, and never brings a replicated one back", async () => {
        // Prepare
        const pending = wal(segmentName(1, 8), { replicas: { "eu-west-1": PENDING } });
        const unmarked = wal(segmentName(1, 9));
        const s = snapshot(snapshotId(41), { replicas: { "eu-west-1": PENDING } });
        await catalog.recordWal(pending);
        await catalog.recordWal(unmarked);
        await catalog.recordSnapshot(s);
        const failed = { status: "failed" as const, at: "2025-01-01T00:02:00.000Z", error: "down" };

        // Act
        await catalog.setReplicaStatus(DB, pending.name, "eu-west-1", failed);
        await catalog.setReplicaStatus(DB, unmarked.name, "eu-west-1", failed);
        await catalog.setSnapshotReplicaStatus(DB, s.snapshotId, "eu-west-1", REPLICATED);
        await catalog.setSnapshotReplicaStatus(DB, s.snapshotId, "eu-west-1", failed);

        // Assess
        expect((await catalog.listUnreplicated("eu-west-1")).items).toEqual([
          { databaseId: DB, name: pending.name },
          { databaseId: DB, name: unmarked.name },
        ]);
        expect((await catalog.getWal(DB, pending.name))?.replicas["eu-west-1"]).toEqual(failed);
      });

      it("pages by database id, then item order, each record once; databaseId narrows to one database", async () => {
        // Prepare: "pg-main-2" shares a prefix with "pg-main" and sorts after it.
        const dbs = ["pg-main", "pg-main-2", "pg-aaa"];
        for (const databaseId of dbs) {
          for (const n of [3, 1, 2]) await catalog.recordWal(wal(segmentName(1, n), { databaseId, replicas: { "us-west-2": PENDING } }));
          await catalog.recordSnapshot(snapshot(snapshotId(1), { databaseId, replicas: { "us-west-2": PENDING } }));
        }
        const expected = (databaseId: string): unknown[] => [
          { databaseId, snapshotId: snapshotId(1) },
          ...[1, 2, 3].map((n) => ({ databaseId, name: segmentName(1, n) })),
        ];

        // Act
        const all = await allUnreplicated(catalog, "us-west-2", { limit: 3 });
        const one = await allUnreplicated(catalog, "us-west-2", { databaseId: "pg-main", limit: 2 });
        const first = await catalog.listUnreplicated("us-west-2", { limit: 12 });

        // Assess
        expect(all).toEqual([...expected("pg-aaa"), ...expected("pg-main"), ...expected("pg-main-2")]);
        expect(one).toEqual(expected("pg-main"));
        expect(first.items).toHaveLength(12);
      });

      it("rejects a cursor it did not return and a region name that cannot be one with InvalidInputError", async () => {
        // Act
        const badCursor = await rejection(catalog.listUnreplicated("us-west-2", { after: "not-a-cursor" }));
        const otherDb = await rejection(catalog.listUnreplicated("us-west-2", { databaseId: "pg-main", after: `pg-other#wal#00000001#${segmentName(1, 1)}` }));
        const badRegion = await rejection(catalog.listUnreplicated("Not A Region"));
        // Assess
        expect(badCursor).toBeInstanceOf(InvalidInputError);
        expect(otherDb).toBeInstanceOf(InvalidInputError);
        expect(badRegion).toBeInstanceOf(InvalidInputError);
      });

      it("markUnreplicated makes records without a status there pending, keeps failed and replicated ones as they are, a page at a time", async () => {
        // Prepare: records as a catalog from before the index holds them (no status for the region).
        const failed = { status: "failed" as const, at: "2025-01-01T00:02:00.000Z", error: "down" };
        await catalog.recordWal(wal(segmentName(1, 1)));
        await catalog.recordWal(wal(segmentName(1, 2), { replicas: { "us-west-2": REPLICATED } }));
        await catalog.recordWal(wal(segmentName(1, 3), { replicas: { "us-west-2": failed } }));
        await catalog.recordSnapshot(snapshot(snapshotId(1)));
        await catalog.recordSnapshot(snapshot(snapshotId(2), { replicas: { "us-west-2": REPLICATED } }));
        await catalog.recordQuarantine(quarantine(segmentName(1, 9), "2025-01-01T00:00:00.000Z"));
        await catalog.recordVerification({ databaseId: DB, snapshotId: snapshotId(1), runId: "run-1", level: 1, startedAt: "2025-01-01T00:00:00.000Z", finishedAt: "2025-01-01T00:00:01.000Z", outcome: "passed", checks: [] });
        const before = await catalog.listUnreplicated("us-west-2");

        // Act
        let examined = 0;
        let marked = 0;
        let calls = 0;
        let after: string | undefined;
        do {
          const page = await catalog.markUnreplicated(DB, "us-west-2", after, 2);
          expect(page.examined).toBeLessThanOrEqual(2);
          examined += page.examined;
          marked += page.marked;
          after = page.next;
          calls++;
        } while (after !== undefined);
        const again = await catalog.markUnreplicated(DB, "us-west-2");

        // Assess
        expect(before.items).toEqual([{ databaseId: DB, name: segmentName(1, 3) }]);
        expect({ examined, marked }).toEqual({ examined: 5, marked: 2 });
        expect(calls).toBeGreaterThanOrEqual(3);
        expect(again).toEqual({ examined: 5, marked: 0 });
        expect((await catalog.listUnreplicated("us-west-2")).items).toEqual([
          { databaseId: DB, snapshotId: snapshotId(1) },
          { databaseId: DB, name: segmentName(1, 1) },
          { databaseId: DB, name: segmentName(1, 3) },
        ]);
        expect((await catalog.getWal(DB, segmentName(1, 1)))?.replicas["us-west-2"]?.status).toBe("pending");
        expect((await catalog.getWal(DB, segmentName(1, 3)))?.replicas["us-west-2"]).toEqual(failed);
        expect((await catalog.getWal(DB, segmentName(1, 2)))?.replicas["us-west-2"]).toEqual(REPLICATED);
      });
    });

    describe("retention operations", () => {
      it("deletes WAL, snapshot and chunk records idempotently, lists chunks, pins, and appends audit items oldest first", async () => {
        // Prepare
        await catalog.recordWal(wal(segmentName(1, 1)));
        await catalog.recordWal(wal(segmentName(1, 2)));
        const snap = snapshot(snapshotId(51));
        await catalog.recordSnapshot(snap);
        const chunk = (h: string): ChunkItem => ({ databaseId: DB, sha256: sha(h), size: 1, storedSize: 1, codec: "none", vaultKey: `db/${DB}/chunks/${sha(h)}`, recordedAt: "2025-01-01T00:00:00.000Z" });
        await catalog.recordChunks([chunk("a"), chunk("b")]);
        // Act
        await catalog.setSnapshotPinned(DB, snap.snapshotId, true);
        const pinned = (await catalog.getSnapshot(DB, snap.snapshotId))?.pinned;
        await catalog.deleteWal(DB, [segmentName(1, 1), segmentName(1, 1), segmentName(1, 9)]);
        await catalog.deleteSnapshot(DB, snap.snapshotId);
        await catalog.deleteSnapshot(DB, snap.snapshotId);
        await catalog.deleteChunks(DB, [sha("a")]);
        const unpinMissing = await rejection(catalog.setSnapshotPinned(DB, snap.snapshotId, false));
        await catalog.recordAudit([
          { databaseId: DB, runId: "r1", seq: 1, at: "2025-01-02T00:00:00.000Z", action: "delete-wal", subject: segmentName(1, 1), regions: ["r"], reason: "old", by: "test" },
          { databaseId: DB, runId: "r1", seq: 0, at: "2025-01-02T00:00:00.000Z", action: "delete-snapshot", subject: snap.snapshotId, regions: ["r"], reason: "old", by: "test" },
        ]);
        // Assess
        expect(pinned).toBe(true);
        expect((await catalog.listWal(DB)).map((w) => w.name)).toEqual([segmentName(1, 2)]);
        expect(await catalog.listSnapshots(DB)).toEqual([]);
        expect((await catalog.listChunks(DB)).map((c) => c.sha256)).toEqual([sha("b")]);
        expect(unpinMissing).toBeInstanceOf(NotFoundError);
        expect((await catalog.listAudit(DB)).map((a) => [a.seq, a.action])).toEqual([
          [0, "delete-snapshot"],
          [1, "delete-wal"],
        ]);
      });
    });

    describe("verifications", () => {
      it("records runs, lists them oldest first (all, or one snapshot's), and sets a snapshot's latest verification", async () => {
        // Prepare
        const snap = snapshot(snapshotId(41));
        await catalog.recordSnapshot(snap);
        const run = (runId: string, at: string, snapshotId: string, outcome: "passed" | "failed") => ({
          databaseId: DB,
          runId,
          snapshotId,
          level: 4,
          outcome,
          checks: [{ level: 1, name: "manifest", ok: true, seconds: 0.1 }],
          startedAt: at,
          finishedAt: at,
          ...(outcome === "failed" ? { failedLevel: 2, failure: "chunk abc of base/1/1259 is corrupt" } : {}),
        });
        // Act
        await catalog.recordVerification(run("r2", "2025-01-02T00:00:00.000Z", snap.snapshotId, "failed"));
        await catalog.recordVerification(run("r1", "2025-01-01T00:00:00.000Z", snap.snapshotId, "passed"));
        await catalog.recordVerification(run("r3", "2025-01-03T00:00:00.000Z", "other", "passed"));
        await catalog.setSnapshotVerification(DB, snap.snapshotId, { level: 2, at: "2025-01-02T00:00:00.000Z", outcome: "failed", runId: "r2" });
        const missing = await rejection(catalog.setSnapshotVerification(DB, snapshotId(42), { level: 1, at: "x", outcome: "passed", runId: "r" }));
        // Assess
        expect((await catalog.listVerifications(DB)).map((v) => v.runId)).toEqual(["r1", "r2", "r3"]);
        expect((await catalog.listVerifications(DB, snap.snapshotId)).map((v) => [v.runId, v.outcome, v.failure])).toEqual([
          ["r1", "passed", undefined],
          ["r2", "failed", "chunk abc of base/1/1259 is corrupt"],
        ]);
        expect((await catalog.getSnapshot(DB, snap.snapshotId))?.verification).toEqual({ level: 2, at: "2025-01-02T00:00:00.000Z", outcome: "failed", runId: "r2" });
        expect(missing).toBeInstanceOf(NotFoundError);
        expect(await catalog.listSnapshots(DB)).toHaveLength(1);
      });
    });

    describe("getHead of a PostgreSQL database (read from its records)", () => {
      /** A segment record as ingest writes it: with its start LSN (16 MiB segments), which orders the head. */
      const segment = (timeline: number, segno: number, archivedAt: string): WalRecord =>
        wal(segmentName(timeline, segno), { startLsn: `${(segno >> 8).toString(16).toUpperCase()}/${((segno % 256) << 24).toString(16).toUpperCase()}`, archivedAt });

      it("names the newest segment record, by timeline then position, without advanceHead", async () => {
        // Prepare
        for (const r of [segment(1, 1, "2025-01-01T00:01:00.000Z"), segment(1, 3, "2025-01-01T00:03:00.000Z"), segment(2, 2, "2025-01-01T00:02:00.000Z"), segment(1, 2, "2025-01-01T00:04:00.000Z")]) {
          await catalog.recordWal(r);
        }

        // Act
        const head = await catalog.getHead(DB);

        // Assess
        expect(head).toEqual({ databaseId: DB, lastName: segmentName(2, 2), lastSortKey: headSortKey(segment(2, 2, "")), lastArchivedAt: "2025-01-01T00:02:00.000Z" });
      });

      it("passes over the history files, backup labels and .partial files that sort above the newest segment", async () => {
        // Prepare: more of them than one page of the newest-first read.
        await catalog.recordWal(segment(1, 3, "2025-01-01T00:03:00.000Z"));
        for (let i = 1; i <= 10; i++) {
          await catalog.recordWal(wal(`${segmentName(1, 3)}.${hex8(i * 0x28)}.backup`, { kind: "backup", size: 300, archivedAt: "2025-01-01T00:05:00.000Z" }));
        }
        await catalog.recordWal(wal(`${segmentName(1, 4)}.partial`, { archivedAt: "2025-01-01T00:06:00.000Z" }));
        await catalog.recordWal(wal("00000002.history", { kind: "history", size: 42, archivedAt: "2025-01-01T00:07:00.000Z" }));

        // Act
        const head = await catalog.getHead(DB);

        // Assess
        expect(head?.lastName).toBe(segmentName(1, 3));
        expect(head?.lastArchivedAt).toBe("2025-01-01T00:03:00.000Z");
      });

      it("is the stored head for a generic database whose records have PostgreSQL-like names and positions, not LSNs", async () => {
        // Prepare: records as generic ingest wrote them before <stream>/<file> names (the stream in the vault key).
        await catalog.recordWal(wal(segmentName(1, 8), { startLsn: "8", vaultKey: `db/${DB}/wal/wal/${segmentName(1, 8)}` }));
        await catalog.advanceHead(DB, segmentName(1, 8), "2025-01-01T00:08:00.000Z#wal", "2025-01-01T00:08:00.000Z");

        // Act
        const head = await catalog.getHead(DB);

        // Assess
        expect(head).toEqual({ databaseId: DB, lastName: segmentName(1, 8), lastSortKey: "2025-01-01T00:08:00.000Z#wal", lastArchivedAt: "2025-01-01T00:08:00.000Z" });
      });

      it("prefers the records to an older stored head", async () => {
        // Prepare
        await catalog.advanceHead(DB, segmentName(1, 1), "0000000100000001", "2025-01-01T00:00:00.000Z");
        await catalog.recordWal(segment(1, 5, "2025-01-01T00:05:00.000Z"));

        // Act + Assess
        expect((await catalog.getHead(DB))?.lastName).toBe(segmentName(1, 5));
      });
    });

    describe("advanceHead (the stored head: generic databases, and a PostgreSQL database with no segment record)", () => {
      it("getHead resolves undefined before anything was archived", async () => {
        // Act + Assess
        expect(await catalog.getHead(DB)).toBeUndefined();
      });

      it("sets the head on first use and moves it forward", async () => {
        // Prepare
        await catalog.advanceHead(DB, segmentName(1, 1), "0000000100000001", "2025-01-01T00:00:00.000Z");

        // Act
        await catalog.advanceHead(DB, segmentName(1, 2), "0000000100000002", "2025-01-01T00:01:00.000Z");

        // Assess
        expect(await catalog.getHead(DB)).toEqual({
          databaseId: DB,
          lastName: segmentName(1, 2),
          lastSortKey: "0000000100000002",
          lastArchivedAt: "2025-01-01T00:01:00.000Z",
        });
      });

      it("leaves the head unchanged, without rejecting, for an older or equal record", async () => {
        // Prepare
        await catalog.advanceHead(DB, segmentName(1, 5), "0000000100000005", "2025-01-01T00:05:00.000Z");
        const before = await catalog.getHead(DB);

        // Act
        await catalog.advanceHead(DB, segmentName(1, 3), "0000000100000003", "2025-01-01T00:09:00.000Z");
        await catalog.advanceHead(DB, segmentName(1, 5), "0000000100000005", "2025-01-01T00:10:00.000Z");

        // Assess
        expect(await catalog.getHead(DB)).toEqual(before);
      });

      it("ends at the newest record whatever the order of concurrent advances", async () => {
        // Prepare
        const keys = Array.from({ length: 8 }, (_, i) => `00000001${hex8(i + 1)}`).sort(() => Math.random() - 0.5);

        // Act
        await Promise.all(keys.map((k) => catalog.advanceHead(DB, `name-${k}`, k, "2025-01-01T00:00:00.000Z")));

        // Assess
        expect((await catalog.getHead(DB))?.lastSortKey).toBe("0000000100000008");
      });

      it("keeps the heads of different databases apart", async () => {
        // Act
        await catalog.advanceHead("pg-one", "a", "0000000100000009", "2025-01-01T00:00:00.000Z");
        await catalog.advanceHead("pg-two", "b", "0000000100000001", "2025-01-01T00:00:00.000Z");

        // Assess
        expect((await catalog.getHead("pg-one"))?.lastSortKey).toBe("0000000100000009");
        expect((await catalog.getHead("pg-two"))?.lastSortKey).toBe("0000000100000001");
      });
    });

    describe("quarantine", () => {
      it("appends every record, even two for the same name at the same instant, and lists newest last", async () => {
        // Prepare
        const seg = segmentName(1, 3);
        const records = [
          quarantine(seg, "2025-01-01T00:02:00.000Z", { reason: "second" }),
          quarantine(segmentName(1, 9), "2025-01-01T00:03:00.000Z", { reason: "third" }),
          quarantine(seg, "2025-01-01T00:01:00.000Z", { reason: "first" }),
          quarantine(seg, "2025-01-01T00:04:00.000Z", { reason: "fourth-a" }),
          quarantine(seg, "2025-01-01T00:04:00.000Z", { reason: "fourth-b" }),
        ];

        // Act
        for (const r of records) await catalog.recordQuarantine(r);
        const listed = await catalog.listQuarantine(DB);

        // Assess
        expect(listed).toHaveLength(5);
        expect(listed.map((r) => r.reason).slice(0, 3)).toEqual(["first", "second", "third"]);
        expect(listed.map((r) => r.reason).slice(3).sort()).toEqual(["fourth-a", "fourth-b"]);
        expect(listed.map((r) => r.at)).toEqual([...listed.map((r) => r.at)].sort());
      });

      it("filters by exact file name, not by name prefix", async () => {
        // Prepare: one name is a prefix of the others
        const seg = segmentName(1, 3);
        await catalog.recordQuarantine(quarantine(seg, "2025-01-01T00:02:00.000Z", { reason: "b" }));
        await catalog.recordQuarantine(quarantine(`${seg}.partial`, "2025-01-01T00:01:00.000Z"));
        await catalog.recordQuarantine(quarantine(`${seg}#odd`, "2025-01-01T00:01:00.000Z"));
        await catalog.recordQuarantine(quarantine(seg, "2025-01-01T00:01:00.000Z", { reason: "a" }));

        // Act
        const listed = await catalog.listQuarantine(DB, seg);

        // Assess
        expect(listed.map((r) => [r.name, r.reason])).toEqual([
          [seg, "a"],
          [seg, "b"],
        ]);
      });

      it("returns the records exactly as written, for their own database only", async () => {
        // Prepare
        const record = quarantine("not-a-wal-name", "2025-01-01T00:00:00.000Z", { quarantineKey: "quarantine/db/pg-main/x" });
        await catalog.recordQuarantine(record);
        await catalog.recordQuarantine(quarantine("x", "2025-01-01T00:00:00.000Z", { databaseId: "pg-other" }));

        // Act
        const listed = await catalog.listQuarantine(DB);

        // Assess
        expect(listed).toEqual([record]);
        expect(await catalog.listQuarantine(DB, "nothing-by-this-name")).toEqual([]);
      });
    });

    describe("missingChunks", () => {
      it("resolves an empty list for no hashes", async () => {
        // Act
        const missing = await catalog.missingChunks(DB, []);

        // Assess
        expect(missing).toEqual([]);
      });

      it("returns every hash, in input order, when none is recorded", async () => {
        // Prepare
        const hashes = [chunkHash(3), chunkHash(1), chunkHash(2)];

        // Act
        const missing = await catalog.missingChunks(DB, hashes);

        // Assess
        expect(missing).toEqual(hashes);
      });

      it("returns only the hashes without a record, in input order", async () => {
        // Prepare
        await catalog.recordChunks([chunk(chunkHash(2)), chunk(chunkHash(4))]);
        const hashes = [chunkHash(5), chunkHash(4), chunkHash(1), chunkHash(2), chunkHash(3)];

        // Act
        const missing = await catalog.missingChunks(DB, hashes);

        // Assess
        expect(missing).toEqual([chunkHash(5), chunkHash(1), chunkHash(3)]);
      });

      it("returns each missing hash once, where it first appears, however often it is asked for", async () => {
        // Prepare: repeats both within and across batches of 100; one repeated hash is recorded
        await catalog.recordChunks([chunk(chunkHash(7))]);
        const unique = Array.from({ length: 150 }, (_, i) => chunkHash(i));
        const hashes = [chunkHash(9), chunkHash(9), ...unique, ...[...unique].reverse(), chunkHash(7)];

        // Act
        const missing = await catalog.missingChunks(DB, hashes);

        // Assess
        const expected = [chunkHash(9), ...unique.filter((h) => h !== chunkHash(9) && h !== chunkHash(7))];
        expect(missing).toEqual(expected);
        expect(new Set(missing).size).toBe(missing.length);
      });

      it.each([100, 101, 251, 1_000])("answers for %i hashes (more than one batch), keeping input order", async (count) => {
        // Prepare: every third hash is recorded; the question comes shuffled
        const all = Array.from({ length: count }, (_, i) => chunkHash(i));
        const recorded = all.filter((_, i) => i % 3 === 0);
        await catalog.recordChunks(recorded.map((h) => chunk(h)));
        const asked = [...all].sort(() => Math.random() - 0.5);

        // Act
        const missing = await catalog.missingChunks(DB, asked);

        // Assess
        const recordedSet = new Set(recorded);
        expect(missing).toEqual(asked.filter((h) => !recordedSet.has(h)));
      }, 60_000);

      it("does not see another database's chunks", async () => {
        // Prepare: pg-main-b shares a prefix with pg-main
        await catalog.recordChunks([chunk(chunkHash(1), { databaseId: "pg-other" }), chunk(chunkHash(2), { databaseId: `${DB}-b` })]);

        // Act
        const missing = await catalog.missingChunks(DB, [chunkHash(1), chunkHash(2)]);

        // Assess
        expect(missing).toEqual([chunkHash(1), chunkHash(2)]);
        expect(await catalog.missingChunks("pg-other", [chunkHash(1), chunkHash(2)])).toEqual([chunkHash(2)]);
      });
    });

    describe("recordChunks", () => {
      it("resolves for no records", async () => {
        // Act + Assess
        await expect(catalog.recordChunks([])).resolves.toBeUndefined();
      });

      it("is harmless to repeat, within one call and across calls", async () => {
        // Prepare
        const records = [chunk(chunkHash(1)), chunk(chunkHash(2))];
        await catalog.recordChunks(records);

        // Act
        await catalog.recordChunks([...records, chunk(chunkHash(1), { recordedAt: "2025-02-01T00:00:00.000Z" }), chunk(chunkHash(3))]);
        await catalog.recordChunks(records);

        // Assess
        expect(await catalog.missingChunks(DB, [chunkHash(1), chunkHash(2), chunkHash(3), chunkHash(4)])).toEqual([chunkHash(4)]);
      });

      it("records more than one batch of 25 in one call", async () => {
        // Prepare
        const hashes = Array.from({ length: 137 }, (_, i) => chunkHash(i));

        // Act
        await catalog.recordChunks(hashes.map((h) => chunk(h)));

        // Assess
        expect(await catalog.missingChunks(DB, hashes)).toEqual([]);
      }, 60_000);

      it("records each chunk under its own database when one call mixes databases", async () => {
        // Act
        await catalog.recordChunks([chunk(chunkHash(1)), chunk(chunkHash(2), { databaseId: "pg-other" })]);

        // Assess
        expect(await catalog.missingChunks(DB, [chunkHash(1), chunkHash(2)])).toEqual([chunkHash(2)]);
        expect(await catalog.missingChunks("pg-other", [chunkHash(1), chunkHash(2)])).toEqual([chunkHash(1)]);
      });
    });

    describe("getChunks", () => {
      it("resolves an empty list for no hashes", async () => {
        // Act + Assess
        expect(await catalog.getChunks(DB, [])).toEqual([]);
      });

      it("returns the records found, each once, in input order, leaving out unknown hashes", async () => {
        // Prepare
        const a = chunk(chunkHash(1));
        const b = chunk(chunkHash(2));
        await catalog.recordChunks([a, b]);

        // Act
        const got = await catalog.getChunks(DB, [chunkHash(2), chunkHash(9), chunkHash(1), chunkHash(2)]);

        // Assess
        expect(got).toEqual([b, a]);
      });

      it("round-trips a pack location (offset) and its absence exactly as written", async () => {
        // Prepare: one chunk inside a pack at offset 0, one further in, one stored as its own object
        const pack = `db/${DB}/packs/${sha("pack 1")}`;
        const first = chunk(chunkHash(1), { vaultKey: pack, offset: 0, storedSize: 100 });
        const second = chunk(chunkHash(2), { vaultKey: pack, offset: 100, storedSize: 50 });
        const single = chunk(chunkHash(3));
        await catalog.recordChunks([first, second, single]);

        // Act
        const got = await catalog.getChunks(DB, [chunkHash(1), chunkHash(2), chunkHash(3)]);
        const listed = await catalog.listChunks(DB);

        // Assess
        expect(got).toEqual([first, second, single]);
        expect(got[2]).not.toHaveProperty("offset");
        expect([...listed].sort((x, y) => (x.sha256 < y.sha256 ? -1 : 1))).toEqual([first, second, single].sort((x, y) => (x.sha256 < y.sha256 ? -1 : 1)));
      });

      it("sees a chunk's new location once it is recorded again (a repack moves it)", async () => {
        // Prepare
        await catalog.recordChunks([chunk(chunkHash(1))]);
        const moved = chunk(chunkHash(1), { vaultKey: `db/${DB}/packs/${sha("pack 2")}`, offset: 4096 });

        // Act
        await catalog.recordChunks([moved]);

        // Assess
        expect(await catalog.getChunks(DB, [chunkHash(1)])).toEqual([moved]);
      });

      it.each([100, 101, 1_000])("answers for %i hashes (more than one batch), keeping input order", async (count) => {
        // Prepare: every third hash is recorded, each at its own offset; the question comes shuffled, with repeats
        const all = Array.from({ length: count }, (_, i) => chunkHash(i));
        const pack = `db/${DB}/packs/${sha("pack")}`;
        const records = all.flatMap((h, i) => (i % 3 === 0 ? [chunk(h, { vaultKey: pack, offset: i * 1000 })] : []));
        await catalog.recordChunks(records);
        const asked = [...all, ...all.slice(0, 10)].sort(() => Math.random() - 0.5);

        // Act
        const got = await catalog.getChunks(DB, asked);

        // Assess
        const byHash = new Map(records.map((r) => [r.sha256, r]));
        const expected = [...new Set(asked)].flatMap((h) => byHash.get(h) ?? []);
        expect(got).toEqual(expected);
      }, 60_000);

      it("does not see another database's chunks", async () => {
        // Prepare: pg-main-b shares a prefix with pg-main
        await catalog.recordChunks([chunk(chunkHash(1), { databaseId: "pg-other" }), chunk(chunkHash(2), { databaseId: `${DB}-b` })]);

        // Act + Assess
        expect(await catalog.getChunks(DB, [chunkHash(1), chunkHash(2)])).toEqual([]);
        expect((await catalog.getChunks("pg-other", [chunkHash(1), chunkHash(2)])).map((c) => c.sha256)).toEqual([chunkHash(1)]);
      });

      it("rejects a hash that is not a SHA-256 with InvalidInputError", async () => {
        // Act + Assess
        expect(await rejection(catalog.getChunks(DB, ["not-a-hash"]))).toBeInstanceOf(InvalidInputError);
      });
    });

    describe("packs", () => {
      function pack(name: string, overrides: Partial<PackItem> = {}): PackItem {
        const databaseId = overrides.databaseId ?? DB;
        return { databaseId, name, size: 1000 + 52 * 3 + 64, entries: 3, dataLength: 1000, vaultKey: `db/${databaseId}/packs/${name}`, recordedAt: "2025-01-01T00:00:00.000Z", ...overrides };
      }

      it("getPack resolves undefined for a pack never recorded", async () => {
        // Act + Assess
        expect(await catalog.getPack(DB, sha("never"))).toBeUndefined();
      });

      it("recordPacks records packs that getPack returns, harmlessly repeated, each under its own database", async () => {
        // Prepare
        const a = pack(sha("a"));
        const b = pack(sha("b"), { databaseId: "pg-other" });

        // Act
        await catalog.recordPacks([]);
        await catalog.recordPacks([a, b, a]);
        await catalog.recordPacks([a]);

        // Assess
        expect(await catalog.getPack(DB, a.name)).toEqual(a);
        expect(await catalog.getPack("pg-other", b.name)).toEqual(b);
        expect(await catalog.getPack(DB, b.name)).toBeUndefined();
      });

      it("records more than one batch of 25 in one call", async () => {
        // Prepare
        const packs = Array.from({ length: 61 }, (_, i) => pack(sha(`pack ${i}`)));

        // Act
        await catalog.recordPacks(packs);

        // Assess
        for (const p of [packs[0], packs[24], packs[25], packs[60]]) expect(await catalog.getPack(DB, p!.name)).toEqual(p);
      }, 60_000);

      it("pack records are not chunk records: listChunks and missingChunks do not see them", async () => {
        // Prepare: a pack whose name is also a chunk hash asked about
        const name = chunkHash(1);
        await catalog.recordPacks([pack(name)]);

        // Act + Assess
        expect(await catalog.listChunks(DB)).toEqual([]);
        expect(await catalog.missingChunks(DB, [name])).toEqual([name]);
        expect(await catalog.getChunks(DB, [name])).toEqual([]);
      });

      it("getPacks returns the records found, each once, in input order, across batches of 100", async () => {
        // Prepare
        const packs = Array.from({ length: 130 }, (_, i) => pack(sha(`pack ${i}`)));
        await catalog.recordPacks(packs);
        const asked = [packs[129]!.name, sha("never"), packs[0]!.name, packs[129]!.name, ...packs.slice(1, 120).map((p) => p.name)];

        // Act
        const found = await catalog.getPacks(DB, asked);

        // Assess
        expect(found.map((p) => p.name)).toEqual([packs[129]!.name, packs[0]!.name, ...packs.slice(1, 120).map((p) => p.name)]);
        expect(found[0]).toEqual(packs[129]);
        expect(await catalog.getPacks(DB, [])).toEqual([]);
      }, 60_000);

      it("listPackPage and listChunkPage page through every record once, in hash order, and only their own kind", async () => {
        // Prepare
        const names = Array.from({ length: 7 }, (_, i) => sha(`pack ${i}`));
        const hashes = Array.from({ length: 5 }, (_, i) => chunkHash(i));
        await catalog.recordPacks(names.map((n) => pack(n)));
        await catalog.recordChunks(hashes.map((h) => chunk(h)));
        await catalog.recordPacks([pack(sha("other db"), { databaseId: "pg-other" })]);

        // Act
        const packPages: string[][] = [];
        let after: string | undefined;
        do {
          const page = await catalog.listPackPage(DB, after, 3);
          packPages.push(page.packs.map((p) => p.name));
          after = page.next;
        } while (after !== undefined);
        const chunkPage = await catalog.listChunkPage(DB, undefined, 1000);
        const secondChunk = await catalog.listChunkPage(DB, [...hashes].sort()[1], 2);

        // Assess
        expect(packPages.flat()).toEqual([...names].sort());
        expect(packPages[0]).toHaveLength(3);
        expect(chunkPage.chunks.map((c) => c.sha256)).toEqual([...hashes].sort());
        expect(chunkPage.next).toBeUndefined();
        expect(secondChunk.chunks.map((c) => c.sha256)).toEqual([...hashes].sort().slice(2, 4));
        expect(await rejection(catalog.listPackPage(DB, "not-a-hash"))).toBeInstanceOf(InvalidInputError);
        expect(await rejection(catalog.listChunkPage(DB, undefined, 0))).toBeInstanceOf(InvalidInputError);
      });

      it("listPacksRecordedSince pages through the packs recorded from a time on, oldest first, each database its own", async () => {
        // Prepare: five packs a minute apart (two at the same minute), one of another database, and a pack recorded again later
        const at = (minute: number): string => `2025-03-01T10:0${minute}:00.000Z`;
        const names = Array.from({ length: 5 }, (_, i) => sha(`logged ${i}`));
        await catalog.recordPacks([pack(names[3]!, { recordedAt: at(3) }), pack(names[0]!, { recordedAt: at(0) }), pack(names[1]!, { recordedAt: at(1) })]);
        await catalog.recordPacks([pack(names[2]!, { recordedAt: at(3) }), pack(names[4]!, { recordedAt: at(4) })]);
        await catalog.recordPacks([pack(sha("elsewhere"), { databaseId: "pg-other", recordedAt: at(2) })]);
        await catalog.recordPacks([pack(names[0]!, { recordedAt: at(5) })]);

        // Act
        const pages: { name: string; recordedAt: string }[][] = [];
        let after: string | undefined;
        do {
          const page = await catalog.listPacksRecordedSince(DB, at(1), after, 2);
          pages.push(page.packs);
          after = page.next;
        } while (after !== undefined);
        const all = await catalog.listPacksRecordedSince(DB, "2025-01-01T00:00:00.000Z");
        const none = await catalog.listPacksRecordedSince(DB, at(6));

        // Assess
        const sameMinute = [names[2]!, names[3]!].sort();
        expect(pages.flat()).toEqual([
          { name: names[1], recordedAt: at(1) },
          { name: sameMinute[0], recordedAt: at(3) },
          { name: sameMinute[1], recordedAt: at(3) },
          { name: names[4], recordedAt: at(4) },
          { name: names[0], recordedAt: at(5) },
        ]);
        expect(pages[0]).toHaveLength(2);
        expect(all.packs.map((p) => p.name)).toEqual([names[0], names[1], ...sameMinute, names[4], names[0]]);
        expect(none).toEqual({ packs: [] });
        // The log is not a pack listing: pack records are still one per pack.
        expect((await catalog.listPackPage(DB)).packs.map((p) => p.name)).toEqual([...names].sort());
        expect(await catalog.getPack(DB, names[0]!)).toEqual(pack(names[0]!, { recordedAt: at(5) }));
        expect(await rejection(catalog.listPacksRecordedSince(DB, "yesterday"))).toBeInstanceOf(InvalidInputError);
        expect(await rejection(catalog.listPacksRecordedSince(DB, at(0), "not-a-cursor"))).toBeInstanceOf(InvalidInputError);
        expect(await rejection(catalog.listPacksRecordedSince(DB, at(0), undefined, 0))).toBeInstanceOf(InvalidInputError);
      });

      it("recordPacks given one pack at two times in one call records it once, as the last given, and logs it at both times", async () => {
        // Prepare
        const name = sha("given twice");
        const at = (minute: number): string => `2025-03-01T10:0${minute}:00.000Z`;

        // Act
        await catalog.recordPacks([pack(name, { recordedAt: at(1) }), pack(sha("other"), { recordedAt: at(1) }), pack(name, { recordedAt: at(2) })]);

        // Assess
        expect(await catalog.getPack(DB, name)).toEqual(pack(name, { recordedAt: at(2) }));
        expect((await catalog.listPacksRecordedSince(DB, at(0))).packs).toEqual([...[{ name, recordedAt: at(1) }, { name: sha("other"), recordedAt: at(1) }].sort((a, b) => (a.name < b.name ? -1 : 1)), { name, recordedAt: at(2) }]);
        expect((await catalog.listPackPage(DB)).packs.map((p) => p.name).sort()).toEqual([name, sha("other")].sort());
      });

      it("markPacksOrphaned marks existing packs only; clearPackOrphaned unmarks and tells a missing record apart", async () => {
        // Prepare
        const a = pack(sha("a"));
        const b = pack(sha("b"));
        await catalog.recordPacks([a, b]);
        const at = "2025-02-01T00:00:00.000Z";

        // Act
        const marked = await catalog.markPacksOrphaned(DB, [a.name, sha("never"), b.name, a.name], at);
        const afterMark = await catalog.getPack(DB, a.name);
        const cleared = await catalog.clearPackOrphaned(DB, a.name);
        const clearedAgain = await catalog.clearPackOrphaned(DB, a.name);
        const clearedMissing = await catalog.clearPackOrphaned(DB, sha("never"));

        // Assess
        expect(marked).toEqual([a.name, b.name]);
        expect(afterMark).toEqual({ ...a, orphanedAt: at });
        expect(await catalog.getPack(DB, a.name)).toEqual(a);
        expect(cleared).toBe(true);
        expect(clearedAgain).toBe(true);
        expect(clearedMissing).toBe(false);
        expect(await catalog.getPack(DB, sha("never"))).toBeUndefined();
        expect((await catalog.getPack(DB, b.name))?.orphanedAt).toBe(at);
      });

      it("markPacksRepacked sets repackedAt on existing packs only; unmarking and marking again keep it, recording the pack again drops it", async () => {
        // Prepare
        const a = pack(sha("a"));
        await catalog.recordPacks([a]);
        const repacked = "2025-02-01T00:00:00.000Z";
        const marked = "2025-02-02T00:00:00.000Z";

        // Act
        const names = await catalog.markPacksRepacked(DB, [sha("never"), a.name, a.name], repacked);
        await catalog.markPacksOrphaned(DB, [a.name], marked);
        const bothMarks = await catalog.getPack(DB, a.name);
        await catalog.clearPackOrphaned(DB, a.name);
        const afterClear = await catalog.getPack(DB, a.name);
        await catalog.recordPacks([a]);

        // Assess
        expect(names).toEqual([a.name]);
        expect(bothMarks).toEqual({ ...a, repackedAt: repacked, orphanedAt: marked });
        expect(afterClear).toEqual({ ...a, repackedAt: repacked });
        expect(await catalog.getPack(DB, a.name)).toEqual(a);
        expect(await catalog.getPack(DB, sha("never"))).toBeUndefined();
      });

      it("claimPackPromotion gives a pack to one owner until its claim expires or is released; claims are not pack records", async () => {
        // Prepare
        const name = sha("claimed");
        const t = (m: number): string => new Date(Date.UTC(2026, 11, 3, 12, m)).toISOString();
        // Act
        const first = await catalog.claimPackPromotion(DB, name, "owner-a", t(10), t(0));
        const refused = await catalog.claimPackPromotion(DB, name, "owner-b", t(11), t(5));
        const again = await catalog.claimPackPromotion(DB, name, "owner-a", t(12), t(6));
        const afterExpiry = await catalog.claimPackPromotion(DB, name, "owner-b", t(30), t(20));
        await catalog.releasePackPromotion(DB, name, "owner-a"); // no longer its claim: nothing happens
        const stillHeld = await catalog.claimPackPromotion(DB, name, "owner-c", t(31), t(21));
        await catalog.releasePackPromotion(DB, name, "owner-b");
        const afterRelease = await catalog.claimPackPromotion(DB, name, "owner-c", t(32), t(22));
        // Assess
        expect(first).toBeUndefined();
        expect(refused).toBe(t(10));
        expect(again).toBeUndefined();
        expect(afterExpiry).toBeUndefined();
        expect(stillHeld).toBe(t(30));
        expect(afterRelease).toBeUndefined();
        expect(await catalog.getPacks(DB, [name])).toEqual([]);
        expect((await catalog.listPackPage(DB)).packs.map((p) => p.name)).not.toContain(name);
        expect(await rejection(catalog.claimPackPromotion(DB, "not-a-hash", "o", t(1), t(0)))).toBeInstanceOf(InvalidInputError);
      });

      it("condemnPack condemns only a record carrying exactly that orphanedAt, once; a condemned pack cannot be unmarked; deleteCondemnedPack deletes only a condemned record", async () => {
        // Prepare
        const a = pack(sha("a"));
        const unmarked = pack(sha("b"));
        await catalog.recordPacks([a, unmarked]);
        await catalog.markPacksOrphaned(DB, [a.name], "2025-02-01T00:00:00.000Z");
        const at = "2025-02-03T00:00:00.000Z";

        // Act
        const wrongTime = await catalog.condemnPack(DB, a.name, "2025-01-31T00:00:00.000Z", at);
        const notMarked = await catalog.condemnPack(DB, unmarked.name, "2025-02-01T00:00:00.000Z", at);
        const notCondemned = await catalog.deleteCondemnedPack(DB, unmarked.name);
        const right = await catalog.condemnPack(DB, a.name, "2025-02-01T00:00:00.000Z", at);
        const again = await catalog.condemnPack(DB, a.name, "2025-02-01T00:00:00.000Z", at);
        const condemned = await catalog.getPack(DB, a.name);
        const cleared = await catalog.clearPackOrphaned(DB, a.name);
        const deleted = await catalog.deleteCondemnedPack(DB, a.name);
        const deletedAgain = await catalog.deleteCondemnedPack(DB, a.name);

        // Assess
        expect([wrongTime, notMarked, notCondemned, right, again, cleared, deleted, deletedAgain]).toEqual([false, false, false, true, false, false, true, false]);
        expect(condemned).toEqual({ ...a, orphanedAt: "2025-02-01T00:00:00.000Z", deletingAt: at });
        expect(await catalog.getPack(DB, a.name)).toBeUndefined();
        expect(await catalog.getPack(DB, unmarked.name)).toEqual(unmarked);
      });

      it("deleteChunksInPack and movePackedChunks touch only records still pointing at the pack", async () => {
        // Prepare: three chunks in pack P; the third was recorded again as its own object since.
        const P = `db/${DB}/packs/${sha("P")}`;
        const Q = `db/${DB}/packs/${sha("Q")}`;
        const [h1, h2, h3, h4] = [chunkHash(1), chunkHash(2), chunkHash(3), chunkHash(4)];
        await catalog.recordChunks([chunk(h1!, { vaultKey: P, offset: 0 }), chunk(h2!, { vaultKey: P, offset: 10 }), chunk(h3!), chunk(h4!, { vaultKey: P, offset: 20 })]);

        // Act
        const moved = await catalog.movePackedChunks([chunk(h1!, { vaultKey: Q, offset: 0 }), chunk(h3!, { vaultKey: Q, offset: 10 }), chunk(chunkHash(9), { vaultKey: Q, offset: 20 })], P);
        const deleted = await catalog.deleteChunksInPack(DB, [h1!, h2!, h3!, sha("never")], P);

        // Assess
        expect(moved).toEqual([h1]);
        expect(deleted).toEqual([h2]);
        const left = await catalog.getChunks(DB, [h1!, h2!, h3!, h4!, chunkHash(9)]);
        expect(left.map((c) => [c.sha256, c.vaultKey, c.offset])).toEqual([
          [h1, Q, 0],
          [h3, `db/${DB}/chunks/${h3}`, undefined],
          [h4, P, 20],
        ]);
      });

      it("rejects a malformed pack record or name with InvalidInputError", async () => {
        // Act + Assess
        expect(await rejection(catalog.recordPacks([pack("not-a-hash")]))).toBeInstanceOf(InvalidInputError);
        expect(await rejection(catalog.recordPacks([pack(sha("x"), { entries: 0 })]))).toBeInstanceOf(InvalidInputError);
        expect(await rejection(catalog.getPack(DB, "not-a-hash"))).toBeInstanceOf(InvalidInputError);
      });
    });

    describe("recordSnapshot", () => {
      it("creates the record when the id is new and getSnapshot returns it", async () => {
        // Prepare
        const record = snapshot(snapshotId(1));

        // Act
        const outcome = await catalog.recordSnapshot(record);

        // Assess
        expect(outcome).toEqual({ outcome: "created", record });
        expect(await catalog.getSnapshot(DB, record.snapshotId)).toEqual(record);
      });

      it("keeps optional fields and generic streams exactly as written", async () => {
        // Prepare
        const record: SnapshotRecord = {
          ...snapshot(snapshotId(2), { kind: "generic", pinned: true, streams: { "wal-a": "000042.log", "wal-b": "000007.log" } }),
          replicas: { "eu-west-1": { status: "replicated", at: "2025-01-01T00:03:00.000Z", versionId: "v1" } },
        };
        delete record.timeline;
        delete record.startLsn;
        delete record.stopLsn;
        delete record.startWalFile;
        delete record.stopWalFile;

        // Act
        await catalog.recordSnapshot(record);

        // Assess
        expect(await catalog.getSnapshot(DB, record.snapshotId)).toEqual(record);
      });

      it("resolves duplicate with the recorded snapshot and changes nothing when the same manifest comes again", async () => {
        // Prepare
        const first = snapshot(snapshotId(1));
        await catalog.recordSnapshot(first);
        const again = snapshot(snapshotId(1), { recordedAt: "2025-01-02T00:00:00.000Z", pinned: true });

        // Act
        const outcome = await catalog.recordSnapshot(again);

        // Assess
        expect(outcome).toEqual({ outcome: "duplicate", record: first });
        expect(await catalog.getSnapshot(DB, first.snapshotId)).toEqual(first);
      });

      it("rejects with SnapshotConflictError naming the snapshot, the database and both manifest hashes, keeping the first", async () => {
        // Prepare
        const first = snapshot(snapshotId(1), { manifestSha256: sha("first manifest") });
        await catalog.recordSnapshot(first);
        const other = snapshot(snapshotId(1), { manifestSha256: sha("second manifest"), manifestSize: 1 });

        // Act
        const err = await rejection(catalog.recordSnapshot(other));

        // Assess
        expect(err).toBeInstanceOf(SnapshotConflictError);
        const message = (err as Error).message;
        expect(message).toContain(first.snapshotId);
        expect(message).toContain(DB);
        expect(message).toContain(sha("first manifest").slice(0, 8));
        expect(message).toContain(sha("second manifest").slice(0, 8));
        expect(await catalog.getSnapshot(DB, first.snapshotId)).toEqual(first);
        expect(await catalog.listSnapshots(DB)).toEqual([first]);
      });

      it("treats concurrent records of the same manifest as one create and the rest duplicates", async () => {
        // Prepare
        const record = snapshot(snapshotId(5));

        // Act
        const outcomes = await Promise.all(Array.from({ length: 6 }, () => catalog.recordSnapshot(record)));

        // Assess
        expect(outcomes.filter((o) => o.outcome === "created")).toHaveLength(1);
        expect(outcomes.filter((o) => o.outcome === "duplicate")).toHaveLength(5);
        for (const o of outcomes) expect(o.record).toEqual(record);
      });

      it("keeps snapshots of different databases apart", async () => {
        // Prepare
        const id = snapshotId(1);
        await catalog.recordSnapshot(snapshot(id, { databaseId: "pg-one", manifestSha256: sha("one") }));

        // Act
        const outcome = await catalog.recordSnapshot(snapshot(id, { databaseId: "pg-one-b", manifestSha256: sha("two") }));

        // Assess
        expect(outcome.outcome).toBe("created");
        expect((await catalog.getSnapshot("pg-one", id))?.manifestSha256).toBe(sha("one"));
        expect((await catalog.getSnapshot("pg-one-b", id))?.manifestSha256).toBe(sha("two"));
      });
    });

    describe("getSnapshot and listSnapshots", () => {
      it("getSnapshot resolves undefined for an id never recorded, and for another database's snapshot", async () => {
        // Prepare
        await catalog.recordSnapshot(snapshot(snapshotId(1)));

        // Act
        const got = await catalog.getSnapshot(DB, snapshotId(2));

        // Assess
        expect(got).toBeUndefined();
        expect(await catalog.getSnapshot("pg-other", snapshotId(1))).toBeUndefined();
      });

      it("listSnapshots returns every snapshot ordered by snapshotId, across pages, and none of the other items", async () => {
        // Prepare: seven snapshots written shuffled, 2 per page, with WAL, chunks, a head, a registration,
        // quarantine records and another database's snapshots beside them
        const paged = (await factory({ pageSize: 2 })).catalog;
        const ids = [1, 2, 9, 10, 99, 100, 250].map(snapshotId);
        for (const id of [...ids].sort(() => Math.random() - 0.5)) await paged.recordSnapshot(snapshot(id));
        await paged.putDatabase(database(DB));
        await paged.recordWal(wal(segmentName(1, 3)));
        await paged.advanceHead(DB, segmentName(1, 3), "0000000100000003", "2025-01-01T00:00:00.000Z");
        await paged.recordChunks([chunk(chunkHash(1)), chunk(chunkHash(2)), chunk(chunkHash(3))]);
        await paged.recordQuarantine(quarantine("snap#x", "2025-01-01T00:00:00.000Z"));
        await paged.recordSnapshot(snapshot(snapshotId(3), { databaseId: "pg-other" }));
        await paged.recordSnapshot(snapshot(snapshotId(4), { databaseId: `${DB}-b` }));

        // Act
        const listed = await paged.listSnapshots(DB);

        // Assess
        expect(listed.map((r) => r.snapshotId)).toEqual([...ids].sort());
        expect(listed).toEqual([...ids].sort().map((id) => snapshot(id)));
        expect((await paged.listSnapshots("pg-other")).map((r) => r.snapshotId)).toEqual([snapshotId(3)]);
      });

      it("listSnapshots returns an empty list for a database without snapshots", async () => {
        // Prepare
        await catalog.recordSnapshot(snapshot(snapshotId(1), { databaseId: "pg-other" }));
        await catalog.recordWal(wal(segmentName(1, 1)));

        // Act
        const listed = await catalog.listSnapshots(DB);

        // Assess
        expect(listed).toEqual([]);
      });
    });

    describe("DynamoDB's limits (refused as CatalogFaultError: a walvault fault, never a bad upload)", () => {
      const T = "2025-01-01T00:00:00.000Z";
      const faults = (errors: [string, unknown][], said: RegExp): void => {
        for (const [op, e] of errors) {
          expect(e, op).toBeInstanceOf(CatalogFaultError);
          expect((e as Error).message, op).toContain(op);
          expect((e as Error).message, op).toMatch(said);
        }
      };

      it("refuses a record whose item would exceed 400 KB, naming the operation, and keeps nothing of it", async () => {
        // Prepare
        const big = "x".repeat(420_000);

        // Act
        const errors: [string, unknown][] = [
          ["PutItem (quarantine)", await rejection(catalog.recordQuarantine(quarantine(segmentName(1, 1), T, { reason: big })))],
          ["PutItem (WAL)", await rejection(catalog.recordWal(wal(segmentName(1, 2), { vaultVersionId: big })))],
          ["BatchWriteItem (audit records)", await rejection(catalog.recordAudit([{ databaseId: DB, runId: "r1", seq: 0, at: T, action: "delete-wal", subject: "s", regions: ["r"], reason: big, by: "test" }]))],
          ["BatchWriteItem (chunk records)", await rejection(catalog.recordChunks([chunk(chunkHash(1), { vaultKey: big })]))],
          ["UpdateItem (head)", await rejection(catalog.advanceHead(DB, big, "0000000100000001", T))],
          ["TransactWriteItems (database registration)", await rejection(catalog.putDatabase(database(DB, { createdAt: big })))],
        ];

        // Assess
        faults(errors, /Item size (to update )?has exceeded the maximum allowed size/);
        expect(await catalog.listQuarantine(DB)).toEqual([]);
        expect(await catalog.getWal(DB, segmentName(1, 2))).toBeUndefined();
        expect(await catalog.listAudit(DB)).toEqual([]);
        expect(await catalog.missingChunks(DB, [chunkHash(1)])).toEqual([chunkHash(1)]);
        expect(await catalog.getHead(DB)).toBeUndefined();
        expect(await catalog.getDatabase(DB)).toBeUndefined();
        expect(await catalog.listDatabases()).toEqual([]);
      });

      it("counts UTF-8 bytes toward the 400 KB, not characters", async () => {
        // Act: 140,000 three-byte characters (420 KB), then 190,000 two-byte ones (380 KB).
        const over = await rejection(catalog.recordQuarantine(quarantine(segmentName(1, 1), T, { reason: "€".repeat(140_000) })));
        const under = quarantine(segmentName(1, 1), "2025-01-01T00:00:01.000Z", { reason: "é".repeat(190_000) });
        await catalog.recordQuarantine(under);

        // Assess
        expect(over).toBeInstanceOf(CatalogFaultError);
        expect(await catalog.listQuarantine(DB)).toEqual([under]);
      });

      it("refuses a key longer than DynamoDB holds (a sort key over 1024 bytes) on writes, reads and listings", async () => {
        // Prepare: a snapshot id of 1100 bytes, a quarantine name as long.
        const id = "s".repeat(1100);

        // Act
        const errors: [string, unknown][] = [
          ["PutItem (snapshot)", await rejection(catalog.recordSnapshot(snapshot(id)))],
          ["GetItem (snapshot)", await rejection(catalog.getSnapshot(DB, id))],
          ["Query (quarantine)", await rejection(catalog.listQuarantine(DB, "q".repeat(1100)))],
        ];

        // Assess
        faults(errors, /1024 bytes/);
      });
    });

    describe("when the service cannot be reached", () => {
      it("rejects reads and writes with ServiceUnavailableError naming the endpoint", async () => {
        // Prepare
        const { catalog: down, endpoint } = fixture.unreachable;
        const calls: [string, () => Promise<unknown>][] = [
          ["getWal", () => down.getWal(DB, segmentName(1, 1))],
          ["recordWal", () => down.recordWal(wal(segmentName(1, 1)))],
          ["listWal", () => down.listWal(DB)],
          ["advanceHead", () => down.advanceHead(DB, "n", "0000000100000001", "2025-01-01T00:00:00.000Z")],
          ["getDatabase", () => down.getDatabase(DB)],
          ["listQuarantine", () => down.listQuarantine(DB)],
          ["missingChunks", () => down.missingChunks(DB, [chunkHash(1)])],
          ["recordChunks", () => down.recordChunks([chunk(chunkHash(1))])],
          ["recordSnapshot", () => down.recordSnapshot(snapshot(snapshotId(1)))],
          ["getSnapshot", () => down.getSnapshot(DB, snapshotId(1))],
          ["listSnapshots", () => down.listSnapshots(DB)],
        ];

        // Act
        const errors = await Promise.all(calls.map(async ([op, call]) => [op, await rejection(call())] as const));

        // Assess
        for (const [op, err] of errors) {
          expect(err, op).toBeInstanceOf(ServiceUnavailableError);
          expect((err as Error).message, op).toContain(endpoint);
          expect((err as Error).cause, op).toBeDefined();
        }
      });
    });
  });
}
