/**
 * The resident agent (`walvault agent`) end to end: the real CLI run as a child
 * process against the real local stack (s3rver + DynamoDB Local + the ingest
 * state machine), a fake data directory to push ahead from, and `wal-push`
 * finding it through $WALVAULT_AGENT_SOCKET. Needs `npm run build` first.
 *
 * "Through the agent" is made observable: those wal-push calls get no
 * configuration of their own (WALVAULT_CONFIG names a missing file, the
 * database comes from WALVAULT_DATABASE), so had wal-push fallen back to
 * pushing by itself it would fail with "no walvault configuration found".
 *
 * The stack registers two databases (pg-main, pg-copy), so its configuration
 * names no default database: every command gets --database (or, for the
 * through-the-agent-only calls, WALVAULT_DATABASE). One stack for the whole
 * file: the ingest handlers' clients are per process, so a second stack in
 * this process would take them over from the first.
 */
import { existsSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../core/hash.js";
import type { WalRecord } from "../../core/schemas.js";
import {
  fakeDataDir,
  rewriteInPlace,
  runToExit,
  spawnAgent,
  stopAgent,
  uniqueSocketPath,
  type AgentProcess,
} from "../support/agent-process.js";
import { poll, quietPeriod, stackClients, tempDir, writeWal, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";
import { restartTestStack } from "../support/stack-restart.js";
import { freePort } from "../../local/emulators.js";

const DB = "pg-main";
/** The second registered database: no agent ever runs for it. */
const COPY_DB = "pg-copy";

let stack: TestStack;
let clients: StackClients;
let scratch: string;
/** Agents started by the running test; afterEach stops them. */
let agents: AgentProcess[] = [];
/** Temp dirs and stray files made by the running test. */
let cleanup: string[] = [];

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }, { id: COPY_DB }]);
  clients = stackClients(stack);
  scratch = tempDir("walvault-resident-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

afterEach(async () => {
  const running = agents;
  agents = [];
  try {
    for (const agent of running) {
      if (agent.hasExited()) continue; // killed by the test itself
      const exit = await stopAgent(agent, "SIGTERM");
      expect(exit, `agent stderr: ${agent.stderr}`).toEqual({ code: 0, signal: null });
      expect(existsSync(agent.socketPath), `${agent.socketPath} left behind after SIGTERM`).toBe(false);
    }
  } finally {
    for (const p of [...cleanup, ...running.map((a) => a.socketPath)]) rmSync(p, { recursive: true, force: true });
    cleanup = [];
  }
}, 30_000);

function seg(n: number): string {
  return `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;
}

async function startAgent(pgdata: string, extra: string[] = [], env: Record<string, string> = {}): Promise<AgentProcess> {
  const agent = await spawnAgent(stack, uniqueSocketPath(), ["--database", DB, "--pgdata", pgdata, ...extra], undefined, env);
  agents.push(agent);
  return agent;
}

function dataDir(segments: Parameters<typeof fakeDataDir>[0]): string {
  const dir = fakeDataDir(segments);
  cleanup.push(dir);
  return dir;
}

/** Env for a wal-push that can only succeed through the agent: no configuration of its own. */
function throughAgentOnly(agent: AgentProcess): Record<string, string> {
  return { WALVAULT_AGENT_SOCKET: agent.socketPath, WALVAULT_CONFIG: join(scratch, "no-such-config.json"), WALVAULT_DATABASE: DB };
}

function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.length > 0);
}

function pgWal(pgdata: string, name: string): string {
  return join(pgdata, "pg_wal", name);
}

async function waitArchived(name: string, timeoutMs = 20_000): Promise<WalRecord> {
  return poll(() => clients.catalog.getWal(DB, name), timeoutMs, `${name} in the catalog`);
}

describe("push-ahead of .ready segments", () => {
  const names = [seg(0x30), seg(0x31), seg(0x32), seg(0x33)];
  let pgdata: string;

  beforeAll(() => {
    pgdata = fakeDataDir(names.map((name, i) => ({ name, seed: 0x30 + i, ready: true })));
  });

  afterAll(() => {
    if (pgdata) rmSync(pgdata, { recursive: true, force: true });
  });

  it("archives every .ready segment by itself, without any wal-push call, with the right sha256", async () => {
    // Prepare
    for (const name of names) expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
    const startedBefore = stack.stats.started;

    // Act
    const agent = await startAgent(pgdata);

    // Assess
    const records = await poll(
      async () => {
        const listed = await clients.catalog.listWal(DB);
        const mine = names.map((n) => listed.find((r) => r.name === n));
        return mine.every((r) => r !== undefined) ? (mine as WalRecord[]) : undefined;
      },
      20_000,
      "the 4 .ready segments in the catalog",
    );
    for (const [i, name] of names.entries()) {
      expect(records[i]).toMatchObject({ name, kind: "segment", status: "stored", sha256: sha256Hex(syntheticSegment(name, 0x30 + i)) });
    }
    expect(stack.stats.started - startedBefore).toBe(4);
    const listed = await stack.cli(["wal", "list", "--database", DB, "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as WalRecord[]).map((r) => r.name)).toEqual(expect.arrayContaining(names));
    expect(agent.stderr).toBe("");
    // Each upload reported the archiver's backlog (4 .ready files, none marked done), and ingest published it per database.
    const backlog = readFileSync(stack.metricsFile, "utf8")
      .split("\n")
      .filter((l) => l.includes("ArchiveBacklogSegments"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((m) => names.includes(m.Name as string));
    expect(backlog.map((m) => m.Name).sort()).toEqual(names);
    for (const m of backlog) expect(m).toMatchObject({ DatabaseId: DB, ArchiveBacklogSegments: 4 });
  });

  it("answers archive_command for a segment it pushed ahead with already-archived, without another ingest run", async () => {
    // Prepare
    const agent = await startAgent(pgdata);
    const name = names[2]!;
    for (const n of names) await waitArchived(n);
    await stack.idle();
    const recordBefore = await clients.catalog.getWal(DB, name);
    const startedBefore = stack.stats.started;

    // Act
    const r = await stack.cli(["wal-push", "--json", join("pg_wal", name)], { cwd: pgdata, env: throughAgentOnly(agent) });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "already-archived", sha256: sha256Hex(syntheticSegment(name, 0x32)) });
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
  });
});

describe("push-ahead with direct WAL (WALVAULT_WAL_DIRECT=1)", () => {
  it("writes each .ready segment straight into the vault and records it there, with no failed push", async () => {
    // Prepare
    const name = seg(0x38);
    const pgdata = dataDir([{ name, seed: 0x38, ready: true }]);

    // Act
    const agent = await startAgent(pgdata, [], { WALVAULT_WAL_DIRECT: "1" });

    // Assess: recorded at its content-addressed vault key (core/keys.ts vaultWalDirectKey), nothing logged as failed
    const record = await waitArchived(name);
    expect(record).toMatchObject({ status: "stored", sha256: sha256Hex(syntheticSegment(name, 0x38)) });
    expect(record.vaultKey).toMatch(new RegExp(`/${name}\\.[0-9a-f]{16}$`));
    expect(agent.stderr).toBe("");
  });
});

describe("wal-push through the agent", () => {
  it("a segment that is not .ready (not pushed ahead): exit 0, outcome stored, recorded in the catalog", async () => {
    // Prepare
    const name = seg(0x40);
    const pgdata = dataDir([{ name, seed: 0x40, ready: false }]);
    const agent = await startAgent(pgdata);
    await quietPeriod(600); // several scan intervals: nothing must be pushed ahead
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();

    // Act
    const r = await stack.cli(["wal-push", "--json", pgWal(pgdata, name)], { cwd: pgdata, env: throughAgentOnly(agent) });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored", sha256: sha256Hex(syntheticSegment(name, 0x40)) });
    const rec = await clients.catalog.getWal(DB, name);
    expect(rec).toMatchObject({ name, status: "stored", sha256: sha256Hex(syntheticSegment(name, 0x40)) });
  });

  it("different bytes under an archived name: exit 3, one 'already archived … different contents' line, catalog unchanged", async () => {
    // Prepare
    const name = seg(0x41);
    const pgdata = dataDir([{ name, seed: 0x41, ready: true }]);
    const agent = await startAgent(pgdata);
    await waitArchived(name);
    await stack.idle();
    const recordBefore = await clients.catalog.getWal(DB, name);
    const startedBefore = stack.stats.started;
    const other = tempDir("walvault-resident-other-");
    cleanup.push(other);
    const path = writeWal(other, name, syntheticSegment(name, 0x141));

    // Act
    const r = await stack.cli(["wal-push", path], { cwd: pgdata, env: throughAgentOnly(agent) });

    // Assess
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("");
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: /);
    expect(lines[0]).toMatch(new RegExp(`${name} is already archived.*different contents`));
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
    expect(recordBefore?.sha256).toBe(sha256Hex(syntheticSegment(name, 0x41)));
  });

  it("does not answer from its cache for another file under the same path: a replaced segment is a conflict (exit 3)", async () => {
    // Prepare: pushed ahead, and answered once from the agent's work
    const name = seg(0x42);
    const pgdata = dataDir([{ name, seed: 0x42, ready: true }]);
    const agent = await startAgent(pgdata);
    await waitArchived(name);
    const first = await stack.cli(["wal-push", "--json", pgWal(pgdata, name)], { cwd: pgdata, env: throughAgentOnly(agent) });
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ outcome: "already-archived" });
    await stack.idle();
    const recordBefore = await clients.catalog.getWal(DB, name);
    const startedBefore = stack.stats.started;
    const inodeBefore = statSync(pgWal(pgdata, name)).ino;
    const replacement = join(pgdata, "pg_wal", `${name}.tmp`);
    writeFileSync(replacement, syntheticSegment(name, 0x142));
    renameSync(replacement, pgWal(pgdata, name));
    expect(statSync(pgWal(pgdata, name)).ino).not.toBe(inodeBefore);

    // Act
    const r = await stack.cli(["wal-push", "--json", pgWal(pgdata, name)], { cwd: pgdata, env: throughAgentOnly(agent) });

    // Assess
    expect(r.code, r.stdout).toBe(3);
    expect(r.stdout).toBe("");
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^walvault: ${name} is already archived.*different contents`));
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
  });

  it("does not answer from its cache for a file rewritten in place with its size and mtime kept: a conflict (exit 3)", async () => {
    // Prepare: pushed ahead and answered once; the file has a whole-second
    // mtime so that it can be set back exactly after the rewrite.
    const name = seg(0x44);
    const pgdata = dataDir([{ name, seed: 0x44, ready: true }]);
    const wholeSecond = Math.floor(Date.now() / 1000) - 3600;
    utimesSync(pgWal(pgdata, name), wholeSecond, wholeSecond);
    const agent = await startAgent(pgdata);
    await waitArchived(name);
    const first = await stack.cli(["wal-push", "--json", pgWal(pgdata, name)], { cwd: pgdata, env: throughAgentOnly(agent) });
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ outcome: "already-archived" });
    await stack.idle();
    const recordBefore = await clients.catalog.getWal(DB, name);
    const startedBefore = stack.stats.started;
    const { before, after } = rewriteInPlace(pgWal(pgdata, name), syntheticSegment(name, 0x144));
    expect({ dev: after.dev, ino: after.ino, size: after.size, mtimeMs: after.mtimeMs }).toEqual({
      dev: before.dev,
      ino: before.ino,
      size: before.size,
      mtimeMs: before.mtimeMs,
    });
    expect(after.ctimeMs).not.toBe(before.ctimeMs);
    expect(readFileSync(pgWal(pgdata, name)).equals(syntheticSegment(name, 0x144))).toBe(true);

    // Act
    const r = await stack.cli(["wal-push", "--json", pgWal(pgdata, name)], { cwd: pgdata, env: throughAgentOnly(agent) });

    // Assess
    expect(r.code, r.stdout).toBe(3);
    expect(r.stdout).toBe("");
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^walvault: ${name} is already archived.*different contents`));
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
    expect(recordBefore?.sha256).toBe(sha256Hex(syntheticSegment(name, 0x44)));
  });

  it("a missing file: non-zero exit and one line saying the file cannot be read", async () => {
    // Prepare: not a verdict on the segment, so wal-push also tries by itself (with a configuration) and says why first-hand.
    const name = seg(0x43);
    const pgdata = dataDir([]);
    const agent = await startAgent(pgdata);

    // Act
    const r = await stack.cli(["wal-push", "--database", DB, pgWal(pgdata, name)], { cwd: pgdata, env: { WALVAULT_AGENT_SOCKET: agent.socketPath } });

    // Assess
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^walvault: cannot read WAL file .*${name}.*no such file`));
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
  });
});

