/** core/rpo.ts: a database's archive lag against its RPO threshold. */
import { describe, expect, it } from "vitest";
import { DEFAULT_RPO_SECONDS, replicationLagSeconds, rpoReading } from "../../core/rpo.js";

const db = { databaseId: "pg-main", createdAt: "2026-12-05T10:00:00.000Z" };
const at = (iso: string): Date => new Date(iso);

describe("rpoReading", () => {
  it("measures from the newest recorded WAL, against the default threshold", () => {
    // Act
    const r = rpoReading(db, { lastName: "000000010000000000000007", lastArchivedAt: "2026-12-05T11:00:00.000Z" }, at("2026-12-05T11:04:59.900Z"));
    // Assess
    expect(r).toEqual({ databaseId: "pg-main", lagSeconds: 299, thresholdSeconds: DEFAULT_RPO_SECONDS, breached: false, since: "2026-12-05T11:00:00.000Z", lastWal: "000000010000000000000007" });
  });

  it("is breached only once the lag passes the threshold the registration names", () => {
    const head = { lastName: "000000010000000000000007", lastArchivedAt: "2026-12-05T11:00:00.000Z" };
    expect(rpoReading({ ...db, rpoSeconds: 60 }, head, at("2026-12-05T11:01:00.000Z")).breached).toBe(false);
    expect(rpoReading({ ...db, rpoSeconds: 60 }, head, at("2026-12-05T11:01:01.000Z")).breached).toBe(true);
  });

  it("counts a database that never archived from its registration", () => {
    // Act
    const r = rpoReading(db, undefined, at("2026-12-05T10:10:00.000Z"));
    // Assess
    expect(r.lagSeconds).toBe(600);
    expect(r.breached).toBe(true);
    expect(r.since).toBe(db.createdAt);
    expect(r.lastWal).toBeUndefined();
  });

  it("reads a head from a clock ahead of this one as no lag", () => {
    expect(rpoReading(db, { lastName: "x", lastArchivedAt: "2026-12-05T12:00:00.000Z" }, at("2026-12-05T11:59:00.000Z")).lagSeconds).toBe(0);
  });
});

describe("replicationLagSeconds", () => {
  it("is the age of the oldest pending record, 0 when nothing is pending or the clock is behind", () => {
    const now = at("2026-12-05T11:00:00.000Z");
    expect(replicationLagSeconds("2026-12-05T10:45:00.500Z", now)).toBe(899);
    expect(replicationLagSeconds(undefined, now)).toBe(0);
    expect(replicationLagSeconds("2026-12-05T11:00:05.000Z", now)).toBe(0);
  });
});
