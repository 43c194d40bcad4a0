import { afterEach, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { ACCEPTED_TIME_FORMS, formatTime, parseTime, pgTimestamp, timeFromDate, timeProblem, tryParseTime, utimeSeconds } from "../../core/time.js";

const ns = (iso: string, extraNs = 0n): bigint => BigInt(Date.parse(iso)) * 1_000_000n + extraNs;

describe("parseTime accepts ISO 8601 with a zone, a date alone, and keeps every fractional digit", () => {
  const accepted: Array<[string, bigint]> = [
    ["2026-12-01T21:11:18Z", ns("2026-12-01T21:11:18.000Z")],
    ["2026-12-01 21:11:18Z", ns("2026-12-01T21:11:18.000Z")],
    ["2026-12-01T21:11Z", ns("2026-12-01T21:11:00.000Z")],
    ["2026-12-01T21:11:18+02:00", ns("2026-12-01T19:11:18.000Z")],
    ["2026-12-01T21:11:18+0200", ns("2026-12-01T19:11:18.000Z")],
    ["2026-12-01T21:11:18+02", ns("2026-12-01T19:11:18.000Z")],
    ["2026-12-01T01:11:18-05:30", ns("2026-12-01T06:41:18.000Z")],
    ["2026-12-01T00:30:00+01:00", ns("2026-11-30T23:30:00.000Z")],
    ["2026-12-01T21:11:18.5Z", ns("2026-12-01T21:11:18.500Z")],
    ["2026-12-01T21:11:18.123Z", ns("2026-12-01T21:11:18.123Z")],
    ["2026-12-01T21:11:18.123456Z", ns("2026-12-01T21:11:18.123Z", 456_000n)],
    ["2026-12-01T21:11:18.123456789Z", ns("2026-12-01T21:11:18.123Z", 456_789n)],
    ["2026-12-01 21:11:18.000000001+00:00", ns("2026-12-01T21:11:18.000Z", 1n)],
    ["2026-12-01T23:59:59.999999999Z", ns("2026-12-01T23:59:59.999Z", 999_999n)],
    ["2026-12-01", ns("2026-12-01T00:00:00.000Z")],
    ["2024-02-29", ns("2024-02-29T00:00:00.000Z")],
    ["2000-02-29T12:00:00Z", ns("2000-02-29T12:00:00.000Z")],
    ["1970-01-01T00:00:00Z", 0n],
    ["1969-12-31T23:59:59.999999999Z", -1n],
    ["9999-12-31T23:59:59Z", ns("9999-12-31T23:59:59.000Z")],
  ];
  it.each(accepted)("%s", (text, want) => {
    // Act
    const t = parseTime(text);
    // Assess
    expect(t.epochNs).toBe(want);
    expect(BigInt(t.date.getTime()) * 1_000_000n + BigInt(t.subMsNanos)).toBe(want);
    expect(t.subMsNanos).toBeGreaterThanOrEqual(0);
    expect(t.subMsNanos).toBeLessThan(1_000_000);
  });
});

describe("parseTime refuses everything else with one line naming the accepted forms", () => {
  const refused: Array<[string, string]> = [
    ["5", "not an ISO 8601 time"],
    ["12", "not an ISO 8601 time"],
    ["", "not an ISO 8601 time"],
    ["yesterday", "not an ISO 8601 time"],
    ["1764623478", "not an ISO 8601 time"],
    ["2026-12-01 21:11:18", "no time zone"],
    ["2026-12-01T21:11:18", "no time zone"],
    ["2026-12-01T21:11", "no time zone"],
    ["2026-12-01T21:11:18.123", "no time zone"],
    ["2026-02-30T12:00:00Z", "February 2026 has no day 30"],
    ["2026-02-29", "February 2026 has no day 29"],
    ["1900-02-29T00:00:00Z", "February 1900 has no day 29"],
    ["2026-04-31T00:00:00Z", "April 2026 has no day 31"],
    ["2026-13-01T00:00:00Z", "month 13"],
    ["2026-00-01T00:00:00Z", "month 00"],
    ["2026-12-00T00:00:00Z", "has no day 00"],
    ["2026-12-01T24:00:00Z", "hour 24"],
    ["2026-12-01T23:60:00Z", "minute 60"],
    ["2026-12-31T23:59:60Z", "leap second"],
    ["2026-12-01T21:11:18.1234567891Z", "more than 9 fractional digits"],
    ["2026-12-01T21:11:18+19:00", "not a UTC offset"],
    ["2026-12-01T21:11:18+02:60", "not a UTC offset"],
    ["0000-01-01T00:00:00Z", "year 0000"],
    ["2026-12-01T21:11:18 Z", "not an ISO 8601 time"],
    [" 2026-12-01T21:11:18Z", "not an ISO 8601 time"],
    ["2026-12-01T21:11:18ZZ", "not an ISO 8601 time"],
    ["2026-12-01Z", "not an ISO 8601 time"],
    ["26-12-01T21:11:18Z", "not an ISO 8601 time"],
    ["2026-1-1T21:11:18Z", "not an ISO 8601 time"],
    ["2026-12-01T21:11:18.Z", "not an ISO 8601 time"],
    ["2026-12-01T21:11:18\u001b[31mZ", "not an ISO 8601 time"],
    ["Tue, 01 Dec 2026 21:11:18 GMT", "not an ISO 8601 time"],
  ];
  it.each(refused)("%j", (text, reason) => {
    // Act
    let err: unknown;
    try {
      parseTime(text, "--target-time");
    } catch (e) {
      err = e;
    }
    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    const msg = (err as Error).message;
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).toContain("--target-time");
    expect(msg).toContain(reason);
    expect(msg).toContain(ACCEPTED_TIME_FORMS);
    expect(msg).not.toMatch(/[\u0000-\u001f\u007f]/);
  });

  it.each(refused)("timeProblem(%j) is the same line, for an option check", (text) => {
    // Act
    const problem = timeProblem(text, "--target-time");
    // Assess
    expect(() => parseTime(text, "--target-time")).toThrow(problem!);
    expect(problem).toContain(ACCEPTED_TIME_FORMS);
  });

  it("timeProblem has nothing to say of a time", () => {
    expect(timeProblem("2026-12-01T21:11:18Z", "--target-time")).toBeUndefined();
    expect(timeProblem("2026-12-01", "--target-time")).toBeUndefined();
  });
});

