/**
 * The retention workflow in AWS (issue #6), the AWS side of
 * statemachines/retention.asl.json:
 *
 *   EventBridge rule (schedule, input {}) -> retention state machine
 *   (Standard), a page of databases at a time: Plan (Lambda) -> dry run?
 *   Collect the plans : Map over the page's databases, 2 at a time: Execute
 *   (Lambda, in bounded rounds) -> Collect the results (work/ object, the
 *   state keeps a cursor) -> next page? loop : Summary (the plan Lambda).
 *
 * What the functions may do, and nothing more:
 *   - plan reads the catalog (registrations by Query of the registry
 *     partition, a page at a time, one by GetItem, WAL and snapshot records by Query; no Scan), writes the deletion lists of a large
 *     plan and each page's outcome under work/retention/ of the incoming bucket and reads the pages back for the summary;
 *   - execute reads the catalog, deletes records (DeleteItem for a snapshot,
 *     BatchWriteItem for WAL and chunk records, and for the audit items it
 *     writes), reads the kept snapshots' manifests in the primary vault (the
 *     mark phase; kms:Decrypt through S3), deletes vault objects and object
 *     versions under db/* in the primary and every replica vault, and reads,
 *     writes and deletes its own work/retention/ objects (lists, journal, the chunk sweep's mark and tallies).
 *   - Neither may s3:BypassGovernanceRetention, change retention or legal
 *     holds: an object still under Object Lock (GOVERNANCE or COMPLIANCE)
 *     stays, and the workflow reports it.
 */
