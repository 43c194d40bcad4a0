/**
 * `walvault local up` runs the embedded stack in the foreground and writes a
 * config file the agent finds by itself; `walvault local down` stops it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WALVAULT_BIN } from "../../local/paths.js";
import { poll } from "../support/harness.js";
import { emulatorPids, processesMentioning } from "../support/processes.js";
import { runCli } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const stateDir = mkdtempSync(join(tmpdir(), "walvault-localcli-"));
// No WALVAULT_CONFIG: the agent must find the stack's config by itself.
const env = { WALVAULT_LOCAL_DIR: stateDir, WALVAULT_CONFIG: "", HOME: stateDir };
let up: ChildProcess | undefined;

afterAll(() => {
  up?.kill("SIGKILL");
  rmSync(stateDir, { recursive: true, force: true });
});

function withoutEmpty(e: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env, ...e };
  for (const [k, v] of Object.entries(e)) if (v === "") delete out[k];
  return out;
}

describe("walvault local up / down", () => {
  it("comes up in the foreground, the agent finds it by itself, and local down stops it", async () => {
    // Prepare / Act: start it as a user would.
    up = spawn(WALVAULT_BIN, ["local", "up"], { env: withoutEmpty(env), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    up.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => up!.on("exit", (code) => r(code ?? -1)));
    const deadline = Date.now() + 90_000;
    while (!out.includes("is up") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));

    // Assess: it says where things are, and wrote its config where the agent looks.
    expect(out).toContain("walvault local stack is up");
    expect(out).toContain(join(stateDir, "config.json"));
    expect(existsSync(join(stateDir, "config.json"))).toBe(true);

    // Act: push and list with no configuration given.
    const dir = mkdtempSync(join(tmpdir(), "walvault-localcli-wal-"));
    const name = "000000010000000000000007";
    writeFileSync(join(dir, name), syntheticSegment(name, 7));
    const push = await runCli(["wal-push", join(dir, name)], { env: env });
    const list = await runCli(["wal", "list", "--json"], { env: env });
    rmSync(dir, { recursive: true, force: true });

    // Assess
    expect(push.code, push.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((r) => r.name)).toEqual([name]);

    // Act: the report it serves, drawn from the catalog as it is now
    const url = /^ {2}report {4}(http:\/\/127\.0\.0\.1:\d+\/) /m.exec(out)?.[1];
    expect(url, out).toBeDefined();
    const page = await fetch(url!);
    const html = await page.text();
    const missing = await fetch(`${url}nothing-here`);
    // Assess: the page of every registered database, its data embedded
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html).toContain("<h1>walvault: what can be restored</h1>");
    expect(html).toContain('<div id="db-pg-main"></div>');
    expect(html).toContain(`"lastArchived":{"name":"${name}"`);
    expect(missing.status).toBe(404);

    // Act: stop it.
    const down = await runCli(["local", "down"], { env: env });

    // Assess: the foreground process exited cleanly and its config is gone.
    expect(down.code, down.stderr).toBe(0);
    expect(await exited).toBe(0);
    expect(existsSync(join(stateDir, "config.json"))).toBe(false);

    // And the agent now says clearly that there is no stack.
    const after = await runCli(["status"], { env: env });
    expect(after.code).not.toBe(0);
    expect(after.stderr.trim().split("\n")).toHaveLength(1);
    expect(after.stderr).toMatch(/no walvault configuration found.*walvault local up/);
  }, 150_000);

  it("local down with nothing running says so in one line", async () => {
    const r = await runCli(["local", "down", "--state-dir", join(stateDir, "nothing-here")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^walvault: no local stack is running from /);
  });
});

interface Up {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  exited: Promise<number>;
  done(): boolean;
}

function localUp(dir: string, args: string[] = []): Up {
  const child = spawn(WALVAULT_BIN, ["local", "up", "--state-dir", dir, ...args], {
    env: withoutEmpty({ WALVAULT_CONFIG: "", HOME: dir }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let finished = false;
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((r) =>
    child.on("exit", (code) => {
      finished = true;
      r(code ?? -1);
    }),
  );
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    done: () => finished,
  };
}

describe("walvault local up supervises its emulators", () => {
  const started: { up: Up; dir: string }[] = [];
  afterAll(async () => {
    for (const { up: u, dir } of started) {
      if (!u.done()) {
        u.child.kill("SIGTERM");
        await Promise.race([u.exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (!u.done()) u.child.kill("SIGKILL");
      }
      for (const pid of processesMentioning(dir)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  async function upAndRunning(): Promise<{ up: Up; dir: string; env: Record<string, string> }> {
    const dir = mkdtempSync(join(tmpdir(), "walvault-localsup-"));
    const u = localUp(dir);
    started.push({ up: u, dir });
    await poll(() => u.stdout.includes("is up") || (u.done() && Promise.reject(new Error(u.stderr))), 90_000, "the stack to come up");
    return { up: u, dir, env: { WALVAULT_CONFIG: join(dir, "config.json") } };
  }

  async function push(dir: string, env: Record<string, string>, n: number): Promise<{ code: number; stderr: string }> {
    const name = `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, "0")}`;
    const path = join(dir, name);
    if (!existsSync(path)) writeFileSync(path, syntheticSegment(name, n));
    return runCli(["wal-push", "--timeout", "20", path], { env });
  }

  it("restarts an s3rver or DynamoDB Local child killed with SIGKILL on the same port, and pushes keep working", async () => {
    // Prepare: a stack that has archived one segment.
    const { up: u, dir, env } = await upAndRunning();
    const first = await push(dir, env, 1);
    expect(first.code, first.stderr).toBe(0);
    const s3rver = emulatorPids(dir).s3rver;
    expect(s3rver).toHaveLength(1);

    // Act: kill -9 the s3rver child, then push.
    process.kill(s3rver[0]!, "SIGKILL");
    await poll(() => /s3rver .* exited unexpectedly \(signal SIGKILL\); restarting it on the same port/.test(u.stderr), 60_000, "a restart line for s3rver");
    const second = await poll(async () => {
      const r = await push(dir, env, 2);
      return r.code === 0 ? r : undefined;
    }, 60_000, "a push after the s3rver restart");

    // Act: the same for DynamoDB Local's Java process.
    const java = emulatorPids(dir).java;
    expect(java).toHaveLength(1);
    process.kill(java[0]!, "SIGKILL");
    await poll(() => /DynamoDB Local .* exited unexpectedly \(signal SIGKILL\); restarting it on the same port/.test(u.stderr), 60_000, "a restart line for DynamoDB Local");
    const third = await poll(async () => {
      const r = await push(dir, env, 3);
      return r.code === 0 ? r : undefined;
    }, 60_000, "a push after the DynamoDB Local restart");

    // Assess: the stack stayed up, each child came back as a new process, every segment is listed.
    expect(second.code).toBe(0);
    expect(third.code).toBe(0);
    expect(u.done()).toBe(false);
    const list = await runCli(["wal", "list", "--json"], { env });
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((r) => r.name)).toEqual([
      "000000010000000000000001",
      "000000010000000000000002",
      "000000010000000000000003",
    ]);
    expect(emulatorPids(dir).s3rver).not.toContain(s3rver[0]);
  }, 240_000);

  it("exits non-zero naming the emulator when a crashed child cannot be restarted, and leaves no child behind", async () => {
    // Prepare: a stack whose s3rver directory is then made unusable, so a restart must fail.
    const { up: u, dir } = await upAndRunning();
    const s3rver = emulatorPids(dir).s3rver;
    expect(s3rver).toHaveLength(1);
    renameSync(join(dir, "s3"), join(dir, "s3-moved"));
    writeFileSync(join(dir, "s3"), "not a directory");

    // Act
    process.kill(s3rver[0]!, "SIGKILL");
    const code = await Promise.race([u.exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 60_000))]);

    // Assess
    expect(code, u.stderr).not.toBe("hung");
    expect(code).not.toBe(0);
    expect(u.stderr).toMatch(/^walvault: the local stack stopped: s3rver \(S3, region local-1\) on port \d+ exited \(signal SIGKILL\) and could not be restarted/m);
    expect(existsSync(join(dir, "config.json"))).toBe(false);
    expect(await poll(() => processesMentioning(dir).length === 0, 15_000, "no emulator child left")).toBe(true);
  }, 180_000);

  it("local up --database BAD_ID: one line, exits non-zero promptly, starts nothing", async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), "walvault-localbad-"));
    const u = localUp(dir, ["--database", "BAD_ID"]);
    started.push({ up: u, dir });

    // Act
    const code = await Promise.race([u.exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 30_000))]);

    // Assess
    expect(code, u.stderr).not.toBe("hung");
    expect(code).not.toBe(0);
    expect(u.stderr.trim().split("\n"), u.stderr).toHaveLength(1);
    expect(u.stderr).toContain("BAD_ID");
    expect(processesMentioning(dir)).toEqual([]);
  }, 60_000);
});
