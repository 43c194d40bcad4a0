/**
 * `npm run build:agent`: the agent as a product a DBA installs on a database
 * host (issue #12), built from this repository (after `npm run build`):
 *
 *  - `<out>/package/`, then `npm pack`ed into `<out>/walvault-agent-<version>.tgz`:
 *    bin/walvault (the repository's own launcher: it runs lib/walvault.js on
 *    the `node` first on PATH), lib/ (agent/cli.ts and its worker threads
 *    bundled: the AWS SDK clients, zod and fflate inside, nothing of local/,
 *    the handlers, the CDK app, the benchmarks or the tasks, which fails the
 *    build), the systemd unit and a README (agent/package/). No dependencies:
 *    `npm install -g` of it installs nothing else. native/: wal-push's fast
 *    path (agent/native/wal-push.c) as source and statically linked for the
 *    packing host's platform-arch; the package's postinstall
 *    (agent/package/install-native.cjs) puts at lib/ the one that runs on
 *    the installing host (that build, else one compiled there), or none.
 *  - `<out>/walvault-linux-x64` (unless --no-executable): the same agent as a
 *    single file that needs no Node.js on the host, built with Node's single
 *    executable applications (the Node 22 this repository runs, with the
 *    agent bundled as one CommonJS file and injected by postject). Its pools
 *    decode and encode on the calling thread (no worker files beside it).
 *
 * Usage: node dist/local/build-agent.js [--out DIR] [--no-executable]
 * (default DIR: dist/agent-package in this repository).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { bundleAgent, bundleAgentScript } from "./agent-bundle.js";
import { buildNativeWalPush, NATIVE_WAL_PUSH_SOURCE } from "./build-native.js";
import { PACKAGE_ROOT } from "./paths.js";

const USAGE = `usage: node dist/local/build-agent.js [--out DIR] [--no-executable]
Builds the installable agent: DIR/walvault-agent-<version>.tgz (npm install -g it; no dependencies)
and DIR/walvault-linux-x64 (a single file that needs no Node.js). Run \`npm run build\` first
(\`npm run build:agent\` does both). DIR defaults to dist/agent-package.
  --out DIR          where to write the package directory, the tarball and the executable
  --no-executable    only the npm package (the executable copies this Node, ~120 MB)`;

/** The fuse postject flips so that Node runs the injected blob (Node's single executable applications). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

export interface BuiltAgent {
  /** The package directory npm packed. */
  packageDir: string;
  tarball: string;
  executable?: string;
  version: string;
  /** The platform-arch of the static wal-push fast path packed in native/ (undefined: none could be built here; installs compile it or go without). */
  nativePrebuilt: string | undefined;
}

interface RootPackage {
  version: string;
  description?: string;
  license?: string;
  engines?: Record<string, string>;
}

/** Builds the package (and the executable unless `executable` is false) into `out`. */
export async function buildAgent(out: string, opts: { executable?: boolean } = {}): Promise<BuiltAgent> {
  const root = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as RootPackage;
  const version = root.version;
  const packageDir = join(out, "package");
  rmSync(packageDir, { recursive: true, force: true });
  await bundleAgent(join(packageDir, "lib"), { walvault: join(PACKAGE_ROOT, "agent", "cli.ts") }, { kind: "product", version, sourcemap: false });
  mkdirSync(join(packageDir, "bin"), { recursive: true });
  copyFileSync(join(PACKAGE_ROOT, "bin", "walvault"), join(packageDir, "bin", "walvault"));
  chmodSync(join(packageDir, "bin", "walvault"), 0o755);
  for (const f of readdirSync(join(PACKAGE_ROOT, "agent", "package"))) copyFileSync(join(PACKAGE_ROOT, "agent", "package", f), join(packageDir, f));
  // wal-push's native fast path: its source, and a static build for this host's platform and architecture;
  // install-native.cjs (postinstall) installs whichever runs on the installing host, or none.
  mkdirSync(join(packageDir, "native"), { recursive: true });
  copyFileSync(NATIVE_WAL_PUSH_SOURCE, join(packageDir, "native", "wal-push.c"));
  const prebuilt = buildNativeWalPush(join(packageDir, "native", `${process.platform}-${process.arch}`, "walvault-wal-push"), { static: true });
  const manifest = {
    name: "walvault-agent",
    version,
    description: "walvault's agent for database hosts: WAL archiving (archive_command / restore_command), snapshots and point-in-time restore to and from a walvault vault",
    license: root.license ?? "Apache-2.0",
    type: "module",
    bin: { walvault: "bin/walvault" },
    engines: root.engines ?? { node: ">=22.15" },
    os: ["linux"],
    files: ["bin/", "lib/", "native/", "install-native.cjs", "README.md", "walvault-agent@.service"],
    scripts: { postinstall: "node install-native.cjs" },
  };
  writeFileSync(join(packageDir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  // npm pack prints the tarball's name last; --ignore-scripts: packing runs nothing of the package's.
  const printed = execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", resolve(out)], { cwd: packageDir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const tarball = join(out, printed.trim().split("\n").at(-1)!);
  statSync(tarball);
  const built: BuiltAgent = { packageDir, tarball, version, nativePrebuilt: prebuilt.built ? `${process.platform}-${process.arch}` : undefined };
  if (opts.executable !== false) built.executable = await buildExecutable(out, version);
  return built;
}

/** The single executable: this Node, with the agent's one-file bundle injected (Node 22: --experimental-sea-config, then postject). */
async function buildExecutable(out: string, version: string): Promise<string> {
  const work = join(out, "sea");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const main = join(work, "walvault.cjs");
  await bundleAgentScript(main, version);
  const blob = join(work, "walvault.blob");
  const config = join(work, "sea-config.json");
  writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
  execFileSync(process.execPath, ["--experimental-sea-config", config], { stdio: ["ignore", "pipe", "pipe"] });
  const executable = join(out, "walvault-linux-x64");
  rmSync(executable, { force: true });
  copyFileSync(process.execPath, executable);
  chmodSync(executable, 0o755);
  const postject = createRequire(import.meta.url).resolve("postject/dist/cli.js");
  execFileSync(process.execPath, [postject, executable, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE], { stdio: ["ignore", "pipe", "pipe"] });
  rmSync(work, { recursive: true, force: true });
  return executable;
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

async function main(): Promise<number> {
  let values: { out?: string | undefined; "no-executable"?: boolean | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({ options: { out: { type: "string" }, "no-executable": { type: "boolean" }, help: { type: "boolean", short: "h" } }, strict: true }));
  } catch (e) {
    console.error(`build-agent: ${(e as Error).message} (--help says what it takes)`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const out = resolve(values.out ?? join(PACKAGE_ROOT, "dist", "agent-package"));
  mkdirSync(out, { recursive: true });
  const started = performance.now();
  const built = await buildAgent(out, { executable: !values["no-executable"] });
  console.log(`walvault-agent ${built.version}: ${built.tarball} (${mb(statSync(built.tarball).size)})`);
  if (built.executable) console.log(`single-file executable: ${built.executable} (${mb(statSync(built.executable).size)})`);
  console.log(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === (await import("node:url")).pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
