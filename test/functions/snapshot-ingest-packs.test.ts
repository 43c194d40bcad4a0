/**
 * Snapshot ingest of a packed push (manifest `packs`; functions/snapshot/
 * promote-packs.ts and the PromotePacks Map of statemachines/snapshot-ingest.asl.json)
 * on the real local stack: packs are built with core/pack.ts's PackBuilder
 * and uploaded to incoming/db/<id>/packs/<name> the way the agent does, then
 * the manifest, whose object-created event starts an execution.
 * Needs `npm run build` first (s3rver runs from dist/local/s3rver-child.js).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec, type CodecName } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingPackKey, incomingSnapshotKey, snapshotPageKey, vaultPackKey, vaultSnapshotManifestKey } from "../../core/keys.js";
import { pageManifest, serializePagedHeader } from "../../core/manifest-pages.js";
import { MIN_PACK_TARGET_SIZE, PackBuilder, parsePackFooter, type BuiltPack } from "../../core/pack.js";
import { META_DATABASE, type SnapshotRecord } from "../../core/schemas.js";
import {
  SnapshotBuilder,
  packObjectMeta,
  parseBackupLabel,
  postgresFieldsFromBackupLabel,
  serializeManifest,
  snapshotIdFor,
  type SnapshotManifest,
} from "../../core/snapshot.js";
import { objectMeta } from "../../core/verify.js";
import { BATCH_PACKS, INLINE_BATCHES_MAX_BYTES, snapshotQuarantineName } from "../../functions/snapshot/common.js";
import { listKeys, poll, stackClients, type StackClients } from "../support/harness.js";
import { seededBytes } from "../support/retention.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-packs";
const PG = "pg-packs";
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

interface Chunk {
  sha256: string;
  raw: Buffer;
  body: Buffer;
  codec: CodecName;
}

interface Built {
  databaseId: string;
  snapshotId: string;
  manifest: SnapshotManifest;
  bytes: Buffer;
  /** The packs, as the agent would upload them. */
  packs: BuiltPack[];
  /** Chunks flagged new (all in `packs`). */
  fresh: Chunk[];
  /** Format 2: `bytes` is the header, these its pages (put before it). */
  pages?: Buffer[];
}

type Entry = { path: string; content: Buffer; chunkSize?: number } | { path: string; dir: true };

const bytes = seededBytes;

let clock = 0;
function nextStart(): Date {
  clock += 1;
  return new Date(Date.UTC(2026, 10, 22, 9, 0, clock, 250));
}

/**
 * A snapshot whose new chunks (zstd, 4 KiB pieces unless said otherwise) go into packs of
 * MIN_PACK_TARGET_SIZE (64 KiB), as the agent fills them; `stored` chunks are reused, not packed.
 */
