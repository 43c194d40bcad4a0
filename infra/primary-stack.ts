/**
 * The walvault primary-region stack: the storage (incoming + vault buckets,
 * their KMS key and access logs), the catalog table, the two ingest
 * workflows that EventBridge starts from uploads — WAL ingest (five Lambda
 * handlers, an Express state machine, every incoming/db/<id>/wal/ upload) and
 * snapshot ingest (six handlers, a Standard state machine, every
 * incoming/db/<id>/snapshots/<snapshotId>/manifest.json; chunk uploads start
 * nothing) — the restore and replicate workflows (Standard, started on
 * demand; replicate backfills or catches up one replica region from the
 * catalog), the verify workflow (infra/verify.ts: an EventBridge schedule
 * starts verification restores in ephemeral Fargate tasks, in an isolated
 * VPC), the retention workflow (infra/retention.ts: on a schedule, GFS +
 * recovery window, deletions in every region with Object Lock respected),
 * and one managed policy for every database's agent (attribute-based:
 * scoped by the principal tag walvault-db). The catalog is a
 * global table with a replica in every replica region; each replica region's
 * vault bucket lives in its own ReplicaVaultStack (infra/replica-stack.ts),
 * which this stack's copy steps write by name.
 *
 * The security boundary this stack draws (see docs/deploy.md):
 *   - an agent (a principal tagged walvault-db=<id> with the agent policy)
 *     can only PutObject under incoming/db/<id>/ and read its own db/<id>/
 *     objects and catalog items; it can never write, delete or unlock
 *     anything in the vault (IAM allows nothing of the kind, and the vault
 *     bucket policy denies it to every principal tagged walvault-db and every
 *     walvault-agent-* role anyway);
 *   - only the control-plane functions write the vault, which is versioned
 *     and under Object Lock, so a compromised database host cannot destroy
 *     its backups.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Annotations, Aws, type CfnElement, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Tags, Token } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import type { Construct, Node } from "constructs";
import { DATABASE_ID_RE, FAILED_PREFIX, INCOMING_PREFIX, QUARANTINE_PREFIX, REJECTED_SUFFIX } from "../core/keys.js";
import { CATALOG_TTL_ATTRIBUTE, GENERIC_WAL_INDEX, GPOS_ATTRIBUTE, REPLICA_INDEX_PROJECTION, REPLICA_KEY_ATTRIBUTE, replicaIndexName, replicaPendingAttribute } from "../store/catalog-layout.js";
import { parseThawSetting, thawByDefaultSubstitution, type ThawSetting } from "../core/thaw.js";
import { WORKFLOW_DEFINITIONS, functionOf, stepNames, stepsOf, type WorkflowId } from "../core/workflows.js";
import { missingSubstitutions } from "./asl.js";
import { contextValue } from "./context.js";
import { createHandlerFunction, stepConfigs, stepSources, suppressWorkflowRoleWildcards, type StepConfig } from "./handler-function.js";
import { Verification, type VerifySettings, verifySettingsFromContext } from "./verify.js";
import { Retention, type RetentionSettings, retentionSettingsFromContext } from "./retention.js";
import { RpoWatch } from "./rpo-watch.js";
import { Monitoring } from "./monitoring.js";
import {
  AGENT_DB_TAG,
  AGENT_DB_VARIABLE,
  AGENT_ROLE_PREFIX,
  checkObjectLockDays,
  createAccessLogsBucket,
  createVaultBucket,
  defaultReplicaBucketName,
  type ObjectLockMode,
  REGION_RE,
  type VaultLifecycle,
  vaultTransitions,
} from "./vault.js";

export type { ObjectLockMode } from "./vault.js";

/** A vault in another region that the ingest workflow copies every promoted object to. */
export interface ReplicaTarget {
  readonly region: string;
  /**
   * The replica vault bucket.
   * @default `walvault-vault-<account>-<region>` (the replica stack's bucket name)
   */
  readonly bucket?: string;
}

/** The walvault-specific settings; `walvaultSettingsFromContext` reads them from cdk.json / `-c`. */
export interface WalvaultSettings {
  /**
   * Database ids. Deprecated: agents need no per-database resource (the agent
   * policy is scoped by the principal tag walvault-db); used only with
   * `agentRolesPerDatabase`, ignored (with a warning) otherwise.
   * @default []
   */
  readonly databases?: readonly string[];
  /**
   * Deprecated, for migrating a deployment made before the agent policy:
   * keeps a role `walvault-agent-<id>` per database in `databases`, tagged
   * walvault-db=<id> and holding the agent policy (docs/deploy.md,
   * "Migrating from per-database roles"). Such a template grows with the
   * database count again. @default false
   */
  readonly agentRolesPerDatabase?: boolean;
  /** Replica regions (vaults elsewhere); none by default. */
  readonly replicas?: readonly ReplicaTarget[];
  /** Default Object Lock mode of the vault. @default "GOVERNANCE" */
  readonly objectLockMode?: ObjectLockMode;
  /**
   * Default Object Lock retention of every vault object version, in days. An
   * object younger than this cannot be deleted by retention (it is left and
   * reported): keep it within the recovery window (docs/retention.md). @default 7
   */
  readonly objectLockDays?: number;
  /** Storage class transitions of vault objects over 128 KiB (packs, WAL, ...) in every vault (infra/vault.ts). @default STANDARD_IA after 30 days, GLACIER_IR after 90 */
  readonly lifecycle?: VaultLifecycle;
  /**
   * Whether a restore thaws when its input has no "thaw" (core/thaw.ts):
   * "auto" is on only when `lifecycle` moves objects to GLACIER or
   * DEEP_ARCHIVE (never with infra/vault.ts's transitions). @default WALVAULT_THAW at synth time, else "auto"
   */
  readonly thaw?: ThawSetting;
  /**
   * Principal ARNs allowed to assume the per-database roles of
   * `agentRolesPerDatabase` (e.g. the instance role of the database hosts).
   * Empty: any principal of this account that its own IAM policy allows to
   * call sts:AssumeRole on the role. Unused without `agentRolesPerDatabase`.
   * @default []
   */
  readonly agentPrincipalArns?: readonly string[];
  /** Scheduled verification restores (infra/verify.ts): schedule, image, storage, checks, policy. @default the defaults there */
  readonly verify?: VerifySettings;
  /** The retention workflow (infra/retention.ts): schedule, chunk grace period. @default daily, 24 hours */
  readonly retention?: RetentionSettings;
}

export interface PrimaryStackProps extends StackProps, WalvaultSettings {
  /** Repository root (holds package-lock.json, functions/, statemachines/). @default found from this file */
  readonly projectRoot?: string;
}

/** The ingest workflow's Lambda steps, named as in statemachines/ingest.asl.json (declared in core/workflows.ts). */
export const INGEST_STEPS = stepNames("ingest");
export type IngestStep = (typeof INGEST_STEPS)[number];

/** The snapshot ingest workflow's Lambda steps (statemachines/snapshot-ingest.asl.json). */
export const SNAPSHOT_STEPS = stepNames("snapshot-ingest");
export type SnapshotStep = (typeof SNAPSHOT_STEPS)[number];


/** Handler module (functions/snapshot/<file>.ts) and ASL placeholder of each snapshot step. */
export const SNAPSHOT_STEP_SOURCES = stepSources("snapshot-ingest");

/** The restore workflow's Lambda steps (statemachines/restore.asl.json). */
export const RESTORE_STEPS = stepNames("restore");
export type RestoreStep = (typeof RESTORE_STEPS)[number];

/** Handler module (functions/restore/<file>.ts), exported handler and ASL placeholder of each restore step. */
export const RESTORE_STEP_SOURCES = stepSources("restore");

/**
 * The replicate workflow's Lambda steps (statemachines/replicate.asl.json).
 * copyItem and recordFailure also run in the ingest workflows' replicate
 * Maps (RecordReplicaFailure in ingest, CopySnapshot and
 * RecordSnapshotReplicaFailure in snapshot ingest).
 */
export const REPLICATE_STEPS = stepNames("replicate");
export type ReplicateStep = (typeof REPLICATE_STEPS)[number];

/** Handler module (functions/replicate/<file>.ts) and ASL placeholder of each replicate step. */
export const REPLICATE_STEP_SOURCES = stepSources("replicate");

/** Retrieval tier of the restore workflow's RestoreObject requests unless its input names one. */
export const DEFAULT_THAW_TIER = "Standard";

/**
 * Object keys (EventBridge wildcard patterns: `*` matches any run of
 * characters) whose Object Created events start each workflow. local/stack.ts
 * routes the local stack's events with the same patterns (test/infra checks).
 */
export const WAL_UPLOAD_KEY_PATTERN = WORKFLOW_DEFINITIONS.ingest.trigger.keyPattern;
export const SNAPSHOT_MANIFEST_KEY_PATTERN = WORKFLOW_DEFINITIONS["snapshot-ingest"].trigger.keyPattern;
export const PACK_UPLOAD_KEY_PATTERN = WORKFLOW_DEFINITIONS["pack-ingest"].trigger.keyPattern;
/** Where snapshot ingest keeps the batch lists too large for the workflow state (incoming bucket). */
export const WORK_PREFIX = "work/";
/** Where the restore workflow keeps its plans (incoming bucket, expiring with work/): work/restore/<database>/<execution>/ (store/work-objects.ts). */
export const RESTORE_WORK_PREFIX = `${WORK_PREFIX}restore/`;

