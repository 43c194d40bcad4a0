/**
 * The primary stack as CloudFormation sees it: the agent policy's boundaries,
 * the vault's protections, the catalog, the WAL and snapshot ingest workflows
 * and their triggers, and cdk-nag. Two stacks are synthesized once each,
 * without bundling the handlers (cfn.ts NO_BUNDLING): "Default" exactly as
 * `cdk synth` builds it from cdk.json, and "Multi" with two databases kept
 * as deprecated per-database roles, a replica region and a named agent
 * principal. The bundles themselves are
 * tested on the real app synthesized in a child process (synthBundledApp).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Aspects, type CfnElement } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import type { IConstruct } from "constructs";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { aslPlaceholders } from "../../infra/asl.js";
import { WORKFLOW_DEFINITIONS, functionOf, stepsOf, type StepDefinition, type WorkflowId } from "../../core/workflows.js";
import { GENERIC_WAL_INDEX } from "../../store/catalog-layout.js";
import { genericWalIndexDefinition, replicaIndexDefinition } from "../../store/dynamo-catalog.js";
import {
  findProjectRoot,
  INGEST_STEPS,
  PrimaryStack,
  REPLICATE_STEP_SOURCES,
  REPLICATE_STEPS,
  RESTORE_STEP_SOURCES,
  RESTORE_STEPS,
  SNAPSHOT_MANIFEST_KEY_PATTERN,
  PACK_UPLOAD_KEY_PATTERN,
  SNAPSHOT_STEP_SOURCES,
  SNAPSHOT_STEPS,
  WAL_UPLOAD_KEY_PATTERN,
  walvaultSettingsFromContext,
} from "../../infra/primary-stack.js";
import { matchesWildcard, WORKFLOWS } from "../../local/stack.js";
import {
  type CfnResource,
  deployedDefinition as deployedDefinitionIn,
  list,
  logicalId as cfnLogicalId,
  bundledHandlerOutcomes,
  NO_BUNDLING,
  render,
  roleStatements,
  type Statement,
  synthBundledApp,
} from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };

const logicalId = (stack: PrimaryStack, construct: IConstruct): string => cfnLogicalId(stack, construct);

/** Every Allow statement of every Lambda role of the stack, by step. */
function functionStatements(stack: PrimaryStack, template: Template): Record<string, Statement[]> {
  return Object.fromEntries(
    INGEST_STEPS.map((step) => [step, roleStatements(template, logicalId(stack, stack.functions[step].role!))]),
  );
}

/** The same for the snapshot ingest functions, by step, or by shared function (core/workflows.ts SHARED_FUNCTIONS) for the steps that share one. */
function snapshotFunctionStatements(stack: PrimaryStack, template: Template): Record<string, Statement[]> {
  return Object.fromEntries(
    SNAPSHOT_STEPS.map((step) => [stepsOf("snapshot-ingest")[step].fn ?? step, roleStatements(template, logicalId(stack, stack.snapshotFunctions[step].role!))]),
  );
}

/** The definition CloudFormation will deploy for a state machine of this test's assembly. */
const deployedDefinition = (machine: CfnResource): string => deployedDefinitionIn(machine, assembly.directory);

let app: App;
let assembly: CloudAssembly;
let defaultStack: PrimaryStack;
let multiStack: PrimaryStack;
let defaultTemplate: Template;
let multiTemplate: Template;

beforeAll(() => {
  // Prepare: one app holding both stacks, with cdk.json's context (feature flags
  // and walvault settings) and the cdk-nag AWS Solutions checks, as in app.ts.
  // cdk.json turns error annotations into a synth failure; here they stay
  // annotations so that the cdk-nag test below names each finding.
  app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING, "@aws-cdk/core:annotationsInValidationReport": false } });
  defaultStack = new PrimaryStack(app, "Default", walvaultSettingsFromContext(app.node));
  multiStack = new PrimaryStack(app, "Multi", {
    env: { account: "123456789012", region: "eu-west-1" },
    databases: ["pg-main", "orders-db"],
    agentRolesPerDatabase: true,
    replicas: [{ region: "eu-central-1" }],
    agentPrincipalArns: ["arn:aws:iam::123456789012:role/db-host"],
  });
  Aspects.of(app).add(new AwsSolutionsChecks());
  // Act: synthesize once.
  assembly = app.synth();
  defaultTemplate = Template.fromStack(defaultStack);
  multiTemplate = Template.fromStack(multiStack);
});

describe("settings from context", () => {
  it("reads database ids and replicas passed as JSON strings on the command line", () => {
    // Prepare
    const cli = new App({
      context: {
        "walvault:databases": '["pg-main","orders-db"]',
        "walvault:agentRolesPerDatabase": "true",
        "walvault:replicaRegions": '[{"region":"eu-central-1","bucket":"my-replica"},"us-west-2"]',
        "walvault:objectLockDays": "30",
        "walvault:objectLockMode": "compliance",
      },
    });
    // Act
    const settings = walvaultSettingsFromContext(cli.node);
    // Assess
    expect(settings.databases).toEqual(["pg-main", "orders-db"]);
    expect(settings.agentRolesPerDatabase).toBe(true);
    expect(settings.replicas).toEqual([{ region: "eu-central-1", bucket: "my-replica" }, { region: "us-west-2" }]);
    expect(settings.objectLockDays).toBe(30);
    expect(settings.objectLockMode).toBe("COMPLIANCE");
  });

  it("defaults to no database list, no per-database roles, no replicas and a 7-day GOVERNANCE lock", () => {
    // Prepare
    const bare = new App();
    // Act
    const settings = walvaultSettingsFromContext(bare.node);
    // Assess
    expect(settings).toMatchObject({ databases: [], agentRolesPerDatabase: false, replicas: [], objectLockMode: "GOVERNANCE", objectLockDays: 7 });
  });
});