async function buildPacked(
  databaseId: string,
  entries: Entry[],
  options: { stored?: ReadonlySet<string>; postgres?: { label: string }; codec?: CodecName; chunksPerPack?: number; paged?: boolean; unnamed?: boolean } = {},
): Promise<Built> {
  const startedAt = nextStart();
  const snapshotId = snapshotIdFor(startedAt, "0b0c0d");
  const b = new SnapshotBuilder();
  const pb = new PackBuilder({ targetSize: MIN_PACK_TARGET_SIZE });
  const packs: BuiltPack[] = [];
  const fresh = new Map<string, Chunk>();
  const codec = options.codec ?? "zstd";
  for (const e of entries) {
    if ("dir" in e) {
      b.addDirectory(e.path, 0o755, MTIME);
      continue;
    }
    const f = b.startFile(e.path, 0o644, MTIME);
    const size = e.chunkSize ?? 4096;
    for (let off = 0; off < e.content.length; off += size) {
      const raw = Buffer.from(e.content.subarray(off, off + size));
      const sha = sha256Hex(raw);
      const stored = options.stored?.has(sha) ?? false;
      let c = fresh.get(sha);
      if (!c) {
        c = { sha256: sha, raw, body: await getCodec(codec).encode(raw), codec };
        if (!stored) {
          fresh.set(sha, c);
          if (!pb.fits(c.body.length) || pb.count === options.chunksPerPack) packs.push(pb.finish());
          pb.add({ sha256: sha, rawSize: raw.length, codec, stored: c.body });
        }
      }
      f.addChunk({ sha256: sha, size: raw.length, storedSize: c.body.length, codec, isNew: !stored && fresh.get(sha) === c });
    }
    f.finish(sha256Hex(e.content), e.content.length);
  }
  if (pb.count > 0) packs.push(pb.finish());
  const finishedAt = new Date(startedAt.getTime() + 1500);
  const common = { databaseId, snapshotId, startedAt, finishedAt, packs: packs.map((p) => p.name) };
  const manifest = options.postgres
    ? b.build({
        ...common,
        kind: "postgres",
        postgres: postgresFieldsFromBackupLabel(parseBackupLabel(options.postgres.label), {
          stopLsn: 0x2000100n,
          walSegmentSize: 16 * MiB,
          version: 150018,
          stopWalFile: "000000010000000000000002",
        }),
      })
    : b.build({ ...common, kind: "generic", generic: { streams: [{ id: "wal", lastSegment: "wal/000042.wal", lastSegno: 42 }] } });
  // As the agent writes it: each new chunk names its pack (an index in the manifest's list), unless told to leave them unnamed (an older agent).
  if (!options.unnamed) {
    const packOf = new Map(packs.flatMap((p) => p.entries.map((e) => [e.sha256, manifest.packs!.indexOf(p.name)] as const)));
    for (const f of manifest.files) if (f.type === "file") for (const c of f.chunks) if (c.new === true) c.pack = packOf.get(c.sha256)!;
  }
  if (options.paged) {
    const paged = pageManifest(manifest);
    const pages = paged.pages.map((p) => Buffer.from(p.text, "utf8"));
    return { databaseId, snapshotId, manifest, bytes: Buffer.from(serializePagedHeader(paged.header)), pages, packs, fresh: [...fresh.values()] };
  }
  return { databaseId, snapshotId, manifest, bytes: Buffer.from(serializeManifest(manifest)), packs, fresh: [...fresh.values()] };
}

async function uploadPack(databaseId: string, p: BuiltPack, body: Buffer = Buffer.from(p.bytes)): Promise<void> {
  const meta = packObjectMeta(databaseId, { name: p.name, size: p.bytes.length, entries: p.entries.length, dataLength: p.dataLength });
  await clients.store.put(stack.config.incomingBucket, incomingPackKey(databaseId, p.name), body, meta);
}

/**
 * Uploads packs and waits for their pack-ingest executions to end: each
 * upload's object-created event reaches the stack a moment after the PUT
 * returns, so `idle()` alone can return before the last one has started.
 */
async function uploadPacksLanded(databaseId: string, packs: readonly BuiltPack[]): Promise<void> {
  const before = stack.workflowStats["pack-ingest"].started;
  for (const p of packs) await uploadPack(databaseId, p);
  await poll(() => stack.workflowStats["pack-ingest"].started >= before + packs.length, 15_000, "pack ingest to start for every upload");
  await stack.idle();
}

async function putManifest(s: Built): Promise<void> {
  await stack.idle();
  const before = stack.workflowStats["snapshot-ingest"].started;
  const metaOf = (body: Buffer): Record<string, string> => ({ ...objectMeta({ sha256: sha256Hex(body), codec: "none", size: body.length }), [META_DATABASE]: s.databaseId });
  const key = incomingSnapshotKey(s.databaseId, s.snapshotId);
  for (const [i, page] of (s.pages ?? []).entries()) await clients.store.put(stack.config.incomingBucket, snapshotPageKey(key, i), page, metaOf(page));
  await clients.store.put(stack.config.incomingBucket, key, s.bytes, metaOf(s.bytes));
  await poll(() => stack.workflowStats["snapshot-ingest"].started >= before + 1, 15_000, "snapshot ingest to start");
  await stack.idle();
}

async function putManifestAndWait(s: Built): Promise<SnapshotRecord> {
  await putManifest(s);
  return poll(() => clients.catalog.getSnapshot(s.databaseId, s.snapshotId), 10_000, `snapshot ${s.snapshotId} to be recorded`);
}

async function push(s: Built): Promise<SnapshotRecord> {
  const queue = [...s.packs];
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let p = queue.shift(); p; p = queue.shift()) await uploadPack(s.databaseId, p);
  }));
  return putManifestAndWait(s);
}

