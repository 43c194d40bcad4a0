/**
 * Verification of one snapshot (issue #5), the same code for `walvault
 * verify` and the scheduled verification task (tasks/verify/main.ts).
 *
 * Levels, each including the ones below it; the run stops at the first
 * failing check and records which level failed and why:
 *   L1 catalog and manifest consistency: the manifest is in the vault with
 *      the catalog's SHA-256; every chunk it references and every WAL file in
 *      scope exists in the vault with its recorded stored size (HEAD only; a
 *      chunk in a pack: the pack exists, once per pack, and the chunk's range
 *      lies within it).
 *   L2 every checksum: every chunk read from where a restore reads it (the
 *      pack the manifest names for it when that pack is recorded and its
 *      index holds it, else where its catalog record says: coalesced ranged
 *      GETs of packs, or its own object; agent/chunk-reader.ts),
 *      decoded and hashed (its name is its SHA-256); every WAL file in scope
 *      likewise against the catalog. A corrupt chunk is named with a file that
 *      uses it and where it was read (pack and bytes, or object key).
 *   L3 structure: WAL continuity to the target (the restore plan: a gap is
 *      named by the segments around it); the files rebuilt into a scratch
 *      directory (every chunk's SHA-256 proven, and every whole file's the
 *      manifest records); PostgreSQL: pg_verifybackup.
 *   L4 restore and start: PostgreSQL recovers to the target and promotes,
 *      then pg_amcheck and the user's SQL checks; generic: the user's check
 *      command runs in the restored directory (exit 0 = pass).
 * "WAL in scope": the segments between the snapshot and the target
 * (PostgreSQL: from the snapshot's start segment through the first archived
 * after the target; generic: after each stream's last segment, closed by the
 * target) as the catalog records them — continuity itself is L3's question.
 *
 * The result is a verification record in the catalog (history) and the
 * snapshot's latest verification; the measured restore time and WAL replay
 * rate come with it.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { forEachLimit } from "../core/concurrency.js";
import { ChecksumMismatchError, CodecError, InvalidInputError, NotFoundError, UnknownSnapshotError, describeError, isWalvaultError, type WalvaultError } from "../core/errors.js";
import { isGenericWalName } from "../core/generic-wal.js";
import { genericSegno } from "../core/restore-input.js";
import type { RestoreTarget } from "../core/restore-plan.js";
import type { SnapshotRecord, VerificationCheck, VerificationRecord, WalRecord } from "../core/schemas.js";
import type { SnapshotHeader } from "../core/manifest-header.js";
import { formatTime, timeFromNs } from "../core/time.js";
import type { VerifyLevel } from "../core/verify-policy.js";
import { lsnToSegno, parseLsn, parseWalFileName } from "../core/wal.js";
import { ScratchPostgres } from "../agent/postgres.js";
import { fetchVerifiedWal } from "../store/catalog-state.js";
import type { OpenedManifest } from "../store/manifest-pages.js";
import { entryBatches, openVaultManifest, type BatchChunk } from "../store/manifest-read.js";
import { walRecordsFrom } from "../store/wal-from.js";
import { ChunkReads, decodeChunk, describeLocation, LOCATE_BATCH, locateChunks, type ChunkLocation, type WantedChunk } from "./chunk-reader.js";
import { PackIndexCache } from "../store/pack-index.js";
import { namedPackOf, namesPacks, type PackNames } from "../core/snapshot.js";
import type { AgentClients } from "./clients.js";
import { planFor, restore, type RestoreConfig } from "./restore.js";

/** User checks from configuration: SQL for PostgreSQL, a command for generic databases. */
export interface VerifyChecks {
  /** Each query must succeed; with `expect`, its output (psql -At) must equal it. */
  sql?: { name: string; query: string; database?: string; expect?: string }[];
  /** argv run in the restored directory (env WALVAULT_RESTORED_DIR); exit 0 = pass. */
  command?: string[];
}

export interface VerifyRequest {
  databaseId: string;
  snapshotId: string;
  level: VerifyLevel;
  /** Level 4 (and 3): the point-in-time target; absent: the snapshot itself. */
  targetTime?: Date;
  /** Nanoseconds past targetTime's millisecond (core/time.ts PreciseTime.subMsNanos), 0..999_999. */
  targetTimeSubMsNanos?: number;
  runId?: string;
  trigger?: VerificationRecord["trigger"];
  reason?: string;
  checks?: VerifyChecks;
  /** Where the restore of levels 3-4 goes (a fresh subdirectory; removed after). */
  workDir: string;
  log?: (line: string) => void;
  now?: () => Date;
}

