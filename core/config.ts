/**
 * The agent's configuration: where the buckets and the catalog are, which
 * database this host archives, how long to wait. Comes from a config file
 * (the local stack writes one), WALVAULT_* environment variables and flags.
 */
import { z } from "zod";
import { codecSchema, databaseIdSchema } from "./schemas.js";

export const agentConfigSchema = z.object({
  databaseId: databaseIdSchema.optional(),
  region: z.string().min(1),
  incomingBucket: z.string().min(1),
  vaultBucket: z.string().min(1),
  table: z.string().min(1),
  s3Endpoint: z.string().url().optional(),
  dynamodbEndpoint: z.string().url().optional(),
  /** Custom Step Functions endpoint (the local stack's); absent: the region's. */
  stepFunctionsEndpoint: z.string().url().optional(),
  /** The wal-record workflow direct WAL pushes start (docs/wal.md): the stack output WalRecordStateMachineArn. */
  walRecordStateMachineArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/, "not a Step Functions state machine ARN")
    .optional(),
  /**
   * Direct WAL (docs/wal.md): wal-push writes each segment into the vault and starts the wal-record workflow,
   * instead of uploading to incoming/. WALVAULT_WAL_DIRECT=1/0 overrides it.
   */
  walDirect: z.boolean().optional(),
  /** The restore workflow `restore --remote` starts: the stack output RestoreStateMachineArn. */
  restoreStateMachineArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/, "not a Step Functions state machine ARN")
    .optional(),
  /** The verify workflow `walvault verify --scheduled` starts: the stack output VerifyStateMachineArn. */
  verifyStateMachineArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/, "not a Step Functions state machine ARN")
    .optional(),
  /** The replicate workflow `walvault replicate --region R` starts: the stack output ReplicateStateMachineArn. */
  replicateStateMachineArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/, "not a Step Functions state machine ARN")
    .optional(),
  /** The retention workflow `walvault prune --workflow` starts: the stack output RetentionStateMachineArn. */
  retentionStateMachineArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/, "not a Step Functions state machine ARN")
    .optional(),
  credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
  walSegmentSize: z.number().int().positive().optional(),
  codec: codecSchema.optional(),
  /** How long wal-push --wait stored waits for the catalog, seconds. */
  waitTimeoutSeconds: z.number().positive().optional(),
  /** Segments wal-fetch prefetches ahead. 0 disables. */
  prefetch: z.number().int().nonnegative().optional(),
  /**
   * Replica regions (issue #4): each has its own vault bucket, and on the
   * local stack its own S3 endpoint. `region`/`vaultBucket`/`s3Endpoint`
   * above are the primary's. The catalog is one global table, reachable in
   * every region (`dynamodbEndpoint` per region when it differs).
   */
  replicas: z
    .array(
      z.object({
        region: z.string().min(1),
        vaultBucket: z.string().min(1),
        s3Endpoint: z.string().url().optional(),
        dynamodbEndpoint: z.string().url().optional(),
      }),
    )
    .optional(),
  /** Present when the local stack wrote this file. */
  local: z.object({ pid: z.number().int(), stateDir: z.string() }).optional(),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;
