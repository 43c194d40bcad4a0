/**
 * The native fast path of `wal-push` (agent/native/wal-push.c): one request
 * on the resident agent's socket without starting Node, which bin/walvault
 * runs for `wal-push` when it is there (issue 13: archive_command runs once
 * per WAL segment). Built with the host's C compiler (`cc`, else `gcc`);
 * without one nothing is built, and bin/walvault runs Node for every call.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { PACKAGE_ROOT } from "./paths.js";

/** Where `npm run build` puts it in this repository (bin/walvault looks there after lib/). */
export const NATIVE_WAL_PUSH = join("dist", "native", "walvault-wal-push");
export const NATIVE_WAL_PUSH_SOURCE = join(PACKAGE_ROOT, "agent", "native", "wal-push.c");

/**
 * Compiles the fast path into `out`; `{ built: false, reason }` when no
 * compiler works. `static`: linked statically (the installable package's
 * prebuilt binary, which must run on any Linux of its architecture whatever
 * its C library).
 */
export function buildNativeWalPush(out: string, opts: { static?: boolean } = {}): { built: true } | { built: false; reason: string } {
  mkdirSync(dirname(out), { recursive: true });
  let last = "no C compiler (cc or gcc) on PATH";
  for (const cc of ["cc", "gcc"]) {
    const r = spawnSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", ...(opts.static ? ["-static", "-s"] : []), "-o", out, NATIVE_WAL_PUSH_SOURCE], { encoding: "utf8" });
    if (r.error) continue; // not installed
    if (r.status === 0) return { built: true };
    last = `${cc} failed: ${(r.stderr || r.stdout).trim().split("\n").slice(0, 3).join(" | ")}`;
  }
  return { built: false, reason: last };
}
