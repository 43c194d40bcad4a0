/**
 * What the deployed stack raises by itself (issue #12), beside the RPO alarm
 * (infra/rpo-watch.ts), and the one dashboard that shows them all. Every
 * alarm notifies the encrypted topic when it fires and when it clears, and
 * none is per database: the template does not grow with the fleet (issue
 * #11), and a database registered today is covered the next minute (Metrics
 * Insights queries over the DatabaseId dimension). docs/alarms.md.
 *
 *  - Quarantines: any upload rejected (walvault/Ingest Quarantined, any
 *    database) in 5 minutes. The function's log line names the database,
 *    the file and why; `walvault status` and `wal-push` show the record.
 *  - Workflow failures: one alarm per state machine (a fixed set): an
 *    execution failed or timed out in 5 minutes. A transient fault retried
 *    to success is not a failure; one that exhausts its retries is.
 *  - The ingest dead-letter queue: an upload event that never reached the
 *    workflow (a visible message).
 *  - Verification failures: a verification run whose outcome is not
 *    "passed" (walvault/Verification Runs), any database.
 *  - Verification overdue: a retained snapshot of any database not verified
 *    within the verification period (walvault/Verification
 *    SnapshotsPastVerifyPeriod, counted by each scheduled run).
 *  - Replication lag: a record of any database pending in a replica region
 *    for longer than REPLICATION_LAG_ALARM_SECONDS, two minutes running
 *    (walvault/Replication ReplicationLagSeconds, measured by rpo-watch).
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type * as sns from "aws-cdk-lib/aws-sns";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { ARCHIVE_NAMESPACE, INGEST_NAMESPACE, REPLICATION_NAMESPACE, VERIFICATION_NAMESPACE } from "../core/metrics.js";
import { REPLICATION_LAG_ALARM_SECONDS } from "../core/rpo.js";

const FIVE_MINUTES = Duration.minutes(5);

/** Rejected uploads, any database. */
export const QUARANTINE_ALARM_QUERY = `SELECT SUM(Quarantined) FROM SCHEMA("${INGEST_NAMESPACE}", DatabaseId)`;
/** Verification runs that did not pass, any database. */
export const VERIFICATION_ALARM_QUERY = `SELECT SUM(Runs) FROM SCHEMA("${VERIFICATION_NAMESPACE}", DatabaseId, Outcome) WHERE Outcome != 'passed'`;
/** The largest replication lag of any database in any replica region. */
export const REPLICATION_ALARM_QUERY = `SELECT MAX(ReplicationLagSeconds) FROM SCHEMA("${REPLICATION_NAMESPACE}", DatabaseId, Region)`;
export const REPLICATION_LAG_BY_REGION_QUERY = `${REPLICATION_ALARM_QUERY} GROUP BY Region`;
/** The dashboard's graphs, one line per database. */
export const ARCHIVE_LAG_QUERY = `SELECT MAX(ArchiveLagSeconds) FROM SCHEMA("${ARCHIVE_NAMESPACE}", DatabaseId) GROUP BY DatabaseId`;
/** The archiver's backlog on each database's host, as its uploads report it (functions/observability.ts backlogMetric). */
export const ARCHIVE_BACKLOG_QUERY = `SELECT MAX(ArchiveBacklogSegments) FROM SCHEMA("${ARCHIVE_NAMESPACE}", DatabaseId) GROUP BY DatabaseId`;
export const QUARANTINES_BY_DATABASE_QUERY = `${QUARANTINE_ALARM_QUERY} GROUP BY DatabaseId`;
export const VERIFICATION_FAILURES_QUERY = `${VERIFICATION_ALARM_QUERY} GROUP BY DatabaseId`;

export interface MonitoringProps {
  /** Where every alarm notifies (the encrypted verification topic). */
  readonly topic: sns.ITopic;
  /** Every workflow's state machine, by workflow name (core/workflows.ts ids). */
  readonly stateMachines: Readonly<Record<string, sfn.StateMachine>>;
  readonly ingestDeadLetterQueue: sqs.IQueue;
  /** The alarms other constructs raise (the RPO alarm), shown on the dashboard too. */
  readonly alarms: readonly cloudwatch.Alarm[];
}

