/**
 * Scheduled verification restores (issue #5), the AWS side of
 * statemachines/verify.asl.json:
 *
 *   EventBridge rule (schedule, input {}) -> verify state machine (Standard):
 *   a page of databases at a time (Collect writes the page's results under
 *   work/verify/ and returns a cursor; loop while there is a next page;
 *   Summary): SelectCandidates (Lambda) -> Map, 5 at a time: RunVerification
 *   (`ecs:runTask.sync` of the Fargate task `verify`, waited for) ->
 *   RecordResult (Lambda: catalog record + one CloudWatch metric per result,
 *   Embedded Metric Format, namespace walvault/Verification) -> SNS on failure.
 *
 * The tasks run in a VPC of their own with private isolated subnets only: no
 * internet gateway, no NAT, no public IP. They reach S3 and DynamoDB through
 * gateway endpoints, ECR (image pull) and CloudWatch Logs through interface
 * endpoints; their security group lets nothing in and only HTTPS out, and
 * the subnets have no route that leaves the VPC. The endpoint policies allow
 * what the task role allows (and ECR's image layers), so even a leaked
 * credential of another account cannot move data out through them.
 *
 * The task role reads the vault (db/*) and the catalog and writes
 * verification items (PutItem, UpdateItem); it can write nothing to S3 and
 * delete nothing anywhere. RecordResult may write a verification item only
 * when a task never reported (it records the "error" run).
 *
 * Image: built by the CDK CLI at deploy time from tasks/verify/Dockerfile with
 * the repository root as context (a tight allowlist, see
 * VERIFY_IMAGE_CONTEXT_EXCLUDE; synth only copies those files, no Docker), or
 * an ECR image URI given as context `walvault:verifyImage` (no Docker at all).
 */
import { join } from "node:path";
import { Aws, type CfnElement, Duration, Fn, IgnoreMode, RemovalPolicy, Stack, Token } from "aws-cdk-lib";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecr from "aws-cdk-lib/aws-ecr";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as sns from "aws-cdk-lib/aws-sns";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { NagSuppressions } from "cdk-nag";
import { Construct, type IConstruct, type Node } from "constructs";
import { z } from "zod";
import { DATABASE_ID_RE } from "../core/keys.js";
import { GENERIC_WAL_INDEX } from "../store/catalog-layout.js";
import type { VerifyPolicy } from "../core/verify-policy.js";
import { missingSubstitutions } from "./asl.js";
import { contextValue } from "./context.js";
import { createHandlerFunction, stepConfigs, stepSources } from "./handler-function.js";
import { stepNames } from "../core/workflows.js";

/** The container the ASL's ContainerOverrides name. */
export const VERIFY_CONTAINER_NAME = "verify";
export const DEFAULT_VERIFY_SCHEDULE = "rate(1 day)";
export const DEFAULT_VERIFY_EPHEMERAL_STORAGE_GIB = 100;
/** Fargate task size: 2 vCPU, 8 GiB (PostgreSQL recovery plus the agent's chunk cache). */
export const VERIFY_TASK_CPU = 2048;
export const VERIFY_TASK_MEMORY_MIB = 8192;
/** Where the task restores (the Dockerfile's WALVAULT_VERIFY_WORKDIR): on the task's ephemeral storage. */
export const VERIFY_WORKDIR = "/scratch";

/**
 * The image's build context is the repository root (the Dockerfile copies
 * package.json, package-lock.json, dist/, bin/ and statemachines/). This
 * allowlist, in .dockerignore syntax, is what synth copies into cdk.out and
 * what the asset hash covers: nothing else (node_modules, .git, cdk.out,
 * sources, tests, benchmarks) is read, and a change to infra/ or bench/
 * does not rebuild the image.
 */
export const VERIFY_IMAGE_CONTEXT_EXCLUDE: readonly string[] = [
  "*",
  "!package.json",
  "!package-lock.json",
  "!bin",
  "!statemachines",
  "!dist",
  "dist/infra",
  "dist/bench",
  "dist/bench-bundle",
  "dist/test",
  // The handlers' Lambda bundles for the local stack (npm run build): the task runs the agent, not them.
  "dist/bundles",
  "!tasks/verify/Dockerfile",
];

