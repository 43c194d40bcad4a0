/**
 * Generic WAL streams: the WAL of a file-based database that is not
 * PostgreSQL, as `walvault watch` ships it (docs/generic.md).
 *
 * A database writes one or more WAL streams (a directory each: `wal/`, one per
 * space, one per stripe). A stream's segments are files whose names carry
 * their position (a number: the configured pattern's first capture group, in
 * base 10 or 16). A segment is shipped once it is closed, and never changes
 * after that.
 *
 * Names and keys. A generic segment's catalog name is `<stream>/<file>`:
 *   incoming  incoming/db/<databaseId>/wal/<stream>/<file>
 *   vault     db/<databaseId>/wal/<stream>/<file>
 * (the stream takes the place a PostgreSQL timeline has), so two streams may
 * hold files of the same name. Stream ids and file names are checked against
 * strict patterns wherever they enter.
 *
 * What the agent claims on each upload (object metadata, besides SHA-256,
 * codec and size):
 *   walvault-position    the segment's position in its stream (decimal);
 *   walvault-closed-at   when it was last written (its mtime, ISO-8601, rounded up to the ms);
 *   walvault-scan-at     when the watch scan that shipped it started;
 *   walvault-scan-count  how many segments that scan shipped.
 * A scan ships every segment closed when it started that is not archived yet.
 * So once all `scan-count` segments of a scan are in the catalog, the archive
 * holds every segment closed before `scan-at`: that is how far a time target
 * can go (archivedThrough below). A segment counts for a time target T when
 * it was closed (last written) at or before T.
 *
 * Pure: no I/O.
 */
import { posix } from "node:path";
import { z } from "zod";
import { ConfigError, InvalidInputError, InvalidWalNameError } from "./errors.js";

/** Stream ids: safe in S3 keys and DynamoDB sort keys, one key segment. */
export const STREAM_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Segment file names: one path component, no leading dot. */
export const SEGMENT_FILE_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export interface GenericWalName {
  stream: string;
  file: string;
  /** `<stream>/<file>`: the segment's name in the catalog. */
  name: string;
}

