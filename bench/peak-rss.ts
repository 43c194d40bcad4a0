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

export function ownPeakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: getrusage is all there is
  }
  return process.resourceUsage().maxRSS * 1024;
}