describe("agent policy", () => {
  const TAG = "${aws:PrincipalTag/walvault-db}";
  const cases = () => [
    { stack: defaultStack, template: defaultTemplate },
    { stack: multiStack, template: multiTemplate },
  ];
  const policyStatements = (stack: PrimaryStack, template: Template): Statement[] => {
    const policy = template.toJSON().Resources[logicalId(stack, stack.agentPolicy)] as CfnResource;
    return (policy.Properties?.PolicyDocument as { Statement: Statement[] }).Statement;
  };

  it("is one managed policy, whose ARN is the stack's only agent output", () => {
    for (const { stack, template } of cases()) {
      // Act
      const policies = template.findResources("AWS::IAM::ManagedPolicy");
      const outputs = Object.keys(template.toJSON().Outputs as Record<string, unknown>);
      // Assess
      expect(Object.keys(policies)).toContain(logicalId(stack, stack.agentPolicy));
      expect(render((template.toJSON().Outputs as Record<string, { Value: unknown }>).AgentPolicyArn?.Value)).toBe(`<${logicalId(stack, stack.agentPolicy)}>`);
      expect(outputs.filter((o) => /^Agent/.test(o))).toEqual(["AgentPolicyArn"]);
    }
  });

  it("requires the walvault-db principal tag in every statement and names it in each one's resources or conditions (but starting wal-record)", () => {
    for (const { stack, template } of cases()) {
      // Act
      const statements = policyStatements(stack, template);
      // Assess
      expect(statements.length).toBeGreaterThan(0);
      for (const s of statements) {
        expect(s.Effect, s.Sid).toBe("Allow");
        expect(s.Condition?.Null, s.Sid).toEqual({ "aws:PrincipalTag/walvault-db": "false" });
        // A state machine has no per-database resource: wal-record checks the key it is given against the database named.
        if (s.Sid === "StartWalRecord") continue;
        const scoped = [...list(s.Resource).map(render), render(s.Condition?.StringLike ?? ""), JSON.stringify(s.Condition?.["ForAllValues:StringEquals"] ?? "")];
        expect(scoped.some((x) => x.includes(TAG)), `${s.Sid} names ${TAG}`).toBe(true);
      }
    }
  });

  it("reaches S3 only under the tagged database's incoming/db/<id>/, failed/incoming/db/<id>/, work/restore/<id>/ and db/<id>/ prefixes, writing only to incoming and db/<id>/wal/", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const incoming = `<${logicalId(stack, stack.incomingBucket)}.Arn>`;
      const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
      const statements = policyStatements(stack, template);
      // Act
      const s3 = statements.flatMap((s) =>
        list(s.Action)
          .filter((a) => a.startsWith("s3:"))
          .flatMap((action) => list(s.Resource).map((r) => `${action} ${render(r)}`)),
      );
      // Assess
      expect(s3.sort()).toEqual(
        [
          `s3:GetObject ${incoming}/failed/incoming/db/${TAG}/*`,
          `s3:GetObject ${incoming}/work/restore/${TAG}/*`,
          `s3:GetObject ${vault}/db/${TAG}/*`,
          `s3:PutObject ${incoming}/incoming/db/${TAG}/*`,
          `s3:PutObject ${vault}/db/${TAG}/wal/*`,
        ].sort(),
      );
    }
  });

  it("can delete nothing, unlock nothing and use no wildcard actions or other services", () => {
    for (const { stack, template } of cases()) {
      // Act
      const actions = policyStatements(stack, template).flatMap((s) => list(s.Action));
      // Assess
      for (const action of actions) {
        expect(action).not.toMatch(/Delete|Retention|LegalHold|Bypass|PutBucket|Restore|\*/i);
        expect(action.split(":")[0]).toMatch(/^(s3|kms|dynamodb|states)$/);
      }
      expect(new Set(actions)).toEqual(
        new Set(["s3:PutObject", "s3:GetObject", "kms:Decrypt", "kms:GenerateDataKey", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem", "states:StartExecution", "states:StartSyncExecution"]),
      );
    }
  });

  it("decrypts only through S3, only for the vault and the tagged database's objects", () => {
    for (const { stack, template } of cases()) {
      // Act
      const kms = policyStatements(stack, template).filter((s) => list(s.Action).some((a) => a === "kms:Decrypt"));
      // Assess
      expect(kms).toHaveLength(1);
      expect(list(kms[0]!.Action)).toEqual(["kms:Decrypt"]);
      expect(list(kms[0]!.Resource).map(render)).toEqual([`<${logicalId(stack, stack.vaultKey)}.Arn>`]);
      expect(render(kms[0]!.Condition?.StringEquals?.["kms:ViaService"])).toBe("s3.<AWS::Region>.amazonaws.com");
      const contexts = list(kms[0]!.Condition?.StringLike?.["kms:EncryptionContext:aws:s3:arn"]).map(render);
      const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
      expect(contexts).toEqual([vault, `${vault}/db/${TAG}/*`]);
    }
  });

  it("encrypts (direct WAL) only through S3, only for the vault and the tagged database's WAL objects", () => {
    for (const { stack, template } of cases()) {
      // Act
      const kms = policyStatements(stack, template).filter((s) => list(s.Action).some((a) => a === "kms:GenerateDataKey"));
      // Assess
      expect(kms).toHaveLength(1);
      expect(list(kms[0]!.Action)).toEqual(["kms:GenerateDataKey"]);
      expect(list(kms[0]!.Resource).map(render)).toEqual([`<${logicalId(stack, stack.vaultKey)}.Arn>`]);
      expect(render(kms[0]!.Condition?.StringEquals?.["kms:ViaService"])).toBe("s3.<AWS::Region>.amazonaws.com");
      const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
      expect(list(kms[0]!.Condition?.StringLike?.["kms:EncryptionContext:aws:s3:arn"]).map(render)).toEqual([vault, `${vault}/db/${TAG}/wal/*`]);
    }
  });

  it("starts executions of the wal-record workflow only (asynchronously, or run to their end)", () => {
    for (const { stack, template } of cases()) {
      // Act
      const sfn = policyStatements(stack, template).filter((s) => list(s.Action).some((a) => a.startsWith("states:")));
      // Assess
      expect(sfn).toHaveLength(1);
      expect(list(sfn[0]!.Action)).toEqual(["states:StartExecution", "states:StartSyncExecution"]);
      expect(list(sfn[0]!.Resource).map(render)).toEqual([`<${logicalId(stack, stack.walRecordStateMachine)}>`]);
    }
  });

  it("reads the catalog, and Queries its generic WAL position index, only with the LeadingKeys condition on the tagged database's db#<id> items", () => {
    for (const { stack, template } of cases()) {
      // Act
      const ddb = policyStatements(stack, template).filter((s) => list(s.Action).some((a) => a.startsWith("dynamodb:")));
      // Assess
      expect(ddb).toHaveLength(2);
      expect(new Set(list(ddb[0]!.Action))).toEqual(new Set(["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"]));
      expect(list(ddb[0]!.Resource).map(render)).toEqual([`<${logicalId(stack, stack.catalog)}.Arn>`]);
      expect(list(ddb[1]!.Action)).toEqual(["dynamodb:Query"]);
      expect(list(ddb[1]!.Resource).map(render)).toEqual([`<${logicalId(stack, stack.catalog)}.Arn>/index/${GENERIC_WAL_INDEX}`]);
      for (const st of ddb) {
        expect(st.Condition).toEqual({
          Null: { "aws:PrincipalTag/walvault-db": "false" },
          "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [`db#${TAG}`] },
        });
      }
    }
  });

  it("comes with no IAM role by default", () => {
    // Act
    const roles = Object.values(defaultTemplate.findResources("AWS::IAM::Role")).map((r) => String((r.Properties as { RoleName?: unknown }).RoleName ?? ""));
    // Assess
    expect(Object.keys(defaultStack.agentRoles)).toEqual([]);
    expect(roles.filter((n) => n.startsWith("walvault-agent"))).toEqual([]);
  });
});

