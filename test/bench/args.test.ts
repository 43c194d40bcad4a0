/**
 * bench/args.ts: every benchmark answers an option it does not know, and
 * the WAL benchmarks a mode, variant or nice value they cannot take, with
 * one line naming the benchmark and what was wrong, exit code 2 and nothing
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

describe("a benchmark given a value it cannot take", () => {
  it.each([
    ["wal-push", ["--modes", "agent,direct"], /^bench:wal-push: unknown mode 'direct' \(no-agent, agent, agent-incoming\)$/],
    ["wal-live", ["--variants", "true,agent-direct-wal"], /^bench:wal-live: unknown variant 'agent-direct-wal' \(true, no-agent, agent, agent-incoming\)$/],
    ["wal-live", ["--host-nice=-30"], /^bench:wal-live: --host-nice must be an integer from -20 to 19, not '-30'$/],
  ] as const)("%s %s: one line naming it, exit 2, nothing started", (bench, args, message) => {
    // Prepare
    const script = fileURLToPath(new URL(`../../dist/bench/${bench}.js`, import.meta.url));
    // Act
    const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", timeout: 60_000 });
    // Assess
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim()).toMatch(message);
  });
});
