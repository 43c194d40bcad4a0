/**
 * The walvault stacks of one app: `WalvaultPrimary` (walvault-primary) and
 * one `WalvaultReplica-<region>` (walvault-replica-<region>) per replica
 * region, holding that region's vault bucket and key. The primary stack
 * depends on every replica stack, so `cdk deploy WalvaultPrimary` (or
 * `--all`) deploys the replica vaults first and the workflows never copy into
 * a bucket that does not exist yet. infra/app.ts builds the app with this;
 * test/infra builds the same wiring.
 */
import type { Construct } from "constructs";
import { PrimaryStack, type WalvaultSettings } from "./primary-stack.js";
import { ReplicaVaultStack } from "./replica-stack.js";

export interface WalvaultStacks {
  readonly primary: PrimaryStack;
  /** One per replica region, in the order of the settings. */
  readonly replicas: readonly ReplicaVaultStack[];
}

export interface WalvaultEnvironment {
  /** @default unknown (environment-agnostic) */
  readonly account?: string;
  /** The primary region; needed (not a token) when replica regions are configured. @default unknown */
  readonly region?: string;
}

export function addWalvaultStacks(
  scope: Construct,
  settings: WalvaultSettings,
  env: WalvaultEnvironment = {},
  opts: { readonly projectRoot?: string } = {},
): WalvaultStacks {
  const replicas = (settings.replicas ?? []).map(
    (r) =>
      new ReplicaVaultStack(scope, `WalvaultReplica-${r.region}`, {
        stackName: `walvault-replica-${r.region}`,
        description: `walvault replica region ${r.region}: the replica vault bucket and its key`,
        env: { account: env.account, region: r.region },
        ...(r.bucket === undefined ? {} : { bucketName: r.bucket }),
        ...(settings.objectLockMode === undefined ? {} : { objectLockMode: settings.objectLockMode }),
        ...(settings.objectLockDays === undefined ? {} : { objectLockDays: settings.objectLockDays }),
        ...(settings.lifecycle === undefined ? {} : { lifecycle: settings.lifecycle }),
      }),
  );
  const primary = new PrimaryStack(scope, "WalvaultPrimary", {
    stackName: "walvault-primary",
    description: "walvault primary region: incoming and vault buckets, catalog, ingest, snapshot, restore, replicate, verify and retention workflows, agent policy",
    env: { account: env.account, region: env.region },
    ...settings,
    ...(opts.projectRoot === undefined ? {} : { projectRoot: opts.projectRoot }),
  });
  for (const replica of replicas) {
    primary.addStackDependency(replica, `the replicate functions copy into the vault in ${replica.region}`);
  }
  return { primary, replicas };
}
