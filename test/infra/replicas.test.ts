/**
 * Replica regions as CloudFormation sees them: the app wiring of
 * infra/walvault-app.ts (as infra/app.ts builds it) with two replica regions
 * and a 30-day COMPLIANCE lock: one ReplicaVaultStack per region, the catalog
 * global table's replicas, the replicate workflow and the ingest workflows'
 * replica steps, who may write the replica vaults, and cdk-nag on every stack.
 * Synthesized once, without bundling the handlers (cfn.ts NO_BUNDLING).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Aspects, type Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { aslPlaceholders } from "../../infra/asl.js";
import { findProjectRoot, PrimaryStack, REPLICATE_STEP_SOURCES, REPLICATE_STEPS } from "../../infra/primary-stack.js";
import { ReplicaVaultStack } from "../../infra/replica-stack.js";
import { addWalvaultStacks, type WalvaultStacks } from "../../infra/walvault-app.js";
import { type CfnResource, deployedDefinition, list, logicalId, NO_BUNDLING, render, roleStatements, type Statement } from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };
const REGIONS = ["eu-west-1", "us-west-2"] as const;
const replicaBucketName = (region: string): string => `walvault-vault-<AWS::AccountId>-${region}`;
const replicaBucketArn = (region: string): string => `arn:<AWS::Partition>:s3:::${replicaBucketName(region)}`;

let assembly: CloudAssembly;
let stacks: WalvaultStacks;
let primary: PrimaryStack;
let primaryTemplate: Template;
const replicaTemplates = new Map<string, { stack: ReplicaVaultStack; template: Template }>();

beforeAll(() => {
  // Prepare: the app's wiring, with cdk.json's feature flags and the cdk-nag checks.
  const app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING, "@aws-cdk/core:annotationsInValidationReport": false } });
  stacks = addWalvaultStacks(
    app,
    {
      databases: ["pg-main"],
      replicas: REGIONS.map((region) => ({ region })),
      objectLockMode: "COMPLIANCE",
      objectLockDays: 30,
    },
    { account: "123456789012", region: "us-east-1" },
  );
  primary = stacks.primary;
  Aspects.of(app).add(new AwsSolutionsChecks());
  // Act: synthesize once.
  assembly = app.synth();
  primaryTemplate = Template.fromStack(primary);
  for (const stack of stacks.replicas) replicaTemplates.set(stack.region, { stack, template: Template.fromStack(stack) });
});

describe("app wiring", () => {
  it("has one replica vault stack per replica region, deployed before the primary", () => {
    // Act
    const regions = stacks.replicas.map((s) => s.region);
    // Assess
    expect(regions).toEqual([...REGIONS]);
    expect(stacks.replicas.map((s) => s.stackName)).toEqual(REGIONS.map((r) => `walvault-replica-${r}`));
    expect(primary.dependencies.map((s) => s.stackName).sort()).toEqual(REGIONS.map((r) => `walvault-replica-${r}`).sort());
    expect(primary.replicaTargets.map((r) => r.region)).toEqual([...REGIONS]);
  });

  it("refuses replica regions while the primary's region is unknown", () => {
    // Prepare
    const app = new App({ context: cdkJson.context });
    // Act: a region-agnostic primary (no CLI region) cannot home a global table;
    // it fails before bundling anything.
    const act = (): unknown =>
      addWalvaultStacks(app, { databases: ["pg-main"], replicas: [{ region: "eu-west-1" }] }, { account: "123456789012" });
    // Assess
    expect(act).toThrow(/replica regions need the primary stack's region/);
  });
});

describe("replica vault stacks", () => {
  it("each hold a versioned, Object-Locked (same mode and days), SSE-KMS bucket named walvault-vault-<account>-<region>, public access blocked, logged, retained", () => {
    for (const region of REGIONS) {
      // Prepare
      const { stack, template } = replicaTemplates.get(region)!;
      const keyId = logicalId(stack, stack.vaultKey);
      // Act
      const bucket = template.toJSON().Resources[logicalId(stack, stack.vaultBucket)] as CfnResource;
      // Assess
      expect(bucket.DeletionPolicy).toBe("Retain");
      expect(render(bucket.Properties?.BucketName)).toBe(replicaBucketName(region));
      expect(bucket.Properties).toMatchObject({
        ObjectLockEnabled: true,
        ObjectLockConfiguration: { ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: "COMPLIANCE", Days: 30 } } },
        VersioningConfiguration: { Status: "Enabled" },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: { "Fn::GetAtt": [keyId, "Arn"] } } },
          ],
        },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] },
        LoggingConfiguration: { DestinationBucketName: { Ref: logicalId(stack, stack.accessLogsBucket) } },
      });
      const key = template.toJSON().Resources[keyId] as CfnResource;
      expect(key.Properties).toMatchObject({ EnableKeyRotation: true });
      expect(key.DeletionPolicy).toBe("Retain");
      template.hasResourceProperties("AWS::KMS::Alias", { AliasName: `alias/walvault-replica-${region}/vault` });
    }
  });

  it("each deny every request without TLS and every write, delete or unlock from an agent (tagged walvault-db, or a walvault-agent-* role)", () => {
    for (const region of REGIONS) {
      // Prepare
      const { stack, template } = replicaTemplates.get(region)!;
      // Act
      const policies = template.findResources("AWS::S3::BucketPolicy", { Properties: { Bucket: { Ref: logicalId(stack, stack.vaultBucket) } } });
      const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
      // Assess
      expect(statements).toContainEqual(
        expect.objectContaining({ Effect: "Deny", Action: "s3:*", Principal: { AWS: "*" }, Condition: { Bool: { "aws:SecureTransport": "false" } } }),
      );
      const agentDeny = statements.find((s) => s.Sid === "DenyAgentWrites");
      expect(agentDeny?.Effect).toBe("Deny");
      expect(list(agentDeny?.Action)).toEqual(
        expect.arrayContaining(["s3:PutObject*", "s3:DeleteObject*", "s3:BypassGovernanceRetention", "s3:PutBucket*"]),
      );
      expect(render(agentDeny?.Condition?.ArnLike?.["aws:PrincipalArn"])).toBe("arn:<AWS::Partition>:iam::<AWS::AccountId>:role/walvault-agent-*");
      const taggedDeny = statements.find((s) => s.Sid === "DenyTaggedAgentWrites");
      expect(taggedDeny).toMatchObject({ Effect: "Deny", Principal: { AWS: "*" }, Action: agentDeny?.Action, Resource: agentDeny?.Resource });
      expect(taggedDeny?.Condition).toEqual({ Null: { "aws:PrincipalTag/walvault-db": "false" } });
    }
  });

  it("each output the bucket and key ARNs", () => {
    for (const region of REGIONS) {
      // Prepare
      const { stack, template } = replicaTemplates.get(region)!;
      // Act
      const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
      // Assess
      expect(outputs.ReplicaVaultBucketArn?.Value).toEqual({ "Fn::GetAtt": [logicalId(stack, stack.vaultBucket), "Arn"] });
      expect(outputs.ReplicaVaultKeyArn?.Value).toEqual({ "Fn::GetAtt": [logicalId(stack, stack.vaultKey), "Arn"] });
      expect(outputs.ReplicaVaultBucketName?.Value).toEqual({ Ref: logicalId(stack, stack.vaultBucket) });
    }
  });

  it("use the configured bucket name when the replica entry names one", () => {
    // Prepare
    const app = new App({ context: cdkJson.context });
    // Act
    const stack = new ReplicaVaultStack(app, "Named", { env: { region: "eu-central-1" }, bucketName: "acme-walvault-fra" });
    const bucket = Template.fromStack(stack).toJSON().Resources[logicalId(stack, stack.vaultBucket)] as CfnResource;
    // Assess
    expect(bucket.Properties?.BucketName).toBe("acme-walvault-fra");
    expect(bucket.Properties).toMatchObject({ ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 7 } } } });
  });

  it("refuse a stack without a concrete region", () => {
    // Prepare
    const app = new App();
    // Act + Assess
    expect(() => new ReplicaVaultStack(app, "Agnostic", {})).toThrow(/needs a concrete region/);
  });
});

describe("catalog global table", () => {
  it("has a replica in the primary region and in both replica regions", () => {
    // Act
    const table = primaryTemplate.toJSON().Resources[logicalId(primary, primary.catalog)] as CfnResource;
    const replicas = table.Properties?.Replicas as { Region: string }[];
    // Assess
    expect(table.Type).toBe("AWS::DynamoDB::GlobalTable");
    expect(replicas.map((r) => r.Region).sort()).toEqual(["eu-west-1", "us-east-1", "us-west-2"]);
  });
});

describe("replicate workflow", () => {
  const machineOf = (): CfnResource => primaryTemplate.toJSON().Resources[logicalId(primary, primary.replicateStateMachine)] as CfnResource;

  it("is a Standard state machine, logging all events and traced with X-Ray, with its ARN as an output", () => {
    // Prepare
    const logsId = logicalId(primary, primary.node.findChild("ReplicateWorkflowLogs"));
    // Act
    const machine = machineOf();
    const outputs = primaryTemplate.toJSON().Outputs as Record<string, { Value: unknown }>;
    // Assess
    expect(machine.Properties).toMatchObject({
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: "ALL", Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { "Fn::GetAtt": [logsId, "Arn"] } } }] },
    });
    expect(outputs.ReplicateStateMachineArn?.Value).toEqual({ Ref: logicalId(primary, primary.replicateStateMachine) });
  });

  it("references the three replicate functions and may invoke exactly them", () => {
    // Prepare
    const fnArn = (step: (typeof REPLICATE_STEPS)[number]): string => `<${logicalId(primary, primary.replicateFunctions[step])}.Arn>`;
    // Act
    const definition = deployedDefinition(machineOf(), assembly.directory);
    const parsed = JSON.parse(definition) as {
      States: Record<string, { Resource?: string; ItemProcessor?: { States: Record<string, { Resource?: string }> } }>;
    };
    const invoke = roleStatements(primaryTemplate, logicalId(primary, primary.replicateStateMachine.role)).filter((s) =>
      list(s.Action).includes("lambda:InvokeFunction"),
    );
    // Assess
    expect(aslPlaceholders(primary.replicateAslFile)).toEqual(REPLICATE_STEPS.map((s) => REPLICATE_STEP_SOURCES[s].placeholder).sort());
    expect(parsed.States.FindMissing?.Resource).toBe(fnArn("findMissing"));
    expect(parsed.States.CopyItems?.ItemProcessor?.States.CopyItem?.Resource).toBe(fnArn("copyItem"));
    expect(parsed.States.CopyItems?.ItemProcessor?.States.RecordFailure?.Resource).toBe(fnArn("recordFailure"));
    expect(invoke).toHaveLength(1);
    expect(list(invoke[0]!.Resource).map(render).sort()).toEqual(REPLICATE_STEPS.map(fnArn).sort());
  });

  it("leaves no ${...} placeholder in any state machine definition", () => {
    // Prepare
    const machines = Object.values(primaryTemplate.findResources("AWS::StepFunctions::StateMachine")) as CfnResource[];
    // Act
    const definitions = machines.map((m) => deployedDefinition(m, assembly.directory));
    // Assess
    expect(machines).toHaveLength(9); // ingest, wal-record, snapshot ingest, pack ingest, restore, replicate, verify, retention, rpo-watch
    for (const definition of definitions) {
      expect(definition).not.toMatch(/\$\{/);
      expect(() => JSON.parse(definition) as unknown).not.toThrow();
    }
  });

  it("gives the replicate functions the walvault environment naming both replica vaults", () => {
    for (const step of REPLICATE_STEPS) {
      // Act
      const fn = primaryTemplate.toJSON().Resources[logicalId(primary, primary.replicateFunctions[step])] as CfnResource;
      const vars = (fn.Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
      // Assess
      expect(fn.Properties).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"], TracingConfig: { Mode: "Active" } });
      expect(vars.WALVAULT_VAULT_BUCKET).toEqual({ Ref: logicalId(primary, primary.vaultBucket) });
      expect(vars.WALVAULT_TABLE).toEqual({ Ref: logicalId(primary, primary.catalog) });
      expect(vars.WALVAULT_INCOMING_BUCKET).toEqual({ Ref: logicalId(primary, primary.incomingBucket) });
      expect(JSON.parse(render(vars.WALVAULT_REPLICAS).replaceAll("<AWS::AccountId>", "123456789012"))).toEqual(
        REGIONS.map((region) => ({ region, bucket: `walvault-vault-123456789012-${region}` })),
      );
    }
  });
});

describe("replica vault access", () => {
  /** Every (role, action, resource) of the primary stack's roles whose resource is in a replica vault. */
  const replicaAccess = (): { roleId: string; action: string; resource: string; statement: Statement }[] => {
    const resources = primaryTemplate.toJSON().Resources as Record<string, CfnResource>;
    const roleIds = Object.entries(resources)
      .filter(([, r]) => r.Type === "AWS::IAM::Role")
      .map(([id]) => id);
    return roleIds.flatMap((roleId) =>
      roleStatements(primaryTemplate, roleId).flatMap((statement) =>
        list(statement.Action).flatMap((action) =>
          list(statement.Resource)
            .map(render)
            .filter((resource) => REGIONS.some((region) => resource.startsWith(replicaBucketArn(region))) || resource === "*")
            .map((resource) => ({ roleId, action, resource, statement })),
        ),
      ),
    );
  };

  it("lets only copyItem and the ingest replicate step write the replica vaults, under db/* of both, and retention put repacked packs", () => {
    // Prepare
    const copyItemRole = logicalId(primary, primary.replicateFunctions.copyItem.role!);
    const ingestReplicateRole = logicalId(primary, primary.functions.replicate.role!);
    const retentionRole = logicalId(primary, primary.retention.functions.execute.role!);
    // Act
    const writes = replicaAccess().filter((a) => /^s3:(PutObject|\*)/.test(a.action) || a.action === "*");
    const byRole = new Map<string, string[]>();
    for (const w of writes) byRole.set(w.roleId, [...(byRole.get(w.roleId) ?? []), w.resource]);
    // Assess
    expect([...byRole.keys()].sort()).toEqual([copyItemRole, ingestReplicateRole, retentionRole].sort());
    for (const role of [copyItemRole, ingestReplicateRole]) {
      expect(byRole.get(role)!.sort()).toEqual(REGIONS.map((r) => `${replicaBucketArn(r)}/db/*`).sort());
    }
    // Repack (store/repack.ts) writes the new packs to every region's vault: packs only.
    expect(byRole.get(retentionRole)!.sort()).toEqual(REGIONS.map((r) => `${replicaBucketArn(r)}/db/*/packs/*`).sort());
    for (const w of writes) expect(w.action).toBe("s3:PutObject");
  });

  it("lets only the retention execute step delete in a replica vault (under db/*), and nothing unlock or change one", () => {
    const retentionRole = logicalId(primary, primary.retention.functions.execute.role!);
    const deletes: string[] = [];
    for (const a of replicaAccess()) {
      if (!a.resource.startsWith("arn:")) continue;
      if (a.roleId === retentionRole && a.action === "s3:PutObject") {
        expect(a.resource, "retention writes only repacked packs to a replica").toMatch(/\/db\/\*\/packs\/\*$/);
      } else if (a.roleId === retentionRole) {
        expect(a.action, `${a.roleId}: ${a.action} on ${a.resource}`).toMatch(/^s3:(DeleteObject|DeleteObjectVersion)$/);
        deletes.push(a.resource);
      } else {
        expect(a.action, `${a.roleId}: ${a.action} on ${a.resource}`).toMatch(/^s3:(PutObject|GetObject|GetObjectVersion|ListBucket)$/);
      }
    }
    expect([...new Set(deletes)].sort()).toEqual(REGIONS.map((r) => `${replicaBucketArn(r)}/db/*`).sort());
  });

  it("lets copyItem read the primary vault and use each replica key only through S3 in its region, for its vault", () => {
    // Prepare
    const statements = roleStatements(primaryTemplate, logicalId(primary, primary.replicateFunctions.copyItem.role!));
    // Act
    const kms = statements.filter((s) => list(s.Action).some((a) => a.startsWith("kms:")));
    const s3 = statements.filter((s) => list(s.Action).some((a) => a.startsWith("s3:")));
    // Assess
    for (const region of REGIONS) {
      const st = kms.find((s) => list(s.Resource).map(render).includes(`arn:<AWS::Partition>:kms:${region}:<AWS::AccountId>:key/*`));
      expect(st, `key statement for ${region}`).toBeDefined();
      expect(list(st!.Action).sort()).toEqual(["kms:Decrypt", "kms:GenerateDataKey"]);
      expect(list(st!.Resource)).toHaveLength(1);
      expect(st!.Condition?.StringEquals?.["kms:ViaService"]).toBe(`s3.${region}.amazonaws.com`);
      expect(list(st!.Condition?.StringLike?.["kms:EncryptionContext:aws:s3:arn"]).map(render)).toEqual([
        replicaBucketArn(region),
        `${replicaBucketArn(region)}/db/*`,
      ]);
    }
    expect(kms.filter((s) => list(s.Resource).map(render).includes(`<${logicalId(primary, primary.vaultKey)}.Arn>`)).flatMap((s) => list(s.Action))).toEqual([
      "kms:Decrypt",
    ]);
    const vault = `<${logicalId(primary, primary.vaultBucket)}.Arn>`;
    const onVault = s3.flatMap((s) => list(s.Resource).map(render).filter((r) => r.startsWith(vault)).flatMap(() => list(s.Action)));
    expect([...new Set(onVault)].sort()).toEqual(["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"]);
  });

  it("gives findMissing and recordFailure the catalog calls they make, and nothing in S3 or KMS; findMissing Queries the indexes only", () => {
    // Act
    const actions = (step: "findMissing" | "recordFailure"): string[] =>
      roleStatements(primaryTemplate, logicalId(primary, primary.replicateFunctions[step].role!))
        .flatMap((s) => list(s.Action))
        .filter((a) => /^(s3|kms|dynamodb):/.test(a))
        .sort();
    // Assess
    expect(actions("findMissing")).toEqual(["dynamodb:Query"]);
    const catalogArn = `<${logicalId(primary, primary.catalog)}.Arn>`;
    const findMissingResources = roleStatements(primaryTemplate, logicalId(primary, primary.replicateFunctions.findMissing.role!))
      .filter((s) => list(s.Action).some((a) => a.startsWith("dynamodb:")))
      .flatMap((s) => list(s.Resource).map(render));
    expect(findMissingResources).toEqual([`${catalogArn}/index/*`]);
    expect(actions("recordFailure")).toEqual(["dynamodb:GetItem", "dynamodb:UpdateItem"]);
  });
});

describe("cdk-nag AWS Solutions checks", () => {
  it("leave no unsuppressed errors or warnings in the primary or a replica stack", () => {
    for (const stack of [primary, ...stacks.replicas] as Stack[]) {
      // Act
      const annotations = Annotations.fromStack(stack);
      const errors = annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      const warnings = annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      // Assess
      expect(errors.map((e) => `${stack.stackName} ${e.id}: ${String(e.entry.data)}`)).toEqual([]);
      expect(warnings.map((w) => `${stack.stackName} ${w.id}: ${String(w.entry.data)}`)).toEqual([]);
    }
  });
});