const CONCURRENCY = 8;

/** A failed check: the level and a one-line reason. */
class CheckFailed extends Error {
  constructor(
    readonly level: VerifyLevel,
    message: string,
    readonly errorName?: string,
  ) {
    super(message);
  }
}

export function newRunId(at: Date): string {
  return `${at.toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${randomBytes(3).toString("hex")}`;
}

export async function verifySnapshot(clients: AgentClients, cfg: RestoreConfig, req: VerifyRequest): Promise<VerificationRecord> {
  const now = req.now ?? (() => new Date());
  const log = req.log ?? (() => {});
  const startedAt = now();
  const runId = req.runId ?? newRunId(startedAt);
  const checks: VerificationCheck[] = [];
  const measured: Partial<Pick<VerificationRecord, "restoreSeconds" | "recoverySeconds" | "walReplayedBytes" | "walReplayBytesPerSecond">> = {};
  let failure: CheckFailed | undefined;
  let error: unknown;
  const check = async (level: VerifyLevel, name: string, fn: () => Promise<string | undefined>): Promise<void> => {
    const t0 = performance.now();
    try {
      const detail = await fn();
      checks.push({ level, name, ok: true, ...(detail ? { detail } : {}), seconds: (performance.now() - t0) / 1000 });
      log(`L${level} ${name}: ok${detail ? ` (${detail})` : ""}`);
    } catch (e) {
      const f = e instanceof CheckFailed ? e : isWalvaultError(e) ? new CheckFailed(level, describeError(e), e.name) : undefined;
      if (!f) throw e;
      checks.push({ level, name, ok: false, detail: f.message, seconds: (performance.now() - t0) / 1000 });
      log(`L${level} ${name}: FAILED: ${f.message}`);
      throw f;
    }
  };

  const scratch = join(req.workDir, `verify-${runId}`);
  try {
    const snap = await clients.catalog.getSnapshot(req.databaseId, req.snapshotId);
    if (!snap) throw new UnknownSnapshotError(`snapshot ${req.snapshotId} of database ${req.databaseId} is not in the catalog`);
    const db = await clients.catalog.getDatabase(req.databaseId);
    if (!db) throw new NotFoundError(`database ${req.databaseId} is not registered`);
    let manifest: OpenedManifest | undefined;

    // ---- L1
    await check(1, "manifest", async () => {
      // Every page read and validated (store/manifest-read.ts), one at a time; the checks below read them again.
      const m = await openVaultManifest(clients.store, cfg.vaultBucket, snap, db);
      let entries = 0;
      for await (const e of m.entries()) if (e.type !== "file" || e.part === undefined) entries++;
      manifest = m;
      return `${entries} entries${m.format === 2 ? ` on ${m.pageCount} pages` : ""}`;
    });
    const chunks = manifest!;
    const scope = await walScope(clients, snap, manifest!.header, db.walSegmentSize, req.targetTime);
    await check(1, "objects present with their recorded sizes", async () => {
      // Each chunk where the catalog says it is: its own object (HEAD, its stored size), or a range inside a
      // pack (HEAD of the pack, once: the range must lie within it).
      const packSizes = new Map<string, Promise<number | undefined>>();
      let located = 0;
      for await (const window of locatedWindows(clients, cfg.vaultBucket, req.databaseId, chunks)) {
        located += window.length;
        await forEachLimit(window, CONCURRENCY, async ({ want, loc }) => {
          const what = `chunk ${want.sha256} of file ${want.file}`;
          if (loc.offset === undefined) {
            const head = await clients.store.head(cfg.vaultBucket, loc.key);
            if (!head) throw new CheckFailed(1, `${what} is missing from the vault (${loc.key})${loc.recorded ? "" : "; the catalog has no record of it either"}`);
            if (head.size !== want.storedSize) throw new CheckFailed(1, `${what} is ${head.size} bytes in the vault, the manifest says ${want.storedSize}`);
            return;
          }
          if (loc.storedSize !== want.storedSize) {
            throw new CheckFailed(1, `${what} is ${loc.storedSize} bytes in its pack (${describeLocation(loc)}), the manifest says ${want.storedSize}`);
          }
          let size = packSizes.get(loc.key);
          if (size === undefined) {
            size = clients.store.head(cfg.vaultBucket, loc.key).then((h) => h?.size);
            size.catch(() => undefined);
            packSizes.set(loc.key, size);
          }
          const packSize = await size;
          if (packSize === undefined) throw new CheckFailed(1, `${what} is missing from the vault: its pack ${loc.key} does not exist`);
          if (loc.offset + loc.storedSize > packSize) throw new CheckFailed(1, `${what} lies beyond the end of its pack (${describeLocation(loc)}; the pack has ${packSize} bytes)`);
        });
      }
      await forEachLimit(scope, CONCURRENCY, async (w) => {
        const head = await clients.store.head(cfg.vaultBucket, w.vaultKey, w.vaultVersionId);
        if (!head) throw new CheckFailed(1, `WAL file ${w.name} is in the catalog but missing from the vault`);
        if (head.size !== w.storedSize) throw new CheckFailed(1, `WAL file ${w.name} is ${head.size} bytes in the vault, the catalog says ${w.storedSize}`);
      });
      return `${located} chunks${packSizes.size > 0 ? ` (${packSizes.size} packs)` : ""}, ${scope.length} WAL files`;
    });

    // ---- L2
    if (req.level >= 2) {
      await check(2, "every checksum", async () => {
        let bytes = 0;
        // Read from where each chunk is (coalesced ranged GETs of packs), window by window; decoded and hashed.
        const reads = new ChunkReads(clients.store, cfg.vaultBucket, { parallel: CONCURRENCY, bytesInFlight: L2_WINDOW_STORED_BYTES });
        try {
          for await (const window of locatedWindows(clients, cfg.vaultBucket, req.databaseId, chunks)) {
            const stored = reads.schedule(window);
            await forEachLimit(window, CONCURRENCY, async ({ want, loc }) => {
              try {
                bytes += (await decodeChunk(want, loc, await stored.get(want.sha256)!)).length;
              } catch (e) {
                if (e instanceof ChecksumMismatchError) throw new CheckFailed(2, e.message, e.cause instanceof CodecError ? "CodecError" : e.name);
                throw e;
              }
            });
          }
        } finally {
          await reads.stop();
        }
        await forEachLimit(scope, CONCURRENCY, async (w) => {
          try {
            bytes += (await fetchVerifiedWal(clients.store, cfg.vaultBucket, w)).length;
          } catch (e) {
            if (e instanceof ChecksumMismatchError || e instanceof NotFoundError) throw new CheckFailed(2, `WAL file ${w.name}: ${describeError(e)}`, e.name);
            throw e;
          }
        });
        return `${(bytes / 1e6).toFixed(1)} MB hashed`;
      });
    }

    // ---- L3
    const target: RestoreTarget = req.targetTime
      ? { kind: "time", time: req.targetTime, ...(req.targetTimeSubMsNanos ? { subMsNanos: req.targetTimeSubMsNanos } : {}) }
      : { kind: "snapshot", id: req.snapshotId };
    if (req.level >= 3) {
      await check(3, "WAL continuity to the target", async () => {
        const planned = await planFor(clients, cfg, req.databaseId, target);
        if (planned.plan.snapshot.id !== req.snapshotId) {
          throw new CheckFailed(3, `the target is planned from snapshot ${planned.plan.snapshot.id}, not ${req.snapshotId}: choose a target before the next snapshot`);
        }
        return `${planned.streams.length > 0 ? planned.streams.reduce((a, s) => a + s.plan.wal.length, 0) : planned.plan.wal.length} WAL segments`;
      });
      await mkdir(req.workDir, { recursive: true });
      await check(3, "files rebuilt", async () => {
        const t0 = performance.now();
        // Every file's SHA-256 too (a restore checks only each chunk's): verification is where a manifest whose chunks disagree with its files is caught.
        const r = await restore(clients, cfg, { databaseId: req.databaseId, target, toDir: scratch, durable: false, fileHashes: true });
        measured.restoreSeconds = (performance.now() - t0) / 1000;
        return `${r.files} files, ${(r.bytes / 1e6).toFixed(1)} MB in ${measured.restoreSeconds.toFixed(1)} s`;
      });
      if (db.kind === "postgres") {
        await check(3, "pg_verifybackup", async () => {
          const pg = await ScratchPostgres.fromDataDir(scratch, { ownDataDir: false, ...(cfg.path ? { env: { WALVAULT_CONFIG: cfg.path } } : {}) });
          // WAL comes from the archive (-n); the restore marker is walvault's own file (postgresql.auto.conf
          // and recovery.signal are skipped by pg_verifybackup itself).
          const r = await pg.run("pg_verifybackup", ["-n", "-i", "walvault.restored-from", scratch], { allowFailure: true }).finally(() => pg.destroy());
          if (r.code !== 0) throw new CheckFailed(3, `pg_verifybackup: ${(r.stderr || r.stdout).trim().split("\n").slice(0, 3).join("; ")}`);
          return undefined;
        });
      }
    }

    // ---- L4
    if (req.level >= 4) {
      if (db.kind === "postgres") await levelFourPostgres(scratch, cfg, req, scope, check, measured);
      else {
        await check(4, "check command", async () => {
          const cmd = req.checks?.command;
          if (!cmd || cmd.length === 0) return "no check command configured";
          const code = await runCommand(cmd, scratch);
          if (code !== 0) throw new CheckFailed(4, `check command '${cmd.join(" ")}' exited ${code} in the restored directory`);
          return `'${cmd.join(" ")}' exited 0`;
        });
      }
    }
  } catch (e) {
    if (e instanceof CheckFailed) failure = e;
    else error = e;
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }

  const finishedAt = now();
  const record: VerificationRecord = {
    databaseId: req.databaseId,
    runId,
    snapshotId: req.snapshotId,
    level: req.level,
    ...(req.targetTime ? { targetTime: formatTime(timeFromNs(BigInt(req.targetTime.getTime()) * 1_000_000n + BigInt(req.targetTimeSubMsNanos ?? 0))) } : {}),
    ...(cfg.replicaRegion ? { region: cfg.replicaRegion } : {}),
    outcome: failure ? "failed" : error ? "error" : "passed",
    ...(failure ? { failedLevel: failure.level, failure: failure.message, ...(failure.errorName ? { errorName: failure.errorName } : {}) } : {}),
    ...(error ? { failure: describeError(error), errorName: (error as Error).name ?? "Error" } : {}),
    checks,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    ...measured,
    ...(req.trigger ? { trigger: req.trigger } : {}),
    ...(req.reason ? { reason: req.reason } : {}),
  };
  await clients.catalog.recordVerification(record);
  await clients.catalog
    // The levels passed; a run failing at L1 passed none, recorded as level 1 with its "failed" outcome (the record allows 1-4).
    .setSnapshotVerification(req.databaseId, req.snapshotId, { level: record.failedLevel ? Math.max(1, record.failedLevel - 1) : req.level, at: record.finishedAt, outcome: record.outcome, runId })
    .catch((e: unknown) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
  return record;
}

async function levelFourPostgres(
  dir: string,
  cfg: RestoreConfig,
  req: VerifyRequest,
  scope: readonly WalRecord[],
  check: (level: VerifyLevel, name: string, fn: () => Promise<string | undefined>) => Promise<void>,
  measured: Partial<Pick<VerificationRecord, "recoverySeconds" | "walReplayedBytes" | "walReplayBytesPerSecond">>,
): Promise<void> {
  const pg = await ScratchPostgres.fromDataDir(dir, { ownDataDir: false, ...(cfg.path ? { env: { WALVAULT_CONFIG: cfg.path } } : {}) });
  try {
    await check(4, "recover to the target and start", async () => {
      const t0 = performance.now();
      await pg.start();
      await pg.waitForRecoveryEnd(30 * 60_000);
      measured.recoverySeconds = (performance.now() - t0) / 1000;
      const replayed = scope.reduce((a, w) => a + w.size, 0);
      measured.walReplayedBytes = replayed;
      measured.walReplayBytesPerSecond = replayed / Math.max(measured.recoverySeconds, 0.001);
      return `recovered in ${measured.recoverySeconds.toFixed(1)} s`;
    });
    await check(4, "pg_amcheck", async () => {
      const r = await pg.run("pg_amcheck", ["--all", "--install-missing", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres"], { allowFailure: true });
      if (r.code !== 0) throw new CheckFailed(4, `pg_amcheck found problems: ${(r.stdout || r.stderr).trim().split("\n").slice(0, 3).join("; ")}`);
      return undefined;
    });
    for (const q of req.checks?.sql ?? []) {
      await check(4, `sql: ${q.name}`, async () => {
        let out: string;
        try {
          out = (await pg.psql(q.query, q.database ?? "postgres")).trim();
        } catch (e) {
          throw new CheckFailed(4, `SQL check '${q.name}' failed: ${(e as Error).message.split("\n")[0]}`);
        }
        if (q.expect !== undefined && out !== q.expect) throw new CheckFailed(4, `SQL check '${q.name}' returned '${out}', expected '${q.expect}'`);
        return out.length > 60 ? `${out.slice(0, 60)}…` : out;
      });
    }
  } finally {
    await pg.destroy().catch(() => undefined);
  }
}

function runCommand(argv: string[], cwd: string): Promise<number> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, WALVAULT_RESTORED_DIR: cwd } });
    child.on("error", () => resolve(127));
    child.on("exit", (code) => resolve(code ?? 128));
  });
}

