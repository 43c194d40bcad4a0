/**
 * `walvault restore --remote` (agent/restore-remote.ts): the real CLI, as a
 * child process, starts restore.asl.json on the local stack through its Step
 * Functions endpoint (the SDK client, no mocks) and prints the plan; a
 * generic snapshot and WAL are put straight into the vault and the catalog
 * (test/support/snapshots.ts), as in test/functions/restore-workflow.test.ts.
 * Then the pieces without a stack: failures mapped to walvault errors,
 * polling, progress lines, targets from flags.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentConfigSchema } from "../../core/config.js";
import {
  ConfigError,
  InvalidInputError,
  NoSnapshotBeforeTargetError,
  SegmentConflictError,
  TimeoutError,
  WalGapError,
  WorkflowFailedError,
} from "../../core/errors.js";
import { startSfnEndpoint } from "../../local/sfn-endpoint.js";
import {
  executionError,
  executionProgress,
  formatRemotePlan,
  remoteRestore,
  remoteTarget,
  waitForExecution,
} from "../../agent/restore-remote.js";
import { SfnWorkflowRunner, type ExecutionState, type ExecutionStatus, type WorkflowRunner } from "../../store/workflows.js";
import { MemoryWorkObjects } from "../../store/work-objects.js";
import { stackClients, tempDir } from "../support/harness.js";
import { archiveGenericSegment, SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type CliResult, type TestStack } from "../support/stack.js";

const GEN = "gen-main";
const seg = (n: number): string => `00000001000000000000000${n}`;
const T0 = new Date("2026-03-01T10:00:00.000Z");
const at = (minutes: number): Date => new Date(T0.getTime() + minutes * 60_000);
const walBytes = (n: number): Buffer => Buffer.alloc(4096, n);
const EXECUTION = "arn:aws:states:local-1:000000000000:execution:walvault-restore:run-7";

let stack: TestStack;
let snap: UploadedSnapshot;

const stderrLines = (r: CliResult): string[] => r.stderr.split("\n").filter((l) => l !== "");

/** What both plans must agree on: the snapshot, the WAL by name, the target. */
function essentials(plan: Record<string, unknown>): Record<string, unknown> {
  return {
    databaseId: plan.databaseId,
    kind: plan.kind,
    snapshot: plan.snapshot,
    manifestKey: plan.manifestKey,
    targetTimeline: plan.targetTimeline,
    timelinePath: plan.timelinePath,
    wal: (plan.wal as { name: string }[]).map((w) => w.name),
    recoveryTarget: plan.recoveryTarget,
    endLsn: plan.endLsn,
    warnings: plan.warnings,
  };
}

beforeAll(async () => {
  stack = await startTestStack([{ id: GEN, kind: "generic" }]);
  const clients = stackClients(stack);
  const source = join(tempDir("walvault-restore-remote-"), "source");
  mkdirSync(join(source, "wal"), { recursive: true });
  writeFileSync(join(source, "data.db"), Buffer.alloc(50_000, 7));
  writeFileSync(join(source, "wal", seg(2)), walBytes(2));
  snap = await uploadSnapshotDir(clients, stack.config, {
    databaseId: GEN,
    dir: source,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: `wal/${seg(2)}`, lastSegno: 2 }] },
    startedAt: at(20),
    finishedAt: at(21),
    chunker: SMALL_CHUNKER,
  });
  for (const n of [1, 2, 3, 4]) {
    await archiveGenericSegment(clients, stack.config, { databaseId: GEN, stream: "wal", name: seg(n), segno: BigInt(n), bytes: walBytes(n), archivedAt: at(n * 10) });
  }
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
});

