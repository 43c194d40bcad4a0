/**
 * The one parser for a time a user gives (restore --target-time, restore
 * --remote --target-time, verify --target-time, the restore workflow's
 * target.time). Strict and independent of the agent's time zone:
 *
 *   2026-12-01T21:11:18Z              UTC ('T' or one space between date and time)
 *   2026-12-01 21:11:18+02:00         an explicit offset: +HH:MM, +HHMM or +HH
 *   2026-12-01T21:11:18.123456789Z    1 to 9 fractional digits (up to nanoseconds)
 *   2026-12-01T21:11Z                 seconds may be left out
 *   2026-12-01                        a date alone: midnight UTC
 *
 * Refused, with one line naming the accepted forms: a time without a zone
 * (it would mean the agent's local time), anything that is not this shape
 * ("5", "12", "yesterday"), dates that do not exist (2026-02-30: never rolled
 * into March), hour 24, minute or second 60 (a leap second has no place in
 * UNIX time, which every record here uses), offsets beyond ±18:00, years
 * outside 0001-9999.
 *
 * The parsed value keeps every digit: epoch nanoseconds as a bigint, plus
 * the Date truncated to the millisecond (toward the past) and the
 * nanoseconds past it. Comparisons with catalog times (milliseconds) on the
 * truncated Date are exact: for a record time r in whole milliseconds,
 * r <= t exactly when r <= floor_ms(t). PostgreSQL's recovery_target_time has
 * microsecond precision; the target is written truncated to the microsecond
 * (docs/time.md says why that restores the state AT the time given).
 */
import { InvalidInputError } from "./errors.js";

export interface PreciseTime {
  /** Nanoseconds since 1970-01-01T00:00:00Z. */
  epochNs: bigint;
  /** The same instant truncated to the millisecond (toward the past). */
  date: Date;
  /** Nanoseconds past `date`'s millisecond: 0..999_999. */
  subMsNanos: number;
}

/** What the error line names as accepted. */
export const ACCEPTED_TIME_FORMS =
  "give ISO 8601 with Z or an offset, e.g. 2026-12-01T21:11:18Z, 2026-12-01 21:11:18.123456789+02:00, or a date alone, 2026-12-01 (midnight UTC)";

