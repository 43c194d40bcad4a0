import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { confQuote, recoverySettings, renderRecoveryConf, shellQuote } from "../../core/recovery.js";
import type { RestorePlan } from "../../core/restore-plan.js";

function plan(over: Partial<RestorePlan> = {}): RestorePlan {
  return {
    kind: "postgres",
    snapshot: {} as RestorePlan["snapshot"],
    targetTimeline: 1,
    timelinePath: [1],
    wal: [],
    recoveryTarget: { recovery_target_time: "2026-11-21 07:30:00.000+00", recovery_target_timeline: "1" },
    endLsn: 0x3000000n,
    warnings: [],
    ...over,
  };
}

describe("recoverySettings", () => {
  it("fetches WAL with walvault for the source database, recovers to the planned target and promotes", () => {
    // Act
    const s = recoverySettings(plan(), { walvaultBin: "/opt/walvault/bin/walvault", databaseId: "pg-main" });
    // Assess
    expect(s).toEqual({
      restore_command: "'/opt/walvault/bin/walvault' wal-fetch --database 'pg-main' %f %p",
      recovery_target_time: "2026-11-21 07:30:00.000+00",
      recovery_target_timeline: "1",
      recovery_target_action: "promote",
    });
  });

  it("passes the config file to wal-fetch when one is given", () => {
    const s = recoverySettings(plan(), { walvaultBin: "/w", databaseId: "pg-main", configPath: "/etc/walvault/prod.json" });
    expect(s.restore_command).toBe("'/w' wal-fetch --database 'pg-main' --config '/etc/walvault/prod.json' %f %p");
  });

  it("writes only the target the plan chose (LSN here), never 'latest' as the timeline", () => {
    const s = recoverySettings(plan({ recoveryTarget: { recovery_target_lsn: "0/3000060", recovery_target_timeline: "2" } }), {
      walvaultBin: "/w",
      databaseId: "pg-main",
    });
    expect(Object.keys(s).filter((k) => k.startsWith("recovery_target"))).toEqual([
      "recovery_target_lsn",
      "recovery_target_timeline",
      "recovery_target_action",
    ]);
    expect(s.recovery_target_timeline).toBe("2");
  });

  it("refuses a plan for a generic database", () => {
    expect(() => recoverySettings(plan({ kind: "generic", recoveryTarget: undefined }), { walvaultBin: "/w", databaseId: "x-db" })).toThrow(
      InvalidInputError,
    );
  });
});

describe("quoting", () => {
  it("survives the shell for paths with spaces and quotes", () => {
    // Prepare: a word a shell must see as one argument, unchanged.
    const word = "/tmp/it's a dir/walvault";
    // Act
    const echoed = execFileSync("/bin/sh", ["-c", `printf %s ${shellQuote(word)}`], { encoding: "utf8" });
    // Assess
    expect(echoed).toBe(word);
  });

  it("doubles single quotes for postgresql.conf", () => {
    expect(confQuote("a'b")).toBe("'a''b'");
  });

  it("renders one setting per line after a comment, conf-quoted", () => {
    const text = renderRecoveryConf({ restore_command: "'/w' wal-fetch %f %p", recovery_target_action: "promote" }, "added by walvault restore");
    expect(text).toBe(
      "# added by walvault restore\nrestore_command = '''/w'' wal-fetch %f %p'\nrecovery_target_action = 'promote'\n",
    );
  });

  it("refuses a setting name that is not one", () => {
    expect(() => renderRecoveryConf({ "x = 1\nevil": "v" }, "n")).toThrow(/not a PostgreSQL setting name/);
  });
});
