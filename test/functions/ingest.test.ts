/**
 * The ingest workflow (statemachines/ingest.asl.json with functions/ingest/*)
 * on the real local stack, driven the way S3 drives it: an object lands in the
 * incoming bucket, s3rver's object-created event starts an execution.
 * Needs `npm run build` first (s3rver runs from dist/local/s3rver-child.js).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { genericSegmentMeta } from "../../core/generic-wal.js";
import { incomingGenericWalKey, incomingWalKey, vaultGenericWalKey, vaultWalKey } from "../../core/keys.js";
import { META_DATABASE } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { parseWalFileName } from "../../core/wal.js";
import * as promote from "../../functions/ingest/promote.js";
import * as record from "../../functions/ingest/record.js";
import * as validate from "../../functions/ingest/validate.js";
import { listKeys, objectStamp, quietPeriod, settleRuns, stackClients, type StackClients } from "../support/harness.js";
import { executionCounts, startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
const GEN = "gen-ingest";

let stack: TestStack;
let clients: StackClients;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }, { id: GEN, kind: "generic" }]);
  clients = stackClients(stack);
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

const seg = (n: number): string => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;

/** A segment encoded the way the agent uploads it, with the agent's metadata. */
async function agentUpload(name: string, seed: number, databaseId = DB): Promise<{ raw: Buffer; body: Buffer; meta: Record<string, string> }> {
  const raw = syntheticSegment(name, seed);
  const body = await getCodec("zstd").encode(raw);
  const meta = { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: databaseId };
  return { raw, body, meta };
}

/** Puts an object into the incoming bucket and waits for the execution it starts to finish. */
async function drop(key: string, body: Uint8Array, meta: Record<string, string>): Promise<void> {
  await stack.idle();
  const before = stack.stats.started;
  await clients.store.put(stack.config.incomingBucket, key, body, meta);
  await settleRuns(stack, before, 1);
}

interface RejectionCase {
  what: string;
  databaseId: string;
  name: string;
  key: string;
  make: () => Promise<{ body: Buffer; meta: Record<string, string> }>;
  reason: RegExp;
}

