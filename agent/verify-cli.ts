/** `walvault verify`, `verify history`, `verify --scheduled` (agent/verify.ts does the checking). */
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentConfig } from "../core/config.js";
import { ConfigError, InvalidInputError, NotFoundError } from "../core/errors.js";
import { regionStatus } from "./regions.js";
import type { WalRecord } from "../core/schemas.js";
import { parseTime } from "../core/time.js";
import { postgresTargetEnd, randomTarget } from "../core/verify-policy.js";
import { lsnToSegno, parseLsn } from "../core/wal.js";
import { walRecordsFrom } from "../store/wal-from.js";
import type { AgentClients } from "./clients.js";
import type { RestoreConfig } from "./restore.js";
import { assertLevel, formatVerification, verifySnapshot, type VerifyChecks } from "./verify.js";
import { executionError, waitForExecution } from "./restore-remote.js";
import { createWorkflowRunner } from "../store/workflows.js";

type Print = (json: boolean, value: unknown, human: () => string) => void;

interface VerifyFlags {
  json: boolean;
  level?: string | undefined;
  snapshot?: string | undefined;
  "target-time"?: string | undefined;
  checks?: string | undefined;
  "work-dir"?: string | undefined;
  "state-machine"?: string | undefined;
  database?: string | undefined;
}

function loadChecks(path: string | undefined, databaseId: string): VerifyChecks | undefined {
  if (!path) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (cause) {
    throw new ConfigError(`checks file ${path} is not readable JSON: ${(cause as Error).message}`, { cause });
  }
  const c = ("sql" in raw || "command" in raw ? raw : raw[databaseId]) as VerifyChecks | undefined;
  if (c?.sql && !Array.isArray(c.sql)) throw new ConfigError(`checks file ${path}: sql must be a list of { name, query, expect? }`);
  if (c?.command && !Array.isArray(c.command)) throw new ConfigError(`checks file ${path}: command must be an argv list`);
  return c;
}

export async function verifyCommand(clients: AgentClients, cfg: RestoreConfig, databaseId: string, flags: VerifyFlags, print: Print): Promise<number> {
  const level = assertLevel(flags.level);
  const t = flags["target-time"];
  // Checked before anything is read: 'random' or one strict time (core/time.ts; verification restores to the millisecond).
  const given = t === undefined || t === "random" ? undefined : parseTime(t, "--target-time (or 'random')").date;
  const snapshots = await clients.catalog.listSnapshots(databaseId);
  const snap = flags.snapshot ? snapshots.find((s) => s.snapshotId === flags.snapshot) : snapshots.at(-1);
  if (!snap) throw new NotFoundError(flags.snapshot ? `snapshot ${flags.snapshot} of database ${databaseId} is not in the catalog` : `database ${databaseId} has no snapshot to verify`);
  let targetTime: Date | undefined = given;
  if (t === "random") {
    const [region] = await regionStatus(clients.catalog, cfg, databaseId, cfg.replicaRegion);
    const w = region?.windows.find((x) => x.snapshots.includes(snap.snapshotId));
    if (!w) throw new InvalidInputError(`snapshot ${snap.snapshotId} has no restorable window to pick a random target from`);
    const next = snapshots[snapshots.indexOf(snap) + 1];
    const from = new Date(snap.finishedAt);
    let end: Date | undefined = next && next.finishedAt < w.to ? new Date(next.finishedAt) : new Date(w.to);
    const db = await clients.catalog.getDatabase(databaseId);
    if (db?.kind === "postgres") {
      // The segments after the snapshot's start (store/wal-from.ts), not every WAL record of the database.
      const first = snap.startLsn === undefined ? 0n : lsnToSegno(parseLsn(snap.startLsn), db.walSegmentSize);
      const segments: WalRecord[] = [];
      for await (const r of walRecordsFrom(clients.catalog, databaseId, db.walSegmentSize, first)) if (r.kind === "segment") segments.push(r);
      end = postgresTargetEnd(from, end, new Date(w.to), segments);
    }
    targetTime = end ? randomTarget(from, end, Math.random) : undefined;
  }
  const checks = loadChecks(flags.checks, databaseId);
  const r = await verifySnapshot(clients, cfg, {
    databaseId,
    snapshotId: snap.snapshotId,
    level,
    ...(targetTime ? { targetTime } : {}),
    trigger: "cli",
    ...(checks ? { checks } : {}),
    workDir: flags["work-dir"] ?? join(tmpdir(), "walvault-verify"),
    ...(flags.json ? {} : { log: (line: string) => process.stderr.write(`walvault verify: ${line}\n`) }),
  });
  print(flags.json, r, () => formatVerification(r));
  return r.outcome === "passed" ? 0 : r.outcome === "failed" ? 1 : 2;
}

