/** Where the package's own files are, from either the TS sources or dist/. */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("walvault package root not found");
    dir = up;
  }
  return dir;
}

export const PACKAGE_ROOT = findRoot();
export const STATEMACHINES_DIR = join(PACKAGE_ROOT, "statemachines");
/** The CLI launcher (runs the compiled agent on the project's Node 22). */
export const WALVAULT_BIN = join(PACKAGE_ROOT, "bin", "walvault");