export function assertStreamId(id: string): string {
  if (!STREAM_ID_RE.test(id)) {
    throw new InvalidWalNameError(`WAL stream id '${id}' is invalid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return id;
}

export function assertSegmentFile(file: string): string {
  if (!SEGMENT_FILE_RE.test(file)) {
    throw new InvalidWalNameError(`WAL segment file name '${file}' is invalid: use 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'`);
  }
  return file;
}

export function genericWalName(stream: string, file: string): string {
  return `${assertStreamId(stream)}/${assertSegmentFile(file)}`;
}

/** Whether a catalog WAL name is a generic one (`<stream>/<file>`; PostgreSQL names have no '/'). */
export function isGenericWalName(name: string): boolean {
  return name.includes("/");
}

export function parseGenericWalName(name: string): GenericWalName {
  const parts = name.split("/");
  if (parts.length !== 2) throw new InvalidWalNameError(`'${name}' is not a generic WAL name <stream>/<file>`);
  const [stream, file] = parts as [string, string];
  return { stream: assertStreamId(stream), file: assertSegmentFile(file), name };
}

// ---------------------------------------------------------------------------
// Position-ordered key (the catalog's sparse `gpos` index; docs/decisions.md,
// "Generic WAL by position")

/** Digits of a position in a `gpos` value (zero-padded: string order is position order). */
export const GPOS_DIGITS = 20;
/** The greatest position a `gpos` value holds (20 nines; an agent's position is at most 20 digits). */
export const GPOS_MAX_POSITION = 10n ** BigInt(GPOS_DIGITS) - 1n;

/**
 * The `gpos` value of a generic segment: `<stream>#<position, 20 digits
 * zero-padded>`, so one stream's segments sort by position, and a range of
 * positions is a range of values. InvalidInputError for a stream that is not
 * a stream id, or a position below 0 or above GPOS_MAX_POSITION.
 */
export function gposValue(stream: string, position: bigint): string {
  if (!STREAM_ID_RE.test(stream)) throw new InvalidInputError(`'${stream}' is not a WAL stream id`);
  if (position < 0n || position > GPOS_MAX_POSITION) throw new InvalidInputError(`WAL position ${position} of stream '${stream}' is not from 0 to ${GPOS_MAX_POSITION}`);
  return `${stream}#${position.toString().padStart(GPOS_DIGITS, "0")}`;
}

/** The stream and position of a `gpos` value; InvalidInputError for anything gposValue does not make. */
export function parseGpos(value: string): { stream: string; position: bigint } {
  const m = /^([^#]+)#(\d{20})$/.exec(value);
  if (!m || !STREAM_ID_RE.test(m[1]!)) throw new InvalidInputError(`'${value}' is not a generic WAL position key <stream>#<20 digits>`);
  return { stream: m[1]!, position: BigInt(m[2]!) };
}

/**
 * The position of a generic segment record (name `<stream>/<file>`), as
 * planning reads it (core/restore-input.ts genericSegno, which reads a
 * PostgreSQL-style name first and this otherwise): its decimal startLsn,
 * else the last number in its name; undefined when it has neither.
 */
export function genericRecordPosition(rec: { name: string; startLsn?: string | undefined }): bigint | undefined {
  if (rec.startLsn !== undefined && /^\d{1,20}$/.test(rec.startLsn)) return BigInt(rec.startLsn);
  const last = rec.name.match(/\d+/g)?.at(-1);
  return last === undefined ? undefined : BigInt(last);
}

/**
 * The `gpos` attribute a catalog WAL record carries: a generic segment's
 * (`<stream>/<file>` name, kind "segment") stream and position; undefined for
 * every other record (PostgreSQL WAL, history files, a generic record with no
 * position or one past GPOS_MAX_POSITION: none ingest writes), so the index
 * holds generic segments only.
 */
export function gposOfRecord(rec: { name: string; kind: string; startLsn?: string | undefined }): string | undefined {
  if (rec.kind !== "segment" || !isGenericWalName(rec.name)) return undefined;
  let stream: string;
  try {
    stream = parseGenericWalName(rec.name).stream;
  } catch {
    return undefined;
  }
  const position = genericRecordPosition(rec);
  return position === undefined || position > GPOS_MAX_POSITION ? undefined : gposValue(stream, position);
}

/**
 * The `gpos` values bounding one stream's positions from `from` through `to`
 * (undefined: through the stream's last), both included; undefined when the
 * range is empty (to < from). Negative bounds are 0; bounds past
 * GPOS_MAX_POSITION are GPOS_MAX_POSITION.
 */
export function gposRange(stream: string, from: bigint, to: bigint | undefined): { from: string; to: string } | undefined {
  const clamp = (p: bigint): bigint => (p < 0n ? 0n : p > GPOS_MAX_POSITION ? GPOS_MAX_POSITION : p);
  if (from > GPOS_MAX_POSITION || (to !== undefined && (to < from || to < 0n))) return undefined;
  return { from: gposValue(stream, clamp(from)), to: gposValue(stream, clamp(to ?? GPOS_MAX_POSITION)) };
}

/**
 * A segment's close time in whole milliseconds, from its mtime: rounded UP.
 * The catalog keeps milliseconds, and a segment counts for a time target T
 * when its close time is <= T; rounding down would take a segment last
 * written at 10:30:45.1235 into a restore to 10:30:45.1232 (targets are kept
 * to the nanosecond), i.e. writes from after T. Rounding up can only leave
 * out a segment closed in the same millisecond just before T.
 */
export function closedAtMs(mtimeMs: number): number {
  return Math.ceil(mtimeMs);
}

// ---------------------------------------------------------------------------
// Upload metadata

export const META_POSITION = "walvault-position";
export const META_CLOSED_AT = "walvault-closed-at";
export const META_SCAN_AT = "walvault-scan-at";
export const META_SCAN_COUNT = "walvault-scan-count";

const isoTime = z.string().refine((s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) && !Number.isNaN(Date.parse(s)), "not an ISO-8601 UTC time");

export const genericSegmentMetaSchema = z.object({
  [META_POSITION]: z.string().regex(/^\d{1,20}$/, "position is not a decimal integer"),
  [META_CLOSED_AT]: isoTime,
  [META_SCAN_AT]: isoTime.optional(),
  [META_SCAN_COUNT]: z.string().regex(/^[1-9]\d{0,8}$/, "scan count is not a positive integer").optional(),
});

export interface GenericSegmentMeta {
  position: bigint;
  closedAt: string;
  scan?: { at: string; count: number };
}

/** Reads what the agent claims about a generic segment; anything missing or malformed is an InvalidInputError. */
export function parseGenericSegmentMeta(metadata: Record<string, string>, what: string): GenericSegmentMeta {
  const r = genericSegmentMetaSchema.safeParse(metadata);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new InvalidInputError(`${what} has missing or malformed generic WAL metadata (${issue?.path.join(".") ?? "?"}: ${issue?.message ?? "invalid"})`);
  }
  const at = r.data[META_SCAN_AT];
  const count = r.data[META_SCAN_COUNT];
  if ((at === undefined) !== (count === undefined)) {
    throw new InvalidInputError(`${what} names a scan time without a count or a count without a time`);
  }
  return {
    position: BigInt(r.data[META_POSITION]),
    closedAt: r.data[META_CLOSED_AT],
    ...(at !== undefined && count !== undefined ? { scan: { at, count: Number(count) } } : {}),
  };
}

export function genericSegmentMeta(meta: GenericSegmentMeta): Record<string, string> {
  return {
    [META_POSITION]: meta.position.toString(),
    [META_CLOSED_AT]: meta.closedAt,
    ...(meta.scan ? { [META_SCAN_AT]: meta.scan.at, [META_SCAN_COUNT]: String(meta.scan.count) } : {}),
  };
}

/**
 * How far the archive is known complete: the start of the newest watch scan
 * all of whose segments are recorded (every segment closed before it is
 * archived). Undefined when no scan is complete (segments pushed without scan
 * metadata prove nothing about the ones not pushed).
 */
export function archivedThrough(records: ReadonlyArray<{ scanAt?: string | undefined; scanCount?: number | undefined }>): Date | undefined {
  const t = new ArchivedThrough();
  t.add(records);
  return t.result();
}

/** archivedThrough over records given a page at a time (memory: one entry per watch scan, not per record). */
export class ArchivedThrough {
  private readonly seen = new Map<string, { count: number; have: number }>();

  add(records: ReadonlyArray<{ scanAt?: string | undefined; scanCount?: number | undefined }>): void {
    for (const r of records) {
      if (r.scanAt === undefined || r.scanCount === undefined) continue;
      const s = this.seen.get(r.scanAt) ?? { count: r.scanCount, have: 0 };
      s.have++;
      this.seen.set(r.scanAt, s);
    }
  }

  result(): Date | undefined {
    let best: Date | undefined;
    for (const [at, s] of this.seen) {
      if (s.have < s.count) continue;
      const d = new Date(at);
      if (best === undefined || d > best) best = d;
    }
    return best;
  }
}

// ---------------------------------------------------------------------------
// Watch configuration

/** When a segment counts as closed. */
export type ClosedRule =
  | { rule: "newest-open" }
  | { rule: "size"; bytes: number }
  | { rule: "marker"; suffix: string };

const closedSchema = z
  .union([
    z.literal("newest-open"),
    z.object({ size: z.number().int().positive() }).strict(),
    z.object({ marker: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, "a marker is a file-name suffix such as '.done'") }).strict(),
  ])
  .default("newest-open");

const streamSpecSchema = z
  .object({
    /** Stream id; `{1}`, `{2}`... are the directory components matched by the 1st, 2nd '*' of `dir`. */
    id: z.string().min(1),
    /** WAL directory relative to the data directory; '*' matches one whole path component. */
    dir: z.string().min(1),
    /** Regular expression a segment's file name matches in full; its first capture group is the position. */
    pattern: z.string().min(1),
    radix: z.union([z.literal(10), z.literal(16)]).default(10),
    closed: closedSchema,
  })
  .strict();

export const watchConfigSchema = z
  .object({
    databaseId: z.string().optional(),
    /** The database's data directory (absolute, or relative to the watch file). */
    dataDir: z.string().min(1),
    streams: z.array(streamSpecSchema).min(1, "name at least one WAL stream"),
    snapshot: z
      .object({
        /** Take a snapshot every this many seconds (none when unset, and no trigger). */
        intervalSeconds: z.number().positive().optional(),
        /** A snapshot is taken when this file (relative to the data directory) appears; it is removed after. */
        triggerFile: z.string().optional(),
        /** Paths (relative, '*' within a component, '**' any depth) left out of snapshots. */
        exclude: z.array(z.string().min(1)).default([]),
        /** Commands (argv) run before and after a snapshot reads the data directory, e.g. to quiesce it. */
        before: z.array(z.string()).min(1).optional(),
        after: z.array(z.string()).min(1).optional(),
      })
      .strict()
      .default({}),
    /** Seconds between scans. */
    pollSeconds: z.number().positive().default(2),
    /** Segment uploads in flight. */
    concurrency: z.number().int().min(1).max(64).default(4),
  })
  .strict();
export type WatchConfigInput = z.input<typeof watchConfigSchema>;

export interface StreamSpec {
  idTemplate: string;
  /** `dir` split into components; '*' components are wildcards. */
  dirParts: string[];
  pattern: RegExp;
  radix: 10 | 16;
  closed: ClosedRule;
}

export interface WatchSpec {
  databaseId?: string;
  dataDir: string;
  streams: StreamSpec[];
  snapshot: {
    intervalSeconds?: number;
    triggerFile?: string;
    exclude: RegExp[];
    excludeText: string[];
    before?: string[];
    after?: string[];
  };
  pollSeconds: number;
  concurrency: number;
}

function relativeProblem(path: string): string | undefined {
  if (path.startsWith("/")) return "is absolute";
  const parts = path.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) return "has an empty, '.' or '..' component";
  return undefined;
}