/** The verify workflow's Lambda steps: handler module (functions/verify/<file>.ts) and ASL placeholder. */
export const VERIFY_STEP_SOURCES = stepSources("verify");
/** Where the workflow keeps each page's results (incoming bucket; expires with work/); functions/verify/select.ts. */
export const VERIFY_WORK_PREFIX = "work/verify/";
export const VERIFY_STEPS = stepNames("verify");
export type VerifyStep = (typeof VERIFY_STEPS)[number];

// selectCandidates reads every registration, and per database its snapshot,
// WAL and verification records (whole partitions), and plans restorable
// windows; recordResult reads one database's verification records.
const VERIFY_STEP_CONFIG = stepConfigs("verify");

// ------------------------------------------------------------------ settings

const sqlCheckSchema = z
  .object({ name: z.string().min(1), query: z.string().min(1), database: z.string().min(1).optional(), expect: z.string().optional() })
  .strict();
const checksSchema = z
  .object({ sql: z.array(sqlCheckSchema).min(1).optional(), command: z.array(z.string().min(1)).min(1).optional() })
  .strict()
  .refine((c) => c.sql !== undefined || c.command !== undefined, { message: "give sql and/or command" });

/** User checks of one database (tasks/verify/main.ts): SQL for PostgreSQL, a command for generic databases. */
export type VerifyChecks = z.infer<typeof checksSchema>;
/** WALVAULT_VERIFY_CHECKS: one set for every database, or one per database id. */
export type VerifyChecksSetting = VerifyChecks | Readonly<Record<string, VerifyChecks>>;

const policySchema = z
  .object({
    periodDays: z.number().positive(),
    oldestEveryDays: z.number().positive(),
    runIntervalDays: z.number().positive(),
    maxPerRun: z.number().int().min(1),
    level: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]),
  })
  .partial()
  .strict();

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length > 0 ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; ");
}

/** Validates the user checks (context walvault:verifyChecks), as tasks/verify/main.ts reads them. */
export function parseVerifyChecks(value: unknown): VerifyChecksSetting {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`walvault:verifyChecks must be an object: { "sql"?, "command"? } or { "<databaseId>": { "sql"?, "command"? } }`);
  }
  if ("sql" in value || "command" in value) {
    const one = checksSchema.safeParse(value);
    if (!one.success) throw new Error(`walvault:verifyChecks: ${issues(one.error)}`);
    return one.data;
  }
  const perDatabase: Record<string, VerifyChecks> = {};
  for (const [db, checks] of Object.entries(value)) {
    if (!DATABASE_ID_RE.test(db)) throw new Error(`walvault:verifyChecks: '${db}' is neither sql, command nor a database id`);
    const parsed = checksSchema.safeParse(checks);
    if (!parsed.success) throw new Error(`walvault:verifyChecks.${db}: ${issues(parsed.error)}`);
    perDatabase[db] = parsed.data;
  }
  return perDatabase;
}

/** Validates a partial verification policy (context walvault:verifyPolicy, core/verify-policy.ts). */
export function parseVerifyPolicy(value: unknown): Partial<VerifyPolicy> {
  const parsed = policySchema.safeParse(value);
  if (!parsed.success) throw new Error(`walvault:verifyPolicy: ${issues(parsed.error)}`);
  const { level, ...rest } = parsed.data;
  return level === undefined ? rest : { ...rest, level };
}

const RATE_RE = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
const CRON_RE = /^cron\(\S+( \S+){5}\)$/;
const UNIT_DAYS: Record<string, number> = { minute: 1 / 1440, hour: 1 / 24, day: 1 };

/**
 * An EventBridge schedule expression: `rate(<n> <unit>)` (1 hour at least;
 * the unit singular for 1, plural otherwise, as EventBridge requires) or
 * `cron(<6 fields>)`. For a rate, also the days between runs (the policy's
 * runIntervalDays, which sizes each run so every snapshot is verified within
 * the period).
 */
