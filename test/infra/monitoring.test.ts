/**
 * infra/monitoring.ts as CloudFormation sees it: every alarm issue #12 asks
 * for so far (quarantines, each workflow's failures, the ingest dead-letter
 * queue, verification failures, and rpo-watch's RPO alarm) exists with its
 * metric and threshold and notifies the encrypted topic when it fires and
 * when it clears; the dashboard shows them; none is per database; cdk-nag
 * stays clean.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Aspects } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { SERVICE_NAME } from "../../core/metrics.js";
import { functionOf, STEPS_BY_PLACEHOLDER, WORKFLOW_IDS } from "../../core/workflows.js";
import { REPLICATION_LAG_ALARM_SECONDS } from "../../core/rpo.js";
import { ARCHIVE_BACKLOG_QUERY, ARCHIVE_LAG_QUERY, QUARANTINE_ALARM_QUERY, REPLICATION_ALARM_QUERY, VERIFICATION_ALARM_QUERY } from "../../infra/monitoring.js";
import { findProjectRoot, PrimaryStack, walvaultSettingsFromContext } from "../../infra/primary-stack.js";
import { type CfnResource, logicalId, nagFindingsUnder, NO_BUNDLING, render } from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };

let stack: PrimaryStack;
let resources: Record<string, CfnResource>;
const props = (c: IConstruct): Record<string, unknown> => resources[logicalId(stack, c)]!.Properties!;
const ref = (c: IConstruct): string => `<${logicalId(stack, c)}>`;

beforeAll(() => {
  // Prepare: the primary stack as `cdk synth` builds it from cdk.json, with cdk-nag
  const app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING, "@aws-cdk/core:annotationsInValidationReport": false } });
  stack = new PrimaryStack(app, "Default", walvaultSettingsFromContext(app.node));
  Aspects.of(app).add(new AwsSolutionsChecks());
  app.synth();
  resources = Template.fromStack(stack).toJSON().Resources as Record<string, CfnResource>;
});

/** The alarm's notifications: [alarm actions, OK actions], rendered. */
const actionsOf = (a: Record<string, unknown>): [string[], string[]] => [(a.AlarmActions as unknown[]).map(render), (a.OKActions as unknown[]).map(render)];

