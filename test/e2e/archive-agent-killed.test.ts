/**
 * The resident agent killed mid-backlog (issue 13): a real PostgreSQL 15
 * archives through `walvault agent --pgdata` on the local stack at AWS's
 * latency (a segment is "stored" a second or more after its upload). The
 * test closes a burst of segments, kills the agent with SIGKILL while it is
 * pushing them ahead (its socket file stays behind, stale), and proves:
 * archive_command's `wal-push` calls go on archiving by themselves while the
 * agent is dead, with no failed call; an agent started again on the same
 * socket finds the backlog left and pushes it ahead; and nothing is lost:
 * every segment PostgreSQL archived is in the catalog, contiguous and
 * byte-identical to what PostgreSQL wrote.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScratchPostgres } from "../../agent/postgres.js";
import { askAgentStatus } from "../../agent/push-client.js";
import type { AgentStatus } from "../../agent/resident.js";
import { analyzeContinuity } from "../../core/continuity.js";
import type { WalRecord } from "../../core/schemas.js";
import { isWalFileName, parseWalFileName } from "../../core/wal.js";
import { AWS_LATENCY } from "../../local/latency.js";
import { startPgAgent, type PgAgent } from "../support/pg-agent.js";
import { archiveCommandKeeping, archivedSegments, archiveWorkDir, expectFetchedIdentical, switchAndWaitArchived } from "../support/postgres.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "pg-killed";
/**
 * Segments closed at once. At AWS's latency a wal-push that pushes by itself
 * stores about one segment every 2 s, so this many leave a backlog for the
 * restarted agent after the dead agent's calls archived a few.
 */
const BURST = 16;
/** .ready segments (and a push ahead running) before the agent is killed. */
const BACKLOG_AT_KILL = 4;
/** archive_command calls that must succeed while the agent is dead. */
const ARCHIVED_WHILE_DEAD = 2;

let stack: TestStack;
let primary: ScratchPostgres;
let agent: PgAgent | undefined;
let restarted: PgAgent | undefined;
let workDir: string;
let socket: string;
let originals: string;
/** The segments the burst closed, in order. */
let burst: string[];

/** What was seen along the way, asserted by the tests below. */
const seen = {
  /** The first agent's own view just before it was killed. */
  atKill: undefined as AgentStatus | undefined,
  readyAtKill: 0,
  killSignal: null as NodeJS.Signals | null,
  socketStaleAfterKill: false,
  /** pg_stat_archiver when the agent was dead, and when it was started again. */
  archiverAtKill: { archived: 0, failed: 0 },
  archiverAtRestart: { archived: 0, failed: 0 },
  /** Whether, once the archiver's count had grown, the killed agent was still dead, its socket file still there and nothing answering on it. */
  deadThroughout: false,
  readyAtRestart: 0,
  /** `walvault status --json`'s agent once everything was archived. */
  statusAfter: undefined as AgentStatus | null | undefined,
  failedAtEnd: 0,
  /** The lines wal-push wrote into PostgreSQL's log with a hint. */
  hints: [] as string[],
};

const statusDir = (): string => join(primary.dataDir, "pg_wal", "archive_status");
/** The segments PostgreSQL has closed and not yet had archived (pg_wal/archive_status/*.ready). */
const readySegments = (): string[] =>
  readdirSync(statusDir())
    .filter((f) => f.endsWith(".ready"))
    .map((f) => f.slice(0, -".ready".length))
    .filter((n) => isWalFileName(n) && parseWalFileName(n).kind === "segment");

async function archiver(): Promise<{ archived: number; failed: number; last: string }> {
  const [archived, failed, last] = (await primary.psql("select archived_count, failed_count, coalesce(last_archived_wal, '') from pg_stat_archiver")).split("|");
  return { archived: Number(archived), failed: Number(failed), last: last ?? "" };
}

