/**
 * The snapshot ingest workflow (statemachines/snapshot-ingest.asl.json with
 * functions/snapshot/*) on the real local stack, driven the way an agent
 * drives it: new chunks are uploaded to incoming/db/<id>/chunks/<sha256>, then
 * the manifest to incoming/db/<id>/snapshots/<snapshotId>/manifest.json,
 * whose object-created event starts an execution.
 * Needs `npm run build` first (s3rver runs from dist/local/s3rver-child.js).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec, type CodecName } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingChunkKey, incomingSnapshotKey, snapshotPageKey, vaultChunkKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { pageManifest, serializePagedHeader } from "../../core/manifest-pages.js";
import { META_DATABASE, type SnapshotRecord } from "../../core/schemas.js";
import {
  SnapshotBuilder,
  parseBackupLabel,
  postgresFieldsFromBackupLabel,
  serializeManifest,
  snapshotIdFor,
  type SnapshotManifest,
} from "../../core/snapshot.js";
import { objectMeta, parseObjectMeta } from "../../core/verify.js";
import { INLINE_BATCHES_MAX_BYTES, snapshotQuarantineName } from "../../functions/snapshot/common.js";
import type { WorkflowName } from "../../local/stack.js";
import { listKeys, objectStamp, poll, quietPeriod, stackClients, type StackClients } from "../support/harness.js";
import { executionCounts, startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-db";
const PG = "pg-snap";
const MiB = 1024 * 1024;
const MTIME = new Date("2026-11-20T12:00:00.000Z");

let stack: TestStack;
let clients: StackClients;

beforeAll(async () => {
  stack = await startTestStack([
    { id: GEN, kind: "generic" },
    { id: PG, kind: "postgres" },
  ]);
  clients = stackClients(stack);
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

// --- building snapshots the way the agent does --------------------------------

/** A chunk as the pipeline holds it: raw bytes, encoded bytes, and whether this push uploads it. */
interface Chunk {
  sha256: string;
  raw: Buffer;
  body: Buffer;
  codec: CodecName;
}

type Entry =
  | { type: "file"; path: string; content: Buffer; chunkSize?: number }
  | { type: "directory"; path: string }
  | { type: "symlink"; path: string; target: string };

interface BuiltSnapshot {
  databaseId: string;
  snapshotId: string;
  manifest: SnapshotManifest;
  bytes: Buffer;
  /** Distinct chunks this push uploads (flagged new). */
  fresh: Chunk[];
  /** Every distinct chunk referenced. */
  all: Chunk[];
}

async function encodeChunk(raw: Buffer, codec: CodecName = "zstd"): Promise<Chunk> {
  return { sha256: sha256Hex(raw), raw, body: await getCodec(codec).encode(raw), codec };
}

/** Seconds since a fixed instant: every snapshot gets its own start time (and id). */
let clock = 0;
function nextStart(): Date {
  clock += 1;
  return new Date(Date.UTC(2026, 10, 21, 8, 0, clock, 250));
}

/**
 * Builds a manifest with SnapshotBuilder: every file is cut into `chunkSize`
 * pieces (default 1 KiB) and zstd-encoded; chunks whose SHA-256 is in `stored`
 * are referenced as already in the vault, the others are new.
 */