/** Stored bytes of the chunks one window of verification locates and reads at once, at most (and of reads in flight). */
const L2_WINDOW_STORED_BYTES = 32 * 1024 * 1024;

/**
 * The manifest's chunks, distinct within each batch of entries (a page's
 * worth of references, store/manifest-read.ts entryBatches: a chunk used on
 * two pages is checked twice, so memory stays one page), in windows of at
 * most LOCATE_BATCH chunks and L2_WINDOW_STORED_BYTES stored bytes (a larger
 * chunk makes a window of its own), each chunk with its location
 * (agent/chunk-reader.ts), found as a restore finds it: in the pack the
 * manifest names for it (a new chunk's `pack`, a reused one's
 * `reusedPack`) when that pack is recorded and its index holds it, else by
 * its catalog record; one catalog lookup per window, never one per chunk,
 * and never every location at once.
 */
async function* locatedWindows(
  clients: AgentClients,
  vaultBucket: string,
  databaseId: string,
  manifest: OpenedManifest,
): AsyncGenerator<{ want: WantedChunk; loc: ChunkLocation }[]> {
  let window: WantedChunk[] = [];
  let bytes = 0;
  const packIndexes = namesPacks(manifest.header) ? new PackIndexCache(clients.catalog, clients.store, vaultBucket, databaseId) : undefined;
  const emit = async (): Promise<{ want: WantedChunk; loc: ChunkLocation }[]> => {
    const locs = await locateChunks(clients.catalog, databaseId, window, packIndexes);
    const out = window.map((want) => ({ want, loc: locs.get(want.sha256)! }));
    window = [];
    bytes = 0;
    return out;
  };
  for await (const batch of entryBatches(manifest)) {
    for (const c of batch.chunks) {
      if (window.length > 0 && (window.length >= LOCATE_BATCH || bytes + c.storedSize > L2_WINDOW_STORED_BYTES)) yield await emit();
      window.push(wantedOf(c, manifest.header));
      bytes += c.storedSize;
    }
  }
  if (window.length > 0) yield await emit();
}