export function parseVerifySchedule(expression: string): { schedule: events.Schedule; intervalDays?: number } {
  const text = expression.trim();
  const rate = RATE_RE.exec(text);
  if (rate) {
    const n = Number(rate[1]);
    const unit = rate[2]!;
    const singular = !unit.endsWith("s");
    if (n < 1 || singular !== (n === 1)) throw new Error(`walvault:verifySchedule '${text}': write rate(1 ${unit.replace(/s$/, "")}) or rate(<n> ${unit.replace(/s?$/, "s")})`);
    const days = n * UNIT_DAYS[unit.replace(/s$/, "")]!;
    if (days < 1 / 24) throw new Error(`walvault:verifySchedule '${text}': verification runs restore databases; schedule them at most hourly`);
    return { schedule: events.Schedule.expression(text), intervalDays: days };
  }
  if (CRON_RE.test(text)) return { schedule: events.Schedule.expression(text) };
  throw new Error(`walvault:verifySchedule must be rate(<n> <minutes|hours|days>) or cron(<6 fields>), got '${expression}'`);
}

/** Throws unless `gib` is a Fargate ephemeral storage size (21-200 GiB). */
export function checkEphemeralStorage(gib: number): void {
  if (!Number.isInteger(gib) || gib < 21 || gib > 200) {
    throw new Error(`walvault:verifyEphemeralStorageGiB must be a whole number of GiB between 21 and 200 (Fargate), got ${gib}`);
  }
}

const ECR_IMAGE_RE =
  /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?\/([a-z0-9]+(?:[._\/-][a-z0-9]+)*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@(sha256:[a-f0-9]{64}))$/;

export interface EcrImageRef {
  readonly partition: string;
  readonly account: string;
  readonly region: string;
  readonly repositoryName: string;
  /** A tag, or a digest `sha256:...`. */
  readonly tagOrDigest: string;
}

/**
 * Parses an ECR image URI `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`
 * (or `@sha256:<digest>`). The tasks have no internet access: only an ECR
 * repository in the stack's region (reached through the VPC endpoints; an
 * ECR pull-through cache works for public images) can be pulled.
 */
export function parseEcrImage(uri: string): EcrImageRef {
  const m = ECR_IMAGE_RE.exec(uri.trim());
  if (!m) {
    throw new Error(
      `walvault:verifyImage must be an ECR image URI <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> (or @sha256:<digest>); ` +
        `the verification tasks have no internet access, so other registries cannot be pulled. Got '${uri}'`,
    );
  }
  return {
    partition: m[3] === undefined ? "aws" : "aws-cn",
    account: m[1]!,
    region: m[2]!,
    repositoryName: m[4]!,
    tagOrDigest: m[5] ?? m[6]!,
  };
}

/** The verification settings; `verifySettingsFromContext` reads them from cdk.json / `-c`. */
export interface VerifySettings {
  /** EventBridge schedule expression of the verify workflow. @default "rate(1 day)" */
  readonly schedule?: string;
  /** An ECR image URI for the task. @default built from tasks/verify/Dockerfile by the CDK CLI at deploy time */
  readonly image?: string;
  /** The task's ephemeral storage, where it restores (21-200 GiB). @default 100 */
  readonly ephemeralStorageGiB?: number;
  /** User checks, passed to the task as WALVAULT_VERIFY_CHECKS. @default none (pg_amcheck only) */
  readonly checks?: VerifyChecksSetting;
  /** Overrides of the selection policy (core/verify-policy.ts), WALVAULT_VERIFY_POLICY. @default the built-in policy */
  readonly policy?: Partial<VerifyPolicy>;
}

/** Reads walvault:verifySchedule, walvault:verifyImage, walvault:verifyEphemeralStorageGiB, walvault:verifyChecks and walvault:verifyPolicy. */
export function verifySettingsFromContext(node: Node): VerifySettings {
  const given = (key: string): unknown => {
    const v = contextValue(node, key);
    return v === undefined || v === null || v === "" ? undefined : v;
  };
  const schedule = given("walvault:verifySchedule");
  const image = given("walvault:verifyImage");
  const storage = given("walvault:verifyEphemeralStorageGiB");
  const checks = given("walvault:verifyChecks");
  const policy = given("walvault:verifyPolicy");
  if (schedule !== undefined && typeof schedule !== "string") throw new Error(`context walvault:verifySchedule must be a string, got ${JSON.stringify(schedule)}`);
  if (image !== undefined && typeof image !== "string") throw new Error(`context walvault:verifyImage must be a string, got ${JSON.stringify(image)}`);
  if (schedule !== undefined) parseVerifySchedule(schedule);
  if (image !== undefined) parseEcrImage(image);
  const storageGiB = storage === undefined ? undefined : Number(storage);
  if (storageGiB !== undefined) checkEphemeralStorage(storageGiB);
  return {
    ...(schedule === undefined ? {} : { schedule }),
    ...(image === undefined ? {} : { image: image.trim() }),
    ...(storageGiB === undefined ? {} : { ephemeralStorageGiB: storageGiB }),
    ...(checks === undefined ? {} : { checks: parseVerifyChecks(checks) }),
    ...(policy === undefined ? {} : { policy: parseVerifyPolicy(policy) }),
  };
}