/** Finds the repository root: the nearest ancestor of `start` holding package-lock.json. */
export function findProjectRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, "package-lock.json"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package-lock.json above ${start}: cannot find the walvault project root`);
    dir = parent;
  }
}

function stringList(node: Node, key: string, fallback: string[]): string[] {
  const value = contextValue(node, key);
  if (value === undefined || value === null || value === "") return fallback;
  if (typeof value === "string") return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value;
  throw new Error(`context ${key} must be a list of strings, got ${JSON.stringify(value)}`);
}

/** Reads the walvault settings from CDK context (cdk.json, or `-c key=value` on the command line). */
export function walvaultSettingsFromContext(node: Node): WalvaultSettings {
  const databases = stringList(node, "walvault:databases", []);
  const perDatabase = String(contextValue(node, "walvault:agentRolesPerDatabase") ?? "false").toLowerCase();
  if (perDatabase !== "true" && perDatabase !== "false") {
    throw new Error(`context walvault:agentRolesPerDatabase must be true or false, got ${perDatabase}`);
  }

  const replicasRaw = contextValue(node, "walvault:replicaRegions") ?? [];
  const replicaList = typeof replicasRaw === "string" ? replicasRaw.split(",").map((s) => s.trim()).filter((s) => s) : replicasRaw;
  if (!Array.isArray(replicaList)) {
    throw new Error(`context walvault:replicaRegions must be a list of regions or {"region","bucket"} objects`);
  }
  const replicas = replicaList.map((r: unknown): ReplicaTarget => {
    if (typeof r === "string") return { region: r };
    if (r !== null && typeof r === "object" && typeof (r as { region?: unknown }).region === "string") {
      const { region, bucket } = r as { region: string; bucket?: unknown };
      if (bucket !== undefined && typeof bucket !== "string") throw new Error(`replica ${region}: bucket must be a string`);
      return bucket === undefined ? { region } : { region, bucket };
    }
    throw new Error(`context walvault:replicaRegions: ${JSON.stringify(r)} is neither a region nor {"region","bucket"}`);
  });

  const mode = String(contextValue(node, "walvault:objectLockMode") ?? "GOVERNANCE").toUpperCase();
  if (mode !== "GOVERNANCE" && mode !== "COMPLIANCE") {
    throw new Error(`context walvault:objectLockMode must be GOVERNANCE or COMPLIANCE, got ${mode}`);
  }
  const days = Number(contextValue(node, "walvault:objectLockDays") ?? 7);

  return {
    databases,
    agentRolesPerDatabase: perDatabase === "true",
    replicas,
    objectLockMode: mode,
    objectLockDays: days,
    agentPrincipalArns: stringList(node, "walvault:agentPrincipalArns", []),
    verify: verifySettingsFromContext(node),
    ...retentionSettingsFromContext(node),
  };
}

/** `pg-main` -> `PgMain`: database ids as construct ids and output names. */
function pascal(id: string): string {
  return id
    .split("-")
    .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : ""))
    .join("");
}

// Memory, timeout and description of every step: core/workflows.ts.
const STEP_CONFIG = stepConfigs("ingest");
const SNAPSHOT_STEP_CONFIG = stepConfigs("snapshot-ingest");
const RESTORE_STEP_CONFIG = stepConfigs("restore");
const REPLICATE_STEP_CONFIG = stepConfigs("replicate");
const WAL_RECORD_STEP_CONFIG = stepConfigs("wal-record");
/** The wal-record workflow's Lambda steps (statemachines/wal-record.asl.json). */
export const WAL_RECORD_STEPS = stepNames("wal-record");
export type WalRecordStep = (typeof WAL_RECORD_STEPS)[number];

export class PrimaryStack extends Stack {
  public readonly vaultKey: kms.Key;
  public readonly accessLogsBucket: s3.Bucket;
  public readonly incomingBucket: s3.Bucket;
  public readonly vaultBucket: s3.Bucket;
  public readonly catalog: dynamodb.TableV2;
  public readonly functions: Record<IngestStep, NodejsFunction>;
  public readonly ingestStateMachine: sfn.StateMachine;
  public readonly ingestRule: events.Rule;
  public readonly ingestDeadLetterQueue: sqs.Queue;
  /** Direct WAL (docs/wal.md): the wal-record functions, by step. */
  public readonly walRecordFunctions: Record<WalRecordStep, NodejsFunction>;
  /** Direct WAL: the Express workflow agents start after writing a WAL file into the vault. */
  public readonly walRecordStateMachine: sfn.StateMachine;
  /** The snapshot ingest functions, by step. */
  public readonly snapshotFunctions: Record<SnapshotStep, NodejsFunction>;
  public readonly snapshotIngestStateMachine: sfn.StateMachine;
  public readonly snapshotIngestRule: events.Rule;
  /** The path of the snapshot ingest ASL file. */
  public readonly snapshotIngestAslFile: string;
  /** Packed pushes: the Express workflow that promotes each pack as its upload lands (snapshot ingest's PromotePacks function). */
  public readonly packIngestStateMachine: sfn.StateMachine;
  public readonly packIngestRule: events.Rule;
  /** The restore functions, by step. */
  public readonly restoreFunctions: Record<RestoreStep, NodejsFunction>;
  /** The restore workflow (started from the console or the CLI). */
  public readonly restoreStateMachine: sfn.StateMachine;
  /** The path of the restore ASL file. */
  public readonly restoreAslFile: string;
  /** The replicate functions, by step (copyItem and recordFailure also serve the ingest workflows). */
  public readonly replicateFunctions: Record<ReplicateStep, NodejsFunction>;
  /** The replicate workflow (Standard; started from the console or the CLI with { region, databaseId?, limit? }). */
  public readonly replicateStateMachine: sfn.StateMachine;
  /** The path of the replicate ASL file. */
  public readonly replicateAslFile: string;
  /** The replica vaults the control plane writes: region and bucket name. */
  public readonly replicaTargets: readonly { readonly region: string; readonly bucket: string }[];
  /** The verify workflow, its Fargate task, network, topic and schedule (infra/verify.ts). */
  public readonly verification: Verification;
  /** The retention workflow, its two functions and schedule (infra/retention.ts). */
  public readonly retention: Retention;
  /** The rpo-watch workflow, its schedule, the RPO alarm and the dashboard (infra/rpo-watch.ts). */
  public readonly rpoWatch: RpoWatch;
  /** The other alarms (quarantines, workflow failures, the dead-letter queue, verification failures) and the dashboard (infra/monitoring.ts). */
  public readonly monitoring: Monitoring;
  /** What every database's agent may do, scoped by its principal tag walvault-db (attach it to the database hosts' roles). */
  public readonly agentPolicy: iam.ManagedPolicy;
  /** Per-database roles of `agentRolesPerDatabase` (deprecated; empty by default), by database id. */
  public readonly agentRoles: Record<string, iam.Role>;
  /** The path of the ingest ASL file the state machine is deployed from. */
  public readonly ingestAslFile: string;

  constructor(scope: Construct, id: string, props: PrimaryStackProps) {
    super(scope, id, props);

    const root = props.projectRoot ?? findProjectRoot();
    const lockMode = props.objectLockMode ?? "GOVERNANCE";
    const lockDays = props.objectLockDays ?? 7;
    checkObjectLockDays(lockDays);
    const databases = [...new Set(props.databases ?? [])];
    if (props.agentRolesPerDatabase === true && databases.length === 0) {
      throw new Error("agentRolesPerDatabase needs the database ids (context walvault:databases)");
    }
    if (props.agentRolesPerDatabase !== true && databases.length > 0) {
      Annotations.of(this).addWarningV2(
        "walvault:databases-unused",
        `walvault:databases (${databases.length}) is no longer used: every agent gets the agent policy (output AgentPolicyArn) on a role tagged ${AGENT_DB_TAG}=<id> (docs/deploy.md)`,
      );
    }
    for (const db of databases) {
      if (!DATABASE_ID_RE.test(db)) {
        throw new Error(`database id '${db}' is invalid: use 3-63 lowercase letters, digits and inner hyphens`);
      }
      if (props.agentRolesPerDatabase === true && (AGENT_ROLE_PREFIX + db).length > 64) {
        throw new Error(`database id '${db}' is too long for the IAM role name ${AGENT_ROLE_PREFIX}${db} (64 characters at most)`);
      }
    }
    const replicas = (props.replicas ?? []).map((r) => {
      if (!REGION_RE.test(r.region)) throw new Error(`replica region '${r.region}' is not a region name`);
      if (r.region === this.region) throw new Error(`replica region '${r.region}' is this stack's own region`);
      return { region: r.region, bucket: r.bucket ?? defaultReplicaBucketName(r.region) };
    });
    if (new Set(replicas.map((r) => r.region)).size !== replicas.length) {
      throw new Error("a replica region is listed twice");
    }
    if (replicas.length > 0 && Token.isUnresolved(this.region)) {
      // A global table needs its home region at synth time.
      throw new Error(
        "replica regions need the primary stack's region: give env.region, or run the CDK CLI with a region (AWS_REGION, or --profile with a region)",
      );
    }
    this.replicaTargets = replicas;

    // ---------------------------------------------------------------- storage

    this.vaultKey = new kms.Key(this, "VaultKey", {
      description: "walvault: encrypts the vault bucket (SSE-KMS)",
      alias: `alias/${this.stackName}/vault`,
      enableKeyRotation: true,
      // Losing the key loses every backup: never deleted with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // S3 server access logs of both data buckets.
    this.accessLogsBucket = createAccessLogsBucket(this, "AccessLogsBucket");

    // incoming: the only bucket agents write. Uploads are transient (the
    // workflow copies them into the vault within seconds), so SSE-S3 is
    // enough and keeps KMS out of the agent's permissions.
    this.incomingBucket = new s3.Bucket(this, "IncomingBucket", {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      eventBridgeEnabled: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: "incoming/",
      lifecycleRules: [
        { id: "expire-uploads", prefix: "incoming/", expiration: Duration.days(1) },
        { id: "expire-quarantine", prefix: "quarantine/", expiration: Duration.days(30) },
        // Notes of ingest executions that failed without quarantining (read by the waiting agent within minutes).
        { id: "expire-failed", prefix: FAILED_PREFIX, expiration: Duration.days(1) },
        // Snapshot ingest's batch lists: needed only while the execution runs.
        { id: "expire-work", prefix: WORK_PREFIX, expiration: Duration.days(1) },
        { id: "abort-multipart", abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // vault: what was validated (versioned, Object Lock, SSE-KMS, TLS only,
    // and a bucket policy denying every write/delete/unlock to agent roles).
    // Every replica stack's vault is built by the same function.
    this.vaultBucket = createVaultBucket(this, "VaultBucket", {
      key: this.vaultKey,
      accessLogsBucket: this.accessLogsBucket,
      objectLockMode: lockMode,
      objectLockDays: lockDays,
      ...(props.lifecycle === undefined ? {} : { lifecycle: props.lifecycle }),
      // Direct WAL: agents may create (never replace) objects under their own db/<id>/wal/.
      agentWalCreates: true,
    });

    // ---------------------------------------------------------------- catalog

    // TableV2 (AWS::DynamoDB::GlobalTable): the design makes the catalog a
    // global table across the replica regions. Encryption uses the AWS managed
    // key (aws/dynamodb): KMS encryption at rest with CloudTrail-audited key
    // use, and - unlike a customer managed key - no key grants for every
    // reader (each agent role) and no per-region replica keys. The catalog is
    // metadata; the backup payload is protected by the vault's own CMK.
    this.catalog = new dynamodb.TableV2(this, "Catalog", {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryptionV2.awsManagedKey(),
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // Only packs' promotion claims carry it (store/catalog-layout.ts CATALOG_TTL_ATTRIBUTE): they expire by themselves.
      timeToLiveAttribute: CATALOG_TTL_ATTRIBUTE,
      replicas: replicas.map((r) => ({ region: r.region })),
      // What each replica region lacks (store/catalog-layout.ts, docs/replication.md): a sparse index per
      // region, so the replicate workflow's FindMissing reads only pending records. CloudFormation adds or
      // removes one global secondary index per update: add replica regions one deployment at a time.
      // Generic WAL by position (store/dynamo-catalog.ts genericWalIndexDefinition): a sparse index of generic
      // segments (only they carry `gpos`), so a range of positions is one Query. Add it in a deployment of its own.
      globalSecondaryIndexes: [
        {
          indexName: GENERIC_WAL_INDEX,
          partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
          sortKey: { name: GPOS_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.ALL,
        },
        ...replicas.map((r) => ({
          indexName: replicaIndexName(r.region),
          partitionKey: { name: replicaPendingAttribute(r.region), type: dynamodb.AttributeType.STRING },
          sortKey: { name: REPLICA_KEY_ATTRIBUTE, type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: [...REPLICA_INDEX_PROJECTION],
        })),
      ],
    });

    // ---------------------------------------------------------------- handlers

    const environment = {
      WALVAULT_INCOMING_BUCKET: this.incomingBucket.bucketName,
      WALVAULT_VAULT_BUCKET: this.vaultBucket.bucketName,
      WALVAULT_TABLE: this.catalog.tableName,
      WALVAULT_REPLICAS: this.toJsonString(replicas),
    };
    const fns: Partial<Record<IngestStep, NodejsFunction>> = {};
    for (const step of INGEST_STEPS) {
      fns[step] = this.handlerFunction(pascal(step), join(root, "functions", "ingest", `${step}.ts`), STEP_CONFIG[step], `walvault ingest ${step} function`, environment, root);
    }
    this.functions = fns as Record<IngestStep, NodejsFunction>;
    this.grantIngestPermissions(replicas);

    // The chain's steps share one function (core/workflows.ts SHARED_FUNCTIONS): one per function key.
    const snapshotFns: Partial<Record<SnapshotStep, NodejsFunction>> = {};
    const snapshotByFunction = new Map<string, NodejsFunction>();
    for (const step of SNAPSHOT_STEPS) {
      const key = functionOf(stepsOf("snapshot-ingest")[step]).key;
      let fn = snapshotByFunction.get(key);
      if (fn === undefined) {
        fn = this.handlerFunction(
          `Snapshot${pascal(SNAPSHOT_STEP_SOURCES[step].file)}`,
          join(root, "functions", "snapshot", `${SNAPSHOT_STEP_SOURCES[step].file}.ts`),
          SNAPSHOT_STEP_CONFIG[step],
          `walvault snapshot ingest ${key === stepsOf("snapshot-ingest")[step].placeholder ? step : key} function`,
          environment,
          root,
        );
        snapshotByFunction.set(key, fn);
      }
      snapshotFns[step] = fn;
    }
    this.snapshotFunctions = snapshotFns as Record<SnapshotStep, NodejsFunction>;
    this.grantSnapshotPermissions();

    const restoreFns: Partial<Record<RestoreStep, NodejsFunction>> = {};
    for (const step of RESTORE_STEPS) {
      const src = RESTORE_STEP_SOURCES[step];
      restoreFns[step] = this.handlerFunction(
        `Restore${pascal(step)}`,
        join(root, "functions", "restore", `${src.file}.ts`),
        RESTORE_STEP_CONFIG[step],
        `walvault restore ${step} function`,
        step === "plan" ? environment : { ...environment, WALVAULT_THAW_TIER: DEFAULT_THAW_TIER },
        root,
        src.handler,
      );
    }
    this.restoreFunctions = restoreFns as Record<RestoreStep, NodejsFunction>;
    this.grantRestorePermissions();

    const replicateFns: Partial<Record<ReplicateStep, NodejsFunction>> = {};
    for (const step of REPLICATE_STEPS) {
      const src = REPLICATE_STEP_SOURCES[step];
      replicateFns[step] = this.handlerFunction(
        `Replicate${pascal(src.file)}`,
        join(root, "functions", "replicate", `${src.file}.ts`),
        REPLICATE_STEP_CONFIG[step],
        `walvault replicate ${step} function`,
        environment,
        root,
      );
    }
    this.replicateFunctions = replicateFns as Record<ReplicateStep, NodejsFunction>;
    this.grantReplicatePermissions(replicas);

    // ---------------------------------------------------------------- workflow

    this.ingestAslFile = join(root, "statemachines", "ingest.asl.json");
    const substitutions: Record<string, string> = {
      ValidateFunctionArn: this.functions.validate.functionArn,
      PromoteFunctionArn: this.functions.promote.functionArn,
      RecordFunctionArn: this.functions.record.functionArn,
      ReplicateFunctionArn: this.functions.replicate.functionArn,
      QuarantineFunctionArn: this.functions.quarantine.functionArn,
      RecordReplicaFailureFunctionArn: this.replicateFunctions.recordFailure.functionArn,
      IncomingBucketName: this.incomingBucket.bucketName,
    };
    const missing = missingSubstitutions(this.ingestAslFile, substitutions);
    if (missing.length > 0) {
      throw new Error(`${this.ingestAslFile} has placeholders without a substitution: ${missing.join(", ")}`);
    }

    // Express executions keep no history in the console, so their log is
    // where a failure is told: level ERROR (failed, timed out, aborted
    // executions and failed states, with their error and cause), without
    // execution data. At ALL with data every one of a million WAL files a
    // month wrote a dozen events with its state (a third of the control
    // plane's cost, issue #11 point 9); what an execution did is in the
    // catalog, the quarantine records and failed/<key>.json notes anyway.
    // Left unnamed so that a retained log group never blocks re-creating
    // the stack.
    const workflowLogs = new logs.LogGroup(this, "IngestWorkflowLogs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const workflowRole = new iam.Role(this, "IngestWorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault ingest state machine",
    });
    // The ASL's Task states name the functions' unqualified ARNs directly.
    workflowRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "InvokeIngestSteps",
        actions: ["lambda:InvokeFunction"],
        resources: [...INGEST_STEPS.map((s) => this.functions[s].functionArn), this.replicateFunctions.recordFailure.functionArn],
      }),
    );
    // ReportFailure (an SDK integration, no Lambda: it must work while Lambda throttles) writes failed/<key>.json.
    const failureNotes = this.incomingBucket.arnForObjects(`${FAILED_PREFIX}${INCOMING_PREFIX}*`);
    const reportFailures = new iam.PolicyStatement({ sid: "ReportFailures", actions: ["s3:PutObject"], resources: [failureNotes] });
    workflowRole.addToPolicy(reportFailures);
    this.ingestStateMachine = this.expressWorkflow("IngestWorkflow", {
      comment: "walvault ingest: validate, promote, record, replicate an uploaded WAL file",
      aslFile: this.ingestAslFile,
      substitutions,
      role: workflowRole,
      logGroup: workflowLogs,
      runsOncePer: "The Express ingest workflow runs once per WAL file",
    });

    // Events EventBridge could not deliver (after retrying for a day) land
    // here instead of being dropped; the object stays in incoming/ for a day.
    this.ingestDeadLetterQueue = new sqs.Queue(this, "IngestEventsDlq", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const uploadRule = (id: string, description: string, keyPattern: string, machine: sfn.StateMachine): events.Rule =>
      new events.Rule(this, id, {
        description,
        eventPattern: {
          source: ["aws.s3"],
          detailType: ["Object Created"],
          detail: {
            bucket: { name: [this.incomingBucket.bucketName] },
            object: { key: events.Match.wildcard(keyPattern) },
          },
        },
        targets: [
          new targets.SfnStateMachine(machine, {
            deadLetterQueue: this.ingestDeadLetterQueue,
            maxEventAge: Duration.hours(24),
            retryAttempts: 185,
          }),
        ],
      });
    this.ingestRule = uploadRule(
      "IngestOnUpload",
      "walvault: start WAL ingest for every upload under incoming/db/<id>/wal/",
      WAL_UPLOAD_KEY_PATTERN,
      this.ingestStateMachine,
    );

    // -------------------------------------------------- wal-record (direct WAL)

    const walRecord = this.createWalRecordWorkflow(root, environment, replicas);
    this.walRecordFunctions = walRecord.functions;
    this.walRecordStateMachine = walRecord.machine;

    // ------------------------------------------------------- snapshot workflow

    this.snapshotIngestAslFile = join(root, "statemachines", "snapshot-ingest.asl.json");
    const snapshotReplicateSteps = ["copyItem", "recordFailure"] as const satisfies readonly ReplicateStep[];
    const snapshotSubstitutions: Record<string, string> = Object.fromEntries([
      ...SNAPSHOT_STEPS.map((step) => [SNAPSHOT_STEP_SOURCES[step].placeholder, this.snapshotFunctions[step].functionArn]),
      ...snapshotReplicateSteps.map((step) => [REPLICATE_STEP_SOURCES[step].placeholder, this.replicateFunctions[step].functionArn]),
      ["IncomingBucketName", this.incomingBucket.bucketName],
    ]);
    const missingSnapshot = missingSubstitutions(this.snapshotIngestAslFile, snapshotSubstitutions);
    if (missingSnapshot.length > 0) {
      throw new Error(`${this.snapshotIngestAslFile} has placeholders without a substitution: ${missingSnapshot.join(", ")}`);
    }
    // Standard, not Express: a large snapshot's Map over chunk batches can run
    // longer than Express's 5 minutes. Standard executions keep their full
    // history (with data) for 90 days, so the log holds the events without
    // the data (chunk batch lists are large).
    const snapshotWorkflowLogs = new logs.LogGroup(this, "SnapshotIngestWorkflowLogs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const snapshotWorkflowRole = new iam.Role(this, "SnapshotIngestWorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault snapshot ingest state machine",
    });
    snapshotWorkflowRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "InvokeSnapshotIngestSteps",
        actions: ["lambda:InvokeFunction"],
        resources: [
          ...new Set(SNAPSHOT_STEPS.map((s) => this.snapshotFunctions[s].functionArn)),
          ...snapshotReplicateSteps.map((s) => this.replicateFunctions[s].functionArn),
        ],
      }),
    );
    snapshotWorkflowRole.addToPolicy(reportFailures);
    this.snapshotIngestStateMachine = new sfn.StateMachine(this, "SnapshotIngestWorkflow", {
      comment: "walvault snapshot ingest: validate a manifest, promote its new chunks, check references, promote and record it",
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(this.snapshotIngestAslFile),
      definitionSubstitutions: snapshotSubstitutions,
      role: snapshotWorkflowRole,
      logs: { destination: snapshotWorkflowLogs, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: true,
      // No execution timeout: it would end the run without QuarantineSnapshot.
      // Every Task is bounded by its function's timeout and retries, the Map by
      // MAX_BATCHES iterations.
    });
    this.snapshotIngestRule = uploadRule(
      "SnapshotIngestOnManifest",
      "walvault: start snapshot ingest for every manifest under incoming/db/<id>/snapshots/<snapshotId>/ (chunk uploads start nothing)",
      SNAPSHOT_MANIFEST_KEY_PATTERN,
      this.snapshotIngestStateMachine,
    );

    // ------------------------------------------- pack ingest (packs as they land)

    const packIngestAslFile = join(root, "statemachines", WORKFLOW_DEFINITIONS["pack-ingest"].asl);
    const packSubstitutions: Record<string, string> = { PromotePacksFunctionArn: this.snapshotFunctions.promotePacks.functionArn };
    const missingPack = missingSubstitutions(packIngestAslFile, packSubstitutions);
    if (missingPack.length > 0) throw new Error(`${packIngestAslFile} has placeholders without a substitution: ${missingPack.join(", ")}`);
    const packWorkflowRole = new iam.Role(this, "PackIngestWorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault pack ingest state machine (packs promoted as they land)",
    });
    packWorkflowRole.addToPolicy(
      new iam.PolicyStatement({ sid: "InvokePromotePacks", actions: ["lambda:InvokeFunction"], resources: [this.snapshotFunctions.promotePacks.functionArn] }),
    );
    const packWorkflowLogs = new logs.LogGroup(this, "PackIngestWorkflowLogs", { retention: logs.RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.RETAIN });
    this.packIngestStateMachine = this.expressWorkflow("PackIngestWorkflow", {
      comment: "walvault pack ingest: verify, promote and record one pack of a snapshot push as its upload lands",
      aslFile: packIngestAslFile,
      substitutions: packSubstitutions,
      role: packWorkflowRole,
      logGroup: packWorkflowLogs,
      runsOncePer: "The Express pack-ingest workflow runs once per pack upload",
    });
    this.packIngestRule = uploadRule(
      "PackIngestOnUpload",
      "walvault: promote every pack upload under incoming/db/<id>/packs/ as it lands (its manifest's ingest then skips it)",
      PACK_UPLOAD_KEY_PATTERN,
      this.packIngestStateMachine,
    );

    // -------------------------------------------------------- restore workflow

    this.restoreAslFile = join(root, "statemachines", "restore.asl.json");
    const restoreSubstitutions: Record<string, string> = {
      ...Object.fromEntries(RESTORE_STEPS.map((step) => [RESTORE_STEP_SOURCES[step].placeholder, this.restoreFunctions[step].functionArn])),
      ThawByDefault: thawByDefaultSubstitution(
        props.thaw ?? parseThawSetting(process.env.WALVAULT_THAW),
        vaultTransitions(props.lifecycle).map((t) => t.storageClass.value),
      ),
    };
    const missingRestore = missingSubstitutions(this.restoreAslFile, restoreSubstitutions);
    if (missingRestore.length > 0) {
      throw new Error(`${this.restoreAslFile} has placeholders without a substitution: ${missingRestore.join(", ")}`);
    }
    const restoreWorkflowLogs = new logs.LogGroup(this, "RestoreWorkflowLogs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const restoreWorkflowRole = new iam.Role(this, "RestoreWorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault restore state machine",
    });
    restoreWorkflowRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "InvokeRestoreSteps",
        actions: ["lambda:InvokeFunction"],
        resources: RESTORE_STEPS.map((s) => this.restoreFunctions[s].functionArn),
      }),
    );
    // Standard: a thaw from Glacier takes hours (Deep Archive Bulk up to 48).
    this.restoreStateMachine = new sfn.StateMachine(this, "RestoreWorkflow", {
      comment: "walvault restore: plan snapshot + WAL to a target, thaw archived objects, output the plan",
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(this.restoreAslFile),
      definitionSubstitutions: restoreSubstitutions,
      role: restoreWorkflowRole,
      logs: { destination: restoreWorkflowLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
      timeout: Duration.days(3),
    });

    // ------------------------------------------------------ replicate workflow

    this.replicateAslFile = join(root, "statemachines", "replicate.asl.json");
    const replicateSubstitutions: Record<string, string> = Object.fromEntries(
      REPLICATE_STEPS.map((step) => [REPLICATE_STEP_SOURCES[step].placeholder, this.replicateFunctions[step].functionArn]),
    );
    const missingReplicate = missingSubstitutions(this.replicateAslFile, replicateSubstitutions);
    if (missingReplicate.length > 0) {
      throw new Error(`${this.replicateAslFile} has placeholders without a substitution: ${missingReplicate.join(", ")}`);
    }
    const replicateWorkflowLogs = new logs.LogGroup(this, "ReplicateWorkflowLogs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const replicateWorkflowRole = new iam.Role(this, "ReplicateWorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault replicate state machine",
    });
    replicateWorkflowRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "InvokeReplicateSteps",
        actions: ["lambda:InvokeFunction"],
        resources: REPLICATE_STEPS.map((s) => this.replicateFunctions[s].functionArn),
      }),
    );
    // Standard: a backfill copies a region's whole history, round after round.
    // No execution timeout: the ASL bounds a run to 40 rounds of at most 100
    // items and ends with MoreLeft for the rest; every copy is marked as it
    // lands, so a stopped run loses nothing.
    this.replicateStateMachine = new sfn.StateMachine(this, "ReplicateWorkflow", {
      comment: "walvault replicate: backfill a replica region or catch it up after an outage, from the catalog",
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(this.replicateAslFile),
      definitionSubstitutions: replicateSubstitutions,
      role: replicateWorkflowRole,
      logs: { destination: replicateWorkflowLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });

    // ------------------------------------------------------- verify workflow

    // Scheduled verification restores in ephemeral Fargate tasks (issue #5).
    this.verification = new Verification(this, "Verify", {
      ...props.verify,
      projectRoot: root,
      incomingBucket: this.incomingBucket,
      vaultBucket: this.vaultBucket,
      vaultKey: this.vaultKey,
      catalog: this.catalog,
      handlerEnvironment: environment,
    });

    // ---------------------------------------------------- retention workflow

    // GFS + recovery window on a schedule, deletions in every region with
    // Object Lock respected, chunk mark and sweep, audit (issue #6).
    this.retention = new Retention(this, "Retention", {
      ...props.retention,
      projectRoot: root,
      incomingBucket: this.incomingBucket,
      vaultBucket: this.vaultBucket,
      vaultKey: this.vaultKey,
      catalog: this.catalog,
      replicas,
      handlerEnvironment: environment,
    });

    this.rpoWatch = new RpoWatch(this, "RpoWatch", {
      projectRoot: root,
      catalog: this.catalog,
      handlerEnvironment: environment,
      topic: this.verification.topic,
    });
    this.monitoring = new Monitoring(this, "Monitoring", {
      topic: this.verification.topic,
      stateMachines: {
        ingest: this.ingestStateMachine,
        "wal-record": this.walRecordStateMachine,
        "snapshot-ingest": this.snapshotIngestStateMachine,
        "pack-ingest": this.packIngestStateMachine,
        restore: this.restoreStateMachine,
        replicate: this.replicateStateMachine,
        verify: this.verification.stateMachine,
        retention: this.retention.stateMachine,
        "rpo-watch": this.rpoWatch.stateMachine,
      } satisfies Record<WorkflowId, sfn.StateMachine>,
      ingestDeadLetterQueue: this.ingestDeadLetterQueue,
      alarms: [this.rpoWatch.alarm],
    });

    // ---------------------------------------------------------------- agents

    this.agentPolicy = this.createAgentPolicy();
    this.agentRoles = {};
    if (props.agentRolesPerDatabase === true) {
      const agentTrust: iam.IPrincipal =
        props.agentPrincipalArns && props.agentPrincipalArns.length > 0
          ? new iam.CompositePrincipal(...props.agentPrincipalArns.map((arn) => new iam.ArnPrincipal(arn)))
          : new iam.AccountRootPrincipal();
      for (const db of databases) {
        this.agentRoles[db] = this.agentRole(db, agentTrust);
      }
    }

    // ---------------------------------------------------------------- outputs

    new CfnOutput(this, "IncomingBucketName", { value: this.incomingBucket.bucketName, description: "Agents upload here (incoming/db/<id>/wal/<file>)" });
    new CfnOutput(this, "VaultBucketName", { value: this.vaultBucket.bucketName, description: "Validated, locked backups (db/<id>/...)" });
    new CfnOutput(this, "AccessLogsBucketName", { value: this.accessLogsBucket.bucketName });
    new CfnOutput(this, "VaultKeyArn", { value: this.vaultKey.keyArn });
    new CfnOutput(this, "CatalogTableName", { value: this.catalog.tableName });
    new CfnOutput(this, "IngestStateMachineArn", { value: this.ingestStateMachine.stateMachineArn });
    new CfnOutput(this, "SnapshotIngestStateMachineArn", { value: this.snapshotIngestStateMachine.stateMachineArn });
    new CfnOutput(this, "WalRecordStateMachineArn", {
      value: this.walRecordStateMachine.stateMachineArn,
      description: "Direct WAL: agents start it after writing a WAL file into the vault (config walRecordStateMachineArn)",
    });
    new CfnOutput(this, "RestoreStateMachineArn", { value: this.restoreStateMachine.stateMachineArn });
    new CfnOutput(this, "ReplicateStateMachineArn", {
      value: this.replicateStateMachine.stateMachineArn,
      description: 'Backfill or catch up a replica region: start with {"region":"<region>"}',
    });
    new CfnOutput(this, "VerifyStateMachineArn", {
      value: this.verification.stateMachine.stateMachineArn,
      description: 'Scheduled verification; start on demand with {} or {"databaseId":"pg-main","level":4}',
    });
    new CfnOutput(this, "RetentionStateMachineArn", {
      value: this.retention.stateMachine.stateMachineArn,
      description: 'Scheduled retention; start on demand with {"dryRun":true} to see the plan, or {"databaseId":"pg-main"}',
    });
    new CfnOutput(this, "VerifyTopicArn", { value: this.verification.topic.topicArn, description: "Failed verifications are published here: subscribe to it" });
    new CfnOutput(this, "IngestDeadLetterQueueUrl", { value: this.ingestDeadLetterQueue.queueUrl });
    new CfnOutput(this, "AgentPolicyArn", {
      value: this.agentPolicy.managedPolicyArn,
      description: `Attach to each database host's role, tagged ${AGENT_DB_TAG}=<database id>`,
    });

    this.suppressNagFindings(replicas);
  }

  /**
   * An Express workflow started once per upload (or per WAL file): it logs at
   * ERROR without execution data (every failed execution and state, with
   * error and cause), because logging ALL events would cost about a third of
   * the control plane per million segments (issue #11); traced with X-Ray.
   */
  private expressWorkflow(
    id: string,
    w: { comment: string; aslFile: string; substitutions: Record<string, string>; role: iam.IRole; logGroup: logs.ILogGroup; runsOncePer: string },
  ): sfn.StateMachine {
    const machine = new sfn.StateMachine(this, id, {
      comment: w.comment,
      stateMachineType: sfn.StateMachineType.EXPRESS,
      definitionBody: sfn.DefinitionBody.fromFile(w.aslFile),
      definitionSubstitutions: w.substitutions,
      role: w.role,
      logs: { destination: w.logGroup, level: sfn.LogLevel.ERROR, includeExecutionData: false },
      tracingEnabled: true,
    });
    NagSuppressions.addResourceSuppressions(machine, [
      {
        id: "AwsSolutions-SF1",
        reason:
          `${w.runsOncePer}: it logs at ERROR (every failed execution and state, with error and cause) ` +
          "because logging ALL events would cost about a third of the control plane per million segments (issue #11).",
      },
    ]);
    return machine;
  }

  /** One workflow step's Lambda function in this stack (infra/handler-function.ts). */
  private handlerFunction(
    name: string,
    entry: string,
    cfg: StepConfig,
    roleDescription: string,
    environment: Record<string, string>,
    root: string,
    handler = "handler",
  ): NodejsFunction {
    return createHandlerFunction(this, name, entry, cfg, roleDescription, environment, root, handler);
  }

  /**
   * Direct WAL's wal-record workflow (Express, logging at ERROR like ingest):
   * ValidateRecord reads the vault's WAL objects and writes the catalog, the
   * quarantine step writes quarantine records only; replication borrows
   * ingest's replicate function and replicate's recordFailure.
   */
  private createWalRecordWorkflow(
    root: string,
    environment: Record<string, string>,
    replicas: readonly { region: string; bucket: string }[],
  ): { functions: Record<WalRecordStep, NodejsFunction>; machine: sfn.StateMachine } {
    void replicas;
    const fns = Object.fromEntries(
      WAL_RECORD_STEPS.map((step) => [
        step,
        this.handlerFunction(
          `WalRecord${pascal(step)}`,
          join(root, "functions", "ingest", "validate-record.ts"),
          WAL_RECORD_STEP_CONFIG[step],
          `walvault wal-record ${step} function`,
          environment,
          root,
          WORKFLOW_DEFINITIONS["wal-record"].steps[step].handler,
        ),
      ]),
    ) as Record<WalRecordStep, NodejsFunction>;
    const table = this.catalog.tableArn;
    const walObjects = this.vaultBucket.arnForObjects("db/*/wal/*");
    fns.validateRecord.addToRolePolicy(
      new iam.PolicyStatement({ sid: "ReadVaultWal", actions: ["s3:GetObject", "s3:GetObjectVersion"], resources: [walObjects] }),
    );
    // Without s3:ListBucket a GetObject of a missing key is a 403 the store cannot tell from a denial.
    fns.validateRecord.addToRolePolicy(new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [this.vaultBucket.bucketArn] }));
    fns.validateRecord.addToRolePolicy(this.vaultKeyUse("DecryptVaultObjects", "Decrypt"));
    fns.validateRecord.addToRolePolicy(
      new iam.PolicyStatement({ sid: "WriteCatalog", actions: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"], resources: [table] }),
    );
    fns.quarantine.addToRolePolicy(new iam.PolicyStatement({ sid: "RecordQuarantine", actions: ["dynamodb:PutItem"], resources: [table] }));
    // The `.rejected` marker beside a rejected direct object (core/keys.ts rejectedMarkerKey), which catalog rebuild reads.
    fns.quarantine.addToRolePolicy(
      new iam.PolicyStatement({ sid: "MarkRejectedWal", actions: ["s3:PutObject"], resources: [this.vaultBucket.arnForObjects(`db/*/wal/*${REJECTED_SUFFIX}`)] }),
    );
    // SSE-KMS writes need GenerateDataKey (S3 never calls kms:Encrypt).
    fns.quarantine.addToRolePolicy(this.vaultKeyUse("EncryptVaultObjects", "GenerateDataKey"));
    for (const step of WAL_RECORD_STEPS) {
      NagSuppressions.addResourceSuppressions(
        fns[step].role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "ValidateRecord reads any database's WAL objects (db/*/wal/*, one object per WAL file): the agent names the key, which it checks against the database and file name; " +
              "QuarantineDirect writes only the `.rejected` marker beside a rejected one (db/*/wal/*.rejected), for whichever database it was; " +
              "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*').",
            appliesTo:
              step === "validateRecord"
                ? ["Resource::*", this.nagArn(this.vaultBucket, "/db/*/wal/*")]
                : ["Resource::*", this.nagArn(this.vaultBucket, `/db/*/wal/*${REJECTED_SUFFIX}`)],
          },
        ],
        true,
      );
      NagSuppressions.addResourceSuppressions(fns[step], [
        {
          id: "AwsSolutions-L1",
          reason: "Pinned to nodejs22.x on purpose: the handlers are built and tested on Node 22 (package.json engines), and node:zlib zstd needs it.",
        },
      ]);
    }

    const aslFile = join(root, "statemachines", WORKFLOW_DEFINITIONS["wal-record"].asl);
    const substitutions: Record<string, string> = {
      ValidateRecordFunctionArn: fns.validateRecord.functionArn,
      QuarantineDirectFunctionArn: fns.quarantine.functionArn,
      ReplicateFunctionArn: this.functions.replicate.functionArn,
      RecordReplicaFailureFunctionArn: this.replicateFunctions.recordFailure.functionArn,
      IncomingBucketName: this.incomingBucket.bucketName,
    };
    const missing = missingSubstitutions(aslFile, substitutions);
    if (missing.length > 0) throw new Error(`${aslFile} has placeholders without a substitution: ${missing.join(", ")}`);
    const role = new iam.Role(this, "WalRecordWorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault wal-record state machine (direct WAL)",
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "InvokeWalRecordSteps",
        actions: ["lambda:InvokeFunction"],
        resources: [fns.validateRecord.functionArn, fns.quarantine.functionArn, this.functions.replicate.functionArn, this.replicateFunctions.recordFailure.functionArn],
      }),
    );
    // ReportFailure writes the failure note of the file's incoming key (failed/incoming/db/<id>/wal/<name>.json), as ingest does.
    role.addToPolicy(new iam.PolicyStatement({ sid: "ReportFailures", actions: ["s3:PutObject"], resources: [this.incomingBucket.arnForObjects(`${FAILED_PREFIX}${INCOMING_PREFIX}*`)] }));
    const logGroup = new logs.LogGroup(this, "WalRecordWorkflowLogs", { retention: logs.RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.RETAIN });
    const machine = this.expressWorkflow("WalRecordWorkflow", {
      comment: "walvault wal-record: validate and record a WAL file an agent wrote into the vault, replicate it",
      aslFile,
      substitutions,
      role,
      logGroup,
      runsOncePer: "The Express wal-record workflow runs once per WAL file",
    });
    return { functions: fns, machine };
  }

  /** Least-privilege grants of the five ingest functions. */
  private grantIngestPermissions(replicas: readonly { region: string; bucket: string }[]): void {
    const { validate, promote, record, replicate, quarantine } = this.functions;
    const uploads = this.incomingBucket.arnForObjects(`${INCOMING_PREFIX}*`);
    const quarantined = this.incomingBucket.arnForObjects(`${QUARANTINE_PREFIX}*`);
    const vaultObjects = this.vaultBucket.arnForObjects("db/*");
    const table = this.catalog.tableArn;
    const readUploads = new iam.PolicyStatement({
      sid: "ReadUploads",
      actions: ["s3:GetObject", "s3:GetObjectVersion"],
      resources: [uploads],
    });
    // Without s3:ListBucket a GetObject/HeadObject of a missing key is a 403,
    // which the object store cannot tell from a real denial; with it, a 404.
    const listUploads = new iam.PolicyStatement({
      sid: "ListIncoming",
      actions: ["s3:ListBucket"],
      resources: [this.incomingBucket.bucketArn],
    });
    const add = (fn: NodejsFunction, ...statements: iam.PolicyStatement[]): void => {
      for (const s of statements) fn.addToRolePolicy(s);
    };
    const catalog = (sid: string, ...actions: string[]): iam.PolicyStatement =>
      new iam.PolicyStatement({ sid, actions: actions.map((a) => `dynamodb:${a}`), resources: [table] });

    // validate: read the upload, read the catalog.
    add(validate, readUploads, listUploads, catalog("ReadCatalog", "GetItem", "Query"));

    // promote: read the upload, look up / write the vault key, read the
    // database registration.
    add(
      promote,
      readUploads,
      listUploads,
      new iam.PolicyStatement({
        sid: "WriteVault",
        actions: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
        resources: [vaultObjects],
      }),
      new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [this.vaultBucket.bucketArn] }),
      // SSE-KMS writes need GenerateDataKey (S3 never calls kms:Encrypt), reads Decrypt.
      this.vaultKeyUse("EncryptVaultObjects", "GenerateDataKey", "Decrypt"),
      catalog("ReadCatalog", "GetItem"),
    );

    // record: conditional create of the WAL item, head item update.
    add(record, catalog("WriteCatalog", "GetItem", "PutItem", "UpdateItem"));

    // replicate: read the vault (the promoted version), head/write/read back
    // each replica vault (store/replication.ts), update the item.
    add(
      replicate,
      new iam.PolicyStatement({ sid: "ReadVault", actions: ["s3:GetObject", "s3:GetObjectVersion"], resources: [vaultObjects] }),
      new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [this.vaultBucket.bucketArn] }),
      this.vaultKeyUse("DecryptVaultObjects", "Decrypt"),
      catalog("UpdateCatalog", "GetItem", "UpdateItem"),
      ...this.replicaVaultStatements(replicas),
    );

    // quarantine: read the upload, keep a copy under quarantine/, record why.
    add(
      quarantine,
      readUploads,
      listUploads,
      new iam.PolicyStatement({ sid: "WriteQuarantine", actions: ["s3:PutObject"], resources: [quarantined] }),
      catalog("RecordQuarantine", "PutItem"),
    );
  }

  /**
   * What a function that copies into the replica vaults needs there
   * (store/replication.ts): HEAD the key (s3:GetObject; with s3:ListBucket a
   * missing key is a 404, not a 403), PutObject the copy, and read it back
   * (s3:GetObjectVersion: the version just written) - under db/* only, and
   * nothing that deletes, unlocks or changes retention. The replica keys
   * belong to the replica stacks (another region, no cross-region reference):
   * their ARNs end in key/*, usable only through S3 in that region
   * (kms:ViaService) and only for that region's vault bucket (the S3
   * encryption context is the bucket ARN with S3 Bucket Keys, the object ARN
   * without). SSE-KMS writes need GenerateDataKey (S3 never calls
   * kms:Encrypt), reads Decrypt.
   */
  private replicaVaultStatements(replicas: readonly { region: string; bucket: string }[]): iam.PolicyStatement[] {
    if (replicas.length === 0) return [];
    const bucketArn = (bucket: string): string => `arn:${Aws.PARTITION}:s3:::${bucket}`;
    return [
      new iam.PolicyStatement({
        sid: "WriteReplicaVaults",
        actions: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
        resources: replicas.map((r) => `${bucketArn(r.bucket)}/db/*`),
      }),
      new iam.PolicyStatement({
        sid: "ListReplicaVaults",
        actions: ["s3:ListBucket"],
        resources: replicas.map((r) => bucketArn(r.bucket)),
      }),
      ...replicas.map(
        (r) =>
          new iam.PolicyStatement({
            sid: `UseReplicaVaultKey${pascal(r.region)}`,
            actions: ["kms:GenerateDataKey", "kms:Decrypt"],
            resources: [`arn:${Aws.PARTITION}:kms:${r.region}:${Aws.ACCOUNT_ID}:key/*`],
            conditions: {
              StringEquals: { "kms:ViaService": `s3.${r.region}.amazonaws.com` },
              StringLike: { "kms:EncryptionContext:aws:s3:arn": [bucketArn(r.bucket), `${bucketArn(r.bucket)}/db/*`] },
            },
          }),
      ),
    ];
  }

  /**
   * Least-privilege grants of the replicate functions (functions/replicate/):
   *   - findMissing reads the catalog's replication indexes only (a Query
   *     of the region's index of pending records), never the table;
   *   - copyItem reads the WAL/snapshot record, reads the primary vault
   *     (any version: the record names one), copies into the replica vaults
   *     (replicaVaultStatements) and marks the region in the item;
   *   - recordFailure marks the region failed (UpdateItem, and a GetItem when
   *     the condition fails).
   */
  private grantReplicatePermissions(replicas: readonly { region: string; bucket: string }[]): void {
    const f = this.replicateFunctions;
    const catalog = (sid: string, ...actions: string[]): iam.PolicyStatement =>
      new iam.PolicyStatement({ sid, actions: actions.map((a) => `dynamodb:${a}`), resources: [this.catalog.tableArn] });
    f.findMissing.addToRolePolicy(new iam.PolicyStatement({ sid: "ReadReplicationIndexes", actions: ["dynamodb:Query"], resources: [`${this.catalog.tableArn}/index/*`] }));
    for (const st of [
      catalog("UpdateCatalog", "GetItem", "UpdateItem"),
      new iam.PolicyStatement({ sid: "ReadVault", actions: ["s3:GetObject", "s3:GetObjectVersion"], resources: [this.vaultBucket.arnForObjects("db/*")] }),
      new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [this.vaultBucket.bucketArn] }),
      new iam.PolicyStatement({
        sid: "DecryptVaultObjects",
        actions: ["kms:Decrypt"],
        resources: [this.vaultKey.keyArn],
        conditions: { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } },
      }),
      ...this.replicaVaultStatements(replicas),
    ]) {
      f.copyItem.addToRolePolicy(st);
    }
    f.recordFailure.addToRolePolicy(catalog("RecordReplicaFailure", "GetItem", "UpdateItem"));
  }

  /**
   * Least-privilege grants of the seven snapshot ingest functions: each reads
   * and writes only the key families its step touches (manifests, chunks,
   * packs, work/ batch lists, quarantine/), deletes nothing, and only the
   * three promote steps write the vault.
   */
  private grantSnapshotPermissions(): void {
    const f = this.snapshotFunctions;
    const read = (sid: string, ...resources: string[]): iam.PolicyStatement =>
      new iam.PolicyStatement({ sid, actions: ["s3:GetObject", "s3:GetObjectVersion"], resources });
    const manifests = this.incomingBucket.arnForObjects(`${INCOMING_PREFIX}*/snapshots/*`);
    const chunkUploads = this.incomingBucket.arnForObjects(`${INCOMING_PREFIX}*/chunks/*`);
    const packUploads = this.incomingBucket.arnForObjects(`${INCOMING_PREFIX}*/packs/*`);
    const work = this.incomingBucket.arnForObjects(`${WORK_PREFIX}*`);
    const quarantined = this.incomingBucket.arnForObjects(`${QUARANTINE_PREFIX}*`);
    const vaultChunks = this.vaultBucket.arnForObjects("db/*/chunks/*");
    const vaultPacks = this.vaultBucket.arnForObjects("db/*/packs/*");
    const vaultManifests = this.vaultBucket.arnForObjects("db/*/snapshots/*");
    // Without s3:ListBucket a GetObject/HeadObject of a missing key is a 403, not a 404.
    const listIncoming = new iam.PolicyStatement({ sid: "ListIncoming", actions: ["s3:ListBucket"], resources: [this.incomingBucket.bucketArn] });
    const listVault = new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [this.vaultBucket.bucketArn] });
    const catalog = (sid: string, ...actions: string[]): iam.PolicyStatement =>
      new iam.PolicyStatement({ sid, actions: actions.map((a) => `dynamodb:${a}`), resources: [this.catalog.tableArn] });
    // The steps of a shared function (core/workflows.ts SHARED_FUNCTIONS) share its role: a statement two of
    // them need is added once; two different statements under one Sid would be an invalid policy.
    const added = new Map<NodejsFunction, Map<string, string>>();
    const add = (fn: NodejsFunction, ...statements: iam.PolicyStatement[]): void => {
      const sids = added.get(fn) ?? new Map<string, string>();
      added.set(fn, sids);
      for (const st of statements) {
        const json = JSON.stringify(this.resolve(st.toStatementJson()));
        const sid = st.sid ?? json;
        const before = sids.get(sid);
        if (before === json) continue;
        if (before !== undefined) throw new Error(`snapshot ingest: two statements named ${sid} for one function's role`);
        sids.set(sid, json);
        fn.addToRolePolicy(st);
      }
    };

    // validateManifest: read the manifest, write the batch lists, read the
    // registration and snapshot record, look up reused chunks.
    add(
      f.validateManifest,
      read("ReadManifests", manifests),
      listIncoming,
      new iam.PolicyStatement({ sid: "WriteBatchLists", actions: ["s3:PutObject"], resources: [work] }),
      catalog("ReadCatalog", "GetItem", "BatchGetItem"),
    );
    // validatePages: re-read the manifest and its pages, read/write the batch lists, look up reused chunks.
    add(
      f.validatePages,
      read("ReadManifestsAndBatchLists", manifests, work),
      listIncoming,
      new iam.PolicyStatement({ sid: "WriteBatchLists", actions: ["s3:PutObject"], resources: [work] }),
      catalog("ReadChunkRecords", "BatchGetItem"),
    );
    // promoteChunks: read chunk uploads and batch lists, head/write vault chunks, record chunks.
    add(
      f.promoteChunks,
      read("ReadChunkUploads", chunkUploads, work),
      listIncoming,
      new iam.PolicyStatement({ sid: "WriteVaultChunks", actions: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"], resources: [vaultChunks] }),
      listVault,
      // SSE-KMS writes need GenerateDataKey (S3 never calls kms:Encrypt), reads Decrypt.
      this.vaultKeyUse("EncryptVaultObjects", "GenerateDataKey", "Decrypt"),
      catalog("RecordChunks", "BatchWriteItem"),
    );
    // promotePacks (snapshot ingest's Map, and pack ingest as each pack lands): read pack uploads and batch
    // lists, head/write vault packs, record packs and chunks.
    add(
      f.promotePacks,
      read("ReadPackUploads", packUploads, work),
      listIncoming,
      new iam.PolicyStatement({ sid: "WriteVaultPacks", actions: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"], resources: [vaultPacks] }),
      listVault,
      this.vaultKeyUse("EncryptVaultObjects", "GenerateDataKey", "Decrypt"),
      catalog("RecordPacks", "BatchWriteItem"),
      // Skip packs already recorded (BatchGetItem); a landed pack's database must be registered (GetItem).
      catalog("ReadPackRecords", "BatchGetItem", "GetItem"),
      // One promoter per pack: a conditional put of the pack's claim, read back when refused, ended when done.
      catalog("ClaimPackPromotion", "PutItem", "UpdateItem"),
    );
    // checkReferenced: re-read the manifest, look every chunk (and the packs of reused ones) up, read backup_label's chunks (own objects or pack ranges).
    add(
      f.checkReferenced,
      read("ReadManifests", manifests),
      listIncoming,
      read("ReadVaultChunks", vaultChunks, vaultPacks),
      listVault,
      this.vaultKeyUse("DecryptVaultObjects", "Decrypt"),
      catalog("ReadChunkRecords", "BatchGetItem"),
      // Unmark the packs of reused chunks that retention marked for deletion (conditional UpdateItem; GetItem tells a gone record apart).
      catalog("UnmarkPacks", "UpdateItem", "GetItem"),
    );
    // promoteManifest: re-read the manifest, head/write its vault key.
    add(
      f.promoteManifest,
      read("ReadManifests", manifests),
      listIncoming,
      new iam.PolicyStatement({
        sid: "WriteVaultManifests",
        actions: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
        resources: [vaultManifests],
      }),
      listVault,
      this.vaultKeyUse("EncryptVaultObjects", "GenerateDataKey", "Decrypt"),
    );
    // recordSnapshot: conditional create of the snapshot item (and a read when it exists).
    add(f.recordSnapshot, catalog("WriteCatalog", "PutItem", "GetItem"));
    // quarantineSnapshot: read the manifest, keep a copy under quarantine/, record why.
    add(
      f.quarantineSnapshot,
      read("ReadManifests", manifests),
      listIncoming,
      new iam.PolicyStatement({ sid: "WriteQuarantine", actions: ["s3:PutObject"], resources: [quarantined] }),
      catalog("RecordQuarantine", "PutItem"),
    );
  }

  /**
   * Least-privilege grants of the restore functions: plan reads the catalog
   * (registration, snapshot and WAL records) and the vault objects planning
   * may read (timeline history files under db/<id>/wal/, manifests of
   * incomplete records); thaw/checkThaw head every object a plan needs and
   * request its restore (HeadObject is s3:GetObject), and read the manifest.
   */
  private grantRestorePermissions(): void {
    const f = this.restoreFunctions;
    const vaultWal = this.vaultBucket.arnForObjects("db/*/wal/*");
    const vaultManifests = this.vaultBucket.arnForObjects("db/*/snapshots/*");
    const vaultObjects = this.vaultBucket.arnForObjects("db/*");
    const listVault = new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [this.vaultBucket.bucketArn] });
    const decrypt = new iam.PolicyStatement({
      sid: "DecryptVaultObjects",
      actions: ["kms:Decrypt"],
      resources: [this.vaultKey.keyArn],
      conditions: { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } },
    });
    // The plan is a work/ object of the incoming bucket (only its key travels in the state): Plan writes it, the thaw steps read it.
    const restorePlans = this.incomingBucket.arnForObjects(`${RESTORE_WORK_PREFIX}*`);
    for (const st of [
      new iam.PolicyStatement({ sid: "ReadCatalog", actions: ["dynamodb:GetItem", "dynamodb:Query"], resources: [this.catalog.tableArn] }),
      // A walIndex-complete generic database's WAL is planned by position range (store/catalog-state.ts): Query on that one index.
      new iam.PolicyStatement({ sid: "ReadGenericWalIndex", actions: ["dynamodb:Query"], resources: [`${this.catalog.tableArn}/index/${GENERIC_WAL_INDEX}`] }),
      new iam.PolicyStatement({ sid: "ReadVaultWalAndManifests", actions: ["s3:GetObject", "s3:GetObjectVersion"], resources: [vaultWal, vaultManifests] }),
      new iam.PolicyStatement({ sid: "WriteRestorePlans", actions: ["s3:PutObject"], resources: [restorePlans] }),
      listVault,
      decrypt,
    ]) {
      f.plan.addToRolePolicy(st);
    }
    for (const fn of [f.thaw, f.checkThaw]) {
      // They read the plan and write each pass's chunk list next to it (thaw-chunks-NNNNNN.json, functions/restore/thaw.ts).
      fn.addToRolePolicy(new iam.PolicyStatement({ sid: "RestorePlansAndChunkLists", actions: ["s3:GetObject", "s3:PutObject"], resources: [restorePlans] }));
      // Which pack (or chunk object) holds each chunk: Catalog.getChunks.
      fn.addToRolePolicy(new iam.PolicyStatement({ sid: "ReadChunkRecords", actions: ["dynamodb:BatchGetItem"], resources: [this.catalog.tableArn] }));
      fn.addToRolePolicy(new iam.PolicyStatement({ sid: "ThawVaultObjects", actions: ["s3:GetObject", "s3:RestoreObject"], resources: [vaultObjects] }));
      fn.addToRolePolicy(listVault);
      fn.addToRolePolicy(decrypt);
    }
  }

  /**
   * What every database's agent may do, in one managed policy whose every
   * statement is scoped by the calling principal's tag walvault-db (IAM policy
   * variable ${aws:PrincipalTag/walvault-db}): PutObject under
   * incoming/db/<id>/, read its failure notes, its restore plans and its
   * db/<id>/ vault objects (kms:Decrypt through S3 for them), read its
   * db#<id> catalog items. Every statement also requires the tag to be
   * present, so a principal without it gets nothing. Attached to each
   * database host's own role (EC2 instance role, EKS IRSA / Pod Identity
   * role), tagged walvault-db=<id>: the template does not grow with the
   * databases, and the agent needs no assume-role step (docs/deploy.md).
   */
  private createAgentPolicy(): iam.ManagedPolicy {
    const db = AGENT_DB_VARIABLE;
    const tagged = { Null: { [`aws:PrincipalTag/${AGENT_DB_TAG}`]: "false" } };
    const statement = (props: iam.PolicyStatementProps): iam.PolicyStatement =>
      new iam.PolicyStatement({ ...props, conditions: { ...tagged, ...props.conditions } });
    const policy = new iam.ManagedPolicy(this, "AgentPolicy", {
      description: `walvault agent of the database named by the principal tag ${AGENT_DB_TAG}: upload under incoming/db/<id>/, create WAL under db/<id>/wal/, read db/<id>/ and its catalog items`,
      statements: [
        statement({ sid: "UploadOwnWal", actions: ["s3:PutObject"], resources: [this.incomingBucket.arnForObjects(`${INCOMING_PREFIX}${db}/*`)] }),
        statement({
          sid: "ReadOwnFailureNotes",
          actions: ["s3:GetObject"],
          resources: [this.incomingBucket.arnForObjects(`${FAILED_PREFIX}${INCOMING_PREFIX}${db}/*`)],
        }),
        statement({ sid: "ReadOwnVault", actions: ["s3:GetObject"], resources: [this.vaultBucket.arnForObjects(`db/${db}/*`)] }),
        // Direct WAL (docs/wal.md): write a WAL file once into the vault (the bucket policy admits only
        // If-None-Match: * there), encrypting it with the vault key through S3, then start wal-record.
        statement({ sid: "CreateOwnVaultWal", actions: ["s3:PutObject"], resources: [this.vaultBucket.arnForObjects(`db/${db}/wal/*`)] }),
        statement({
          sid: "EncryptOwnVaultWal",
          actions: ["kms:GenerateDataKey"],
          resources: [this.vaultKey.keyArn],
          conditions: {
            StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` },
            StringLike: { "kms:EncryptionContext:aws:s3:arn": [this.vaultBucket.bucketArn, this.vaultBucket.arnForObjects(`db/${db}/wal/*`)] },
          },
        }),
        statement({ sid: "StartWalRecord", actions: ["states:StartExecution", "states:StartSyncExecution"], resources: [this.walRecordStateMachine.stateMachineArn] }),
        // The plans of its database's restore workflow executions (`walvault restore --remote` reads them).
        statement({ sid: "ReadOwnRestorePlans", actions: ["s3:GetObject"], resources: [this.incomingBucket.arnForObjects(`${RESTORE_WORK_PREFIX}${db}/*`)] }),
        // Reading SSE-KMS objects needs kms:Decrypt, through S3 only, for
        // this vault only (the bucket ARN is the encryption context when
        // S3 Bucket Keys are on, the object ARN when they are not).
        statement({
          sid: "DecryptOwnVaultObjects",
          actions: ["kms:Decrypt"],
          resources: [this.vaultKey.keyArn],
          conditions: {
            StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` },
            StringLike: { "kms:EncryptionContext:aws:s3:arn": [this.vaultBucket.bucketArn, this.vaultBucket.arnForObjects(`db/${db}/*`)] },
          },
        }),
        statement({
          sid: "ReadOwnCatalogItems",
          actions: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"],
          resources: [this.catalog.tableArn],
          conditions: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [`db#${db}`] } },
        }),
        // A CLI restore or status of a walIndex-complete generic database reads its WAL by position range: the
        // index's partition key is the table's, so LeadingKeys holds the caller to its own items there too.
        statement({
          sid: "QueryOwnGenericWalIndex",
          actions: ["dynamodb:Query"],
          resources: [`${this.catalog.tableArn}/index/${GENERIC_WAL_INDEX}`],
          conditions: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [`db#${db}`] } },
        }),
      ],
    });
    // cdk-nag prints the policy variable ${aws:PrincipalTag/walvault-db} as <aws:PrincipalTag/walvault-db>.
    const nagDb = `<aws:PrincipalTag/${AGENT_DB_TAG}>`;
    NagSuppressions.addResourceSuppressions(policy, [
      {
        id: "AwsSolutions-IAM5",
        reason: `The object wildcards end a key prefix of the caller's own database only (the principal tag ${AGENT_DB_TAG}: incoming/db/<id>/*, db/<id>/*, work/restore/<id>/*); every WAL file and restore plan has its own key.`,
        appliesTo: [
          this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}${nagDb}/*`),
          this.nagArn(this.incomingBucket, `/${FAILED_PREFIX}${INCOMING_PREFIX}${nagDb}/*`),
          this.nagArn(this.incomingBucket, `/${RESTORE_WORK_PREFIX}${nagDb}/*`),
          this.nagArn(this.vaultBucket, `/db/${nagDb}/*`),
          this.nagArn(this.vaultBucket, `/db/${nagDb}/wal/*`),
        ],
      },
    ]);
    return policy;
  }

  /**
   * Deprecated (`agentRolesPerDatabase`, for migrating older deployments):
   * the role `walvault-agent-<id>` of one database, tagged walvault-db=<id>
   * so that the agent policy it holds scopes it to that database. Trust:
   * `trust` (by default the account: any principal of this account whose own
   * policy allows sts:AssumeRole on this role); hosts reach it by role
   * chaining (a profile with `role_arn`). No sts:TagSession: a session
   * cannot replace its tag.
   */
  private agentRole(db: string, trust: iam.IPrincipal): iam.Role {
    const role = new iam.Role(this, `Agent${pascal(db)}Role`, {
      roleName: `${AGENT_ROLE_PREFIX}${db}`,
      description: `walvault agent of database ${db} (per-database role, deprecated): the agent policy, scoped by its tag ${AGENT_DB_TAG}`,
      assumedBy: trust,
      maxSessionDuration: Duration.hours(1),
      managedPolicies: [this.agentPolicy],
    });
    Tags.of(role).add(AGENT_DB_TAG, db);
    return role;
  }

  /** How cdk-nag prints `Fn::GetAtt [<bucket>, Arn]` followed by `suffix`: for granular `appliesTo`. */
  /** Use of the vault's KMS key through S3 only (SSE-KMS: writes need GenerateDataKey, S3 never calls kms:Encrypt; reads Decrypt). */
  private vaultKeyUse(sid: string, ...actions: string[]): iam.PolicyStatement {
    return new iam.PolicyStatement({
      sid,
      actions: actions.map((a) => `kms:${a}`),
      resources: [this.vaultKey.keyArn],
      conditions: { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } },
    });
  }

  private nagArn(resource: s3.Bucket | dynamodb.TableV2, suffix: string): string {
    return `Resource::<${this.getLogicalId(resource.node.defaultChild as CfnElement)}.Arn>${suffix}`;
  }

  private suppressNagFindings(replicas: readonly { region: string; bucket: string }[]): void {
    const xray = "Resource::*";
    const uploads = this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*`);
    const quarantined = this.nagArn(this.incomingBucket, `/${QUARANTINE_PREFIX}*`);
    const vaultObjects = this.nagArn(this.vaultBucket, "/db/*");
    const replicaObjects = replicas.map((r) => `Resource::arn:<AWS::Partition>:s3:::${r.bucket.replace(Aws.ACCOUNT_ID, "<AWS::AccountId>")}/db/*`);
    const replicaKeys = replicas.map((r) => `Resource::arn:<AWS::Partition>:kms:${r.region}:<AWS::AccountId>:key/*`);
    const wildcards: Record<IngestStep, string[]> = {
      validate: [xray, uploads],
      promote: [xray, uploads, vaultObjects],
      record: [xray],
      replicate: [xray, vaultObjects, ...replicaObjects, ...replicaKeys],
      quarantine: [xray, uploads, quarantined],
    };
    for (const step of INGEST_STEPS) {
      NagSuppressions.addResourceSuppressions(
        this.functions[step].role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "Object wildcards end one key prefix (incoming/db/*, quarantine/db/*, or db/* of the vault or a replica vault: one object per WAL file); " +
              "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*'); " +
              "replica vault keys belong to the replica stacks and are usable only through S3 in their region (kms:ViaService).",
            appliesTo: wildcards[step],
          },
        ],
        true,
      );
      NagSuppressions.addResourceSuppressions(this.functions[step], [
        {
          id: "AwsSolutions-L1",
          reason: "Pinned to nodejs22.x on purpose: the handlers are built and tested on Node 22 (package.json engines), and node:zlib zstd needs it.",
        },
      ]);
    }
    const snapshotWildcards: Record<SnapshotStep, string[]> = {
      validateManifest: [xray, this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/snapshots/*`), this.nagArn(this.incomingBucket, `/${WORK_PREFIX}*`)],
      validatePages: [xray, this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/snapshots/*`), this.nagArn(this.incomingBucket, `/${WORK_PREFIX}*`)],
      promoteChunks: [
        xray,
        this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/chunks/*`),
        this.nagArn(this.incomingBucket, `/${WORK_PREFIX}*`),
        this.nagArn(this.vaultBucket, "/db/*/chunks/*"),
      ],
      promotePacks: [
        xray,
        this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/packs/*`),
        this.nagArn(this.incomingBucket, `/${WORK_PREFIX}*`),
        this.nagArn(this.vaultBucket, "/db/*/packs/*"),
      ],
      checkReferenced: [
        xray,
        this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/snapshots/*`),
        this.nagArn(this.vaultBucket, "/db/*/chunks/*"),
        this.nagArn(this.vaultBucket, "/db/*/packs/*"),
      ],
      promoteManifest: [xray, this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/snapshots/*`), this.nagArn(this.vaultBucket, "/db/*/snapshots/*")],
      recordSnapshot: [xray],
      quarantineSnapshot: [xray, this.nagArn(this.incomingBucket, `/${INCOMING_PREFIX}*/snapshots/*`), quarantined],
    };
    // One suppression per function: a shared function's role holds the wildcards of all its steps.
    const snapshotFunctionWildcards = new Map<NodejsFunction, Set<string>>();
    for (const step of SNAPSHOT_STEPS) {
      const all = snapshotFunctionWildcards.get(this.snapshotFunctions[step]) ?? new Set<string>();
      for (const w of snapshotWildcards[step]) all.add(w);
      snapshotFunctionWildcards.set(this.snapshotFunctions[step], all);
    }
    for (const [fn, wildcards] of snapshotFunctionWildcards) {
      NagSuppressions.addResourceSuppressions(
        fn.role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "Object wildcards end one key family of every database: manifests (incoming/db/*/snapshots/*), chunk uploads (incoming/db/*/chunks/*), " +
              "the workflow's own batch lists (work/*), quarantine/db/*, or the vault's db/*/chunks/* and db/*/snapshots/* (one object per chunk or manifest); " +
              "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*').",
            appliesTo: [...wildcards],
          },
        ],
        true,
      );
      NagSuppressions.addResourceSuppressions(fn, [
        {
          id: "AwsSolutions-L1",
          reason: "Pinned to nodejs22.x on purpose: the handlers are built and tested on Node 22 (package.json engines), and node:zlib zstd needs it.",
        },
      ]);
    }
    const restoreWildcards: Record<RestoreStep, string[]> = {
      plan: [xray, this.nagArn(this.vaultBucket, "/db/*/wal/*"), this.nagArn(this.vaultBucket, "/db/*/snapshots/*"), this.nagArn(this.incomingBucket, `/${RESTORE_WORK_PREFIX}*`)],
      thaw: [xray, vaultObjects, this.nagArn(this.incomingBucket, `/${RESTORE_WORK_PREFIX}*`)],
      checkThaw: [xray, vaultObjects, this.nagArn(this.incomingBucket, `/${RESTORE_WORK_PREFIX}*`)],
    };
    for (const step of RESTORE_STEPS) {
      NagSuppressions.addResourceSuppressions(
        this.restoreFunctions[step].role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "Object wildcards end one key family of every database's vault objects (db/*/wal/*, db/*/snapshots/*, or db/*: a restore needs manifests, chunks and WAL, " +
              "one object each, of the database named in the execution input), and the workflow's own plans (work/restore/*, one folder per execution); X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*').",
            appliesTo: restoreWildcards[step],
          },
        ],
        true,
      );
      NagSuppressions.addResourceSuppressions(this.restoreFunctions[step], [
        {
          id: "AwsSolutions-L1",
          reason: "Pinned to nodejs22.x on purpose: the handlers are built and tested on Node 22 (package.json engines), and node:zlib zstd needs it.",
        },
      ]);
    }
    const replicateWildcards: Record<ReplicateStep, string[]> = {
      findMissing: [xray, this.nagArn(this.catalog, "/index/*")],
      copyItem: [xray, vaultObjects, ...replicaObjects, ...replicaKeys],
      recordFailure: [xray],
    };
    for (const step of REPLICATE_STEPS) {
      NagSuppressions.addResourceSuppressions(
        this.replicateFunctions[step].role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "Object wildcards end the vault's db/* prefix (one object per WAL file, chunk or manifest) in the primary or a replica vault; " +
              "replica vault keys belong to the replica stacks in other regions (no cross-region reference), so their ARNs end in key/*, " +
              "usable only through S3 in that region (kms:ViaService) for that region's vault bucket (kms:EncryptionContext:aws:s3:arn); " +
              "FindMissing Queries the catalog's indexes (index/*: one sparse index of pending records per replica region, named after it) and never the table; " +
              "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*').",
            appliesTo: replicateWildcards[step],
          },
        ],
        true,
      );
      NagSuppressions.addResourceSuppressions(this.replicateFunctions[step], [
        {
          id: "AwsSolutions-L1",
          reason: "Pinned to nodejs22.x on purpose: the handlers are built and tested on Node 22 (package.json engines), and node:zlib zstd needs it.",
        },
      ]);
    }
    for (const machine of [
      this.ingestStateMachine,
      this.walRecordStateMachine,
      this.snapshotIngestStateMachine,
      this.packIngestStateMachine,
      this.restoreStateMachine,
      this.replicateStateMachine,
    ]) {
      suppressWorkflowRoleWildcards(machine);
    }
    for (const machine of [this.ingestStateMachine, this.walRecordStateMachine, this.snapshotIngestStateMachine]) {
      NagSuppressions.addResourceSuppressions(
        machine.role,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "ReportFailure writes one note per upload it could not store, failed/<incoming key>.json: the wildcard ends the failed/incoming/db/ prefix.",
            appliesTo: [this.nagArn(this.incomingBucket, `/${FAILED_PREFIX}${INCOMING_PREFIX}*`)],
          },
        ],
        true,
      );
    }
    NagSuppressions.addResourceSuppressions(this.accessLogsBucket, [
      { id: "AwsSolutions-S1", reason: "This is the server access log bucket itself; logging it would log its own log deliveries." },
    ]);
    // eventBridgeEnabled is applied by CDK's singleton BucketNotificationsHandler
    // custom resource (a deploy-time function, not part of the data path).
    for (const child of this.node.children.filter((c) => c.node.id.startsWith("BucketNotificationsHandler"))) {
      NagSuppressions.addResourceSuppressions(
        child,
        [
          {
            id: "AwsSolutions-IAM4",
            reason: "CDK's bucket notifications custom resource uses AWSLambdaBasicExecutionRole; it only runs during deployment.",
            appliesTo: ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
          },
        ],
        true,
      );
    }
    NagSuppressions.addResourceSuppressions(this.ingestDeadLetterQueue, [
      { id: "AwsSolutions-SQS3", reason: "This queue is the dead-letter queue of the ingest EventBridge targets." },
    ]);
  }
}
