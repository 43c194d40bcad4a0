/**
 * Fault injection under a real PostgreSQL 15 archiving through
 * `archive_command = walvault wal-push %p` and the resident agent (run as the
 * server's OS user, pushing .ready segments ahead): the faults our users fear,
 * many small injections of each kind in an order and with durations drawn from
 * a fixed seed —
 *
 *   agent-killed     the resident agent SIGKILLed while a push is in flight, then started again
 *   s3-down          the storage endpoint (s3rver) stopped or frozen for a while
 *   catalog-down     the catalog (DynamoDB Local) frozen for a while, or SIGKILLed (the stack restarts it)
 *   handler-timeout  the path's steps timing out after doing their work, or hanging to their timeout
 *   duplicate-event  the same work started twice (at once, or after the first run ended): an upload
 *                    event delivered twice (incoming/), a wal-record execution started twice (direct WAL)
 *   stack-killed     the local stack's emulators SIGKILLed right after PostgreSQL got a success, then
 *                    the stack started again in the same directory (on new ports)
 *
 * One suite, run once per archive path (ArchivePathUnderTest): the incoming/
 * path (ingest's Validate, Promote, Record, started by upload events) and
 * direct WAL (the agent writes into the vault and starts wal-record, whose
 * ValidateRecord verifies and records).
 *
 * After each round PostgreSQL's own retries must archive everything it has
 * closed (waited for by bounded polling, never by timing), and at the end
 * every segment PostgreSQL archived is in the catalog, contiguous, and
 * byte-identical in the vault to the copy archive_command kept; nothing is
 * quarantined. Prints `faults (<path>): N injected, N survived, 0 segments lost`.
 */
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyzeContinuity } from "../../core/continuity.js";
import { REJECTED_SUFFIX } from "../../core/keys.js";
import { parseWalFileName } from "../../core/wal.js";
import { downloadVerified } from "../../agent/wal-fetch.js";
import type { FaultContext, InjectedFault, LocalStackOptions } from "../../local/stack.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { archiveCommandKeeping, archivedSegments, archiveWorkDir } from "./postgres.js";
import { createWorkflowRunner } from "../../store/workflows.js";
import { listKeys, poll, stackClients, tempDir } from "./harness.js";
import { startPgAgent, type PgAgent } from "./pg-agent.js";
import { emulatorPids } from "./processes.js";
import { seededRandom } from "./random.js";
import type { TestStack } from "./stack.js";
import { startTestStackIn } from "./stack-restart.js";

/** One way a WAL segment travels from wal-push to the catalog, as the faults need to know it. */
export interface ArchivePathUnderTest {
  /** Named in the suite's title and its printed line. */
  label: string;
  /** Selects the path for archive_command and the agent (WALVAULT_WAL_DIRECT). */
  env: Record<string, string>;
  /** The workflow every archived segment goes through, as FaultContext names it. */
  workflow: "ingest" | "wal-record";
  /** The other path's workflow: no segment may go through it, or the suite proves less than it says. */
  otherWorkflow: "ingest" | "wal-record";
  /** Its first step: the moment an upload has just landed (the agent is waiting on it). */
  firstStep: string;
  /** Steps made to time out after doing their work, and in how many rounds (3 faults each). */
  timesOutAfterWork: { state: string; rounds: number }[];
  /** The step made to hang to its timeout (shortened to 3 s), in one round of 2 faults. */
  hangs: string;
  /** The first step's input → the start of the same work again: the workflow and the input a second delivery starts it with. */
  again(input: unknown, arns: TestStack["stateMachineArns"]): { arn: string; input: unknown; id: string } | undefined;
}

type Kind = "agent-killed" | "s3-down" | "catalog-down" | "handler-timeout" | "duplicate-event" | "stack-killed";
const KINDS: Kind[] = ["agent-killed", "s3-down", "catalog-down", "handler-timeout", "duplicate-event", "stack-killed"];

