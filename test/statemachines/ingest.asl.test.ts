/**
 * statemachines/ingest.asl.json: valid ASL, every placeholder substituted by
 * the local stack (CDK's substitution is asserted in test/infra), and every
 * Task state has a handler.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import * as errors from "../../core/errors.js";
import { INGEST_VALIDATION_ERRORS, SERVICE_WORKFLOW_ERRORS, TIMEOUT_WORKFLOW_ERRORS, TRANSIENT_WORKFLOW_ERRORS } from "../../core/errors.js";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "ingest.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const EXPECTED = ["ValidateFunctionArn", "PromoteFunctionArn", "RecordFunctionArn", "ReplicateFunctionArn", "RecordReplicaFailureFunctionArn", "QuarantineFunctionArn"];
const fakeArns: Record<string, string> = {
  ...Object.fromEntries(EXPECTED.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`])),
  IncomingBucketName: "walvault-incoming",
};
const REPORT_FAILURE = "arn:aws:states:::aws-sdk:s3:putObject";

describe("ingest.asl.json", () => {
  it("uses exactly the six handler placeholders and the incoming bucket's name", () => {
    expect(placeholdersOf(raw).sort()).toEqual([...EXPECTED, "IncomingBucketName"].sort());
  });

  it("passes asl-validator once substituted", () => {
    // Act
    const definition = loadAsl(FILE, fakeArns);
    const result = aslValidator(definition);
    // Assess
    expect(result.isValid, result.errorsText("\n")).toBe(true);
  });

  it("refuses to load with a placeholder left unsubstituted, naming it", () => {
    const { PromoteFunctionArn: _omit, ...partial } = fakeArns;
    expect(() => loadAsl(FILE, partial)).toThrow(/no substitution for \$\{PromoteFunctionArn\}/);
  });

  it("leaves no ${...} anywhere in the loaded definition", () => {
    expect(JSON.stringify(loadAsl(FILE, fakeArns))).not.toMatch(/\$\{/);
  });

  it("has a Task for each step, each calling one of the substituted functions", () => {
    const tasks = taskResources(loadAsl(FILE, fakeArns) as never);
    expect([...tasks.keys()].sort()).toEqual(["CopyToRegion", "Promote", "Quarantine", "Record", "RecordReplicaFailure", "ReportFailure", "Validate"]);
    for (const [state, arn] of tasks) expect(state === "ReportFailure" ? REPORT_FAILURE : Object.values(fakeArns)).toContain(arn);
  });

  it("records a replica copy that still fails after its retries as failed, and never fails the ingest for it", () => {
    const def = JSON.parse(raw) as { States: Record<string, { Catch?: { Next: string }[]; ItemProcessor?: { States: Record<string, { Catch?: { Next: string }[]; Retry?: unknown[] }> } }> };
    const copy = def.States.Replicate!.ItemProcessor!.States.CopyToRegion!;
    expect(copy.Retry?.length).toBeGreaterThan(0);
    expect(copy.Catch).toEqual([expect.objectContaining({ Next: "RecordReplicaFailure" })]);
    expect(def.States.Replicate!.Catch).toEqual([expect.objectContaining({ Next: "Done" })]);
  });

  type Step = {
    Type: string;
    Next?: string;
    Retry?: { ErrorEquals: string[]; JitterStrategy?: string; MaxAttempts?: number; BackoffRate?: number }[];
    Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
    Parameters?: Record<string, unknown>;
    Error?: string;
  };
  const states = (JSON.parse(raw) as { States: Record<string, Step> }).States;

  it.each(["Validate", "Promote", "Record"])("quarantines only the named validation errors of %s; everything else ends without a quarantine record", (state) => {
    // Assess: the first catcher names the validation errors and quarantines; the second takes the rest elsewhere.
    const [bad, rest, ...more] = states[state]!.Catch!;
    expect(more).toEqual([]);
    expect(bad).toEqual({ ErrorEquals: [...INGEST_VALIDATION_ERRORS], ResultPath: "$.error", Next: "Quarantine" });
    expect(rest).toEqual({ ErrorEquals: ["States.ALL"], ResultPath: "$.caught", Next: `${state}Failed` });
    // ...which notes the state, reports the failure and ends in a Fail state, never reaching Quarantine.
    const noted = states[`${state}Failed`]!;
    expect(noted).toMatchObject({ Type: "Pass", Next: "ReportFailure", Parameters: { state } });
    expect(states.ReportFailure).toMatchObject({ Type: "Task", Resource: REPORT_FAILURE, Next: "NotStored" });
    expect(states.ReportFailure!.Catch).toEqual([expect.objectContaining({ ErrorEquals: ["States.ALL"], Next: "NotStored" })]);
    expect(states.NotStored).toMatchObject({ Type: "Fail", Error: "IngestNotStored" });
  });

  it.each(["Validate", "Promote", "Record"])("retries the transient errors of %s (and only those) with full jitter: a timeout once, service faults 4 times with backoff", (state) => {
    const retry = states[state]!.Retry!;
    expect(retry).toHaveLength(2);
    expect(retry[0]).toMatchObject({ ErrorEquals: [...TIMEOUT_WORKFLOW_ERRORS], MaxAttempts: 1, JitterStrategy: "FULL" });
    expect(retry[1]).toMatchObject({ ErrorEquals: [...SERVICE_WORKFLOW_ERRORS], MaxAttempts: 4, BackoffRate: 2, JitterStrategy: "FULL" });
    const retried = retry.flatMap((r) => r.ErrorEquals);
    for (const e of INGEST_VALIDATION_ERRORS) expect(retried).not.toContain(e);
    expect(retried).not.toContain("States.ALL");
    expect(retried).not.toContain("States.TaskFailed"); // a wildcard in ASL: it would retry bad uploads
  });

  it("names only error classes that exist in core/errors.ts", () => {
    for (const name of [...INGEST_VALIDATION_ERRORS, ...TRANSIENT_WORKFLOW_ERRORS].filter((n) => !n.includes("."))) {
      expect(typeof (errors as Record<string, unknown>)[name], name).toBe("function");
      expect(new ((errors as unknown as Record<string, new (m: string) => Error>)[name]!)("x").name).toBe(name);
    }
  });
});
