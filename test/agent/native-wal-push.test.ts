/**
 * wal-push's native fast path (agent/native/wal-push.c, built by `npm run
 * build` into dist/native/): one request on the resident agent's socket,
 * exit 0 only when the agent answers "stored"; everything else runs the Node
 * CLI it is given ($WALVAULT_FALLBACK_NODE $WALVAULT_FALLBACK_CLI). Each
 * test points the fallback at a script that records its arguments, so
 * whether the helper answered by itself or handed over is observable.
 * The agent here is a stand-in on a Unix socket that records the request
 * and answers what the test says (the real agent's answers are
 * test/agent/resident.test.ts's, through bin/walvault).
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { NATIVE_WAL_PUSH } from "../../local/build-native.js";
import { PACKAGE_ROOT } from "../../local/paths.js";

const HELPER = join(PACKAGE_ROOT, NATIVE_WAL_PUSH);
let dir: string;
let fallbackLog: string;
let fallback: string;
let servers: Server[] = [];

beforeAll(() => {
  expect(existsSync(HELPER), `${HELPER} is built by npm run build (a C compiler is on this machine)`).toBe(true);
  dir = mkdtempSync(join(tmpdir(), "walvault-native-"));
  fallbackLog = join(dir, "fallback.log");
  fallback = join(dir, "fallback.sh");
  // The stand-in for `node <cli>`: records what it was run with, exits 7.
  writeFileSync(fallback, `#!/bin/sh\necho "$@" >> '${fallbackLog}'\nexit 7\n`);
  chmodSync(fallback, 0o755);
  return () => rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
  rmSync(fallbackLog, { force: true });
});

/** A stand-in agent: records each request line and answers `answer` (a line of JSON, or nothing: close). */
async function standInAgent(socket: string, answer: ((req: Record<string, unknown>) => string) | undefined): Promise<Record<string, unknown>[]> {
  const requests: Record<string, unknown>[] = [];
  const server = createServer((sock) => {
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const req = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      requests.push(req);
      if (answer) sock.end(answer(req) + "\n");
      else sock.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  servers.push(server);
  return requests;
}

function runHelper(args: string[], env: Record<string, string>, cwd = dir): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(HELPER, ["wal-push", ...args], {
      cwd,
      env: { PATH: "/usr/bin:/bin", HOME: dir, WALVAULT_FALLBACK_NODE: fallback, WALVAULT_FALLBACK_CLI: "the-cli.js", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

const fellBackWith = (): string | undefined => (existsSync(fallbackLog) ? readFileSync(fallbackLog, "utf8").trim() : undefined);

describe("the native wal-push fast path", () => {
  it("asks the agent with the database, the absolute path, the wait and the timeout, and exits 0 on 'stored' without running Node", async () => {
    // Prepare
    const socket = join(dir, "a.sock");
    const requests = await standInAgent(socket, () => JSON.stringify({ ok: true, result: { name: "000000010000000000000007", outcome: "already-archived" } }));

    // Act
    const r = await runHelper(["--timeout", "20", "pg_wal/000000010000000000000007"], { WALVAULT_DATABASE: "pg-main", WALVAULT_AGENT_SOCKET: socket });

    // Assess
    expect(r).toEqual({ code: 0, stderr: "" });
    expect(fellBackWith()).toBeUndefined();
    expect(requests).toEqual([{ op: "push", databaseId: "pg-main", path: join(dir, "pg_wal/000000010000000000000007"), wait: "stored", timeoutMs: 20_000, cwd: dir }]);
  });

  it("reads the database id and wait timeout from the configuration file's top level, not from a nested object", async () => {
    // Prepare: a nested databaseId first, the real one after it
    const socket = join(dir, "b.sock");
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify({ replicas: [{ databaseId: "not-this" }], databaseId: "pg-cfg", waitTimeoutSeconds: 45 }));
    const requests = await standInAgent(socket, () => JSON.stringify({ ok: true, result: {} }));

    // Act
    const r = await runHelper(["/abs/000000010000000000000008"], { WALVAULT_CONFIG: config, WALVAULT_AGENT_SOCKET: socket });

    // Assess
    expect(r.code).toBe(0);
    expect(requests[0]).toMatchObject({ databaseId: "pg-cfg", path: "/abs/000000010000000000000008", timeoutMs: 45_000 });
  });

  it("escapes a path's quotes, backslashes and control characters in the request", async () => {
    const socket = join(dir, "c.sock");
    const requests = await standInAgent(socket, () => JSON.stringify({ ok: true, result: {} }));
    const odd = '/x/we"ird\\na\tme';
    const r = await runHelper([odd], { WALVAULT_DATABASE: "pg-main", WALVAULT_AGENT_SOCKET: socket });
    expect(r.code).toBe(0);
    expect(requests[0]!.path).toBe(odd);
  });

  const handOver: Array<{ what: string; args: string[]; env?: Record<string, string>; answer?: (req: Record<string, unknown>) => string; listen?: boolean }> = [
    { what: "an error answer (the agent's own way failed, or the segment's)", args: ["seg"], answer: () => JSON.stringify({ ok: false, error: { name: "SegmentConflictError", message: "different", exitCode: 3 } }) },
    { what: "a declined request (an agent of another database)", args: ["seg"], answer: () => JSON.stringify({ ok: false, decline: "this agent archives pg-other" }) },
    { what: "an agent that closes without answering", args: ["seg"], answer: undefined },
    { what: "no agent on the socket", args: ["seg"], listen: false },
    { what: "an option it does not handle (--json)", args: ["--json", "seg"] },
    { what: "--no-agent", args: ["--no-agent", "seg"] },
    { what: "a wait level other than stored or none", args: ["--wait", "replicated", "seg"] },
    { what: "no database id anywhere", args: ["seg"], env: { WALVAULT_DATABASE: "" } },
    { what: "an invalid database id", args: ["--database", "Bad_Id", "seg"] },
  ];
  for (const c of handOver) {
    it(`hands the call to the Node CLI, with the same arguments, on ${c.what}`, async () => {
      // Prepare
      const socket = join(dir, "h.sock");
      rmSync(socket, { force: true });
      if (c.listen !== false && c.answer !== undefined) await standInAgent(socket, c.answer);
      else if (c.listen !== false && c.what.includes("closes")) await standInAgent(socket, undefined);

      // Act
      const r = await runHelper(c.args, { WALVAULT_DATABASE: "pg-main", WALVAULT_AGENT_SOCKET: socket, WALVAULT_CONFIG: join(dir, "none.json"), ...c.env });

      // Assess: what the fallback (Node) exits with, run as `node <cli> wal-push <args>`
      expect(r.code).toBe(7);
      expect(fellBackWith()).toBe(["the-cli.js", "wal-push", ...c.args].join(" "));
    });
  }

  it("says in one line that it cannot fall back when run outside bin/walvault, non-zero", async () => {
    const r = await runHelper(["--json", "seg"], { WALVAULT_FALLBACK_NODE: "", WALVAULT_DATABASE: "pg-main" });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^walvault: the fast wal-push path cannot fall back: WALVAULT_FALLBACK_NODE and WALVAULT_FALLBACK_CLI are not set/)]);
  });
});