describe("wal-push without a working agent", () => {
  it("pushes by itself when the agent's own way to the archive fails (its endpoints are dead)", async () => {
    // Prepare: an agent whose configuration names an S3 endpoint nothing listens on.
    const name = seg(0x58);
    const pgdata = dataDir([{ name, seed: 0x58, ready: false }]);
    const deadConfig = join(scratch, "dead-endpoints.json");
    writeFileSync(deadConfig, JSON.stringify({ ...stack.config, s3Endpoint: `http://127.0.0.1:${await freePort()}` }));
    cleanup.push(deadConfig);
    const agent = await spawnAgent({ ...stack, configPath: deadConfig }, uniqueSocketPath(), ["--database", DB, "--timeout", "2"]);
    agents.push(agent);

    // Act
    const r = await stack.cli(["wal-push", "--database", DB, "--json", "--timeout", "30", pgWal(pgdata, name)], {
      cwd: pgdata,
      env: { WALVAULT_AGENT_SOCKET: agent.socketPath },
    });

    // Assess: stored by wal-push itself, not the agent's error.
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored" });
    expect(await clients.catalog.getWal(DB, name)).toMatchObject({ sha256: sha256Hex(syntheticSegment(name, 0x58)) });
  });

  it("pushes by itself when the agent was killed and its socket file is stale", async () => {
    // Prepare
    const name = seg(0x50);
    const pgdata = dataDir([{ name, seed: 0x50, ready: false }]);
    const agent = await startAgent(pgdata);
    const exit = await stopAgent(agent, "SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    expect(existsSync(agent.socketPath)).toBe(true);

    // Act
    const r = await stack.cli(["wal-push", "--database", DB, "--json", pgWal(pgdata, name)], {
      cwd: pgdata,
      env: { WALVAULT_AGENT_SOCKET: agent.socketPath },
    });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored" });
    expect(await clients.catalog.getWal(DB, name)).toMatchObject({ sha256: sha256Hex(syntheticSegment(name, 0x50)) });
  });

  it("pushes by itself when the socket path is a regular file", async () => {
    // Prepare
    const name = seg(0x51);
    const pgdata = dataDir([{ name, seed: 0x51, ready: false }]);
    const notSocket = uniqueSocketPath();
    cleanup.push(notSocket);
    writeFileSync(notSocket, "not a socket\n");

    // Act
    const r = await stack.cli(["wal-push", "--database", DB, "--json", pgWal(pgdata, name)], {
      cwd: pgdata,
      env: { WALVAULT_AGENT_SOCKET: notSocket },
    });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored" });
    expect(await clients.catalog.getWal(DB, name)).toMatchObject({ sha256: sha256Hex(syntheticSegment(name, 0x51)) });
    expect(readFileSync(notSocket, "utf8")).toBe("not a socket\n");
  });

  it("--no-agent pushes directly even with the agent running, and never asks it", async () => {
    // Prepare
    const name = seg(0x52);
    const unasked = seg(0x53);
    const pgdata = dataDir([
      { name, seed: 0x52, ready: false },
      { name: unasked, seed: 0x53, ready: false },
    ]);
    const agent = await startAgent(pgdata);

    // Act
    const r = await stack.cli(["wal-push", "--database", DB, "--no-agent", "--json", pgWal(pgdata, name)], {
      cwd: pgdata,
      env: { WALVAULT_AGENT_SOCKET: agent.socketPath },
    });
    const withoutConfig = await stack.cli(["wal-push", "--no-agent", pgWal(pgdata, unasked)], { cwd: pgdata, env: throughAgentOnly(agent) });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored" });
    expect(await clients.catalog.getWal(DB, name)).toMatchObject({ sha256: sha256Hex(syntheticSegment(name, 0x52)) });
    // Had it asked the agent, this would have succeeded; by itself it has no configuration.
    expect(withoutConfig.code).not.toBe(0);
    expect(stderrLines(withoutConfig.stderr)).toEqual([expect.stringMatching(/^walvault: no walvault configuration found/)]);
    expect(await clients.catalog.getWal(DB, unasked)).toBeUndefined();
  });
});

describe("walvault status and the resident agent", () => {
  it("shows the agent's backlog (the .ready segments not yet archived, the oldest first) in text and --json", async () => {
    // Prepare: two .ready files whose segments are not there yet (the agent cannot push them ahead), none pushed
    const pgdata = dataDir([]);
    const waiting = [seg(0x61), seg(0x60)];
    for (const name of waiting) writeFileSync(join(pgdata, "pg_wal", "archive_status", `${name}.ready`), "");
    const agent = await startAgent(pgdata);
    const env = { WALVAULT_AGENT_SOCKET: agent.socketPath };

    // Act
    const json = await stack.cli(["status", "--json", "--database", DB], { env });
    const text = await stack.cli(["status", "--database", DB], { env });

    // Assess
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).agent).toMatchObject({
      databaseId: DB,
      pgdata,
      backlog: { segments: 2, oldest: seg(0x60), oldestReadySeconds: expect.any(Number) },
      pushingAhead: 0,
      concurrency: expect.any(Number),
      stats: { aheadPushed: 0, aheadFailed: 0 },
    });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`\\n  agent {11}running: backlog 2 segment\\(s\\), oldest ${seg(0x60)} ready \\d+ s ago; 0/\\d+ pushing ahead; 0 pushed ahead, 0 failed\\n`));
  });

  it("says no agent runs here when none answers, with agent null in --json", async () => {
    // Act: a socket path nothing listens on
    const env = { WALVAULT_AGENT_SOCKET: join(scratch, "nobody.sock") };
    const json = await stack.cli(["status", "--json", "--database", DB], { env });
    const text = await stack.cli(["status", "--database", DB], { env });

    // Assess
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).agent).toBeNull();
    expect(text.stdout).toContain("\n  agent           not running here (each wal-push pushes by itself; `walvault agent --pgdata DIR` pushes ahead)\n");
  });
});