/** A chunk to locate, with the pack its manifest names for it (looked at first). */
function wantedOf(c: BatchChunk, names: PackNames): WantedChunk {
  const pack = namedPackOf(c, names);
  return { sha256: c.sha256, size: c.size, storedSize: c.storedSize, codec: c.codec, file: c.file, ...(pack === undefined ? {} : { pack }) };
}

/**
 * The WAL files walInScope picks, read from the catalog without loading every
 * WAL record: PostgreSQL's from the snapshot's start segment on, each
 * timeline only as far as its first segment that ends the scope
 * (store/wal-from.ts). A generic database's streams are read whole (its
 * segment names carry no position the catalog's sort key orders).
 */
async function walScope(clients: AgentClients, snap: SnapshotRecord, manifest: SnapshotHeader, segmentSize: number, target: Date | undefined): Promise<WalRecord[]> {
  if (manifest.kind !== "postgres") return walInScope(snap, manifest, await clients.catalog.listWal(snap.databaseId), segmentSize, target);
  const until = (target ?? new Date(snap.finishedAt)).getTime();
  const { first, consistent } = postgresScope(manifest, segmentSize);
  const read: WalRecord[] = [];
  const ends = (w: WalRecord): boolean =>
    w.kind === "segment" && !isGenericWalName(w.name) && parseWalFileName(w.name, segmentSize).segno! >= consistent && Date.parse(w.archivedAt) > until;
  for await (const w of walRecordsFrom(clients.catalog, snap.databaseId, segmentSize, first, ends)) read.push(w);
  return walInScope(snap, manifest, read, segmentSize, target);
}