/** Pushes with `upload` doing the pack uploads; asserts the run was quarantined and nothing recorded; returns the reason. */
async function rejected(s: Built, upload: () => Promise<void>): Promise<string> {
  const failedBefore = stack.workflowStats["snapshot-ingest"].failed;
  await upload();
  await putManifest(s);
  expect(stack.workflowStats["snapshot-ingest"].failed).toBe(failedBefore + 1);
  expect(await clients.catalog.getSnapshot(s.databaseId, s.snapshotId)).toBeUndefined();
  expect(await clients.store.head(stack.config.vaultBucket, vaultSnapshotManifestKey(s.databaseId, s.snapshotId))).toBeUndefined();
  const q = await clients.catalog.listQuarantine(s.databaseId, snapshotQuarantineName(s.snapshotId));
  expect(q).toHaveLength(1);
  return q[0]!.reason;
}

function genericEntries(seed: number): Entry[] {
  return [
    { path: "sst", dir: true },
    { path: "sst/000001.sst", content: bytes(seed, 150 * 1024) },
    { path: "sst/000002.sst", content: bytes(seed + 1, 70 * 1024 + 123) },
    // Many small files: they share packs.
    ...Array.from({ length: 40 }, (_, i) => ({ path: `small-${String(i).padStart(2, "0")}`, content: bytes(seed + 100 + i, 200 + i) })),
  ];
}

// --- the tests ----------------------------------------------------------------