describe("walvault agent refuses bad input with one line and does not listen", () => {
  it("--pgdata naming a directory that does not exist: names the directory", async () => {
    // Prepare
    const socket = uniqueSocketPath();
    cleanup.push(socket);
    const missing = join(scratch, "nonexistent");

    // Act
    const r = await runToExit(stack, ["agent", "--database", DB, "--pgdata", missing, "--socket", socket]);

    // Assess
    expect(r.killed).toBe(false);
    expect(r.code).not.toBe(0);
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: /);
    expect(lines[0]).toContain(missing);
    expect(existsSync(socket)).toBe(false);
  });

  it("--concurrency 0: says it must be a positive integer", async () => {
    // Prepare
    const socket = uniqueSocketPath();
    cleanup.push(socket);
    const pgdata = dataDir([]);

    // Act
    const r = await runToExit(stack, ["agent", "--database", DB, "--pgdata", pgdata, "--socket", socket, "--concurrency", "0"]);

    // Assess
    expect(r.killed).toBe(false);
    expect(r.code).not.toBe(0);
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: --concurrency must be a positive integer/);
    expect(existsSync(socket)).toBe(false);
  });

  it("--timeout abc: says --timeout must be a positive number of seconds", async () => {
    // Prepare
    const socket = uniqueSocketPath();
    cleanup.push(socket);
    const pgdata = dataDir([]);

    // Act
    const r = await runToExit(stack, ["agent", "--database", DB, "--pgdata", pgdata, "--socket", socket, "--timeout", "abc"]);

    // Assess
    expect(r.killed).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: .*--timeout/);
    expect(lines[0]).toMatch(/^walvault: --timeout must be a positive number of seconds/);
    expect(existsSync(socket)).toBe(false);
  });
});

