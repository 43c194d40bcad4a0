/** Where the agent's own files are, from either the TypeScript sources or dist/ (the package root holds package.json). */
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
/** The CLI launcher (runs the compiled agent on the project's Node 22). */
export const WALVAULT_BIN = join(PACKAGE_ROOT, "bin", "walvault");
