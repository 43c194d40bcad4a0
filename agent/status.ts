/** `walvault wal list` and `walvault status`: what the catalog says about one database. */
import { continuityOfSorted, type TimelineContinuity } from "../core/continuity.js";
import { ArchivedThrough } from "../core/generic-wal.js";
import { PositionList } from "../core/wal-positions.js";
import { genericSegno, streamOfRecord } from "../core/restore-input.js";
import type { WalRecord } from "../core/schemas.js";
import { parseWalFileName, segmentName } from "../core/wal.js";
import type { AgentClients } from "./clients.js";
import type { AgentStatus } from "./resident.js";
import { formatBytes } from "./progress.js";

/** Archived segments `first` .. `last`, with when the first and the last were archived (`from`, `to`; absent for a name the catalog does not hold). */
export interface WalRange {
  first: string;
  last: string;
  segments: number;
  from?: string;
  to?: string;
}

/** Segments missing between `after` and `before`, with when those two were archived (`from`, `to`). */
export interface WalGap {
  after: string;
  before: string;
  missing: number;
  from?: string;
  to?: string;
}

export interface StatusReport {
  databaseId: string;
  segments: number;
  historyFiles: number;
  storedBytes: number;
  rawBytes: number;
  lastArchived?: { name: string; archivedAt: string };
  /** Seconds since the last segment was archived. */
  archiveLagSeconds?: number;
  timelines: {
    timeline: number;
    ranges: WalRange[];
    gaps: WalGap[];
  }[];
  /** Generic databases: per WAL stream, the same by segment position. */
  streams?: {
    stream: string;
    ranges: WalRange[];
    gaps: WalGap[];
  }[];
  /** Generic: every segment closed before this is archived (the last complete watch scan): time targets reach up to it. */
  archivedThrough?: string;
  gaps: number;
  quarantined: number;
}

/**
 * `walvault status`: the catalog's WAL read a page at a time (walPages),
 * never whole: the totals and every segment's position and archive time (16
 * bytes each, by timeline or stream), from which the ranges and gaps come
 * (core/continuity.ts), and their ends' names (PostgreSQL: from the
 * position) and times. A generic database's names are its records': they
 * are read in a second pass, for the segments at the ends only. At 1M
 * segments that is ~16 MB instead of ~0.7 GB of records.
 */