describe("a second walvault agent on the same socket", () => {
  it("exits non-zero with one 'already listening' line; the first keeps its socket and keeps answering", async () => {
    // Prepare
    const name = seg(0x60);
    const pgdata = dataDir([{ name, seed: 0x60, ready: false }]);
    const first = await startAgent(pgdata);

    // Act: started the same way as the first (same database, data directory and socket)
    const second = await runToExit(stack, ["agent", "--database", DB, "--pgdata", pgdata, "--socket", first.socketPath], 8_000);

    // Assess
    expect(second.killed, `second agent still running after 8 s; stderr: ${second.stderr}`).toBe(false);
    expect(second.code).not.toBe(0);
    expect(second.stdout).toBe("");
    const lines = stderrLines(second.stderr);
    expect(lines, second.stderr).toHaveLength(1);
    expect(lines[0]).toBe(`walvault: another walvault agent is already listening on ${first.socketPath}`);
    expect(first.hasExited()).toBe(false);
    expect(existsSync(first.socketPath)).toBe(true);
    const r = await stack.cli(["wal-push", "--json", pgWal(pgdata, name)], { cwd: pgdata, env: throughAgentOnly(first) });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored" });
    expect(await clients.catalog.getWal(DB, name)).toMatchObject({ sha256: sha256Hex(syntheticSegment(name, 0x60)) });
    expect(existsSync(first.socketPath)).toBe(true);
    expect(first.stderr).toBe("");
  });
});