describe("per-database agent roles (deprecated, agentRolesPerDatabase)", () => {
  it("are named walvault-agent-<id>, tagged walvault-db=<id> and hold only the agent policy", () => {
    for (const db of ["pg-main", "orders-db"]) {
      // Prepare
      const role = multiStack.agentRoles[db]!;
      // Act
      const props = multiTemplate.toJSON().Resources[logicalId(multiStack, role)].Properties as Record<string, unknown>;
      // Assess
      expect(props.RoleName).toBe(`walvault-agent-${db}`);
      expect(props.Tags).toContainEqual({ Key: "walvault-db", Value: db });
      expect(list(props.ManagedPolicyArns).map(render)).toEqual([`<${logicalId(multiStack, multiStack.agentPolicy)}>`]);
      expect(props.Policies).toBeUndefined();
      expect(roleStatements(multiTemplate, logicalId(multiStack, role))).toEqual([]);
    }
    expect(Object.keys(multiStack.agentRoles).sort()).toEqual(["orders-db", "pg-main"]);
  });

  it("trust only the named principals, and no session can replace their tag", () => {
    // Act
    const props = multiTemplate.toJSON().Resources[logicalId(multiStack, multiStack.agentRoles["pg-main"]!)].Properties;
    const trust = props.AssumeRolePolicyDocument.Statement as Statement[];
    // Assess
    expect(trust.flatMap((s) => list((s.Principal as { AWS: unknown }).AWS).map(render))).toEqual(["arn:aws:iam::123456789012:role/db-host"]);
    expect(trust.flatMap((s) => list(s.Action))).toEqual(["sts:AssumeRole"]);
  });
});

describe("vault bucket", () => {
  it("is versioned, under Object Lock by default, SSE-KMS with a bucket key and blocks public access", () => {
    // Prepare
    const keyId = logicalId(defaultStack, defaultStack.vaultKey);
    // Act
    const vault = defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.vaultBucket)] as CfnResource;
    // Assess
    expect(vault.DeletionPolicy).toBe("Retain");
    expect(vault.Properties).toMatchObject({
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 7 } } },
      VersioningConfiguration: { Status: "Enabled" },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: { "Fn::GetAtt": [keyId, "Arn"] } },
          },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: { DestinationBucketName: { Ref: logicalId(defaultStack, defaultStack.accessLogsBucket) } },
    });
    defaultTemplate.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
  });

  it("denies every request without TLS and every write or delete from an agent: a principal tagged walvault-db or a walvault-agent-* role", () => {
    // Prepare
    const vaultId = logicalId(defaultStack, defaultStack.vaultBucket);
    // Act
    const policies = defaultTemplate.findResources("AWS::S3::BucketPolicy", { Properties: { Bucket: { Ref: vaultId } } });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
    // Assess
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: "Deny",
        Action: "s3:*",
        Principal: { AWS: "*" },
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      }),
    );
    const agentDeny = statements.find((s) => s.Sid === "DenyAgentWrites");
    expect(agentDeny?.Effect).toBe("Deny");
    expect(list(agentDeny?.Action)).toEqual(
      expect.arrayContaining(["s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:PutObjectAcl", "s3:DeleteObject*", "s3:BypassGovernanceRetention"]),
    );
    expect(render(agentDeny?.Condition?.ArnLike?.["aws:PrincipalArn"])).toBe(
      "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/walvault-agent-*",
    );
    const taggedDeny = statements.find((s) => s.Sid === "DenyTaggedAgentWrites");
    expect(taggedDeny).toMatchObject({ Effect: "Deny", Principal: { AWS: "*" }, Action: agentDeny?.Action, Resource: agentDeny?.Resource });
    expect(taggedDeny?.Condition).toEqual({ Null: { "aws:PrincipalTag/walvault-db": "false" } });
  });

  it("lets an agent only create (If-None-Match: *) objects under its own db/<id>/wal/, and PutObject nothing else (direct WAL)", () => {
    // Prepare
    const vaultId = logicalId(defaultStack, defaultStack.vaultBucket);
    const vault = `<${vaultId}.Arn>`;
    // Act
    const policies = defaultTemplate.findResources("AWS::S3::BucketPolicy", { Properties: { Bucket: { Ref: vaultId } } });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
    // Assess
    for (const [sid, principal] of [
      ["DenyTaggedAgentWrites", { Null: { "aws:PrincipalTag/walvault-db": "false" } }],
      ["DenyAgentWrites", undefined],
    ] as const) {
      const outside = statements.find((s) => s.Sid === `${sid}OutsideOwnWal`);
      expect(outside, sid).toMatchObject({ Effect: "Deny", Principal: { AWS: "*" }, Action: "s3:PutObject" });
      expect(list((outside as { NotResource?: unknown }).NotResource).map(render)).toEqual([`${vault}/db/\${aws:PrincipalTag/walvault-db}/wal/*`]);
      const createOnly = statements.find((s) => s.Sid === `${sid}NotCreateOnly`);
      expect(createOnly, sid).toMatchObject({ Effect: "Deny", Principal: { AWS: "*" }, Action: "s3:PutObject" });
      expect(createOnly?.Condition?.StringNotEquals).toEqual({ "s3:if-none-match": "*" });
      if (principal) expect(createOnly?.Condition).toMatchObject(principal);
      else expect(render(createOnly?.Condition?.ArnLike?.["aws:PrincipalArn"])).toBe("arn:<AWS::Partition>:iam::<AWS::AccountId>:role/walvault-agent-*");
    }
    const agentDenied = statements.filter((s) => s.Sid?.startsWith("Deny") && s.Sid.includes("Agent")).flatMap((s) => list(s.Action));
    expect(agentDenied).not.toContain("s3:PutObject*");
  });
});

