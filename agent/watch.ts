/**
 * `walvault watch FILE` — the agent beside a generic file-based database
 * (docs/generic.md). FILE is a watch configuration (core/generic-wal.ts):
 * the data directory, its WAL streams (directory, file pattern, closed rule)
 * and when to snapshot.
 *
 * Each pass:
 * 1. Scan: list every stream directory; the segments its rule says are
 *    closed and the catalog does not hold yet are shipped, `concurrency` at
 *    a time, each waited for until the catalog records it (ingest validated
 *    and promoted it). Every upload of the pass carries the pass's start time
 *    and how many segments it ships: once all are recorded, the archive is
 *    known to hold everything closed before that time (archivedThrough).
 *    A segment whose size or mtime changes between listing and reading is
 *    not closed after all: left for the next pass.
 * 2. Snapshot, when due (every `intervalSeconds`, when `triggerFile` appears,
 *    or when asked): `before` command, then the data directory (minus
 *    `exclude`) is pushed as a generic snapshot whose streams record the
 *    newest segment closed at its start, then `after` (always, once `before`
 *    ran). Open segments are read as they are; any other file that changes
 *    during its read fails the snapshot (the next pass tries again).
 *
 * Nothing is lost by stopping: the next start asks the catalog what is
 * archived, one GetItem per closed segment on disk (never the whole WAL
 * catalog). A segment archived with different bytes (the database rewrote a
 * closed segment, or a different database reuses the id) is a
 * SegmentConflictError: reported, never overwritten, and the pass fails.
 */
import { spawn } from "node:child_process";
import { lstat, readdir, readFile, rm } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { getCodec, DEFAULT_CODEC } from "../core/codec.js";
import { forEachLimit } from "../core/concurrency.js";
import { ConfigError, FileAccessError, InvalidInputError, SegmentConflictError, describeError, isWalvaultError } from "../core/errors.js";
import {
  compileWatchConfig,
  genericSegmentMeta,
  genericWalName,
  closedAtMs,
  snapshotStreamEntry,
  streamIdFor,
  streamSegments,
  type DirEntry,
  type StreamSegment,
  type StreamSpec,
  type WatchSpec,
} from "../core/generic-wal.js";
import { sha256Hex } from "../core/hash.js";
import { incomingGenericWalKey } from "../core/keys.js";
import { META_DATABASE } from "../core/schemas.js";
import { objectMeta } from "../core/verify.js";
import type { AgentConfig } from "../core/config.js";
import type { AgentClients } from "./clients.js";
import { snapshotPush, type SnapshotPushResult } from "./snapshot-push.js";
import { waitStored } from "./wal-push.js";

export interface WatchedStream {
  id: string;
  /** WAL directory relative to the data directory. */
  dir: string;
  spec: StreamSpec;
}

export interface ShippedSegment {
  name: string;
  position: string;
  size: number;
  closedAt: string;
  outcome: "stored" | "skipped-changed";
}

export interface PassResult {
  scanAt: string;
  streams: string[];
  shipped: ShippedSegment[];
  /** One line per segment that could not be shipped (the pass failed). */
  errors: string[];
  snapshot?: { snapshotId: string; outcome: string; files: number; logicalBytes: number; newBytes: number; streams: Record<string, number> };
  snapshotError?: string;
}

export interface WatchOptions {
  /** Take a snapshot in the first pass whatever the schedule says. */
  snapshotNow?: boolean;
  /** How long each segment push waits for the catalog, ms (default 60 s). */
  timeoutMs?: number;
  log?: (line: string) => void;
  now?: () => Date;
  /** Progress bar for snapshots (default: stderr is a TTY). */
  progress?: boolean;
}

/** Reads and compiles a watch file; `dataDir` is resolved against the file's directory. */
export function loadWatchFile(path: string): WatchSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === "ENOENT" ? `watch configuration ${path} does not exist` : `watch configuration ${path} is not readable JSON: ${(cause as Error).message}`,
      { cause },
    );
  }
  const spec = compileWatchConfig(raw, `watch configuration ${path}`);
  return { ...spec, dataDir: isAbsolute(spec.dataDir) ? spec.dataDir : resolve(dirname(path), spec.dataDir) };
}

