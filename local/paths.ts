/** Where the package's own files are (the agent's paths, agent/paths.ts, and the local stack's). */
import { join } from "node:path";
import { PACKAGE_ROOT } from "../agent/paths.js";

export { PACKAGE_ROOT, WALVAULT_BIN } from "../agent/paths.js";
export const STATEMACHINES_DIR = join(PACKAGE_ROOT, "statemachines");
/** Where `npm run build` bundles the agent, relative to the package root (bin/walvault runs AGENT_BUNDLE_DIR/walvault.js; local/bundle-handlers.ts). */
export const AGENT_BUNDLE_DIR = "dist/agent-bundle";
/** And bench:snapshot-restore's child, bundled the same way (bench/snapshot-restore.ts runs it). */
export const BENCH_BUNDLE_DIR = "dist/bench-bundle";