/** Glob (relative path; '*' within a component, '**' any number of components) to an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  const parts = glob.split("/");
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    if (part === "**") {
      re += last ? ".*" : "(?:[^/]+/)*";
      return;
    }
    re += part.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*");
    if (!last) re += "/";
  });
  // A directory matched by a glob is left out with everything in it.
  return new RegExp(`^${re}(?:/.*)?$`, "s");
}

/** Parses and checks a watch configuration; throws ConfigError naming the field. */
export function compileWatchConfig(raw: unknown, where = "watch configuration"): WatchSpec {
  const r = watchConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ConfigError(`${where}: ${i?.path.join(".") || "(top)"}: ${i?.message ?? "invalid"}`);
  }
  const c = r.data;
  const streams = c.streams.map((s, i): StreamSpec => {
    const field = `${where}: streams[${i}]`;
    const problem = relativeProblem(s.dir);
    if (problem) throw new ConfigError(`${field}.dir '${s.dir}' ${problem}`);
    const dirParts = s.dir.split("/");
    if (dirParts.some((p) => p.includes("*") && p !== "*")) throw new ConfigError(`${field}.dir: '*' must be a whole path component`);
    const wildcards = dirParts.filter((p) => p === "*").length;
    for (const m of s.id.matchAll(/\{(\d+)\}/g)) {
      const n = Number(m[1]);
      if (n < 1 || n > wildcards) throw new ConfigError(`${field}.id '${s.id}' uses {${n}}, but dir '${s.dir}' has ${wildcards} '*'`);
    }
    if (wildcards > 0 && !/\{\d+\}/.test(s.id)) throw new ConfigError(`${field}.id '${s.id}' must use {1} (dir '${s.dir}' matches several directories)`);
    if (!/\{\d+\}/.test(s.id) && !STREAM_ID_RE.test(s.id)) throw new ConfigError(`${field}.id '${s.id}' is not a stream id (letters, digits, '.', '_', '-')`);
    let pattern: RegExp;
    try {
      pattern = new RegExp(`^(?:${s.pattern})$`);
    } catch (cause) {
      throw new ConfigError(`${field}.pattern is not a regular expression: ${(cause as Error).message}`, { cause });
    }
    if (new RegExp(`${pattern.source}|`).exec("")!.length < 2) throw new ConfigError(`${field}.pattern '${s.pattern}' has no capture group for the position`);
    const closed: ClosedRule =
      s.closed === "newest-open" ? { rule: "newest-open" } : "size" in s.closed ? { rule: "size", bytes: s.closed.size } : { rule: "marker", suffix: s.closed.marker };
    return { idTemplate: s.id, dirParts, pattern, radix: s.radix, closed };
  });
  const snap = c.snapshot;
  if (snap.triggerFile !== undefined) {
    const problem = relativeProblem(snap.triggerFile);
    if (problem) throw new ConfigError(`${where}: snapshot.triggerFile '${snap.triggerFile}' ${problem}`);
  }
  for (const g of snap.exclude) {
    const problem = relativeProblem(g);
    if (problem) throw new ConfigError(`${where}: snapshot.exclude '${g}' ${problem}`);
  }
  return {
    ...(c.databaseId === undefined ? {} : { databaseId: c.databaseId }),
    dataDir: c.dataDir,
    streams,
    snapshot: {
      ...(snap.intervalSeconds === undefined ? {} : { intervalSeconds: snap.intervalSeconds }),
      ...(snap.triggerFile === undefined ? {} : { triggerFile: snap.triggerFile }),
      exclude: snap.exclude.map(globToRegExp),
      excludeText: snap.exclude,
      ...(snap.before ? { before: snap.before } : {}),
      ...(snap.after ? { after: snap.after } : {}),
    },
    pollSeconds: c.pollSeconds,
    concurrency: c.concurrency,
  };
}