export class Watcher {
  /** Archived generic segments by name: what the catalog recorded (to notice a closed segment rewritten on disk). */
  private archived: Map<string, { sha256: string; size: number; closedAtMs: number | undefined }> | undefined;
  /** Names asked for and not archived then: shipped by this watcher (ship() asks again before uploading). */
  private readonly notArchived = new Set<string>();
  private lastSnapshotAt: number | undefined;
  private snapshotAsked: boolean;
  private readonly now: () => Date;
  private readonly log: (line: string) => void;

  constructor(
    readonly spec: WatchSpec,
    private readonly cfg: AgentConfig & { databaseId: string },
    private readonly clients: AgentClients,
    private readonly opts: WatchOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? (() => {});
    this.snapshotAsked = opts.snapshotNow ?? false;
  }

  /** Every stream directory the configuration matches now (sorted by id); stream ids must be unique. */
  async discover(): Promise<WatchedStream[]> {
    const out: WatchedStream[] = [];
    const seen = new Map<string, string>();
    for (const spec of this.spec.streams) {
      let frontier: { rel: string[]; captures: string[] }[] = [{ rel: [], captures: [] }];
      for (const part of spec.dirParts) {
        const next: typeof frontier = [];
        for (const f of frontier) {
          if (part !== "*") {
            next.push({ rel: [...f.rel, part], captures: f.captures });
            continue;
          }
          const names = await readdir(join(this.spec.dataDir, ...f.rel), { withFileTypes: true }).catch(() => []);
          for (const d of names.filter((n) => n.isDirectory() && !n.name.startsWith(".")).sort((a, b) => (a.name < b.name ? -1 : 1))) {
            next.push({ rel: [...f.rel, d.name], captures: [...f.captures, d.name] });
          }
        }
        frontier = next;
      }
      for (const f of frontier) {
        const dir = f.rel.join("/");
        const st = await lstat(join(this.spec.dataDir, dir)).catch(() => undefined);
        if (!st?.isDirectory()) continue;
        const id = streamIdFor(spec, f.captures);
        const other = seen.get(id);
        if (other !== undefined && other !== dir) throw new ConfigError(`stream id '${id}' names two directories, ${other} and ${dir}: make the id template tell them apart`);
        seen.set(id, dir);
        out.push({ id, dir, spec });
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private async listStream(s: WatchedStream): Promise<StreamSegment[]> {
    const abs = join(this.spec.dataDir, s.dir);
    let names: string[];
    try {
      names = await readdir(abs);
    } catch (cause) {
      throw new FileAccessError(`cannot list WAL directory ${abs}: ${(cause as Error).message}`, { cause });
    }
    const entries: DirEntry[] = [];
    for (const name of names) {
      const st = await lstat(join(abs, name)).catch(() => undefined); // gone since the listing: ignore
      if (st?.isFile()) entries.push({ name, size: st.size, mtimeMs: st.mtimeMs });
    }
    return streamSegments(s.spec, s.id, entries);
  }

  /**
   * What the catalog holds of these names (closed segments on disk), asked
   * once per name: one GetItem each for names not seen yet, never the whole
   * WAL catalog (which grows to a million records while the directory holds
   * what the database has not recycled). The last snapshot time, once.
   */
  private async loadArchived(names: readonly string[]): Promise<NonNullable<Watcher["archived"]>> {
    const archived = (this.archived ??= new Map());
    if (this.lastSnapshotAt === undefined) {
      const last = (await this.clients.catalog.listSnapshots(this.cfg.databaseId)).at(-1);
      if (last) this.lastSnapshotAt = Date.parse(last.finishedAt);
    }
    const unknown = names.filter((n) => !archived.has(n) && !this.notArchived.has(n));
    await forEachLimit(unknown, this.spec.concurrency, async (name) => {
      const r = await this.clients.catalog.getWal(this.cfg.databaseId, name);
      if (r) archived.set(name, { sha256: r.sha256, size: r.size, closedAtMs: r.closedAt === undefined ? undefined : Date.parse(r.closedAt) });
      else this.notArchived.add(name);
    });
    return archived;
  }

  /** Ships what is closed and not archived; then snapshots when due. */
  async pass(): Promise<PassResult> {
    const db = await this.clients.catalog.getDatabase(this.cfg.databaseId);
    if (!db) {
      throw new ConfigError(`database '${this.cfg.databaseId}' is not registered in the catalog: register it with \`walvault db add ${this.cfg.databaseId} --kind generic\``);
    }
    if (db.kind !== "generic") throw new InvalidInputError(`database '${this.cfg.databaseId}' is registered as ${db.kind}; watch ships generic databases only`);
    const scanAt = this.now();
    const streams = await this.discover();
    if (streams.length === 0) throw new ConfigError(`no WAL stream directory exists under ${this.spec.dataDir} for the configured streams`);
    const result: PassResult = { scanAt: scanAt.toISOString(), streams: streams.map((s) => s.id), shipped: [], errors: [] };
    const todo: { stream: WatchedStream; seg: StreamSegment }[] = [];
    const listed = await Promise.all(streams.map(async (stream) => ({ stream, closed: (await this.listStream(stream)).filter((seg) => seg.closed) })));
    const archived = await this.loadArchived(listed.flatMap(({ stream, closed }) => closed.map((seg) => genericWalName(stream.id, seg.file))));
    for (const { stream, closed } of listed) {
      for (const seg of closed) {
        const name = genericWalName(stream.id, seg.file);
        const known = archived.get(name);
        if (known === undefined) {
          todo.push({ stream, seg });
          continue;
        }
        // Archived: only a size or mtime that moved makes it worth reading again.
        if (known.size === seg.size && known.closedAtMs === closedAtMs(seg.mtimeMs)) continue;
        const sha256 = sha256Hex(await readFile(join(this.spec.dataDir, stream.dir, seg.file)));
        if (sha256 !== known.sha256) {
          const e = conflict(name, this.cfg.databaseId, known.sha256, sha256);
          result.errors.push(describeError(e));
          this.log(describeError(e));
        } else {
          known.closedAtMs = closedAtMs(seg.mtimeMs);
        }
      }
    }
    const codec = getCodec(this.cfg.codec ?? DEFAULT_CODEC);
    await forEachLimit(todo, this.spec.concurrency, async ({ stream, seg }) => {
      const name = genericWalName(stream.id, seg.file);
      try {
        const shipped = await this.ship(stream, seg, name, codec, { at: result.scanAt, count: todo.length });
        result.shipped.push(shipped);
        if (shipped.outcome === "stored") this.log(`shipped ${name} (${seg.size} bytes)`);
      } catch (e) {
        result.errors.push(`${name}: ${describeError(e)}`);
        this.log(`could not ship ${name}: ${describeError(e)}`);
        if (!isWalvaultError(e)) throw e;
      }
    });
    result.shipped.sort((a, b) => (a.name < b.name ? -1 : 1));
    if (await this.snapshotDue()) {
      try {
        result.snapshot = await this.snapshot(streams);
      } catch (e) {
        result.snapshotError = describeError(e);
        this.log(`snapshot failed: ${result.snapshotError}`);
        if (!isWalvaultError(e)) throw e;
      }
    }
    return result;
  }

  private async ship(
    stream: WatchedStream,
    seg: StreamSegment,
    name: string,
    codec: ReturnType<typeof getCodec>,
    scan: { at: string; count: number },
  ): Promise<ShippedSegment> {
    const path = join(this.spec.dataDir, stream.dir, seg.file);
    const content = await readFile(path).catch((cause: unknown) => {
      throw new FileAccessError(`cannot read WAL segment ${path}: ${(cause as Error).message}`, { cause });
    });
    const closedAt = new Date(closedAtMs(seg.mtimeMs)).toISOString();
    const base = { name, position: seg.position.toString(), size: content.length, closedAt };
    const after = await lstat(path);
    if (content.length !== seg.size || after.size !== seg.size || after.mtimeMs !== seg.mtimeMs) {
      this.log(`${name} changed since it was listed: left for the next pass`);
      return { ...base, outcome: "skipped-changed" };
    }
    const sha256 = sha256Hex(content);
    const existing = await this.clients.catalog.getWal(this.cfg.databaseId, name);
    if (existing) {
      if (existing.sha256 !== sha256) throw conflict(name, this.cfg.databaseId, existing.sha256, sha256);
      this.archived!.set(name, { sha256, size: content.length, closedAtMs: closedAtMs(seg.mtimeMs) });
      return { ...base, outcome: "stored" };
    }
    const encoded = await codec.encode(content);
    const startedAt = new Date();
    const key = incomingGenericWalKey(this.cfg.databaseId, stream.id, seg.file);
    await this.clients.store.put(this.cfg.incomingBucket, key, encoded, {
      ...objectMeta({ sha256, codec: codec.name, size: content.length }),
      ...genericSegmentMeta({ position: seg.position, closedAt, scan }),
      [META_DATABASE]: this.cfg.databaseId,
    });
    // The workflow's failure note turns a transient control-plane fault into exit 4 at once, not a timeout.
    const note = { store: this.clients.store, bucket: this.cfg.incomingBucket, key };
    await waitStored(this.clients.catalog, this.cfg.databaseId, name, sha256, startedAt, this.opts.timeoutMs ?? 60_000, undefined, note);
    this.archived!.set(name, { sha256, size: content.length, closedAtMs: closedAtMs(seg.mtimeMs) });
    return { ...base, outcome: "stored" };
  }

  private async snapshotDue(): Promise<boolean> {
    if (this.snapshotAsked) return true;
    const { intervalSeconds, triggerFile } = this.spec.snapshot;
    if (triggerFile !== undefined && (await lstat(join(this.spec.dataDir, triggerFile)).catch(() => undefined))) return true;
    if (intervalSeconds === undefined) return false;
    return this.lastSnapshotAt === undefined || this.now().getTime() - this.lastSnapshotAt >= intervalSeconds * 1000;
  }

  private async snapshot(streams: WatchedStream[]): Promise<NonNullable<PassResult["snapshot"]>> {
    const { before, after, exclude, triggerFile } = this.spec.snapshot;
    if (before) await runHook("snapshot.before", before, this.spec.dataDir);
    let r: SnapshotPushResult;
    const entries: ReturnType<typeof snapshotStreamEntry>[] = [];
    try {
      for (const s of streams) entries.push(snapshotStreamEntry(s.id, s.dir, await this.listStream(s), s.spec.closed));
      const streamDirs = streams.map((s) => `${s.dir}/`);
      r = await snapshotPush(
        {
          kind: "generic",
          dir: this.spec.dataDir,
          streams: entries,
          exclude: (rel) => rel === triggerFile || exclude.some((re) => re.test(rel)),
          // Stream directories hold the open segment, which grows while it is read.
          mayChange: (rel) => streamDirs.some((d) => rel.startsWith(d) && !rel.slice(d.length).includes("/")),
        },
        this.cfg,
        this.clients,
        { wait: true, ...(this.opts.progress === undefined ? {} : { progress: this.opts.progress }), now: this.now },
      );
    } finally {
      if (before && after) await runHook("snapshot.after", after, this.spec.dataDir);
    }
    this.snapshotAsked = false;
    this.lastSnapshotAt = this.now().getTime();
    if (triggerFile !== undefined) await rm(join(this.spec.dataDir, triggerFile), { force: true });
    this.log(`snapshot ${r.snapshotId} ${r.outcome}: ${r.totals.files} files, ${r.totals.logicalBytes} bytes, ${r.newBytes} new`);
    return {
      snapshotId: r.snapshotId,
      outcome: r.outcome,
      files: r.totals.files,
      logicalBytes: r.totals.logicalBytes,
      newBytes: r.newBytes,
      streams: Object.fromEntries(entries.map((e) => [e.id, e.lastSegno])),
    };
  }

  /** Passes until `signal` aborts (finishing the pass under way), `pollSeconds` apart. */
  async run(signal: AbortSignal, onPass?: (r: PassResult) => void): Promise<void> {
    while (!signal.aborted) {
      try {
        onPass?.(await this.pass());
      } catch (e) {
        if (!isWalvaultError(e)) throw e;
        this.log(`pass failed: ${describeError(e)}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, this.spec.pollSeconds * 1000);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          r();
        }, { once: true });
      });
    }
  }
}

function conflict(name: string, databaseId: string, archived: string, pushed: string): SegmentConflictError {
  return new SegmentConflictError(
    `${name} is already archived for database ${databaseId} with different contents ` +
      `(archived sha256 ${archived.slice(0, 12)}…, on disk ${pushed.slice(0, 12)}…); the archived copy was kept — a closed segment must never change`,
  );
}

async function runHook(what: string, argv: string[], cwd: string): Promise<void> {
  const [cmd, ...args] = argv as [string, ...string[]];
  const code = await new Promise<number | string>((res) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", (e) => res(e.message));
    child.on("exit", (c, sig) => res(c ?? `signal ${sig}`));
  });
  if (code !== 0) throw new InvalidInputError(`${what} command '${argv.join(" ")}' failed (${typeof code === "number" ? `exit ${code}` : code}): snapshot skipped`);
}