describe("snapshot ingest of a packed push", () => {
  let s: Built;
  let record: SnapshotRecord;

  beforeAll(async () => {
    s = await buildPacked(GEN, genericEntries(1));
    record = await push(s);
  }, 60_000);

  it("records the snapshot, restorable, with the manifest's totals", () => {
    // Assess
    expect(s.packs.length).toBeGreaterThanOrEqual(3);
    expect(record).toMatchObject({ snapshotId: s.snapshotId, status: "restorable", totals: { newChunks: s.fresh.length } });
    expect(stack.workflowStats["snapshot-ingest"].failed).toBe(0);
  });

  it("promotes each pack as one object under db/<id>/packs/<name>, byte for byte, and no chunk object", async () => {
    // Act
    const packKeys = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/packs/`);
    const chunkKeys = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/chunks/`);
    // Assess
    expect(packKeys.sort()).toEqual(s.packs.map((p) => vaultPackKey(GEN, p.name)).sort());
    expect(chunkKeys).toEqual([]);
    for (const p of s.packs) {
      const obj = await clients.store.get(stack.config.vaultBucket, vaultPackKey(GEN, p.name));
      expect(sha256Hex(obj!.body)).toBe(p.name);
      expect(obj!.metadata).toMatchObject({ "walvault-pack-entries": String(p.entries.length), "walvault-pack-data-length": String(p.dataLength) });
    }
  });

  it("records each pack (its record and pack log entry) and no chunk: the pack's index locates every chunk, a ranged read there decoding to it", async () => {
    // Act
    const records = await clients.catalog.getChunks(GEN, s.fresh.map((c) => c.sha256));
    const packs = await clients.catalog.getPacks(GEN, s.packs.map((p) => p.name));
    const logged = await clients.catalog.listPacksRecordedSince(GEN, record.startedAt);
    // Assess
    expect(records).toEqual([]);
    expect(packs.map((p) => p.name).sort()).toEqual(s.packs.map((p) => p.name).sort());
    expect(new Set(logged.packs.map((p) => p.name))).toEqual(new Set(s.packs.map((p) => p.name)));
    for (const p of s.packs) {
      for (const e of p.entries) {
        const stored = await clients.store.getRange(stack.config.vaultBucket, vaultPackKey(GEN, p.name), e.offset, e.offset + e.storedLength - 1);
        const raw = await getCodec(e.codec).decode(stored!, e.rawSize);
        expect(sha256Hex(raw)).toBe(e.sha256);
      }
    }
    expect(s.packs.flatMap((p) => p.entries.map((e) => e.sha256)).sort()).toEqual(s.fresh.map((c) => c.sha256).sort());
  });

  it("promotes each pack as its upload lands, before any manifest: pack record and object, no chunk record (pack ingest)", async () => {
    // Prepare
    const landing = await buildPacked(GEN, [{ path: "early.dat", content: bytes(77, 30 * 1024) }]);
    const before = { ...stack.workflowStats["pack-ingest"] };
    // Act: the packs only, no manifest.
    await uploadPacksLanded(GEN, landing.packs);
    // Assess
    expect(stack.workflowStats["pack-ingest"]).toMatchObject({ started: before.started + landing.packs.length, succeeded: before.succeeded + landing.packs.length, failed: before.failed });
    const recorded = await clients.catalog.getPacks(GEN, landing.packs.map((p) => p.name));
    expect(recorded.map((r) => r.name).sort()).toEqual(landing.packs.map((p) => p.name).sort());
    for (const p of landing.packs) expect((await clients.store.head(stack.config.vaultBucket, vaultPackKey(GEN, p.name)))?.size).toBe(p.bytes.length);
    expect(await clients.catalog.getChunks(GEN, landing.fresh.map((c) => c.sha256))).toEqual([]);
    expect(await clients.catalog.getSnapshot(GEN, landing.snapshotId)).toBeUndefined();
  });

  it("records a snapshot whose packs were promoted as they landed, without promoting them again", async () => {
    // Prepare: packs promoted as they land.
    const landing = await buildPacked(GEN, [{ path: "early-2.dat", content: bytes(78, 30 * 1024) }]);
    await uploadPacksLanded(GEN, landing.packs);
    const recorded = await clients.catalog.getPacks(GEN, landing.packs.map((p) => p.name));
    stack.resetStepUsage();
    // Act
    const rec = await putManifestAndWait(landing);
    // Assess: recorded without a PromotePacks invocation (no Map item), the pack records as the first promotion wrote them.
    expect(rec).toMatchObject({ status: "restorable", totals: { newChunks: landing.fresh.length } });
    expect(stack.stepUsage.get("PromotePacksFunctionArn")?.invocations ?? 0).toBe(0);
    expect(stack.stepUsage.get("CheckReferencedFunctionArn")?.invocations).toBe(1);
    expect(recorded).toHaveLength(landing.packs.length);
    expect(await clients.catalog.getPacks(GEN, landing.packs.map((p) => p.name))).toEqual(recorded);
  });

  it("promotes no pack of an unregistered database as it lands", async () => {
    // Prepare
    const stray = await buildPacked("not-registered", [{ path: "x", content: bytes(79, 6 * 1024) }]);
    const before = { ...stack.workflowStats["pack-ingest"] };
    // Act
    await uploadPacksLanded("not-registered", [stray.packs[0]!]);
    // Assess: the execution ends without failing (NotPromoted) and writes nothing.
    expect(stack.workflowStats["pack-ingest"]).toMatchObject({ succeeded: before.succeeded + 1, failed: before.failed });
    expect(await clients.store.head(stack.config.vaultBucket, vaultPackKey("not-registered", stray.packs[0]!.name))).toBeUndefined();
    expect(await clients.catalog.getPacks("not-registered", [stray.packs[0]!.name])).toEqual([]);
  });

  it("promotes nothing twice: an incremental packed push reusing stored chunks writes only its own packs", async () => {
    // Prepare
    const entries = genericEntries(1).map((e) => ("content" in e && e.path === "sst/000002.sst" ? { ...e, content: Buffer.concat([e.content, bytes(99, 5000)]) } : e));
    const stored = new Set(s.fresh.map((c) => c.sha256));
    // A format-1 manifest names no reused chunk's pack: these are found by the records a vault from before step 3 has.
    await clients.catalog.recordChunks(
      s.packs.flatMap((p) =>
        p.entries.map((e) => ({ databaseId: GEN, sha256: e.sha256, size: e.rawSize, storedSize: e.storedLength, codec: e.codec, vaultKey: vaultPackKey(GEN, p.name), offset: e.offset, recordedAt: new Date().toISOString() })),
      ),
    );
    const second = await buildPacked(GEN, entries, { stored });
    const before = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/packs/`);
    // Act
    const rec = await push(second);
    // Assess
    expect(second.packs).toHaveLength(1);
    expect(rec.totals.newChunks).toBe(second.fresh.length);
    const packKeys = await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/packs/`);
    expect(packKeys.filter((k) => !before.includes(k))).toEqual([vaultPackKey(GEN, second.packs[0]!.name)]);
  });
});

