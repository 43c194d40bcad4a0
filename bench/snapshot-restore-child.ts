/**
 * One walvault command of bench/snapshot-restore.ts in a process of its own
 * (for its own peak RSS and CPU): `node snapshot-restore-child.js SPEC`.
 * Kept apart from the bench so it loads what the agent loads (the agent's
 * modules, the push or the restore), not the local stack and PostgreSQL
 * tooling the bench itself needs: measured, importing those cost the
 * restore child ~0.6 s of CPU before its first request.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { RestoreResult } from "../agent/restore.js";
import type { SnapshotPushOptions, SnapshotPushResult, SnapshotSource } from "../agent/snapshot-push.js";

export type ChildSpec =
  | { op: "push"; configPath: string; databaseId: string; source: SnapshotSource; opts: SnapshotPushOptions }
  | { op: "restore"; configPath: string; databaseId: string; snapshotId: string; toDir: string; parallel: number };

export interface Usage {
  maxRssBytes: number;
  /** CPU seconds (user + system) of the Node process, all threads. */
  cpuSeconds: number;
  /** CPU seconds of its waited-for children (pg_basebackup, psql). */
  childCpuSeconds: number;
}

export type RestoreSummary = Omit<RestoreResult, "plan">;
export type ChildOutput = ({ op: "push"; result: SnapshotPushResult } | { op: "restore"; result: RestoreSummary }) & Usage;

/** CPU seconds of the waited-for children of this process (/proc/self/stat cutime + cstime). */
function childrenCpuSeconds(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    return (Number(f[13]) + Number(f[14])) / ticks;
  } catch {
    return 0;
  }
}

async function child(spec: ChildSpec): Promise<void> {
  const { agentClients } = await import("../agent/clients.js");
  const { loadConfig } = await import("../agent/config.js");
  const cfg = loadConfig({ config: spec.configPath, database: spec.databaseId });
  const clients = agentClients(cfg);
  let out: ChildOutput;
  const usage = (): Usage => {
    const cpu = process.cpuUsage();
    return { maxRssBytes: process.resourceUsage().maxRSS * 1024, cpuSeconds: (cpu.user + cpu.system) / 1e6, childCpuSeconds: childrenCpuSeconds() };
  };
  if (spec.op === "push") {
    const { snapshotPush } = await import("../agent/snapshot-push.js");
    const result = await snapshotPush(spec.source, { ...cfg, databaseId: spec.databaseId }, clients, { ...spec.opts, progress: false });
    out = { op: "push", result, ...usage() };
  } else {
    const { restore } = await import("../agent/restore.js");
    const r = await restore(clients, cfg, {
      databaseId: spec.databaseId,
      target: { kind: "snapshot", id: spec.snapshotId },
      toDir: spec.toDir,
      parallel: spec.parallel,
    });
    const { plan: _plan, ...result } = r; // the plan holds bigints
    out = { op: "restore", result, ...usage() };
  }
  process.stdout.write(JSON.stringify(out));
}

await child(JSON.parse(process.argv[2]!) as ChildSpec);