// ----------------------------------------------------------------- construct

export interface VerificationProps extends VerifySettings {
  /** Repository root (functions/, statemachines/, tasks/verify/Dockerfile, dist/). */
  readonly projectRoot: string;
  readonly incomingBucket: s3.IBucket;
  readonly vaultBucket: s3.IBucket;
  /** The vault's key: the task decrypts vault objects through S3 with it. */
  readonly vaultKey: kms.IKey;
  readonly catalog: dynamodb.ITableV2;
  /** The environment every handler gets (buckets, table, replicas). */
  readonly handlerEnvironment: Readonly<Record<string, string>>;
}

export class Verification extends Construct {
  public readonly vpc: ec2.Vpc;
  /** The tasks' security group: nothing in, HTTPS out. */
  public readonly taskSecurityGroup: ec2.SecurityGroup;
  /** The interface endpoints' security group: HTTPS in from the tasks only. */
  public readonly endpointSecurityGroup: ec2.SecurityGroup;
  public readonly s3Endpoint: ec2.GatewayVpcEndpoint;
  public readonly dynamoDbEndpoint: ec2.GatewayVpcEndpoint;
  public readonly interfaceEndpoints: readonly ec2.InterfaceVpcEndpoint[];
  public readonly flowLogGroup: logs.LogGroup;
  public readonly cluster: ecs.Cluster;
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly container: ecs.ContainerDefinition;
  /** What the verification code in the task may do. */
  public readonly taskRole: iam.Role;
  /** What ECS does for the task: pull the image, write its logs. */
  public readonly executionRole: iam.Role;
  public readonly taskLogGroup: logs.LogGroup;
  public readonly topicKey: kms.Key;
  /** Failed or errored verifications, one message each. */
  public readonly topic: sns.Topic;
  public readonly functions: Record<VerifyStep, NodejsFunction>;
  public readonly stateMachine: sfn.StateMachine;
  public readonly rule: events.Rule;
  /** The path of the verify ASL file. */
  public readonly aslFile: string;
  /** The schedule expression the rule uses. */
  public readonly scheduleExpression: string;
  /** The policy overrides the select step gets (WALVAULT_VERIFY_POLICY), if any. */
  public readonly policy: Partial<VerifyPolicy>;