describe("snapshot ingest of a packed push refuses and quarantines, recording nothing", () => {
  /** Nothing of the pushed packs reached the vault or the catalog. */
  async function nothingRecorded(s: Built): Promise<void> {
    expect(await clients.catalog.getPacks(s.databaseId, s.packs.map((p) => p.name))).toEqual([]);
    for (const p of s.packs) expect(await clients.store.head(stack.config.vaultBucket, vaultPackKey(s.databaseId, p.name))).toBeUndefined();
  }

  it("a pack with one flipped byte inside a chunk: ChecksumMismatchError naming the pack and the chunk", async () => {
    // Prepare: one pack, a byte in the middle of its second chunk flipped.
    const s = await buildPacked(GEN, [{ path: "data", content: bytes(501, 20 * 1024) }]);
    expect(s.packs).toHaveLength(1);
    const p = s.packs[0]!;
    const victim = p.entries[1]!;
    const body = Buffer.from(p.bytes);
    body[victim.offset + Math.floor(victim.storedLength / 2)]! ^= 0x40;
    const packIngest = { ...stack.workflowStats["pack-ingest"] };
    // Act
    const reason = await rejected(s, () => uploadPack(GEN, p, body));
    // Assess: refused as it landed without failing that execution (NotPromoted), then quarantined by the manifest's ingest.
    expect(stack.workflowStats["pack-ingest"]).toMatchObject({ succeeded: packIngest.succeeded + 1, failed: packIngest.failed });
    expect(reason).toContain(`pack ${p.name}`);
    expect(reason).toContain(`chunk ${victim.sha256}`);
    await nothingRecorded(s);
  });

  it("a pack with one flipped byte in its index: CorruptPackError naming the pack", async () => {
    // Prepare
    const s = await buildPacked(GEN, [{ path: "data", content: bytes(502, 20 * 1024) }]);
    const p = s.packs[0]!;
    const body = Buffer.from(p.bytes);
    const footer = parsePackFooter(body);
    body[footer.dataLength + 40]! ^= 0x01; // entry 0's stored length
    // Act
    const reason = await rejected(s, () => uploadPack(GEN, p, body));
    // Assess
    expect(reason).toContain(`pack ${p.name}`);
    expect(reason).toMatch(/index does not match the checksum/);
    await nothingRecorded(s);
  });

  it("a pack whose bytes are sound but not the ones its name says: CorruptPackError (name)", async () => {
    // Prepare: the bytes of another valid pack under this pack's name.
    const s = await buildPacked(GEN, [{ path: "data", content: bytes(503, 8 * 1024) }]);
    const other = await buildPacked(GEN, [{ path: "data", content: bytes(504, 8 * 1024) }]);
    // Act
    const reason = await rejected(s, () => uploadPack(GEN, s.packs[0]!, Buffer.from(other.packs[0]!.bytes)));
    // Assess
    expect(reason).toContain(`pack ${s.packs[0]!.name}`);
    expect(reason).toMatch(/not to its name/);
  });

  it("a pack the manifest lists but nobody uploaded: NotFoundError naming the pack", async () => {
    // Prepare
    const s = await buildPacked(GEN, [{ path: "data", content: bytes(505, 8 * 1024) }]);
    // Act
    const reason = await rejected(s, async () => undefined);
    // Assess
    expect(reason).toContain(`pack ${s.packs[0]!.name} is listed by the manifest`);
  });

  it("a manifest whose chunks the pack's index holds otherwise (codec): refused at CheckReferenced", async () => {
    // Prepare: the packs hold the chunks uncompressed (codec none), the manifest says zstd.
    const content = bytes(506, 8 * 1024);
    const truth = await buildPacked(GEN, [{ path: "data", content }], { codec: "none" });
    const s = await buildPacked(GEN, [{ path: "data", content }]);
    const lying: Built = { ...s, packs: truth.packs };
    const manifest = { ...s.manifest, packs: truth.packs.map((p) => p.name) };
    lying.bytes = Buffer.from(serializeManifest(manifest));
    // Act
    const reason = await rejected(lying, async () => {
      for (const p of truth.packs) await uploadPack(GEN, p);
    });
    // Assess
    expect(reason).toMatch(new RegExp(`chunk ${s.fresh[0]!.sha256} used by file "data" is held by pack [0-9a-f]{64} as .* codec none, but the manifest records .* codec zstd`));
  });

  it("a packed manifest of an older agent, whose new chunks name no pack: refused, saying to upgrade the agent", async () => {
    // Prepare
    const s = await buildPacked(GEN, [{ path: "old-agent", content: bytes(507, 8 * 1024) }], { unnamed: true });
    // Act
    const reason = await rejected(s, async () => {
      for (const p of s.packs) await uploadPack(GEN, p);
    });
    // Assess
    expect(reason).toMatch(new RegExp(`chunk ${s.fresh[0]!.sha256} used by file "old-agent" is flagged new but names no pack: .*upgrade walvault on the database host and push again`));
  });
});

