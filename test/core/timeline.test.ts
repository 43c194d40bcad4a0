import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { parseHistoryFile, parseTimelineHistory } from "../../core/timeline.js";

describe("parseTimelineHistory", () => {
  it("parses a history file as PostgreSQL writes it after two promotions", () => {
    // Prepare: the content of 00000003.history
    const text = '1\t0/3000000\tno recovery target specified\n2\t0/5000158\tat restore point "before_drop"\n';
    // Act
    const entries = parseTimelineHistory(text);
    // Assess
    expect(entries).toEqual([
      { timeline: 1, switchLsn: 0x300_0000n, reason: "no recovery target specified" },
      { timeline: 2, switchLsn: 0x500_0158n, reason: 'at restore point "before_drop"' },
    ]);
  });

  it("returns no entries for an empty file", () => {
    expect(parseTimelineHistory("")).toEqual([]);
    expect(parseTimelineHistory("\n\n")).toEqual([]);
  });

  it("ignores comment lines and blank lines, including indented ones", () => {
    // Prepare
    const text = [
      "# timeline history for timeline 3",
      "",
      "1\t0/3000000\tno recovery target specified",
      "   ",
      "  # indented comment",
      "\t",
      "2\t16/B374D848\tbefore 2000-01-01 00:00:00+00",
      "",
    ].join("\n");
    // Act
    const entries = parseTimelineHistory(text);
    // Assess
    expect(entries.map((e) => e.timeline)).toEqual([1, 2]);
    expect(entries[1]?.switchLsn).toBe(0x16_b374_d848n);
    expect(entries[1]?.reason).toBe("before 2000-01-01 00:00:00+00");
  });

  it("accepts CRLF line endings", () => {
    const entries = parseTimelineHistory("1\t0/3000000\tno recovery target specified\r\n2\t0/5000158\tx\r\n");
    expect(entries).toHaveLength(2);
    expect(entries[0]?.reason).toBe("no recovery target specified");
    expect(entries[1]?.switchLsn).toBe(0x500_0158n);
  });

  it("accepts a line without a reason and gives an empty reason", () => {
    expect(parseTimelineHistory("1\t0/3000000\n")).toEqual([{ timeline: 1, switchLsn: 0x300_0000n, reason: "" }]);
  });

  it("accepts gaps in timeline numbers as long as they increase", () => {
    // A timeline history can skip numbers when an abandoned timeline was never used as a parent.
    const entries = parseTimelineHistory("1\t0/3000000\ta\n4\t0/9000000\tb\n");
    expect(entries.map((e) => e.timeline)).toEqual([1, 4]);
  });

  it.each([
    ["a line without an LSN", "1\t0/3000000\tok\n2\n", 2],
    ["a non-numeric timeline", "1\t0/3000000\tok\nbogus\t0/4000000\tx\n", 2],
    ["a hexadecimal timeline", "A\t0/3000000\tok\n", 1],
    ["a negative timeline", "-1\t0/3000000\tok\n", 1],
    ["a line number counted over comments and blank lines", "# header\n\nnot a history line\n", 3],
  ])("reports the line number of %s", (_label, text, line) => {
    // Act
    let error: unknown;
    try {
      parseTimelineHistory(text);
    } catch (e) {
      error = e;
    }
    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toContain(`line ${line}`);
    expect((error as Error).message).toMatch(/malformed/);
  });

  it("reports the line number of a malformed switch LSN", () => {
    // Prepare
    const text = "1\t0/3000000\tok\n2\tnot-an-lsn\tbroken\n";
    // Act
    let error: unknown;
    try {
      parseTimelineHistory(text);
    } catch (e) {
      error = e;
    }
    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toContain("line 2");
    expect((error as Error).message).toContain("not-an-lsn");
    expect((error as Error).cause).toBeInstanceOf(InvalidInputError);
  });

  it("rejects a repeated timeline, naming the line and both timelines", () => {
    const text = "1\t0/3000000\ta\n1\t0/4000000\tb\n";
    expect(() => parseTimelineHistory(text)).toThrow(InvalidInputError);
    expect(() => parseTimelineHistory(text)).toThrow(/line 2: timeline 1 does not increase after 1/);
  });

  it("rejects a decreasing timeline", () => {
    const text = "1\t0/3000000\ta\n3\t0/5000000\tb\n2\t0/7000000\tc\n";
    expect(() => parseTimelineHistory(text)).toThrow(/line 3: timeline 2 does not increase after 3/);
  });
});

describe("parseHistoryFile", () => {
  it("accepts a history file as PostgreSQL writes it", () => {
    const entries = parseHistoryFile('1\t0/3000000\tno recovery target specified\n2\t0/5000158\tat restore point "before_drop"\n', 3);
    expect(entries.map((e) => e.timeline)).toEqual([1, 2]);
  });

  it("accepts bytes, and a reason that is not UTF-8 (a restore point name in a LATIN1 database)", () => {
    const bytes = Buffer.concat([Buffer.from("1\t0/3000000\tat restore point \"caf"), Buffer.from([0xe9]), Buffer.from("\"\n")]);
    expect(parseHistoryFile(bytes, 2)).toHaveLength(1);
  });

  it.each([
    ["a file with only a comment", "# nothing here\n", 2, /^00000002\.history is not a timeline history file: it lists no parent timeline/],
    ["an empty file", "", 2, /lists no parent timeline/],
    ["a line that does not parse", "1\t0/3000000\tok\nhello world\n", 3, /^00000003\.history is not a timeline history file: timeline history line 2 is malformed: 'hello world'$/],
    ["an ancestor that is not below the file's timeline", "1\t0/3000000\tx\n2\t0/4000000\tx\n", 2, /lists timeline 2, which is not an ancestor of timeline 2/],
    ["a switch point that goes back", "1\t0/5000000\tx\n2\t0/4000000\tx\n", 3, /timeline 2 branches off at 0\/4000000, before its parent's switch point 0\/5000000/],
    ["binary content", "1\t0/3000000\tx\u0000\n", 2, /it is not text/],
    ["the history of timeline 1 (which has none)", "1\t0/3000000\tx\n", 1, /not an ancestor of timeline 1/],
  ])("refuses %s with one line naming the file and the rule", (_what, text, timeline, message) => {
    // Act
    let error: unknown;
    try {
      parseHistoryFile(text, timeline);
    } catch (e) {
      error = e;
    }
    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("\n");
  });

  it("quotes a malformed line with its terminal escape bytes escaped and its length bounded", () => {
    // Prepare: a line that would clear the screen and set the window title, then 10 kB more.
    const line = `x\x1b[2J\x1b]0;owned\x07${"y".repeat(10_000)}`;
    // Act
    const message = (() => {
      try {
        parseHistoryFile(`1\t0/3000000\tok\n${line}\n`, 2);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })();
    // Assess
    expect(message).toContain("'x\\e[2J\\e]0;owned\\x07yyy");
    expect(message).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    expect(message.length).toBeLessThan(200);
  });
});
