import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { archiveBacklog, archiveStatusDir, backlogBeside, dueOnce, fallingBehindHint, FALLING_BEHIND_BACKLOG, readyFiles } from "../../agent/archive-status.js";
import { tempDir } from "../support/harness.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A data directory whose archive_status holds `ready` .ready files and `done` .done files. */
function pgdata(ready: string[], done: string[] = []): string {
  const dir = tempDir("walvault-archive-status-");
  dirs.push(dir);
  mkdirSync(archiveStatusDir(dir), { recursive: true });
  for (const f of ready) writeFileSync(join(archiveStatusDir(dir), `${f}.ready`), "");
  for (const f of done) writeFileSync(join(archiveStatusDir(dir), `${f}.done`), "");
  return dir;
}

const A = "000000010000000000000010";
const B = "000000010000000000000011";
const C = "000000010000000000000012";

describe("readyFiles", () => {
  it("lists the files waiting for archive_command, oldest first, without the .done ones", () => {
    // Prepare
    const dir = pgdata([C, A, B], ["00000001000000000000000F"]);
    // Act and Assess
    expect(readyFiles(archiveStatusDir(dir))).toEqual([A, B, C]);
  });

  it("is undefined for a directory that is not there", () => {
    expect(readyFiles("/nonexistent/pg_wal/archive_status")).toBeUndefined();
  });
});

describe("archiveBacklog", () => {
  it("counts the waiting files and says how long the oldest has waited", () => {
    // Prepare
    const dir = pgdata([A, B]);
    const t = Date.now() / 1000 - 90;
    utimesSync(join(archiveStatusDir(dir), `${A}.ready`), t, t);
    // Act
    const b = archiveBacklog(archiveStatusDir(dir));
    // Assess
    expect(b).toMatchObject({ segments: 2, oldest: A });
    expect(b!.oldestReadySeconds).toBeGreaterThanOrEqual(89);
    expect(b!.oldestReadySeconds).toBeLessThanOrEqual(95);
  });

  it("is zero segments when nothing waits", () => {
    expect(archiveBacklog(archiveStatusDir(pgdata([], [A])))).toEqual({ segments: 0 });
  });
});

describe("backlogBeside", () => {
  it("counts the .ready files beside a WAL file named as archive_command's %p is (relative to the data directory), or absolute", () => {
    // Prepare
    const dir = pgdata([A, B, C], ["00000001000000000000000F"]);
    // Act and Assess
    expect(backlogBeside(join("pg_wal", A), dir)).toBe(3);
    expect(backlogBeside(join(dir, "pg_wal", A), "/")).toBe(3);
  });

  it("is undefined for a file with no archive_status beside it (not a PostgreSQL pg_wal)", () => {
    // Prepare
    const dir = tempDir("walvault-archive-status-");
    dirs.push(dir);
    // Act and Assess
    expect(backlogBeside(A, dir)).toBeUndefined();
  });
});

describe("fallingBehindHint", () => {
  it("says the queue, the call's time and the command to run, in one line, once the queue reaches the threshold", () => {
    // Act
    const hint = fallingBehindHint(FALLING_BEHIND_BACKLOG + 2, 2.04, "pg-main", "/var/lib/postgresql/15/main");
    // Assess
    expect(hint).toBe(
      "hint: archiving is falling behind: 5 WAL files wait in pg_wal/archive_status and this push took 2.0 s without a resident agent; " +
        "start one beside PostgreSQL (walvault agent --database pg-main --pgdata /var/lib/postgresql/15/main) to push them ahead in parallel",
    );
    expect(hint).not.toContain("\n");
  });

  it("says nothing below the threshold or when the queue is not known", () => {
    expect(fallingBehindHint(FALLING_BEHIND_BACKLOG - 1, 9, "pg-main", "/d")).toBeUndefined();
    expect(fallingBehindHint(undefined, 9, "pg-main", "/d")).toBeUndefined();
  });
});

describe("dueOnce", () => {
  it("is true the first time and then not again until the period has passed since", () => {
    // Prepare
    const dir = tempDir("walvault-stamp-");
    dirs.push(dir);
    const stamp = join(dir, "hint");
    const t0 = Date.now();
    // Act and Assess
    expect(dueOnce(stamp, 60_000, t0)).toBe(true);
    expect(dueOnce(stamp, 60_000, t0 + 1_000)).toBe(false);
    expect(dueOnce(stamp, 60_000, t0 + 59_000)).toBe(false);
    expect(dueOnce(stamp, 60_000, t0 + 61_000)).toBe(true);
    expect(dueOnce(stamp, 60_000, t0 + 62_000)).toBe(false);
  });

  it("is true every time when the stamp cannot be written (a hint more, never a failed push)", () => {
    expect(dueOnce("/nonexistent/dir/hint", 60_000)).toBe(true);
    expect(dueOnce("/nonexistent/dir/hint", 60_000)).toBe(true);
  });
});