async function buildSnapshot(
  databaseId: string,
  entries: Entry[],
  options: { stored?: ReadonlySet<string>; postgres?: { label: string }; startedAt?: Date } = {},
): Promise<BuiltSnapshot> {
  const startedAt = options.startedAt ?? nextStart();
  const snapshotId = snapshotIdFor(startedAt, "00a0b0");
  const b = new SnapshotBuilder();
  const unique = new Map<string, Chunk>();
  const fresh = new Map<string, Chunk>();
  for (const e of entries) {
    if (e.type === "directory") b.addDirectory(e.path, 0o755, MTIME);
    else if (e.type === "symlink") b.addSymlink(e.path, e.target, MTIME);
    else {
      const f = b.startFile(e.path, 0o644, MTIME);
      const size = e.chunkSize ?? 1024;
      for (let off = 0; off < e.content.length; off += size) {
        const raw = e.content.subarray(off, off + size);
        const sha = sha256Hex(raw);
        const c = unique.get(sha) ?? (await encodeChunk(Buffer.from(raw)));
        unique.set(sha, c);
        const isNew = !(options.stored?.has(sha) ?? false);
        if (isNew) fresh.set(sha, c);
        f.addChunk({ sha256: sha, size: c.raw.length, storedSize: c.body.length, codec: c.codec, isNew });
      }
      f.finish(sha256Hex(e.content), e.content.length);
    }
  }
  const finishedAt = new Date(startedAt.getTime() + 1500);
  const manifest = options.postgres
    ? b.build({
        databaseId,
        snapshotId,
        kind: "postgres",
        startedAt,
        finishedAt,
        postgres: postgresFieldsFromBackupLabel(parseBackupLabel(options.postgres.label), {
          stopLsn: 0x2000100n,
          walSegmentSize: 16 * MiB,
          version: 150018,
          stopWalFile: "000000010000000000000002",
        }),
      })
    : b.build({
        databaseId,
        snapshotId,
        kind: "generic",
        startedAt,
        finishedAt,
        generic: { streams: [{ id: "wal", lastSegment: "wal/000042.wal", lastSegno: 42 }] },
      });
  return { databaseId, snapshotId, manifest, bytes: Buffer.from(serializeManifest(manifest)), fresh: [...fresh.values()], all: [...unique.values()] };
}

/** Deterministic pseudo-random bytes. */
function bytes(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Uploads chunks as the agent does: encoded body, metadata of the raw bytes. */
async function uploadChunks(databaseId: string, chunks: readonly Chunk[]): Promise<void> {
  const queue = [...chunks];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        await clients.store.put(stack.config.incomingBucket, incomingChunkKey(databaseId, c.sha256), c.body, {
          ...objectMeta({ sha256: c.sha256, codec: c.codec, size: c.raw.length }),
          [META_DATABASE]: databaseId,
        });
      }
    }),
  );
}

function manifestMeta(databaseId: string, body: Buffer): Record<string, string> {
  return { ...objectMeta({ sha256: sha256Hex(body), codec: "none", size: body.length }), [META_DATABASE]: databaseId };
}

/** Waits until `count` more executions of `workflow` than `before` have started, then until nothing runs. */
async function settle(workflow: WorkflowName, before: number, count = 1): Promise<void> {
  await poll(() => stack.workflowStats[workflow].started >= before + count, 15_000, `${count} ${workflow} execution(s) to start`);
  await stack.idle();
}

/** Uploads the manifest (last, as the agent does) and waits for the execution it starts to finish. */
async function putManifest(databaseId: string, snapshotId: string, body: Buffer, meta = manifestMeta(databaseId, body)): Promise<void> {
  await stack.idle();
  const before = stack.workflowStats["snapshot-ingest"].started;
  await clients.store.put(stack.config.incomingBucket, incomingSnapshotKey(databaseId, snapshotId), body, meta);
  await settle("snapshot-ingest", before);
}

/** The whole push: new chunks, then the manifest; resolves when the snapshot is recorded. */
async function push(s: BuiltSnapshot): Promise<SnapshotRecord> {
  await uploadChunks(s.databaseId, s.fresh);
  await putManifest(s.databaseId, s.snapshotId, s.bytes);
  return poll(() => clients.catalog.getSnapshot(s.databaseId, s.snapshotId), 10_000, `snapshot ${s.snapshotId} to be recorded`);
}

async function quarantineOf(databaseId: string, snapshotId: string) {
  return clients.catalog.listQuarantine(databaseId, snapshotQuarantineName(snapshotId));
}

/** A generic snapshot: directories, a symlink, an empty file, chunks repeated inside and across files. */
function genericEntries(seed: number): Entry[] {
  const block = bytes(seed, 1024);
  return [
    { type: "directory", path: "sst" },
    { type: "file", path: "sst/000001.sst", content: Buffer.concat([bytes(seed + 1, 20 * 1024), block, block]) },
    { type: "file", path: "sst/000002.sst", content: Buffer.concat([block, bytes(seed + 2, 20 * 1024 + 100)]) },
    { type: "file", path: "CURRENT", content: Buffer.from("MANIFEST-000007\n") },
    { type: "file", path: "LOCK", content: Buffer.alloc(0) },
    { type: "directory", path: "wal" },
    { type: "symlink", path: "latest", target: "sst/000002.sst" },
  ];
}

