/**
 * statemachines/restore.asl.json: valid ASL, exactly the expected
 * placeholders (all substituted by the local stack; CDK's substitution is
 * asserted in test/infra), every Task state has a local handler, planning
 * errors end in a Fail state carrying their name, thaw runs only when the
 * input or the deployment's default asks, and the thaw loop waits.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";
import { RESTORE_WORKFLOW, restoreSubstitutions } from "../../local/stack.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "restore.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const FUNCTIONS = ["PlanFunctionArn", "ThawFunctionArn", "CheckThawFunctionArn"];
const EXPECTED = [...FUNCTIONS, "ThawByDefault"];
const fakeArns = { ...Object.fromEntries(FUNCTIONS.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`])), ThawByDefault: "off" };

interface State {
  Type: string;
  Next?: string;
  Default?: string;
  Seconds?: number;
  ErrorPath?: string;
  CausePath?: string;
  OutputPath?: string;
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
  SecondsPath?: string;
  Parameters?: Record<string, string>;
  Choices?: { Variable?: string; NumericGreaterThan?: number; BooleanEquals?: boolean; Next: string }[];
  Result?: unknown;
  ResultPath?: string;
  Error?: string;
}

describe(FILE, () => {
  const def = loadAsl(FILE, fakeArns) as { StartAt: string; States: Record<string, State> };

  it("has exactly the expected placeholders", () => {
    expect(placeholdersOf(raw).sort()).toEqual([...EXPECTED].sort());
    expect(Object.keys(RESTORE_WORKFLOW.functions).sort()).toEqual([...FUNCTIONS].sort());
    expect(Object.keys(restoreSubstitutions())).toEqual(["ThawByDefault"]);
  });

  it("is valid ASL once substituted", () => {
    const r = aslValidator(def);
    expect(r.isValid, r.errorsText("\n")).toBe(true);
  });

  it("every Task state has a local handler", () => {
    const arns = new Set(Object.values(RESTORE_WORKFLOW.functions).map((f) => f.arn));
    const local = loadAsl(FILE, { ...restoreSubstitutions(), ...Object.fromEntries(Object.entries(RESTORE_WORKFLOW.functions).map(([k, v]) => [k, v.arn])) });
    for (const [state, arn] of taskResources(local as never)) expect(arns.has(arn), state).toBe(true);
    expect([...taskResources(def as never).keys()].sort()).toEqual(["CheckThaw", "Plan", "Thaw"]);
  });

  it("planning errors fail the execution with their name and cause", () => {
    const plan = def.States.Plan!;
    expect(plan.Catch).toEqual([{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: "PlanFailed" }]);
    expect(def.States.PlanFailed).toMatchObject({ Type: "Fail", ErrorPath: "$.error.Error", CausePath: "$.error.Cause" });
  });

  it("loops Thaw -> CheckThaw while a pass has batches left, Wait -> CheckThaw while objects are pending, then outputs the plan's summary", () => {
    expect(def.StartAt).toBe("Plan");
    expect(def.States.Plan!.Parameters).toMatchObject({ "execution.$": "$$.Execution.Name" });
    expect(def.States.Plan!.Next).toBe("ThawWanted");
    expect(def.States.Thaw!.Next).toBe("Thawed");
    const choice = def.States.Thawed!;
    expect(choice.Choices).toEqual([
      { Variable: "$.thaw.more", BooleanEquals: true, Next: "CheckThaw" },
      { Variable: "$.thaw.pending", NumericGreaterThan: 0, Next: "WaitForThaw" },
    ]);
    expect(choice.Default).toBe("Done");
    expect(def.States.WaitForThaw).toMatchObject({ Type: "Wait", SecondsPath: "$.thaw.waitSeconds", Next: "CheckThaw" });
    expect(def.States.CheckThaw!.Next).toBe("Thawed");
    expect(def.States.Done).toMatchObject({ Type: "Succeed", OutputPath: "$.plan" });
  });

  it("thaws only when asked: input thaw true -> Thaw, false -> Done, absent -> the deployment's default (on -> Thaw, off -> Done), anything else fails", () => {
    const wanted = def.States.ThawWanted!;
    expect(wanted.Type).toBe("Choice");
    expect(wanted.Choices).toEqual([
      { Not: { Variable: "$.thaw", IsPresent: true }, Next: "ThawDefault" },
      { Not: { Variable: "$.thaw", IsBoolean: true }, Next: "ThawFlagInvalid" },
      { Variable: "$.thaw", BooleanEquals: true, Next: "Thaw" },
    ]);
    expect(wanted.Default).toBe("Done");
    expect(def.States.ThawDefault).toMatchObject({ Type: "Pass", Result: "off", ResultPath: "$.thawByDefault", Next: "ThawByDefault" });
    expect(def.States.ThawByDefault).toMatchObject({ Type: "Choice", Choices: [{ Variable: "$.thawByDefault", StringEquals: "on", Next: "Thaw" }], Default: "Done" });
    expect(def.States.ThawFlagInvalid).toMatchObject({ Type: "Fail", Error: "InvalidInputError" });
    const on = loadAsl(FILE, { ...fakeArns, ThawByDefault: "on" }) as { States: Record<string, State> };
    expect(on.States.ThawDefault!.Result).toBe("on");
  });
});
