/**
 * `npm run build`'s last step, two bundles.
 *
 * The agent: this repository's CLI (local/dev-cli.ts: the agent's commands
 * plus `local up|down`; local/agent-bundle.ts) and its worker threads (decode, encode) into
 * dist/agent-bundle/ (AGENT_BUNDLE_DIR), one ESM file each with the modules
 * a command imports on demand split into chunks beside them, so `wal-push`
 * still loads only what it needs. bin/walvault runs it when it is newer
  * than dist/local/dev-cli.js: a command then loads a few files instead of ~300
 * modules of the SDK and zod (measured here: 280 -> 150 ms of CPU to load
 * what a restore uses; every archive_command call pays its start). The
 * local stack's modules, which `walvault local up` loads, stay outside
 * (dist/local/).
 *
 * And wal-push's native fast path (local/build-native.ts) into
 * dist/native/, when a C compiler is there.
 *
 * The handlers: every workflow step's handler module bundled
 * as infra/handler-function.ts has CDK bundle it for Lambda (core/workflows.ts
 * HANDLER_BUNDLE: one minified ESM file each, the SDK inside), written to
 * dist/bundles/<module>.mjs (bundleOf). The local stack's sandboxes
 * (local/lambda-pool.ts) load these, so what runs locally is what AWS runs,
 * and a sandbox's cold start loads one file instead of the SDK's module
 * graph (~200 ms of CPU instead of ~330 for PromotePacks, measured here; a
 * snapshot ingest starts ~10 sandboxes on the cores the agent shares).
 *
 * Usage: node dist/local/bundle-handlers.js
 */
import { join } from "node:path";
import { build } from "esbuild";
import { STEPS_BY_PLACEHOLDER } from "../core/workflows.js";
import { AS_LAMBDA, bundleAgent } from "./agent-bundle.js";
import { buildNativeWalPush, NATIVE_WAL_PUSH } from "./build-native.js";
import { AGENT_BUNDLE_DIR, BENCH_BUNDLE_DIR, PACKAGE_ROOT } from "./paths.js";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(
    "usage: node dist/local/bundle-handlers.js\nBundles the agent into dist/agent-bundle/ (what bin/walvault runs) and every workflow step's handler into dist/bundles/ as CDK bundles it for Lambda (npm run build runs it).",
  );
  process.exit(0);
}
if (args.length > 0) {
  console.error(`bundle-handlers: takes no arguments, got ${JSON.stringify(args[0])} (--help says what it does)`);
  process.exit(2);
}

const modules = [...new Set([...STEPS_BY_PLACEHOLDER.values()].map((s) => s.module))].sort();
const started = performance.now();
await build({
  // Keyed by module path: esbuild writes each to dist/bundles/<module>.mjs (core/workflows.ts bundleOf).
  entryPoints: Object.fromEntries(modules.map((m) => [m, join(PACKAGE_ROOT, `${m}.ts`)])),
  outdir: join(PACKAGE_ROOT, "dist", "bundles"),
  outExtension: { ".js": ".mjs" },
  ...AS_LAMBDA,
});
console.log(`bundled ${modules.length} handler modules into dist/bundles/ in ${((performance.now() - started) / 1000).toFixed(1)} s`);

const agentStarted = performance.now();
await bundleAgent(join(PACKAGE_ROOT, AGENT_BUNDLE_DIR), { walvault: join(PACKAGE_ROOT, "local", "dev-cli.ts") }, { kind: "developer" });
// bench:snapshot-restore's child (push and restore as the CLI runs them), loaded as the CLI's bundle loads.
await bundleAgent(join(PACKAGE_ROOT, BENCH_BUNDLE_DIR), { "snapshot-restore-child": join(PACKAGE_ROOT, "bench", "snapshot-restore-child.ts") }, { kind: "developer" });
console.log(`bundled the agent into ${AGENT_BUNDLE_DIR}/ (and the benchmark's child into ${BENCH_BUNDLE_DIR}/) in ${((performance.now() - agentStarted) / 1000).toFixed(1)} s`);
const native = buildNativeWalPush(join(PACKAGE_ROOT, NATIVE_WAL_PUSH));
console.log(native.built ? `built wal-push's native fast path into ${NATIVE_WAL_PUSH}` : `wal-push's native fast path not built (${native.reason}): bin/walvault runs Node for every call`);
