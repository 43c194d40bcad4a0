/** What the benchmarks read of processes: CPU from /proc, pids by command line, and the OS user PostgreSQL runs as. */
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let clockTicks: number | undefined;
/** Clock ticks per second, the unit of /proc's CPU times (getconf CLK_TCK, read once; 100 if it cannot be read). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses): [0] is the state. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** CPU seconds (user+sys) of a process from /proc; with `children`, of its waited-for children. 0 when it is gone. */
export function procCpu(pid: number, children = false): number {
  try {
    const f = statFields(pid);
    const [u, s] = children ? [f[13], f[14]] : [f[11], f[12]];
    return (Number(u) + Number(s)) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** Pids whose command line contains every needle (every pid, given none). */
export function pidsMatching(...needles: string[]): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
        return needles.every((n) => cmd.includes(n));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The parent pid of a process (/proc), undefined when it is gone. */
export function parentPid(pid: number): number | undefined {
  try {
    return Number(statFields(pid)[1]);
  } catch {
    return undefined;
  }
}

/** uid/gid of the OS user PostgreSQL runs as when this process is root (ScratchPostgres's rule: WALVAULT_PG_OS_USER, else postgres); undefined otherwise. */
export function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const user = process.env.WALVAULT_PG_OS_USER ?? "postgres";
  const id = (flag: string): number => Number(spawnSync("id", [flag, user], { encoding: "utf8" }).stdout.trim());
  return { uid: id("-u"), gid: id("-g") };
}