const rejections: RejectionCase[] = [
  {
    what: "metadata SHA-256 that does not match the bytes",
    databaseId: DB,
    name: seg(0x70),
    key: incomingWalKey(DB, seg(0x70)),
    make: async () => {
      const { body, meta } = await agentUpload(seg(0x70), 70);
      return { body, meta: { ...meta, "walvault-sha256": sha256Hex(Buffer.from("other bytes")) } };
    },
    reason: /SHA-256/,
  },
  {
    what: "a metadata size that does not match the decoded bytes",
    databaseId: DB,
    name: seg(0x71),
    key: incomingWalKey(DB, seg(0x71)),
    make: async () => {
      const { body, meta } = await agentUpload(seg(0x71), 71);
      return { body, meta: { ...meta, "walvault-size": String(1024) } };
    },
    reason: /decodes to more than the 1024 bytes it claims/,
  },
  {
    what: "bytes that do not decode with the codec they claim",
    databaseId: DB,
    name: seg(0x72),
    key: incomingWalKey(DB, seg(0x72)),
    make: async () => {
      const body = Buffer.from("this is not a zstd frame at all");
      return { body, meta: { ...objectMeta({ sha256: sha256Hex(body), codec: "zstd", size: body.length }), [META_DATABASE]: DB } };
    },
    reason: /does not decode as zstd/,
  },
  {
    what: "a segment whose page header names another LSN",
    databaseId: DB,
    name: seg(0x73),
    key: incomingWalKey(DB, seg(0x73)),
    make: async () => {
      const raw = syntheticSegment(seg(0x74), 73);
      const body = await getCodec("zstd").encode(raw);
      return { body, meta: { ...objectMeta({ sha256: sha256Hex(raw), codec: "zstd", size: raw.length }), [META_DATABASE]: DB } };
    },
    reason: /not a PostgreSQL WAL segment of this name/,
  },
  {
    what: "a key with a '..' path segment",
    databaseId: DB,
    name: "../wal/000000010000000000000009",
    key: "incoming/db/pg-main/wal/../wal/000000010000000000000009",
    make: () => agentUpload("000000010000000000000009", 9),
    reason: /'\.\.'/,
  },
  {
    what: "a key under a database that is not registered",
    databaseId: "ghost-db",
    name: seg(0x75),
    key: incomingWalKey("ghost-db", seg(0x75)),
    make: () => agentUpload(seg(0x75), 75, "ghost-db"),
    reason: /'ghost-db' is not registered/,
  },
  {
    what: "no walvault metadata",
    databaseId: DB,
    name: seg(0x76),
    key: incomingWalKey(DB, seg(0x76)),
    make: async () => ({ body: (await agentUpload(seg(0x76), 76)).body, meta: {} }),
    reason: /missing or malformed walvault metadata/,
  },
  {
    what: "a history file naming a timeline that is not an ancestor",
    databaseId: DB,
    name: "00000003.history",
    key: incomingWalKey(DB, "00000003.history"),
    make: async () => {
      const body = Buffer.from("1\t0/3000000\tno recovery target specified\n3\t0/5000000\tno recovery target specified\n");
      return { body, meta: { ...objectMeta({ sha256: sha256Hex(body), codec: "none", size: body.length }), [META_DATABASE]: DB } };
    },
    reason: /not an ancestor/,
  },
  {
    what: "a history file whose content is not a history ('# nothing here')",
    databaseId: DB,
    name: "00000004.history",
    key: incomingWalKey(DB, "00000004.history"),
    make: async () => rawUpload(Buffer.from("# nothing here\n")),
    reason: /00000004\.history is not a timeline history file: it lists no parent timeline/,
  },
  {
    what: "a history file with a line that does not parse, carrying terminal escape bytes (quoted escaped)",
    databaseId: DB,
    name: "00000005.history",
    key: incomingWalKey(DB, "00000005.history"),
    make: async () => rawUpload(Buffer.from("1\t0/3000000\tok\nx\x1b[2J\x1b]0;owned\x07\n")),
    reason: /^00000005\.history is not a timeline history file: timeline history line 2 is malformed: 'x\\e\[2J\\e\]0;owned\\x07'$/,
  },
  {
    what: "a 100-byte .partial file (a .partial is a whole segment)",
    databaseId: DB,
    name: `${seg(0x78)}.partial`,
    key: incomingWalKey(DB, `${seg(0x78)}.partial`),
    make: async () => rawUpload(syntheticSegment(seg(0x78), 78).subarray(0, 100)),
    reason: /\.partial is 100 bytes but WAL segments \(\.partial ones included\) of this database are 16777216 bytes/,
  },
  {
    what: "a .partial file whose page header names another segment",
    databaseId: DB,
    name: `${seg(0x79)}.partial`,
    key: incomingWalKey(DB, `${seg(0x79)}.partial`),
    make: async () => rawUpload(syntheticSegment(seg(0x7a), 79)),
    reason: /not a PostgreSQL WAL segment of this name: its first page is at LSN/,
  },
];

/** Raw bytes uploaded uncompressed with the agent's metadata. */
async function rawUpload(body: Buffer): Promise<{ body: Buffer; meta: Record<string, string> }> {
  return { body, meta: { ...objectMeta({ sha256: sha256Hex(body), codec: "none", size: body.length }), [META_DATABASE]: DB } };
}

describe("ingest rejects an upload and quarantines it, never touching the vault or the WAL catalog", () => {
  for (const c of rejections) {
    it(`${c.what}`, async () => {
      // Prepare
      const { body, meta } = await c.make();
      const failedBefore = stack.stats.failed;
      const succeededBefore = stack.stats.succeeded;
      const walBefore = await clients.catalog.listWal(DB);
      const vaultBefore = await listKeys(clients.store, stack.config.vaultBucket, "");

      // Act
      await drop(c.key, body, meta);

      // Assess: the execution failed, nothing entered the catalog or the vault
      expect(stack.stats.failed).toBe(failedBefore + 1);
      expect(stack.stats.succeeded).toBe(succeededBefore);
      const baseName = c.name.split("/").pop()!;
      expect(await clients.catalog.getWal(c.databaseId, baseName)).toBeUndefined();
      expect(await clients.catalog.listWal(DB)).toEqual(walBefore);
      expect(await clients.store.head(stack.config.vaultBucket, vaultWalKey(c.databaseId, parseWalFileName(baseName)))).toBeUndefined();
      expect(await listKeys(clients.store, stack.config.vaultBucket, "")).toEqual(vaultBefore);

      // Assess: a quarantine record says why, and the upload is kept under quarantine/
      const q = await clients.catalog.listQuarantine(c.databaseId, c.name);
      expect(q).toHaveLength(1);
      expect(q[0]!.incomingKey).toBe(c.key);
      expect(q[0]!.reason).toMatch(c.reason);
      const qKey = q[0]!.quarantineKey;
      expect(qKey).toBeDefined();
      expect(qKey!.startsWith(`quarantine/db/${c.databaseId}/`)).toBe(true);
      expect(await listKeys(clients.store, stack.config.incomingBucket, `quarantine/db/${c.databaseId}/`)).toContain(qKey);
      const kept = await clients.store.get(stack.config.incomingBucket, qKey!);
      expect(kept!.body.equals(body)).toBe(true);
      expect(kept!.metadata["walvault-reason"]).toBeDefined();
    });
  }

  it("a key whose database id is malformed: recorded under _invalid, nothing kept and nothing archived", async () => {
    // Prepare
    const key = "incoming/db/Bad_Id/wal/000000010000000000000077";
    const { body, meta } = await agentUpload(seg(0x77), 77);
    const failedBefore = stack.stats.failed;
    const vaultBefore = await listKeys(clients.store, stack.config.vaultBucket, "");

    // Act
    await drop(key, body, meta);

    // Assess
    expect(stack.stats.failed).toBe(failedBefore + 1);
    const q = (await clients.catalog.listQuarantine("_invalid")).filter((r) => r.incomingKey === key);
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toMatch(/database id 'Bad_Id' is invalid/);
    expect(q[0]!.quarantineKey).toBeUndefined();
    expect(await listKeys(clients.store, stack.config.vaultBucket, "")).toEqual(vaultBefore);
  });
});