describe("parseTime does not depend on the agent's time zone", () => {
  const saved = process.env.TZ;
  afterEach(() => {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  });
  it.each(["America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "UTC"])("under TZ=%s", (tz) => {
    // Prepare: the zone really changed for this process (Node re-reads TZ when it is assigned).
    process.env.TZ = tz;
    const localOffset = new Date(2026, 11, 1, 21, 11, 18).getTimezoneOffset();
    if (tz === "America/New_York") expect(localOffset).toBe(300);
    if (tz === "Asia/Kolkata") expect(localOffset).toBe(-330);
    // Act
    const got = ["2026-12-01T21:11:18Z", "2026-12-01 21:11:18+02:00", "2026-12-01"].map((s) => formatTime(parseTime(s)));
    const local = tryParseTime("2026-12-01 21:11:18");
    // Assess
    expect(got).toEqual(["2026-12-01T21:11:18.000Z", "2026-12-01T19:11:18.000Z", "2026-12-01T00:00:00.000Z"]);
    expect(local.ok).toBe(false);
  });
});

describe("formatTime and pgTimestamp", () => {
  it("formats with 3, 6 or 9 fractional digits as needed and round-trips", () => {
    // Prepare
    const texts = ["2026-12-01T21:11:18.000Z", "2026-12-01T21:11:18.123456Z", "2026-12-01T21:11:18.123456789Z", "2026-12-01T21:11:18.000000001Z"];
    // Act
    const out = texts.map((s) => formatTime(parseTime(s)));
    // Assess
    expect(out).toEqual(texts);
    expect(formatTime(timeFromDate(new Date("2026-12-01T21:11:18.250Z")))).toBe("2026-12-01T21:11:18.250Z");
  });

  it("writes PostgreSQL's microseconds truncated toward the past, never rounded up past the time given", () => {
    // Act
    const cases = [
      "2026-12-01T21:11:18Z",
      "2026-12-01T21:11:18.123456789Z",
      "2026-12-01T21:11:18.999999999Z",
      "2026-12-01T21:11:18.000000999Z",
      "2026-12-01T23:59:59.9999999+01:00",
    ].map((s) => pgTimestamp(parseTime(s)));
    // Assess
    expect(cases).toEqual([
      "2026-12-01 21:11:18.000000+00",
      "2026-12-01 21:11:18.123456+00",
      "2026-12-01 21:11:18.999999+00",
      "2026-12-01 21:11:18.000000+00",
      "2026-12-01 22:59:59.999999+00",
    ]);
  });
});

describe("utimeSeconds", () => {
  /** What libuv does with the seconds Node passes (uv__fs_to_timespec): truncate to ns, then to µs. */
  const libuv = (t: number): bigint => {
    const sec = Math.trunc(t);
    let nsec = Math.trunc((t - sec) * 1e9);
    nsec -= nsec % 1000;
    return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
  };
  it("gives seconds that libuv turns into exactly the recorded time, where ms / 1000 came back 1 µs early", () => {
    // Prepare: millisecond times around the one in issue #10, and nanosecond ones up to 2100
    const times: bigint[] = [];
    for (let i = 0n; i < 5000n; i++) times.push((1796159554000n + i) * 1_000_000n);
    for (let i = 0n; i < 5000n; i++) times.push(4102444799_000_000_000n - i * 999_999_937n);
    times.push(0n, 1n, 999n, 1_000n);
    // Act
    const wrong = times.filter((ns) => libuv(utimeSeconds(ns)) !== (ns / 1000n) * 1000n);
    const dateWrong = times.slice(0, 5000).filter((ns) => libuv(Number(ns / 1_000_000n) / 1000) !== ns);
    // Assess: exact for all; the Date way was off for many
    expect(wrong).toEqual([]);
    expect(dateWrong.length).toBeGreaterThan(1000);
  });
});
