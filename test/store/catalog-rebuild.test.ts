/**
 * Catalog rebuild (store/catalog-rebuild.ts, `walvault catalog rebuild`) on
 * the real local stack: content goes in through the real ingest paths — a
 * real PostgreSQL 15 archiving with `walvault wal-push` and a `walvault
 * snapshot push` base backup, synthetic segments, a .partial and a timeline
 * history pushed with `walvault wal-push` into a database with 1 MiB
 * segments, generic segments uploaded like `walvault watch` does and a
 * generic snapshot pushed with snapshotPush — then the catalog is rebuilt
 * from the vault bucket alone into new tables on the same DynamoDB Local and
 * compared with the original.
 *
 * What legitimately differs (nothing else may):
 * - WAL `archivedAt`, snapshot and chunk `recordedAt`, the head's
 *   `lastArchivedAt`: the original is the clock of the Record step; the
 *   bucket keeps only the object's Last-Modified, written by Promote just
 *   before and in whole seconds. So rebuilt <= original, a few seconds at most.
 * - the registration's `createdAt`: `walvault db add` time is in no object;
 *   the rebuild takes the first object's Last-Modified.
 * - `replicas`: replica statuses are not in a bucket (none here anyway).
 * - quarantine records: rejected uploads never reach the vault (status's
 *   `quarantined` count is left out of the comparison).
 * Needs `npm run build` first (the CLI and s3rver run from dist/).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { PutCommand, QueryCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planFor, planToJson } from "../../agent/restore.js";
import { regionVault } from "../../agent/catalog-rebuild.js";
import { snapshotPush } from "../../agent/snapshot-push.js";
import { status } from "../../agent/status.js";
import { getCodec } from "../../core/codec.js";
import type { AgentConfig } from "../../core/config.js";
import { genericSegmentMeta, type GenericSegmentMeta } from "../../core/generic-wal.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingGenericWalKey } from "../../core/keys.js";
import type { RestoreTarget } from "../../core/restore-plan.js";
import { META_DATABASE, type WalRecord } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { parseLsn } from "../../core/wal.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import type { Catalog } from "../../store/catalog.js";
import { openCatalogTable, rebuildCatalog, type RebuildSummary } from "../../store/catalog-rebuild.js";
import { chunkSk, databasePk } from "../../store/catalog-layout.js";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { createCatalog } from "../../store/factory.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { settleRuns, stackClients, tempDir, writeWal, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";
import { switchAndWaitArchived } from "../support/postgres.js";

const PG = "pg-real";
const PGT = "pg-timelines";
const GEN = "gen-stripes";
const MiB = 1 << 20;

let stack: TestStack;
let clients: StackClients;
let primary: ScratchPostgres | undefined;
let work: string;
/** Restore targets per database, chosen away from every archive time (see the file comment). */
const targets: Record<string, RestoreTarget[]> = {};
let rebuilt: Catalog;
let summary: RebuildSummary;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


/** Uploads generic segments as `walvault watch` does and waits for their ingest. */
async function shipGeneric(segments: { stream: string; file: string; bytes: Buffer; meta: GenericSegmentMeta }[]): Promise<void> {
  await stack.idle();
  const before = stack.stats.started;
  for (const s of segments) {
    const body = await getCodec("zstd").encode(s.bytes);
    await clients.store.put(stack.config.incomingBucket, incomingGenericWalKey(GEN, s.stream, s.file), body, {
      ...objectMeta({ sha256: sha256Hex(s.bytes), codec: "zstd", size: s.bytes.length }),
      [META_DATABASE]: GEN,
      ...genericSegmentMeta(s.meta),
    });
  }
  await settleRuns(stack, before, segments.length, 60_000);
}

async function cli(args: string[]): Promise<void> {
  const r = await stack.cli(args);
  if (r.code !== 0) throw new Error(`walvault ${args.join(" ")} failed: ${r.stderr}`);
}

