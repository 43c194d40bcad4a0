/**
 * The vault bucket and its access-log bucket, shared by the primary stack and
 * every replica stack so that a replica vault has exactly the primary vault's
 * protections: versioning, Object Lock default retention, SSE-KMS with a
 * customer managed key and an S3 Bucket Key, TLS only, public access blocked,
 * bucket-owner-enforced ownership, server access logs, and a bucket policy
 * that refuses every write, delete and unlock from an agent role.
 */
import { Aws, Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as s3 from "aws-cdk-lib/aws-s3";
import type { Construct } from "constructs";

export type ObjectLockMode = "GOVERNANCE" | "COMPLIANCE";

/** The per-database agent roles of deployments before attribute-based access (walvault:agentRolesPerDatabase) are named `walvault-agent-<databaseId>`. */
export const AGENT_ROLE_PREFIX = "walvault-agent-";

/**
 * The principal tag that makes a principal a database's agent: its value is
 * the database id (docs/deploy.md, "The agent policy"). The agent policy
 * scopes every resource by it, and every vault denies writes to any
 * principal that carries it.
 */
export const AGENT_DB_TAG = "walvault-db";

/** The IAM policy variable of AGENT_DB_TAG: the calling principal's database id. */
export const AGENT_DB_VARIABLE = `\${aws:PrincipalTag/${AGENT_DB_TAG}}`;

/**
 * Vault objects smaller than this stay in STANDARD: manifests of small
 * snapshots, timeline history files, `.backup` files (read by every restore
 * plan). WAL segments (16 MiB) and packs (tens of MiB) are larger. S3's own
 * default minimum for transitions is the same 128 KiB.
 */
export const TIER_MIN_OBJECT_BYTES = 128 * 1024;

/** An AWS region name such as `eu-west-1`. */
export const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;

/**
 * The replica vault bucket of `region` unless the configuration names one:
 * `walvault-vault-<account>-<region>` (`account` defaults to the deploying
 * stack's account).
 */
export function defaultReplicaBucketName(region: string, account: string = Aws.ACCOUNT_ID): string {
  return `walvault-vault-${account}-${region}`;
}

/** Throws unless `days` is a valid Object Lock default retention. */
export function checkObjectLockDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new Error(`objectLockDays must be a whole number of days between 1 and 36500, got ${days}`);
  }
}

/**
 * When current versions of vault objects larger than TIER_MIN_OBJECT_BYTES
 * (WAL segments, packs, chunk objects, large manifests) move to cheaper storage
 * classes (days after they were written). Both classes are instant
 * retrieval: a restore or a verification reads them like STANDARD (no thaw),
 * paying per GB read. 0 turns a transition off.
 */
export interface VaultLifecycle {
  /** To STANDARD_IA (S3: 30 days at least). @default 30 */
  readonly infrequentAccessDays?: number;
  /** To GLACIER_IR (at least 30 days after STANDARD_IA when both are on). @default 90 */
  readonly glacierInstantRetrievalDays?: number;
}

export const DEFAULT_VAULT_LIFECYCLE = { infrequentAccessDays: 30, glacierInstantRetrievalDays: 90 } as const;

/** The transitions of `lifecycle` (defaults filled in), checked against S3's rules. */
export function vaultTransitions(lifecycle: VaultLifecycle = {}): { storageClass: s3.StorageClass; transitionAfter: Duration }[] {
  const ia = lifecycle.infrequentAccessDays ?? DEFAULT_VAULT_LIFECYCLE.infrequentAccessDays;
  const ir = lifecycle.glacierInstantRetrievalDays ?? DEFAULT_VAULT_LIFECYCLE.glacierInstantRetrievalDays;
  for (const [name, v] of [["infrequentAccessDays", ia], ["glacierInstantRetrievalDays", ir]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 36500) throw new Error(`vault lifecycle ${name} must be a whole number of days (0: off), got ${v}`);
  }
  if (ia > 0 && ia < 30) throw new Error(`vault lifecycle infrequentAccessDays must be 30 or more (S3's minimum for STANDARD_IA), got ${ia}`);
  if (ia > 0 && ir > 0 && ir < ia + 30) {
    throw new Error(`vault lifecycle glacierInstantRetrievalDays must be at least 30 days after infrequentAccessDays (${ia}), got ${ir}`);
  }
  return [
    ...(ia > 0 ? [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(ia) }] : []),
    ...(ir > 0 ? [{ storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(ir) }] : []),
  ];
}

/**
 * S3 server access logs of a region's data buckets. Log delivery only
 * supports SSE-S3 and no Object Lock default retention on the target bucket.
 */
export function createAccessLogsBucket(scope: Construct, id: string): s3.Bucket {
  return new s3.Bucket(scope, id, {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    enforceSSL: true,
    lifecycleRules: [
      { id: "expire-access-logs", expiration: Duration.days(365) },
      { id: "abort-multipart", abortIncompleteMultipartUploadAfter: Duration.days(1) },
    ],
    removalPolicy: RemovalPolicy.RETAIN,
  });
}

export interface VaultBucketOptions {
  /**
   * Direct WAL (docs/wal.md): an agent (a principal tagged walvault-db) may
   * create — only create: the request must carry If-None-Match: * — objects
   * under its own db/<tag>/wal/; every other write stays denied. The primary
   * vault only; replica vaults are written by the control plane alone.
   * @default false
   */
  readonly agentWalCreates?: boolean;
  /** The customer managed key of this vault (SSE-KMS). */
  readonly key: kms.IKey;
  /** Where S3 server access logs go (prefix `vault/`). */
  readonly accessLogsBucket: s3.IBucket;
  readonly objectLockMode: ObjectLockMode;
  readonly objectLockDays: number;
  /** @default a name CloudFormation generates */
  readonly bucketName?: string;
  /** @default DEFAULT_VAULT_LIFECYCLE */
  readonly lifecycle?: VaultLifecycle;
}