describe("incoming bucket", () => {
  it("sends events to EventBridge and expires uploads after a day and quarantine after 30 days", () => {
    // Prepare
    const id = logicalId(defaultStack, defaultStack.incomingBucket);
    // Act
    const bucket = defaultTemplate.toJSON().Resources[id] as CfnResource;
    // Assess
    expect(bucket.Properties).toMatchObject({
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LifecycleConfiguration: {
        Rules: expect.arrayContaining([
          expect.objectContaining({ Prefix: "incoming/", ExpirationInDays: 1, Status: "Enabled" }),
          expect.objectContaining({ Prefix: "quarantine/", ExpirationInDays: 30, Status: "Enabled" }),
          expect.objectContaining({ Prefix: "work/", ExpirationInDays: 1, Status: "Enabled" }),
          expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: "Enabled" }),
        ]),
      },
    });
    defaultTemplate.hasResourceProperties("Custom::S3BucketNotifications", {
      BucketName: { Ref: id },
      NotificationConfiguration: { EventBridgeConfiguration: {} },
    });
  });
});

describe("catalog table", () => {
  it("is keyed by pk/sk, on demand, with point-in-time recovery, KMS encryption, deletion protection and retained", () => {
    // Prepare
    const id = logicalId(defaultStack, defaultStack.catalog);
    // Act
    const table = defaultTemplate.toJSON().Resources[id] as CfnResource;
    // Assess
    expect(table.Type).toBe("AWS::DynamoDB::GlobalTable");
    expect(table.DeletionPolicy).toBe("Retain");
    expect(table.Properties).toMatchObject({
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      BillingMode: "PAY_PER_REQUEST",
      SSESpecification: { SSEEnabled: true, SSEType: "KMS" },
      // Packs' promotion claims expire by themselves (the only items carrying it).
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
    });
    for (const replica of table.Properties?.Replicas as Record<string, unknown>[]) {
      expect(replica).toMatchObject({
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      });
    }
  });

  it("has a replica in every replica region", () => {
    // Prepare
    const id = logicalId(multiStack, multiStack.catalog);
    // Act
    const replicas = (multiTemplate.toJSON().Resources[id] as CfnResource).Properties?.Replicas as { Region: string }[];
    // Assess
    expect(replicas.map((r) => r.Region).sort()).toEqual(["eu-central-1", "eu-west-1"]);
  });

  it("has a sparse index of pending records per replica region, as the catalog code defines it, and none without replicas", () => {
    // Prepare
    const table = (stack: PrimaryStack, template: Template): CfnResource => template.toJSON().Resources[logicalId(stack, stack.catalog)] as CfnResource;
    // Act
    const indexes = table(multiStack, multiTemplate).Properties?.GlobalSecondaryIndexes as Record<string, unknown>[];
    const attributes = table(multiStack, multiTemplate).Properties?.AttributeDefinitions as Record<string, unknown>[];
    // Assess
    expect(indexes.filter((i) => i.IndexName !== GENERIC_WAL_INDEX)).toEqual(
      ["eu-central-1"].map((region) => {
        const d = replicaIndexDefinition(region);
        return expect.objectContaining({ IndexName: d.IndexName, KeySchema: d.KeySchema, Projection: expect.objectContaining({ ProjectionType: "INCLUDE", NonKeyAttributes: d.Projection?.NonKeyAttributes }) });
      }),
    );
    expect(attributes).toEqual(expect.arrayContaining([{ AttributeName: "replicaKey", AttributeType: "S" }, { AttributeName: "pending:eu-central-1", AttributeType: "S" }]));
    expect(((table(defaultStack, defaultTemplate).Properties?.GlobalSecondaryIndexes ?? []) as Record<string, unknown>[]).map((i) => i.IndexName)).toEqual([GENERIC_WAL_INDEX]);
  });

  it("has the sparse position index of generic segments, as the catalog code defines it, with or without replicas", () => {
    // Prepare
    const table = (stack: PrimaryStack, template: Template): CfnResource => template.toJSON().Resources[logicalId(stack, stack.catalog)] as CfnResource;
    const d = genericWalIndexDefinition();
    // Act
    const found = [table(defaultStack, defaultTemplate), table(multiStack, multiTemplate)].map((t) => ({
      index: (t.Properties?.GlobalSecondaryIndexes as Record<string, unknown>[]).find((i) => i.IndexName === GENERIC_WAL_INDEX),
      attributes: t.Properties?.AttributeDefinitions as Record<string, unknown>[],
    }));
    // Assess
    for (const { index, attributes } of found) {
      expect(index).toEqual(expect.objectContaining({ KeySchema: d.KeySchema, Projection: { ProjectionType: "ALL" } }));
      expect(attributes).toEqual(expect.arrayContaining([{ AttributeName: "gpos", AttributeType: "S" }]));
    }
  });
});