// --- the tests ----------------------------------------------------------------

describe("snapshot ingest of a valid push", () => {
  let first: BuiltSnapshot;
  let record: SnapshotRecord;

  beforeAll(async () => {
    first = await buildSnapshot(GEN, genericEntries(1));
    record = await push(first);
  }, 60_000);

  it("records the snapshot with the manifest's totals, restorable", () => {
    // Assess
    const t = first.manifest.totals;
    expect(first.fresh.length).toBeGreaterThan(32); // more than one batch
    expect(record).toMatchObject({
      databaseId: GEN,
      snapshotId: first.snapshotId,
      kind: "generic",
      streams: { wal: "42" },
      startedAt: first.manifest.startedAt,
      finishedAt: first.manifest.finishedAt,
      manifestKey: vaultSnapshotManifestKey(GEN, first.snapshotId),
      manifestSha256: sha256Hex(first.bytes),
      manifestSize: first.bytes.length,
      totals: {
        files: t.files,
        logicalBytes: t.logicalBytes,
        uniqueChunks: t.uniqueChunks,
        newChunks: t.newChunks,
        storedBytes: t.storedBytes,
        newStoredBytes: t.newStoredBytes,
      },
      status: "restorable",
    });
    expect(t.newChunks).toBe(first.fresh.length);
    expect(stack.workflowStats["snapshot-ingest"].failed).toBe(0);
  });

  it("puts every chunk into the vault under db/<id>/chunks/<sha256>, verifiable, and into the catalog", async () => {
    // Act
    const missing = await clients.catalog.missingChunks(GEN, first.all.map((c) => c.sha256));
    // Assess
    expect(missing).toEqual([]);
    for (const c of first.all) {
      const obj = await clients.store.get(stack.config.vaultBucket, vaultChunkKey(GEN, c.sha256));
      expect(obj, c.sha256).toBeDefined();
      expect(obj!.body.equals(c.body)).toBe(true);
      expect(parseObjectMeta(obj!.metadata, c.sha256)).toEqual({ sha256: c.sha256, codec: "zstd", size: c.raw.length });
      expect(sha256Hex(await getCodec("zstd").decode(obj!.body))).toBe(c.sha256);
    }
    const inVault = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/chunks/`);
    expect(inVault.sort()).toEqual(first.all.map((c) => vaultChunkKey(GEN, c.sha256)).sort());
  });

  it("puts the manifest bytes into the vault under db/<id>/snapshots/<snapshotId>/manifest.json", async () => {
    // Act
    const obj = await clients.store.get(stack.config.vaultBucket, vaultSnapshotManifestKey(GEN, first.snapshotId));
    // Assess
    expect(obj!.body.equals(first.bytes)).toBe(true);
    expect(parseObjectMeta(obj!.metadata, "manifest")).toEqual({ sha256: sha256Hex(first.bytes), codec: "none", size: first.bytes.length });
    expect(await quarantineOf(GEN, first.snapshotId)).toEqual([]);
  });

  it("is a no-op when the same manifest arrives again", async () => {
    // Prepare
    const manifestKey = vaultSnapshotManifestKey(GEN, first.snapshotId);
    const chunkKey = vaultChunkKey(GEN, first.fresh[0]!.sha256);
    const manifestStamp = await objectStamp(stack, stack.config.vaultBucket, manifestKey);
    const chunkStamp = await objectStamp(stack, stack.config.vaultBucket, chunkKey);
    const before = { ...stack.workflowStats["snapshot-ingest"] };
    await new Promise((r) => setTimeout(r, 1100)); // a rewrite would show in Last-Modified (1 s resolution)

    // Act
    await putManifest(GEN, first.snapshotId, first.bytes);

    // Assess
    expect(stack.workflowStats["snapshot-ingest"]).toMatchObject({ started: before.started + 1, succeeded: before.succeeded + 1, failed: before.failed });
    expect(await clients.catalog.getSnapshot(GEN, first.snapshotId)).toEqual(record);
    expect((await clients.catalog.listSnapshots(GEN)).filter((s) => s.snapshotId === first.snapshotId)).toHaveLength(1);
    expect(await objectStamp(stack, stack.config.vaultBucket, manifestKey)).toEqual(manifestStamp);
    expect(await objectStamp(stack, stack.config.vaultBucket, chunkKey)).toEqual(chunkStamp);
    expect(await quarantineOf(GEN, first.snapshotId)).toEqual([]);
  });

  it("promotes only the new chunks of an incremental snapshot that reuses stored ones", async () => {
    // Prepare: the same tree with one file appended to; everything already stored is reused.
    const entries = genericEntries(1).map((e) =>
      e.type === "file" && e.path === "sst/000002.sst" ? { ...e, content: Buffer.concat([e.content, bytes(77, 3000)]) } : e,
    );
    const second = await buildSnapshot(GEN, entries, { stored: new Set(first.all.map((c) => c.sha256)) });
    const reused = second.all.filter((c) => !second.fresh.includes(c));
    const stampOfReused = await objectStamp(stack, stack.config.vaultBucket, vaultChunkKey(GEN, reused[0]!.sha256));

    // Act
    const rec = await push(second);

    // Assess
    expect(second.fresh.length).toBeGreaterThan(0);
    expect(second.fresh.length).toBeLessThan(6);
    expect(rec.totals).toMatchObject({ newChunks: second.fresh.length, uniqueChunks: second.all.length });
    expect(await clients.catalog.missingChunks(GEN, second.all.map((c) => c.sha256))).toEqual([]);
    expect(await objectStamp(stack, stack.config.vaultBucket, vaultChunkKey(GEN, reused[0]!.sha256))).toEqual(stampOfReused);
  });
});

describe("snapshot ingest refuses a snapshot and quarantines its manifest, never recording it", () => {
  /** Pushes, then asserts the run failed, nothing was recorded or promoted, and returns the quarantine reason. */
  async function rejected(s: BuiltSnapshot, upload: () => Promise<void>): Promise<string> {
    const failedBefore = stack.workflowStats["snapshot-ingest"].failed;
    await upload();
    expect(stack.workflowStats["snapshot-ingest"].failed).toBe(failedBefore + 1);
    expect(await clients.catalog.getSnapshot(s.databaseId, s.snapshotId)).toBeUndefined();
    expect(await clients.store.head(stack.config.vaultBucket, vaultSnapshotManifestKey(s.databaseId, s.snapshotId))).toBeUndefined();
    const q = await quarantineOf(s.databaseId, s.snapshotId);
    expect(q).toHaveLength(1);
    expect(q[0]!.incomingKey).toBe(incomingSnapshotKey(s.databaseId, s.snapshotId));
    const kept = await clients.store.get(stack.config.incomingBucket, q[0]!.quarantineKey!);
    expect(q[0]!.quarantineKey!.startsWith(`quarantine/db/${s.databaseId}/`)).toBe(true);
    expect(kept!.metadata["walvault-reason"]).toBeDefined();
    return q[0]!.reason;
  }

  it("a chunk flagged new that was never uploaded: the reason names the chunk and a file using it", async () => {
    // Prepare
    const s = await buildSnapshot(GEN, [{ type: "file", path: "data.bin", content: bytes(200, 5000) }]);
    const [skipped, ...rest] = s.fresh;
    // Act
    const reason = await rejected(s, async () => {
      await uploadChunks(GEN, rest);
      await putManifest(GEN, s.snapshotId, s.bytes);
    });
    // Assess
    expect(reason).toContain(skipped!.sha256);
    expect(reason).toContain('"data.bin"');
    expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(GEN, skipped!.sha256))).toBeUndefined();
  });

  it("a chunk referenced as already stored that the vault does not have: refused before anything is promoted", async () => {
    // Prepare
    const ghost = bytes(300, 1024);
    const s = await buildSnapshot(GEN, [{ type: "file", path: "y.dat", content: Buffer.concat([bytes(301, 1024), ghost]) }], {
      stored: new Set([sha256Hex(ghost)]),
    });
    // Act
    const reason = await rejected(s, async () => {
      await uploadChunks(GEN, s.fresh);
      await putManifest(GEN, s.snapshotId, s.bytes);
    });
    // Assess
    expect(reason).toContain(sha256Hex(ghost));
    expect(reason).toMatch(/referenced as already stored/);
    expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(GEN, s.fresh[0]!.sha256))).toBeUndefined();
  });

  it("a chunk whose bytes do not hash to its name", async () => {
    // Prepare: the upload under the chunk's name holds other bytes of the same size, encoded, with the claimed metadata.
    const s = await buildSnapshot(GEN, [{ type: "file", path: "bad.bin", content: bytes(400, 3000) }]);
    const victim = s.fresh[1]!;
    const other = await getCodec("zstd").encode(bytes(401, victim.raw.length));
    const forged = { ...victim, body: other };
    // Act
    const reason = await rejected(s, async () => {
      await uploadChunks(GEN, s.fresh.map((c) => (c === victim ? forged : c)));
      await putManifest(GEN, s.snapshotId, s.bytes);
    });
    // Assess
    expect(reason).toContain(victim.sha256);
    expect(reason).toMatch(/hash to [0-9a-f]{12}…, not to its name/);
    expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(GEN, victim.sha256))).toBeUndefined();
  });

  it("a manifest whose totals are wrong: the reason names the field", async () => {
    // Prepare
    const s = await buildSnapshot(GEN, [{ type: "file", path: "t.bin", content: bytes(500, 2000) }]);
    const broken = { ...s.manifest, totals: { ...s.manifest.totals, logicalBytes: s.manifest.totals.logicalBytes + 1 } };
    const body = Buffer.from(serializeManifest(broken as SnapshotManifest));
    // Act
    const reason = await rejected(s, async () => {
      await uploadChunks(GEN, s.fresh);
      await putManifest(GEN, s.snapshotId, body);
    });
    // Assess
    expect(reason).toMatch(/totals\.logicalBytes/);
    for (const c of s.fresh) expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(GEN, c.sha256))).toBeUndefined();
  });

  it("a manifest whose bytes do not match their metadata", async () => {
    // Prepare
    const s = await buildSnapshot(GEN, [{ type: "file", path: "m.bin", content: bytes(600, 1000) }]);
    // Act
    const reason = await rejected(s, async () => {
      await uploadChunks(GEN, s.fresh);
      await putManifest(GEN, s.snapshotId, s.bytes, { ...manifestMeta(GEN, s.bytes), "walvault-sha256": "0".repeat(64) });
    });
    // Assess
    expect(reason).toMatch(/SHA-256/);
  });

  it("a different manifest under an id already recorded: conflict, the recorded snapshot kept", async () => {
    // Prepare
    const startedAt = nextStart();
    const original = await buildSnapshot(GEN, [{ type: "file", path: "a.bin", content: bytes(700, 1500) }], { startedAt });
    const recorded = await push(original);
    const other = await buildSnapshot(GEN, [{ type: "file", path: "a.bin", content: bytes(701, 1500) }], { startedAt });
    expect(other.snapshotId).toBe(original.snapshotId);
    const failedBefore = stack.workflowStats["snapshot-ingest"].failed;
    // Act
    await uploadChunks(GEN, other.fresh);
    await putManifest(GEN, other.snapshotId, other.bytes);
    // Assess
    expect(stack.workflowStats["snapshot-ingest"].failed).toBe(failedBefore + 1);
    expect(await clients.catalog.getSnapshot(GEN, original.snapshotId)).toEqual(recorded);
    const vaultManifest = await clients.store.get(stack.config.vaultBucket, vaultSnapshotManifestKey(GEN, original.snapshotId));
    expect(vaultManifest!.body.equals(original.bytes)).toBe(true);
    const q = await quarantineOf(GEN, original.snapshotId);
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toMatch(/already recorded .* different manifest/);
  });
});

describe("routing of uploads", () => {
  it("chunk uploads alone start no workflow and are not quarantined", async () => {
    // Prepare
    await stack.idle();
    const before = { total: { ...stack.stats }, wal: { ...stack.workflowStats.ingest }, snap: { ...stack.workflowStats["snapshot-ingest"] } };
    const quarantineBefore = await clients.catalog.listQuarantine(GEN);
    const chunks = await Promise.all([bytes(800, 700), bytes(801, 900)].map((b) => encodeChunk(b)));

    // Act
    await uploadChunks(GEN, chunks);
    await quietPeriod(800);

    // Assess
    expect(executionCounts(stack.stats)).toEqual(executionCounts(before.total));
    expect(executionCounts(stack.workflowStats.ingest)).toEqual(executionCounts(before.wal));
    expect(executionCounts(stack.workflowStats["snapshot-ingest"])).toEqual(executionCounts(before.snap));
    expect(await clients.catalog.listQuarantine(GEN)).toEqual(quarantineBefore);
    expect(await clients.catalog.missingChunks(GEN, chunks.map((c) => c.sha256))).toEqual(chunks.map((c) => c.sha256));
    for (const c of chunks) expect(await clients.store.head(stack.config.vaultBucket, vaultChunkKey(GEN, c.sha256))).toBeUndefined();
  });

  it("a manifest starts snapshot ingest only, counted in the combined statistics too", async () => {
    // Prepare
    const s = await buildSnapshot(GEN, [{ type: "file", path: "r.bin", content: bytes(900, 800) }]);
    await stack.idle();
    const before = { total: { ...stack.stats }, wal: { ...stack.workflowStats.ingest } };
    // Act
    await push(s);
    // Assess
    expect(executionCounts(stack.workflowStats.ingest)).toEqual(executionCounts(before.wal));
    expect(executionCounts(stack.stats)).toEqual({ ...executionCounts(before.total), started: before.total.started + 1, succeeded: before.total.succeeded + 1 });
  });
});

describe("a snapshot too large to carry its batches in the workflow state", () => {
  it("goes through work/ batch objects and is recorded with every chunk promoted", async () => {
    // Prepare: ~700 distinct 512-byte chunks, ~22 batches.
    const s = await buildSnapshot(GEN, [
      { type: "directory", path: "big" },
      { type: "file", path: "big/a.dat", content: bytes(1000, 360 * 512), chunkSize: 512 },
      { type: "file", path: "big/b.dat", content: bytes(1001, 340 * 512), chunkSize: 512 },
    ]);
    expect(s.fresh.length * 110).toBeGreaterThan(INLINE_BATCHES_MAX_BYTES);

    // Act
    const rec = await push(s);

    // Assess
    expect(rec.totals.newChunks).toBe(s.fresh.length);
    const work = await listKeys(clients.store, stack.config.incomingBucket, `work/db/${GEN}/snapshots/${s.snapshotId}/`);
    expect(work.length).toBe(Math.ceil(s.fresh.length / 32));
    expect(await clients.catalog.missingChunks(GEN, s.all.map((c) => c.sha256))).toEqual([]);
    const inVault = new Set(await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/chunks/`));
    for (const c of s.all) expect(inVault.has(vaultChunkKey(GEN, c.sha256))).toBe(true);
  }, 120_000);
});