export async function status(clients: AgentClients, databaseId: string, now = new Date()): Promise<StatusReport> {
  const [db, head, quarantined] = await Promise.all([clients.catalog.getDatabase(databaseId), clients.catalog.getHead(databaseId), clients.catalog.listQuarantine(databaseId)]);
  const segSize = db?.walSegmentSize;
  const generic = db?.kind === "generic";
  /** A segment's group (its timeline, or its stream for a generic database: "?" when none) and position. */
  const placeOf = (r: WalRecord): { group: string; segno: bigint } => {
    if (generic) return { group: streamOfRecord(r) ?? "?", segno: genericSegno(r, segSize) ?? 0n };
    const p = parseWalFileName(r.name, segSize);
    return { group: String(p.timeline), segno: p.segno! };
  };

  // Pass 1: totals and positions.
  const totals = { segments: 0, historyFiles: 0, storedBytes: 0, rawBytes: 0 };
  const positions = new Map<string, PositionList>();
  const through = generic ? new ArchivedThrough() : undefined;
  for await (const records of walPages(clients, databaseId)) {
    for (const r of records) {
      totals.storedBytes += r.storedSize;
      totals.rawBytes += r.size;
      if (r.kind === "history") totals.historyFiles++;
      if (r.kind !== "segment") continue;
      totals.segments++;
      const { group, segno } = placeOf(r);
      let list = positions.get(group);
      if (list === undefined) positions.set(group, (list = new PositionList()));
      list.push(segno, Date.parse(r.archivedAt));
    }
    through?.add(records.filter((r) => r.kind === "segment"));
  }
  // Streams take the timeline's place in continuity (numbered in name order); timelines in ascending order.
  const groups = generic ? [...positions.keys()].sort() : [...positions.keys()].sort((a, b) => Number(a) - Number(b));
  const continuity = groups.map((g, i) => ({ group: g, c: continuityOfSorted(generic ? i + 1 : Number(g), positions.get(g)!.sorted().pos) }));

  // The names and archive times of the segments at the ends of ranges and gaps: PostgreSQL's from the positions,
  // a generic database's from its records, in a second pass.
  const endsOf = (c: TimelineContinuity): bigint[] => [...c.ranges.flatMap((r) => [r.first, r.last]), ...c.gaps.flatMap((g) => [g.after, g.before])];
  const nameAt = new Map<string, string>();
  const archivedAt = new Map<string, string>();
  if (!generic) {
    for (const { group, c } of continuity) {
      for (const x of endsOf(c)) {
        const at = positions.get(group)!.timeAt(x);
        // (A time that is not one, from a hand-made record, is left out, as a name the catalog does not hold.)
        if (at !== undefined && Number.isFinite(at)) archivedAt.set(segmentName(c.timeline, x, segSize), new Date(at).toISOString());
      }
    }
  }
  const ends = new Set(generic ? continuity.flatMap(({ group, c }) => endsOf(c).map((x) => `${group}:${x}`)) : []);
  if (ends.size > 0) {
    for await (const records of walPages(clients, databaseId)) {
      for (const r of records) {
        if (r.kind !== "segment") continue;
        const { group, segno } = placeOf(r);
        const key = `${group}:${segno}`;
        if (!ends.has(key)) continue;
        nameAt.set(key, r.name);
        archivedAt.set(r.name, r.archivedAt);
      }
    }
  }

  positions.clear();

  /** One timeline's (or stream's) continuity as named ranges and gaps, each with its end segments' archive times when the catalog holds them. */
  const named = (c: TimelineContinuity, name: (segno: bigint) => string): { ranges: WalRange[]; gaps: WalGap[] } => {
    const times = (a: string, b: string): { from?: string; to?: string } => {
      const from = archivedAt.get(a);
      const to = archivedAt.get(b);
      return { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) };
    };
    return {
      ranges: c.ranges.map((r) => {
        const [first, last] = [name(r.first), name(r.last)];
        return { first, last, segments: Number(r.last - r.first + 1n), ...times(first, last) };
      }),
      gaps: c.gaps.map((g) => {
        const [after, before] = [name(g.after), name(g.before)];
        return { after, before, missing: Number(g.missing), ...times(after, before) };
      }),
    };
  };
  const timelines: StatusReport["timelines"] = generic ? [] : continuity.map(({ c }) => ({ timeline: c.timeline, ...named(c, (segno) => segmentName(c.timeline, segno, segSize)) }));
  const streams: StatusReport["streams"] = generic
    ? continuity.map(({ group, c }) => ({ stream: group, ...named(c, (segno) => nameAt.get(`${group}:${segno}`) ?? `${group}@${segno}`) }))
    : undefined;
  const complete = through?.result();
  return {
    databaseId,
    ...totals,
    ...(head
      ? {
          lastArchived: { name: head.lastName, archivedAt: head.lastArchivedAt },
          archiveLagSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(head.lastArchivedAt)) / 1000)),
        }
      : {}),
    timelines,
    ...(streams ? { streams } : {}),
    ...(complete ? { archivedThrough: complete.toISOString() } : {}),
    gaps: [...timelines, ...(streams ?? [])].reduce((a, t) => a + t.gaps.length, 0),
    quarantined: quarantined.length,
  };
}

/** Sizes in decimal units, as every other screen of the agent (agent/progress.ts): not MiB here and MB there. */
export { formatBytes };

export function formatStatus(s: StatusReport): string {
  const lines = [`database ${s.databaseId}`];
  lines.push(
    s.lastArchived
      ? `  last archived   ${s.lastArchived.name} at ${s.lastArchived.archivedAt} (${s.archiveLagSeconds} s ago)`
      : "  last archived   nothing yet",
  );
  lines.push(`  archived        ${s.segments} segments, ${s.historyFiles} history files, ${formatBytes(s.rawBytes)} (${formatBytes(s.storedBytes)} stored)`);
  for (const t of s.timelines) {
    for (const r of t.ranges) lines.push(`  timeline ${t.timeline}      ${r.first} .. ${r.last} (${r.segments} segments)`);
    for (const g of t.gaps) lines.push(`  GAP             ${g.missing} segment(s) missing after ${g.after}, before ${g.before}`);
  }
  for (const t of s.streams ?? []) {
    for (const r of t.ranges) lines.push(`  stream ${t.stream.padEnd(8)} ${r.first} .. ${r.last} (${r.segments} segments)`);
    for (const g of t.gaps) lines.push(`  GAP             ${g.missing} segment(s) missing after ${g.after}, before ${g.before}`);
  }
  if (s.archivedThrough) lines.push(`  complete until  ${s.archivedThrough} (time targets reach up to here)`);
  lines.push(`  gaps            ${s.gaps === 0 ? "none" : s.gaps}`);
  if (s.quarantined > 0) lines.push(`  quarantined     ${s.quarantined} upload(s) rejected by ingest`);
  return lines.join("\n");
}

