/**
 * Timeline history files: "<parentTLI>\t<switchpoint LSN>\t<reason>" per line,
 * comments start with '#'. The file for timeline N lists every ancestor and the
 * LSN at which the next timeline branched off it.
 */
import { InvalidInputError } from "./errors.js";
import { parseLsn } from "./wal.js";

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
      throw new InvalidInputError(`timeline history line ${i + 1} is malformed: '${line}'`);
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
        `timeline history line ${i + 1} is malformed: '${line}' (switch point '${lsn}' is not an LSN)`,
        { cause },
      );
    }
    out.push({ timeline, switchLsn, reason: parts.slice(2).join(" ") });
  });
  return out;
}
