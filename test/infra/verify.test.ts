/**
 * The verify workflow (issue #5) as CloudFormation sees it: the EventBridge
 * schedule, the Standard state machine with `ecs:runTask.sync`, the Fargate
 * task definition and its image, the isolated network, the failure topic,
 * who may do what, and cdk-nag. Two primary stacks are synthesized once each:
 * "Default" exactly as `cdk synth` builds it from cdk.json, and "Custom" with
 * an ECR image, a cron schedule, 150 GiB of scratch space, user checks and a
 * policy override.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Aspects, CfnResource as CdkCfnResource, type Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { aslPlaceholders } from "../../infra/asl.js";
import { findProjectRoot, PrimaryStack, walvaultSettingsFromContext } from "../../infra/primary-stack.js";
import {
  parseEcrImage,
  parseVerifySchedule,
  VERIFY_CONTAINER_NAME,
  VERIFY_STEP_SOURCES,
  VERIFY_STEPS,
  type VerifySettings,
  verifySettingsFromContext,
} from "../../infra/verify.js";
import { bundledHandlerOutcomes, type CfnResource, deployedDefinition, list, logicalId as cfnLogicalId, NO_BUNDLING, render, roleStatements, type Statement, synthBundledApp } from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };

const CUSTOM_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/walvault/verify:2026.11.1";
const CUSTOM: VerifySettings = {
  image: CUSTOM_IMAGE,
  schedule: "cron(30 3 ? * SUN *)",
  ephemeralStorageGiB: 150,
  checks: { "pg-main": { sql: [{ name: "orders", query: "select count(*) > 0 from orders", expect: "t" }] } },
  policy: { level: 3, runIntervalDays: 7, periodDays: 28 },
};

let assembly: CloudAssembly;
let defaultStack: PrimaryStack;
let customStack: PrimaryStack;
let defaultTemplate: Template;
let customTemplate: Template;

const id = (stack: Stack, construct: IConstruct): string => cfnLogicalId(stack, construct);
const resources = (template: Template): Record<string, CfnResource> => template.toJSON().Resources as Record<string, CfnResource>;
const resource = (stack: PrimaryStack, template: Template, construct: IConstruct): CfnResource => resources(template)[id(stack, construct)]!;
const ofType = (template: Template, type: string): CfnResource[] => Object.values(resources(template)).filter((r) => r.Type === type);
const actionsOf = (statements: Statement[]): string[] => [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
const cases = (): { stack: PrimaryStack; template: Template }[] => [
  { stack: defaultStack, template: defaultTemplate },
  { stack: customStack, template: customTemplate },
];

beforeAll(() => {
  // Prepare: cdk.json's context (feature flags and walvault settings) and the
  // cdk-nag checks, as in infra/app.ts; error annotations stay annotations.
  const app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING, "@aws-cdk/core:annotationsInValidationReport": false } });
  defaultStack = new PrimaryStack(app, "Default", walvaultSettingsFromContext(app.node));
  customStack = new PrimaryStack(app, "Custom", {
    env: { account: "123456789012", region: "eu-west-1" },
    databases: ["pg-main"],
    verify: CUSTOM,
  });
  Aspects.of(app).add(new AwsSolutionsChecks());
  // Act: synthesize once.
  assembly = app.synth();
  defaultTemplate = Template.fromStack(defaultStack);
  customTemplate = Template.fromStack(customStack);
});

describe("verify settings", () => {
  it("come from context, JSON strings parsed as the command line passes them", () => {
    // Prepare
    const cli = new App({
      context: {
        "walvault:verifySchedule": "rate(12 hours)",
        "walvault:verifyImage": CUSTOM_IMAGE,
        "walvault:verifyEphemeralStorageGiB": "150",
        "walvault:verifyChecks": '{"sql":[{"name":"one","query":"select 1","expect":"1"}]}',
        "walvault:verifyPolicy": '{"level":2,"maxPerRun":3}',
      },
    });
    // Act
    const settings = verifySettingsFromContext(cli.node);
    // Assess
    expect(settings).toEqual({
      schedule: "rate(12 hours)",
      image: CUSTOM_IMAGE,
      ephemeralStorageGiB: 150,
      checks: { sql: [{ name: "one", query: "select 1", expect: "1" }] },
      policy: { level: 2, maxPerRun: 3 },
    });
    expect(walvaultSettingsFromContext(cli.node).verify).toEqual(settings);
  });

  it("default to nothing (the construct's defaults) without context", () => {
    expect(verifySettingsFromContext(new App().node)).toEqual({});
  });

  it("reject what the tasks or EventBridge could not use", () => {
    const bad: Record<string, unknown>[] = [
      { "walvault:verifySchedule": "rate(1 days)" },
      { "walvault:verifySchedule": "rate(15 minutes)" },
      { "walvault:verifySchedule": "every night" },
      { "walvault:verifySchedule": "cron(0 3 * * *)" },
      { "walvault:verifyEphemeralStorageGiB": 20 },
      { "walvault:verifyEphemeralStorageGiB": "201" },
      { "walvault:verifyEphemeralStorageGiB": "lots" },
      { "walvault:verifyImage": "docker.io/library/postgres:16" },
      { "walvault:verifyImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/walvault-verify" },
      { "walvault:verifyChecks": '{"sql":[{"name":"no query"}]}' },
      { "walvault:verifyChecks": '{"PG_MAIN":{"command":["true"]}}' },
      { "walvault:verifyChecks": '["select 1"]' },
      { "walvault:verifyPolicy": '{"level":5}' },
      { "walvault:verifyPolicy": '{"everyDays":3}' },
    ];
    for (const context of bad) {
      expect(() => verifySettingsFromContext(new App({ context }).node), JSON.stringify(context)).toThrow(/walvault:verify/);
    }
  });

  it("derive the policy's run interval from a rate schedule", () => {
    expect(parseVerifySchedule("rate(1 day)").intervalDays).toBe(1);
    expect(parseVerifySchedule("rate(12 hours)").intervalDays).toBe(0.5);
    expect(parseVerifySchedule("rate(7 days)").intervalDays).toBe(7);
    expect(parseVerifySchedule("cron(0 3 * * ? *)").intervalDays).toBeUndefined();
    expect(parseEcrImage(`${CUSTOM_IMAGE.split(":")[0]}@sha256:${"ab".repeat(32)}`)).toMatchObject({
      account: "123456789012",
      region: "eu-west-1",
      repositoryName: "walvault/verify",
      tagOrDigest: `sha256:${"ab".repeat(32)}`,
    });
  });

  it("refuse an image in another region than the stack: the tasks cannot leave the VPC", () => {
    // Prepare: no bundling, the constructor is what is tested.
    const app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING } });
    // Act + Assess
    expect(
      () =>
        new PrimaryStack(app, "Elsewhere", {
          env: { account: "123456789012", region: "us-east-1" },
          databases: ["pg-main"],
          verify: { image: CUSTOM_IMAGE },
        }),
    ).toThrow(/eu-west-1.*us-east-1/);
  });
});

describe("schedule", () => {
  it("is an EventBridge rule that starts the verify workflow with {} on the configured schedule", () => {
    for (const [{ stack, template }, expression] of [
      [cases()[0]!, "rate(1 day)"],
      [cases()[1]!, CUSTOM.schedule],
    ] as const) {
      // Prepare
      const machineId = id(stack, stack.verification.stateMachine);
      // Act
      const rules = ofType(template, "AWS::Events::Rule").filter(
        (r) => r.Properties?.ScheduleExpression !== undefined && render((r.Properties.Targets as { Arn: unknown }[])[0]?.Arn) === `<${machineId}>`,
      );
      // Assess
      expect(rules).toHaveLength(1);
      expect(rules[0]!.Properties).toMatchObject({
        ScheduleExpression: expression,
        State: "ENABLED",
        Targets: [expect.objectContaining({ Arn: { Ref: machineId }, Input: "{}", RoleArn: expect.anything() })],
      });
      expect(resource(stack, template, stack.verification.rule)).toBe(rules[0]);
    }
  });

  it("uses a target role that can only start the verify workflow", () => {
    // Prepare
    const rule = resource(defaultStack, defaultTemplate, defaultStack.verification.rule);
    const roleId = render((rule.Properties?.Targets as { RoleArn: unknown }[])[0]!.RoleArn).replace(/^<(.*)\.Arn>$/, "$1");
    // Act
    const statements = roleStatements(defaultTemplate, roleId);
    // Assess
    expect(actionsOf(statements)).toEqual(["states:StartExecution"]);
    expect(statements.flatMap((s) => list(s.Resource).map(render))).toEqual([`<${id(defaultStack, defaultStack.verification.stateMachine)}>`]);
  });
});

describe("verify state machine", () => {
  const machineOf = (stack: PrimaryStack, template: Template): CfnResource => resource(stack, template, stack.verification.stateMachine);

  it("is a Standard state machine, logging all events, traced with X-Ray", () => {
    // Prepare
    const logsId = id(defaultStack, defaultStack.verification.node.findChild("WorkflowLogs"));
    // Act
    const machine = machineOf(defaultStack, defaultTemplate);
    // Assess
    expect(machine.Properties).toMatchObject({
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: "ALL", Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { "Fn::GetAtt": [logsId, "Arn"] } } }] },
    });
  });

  it("runs the Fargate task with ecs:runTask.sync on the cluster and notifies the topic, with every placeholder substituted", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const machine = machineOf(stack, template);
      const substitutions = machine.Properties?.DefinitionSubstitutions as Record<string, unknown>;
      // Act
      const definition = deployedDefinition(machine, assembly.directory);
      // Assess
      expect(aslPlaceholders(v.aslFile)).toEqual(["ClusterArn", "RecordResultFunctionArn", "SelectCandidatesFunctionArn", "TaskDefinitionArn", "TopicArn"]);
      expect(substitutions).toEqual({
        SelectCandidatesFunctionArn: { "Fn::GetAtt": [id(stack, v.functions.selectCandidates), "Arn"] },
        RecordResultFunctionArn: { "Fn::GetAtt": [id(stack, v.functions.recordResult), "Arn"] },
        ClusterArn: { "Fn::GetAtt": [id(stack, v.cluster), "Arn"] },
        TaskDefinitionArn: { Ref: id(stack, v.taskDefinition) },
        TopicArn: { Ref: id(stack, v.topic) },
      });
      expect(definition).not.toMatch(/\$\{/);
      expect(definition).toContain("arn:aws:states:::ecs:runTask.sync");
      const parsed = JSON.parse(definition) as {
        States: {
          SelectCandidates: { Resource: string };
          VerifyEach: {
            MaxConcurrency: number;
            ItemProcessor: {
              States: {
                RunVerification: {
                  Resource: string;
                  Parameters: { LaunchType: string; Cluster: string; TaskDefinition: string; Overrides: { ContainerOverrides: { Name: string }[] } };
                };
                RecordResult: { Resource: string };
                Notify: { Resource: string; Parameters: { TopicArn: string } };
              };
            };
          };
        };
      };
      const item = parsed.States.VerifyEach.ItemProcessor.States;
      expect(parsed.States.SelectCandidates.Resource).toBe(`<${id(stack, v.functions.selectCandidates)}.Arn>`);
      expect(parsed.States.VerifyEach.MaxConcurrency).toBe(5);
      expect(item.RunVerification.Resource).toBe("arn:aws:states:::ecs:runTask.sync");
      expect(item.RunVerification.Parameters).toMatchObject({
        LaunchType: "FARGATE",
        Cluster: `<${id(stack, v.cluster)}.Arn>`,
        TaskDefinition: `<${id(stack, v.taskDefinition)}>`,
      });
      expect(item.RunVerification.Parameters.Overrides.ContainerOverrides.map((o) => o.Name)).toEqual([VERIFY_CONTAINER_NAME]);
      expect(item.RecordResult.Resource).toBe(`<${id(stack, v.functions.recordResult)}.Arn>`);
      expect(item.Notify).toMatchObject({ Resource: "arn:aws:states:::sns:publish", Parameters: { TopicArn: `<${id(stack, v.topic)}>` } });
    }
  });

  it("may invoke its two functions, run only its task definition on its cluster, pass only the task's roles, and publish only to its topic", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const statements = roleStatements(template, id(stack, v.stateMachine.role));
      const on = (action: string): string[] =>
        statements.filter((s) => list(s.Action).includes(action)).flatMap((s) => list(s.Resource).map(render)).sort();
      const conditionOf = (action: string): Statement["Condition"] => statements.find((s) => list(s.Action).includes(action))?.Condition;
      // Act
      const actions = actionsOf(statements);
      // Assess
      expect(on("lambda:InvokeFunction")).toEqual(VERIFY_STEPS.map((s) => `<${id(stack, v.functions[s])}.Arn>`).sort());
      expect(on("ecs:RunTask")).toEqual([`<${id(stack, v.taskDefinition)}>`]);
      expect(render(conditionOf("ecs:RunTask")?.ArnEquals?.["ecs:cluster"])).toBe(`<${id(stack, v.cluster)}.Arn>`);
      for (const a of ["ecs:DescribeTasks", "ecs:StopTask"]) {
        expect(on(a)).toEqual([`arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${id(stack, v.cluster)}>/*`]);
      }
      expect(on("iam:PassRole")).toEqual([`<${id(stack, v.executionRole)}.Arn>`, `<${id(stack, v.taskRole)}.Arn>`].sort());
      expect(conditionOf("iam:PassRole")).toEqual({ StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } });
      for (const a of ["events:PutTargets", "events:PutRule", "events:DescribeRule"]) {
        expect(on(a)).toHaveLength(1);
        expect(on(a)[0]).toMatch(/:rule\/StepFunctionsGetEventsForECSTaskRule$/);
      }
      expect(on("sns:Publish")).toEqual([`<${id(stack, v.topic)}>`]);
      expect(on("kms:GenerateDataKey")).toEqual([`<${id(stack, v.topicKey)}.Arn>`]);
      expect(on("kms:Decrypt")).toEqual([`<${id(stack, v.topicKey)}.Arn>`]);
      // Nothing of the data: the task and the functions read and record, not the workflow.
      expect(actions.filter((a) => /^(s3|dynamodb):/.test(a))).toEqual([]);
      expect(actions.filter((a) => a.includes("*"))).toEqual([]);
    }
  });
});

describe("Fargate task definition", () => {
  it("is a Fargate task of 2 vCPU and 8 GiB with the configured ephemeral storage and one container named verify", () => {
    for (const [{ stack, template }, storage] of [
      [cases()[0]!, 100],
      [cases()[1]!, 150],
    ] as const) {
      // Prepare
      const v = stack.verification;
      // Act
      const task = resource(stack, template, v.taskDefinition);
      const containers = task.Properties?.ContainerDefinitions as Record<string, unknown>[];
      // Assess
      expect(task.Properties).toMatchObject({
        RequiresCompatibilities: ["FARGATE"],
        NetworkMode: "awsvpc",
        Cpu: "2048",
        Memory: "8192",
        EphemeralStorage: { SizeInGiB: storage },
        RuntimePlatform: { OperatingSystemFamily: "LINUX", CpuArchitecture: "X86_64" },
        TaskRoleArn: { "Fn::GetAtt": [id(stack, v.taskRole), "Arn"] },
        ExecutionRoleArn: { "Fn::GetAtt": [id(stack, v.executionRole), "Arn"] },
      });
      expect(containers).toHaveLength(1);
      expect(containers[0]).toMatchObject({
        Name: "verify",
        Essential: true,
        LogConfiguration: { LogDriver: "awslogs", Options: { "awslogs-group": { Ref: id(stack, v.taskLogGroup) } } },
      });
    }
  });

  it("tells the task where the vault and the catalog are, and passes the user checks when configured", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const task = resource(stack, template, stack.verification.taskDefinition);
      // Act
      const env = Object.fromEntries(
        ((task.Properties?.ContainerDefinitions as { Environment: { Name: string; Value: unknown }[] }[])[0]!.Environment).map((e) => [e.Name, e.Value]),
      );
      // Assess
      expect(env).toMatchObject({
        AWS_REGION: { Ref: "AWS::Region" },
        WALVAULT_INCOMING_BUCKET: { Ref: id(stack, stack.incomingBucket) },
        WALVAULT_VAULT_BUCKET: { Ref: id(stack, stack.vaultBucket) },
        WALVAULT_TABLE: { Ref: id(stack, stack.catalog) },
        WALVAULT_VERIFY_WORKDIR: "/scratch",
      });
      if (stack === defaultStack) expect(env.WALVAULT_VERIFY_CHECKS).toBeUndefined();
      else expect(JSON.parse(String(env.WALVAULT_VERIFY_CHECKS))).toEqual(CUSTOM.checks);
    }
  });

  it("is built from tasks/verify/Dockerfile for linux/amd64, from an allowlisted context that synth copies without Docker", () => {
    // Prepare
    const manifest = JSON.parse(readFileSync(join(assembly.directory, `${defaultStack.artifactId}.assets.json`), "utf8")) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform: string } }>;
    };
    const images = Object.values(manifest.dockerImages);
    const dir = join(assembly.directory, images[0]!.source.directory);
    const files: string[] = [];
    const walk = (rel: string): void => {
      for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
        const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory()) walk(path);
        else files.push(path);
      }
    };
    // Act
    walk("");
    const bytes = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    // Assess
    expect(images).toHaveLength(1);
    expect(images[0]!.source).toMatchObject({ dockerFile: "tasks/verify/Dockerfile", platform: "linux/amd64" });
    expect(files).toEqual(expect.arrayContaining(["package.json", "package-lock.json", "tasks/verify/Dockerfile", "statemachines/verify.asl.json"]));
    for (const f of files) {
      expect(f, f).toMatch(/^(package\.json|package-lock\.json|bin\/|dist\/|statemachines\/|tasks\/verify\/Dockerfile$)/);
      expect(f, f).not.toMatch(/^dist\/(infra|bench|bench-bundle|bundles|test)\//);
    }
    expect(bytes).toBeLessThan(20 * 1024 * 1024);
    const image = render((resource(defaultStack, defaultTemplate, defaultStack.verification.taskDefinition).Properties?.ContainerDefinitions as { Image: unknown }[])[0]!.Image);
    expect(image).toContain("container-assets");
  });

  it("has in its context everything the task's entrypoint imports (it loads and asks for its input)", () => {
    // Prepare: the staged context plus the dependencies the Dockerfile installs.
    const manifest = JSON.parse(readFileSync(join(assembly.directory, `${defaultStack.artifactId}.assets.json`), "utf8")) as {
      dockerImages: Record<string, { source: { directory: string } }>;
    };
    const staged = join(assembly.directory, Object.values(manifest.dockerImages)[0]!.source.directory);
    const copy = mkdtempSync(join(tmpdir(), "walvault-verify-image-"));
    try {
      cpSync(staged, copy, { recursive: true });
      symlinkSync(join(root, "node_modules"), join(copy, "node_modules"), "dir");
      const entrypoint = join(copy, "dist", "tasks", "verify", "main.js");
      expect(existsSync(entrypoint), "dist/tasks/verify/main.js is missing: run `npm run build` first").toBe(true);
      // Act
      const run = spawnSync(process.execPath, [entrypoint], { cwd: copy, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } });
      // Assess: exit 2 (could not verify) naming the missing input, not a missing module.
      expect(run.stderr).toContain("WALVAULT_VERIFY_INPUT");
      expect(run.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find/);
      expect(run.status).toBe(2);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it("uses the configured ECR image instead, and may pull only from its repository", () => {
    // Prepare
    const v = customStack.verification;
    const task = resource(customStack, customTemplate, v.taskDefinition);
    // Act
    const image = render((task.Properties?.ContainerDefinitions as { Image: unknown }[])[0]!.Image);
    const statements = roleStatements(customTemplate, id(customStack, v.executionRole));
    const pulls = statements.filter((s) => list(s.Action).includes("ecr:BatchGetImage")).flatMap((s) => list(s.Resource).map(render));
    // Assess
    expect(image).toBe(CUSTOM_IMAGE.replace(".amazonaws.com/", ".<AWS::URLSuffix>/"));
    expect(pulls).toEqual(["arn:aws:ecr:eu-west-1:123456789012:repository/walvault/verify"]);
    expect(Object.keys((JSON.parse(readFileSync(join(assembly.directory, `${customStack.artifactId}.assets.json`), "utf8")) as { dockerImages?: object }).dockerImages ?? {})).toEqual([]);
  });
});

describe("network", () => {
  it("has private isolated subnets only: no internet or NAT gateway, no route out of the VPC, no public IPs", () => {
    for (const { template } of cases()) {
      // Act
      const subnets = ofType(template, "AWS::EC2::Subnet");
      // Assess
      for (const type of ["AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::EgressOnlyInternetGateway", "AWS::EC2::Route", "AWS::EC2::EIP"]) {
        expect(ofType(template, type), type).toEqual([]);
      }
      expect(ofType(template, "AWS::EC2::VPC")).toHaveLength(1);
      expect(subnets).toHaveLength(2);
      for (const s of subnets) expect(s.Properties?.MapPublicIpOnLaunch).toBe(false);
    }
  });

  it("reaches S3 and DynamoDB through gateway endpoints whose policies allow only what the task needs", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const routeTables = v.vpc.isolatedSubnets.map((s) => stack.resolve(s.routeTable.routeTableId) as unknown);
      const vault = `<${id(stack, stack.vaultBucket)}.Arn>`;
      // Act
      const s3 = resource(stack, template, v.s3Endpoint);
      const ddb = resource(stack, template, v.dynamoDbEndpoint);
      const s3Statements = (s3.Properties?.PolicyDocument as { Statement: Statement[] }).Statement;
      const ddbStatements = (ddb.Properties?.PolicyDocument as { Statement: Statement[] }).Statement;
      // Assess
      for (const endpoint of [s3, ddb]) expect(endpoint.Properties).toMatchObject({ VpcEndpointType: "Gateway", RouteTableIds: routeTables });
      expect(render(s3.Properties?.ServiceName)).toBe("com.amazonaws.<AWS::Region>.s3");
      expect(render(ddb.Properties?.ServiceName)).toBe("com.amazonaws.<AWS::Region>.dynamodb");
      expect(s3Statements.flatMap((s) => list(s.Resource).map(render)).sort()).toEqual(
        [`${vault}/db/*`, vault, "arn:<AWS::Partition>:s3:::prod-<AWS::Region>-starport-layer-bucket/*"].sort(),
      );
      expect(actionsOf(s3Statements)).toEqual(["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"]);
      expect(ddbStatements.flatMap((s) => list(s.Resource).map(render))).toEqual([`<${id(stack, stack.catalog)}.Arn>`, `<${id(stack, stack.catalog)}.Arn>`]);
      expect(actionsOf(ddbStatements)).toEqual(["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]);
    }
  });

  it("reaches ECR and CloudWatch Logs through private interface endpoints open to the tasks only", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const endpointSg = id(stack, v.endpointSecurityGroup);
      // Act
      const endpoints = v.interfaceEndpoints.map((e) => resource(stack, template, e));
      const ingress = ofType(template, "AWS::EC2::SecurityGroupIngress").filter((r) => render(r.Properties?.GroupId) === `<${endpointSg}.GroupId>`);
      // Assess
      expect(endpoints.map((e) => render(e.Properties?.ServiceName).replace(/^com\.amazonaws\.[^.]+\./, "")).sort()).toEqual(["ecr.api", "ecr.dkr", "logs"]);
      for (const e of endpoints) {
        expect(e.Properties).toMatchObject({ VpcEndpointType: "Interface", PrivateDnsEnabled: true, SecurityGroupIds: [{ "Fn::GetAtt": [endpointSg, "GroupId"] }] });
      }
      expect(resource(stack, template, v.endpointSecurityGroup).Properties?.SecurityGroupIngress).toBeUndefined();
      expect(ingress).toHaveLength(1);
      expect(ingress[0]!.Properties).toMatchObject({
        IpProtocol: "tcp",
        FromPort: 443,
        ToPort: 443,
        SourceSecurityGroupId: { "Fn::GetAtt": [id(stack, v.taskSecurityGroup), "GroupId"] },
      });
    }
  });

  it("gives the tasks a security group with nothing in and only HTTPS out, and the workflow its subnets and group", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const sgId = id(stack, v.taskSecurityGroup);
      // Act
      const sg = resource(stack, template, v.taskSecurityGroup);
      const ingress = ofType(template, "AWS::EC2::SecurityGroupIngress").filter((r) => render(r.Properties?.GroupId) === `<${sgId}.GroupId>`);
      const env = (resource(stack, template, v.functions.selectCandidates).Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
      // Assess
      expect(sg.Properties?.SecurityGroupIngress).toBeUndefined();
      expect(ingress).toEqual([]);
      expect(sg.Properties?.SecurityGroupEgress).toEqual([expect.objectContaining({ IpProtocol: "tcp", FromPort: 443, ToPort: 443 })]);
      expect(env.WALVAULT_VERIFY_SUBNETS).toEqual({ "Fn::Join": [",", v.vpc.isolatedSubnets.map((s) => stack.resolve(s.subnetId) as unknown)] });
      expect(env.WALVAULT_VERIFY_SECURITY_GROUPS).toEqual({ "Fn::GetAtt": [sgId, "GroupId"] });
    }
  });

  it("logs the VPC's flows to CloudWatch Logs", () => {
    // Act
    const flowLogs = ofType(defaultTemplate, "AWS::EC2::FlowLog");
    // Assess
    expect(flowLogs).toHaveLength(1);
    expect(flowLogs[0]!.Properties).toMatchObject({
      ResourceId: { Ref: id(defaultStack, defaultStack.verification.vpc) },
      ResourceType: "VPC",
      TrafficType: "ALL",
      LogDestinationType: "cloud-watch-logs",
      LogGroupName: { Ref: id(defaultStack, defaultStack.verification.flowLogGroup) },
    });
  });

  it("runs the tasks in a cluster with Container Insights", () => {
    expect(resource(defaultStack, defaultTemplate, defaultStack.verification.cluster).Properties?.ClusterSettings).toEqual([
      { Name: "containerInsights", Value: "enabled" },
    ]);
  });
});

describe("failure topic", () => {
  it("is encrypted with its own rotated key and refuses publishing without TLS", () => {
    // Prepare
    const v = defaultStack.verification;
    // Act
    const topic = resource(defaultStack, defaultTemplate, v.topic);
    const policies = ofType(defaultTemplate, "AWS::SNS::TopicPolicy").filter((p) => list(p.Properties?.Topics as unknown[]).some((t) => render(t) === `<${id(defaultStack, v.topic)}>`));
    const statements = policies.flatMap((p) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement);
    // Assess
    expect(render(topic.Properties?.KmsMasterKeyId)).toBe(`<${id(defaultStack, v.topicKey)}.Arn>`);
    expect(resource(defaultStack, defaultTemplate, v.topicKey).Properties?.EnableKeyRotation).toBe(true);
    expect(statements).toContainEqual(expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }));
  });

  it("and the state machine's ARN are stack outputs", () => {
    // Act
    const outputs = defaultTemplate.toJSON().Outputs as Record<string, { Value: unknown }>;
    // Assess
    expect(outputs.VerifyStateMachineArn?.Value).toEqual({ Ref: id(defaultStack, defaultStack.verification.stateMachine) });
    expect(outputs.VerifyTopicArn?.Value).toEqual({ Ref: id(defaultStack, defaultStack.verification.topic) });
  });
});

describe("least privilege", () => {
  it("the task role reads the vault and the catalog, records verifications, and writes or deletes nothing else", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const vault = `<${id(stack, stack.vaultBucket)}.Arn>`;
      const statements = roleStatements(template, id(stack, v.taskRole));
      const on = (action: string): string[] => statements.filter((s) => list(s.Action).includes(action)).flatMap((s) => list(s.Resource).map(render));
      // Act
      const actions = actionsOf(statements);
      // Assess
      expect(actions).toEqual([
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
      ]);
      expect(on("s3:GetObject")).toEqual([`${vault}/db/*`]);
      expect(on("s3:ListBucket")).toEqual([vault]);
      for (const a of ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]) expect(on(a)).toEqual([`<${id(stack, stack.catalog)}.Arn>`]);
      const kms = statements.find((s) => list(s.Action).includes("kms:Decrypt"))!;
      expect(list(kms.Resource).map(render)).toEqual([`<${id(stack, stack.vaultKey)}.Arn>`]);
      expect(render(kms.Condition?.StringEquals?.["kms:ViaService"])).toBe("s3.<AWS::Region>.amazonaws.com");
    }
  });

  it("the task role can only be assumed by ECS tasks of this account", () => {
    // Act
    const trust = (resource(defaultStack, defaultTemplate, defaultStack.verification.taskRole).Properties?.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
    // Assess
    expect(trust).toHaveLength(1);
    expect(trust[0]!.Principal).toEqual({ Service: "ecs-tasks.amazonaws.com" });
    expect(trust[0]!.Condition?.StringEquals).toEqual({ "aws:SourceAccount": { Ref: "AWS::AccountId" } });
    expect(render(trust[0]!.Condition?.ArnLike?.["aws:SourceArn"])).toBe("arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:*");
  });

  it("of the verify workflow's roles only the task role writes verification items; RecordResult may only add an error run", () => {
    for (const { stack, template } of cases()) {
      // Prepare
      const v = stack.verification;
      const roles: Record<string, IConstruct> = {
        task: v.taskRole,
        execution: v.executionRole,
        workflow: v.stateMachine.role,
        selectCandidates: v.functions.selectCandidates.role!,
        recordResult: v.functions.recordResult.role!,
      };
      // Act
      const data = Object.fromEntries(
        Object.entries(roles).map(([name, role]) => [name, actionsOf(roleStatements(template, id(stack, role))).filter((a) => /^(s3|dynamodb):/.test(a))]),
      );
      // Assess
      expect(data).toEqual({
        task: ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"],
        execution: [],
        workflow: [],
        selectCandidates: ["dynamodb:GetItem", "dynamodb:Query", "s3:GetObject", "s3:PutObject"],
        recordResult: ["dynamodb:PutItem", "dynamodb:Query"],
      });
      // select's objects are its own page results under work/verify/ of the incoming bucket, nothing else
      const selectObjects = roleStatements(template, id(stack, v.functions.selectCandidates.role!)).filter((s) => list(s.Action).some((a) => a.startsWith("s3:")));
      expect(selectObjects.flatMap((s) => list(s.Resource).map((r) => render(r)))).toEqual([`<${id(stack, stack.incomingBucket)}.Arn>/work/verify/*`]);
      // select Queries the table and, of its indexes, only the position index of generic WAL
      const selectCatalog = roleStatements(template, id(stack, v.functions.selectCandidates.role!)).filter((s) => list(s.Action).some((a) => a.startsWith("dynamodb:")));
      expect(selectCatalog.flatMap((s) => list(s.Resource).map((r) => render(r))).filter((r) => r.includes("/index/"))).toEqual([expect.stringMatching(/\.Arn>\/index\/gpos$/)]);
      const execution = actionsOf(roleStatements(template, id(stack, v.executionRole)));
      expect(execution.every((a) => /^(ecr|logs):/.test(a)), execution.join(", ")).toBe(true);
    }
  });
});

describe("verify functions", () => {
  it("run on Node 22, arm64, with the walvault environment, and the select step gets the run interval of the schedule", () => {
    for (const [{ stack, template }, policy] of [
      [cases()[0]!, { runIntervalDays: 1 }],
      [cases()[1]!, CUSTOM.policy],
    ] as const) {
      for (const step of VERIFY_STEPS) {
        // Act
        const fn = resource(stack, template, stack.verification.functions[step]);
        const vars = (fn.Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
        // Assess
        expect(fn.Properties).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"], Handler: "index.handler", TracingConfig: { Mode: "Active" } });
        expect(vars).toMatchObject({
          WALVAULT_INCOMING_BUCKET: { Ref: id(stack, stack.incomingBucket) },
          WALVAULT_VAULT_BUCKET: { Ref: id(stack, stack.vaultBucket) },
          WALVAULT_TABLE: { Ref: id(stack, stack.catalog) },
        });
        if (step === "selectCandidates") expect(JSON.parse(String(vars.WALVAULT_VERIFY_POLICY))).toEqual(policy);
        else expect(vars.WALVAULT_VERIFY_POLICY).toBeUndefined();
      }
    }
  });

  it("are ESM bundles of functions/verify that load on Node 22 and reject malformed input by class name", async () => {
    // Prepare: the app as `cdk synth` builds it (handlers bundled by esbuild), in a child process.
    const outdir = await synthBundledApp(findProjectRoot(), cdkJson.context);
    // Act
    const outcomes = await bundledHandlerOutcomes(outdir, VERIFY_STEPS.map((step) => id(defaultStack, defaultStack.verification.functions[step])), { level: "high", candidate: 1 });
    // Assess
    expect(Object.keys(VERIFY_STEP_SOURCES).sort()).toEqual([...VERIFY_STEPS].sort());
    expect(outcomes).toEqual(["InvalidInputError", "InvalidInputError"]);
  }, 600_000);
});

describe("cdk-nag AWS Solutions checks", () => {
  it("leave no unsuppressed errors or warnings, and every verify suppression states its reason", () => {
    for (const stack of [defaultStack, customStack]) {
      // Prepare
      const annotations = Annotations.fromStack(stack);
      // Act
      const errors = annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      const warnings = annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"));
      // Assess
      expect(errors.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
      expect(warnings.map((w) => `${w.id}: ${String(w.entry.data)}`)).toEqual([]);
    }
    const suppressions = defaultStack.verification.node
      .findAll()
      .filter((c): c is CdkCfnResource => c instanceof CdkCfnResource)
      .flatMap((c) => (c.getMetadata("cdk_nag") as { rules_to_suppress?: { id: string; reason: string }[] } | undefined)?.rules_to_suppress ?? []);
    expect(suppressions.length).toBeGreaterThan(0);
    for (const s of suppressions) expect(s.reason.length).toBeGreaterThan(30);
  });
});
