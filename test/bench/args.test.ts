/**
 * bench/args.ts: every benchmark answers an option it does not know with
 * one line naming the benchmark and the option, exit code 2 and nothing
 * started, as walvault's commands answer bad input (not a stack trace).
 * Runs the compiled benchmarks (`npm test` builds dist/ first).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BENCHES = ["wal-push", "wal-live", "snapshot-restore", "scale", "snapshot", "pack-size", "block-size"] as const;

describe("a benchmark given an unknown option", () => {
  it.each(BENCHES)("%s: one line naming it and the option, exit 2, nothing on stdout", (bench) => {
    // Prepare
    const script = fileURLToPath(new URL(`../../dist/bench/${bench}.js`, import.meta.url));
    // Act
    const r = spawnSync(process.execPath, [script, "--no-such-option"], { encoding: "utf8", timeout: 60_000 });
    // Assess
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^bench:${bench}: Unknown option '--no-such-option'.* \\(--help lists the options\\)$`));
  });
});
