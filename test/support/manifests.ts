/**
 * Snapshot manifest fixtures shared by the core suites (test/core/snapshot.test.ts,
 * test/core/manifest-pages.test.ts) and the manifest reader's contract.
 */
import { createHash } from "node:crypto";
import type { PageEntry } from "../../core/manifest-pages.js";
import {
  EMPTY_SHA256,
  SnapshotBuilder,
  parseBackupLabel,
  postgresFieldsFromBackupLabel,
  type ChunkInput,
  type FixedBlocksDescriptor,
  type FileEntry,
  type GenericSnapshotManifest,
  type PostgresSnapshotManifest,
} from "../../core/snapshot.js";

export const MiB = 1024 * 1024;
export const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

/**
 * backup_label exactly as PostgreSQL 15.18 wrote it (pg_backup_start('walvault
 * 20261121T073000Z-ab12cd', true) then pg_backup_stop(false) on a scratch
 * cluster; pg_backup_stop returned 0/2000100 and the tablespace_map line
 * "16385 /tmp/snapmodel-pg/ts1").
 */
export const REAL_LABEL = [
  "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)",
  "CHECKPOINT LOCATION: 0/2000060",
  "BACKUP METHOD: streamed",
  "BACKUP FROM: primary",
  "START TIME: 2026-11-21 07:40:25 UTC",
  "LABEL: walvault 20261121T073000Z-ab12cd",
  "START TIMELINE: 1",
  "",
].join("\n");

export const STARTED = new Date("2026-11-21T07:30:00.250Z");
export const FINISHED = new Date("2026-11-21T07:41:10.500Z");
export const MTIME = new Date("2026-11-20T12:00:00.000Z");
export const SNAP_ID = "20261121T073000Z-ab12cd";
export const DB = "orders";

export const chunk = (name: string, size: number, storedSize: number, isNew: boolean, codec: ChunkInput["codec"] = "zstd"): ChunkInput => ({
  sha256: sha(name),
  size,
  storedSize,
  codec,
  isNew,
});

/** The postgres section matching REAL_LABEL. */
export function pgFields(): PostgresSnapshotManifest["postgres"] {
  return postgresFieldsFromBackupLabel(parseBackupLabel(REAL_LABEL), {
    stopLsn: 0x2000100n,
    walSegmentSize: 16 * MiB,
    version: 150018,
    systemIdentifier: "7710526393709302379",
    stopWalFile: "000000010000000000000002",
    tablespaces: [{ oid: "16385", location: "/tmp/snapmodel-pg/ts1" }],
  });
}

/**
 * A small but realistic PostgreSQL base backup:
 *   base/1/1259 = chunks [a, b, a]   (a chunk repeated inside a file)
 *   base/1/1249 = chunks [b, c]      (b repeated across files)
 *   PG_VERSION, backup_label, global/pg_control = one chunk each, an empty
 *   postmaster.opts, a pg_wal symlink and an inline tablespace.
 * New (uploaded by this push): a, c, label, pg_control. Already in the vault: b, version.
 */
export function pgBuilder(): SnapshotBuilder {
  const b = new SnapshotBuilder();
  // Added out of order on purpose: the manifest comes out sorted.
  const rel = b.startFile("base/1/1259", 0o600, MTIME);
  b.addDirectory("base", 0o700, MTIME);
  b.addDirectory("base/1", 0o700, MTIME);
  rel.addChunk(chunk("a", 4 * MiB, 1 * MiB, true));
  rel.addChunk(chunk("b", 2 * MiB, 512 * 1024, false));
  rel.addChunk(chunk("a", 4 * MiB, 1 * MiB, true));
  rel.finish(sha("whole 1259"), 10 * MiB);
  const rel2 = b.startFile("base/1/1249", 0o600, MTIME);
  rel2.addChunk(chunk("b", 2 * MiB, 512 * 1024, false));
  rel2.addChunk(chunk("c", 1000, 900, true));
  rel2.finish(sha("whole 1249"));
  b.addDirectory("global", 0o700, MTIME);
  const control = b.startFile("global/pg_control", 0o600, MTIME);
  control.addChunk(chunk("pg_control", 8192, 300, true));
  control.finish(sha("pg_control"));
  const version = b.startFile("PG_VERSION", 0o600, MTIME);
  version.addChunk(chunk("15\n", 3, 3, false, "none"));
  version.finish(sha("15\n"));
  const label = b.startFile("backup_label", 0o600, MTIME);
  label.addChunk({ sha256: sha(REAL_LABEL), size: Buffer.byteLength(REAL_LABEL), storedSize: 220, codec: "zstd", isNew: true });
  label.finish(sha(REAL_LABEL));
  b.startFile("postmaster.opts", 0o600, MTIME).finish(EMPTY_SHA256, 0);
  b.addSymlink("pg_wal", "/var/lib/pgwal/orders", MTIME);
  b.addDirectory("pg_tblspc", 0o700, MTIME);
  b.addDirectory("pg_tblspc/16385", 0o700, MTIME);
  b.addDirectory("pg_tblspc/16385/PG_15_202209061", 0o700, MTIME);
  return b;
}

export function pgManifest(): PostgresSnapshotManifest {
  const m = pgBuilder().build({
    databaseId: DB,
    snapshotId: SNAP_ID,
    kind: "postgres",
    startedAt: STARTED,
    finishedAt: FINISHED,
    postgres: pgFields(),
  });
  if (m.kind !== "postgres") throw new Error("fixture is not a postgres manifest");
  return m;
}

export function genericManifest(streams = [{ id: "wal", lastSegment: "wal/000042.wal", lastSegno: 42 }]): GenericSnapshotManifest {
  const b = new SnapshotBuilder();
  b.addDirectory("sst", 0o755, MTIME);
  const f = b.startFile("sst/000001.sst", 0o644, MTIME);
  f.addChunk(chunk("sst-1", 3000, 1000, true, "gzip"));
  f.finish(sha("sst-1"));
  return buildGeneric(b, { streams });
}

/** A generic manifest (database "ledger", snapshot 20261121T080000Z-00ff00) of what `b` holds. */
export function buildGeneric(b: SnapshotBuilder, generic: GenericSnapshotManifest["generic"], blocks?: FixedBlocksDescriptor): GenericSnapshotManifest {
  const m = b.build({
    databaseId: "ledger",
    snapshotId: "20261121T080000Z-00ff00",
    kind: "generic",
    startedAt: new Date("2026-11-21T08:00:00.000Z"),
    finishedAt: new Date("2026-11-21T08:00:03.000Z"),
    ...(blocks === undefined ? {} : { blocks }),
    generic,
  });
  if (m.kind !== "generic") throw new Error("fixture is not a generic manifest");
  return m;
}

/** Format-2 page entries with the parts of split files joined back into whole entries. */
export function joinParts(entries: readonly PageEntry[]): FileEntry[] {
  const out: FileEntry[] = [];
  for (const e of entries) {
    if (e.type === "file" && e.part !== undefined) (out[out.length - 1] as Extract<FileEntry, { type: "file" }>).chunks.push(...e.chunks);
    else if (e.type === "file") {
      const { part: _p, ...rest } = e;
      out.push({ ...rest, chunks: [...e.chunks] });
    } else out.push(e);
  }
  return out;
}
