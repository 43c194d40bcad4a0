/**
 * `walvault local up` runs the embedded stack in the foreground and writes a
 * config file the agent finds by itself; `walvault local down` stops it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WALVAULT_BIN } from "../../local/paths.js";
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
