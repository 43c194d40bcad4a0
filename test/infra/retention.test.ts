/**
 * The retention workflow (issue #6) and the vault lifecycle as CloudFormation
 * sees them: the Standard state machine with its two functions, the
 * EventBridge schedule, what each function may do (delete in every vault,
 * never unlock), lifecycle transitions and noncurrent expiry on every vault,
 * the settings from context, and cdk-nag. One app with the primary stack as
 * `cdk synth` builds it from cdk.json ("Default"), and one with two replica
 * regions, two databases, a COMPLIANCE lock and custom settings ("Custom").
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Aspects, type Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { ARCHIVE_STORAGE_CLASSES } from "../../core/thaw.js";
import { aslPlaceholders } from "../../infra/asl.js";
import { findProjectRoot, PrimaryStack, walvaultSettingsFromContext } from "../../infra/primary-stack.js";
import { RETENTION_STEP_SOURCES, RETENTION_STEPS, retentionSettingsFromContext } from "../../infra/retention.js";
import { vaultTransitions } from "../../infra/vault.js";
import { addWalvaultStacks, type WalvaultStacks } from "../../infra/walvault-app.js";
import { bundledHandlerOutcomes, type CfnResource, deployedDefinition, list, logicalId, NO_BUNDLING, render, roleStatements, type Statement, synthBundledApp } from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };
const REGIONS = ["eu-west-1", "ap-southeast-2"] as const;

let assemblies: CloudAssembly[];
let defaultStack: PrimaryStack;
let custom: WalvaultStacks;
const templates = new Map<Stack, Template>();

const template = (stack: Stack): Template => templates.get(stack)!;
const resources = (stack: Stack): Record<string, CfnResource> => template(stack).toJSON().Resources as Record<string, CfnResource>;
const resourceOf = (stack: Stack, c: IConstruct): CfnResource => resources(stack)[logicalId(stack, c)]!;
const allStacks = (): Stack[] => [defaultStack, custom.primary, ...custom.replicas];
const primaries = (): PrimaryStack[] => [defaultStack, custom.primary];
const actionsOf = (statements: Statement[]): string[] => [...new Set(statements.filter((s) => s.Effect === "Allow").flatMap((s) => list(s.Action)))].sort();

beforeAll(() => {
  // Prepare: cdk.json's context and the cdk-nag checks, as in infra/app.ts; error annotations stay annotations.
  const context = { ...cdkJson.context, ...NO_BUNDLING, "@aws-cdk/core:annotationsInValidationReport": false };
  const defaultApp = new App({ context });
  defaultStack = new PrimaryStack(defaultApp, "Default", walvaultSettingsFromContext(defaultApp.node));
  const customApp = new App({ context });
  custom = addWalvaultStacks(
    customApp,
    {
      databases: ["pg-main", "orders-db"],
      replicas: REGIONS.map((region) => ({ region })),
      objectLockMode: "COMPLIANCE",
      objectLockDays: 14,
      lifecycle: { infrequentAccessDays: 45, glacierInstantRetrievalDays: 120 },
      retention: { schedule: "cron(15 2 * * ? *)", graceHours: 48 },
    },
    { account: "123456789012", region: "us-east-1" },
  );
  for (const app of [defaultApp, customApp]) Aspects.of(app).add(new AwsSolutionsChecks());
  // Act: synthesize once each.
  assemblies = [defaultApp.synth(), customApp.synth()];
  for (const s of allStacks()) templates.set(s, Template.fromStack(s));
});

describe("retention settings", () => {
  it("come from context, with the defaults cdk.json spells out", () => {
    // Act
    const app = new App({ context: { ...cdkJson.context, "walvault:retentionSchedule": "rate(12 hours)", "walvault:lifecycleGlacierIrDays": "0" } });
    const read = retentionSettingsFromContext(app.node);
    const defaults = retentionSettingsFromContext(new App({ context: cdkJson.context }).node);
    // Assess
    expect(read).toEqual({ retention: { schedule: "rate(12 hours)", graceHours: 24 }, lifecycle: { infrequentAccessDays: 30, glacierInstantRetrievalDays: 0 } });
    expect(defaults).toEqual({ retention: { schedule: "rate(1 day)", graceHours: 24 }, lifecycle: { infrequentAccessDays: 30, glacierInstantRetrievalDays: 90 } });
  });

  it("refuse a schedule, grace period or lifecycle S3 or safety would not accept", () => {
    const bad = (key: string, value: unknown): (() => unknown) => () => retentionSettingsFromContext(new App({ context: { [key]: value } }).node);
    expect(bad("walvault:retentionSchedule", "every day")).toThrow(/rate\(<n> <minutes\|hours\|days>\) or cron/);
    expect(bad("walvault:retentionSchedule", "rate(5 minutes)")).toThrow(/at most hourly/);
    expect(bad("walvault:retentionGraceHours", 0)).toThrow(/between 1 and 8760 hours/);
    expect(() => vaultTransitions({ infrequentAccessDays: 10 })).toThrow(/30 or more/);
    expect(() => vaultTransitions({ infrequentAccessDays: 30, glacierInstantRetrievalDays: 45 })).toThrow(/at least 30 days after/);
    expect(vaultTransitions({ infrequentAccessDays: 0, glacierInstantRetrievalDays: 0 })).toEqual([]);
  });
});

describe("retention workflow", () => {
  it("is a Standard state machine, traced, logging all events, whose deployed definition calls exactly its two functions", () => {
    for (const [i, stack] of primaries().entries()) {
      // Prepare
      const machine = resourceOf(stack, stack.retention.stateMachine);
      const fnArn = (step: (typeof RETENTION_STEPS)[number]): string => `<${logicalId(stack, stack.retention.functions[step])}.Arn>`;
      // Act
      const definition = JSON.parse(deployedDefinition(machine, assemblies[i]!.directory)) as {
        States: { Plan: { Resource: string }; ExecuteEach: { MaxConcurrency: number; ItemProcessor: { States: { Execute: { Resource: string } } } } };
      };
      const invoke = roleStatements(template(stack), logicalId(stack, stack.retention.stateMachine.role)).filter((s) => list(s.Action).includes("lambda:InvokeFunction"));
      // Assess
      expect(machine.Properties).toMatchObject({ StateMachineType: "STANDARD", TracingConfiguration: { Enabled: true }, LoggingConfiguration: { Level: "ALL", IncludeExecutionData: true } });
      expect(aslPlaceholders(stack.retention.aslFile).sort()).toEqual(RETENTION_STEPS.map((s) => RETENTION_STEP_SOURCES[s].placeholder).sort());
      expect(render(definition.States.Plan.Resource)).toBe(fnArn("plan"));
      expect(render(definition.States.ExecuteEach.ItemProcessor.States.Execute.Resource)).toBe(fnArn("execute"));
      expect(definition.States.ExecuteEach.MaxConcurrency).toBe(2);
      expect(invoke).toHaveLength(1);
      expect(list(invoke[0]!.Resource).map(render).sort()).toEqual(RETENTION_STEPS.map(fnArn).sort());
    }
  });

  it("starts on its schedule with the input {}, and its ARN is a stack output", () => {
    for (const [stack, expression] of [
      [defaultStack, "rate(1 day)"],
      [custom.primary, "cron(15 2 * * ? *)"],
    ] as const) {
      // Act
      const rule = resourceOf(stack, stack.retention.rule);
      const outputs = template(stack).toJSON().Outputs as Record<string, { Value: unknown }>;
      // Assess
      expect(rule.Properties).toMatchObject({
        ScheduleExpression: expression,
        State: "ENABLED",
        Targets: [expect.objectContaining({ Arn: { Ref: logicalId(stack, stack.retention.stateMachine) }, Input: "{}" })],
      });
      expect(outputs.RetentionStateMachineArn?.Value).toEqual({ Ref: logicalId(stack, stack.retention.stateMachine) });
    }
  });

  it("gives execute the grace period and both functions the walvault environment", () => {
    for (const [stack, grace] of [
      [defaultStack, "24"],
      [custom.primary, "48"],
    ] as const) {
      const env = (step: (typeof RETENTION_STEPS)[number]): Record<string, unknown> =>
        (resourceOf(stack, stack.retention.functions[step]).Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env("execute")).toMatchObject({ WALVAULT_RETENTION_GRACE_HOURS: grace, WALVAULT_VAULT_BUCKET: { Ref: logicalId(stack, stack.vaultBucket) } });
      expect(env("plan").WALVAULT_RETENTION_GRACE_HOURS).toBeUndefined();
    }
    const replicas = (resourceOf(custom.primary, custom.primary.retention.functions.execute).Properties?.Environment as { Variables: { WALVAULT_REPLICAS: unknown } }).Variables.WALVAULT_REPLICAS;
    expect(JSON.parse(render(replicas))).toEqual(REGIONS.map((region) => ({ region, bucket: `walvault-vault-<AWS::AccountId>-${region}` })));
  });
});

describe("retention functions", () => {
  it("are ESM bundles that load on Node 22 and keep the error class names Step Functions matches", async () => {
    // Prepare: the app as `cdk synth` builds it (handlers bundled by esbuild), in a child process.
    const outdir = await synthBundledApp(findProjectRoot(), cdkJson.context);
    // Act: each bundle loaded as Lambda loads it, its handler given malformed input.
    const outcomes = await bundledHandlerOutcomes(outdir, RETENTION_STEPS.map((step) => logicalId(defaultStack, defaultStack.retention.functions[step])), {});
    // Assess: malformed input is rejected before any AWS call, under its class name.
    expect(outcomes).toEqual(["InvalidInputError", "InvalidInputError"]);
  }, 600_000);
});

describe("retention permissions", () => {
  it("let plan read the catalog and write its lists and pages (and read the pages back) only, and execute delete records, vault objects and versions in every vault, and write repacked packs to every vault, and nothing else", () => {
    // Prepare
    const stack = custom.primary;
    const statements = (step: (typeof RETENTION_STEPS)[number]): Statement[] => roleStatements(template(stack), logicalId(stack, stack.retention.functions[step].role!));
    const vault = `<${logicalId(stack, stack.vaultBucket)}.Arn>`;
    const incoming = `<${logicalId(stack, stack.incomingBucket)}.Arn>`;
    // Act
    const plan = statements("plan");
    const execute = statements("execute");
    const deletes = execute.filter((s) => list(s.Action).some((a) => a.startsWith("s3:Delete")));
    // Assess
    expect(actionsOf(plan)).toEqual(["dynamodb:GetItem", "dynamodb:Query", "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:PutObject", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]);
    expect(actionsOf(execute)).toEqual([
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
      "kms:Decrypt",
      "kms:GenerateDataKey",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:ListBucket",
      "s3:PutObject",
      "xray:PutTelemetryRecords",
      "xray:PutTraceSegments",
    ]);
    expect(plan.filter((s) => list(s.Action).includes("s3:PutObject")).flatMap((s) => list(s.Resource).map(render))).toEqual([`${incoming}/work/retention/*`]);
    const vaultDeletes = deletes.filter((s) => list(s.Action).includes("s3:DeleteObjectVersion")).flatMap((s) => list(s.Resource).map(render));
    expect(vaultDeletes.sort()).toEqual([`${vault}/db/*`, ...REGIONS.map((r) => `arn:<AWS::Partition>:s3:::walvault-vault-<AWS::AccountId>-${r}/db/*`)].sort());
    const workDeletes = deletes.filter((s) => !list(s.Action).includes("s3:DeleteObjectVersion")).flatMap((s) => list(s.Resource).map(render));
    expect(workDeletes).toEqual([`${incoming}/work/retention/*`]);
    const reads = execute.filter((s) => list(s.Action).includes("s3:GetObjectVersion")).flatMap((s) => list(s.Resource).map(render));
    expect(reads).toEqual([`${vault}/db/*/snapshots/*`]);
    const vaultPuts = execute.filter((s) => list(s.Action).includes("s3:PutObject") && !list(s.Action).includes("s3:DeleteObject")).flatMap((s) => list(s.Resource).map(render));
    expect(vaultPuts.sort()).toEqual([`${vault}/db/*/packs/*`, ...REGIONS.map((r) => `arn:<AWS::Partition>:s3:::walvault-vault-<AWS::AccountId>-${r}/db/*/packs/*`)].sort());
  });

  it("allow no one to bypass Object Lock, change retention or legal holds, anywhere", () => {
    for (const stack of allStacks()) {
      // Act
      const allowed = Object.entries(resources(stack))
        .filter(([, r]) => r.Type === "AWS::IAM::Role")
        .flatMap(([id]) => roleStatements(template(stack), id))
        .filter((s) => s.Effect === "Allow")
        .flatMap((s) => list(s.Action));
      const bucketPolicyAllows = Object.values(resources(stack))
        .filter((r) => r.Type === "AWS::S3::BucketPolicy")
        .flatMap((r) => (r.Properties?.PolicyDocument as { Statement: Statement[] }).Statement)
        .filter((s) => s.Effect === "Allow")
        .flatMap((s) => list(s.Action));
      // Assess
      for (const action of [...allowed, ...bucketPolicyAllows]) {
        expect(action, `${stack.stackName}: ${action}`).not.toMatch(/BypassGovernanceRetention|ObjectRetention|ObjectLegalHold|ObjectLockConfiguration|^s3:\*$|^\*$/);
      }
    }
  });
});

describe("vault lifecycle", () => {
  const cases = () => [
    { stack: defaultStack as Stack, bucket: defaultStack.vaultBucket, ia: 30, ir: 90, lock: 7 },
    { stack: custom.primary as Stack, bucket: custom.primary.vaultBucket, ia: 45, ir: 120, lock: 14 },
    ...custom.replicas.map((r) => ({ stack: r as Stack, bucket: r.vaultBucket, ia: 45, ir: 120, lock: 14 })),
  ];
  const rulesOf = (stack: Stack, bucket: IConstruct): Record<string, unknown>[] =>
    (resourceOf(stack, bucket).Properties?.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
  /** Whether a transition rule applies to an object (S3: the key starts with the prefix and the size is strictly greater). */
  const tiers = (rule: Record<string, unknown>, key: string, bytes: number): boolean =>
    key.startsWith(String(rule.Prefix ?? "")) && bytes > Number(rule.ObjectSizeGreaterThan ?? 0);

  it("moves objects under db/ larger than 128 KiB to STANDARD_IA and GLACIER_IR with one rule naming no database, and expires noncurrent versions a day after their lock, in every vault", () => {
    for (const c of cases()) {
      // Act
      const rules = rulesOf(c.stack, c.bucket);
      // Assess
      expect(rules, c.stack.stackName).toContainEqual(expect.objectContaining({ Id: "expire-noncurrent", NoncurrentVersionExpiration: { NoncurrentDays: c.lock + 1 }, Status: "Enabled" }));
      expect(rules.filter((r) => r.Transitions !== undefined), c.stack.stackName).toEqual([
        {
          Id: "tier-bulk",
          Prefix: "db/",
          ObjectSizeGreaterThan: 131072,
          Status: "Enabled",
          Transitions: [
            { StorageClass: "STANDARD_IA", TransitionInDays: c.ia },
            { StorageClass: "GLACIER_IR", TransitionInDays: c.ir },
          ],
        },
      ]);
    }
  });

  it("tiers packs, WAL segments and chunk objects of any database, and leaves history, .backup files and small manifests in STANDARD", () => {
    // Prepare
    const rule = rulesOf(defaultStack, defaultStack.vaultBucket).find((r) => r.Id === "tier-bulk")!;
    const sha = "ab".repeat(32);
    // Act + Assess
    expect(tiers(rule, `db/orders-db/packs/${sha}`, 32 * 2 ** 20)).toBe(true);
    expect(tiers(rule, "db/any-database-id/wal/00000001/000000010000000000000003", 16 * 2 ** 20)).toBe(true);
    expect(tiers(rule, `db/pg-main/chunks/${sha}`, 200 * 1024)).toBe(true);
    expect(tiers(rule, "db/pg-main/history/00000002.history", 120)).toBe(false);
    expect(tiers(rule, "db/pg-main/wal/00000001/000000010000000000000003.00000028.backup", 300)).toBe(false);
    expect(tiers(rule, "db/pg-main/snapshots/20261202T101500Z/manifest.json", 40 * 1024)).toBe(false);
    expect(tiers(rule, "db/pg-main/snapshots/x/manifest.json", 128 * 1024)).toBe(false);
  });

  it("never moves objects to a class a restore must thaw", () => {
    for (const c of cases()) {
      // Act
      const classes = rulesOf(c.stack, c.bucket).flatMap((r) => list(r.Transitions as { StorageClass: string }[] | undefined).map((t) => t.StorageClass));
      // Assess
      expect(classes.length).toBeGreaterThan(0);
      for (const cls of classes) expect(ARCHIVE_STORAGE_CLASSES.has(cls), cls).toBe(false);
    }
  });
});

describe("cdk-nag AWS Solutions checks", () => {
  it("leave no unsuppressed errors or warnings", () => {
    for (const stack of allStacks()) {
      const annotations = Annotations.fromStack(stack);
      const errors = annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      const warnings = annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      expect(errors.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
      expect(warnings.map((w) => `${w.id}: ${String(w.entry.data)}`)).toEqual([]);
    }
  });
});