  constructor(scope: Construct, id: string, props: VerificationProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const root = props.projectRoot;
    this.scheduleExpression = (props.schedule ?? DEFAULT_VERIFY_SCHEDULE).trim();
    const { schedule, intervalDays } = parseVerifySchedule(this.scheduleExpression);
    const storageGiB = props.ephemeralStorageGiB ?? DEFAULT_VERIFY_EPHEMERAL_STORAGE_GIB;
    checkEphemeralStorage(storageGiB);
    const checks = props.checks === undefined ? undefined : parseVerifyChecks(props.checks);
    const policy = parseVerifyPolicy(props.policy ?? {});
    // A rate schedule tells the policy how often it runs (a cron cannot: give
    // runIntervalDays in walvault:verifyPolicy then).
    this.policy = policy.runIntervalDays === undefined && intervalDays !== undefined ? { ...policy, runIntervalDays: intervalDays } : policy;

    // ------------------------------------------------------------- network

    this.vpc = new ec2.Vpc(this, "Vpc", {
      ipAddresses: ec2.IpAddresses.cidr("10.0.0.0/16"),
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: "Tasks", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
      restrictDefaultSecurityGroup: true,
    });
    const taskSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    this.flowLogGroup = new logs.LogGroup(this, "FlowLogs", {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc.addFlowLog("FlowLog", {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });

    this.taskSecurityGroup = new ec2.SecurityGroup(this, "TaskSecurityGroup", {
      vpc: this.vpc,
      description: "walvault verification tasks: nothing in; HTTPS out (the subnets only route to the VPC endpoints)",
      allowAllOutbound: false,
    });
    // The S3 and DynamoDB gateway endpoints are prefix-list routes (their ids
    // are only known in the account); the subnets have no other way out.
    this.taskSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS to the VPC endpoints");
    this.endpointSecurityGroup = new ec2.SecurityGroup(this, "EndpointSecurityGroup", {
      vpc: this.vpc,
      description: "walvault verification VPC endpoints: HTTPS from the verification tasks only",
      allowAllOutbound: false,
    });
    this.endpointSecurityGroup.addIngressRule(this.taskSecurityGroup, ec2.Port.tcp(443), "HTTPS from the verification tasks");

    // Gateway endpoints (no charge) for the data, with policies that allow
    // what the task role allows, plus ECR's image layers (served from S3).
    this.s3Endpoint = this.vpc.addGatewayEndpoint("S3Endpoint", { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [taskSubnets] });
    for (const st of this.vaultReadStatements(props, true)) this.s3Endpoint.addToPolicy(st);
    this.s3Endpoint.addToPolicy(
      new iam.PolicyStatement({
        sid: "EcrImageLayers",
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:GetObject"],
        resources: [`arn:${Aws.PARTITION}:s3:::prod-${Aws.REGION}-starport-layer-bucket/*`],
      }),
    );
    this.dynamoDbEndpoint = this.vpc.addGatewayEndpoint("DynamoDbEndpoint", {
      service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
      subnets: [taskSubnets],
    });
    for (const st of this.catalogStatements(props, true)) this.dynamoDbEndpoint.addToPolicy(st);

    // Interface endpoints for what ECS needs on the task's behalf: the image
    // (ECR API + registry) and the log driver (CloudWatch Logs). Task
    // credentials come from the ECS agent's endpoint, so STS is not needed;
    // KMS is called by S3, not by the task.
    const interfaceEndpoint = (endpointId: string, service: ec2.InterfaceVpcEndpointAwsService): ec2.InterfaceVpcEndpoint =>
      this.vpc.addInterfaceEndpoint(endpointId, {
        service,
        subnets: taskSubnets,
        privateDnsEnabled: true,
        securityGroups: [this.endpointSecurityGroup],
        open: false,
      });
    this.interfaceEndpoints = [
      interfaceEndpoint("EcrApiEndpoint", ec2.InterfaceVpcEndpointAwsService.ECR),
      interfaceEndpoint("EcrDockerEndpoint", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
      interfaceEndpoint("LogsEndpoint", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
    ];

    // ---------------------------------------------------------------- task

    this.cluster = new ecs.Cluster(this, "Cluster", { vpc: this.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });

    this.taskRole = new iam.Role(this, "TaskRole", {
      description: "walvault verification task: read the vault and the catalog, record verifications",
      // Confused-deputy guard: only ECS tasks of this account and region.
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com", {
        conditions: {
          ArnLike: { "aws:SourceArn": `arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
          StringEquals: { "aws:SourceAccount": Aws.ACCOUNT_ID },
        },
      }),
    });
    for (const st of [...this.vaultReadStatements(props, false), ...this.catalogStatements(props, false)]) this.taskRole.addToPolicy(st);
    this.taskRole.addToPolicy(
      new iam.PolicyStatement({
        sid: "DecryptVaultObjects",
        actions: ["kms:Decrypt"],
        resources: [props.vaultKey.keyArn],
        conditions: { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } },
      }),
    );
    this.executionRole = new iam.Role(this, "ExecutionRole", {
      description: "walvault verification task execution: pull the image, write the task's logs",
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
    });

    this.taskLogGroup = new logs.LogGroup(this, "TaskLogs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, "TaskDefinition", {
      cpu: VERIFY_TASK_CPU,
      memoryLimitMiB: VERIFY_TASK_MEMORY_MIB,
      ephemeralStorageGiB: storageGiB,
      runtimePlatform: { operatingSystemFamily: ecs.OperatingSystemFamily.LINUX, cpuArchitecture: ecs.CpuArchitecture.X86_64 },
      taskRole: this.taskRole,
      executionRole: this.executionRole,
    });
    this.container = this.taskDefinition.addContainer("Verify", {
      containerName: VERIFY_CONTAINER_NAME,
      image: this.containerImage(props.image, root),
      essential: true,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.taskLogGroup, streamPrefix: VERIFY_CONTAINER_NAME }),
      environment: {
        AWS_REGION: Aws.REGION,
        WALVAULT_INCOMING_BUCKET: props.incomingBucket.bucketName,
        WALVAULT_VAULT_BUCKET: props.vaultBucket.bucketName,
        WALVAULT_TABLE: props.catalog.tableName,
        WALVAULT_VERIFY_WORKDIR: VERIFY_WORKDIR,
        ...(checks === undefined ? {} : { WALVAULT_VERIFY_CHECKS: JSON.stringify(checks) }),
      },
    });

    // ------------------------------------------------------------ handlers

    const subnetIds = this.vpc.selectSubnets(taskSubnets).subnetIds;
    const environment: Record<string, Record<string, string>> = {
      selectCandidates: {
        ...props.handlerEnvironment,
        WALVAULT_VERIFY_SUBNETS: Fn.join(",", subnetIds),
        WALVAULT_VERIFY_SECURITY_GROUPS: this.taskSecurityGroup.securityGroupId,
        ...(Object.keys(this.policy).length === 0 ? {} : { WALVAULT_VERIFY_POLICY: JSON.stringify(this.policy) }),
      },
      recordResult: { ...props.handlerEnvironment },
    };
    const fns: Partial<Record<VerifyStep, NodejsFunction>> = {};
    for (const step of VERIFY_STEPS) {
      const src = VERIFY_STEP_SOURCES[step];
      fns[step] = createHandlerFunction(
        this,
        step === "selectCandidates" ? "SelectCandidates" : "RecordResult",
        join(root, "functions", "verify", `${src.file}.ts`),
        VERIFY_STEP_CONFIG[step],
        `walvault verify ${step} function`,
        environment[step]!,
        root,
      );
    }
    this.functions = fns as Record<VerifyStep, NodejsFunction>;
    const catalogGrant = (sid: string, ...actions: string[]): iam.PolicyStatement =>
      new iam.PolicyStatement({ sid, actions: actions.map((a) => `dynamodb:${a}`), resources: [props.catalog.tableArn] });
    // select: registrations (Query of the registry partition), one registration (GetItem), snapshot, WAL and verification records (Query). No Scan.
    this.functions.selectCandidates.addToRolePolicy(catalogGrant("ReadCatalog", "Query", "GetItem"));
    // select reads a walIndex-complete generic database's WAL by position range: Query on that one index.
    this.functions.selectCandidates.addToRolePolicy(
      new iam.PolicyStatement({ sid: "ReadGenericWalIndex", actions: ["dynamodb:Query"], resources: [`${props.catalog.tableArn}/index/${GENERIC_WAL_INDEX}`] }),
    );
    // select also collects each page's results under work/verify/ of the incoming bucket and reads them for the summary.
    this.functions.selectCandidates.addToRolePolicy(
      new iam.PolicyStatement({ sid: "PageResults", actions: ["s3:GetObject", "s3:PutObject"], resources: [props.incomingBucket.arnForObjects(`${VERIFY_WORK_PREFIX}*`)] }),
    );
    // recordResult: the run's record (Query), or an "error" run when the task never reported (PutItem).
    this.functions.recordResult.addToRolePolicy(catalogGrant("RecordVerification", "Query", "PutItem"));

    // -------------------------------------------------------- notification

    this.topicKey = new kms.Key(this, "TopicKey", {
      description: "walvault: encrypts the verification failure topic",
      enableKeyRotation: true,
      // Only messages in flight depend on it.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(30),
    });
    this.topic = new sns.Topic(this, "Topic", {
      displayName: "walvault verification failures",
      masterKey: this.topicKey,
      enforceSSL: true,
    });

    // ------------------------------------------------------------ workflow

    this.aslFile = join(root, "statemachines", "verify.asl.json");
    const substitutions: Record<string, string> = {
      SelectCandidatesFunctionArn: this.functions.selectCandidates.functionArn,
      RecordResultFunctionArn: this.functions.recordResult.functionArn,
      ClusterArn: this.cluster.clusterArn,
      TaskDefinitionArn: this.taskDefinition.taskDefinitionArn,
      TopicArn: this.topic.topicArn,
    };
    const missing = missingSubstitutions(this.aslFile, substitutions);
    if (missing.length > 0) throw new Error(`${this.aslFile} has placeholders without a substitution: ${missing.join(", ")}`);

    const workflowLogs = new logs.LogGroup(this, "WorkflowLogs", {
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const workflowRole = new iam.Role(this, "WorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault verify state machine",
    });
    for (const st of this.workflowStatements(stack)) workflowRole.addToPolicy(st);
    // Standard: a level-4 verification restores and recovers a database,
    // which can take hours. No execution timeout here: CDK cannot add one to
    // a definition deployed from a file (it would be silently dropped); a
    // bound belongs in the ASL (TimeoutSeconds). Stopping an execution stops
    // its running tasks (the .sync integration calls ecs:StopTask).
    this.stateMachine = new sfn.StateMachine(this, "Workflow", {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(this.aslFile),
      definitionSubstitutions: substitutions,
      role: workflowRole,
      logs: { destination: workflowLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });

    this.rule = new events.Rule(this, "Schedule", {
      description: `walvault: start the verify workflow (${this.scheduleExpression})`,
      schedule,
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          input: events.RuleTargetInput.fromObject({}),
          maxEventAge: Duration.hours(6),
          retryAttempts: 20,
        }),
      ],
    });

    this.suppressNagFindings(stack, props);
  }

  /** The image: an ECR image URI from the settings, else built from tasks/verify/Dockerfile at deploy time. */
  private containerImage(image: string | undefined, root: string): ecs.ContainerImage {
    if (image === undefined) {
      return ecs.ContainerImage.fromAsset(root, {
        file: join("tasks", "verify", "Dockerfile"),
        platform: Platform.LINUX_AMD64,
        ignoreMode: IgnoreMode.DOCKER,
        exclude: [...VERIFY_IMAGE_CONTEXT_EXCLUDE],
      });
    }
    const ref = parseEcrImage(image);
    const region = Stack.of(this).region;
    if (!Token.isUnresolved(region) && region !== ref.region) {
      throw new Error(`walvault:verifyImage is in ${ref.region}, the stack in ${region}: the tasks can only pull from ECR in their own region (no internet access)`);
    }
    const repository = ecr.Repository.fromRepositoryAttributes(this, "ImageRepository", {
      repositoryArn: `arn:${ref.partition}:ecr:${ref.region}:${ref.account}:repository/${ref.repositoryName}`,
      repositoryName: ref.repositoryName,
    });
    return ecs.ContainerImage.fromEcrRepository(repository, ref.tagOrDigest);
  }

  /**
   * Reading the vault: every object under db/* (manifests, chunks, WAL and
   * history files, any version the catalog names), and ListBucket so that a
   * missing key is a 404, not a 403. For the S3 endpoint (`endpoint`) the same
   * statements with any principal.
   */
  private vaultReadStatements(props: VerificationProps, endpoint: boolean): iam.PolicyStatement[] {
    const principals = endpoint ? { principals: [new iam.AnyPrincipal()] } : {};
    return [
      new iam.PolicyStatement({
        sid: "ReadVault",
        ...principals,
        actions: ["s3:GetObject", "s3:GetObjectVersion"],
        resources: [props.vaultBucket.arnForObjects("db/*")],
      }),
      new iam.PolicyStatement({ sid: "ListVault", ...principals, actions: ["s3:ListBucket"], resources: [props.vaultBucket.bucketArn] }),
    ];
  }

  /**
   * The catalog calls of the verification code (agent/verify.ts and the
   * restore it runs): read registrations, snapshots and WAL records
   * (GetItem, Query, BatchGetItem), write its verification record (PutItem)
   * and the snapshot's latest verification (UpdateItem). No Scan, no delete.
   */
  private catalogStatements(props: VerificationProps, endpoint: boolean): iam.PolicyStatement[] {
    const principals = endpoint ? { principals: [new iam.AnyPrincipal()] } : {};
    return [
      new iam.PolicyStatement({
        sid: "ReadCatalog",
        ...principals,
        actions: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"],
        resources: [props.catalog.tableArn],
      }),
      new iam.PolicyStatement({
        sid: "RecordVerifications",
        ...principals,
        actions: ["dynamodb:PutItem", "dynamodb:UpdateItem"],
        resources: [props.catalog.tableArn],
      }),
    ];
  }

  /**
   * The state machine's role: invoke its two functions; run the task
   * definition on this cluster only, passing its two roles to ECS only; watch
   * and stop the tasks it started (the .sync integration polls and, when an
   * execution stops, stops the task) through Step Functions' managed
   * EventBridge rule; publish to the topic with its key (through SNS only).
   * CDK adds the log delivery and X-Ray statements.
   */
  private workflowStatements(stack: Stack): iam.PolicyStatement[] {
    return [
      new iam.PolicyStatement({
        sid: "InvokeVerifySteps",
        actions: ["lambda:InvokeFunction"],
        resources: VERIFY_STEPS.map((s) => this.functions[s].functionArn),
      }),
      new iam.PolicyStatement({
        sid: "RunVerificationTask",
        actions: ["ecs:RunTask"],
        resources: [this.taskDefinition.taskDefinitionArn],
        conditions: { ArnEquals: { "ecs:cluster": this.cluster.clusterArn } },
      }),
      new iam.PolicyStatement({
        sid: "WatchVerificationTasks",
        actions: ["ecs:DescribeTasks", "ecs:StopTask"],
        resources: [`arn:${Aws.PARTITION}:ecs:${Aws.REGION}:${Aws.ACCOUNT_ID}:task/${this.cluster.clusterName}/*`],
      }),
      new iam.PolicyStatement({
        sid: "PassVerificationTaskRoles",
        actions: ["iam:PassRole"],
        resources: [this.taskRole.roleArn, this.executionRole.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } },
      }),
      new iam.PolicyStatement({
        sid: "EcsTaskEventsRule",
        actions: ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
        resources: [stack.formatArn({ service: "events", resource: "rule", resourceName: "StepFunctionsGetEventsForECSTaskRule" })],
      }),
      new iam.PolicyStatement({ sid: "NotifyFailures", actions: ["sns:Publish"], resources: [this.topic.topicArn] }),
      new iam.PolicyStatement({
        sid: "EncryptNotifications",
        actions: ["kms:GenerateDataKey", "kms:Decrypt"],
        resources: [this.topicKey.keyArn],
        conditions: { StringEquals: { "kms:ViaService": `sns.${Aws.REGION}.amazonaws.com` } },
      }),
    ];
  }

  private suppressNagFindings(stack: Stack, props: VerificationProps): void {
    const id = (c: IConstruct): string => stack.getLogicalId(c.node.defaultChild as CfnElement);
    const xray = "Resource::*";
    const vaultObjects = `Resource::<${id(props.vaultBucket)}.Arn>/db/*`;
    NagSuppressions.addResourceSuppressions(
      this.taskRole,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "The vault object wildcard ends the db/* prefix: a verification reads one snapshot's manifest, chunks and WAL files (one object each) of the database in its input.",
          appliesTo: [vaultObjects],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      this.executionRole,
      [{ id: "AwsSolutions-IAM5", reason: "ecr:GetAuthorizationToken supports no resource-level permissions (Resource '*'); the pull itself is on the image's repository only.", appliesTo: ["Resource::*"] }],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.taskDefinition, [
      {
        id: "AwsSolutions-ECS2",
        reason: "The environment holds names only (region, buckets, table, work directory, the user's check definitions): no credentials or secrets; the task gets AWS credentials from its role.",
      },
    ]);
    const pageResults = `Resource::<${id(props.incomingBucket)}.Arn>/${VERIFY_WORK_PREFIX}*`;
    for (const step of VERIFY_STEPS) {
      NagSuppressions.addResourceSuppressions(
        this.functions[step].role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*'); select's object wildcard ends the workflow's own work/verify/* prefix (one results object per page of databases).",
            appliesTo: step === "selectCandidates" ? [xray, pageResults] : [xray],
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
    NagSuppressions.addResourceSuppressions(
      this.stateMachine.role,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Step Functions' CloudWatch Logs delivery (logs:CreateLogDelivery etc.) and X-Ray support no resource-level permissions (Resource '*'); " +
            "the task ARNs of an ecs:runTask.sync are only known at run time, so DescribeTasks/StopTask are on this cluster's tasks (task/<cluster>/*).",
          appliesTo: ["Resource::*", `Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${id(this.cluster)}>/*`],
        },
      ],
      true,
    );
  }
}