/** A table on the stack's DynamoDB Local, created by the rebuild when new. */
async function table(name: string): Promise<DynamoCatalog> {
  const c = stack.config;
  return (await openCatalogTable({ region: c.region, dynamodbEndpoint: c.dynamodbEndpoint, credentials: c.credentials, table: name })).catalog;
}

/** Every item of a table, keys included, in key order. */
async function scanAll(catalog: DynamoCatalog): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await catalog.doc.send(new ScanCommand({ TableName: catalog.tableName, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start !== undefined);
  return items.sort((a, b) => `${String(a.pk)} ${String(a.sk)}`.localeCompare(`${String(b.pk)} ${String(b.sk)}`));
}

async function chunkItems(catalog: DynamoCatalog, databaseId: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await catalog.doc.send(
      new QueryCommand({
        TableName: catalog.tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :chunk)",
        ExpressionAttributeValues: { ":pk": databasePk(databaseId), ":chunk": chunkSk("") },
        ConsistentRead: true,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}

function without<T extends object>(o: T, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

/**
 * A rebuilt time is the object's Last-Modified: at most a few seconds before
 * the original, never after. `withinMs`: a chunk in a pack takes its pack's
 * Last-Modified, and ingest records a snapshot's chunk locations only after
 * promoting all its packs, so its lag is the ingest's, up to a minute here.
 */
function expectEarlierBySeconds(rebuiltAt: string, originalAt: string, what: string, withinMs = 5_000): void {
  const lag = Date.parse(originalAt) - Date.parse(rebuiltAt);
  expect(lag, `${what}: original ${originalAt}, rebuilt ${rebuiltAt}`).toBeGreaterThanOrEqual(0);
  expect(lag, `${what}: original ${originalAt}, rebuilt ${rebuiltAt}`).toBeLessThan(withinMs);
}

/** The plan (or the planning error) as `restore --plan-only --json` shows it. */
async function planOf(catalog: Catalog, databaseId: string, target: RestoreTarget): Promise<unknown> {
  try {
    return planToJson(await planFor({ store: clients.store, catalog }, stack.config, databaseId, target));
  } catch (e) {
    return { error: (e as Error).name, message: (e as Error).message };
  }
}

beforeAll(async () => {
  stack = await startTestStack([{ id: PG }, { id: PGT, walSegmentSize: MiB }, { id: GEN, kind: "generic" }]);
  clients = stackClients(stack);
  work = mkdtempSync(join(tmpdir(), "walvault-rebuild-"));
  chmodSync(work, 0o777);

  // PostgreSQL: a real server archiving through walvault, a base backup, then WAL around chosen points.
  primary = await ScratchPostgres.create({
    settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
    env: { WALVAULT_CONFIG: stack.configPath, WALVAULT_DATABASE: PG },
  });
  await primary.start();
  await primary.psql("create table events(id bigserial primary key, note text)");
  await primary.psql("insert into events(note) select 'before' from generate_series(1, 1000)");
  await cli(["snapshot", "push", "--database", PG, "--host", primary.socketDir, "--port", String(primary.port), "--user", "postgres"]);
  await primary.psql("insert into events(note) select 'after' from generate_series(1, 1000)");
  await switchAndWaitArchived(primary);
  await stack.idle();
  // A time with no archive time within 2 s of it (Last-Modified has whole seconds).
  await sleep(2_200);
  const pgTime = new Date();
  await sleep(2_200);
  await primary.psql("insert into events(note) select 'later' from generate_series(1, 1000)");
  const lsn = parseLsn(await primary.psql("select pg_current_wal_insert_lsn()"));
  await primary.psql("select pg_create_restore_point('rebuild_point')");
  await switchAndWaitArchived(primary);
  await primary.psql("insert into events(note) select 'last' from generate_series(1, 1000)");
  await switchAndWaitArchived(primary);
  await stack.idle();
  const [pgSnap] = await clients.catalog.listSnapshots(PG);
  targets[PG] = [
    { kind: "latest" },
    { kind: "time", time: pgTime },
    { kind: "lsn", lsn },
    { kind: "name", name: "rebuild_point" },
    { kind: "snapshot", id: pgSnap!.snapshotId },
    { kind: "time", time: new Date(Date.parse(pgSnap!.startedAt) - 3_600_000) },
  ];

  // PostgreSQL with 1 MiB segments: timeline 1, a .partial, the history of timeline 2 and its segments, via the CLI.
  const dir = tempDir("walvault-rebuild-wal-");
  const push = async (name: string, bytes: Buffer | string): Promise<void> => cli(["wal-push", "--database", PGT, writeWal(dir, name, bytes)]);
  for (let seg = 1; seg <= 3; seg++) await push(`00000001000000000000000${seg}`, syntheticSegment(`00000001000000000000000${seg}`, seg, MiB));
  await push("000000010000000000000004.partial", syntheticSegment("000000010000000000000004", 4, MiB));
  await push("00000002.history", "1\t0/400000\tno recovery target specified\n");
  for (let seg = 4; seg <= 5; seg++) await push(`00000002000000000000000${seg}`, syntheticSegment(`00000002000000000000000${seg}`, 20 + seg, MiB));

  // Generic: two streams, a snapshot after their first segments, two more segments each after it.
  const first = Date.now() - 60_000;
  const stamp = (ms: number): string => new Date(ms).toISOString();
  const seg = (stream: string, pos: number, closedAt: string, scan: { at: string; count: number }) => ({
    stream,
    file: `00000${pos}.wal`,
    bytes: Buffer.from(`${stream} segment ${pos}\n`.repeat(200 + pos)),
    meta: { position: BigInt(pos), closedAt, scan },
  });
  const scan1 = { at: stamp(first + 5_000), count: 2 };
  await shipGeneric([seg("stripe-1", 1, stamp(first), scan1), seg("stripe-2", 1, stamp(first), scan1)]);
  const data = join(work, "gen");
  mkdirSync(join(data, "sst"), { recursive: true });
  for (const s of ["stripe-1", "stripe-2"]) {
    mkdirSync(join(data, s));
    writeFileSync(join(data, s, "000001.wal"), `${s} segment 1\n`);
  }
  writeFileSync(join(data, "sst", "000007.sst"), Buffer.alloc(300_000, 7));
  writeFileSync(join(data, "CURRENT"), "MANIFEST-000007\n");
  const genCfg: AgentConfig & { databaseId: string } = { ...stack.config, databaseId: GEN };
  const snap = await snapshotPush(
    {
      kind: "generic",
      dir: data,
      streams: [
        { id: "stripe-1", lastSegment: "stripe-1/000001.wal", lastSegno: 1 },
        { id: "stripe-2", lastSegment: "stripe-2/000001.wal", lastSegno: 1 },
      ],
    },
    genCfg,
    clients,
    { timeoutMs: 120_000 },
  );
  const finished = Date.parse((await clients.catalog.getSnapshot(GEN, snap.snapshotId))!.finishedAt);
  const scan2 = { at: stamp(finished + 4_000), count: 4 };
  await shipGeneric([
    seg("stripe-1", 2, stamp(finished + 1_000), scan2),
    seg("stripe-2", 2, stamp(finished + 1_000), scan2),
    seg("stripe-1", 3, stamp(finished + 3_000), scan2),
    seg("stripe-2", 3, stamp(finished + 3_000), scan2),
  ]);
  targets[GEN] = [
    { kind: "latest" },
    { kind: "time", time: new Date(finished + 2_000) },
    { kind: "time", time: new Date(finished + 60_000) },
    { kind: "snapshot", id: snap.snapshotId },
  ];
  await stack.idle();

  // Act (shared by the comparisons below): rebuild the three databases into a new table.
  rebuilt = await table("rebuilt-primary");
  summary = await rebuildCatalog({ store: clients.store, bucket: stack.config.vaultBucket }, rebuilt, { databaseIds: [PG, PGT, GEN], concurrency: 8 });
}, 600_000);

afterAll(async () => {
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("catalog rebuild from a vault bucket", () => {
  it("registers each database with the kind and WAL segment size the bucket tells, reporting nothing skipped", async () => {
    // Assess
    expect(summary.skipped).toEqual([]);
    for (const d of summary.databases) {
      expect(d.skipped, d.databaseId).toEqual([]);
      expect(d.refused, d.databaseId).toBeUndefined();
      expect(d.registration).toBe("created");
    }
    for (const id of [PG, PGT, GEN]) {
      const original = await clients.catalog.getDatabase(id);
      expect(without((await rebuilt.getDatabase(id))!, "createdAt"), id).toEqual(without(original!, "createdAt"));
    }
    expect(summary.databases.find((d) => d.databaseId === PGT)).toMatchObject({ kind: "postgres", walSegmentSize: MiB, segments: 5, partials: 1, historyFiles: 1 });
    expect(summary.databases.find((d) => d.databaseId === GEN)).toMatchObject({ kind: "generic", segments: 6, snapshots: 1 });
    const pg = summary.databases.find((d) => d.databaseId === PG)!;
    expect(pg).toMatchObject({ kind: "postgres", walSegmentSize: 16 * MiB, snapshots: 1, backupLabels: 1 });
    expect(pg.segments).toBeGreaterThanOrEqual(4);
  });

  it("records the same WAL files as the original catalog; archive times are the objects' Last-Modified", async () => {
    for (const id of [PG, PGT, GEN]) {
      // Act
      const [original, again] = await Promise.all([clients.catalog.listWal(id), rebuilt.listWal(id)]);

      // Assess
      expect(original.length, id).toBeGreaterThan(0);
      // A rebuild reads no WAL bytes: restore points and transaction end times are not recovered (docs/verification.md).
      const derived = ["archivedAt", "replicas", "restorePoints", "restorePointsTruncated", "lastXactAt"] as const;
      expect(again.map((w) => without(w, ...derived)), id).toEqual(original.map((w) => without(w, ...derived)));
      again.forEach((w, i) => expectEarlierBySeconds(w.archivedAt, original[i]!.archivedAt, w.name));
    }
    // The generic segments keep position, close time and watch scan; PostgreSQL partials and history too.
    expect((await rebuilt.getWal(GEN, "stripe-2/000003.wal"))).toMatchObject({ startLsn: "3", timeline: 1, scanCount: 4 });
    // Each generic segment is rebuilt with its position key, as ingest writes it: the index lists every one, by stream.
    const genSegments = (await rebuilt.listWal(GEN)).filter((w) => w.kind === "segment").map((w) => w.name);
    const streams = [...new Set(genSegments.map((n) => n.split("/")[0]!))];
    const byRange = await Promise.all(streams.map((s) => rebuilt.listGenericWalRange(GEN, s, 0n, undefined)));
    expect(byRange.flatMap((p) => p.records.map((w) => w.name)).sort()).toEqual([...genSegments].sort());
    expect((await rebuilt.getDatabase(GEN))?.walIndex).toBe("complete");
    expect(await rebuilt.getWal(PGT, "000000010000000000000004.partial")).toMatchObject({ kind: "partial", startLsn: "0/400000", endLsn: "0/500000" });
  });

  it("records the same snapshots, packs and chunk records, and a record for every chunk of a pack; record times are the objects' Last-Modified", async () => {
    for (const id of [PG, GEN]) {
      // Act
      const [original, again] = await Promise.all([clients.catalog.listSnapshots(id), rebuilt.listSnapshots(id)]);
      const [originalChunks, againChunks] = await Promise.all([chunkItems(clients.catalog as DynamoCatalog, id), chunkItems(rebuilt as DynamoCatalog, id)]);
      const [originalPacks, againPacks] = await Promise.all([clients.catalog.listPackPage(id), rebuilt.listPackPage(id)]);

      // Assess
      expect(original.length, id).toBe(1);
      expect(again.map((s) => without(s, "recordedAt", "replicas")), id).toEqual(original.map((s) => without(s, "recordedAt", "replicas")));
      expectEarlierBySeconds(again[0]!.recordedAt, original[0]!.recordedAt, `snapshot ${again[0]!.snapshotId}`);
      expect(originalPacks.packs.length, id).toBeGreaterThan(0);
      expect(againPacks.packs.map((p) => without(p, "recordedAt")), id).toEqual(originalPacks.packs.map((p) => without(p, "recordedAt")));
      // Ingest records no chunk of a pack (docs/packs.md "Step 3"); a rebuild cannot tell from the bucket which chunks a
      // repack moved (their manifests name a pack since deleted), so it records every chunk of every pack: the original's
      // records come back as they were, and the others each place a chunk in a recorded pack.
      const againBySha = new Map(againChunks.map((c) => [String(c.sha256), c]));
      for (const c of originalChunks) {
        const back = againBySha.get(String(c.sha256));
        expect(back && without(back, "recordedAt"), id).toEqual(without(c, "recordedAt"));
        expectEarlierBySeconds(String(back!.recordedAt), String(c.recordedAt), `chunk ${String(c.sha256)}`, c.offset === undefined ? 5_000 : 60_000);
      }
      const packKeys = new Set(againPacks.packs.map((p) => p.vaultKey));
      const fromPacks = againChunks.filter((c) => !originalChunks.some((o) => o.sha256 === c.sha256));
      expect(fromPacks.length, id).toBe(againPacks.packs.reduce((n, p) => n + p.entries, 0));
      for (const c of fromPacks) expect(packKeys.has(String(c.vaultKey)) && typeof c.offset === "number", String(c.sha256)).toBe(true);
    }
  });

  it("plans the same restores for latest, time, LSN, restore point and snapshot targets, and refuses the same ones", async () => {
    for (const id of [PG, GEN]) {
      for (const target of targets[id]!) {
        // Act
        const [original, again] = [await planOf(clients.catalog, id, target), await planOf(rebuilt, id, target)];

        // Assess
        const what = `${id} ${JSON.stringify(target, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`;
        if (target.kind !== "name") {
          expect(again, what).toEqual(original);
          continue;
        }
        // Restore points come from ingest's scan of the bytes; a rebuild reads no WAL bytes
        // (it must stay a listing at 1M segments), so it plans to the end of the archive with
        // a warning, and the local restore looks the name up in the archived WAL.
        const [o, a] = [original as { wal: unknown[]; warnings: string[] }, again as { wal: unknown[]; warnings: string[] }];
        expect(without(a, "wal", "warnings", "endLsn"), what).toEqual(without(o, "wal", "warnings", "endLsn"));
        expect(a.wal.slice(0, o.wal.length), what).toEqual(o.wal);
        expect(a.wal.length, what).toBeGreaterThan(o.wal.length);
        expect(a.warnings.join("\n"), what).toMatch(/is not in the catalog/);
      }
    }
    expect(await planOf(rebuilt, PG, { kind: "latest" })).not.toHaveProperty("error");
    expect(await planOf(rebuilt, GEN, targets[GEN]![1]!)).toMatchObject({
      streams: [{ stream: "stripe-1", wal: [{ name: "stripe-1/000002.wal" }] }, { stream: "stripe-2", wal: [{ name: "stripe-2/000002.wal" }] }],
    });
  });

  it("reports the same ranges, gaps, timelines and time window in status, and the same head", async () => {
    for (const id of [PG, PGT, GEN]) {
      // Act
      const [original, again] = await Promise.all([status(clients, id), status({ store: clients.store, catalog: rebuilt }, id)]);
      const [head, rebuiltHead] = await Promise.all([clients.catalog.getHead(id), rebuilt.getHead(id)]);

      // Assess: the head's time is its record's archivedAt; the ranges' and gaps' archive times (from/to) are their
      // segments' archivedAt too, which a rebuild takes from the objects' LastModified (whole seconds): compared by name.
      type Line = { ranges: Array<{ from?: string; to?: string }>; gaps: Array<{ from?: string; to?: string }> };
      const untimed = <L extends Line>(lines: L[] | undefined): unknown =>
        lines?.map((l) => ({ ...l, ranges: l.ranges.map((r) => without(r, "from", "to")), gaps: l.gaps.map((g) => without(g, "from", "to")) }));
      const strip = (s: typeof original): Record<string, unknown> => ({
        ...without(s, "archiveLagSeconds", "lastArchived", "quarantined", "timelines", "streams"),
        last: s.lastArchived?.name,
        timelines: untimed(s.timelines),
        streams: untimed(s.streams),
      });
      expect(strip(again), id).toEqual(strip(original));
      expect(without(rebuiltHead!, "lastArchivedAt"), id).toEqual(without(head!, "lastArchivedAt"));
      expectEarlierBySeconds(rebuiltHead!.lastArchivedAt, head!.lastArchivedAt, `head of ${id}`);
    }
    expect((await status({ store: clients.store, catalog: rebuilt }, PGT)).timelines.map((t) => t.timeline)).toEqual([1, 2]);
  });

  it("changes nothing when run again", async () => {
    // Prepare
    const before = await scanAll(rebuilt as DynamoCatalog);

    // Act
    const second = await rebuildCatalog({ store: clients.store, bucket: stack.config.vaultBucket }, rebuilt, { databaseIds: [PG, PGT, GEN] });

    // Assess
    expect(await scanAll(rebuilt as DynamoCatalog)).toEqual(before);
    for (const d of second.databases) {
      expect(d.registration, d.databaseId).toBe("existing");
      expect(d.added, d.databaseId).toEqual({ wal: 0, snapshots: 0, chunks: 0 });
      expect(d.skipped, d.databaseId).toEqual([]);
    }
    expect(second.databases.map((d) => [d.segments, d.snapshots, d.chunks])).toEqual(summary.databases.map((d) => [d.segments, d.snapshots, d.chunks]));
  });

  it("lists the databases whose registrations were written before the database registry (the migration of an old catalog)", async () => {
    // Prepare: a target holding, as walvault wrote them before the registry (the meta item alone),
    // PGT's registration and one of a database with nothing in the vault yet
    const target = (await table("rebuilt-old-catalog")) as DynamoCatalog;
    const registration = (await clients.catalog.getDatabase(PGT))!;
    const empty = { ...registration, databaseId: "pg-nothing-yet" };
    for (const r of [registration, empty]) {
      await target.doc.send(new PutCommand({ TableName: target.tableName, Item: { ...r, pk: databasePk(r.databaseId), sk: "meta" } }));
    }
    const listedBefore = await target.listDatabases();

    // Act
    const r = await rebuildCatalog({ store: clients.store, bucket: stack.config.vaultBucket }, target, { databaseIds: [PGT, empty.databaseId] });

    // Assess
    expect(listedBefore).toEqual([]);
    expect(r.databases[0]).toMatchObject({ databaseId: PGT, registration: "existing" });
    expect(r.databases[1]?.refused).toMatch(/holds nothing under db\/pg-nothing-yet\//);
    expect(await target.listDatabases()).toEqual([empty, registration]);
    expect(await target.getDatabase(PGT)).toEqual(registration);
  });

  it("skips and reports objects with broken metadata or foreign keys, and rebuilds the rest", async () => {
    // Prepare: a generic database put straight into the vault, one good segment and three bad objects
    const db = "gen-broken";
    const good = Buffer.from("a good segment\n".repeat(50));
    const meta = (bytes: Buffer): Record<string, string> => ({ ...objectMeta({ sha256: sha256Hex(bytes), codec: "none", size: bytes.length }), [META_DATABASE]: db });
    const vault = stack.config.vaultBucket;
    await clients.store.put(vault, `db/${db}/wal/wal/000001.wal`, good, { ...meta(good), ...genericSegmentMeta({ position: 1n, closedAt: "2026-01-01T00:00:00.000Z" }) });
    await clients.store.put(vault, `db/${db}/wal/wal/000002.wal`, good, { ...meta(good), "walvault-position": "2", "walvault-closed-at": "yesterday" });
    await clients.store.put(vault, `db/${db}/chunks/${sha256Hex(good)}`, good, {});
    await clients.store.put(vault, `db/${db}/notes.txt`, good, {});
    const target = await table("rebuilt-broken");

    // Act
    const r = await rebuildCatalog({ store: clients.store, bucket: vault }, target, { databaseIds: [db] });

    // Assess
    const d = r.databases[0]!;
    expect(d).toMatchObject({ databaseId: db, kind: "generic", segments: 1, chunks: 0 });
    expect(d.skipped.map((s) => s.key).sort()).toEqual([`db/${db}/chunks/${sha256Hex(good)}`, `db/${db}/notes.txt`, `db/${db}/wal/wal/000002.wal`]);
    expect(d.skipped.find((s) => s.key.endsWith("000002.wal"))!.reason).toMatch(/walvault-closed-at: not an ISO-8601 UTC time/);
    expect(d.skipped.find((s) => s.key.includes("/chunks/"))!.reason).toMatch(/missing or malformed walvault metadata/);
    expect(d.skipped.find((s) => s.key.endsWith("notes.txt"))!.reason).toMatch(/not a key walvault writes/);
    expect((await target.listWal(db)).map((w: WalRecord) => w.name)).toEqual(["wal/000001.wal"]);
    expect(await target.missingChunks(db, [sha256Hex(good)])).toEqual([sha256Hex(good)]);
  });

  it("refuses, in one line, a PostgreSQL database whose segment size the bucket does not tell, writing nothing of it", async () => {
    // Prepare: only a history file
    const db = "pg-orphan";
    const history = Buffer.from("1\t0/3000000\tno recovery target specified\n");
    await clients.store.put(stack.config.vaultBucket, `db/${db}/history/00000002.history`, history, {
      ...objectMeta({ sha256: sha256Hex(history), codec: "none", size: history.length }),
      [META_DATABASE]: db,
    });
    const target = await table("rebuilt-orphan");

    // Act
    const r = await rebuildCatalog({ store: clients.store, bucket: stack.config.vaultBucket }, target, { databaseIds: [db] });
    const viaCli = await stack.cli(["catalog", "rebuild", "--table", "rebuilt-orphan-cli", "--database", db]);

    // Assess
    expect(r.databases[0]!.refused).toMatch(/^cannot tell the WAL segment size of PostgreSQL database pg-orphan: /);
    expect(await target.getDatabase(db)).toBeUndefined();
    expect(await target.listWal(db)).toEqual([]);
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr.trim().split("\n")).toEqual([`walvault: ${r.databases[0]!.refused}`]);
  });
});

describe("walvault catalog rebuild", () => {
  it("rebuilds from the primary's bucket into a new table, with the records the library writes", async () => {
    // Act
    const r = await stack.cli(["catalog", "rebuild", "--table", "rebuilt-by-cli", "--database", PG, "--database", PGT, "--database", GEN, "--json"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { region: string; tableCreated: boolean; databases: { databaseId: string; added: { wal: number } }[] };
    expect(out).toMatchObject({ region: stack.config.region, tableCreated: true });
    expect(out.databases.map((d) => d.databaseId)).toEqual([PG, PGT, GEN]);
    const viaCli = createCatalog({ ...stack.config, table: "rebuilt-by-cli" });
    for (const id of [PG, PGT, GEN]) {
      expect(await viaCli.listWal(id), id).toEqual(await rebuilt.listWal(id));
      expect(await viaCli.listSnapshots(id), id).toEqual(await rebuilt.listSnapshots(id));
    }
  });

  it("rebuilds from a replica region's bucket (a copy of the vault) named with --region", async () => {
    // Prepare: a second bucket holding copies of the vault objects, and a configuration naming it as region local-2
    const replicaBucket = "walvault-vault-local-2";
    const s3 = (clients.store as S3ObjectStore).client;
    await s3.send(new CreateBucketCommand({ Bucket: replicaBucket }));
    for (const id of [PG, PGT, GEN]) {
      for await (const o of clients.store.list(stack.config.vaultBucket, `db/${id}/`)) {
        await clients.store.copy({ bucket: stack.config.vaultBucket, key: o.key }, { bucket: replicaBucket, key: o.key });
      }
    }
    const config = join(work, "replica-config.json");
    writeFileSync(config, JSON.stringify({ ...stack.config, replicas: [{ region: "local-2", vaultBucket: replicaBucket, s3Endpoint: stack.config.s3Endpoint }] }));

    // Act
    const r = await stack.cli(["catalog", "rebuild", "--config", config, "--region", "local-2", "--table", "rebuilt-local-2", "--database", PG, "--database", PGT, "--database", GEN]);

    // Assess: the same records but for times (the copies' Last-Modified)
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^catalog rebuilt from ${replicaBucket} \\(local-2\\) into table rebuilt-local-2 \\(created\\)`));
    const fromReplica = createCatalog({ ...stack.config, table: "rebuilt-local-2" });
    for (const id of [PG, PGT, GEN]) {
      const strip = (w: WalRecord): Record<string, unknown> => without(w, "archivedAt");
      expect((await fromReplica.listWal(id)).map(strip), id).toEqual((await rebuilt.listWal(id)).map(strip));
      expect((await fromReplica.listSnapshots(id)).map((s) => without(s, "recordedAt")), id).toEqual((await rebuilt.listSnapshots(id)).map((s) => without(s, "recordedAt")));
    }
  });

  it("without --database rebuilds every database in the bucket, and exits 1 naming what it could not rebuild", async () => {
    // Prepare: the bucket holds the suite's databases, gen-broken's bad objects and pg-orphan's lone history file

    // Act
    const r = await stack.cli(["catalog", "rebuild", "--table", "rebuilt-everything", "--json"]);

    // Assess
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as RebuildSummary;
    expect(out.databases.map((d) => d.databaseId)).toEqual(["gen-broken", GEN, "pg-orphan", PG, PGT]);
    expect(out.databases.filter((d) => d.refused !== undefined).map((d) => d.databaseId)).toEqual(["pg-orphan"]);
    expect(r.stderr.trim().split("\n")).toEqual([
      `walvault: ${out.databases.find((d) => d.databaseId === "pg-orphan")!.refused}`,
      "walvault: catalog rebuild incomplete: 3 objects skipped (listed in the output)",
    ]);
    const everything = createCatalog({ ...stack.config, table: "rebuilt-everything" });
    for (const id of [PG, PGT, GEN]) expect(await everything.listWal(id), id).toEqual(await rebuilt.listWal(id));
  });

  it("refuses a region the configuration does not name, in one line", async () => {
    // Act
    const r = await stack.cli(["catalog", "rebuild", "--region", "mars-1"]);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([`walvault: region 'mars-1' is not configured (regions: ${stack.config.region})`]);
  });

  it("takes the vault of the primary or of a configured replica region", () => {
    // Prepare
    const cfg = { ...stack.config, replicas: [{ region: "local-3", vaultBucket: "vault-3", s3Endpoint: "http://127.0.0.1:1" }] };

    // Act + Assess
    expect(regionVault(cfg)).toMatchObject({ region: cfg.region, vaultBucket: cfg.vaultBucket, s3Endpoint: cfg.s3Endpoint });
    expect(regionVault(cfg, "local-3")).toMatchObject({ region: "local-3", vaultBucket: "vault-3", s3Endpoint: "http://127.0.0.1:1", dynamodbEndpoint: cfg.dynamodbEndpoint });
  });
});
