/**
 * statemachines/verify.asl.json: valid ASL once substituted (as the local
 * stack and CDK do), every Lambda Task has a local handler, the ECS task is
 * run with .sync and the candidate as its container override, failures are
 * caught per kind, and the Map is bounded.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";
import { VERIFY_SUBSTITUTIONS, VERIFY_WORKFLOW } from "../../local/stack.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "verify.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const FUNCTIONS = ["SelectCandidatesFunctionArn", "RecordResultFunctionArn"];
const subs = { ...VERIFY_SUBSTITUTIONS, ...Object.fromEntries(FUNCTIONS.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`])) };

interface State {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Retry?: { ErrorEquals: string[] }[];
  MaxConcurrency?: number;
  ItemProcessor?: { States: Record<string, State> };
  Choices?: { Variable: string; Next: string }[];
}

describe("verify.asl.json", () => {
  it("uses the two handler placeholders plus cluster, task definition and topic, and the local stack substitutes them all", () => {
    expect(placeholdersOf(raw).sort()).toEqual([...FUNCTIONS, "ClusterArn", "TaskDefinitionArn", "TopicArn"].sort());
    expect(Object.keys(VERIFY_WORKFLOW.functions).sort()).toEqual([...FUNCTIONS].sort());
  });

  it("passes asl-validator once substituted, with nothing left over", () => {
    const definition = loadAsl(FILE, subs);
    const result = aslValidator(definition);
    expect(result.isValid, result.errorsText("\n")).toBe(true);
    expect(JSON.stringify(definition)).not.toMatch(/\$\{/);
  });

  it("runs the verification task with ecs:runTask.sync and the candidate as its container override, and catches failures by kind", () => {
    // Prepare
    const def = JSON.parse(raw) as { States: Record<string, State> };
    const map = def.States.VerifyEach!;
    const run = map.ItemProcessor!.States.RunVerification!;
    // Assess
    expect(map.MaxConcurrency).toBe(5);
    expect(run.Resource).toBe("arn:aws:states:::ecs:runTask.sync");
    expect(JSON.stringify(run.Parameters)).toContain('"Value.$":"States.JsonToString($.candidate)"');
    expect(run.Retry!.flatMap((r) => r.ErrorEquals)).not.toContain("States.TaskFailed");
    expect(run.Catch!.map((c) => [c.ErrorEquals, c.Next])).toEqual([
      [["States.TaskFailed"], "RecordResult"],
      [["States.ALL"], "RecordResult"],
    ]);
    expect(map.ItemProcessor!.States["Failed?"]!.Choices).toEqual([expect.objectContaining({ Variable: "$.result.notify", Next: "Notify" })]);
    expect(map.ItemProcessor!.States.Notify!.Resource).toBe("arn:aws:states:::sns:publish");
    expect([...taskResources(loadAsl(FILE, subs) as never).keys()].sort()).toEqual(["Collect", "Notify", "RecordResult", "RunVerification", "SelectCandidates", "Summary"]);
  });

  it("walks the registry a page at a time: select a page, verify its candidates, collect their results, loop while there is a next page, then summarize", () => {
    // Prepare
    const def = JSON.parse(raw) as { StartAt: string; States: Record<string, State & { Parameters?: Record<string, unknown>; ResultPath?: string; Default?: string; Choices?: unknown[] }> };
    // Assess
    expect(def.StartAt).toBe("Start");
    expect(def.States.Start).toMatchObject({ Type: "Pass", Next: "SelectCandidates", Parameters: { "request.$": "$", cursor: { after: "", page: 0, count: 0 } } });
    expect(def.States.SelectCandidates).toMatchObject({ Next: "VerifyEach", ResultPath: "$.selected", Parameters: { "request.$": "$.request", "cursor.$": "$.cursor" } });
    expect(def.States.VerifyEach).toMatchObject({ ItemsPath: "$.selected.candidates", ResultPath: "$.results", Next: "Collect" });
    expect(def.States.Collect).toMatchObject({ Next: "MorePages", ResultPath: "$.cursor", Parameters: { step: "collect", "next.$": "$.selected.next", "results.$": "$.results" } });
    expect(def.States.MorePages!.Choices).toEqual([{ Not: { Variable: "$.cursor.after", StringEquals: "" }, Next: "NextPage" }]);
    expect(def.States.MorePages!.Default).toBe("Summary");
    expect(def.States.NextPage).toMatchObject({ Type: "Pass", Next: "SelectCandidates", Parameters: { "request.$": "$.request", "cursor.$": "$.cursor" } });
    expect(def.States.Summary).toMatchObject({ End: true, Parameters: { step: "summary", "cursor.$": "$.cursor" } });
  });
});
