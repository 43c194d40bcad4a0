/**
 * The walvault CDK app (cdk.json runs the compiled dist/infra/app.js).
 *
 * Settings come from CDK context (cdk.json or `-c key=value`):
 *   walvault:databases          database ids, each gets an agent role   ["pg-main"]
 *   walvault:replicaRegions     replica regions (or {"region","bucket"}) []
 *   walvault:objectLockMode     GOVERNANCE | COMPLIANCE                  GOVERNANCE
 *   walvault:objectLockDays     default vault retention in days          7
 *   walvault:agentPrincipalArns who may assume the agent roles           [] (the account)
 * Every stack is checked with cdk-nag's AWS Solutions rules at synth time.
 */
import { App, Aspects, Tags } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { PrimaryStack, walvaultSettingsFromContext } from "./primary-stack.js";

const app = new App();

new PrimaryStack(app, "WalvaultPrimary", {
  stackName: "walvault-primary",
  description: "walvault primary region: incoming and vault buckets, catalog, ingest workflow, agent roles",
  // Environment-agnostic unless the CLI knows the account/region (it does on
  // `cdk deploy` with credentials; `cdk synth` offline works without).
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  ...walvaultSettingsFromContext(app.node),
});

Tags.of(app).add("project", "walvault");
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
