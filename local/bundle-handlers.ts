/**
 * `npm run build`'s last step: every workflow step's handler module bundled
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
import { HANDLER_BUNDLE, STEPS_BY_PLACEHOLDER } from "../core/workflows.js";
import { PACKAGE_ROOT } from "./paths.js";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log("usage: node dist/local/bundle-handlers.js\nBundles every workflow step's handler into dist/bundles/ as CDK bundles it for Lambda (npm run build runs it).");
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
});
console.log(`bundled ${modules.length} handler modules into dist/bundles/ in ${((performance.now() - started) / 1000).toFixed(1)} s`);
