/**
 * The CLI's command table: every command answers --help/-h (and `help <command>`)
 * with its own usage, exit 0, before anything is read, requested or written;
 * --version; suggestions for unknown commands and options. The real CLI
 * (bin/walvault → dist/, `npm run build` first) against the local stack, with
 * a counting proxy in front of its S3, DynamoDB and Step Functions endpoints.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OptionSpec } from "../../agent/command.js";
import { COMMANDS } from "../../agent/commands/index.js";
import { mapLimit, runCliBounded } from "../support/cli-run.js";
import { startCountingProxy, type CountingProxy } from "../support/counting-proxy.js";
import { tempDir, writeWal } from "../support/harness.js";
import { runCli, startTestStack, type CliResult, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
let stack: TestStack;
let proxy: CountingProxy;
let work: string;
/** HOME, cwd, TMPDIR and the local stack's default directory of every run: must stay empty. */
let home: string;
let tmp: string;
let localDir: string;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }]);
  work = tempDir("walvault-cli-");
  proxy = await startCountingProxy(stack, work);
  home = join(work, "home");
  tmp = join(work, "tmp");
  localDir = join(work, "local");
  for (const d of [home, tmp, localDir]) mkdirSync(d);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCliBounded(args, { cwd: home, timeoutMs: 20_000, env: { WALVAULT_CONFIG: proxy.configPath, HOME: home, TMPDIR: tmp, WALVAULT_LOCAL_DIR: localDir, ...env } });
}