describe("the alarms", () => {
  it("every one notifies the encrypted topic when it fires and when it clears", () => {
    // Prepare
    const m = stack.monitoring;
    const all = [stack.rpoWatch.alarm, m.quarantineAlarm, m.deadLetterAlarm, m.verificationAlarm, m.verificationOverdueAlarm, m.replicationAlarm, ...Object.values(m.workflowFailureAlarms)];
    const topic = ref(stack.verification.topic);
    // Act
    const alarms = Object.entries(resources).filter(([, r]) => r.Type === "AWS::CloudWatch::Alarm");
    // Assess: these are all the stack's alarms, each wired to the topic both ways
    expect(alarms.map(([id]) => id).sort()).toEqual(all.map((a) => logicalId(stack, a)).sort());
    for (const a of all) expect(actionsOf(props(a)), a.node.path).toEqual([[topic], [topic]]);
    expect(props(stack.verification.topic).KmsMasterKeyId).toBeDefined();
  });

  it("quarantines: any rejected upload of any database in 5 minutes", () => {
    const a = props(stack.monitoring.quarantineAlarm);
    expect(a.Metrics).toEqual([{ Expression: QUARANTINE_ALARM_QUERY, Id: expect.any(String), Label: expect.any(String), Period: 300, ReturnData: true }]);
    expect(a).toMatchObject({ Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold", EvaluationPeriods: 1, TreatMissingData: "notBreaching" });
    expect(QUARANTINE_ALARM_QUERY).toBe('SELECT SUM(Quarantined) FROM SCHEMA("walvault/Ingest", DatabaseId)');
  });

  it("workflow failures: one alarm per workflow, on its state machine's failed and timed-out executions", () => {
    // Assess: every workflow core/workflows.ts declares has one
    expect(Object.keys(stack.monitoring.workflowFailureAlarms).sort()).toEqual([...WORKFLOW_IDS].sort());
    const ingest = props(stack.monitoring.workflowFailureAlarms.ingest!);
    const metrics = ingest.Metrics as Array<{ Id: string; Expression?: string; MetricStat?: { Metric: { MetricName: string; Dimensions: Array<{ Name: string; Value: unknown }> }; Stat: string } }>;
    expect(metrics.find((m) => m.Expression)?.Expression).toBe("failed + timedOut");
    const stats = metrics.filter((m) => m.MetricStat).map((m) => [m.Id, m.MetricStat!.Metric.MetricName, m.MetricStat!.Stat, render(m.MetricStat!.Metric.Dimensions[0]!.Value)]);
    expect(stats.sort()).toEqual([
      ["failed", "ExecutionsFailed", "Sum", ref(stack.ingestStateMachine)],
      ["timedOut", "ExecutionsTimedOut", "Sum", ref(stack.ingestStateMachine)],
    ]);
    expect(ingest).toMatchObject({ Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold", TreatMissingData: "notBreaching" });
  });

  it("the ingest dead-letter queue: any message waiting", () => {
    const a = props(stack.monitoring.deadLetterAlarm);
    expect(a).toMatchObject({ MetricName: "ApproximateNumberOfMessagesVisible", Namespace: "AWS/SQS", Statistic: "Maximum", Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold" });
    expect(render((a.Dimensions as Array<{ Value: unknown }>)[0]!.Value)).toBe(`<${logicalId(stack, stack.ingestDeadLetterQueue)}.QueueName>`);
  });

  it("verification failures: any run of any database that did not pass", () => {
    const a = props(stack.monitoring.verificationAlarm);
    expect((a.Metrics as Array<{ Expression: string }>)[0]!.Expression).toBe(VERIFICATION_ALARM_QUERY);
    expect(VERIFICATION_ALARM_QUERY).toBe(`SELECT SUM(Runs) FROM SCHEMA("walvault/Verification", DatabaseId, Outcome) WHERE Outcome != 'passed'`);
    expect(a).toMatchObject({ Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold" });
  });

  it("replication lag: any database's oldest pending record in any replica region older than 15 minutes, two minutes running", () => {
    const a = props(stack.monitoring.replicationAlarm);
    expect((a.Metrics as Array<{ Expression: string; Period: number }>)[0]).toMatchObject({ Expression: REPLICATION_ALARM_QUERY, Period: 60 });
    expect(REPLICATION_ALARM_QUERY).toBe('SELECT MAX(ReplicationLagSeconds) FROM SCHEMA("walvault/Replication", DatabaseId, Region)');
    expect(a).toMatchObject({ Threshold: REPLICATION_LAG_ALARM_SECONDS, ComparisonOperator: "GreaterThanThreshold", EvaluationPeriods: 2, DatapointsToAlarm: 2, TreatMissingData: "notBreaching" });
    expect(REPLICATION_LAG_ALARM_SECONDS).toBe(900);
  });

  it("verification overdue: any retained snapshot past the verification period, counted by the day's run", () => {
    const a = props(stack.monitoring.verificationOverdueAlarm);
    expect(a).toMatchObject({ Namespace: "walvault/Verification", MetricName: "SnapshotsPastVerifyPeriod", Statistic: "Maximum", Period: 86400, Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold" });
    expect(a.Dimensions).toBeUndefined();
  });

  it("none is per database: no alarm names one", () => {
    const alarms = Object.values(resources).filter((r) => r.Type === "AWS::CloudWatch::Alarm");
    expect(JSON.stringify(alarms)).not.toMatch(/pg-main/);
  });
});

describe("the dashboard", () => {
  it("shows every alarm's state, the archive lag and the hosts' archive backlog per database", () => {
    // Act
    const body = render(props(stack.monitoring.dashboard).DashboardBody);
    // Assess
    expect(body).toContain(JSON.stringify(ARCHIVE_LAG_QUERY).slice(1, -1));
    expect(body).toContain(JSON.stringify(ARCHIVE_BACKLOG_QUERY).slice(1, -1));
    expect(body).toContain('"type":"alarm"');
    for (const a of [stack.rpoWatch.alarm, stack.monitoring.quarantineAlarm, stack.monitoring.deadLetterAlarm]) expect(body).toContain(`<${logicalId(stack, a)}.Arn>`);
  });
});

describe("every workflow step's function", () => {
  it("traces with X-Ray, logs JSON and names Powertools' service, so its logs, metrics and traces come out as functions/observability.ts writes them", () => {
    // Prepare: the functions that run a step (the handlers' environment names the catalog)
    const fns = Object.values(resources).filter((r) => r.Type === "AWS::Lambda::Function" && (r.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables?.WALVAULT_TABLE !== undefined);
    // Act
    const settings = new Set(fns.map((f) => JSON.stringify([f.Properties!.TracingConfig, f.Properties!.LoggingConfig && (f.Properties!.LoggingConfig as { LogFormat?: string }).LogFormat, (f.Properties!.Environment as { Variables: Record<string, unknown> }).Variables.POWERTOOLS_SERVICE_NAME])));
    // Assess: every function is deployed once (steps that share one, core/workflows.ts SHARED_FUNCTIONS, once), and each one the same way
    expect(fns).toHaveLength(new Set([...STEPS_BY_PLACEHOLDER.values()].map((s) => functionOf(s).key)).size);
    expect([...settings]).toEqual([JSON.stringify([{ Mode: "Active" }, "JSON", SERVICE_NAME])]);
  });
});

describe("cdk-nag AWS Solutions checks on the monitoring", () => {
  it("leave no unsuppressed errors or warnings", () => {
    expect(nagFindingsUnder(stack, "/Monitoring/")).toEqual([]);
  });
});