/**
 * A vault: what was validated. Versioned + Object Lock: every version is
 * immutable for the default retention, whoever asks.
 */
export function createVaultBucket(scope: Construct, id: string, opts: VaultBucketOptions): s3.Bucket {
  checkObjectLockDays(opts.objectLockDays);
  const days = Duration.days(opts.objectLockDays);
  const transitions = vaultTransitions(opts.lifecycle);
  const bucket = new s3.Bucket(scope, id, {
    ...(opts.bucketName === undefined ? {} : { bucketName: opts.bucketName }),
    versioned: true,
    objectLockEnabled: true,
    objectLockDefaultRetention:
      opts.objectLockMode === "COMPLIANCE" ? s3.ObjectLockRetention.compliance(days) : s3.ObjectLockRetention.governance(days),
    encryption: s3.BucketEncryption.KMS,
    encryptionKey: opts.key,
    bucketKeyEnabled: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    enforceSSL: true,
    serverAccessLogsBucket: opts.accessLogsBucket,
    serverAccessLogsPrefix: "vault/",
    lifecycleRules: [
      // The retention workflow decides what is deleted (docs/retention.md).
      // A version it deleted without a version id (a delete marker on top)
      // or one replaced stays until its Object Lock retention has certainly
      // ended (the lock counts from the version's creation, this from when
      // it became noncurrent), then stops costing storage.
      {
        id: "expire-noncurrent",
        noncurrentVersionExpiration: Duration.days(opts.objectLockDays + 1),
        expiredObjectDeleteMarker: true,
      },
      { id: "abort-multipart", abortIncompleteMultipartUploadAfter: Duration.days(7) },
      // What retention keeps a long time (GFS snapshots' packs and the WAL
      // they need) moves to cheaper instant-retrieval classes. One rule for
      // every database (a rule per database would cap the bucket at 1,000
      // rules, 500 databases): objects under db/ larger than 128 KiB, so
      // small objects every restore plan reads stay STANDARD (docs/deploy.md).
      ...(transitions.length === 0
        ? []
        : [{ id: "tier-bulk", prefix: "db/", objectSizeGreaterThan: TIER_MIN_OBJECT_BYTES, transitions }]),
    ],
    removalPolicy: RemovalPolicy.RETAIN,
  });
  if (transitions.length > 0) {
    Validations.of(bucket).acknowledge({
      id: "CloudFormation-Validate::W9003",
      reason: "CDK renders a lifecycle rule's ObjectSizeGreaterThan as a number; the resource schema types it a string and CloudFormation converts it",
    });
  }
  // Defence in depth: even if someone attaches more permissions to an agent
  // (a principal tagged walvault-db, or a per-database role of an older
  // deployment), the vault refuses every write, delete and unlock from it.
  // With direct WAL the one exception is creating an object under the
  // agent's own db/<tag>/wal/ with If-None-Match: * (s3:if-none-match, AWS
  // conditional writes): it can never replace or delete what is there.
  const objectWrites = ["s3:PutObjectAcl", "s3:PutObjectTagging", "s3:PutObjectVersionAcl", "s3:PutObjectVersionTagging", "s3:PutObjectRetention", "s3:PutObjectLegalHold"];
  const agentDenied = [
    ...(opts.agentWalCreates ? objectWrites : ["s3:PutObject*"]),
    "s3:DeleteObject*",
    "s3:BypassGovernanceRetention",
    "s3:RestoreObject",
    "s3:PutBucket*",
    "s3:DeleteBucket*",
    "s3:PutLifecycleConfiguration",
    "s3:PutEncryptionConfiguration",
    "s3:PutReplicationConfiguration",
  ];
  const agentDeny = (sid: string, conditions: Record<string, Record<string, string>>): iam.PolicyStatement[] => [
    new iam.PolicyStatement({
      sid,
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: agentDenied,
      resources: [bucket.bucketArn, bucket.arnForObjects("*")],
      conditions,
    }),
    ...(opts.agentWalCreates
      ? [
          // PutObject anywhere but its own WAL prefix (an untagged principal's variable resolves to nothing: denied everywhere).
          new iam.PolicyStatement({
            sid: `${sid}OutsideOwnWal`,
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: ["s3:PutObject"],
            notResources: [bucket.arnForObjects(`db/${AGENT_DB_VARIABLE}/wal/*`)],
            conditions,
          }),
          // ...and there only as a create (a missing header counts as not "*").
          new iam.PolicyStatement({
            sid: `${sid}NotCreateOnly`,
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: ["s3:PutObject"],
            resources: [bucket.arnForObjects("*")],
            conditions: { ...conditions, StringNotEquals: { "s3:if-none-match": "*" } },
          }),
        ]
      : []),
  ];
  for (const s of agentDeny("DenyAgentWrites", { ArnLike: { "aws:PrincipalArn": `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/${AGENT_ROLE_PREFIX}*` } })) bucket.addToResourcePolicy(s);
  for (const s of agentDeny("DenyTaggedAgentWrites", { Null: { [`aws:PrincipalTag/${AGENT_DB_TAG}`]: "false" } })) bucket.addToResourcePolicy(s);
  return bucket;
}
