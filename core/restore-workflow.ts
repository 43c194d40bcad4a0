/**
 * The contract of the restore workflow (statemachines/restore.asl.json):
 * its input, as the console example in README.md and `walvault restore
 * --remote` give it, and its output, the plan (functions/restore/plan.ts
 * produces it; the agent reads it back from the execution). JSON only: LSNs
 * as "X/Y", generic positions as decimal text, times as ISO 8601.
 */
import { z } from "zod";
import { ACCEPTED_TIME_FORMS, quoteInput, tryParseTime } from "./time.js";

/** A time as a workflow takes it: ISO 8601 with Z or an offset, up to nanoseconds, or a date (midnight UTC), checked by core/time.ts. */
export const timeTextSchema = z.string().superRefine((v, ctx) => {
  const r = tryParseTime(v);
  if (!r.ok) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${quoteInput(v)} is not a time (${r.reason}): ${ACCEPTED_TIME_FORMS}` });
});

/** A recovery target as the workflow takes it (functions/restore/plan.ts turns it into a RestoreTarget). */
export const restoreWorkflowTargetSchema = z
  .object({
    kind: z.enum(["latest", "time", "lsn", "name", "snapshot"]),
    /** ISO 8601 time with Z or an offset, up to nanoseconds, or a date (midnight UTC): core/time.ts. */
    time: timeTextSchema.optional(),
    /** "X/Y" (PostgreSQL) or a decimal position (generic; PostgreSQL accepts it too). */
    lsn: z.string().optional(),
    name: z.string().min(1).optional(),
    snapshotId: z.string().min(1).optional(),
    timeline: z.union([z.literal("latest"), z.number().int().positive()]).optional(),
  })
  .strict();
export type RestoreWorkflowTarget = z.infer<typeof restoreWorkflowTargetSchema>;

/** Retrieval tiers of the thaw step's RestoreObject requests. */
export const THAW_TIERS = ["Standard", "Bulk"] as const;
export type ThawTier = (typeof THAW_TIERS)[number];

/** The execution input. Other fields are passed along and ignored. */
export const restoreWorkflowInputSchema = z
  .object({ databaseId: z.string().min(1), target: restoreWorkflowTargetSchema, tier: z.enum(THAW_TIERS).optional(), thaw: z.boolean().optional() })
  .passthrough();
export type RestoreWorkflowInput = z.infer<typeof restoreWorkflowInputSchema>;

const plannedWalSchema = z
  .object({
    /** Generic: the WAL stream. */
    stream: z.string().optional(),
    timeline: z.number().int().nonnegative(),
    name: z.string().min(1),
    /** The vault key (Thaw and the agent fetch it). */
    key: z.string().min(1),
  })
  .passthrough();
export type PlannedWal = z.infer<typeof plannedWalSchema>;

/** The execution output: the plan. */
export const restorePlanOutputSchema = z
  .object({
    databaseId: z.string().min(1),
    kind: z.enum(["postgres", "generic"]),
    walSegmentSize: z.number().int().positive(),
    snapshot: z.object({
      id: z.string().min(1),
      timeline: z.number().int().nonnegative(),
      startLsn: z.string(),
      stopLsn: z.string(),
      startedAt: z.string(),
      finishedAt: z.string(),
    }),
    manifestKey: z.string().min(1),
    manifestSha256: z.string().min(1),
    /** Unique chunks the snapshot references (listed from the manifest by Thaw). */
    chunkCount: z.number().int().nonnegative(),
    targetTimeline: z.number().int().nonnegative(),
    timelinePath: z.array(z.number().int().nonnegative()),
    wal: z.array(plannedWalSchema),
    walCount: z.number().int().nonnegative(),
    recoveryTarget: z.record(z.string()).nullable(),
    endLsn: z.string().nullable(),
    warnings: z.array(z.string()),
  })
  .passthrough();
export type RestorePlanOutput = z.infer<typeof restorePlanOutputSchema>;

/**
 * The execution output: the plan's summary, small whatever the plan's size.
 * The plan itself (RestorePlanOutput, its WAL list in pages) is a work/
 * object of the incoming bucket at `planKey` (store/work-objects.ts);
 * `walvault restore --remote` reads it from there.
 */
export const restorePlanSummarySchema = z
  .object({
    databaseId: z.string().min(1),
    kind: z.enum(["postgres", "generic"]),
    planKey: z.string().min(1),
    snapshotId: z.string().min(1),
    walCount: z.number().int().nonnegative(),
    /** WAL bytes the plan replays at most (segments x segment size; generic: the segments' recorded sizes). */
    walBytes: z.number().int().nonnegative(),
    chunkCount: z.number().int().nonnegative(),
    walPages: z.number().int().nonnegative(),
    targetTimeline: z.number().int().nonnegative(),
    recoveryTarget: z.record(z.string()).nullable(),
    endLsn: z.string().nullable(),
  })
  .passthrough();
export type RestorePlanSummary = z.infer<typeof restorePlanSummarySchema>;
