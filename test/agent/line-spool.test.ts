/**
 * agent/line-spool.ts: lines kept on disk come back as added, in order,
 * whatever their length and characters (a multi-byte character cut by a read
 * block is decoded whole), and close() removes the spool.
 */
import { readdirSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { LineSpool } from "../../agent/line-spool.js";
import { FileAccessError } from "../../core/errors.js";
import { tempDir } from "../support/harness.js";

const base = tempDir("walvault-line-spool-");

afterAll(async () => {
  const { rmSync } = await import("node:fs");
  rmSync(base, { recursive: true, force: true });
});

async function all(spool: LineSpool): Promise<string[]> {
  const out: string[] = [];
  for await (const l of spool.lines()) out.push(l);
  return out;
}

describe("LineSpool", () => {
  it("gives back every line in order, multi-byte characters across read blocks included, as often as asked, and removes its file on close", async () => {
    // Prepare: ~1.5 MB of lines of 1 to 3-byte characters and varied lengths, so block boundaries fall inside characters.
    const spool = new LineSpool("a test's lines", base);
    const lines = Array.from({ length: 20_000 }, (_, i) => `${i} ${"é€a".repeat(i % 37)} { "Path": "base/${i}" }`);
    lines.push("");
    // Act
    for (const l of lines) spool.add(l);
    const first = await all(spool);
    const again = await all(spool);
    const dirs = readdirSync(base).length;
    spool.close();
    // Assess
    expect(first).toEqual(lines);
    expect(again).toEqual(lines);
    expect(spool.count).toBe(lines.length);
    expect(dirs).toBe(1);
    expect(readdirSync(base)).toEqual([]);
  });

  it("refuses a line that holds a newline, and holds nothing before the first line", async () => {
    const spool = new LineSpool("a test's lines", base);
    expect(await all(spool)).toEqual([]);
    expect(() => spool.add("two\nlines")).toThrow(/newline/);
    spool.close();
    expect(readdirSync(base)).toEqual([]);
  });

  it("reports a write that fails in one FileAccessError naming the lines, the directory and the code", () => {
    // Prepare: a spool whose file is gone (closed), so its next write fails as a full TMPDIR would.
    const spool = new LineSpool("a test's lines", base);
    spool.close();
    // Act
    let failure: unknown;
    try {
      for (let i = 0; i < 1000; i++) spool.add("x".repeat(1000));
    } catch (e) {
      failure = e;
    }
    // Assess
    expect(failure).toBeInstanceOf(FileAccessError);
    expect((failure as Error).message).toMatch(/^cannot write a test's lines to .*walvault-lines-.* \(EBADF\): free space there or set TMPDIR$/);
  });
});