describe("a PostgreSQL base backup", () => {
  const label = (lsn = "0/2000028"): string =>
    [
      `START WAL LOCATION: ${lsn} (file 000000010000000000000002)`,
      "CHECKPOINT LOCATION: 0/2000060",
      "BACKUP METHOD: streamed",
      "BACKUP FROM: primary",
      "START TIME: 2026-11-21 08:00:00 UTC",
      "LABEL: walvault test",
      "START TIMELINE: 1",
      "",
    ].join("\n");

  const pgEntries = (labelText: string): Entry[] => [
    { type: "file", path: "backup_label", content: Buffer.from(labelText) },
    { type: "directory", path: "base" },
    { type: "directory", path: "base/1" },
    { type: "file", path: "base/1/1259", content: bytes(1100, 64 * 1024), chunkSize: 8192 },
    { type: "directory", path: "global" },
    { type: "file", path: "global/pg_control", content: bytes(1101, 8192), chunkSize: 8192 },
    { type: "file", path: "PG_VERSION", content: Buffer.from("15\n") },
  ];

  it("is recorded with its timeline, LSNs and WAL files", async () => {
    // Prepare
    const s = await buildSnapshot(PG, pgEntries(label()), { postgres: { label: label() } });
    // Act
    const rec = await push(s);
    // Assess
    expect(rec).toMatchObject({
      kind: "postgres",
      timeline: 1,
      startLsn: "0/2000028",
      stopLsn: "0/2000100",
      startWalFile: "000000010000000000000002",
      stopWalFile: "000000010000000000000002",
      status: "restorable",
    });
  });

  it("whose backup_label disagrees with the manifest is quarantined naming the field", async () => {
    // Prepare: the manifest says START WAL LOCATION 0/2000028, the label file in the snapshot 0/2000030.
    const s = await buildSnapshot(PG, pgEntries(label("0/2000030")), { postgres: { label: label() } });
    const failedBefore = stack.workflowStats["snapshot-ingest"].failed;
    // Act
    await uploadChunks(PG, s.fresh);
    await putManifest(PG, s.snapshotId, s.bytes);
    // Assess
    expect(stack.workflowStats["snapshot-ingest"].failed).toBe(failedBefore + 1);
    expect(await clients.catalog.getSnapshot(PG, s.snapshotId)).toBeUndefined();
    const q = await quarantineOf(PG, s.snapshotId);
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toMatch(/postgres\.startLsn.*backup_label/);
  });

  /** A format-2 push (core/manifest-pages.ts): new chunks, the pages (3 chunk references each), then the header. */
  async function pushPaged(s: BuiltSnapshot): Promise<{ pages: number; header: Buffer }> {
    const { header, pages } = pageManifest(s.manifest, { chunks: 3, bytes: 64 * 1024 });
    await uploadChunks(s.databaseId, s.fresh);
    const key = incomingSnapshotKey(s.databaseId, s.snapshotId);
    for (const p of pages) {
      const body = Buffer.from(p.text, "utf8");
      await clients.store.put(stack.config.incomingBucket, snapshotPageKey(key, p.index), body, manifestMeta(s.databaseId, body));
    }
    const body = Buffer.from(serializePagedHeader(header), "utf8");
    await putManifest(s.databaseId, s.snapshotId, body);
    return { pages: pages.length, header: body };
  }

  it("in format 2 (paged) is recorded the same, backup_label checked from the page that holds it, every page promoted", async () => {
    // Prepare
    const s = await buildSnapshot(PG, pgEntries(label()), { postgres: { label: label() } });
    // Act
    const { pages, header } = await pushPaged(s);
    // Assess
    const rec = await clients.catalog.getSnapshot(PG, s.snapshotId);
    expect(rec).toMatchObject({ kind: "postgres", startLsn: "0/2000028", stopLsn: "0/2000100", status: "restorable", manifestSha256: sha256Hex(header) });
    expect(pages).toBeGreaterThan(3);
    const vaultKey = vaultSnapshotManifestKey(PG, s.snapshotId);
    expect(await listKeys(clients.store, stack.config.vaultBucket, vaultKey.replace(/manifest\.json$/, "pages/"))).toHaveLength(pages);
    expect(sha256Hex((await clients.store.get(stack.config.vaultBucket, vaultKey))!.body)).toBe(sha256Hex(header));
  });

  it("in format 2 whose backup_label disagrees with the header is quarantined naming the field, nothing recorded", async () => {
    // Prepare
    const s = await buildSnapshot(PG, pgEntries(label("0/2000030")), { postgres: { label: label() } });
    // Act
    await pushPaged(s);
    // Assess
    expect(await clients.catalog.getSnapshot(PG, s.snapshotId)).toBeUndefined();
    const q = await quarantineOf(PG, s.snapshotId);
    expect(q).toHaveLength(1);
    expect(q[0]!.reason).toMatch(/postgres\.startLsn.*backup_label/);
    expect(await clients.store.head(stack.config.vaultBucket, vaultSnapshotManifestKey(PG, s.snapshotId))).toBeUndefined();
  });
});

describe("execution statistics", () => {
  it("log each failed snapshot run under its workflow's name", async () => {
    // Prepare
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    // Act
    const log = readFileSync(join(stack.stateDir, "executions.log"), "utf8");
    // Assess
    expect(log).toMatch(new RegExp(`snapshot-ingest incoming/db/${GEN}/snapshots/\\S+/manifest\\.json: `));
  });
});
