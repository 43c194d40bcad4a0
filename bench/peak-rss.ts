/**
 * A benchmark child's own peak RSS. getrusage's maxRSS is not it on Linux:
 * at exec the kernel keeps the high-water RSS of the memory image being
 * replaced (signal->maxrss), and a child started by fork is a copy of its
 * parent, so a walvault command spawned by a bench whose process holds the
 * local stack reported the bench's RSS whenever that was larger (measured:
 * every restore of an A/B run "peaked" at exactly 230 MB, the bench's own
 * size, while the children's samples said 190-210). VmHWM in
 * /proc/self/status is the high-water mark of this process's own memory
 * image since exec.
 */
import { readFileSync } from "node:fs";

/** Fields of /proc/self/status given in kB (VmHWM, VmRSS, RssAnon, RssFile...), in bytes; empty where there is no /proc. */
export function procStatusBytes(): Map<string, number> {
  const out = new Map<string, number>();
  let text: string;
  try {
    text = readFileSync("/proc/self/status", "utf8");
  } catch {
    return out;
  }
  for (const m of text.matchAll(/^(\w+):\s+(\d+) kB$/gm)) out.set(m[1]!, Number(m[2]) * 1024);
  return out;
}

export function ownPeakRssBytes(): number {
  // Not Linux: getrusage is all there is.
  return procStatusBytes().get("VmHWM") ?? process.resourceUsage().maxRSS * 1024;
}