describe("requests carry the database", () => {
  it("wal-push --database pg-copy with an agent for pg-main on the socket: the agent declines, wal-push stores it in pg-copy only", async () => {
    // Prepare: not .ready, so the agent cannot push it ahead by itself
    const name = seg(0x70);
    const pgdata = dataDir([{ name, seed: 0x70, ready: false }]);
    const agent = await startAgent(pgdata);
    // The socket answers: a pg-main request through it alone (no configuration) succeeds.
    const control = seg(0x71);
    writeFileSync(pgWal(pgdata, control), syntheticSegment(control, 0x71));
    const viaAgent = await stack.cli(["wal-push", "--database", DB, pgWal(pgdata, control)], { cwd: pgdata, env: throughAgentOnly(agent) });
    expect(viaAgent.code, viaAgent.stderr).toBe(0);
    expect(await clients.catalog.getWal(COPY_DB, name)).toBeUndefined();
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();

    // Act: the stack's configuration (WALVAULT_CONFIG, set by stack.cli) to push by itself with
    const r = await stack.cli(["wal-push", "--database", COPY_DB, "--json", pgWal(pgdata, name)], {
      cwd: pgdata,
      env: { WALVAULT_AGENT_SOCKET: agent.socketPath },
    });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "stored", sha256: sha256Hex(syntheticSegment(name, 0x70)) });
    expect(await clients.catalog.getWal(COPY_DB, name)).toMatchObject({
      name,
      status: "stored",
      sha256: sha256Hex(syntheticSegment(name, 0x70)),
    });
    await stack.idle();
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
    const listed = await stack.cli(["wal", "list", "--database", DB, "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as WalRecord[]).map((x) => x.name)).not.toContain(name);
    expect(agent.hasExited()).toBe(false);
    expect(agent.stderr).toBe("");
  });
});