/** A PostgreSQL snapshot's first WAL segment and the segment it is consistent at. */
function postgresScope(manifest: Extract<SnapshotHeader, { kind: "postgres" }>, segmentSize: number): { first: bigint; consistent: bigint } {
  const first = lsnToSegno(parseLsn(manifest.postgres.startLsn), segmentSize);
  const stop = parseLsn(manifest.postgres.stopLsn);
  return { first, consistent: stop > 0n ? lsnToSegno(stop - 1n, segmentSize) : first };
}

/** WAL files between the snapshot and the target, as the catalog records them (continuity is not checked here). */
export function walInScope(snap: SnapshotRecord, manifest: SnapshotHeader, wal: readonly WalRecord[], segmentSize: number, target: Date | undefined): WalRecord[] {
  const until = (target ?? new Date(snap.finishedAt)).getTime();
  if (manifest.kind === "postgres") {
    const { first, consistent } = postgresScope(manifest, segmentSize);
    const segs = wal
      .filter((w) => w.kind === "segment" && !isGenericWalName(w.name))
      .map((w) => ({ w, segno: parseWalFileName(w.name, segmentSize).segno! }))
      .filter((x) => x.segno >= first)
      .sort((a, b) => (a.segno < b.segno ? -1 : a.segno > b.segno ? 1 : 0));
    const out: WalRecord[] = [];
    for (const x of segs) {
      out.push(x.w);
      if (x.segno >= consistent && Date.parse(x.w.archivedAt) > until) break;
    }
    return out;
  }
  const out: WalRecord[] = [];
  for (const s of manifest.generic.streams) {
    for (const w of wal) {
      if (!isGenericWalName(w.name) || !w.name.startsWith(`${s.id}/`)) continue;
      const pos = genericSegno(w, segmentSize);
      if (pos !== undefined && pos > BigInt(s.lastSegno) && Date.parse(w.closedAt ?? w.archivedAt) <= until) out.push(w);
    }
  }
  return out;
}

