/**
 * One workflow step's Lambda function, the same way for every workflow of the
 * primary stack: its own log group and role (logs go to that group only,
 * instead of AWSLambdaBasicExecutionRole), an ESM bundle of the handler
 * module built with the project's own esbuild (no Docker).
 */
import { join } from "node:path";
import { Duration as CdkDuration, type Duration, RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import { SERVICE_NAME } from "../core/metrics.js";
import { functionOf, HANDLER_BUNDLE, stepsOf, type FunctionDefinition, type StepDefinition, type StepName, type WorkflowId } from "../core/workflows.js";

export interface StepConfig {
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: Duration;
}

/** A function's settings as core/workflows.ts declares them. */
export function stepConfig(def: Pick<FunctionDefinition, "description" | "memoryMiB" | "timeoutSeconds">): StepConfig {
  return { description: def.description, memorySize: def.memoryMiB, timeout: CdkDuration.seconds(def.timeoutSeconds) };
}

/** The settings of the function each step of a workflow runs in (a shared function's for a shared step), by step name. */
export function stepConfigs<W extends WorkflowId>(workflow: W): Record<StepName<W>, StepConfig> {
  const steps: Record<string, StepDefinition> = stepsOf(workflow);
  return Object.fromEntries(Object.entries(steps).map(([name, d]) => [name, stepConfig(functionOf(d))])) as Record<StepName<W>, StepConfig>;
}

/** Handler module file (functions/<dir>/<file>.ts), exported handler and ASL placeholder of a workflow's steps. */
export function stepSources<W extends WorkflowId>(workflow: W): Record<StepName<W>, { file: string; handler: string; placeholder: string }> {
  const steps: Record<string, StepDefinition> = stepsOf(workflow);
  return Object.fromEntries(
    Object.entries(steps).map(([name, d]) => [name, { file: d.module.slice(d.module.lastIndexOf("/") + 1), handler: d.handler, placeholder: d.placeholder }]),
  ) as Record<StepName<W>, { file: string; handler: string; placeholder: string }>;
}

/** A step's handler module as an entry file under the repository root. */
export function stepEntry(root: string, def: StepDefinition): string {
  return join(root, `${def.module}.ts`);
}

/**
 * Creates `<name>Logs`, `<name>Role` and `<name>Function` in `scope`. The role
 * may only write to the log group; each caller adds what its step needs.
 */
export function createHandlerFunction(
  scope: Construct,
  name: string,
  entry: string,
  cfg: StepConfig,
  roleDescription: string,
  environment: Record<string, string>,
  root: string,
  handler = "handler",
): NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${name}Logs`, {
    retention: logs.RetentionDays.THREE_MONTHS,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const role = new iam.Role(scope, `${name}Role`, {
    assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    description: roleDescription,
  });
  logGroup.grantWrite(role);
  return new NodejsFunction(scope, `${name}Function`, {
    description: cfg.description,
    entry,
    handler,
    projectRoot: root,
    depsLockFilePath: join(root, "package-lock.json"),
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: cfg.memorySize,
    timeout: cfg.timeout,
    role,
    logGroup,
    loggingFormat: lambda.LoggingFormat.JSON,
    tracing: lambda.Tracing.ACTIVE,
    // functions/observability.ts: Powertools' service (log lines, trace annotations).
    environment: { POWERTOOLS_SERVICE_NAME: SERVICE_NAME, ...environment },
    bundling: {
      // core/workflows.ts HANDLER_BUNDLE: the local stack's sandboxes run bundles built the same way.
      format: HANDLER_BUNDLE.format === "esm" ? OutputFormat.ESM : OutputFormat.CJS,
      target: HANDLER_BUNDLE.target,
      mainFields: [...HANDLER_BUNDLE.mainFields],
      banner: HANDLER_BUNDLE.banner,
      minify: HANDLER_BUNDLE.minify,
      keepNames: HANDLER_BUNDLE.keepNames,
      sourceMap: HANDLER_BUNDLE.sourceMap,
      // Ship the SDK version the lockfile pins (and the tests ran), not
      // whatever the runtime happens to include.
      bundleAwsSDK: true,
      // Local esbuild only: no Docker on build hosts.
      forceDockerBundling: false,
    },
  });
}

/** cdk-nag IAM5 on a state machine's role: its log delivery and X-Ray statements must name Resource "*". */
export function suppressWorkflowRoleWildcards(machine: sfn.StateMachine): void {
  NagSuppressions.addResourceSuppressions(
    machine.role,
    [
      {
        id: "AwsSolutions-IAM5",
        reason: "Step Functions' CloudWatch Logs delivery (logs:CreateLogDelivery etc.) and X-Ray (xray:PutTraceSegments etc.) support no resource-level permissions.",
        appliesTo: ["Resource::*"],
      },
    ],
    true,
  );
}