/** The resident agent's line of `status`: its backlog and what it pushed ahead, or that none answers. */
export function formatAgentStatus(a: AgentStatus | undefined): string {
  if (a === undefined) return "  agent           not running here (each wal-push pushes by itself; `walvault agent --pgdata DIR` pushes ahead)";
  const b = a.backlog;
  const backlog =
    b === undefined
      ? "no data directory to watch"
      : b.segments === 0
        ? "backlog 0"
        : `backlog ${b.segments} segment(s), oldest ${b.oldest}${b.oldestReadySeconds === undefined ? "" : ` ready ${b.oldestReadySeconds} s ago`}`;
  const stored = a.storeMs === undefined ? "" : `, stored in ~${(a.storeMs / 1000).toFixed(1)} s`;
  return `  agent           running: ${backlog}; ${a.pushingAhead}/${a.concurrency} pushing ahead; ${a.stats.aheadPushed} pushed ahead, ${a.stats.aheadFailed} failed${stored}`;
}

const WAL_LIST_HEADER = ["NAME", "KIND", "TL", "START LSN", "SIZE", "STORED", "CODEC", "ARCHIVED"];
const walListRow = (r: WalRecord): string[] => [r.name, r.kind, String(r.timeline), r.startLsn ?? "-", formatBytes(r.size), formatBytes(r.storedSize), r.codec, r.archivedAt];
const walListLine = (cells: readonly string[], widths: readonly number[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();

export function formatWalList(records: WalRecord[]): string {
  const rows = records.map(walListRow);
  const widths = WAL_LIST_HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [WAL_LIST_HEADER, ...rows].map((r) => walListLine(r, widths)).join("\n");
}

/** WAL records read from the catalog a page at a time (Catalog.listWalPage): memory is one page, whatever the archive holds. */
export async function* walPages(clients: AgentClients, databaseId: string): AsyncGenerator<WalRecord[]> {
  let after: string | undefined;
  do {
    const page = await clients.catalog.listWalPage(databaseId, after);
    if (page.records.length > 0) yield page.records;
    after = page.next;
  } while (after !== undefined);
}

/**
 * `wal list` as it reads the pages (`walPages`), never the whole list in
 * memory (1M segments would be ~0.7 GB of records, and their JSON past V8's
 * longest string): `json`, the array `JSON.stringify(records, null, 2)`
 * would print, item by item; else the table, its columns as wide as the
 * first page needs (a longer value later pushes its row's next columns).
 */
export async function writeWalList(pages: AsyncIterable<WalRecord[]>, json: boolean, write: (text: string) => Promise<void>): Promise<void> {
  let widths: number[] | undefined;
  let first = true;
  for await (const records of pages) {
    if (json) {
      const items = records.map((r) => JSON.stringify(r, null, 2).replace(/^/gm, "  "));
      await write(`${first ? "[\n" : ",\n"}${items.join(",\n")}`);
    } else {
      const rows = records.map(walListRow);
      if (widths === undefined) {
        widths = WAL_LIST_HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
        await write(`${walListLine(WAL_LIST_HEADER, widths)}\n`);
      }
      const w = widths;
      await write(rows.map((r) => `${walListLine(r, w)}\n`).join(""));
    }
    first = false;
  }
  if (json) await write(first ? "[]\n" : "\n]\n");
  else if (widths === undefined) await write(`${walListLine(WAL_LIST_HEADER, WAL_LIST_HEADER.map((h) => h.length))}\n`);
}
