/**
 * What the retention steps pass each other (statemachines/retention.asl.json).
 *
 * Plan returns one entry per database: the plan as `walvault prune --dry-run
 * --json` prints it (store/prune.ts planToJson) plus counts. Step Functions
 * limits a state to 256 KB, and a first run over a long history may delete
 * tens of thousands of WAL files: when the whole plan would exceed
 * INLINE_PLAN_MAX_BYTES, the deletion lists go to one object per database in
 * the incoming bucket under work/retention/ (which agents cannot write, and
 * which expires with the incoming bucket's work/ lifecycle) and the state
 * keeps the counts and the object's key.
 *
 * Execute carries out one database's plan in rounds of at most
 * ROUND_SNAPSHOTS snapshots and ROUND_WAL WAL files, reading at most
 * ROUND_WAL_READ WAL records (each round one Lambda invocation, well within
 * its 15 minutes), sweeping chunks in the last round; the workflow loops over
 * rounds and passes the running totals and the WAL cursor along. The chunk
 * sweep runs in rounds too, after the deletions (store/sweep.ts, at most
 * SWEEP_ROUND_BUDGET a round), its mark and tallies in work/ objects
 * (sweepScratchPrefix) and its cursor in the progress. WAL goes by
 * range (the plan's deleteWalRanges), never by a list of every file. Each
 * round journals the records it is about to delete (journalKey) so that a
 * retried round finishes what an interrupted one started.
 */
import { z } from "zod";
import { ConfigError } from "../../core/errors.js";
import { databaseIdSchema } from "../../core/schemas.js";
import { DEFAULT_SWEEP_BUDGET, sweepCursorSchema, type SweepBudget } from "../../store/sweep.js";

/** Databases one Plan invocation plans (one page of the registry); the workflow loops over pages, so nothing grows with the fleet. */
export const PLAN_PAGE = 10;
/** The execution's output lists databases up to this size (serialized); all of them are in the work/ page objects. */
export const SUMMARY_MAX_BYTES = 48 * 1024;
/** Plans up to this size (serialized, one page of databases) travel in the workflow state; larger deletion lists go to work/ objects. */
export const INLINE_PLAN_MAX_BYTES = 64 * 1024;
/** Snapshots one Execute round deletes at most (each: a catalog delete and a delete per region). */
export const ROUND_SNAPSHOTS = 500;
/** WAL files one Execute round deletes at most. */
export const ROUND_WAL = 5000;
/** WAL records one Execute round reads at most looking for them (a generic database's stream is read whole, a page at a time). */
export const ROUND_WAL_READ = 100_000;
/** What one Execute round's part of the chunk sweep may do (store/sweep.ts): a round stops there and the next goes on. */
export const SWEEP_ROUND_BUDGET: SweepBudget = DEFAULT_SWEEP_BUDGET;
/** Locked objects listed in a summary (all are counted, and each is audited). */
export const LOCKED_LISTED = 25;
/** Deleted snapshot ids listed in a summary (all are counted and audited). */
export const DELETED_SNAPSHOTS_LISTED = 100;
/** Where the deletion lists of large plans go (incoming bucket). */
export const RETENTION_WORK_PREFIX = "work/retention/";

export const policySchema = z
  .object({
    daily: z.number().int().nonnegative(),
    weekly: z.number().int().nonnegative(),
    monthly: z.number().int().nonnegative(),
    recoveryWindowDays: z.number().int().nonnegative(),
    minSnapshots: z.number().int().positive().optional(),
  })
  .strict();

/** The workflow's input (the schedule sends {}). */
export const retentionInputSchema = z
  .object({
    databaseId: databaseIdSchema.optional(),
    dryRun: z.boolean().optional(),
    /** Overrides of each database's policy for this run. */
    policy: policySchema.partial().optional(),
    trigger: z.enum(["schedule", "cli", "console"]).optional(),
  })
  .strict();