describe("ingest of a valid upload", () => {
  it("records it once and writes the vault object once when the same upload arrives twice", async () => {
    // Prepare
    const name = seg(0x80);
    const key = incomingWalKey(DB, name);
    const vaultKey = vaultWalKey(DB, parseWalFileName(name));
    const { raw, body, meta } = await agentUpload(name, 80);
    const failedBefore = stack.stats.failed;
    await drop(key, body, meta);
    const first = await clients.catalog.getWal(DB, name);
    const vaultFirst = await objectStamp(stack, stack.config.vaultBucket, vaultKey);
    const headFirst = await clients.catalog.getHead(DB);
    const started = stack.stats.started;
    const succeeded = stack.stats.succeeded;
    await new Promise((r) => setTimeout(r, 1100)); // a rewrite would show in Last-Modified (1 s resolution)

    // Act
    await drop(key, body, meta);

    // Assess
    expect(first).toMatchObject({ name, sha256: sha256Hex(raw), size: raw.length, storedSize: body.length, codec: "zstd", vaultKey });
    expect(vaultFirst).toBeDefined();
    expect(stack.stats.started).toBe(started + 1);
    expect(stack.stats.succeeded).toBe(succeeded + 1);
    expect(stack.stats.failed).toBe(failedBefore);
    expect((await clients.catalog.listWal(DB)).filter((r) => r.name === name)).toEqual([first]);
    expect(await objectStamp(stack, stack.config.vaultBucket, vaultKey)).toEqual(vaultFirst);
    expect(await clients.catalog.getHead(DB)).toEqual(headFirst);
    expect(await clients.catalog.listQuarantine(DB, name)).toEqual([]);
  });

  it("re-running Validate, Promote and Record on an upload already archived changes nothing", async () => {
    // Prepare: an archived upload
    const name = seg(0x81);
    const key = incomingWalKey(DB, name);
    const vaultKey = vaultWalKey(DB, parseWalFileName(name));
    const { body, meta } = await agentUpload(name, 81);
    await drop(key, body, meta);
    const recorded = await clients.catalog.getWal(DB, name);
    const vaultBefore = await objectStamp(stack, stack.config.vaultBucket, vaultKey);
    await new Promise((r) => setTimeout(r, 1100));
    const event = {
      "detail-type": "Object Created",
      source: "aws.s3",
      detail: { bucket: { name: stack.config.incomingBucket }, object: { key } },
    };

    // Act: the steps as a retried execution would run them
    const ingest = await validate.handler({ event }); // ASL: Parameters {"event.$": "$"}
    const promoted = await promote.handler({ ingest });
    const recordedAgain = await record.handler({ ingest, promoted });

    // Assess
    expect(ingest.duplicate).toBe(true);
    expect(promoted).toMatchObject({ vaultKey, copied: false });
    expect(recordedAgain).toMatchObject({ outcome: "duplicate", name, archivedAt: recorded!.archivedAt });
    expect(await clients.catalog.getWal(DB, name)).toEqual(recorded);
    expect(await objectStamp(stack, stack.config.vaultBucket, vaultKey)).toEqual(vaultBefore);
  });

  it("a vault object without its sha256 yet (a concurrent promotion writing it) is not taken for a conflict: no quarantine", async () => {
    // Prepare: bytes at the vault key with no metadata, as s3rver shows a copy in flight
    const name = seg(0x84);
    const key = incomingWalKey(DB, name);
    const vaultKey = vaultWalKey(DB, parseWalFileName(name));
    await clients.store.put(stack.config.vaultBucket, vaultKey, Buffer.from("being written"), {});
    const { body, meta } = await agentUpload(name, 84);

    // Act
    await drop(key, body, meta);

    // Assess: the execution did not archive it, and did not record the upload as rejected
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
    expect(await clients.catalog.listQuarantine(DB, name)).toEqual([]);
    expect((await listKeys(clients.store, stack.config.incomingBucket, "quarantine/")).filter((k) => k.endsWith(name))).toEqual([]);
  });

  it("a different upload under an archived name is quarantined as a conflict and the archived copy kept", async () => {
    // Prepare
    const name = seg(0x82);
    const key = incomingWalKey(DB, name);
    const vaultKey = vaultWalKey(DB, parseWalFileName(name));
    const original = await agentUpload(name, 82);
    await drop(key, original.body, original.meta);
    const recorded = await clients.catalog.getWal(DB, name);
    const vaultBefore = await objectStamp(stack, stack.config.vaultBucket, vaultKey);
    const other = await agentUpload(name, 8282);
    const failedBefore = stack.stats.failed;

    // Act
    await drop(key, other.body, other.meta);

    // Assess
    expect(stack.stats.failed).toBe(failedBefore + 1);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recorded);
    expect(await objectStamp(stack, stack.config.vaultBucket, vaultKey)).toEqual(vaultBefore);
    const q = await clients.catalog.listQuarantine(DB, name);
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toMatch(/already archived .* different contents/);
  });
});