import { join } from "node:path";
import { Aws, type CfnElement, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { NagSuppressions } from "cdk-nag";
import { Construct, type Node } from "constructs";
import { missingSubstitutions } from "./asl.js";
import { contextValue } from "./context.js";
import { createHandlerFunction, stepConfigs, stepSources, suppressWorkflowRoleWildcards } from "./handler-function.js";
import { stepNames } from "../core/workflows.js";
import type { VaultLifecycle } from "./vault.js";

export const DEFAULT_RETENTION_SCHEDULE = "rate(1 day)";
export const DEFAULT_RETENTION_GRACE_HOURS = 24;
/** Where the workflow keeps large plans' lists and its round journals (incoming bucket; expires with work/). */
export const RETENTION_WORK_PREFIX = "work/retention/";

/** The retention workflow's Lambda steps: handler module (functions/retention/<file>.ts) and ASL placeholder. */
export const RETENTION_STEP_SOURCES = stepSources("retention");
export const RETENTION_STEPS = stepNames("retention");
export type RetentionStep = (typeof RETENTION_STEPS)[number];

// plan reads every registration and per database its snapshot and WAL
// records; an Execute round deletes up to 500 snapshots and 5,000 WAL files
// (functions/retention/common.ts) in every region, and the last one reads
// every kept manifest and sweeps chunks.
const RETENTION_STEP_CONFIG = stepConfigs("retention");

const RATE_RE = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
const CRON_RE = /^cron\(\S+( \S+){5}\)$/;

/** An EventBridge schedule expression: `rate(<n> <unit>)` (hourly at most) or `cron(<6 fields>)`. */
export function parseRetentionSchedule(expression: string): events.Schedule {
  const text = expression.trim();
  const rate = RATE_RE.exec(text);
  if (rate) {
    const n = Number(rate[1]);
    const unit = rate[2]!;
    if (n < 1 || !unit.endsWith("s") !== (n === 1)) throw new Error(`walvault:retentionSchedule '${text}': write rate(1 ${unit.replace(/s$/, "")}) or rate(<n> ${unit.replace(/s?$/, "s")})`);
    if (unit.startsWith("minute") && n < 60) throw new Error(`walvault:retentionSchedule '${text}': run retention at most hourly`);
    return events.Schedule.expression(text);
  }
  if (CRON_RE.test(text)) return events.Schedule.expression(text);
  throw new Error(`walvault:retentionSchedule must be rate(<n> <minutes|hours|days>) or cron(<6 fields>), got '${expression}'`);
}

/** Throws unless `hours` is a usable chunk grace period. */
export function checkGraceHours(hours: number): void {
  if (!Number.isFinite(hours) || hours < 1 || hours > 24 * 365) {
    throw new Error(`walvault:retentionGraceHours must be between 1 and 8760 hours (a snapshot upload in progress must outlive it), got ${hours}`);
  }
}

/** The retention settings; `retentionSettingsFromContext` reads them from cdk.json / `-c`. */
export interface RetentionSettings {
  /** EventBridge schedule expression of the retention workflow. @default "rate(1 day)" */
  readonly schedule?: string;
  /** Unreferenced chunks younger than this are never swept (WALVAULT_RETENTION_GRACE_HOURS). @default 24 */
  readonly graceHours?: number;
}

/**
 * Reads walvault:retentionSchedule, walvault:retentionGraceHours,
 * walvault:lifecycleInfrequentAccessDays and walvault:lifecycleGlacierIrDays.
 */
export function retentionSettingsFromContext(node: Node): { retention: RetentionSettings; lifecycle: VaultLifecycle } {
  const given = (key: string): unknown => {
    const v = contextValue(node, key);
    return v === undefined || v === null || v === "" ? undefined : v;
  };
  const number = (key: string): number | undefined => {
    const v = given(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`context ${key} must be a number, got ${JSON.stringify(v)}`);
    return n;
  };
  const schedule = given("walvault:retentionSchedule");
  if (schedule !== undefined && typeof schedule !== "string") throw new Error(`context walvault:retentionSchedule must be a string, got ${JSON.stringify(schedule)}`);
  if (schedule !== undefined) parseRetentionSchedule(schedule);
  const graceHours = number("walvault:retentionGraceHours");
  if (graceHours !== undefined) checkGraceHours(graceHours);
  const ia = number("walvault:lifecycleInfrequentAccessDays");
  const ir = number("walvault:lifecycleGlacierIrDays");
  return {
    retention: { ...(schedule === undefined ? {} : { schedule }), ...(graceHours === undefined ? {} : { graceHours }) },
    lifecycle: { ...(ia === undefined ? {} : { infrequentAccessDays: ia }), ...(ir === undefined ? {} : { glacierInstantRetrievalDays: ir }) },
  };
}

export interface RetentionProps extends RetentionSettings {
  /** Repository root (functions/, statemachines/). */
  readonly projectRoot: string;
  readonly incomingBucket: s3.IBucket;
  readonly vaultBucket: s3.IBucket;
  /** The vault's key: the mark phase reads manifests through S3 with it. */
  readonly vaultKey: kms.IKey;
  readonly catalog: dynamodb.ITableV2;
  /** The replica vaults (bucket names; another region's stack owns each). */
  readonly replicas: readonly { readonly region: string; readonly bucket: string }[];
  /** The environment every handler gets (buckets, table, replicas). */
  readonly handlerEnvironment: Readonly<Record<string, string>>;
}

export class Retention extends Construct {
  public readonly functions: Record<RetentionStep, NodejsFunction>;
  public readonly stateMachine: sfn.StateMachine;
  public readonly rule: events.Rule;
  /** The path of the retention ASL file. */
  public readonly aslFile: string;
  public readonly scheduleExpression: string;

  constructor(scope: Construct, id: string, props: RetentionProps) {
    super(scope, id);
    const root = props.projectRoot;
    this.scheduleExpression = (props.schedule ?? DEFAULT_RETENTION_SCHEDULE).trim();
    const schedule = parseRetentionSchedule(this.scheduleExpression);
    const graceHours = props.graceHours ?? DEFAULT_RETENTION_GRACE_HOURS;
    checkGraceHours(graceHours);

    const fns: Partial<Record<RetentionStep, NodejsFunction>> = {};
    for (const step of RETENTION_STEPS) {
      fns[step] = createHandlerFunction(
        this,
        step === "plan" ? "Plan" : "Execute",
        join(root, "functions", "retention", `${RETENTION_STEP_SOURCES[step].file}.ts`),
        RETENTION_STEP_CONFIG[step],
        `walvault retention ${step} function`,
        step === "execute" ? { ...props.handlerEnvironment, WALVAULT_RETENTION_GRACE_HOURS: String(graceHours) } : { ...props.handlerEnvironment },
        root,
      );
    }
    this.functions = fns as Record<RetentionStep, NodejsFunction>;
    this.grantPermissions(props);

    this.aslFile = join(root, "statemachines", "retention.asl.json");
    const substitutions: Record<string, string> = Object.fromEntries(
      RETENTION_STEPS.map((step) => [RETENTION_STEP_SOURCES[step].placeholder, this.functions[step].functionArn]),
    );
    const missing = missingSubstitutions(this.aslFile, substitutions);
    if (missing.length > 0) throw new Error(`${this.aslFile} has placeholders without a substitution: ${missing.join(", ")}`);
    const workflowLogs = new logs.LogGroup(this, "WorkflowLogs", { retention: logs.RetentionDays.ONE_YEAR, removalPolicy: RemovalPolicy.RETAIN });
    const workflowRole = new iam.Role(this, "WorkflowRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "walvault retention state machine",
    });
    workflowRole.addToPolicy(
      new iam.PolicyStatement({ sid: "InvokeRetentionSteps", actions: ["lambda:InvokeFunction"], resources: RETENTION_STEPS.map((s) => this.functions[s].functionArn) }),
    );
    // Standard: a first run over a long history deletes in many rounds. The
    // execution's bound is the ASL's TimeoutSeconds (a day; CDK cannot add
    // one to a definition deployed from a file).
    this.stateMachine = new sfn.StateMachine(this, "Workflow", {
      comment: "walvault retention: GFS + recovery window, delete in every region (Object Lock respected), sweep chunks and packs, repack, audit",
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(this.aslFile),
      definitionSubstitutions: substitutions,
      role: workflowRole,
      logs: { destination: workflowLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    this.rule = new events.Rule(this, "Schedule", {
      description: `walvault: start the retention workflow (${this.scheduleExpression})`,
      schedule,
      targets: [new targets.SfnStateMachine(this.stateMachine, { input: events.RuleTargetInput.fromObject({}), maxEventAge: Duration.hours(6), retryAttempts: 20 })],
    });
    this.suppressNagFindings(props);
  }

  private grantPermissions(props: RetentionProps): void {
    const { plan, execute } = this.functions;
    const catalog = (sid: string, ...actions: string[]): iam.PolicyStatement =>
      new iam.PolicyStatement({ sid, actions: actions.map((a) => `dynamodb:${a}`), resources: [props.catalog.tableArn] });
    const work = props.incomingBucket.arnForObjects(`${RETENTION_WORK_PREFIX}*`);
    // Without s3:ListBucket a GetObject/HeadObject of a missing key is a 403, not a 404.
    const listIncoming = new iam.PolicyStatement({ sid: "ListIncoming", actions: ["s3:ListBucket"], resources: [props.incomingBucket.bucketArn] });
    const bucketArn = (bucket: string): string => `arn:${Aws.PARTITION}:s3:::${bucket}`;

    plan.addToRolePolicy(catalog("ReadCatalog", "GetItem", "Query"));
    // Plan writes large plans' lists and each page's outcome, and reads the pages back for the summary.
    plan.addToRolePolicy(new iam.PolicyStatement({ sid: "WritePlanListsAndPages", actions: ["s3:PutObject", "s3:GetObject"], resources: [work] }));

    for (const st of [
      // BatchGetItem, PutItem, UpdateItem: the pack sweep's chunk lookups and its conditional marks and moves (store/prune.ts, store/repack.ts).
      catalog("PruneCatalog", "GetItem", "Query", "BatchWriteItem", "DeleteItem", "BatchGetItem", "PutItem", "UpdateItem"),
      new iam.PolicyStatement({ sid: "PlanListsAndJournal", actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources: [work] }),
      listIncoming,
      new iam.PolicyStatement({
        sid: "ReadVaultManifests",
        actions: ["s3:GetObject", "s3:GetObjectVersion"],
        resources: [props.vaultBucket.arnForObjects("db/*/snapshots/*")],
      }),
      new iam.PolicyStatement({ sid: "ListVault", actions: ["s3:ListBucket"], resources: [props.vaultBucket.bucketArn] }),
      // Repack (store/repack.ts): ranged reads of packs in the primary vault, and the new packs put to every region's vault.
      new iam.PolicyStatement({
        sid: "RepackReadPacks",
        actions: ["s3:GetObject"],
        resources: [props.vaultBucket.arnForObjects("db/*/packs/*")],
      }),
      new iam.PolicyStatement({
        sid: "RepackWritePacks",
        actions: ["s3:PutObject"],
        resources: [props.vaultBucket.arnForObjects("db/*/packs/*"), ...props.replicas.map((r) => `${bucketArn(r.bucket)}/db/*/packs/*`)],
      }),
      ...props.replicas.map(
        (r) =>
          new iam.PolicyStatement({
            sid: `EncryptReplicaPacks${r.region.replace(/(^|-)([a-z0-9])/g, (_m, _d: string, c: string) => c.toUpperCase())}`,
            actions: ["kms:GenerateDataKey"],
            resources: [`arn:${Aws.PARTITION}:kms:${r.region}:${Aws.ACCOUNT_ID}:key/*`],
            conditions: {
              StringEquals: { "kms:ViaService": `s3.${r.region}.amazonaws.com` },
              StringLike: { "kms:EncryptionContext:aws:s3:arn": [bucketArn(r.bucket), `${bucketArn(r.bucket)}/db/*`] },
            },
          }),
      ),
      new iam.PolicyStatement({
        sid: "DecryptVaultManifests",
        // GenerateDataKey: SSE-KMS writes of repacked packs (S3 never calls kms:Encrypt).
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: [props.vaultKey.keyArn],
        conditions: { StringEquals: { "kms:ViaService": `s3.${Aws.REGION}.amazonaws.com` } },
      }),
      // Deleting, never unlocking: no s3:BypassGovernanceRetention, s3:PutObjectRetention or s3:PutObjectLegalHold.
      new iam.PolicyStatement({
        sid: "DeleteVaultObjects",
        actions: ["s3:DeleteObject", "s3:DeleteObjectVersion"],
        resources: [props.vaultBucket.arnForObjects("db/*"), ...props.replicas.map((r) => `${bucketArn(r.bucket)}/db/*`)],
      }),
    ]) {
      execute.addToRolePolicy(st);
    }
  }

  private suppressNagFindings(props: RetentionProps): void {
    const stack = Stack.of(this);
    const nagArn = (bucket: s3.IBucket, suffix: string): string => `Resource::<${stack.getLogicalId(bucket.node.defaultChild as CfnElement)}.Arn>${suffix}`;
    const xray = "Resource::*";
    const work = nagArn(props.incomingBucket, `/${RETENTION_WORK_PREFIX}*`);
    const replicaObjects = props.replicas.map((r) => `Resource::arn:<AWS::Partition>:s3:::${r.bucket.replace(Aws.ACCOUNT_ID, "<AWS::AccountId>")}/db/*`);
    const wildcards: Record<RetentionStep, string[]> = {
      plan: [xray, work],
      execute: [
        xray,
        work,
        nagArn(props.vaultBucket, "/db/*/snapshots/*"),
        nagArn(props.vaultBucket, "/db/*"),
        ...replicaObjects,
        nagArn(props.vaultBucket, "/db/*/packs/*"),
        ...props.replicas.map((r) => `Resource::arn:<AWS::Partition>:s3:::${r.bucket.replace(Aws.ACCOUNT_ID, "<AWS::AccountId>")}/db/*/packs/*`),
        ...props.replicas.map((r) => `Resource::arn:<AWS::Partition>:kms:${r.region}:<AWS::AccountId>:key/*`),
      ],
    };
    for (const step of RETENTION_STEPS) {
      NagSuppressions.addResourceSuppressions(
        this.functions[step].role!,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "Object wildcards end one key prefix: the workflow's own work/retention/* objects in the incoming bucket, the vault's db/*/snapshots/* manifests, " +
              "or db/* of the vault and each replica vault (one object per WAL file, chunk or manifest the retention plan deletes), " +
              "or db/*/packs/* of each vault (repack reads packs and writes new ones; docs/retention.md \"Packs\"); " +
              "replica vault keys belong to the replica stacks and are usable only through S3 in their region for their vault bucket (kms:ViaService, encryption context); " +
              "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*').",
            appliesTo: wildcards[step],
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
    suppressWorkflowRoleWildcards(this.stateMachine);
  }
}
