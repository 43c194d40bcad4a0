/** The verification task's entry point (tasks/verify/main.ts), run as the workflow runs it (dist/, after the build). */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const entrypoint = join(import.meta.dirname, "..", "..", "..", "dist", "tasks", "verify", "main.js");

describe("verification task input", () => {
  it.each(["5", "2026-02-30T12:00:00Z", "2026-12-01 21:11:18"])("refuses the target time %j with one line and exit 2, before reading any configuration", (time) => {
    // Prepare
    expect(existsSync(entrypoint), "dist/tasks/verify/main.js is missing: run the build first").toBe(true);
    const input = { databaseId: "pg-main", snapshotId: "20260101T000000Z-00000001", level: 4, targetTime: time, runId: "r1", reason: "test", trigger: "cli" };

    // Act
    const run = spawnSync(process.execPath, [entrypoint], {
      cwd: tmpdir(),
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", WALVAULT_VERIFY_INPUT: JSON.stringify(input), WALVAULT_CONFIG: join(tmpdir(), "walvault-no-such-config.json") },
    });

    // Assess
    expect(run.status).toBe(2);
    const lines = run.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("WALVAULT_VERIFY_INPUT is malformed at targetTime:");
    expect(lines[0]).toContain("is not a time");
    expect(run.stdout).toBe("");
  });
});