describe("shutdown", () => {
  it("SIGTERM: no new push-ahead starts; the agent waits only for the pushes already running", async () => {
    // Prepare
    const names = Array.from({ length: 8 }, (_, i) => seg(0x80 + i));
    const pgdata = dataDir(names.map((name, i) => ({ name, seed: 0x80 + i, ready: true })));
    const archivedCount = async (): Promise<number> => {
      const listed = await clients.catalog.listWal(DB);
      return listed.filter((r) => names.includes(r.name)).length;
    };
    const agent = await startAgent(pgdata, ["--concurrency", "1"]);
    await poll(() => clients.catalog.getWal(DB, names[0]!), 20_000, `${names[0]} in the catalog`);

    // Act
    const exit = await stopAgent(agent, "SIGTERM");

    // Assess
    expect(exit, `agent stderr: ${agent.stderr}`).toEqual({ code: 0, signal: null });
    expect(existsSync(agent.socketPath)).toBe(false);
    const atExit = await archivedCount();
    await quietPeriod(2_000);
    const later = await archivedCount();
    expect(atExit).toBeGreaterThanOrEqual(1);
    expect(later, `${later} of ${names.length} archived 2 s after the agent exited (${atExit} when it exited)`).toBe(atExit);
    expect(later).toBeLessThan(names.length);
    expect(agent.stderr).toBe("");
  });
});

