/**
 * Test support for retention suites on the local stack: a generic database's
 * history built straight into the vault and the catalog (snapshots by
 * uploadSnapshotDir, WAL by archiveGenericSegment), spread over a month by
 * the times given (no waiting), chunks recorded long ago, and orphan chunks
 * (referenced by no snapshot) recorded at a chosen time.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { getCodec } from "../../core/codec.js";
import type { AgentConfig } from "../../core/config.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey } from "../../core/keys.js";
import type { WalRecord } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import { segmentName } from "../../core/wal.js";
import { databasePk } from "../../store/catalog-layout.js";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { archiveGenericSegment, SMALL_CHUNKER, uploadSnapshotDir, type VaultClients } from "./snapshots.js";

export const DAY = 86_400_000;
const HOUR = 3_600_000;

/** Seeded pseudo-random bytes (incompressible enough to make distinct chunks). */
export function seededBytes(seed: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

export interface GenericHistory {
  /** Snapshot ids, oldest first (snapshot i finished ages[i] days before `now`). */
  snapshots: string[];
  /** WAL records, in position order: 3 segments before each snapshot (positions 3i+1..3i+3, the snapshot includes them), 2 after the last. */
  wal: WalRecord[];
}

/**
 * A generic database's history: snapshot i (a directory with a file shared by
 * every snapshot and one of its own) finished `ages[i]` days before `now`,
 * three WAL segments before each, two after the last; then every chunk's
 * record is moved a month back (so only the grace period protects fresh ones).
 */
export async function buildGenericHistory(clients: VaultClients, cfg: AgentConfig, workDir: string, databaseId: string, now: number, ages: readonly number[]): Promise<GenericHistory> {
  const snapshots: string[] = [];
  const wal: WalRecord[] = [];
  const shared = seededBytes(7, 24 * 1024);
  const archive = async (n: number, at: number): Promise<void> => {
    wal.push(
      await archiveGenericSegment(clients, cfg, { databaseId, stream: "wal", name: segmentName(1, BigInt(n)), segno: BigInt(n), bytes: seededBytes(1000 + n, 4096), archivedAt: new Date(at) }),
    );
  };
  for (const [i, age] of ages.entries()) {
    const finished = now - age * DAY;
    for (let k = 1; k <= 3; k++) await archive(3 * i + k, finished - (4 - k) * HOUR);
    const dir = join(workDir, `${databaseId}-s${i}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "shared.db"), shared);
    writeFileSync(join(dir, "own.db"), seededBytes(100 + i, 16 * 1024));
    const last = 3 * i + 3;
    const up = await uploadSnapshotDir(clients, cfg, {
      databaseId,
      dir,
      kind: "generic",
      generic: { streams: [{ id: "wal", lastSegment: `wal/${segmentName(1, BigInt(last))}`, lastSegno: last }] },
      startedAt: new Date(finished - 60_000),
      finishedAt: new Date(finished),
      idSuffix: (0xa00000 + i).toString(16),
      chunker: SMALL_CHUNKER,
    });
    snapshots.push(up.record.snapshotId);
  }
  for (let k = 1; k <= 2; k++) await archive(3 * ages.length + k, now - (3 - k) * HOUR);
  await backdateChunks(clients, cfg, databaseId, new Date(now - 30 * DAY));
  return { snapshots, wal };
}

/** Moves every chunk record of the database to `at` (as if uploaded then). */
export async function backdateChunks(clients: VaultClients, cfg: AgentConfig, databaseId: string, at: Date): Promise<void> {
  const doc = (clients.catalog as DynamoCatalog).doc;
  for (const c of await clients.catalog.listChunks(databaseId)) {
    await doc.send(new PutCommand({ TableName: cfg.table, Item: { ...c, recordedAt: at.toISOString(), pk: databasePk(databaseId), sk: `chunk#${c.sha256}` } }));
  }
}

/** A chunk in the vault and the catalog that no snapshot references, recorded at `recordedAt`. */
export async function orphanChunk(clients: VaultClients, cfg: AgentConfig, databaseId: string, text: string, recordedAt: Date): Promise<string> {
  const raw = Buffer.from(text.repeat(100));
  const sha = sha256Hex(raw);
  const body = await getCodec("zstd").encode(raw);
  await clients.store.put(cfg.vaultBucket, vaultChunkKey(databaseId, sha), body, objectMeta({ sha256: sha, codec: "zstd", size: raw.length }));
  await clients.catalog.recordChunks([{ databaseId, sha256: sha, size: raw.length, storedSize: body.length, codec: "zstd", vaultKey: vaultChunkKey(databaseId, sha), recordedAt: recordedAt.toISOString() }]);
  return sha;
}
