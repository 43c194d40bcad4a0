/**
 * The recovery point a database is at: how long ago its newest WAL was
 * recorded (its archive lag), against the lag its owner accepts (its RPO
 * threshold). The rpo-watch workflow (functions/rpo/measure.ts) measures
 * every database on a schedule and emits both as metrics; the deployed
 * alarm fires when any database's lag passes its threshold (docs/alarms.md).
 *
 * A database that never archived counts from its registration. An idle
 * PostgreSQL writes no WAL and so archives nothing: set `archive_timeout`
 * (a segment switch at least that often while anything is written) below
 * the threshold, and expect the lag of a database nobody writes to grow.
 * Pure.
 */
import type { DatabaseRecord, HeadRecord } from "./schemas.js";

/** Whole seconds from `iso` to `now`: 0 for a time in the future (clocks differ) or one that does not parse. */
function secondsSince(iso: string, now: Date): number {
  const at = Date.parse(iso);
  return Number.isFinite(at) ? Math.max(0, Math.floor((now.getTime() - at) / 1000)) : 0;
}

/** The threshold when a registration names none: 5 minutes (Engram's RPO, issue #12). */
export const DEFAULT_RPO_SECONDS = 300;

export interface RpoReading {
  databaseId: string;
  /** Whole seconds since `since` (0 if it is in the future: clocks differ). */
  lagSeconds: number;
  thresholdSeconds: number;
  /** The lag is over the threshold. */
  breached: boolean;
  /** The newest recorded WAL's archivedAt, or the registration's createdAt when none was recorded. */
  since: string;
  /** The newest recorded WAL file's name, when there is one. */
  lastWal?: string;
}

/** The reading of database `db` whose head (newest recorded WAL) is `head`, at `now`. */
export function rpoReading(db: Pick<DatabaseRecord, "databaseId" | "createdAt" | "rpoSeconds">, head: Pick<HeadRecord, "lastName" | "lastArchivedAt"> | undefined, now: Date): RpoReading {
  const since = head?.lastArchivedAt ?? db.createdAt;
  const lagSeconds = secondsSince(since, now);
  const thresholdSeconds = db.rpoSeconds ?? DEFAULT_RPO_SECONDS;
  return {
    databaseId: db.databaseId,
    lagSeconds,
    thresholdSeconds,
    breached: lagSeconds > thresholdSeconds,
    since,
    ...(head ? { lastWal: head.lastName } : {}),
  };
}

/** The replication lag past which the deployed alarm fires (seconds): copies run within seconds; 15 minutes of backlog is a region in trouble. */
export const REPLICATION_LAG_ALARM_SECONDS = 900;

/**
 * A database's replication lag in one replica region, at `now`: how long
 * ago the oldest record still pending there (`pendingSince`: a WAL file's
 * archivedAt, a snapshot's recordedAt) was recorded; 0 when nothing is
 * pending. Whole seconds, never negative.
 */
export function replicationLagSeconds(pendingSince: string | undefined, now: Date): number {
  return pendingSince === undefined ? 0 : secondsSince(pendingSince, now);
}