// Last in the file: it replaces the file's stack with one restarted on new ports.
describe("a running agent after the local stack restarts on new ports", () => {
  it("follows its rewritten configuration: wal-push through it and its push-ahead archive into the new stack, no agent restart", async () => {
    // Prepare: an agent that has pushed through the first stack.
    const first = seg(0x90);
    const second = seg(0x91);
    const ahead = seg(0x92);
    const pgdata = dataDir([
      { name: first, seed: 0x90, ready: false },
      { name: second, seed: 0x91, ready: false },
    ]);
    const agent = await startAgent(pgdata);
    const before = await stack.cli(["wal-push", pgWal(pgdata, first)], { cwd: pgdata, env: throughAgentOnly(agent) });
    expect(before.code, before.stderr).toBe(0);
    const oldEndpoints = [stack.config.s3Endpoint, stack.config.dynamodbEndpoint];

    // Act: the stack restarts in the same directory (new ports, config.json rewritten), the agent keeps running.
    stack = await restartTestStack(stack, [{ id: DB }, { id: COPY_DB }]);
    clients = stackClients(stack);
    expect([stack.config.s3Endpoint, stack.config.dynamodbEndpoint]).not.toEqual(oldEndpoints);
    const r = await stack.cli(["wal-push", "--json", pgWal(pgdata, second)], { cwd: pgdata, env: throughAgentOnly(agent) });
    writeFileSync(pgWal(pgdata, ahead), syntheticSegment(ahead, 0x92));
    writeFileSync(join(pgdata, "pg_wal", "archive_status", `${ahead}.ready`), "");

    // Assess: the agent itself stored it in the new stack (wal-push has no configuration of its own) ...
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: second, outcome: "stored" });
    expect(await clients.catalog.getWal(DB, second)).toMatchObject({ sha256: sha256Hex(syntheticSegment(second, 0x91)) });
    // ... its push-ahead goes on into the new stack ...
    expect(await waitArchived(ahead)).toMatchObject({ sha256: sha256Hex(syntheticSegment(ahead, 0x92)) });
    // ... and it said once what changed.
    expect(agent.hasExited()).toBe(false);
    expect(agent.stderr).toMatch(new RegExp(`configuration .* changed: now S3 ${stack.config.s3Endpoint}`));
  }, 120_000);
});