/** Polls `probe` every `everyMs` until `done` holds; past `timeoutMs`, throws with what it last saw and PostgreSQL's and the agents' logs. */
async function pollUntil<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not within ${timeoutMs} ms (last seen ${JSON.stringify(v)})\n` +
          `PostgreSQL:\n${await primary.logTail(30)}\nfirst agent:\n${agent?.stderr ?? ""}\nrestarted agent:\n${restarted?.stderr ?? ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

beforeAll(async () => {
  // Prepare: the stack at AWS's latency; a primary archiving through the agent's socket (keeping a copy of what each call reported archived)
  stack = await startTestStack([{ id: DB }], { latency: AWS_LATENCY });
  ({ workDir, originals } = archiveWorkDir("walvault-killed-"));
  socket = join(workDir, "agent.sock");
  // Where wal-push keeps the stamp of its falling-behind hint (os.tmpdir()): this test's own, so the hint's once-per-5-minutes starts fresh.
  const stamps = join(workDir, "tmp");
  mkdirSync(stamps, { mode: 0o777 });
  chmodSync(stamps, 0o777);
  primary = await ScratchPostgres.create({
    settings: {
      archive_mode: "on",
      archive_command: archiveCommandKeeping(originals),
      // No checkpoint triggered by the burst's WAL (it would recycle archived segments under a push ahead).
      max_wal_size: "1GB",
    },
    env: { WALVAULT_CONFIG: stack.configPath, WALVAULT_DATABASE: DB, WALVAULT_AGENT_SOCKET: socket, TMPDIR: stamps },
  });
  await primary.start();
  await primary.psql("create table t (id int primary key, at timestamptz default now())");
  const agentOptions = { configPath: stack.configPath, socket, dataDir: primary.dataDir, database: DB, home: workDir, timeoutSeconds: 60 };
  agent = await startPgAgent(agentOptions);
  // The segments initdb and the table left are archived: the backlog below is the burst's alone.
  await switchAndWaitArchived(primary, 120_000);

  // Act: close BURST segments at once, more than the agent and the archiver store in the time it takes
  const sql = Array.from({ length: BURST }, (_, i) => `insert into t (id) values (${i}); select pg_walfile_name(pg_switch_wal());`).join("\n");
  burst = (await primary.psql(sql)).split("\n");

  // Act: kill the agent mid-backlog, while it pushes segments ahead, by its own account
  seen.atKill = await pollUntil(
    `a backlog of ${BACKLOG_AT_KILL} .ready segments with a push ahead running`,
    () => askAgentStatus(socket, DB),
    (s) => (s?.backlog?.segments ?? 0) >= BACKLOG_AT_KILL && (s?.pushingAhead ?? 0) >= 1,
    30_000,
  );
  agent.child.kill("SIGKILL");
  seen.readyAtKill = readySegments().length;
  await agent.exited;
  seen.killSignal = agent.child.signalCode;
  seen.socketStaleAfterKill = existsSync(socket);
  seen.archiverAtKill = await archiver();

  // Act: with the agent dead, archive_command's calls meet the stale socket; wait for them to archive a few (or fail)
  seen.archiverAtRestart = await pollUntil(
    `${ARCHIVED_WHILE_DEAD} segments archived while the agent is dead`,
    archiver,
    (a) => a.archived - seen.archiverAtKill.archived >= ARCHIVED_WHILE_DEAD || a.failed > seen.archiverAtKill.failed,
    90_000,
    100,
  );
  seen.deadThroughout = agent.done() && existsSync(socket) && (await askAgentStatus(socket, DB)) === undefined;
  seen.readyAtRestart = readySegments().length;

  // Act: start the agent again on the same socket, and let everything be archived
  restarted = await startPgAgent(agentOptions);
  const last = burst.at(-1)!;
  await pollUntil(`${last} archived`, archiver, (a) => a.last >= last, 120_000, 100);
  const status = await stack.cli(["status", "--json", "--database", DB], { env: { WALVAULT_AGENT_SOCKET: socket } });
  if (status.code !== 0) throw new Error(`walvault status failed: ${status.stderr}`);
  seen.statusAfter = (JSON.parse(status.stdout) as { agent: AgentStatus | null }).agent;
  seen.failedAtEnd = (await archiver()).failed;
  await primary.stop({ mode: "fast" });
  seen.hints = readFileSync(primary.logFile, "utf8").split("\n").filter((l) => l.includes("walvault: hint:"));
  await stack.idle();
  console.log(
    `archive-agent-killed: ${seen.readyAtKill} .ready at the kill (agent: backlog ${seen.atKill?.backlog?.segments}, ${seen.atKill?.pushingAhead} pushing ahead, ` +
      `${seen.atKill?.stats.aheadPushed} pushed ahead); ${seen.archiverAtRestart.archived - seen.archiverAtKill.archived} archived while dead; ` +
      `${seen.readyAtRestart} .ready at the restart; restarted agent: ${JSON.stringify(seen.statusAfter?.stats)}; failed_count ${seen.failedAtEnd}`,
  );
}, 300_000);

afterAll(async () => {
  agent?.child.kill("SIGKILL");
  restarted?.child.kill("SIGTERM");
  await restarted?.exited;
  await primary?.destroy().catch(() => undefined);
  await stack?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("the resident agent killed mid-backlog at AWS's latency", () => {
  it("was killed while segments waited and it was pushing some of them ahead", () => {
    // Assess
    expect(burst).toHaveLength(BURST);
    expect(seen.readyAtKill).toBeGreaterThanOrEqual(BACKLOG_AT_KILL);
    expect(seen.killSignal).toBe("SIGKILL");
    expect(seen.socketStaleAfterKill).toBe(true);
  });

  it("lets wal-push calls archive by themselves while the agent is dead, with no failed call", () => {
    // Assess: PostgreSQL archived segments while the agent was dead and only its stale socket file was there
    expect(seen.deadThroughout).toBe(true);
    expect(seen.archiverAtRestart.archived - seen.archiverAtKill.archived).toBeGreaterThanOrEqual(ARCHIVED_WHILE_DEAD);
    // No archive_command call failed, not even the one waiting on the agent when it died: the native
    // helper (agent/native/wal-push.c) execs the Node CLI on anything but the agent's "stored" (here a
    // connection closed before an answer), and the CLI (agent/push-client.ts) takes a closed or refused
    // connection as "no agent" and pushes by itself; a push the agent had half done (uploaded, ingest
    // still running) is idempotent with the same bytes. A failure would make PostgreSQL retry, late.
    expect(seen.archiverAtRestart.failed).toBe(0);
    expect(seen.failedAtEnd).toBe(0);
  });

  it("tells PostgreSQL's log once, in one line, that archiving fell behind without the agent, and what to run", () => {
    // Assess: the calls that pushed by themselves left 3 or more segments waiting; the hint is written once in 5 minutes
    expect(seen.hints).toHaveLength(1);
    expect(seen.hints[0]).toMatch(/walvault: hint: archiving is falling behind: \d+ WAL files wait in pg_wal\/archive_status and this push took \d+\.\d s without a resident agent; /);
    expect(seen.hints[0]).toContain(`(walvault agent --database ${DB} --pgdata ${primary.dataDir})`);
  });

  it("has the restarted agent pick up the backlog it finds and push it ahead", () => {
    // Assess
    expect(seen.readyAtRestart).toBeGreaterThanOrEqual(1);
    expect(seen.statusAfter, "walvault status found no agent").toBeTruthy();
    expect(seen.statusAfter!.stats.aheadPushed).toBeGreaterThanOrEqual(1);
    expect(seen.statusAfter!.stats.aheadFailed).toBe(0);
    expect(seen.statusAfter!.backlog).toEqual({ segments: 0 });
  });

  it("loses nothing: every segment PostgreSQL archived is in the catalog, contiguous", async () => {
    // Act
    const list = await stack.cli(["wal", "list", "--json", "--database", DB]);

    // Assess
    expect(list.code, list.stderr).toBe(0);
    const segments = (JSON.parse(list.stdout) as WalRecord[]).filter((x) => x.kind === "segment");
    expect(archivedSegments(originals)).toEqual(expect.arrayContaining(burst));
    expect(segments.map((s) => s.name)).toEqual(expect.arrayContaining(archivedSegments(originals)));
    const continuity = analyzeContinuity(segments.map((s) => parseWalFileName(s.name) as { timeline: number; segno: bigint }));
    expect(continuity).toHaveLength(1);
    expect(continuity[0]!.gaps).toEqual([]);
  });

  it("holds every archived segment byte-identical to what PostgreSQL wrote", async () => {
    // Act and Assess
    await expectFetchedIdentical((args) => stack.cli(args), originals, ["--database", DB]);
  }, 300_000);
});
