/**
 * loadCatalogState (store/catalog-state.ts) on the local stack: what the
 * catalog and the vault hold, shaped for the planner. Records are put
 * straight into the catalog (and history files into the vault), as archives
 * written before wal-push and ingest checked histories may hold them.
 * loadPlanningState reads a bounded part of a large catalog (20,000 old
 * segments, batch-written) and plans as loadCatalogState's full read does.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { BatchWriteCommand, DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { InvalidInputError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { buildPlanInput } from "../../core/restore-input.js";
import { planRestore, type RestoreTarget } from "../../core/restore-plan.js";
import type { SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { snapshotPageKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { pageManifest, serializePagedHeader } from "../../core/manifest-pages.js";
import { genericManifest } from "../support/manifests.js";
import { formatLsn, historyName, parseWalFileName, segmentName, segmentStartLsn } from "../../core/wal.js";
import type { Catalog } from "../../store/catalog.js";
import { loadCatalogState, loadPlanningState } from "../../store/catalog-state.js";
import { databasePk, walSk } from "../../store/catalog-layout.js";
import { stackClients, type StackClients } from "../support/harness.js";
import { countingStore } from "../support/snapshots.js";
import { seededRandom } from "../support/random.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const BOGUS = "pg-bogus-history";
const POINTS = "pg-restore-points";
const MANY = "pg-many-segments";
const FALLBACK = "pg-fallback";
/** Generic, the database of test/support/manifests.ts buildGeneric: a record without streams, its manifest in format 2. */
const LEDGER = "ledger";
/** MANY: timeline 1 holds segments 1..20,199 (20,000 before the new snapshot), timeline 2 branches off at 20,200 and goes on to 20,400. */
const OLD_START = 5n;
const NEW_START = 20_050n;
const SWITCH = 20_200n;
const END = 20_400n;
const OLD_SEGMENTS = Number(NEW_START - 1n - 50n + 1n) + 49; // segments 1..20,049 on timeline 1, before the new snapshot's start
const T0 = Date.parse("2025-02-01T00:00:00.000Z");
/** Segment n was archived n seconds after T0. */
const archivedAt = (n: bigint): string => new Date(T0 + Number(n) * 1000).toISOString();

let stack: TestStack;
let clients: StackClients;
let store: ReturnType<typeof countingStore>;

function snapshotRecord(databaseId: string, id = "20250101T000000Z-00000001"): SnapshotRecord {
  return {
    databaseId,
    snapshotId: id,
    kind: "postgres",
    timeline: 1,
    startLsn: "0/3000028",
    stopLsn: "0/3000100",
    startWalFile: segmentName(1, 3n),
    stopWalFile: segmentName(1, 3n),
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:01:00.000Z",
    manifestKey: `db/${databaseId}/snapshots/${id}/manifest.json`,
    manifestSha256: sha256Hex(Buffer.from("not read: the record is complete")),
    manifestSize: 4096,
    totals: { files: 3, logicalBytes: 3 << 20, uniqueChunks: 4, newChunks: 2, storedBytes: 1 << 20, newStoredBytes: 1 << 19 },
    status: "restorable",
    recordedAt: "2025-01-01T00:02:00.000Z",
    replicas: {},
  };
}