describe("a packed push with too many packs to carry their batches in the workflow state", () => {
  it("goes through work/ batch objects of packs and is recorded with every pack promoted (again, once retention had marked them)", async () => {
    // Prepare: 920 packs of one 256-byte chunk each: 230 batches of 4, ~67 KiB of names.
    const s = await buildPacked(GEN, [{ path: "many.dat", content: bytes(2000, 920 * 256), chunkSize: 256 }], { chunksPerPack: 1 });
    expect(s.packs).toHaveLength(920);
    const names = s.packs.map((p) => p.name);
    const inline = Array.from({ length: Math.ceil(names.length / BATCH_PACKS) }, (_, index) => ({ index, packs: names.slice(index * BATCH_PACKS, (index + 1) * BATCH_PACKS) }));
    expect(JSON.stringify(inline).length).toBeGreaterThan(INLINE_BATCHES_MAX_BYTES);
    // The packs are promoted as they land; marked by retention before the manifest, every one needs promoting again.
    const queue = [...s.packs];
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) await uploadPack(GEN, p);
    }));
    await stack.idle();
    expect(await clients.catalog.markPacksOrphaned(GEN, names, new Date().toISOString())).toHaveLength(920);
    // Act
    const rec = await putManifestAndWait(s);
    // Assess
    expect(rec.totals.newChunks).toBe(920);
    expect((await clients.catalog.getPacks(GEN, names)).filter((p) => p.orphanedAt !== undefined)).toEqual([]);
    const work = await listKeys(clients.store, stack.config.incomingBucket, `work/db/${GEN}/snapshots/${s.snapshotId}/`);
    expect(work).toHaveLength(Math.ceil(920 / BATCH_PACKS));
    const inVault = new Set(await listKeys(clients.store, stack.config.vaultBucket, `db/${GEN}/packs/`));
    for (const p of s.packs) expect(inVault.has(vaultPackKey(GEN, p.name))).toBe(true);
    expect(await clients.catalog.getPacks(GEN, names)).toHaveLength(920);
  }, 300_000);
});

const PG_LABEL = [
  "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)",
  "CHECKPOINT LOCATION: 0/2000060",
  "BACKUP METHOD: streamed",
  "BACKUP FROM: primary",
  "START TIME: 2026-11-22 09:00:00 UTC",
  "LABEL: walvault packs",
  "START TIMELINE: 1",
  "",
].join("\n");

describe("a packed PostgreSQL base backup", () => {
  it("format 2: CheckReferenced rebuilds backup_label from the pack its reference names (no chunk record is written)", async () => {
    // Prepare: the packs land and are promoted.
    const s = await buildPacked(
      PG,
      [
        { path: "backup_label", content: Buffer.from(PG_LABEL) },
        { path: "global", dir: true },
        { path: "global/pg_control", content: bytes(1201, 8192), chunkSize: 8192 },
      ],
      { postgres: { label: PG_LABEL }, paged: true },
    );
    await uploadPacksLanded(PG, s.packs);
    const labelSha = sha256Hex(Buffer.from(PG_LABEL));

    // Act
    const rec = await putManifestAndWait(s);

    // Assess
    expect(await clients.catalog.getChunks(PG, [labelSha])).toEqual([]);
    expect(rec).toMatchObject({ kind: "postgres", startLsn: "0/2000028", status: "restorable" });
  });

  it("format 1: is recorded, CheckReferenced reading backup_label's chunks from the pack each names, by range", async () => {
    // Prepare
    const label = PG_LABEL;
    const s = await buildPacked(
      PG,
      [
        { path: "backup_label", content: Buffer.from(label) },
        { path: "base", dir: true },
        { path: "base/1", dir: true },
        { path: "base/1/1259", content: bytes(1100, 64 * 1024), chunkSize: 8192 },
        { path: "global", dir: true },
        { path: "global/pg_control", content: bytes(1101, 8192), chunkSize: 8192 },
      ],
      { postgres: { label } },
    );
    // Act
    const rec = await push(s);
    // Assess
    expect(rec).toMatchObject({ kind: "postgres", startLsn: "0/2000028", status: "restorable" });
    expect(await clients.catalog.getChunks(PG, [sha256Hex(Buffer.from(label))])).toEqual([]);
  });
});
