/**
 * The walvault CDK app (cdk.json runs the compiled dist/infra/app.js).
 *
 * Settings come from CDK context (cdk.json or `-c key=value`):
 *   walvault:databases          deprecated: read only with the next one  []
 *   walvault:agentRolesPerDatabase  deprecated (migration): walvault-agent-<id> roles  false
 *   walvault:replicaRegions     replica regions (or {"region","bucket"}) []
 *   walvault:objectLockMode     GOVERNANCE | COMPLIANCE                  GOVERNANCE
 *   walvault:objectLockDays     default vault retention in days          7
 *   walvault:agentPrincipalArns who may assume those per-database roles  [] (the account)
 *   walvault:verifySchedule     when the verify workflow runs            rate(1 day)
 *   walvault:verifyImage        ECR image URI of the verification task   built from tasks/verify/Dockerfile
 *   walvault:verifyEphemeralStorageGiB  the task's scratch space (21-200)   100
 *   walvault:verifyChecks       user checks (task WALVAULT_VERIFY_CHECKS) none
 *   walvault:verifyPolicy       selection policy overrides (JSON)        core/verify-policy.ts defaults
 *   walvault:retentionSchedule  when the retention workflow runs         rate(1 day)
 *   walvault:retentionGraceHours  unreferenced chunks younger are kept   24
 *   walvault:lifecycleInfrequentAccessDays  db/ objects > 128 KiB to STANDARD_IA  30 (0: never)
 *   walvault:lifecycleGlacierIrDays         db/ objects > 128 KiB to GLACIER_IR   90 (0: never)
 *
 * Stacks (infra/walvault-app.ts): `WalvaultPrimary` in the CLI's region and
 * one `WalvaultReplica-<region>` per replica region; the primary depends on
 * the replica stacks, so they deploy first.
 * Every stack is checked with cdk-nag's AWS Solutions rules at synth time.
 */
import { App, Aspects, Tags } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { walvaultSettingsFromContext } from "./primary-stack.js";
import { addWalvaultStacks } from "./walvault-app.js";

const app = new App();

// Environment-agnostic unless the CLI knows the account/region (it does on
// `cdk deploy` with credentials; `cdk synth` offline works without). Replica
// regions need the primary's region: the CLI passes its default region
// (AWS_REGION, the profile's region, else us-east-1) as CDK_DEFAULT_REGION.
addWalvaultStacks(app, walvaultSettingsFromContext(app.node), {
  account: process.env.CDK_DEFAULT_ACCOUNT,
  region: process.env.CDK_DEFAULT_REGION,
});

Tags.of(app).add("project", "walvault");
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
