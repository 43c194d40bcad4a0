/**
 * Timeline history files: "<parentTLI>\t<switchpoint LSN>\t<reason>" per line,
 * comments start with '#'. The file for timeline N lists every ancestor and the
 * LSN at which the next timeline branched off it.
 */
import { InvalidInputError } from "./errors.js";
import { safeText } from "./text.js";
import { formatLsn, historyName, parseLsn } from "./wal.js";

/** How much of a malformed line a message quotes (escaped: core/text.ts). */
const QUOTED_LINE_MAX = 80;

export interface TimelineHistoryEntry {
  /** The ancestor timeline. */
  timeline: number;
  /** LSN where the following timeline branched off `timeline`. */
  switchLsn: bigint;
  reason: string;
}

export function parseTimelineHistory(text: string): TimelineHistoryEntry[] {
  const out: TimelineHistoryEntry[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const parts = line.split(/\s+/);
    const [tli, lsn] = parts;
    if (tli === undefined || lsn === undefined || !/^\d+$/.test(tli)) {
      throw new InvalidInputError(`timeline history line ${i + 1} is malformed: '${safeText(line, QUOTED_LINE_MAX)}'`);
    }
    const timeline = Number.parseInt(tli, 10);
    const prev = out.at(-1);
    if (prev && timeline <= prev.timeline) {
      throw new InvalidInputError(
        `timeline history line ${i + 1}: timeline ${timeline} does not increase after ${prev.timeline}`,
      );
    }
    let switchLsn: bigint;
    try {
      switchLsn = parseLsn(lsn);
    } catch (cause) {
      throw new InvalidInputError(
        `timeline history line ${i + 1} is malformed: '${safeText(line, QUOTED_LINE_MAX)}' (switch point '${safeText(lsn, 40)}' is not an LSN)`,
        { cause },
      );
    }
    out.push({ timeline, switchLsn, reason: parts.slice(2).join(" ") });
  });
  return out;
}

/**
 * The history file of `timeline` (N.history), checked as PostgreSQL writes
 * one: text lines that parse (parseTimelineHistory), at least one ancestor
 * (timeline N >= 2 branched off some parent; a file with only comments, such
 * as "# nothing here", is no history), every ancestor below N, and switch
 * points that never go back. Throws InvalidInputError naming the file and
 * the rule; quoted content is escaped.
 */
export function parseHistoryFile(content: string | Uint8Array, timeline: number): TimelineHistoryEntry[] {
  const name = historyName(timeline);
  const text = typeof content === "string" ? content : Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString("utf8");
  // Not U+FFFD: a reason may quote a restore point name in the server's encoding (LATIN1...), not UTF-8.
  if (text.includes("\u0000")) {
    throw new InvalidInputError(`${name} is not a timeline history file: it is not text`);
  }
  let entries: TimelineHistoryEntry[];
  try {
    entries = parseTimelineHistory(text);
  } catch (e) {
    throw new InvalidInputError(`${name} is not a timeline history file: ${(e as Error).message}`, { cause: e });
  }
  if (entries.length === 0) {
    throw new InvalidInputError(`${name} is not a timeline history file: it lists no parent timeline (timeline ${timeline} must have branched off one)`);
  }
  const last = entries.at(-1)!;
  if (last.timeline >= timeline) {
    throw new InvalidInputError(`${name} lists timeline ${last.timeline}, which is not an ancestor of timeline ${timeline}`);
  }
  entries.forEach((e, i) => {
    const prev = entries[i - 1];
    if (prev && e.switchLsn < prev.switchLsn) {
      throw new InvalidInputError(
        `${name} is not a timeline history file: timeline ${e.timeline} branches off at ${formatLsn(e.switchLsn)}, before its parent's switch point ${formatLsn(prev.switchLsn)}`,
      );
    }
  });
  return entries;
}
