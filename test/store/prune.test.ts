/**
 * store/prune.ts against an in-memory versioned vault with Object Lock (S3's
 * rules: a versioned delete of a locked version is refused; a delete without
 * a version adds a delete marker, whatever the lock) and an in-memory
 * catalog: a locked WAL version is left intact, its key gets a delete marker
 * so the noncurrent lifecycle can remove it after its retention, and it is
 * reported and audited; a journaled run that was interrupted is finished by
 * the next one, without touching what was recorded again since.
 */
import { describe, expect, it } from "vitest";
import { ObjectLockedError } from "../../core/errors.js";
import type { RetentionPlan } from "../../core/retention.js";
import type { AuditRecord, DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectInfo, ObjectStore } from "../../store/object-store.js";
import { executePrune, executePruneJournaled, type PruneJournal, type RegionVault } from "../../store/prune.js";

const DB = "pg-unit";
const database: DatabaseRecord = { databaseId: DB, kind: "postgres", walSegmentSize: 16 * 1024 * 1024, createdAt: "2026-01-01T00:00:00.000Z" };
const NOW = new Date("2026-06-01T00:00:00.000Z");

interface Version {
  id: string;
  marker: boolean;
  locked: boolean;
}

/** A versioned bucket under Object Lock: `lock(key)` locks the key's current version. */
function versionedVault(name: string): ObjectStore & { versions: Map<string, Version[]>; lock(key: string): void; add(key: string): string } {
  const versions = new Map<string, Version[]>();
  let n = 0;
  const current = (key: string): Version | undefined => versions.get(key)?.at(-1);
  const info = (key: string, v: Version): ObjectInfo => ({ key, size: 1, metadata: {}, versionId: v.id });
  const store: ObjectStore & { versions: Map<string, Version[]>; lock(key: string): void; add(key: string): string } = {
    name,
    versions,
    lock: (key) => void (current(key)!.locked = true),
    add: (key) => {
      const v = { id: `v${++n}`, marker: false, locked: false };
      versions.set(key, [...(versions.get(key) ?? []), v]);
      return v.id;
    },
    async put(_b, key) {
      return { versionId: store.add(key) };
    },
    async get(_b, key, versionId) {
      const v = versionId === undefined ? current(key) : versions.get(key)?.find((x) => x.id === versionId);
      return v && !v.marker ? { ...info(key, v), body: Buffer.from("x") } : undefined;
    },
    async head(_b, key, versionId) {
      const v = versionId === undefined ? current(key) : versions.get(key)?.find((x) => x.id === versionId);
      return v && !v.marker ? info(key, v) : undefined;
    },
    async getRange() {
      throw new Error("not used");
    },
    async copy() {
      throw new Error("not used");
    },
    async requestRestore() {
      throw new Error("not used");
    },
    async delete(bucket, key, versionId) {
      const list = versions.get(key) ?? [];
      if (versionId === undefined) {
        versions.set(key, [...list, { id: `m${++n}`, marker: true, locked: false }]);
        return;
      }
      const v = list.find((x) => x.id === versionId);
      if (!v) return;
      if (v.locked) throw new ObjectLockedError(`S3 refused to delete s3://${bucket}/${key} version ${versionId} (Object Lock retention)`);
      versions.set(key, list.filter((x) => x !== v));
    },
    async *list() {
      // not used
    },
  };
  return store;
}

function wal(name: string, versionId: string): WalRecord {
  return {
    databaseId: DB,
    name,
    kind: "segment",
    timeline: 1,
    size: 1,
    storedSize: 1,
    sha256: "a".repeat(64),
    codec: "zstd",
    status: "stored",
    vaultKey: `db/${DB}/wal/00000001/${name}`,
    vaultVersionId: versionId,
    archivedAt: "2026-05-01T00:00:00.000Z",
    replicas: {},
  };
}

/** The catalog calls prune makes, in memory. */
function memoryCatalog(walRecords: WalRecord[], snapshots: SnapshotRecord[] = []): Catalog & { wal: Map<string, WalRecord>; audit: AuditRecord[] } {
  const walMap = new Map(walRecords.map((w) => [w.name, w]));
  const snaps = new Map(snapshots.map((s) => [s.snapshotId, s]));
  const audit: AuditRecord[] = [];
  const partial = {
    wal: walMap,
    audit,
    listWal: async () => [...walMap.values()],
    listSnapshots: async () => [...snaps.values()],
    listChunks: async () => [],
    deleteChunks: async () => undefined,
    deleteWal: async (_db: string, names: readonly string[]) => void names.forEach((n) => walMap.delete(n)),
    deleteSnapshot: async (_db: string, id: string) => void snaps.delete(id),
    recordAudit: async (records: readonly AuditRecord[]) => void audit.push(...records),
  };
  return partial as unknown as Catalog & { wal: Map<string, WalRecord>; audit: AuditRecord[] };
}

