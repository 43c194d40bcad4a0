/**
 * The verification workflow's contracts (statemachines/verify.asl.json):
 * what SelectCandidates hands each Map iteration, what the verification task
 * receives (WALVAULT_VERIFY_INPUT, JSON) and what RecordResult returns.
 * Shared by functions/verify/*, tasks/verify/main.ts and the CLI.
 */
import { z } from "zod";
import { timeTextSchema } from "./restore-workflow.js";
import { databaseIdSchema } from "./schemas.js";

export const verifyCandidateSchema = z.object({
  databaseId: databaseIdSchema,
  snapshotId: z.string().min(1),
  level: z.number().int().min(1).max(4),
  /** Time of a point-in-time target (level 4), absent: the snapshot itself; strict (core/time.ts), up to nanoseconds, kept as given. */
  targetTime: timeTextSchema.optional(),
  runId: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/),
  reason: z.string(),
  trigger: z.enum(["schedule", "cli", "console"]),
});
export type VerifyCandidate = z.infer<typeof verifyCandidateSchema>;

/** Workflow input (the schedule's, the console's): all databases or one; a level and snapshot to force. */
export const verifyWorkflowInputSchema = z
  .object({
    databaseId: databaseIdSchema.optional(),
    snapshotId: z.string().optional(),
    level: z.number().int().min(1).max(4).optional(),
    targetTime: timeTextSchema.optional(),
    trigger: z.enum(["schedule", "cli", "console"]).optional(),
  })
  .passthrough();

export interface RecordedResult {
  databaseId: string;
  snapshotId: string;
  runId: string;
  outcome: "passed" | "failed" | "error";
  level: number;
  failedLevel?: number;
  failure?: string;
  restoreSeconds?: number;
  /** Whether the failure notification goes out. */
  notify: boolean;
  /** The notification's subject and text (one line each). */
  subject: string;
  message: string;
}