describe("walvault restore --remote on the local stack", () => {
  it("the local stack's config file names its Step Functions endpoint and restore state machine", () => {
    const cfg = agentConfigSchema.parse(JSON.parse(readFileSync(stack.configPath, "utf8")));
    expect(cfg.stepFunctionsEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(cfg.restoreStateMachineArn).toBe("arn:aws:states:local-1:000000000000:stateMachine:walvault-restore");
    expect(stack.stateMachineArns.restore).toBe(cfg.restoreStateMachineArn);
  });

  it.each([
    ["a time", ["--target-time", at(35).toISOString()], [seg(3)]],
    ["latest", ["--latest"], [seg(3), seg(4)]],
    ["a segment position", ["--target-lsn", "3"], [seg(3)]],
  ])("--json with %s: the workflow's plan is the one --plan-only --json makes", async (_what, target, walNames) => {
    // Prepare
    const startedBefore = stack.restoreStats.started;
    // Act
    const remote = await stack.cli(["restore", "--remote", "--json", ...target]);
    const local = await stack.cli(["restore", "--plan-only", "--json", ...target]);
    // Assess
    expect(remote.code, remote.stderr).toBe(0);
    expect(local.code, local.stderr).toBe(0);
    const remotePlan = JSON.parse(remote.stdout) as Record<string, unknown>;
    const localPlan = JSON.parse(local.stdout) as Record<string, unknown>;
    expect(essentials(remotePlan)).toEqual(essentials(localPlan));
    // (Generic segment names may carry their stream, "wal/<file>".)
    expect((essentials(remotePlan).wal as string[]).map((n) => n.split("/").at(-1))).toEqual(walNames);
    expect(remotePlan).toMatchObject({ snapshot: { id: snap.record.snapshotId }, chunkCount: snap.record.totals.uniqueChunks, walCount: walNames.length });
    // The remote one ran as a workflow execution, the local one did not.
    expect(stack.restoreStats.started).toBe(startedBefore + 1);
    expect(remote.stderr).toMatch(/started restore execution arn:aws:states:local-1:000000000000:execution:walvault-restore:/);
  });

  it("without --json prints a readable plan: the snapshot, each WAL stream's segments, the next step", async () => {
    const r = await stack.cli(["restore", "--remote", "--latest"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`restore plan for database ${GEN} (generic), from restore execution `);
    expect(r.stdout).toContain(`snapshot   ${snap.record.snapshotId}`);
    expect(r.stdout).toMatch(new RegExp(`WAL wal +2 segments, (wal/)?${seg(3)} \\.\\. (wal/)?${seg(4)}`));
    expect(r.stdout).toContain("walvault restore --to DIR");
    // Not a TTY: a line per status change.
    expect(stderrLines(r).filter((l) => /restore execution \S+ (RUNNING|SUCCEEDED)/.test(l))).toHaveLength(2);
  });

  it("a target before the oldest snapshot fails with the NoSnapshotBeforeTargetError line and a non-zero exit", async () => {
    // Prepare
    const failedBefore = stack.restoreStats.failed;
    // Act
    const r = await stack.cli(["restore", "--remote", "--target-time", at(5).toISOString()]);
    // Assess
    expect(r.code).toBe(new NoSnapshotBeforeTargetError("x").exitCode);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    const last = stderrLines(r).at(-1)!;
    expect(last).toMatch(/^walvault: restore execution \S+ failed: NoSnapshotBeforeTargetError: no snapshot is consistent at or before time 2026-03-01T10:05:00\.000Z/);
    expect(stderrLines(r).filter((l) => l.includes("NoSnapshotBeforeTargetError"))).toHaveLength(1);
    expect(stack.restoreStats.failed).toBe(failedBefore + 1);
  });

  it("an unknown state machine ARN: one line naming it, exit 1, nothing started", async () => {
    const startedBefore = stack.restoreStats.started;
    const arn = "arn:aws:states:local-1:000000000000:stateMachine:walvault-nope";
    const r = await stack.cli(["restore", "--remote", "--state-machine", arn]);
    expect(r.code).toBe(1);
    expect(stderrLines(r)).toEqual([`walvault: state machine ${arn} does not exist (Step Functions at ${stack.config.stepFunctionsEndpoint}): --state-machine must be the restore workflow's ARN (the stack output RestoreStateMachineArn)`]);
    expect(stack.restoreStats.started).toBe(startedBefore);
  });

  it("a configuration without restoreStateMachineArn and no --state-machine: a config error that says what to set", async () => {
    // Prepare
    const raw = JSON.parse(readFileSync(stack.configPath, "utf8")) as Record<string, unknown>;
    delete raw.restoreStateMachineArn;
    const path = join(tempDir(), "config.json");
    writeFileSync(path, JSON.stringify(raw));
    // Act
    const r = await stack.cli(["restore", "--remote"], { env: { WALVAULT_CONFIG: path } });
    const withFlag = await stack.cli(["restore", "--remote", "--json", "--state-machine", stack.stateMachineArns.restore], { env: { WALVAULT_CONFIG: path } });
    // Assess
    expect(r.code).toBe(2);
    expect(stderrLines(r)).toEqual([`walvault: no restore workflow to start: pass --state-machine ARN or set restoreStateMachineArn in ${path} (the stack output RestoreStateMachineArn)`]);
    expect(withFlag.code, withFlag.stderr).toBe(0);
    expect(JSON.parse(withFlag.stdout)).toMatchObject({ databaseId: GEN });
  });

  it.each([
    [["restore", "--remote", "--to", "/tmp/x"], /^walvault: restore --remote takes no --to: /],
    [["restore", "--remote", "--plan-only", "--force"], /^walvault: restore --remote takes no --plan-only, --force: /],
    [["restore", "--remote", "--parallel", "4"], /^walvault: restore --remote takes no --parallel: /],
    [["restore", "--remote", "--latest", "--target-time", "2026-03-01T10:00:00Z"], /^walvault: give one restore target, not --target-time and --latest$/],
    [["restore", "--remote", "--tier", "Expedited"], /^walvault: --tier must be Standard or Bulk, not 'Expedited'$/],
    [["restore", "--remote", "--timeout", "0"], /^walvault: --timeout must be a positive number of seconds, not '0'$/],
    [["restore", "--state-machine", "arn:x", "--to", "/tmp/x"], /^walvault: --state-machine only goes with --remote$/],
    [["restore", "--tier", "Bulk", "--timeout", "5", "--plan-only"], /^walvault: --tier, --timeout only go with --remote$/],
    [["restore", "--remote", "--thaw", "maybe"], /^walvault: --thaw must be on or off, not 'maybe'$/],
    [["restore", "--thaw", "on", "--plan-only"], /^walvault: --thaw only goes with --remote$/],
  ])("%j: one line, exit 2, nothing started", async (args, line) => {
    const startedBefore = stack.restoreStats.started;
    const r = await stack.cli(args);
    expect(r.code).toBe(2);
    expect(stderrLines(r)).toHaveLength(1);
    expect(stderrLines(r)[0]).toMatch(line);
    expect(stack.restoreStats.started).toBe(startedBefore);
  });

  it("--thaw on runs the thaw steps that the deployment's default skips", async () => {
    // Prepare
    const thawsBefore = stack.stepUsage.get("ThawFunctionArn")?.invocations ?? 0;
    // Act
    const off = await stack.cli(["restore", "--remote", "--latest", "--json"]);
    const afterOff = stack.stepUsage.get("ThawFunctionArn")?.invocations ?? 0;
    const on = await stack.cli(["restore", "--remote", "--latest", "--json", "--thaw", "on"]);
    // Assess
    expect(off.code, off.stderr).toBe(0);
    expect(on.code, on.stderr).toBe(0);
    expect(afterOff).toBe(thawsBefore);
    expect(stack.stepUsage.get("ThawFunctionArn")?.invocations ?? 0).toBeGreaterThan(afterOff);
    expect(JSON.parse(on.stdout)).toMatchObject({ databaseId: GEN });
  });

  it("the endpoint starts the stack's other workflows by ARN too, counted with them", async () => {
    // Prepare
    const runner = new SfnWorkflowRunner({ region: stack.config.region, endpoint: stack.config.stepFunctionsEndpoint!, credentials: stack.config.credentials! });
    const before = stack.workflowStats.ingest.started;
    // Act: an event for a key that is not a WAL file
    const id = await runner.start(stack.stateMachineArns.ingest, { "detail-type": "Object Created", source: "aws.s3", detail: { bucket: { name: "nope" }, object: { key: "x" } } });
    const state = await waitForExecution(runner, id, { pollMs: 20 });
    // Assess
    expect(id).toMatch(/:execution:walvault-ingest:/);
    expect(["SUCCEEDED", "FAILED"]).toContain(state.status);
    expect(stack.workflowStats.ingest.started).toBe(before + 1);
    runner.client.destroy();
  });
});

// ---------------------------------------------------------------------------
// Without a stack

const stateOf = (status: ExecutionStatus, extra: Partial<ExecutionState> = {}): ExecutionState => ({
  executionId: EXECUTION,
  status,
  startedAt: new Date(0),
  ...extra,
});

/** A runner whose describe() answers the given statuses in turn (the last one repeats). */
function scriptedRunner(statuses: ExecutionStatus[]): WorkflowRunner & { describes: number } {
  const r = {
    describes: 0,
    start: () => Promise.resolve(EXECUTION),
    describe: () => Promise.resolve(stateOf(statuses[Math.min(r.describes++, statuses.length - 1)]!)),
    runSync: () => Promise.reject(new Error("restore is a Standard workflow: never run synchronously")),
  };
  return r;
}

describe("execution failures as walvault errors", () => {
  it("a catalogued error name becomes that class, keeping its exit code, in one line with the cause", () => {
    const gap = executionError(stateOf("FAILED", { error: "WalGapError", cause: "segment 5 is missing\nmore detail" }));
    const conflict = executionError(stateOf("FAILED", { error: "SegmentConflictError", cause: "different bytes" }));
    expect(gap).toBeInstanceOf(WalGapError);
    expect(gap.message).toBe("restore execution run-7 failed: WalGapError: segment 5 is missing");
    expect(conflict).toBeInstanceOf(SegmentConflictError);
    expect(conflict.exitCode).toBe(3);
  });

  it("other error names are WorkflowFailedError; a timeout TimeoutError; an abort WorkflowFailedError", () => {
    const lambda = executionError(stateOf("FAILED", { error: "Lambda.Unknown", cause: "out of memory" }));
    const notAClass = executionError(stateOf("FAILED", { error: "describeError" }));
    const timedOut = executionError(stateOf("TIMED_OUT", { error: "States.Timeout" }));
    const aborted = executionError(stateOf("ABORTED"));
    expect(lambda).toBeInstanceOf(WorkflowFailedError);
    expect(lambda.message).toBe("restore execution run-7 failed: Lambda.Unknown: out of memory");
    expect(notAClass).toBeInstanceOf(WorkflowFailedError);
    expect(timedOut).toBeInstanceOf(TimeoutError);
    expect(timedOut.exitCode).toBe(5);
    expect(aborted).toBeInstanceOf(WorkflowFailedError);
    expect(aborted.message).toBe("restore execution run-7 was aborted");
  });
});

describe("waiting for an execution", () => {
  it("polls until the execution is over, reporting every description", async () => {
    const runner = scriptedRunner(["RUNNING", "RUNNING", "SUCCEEDED"]);
    const seen: string[] = [];
    const state = await waitForExecution(runner, EXECUTION, { pollMs: 1, onState: (s) => seen.push(s.status) });
    expect(state.status).toBe("SUCCEEDED");
    expect(seen).toEqual(["RUNNING", "RUNNING", "SUCCEEDED"]);
  });

  it("gives up with TimeoutError naming the execution while it still runs", async () => {
    const runner = scriptedRunner(["RUNNING"]);
    await expect(waitForExecution(runner, EXECUTION, { pollMs: 5, timeoutMs: 40 })).rejects.toThrow(TimeoutError);
    await expect(waitForExecution(runner, EXECUTION, { pollMs: 5, timeoutMs: 40 })).rejects.toThrow(/run-7 is still RUNNING after 0 s; it goes on/);
    expect(runner.describes).toBeGreaterThan(2);
  });

  it("an execution whose output is not a plan is a ConfigError naming the state machine", async () => {
    // Prepare: a real endpoint whose workflow answers something else
    const arn = "arn:aws:states:local-1:000000000000:stateMachine:walvault-ingest";
    const endpoint = await startSfnEndpoint({ workflows: [{ stateMachineArn: arn, run: async () => ({ status: "promoted" }) }] });
    const runner = new SfnWorkflowRunner({ region: "local-1", endpoint: endpoint.endpoint, credentials: { accessKeyId: "x", secretAccessKey: "y" } });
    try {
      // Act
      const run = remoteRestore(runner, { stateMachineArn: arn, input: { databaseId: GEN, target: { kind: "latest" } }, pollMs: 5, work: new MemoryWorkObjects() });
      // Assess
      await expect(run).rejects.toThrow(ConfigError);
      await expect(run).rejects.toThrow(/output is not a restore plan .*: is arn:aws:states:local-1:000000000000:stateMachine:walvault-ingest the restore workflow\?/);
    } finally {
      runner.client.destroy();
      await endpoint.stop();
    }
  });
});

describe("progress and output", () => {
  function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
    const s = { isTTY, text: "", write: (chunk: string) => ((s.text += chunk), true) };
    return s as unknown as NodeJS.WriteStream & { text: string };
  }

  it("not on a TTY: the ARN once, then a line per status change", () => {
    const stream = fakeStream(false);
    const p = executionProgress(stream);
    p.onStarted(EXECUTION);
    for (const s of ["RUNNING", "RUNNING", "RUNNING", "FAILED"] as const) p.onState(stateOf(s));
    const lines = stream.text.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(`walvault: started restore execution ${EXECUTION}`);
    expect(lines[1]).toBe("walvault: restore execution run-7 RUNNING");
    expect(lines[2]).toMatch(/^walvault: restore execution run-7 FAILED after \d+\.\d s$/);
  });

  it("on a TTY: one line redrawn in place, ended when the execution is over", () => {
    const stream = fakeStream(true);
    const p = executionProgress(stream);
    p.onStarted(EXECUTION);
    p.onState(stateOf("RUNNING"));
    p.onState(stateOf("RUNNING"));
    p.onState(stateOf("SUCCEEDED"));
    const redraws = stream.text.split("\r").slice(1);
    expect(redraws).toHaveLength(3);
    expect(redraws[0]).toMatch(/^restore execution run-7 {2}RUNNING {2}\d+ s\x1b\[K$/);
    expect(redraws[2]).toMatch(/SUCCEEDED {2}\d+\.\d s\x1b\[K\n$/);
  });

  it("a PostgreSQL plan shows timelines, WAL size and the recovery settings", () => {
    const text = formatRemotePlan(
      {
        databaseId: "pg-main",
        kind: "postgres",
        walSegmentSize: 16 * 2 ** 20,
        snapshot: { id: "20260301T102000Z-abcdef", timeline: 1, startLsn: "0/2000028", stopLsn: "0/2000100", startedAt: "2026-03-01T10:20:00.000Z", finishedAt: "2026-03-01T10:21:00.000Z" },
        manifestKey: "db/pg-main/snapshots/20260301T102000Z-abcdef/manifest.json",
        manifestSha256: "0".repeat(64),
        chunkCount: 1,
        targetTimeline: 2,
        timelinePath: [1, 2],
        wal: [
          { timeline: 1, name: "000000010000000000000002", key: "k2" },
          { timeline: 2, name: "000000020000000000000003", key: "k3" },
        ],
        walCount: 2,
        recoveryTarget: { recovery_target_time: "2026-03-01 10:35:00+00", recovery_target_timeline: "2" },
        endLsn: "0/4000000",
        warnings: ["a warning"],
      },
      EXECUTION,
    );
    expect(text).toContain("restore plan for database pg-main (postgres), from restore execution run-7");
    expect(text).toContain("timeline 1, consistent at 0/2000100");
    expect(text).toContain("1 chunk, manifest");
    expect(text).toContain("target     time 2026-03-01 10:35:00+00 on timeline 2");
    expect(text).toContain("timelines  1 -> 2");
    expect(text).toContain("WAL        2 segments, 000000010000000000000002 .. 000000020000000000000003 (33.6 MB)");
    expect(text).toContain("recovery_target_time = '2026-03-01 10:35:00+00'");
    expect(text).toContain("warning: a warning");
  });

  it("targets from flags: a time as ISO 8601, an LSN as given, a snapshot by id, a timeline kept", () => {
    expect(remoteTarget({ "target-time": "2026-03-01 10:35:00Z" })).toEqual({ kind: "time", time: "2026-03-01T10:35:00.000Z" });
    expect(remoteTarget({ "target-lsn": "0/3000060", timeline: "2" })).toEqual({ kind: "lsn", lsn: "0/3000060", timeline: 2 });
    expect(remoteTarget({ snapshot: "20260301T102000Z-abcdef" })).toEqual({ kind: "snapshot", snapshotId: "20260301T102000Z-abcdef" });
    expect(remoteTarget({})).toEqual({ kind: "latest" });
    expect(() => remoteTarget({ "target-lsn": "zz" })).toThrow();
    expect(() => remoteTarget({ "target-name": "a", latest: true })).toThrow(InvalidInputError);
  });

  it("a time target keeps its nanoseconds for the workflow, and a time without a zone or a bare number is refused before anything starts", () => {
    expect(remoteTarget({ "target-time": "2026-03-01 12:35:00.123456789+02:00" })).toEqual({ kind: "time", time: "2026-03-01T10:35:00.123456789Z" });
    for (const t of ["2026-03-01 10:35:00", "5", "2026-02-30T12:00:00Z"]) {
      expect(() => remoteTarget({ "target-time": t }), t).toThrow(/is not a time .*2026-12-01T21:11:18Z/);
    }
  });
});