const planFor = (names: string[]): RetentionPlan => ({
  keep: [],
  deleteSnapshots: [],
  deleteWal: names.map((name, i) => ({ timeline: 1, segno: BigInt(i + 1), name, archivedAt: new Date("2026-05-01T00:00:00.000Z") })),
  keepWal: 0,
});

const opts = { runId: "run-1", now: NOW, graceMs: 3_600_000, by: "test" };

describe("executePrune and Object Lock", () => {
  it("leaves a locked version intact, hides it behind a delete marker, reports and audits it; deletes the unlocked one", async () => {
    // Prepare
    const vault = versionedVault("primary");
    const names = ["000000010000000000000001", "000000010000000000000002"];
    const records = names.map((n) => wal(n, vault.add(`db/${DB}/wal/00000001/${n}`)));
    vault.lock(records[0]!.vaultKey);
    const catalog = memoryCatalog(records);
    const regions: RegionVault[] = [{ region: "r1", store: vault, bucket: "vault", primary: true }];
    // Act
    const summary = await executePrune(database, planFor(names), { snapshots: [], wal: records }, catalog, regions, opts);
    // Assess
    expect(summary.deletedWal).toBe(2);
    expect(catalog.wal.size).toBe(0);
    expect(summary.locked).toEqual([{ region: "r1", key: records[0]!.vaultKey, error: expect.stringMatching(/Object Lock.*delete marker/) as string }]);
    // The locked version is still there, readable by its id; the key's current version is a delete marker.
    expect(await vault.head("vault", records[0]!.vaultKey, records[0]!.vaultVersionId)).toBeDefined();
    expect(await vault.head("vault", records[0]!.vaultKey)).toBeUndefined();
    expect(vault.versions.get(records[1]!.vaultKey)).toEqual([]);
    const audited = catalog.audit.map((a) => JSON.stringify([a.action, a.subject, a.regions])).sort();
    expect(audited).toEqual(
      [
        ["locked", records[0]!.vaultKey, ["r1"]],
        ["delete-wal", names[0], []],
        ["delete-wal", names[1], ["r1"]],
      ]
        .map((x) => JSON.stringify(x))
        .sort(),
    );
  });
});

describe("executePruneJournaled", () => {
  it("finishes the vault deletions of an interrupted run whose records are gone, and leaves what was recorded again", async () => {
    // Prepare: an earlier attempt journaled three WAL files, deleted their records and died before their objects.
    const vault = versionedVault("primary");
    const names = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"];
    const records = names.map((n) => wal(n, vault.add(`db/${DB}/wal/00000001/${n}`)));
    // The third was archived again since (its record is back, with a new version).
    const again = wal(names[2]!, vault.add(records[2]!.vaultKey));
    const catalog = memoryCatalog([again]);
    let stored: { snapshots: SnapshotRecord[]; wal: WalRecord[] } | undefined = { snapshots: [], wal: records };
    const writes: string[][] = [];
    const journal: PruneJournal = {
      read: async () => stored,
      write: async (entries) => {
        writes.push(entries.wal.map((w) => w.name));
        stored = entries;
      },
      clear: async () => void (stored = undefined),
    };
    const regions: RegionVault[] = [{ region: "r1", store: vault, bucket: "vault", primary: true }];
    // Act: this round plans nothing new.
    const summary = await executePruneJournaled(database, planFor([]), { snapshots: [], wal: [] }, catalog, regions, opts, journal);
    // Assess: the two unfinished ones are deleted and audited; the re-archived one is untouched; the journal is cleared.
    expect(writes).toEqual([[names[0], names[1]]]);
    expect(summary.deletedWal).toBe(2);
    expect(vault.versions.get(records[0]!.vaultKey)).toEqual([]);
    expect(vault.versions.get(records[1]!.vaultKey)).toEqual([]);
    expect(await vault.head("vault", again.vaultKey, again.vaultVersionId)).toBeDefined();
    expect(await vault.head("vault", again.vaultKey, records[2]!.vaultVersionId)).toBeDefined();
    expect(catalog.wal.has(names[2]!)).toBe(true);
    expect(catalog.audit.filter((a) => a.action === "delete-wal").map((a) => a.subject).sort()).toEqual([names[0], names[1]]);
    expect(stored).toBeUndefined();
  });
});
