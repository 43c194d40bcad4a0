/**
 * bench/launcher-flags.ts reads the Node flags bin/walvault starts `snapshot
 * push` and `restore` with; the benchmarks start their children with them.
 * Each flag found must be one this Node accepts: a mistyped flag in the
 * launcher would stop every restore on a database host.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { launcherFlags } from "../../bench/launcher-flags.js";

describe("launcherFlags", () => {
  it.each(["snapshot", "restore"] as const)("finds the launcher's V8 flags for %s, and Node starts with them", (command) => {
    // Act
    const flags = launcherFlags(command);

    // Assess
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(f).toMatch(/^--[a-z-]+(=\S+)?$/);
    expect(execFileSync(process.execPath, [...flags, "-e", "process.stdout.write('started')"], { encoding: "utf8" })).toBe("started");
  });
});
