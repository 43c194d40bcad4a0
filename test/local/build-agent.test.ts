/**
 * local/build-agent.ts (`npm run build:agent`): the agent as a DBA installs
 * it. The npm package installs into an empty prefix with nothing else (no
 * emulator, CDK or TypeScript), and the installed `walvault` archives and
 * fetches a segment against the local stack; the single-file executable
 * archives one with no Node.js on PATH; on an old Node the installed
 * launcher refuses in one line. Needs `npm run build` first.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCommandArgs, resolveCommand } from "../../agent/command.js";
import { COMMANDS } from "../../agent/commands/index.js";
import { PREFETCH_DIR } from "../../agent/wal-fetch.js";
import { buildAgent, type BuiltAgent } from "../../local/build-agent.js";
import { PACKAGE_ROOT } from "../../local/paths.js";
import { tempDir, writeWal } from "../support/harness.js";
import { startTestStack, type CliResult, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
/** Packages whose presence would mean the install pulled the development tree in. */
const NOT_THE_AGENTS = ["s3rver", "amplify-dynamodb-simulator", "aws-local-stepfunctions", "aws-cdk-lib", "aws-cdk", "cdk-nag", "typescript", "esbuild", "vitest", "constructs"];
/** The install-size target (issue #12). */
const MAX_INSTALL_BYTES = 40e6;

let out: string;
let built: BuiltAgent;
let prefix: string;
let stack: TestStack;
let wal: string;

/** Runs `file args` with exactly `env` (PATH included), bounded. */
function run(file: string, args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd: out, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Bytes under `dir`, symlinks not followed. */
function sizeOf(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  }
  return n;
}