describe("ingest workflow", () => {
  it("is an Express state machine logging errors without execution data, traced with X-Ray", () => {
    // Prepare
    const logsId = defaultStack.getLogicalId(
      defaultStack.node.findChild("IngestWorkflowLogs").node.defaultChild as CfnElement,
    );
    // Act
    const machine = defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.ingestStateMachine)] as CfnResource;
    // Assess
    expect(machine.Properties).toMatchObject({
      StateMachineType: "EXPRESS",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: "ERROR",
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { "Fn::GetAtt": [logsId, "Arn"] } } }],
      },
    });
  });

  it("every Express state machine of either stack logs at ERROR without execution data (one log write per failure, not per state)", () => {
    // Prepare
    const machines = [defaultTemplate, multiTemplate].flatMap((t) => Object.entries(t.findResources("AWS::StepFunctions::StateMachine")));
    // Act
    const express = machines.filter(([, m]) => (m as CfnResource).Properties?.StateMachineType === "EXPRESS");
    // Assess
    expect(express.length).toBeGreaterThanOrEqual(2);
    for (const [id, m] of express) {
      const logging = (m as CfnResource).Properties?.LoggingConfiguration as { Level?: unknown; IncludeExecutionData?: unknown } | undefined;
      expect({ id, level: logging?.Level, data: logging?.IncludeExecutionData }).toEqual({ id, level: "ERROR", data: false });
    }
  });

  it("substitutes every placeholder of the ASL file with the matching function's ARN", () => {
    // Prepare
    const placeholders = aslPlaceholders(defaultStack.ingestAslFile);
    const machine = defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.ingestStateMachine)] as CfnResource;
    const substitutions = machine.Properties?.DefinitionSubstitutions as Record<string, unknown>;
    // Act: render the definition CloudFormation will deploy.
    const definition = deployedDefinition(machine);
    // Assess
    expect(placeholders).toEqual([
      "IncomingBucketName",
      "PromoteFunctionArn",
      "QuarantineFunctionArn",
      "RecordFunctionArn",
      "RecordReplicaFailureFunctionArn",
      "ReplicateFunctionArn",
      "ValidateFunctionArn",
    ]);
    expect(substitutions.IncomingBucketName).toEqual({ Ref: logicalId(defaultStack, defaultStack.incomingBucket) });
    for (const name of placeholders) {
      expect(definition, `placeholder \${${name}} left`).not.toContain(`\${${name}}`);
      if (name === REPLICATE_STEP_SOURCES.recordFailure.placeholder || name === "IncomingBucketName") continue;
      const step = name.replace(/FunctionArn$/, "").toLowerCase() as (typeof INGEST_STEPS)[number];
      expect(substitutions[name]).toEqual({ "Fn::GetAtt": [logicalId(defaultStack, defaultStack.functions[step]), "Arn"] });
    }
    expect(substitutions.RecordReplicaFailureFunctionArn).toEqual({
      "Fn::GetAtt": [logicalId(defaultStack, defaultStack.replicateFunctions.recordFailure), "Arn"],
    });
    expect(definition).not.toMatch(/\$\{/);
    const parsed = JSON.parse(definition) as { States: Record<string, { Type: string; Resource?: string }> };
    expect(parsed.States.Validate?.Resource).toBe(`<${logicalId(defaultStack, defaultStack.functions.validate)}.Arn>`);
  });

  it("may invoke exactly the five ingest functions and the replica failure recorder", () => {
    // Prepare
    const roleId = logicalId(defaultStack, defaultStack.ingestStateMachine.role);
    // Act
    const invoke = roleStatements(defaultTemplate, roleId).filter((s) => list(s.Action).includes("lambda:InvokeFunction"));
    // Assess
    expect(invoke).toHaveLength(1);
    expect(list(invoke[0]!.Resource).map(render).sort()).toEqual(
      [...INGEST_STEPS.map((s) => defaultStack.functions[s]), defaultStack.replicateFunctions.recordFailure]
        .map((f) => `<${logicalId(defaultStack, f)}.Arn>`)
        .sort(),
    );
  });

  it("starts on every object created under incoming/db/<id>/wal/ in the incoming bucket", () => {
    // Prepare
    const bucketId = logicalId(defaultStack, defaultStack.incomingBucket);
    const machineId = logicalId(defaultStack, defaultStack.ingestStateMachine);
    // Act
    const rule = defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.ingestRule)] as CfnResource;
    // Assess
    // The three upload rules and the verify, retention and rpo-watch workflows' schedules (test/infra/verify.test.ts, retention.test.ts, rpo-watch.test.ts).
    expect(Object.values(defaultTemplate.findResources("AWS::Events::Rule"))).toHaveLength(6);
    expect(rule.Properties).toMatchObject({
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Created"],
        detail: { bucket: { name: [{ Ref: bucketId }] }, object: { key: [{ wildcard: "incoming/db/*/wal/*" }] } },
      },
      Targets: [
        expect.objectContaining({
          Arn: { Ref: machineId },
          DeadLetterConfig: { Arn: expect.anything() },
          RoleArn: expect.anything(),
        }),
      ],
    });
  });
});

describe("snapshot ingest workflow", () => {
  const machineOf = (): CfnResource =>
    defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.snapshotIngestStateMachine)] as CfnResource;

  it("is a Standard state machine, traced with X-Ray, logging all events", () => {
    // Prepare
    const logsId = defaultStack.getLogicalId(
      defaultStack.node.findChild("SnapshotIngestWorkflowLogs").node.defaultChild as CfnElement,
    );
    // Act
    const machine = machineOf();
    // Assess
    expect(machine.Properties).toMatchObject({
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: "ALL",
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { "Fn::GetAtt": [logsId, "Arn"] } } }],
      },
    });
  });

  it("substitutes every placeholder of the ASL file with the matching function's ARN", () => {
    // Prepare
    const placeholders = aslPlaceholders(defaultStack.snapshotIngestAslFile);
    const machine = machineOf();
    const substitutions = machine.Properties?.DefinitionSubstitutions as Record<string, unknown>;
    // Act
    const definition = deployedDefinition(machine);
    // Assess
    expect(placeholders).toEqual(
      [
        ...SNAPSHOT_STEPS.map((s) => SNAPSHOT_STEP_SOURCES[s].placeholder),
        REPLICATE_STEP_SOURCES.copyItem.placeholder,
        REPLICATE_STEP_SOURCES.recordFailure.placeholder,
        "IncomingBucketName",
      ].sort(),
    );
    expect(substitutions.IncomingBucketName).toEqual({ Ref: logicalId(defaultStack, defaultStack.incomingBucket) });
    for (const step of SNAPSHOT_STEPS) {
      const name = SNAPSHOT_STEP_SOURCES[step].placeholder;
      expect(definition, `placeholder \${${name}} left`).not.toContain(`\${${name}}`);
      expect(substitutions[name]).toEqual({ "Fn::GetAtt": [logicalId(defaultStack, defaultStack.snapshotFunctions[step]), "Arn"] });
    }
    for (const step of ["copyItem", "recordFailure"] as const) {
      expect(substitutions[REPLICATE_STEP_SOURCES[step].placeholder]).toEqual({
        "Fn::GetAtt": [logicalId(defaultStack, defaultStack.replicateFunctions[step]), "Arn"],
      });
    }
    expect(definition).not.toMatch(/\$\{/);
    const parsed = JSON.parse(definition) as { States: Record<string, { Type: string; Resource?: string; MaxConcurrency?: number }> };
    expect(parsed.States.ValidateManifest?.Resource).toBe(`<${logicalId(defaultStack, defaultStack.snapshotFunctions.validateManifest)}.Arn>`);
    expect(parsed.States.PromoteChunks).toMatchObject({ Type: "Map", MaxConcurrency: 4 });
  });

  it("may invoke exactly the four snapshot ingest functions and the two replica copy steps", () => {
    // Prepare
    const roleId = logicalId(defaultStack, defaultStack.snapshotIngestStateMachine.role);
    // Act
    const invoke = roleStatements(defaultTemplate, roleId).filter((s) => list(s.Action).includes("lambda:InvokeFunction"));
    // Assess
    expect(invoke).toHaveLength(1);
    expect(list(invoke[0]!.Resource).map(render).sort()).toEqual(
      [
        ...new Set(SNAPSHOT_STEPS.map((s) => defaultStack.snapshotFunctions[s])),
        defaultStack.replicateFunctions.copyItem,
        defaultStack.replicateFunctions.recordFailure,
      ]
        .map((f) => `<${logicalId(defaultStack, f)}.Arn>`)
        .sort(),
    );
  });

  it("starts on manifests only: incoming/db/<id>/snapshots/<snapshotId>/manifest.json", () => {
    // Prepare
    const bucketId = logicalId(defaultStack, defaultStack.incomingBucket);
    // Act
    const rule = defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.snapshotIngestRule)] as CfnResource;
    // Assess
    expect(rule.Properties).toMatchObject({
      EventPattern: {
        source: ["aws.s3"],
        "detail-type": ["Object Created"],
        detail: {
          bucket: { name: [{ Ref: bucketId }] },
          object: { key: [{ wildcard: "incoming/db/*/snapshots/*/manifest.json" }] },
        },
      },
      Targets: [
        expect.objectContaining({
          Arn: { Ref: logicalId(defaultStack, defaultStack.snapshotIngestStateMachine) },
          DeadLetterConfig: { Arn: expect.anything() },
          RoleArn: expect.anything(),
        }),
      ],
    });
  });

  it("promotes packs as they land: an Express workflow started by incoming/db/<id>/packs/<name>, invoking only snapshot ingest's PromotePacks", () => {
    // Prepare
    const bucketId = logicalId(defaultStack, defaultStack.incomingBucket);
    const machineId = logicalId(defaultStack, defaultStack.packIngestStateMachine);
    const promotePacks = `<${logicalId(defaultStack, defaultStack.snapshotFunctions.promotePacks)}.Arn>`;
    // Act
    const rule = defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.packIngestRule)] as CfnResource;
    const machine = defaultTemplate.toJSON().Resources[machineId] as CfnResource;
    const invoke = roleStatements(defaultTemplate, logicalId(defaultStack, defaultStack.packIngestStateMachine.role)).filter((st) =>
      list(st.Action).includes("lambda:InvokeFunction"),
    );
    const promoteGrants = roleStatements(defaultTemplate, logicalId(defaultStack, defaultStack.snapshotFunctions.promotePacks.role!)).flatMap((st) => list(st.Action));
    // Assess
    expect(rule.Properties).toMatchObject({
      EventPattern: { detail: { bucket: { name: [{ Ref: bucketId }] }, object: { key: [{ wildcard: "incoming/db/*/packs/*" }] } } },
      Targets: [expect.objectContaining({ Arn: { Ref: machineId } })],
    });
    expect(machine.Properties).toMatchObject({ StateMachineType: "EXPRESS" });
    expect(invoke.flatMap((st) => list(st.Resource)).map(render)).toEqual([promotePacks]);
    expect(promoteGrants).toEqual(expect.arrayContaining(["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:BatchWriteItem"]));
  });

  it("routes keys exactly as the local stack does: WAL to ingest, manifests to snapshot ingest, packs to pack ingest, chunks and manifest pages nowhere", () => {
    // Prepare
    const deployed = { ingest: WAL_UPLOAD_KEY_PATTERN, "snapshot-ingest": SNAPSHOT_MANIFEST_KEY_PATTERN, "pack-ingest": PACK_UPLOAD_KEY_PATTERN };
    const keys: Record<string, string[]> = {
      "incoming/db/pg-main/wal/000000010000000000000001": ["ingest"],
      "incoming/db/pg-main/wal/00000002.history": ["ingest"],
      "incoming/db/pg-main/snapshots/20261121T073000Z-ab12cd/manifest.json": ["snapshot-ingest"],
      [`incoming/db/pg-main/chunks/${"a".repeat(64)}`]: [],
      [`incoming/db/pg-main/packs/${"b".repeat(64)}`]: ["pack-ingest"],
      "incoming/db/pg-main/snapshots/20261121T073000Z-ab12cd/other.json": [],
      "incoming/db/pg-main/snapshots/20261121T073000Z-ab12cd/pages/000000.json": [],
      "incoming/db/pg-main/snapshots/20261121T073000Z-ab12cd/pages/000123.json": [],
      "work/db/pg-main/snapshots/20261121T073000Z-ab12cd/0123456789abcdef/batches/00000.json": [],
      "quarantine/db/pg-main/20261121T073000Z-x": [],
    };
    // Act + Assess
    for (const w of WORKFLOWS) expect(w.keyPattern, w.name).toBe(deployed[w.name]);
    for (const [key, expected] of Object.entries(keys)) {
      expect(WORKFLOWS.filter((w) => matchesWildcard(w.keyPattern, key)).map((w) => w.name), key).toEqual(expected);
    }
  });
});