export type RetentionInput = z.infer<typeof retentionInputSchema>;

const keepReasonSchema = z.enum(["pinned", "daily", "weekly", "monthly", "recovery-window", "minimum"]);

/** One WAL deletion range (store/prune.ts WalDeletionRange): segment names of a timeline, or positions of a generic stream. */
const walRangeSchema = z
  .object({
    timeline: z.number().int().positive().optional(),
    stream: z.string().min(1).optional(),
    /** Segment names (24 hex digits) of a timeline, or decimal positions of a stream. */
    from: z.string().regex(/^[0-9A-F]{1,24}$/),
    through: z.string().regex(/^[0-9A-F]{1,24}$/),
  })
  .strict()
  .refine((r) => (r.timeline === undefined) !== (r.stream === undefined), "a WAL range names a timeline or a stream");

/** One database's plan in the workflow state. */
export const plannedDatabaseSchema = z.object({
  databaseId: databaseIdSchema,
  policy: policySchema,
  windowStart: z.string().optional(),
  windowBase: z.string().optional(),
  keep: z.array(z.object({ snapshotId: z.string(), reasons: z.array(keepReasonSchema) })),
  /** Empty when the lists are in the `listsKey` object. */
  deleteSnapshots: z.array(z.object({ snapshotId: z.string(), finishedAt: z.string() })),
  /** WAL names, the first WAL_LISTED (store/prune.ts); empty when the lists are in the `listsKey` object. */
  deleteWal: z.array(z.string()),
  /** Whether deleteWal (or the lists object's) names every WAL file the plan deletes. */
  deleteWalComplete: z.boolean(),
  /** What the plan deletes of the WAL, by range (always in the state: bounded by kept snapshots and timelines or streams). */
  deleteWalRanges: z.array(walRangeSchema),
  deleteSnapshotCount: z.number().int().nonnegative(),
  /** WAL files listed: every one deleted when deleteWalComplete, else at least this many. */
  deleteWalCount: z.number().int().nonnegative(),
  walBytesToDelete: z.number().nonnegative(),
  /** Incoming-bucket key of the deletion lists (a plan too large for the state). */
  listsKey: z.string().optional(),
});
export type PlannedDatabase = z.infer<typeof plannedDatabaseSchema>;

/** The body of a work/retention/ lists object. */
export const planListsSchema = z.object({
  databaseId: databaseIdSchema,
  deleteSnapshots: z.array(z.object({ snapshotId: z.string(), finishedAt: z.string() })),
  deleteWal: z.array(z.string()),
});
export type PlanLists = z.infer<typeof planListsSchema>;

/** Plan's output for one page: the Choice reads dryRun. */
export interface RetentionPlanOutput {
  dryRun: boolean;
  execution: string;
  /** The time the plans were computed for; Execute re-plans for the same time, later pages plan for it too. */
  now: string;
  /** Databases on this page. */
  count: number;
  databases: PlannedDatabase[];
  /** The cursor of the next page ("" on the last). */
  next: string;
}

/** Where the workflow is in the registry, with running totals (Collect returns it; the state keeps only this). */
export const cursorSchema = z.object({
  /** Database id the next page starts after ("": from the first). */
  after: z.string(),
  /** Pages collected so far (the next page's number). */
  page: z.number().int().nonnegative(),
  /** Databases planned so far. */
  count: z.number().int().nonnegative(),
  now: z.string().optional(),
  dryRun: z.boolean().optional(),
  lockedCount: z.number().int().nonnegative().optional(),
});
export type RetentionCursor = z.infer<typeof cursorSchema>;

/** The execution's output: `databases` (dry run) or `results`, listed up to SUMMARY_MAX_BYTES; `listed` and `pagesPrefix` when not all are. */
export interface RetentionSummaryOutput {
  dryRun: boolean;
  execution: string;
  now: string;
  count: number;
  lockedCount: number;
  databases?: PlannedDatabase[];
  results?: Record<string, unknown>[];
  listed?: number;
  pagesPrefix?: string;
}