export async function historyCommand(clients: AgentClients, databaseId: string, flags: VerifyFlags, print: Print): Promise<number> {
  const runs = await clients.catalog.listVerifications(databaseId, flags.snapshot);
  print(flags.json, runs, () =>
    runs.length === 0
      ? "no verification runs"
      : runs
          .map(
            (r) =>
              `${r.finishedAt}  ${r.runId}  ${r.snapshotId}  L${r.level}  ${r.outcome.padEnd(6)}${r.targetTime ? ` to ${r.targetTime}` : ""}` +
              `${r.restoreSeconds !== undefined ? `  restore ${r.restoreSeconds.toFixed(1)} s` : ""}${r.failure ? `  ${r.failedLevel ? `L${r.failedLevel}: ` : ""}${r.failure}` : ""}`,
          )
          .join("\n"),
  );
  return 0;
}

export async function scheduledCommand(cfg: AgentConfig, flags: VerifyFlags, print: Print): Promise<number> {
  const arn = flags["state-machine"] ?? cfg.verifyStateMachineArn;
  if (!arn) throw new InvalidInputError("no verify workflow: pass --state-machine ARN or set verifyStateMachineArn in the config (stack output VerifyStateMachineArn)");
  const runner = createWorkflowRunner(cfg);
  const executionId = await runner.start(arn, { ...(flags.database ? { databaseId: flags.database } : {}), trigger: "schedule" });
  const state = await waitForExecution(runner, executionId);
  if (state.status !== "SUCCEEDED") throw executionError(state);
  // results are listed up to a bound (`listed` of `count` when not all are); outcomes counts all of them.
  const out = state.output as {
    count: number;
    results: { databaseId: string; snapshotId: string; outcome: string; failure?: string; restoreSeconds?: number }[];
    outcomes?: Record<string, number>;
    listed?: number;
    pagesPrefix?: string;
  };
  print(flags.json, out, () =>
    [
      `verification run ${executionId}: ${out.count} snapshot(s)`,
      ...out.results.map((r) => `  ${r.databaseId} ${r.snapshotId}: ${r.outcome}${r.failure ? ` — ${r.failure}` : ""}${r.restoreSeconds !== undefined ? ` (restore ${r.restoreSeconds.toFixed(1)} s)` : ""}`),
      ...(out.listed !== undefined ? [`  (${out.listed} of ${out.count} listed; all in ${out.pagesPrefix ?? "the run's work/ objects"} of the incoming bucket)`] : []),
    ].join("\n"),
  );
  // The reason of every run that did not pass also goes to stderr: whoever started it sees why, even when only stderr is kept.
  for (const r of out.results.filter((x) => x.outcome !== "passed")) {
    process.stderr.write(`walvault: verification of ${r.databaseId} snapshot ${r.snapshotId} ${r.outcome}: ${r.failure || "no reason recorded (see walvault verify history)"}\n`);
  }
  const notPassed = out.outcomes ? Object.entries(out.outcomes).some(([k, n]) => k !== "passed" && n > 0) : false;
  return !notPassed && out.results.every((r) => r.outcome === "passed") ? 0 : 1;
}
