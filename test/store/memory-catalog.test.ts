/**
 * MemoryCatalog (store/memory-catalog.ts) through the shared Catalog
 * contract, plus what is its own: DynamoDB's limits and answers as it
 * emulates them (each compared with DynamoDB Local's when written; the
 * contract's "DynamoDB's limits" tests run on both), stored copies, and a
 * catalog made unavailable.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CatalogFaultError, ConfigError, InvalidInputError, ServiceUnavailableError } from "../../core/errors.js";
import type { AuditRecord, DatabaseRecord, QuarantineRecord, SnapshotRecord, VerificationRecord, WalRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { compareUtf8, dynamoItemSize, MemoryCatalog } from "../../store/memory-catalog.js";
import { CONTRACT_REPLICA_REGIONS, catalogContract } from "./catalog.contract.js";
import { rejection } from "../support/rejection.js";

const DOWN = "http://127.0.0.1:9";

catalogContract("MemoryCatalog", (opts) => ({
  catalog: new MemoryCatalog({ replicaRegions: CONTRACT_REPLICA_REGIONS, ...(opts?.pageSize === undefined ? {} : { pageSize: opts.pageSize }) }),
  unreachable: { catalog: new MemoryCatalog({ unavailable: DOWN }), endpoint: DOWN },
}));

const DB = "pg-main";
const T = "2025-01-01T00:00:00.000Z";
const SEG = "000000010000000000000003";

function sha(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function segment(n: number): string {
  return `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;
}

function wal(name: string, overrides: Partial<WalRecord> = {}): WalRecord {
  return {
    databaseId: DB,
    name,
    kind: "segment",
    timeline: 1,
    size: 16 << 20,
    storedSize: 1024,
    sha256: sha(name),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${DB}/wal/00000001/${name}`,
    archivedAt: T,
    replicas: {},
    ...overrides,
  };
}

function quarantine(overrides: Partial<QuarantineRecord> = {}): QuarantineRecord {
  return { databaseId: DB, name: SEG, incomingKey: `incoming/db/${DB}/wal/${SEG}`, error: "ChecksumMismatchError", reason: "bytes differ", at: T, ...overrides };
}

function snapshot(snapshotId: string, overrides: Partial<SnapshotRecord> = {}): SnapshotRecord {
  return {
    databaseId: DB,
    snapshotId,
    kind: "generic",
    streams: { wal: "000042.log" },
    startedAt: T,
    finishedAt: T,
    manifestKey: `db/${DB}/snapshots/${snapshotId}/manifest.json`,
    manifestSha256: sha(`manifest ${snapshotId}`),
    manifestSize: 4096,
    totals: { files: 3, logicalBytes: 3 << 20, uniqueChunks: 4, newChunks: 2, storedBytes: 1 << 20, newStoredBytes: 1 << 19 },
    status: "restorable",
    recordedAt: T,
    replicas: { "eu-west-1": { status: "pending", at: T } },
    ...overrides,
  };
}

function verification(overrides: Partial<VerificationRecord> = {}): VerificationRecord {
  return { databaseId: DB, runId: "run-1", snapshotId: "s", level: 2, outcome: "passed", checks: [{ level: 1, name: "manifest", ok: true, seconds: 0.25 }], startedAt: T, finishedAt: T, ...overrides };
}

function audit(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return { databaseId: DB, runId: "r1", seq: 0, at: T, action: "delete-wal", subject: SEG, regions: ["eu-west-1"], reason: "old", by: "test", ...overrides };
}

function pack(name: string, recordedAt = T) {
  return { databaseId: DB, name, size: 1220, entries: 3, dataLength: 1000, vaultKey: `db/${DB}/packs/${name}`, recordedAt };
}

describe("MemoryCatalog: DynamoDB's item size", () => {
  it("stores an item of exactly 400 KB (409,600 bytes of names and values) and refuses one byte more, with DynamoCatalog's error and message", async () => {
    // Prepare: the item as DynamoCatalog writes it (pk, sk quarantine#<name>#<at>#<12 hex>), multi-byte characters in it.
    const catalog = new MemoryCatalog();
    const record = (n: number): QuarantineRecord => quarantine({ reason: `é€${"r".repeat(n)}` });
    const itemSize = (n: number): number => dynamoItemSize({ ...record(n), pk: `db#${DB}`, sk: `quarantine#${SEG}#${T}#${"0".repeat(12)}` });
    const fits = 409_600 - itemSize(0);

    // Act
    await catalog.recordQuarantine(record(fits));
    const err = await rejection(catalog.recordQuarantine(record(fits + 1)));

    // Assess
    expect(itemSize(fits)).toBe(409_600);
    expect(err).toBeInstanceOf(CatalogFaultError);
    expect(err.message).toBe("DynamoDB rejected PutItem (quarantine) on table 'memory' as malformed (a walvault fault, not bad input): Item size has exceeded the maximum allowed size");
    expect((await catalog.listQuarantine(DB)).map((r) => r.reason)).toEqual([record(fits).reason]);
  });

  it("counts numbers as DynamoDB Local does (base-100 digits aligned on the decimal point, plus one), lists and maps as 3 bytes plus 1 an element", () => {
    // Act + Assess: each attribute's name is one byte here.
    expect([0, 5, 15, 1.5, 1000, 0.05, 12.345678].map((n) => dynamoItemSize({ n }))).toEqual([2, 3, 3, 4, 3, 3, 6]);
    expect(dynamoItemSize({ s: "é", b: true })).toBe(1 + 2 + 1 + 1);
    expect(dynamoItemSize({ l: [1, "ab"] })).toBe(1 + 3 + (1 + 2) + (1 + 2));
    expect(dynamoItemSize({ m: { a: true } })).toBe(1 + 3 + (1 + 1 + 1));
  });

  it("refuses an update that would make an item too large even when its condition fails, and a map value over 400 KB by itself, as DynamoDB Local does", async () => {
    // Prepare: a head past the one advanced to.
    const catalog = new MemoryCatalog();
    await catalog.advanceHead(DB, SEG, "0000000100000009", T);

    // Act
    const head = await rejection(catalog.advanceHead(DB, "n".repeat(420_000), "0000000100000001", T));
    const value = await rejection(catalog.setSnapshotVerification(DB, "never-recorded", { level: 1, at: "a".repeat(420_000), outcome: "passed", runId: "r" }));

    // Assess
    expect(head).toBeInstanceOf(CatalogFaultError);
    expect(head.message).toContain("UpdateItem (head) on table 'memory' as malformed (a walvault fault, not bad input): Item size to update has exceeded the maximum allowed size");
    expect(value).toBeInstanceOf(CatalogFaultError);
    expect(value.message).toContain("ExpressionAttributeValues contains invalid value: Item size has exceeded the maximum allowed size for key :v");
    expect((await catalog.getHead(DB))?.lastSortKey).toBe("0000000100000009");
  });
});

describe("MemoryCatalog: DynamoDB's answers", () => {
  it("refuses a BatchWriteItem request naming one item twice, writing none of that request", async () => {
    // Prepare
    const catalog = new MemoryCatalog();

    // Act
    const err = await rejection(catalog.recordAudit([audit(), audit({ subject: "other" }), audit()]));

    // Assess
    expect(err).toBeInstanceOf(CatalogFaultError);
    expect(err.message).toContain("BatchWriteItem (audit records) on table 'memory' as malformed (a walvault fault, not bad input): Provided list of item keys contains duplicates");
    expect(await catalog.listAudit(DB)).toEqual([]);
  });

  it("ends a Query page once it has read 1 MB, naming its last record, the item that crossed it included", async () => {
    // Prepare: five records of about 300 KB.
    const catalog = new MemoryCatalog();
    for (let i = 1; i <= 5; i++) await catalog.recordWal(wal(segment(i), { vaultVersionId: "v".repeat(300_000) }));

    // Act
    const first = await catalog.listWalPage(DB, undefined, 1000);
    const second = await catalog.listWalPage(DB, first.next, 1000);

    // Assess
    expect(first.records.map((r) => r.name)).toEqual([1, 2, 3, 4].map(segment));
    expect(first.next).toBe(segment(4));
    expect(second).toEqual({ records: [wal(segment(5), { vaultVersionId: "v".repeat(300_000) })] });
  });

  it("names the last record of a full page even when nothing follows, as DynamoDB does", async () => {
    // Prepare
    const catalog = new MemoryCatalog();
    const names = [sha("a"), sha("b"), sha("c")].sort();
    await catalog.recordPacks(names.map((n) => pack(n)));

    // Act
    const full = await catalog.listPackPage(DB, undefined, 3);
    const after = await catalog.listPackPage(DB, full.next, 3);
    const larger = await catalog.listPackPage(DB, undefined, 4);

    // Assess
    expect(full.packs.map((p) => p.name)).toEqual(names);
    expect(full.next).toBe(names[2]);
    expect(after).toEqual({ packs: [] });
    expect(larger.next).toBeUndefined();
  });

  it("orders keys by their UTF-8 bytes, as DynamoDB does, not by JavaScript's UTF-16 units", async () => {
    // Prepare: U+E000 sorts before U+10000 in UTF-8, after its surrogates in UTF-16.
    const catalog = new MemoryCatalog();
    for (const id of ["a\u{10000}", "a\uE000", "a~"]) await catalog.recordSnapshot(snapshot(id));

    // Act
    const listed = await catalog.listSnapshots(DB);

    // Assess
    expect(listed.map((s) => s.snapshotId)).toEqual(["a~", "a\uE000", "a\u{10000}"]);
    expect(compareUtf8("\uE000", "\u{10000}")).toBeLessThan(0);
    expect("\uE000" < "\u{10000}").toBe(false);
  });

  it("refuses a listing cursor outside the range asked for, as DynamoDB refuses such a starting key", async () => {
    // Prepare
    const catalog = new MemoryCatalog();
    await catalog.recordPacks([pack(sha("p"), "2025-03-01T10:00:00.000Z")]);
    await catalog.recordWal(wal("wal/seg-1.log", { startLsn: "1", vaultKey: `db/${DB}/wal/wal/seg-1.log` }));

    // Act
    const packLog = await rejection(catalog.listPacksRecordedSince(DB, "2025-03-01T12:00:00.000Z", `2025-03-01T10:00:00.000Z#${sha("p")}`));
    const generic = await rejection(catalog.listGenericWalRange(DB, "wal", 5n, undefined, { after: "00000000000000000001#seg-1.log" }));

    // Assess
    for (const e of [packLog, generic]) {
      expect(e).toBeInstanceOf(CatalogFaultError);
      expect(e.message).toContain("The provided starting key does not match the range key predicate");
    }
  });

  it("refuses numbers as DynamoCatalog's SDK and DynamoDB do: Infinity before sending (ServiceUnavailableError, as DynamoCatalog reports it), an underflow as malformed", async () => {
    // Prepare
    const catalog = new MemoryCatalog();

    // Act
    const infinite = await rejection(catalog.recordVerification(verification({ restoreSeconds: Infinity })));
    const tiny = await rejection(catalog.recordVerification(verification({ restoreSeconds: 1e-200 })));

    // Assess
    expect(infinite).toBeInstanceOf(ServiceUnavailableError);
    expect(infinite.message).toBe("DynamoDB PutItem (verification) on table 'memory' failed at memory: Error: Special numeric value Infinity is not allowed");
    expect(tiny).toBeInstanceOf(CatalogFaultError);
    expect(tiny.message).toContain("Number underflow");
    expect(await catalog.listVerifications(DB)).toEqual([]);
  });

  it("lists what a region lacks only for its replica regions: another is a ConfigError naming the missing index", async () => {
    // Prepare
    const catalog = new MemoryCatalog({ replicaRegions: ["eu-west-1"] });
    await catalog.recordSnapshot(snapshot("snap-1"));

    // Act
    const listed = await catalog.listUnreplicated("eu-west-1");
    const other = await rejection(catalog.listUnreplicated("ap-south-1"));
    const none = await rejection(new MemoryCatalog().listUnreplicated("eu-west-1"));

    // Assess
    expect(listed).toEqual({ items: [{ databaseId: DB, snapshotId: "snap-1" }] });
    expect(other).toBeInstanceOf(ConfigError);
    expect(other.message).toContain("pending-ap-south-1");
    expect(none).toBeInstanceOf(ConfigError);
  });

  it("leaves out of its index queries the items it is told the indexes lag on, and nowhere else, as a DynamoDB index a moment behind its table", async () => {
    // Prepare: generic segments 1..3 of stream "wal", the index a moment behind on 3; a snapshot pending in eu-west-1, the index behind on it too
    const lag = new Set(["wal/seg-3.log", "snap-2"]);
    const catalog = new MemoryCatalog({ replicaRegions: ["eu-west-1"], lagging: (item) => lag.has(String(item["name"] ?? item["snapshotId"])) });
    const gen = (n: number): WalRecord => wal(`wal/seg-${n}.log`, { databaseId: "gen-a", startLsn: String(n), vaultKey: `db/gen-a/wal/wal/seg-${n}.log` });
    for (const n of [1, 2, 3]) await catalog.recordWal(gen(n));
    for (const id of ["snap-1", "snap-2"]) await catalog.recordSnapshot(snapshot(id, { replicas: { "eu-west-1": { status: "pending", at: T } } }));

    // Act
    const range = await catalog.listGenericWalRange("gen-a", "wal", 0n, undefined);
    const page = await catalog.listWalPage("gen-a");
    const got = await catalog.getWal("gen-a", "wal/seg-3.log");
    const pending = await catalog.listUnreplicated("eu-west-1");

    // Assess
    expect(range.records.map((r) => r.name)).toEqual(["wal/seg-1.log", "wal/seg-2.log"]);
    expect(page.records.map((r) => r.name)).toEqual(["wal/seg-1.log", "wal/seg-2.log", "wal/seg-3.log"]);
    expect(got?.name).toBe("wal/seg-3.log");
    expect(pending.items).toEqual([{ databaseId: DB, snapshotId: "snap-1" }]);
  });

  it("refuses a replica region that cannot be one when made, as createTable does, and a page size DynamoDB refuses when it queries, as DynamoCatalog's", async () => {
    // Act
    const limit = await rejection(new MemoryCatalog({ pageSize: 0 }).listWal(DB));

    // Assess
    expect(() => new MemoryCatalog({ replicaRegions: ["Not A Region"] })).toThrow(InvalidInputError);
    expect(limit).toBeInstanceOf(CatalogFaultError);
    expect(limit.message).toContain("Query (WAL) on table 'memory' as malformed (a walvault fault, not bad input): 1 validation error detected: Value '0' at 'limit'");
  });
});

describe("MemoryCatalog: copies, never aliases", () => {
  it("changing a record after recording it, or one it handed out, changes nothing stored", async () => {
    // Prepare: records with nested maps and lists.
    const catalog = new MemoryCatalog();
    const w = wal(SEG, { replicas: { "eu-west-1": { status: "pending", at: T } }, restorePoints: [{ name: "rp", lsn: "0/3000A48", time: T }] });
    const s = snapshot("snap-1");
    const v = verification();
    const a = audit();
    const d: DatabaseRecord = { databaseId: DB, kind: "postgres", walSegmentSize: 16 << 20, createdAt: T, retention: { daily: 7, weekly: 4, monthly: 3, recoveryWindowDays: 7 } };
    const expected = structuredClone({ w, s, v, a, d });
    const created = await catalog.recordWal(w);
    await catalog.recordSnapshot(s);
    await catalog.recordVerification(v);
    await catalog.recordAudit([a]);
    await catalog.putDatabase(d);

    // Act: change what was passed in, what the writes returned and what the reads return.
    w.replicas["eu-west-1"]!.status = "replicated";
    w.restorePoints![0]!.name = "changed";
    created.record.replicas["us-west-2"] = { status: "failed", at: T };
    s.streams!.wal = "changed";
    s.totals.files = 99;
    v.checks[0]!.ok = false;
    a.regions.push("changed");
    d.retention!.daily = 99;
    const read = { w: (await catalog.getWal(DB, SEG))!, listed: (await catalog.listWal(DB))[0]!, s: (await catalog.getSnapshot(DB, "snap-1"))!, v: (await catalog.listVerifications(DB))[0]!, a: (await catalog.listAudit(DB))[0]!, d: (await catalog.getDatabase(DB))! };
    read.w.restorePoints!.push({ name: "more", lsn: "0/1", time: T });
    read.listed.replicas["eu-west-1"]!.status = "replicated";
    read.s.replicas["eu-west-1"]!.status = "replicated";
    read.v.checks.length = 0;
    read.a.regions.length = 0;
    read.d.retention!.weekly = 99;

    // Assess
    expect(await catalog.getWal(DB, SEG)).toEqual(expected.w);
    expect(await catalog.listWal(DB)).toEqual([expected.w]);
    expect(await catalog.getSnapshot(DB, "snap-1")).toEqual(expected.s);
    expect(await catalog.listVerifications(DB)).toEqual([expected.v]);
    expect(await catalog.listAudit(DB)).toEqual([expected.a]);
    expect(await catalog.getDatabase(DB)).toEqual(expected.d);
  });
});

describe("MemoryCatalog made unavailable", () => {
  const h = sha("h");
  /** One call of every Catalog method, with valid input (the type makes the list complete). */
  const calls: { [K in keyof Catalog]: (c: Catalog) => Promise<unknown> } = {
    putDatabase: (c) => c.putDatabase({ databaseId: DB, kind: "generic", walSegmentSize: 16 << 20, createdAt: T }),
    getDatabase: (c) => c.getDatabase(DB),
    listDatabases: (c) => c.listDatabases(),
    listDatabasePage: (c) => c.listDatabasePage(),
    recordWal: (c) => c.recordWal(wal(SEG)),
    getWal: (c) => c.getWal(DB, SEG),
    listWal: (c) => c.listWal(DB),
    listWalPage: (c) => c.listWalPage(DB),
    listWalRange: (c) => c.listWalRange(DB, 1, SEG, undefined),
    listGenericWalRange: (c) => c.listGenericWalRange(DB, "wal", 0n, undefined),
    listGenericWalNewest: (c) => c.listGenericWalNewest(DB, "wal", 5),
    backfillWalIndex: (c) => c.backfillWalIndex(DB),
    listWalTimelines: (c) => c.listWalTimelines(DB),
    setReplicaStatus: (c) => c.setReplicaStatus(DB, SEG, "eu-west-1", { status: "replicated", at: T }),
    setSnapshotReplicaStatus: (c) => c.setSnapshotReplicaStatus(DB, "snap-1", "eu-west-1", { status: "replicated", at: T }),
    listUnreplicated: (c) => c.listUnreplicated("eu-west-1"),
    markUnreplicated: (c) => c.markUnreplicated(DB, "eu-west-1"),
    advanceHead: (c) => c.advanceHead(DB, SEG, "0000000100000003", T),
    getHead: (c) => c.getHead(DB),
    recordQuarantine: (c) => c.recordQuarantine(quarantine()),
    listQuarantine: (c) => c.listQuarantine(DB),
    missingChunks: (c) => c.missingChunks(DB, [h]),
    recordChunks: (c) => c.recordChunks([{ databaseId: DB, sha256: h, size: 1, storedSize: 1, codec: "none", vaultKey: `db/${DB}/chunks/${h}`, recordedAt: T }]),
    listChunks: (c) => c.listChunks(DB),
    getChunks: (c) => c.getChunks(DB, [h]),
    recordPacks: (c) => c.recordPacks([pack(h)]),
    getPack: (c) => c.getPack(DB, h),
    getPacks: (c) => c.getPacks(DB, [h]),
    listChunkPage: (c) => c.listChunkPage(DB),
    listPackPage: (c) => c.listPackPage(DB),
    listPacksRecordedSince: (c) => c.listPacksRecordedSince(DB, T),
    claimPackPromotion: (c) => c.claimPackPromotion(DB, h, "owner", "2025-01-01T01:00:00.000Z", T),
    releasePackPromotion: (c) => c.releasePackPromotion(DB, h, "owner"),
    markPacksOrphaned: (c) => c.markPacksOrphaned(DB, [h], T),
    markPacksRepacked: (c) => c.markPacksRepacked(DB, [h], T),
    clearPackOrphaned: (c) => c.clearPackOrphaned(DB, h),
    condemnPack: (c) => c.condemnPack(DB, h, T, T),
    deleteCondemnedPack: (c) => c.deleteCondemnedPack(DB, h),
    deleteChunksInPack: (c) => c.deleteChunksInPack(DB, [h], `db/${DB}/packs/${h}`),
    movePackedChunks: (c) => c.movePackedChunks([{ databaseId: DB, sha256: h, size: 1, storedSize: 1, codec: "none", vaultKey: `db/${DB}/packs/${h}`, offset: 0, recordedAt: T }], `db/${DB}/packs/${sha("from")}`),
    deleteChunks: (c) => c.deleteChunks(DB, [h]),
    deleteWal: (c) => c.deleteWal(DB, [SEG]),
    deleteSnapshot: (c) => c.deleteSnapshot(DB, "snap-1"),
    recordAudit: (c) => c.recordAudit([audit()]),
    listAudit: (c) => c.listAudit(DB),
    recordSnapshot: (c) => c.recordSnapshot(snapshot("snap-1")),
    getSnapshot: (c) => c.getSnapshot(DB, "snap-1"),
    listSnapshots: (c) => c.listSnapshots(DB),
    recordVerification: (c) => c.recordVerification(verification()),
    listVerifications: (c) => c.listVerifications(DB),
    setSnapshotPinned: (c) => c.setSnapshotPinned(DB, "snap-1", true),
    setSnapshotVerification: (c) => c.setSnapshotVerification(DB, "snap-1", { level: 1, at: T, outcome: "passed", runId: "r" }),
  };

  it("rejects every method with ServiceUnavailableError naming the endpoint, as an unreachable DynamoCatalog does (a loopback endpoint: the local stack hint)", async () => {
    // Prepare
    const down = new MemoryCatalog({ unavailable: DOWN, replicaRegions: ["eu-west-1"] });

    // Act
    const errors = await Promise.all(Object.entries(calls).map(async ([op, call]) => [op, await rejection(call(down))] as const));

    // Assess
    expect(errors).toHaveLength(52);
    for (const [op, err] of errors) {
      expect(err, op).toBeInstanceOf(ServiceUnavailableError);
      expect(err.message, op).toMatch(new RegExp(`^cannot reach DynamoDB at ${DOWN} \\(is the local stack running\\? \`walvault local up\`\\): `));
      expect(err.cause, op).toBeDefined();
    }
  });

  it("names a remote endpoint without the local stack hint", async () => {
    // Act
    const err = await rejection(new MemoryCatalog({ unavailable: "https://dynamodb.eu-west-1.amazonaws.com" }).getHead(DB));

    // Assess
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect(err.message).toMatch(/^cannot reach DynamoDB at https:\/\/dynamodb\.eu-west-1\.amazonaws\.com: /);
    expect(err.message).not.toContain("walvault local up");
  });

  it("still refuses bad input before any request, and answers what needs no request, as an unreachable DynamoCatalog does", async () => {
    // Prepare
    const down = new MemoryCatalog({ unavailable: DOWN });

    // Act
    const badRecord = await rejection(down.recordWal(wal(SEG, { timeline: 2 })));
    const badCursor = await rejection(down.listDatabasePage("NOT AN ID"));
    const answers = await Promise.all([down.recordChunks([]), down.missingChunks(DB, []), down.getPacks(DB, []), down.listGenericWalRange(DB, "wal", 10n, 9n)]);

    // Assess
    expect(badRecord).toBeInstanceOf(InvalidInputError);
    expect(badCursor).toBeInstanceOf(InvalidInputError);
    expect(answers).toEqual([undefined, [], [], { records: [] }]);
  });
});
