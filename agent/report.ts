/**
 * `walvault report --html FILE`: gathers, per database, what `status` says
 * (archive lag, WAL ranges and gaps per timeline or stream) and what each
 * region can restore (agent/regions.ts regionStatus: the same windows
 * `status --json` prints), with the snapshots and their latest
 * verification and what retention's next run would delete (store/prune.ts
 * prunePlan, as `prune --dry-run`), and renders the page
 * (core/report-html.ts). docs/report.md.
 */
import { writeFile, rename } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import type { AgentConfig } from "../core/config.js";
import type { ReportData, ReportDatabase, ReportWalLine } from "../core/report-html.js";
import { reportHtml } from "../core/report-html.js";
import type { AgentClients } from "./clients.js";
import { effectivePolicy } from "../core/retention.js";
import { describeError } from "../core/errors.js";
import { prunePlan } from "../store/prune.js";
import { regionStatus } from "./regions.js";
import { status, type StatusReport } from "./status.js";

/** The WAL lines of a status report, each range and gap placed in time by its segments' archive times (status gives them; `fallback` where it has none). */
function walLines(s: StatusReport, fallback: string): ReportWalLine[] {
  const lines = [
    ...s.timelines.map((t) => ({ line: `timeline ${t.timeline}`, ranges: t.ranges, gaps: t.gaps })),
    ...(s.streams ?? []).map((t) => ({ line: `stream ${t.stream}`, ranges: t.ranges, gaps: t.gaps })),
  ];
  return lines.map((l) => ({
    line: l.line,
    ranges: l.ranges.map((r) => ({ ...r, from: r.from ?? fallback, to: r.to ?? fallback })),
    gaps: l.gaps.map((g) => ({ ...g, from: g.from ?? fallback, to: g.to ?? fallback })),
  }));
}

/** Every registered database's id, a registry page at a time (a Query each, never a Scan). */
export async function allDatabaseIds(clients: Pick<AgentClients, "catalog">): Promise<string[]> {
  const ids: string[] = [];
  let after: string | undefined;
  do {
    const page = await clients.catalog.listDatabasePage(after);
    ids.push(...page.databases.map((d) => d.databaseId));
    after = page.next;
  } while (after !== undefined);
  return ids;
}

/** Everything the page draws for `databaseIds`, at `now`. */
export async function gatherReport(clients: AgentClients, cfg: AgentConfig, databaseIds: readonly string[], now = new Date()): Promise<ReportData> {
  const databases: ReportDatabase[] = [];
  for (const databaseId of databaseIds) {
    const [database, s, regions, snapshots] = await Promise.all([
      clients.catalog.getDatabase(databaseId),
      status(clients, databaseId, now),
      regionStatus(clients.catalog, cfg, databaseId, undefined, now),
      clients.catalog.listSnapshots(databaseId),
    ]);
    // Retention's next run, as `walvault prune --dry-run` plans it under the database's policy (no WAL file listed: ranges only).
    let nextDeletions: ReportDatabase["nextDeletions"];
    const warnings: string[] = [];
    try {
      const view = await prunePlan(clients.catalog, databaseId, effectivePolicy(database?.retention), now, { listed: 0 });
      nextDeletions = {
        snapshots: view.plan.deleteSnapshots.map((d) => d.snapshotId),
        walRanges: view.walRanges.map((r) => `${r.timeline === undefined ? `stream ${r.stream}` : `timeline ${r.timeline}`} ${r.from} .. ${r.through}`),
      };
    } catch (e) {
      warnings.push(`retention's next deletions unknown: ${describeError(e)}`);
    }
    databases.push({
      databaseId,
      kind: database?.kind ?? "postgres",
      ...(s.lastArchived ? { lastArchived: s.lastArchived } : {}),
      ...(s.archiveLagSeconds === undefined ? {} : { archiveLagSeconds: s.archiveLagSeconds }),
      quarantined: s.quarantined,
      ...(nextDeletions ? { nextDeletions } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
      regions: regions.map((r) => ({ region: r.region, primary: r.primary, windows: r.windows, missingWal: r.missingWal, missingSnapshots: r.missingSnapshots, lagSeconds: r.lagSeconds })),
      snapshots: snapshots.map((x) => ({
        snapshotId: x.snapshotId,
        finishedAt: x.finishedAt,
        ...(x.verification ? { verification: { outcome: x.verification.outcome, level: x.verification.level, at: x.verification.at } } : {}),
      })),
      wal: walLines(s, now.toISOString()),
    });
  }
  return { generatedAt: now.toISOString(), databases };
}

/** Writes the page to `file` whole (a temporary file beside it, renamed into place). */
export async function writeReport(file: string, data: ReportData): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  await writeFile(tmp, reportHtml(data));
  await rename(tmp, file);
}
