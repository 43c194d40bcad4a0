/**
 * The rpo-watch workflow, its alarm and the dashboard as CloudFormation sees
 * them (infra/rpo-watch.ts): the Express state machine on a one-minute
 * schedule, logging at ERROR, its one function with the settings
 * core/workflows.ts declares and only the catalog reads it needs; one alarm
 * for every database (a Metrics Insights query over walvault/Archive
 * RpoBreached), missing data breaching, notifying the encrypted topic on
 * alarm and on OK; cdk-nag clean.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Aspects } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { WORKFLOW_DEFINITIONS } from "../../core/workflows.js";
import { findProjectRoot, PrimaryStack, walvaultSettingsFromContext } from "../../infra/primary-stack.js";
import { RPO_ALARM_QUERY, RPO_WATCH_SCHEDULE } from "../../infra/rpo-watch.js";
import { type CfnResource, logicalId, nagFindingsUnder, NO_BUNDLING, render, roleStatements } from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };

let stack: PrimaryStack;
let template: Template;
let resources: Record<string, CfnResource>;

beforeAll(() => {
  // Prepare: the primary stack as `cdk synth` builds it from cdk.json, with cdk-nag
  const app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING, "@aws-cdk/core:annotationsInValidationReport": false } });
  stack = new PrimaryStack(app, "Default", walvaultSettingsFromContext(app.node));
  Aspects.of(app).add(new AwsSolutionsChecks());
  app.synth();
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, CfnResource>;
});

describe("the rpo-watch workflow", () => {
  it("is an Express state machine logging errors only, started every minute with {}", () => {
    // Act
    const machine = resources[logicalId(stack, stack.rpoWatch.stateMachine)]!;
    const rule = resources[logicalId(stack, stack.rpoWatch.rule)]!;
    // Assess
    expect(machine.Properties?.StateMachineType).toBe("EXPRESS");
    expect(machine.Properties?.LoggingConfiguration).toMatchObject({ Level: "ERROR", IncludeExecutionData: false });
    expect(rule.Properties?.ScheduleExpression).toBe(RPO_WATCH_SCHEDULE);
    const target = (rule.Properties?.Targets as Array<{ Arn: unknown; Input: string }>)[0]!;
    expect(render(target.Arn)).toBe(`<${logicalId(stack, stack.rpoWatch.stateMachine)}>`);
    expect(JSON.parse(target.Input)).toEqual({});
  });

  it("runs one function with its declared memory and timeout, which may only Query and GetItem the catalog and Query its replication indexes", () => {
    // Prepare
    const fn = stack.rpoWatch.functions.measure;
    const props = resources[logicalId(stack, fn)]!.Properties!;
    const step = WORKFLOW_DEFINITIONS["rpo-watch"].steps.measure;
    // Act
    const statements = roleStatements(template, logicalId(stack, fn.role!)).filter((s) => s.Sid === "ReadRegistryAndHeads");
    // Assess
    expect({ memory: props.MemorySize, timeout: props.Timeout }).toEqual({ memory: step.memoryMiB, timeout: step.timeoutSeconds });
    expect(statements).toHaveLength(1);
    expect([...(statements[0]!.Action as string[])].sort()).toEqual(["dynamodb:GetItem", "dynamodb:Query"]);
    expect(render(statements[0]!.Resource)).toBe(`<${logicalId(stack, stack.catalog)}.Arn>`);
    const indexes = roleStatements(template, logicalId(stack, fn.role!)).filter((s) => s.Sid === "ReadReplicationIndexes");
    expect(indexes.map((s) => [s.Action, render(s.Resource)])).toEqual([["dynamodb:Query", `<${logicalId(stack, stack.catalog)}.Arn>/index/*`]]);
  });
});

describe("the RPO alarm", () => {
  it("is one alarm for every database: any database's RpoBreached at 1 for two minutes, or no measurement, notifies the topic and again when it clears", () => {
    // Act
    const alarm = resources[logicalId(stack, stack.rpoWatch.alarm)]!.Properties!;
    const topic = `<${logicalId(stack, stack.verification.topic)}>`;
    // Assess
    expect(alarm.Metrics).toEqual([{ Expression: RPO_ALARM_QUERY, Id: expect.any(String), Label: expect.any(String), Period: 60, ReturnData: true }]);
    expect(alarm).toMatchObject({ Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold", EvaluationPeriods: 2, DatapointsToAlarm: 2, TreatMissingData: "breaching" });
    expect((alarm.AlarmActions as unknown[]).map(render)).toEqual([topic]);
    expect((alarm.OKActions as unknown[]).map(render)).toEqual([topic]);
    expect(RPO_ALARM_QUERY).toBe('SELECT MAX(RpoBreached) FROM SCHEMA("walvault/Archive", DatabaseId)');
  });

  it("notifies the encrypted topic", () => {
    const topic = resources[logicalId(stack, stack.verification.topic)]!.Properties!;
    expect(topic.KmsMasterKeyId).toBeDefined();
  });

  it("does not grow with the number of databases: the template has the same alarms and dashboards for 3 or 300 registered", () => {
    // The databases are in the catalog, not the template: only deprecated per-database roles would add resources.
    const alarms = template.findResources("AWS::CloudWatch::Alarm");
    expect(Object.keys(alarms)).toContain(logicalId(stack, stack.rpoWatch.alarm));
    expect(JSON.stringify(alarms)).not.toMatch(/pg-main/);
  });
});

describe("cdk-nag AWS Solutions checks on rpo-watch", () => {
  it("leave no unsuppressed errors or warnings", () => {
    expect(nagFindingsUnder(stack, "/RpoWatch/")).toEqual([]);
  });
});
