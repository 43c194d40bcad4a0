/**
 * How the agent is bundled (esbuild, the options CDK bundles a Lambda
 * handler with: core/workflows.ts HANDLER_BUNDLE), for both builds:
 * `npm run build` bundles this repository's CLI (local/dev-cli.ts: the
 * agent plus `local up|down`, the local stack's modules left outside in
 * dist/local/) into dist/agent-bundle/, and `npm run build:agent`
 * (local/build-agent.ts) bundles the agent alone (agent/cli.ts) into the
 * installable package, where nothing of local/ may be reached at all.
 */
import { rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { build, type BuildOptions, type Plugin } from "esbuild";
import { HANDLER_BUNDLE } from "../core/workflows.js";
import { PACKAGE_ROOT } from "./paths.js";

/** esbuild's options as CDK bundles a handler (core/workflows.ts HANDLER_BUNDLE). */
export const AS_LAMBDA = {
  bundle: true,
  platform: "node",
  format: HANDLER_BUNDLE.format,
  target: HANDLER_BUNDLE.target,
  mainFields: [...HANDLER_BUNDLE.mainFields],
  banner: { js: HANDLER_BUNDLE.banner },
  minify: HANDLER_BUNDLE.minify,
  keepNames: HANDLER_BUNDLE.keepNames,
  sourcemap: HANDLER_BUNDLE.sourceMap,
  logLevel: "warning",
} as const satisfies BuildOptions;

/** The project's own source directories the agent must never reach (test/architecture.test.ts says the same of imports). */
const NOT_THE_AGENTS = ["local", "functions", "infra", "bench", "tasks"];

/** A module of the repository's `dir` (relative to the root) that `a` resolves to, if any. */
function projectDirOf(a: { path: string; resolveDir: string }): { dir: string; rest: string } | undefined {
  if (!a.path.startsWith(".")) return undefined;
  const rel = relative(PACKAGE_ROOT, resolve(a.resolveDir, a.path));
  const [dir, ...rest] = rel.split("/");
  return dir === undefined || rel.startsWith("..") ? undefined : { dir, rest: rest.join("/") };
}

/** The developer CLI: the local stack's modules (but the commands that load them) are imported from dist/local/ as they are. */
const localStackOutside: Plugin = {
  name: "local-stack-outside",
  setup(b) {
    b.onResolve({ filter: /\.js$/ }, (a) => {
      const at = projectDirOf(a);
      if (a.kind === "entry-point" || at?.dir !== "local" || at.rest.startsWith("commands/") || at.rest === "dev-cli.js") return undefined;
      return { path: `../local/${at.rest}`, external: true };
    });
  },
};

/** The installed agent: reaching local/, a handler, the CDK app, a benchmark or a task fails the build, naming the import. */
const agentOnly: Plugin = {
  name: "agent-only",
  setup(b) {
    b.onResolve({ filter: /\.js$/ }, (a) => {
      const at = projectDirOf(a);
      if (at === undefined || !NOT_THE_AGENTS.includes(at.dir)) return undefined;
      return { errors: [{ text: `the installed agent must not import ${at.dir}/${at.rest} (from ${relative(PACKAGE_ROOT, a.importer)})` }] };
    });
  },
};

export interface AgentBundleOptions {
  /** "developer": this repository's CLI, the local stack outside; "product": the agent alone. */
  kind: "developer" | "product";
  /** Replaces the identifier __WALVAULT_VERSION__ (agent/run-cli.ts): the bundle knows its version without a package.json. */
  version?: string;
  /** Source maps beside the files (default: as CDK's). */
  sourcemap?: boolean;
}

/**
 * The agent's entry points bundled into `dir` (absolute, emptied first:
 * chunks are named by content, the last build's would stay), one ESM file
 * each, the commands' modules split into chunks loaded on demand, the worker
 * threads beside them (the pools find them next to themselves:
 * agent/decode-pool.ts, agent/encode-pool.ts).
 */
export async function bundleAgent(dir: string, entryPoints: Record<string, string>, opts: AgentBundleOptions): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  await build({
    entryPoints: { ...entryPoints, "decode-worker": join(PACKAGE_ROOT, "agent", "decode-worker.ts"), "encode-worker": join(PACKAGE_ROOT, "agent", "encode-worker.ts") },
    outdir: dir,
    ...AS_LAMBDA,
    ...(opts.sourcemap === undefined ? {} : { sourcemap: opts.sourcemap }),
    ...(opts.version === undefined ? {} : { define: { __WALVAULT_VERSION__: JSON.stringify(opts.version) } }),
    splitting: true,
    chunkNames: "chunk-[hash]",
    plugins: [opts.kind === "developer" ? localStackOutside : agentOnly],
  });
}

/**
 * The agent alone (agent/cli.ts) as one CommonJS file at `file`, for Node's
 * single executable applications (Node 22 runs a CommonJS main only, and
 * only builtins can be required from it): no chunks, no worker files (the
 * pools then decode and encode on the calling thread), `import.meta.url`
 * the executable's own.
 */
export async function bundleAgentScript(file: string, version: string): Promise<void> {
  await build({
    entryPoints: [join(PACKAGE_ROOT, "agent", "cli.ts")],
    outfile: file,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: HANDLER_BUNDLE.target,
    mainFields: [...HANDLER_BUNDLE.mainFields],
    minify: HANDLER_BUNDLE.minify,
    keepNames: HANDLER_BUNDLE.keepNames,
    sourcemap: false,
    logLevel: "warning",
    banner: { js: 'var __walvault_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    define: { "import.meta.url": "__walvault_import_meta_url", __WALVAULT_VERSION__: JSON.stringify(version) },
    plugins: [agentOnly],
  });
}
