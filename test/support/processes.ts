/** Test support: find the processes a test started indirectly (emulator children of a stack), by their command line. */
import { readdirSync, readFileSync } from "node:fs";

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return undefined;
  }
}

/** Pids of live (not zombie) processes other than this one whose command line mentions `text`. */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const line = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (line.includes(text) && state !== "Z") pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** The s3rver children and DynamoDB Local Java processes of the stack whose state lives under `dir`. */
export function emulatorPids(dir: string): { s3rver: number[]; java: number[] } {
  const pids = processesMentioning(dir);
  return {
    s3rver: pids.filter((pid) => cmdline(pid)?.includes("s3rver-child") ?? false),
    java: pids.filter((pid) => cmdline(pid)?.startsWith("java") ?? false),
  };
}
