/** What the replication steps pass each other (statemachines/replicate.asl.json, and the ingest workflows' replicate Maps). */
import { z } from "zod";
import { databaseIdSchema } from "../../core/schemas.js";

/** One thing a region may lack: a WAL file (by catalog name) or a snapshot. */
export const replicationItemSchema = z
  .object({ databaseId: databaseIdSchema, name: z.string().min(1).optional(), snapshotId: z.string().min(1).optional() })
  .refine((i) => (i.name === undefined) !== (i.snapshotId === undefined), "a replication item names a WAL file or a snapshot, not both");
export type ReplicationItem = z.infer<typeof replicationItemSchema>;

/** What CopyItem / RecordFailure return (the Map's results, read by the next FindMissing). */
export const replicationResultSchema = z.object({ region: z.string(), status: z.enum(["replicated", "failed"]) }).passthrough();