function walRecord(databaseId: string, name: string, kind: WalRecord["kind"], timeline: number, extra: Partial<WalRecord> = {}): WalRecord {
  return {
    databaseId,
    name,
    kind,
    timeline,
    size: 16 << 20,
    storedSize: 1 << 20,
    sha256: sha256Hex(Buffer.from(name)),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${databaseId}/wal/${name}`,
    archivedAt: `2025-01-01T00:0${Number(name.slice(16, 24)) % 10}:30.000Z`,
    replicas: {},
    ...extra,
  };
}

/** A history file put into the vault and the catalog as it is, unchecked. */
async function archiveHistory(databaseId: string, timeline: number, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  const body = await getCodec("zstd").encode(bytes);
  const name = historyName(timeline);
  const sha256 = sha256Hex(bytes);
  const vaultKey = `db/${databaseId}/wal/${name}`;
  await clients.store.put(stack.config.vaultBucket, vaultKey, body, objectMeta({ sha256, codec: "zstd", size: bytes.length }));
  await clients.catalog.recordWal({ ...walRecord(databaseId, name, "history", timeline), size: bytes.length, storedSize: body.length, sha256, archivedAt: "2025-01-01T00:09:00.000Z" });
}

async function plan(databaseId: string, target: RestoreTarget) {
  const state = await loadCatalogState(clients.catalog, store, stack.config.vaultBucket, databaseId);
  return planRestore(buildPlanInput(state, target, undefined));
}

/** A PostgreSQL snapshot record of timeline 1 starting in segment `start` and consistent in the next, finished at its archive time. */
function snapshotAt(databaseId: string, start: bigint, n: number): SnapshotRecord {
  const id = `20250201T${String(n).padStart(6, "0")}Z-0000000${n}`;
  return {
    ...snapshotRecord(databaseId, id),
    startLsn: formatLsn(segmentStartLsn(start) + 0x28n),
    stopLsn: formatLsn(segmentStartLsn(start + 1n) + 0x100n),
    startWalFile: segmentName(1, start),
    stopWalFile: segmentName(1, start + 1n),
    startedAt: archivedAt(start - 1n),
    finishedAt: archivedAt(start + 1n),
  };
}

/** Segment records of a timeline, written straight into the table in batches of 25 (recordWal would take one round trip each). */
async function putSegments(databaseId: string, timeline: number, segnos: Iterable<bigint>, when: (n: bigint) => string = archivedAt): Promise<void> {
  const c = stack.config;
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: c.region, endpoint: c.dynamodbEndpoint, credentials: c.credentials }));
  const items = [];
  for (const n of segnos) {
    const rec = { ...walRecord(databaseId, segmentName(timeline, n), "segment", timeline), archivedAt: when(n) };
    items.push({ ...rec, pk: databasePk(databaseId), sk: walSk(timeline, rec.name) });
  }
  const batches: (typeof items)[] = [];
  for (let i = 0; i < items.length; i += 25) batches.push(items.slice(i, i + 25));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      let requests = batches[next++]!.map((Item) => ({ PutRequest: { Item } }));
      while (requests.length > 0) {
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [c.table]: requests } }));
        requests = (out.UnprocessedItems?.[c.table] ?? []) as typeof requests;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  doc.destroy();
}

function* range(from: bigint, to: bigint): Generator<bigint> {
  for (let n = from; n <= to; n++) yield n;
}

/** The catalog, counting the WAL records its listings return (by name) and its range listings. */
function countingCatalog(inner: Catalog): Catalog & { walRead: string[]; rangeQueries: number } {
  const walRead: string[] = [];
  const wrapped = Object.create(inner) as Catalog & { walRead: string[]; rangeQueries: number };
  wrapped.walRead = walRead;
  wrapped.rangeQueries = 0;
  wrapped.listWal = async (...a) => track(await inner.listWal(...a));
  wrapped.listWalRange = async (...a) => {
    wrapped.rangeQueries++;
    return track(await inner.listWalRange(...a));
  };
  wrapped.listWalTimelines = async (...a) => {
    const out = await inner.listWalTimelines(...a);
    walRead.push(...out.map((t) => t.history?.name ?? `first of timeline ${t.timeline}`));
    return out;
  };
  function track<T extends { name: string }>(records: T[]): T[] {
    walRead.push(...records.map((r) => r.name));
    return records;
  }
  return wrapped;
}

/** Plans `target` from loadPlanningState (with what it read) and from loadCatalogState. */
async function bothPlans(databaseId: string, target: RestoreTarget) {
  const counting = countingCatalog(clients.catalog);
  const bounded = planRestore(buildPlanInput(await loadPlanningState(counting, store, stack.config.vaultBucket, databaseId, target), target, undefined));
  const full = planRestore(buildPlanInput(await loadCatalogState(clients.catalog, store, stack.config.vaultBucket, databaseId), target, undefined));
  const segnos = counting.walRead.flatMap((name) => {
    const p = /^[0-9A-F]{24}$/.test(name) ? parseWalFileName(name) : undefined;
    return p?.segno === undefined ? [] : [p.segno];
  });
  return { bounded, full, read: counting.walRead, segnos };
}

beforeAll(async () => {
  stack = await startTestStack([{ id: BOGUS }, { id: POINTS }, { id: MANY }, { id: FALLBACK }, { id: LEDGER, kind: "generic" }]);
  const base = stackClients(stack);
  store = countingStore(base.store);
  clients = { store, catalog: base.catalog };
  // Prepare: a snapshot on timeline 1, segments 3-5 on timeline 1, and a history file of timeline 2
  // whose content is no history (no WAL on timeline 2).
  await clients.catalog.recordSnapshot(snapshotRecord(BOGUS));
  for (const n of [3n, 4n, 5n]) await clients.catalog.recordWal(walRecord(BOGUS, segmentName(1, n), "segment", 1));
  await archiveHistory(BOGUS, 2, "garbage in\u001b[31m a history\n");
  // A snapshot on timeline 1, segments 3-7; ingest recorded a restore point in segment 5.
  await clients.catalog.recordSnapshot(snapshotRecord(POINTS));
  for (const n of [3n, 4n, 5n, 6n, 7n]) {
    const restorePoints = n === 5n ? [{ name: "before_migration", lsn: "0/5000A48", time: "2025-01-01T00:05:10.123456Z" }] : undefined;
    await clients.catalog.recordWal(walRecord(POINTS, segmentName(1, n), "segment", 1, restorePoints ? { restorePoints } : {}));
  }
  // MANY: an old and a new snapshot on timeline 1, 20,000+ segments before the new one, a few hundred after it
  // on timelines 1 and 2 (timeline 2 branches off where segment 20,200 starts; timeline 1's copy of it is a .partial).
  await clients.catalog.recordSnapshot(snapshotAt(MANY, OLD_START, 1));
  await clients.catalog.recordSnapshot(snapshotAt(MANY, NEW_START, 2));
  await putSegments(MANY, 1, range(1n, SWITCH - 1n));
  await clients.catalog.recordWal(walRecord(MANY, `${segmentName(1, SWITCH)}.partial`, "partial", 1));
  await archiveHistory(MANY, 2, `1\t${formatLsn(segmentStartLsn(SWITCH))}\tno recovery target specified\n`);
  await putSegments(MANY, 2, range(SWITCH, END));
  // FALLBACK: snapshots starting at 100, 200 and 300; the newest's consistent segment (301) is not archived yet.
  for (const [i, start] of [100n, 200n, 300n].entries()) await clients.catalog.recordSnapshot(snapshotAt(FALLBACK, start, i + 1));
  await putSegments(FALLBACK, 1, range(1n, 300n));
}, 300_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("a record planned from its format-2 manifest", () => {
  it("reads the header alone: the streams come from it, no page is read", async () => {
    // Prepare: a generic snapshot whose record has no streams (planning must read its manifest), stored in format 2.
    const m = genericManifest([{ id: "wal", lastSegment: "wal/000042.wal", lastSegno: 42 }, { id: "aux", lastSegment: "aux/000007.wal", lastSegno: 7 }]);
    const { header, pages } = pageManifest(m, { chunks: 1, bytes: 64 });
    const manifestKey = vaultSnapshotManifestKey(LEDGER, m.snapshotId);
    for (const p of pages) await store.put(stack.config.vaultBucket, snapshotPageKey(manifestKey, p.index), Buffer.from(p.text), {});
    const text = Buffer.from(serializePagedHeader(header));
    await store.put(stack.config.vaultBucket, manifestKey, text, {});
    const { streams: _s, timeline: _t, startLsn: _a, stopLsn: _b, startWalFile: _c, stopWalFile: _d, ...base } = snapshotRecord(LEDGER, m.snapshotId);
    await clients.catalog.recordSnapshot({ ...base, kind: "generic", startedAt: m.startedAt, finishedAt: m.finishedAt, manifestKey, manifestSha256: sha256Hex(text), manifestSize: text.length });
    expect(pages.length).toBeGreaterThan(1);
    store.reset();

    // Act
    const state = await loadCatalogState(clients.catalog, store, stack.config.vaultBucket, LEDGER);

    // Assess
    expect(state.streams).toEqual(["aux", "wal"]);
    expect(state.manifests.get(m.snapshotId)).toMatchObject({ snapshotId: m.snapshotId, kind: "generic" });
    expect(state.manifests.get(m.snapshotId)).not.toHaveProperty("files");
    expect(store.gets).toEqual([manifestKey]);
  });
});

describe("history files that are no history", () => {
  it("are passed over for the latest timeline with a warning naming the file, and the plan restores timeline 1", async () => {
    // Act
    const p = await plan(BOGUS, { kind: "latest" });

    // Assess
    expect(p.targetTimeline).toBe(1);
    expect(p.wal.map((w) => w.name)).toEqual([segmentName(1, 3n), segmentName(1, 4n), segmentName(1, 5n)]);
    const warning = p.warnings.find((w) => w.includes(historyName(2)));
    expect(warning).toContain("timeline 2 (00000002.history is not a timeline history file: timeline history line 1 is malformed");
    expect(warning).toContain("\\e[31m"); // quoted escaped, never raw
    expect(warning).not.toContain("\u001b");
    expect(warning).toContain("restoring timeline 1");
  });

  it("make an explicit timeline naming them fail with one line naming the file", async () => {
    // Act
    const err = await plan(BOGUS, { kind: "latest", timeline: 2 }).catch((e: unknown) => e);

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    const msg = (err as Error).message;
    expect(msg).toContain("timeline 2's ancestry is unknown: 00000002.history is not a timeline history file");
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).not.toContain("\u001b");
  });
});

describe("restore points recorded by ingest", () => {
  it("reach the planner: a name resolves to its exact LSN, replay stops in its segment, nothing is read from the vault", async () => {
    // Prepare
    store.reset();

    // Act
    const p = await plan(POINTS, { kind: "name", name: "before_migration" });
    const unknown = await plan(POINTS, { kind: "name", name: "nosuchpoint" });

    // Assess
    expect(store.gets).toEqual([]);
    expect(p.recoveryTarget).toMatchObject({ recovery_target_name: "before_migration", recovery_target_timeline: "1" });
    expect(p.wal.map((w) => w.name)).toEqual([segmentName(1, 3n), segmentName(1, 4n), segmentName(1, 5n)]);
    expect(p.warnings).toEqual([]);
    // A name the catalog does not know: replay to the end, with the warning that restore scans the WAL for it.
    expect(unknown.wal.at(-1)!.name).toBe(segmentName(1, 7n));
    expect(unknown.warnings.join("\n")).toContain("restore point 'nosuchpoint' is not in the catalog");
  });
});

describe("planning state of a large archive", () => {
  it("reads the WAL records from the chosen snapshot's start on, not the 20,000 before it, and plans as the full read does", async () => {
    // Act
    const { bounded, full, read, segnos } = await bothPlans(MANY, { kind: "latest" });

    // Assess
    expect(bounded).toEqual(full);
    expect(bounded.snapshot.startLsn).toBe(segmentStartLsn(NEW_START) + 0x28n);
    expect(bounded.targetTimeline).toBe(2);
    expect(bounded.wal).toHaveLength(Number(END - NEW_START + 1n));
    const old = segnos.filter((n) => n < NEW_START);
    expect(old.length).toBeLessThan(OLD_SEGMENTS / 100);
    expect(read.length).toBeLessThan(Number(END - NEW_START + 1n) + 100);
  });

  it("plans time, LSN and snapshot targets as the full read does, reading back only as far as their snapshot", async () => {
    // Prepare: a time and an LSN after the new snapshot, and the old snapshot by id
    const targets: RestoreTarget[] = [
      { kind: "time", time: new Date(archivedAt(NEW_START + 100n)) },
      { kind: "lsn", lsn: segmentStartLsn(NEW_START + 30n) },
      { kind: "latest", timeline: 1 },
    ];

    // Act
    const results = await Promise.all(targets.map((t) => bothPlans(MANY, t)));

    // Assess
    for (const { bounded, full, segnos } of results) {
      expect(bounded).toEqual(full);
      expect(segnos.filter((n) => n < NEW_START).length).toBeLessThan(OLD_SEGMENTS / 100);
    }
    expect(results[0]!.bounded.wal.at(-1)!.name).toBe(segmentName(1, NEW_START + 101n));
    expect(results[2]!.bounded.wal.at(-1)!.name).toBe(segmentName(1, SWITCH - 1n));
  });

  it("widens the range to an older snapshot when the newest cannot reach the target, with the full read's plan and warning", async () => {
    // Act
    const { bounded, full, segnos } = await bothPlans(FALLBACK, { kind: "latest" });

    // Assess
    expect(bounded).toEqual(full);
    expect(bounded.snapshot.startLsn).toBe(segmentStartLsn(200n) + 0x28n);
    expect(bounded.warnings.join("\n")).toContain("becomes consistent only at");
    expect(segnos.filter((n) => n < 100n)).toEqual([]);
  });

  it("reads only an old snapshot's own range when it is the target, nothing before or after it", async () => {
    // Act
    const id = snapshotAt(MANY, OLD_START, 1).snapshotId;
    const { bounded, full, segnos } = await bothPlans(MANY, { kind: "snapshot", id });

    // Assess
    expect(bounded).toEqual(full);
    expect(bounded.wal.map((w) => w.name)).toEqual([segmentName(1, OLD_START), segmentName(1, OLD_START + 1n)]);
    // Beside its range: a page looking back, a page looking on, and a page at each timeline's end.
    expect(segnos.filter((n) => n > OLD_START + 20n && n < SWITCH - 20n)).toEqual([]);
    expect(segnos.length).toBeLessThan(100);
  });
});

describe("planning state in a replica region far behind", () => {
  it("reads the whole catalog when the region holds none of the newest 1,024 records of a timeline, and plans as the full read does", async () => {
    // Prepare: the region holds both snapshots and segments 1-10 of MANY's 20,000 on timeline 1, nothing of timeline 2
    const region = "eu-far-1";
    for (const n of [1, 2]) await clients.catalog.setSnapshotReplicaStatus(MANY, snapshotAt(MANY, n === 1 ? OLD_START : NEW_START, n).snapshotId, region, { status: "replicated", at: "2025-02-02T00:00:00.000Z" });
    for (const n of range(1n, 10n)) await clients.catalog.setReplicaStatus(MANY, segmentName(1, n), region, { status: "replicated", at: "2025-02-02T00:00:00.000Z" });
    const target: RestoreTarget = { kind: "latest" };

    const counting = countingCatalog(clients.catalog);

    // Act
    const bounded = await outcome(() => loadPlanningState(counting, store, stack.config.vaultBucket, MANY, target, { region }), target);
    const full = await outcome(() => loadCatalogState(clients.catalog, store, stack.config.vaultBucket, MANY, { region }), target);

    // Assess
    expect(bounded).toEqual(full);
    expect((bounded as { wal: { name: string }[] }).wal.map((w) => w.name)).toEqual([...range(OLD_START, 10n)].map((n) => segmentName(1, n)));
    // Each look gives up after 64 pages of 16 records (a walk through timeline 1 would take ~1,260 pages).
    expect(counting.rangeQueries).toBeLessThanOrEqual(2 * 64 + 10);
  });
});

/** A plan, or the error's name and message. */
async function outcome(load: () => Promise<Parameters<typeof buildPlanInput>[0]>, target: RestoreTarget): Promise<unknown> {
  try {
    return planRestore(buildPlanInput(await load(), target, undefined));
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

describe("planning state of random archives", () => {
  it("gives the plan, or the error, the full read gives, for every target", async () => {
    for (let seed = 1; seed <= 24; seed++) {
      // Prepare: timeline 1, maybe timelines 2 and 3 branching off (timeline 1 cut at the switch or going on), gaps, 1-4 snapshots
      const rnd = seededRandom(seed);
      const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
      const databaseId = `pg-rand-${seed}`;
      await clients.catalog.putDatabase({ databaseId, kind: "postgres", walSegmentSize: 16 << 20, createdAt: "2025-01-01T00:00:00.000Z" });
      const when = (tl: number) => (n: bigint) => new Date(T0 + Number(n) * 60_000 + (tl - 1) * 13_000).toISOString();
      const withGaps = (from: number, to: number): bigint[] => [...range(BigInt(from), BigInt(to))].filter(() => rnd() > 0.04);
      const spans = new Map<number, [number, number]>();
      const end1 = int(20, 40);
      let tl1End = end1;
      if (rnd() < 0.6) {
        const s2 = int(5, end1 - 2);
        const off2 = rnd() < 0.5 ? 0n : 0x100n;
        if (rnd() < 0.5) tl1End = s2 - 1;
        const end2 = s2 + int(5, 20);
        spans.set(2, [s2, end2]);
        let text = `1\t${formatLsn(segmentStartLsn(BigInt(s2)) + off2)}\tno recovery target specified\n`;
        await archiveHistory(databaseId, 2, text);
        await putSegments(databaseId, 2, withGaps(s2, end2), when(2));
        if (rnd() < 0.4) {
          const s3 = int(s2 + 1, end2);
          text += `2\t${formatLsn(segmentStartLsn(BigInt(s3)))}\tno recovery target specified\n`;
          spans.set(3, [s3, s3 + int(3, 10)]);
          await archiveHistory(databaseId, 3, text);
          await putSegments(databaseId, 3, withGaps(s3, spans.get(3)![1]), when(3));
        }
      }
      spans.set(1, [1, tl1End]);
      await putSegments(databaseId, 1, withGaps(1, tl1End), when(1));
      const ids: string[] = [];
      for (let i = 0; i < int(1, 4); i++) {
        const tl = [...spans.keys()][int(0, spans.size - 1)]!;
        const [lo, hi] = spans.get(tl)!;
        const start = BigInt(int(lo, hi));
        const stop = start + BigInt(int(0, 2));
        const rec = snapshotAt(databaseId, start, i + 1);
        ids.push(rec.snapshotId);
        await clients.catalog.recordSnapshot({
          ...rec,
          timeline: tl,
          stopLsn: formatLsn(segmentStartLsn(stop) + 0x100n),
          startWalFile: segmentName(tl, start),
          stopWalFile: segmentName(tl, stop),
          startedAt: when(tl)(start - 1n),
          finishedAt: when(tl)(stop + 1n),
        });
      }
      const targets: RestoreTarget[] = [
        { kind: "latest" },
        { kind: "latest", timeline: 1 },
        { kind: "time", time: new Date(T0 + int(1, 60) * 60_000 + 30_000) },
        { kind: "lsn", lsn: segmentStartLsn(BigInt(int(1, 60))) + 0x80n },
        { kind: "lsn", lsn: segmentStartLsn(BigInt(int(1, 60))), timeline: [...spans.keys()].at(-1)! },
        { kind: "snapshot", id: ids[int(0, ids.length - 1)]! },
      ];

      // Act
      const results = await Promise.all(
        targets.map(async (target) => ({
          target,
          bounded: await outcome(() => loadPlanningState(clients.catalog, store, stack.config.vaultBucket, databaseId, target), target),
          full: await outcome(() => loadCatalogState(clients.catalog, store, stack.config.vaultBucket, databaseId), target),
        })),
      );

      // Assess
      for (const r of results) expect(r.bounded, `seed ${seed}, target ${JSON.stringify(r.target, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`).toEqual(r.full);
    }
  }, 240_000);
});