describe("the handlers' logs (CloudWatch Logs, locally: the stack's lambda.log)", () => {
  it("are structured lines, and every step of one execution logs under that execution's trace as correlation id", async () => {
    // Prepare: two uploads the ingest rejects, each its own execution
    const keys = [incomingWalKey(DB, seg(0x98)), incomingWalKey(DB, seg(0x99))];
    const uploads = await Promise.all([agentUpload(seg(0x98), 98), agentUpload(seg(0x99), 99)]);

    // Act
    for (const [i, key] of keys.entries()) {
      await drop(key, uploads[i]!.body, { ...uploads[i]!.meta, "walvault-sha256": "0".repeat(64) });
    }

    // Assess: per execution, Validate's failure (ERROR) and Quarantine's record of it (WARN), under one correlation id
    type Line = { level: string; message: string; function_name: string; function_request_id: string; correlation_id?: string; error?: { name: string }; key?: string };
    const lines = readFileSync(stack.lambdaLogFile, "utf8").split("\n").filter((l) => l.startsWith('{"level"')).map((l) => JSON.parse(l) as Line);
    const ids = keys.map((key) => {
      const warn = lines.find((l) => l.level === "WARN" && l.function_name === "Quarantine" && l.key === key);
      expect(warn?.message).toMatch(/^quarantined .*SHA-256/);
      const id = warn!.correlation_id!;
      expect(id).toMatch(/^1-[0-9a-f]{8}-[0-9a-f]{24}$/);
      const failed = lines.filter((l) => l.correlation_id === id && l.level === "ERROR");
      expect(failed.map((l) => [l.function_name, l.error?.name])).toEqual([["Validate", "ChecksumMismatchError"]]);
      expect(failed[0]!.function_request_id).not.toBe(warn!.function_request_id);
      return id;
    });
    expect(new Set(ids).size).toBe(2);
  });
});

describe("execution statistics", () => {
  it("count started, succeeded and failed runs and log each failure", async () => {
    // Prepare
    await stack.idle();
    const before = { ...stack.stats };
    const good = await agentUpload(seg(0x90), 90);
    const bad = await agentUpload(seg(0x91), 91);
    const badKey = incomingWalKey(DB, seg(0x91));

    // Act
    await clients.store.put(stack.config.incomingBucket, incomingWalKey(DB, seg(0x90)), good.body, good.meta);
    await clients.store.put(stack.config.incomingBucket, badKey, bad.body, { ...bad.meta, "walvault-sha256": "0".repeat(64) });
    await settleRuns(stack, before.started, 2);

    // Assess
    expect(executionCounts(stack.stats)).toEqual({
      started: before.started + 2,
      succeeded: before.succeeded + 1,
      failed: before.failed + 1,
      inFlight: 0,
    });
    const log = readFileSync(join(stack.stateDir, "executions.log"), "utf8");
    expect(log).toContain(`ingest ${badKey}:`);
  });

  it("do not count objects outside incoming/db/ (the EventBridge rule's filter)", async () => {
    // Prepare
    await stack.idle();
    const before = { ...stack.stats };
    const { body, meta } = await agentUpload(seg(0x92), 92);

    // Act
    await clients.store.put(stack.config.incomingBucket, `elsewhere/db/${DB}/wal/${seg(0x92)}`, body, meta);
    await quietPeriod(800);

    // Assess
    expect(executionCounts(stack.stats)).toEqual(executionCounts(before));
    expect(await clients.catalog.getWal(DB, seg(0x92))).toBeUndefined();
  });
});

