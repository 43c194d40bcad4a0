/** Where the package's own files are (the agent's paths, agent/paths.ts, and the local stack's). */
import { join } from "node:path";
import { PACKAGE_ROOT } from "../agent/paths.js";

export { PACKAGE_ROOT, WALVAULT_BIN } from "../agent/paths.js";
export const STATEMACHINES_DIR = join(PACKAGE_ROOT, "statemachines");
