/**
 * The PITR trap guard. A cluster recovered from database X's archive (base
 * backup + restore_command) promotes onto a new timeline; if its
 * archive_command still says "push to X" it would interleave its WAL and a
 * new .history file with the source's stream, and a later "restore latest" of
 * X would follow the copy. So:
 *
 * - wal-fetch, run by PostgreSQL's restore_command in the data directory of a
 *   cluster doing archive recovery (recovery.signal present), leaves
 *   `walvault.restored-from` there naming the source database.
 * - wal-push refuses to archive into that same database while the marker is
 *   there. PostgreSQL keeps the WAL and retries, so nothing is lost; the
 *   operator points the restored cluster at a new database id (or removes the
 *   marker after deciding the copy IS the new primary).
 *
 * A standby (standby.signal) is left alone: when it is promoted after a
 * failover it is the rightful continuation of the same stream.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SegmentConflictError } from "../core/errors.js";

export const RESTORE_MARKER = "walvault.restored-from";

/** Called by wal-fetch with the cluster's data directory (restore_command's cwd). */
export function markRestoredFrom(dataDir: string, databaseId: string): void {
  if (!existsSync(join(dataDir, "recovery.signal")) || existsSync(join(dataDir, "standby.signal"))) return;
  const marker = join(dataDir, RESTORE_MARKER);
  if (existsSync(marker)) return;
  try {
    writeFileSync(marker, `${databaseId}\n`, { mode: 0o600 });
  } catch {
    // Not fatal for the fetch; the guard is best effort where the directory is read-only.
  }
}

/** Called by wal-push with the cluster's data directory (archive_command's cwd). */
export function assertMayArchiveInto(dataDir: string, databaseId: string): void {
  const marker = join(dataDir, RESTORE_MARKER);
  if (!existsSync(marker)) return;
  const source = readFileSync(marker, "utf8").trim();
  if (source === databaseId) {
    throw new SegmentConflictError(
      `this cluster was restored from database '${databaseId}' and must not archive into its WAL stream: ` +
        `register a new database id and set archive_command to \`walvault wal-push --database NEW_ID %p\` ` +
        `(or delete ${marker} if this copy is meant to replace the source)`,
    );
  }
}