describe("ingest of generic WAL segments (walvault watch's uploads)", () => {
  const upload = async (bytes: Buffer, extra: Record<string, string>): Promise<{ body: Buffer; meta: Record<string, string> }> => ({
    body: await getCodec("zstd").encode(bytes),
    meta: { ...objectMeta({ sha256: sha256Hex(bytes), codec: "zstd", size: bytes.length }), [META_DATABASE]: GEN, ...extra },
  });

  it("records <stream>/<file> with its position, close time and scan, under the stream in the vault", async () => {
    // Prepare: the same file name in two streams.
    const closedAt = "2026-11-21T10:00:00.000Z";
    const scan = { at: "2026-11-21T10:00:05.000Z", count: 2 };
    const a = await upload(Buffer.from("stripe one, segment 7\n".repeat(100)), genericSegmentMeta({ position: 7n, closedAt, scan }));
    const b = await upload(Buffer.from("stripe two, segment 7\n".repeat(100)), genericSegmentMeta({ position: 7n, closedAt, scan }));
    // Act
    await drop(incomingGenericWalKey(GEN, "stripe-1", "000007.wal"), a.body, a.meta);
    await drop(incomingGenericWalKey(GEN, "stripe-2", "000007.wal"), b.body, b.meta);
    // Assess
    const rec = await clients.catalog.getWal(GEN, "stripe-1/000007.wal");
    expect(rec).toMatchObject({ kind: "segment", timeline: 1, startLsn: "7", closedAt, scanAt: scan.at, scanCount: 2, vaultKey: vaultGenericWalKey(GEN, "stripe-1", "000007.wal") });
    expect((await clients.catalog.getWal(GEN, "stripe-2/000007.wal"))?.sha256).toBe(b.meta["walvault-sha256"]);
    expect(await clients.store.head(stack.config.vaultBucket, vaultGenericWalKey(GEN, "stripe-2", "000007.wal"))).toBeDefined();
  });

  it.each([
    ["no position metadata", incomingGenericWalKey(GEN, "wal", "000001.wal"), { "walvault-closed-at": "2026-11-21T10:00:00.000Z" }, /generic WAL metadata \(walvault-position/],
    ["a PostgreSQL-style key for a generic database", incomingWalKey(GEN, seg(0x30)), genericSegmentMeta({ position: 1n, closedAt: "2026-11-21T10:00:00.000Z" }), /is generic: its WAL is uploaded per stream/],
  ])("quarantines an upload with %s, recording nothing", async (_what, key, extra, reason) => {
    // Prepare
    const { body, meta } = await upload(Buffer.from("x".repeat(500)), extra);
    const failedBefore = stack.stats.failed;
    const walBefore = await clients.catalog.listWal(GEN);
    // Act
    await drop(key, body, meta);
    // Assess
    expect(stack.stats.failed).toBe(failedBefore + 1);
    expect(await clients.catalog.listWal(GEN)).toEqual(walBefore);
    const q = (await clients.catalog.listQuarantine(GEN)).filter((r) => r.incomingKey === key);
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toMatch(reason);
  });

  it("refuses a generic key for a PostgreSQL database", async () => {
    // Prepare
    const { body, meta } = await upload(Buffer.from("y".repeat(500)), genericSegmentMeta({ position: 1n, closedAt: "2026-11-21T10:00:00.000Z" }));
    const key = incomingGenericWalKey(DB, "wal", "000001.wal");
    // Act
    await drop(key, body, meta);
    // Assess
    const q = (await clients.catalog.listQuarantine(DB)).filter((r) => r.incomingKey === key);
    expect(q[0]?.reason).toMatch(/is PostgreSQL: its WAL is uploaded as/);
    expect(await clients.catalog.getWal(DB, "wal/000001.wal")).toBeUndefined();
  });
});
