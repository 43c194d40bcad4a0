/**
 * A walvault replica region: one stack per region in
 * `walvault:replicaRegions`, deployed into that region. It holds the region's
 * vault bucket, with the primary vault's protections (infra/vault.ts:
 * versioning, Object Lock with the same mode and days, SSE-KMS with this
 * region's own key, TLS only, public access blocked, server access logs, and
 * the bucket policy that denies agents every write, delete and unlock).
 *
 * The primary stack's replicate functions write into this bucket by name
 * (`walvault-vault-<account>-<region>` unless configured) and use its key
 * only through S3 in this region; the catalog's replica in this region is part
 * of the primary stack's global table. Deploy these stacks before the primary
 * (infra/app.ts makes the primary depend on them).
 */
import { CfnOutput, RemovalPolicy, Stack, type StackProps, Token } from "aws-cdk-lib";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as s3 from "aws-cdk-lib/aws-s3";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import {
  checkObjectLockDays,
  createAccessLogsBucket,
  createVaultBucket,
  defaultReplicaBucketName,
  type ObjectLockMode,
  REGION_RE,
  type VaultLifecycle,
} from "./vault.js";

export interface ReplicaVaultStackProps extends StackProps {
  /**
   * The replica vault bucket's name; must match what the primary stack's
   * WALVAULT_REPLICAS names for this region.
   * @default `walvault-vault-<account>-<region>`
   */
  readonly bucketName?: string;
  /** The primary vault's Object Lock mode. @default "GOVERNANCE" */
  readonly objectLockMode?: ObjectLockMode;
  /** The primary vault's default retention in days. @default 7 */
  readonly objectLockDays?: number;
  /** The primary vault's storage class transitions. @default infra/vault.ts DEFAULT_VAULT_LIFECYCLE */
  readonly lifecycle?: VaultLifecycle;
}

export class ReplicaVaultStack extends Stack {
  /** This region's vault key (rotated, retained). */
  public readonly vaultKey: kms.Key;
  /** This region's vault bucket. */
  public readonly vaultBucket: s3.Bucket;
  /** S3 server access logs of the vault bucket. */
  public readonly accessLogsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ReplicaVaultStackProps) {
    super(scope, id, props);
    if (Token.isUnresolved(this.region) || !REGION_RE.test(this.region)) {
      throw new Error(`a replica vault stack needs a concrete region in env.region, got '${this.region}'`);
    }
    const lockDays = props.objectLockDays ?? 7;
    checkObjectLockDays(lockDays);

    this.vaultKey = new kms.Key(this, "VaultKey", {
      description: `walvault: encrypts the replica vault bucket in ${this.region} (SSE-KMS)`,
      alias: `alias/${this.stackName}/vault`,
      enableKeyRotation: true,
      // Losing the key loses every replicated backup: never deleted with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.accessLogsBucket = createAccessLogsBucket(this, "AccessLogsBucket");
    this.vaultBucket = createVaultBucket(this, "VaultBucket", {
      bucketName: props.bucketName ?? defaultReplicaBucketName(this.region),
      key: this.vaultKey,
      accessLogsBucket: this.accessLogsBucket,
      objectLockMode: props.objectLockMode ?? "GOVERNANCE",
      objectLockDays: lockDays,
      ...(props.lifecycle === undefined ? {} : { lifecycle: props.lifecycle }),
    });

    new CfnOutput(this, "ReplicaVaultBucketName", { value: this.vaultBucket.bucketName, description: `The vault in ${this.region}` });
    new CfnOutput(this, "ReplicaVaultBucketArn", { value: this.vaultBucket.bucketArn });
    new CfnOutput(this, "ReplicaVaultKeyArn", { value: this.vaultKey.keyArn, description: `The key of the vault in ${this.region}` });
    new CfnOutput(this, "ReplicaAccessLogsBucketName", { value: this.accessLogsBucket.bucketName });

    NagSuppressions.addResourceSuppressions(this.accessLogsBucket, [
      { id: "AwsSolutions-S1", reason: "This is the server access log bucket itself; logging it would log its own log deliveries." },
    ]);
  }
}