/** The stream id for a directory the spec's `dir` matched, given what its '*' components matched. */
export function streamIdFor(spec: StreamSpec, captures: readonly string[]): string {
  const id = spec.idTemplate.replace(/\{(\d+)\}/g, (_, n: string) => captures[Number(n) - 1] ?? "");
  if (!STREAM_ID_RE.test(id)) {
    throw new ConfigError(`stream id '${id}' (from '${spec.idTemplate}' and directory components ${captures.join("/")}) is not a stream id`);
  }
  return id;
}

/** A segment file's position, or undefined when the name is not one of the stream's segments. */
export function segmentPosition(spec: StreamSpec, file: string): bigint | undefined {
  const m = spec.pattern.exec(file);
  const digits = m?.[1];
  if (digits === undefined) return undefined;
  const ok = spec.radix === 16 ? /^[0-9A-Fa-f]{1,16}$/.test(digits) : /^\d{1,19}$/.test(digits);
  if (!ok) return undefined;
  return BigInt(spec.radix === 16 ? `0x${digits}` : digits);
}

export interface DirEntry {
  name: string;
  size: number;
  mtimeMs: number;
}

export interface StreamSegment {
  file: string;
  position: bigint;
  size: number;
  mtimeMs: number;
  closed: boolean;
}

/**
 * The segments of one stream directory listing, in position order, each
 * marked closed or open by the stream's rule. Files that do not match the
 * pattern are ignored (marker files too). Two files at the same position are
 * a ConfigError (the pattern is too loose). An empty segment is never closed.
 */
