/** Test support for suites that drive a real PostgreSQL (local/postgres.ts). */
import type { ScratchPostgres } from "../../agent/postgres.js";

/** Closes the current WAL segment and waits until PostgreSQL reports it archived; returns its name. */
export async function switchAndWaitArchived(pg: ScratchPostgres, timeoutMs = 120_000): Promise<string> {
  const closed = await pg.psql("select pg_walfile_name(pg_switch_wal())");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await pg.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
    if (last >= closed) return closed;
    if (Date.now() > deadline) throw new Error(`${closed} was not archived (last ${last})\n${await pg.logTail(20)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