describe("ingest functions", () => {
  it("run on Node 22, arm64, from ESM bundles, with the walvault environment", () => {
    for (const f of [
      ...INGEST_STEPS.map((s) => defaultStack.functions[s]),
      ...SNAPSHOT_STEPS.map((s) => defaultStack.snapshotFunctions[s]),
      ...REPLICATE_STEPS.map((s) => defaultStack.replicateFunctions[s]),
    ]) {
      // Prepare
      const id = logicalId(defaultStack, f);
      // Act
      const fn = defaultTemplate.toJSON().Resources[id] as CfnResource;
      // Assess
      expect(fn.Properties).toMatchObject({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        TracingConfig: { Mode: "Active" },
        Environment: {
          Variables: {
            WALVAULT_INCOMING_BUCKET: { Ref: logicalId(defaultStack, defaultStack.incomingBucket) },
            WALVAULT_VAULT_BUCKET: { Ref: logicalId(defaultStack, defaultStack.vaultBucket) },
            WALVAULT_TABLE: { Ref: logicalId(defaultStack, defaultStack.catalog) },
            WALVAULT_REPLICAS: "[]",
          },
        },
      });
    }
  });

  it("are ESM bundles that load on Node 22 and keep the error class names Step Functions matches", async () => {
    // Prepare: the app as `cdk synth` builds it (handlers bundled by esbuild), in a child process.
    const outdir = await synthBundledApp(findProjectRoot(), cdkJson.context);
    const all = [
      ...new Set([
        ...INGEST_STEPS.map((s) => defaultStack.functions[s]),
        ...SNAPSHOT_STEPS.map((s) => defaultStack.snapshotFunctions[s]),
        ...REPLICATE_STEPS.map((s) => defaultStack.replicateFunctions[s]),
      ]),
    ];
    const chain = defaultStack.snapshotFunctions.validateManifest;
    const chainSteps = SNAPSHOT_STEPS.filter((s) => defaultStack.snapshotFunctions[s] === chain);
    // Act: each bundle loaded as Lambda loads it, its handler given malformed input; the shared function
    // (core/workflows.ts SHARED_FUNCTIONS) once per step it runs, and once naming none.
    const outcomes = await bundledHandlerOutcomes(outdir, all.map((f) => logicalId(defaultStack, f)), {});
    const chainOutcomes = await Promise.all(chainSteps.map((step) => bundledHandlerOutcomes(outdir, [logicalId(defaultStack, chain)], { step })));
    // Assess: malformed input is rejected before any AWS call, under its class name; a Task that names no step is a configuration fault.
    expect(outcomes).toEqual(all.map((f) => (f === chain ? "ConfigError" : "InvalidInputError")));
    expect(chainSteps.length).toBeGreaterThan(1);
    expect(chainOutcomes.flat()).toEqual(chainSteps.map(() => "InvalidInputError"));
  }, 600_000);

  it("tell the handlers where each replica vault is", () => {
    // Prepare
    const id = logicalId(multiStack, multiStack.functions.replicate);
    // Act
    const vars = (multiTemplate.toJSON().Resources[id] as CfnResource).Properties?.Environment as { Variables: Record<string, unknown> };
    // Assess
    expect(JSON.parse(render(vars.Variables.WALVAULT_REPLICAS).replace("<AWS::AccountId>", "123456789012"))).toEqual([
      { region: "eu-central-1", bucket: "walvault-vault-123456789012-eu-central-1" },
    ]);
  });

  it("delete nothing; only promote writes the vault, only quarantine writes incoming (under quarantine/)", () => {
    for (const [stack, template] of [
      [defaultStack, defaultTemplate],
      [multiStack, multiTemplate],
    ] as const) {
      // Prepare
      const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
      const incoming = `<${logicalId(stack, stack.incomingBucket)}.Arn>`;
      // Act
      const byStep = functionStatements(stack, template);
      // Assess
      for (const [step, statements] of Object.entries(byStep)) {
        for (const s of statements) {
          for (const action of list(s.Action)) {
            expect(action, `${step}: ${action}`).not.toMatch(/Delete|Bypass|Retention|LegalHold|PutBucket|^s3:\*|^dynamodb:\*/);
            if (action !== "s3:PutObject") continue;
            for (const resource of list(s.Resource).map(render)) {
              if (resource.startsWith(vault)) expect(step).toBe("promote");
              if (resource.startsWith(incoming)) {
                expect(step).toBe("quarantine");
                expect(resource).toBe(`${incoming}/quarantine/db/*`);
              }
            }
          }
        }
      }
    }
  });
});