/** Every file under dir with its size and mtime. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const s = statSync(p);
        out[relative(dir, p)] = `${s.size}@${s.mtimeMs}`;
      }
    }
  };
  walk(dir);
  return out;
}

function stderrLines(r: CliResult): string[] {
  return r.stderr.split("\n").filter((l) => l.length > 0);
}

describe("every command of the table answers --help with its usage and touches nothing", () => {
  it("the proxy counts: a real command through the proxied config makes requests", async () => {
    // Prepare
    const before = proxy.total();
    // Act
    const r = await cli(["wal", "list", "--json"]);
    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.total()).toBeGreaterThan(before);
  });

  it("--help, -h and `help <command>`: usage naming the command and each declared option, exit 0, no request, no file", async () => {
    // Prepare: a segment archived, so that commands which would act have something to act on.
    const seg = "000000010000000000000001";
    const segDir = tempDir("walvault-cli-seg-");
    const push = await runCli(["wal-push", writeWal(segDir, seg, syntheticSegment(seg, 1))], { env: { WALVAULT_CONFIG: stack.configPath } });
    expect(push.code, push.stderr).toBe(0);
    rmSync(segDir, { recursive: true, force: true });
    await stack.idle();
    const stateBefore = tree(stack.stateDir);
    const requestsBefore = proxy.total();
    const countsBefore = { ...proxy.counts };
    const runs = COMMANDS.flatMap((c) => {
      const words = c.name.split(" ");
      return [[...words, "--help"], [...words, "-h"], ["help", ...words]].map((args) => ({ command: c, args }));
    });

    // Act
    const results = await mapLimit(runs, 4, async (x) => ({ ...x, r: await cli(x.args) }));

    // Assess
    for (const { command, args, r } of results) {
      const what = `walvault ${args.join(" ")}: ${r.stderr}`;
      expect(r.code, what).toBe(0);
      expect(r.stderr, what).toBe("");
      expect(r.stdout, what).toContain(`usage: walvault ${command.name}`);
      expect(r.stdout, what).toContain(command.summary);
      for (const [name, spec] of Object.entries(command.options as Record<string, OptionSpec>)) {
        if (!spec.hidden) expect(r.stdout, `${what} lists --${name}`).toContain(`--${name}`);
      }
      for (const p of command.positionals) expect(r.stdout, what).toContain(`<${p.name}>`);
    }
    expect(proxy.counts).toEqual(countsBefore);
    expect(proxy.total()).toBe(requestsBefore);
    expect(readdirSync(home)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(localDir)).toEqual([]);
    expect(tree(stack.stateDir)).toEqual(stateBefore);
  }, 120_000);

  it("--help wins over everything else on the line: the dangerous commands do nothing", async () => {
    // Prepare
    const requestsBefore = proxy.total();
    const walBefore = (await cli(["wal", "list", "--json"])).stdout;
    const afterListing = proxy.total();
    const cases = [
      ["prune", "--help"],
      ["prune", "--grace-hours", "0", "--daily", "0", "--weekly", "0", "--monthly", "0", "--window-days", "0", "-h"],
      ["snapshot", "push", "--help"],
      ["local", "up", "--help"],
      ["local", "down", "-h"],
      ["restore", "--to", join(home, "r"), "--latest", "--help"],
      ["wal-push", join(home, "000000010000000000000002"), "--help"],
      ["wal-fetch", "000000010000000000000001", join(home, "out"), "--help"],
      ["db", "add", "another-db", "--help"],
      ["catalog", "rebuild", "--table", "x", "--help"],
      ["agent", "--help"],
      ["watch", join(home, "w.json"), "--once", "--help"],
      ["snapshot", "pin", "some-id", "--help"],
      ["verify", "--scheduled", "--help"],
      ["replicate", "--region", "local-2", "--help"],
      ["restore", "--bogus", "--help"],
    ];

    // Act
    const results = await mapLimit(cases, 4, async (args) => ({ args, r: await cli(args) }));

    // Assess
    for (const { args, r } of results) {
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/^usage: walvault /);
    }
    expect(proxy.total()).toBe(afterListing);
    expect(afterListing).toBeGreaterThan(requestsBefore);
    expect((await cli(["wal", "list", "--json"])).stdout).toBe(walBefore);
    expect(readdirSync(home)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(localDir)).toEqual([]);
  }, 60_000);

  it("the overview (no command, --help, -h, help) lists every visible command under its group, exit 0", async () => {
    // Act
    const results = await mapLimit([[], ["--help"], ["-h"], ["help"]], 4, (args) => cli(args));
    // Assess
    for (const r of results) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: walvault <command> \[options\]/);
      for (const c of COMMANDS) {
        if (c.hidden) expect(r.stdout).not.toContain(`  ${c.name} `);
        else expect(r.stdout).toContain(`  ${c.name}`);
        expect(r.stdout).toContain(c.group);
      }
    }
    expect(readdirSync(home)).toEqual([]);
  });

  it("a group word with --help lists its subcommands", async () => {
    // Act
    const r = await cli(["snapshot", "--help"]);
    // Assess
    expect(r.code).toBe(0);
    for (const sub of ["snapshot push", "snapshot list", "snapshot pin", "snapshot unpin"]) expect(r.stdout).toContain(sub);
    expect(r.stdout).not.toContain("wal-push");
  });
});

describe("--version", () => {
  it("prints walvault and the version in package.json, exit 0", async () => {
    // Prepare
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    // Act
    const [long, short] = await Promise.all([cli(["--version"]), cli(["-V"])]);
    // Assess
    expect(long).toEqual({ code: 0, stdout: `walvault ${pkg.version}\n`, stderr: "", timedOut: false });
    expect(short).toEqual(long);
  });
});

describe("unknown names and shapes: one line that says what was meant", () => {
  it.each([
    [["wal-psh", "x"], "walvault: unknown command 'wal-psh': did you mean 'wal-push'?"],
    [["snapshot", "pus"], "walvault: unknown command 'snapshot pus': did you mean 'snapshot push'?"],
    [["restor"], "walvault: unknown command 'restor': did you mean 'restore'?"],
    [["verify", "histroy"], "walvault: verify takes no arguments, got 'histroy': did you mean 'verify history'?"],
    [["restore", "--targt-time", "2026-01-01T00:00:00Z"], "walvault: unknown option '--targt-time' for restore: did you mean '--target-time'?"],
    [["wal-push", "x", "--no-agnt"], "walvault: unknown option '--no-agnt' for wal-push: did you mean '--no-agent'?"],
    [["prune", "--dryrun"], "walvault: unknown option '--dryrun' for prune: did you mean '--dry-run'?"],
    [["snapshot", "push", "extra"], "walvault: snapshot push takes no arguments, got 'extra'"],
    [["wal-push", "x", "--timeout", "-5"], "walvault: --timeout must be a positive number of seconds, not '-5'"],
    [["restore", "--remote", "--timeout=-5"], "walvault: --timeout must be a positive number of seconds, not '-5'"],
    [["wal-push", "x", "--database", ""], "walvault: --database must not be empty"],
  ])("%j", async (args, line) => {
    // Prepare
    const before = proxy.total();
    // Act
    const r = await cli(args);
    // Assess
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(stderrLines(r)).toEqual([line]);
    expect(proxy.total()).toBe(before);
  });
});