export function formatVerification(r: VerificationRecord): string {
  const head = `verification ${r.runId} of snapshot ${r.snapshotId} at level ${r.level}${r.targetTime ? ` to ${r.targetTime}` : ""}: ${r.outcome.toUpperCase()}`;
  const lines = [head];
  for (const c of r.checks) lines.push(`  L${c.level} ${c.ok ? "ok    " : "FAILED"} ${c.name}${c.detail ? `: ${c.detail}` : ""} (${c.seconds.toFixed(1)} s)`);
  if (r.outcome === "error") lines.push(`  error: ${r.failure}`);
  if (r.restoreSeconds !== undefined) lines.push(`  restore time ${r.restoreSeconds.toFixed(1)} s${r.recoverySeconds !== undefined ? `, recovery ${r.recoverySeconds.toFixed(1)} s` : ""}`);
  if (r.walReplayBytesPerSecond !== undefined) lines.push(`  WAL replay ${(r.walReplayBytesPerSecond / 1e6).toFixed(1)} MB/s (${((r.walReplayedBytes ?? 0) / 1e6).toFixed(1)} MB)`);
  return lines.join("\n");
}

export function assertLevel(text: string | undefined): VerifyLevel {
  const n = text === undefined ? 4 : Number(/^L?([1-4])$/i.exec(text)?.[1]);
  if (!(n >= 1 && n <= 4)) throw new InvalidInputError(`--level must be 1, 2, 3 or 4 (or L1-L4), not '${text}'`);
  return n as VerifyLevel;
}

export type { WalvaultError };