describe("snapshot ingest functions", () => {
  it("delete nothing; only the promote steps (and the chain, for manifests) write the vault, each its own key family; incoming writes only work/ and quarantine/", () => {
    for (const [stack, template] of [
      [defaultStack, defaultTemplate],
      [multiStack, multiTemplate],
    ] as const) {
      // Prepare
      const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
      const incoming = `<${logicalId(stack, stack.incomingBucket)}.Arn>`;
      // The chain (ValidateManifest, ValidatePages, CheckReferenced, PromoteManifest, RecordSnapshot) shares one role.
      const allowedWrites: Record<string, string[]> = {
        SnapshotIngestChain: [`${incoming}/work/*`, `${vault}/db/*/snapshots/*`],
        promoteChunks: [`${vault}/db/*/chunks/*`],
        promotePacks: [`${vault}/db/*/packs/*`],
        quarantineSnapshot: [`${incoming}/quarantine/db/*`],
      };
      // Act
      const byStep = snapshotFunctionStatements(stack, template);
      const writes: Record<string, string[]> = {};
      for (const [step, statements] of Object.entries(byStep)) {
        for (const st of statements) {
          for (const action of list(st.Action)) {
            expect(action, `${step}: ${action}`).not.toMatch(/Delete|Bypass|Retention|LegalHold|PutBucket|^s3:\*|^dynamodb:\*|Scan/);
            if (action === "s3:PutObject") (writes[step] ??= []).push(...list(st.Resource).map(render));
          }
        }
      }
      // Assess
      expect(writes).toEqual(allowedWrites);
    }
  });

  it("use only the catalog calls their step makes", () => {
    // Act
    const byStep = snapshotFunctionStatements(defaultStack, defaultTemplate);
    const ddb = Object.fromEntries(
      Object.entries(byStep).map(([step, statements]) => [
        step,
        [...new Set(statements.flatMap((s) => list(s.Action)).filter((a) => a.startsWith("dynamodb:")))].sort(),
      ]),
    );
    // Assess
    expect(ddb).toEqual({
      // validateManifest, validatePages: BatchGetItem, GetItem; checkReferenced: UpdateItem, GetItem; recordSnapshot: PutItem, GetItem.
      SnapshotIngestChain: ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
      promoteChunks: ["dynamodb:BatchWriteItem"],
      promotePacks: ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
      quarantineSnapshot: ["dynamodb:PutItem"],
    });
  });
});

