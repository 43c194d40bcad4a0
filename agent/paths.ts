/**
 * Where the agent's own files are: from the TypeScript sources, dist/, the
 * installed package (the directory holding package.json), or the
 * single-file executable (local/build-agent.ts), which has no files but
 * itself.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { isSea } from "node:sea";
import { fileURLToPath } from "node:url";

/** This process is the single-file executable: the executable is the CLI, and there is no package root. */
export const IN_SINGLE_EXECUTABLE = isSea();

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("walvault package root not found");
    dir = up;
  }
  return dir;
}

/** The package root (the single-file executable: its directory). */
export const PACKAGE_ROOT = IN_SINGLE_EXECUTABLE ? dirname(process.execPath) : findRoot();
/** The CLI as PostgreSQL's restore_command runs it: the launcher (the Node 22 it needs, found by itself), or the single-file executable. */
export const WALVAULT_BIN = IN_SINGLE_EXECUTABLE ? process.execPath : join(PACKAGE_ROOT, "bin", "walvault");

/**
 * How to run this same CLI again from this process (wal-fetch's detached
 * prefetcher): this Node with the script running now (the bundle, or
 * dist/…/cli.js), or the single-file executable by itself (given a script
 * path it would take it for the command).
 */
export function selfCommand(): { file: string; args: string[] } {
  return IN_SINGLE_EXECUTABLE ? { file: process.execPath, args: [] } : { file: process.execPath, args: [process.argv[1]!] };
}
