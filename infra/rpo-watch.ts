/**
 * The rpo-watch workflow and the alarm it feeds (issue #12), the AWS side of
 * statemachines/rpo-watch.asl.json:
 *
 *   EventBridge rule (every minute, input {}) -> rpo-watch state machine
 *   (Express, logs at ERROR): MeasureRpo (Lambda) a page of databases at a
 *   time -> metrics walvault/Archive ArchiveLagSeconds, RpoSeconds,
 *   RpoBreached per DatabaseId (EMF in the function's log).
 *
 * One alarm for every database, whatever their number (a per-database alarm
 * would grow the template with the fleet, issue #11): a CloudWatch Metrics
 * Insights query, the largest RpoBreached over every DatabaseId, at or over
 * 1 for two minutes, notifies the encrypted topic (the verification
 * topic: one place to subscribe to) and again when it clears. Missing data
 * is breaching: a watch that stopped measuring is itself an alarm. Which
 * database it is: the dashboard's lag per database (infra/monitoring.ts: a
 * Metrics Insights graph grouped by DatabaseId, one line each) and the
 * function's log (each reading, with Since and LastWal). docs/alarms.md.
 *
 * The function may Query the catalog (the registry partition) and its
 * replication indexes, and GetItem each database's head and its oldest
 * pending record, nothing else.
 */
import { join } from "node:path";
import { type CfnElement, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type { NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { ARCHIVE_NAMESPACE } from "../core/metrics.js";
import { WORKFLOW_DEFINITIONS } from "../core/workflows.js";
import { missingSubstitutions } from "./asl.js";
import { createHandlerFunction, stepConfigs, suppressWorkflowRoleWildcards } from "./handler-function.js";

/** How often the workflow measures every database. */
export const RPO_WATCH_SCHEDULE = "rate(1 minute)";
/** The Metrics Insights query the alarm evaluates: 1 while any database is over its RPO. */
export const RPO_ALARM_QUERY = `SELECT MAX(RpoBreached) FROM SCHEMA("${ARCHIVE_NAMESPACE}", DatabaseId)`;

export interface RpoWatchProps {
  /** Repository root (functions/, statemachines/). */
  readonly projectRoot: string;
  readonly catalog: dynamodb.ITableV2;
  /** The environment every handler gets (buckets, table, replicas). */
  readonly handlerEnvironment: Readonly<Record<string, string>>;
  /** Where the alarm notifies (the encrypted verification topic). */
  readonly topic: sns.ITopic;
}

export class RpoWatch extends Construct {
  public readonly functions: { measure: NodejsFunction };
  public readonly stateMachine: sfn.StateMachine;
  public readonly rule: events.Rule;
  /** Any database over its RPO (or no measurement at all). */
  public readonly alarm: cloudwatch.Alarm;
  public readonly aslFile: string;

  constructor(scope: Construct, id: string, props: RpoWatchProps) {
    super(scope, id);
    const root = props.projectRoot;
    const def = WORKFLOW_DEFINITIONS["rpo-watch"];
    const measure = createHandlerFunction(
      this,
      "Measure",
      join(root, `${def.steps.measure.module}.ts`),
      stepConfigs("rpo-watch").measure,
      "walvault rpo-watch measure function",
      { ...props.handlerEnvironment },
      root,
    );
    measure.addToRolePolicy(new iam.PolicyStatement({ sid: "ReadRegistryAndHeads", actions: ["dynamodb:Query", "dynamodb:GetItem"], resources: [props.catalog.tableArn] }));
    // Replication lag: the oldest pending record of each database in each replica region's sparse index.
    measure.addToRolePolicy(new iam.PolicyStatement({ sid: "ReadReplicationIndexes", actions: ["dynamodb:Query"], resources: [`${props.catalog.tableArn}/index/*`] }));
    this.functions = { measure };

    this.aslFile = join(root, "statemachines", def.asl);
    const substitutions = { [def.steps.measure.placeholder]: measure.functionArn };
    const missing = missingSubstitutions(this.aslFile, substitutions);
    if (missing.length > 0) throw new Error(`${this.aslFile} has placeholders without a substitution: ${missing.join(", ")}`);
    const workflowRole = new iam.Role(this, "WorkflowRole", { assumedBy: new iam.ServicePrincipal("states.amazonaws.com"), description: "walvault rpo-watch state machine" });
    workflowRole.addToPolicy(new iam.PolicyStatement({ sid: "InvokeMeasure", actions: ["lambda:InvokeFunction"], resources: [measure.functionArn] }));
    this.stateMachine = new sfn.StateMachine(this, "Workflow", {
      comment: "walvault rpo-watch: every database's archive lag against its RPO, as metrics",
      stateMachineType: sfn.StateMachineType.EXPRESS,
      definitionBody: sfn.DefinitionBody.fromFile(this.aslFile),
      definitionSubstitutions: substitutions,
      role: workflowRole,
      // ERROR without execution data: an execution a minute logged at ALL would cost more than the workflow (issue #11).
      logs: {
        destination: new logs.LogGroup(this, "WorkflowLogs", { retention: logs.RetentionDays.THREE_MONTHS, removalPolicy: RemovalPolicy.RETAIN }),
        level: sfn.LogLevel.ERROR,
        includeExecutionData: false,
      },
      tracingEnabled: true,
    });
    this.rule = new events.Rule(this, "Schedule", {
      description: `walvault: measure every database's archive lag (${RPO_WATCH_SCHEDULE})`,
      schedule: events.Schedule.expression(RPO_WATCH_SCHEDULE),
      // A missed minute is replaced by the next one: no retries piling up.
      targets: [new targets.SfnStateMachine(this.stateMachine, { input: events.RuleTargetInput.fromObject({}), maxEventAge: Duration.minutes(2), retryAttempts: 2 })],
    });

    const period = Duration.minutes(1);
    this.alarm = new cloudwatch.Alarm(this, "RpoAlarm", {
      alarmDescription:
        "walvault: a database's archive lag (time since its newest recorded WAL) is over its RPO (the registration's rpoSeconds, default 300 s), or rpo-watch stopped measuring. " +
        "The dashboard's 'Archive lag per database' names it; then check the database's archive_command (pg_stat_archiver) and `walvault status`.",
      metric: new cloudwatch.MathExpression({ expression: RPO_ALARM_QUERY, period, label: "databases over their RPO (1: at least one)", usingMetrics: {} }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    this.alarm.addAlarmAction(new cwActions.SnsAction(props.topic));
    this.alarm.addOkAction(new cwActions.SnsAction(props.topic));

    NagSuppressions.addResourceSuppressions(measure, [
      { id: "AwsSolutions-L1", reason: "Pinned to nodejs22.x on purpose: the handlers are built and tested on Node 22 (package.json engines), and node:zlib zstd needs it." },
    ]);
    const catalogId = Stack.of(this).getLogicalId(props.catalog.node.defaultChild as CfnElement);
    NagSuppressions.addResourceSuppressions(
      measure.role!,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "The function Queries the catalog's indexes (index/*: one sparse index of pending records per replica region, named after it, which replica regions add); " +
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
          appliesTo: ["Resource::*", `Resource::<${catalogId}.Arn>/index/*`],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.stateMachine, [
      {
        id: "AwsSolutions-SF1",
        reason:
          "Runs once a minute: it logs at ERROR (every failed execution and state, with error and cause); ALL would log ~10 events a minute forever " +
          "for nothing the metrics and the function's log do not already say (issue #11, Express logging at ERROR).",
      },
    ]);
    suppressWorkflowRoleWildcards(this.stateMachine);
  }
}