const TIME_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysIn = (y: number, m: number): number => (m === 2 ? (isLeap(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31);

/** Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Untrusted text for a message: control and non-ASCII characters escaped, at most 64 characters. */
export function quoteInput(s: string): string {
  const cut = s.length > 64 ? `${s.slice(0, 64)}...` : s;
  return `'${cut.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)}'`;
}

const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
};

/** A PreciseTime from epoch nanoseconds. */
export function timeFromNs(epochNs: bigint): PreciseTime {
  const ms = floorDiv(epochNs, NS_PER_MS);
  return { epochNs, date: new Date(Number(ms)), subMsNanos: Number(epochNs - ms * NS_PER_MS) };
}

/** A PreciseTime from a Date (whole milliseconds). */
export function timeFromDate(d: Date): PreciseTime {
  return timeFromNs(BigInt(d.getTime()) * NS_PER_MS);
}

/** Why `text` is not an accepted time, or the time. */
export function tryParseTime(text: string): { ok: true; time: PreciseTime } | { ok: false; reason: string } {
  const m = TIME_RE.exec(text);
  if (m === null) {
    if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)) return { ok: false, reason: "it has no time zone" };
    if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}\.\d{10,}/.test(text)) return { ok: false, reason: "more than 9 fractional digits" };
    return { ok: false, reason: "not an ISO 8601 time" };
  }
  const [, ys, mos, ds, hs, mis, ss, frac, z, sign, ohs, oms] = m;
  const y = Number(ys);
  const mo = Number(mos);
  const d = Number(ds);
  if (y < 1) return { ok: false, reason: "year 0000 does not exist" };
  if (mo < 1 || mo > 12) return { ok: false, reason: `month ${mos} does not exist` };
  if (d < 1 || d > daysIn(y, mo)) return { ok: false, reason: `${MONTHS[mo - 1]} ${y} has no day ${ds}` };
  if (hs !== undefined && z === undefined && sign === undefined) return { ok: false, reason: "it has no time zone" };
  const h = hs === undefined ? 0 : Number(hs);
  const mi = mis === undefined ? 0 : Number(mis);
  const s = ss === undefined ? 0 : Number(ss);
  if (h > 23) return { ok: false, reason: `hour ${hs} does not exist (00-23)` };
  if (mi > 59) return { ok: false, reason: `minute ${mis} does not exist (00-59)` };
  if (s > 59) return { ok: false, reason: s === 60 ? "a leap second (60) has no UNIX time" : `second ${ss} does not exist (00-59)` };
  let offsetMin = 0;
  if (sign !== undefined) {
    const oh = Number(ohs);
    const om = oms === undefined ? 0 : Number(oms);
    if (om > 59 || oh * 60 + om > 18 * 60) return { ok: false, reason: `offset ${sign}${ohs}${oms === undefined ? "" : `:${oms}`} is not a UTC offset (up to ±18:00)` };
    offsetMin = (sign === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const seconds = BigInt(daysFromCivil(y, mo, d)) * 86400n + BigInt(h * 3600 + mi * 60 + s) - BigInt(offsetMin * 60);
  const nanos = frac === undefined ? 0n : BigInt(frac.padEnd(9, "0"));
  return { ok: true, time: timeFromNs(seconds * NS_PER_S + nanos) };
}

/**
 * Parses a user's time (see the file comment); `what` names it in the error
 * (e.g. "--target-time"). Throws InvalidInputError, one line.
 */
export function parseTime(text: string, what = "time"): PreciseTime {
  const r = tryParseTime(text);
  if (r.ok) return r.time;
  throw new InvalidInputError(notATime(text, what, r.reason));
}

/** What is wrong with `text` as a time given as `what` (parseTime's message), or undefined: for a command's option check. */
export function timeProblem(text: string, what: string): string | undefined {
  const r = tryParseTime(text);
  return r.ok ? undefined : notATime(text, what, r.reason);
}

const notATime = (text: string, what: string, reason: string): string => `${what} ${quoteInput(text)} is not a time (${reason}): ${ACCEPTED_TIME_FORMS}`;

/** ISO 8601 in UTC with as many fractional digits as needed: 3, 6 or 9. */
export function formatTime(t: PreciseTime): string {
  const iso = t.date.toISOString();
  if (t.subMsNanos === 0) return iso;
  const sub = String(t.subMsNanos).padStart(6, "0");
  return `${iso.slice(0, 23)}${sub.endsWith("000") ? sub.slice(0, 3) : sub}Z`;
}

/**
 * PostgreSQL timestamptz text in UTC, truncated to the microsecond (toward
 * the past): "2026-12-01 21:11:18.123456+00". With recovery_target_inclusive
 * on (the default), replay applies every commit whose time is <= this value;
 * commit times are whole microseconds, so a commit at or before t is at or
 * before floor_us(t), and one after t is after it: exactly the state at t.
 */
export function pgTimestamp(t: PreciseTime): string {
  const iso = t.date.toISOString();
  const micros = String(Math.floor(t.subMsNanos / 1000)).padStart(3, "0");
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${micros}+00`;
}

/**
 * Seconds for fs.utimes/lutimes that set exactly `epochNs` truncated to the
 * microsecond. Node passes times to libuv as a double of seconds, and libuv
 * (uv__fs_to_timespec) truncates its fraction to nanoseconds and then to
 * microseconds; a Date's ms / 1000 is rarely exact in binary, so about half
 * of all millisecond values came back 1 µs early (…264 ms set, …263.999 ms
 * read back). Aiming at the middle of the microsecond (500 ns in, toward the
 * truncation) absorbs the double's error, which is below 500 ns until 2106.
 */
export function utimeSeconds(epochNs: bigint): number {
  const s = epochNs / NS_PER_S; // toward zero, as libuv's cast
  const micros = (epochNs - s * NS_PER_S) / 1000n; // same sign as epochNs
  return Number(s) + (Number(micros) * 1000 + (epochNs < 0n ? -500 : 500)) / 1e9;
}
