/**
 * Restore step 1 — Plan: which snapshot and which WAL segments reach the
 * target (core/restore-plan.ts over what the catalog knows; see common.ts).
 * Input: { databaseId, target: { kind: "latest"|"time"|"lsn"|"name"|"snapshot",
 *          time?, lsn?, name?, snapshotId?, timeline? }, tier? } (a tier, used
 *          by Thaw, must be Standard or Bulk; other fields are ignored).
 *        and `execution` ($$.Execution.Name; absent: a random name).
 * The plan (RestorePlanOutput, JSON-safe: LSNs as "X/Y", generic positions
 * as decimal text; chunks are a count, later steps re-read them from the
 * manifest) grows with the WAL to replay (~110 bytes a segment: past 256 KiB
 * at ~2,400 segments), so it is written to a work/ object of the incoming
 * bucket (store/work-objects.ts: work/restore/<database>/<execution>/, the
 * WAL list in pages) and the output is its summary (RestorePlanSummary: the
 * key, the snapshot, counts, bytes, the target). Both schemas are
 * core/restore-workflow.ts, shared with `walvault restore --remote`.
 * Every planning error is typed (NoSnapshotBeforeTargetError, WalGapError,
 * TargetAfterArchiveEndError, ...): the workflow fails with its name.
 * Generic databases with several WAL streams: the first stream picks the
 * snapshot, every other stream must reach the target from the same one.
 * PostgreSQL: the catalog is read for this target only (loadPlanningState:
 * the WAL records from the chosen snapshot's start on, not the whole archive).
 * Generic: its WAL is read a page at a time and only the segments from the
 * chosen snapshot on are kept (its names do not sort by position, so it
 * cannot be read by range: the work still grows with the archive, the
 * memory with what the restore replays).
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { InvalidInputError } from "../../core/errors.js";
import {
  restoreWorkflowInputSchema,
  type PlannedWal,
  type RestorePlanOutput,
  type RestorePlanSummary,
  type RestoreWorkflowTarget,
} from "../../core/restore-workflow.js";
import type { WalRecord } from "../../core/schemas.js";
import { restorePlanKey, StoreWorkObjects, writeRestorePlan } from "../../store/work-objects.js";
import { parseTime } from "../../core/time.js";
import { planRestore, type RestorePlan, type RestoreTarget } from "../../core/restore-plan.js";
import { formatLsn, parseLsn } from "../../core/wal.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { buildPlanInput, loadPlanningState, segmentsOf } from "./common.js";
import { lambdaHandler } from "../observability.js";

export const planInputSchema = restoreWorkflowInputSchema.extend({ execution: z.string().min(1).optional() });
export type { PlannedWal, RestorePlanOutput, RestorePlanSummary };

function toTarget(t: RestoreWorkflowTarget): RestoreTarget {
  const tl = t.timeline === undefined ? {} : { timeline: t.timeline };
  const need = (v: string | undefined, field: string): string => {
    if (v === undefined) throw new InvalidInputError(`a '${t.kind}' restore target needs target.${field}`);
    return v;
  };
  switch (t.kind) {
    case "latest":
      return { kind: "latest", ...tl };
    case "time": {
      const time = parseTime(need(t.time, "time"), "target.time");
      return { kind: "time", time: time.date, ...(time.subMsNanos === 0 ? {} : { subMsNanos: time.subMsNanos }), ...tl };
    }
    case "lsn": {
      const v = need(t.lsn, "lsn");
      return { kind: "lsn", lsn: /^\d{1,20}$/.test(v) ? BigInt(v) : parseLsn(v), ...tl };
    }
    case "name":
      return { kind: "name", name: need(t.name, "name"), ...tl };
    case "snapshot":
      return { kind: "snapshot", id: need(t.snapshotId, "snapshotId"), ...tl };
  }
}

async function handle(input: unknown): Promise<RestorePlanSummary> {
  const parsed = parseInput(planInputSchema, input, "restore plan input");
  const target = toTarget(parsed.target);
  const deps = getDeps();
  const state = await loadPlanningState(deps, parsed.databaseId, target);
  const db = state.database;
  const streams: (string | undefined)[] = db.kind === "generic" ? (state.streams.length ? state.streams : [undefined]) : [undefined];
  if (streams.length > 1 && (target.kind === "lsn" || target.kind === "name")) {
    throw new InvalidInputError(
      `database ${db.databaseId} has ${streams.length} WAL streams (${state.streams.join(", ")}): a position or restore-point target would mean a different point in each; use a time, latest or a snapshot`,
    );
  }
  const plans: { stream: string | undefined; plan: RestorePlan }[] = [];
  const first = planRestore(buildPlanInput(state, target, streams[0]));
  plans.push({ stream: streams[0], plan: first });
  for (const s of streams.slice(1)) plans.push({ stream: s, plan: planRestore(buildPlanInput(state, target, s, first.snapshot.id)) });

  const record = state.records.find((r) => r.snapshotId === first.snapshot.id)!;
  const pos = (v: bigint): string => (db.kind === "postgres" ? formatLsn(v) : v.toString());
  const wal: PlannedWal[] = [];
  let walBytes = 0;
  for (const { stream, plan } of plans) {
    // One pass over the stream's records into a map, not a search per planned segment.
    const byName = new Map<string, WalRecord>();
    const id = (name: string, timeline: number): string => (db.kind === "generic" ? name : `${timeline}/${name}`);
    for (const r of segmentsOf(state, stream)) if (!byName.has(id(r.name, r.timeline))) byName.set(id(r.name, r.timeline), r); // the first, as a search would find
    for (const w of plan.wal) {
      const rec = byName.get(id(w.name, w.timeline))!;
      walBytes += rec.size;
      wal.push({ ...(db.kind === "generic" && stream !== undefined ? { stream } : {}), timeline: w.timeline, name: w.name, key: rec.vaultKey });
    }
  }
  const s = first.snapshot;
  const out: RestorePlanOutput = {
    databaseId: db.databaseId,
    kind: db.kind,
    walSegmentSize: db.walSegmentSize,
    snapshot: {
      id: s.id,
      timeline: s.timeline,
      startLsn: pos(s.startLsn),
      stopLsn: pos(s.stopLsn),
      startedAt: s.startedAt.toISOString(),
      finishedAt: s.finishedAt.toISOString(),
    },
    manifestKey: record.manifestKey,
    manifestSha256: record.manifestSha256,
    chunkCount: record.totals.uniqueChunks,
    targetTimeline: first.targetTimeline,
    timelinePath: first.timelinePath,
    wal,
    walCount: wal.length,
    recoveryTarget: (first.recoveryTarget as Record<string, string> | undefined) ?? null,
    endLsn: first.endLsn === undefined ? null : pos(first.endLsn),
    warnings: plans.flatMap(({ stream, plan }, i) => plan.warnings.map((w) => (i === 0 || stream === undefined ? w : `${stream}: ${w}`))),
  };
  const planKey = restorePlanKey(db.databaseId, parsed.execution ?? randomUUID());
  const header = await writeRestorePlan(new StoreWorkObjects(deps.incoming, deps.incomingBucket), planKey, out);
  return {
    databaseId: out.databaseId,
    kind: out.kind,
    planKey,
    snapshotId: s.id,
    walCount: out.walCount,
    walBytes,
    chunkCount: out.chunkCount,
    walPages: header.walPages,
    targetTimeline: out.targetTimeline,
    recoveryTarget: out.recoveryTarget,
    endLsn: out.endLsn,
  };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