/** Every package (directory with a package.json right under a node_modules) installed under `dir`. */
function installedPackages(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((p) => p.endsWith("/package.json") && /(^|\/)node_modules\/(@[^/]+\/)?[^/]+\/package\.json$/.test(p))
    .map((p) => p.replace(/^.*node_modules\//, "").replace(/\/package\.json$/, ""));
}

beforeAll(async () => {
  out = tempDir("walvault-agent-build-");
  built = await buildAgent(out);
  prefix = tempDir("walvault-agent-prefix-");
  execFileSync("npm", ["install", "-g", "--prefix", prefix, "--offline", "--ignore-scripts", "--no-audit", "--no-fund", built.tarball], { stdio: ["ignore", "pipe", "pipe"] });
  stack = await startTestStack([{ id: DB }]);
  wal = tempDir("walvault-agent-wal-");
}, 240_000);

afterAll(async () => {
  await stack?.destroy();
  for (const d of [out, prefix, wal]) if (d) rmSync(d, { recursive: true, force: true });
});

describe("the agent's npm package", () => {
  it("installs into an empty prefix as walvault and nothing else, under 40 MB", () => {
    // Act: installed in beforeAll
    const packages = installedPackages(prefix);
    const bytes = sizeOf(prefix);
    // Assess
    expect(packages).toEqual(["walvault-agent"]);
    for (const p of NOT_THE_AGENTS) expect(packages).not.toContain(p);
    expect(existsSync(join(prefix, "bin", "walvault"))).toBe(true);
    expect(bytes).toBeLessThan(MAX_INSTALL_BYTES);
    const manifest = JSON.parse(readFileSync(join(prefix, "lib", "node_modules", "walvault-agent", "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.dependencies).toBeUndefined();
    console.log(`installed walvault-agent ${built.version}: ${(bytes / 1e6).toFixed(2)} MB in ${prefix}`);
  });

  it("carries no module of the local stack, the handlers or the CDK app", () => {
    // Prepare
    const lib = join(built.packageDir, "lib");
    // Act
    const code = readdirSync(lib).filter((f) => f.endsWith(".js")).map((f) => readFileSync(join(lib, f), "utf8"));
    // Assess: no emulator inside, nothing imported from beside the package
    expect(code.length).toBeGreaterThan(0);
    expect(code.some((t) => t.includes("s3rver") || t.includes("aws-local-stepfunctions"))).toBe(false);
    expect(code.some((t) => /from\s*"\.\.\//.test(t))).toBe(false);
  });

  it("runs --version and a wal-push / wal-fetch round trip on the Node first on PATH, against the local stack", async () => {
    // Prepare: the installed walvault, Node 22 first on PATH
    const env = { PATH: `${join(prefix, "bin")}:${dirname(process.execPath)}:/usr/bin:/bin`, WALVAULT_CONFIG: stack.configPath, HOME: out };
    const name = "000000010000000000000001";
    const bytes = syntheticSegment(name, 11);
    const path = writeWal(wal, name, bytes);
    const dest = join(wal, "fetched");
    // Act
    const version = await run("walvault", ["--version"], env);
    const push = await run("walvault", ["wal-push", path, "--timeout", "30"], env);
    const fetch = await run("walvault", ["wal-fetch", name, dest, "--database", DB, "--no-prefetch"], env);
    // Assess
    expect(version.stdout.trim()).toBe(`walvault ${built.version}`);
    expect(push.code, push.stderr).toBe(0);
    expect(fetch.code, fetch.stderr).toBe(0);
    expect(readFileSync(dest)).toEqual(bytes);
  });

  it.runIf(existsSync("/usr/bin/node") && Number(execFileSync("/usr/bin/node", ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" })) < 22)(
    "on this machine's older system Node, refuses in one line naming it and what to do, exit 2",
    async () => {
      // Act
      const r = await run(join(prefix, "bin", "walvault"), ["wal-push", join(wal, "000000010000000000000009")], { PATH: "/usr/bin:/bin" });
      // Assess
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/^walvault: needs Node\.js 22\.15 or later, but \/usr\/bin\/node is \d+\.\d+\.\d+: install Node\.js 22 .*single-file executable/);
    },
  );

  it("with no node on PATH at all, says so in one line, exit 2", async () => {
    // Prepare: a PATH with the coreutils the launcher uses to follow npm's symlink, and no node
    const tools = join(out, "coreutils-only");
    mkdirSync(tools, { recursive: true });
    for (const t of ["readlink", "dirname"]) symlinkSync(execFileSync("sh", ["-c", `command -v ${t}`], { encoding: "utf8" }).trim(), join(tools, t));
    // Act
    const r = await run(join(prefix, "bin", "walvault"), ["--version"], { PATH: tools });
    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("walvault: no node on PATH: install Node.js 22.15 or later, or use the single-file executable walvault-linux-x64, which needs none\n");
  });

  it("ships a systemd unit whose command is one the agent accepts", () => {
    // Prepare
    const unit = readFileSync(join(built.packageDir, "walvault-agent@.service"), "utf8");
    const exec = /^ExecStart=\/usr\/bin\/env walvault (.*)$/m.exec(unit);
    expect(exec, "ExecStart runs walvault through /usr/bin/env").not.toBeNull();
    const words = exec![1]!.replace("%i", DB).replace("${PGDATA}", "/var/lib/postgresql/15/main").split(" ");
    // Act
    const r = resolveCommand(COMMANDS, words);
    // Assess
    expect(r.kind).toBe("command");
    if (r.kind !== "command") return;
    expect(r.command.name).toBe("agent");
    expect(() => parseCommandArgs(r.command, r.rest)).not.toThrow();
  });
});

describe("wal-push's native fast path in the package", () => {
  /** A copy of the packed package directory to run install-native.cjs in, with `prebuilt` (bytes) in place of the packed build. */
  function packageCopy(prebuilt?: Buffer): string {
    const dir = tempDir("walvault-agent-native-");
    cpSync(built.packageDir, dir, { recursive: true });
    rmSync(join(dir, "lib", "walvault-wal-push"), { force: true });
    if (prebuilt) {
      const bin = join(dir, "native", `${process.platform}-${process.arch}`, "walvault-wal-push");
      mkdirSync(dirname(bin), { recursive: true });
      writeFileSync(bin, prebuilt, { mode: 0o755 });
    }
    return dir;
  }
  /** The installed binary runs on this host: with no launcher around it, it says it cannot fall back (its own line, exit 2). */
  const runsHere = (bin: string) => spawnSync(bin, ["wal-push", "x"], { env: {}, encoding: "utf8" });

  it("packs the source and a statically linked build for this host's platform and architecture", () => {
    // Assess
    expect(built.nativePrebuilt).toBe(`${process.platform}-${process.arch}`);
    expect(readFileSync(join(built.packageDir, "native", "wal-push.c"), "utf8")).toBe(readFileSync(join(PACKAGE_ROOT, "agent", "native", "wal-push.c"), "utf8"));
    const elf = readFileSync(join(built.packageDir, "native", built.nativePrebuilt!, "walvault-wal-push"));
    expect(elf.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    // Statically linked: no program header asks for a program interpreter (PT_INTERP = 3, the dynamic loader).
    const phoff = Number(elf.readBigUInt64LE(0x20));
    const types = Array.from({ length: elf.readUInt16LE(0x38) }, (_, i) => elf.readUInt32LE(phoff + i * elf.readUInt16LE(0x36)));
    expect(types.length).toBeGreaterThan(0);
    expect(types).not.toContain(3);
  });

  it("npm install -g runs its postinstall, which installs the packed build at lib/, where bin/walvault runs it for wal-push", async () => {
    // Prepare: installed with scripts, as a DBA runs it
    const withScripts = tempDir("walvault-agent-prefix-scripts-");
    try {
      execFileSync("npm", ["install", "-g", "--prefix", withScripts, "--offline", "--no-audit", "--no-fund", built.tarball], { stdio: ["ignore", "pipe", "pipe"] });
      const installed = join(withScripts, "lib", "node_modules", "walvault-agent");
      const env = { PATH: `${join(withScripts, "bin")}:${dirname(process.execPath)}:/usr/bin:/bin`, WALVAULT_CONFIG: stack.configPath, HOME: out };
      const name = "000000010000000000000003";
      // Act: no agent runs, so the fast path hands the call to Node, which pushes by itself
      const push = await run("walvault", ["wal-push", writeWal(wal, name, syntheticSegment(name, 13)), "--timeout", "30", "--json"], env);
      // Assess
      expect(readFileSync(join(installed, "lib", "walvault-wal-push"))).toEqual(readFileSync(join(built.packageDir, "native", built.nativePrebuilt!, "walvault-wal-push")));
      expect(runsHere(join(installed, "lib", "walvault-wal-push")).stderr).toMatch(/^walvault: the fast wal-push path cannot fall back/);
      expect(push.code, push.stderr).toBe(0);
      expect(JSON.parse(push.stdout)).toMatchObject({ name, outcome: "stored" });
    } finally {
      rmSync(withScripts, { recursive: true, force: true });
    }
  });

  it("installed with --ignore-scripts, has no fast path and wal-push runs on Node (the round trip above)", () => {
    expect(existsSync(join(prefix, "lib", "node_modules", "walvault-agent", "lib", "walvault-wal-push"))).toBe(false);
  });

  it("a packed build that does not run here (another architecture) is not installed: compiled here with cc instead", () => {
    // Prepare: an ELF header of an aarch64 binary, nothing that runs on this host
    const foreign = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(8), Buffer.from([2, 0, 0xb7, 0]), Buffer.alloc(48)]);
    const dir = packageCopy(foreign);
    try {
      // Act
      const r = spawnSync(process.execPath, [join(dir, "install-native.cjs")], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, encoding: "utf8" });
      // Assess
      expect(r.status).toBe(0);
      expect(r.stdout.trim()).toBe("walvault-agent: installed wal-push's native fast path (compiled on this host)");
      expect(runsHere(join(dir, "lib", "walvault-wal-push")).stderr).toMatch(/^walvault: the fast wal-push path cannot fall back/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("with neither a build that runs nor a C compiler, installs nothing, says so in one line, and never fails the install", () => {
    // Prepare: the foreign build, and a PATH without cc or gcc
    const dir = packageCopy(Buffer.from("#!/nonexistent/interpreter\n"));
    try {
      // Act
      const r = spawnSync(process.execPath, [join(dir, "install-native.cjs")], { env: { PATH: join(out, "nothing-here") }, encoding: "utf8" });
      // Assess
      expect(r.status).toBe(0);
      expect(existsSync(join(dir, "lib", "walvault-wal-push"))).toBe(false);
      expect(r.stderr.trim().split("\n")).toEqual([
        `walvault-agent: no native wal-push for ${process.platform}-${process.arch} and no C compiler (cc, gcc) to build one: archive_command's calls run on Node (they work; each costs ~40 ms more CPU)`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the single-file executable", () => {
  it("fetches with its prefetcher, which is the executable itself: the next segment lands in the prefetch directory", async () => {
    // Prepare: two segments archived by the executable
    const exe = built.executable!;
    const env = { PATH: join(out, "nothing-here"), WALVAULT_CONFIG: stack.configPath, HOME: out };
    const [first, second] = ["000000010000000000000005", "000000010000000000000006"];
    for (const [i, n] of [first, second].entries()) {
      const push = await run(exe, ["wal-push", writeWal(wal, n, syntheticSegment(n, 20 + i)), "--timeout", "30"], env);
      expect(push.code, push.stderr).toBe(0);
    }
    const dir = join(wal, "recovery");
    mkdirSync(dir);
    // Act: fetch the first, prefetching on
    const fetch = await run(exe, ["wal-fetch", first, join(dir, "RECOVERYXLOG"), "--database", DB], env);
    // Assess: the detached prefetcher (exe wal-prefetch …) verified and wrote the second
    expect(fetch.code, fetch.stderr).toBe(0);
    const prefetched = join(dir, PREFETCH_DIR, second);
    for (let i = 0; i < 100 && !existsSync(prefetched); i++) await sleep(100);
    expect(readFileSync(prefetched)).toEqual(syntheticSegment(second, 21));
  });

  it("archives a segment and fetches it back with no node on PATH", async () => {
    // Prepare
    const exe = built.executable!;
    const env = { PATH: join(out, "nothing-here"), WALVAULT_CONFIG: stack.configPath, HOME: out };
    const name = "000000010000000000000002";
    const bytes = syntheticSegment(name, 12);
    const path = writeWal(wal, name, bytes);
    const dest = join(wal, "fetched-2");
    // Act
    const version = await run(exe, ["--version"], env);
    const push = await run(exe, ["wal-push", path, "--timeout", "30"], env);
    const fetch = await run(exe, ["wal-fetch", name, dest, "--database", DB, "--no-prefetch"], env);
    // Assess
    expect(version.stdout.trim()).toBe(`walvault ${built.version}`);
    expect(push.code, push.stderr).toBe(0);
    expect(fetch.code, fetch.stderr).toBe(0);
    expect(readFileSync(dest)).toEqual(bytes);
  });
});

describe("build-agent's command line", () => {
  it("--help says what it builds and exits 0; an unknown option is one line and exit 2", () => {
    // Act
    const help = execFileSync(process.execPath, [join(PACKAGE_ROOT, "dist", "local", "build-agent.js"), "--help"], { encoding: "utf8" });
    let bad: { status: number | null; stderr: string } = { status: 0, stderr: "" };
    try {
      execFileSync(process.execPath, [join(PACKAGE_ROOT, "dist", "local", "build-agent.js"), "--nope"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      bad = e as { status: number | null; stderr: string };
    }
    // Assess
    expect(help).toMatch(/^usage: node dist\/local\/build-agent\.js/);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
  });
});