export class Monitoring extends Construct {
  public readonly quarantineAlarm: cloudwatch.Alarm;
  /** By workflow name. */
  public readonly workflowFailureAlarms: Record<string, cloudwatch.Alarm>;
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  public readonly verificationAlarm: cloudwatch.Alarm;
  public readonly replicationAlarm: cloudwatch.Alarm;
  public readonly verificationOverdueAlarm: cloudwatch.Alarm;
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const notify = (alarm: cloudwatch.Alarm): cloudwatch.Alarm => {
      alarm.addAlarmAction(new cwActions.SnsAction(props.topic));
      alarm.addOkAction(new cwActions.SnsAction(props.topic));
      return alarm;
    };
    const atLeastOne = (name: string, description: string, metric: cloudwatch.IMetric): cloudwatch.Alarm =>
      notify(
        new cloudwatch.Alarm(this, name, {
          alarmDescription: description,
          metric,
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    const query = (expression: string, period: Duration, label: string): cloudwatch.MathExpression => new cloudwatch.MathExpression({ expression, period, label, usingMetrics: {} });

    this.quarantineAlarm = atLeastOne(
      "QuarantineAlarm",
      "walvault: an upload was rejected and quarantined (a WAL file or snapshot whose bytes, name or content failed validation). " +
        "The quarantine function's log and `walvault status` name the database, the file and why; nothing rejected was recorded.",
      query(QUARANTINE_ALARM_QUERY, FIVE_MINUTES, "uploads quarantined"),
    );
    this.workflowFailureAlarms = {};
    for (const [name, machine] of Object.entries(props.stateMachines)) {
      const id = name.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());
      this.workflowFailureAlarms[name] = atLeastOne(
        `${id}FailureAlarm`,
        `walvault: a ${name} execution failed or timed out after its retries. Its execution history (Standard) or log group (Express) says which state and why.`,
        new cloudwatch.MathExpression({
          expression: "failed + timedOut",
          usingMetrics: { failed: machine.metricFailed({ period: FIVE_MINUTES }), timedOut: machine.metricTimedOut({ period: FIVE_MINUTES }) },
          period: FIVE_MINUTES,
          label: `${name} executions failed or timed out`,
        }),
      );
    }
    this.deadLetterAlarm = atLeastOne(
      "IngestDeadLetterAlarm",
      "walvault: an upload's event never reached the ingest workflow and waits in the dead-letter queue (14 days). Upload the file again to replay it.",
      props.ingestDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: FIVE_MINUTES, statistic: "Maximum" }),
    );
    this.verificationAlarm = atLeastOne(
      "VerificationFailureAlarm",
      "walvault: a verification restore did not pass (failed, or could not run). `walvault verify history` names the snapshot, the level and the check.",
      query(VERIFICATION_ALARM_QUERY, FIVE_MINUTES, "verifications not passed"),
    );

    this.replicationAlarm = notify(
      new cloudwatch.Alarm(this, "ReplicationLagAlarm", {
        alarmDescription:
          `walvault: a record has waited more than ${REPLICATION_LAG_ALARM_SECONDS} s to be copied to a replica region (a region down, or its copies failing). ` +
          "The dashboard's 'Replication lag per region' names the region; `walvault status` shows each region's window and lag, `walvault replicate --region R` catches up.",
        metric: query(REPLICATION_ALARM_QUERY, Duration.minutes(1), "largest replication lag (s)"),
        threshold: REPLICATION_LAG_ALARM_SECONDS,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    this.verificationOverdueAlarm = atLeastOne(
      "VerificationOverdueAlarm",
      "walvault: a retained snapshot has not been verified within the verification period (the verify policy's periodDays, default 7): runs are failing, or too few fit. " +
        "The verify selection's log line names the databases; `walvault verify history` shows each snapshot's last verification.",
      new cloudwatch.Metric({ namespace: VERIFICATION_NAMESPACE, metricName: "SnapshotsPastVerifyPeriod", statistic: "Maximum", period: Duration.days(1) }),
    );

    const alarms = [
      ...props.alarms,
      this.quarantineAlarm,
      this.deadLetterAlarm,
      this.verificationAlarm,
      this.verificationOverdueAlarm,
      this.replicationAlarm,
      ...Object.values(this.workflowFailureAlarms),
    ];
    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.hours(3),
      widgets: [
        [new cloudwatch.AlarmStatusWidget({ title: "walvault alarms", alarms, width: 24, height: 6 })],
        [
          new cloudwatch.GraphWidget({ title: "Archive lag per database (seconds since the newest recorded WAL)", left: [query(ARCHIVE_LAG_QUERY, Duration.minutes(1), "")], width: 12 }),
          new cloudwatch.GraphWidget({ title: "Quarantined uploads per database", left: [query(QUARANTINES_BY_DATABASE_QUERY, FIVE_MINUTES, "")], width: 12 }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: "Archive backlog per database (WAL files waiting on the host, as each upload reports it; 1 is the file being archived)",
            left: [query(ARCHIVE_BACKLOG_QUERY, Duration.minutes(1), "")],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({ title: "Verifications not passed per database", left: [query(VERIFICATION_FAILURES_QUERY, Duration.hours(1), "")], width: 12 }),
          new cloudwatch.GraphWidget({ title: "Replication lag per region (seconds, the largest of any database)", left: [query(REPLICATION_LAG_BY_REGION_QUERY, Duration.minutes(1), "")], width: 12 }),
          new cloudwatch.GraphWidget({
            title: "Workflow executions failed or timed out",
            left: Object.entries(props.stateMachines).map(([name, m]) => m.metricFailed({ period: FIVE_MINUTES, label: name })),
            width: 12,
          }),
        ],
      ],
    });
  }
}