const SEGMENT_SIZE = 1 << 20;
const SEED = 0x5eed_0010;
const DRAIN_TIMEOUT_MS = 180_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function describeArchiveFaults(path: ArchivePathUnderTest): void {
  const DB = `pg-faults-${path.workflow}`;
  const random = seededRandom(SEED);
  const between = (lo: number, hi: number): number => Math.round(lo + random() * (hi - lo));

  const injected = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  const survived = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  /** First invocations of each workflow's first step: which path the segments really took. */
  const firstSteps: Record<string, number> = { ingest: 0, "wal-record": 0 };

  let stack: TestStack;
  let stateDir: string;
  let workDir: string;
  let originals: string;
  let socket: string;
  let pg: ScratchPostgres;
  let agent: PgAgent;
  /** The newest segment PostgreSQL closed (pg_switch_wal), which every drain waits to see archived. */
  let lastClosed = "";
  /** When each round started: shown when an assertion fails. */
  const roundLog: string[] = [];

  // ---------------------------------------------------------- handler faults

  /** Faults the stack's injectFault hook applies to the next `remaining` matching invocations. */
  type Armed =
    | { kind: "after-work"; state: string; remaining: number }
    | { kind: "hang"; remaining: number }
    | { kind: "duplicate-now" | "duplicate-later"; remaining: number }
    | { kind: "kill-agent"; remaining: number };
  let armed: Armed | undefined;
  /** Work already started a second time (a duplicate is not duplicated again). */
  const duplicated = new Set<string>();
  const pendingDuplicates = new Set<Promise<void>>();
  /** A duplicate that could not be delivered would make the test prove less than it says. */
  const duplicateErrors: string[] = [];

  function startAgain(arn: string, input: unknown, delayMs: number): void {
    const p = (async () => {
      await sleep(delayMs);
      await createWorkflowRunner(stack.config).start(arn, input);
    })()
      .catch((e: unknown) => {
        duplicateErrors.push(String(e));
      })
      .finally(() => pendingDuplicates.delete(p));
    pendingDuplicates.add(p);
  }

  const injectFault = (ctx: FaultContext): InjectedFault => {
    if (ctx.attempt === 1 && ctx.state === (ctx.workflow === "ingest" ? "Validate" : "ValidateRecord")) firstSteps[ctx.workflow] = (firstSteps[ctx.workflow] ?? 0) + 1;
    if (!armed || armed.remaining <= 0 || ctx.workflow !== path.workflow || ctx.attempt !== 1) return undefined;
    switch (armed.kind) {
      case "after-work":
      case "hang": {
        if (ctx.state !== (armed.kind === "hang" ? path.hangs : armed.state)) return undefined;
        armed.remaining--;
        injected["handler-timeout"]++;
        return armed.kind === "hang" ? "timeout" : { after: "timeout" };
      }
      case "duplicate-now":
      case "duplicate-later": {
        if (ctx.state !== path.firstStep) return undefined;
        const again = path.again(ctx.input, stack.stateMachineArns);
        if (!again || duplicated.has(again.id)) return undefined;
        duplicated.add(again.id);
        armed.remaining--;
        injected["duplicate-event"]++;
        startAgain(again.arn, again.input, armed.kind === "duplicate-now" ? 0 : between(300, 1500));
        return undefined;
      }
      case "kill-agent": {
        if (ctx.state !== path.firstStep || agent.done()) return undefined;
        armed.remaining--;
        injected["agent-killed"]++;
        agent.child.kill("SIGKILL"); // an upload has just landed: the agent is mid-push
        return undefined;
      }
    }
  };

  const stackOptions: Omit<LocalStackOptions, "stateDir" | "databases"> = {
    persistent: true,
    injectFault,
    // A hung step is given up after 3 s rather than its deployed timeout.
    lambdaTimeoutMs: { [path.hangs]: 3000 },
    // With that short a timeout, a cold sandbox's first invocation could time out by itself under load: the faults here are the injected ones.
    lambdaRuntime: "in-process",
  };
  const databases = [{ id: DB, walSegmentSize: SEGMENT_SIZE }];

  // ---------------------------------------------------------------- workload

  async function closeSegments(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const closed = await pg.psql("insert into t select g, md5(g::text) from generate_series(1, 300) g; select pg_walfile_name(pg_switch_wal())");
      if (closed > lastClosed) lastClosed = closed;
    }
  }

  async function lastArchived(): Promise<string> {
    return pg.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
  }

  /** Waits until PostgreSQL reports everything it closed archived, waking its archiver (SIGHUP) after failures. */
  async function drain(what: string): Promise<void> {
    const target = lastClosed;
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    let lastNudge = Date.now();
    for (;;) {
      if ((await lastArchived()) >= target) break;
      if (Date.now() > deadline) {
        throw new Error(`after ${what}: ${target} not archived within ${DRAIN_TIMEOUT_MS} ms (last ${await lastArchived()})\n${await pg.logTail(30)}\nagent: ${agent.stderr.slice(-3000)}`);
      }
      if (Date.now() - lastNudge > 1000) {
        await pg.psql("select pg_reload_conf()"); // PostgreSQL retries a failing archive_command only when woken or after 60 s
        lastNudge = Date.now();
      }
      await sleep(100);
    }
    await Promise.allSettled([...pendingDuplicates]);
    await stack.idle();
  }

  function archivedCopies(): string[] {
    return archivedSegments(originals, SEGMENT_SIZE);
  }

  async function startAgent(): Promise<PgAgent> {
    return startPgAgent({ configPath: stack.configPath, socket, dataDir: pg.dataDir, database: DB, home: workDir, timeoutSeconds: 30, env: path.env });
  }

  // ------------------------------------------------------------------ rounds

  /** Arms a handler fault for `count` invocations, closes segments until they are used up, then drains. */
  async function handlerRound(fault: Armed, faultKind: Kind): Promise<void> {
    const count = fault.remaining;
    armed = fault;
    const deadline = Date.now() + 90_000;
    while (fault.remaining > 0) {
      if (Date.now() > deadline) throw new Error(`${fault.kind}: ${fault.remaining} of ${count} faults never found an invocation to hit`);
      await closeSegments(1);
      const before = fault.remaining;
      const waitUntil = Date.now() + 3000;
      while (fault.remaining === before && Date.now() < waitUntil) await sleep(50);
    }
    armed = undefined;
    await drain(`${count} x ${fault.kind}`);
    survived[faultKind] += count;
  }

  /** Freezes a process (it holds its connections and answers nothing) while PostgreSQL closes segments, for downMs. */
  async function frozenWhileClosing(pid: number, downMs: number): Promise<void> {
    process.kill(pid, "SIGSTOP");
    try {
      await closeSegments(between(1, 3));
      await sleep(downMs);
    } finally {
      process.kill(pid, "SIGCONT");
    }
  }

  async function s3DownRound(): Promise<void> {
    const frozen = random() < 0.5;
    const downMs = between(300, 2500);
    injected["s3-down"]++;
    if (frozen) {
      await frozenWhileClosing(emulatorPids(stateDir).s3rver[0]!, downMs);
    } else {
      await stack.regions[0]!.stop();
      try {
        await closeSegments(between(1, 3));
        await sleep(downMs);
      } finally {
        await stack.regions[0]!.start();
      }
    }
    await drain(`s3rver ${frozen ? "frozen" : "stopped"} for ${downMs} ms`);
    survived["s3-down"]++;
  }

  async function catalogDownRound(kill: boolean): Promise<void> {
    const [pid] = emulatorPids(stateDir).java;
    injected["catalog-down"]++;
    if (kill) {
      process.kill(pid!, "SIGKILL");
      await closeSegments(between(1, 3));
      await poll(() => emulatorPids(stateDir).java.some((p) => p !== pid), 60_000, "DynamoDB Local to be restarted");
    } else {
      await frozenWhileClosing(pid!, between(300, 2500));
    }
    await drain(`DynamoDB Local ${kill ? "killed" : "frozen"}`);
    survived["catalog-down"]++;
  }

  async function agentKilledRound(): Promise<void> {
    if (random() < 0.5) {
      // At the moment an upload lands (the agent is waiting for its record).
      const fault: Armed = { kind: "kill-agent", remaining: 1 };
      armed = fault;
      const deadline = Date.now() + 60_000;
      while (fault.remaining > 0) {
        if (Date.now() > deadline) throw new Error("kill-agent never found an upload to interrupt");
        await closeSegments(1);
        const waitUntil = Date.now() + 3000;
        while (fault.remaining > 0 && Date.now() < waitUntil) await sleep(20);
      }
      armed = undefined;
    } else {
      // At a random moment while segments are being closed and pushed ahead.
      const closing = closeSegments(3);
      await sleep(between(0, 400));
      injected["agent-killed"]++;
      agent.child.kill("SIGKILL");
      await closing;
    }
    await agent.exited;
    await closeSegments(1); // archive_command meets a stale socket: it pushes by itself
    await sleep(between(100, 1500));
    agent = await startAgent();
    await drain("the agent killed");
    survived["agent-killed"]++;
  }

  async function stackKilledRound(): Promise<void> {
    const before = archivedCopies().length;
    await closeSegments(1);
    await poll(() => archivedCopies().length > before, DRAIN_TIMEOUT_MS, "PostgreSQL to get a success from archive_command");
    const acknowledged = archivedCopies().at(-1)!;
    injected["stack-killed"]++;
    const { s3rver, java } = emulatorPids(stateDir);
    const stopping = stack.stop(); // marks the emulators stopped, so nothing restarts them ...
    for (const pid of [...s3rver, ...java]) process.kill(pid, "SIGKILL"); // ... and they die as in a crash
    await stopping;
    await closeSegments(between(1, 2));
    await sleep(between(100, 1000));
    stack = await startTestStackIn(stateDir, databases, stackOptions); // new ports, config.json rewritten
    expect(await stackClients(stack).catalog.getWal(DB, acknowledged), `${acknowledged} was acknowledged before the kill`).toBeDefined();
    await drain("the stack killed");
    survived["stack-killed"]++;
  }

  // ------------------------------------------------------------------- suite

  beforeAll(async () => {
    stateDir = tempDir("walvault-faults-");
    stack = await startTestStackIn(stateDir, databases, stackOptions);
    ({ workDir, originals } = archiveWorkDir("walvault-faults-work-"));
    socket = join(tmpdir(), `wvf-${process.pid}.sock`);
    pg = await ScratchPostgres.create({
      initdbArgs: [`--wal-segsize=${SEGMENT_SIZE >> 20}`],
      settings: {
        archive_mode: "on",
        // The copy is taken only once wal-push said yes: these are the segments PostgreSQL considers archived.
        archive_command: archiveCommandKeeping(originals, "--timeout 20"),
        wal_recycle: "off",
      },
      env: { WALVAULT_CONFIG: stack.configPath, WALVAULT_AGENT_SOCKET: socket, ...path.env },
    });
    await pg.start();
    await pg.psql("create table t(id int, v text)");
    agent = await startAgent();
    await closeSegments(2);
    await drain("start");
  }, 180_000);

  afterAll(async () => {
    armed = undefined;
    if (agent && !agent.done()) {
      agent.child.kill("SIGTERM");
      await Promise.race([agent.exited, sleep(15_000)]);
      if (!agent.done()) agent.child.kill("SIGKILL");
    }
    await pg?.destroy().catch(() => undefined);
    await stack?.destroy();
    rmSync(socket, { force: true });
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  describe(`faults under PostgreSQL archiving through walvault (${path.label})`, () => {
    it("survives every injected fault: everything PostgreSQL archived is present, contiguous and byte-identical, nothing quarantined", async () => {
      // Prepare: the rounds, in an order drawn from the seed.
      const rounds: { name: string; run: () => Promise<void> }[] = [
        ...path.timesOutAfterWork.flatMap(({ state, rounds: n }) =>
          Array.from({ length: n }, () => ({ name: `${state} times out after its work`, run: () => handlerRound({ kind: "after-work", state, remaining: 3 }, "handler-timeout") })),
        ),
        { name: `${path.hangs} hangs to its timeout`, run: () => handlerRound({ kind: "hang", remaining: 2 }, "handler-timeout") },
        ...Array.from({ length: 2 }, () => ({ name: "the same work started twice at once", run: () => handlerRound({ kind: "duplicate-now", remaining: 4 }, "duplicate-event") })),
        ...Array.from({ length: 2 }, () => ({ name: "the same work started again later", run: () => handlerRound({ kind: "duplicate-later", remaining: 3 }, "duplicate-event") })),
        ...Array.from({ length: 6 }, () => ({ name: "s3rver down", run: s3DownRound })),
        ...Array.from({ length: 5 }, () => ({ name: "DynamoDB Local frozen", run: () => catalogDownRound(false) })),
        { name: "DynamoDB Local killed", run: () => catalogDownRound(true) },
        ...Array.from({ length: 6 }, () => ({ name: "the agent killed", run: agentKilledRound })),
        ...Array.from({ length: 3 }, () => ({ name: "the stack killed after an acknowledged push", run: stackKilledRound })),
      ];
      for (let i = rounds.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [rounds[i], rounds[j]] = [rounds[j]!, rounds[i]!];
      }

      // Act
      for (const [i, round] of rounds.entries()) {
        roundLog.push(`${new Date().toISOString()} round ${i + 1}: ${round.name} (closed up to ${lastClosed})`);
        await round.run();
      }
      await closeSegments(1);
      await drain("the last round");

      // Assess: every segment PostgreSQL archived (it got exit 0 and the copy was taken) ...
      const copies = archivedCopies();
      const { catalog, store } = stackClients(stack);
      const records = new Map((await catalog.listWal(DB)).map((r) => [r.name, r]));
      let lost = 0;
      const problems: string[] = [];
      for (const name of copies) {
        const rec = records.get(name);
        if (!rec) {
          lost++;
          problems.push(`${name}: not in the catalog`);
          continue;
        }
        // ... is in the vault with exactly PostgreSQL's bytes ...
        const bytes = await downloadVerified({ catalog, store }, stack.config, rec).catch((e: unknown) => {
          problems.push(`${name}: ${String(e)}`);
          return undefined;
        });
        if (!bytes?.equals(readFileSync(join(originals, name)))) {
          lost++;
          if (bytes) problems.push(`${name}: bytes differ from PostgreSQL's`);
        }
      }
      // ... the archive is one contiguous run covering all of them, PostgreSQL got past them all, and nothing was quarantined.
      const segments = [...records.values()].filter((r) => r.kind === "segment");
      const continuity = analyzeContinuity(segments.map((s) => parseWalFileName(s.name, SEGMENT_SIZE) as { timeline: number; segno: bigint }));
      const quarantinedUploads = (await listKeys(store, stack.config.incomingBucket, "")).filter((k) => k.startsWith("quarantine/"));
      const rejectedInVault = (await listKeys(store, stack.config.vaultBucket, `db/${DB}/`)).filter((k) => k.endsWith(REJECTED_SUFFIX));
      const quarantineRecords = await catalog.listQuarantine(DB);
      const total = KINDS.reduce((n, k) => n + injected[k], 0);
      const ok = KINDS.reduce((n, k) => n + survived[k], 0);
      const perKind = KINDS.map((k) => `${k} ${injected[k]}`).join(", ");
      process.stdout.write(`faults (${path.label}): ${total} injected, ${ok} survived, ${lost} segments lost (${perKind}; ${copies.length} segments archived)\n`);

      expect(problems).toEqual([]);
      expect(duplicateErrors).toEqual([]);
      expect(lost).toBe(0);
      expect(total).toBeGreaterThanOrEqual(50);
      expect(ok).toBe(total);
      for (const k of KINDS) expect(injected[k], k).toBeGreaterThan(0);
      expect(copies.length).toBeGreaterThan(50);
      // The segments took the path under test (the first step ran at least once per archived segment), and never the other.
      expect(firstSteps[path.workflow]).toBeGreaterThanOrEqual(copies.length);
      expect(firstSteps[path.otherWorkflow]).toBe(0);
      expect(continuity).toHaveLength(1);
      expect(continuity[0]!.gaps).toEqual([]);
      expect(continuity[0]!.ranges).toHaveLength(1);
      expect(segments.map((s) => s.name)).toEqual(expect.arrayContaining(copies));
      expect(copies.at(-1)! >= lastClosed || (await lastArchived()) >= lastClosed).toBe(true);
      const reasons = await Promise.all(
        quarantinedUploads.map(async (k) => `${k}: ${(await store.get(stack.config.incomingBucket, k))?.metadata["walvault-reason"] ?? "?"}`),
      );
      expect(reasons, `rounds:\n${roundLog.join("\n")}`).toEqual([]);
      expect(rejectedInVault).toEqual([]);
      expect(quarantineRecords.map((q) => `${q.name}: ${q.reason}`)).toEqual([]);
    }, 600_000);
  });
}