describe("restore workflow", () => {
  it("plans a walIndex-complete generic database by position: its Plan function may Query the gpos index, and no other index", () => {
    // Act
    const statements = roleStatements(defaultTemplate, logicalId(defaultStack, defaultStack.restoreFunctions.plan.role!));
    const onIndexes = statements.flatMap((st) => list(st.Resource).map(render)).filter((r) => r.includes("/index/"));
    // Assess
    expect(onIndexes).toEqual([`<${logicalId(defaultStack, defaultStack.catalog)}.Arn>/index/${GENERIC_WAL_INDEX}`]);
  });

  const machineOf = (): CfnResource =>
    defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.restoreStateMachine)] as CfnResource;
  const fnResource = (step: (typeof RESTORE_STEPS)[number]): CfnResource =>
    defaultTemplate.toJSON().Resources[logicalId(defaultStack, defaultStack.restoreFunctions[step])] as CfnResource;

  it("is a Standard state machine, traced with X-Ray, logging all events", () => {
    // Prepare
    const logsId = defaultStack.getLogicalId(defaultStack.node.findChild("RestoreWorkflowLogs").node.defaultChild as CfnElement);
    // Act
    const machine = machineOf();
    // Assess
    expect(machine.Properties).toMatchObject({
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: "ALL", Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { "Fn::GetAtt": [logsId, "Arn"] } } }] },
    });
  });

  it("substitutes every placeholder of the ASL file with the matching function's ARN", () => {
    // Prepare
    const placeholders = aslPlaceholders(defaultStack.restoreAslFile);
    const substitutions = machineOf().Properties?.DefinitionSubstitutions as Record<string, unknown>;
    // Act
    const definition = deployedDefinition(machineOf());
    // Assess
    expect(placeholders).toEqual(["CheckThawFunctionArn", "PlanFunctionArn", "ThawByDefault", "ThawFunctionArn"]);
    // The default lifecycle (STANDARD_IA, GLACIER_IR) reads instantly: a restore thaws only when asked.
    expect(substitutions.ThawByDefault).toBe("off");
    for (const step of RESTORE_STEPS) {
      expect(substitutions[RESTORE_STEP_SOURCES[step].placeholder]).toEqual({ "Fn::GetAtt": [logicalId(defaultStack, defaultStack.restoreFunctions[step]), "Arn"] });
    }
    expect(definition).not.toMatch(/\$\{/);
    const parsed = JSON.parse(definition) as { States: Record<string, { Type: string; Resource?: string }> };
    expect(parsed.States.Plan?.Resource).toBe(`<${logicalId(defaultStack, defaultStack.restoreFunctions.plan)}.Arn>`);
    expect(parsed.States.CheckThaw?.Resource).toBe(`<${logicalId(defaultStack, defaultStack.restoreFunctions.checkThaw)}.Arn>`);
  });

  it("may invoke exactly the three restore functions; thaw and checkThaw share a bundle with two handlers", () => {
    // Prepare
    const roleId = logicalId(defaultStack, defaultStack.restoreStateMachine.role);
    // Act
    const invoke = roleStatements(defaultTemplate, roleId).filter((s) => list(s.Action).includes("lambda:InvokeFunction"));
    // Assess
    expect(invoke).toHaveLength(1);
    expect(list(invoke[0]!.Resource).map(render).sort()).toEqual(
      RESTORE_STEPS.map((s) => `<${logicalId(defaultStack, defaultStack.restoreFunctions[s])}.Arn>`).sort(),
    );
    expect(fnResource("plan").Properties).toMatchObject({ Handler: "index.handler", Runtime: "nodejs22.x" });
    expect(fnResource("thaw").Properties).toMatchObject({ Handler: "index.handler", Environment: { Variables: { WALVAULT_THAW_TIER: "Standard" } } });
    expect(fnResource("checkThaw").Properties).toMatchObject({ Handler: "index.checkHandler" });
  });

  it("read the vault and the catalog and write nothing but work/restore/ objects (Plan the plan, the thaw steps their chunk lists); only thaw steps may call s3:RestoreObject, on the vault", () => {
    for (const [stack, template] of [
      [defaultStack, defaultTemplate],
      [multiStack, multiTemplate],
    ] as const) {
      // Prepare
      const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
      const plans = `<${logicalId(stack, stack.incomingBucket)}.Arn>/work/restore/*`;
      // Act
      const byStep = Object.fromEntries(RESTORE_STEPS.map((step) => [step, roleStatements(template, logicalId(stack, stack.restoreFunctions[step].role!))]));
      const actions: Record<string, string[]> = {};
      const restoreOn: Record<string, string[]> = {};
      const planAccess: Record<string, string[]> = {};
      for (const [step, statements] of Object.entries(byStep)) {
        for (const st of statements) {
          for (const action of list(st.Action)) {
            if (list(st.Resource).map(render).includes(plans)) {
              (planAccess[step] ??= []).push(action);
              expect(list(st.Resource).map(render), `${step}: ${action}`).toEqual([plans]);
              continue;
            }
            if (/^(s3|dynamodb|kms):/.test(action)) {
              expect(action, `${step}: ${action}`).not.toMatch(/Put|Delete|Write|Update|Bypass|Retention|LegalHold|^s3:\*|^dynamodb:\*|Scan|GenerateDataKey/);
            }
            if (/^(s3|dynamodb):/.test(action)) (actions[step] ??= []).push(action);
            if (action === "s3:RestoreObject") (restoreOn[step] ??= []).push(...list(st.Resource).map(render));
          }
        }
      }
      // Assess
      expect(restoreOn).toEqual({ thaw: [`${vault}/db/*`], checkThaw: [`${vault}/db/*`] });
      expect(planAccess).toEqual({ plan: ["s3:PutObject"], thaw: ["s3:GetObject", "s3:PutObject"], checkThaw: ["s3:GetObject", "s3:PutObject"] });
      expect([...new Set(actions.plan)].sort()).toEqual(["dynamodb:GetItem", "dynamodb:Query", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"]);
      expect([...new Set(actions.thaw)].sort()).toEqual(["dynamodb:BatchGetItem", "s3:GetObject", "s3:ListBucket", "s3:RestoreObject"]);
    }
  });
});

describe("the wal-record workflow's quarantine step", () => {
  it("may write only the .rejected marker beside a rejected direct WAL object (and the quarantine record), nothing else in the vault", () => {
    // Prepare
    const vault = `<${logicalId(defaultStack, defaultStack.vaultBucket)}.Arn>`;
    // Act
    const statements = roleStatements(defaultTemplate, logicalId(defaultStack, defaultStack.walRecordFunctions.quarantine.role!));
    const writes = statements.flatMap((st) => list(st.Action).filter((a) => /^s3:|^dynamodb:/.test(a)).map((a) => `${a} ${list(st.Resource).map(render).join(",")}`));
    // Assess
    expect(writes.sort()).toEqual([`dynamodb:PutItem <${logicalId(defaultStack, defaultStack.catalog)}.Arn>`, `s3:PutObject ${vault}/db/*/wal/*.rejected`].sort());
  });
});

describe("functions of every workflow", () => {
  it("are deployed with the memory, timeout and description core/workflows.ts declares for their step, or for the function steps share", () => {
    // Prepare
    const deployed: Array<[WorkflowId, Record<string, IConstruct>]> = [
      ["ingest", defaultStack.functions],
      ["wal-record", defaultStack.walRecordFunctions],
      ["snapshot-ingest", defaultStack.snapshotFunctions],
      ["restore", defaultStack.restoreFunctions],
      ["replicate", defaultStack.replicateFunctions],
      ["verify", defaultStack.verification.functions],
      ["retention", defaultStack.retention.functions],
      ["rpo-watch", defaultStack.rpoWatch.functions],
    ];
    for (const [workflow, fns] of deployed) {
      const steps = WORKFLOW_DEFINITIONS[workflow].steps as Record<string, StepDefinition>;
      // Assess: one function per declared step, each with the declared settings
      expect(Object.keys(fns).sort(), workflow).toEqual(Object.keys(steps).sort());
      for (const [name, step] of Object.entries(steps)) {
        const props = defaultTemplate.toJSON().Resources[logicalId(defaultStack, fns[name]!)].Properties as Record<string, unknown>;
        const declared = functionOf(step);
        expect({ memory: props.MemorySize, timeout: props.Timeout, description: props.Description }, `${workflow} ${name}`).toEqual({
          memory: declared.memoryMiB,
          timeout: declared.timeoutSeconds,
          description: declared.description,
        });
      }
      // Steps that share a function are one function; the others one each.
      expect(new Set(Object.values(fns)).size, workflow).toBe(new Set(Object.values(steps).map((s) => functionOf(s).key)).size);
    }
  });
});

describe("cdk-nag AWS Solutions checks", () => {
  it("leave no unsuppressed errors or warnings", () => {
    for (const stack of [defaultStack, multiStack]) {
      // Prepare
      const annotations = Annotations.fromStack(stack);
      // Act
      const errors = annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      const warnings = annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      // Assess
      expect(errors.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
      expect(warnings.map((w) => `${w.id}: ${String(w.entry.data)}`)).toEqual([]);
    }
  });
});