export function streamSegments(spec: StreamSpec, streamId: string, entries: readonly DirEntry[]): StreamSegment[] {
  const names = new Set(entries.map((e) => e.name));
  const segs: StreamSegment[] = [];
  const byPos = new Map<bigint, string>();
  for (const e of entries) {
    const position = segmentPosition(spec, e.name);
    if (position === undefined || !SEGMENT_FILE_RE.test(e.name)) continue;
    const other = byPos.get(position);
    if (other !== undefined) {
      throw new ConfigError(`stream '${streamId}': ${other} and ${e.name} both have position ${position}; make the pattern match one file per position`);
    }
    byPos.set(position, e.name);
    segs.push({ file: e.name, position, size: e.size, mtimeMs: e.mtimeMs, closed: false });
  }
  segs.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  segs.forEach((s, i) => {
    const r = spec.closed;
    s.closed =
      s.size > 0 &&
      (r.rule === "newest-open" ? i < segs.length - 1 : r.rule === "size" ? s.size >= r.bytes : names.has(`${s.file}${r.suffix}`));
  });
  // A segment after an open one is not shippable before it: positions are shipped in order.
  const firstOpen = segs.findIndex((s) => !s.closed);
  if (firstOpen >= 0) for (let i = firstOpen; i < segs.length; i++) segs[i]!.closed = false;
  return segs;
}

/**
 * Where a snapshot stands in a stream: the newest segment closed when it
 * starts (restore lays out the archived segments after it). With no closed
 * segment yet, the position before the first segment, and no segment path.
 */
export function snapshotStreamEntry(
  streamId: string,
  dir: string,
  segments: readonly StreamSegment[],
  rule?: ClosedRule,
): { id: string; dir: string; lastSegment?: string; lastSegno: number; closedMarker?: string } {
  // The rule that seals a segment, when it is a file of its own: restore lays it beside every segment it adds.
  const marker = rule?.rule === "marker" ? { closedMarker: rule.suffix } : {};
  const closed = segments.filter((s) => s.closed);
  const last = closed.at(-1);
  if (last !== undefined) {
    return { id: streamId, dir, lastSegment: posix.join(dir, last.file), lastSegno: Number(last.position), ...marker };
  }
  const first = segments[0]?.position ?? 1n;
  if (first === 0n) {
    throw new InvalidInputError(`stream '${streamId}' has no closed segment yet and starts at position 0: a snapshot can be taken once its first segment is closed`);
  }
  return { id: streamId, dir, lastSegno: Number(first - 1n), ...marker };
}