/** Execute's running totals for one database, passed from round to round; the last is the database's summary. */
export const progressSchema = z.object({
  round: z.number().int().nonnegative(),
  databaseId: databaseIdSchema.optional(),
  runId: z.string().optional(),
  complete: z.boolean().optional(),
  deletedSnapshots: z.array(z.string()).optional(),
  deletedSnapshotCount: z.number().int().nonnegative().optional(),
  deletedWal: z.number().int().nonnegative().optional(),
  sweptChunks: z.number().int().nonnegative().optional(),
  freshChunks: z.number().int().nonnegative().optional(),
  /** Packs deleted, marked as deletion candidates, repacked (docs/retention.md "Packs"). */
  packsSwept: z.number().int().nonnegative().optional(),
  packsMarked: z.number().int().nonnegative().optional(),
  packsRepacked: z.number().int().nonnegative().optional(),
  audit: z.number().int().nonnegative().optional(),
  locked: z.array(z.object({ region: z.string(), key: z.string(), error: z.string() })).optional(),
  lockedCount: z.number().int().nonnegative().optional(),
  /** Where the WAL deletion is in the plan's ranges: the last WAL name looked at (store/prune.ts nextWalBatch). */
  walAfter: z.string().optional(),
  /** Every WAL range is done. */
  walDone: z.boolean().optional(),
  /** Where the chunk sweep is, once the deletions are done (store/sweep.ts; its mark and tallies are in sweepScratchPrefix). */
  sweep: sweepCursorSchema.optional(),
  /** Planned deletions not done yet (the workflow runs another round): snapshots, and WAL ranges not finished. */
  remaining: z.object({ snapshots: z.number().int().nonnegative(), walRanges: z.number().int().nonnegative() }).optional(),
});
export type Progress = z.infer<typeof progressSchema>;

/** A database's summary once Execute is done with it. */
export type RetentionDatabaseSummary = Required<Omit<Progress, "remaining" | "walAfter" | "sweep">> & { walAfter?: string; sweep?: Progress["sweep"]; remaining: { snapshots: number; walRanges: number } };

/** The key of a database's lists object: one per execution and database. */
export function planListsKey(execution: string, databaseId: string): string {
  return `${RETENTION_WORK_PREFIX}${execution.replace(/[^A-Za-z0-9_-]/g, "-")}/${databaseIdSchema.parse(databaseId)}.json`;
}

/** Where the pages' outcomes go (incoming bucket): one object per page. */
export function pagesPrefix(execution: string): string {
  return `${RETENTION_WORK_PREFIX}${execution.replace(/[^A-Za-z0-9_-]/g, "-")}/pages/`;
}

/** The key of one page's outcome (plans on a dry run, else each database's summary). */
export function pageKey(execution: string, page: number): string {
  return `${pagesPrefix(execution)}${String(page).padStart(6, "0")}.json`;
}

/** The key of a database's round journal (functions/retention/execute.ts). */
export function journalKey(execution: string, databaseId: string): string {
  return planListsKey(execution, databaseId).replace(/\.json$/, ".journal.json");
}

/** Where a database's chunk sweep keeps its mark and tallies between rounds (incoming bucket). */
export function sweepScratchPrefix(execution: string, databaseId: string): string {
  return planListsKey(execution, databaseId).replace(/\.json$/, "/sweep/");
}

/** Chunks recorded less than this long ago are never swept: WALVAULT_RETENTION_GRACE_HOURS (default 24). */
export function graceMsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WALVAULT_RETENTION_GRACE_HOURS;
  if (raw === undefined || raw === "") return 24 * 3_600_000;
  const hours = Number(raw);
  if (!Number.isFinite(hours) || hours < 0) throw new ConfigError(`WALVAULT_RETENTION_GRACE_HOURS must be a number of hours >= 0, not '${raw}'`);
  return hours * 3_600_000;
}
