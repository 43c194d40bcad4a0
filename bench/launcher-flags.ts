/**
 * The Node flags bin/walvault starts a command with, read from the launcher
 * itself (one source): benchmarks that run a walvault command in a child of
 * their own (bench/snapshot-restore.ts, bench/scale.ts) start it the same
 * way, since V8's heap sizing counts in the peak RSS they report.
 */
import { readFileSync } from "node:fs";
import { WALVAULT_BIN } from "../agent/paths.js";

/** The words between "$node" and "$cli" (the script it runs) on the launcher's `  command)` line. */
export function launcherFlags(command: "snapshot" | "restore"): string[] {
  const launcher = readFileSync(WALVAULT_BIN, "utf8");
  const line = launcher.split("\n").find((l) => l.startsWith(`  ${command}) `));
  const m = line === undefined ? null : /"\$node"((?: --[\w-]+(?:=\S+)?)*) "\$cli"/.exec(line);
  if (m === null) throw new Error(`bin/walvault has no '${command})' line that starts "$node" with flags`);
  return m[1]!.split(" ").filter((f) => f !== "");
}
