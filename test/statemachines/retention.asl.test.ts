/**
 * statemachines/retention.asl.json: valid ASL, every placeholder substituted
 * by the local stack, every Task has a handler; the workflow walks the
 * registry a page at a time: Plan plans a page, a dry run collects the plans,
 * otherwise a Map over the page's databases, two at a time, runs Execute in
 * bounded rounds (retried on ServiceUnavailableError); Collect writes the
 * page's outcome to a work/ object and returns the cursor; it loops while
 * there is a next page and ends with a summary.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";
import { RETENTION_WORKFLOW } from "../../local/stack.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "retention.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const EXPECTED = ["PlanRetentionFunctionArn", "ExecuteRetentionFunctionArn"];
const fakeArns = Object.fromEntries(EXPECTED.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`]));

interface State {
  Type: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next: string; Variable: string; BooleanEquals?: boolean; NumericGreaterThanEquals?: number; Not?: { Variable: string; StringEquals: string } }[];
  MaxConcurrency?: number;
  ItemsPath?: string;
  ItemSelector?: Record<string, unknown>;
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
  Parameters?: Record<string, unknown>;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: unknown[];
  OutputPath?: string;
}

const def = JSON.parse(raw) as { StartAt: string; States: Record<string, State> };

describe("retention.asl.json", () => {
  it("uses exactly the two handler placeholders, each with a local handler", () => {
    expect(placeholdersOf(raw).sort()).toEqual([...EXPECTED].sort());
    expect(Object.keys(RETENTION_WORKFLOW.functions).sort()).toEqual([...EXPECTED].sort());
  });

  it("passes asl-validator once substituted and leaves no ${...}", () => {
    // Act
    const definition = loadAsl(FILE, fakeArns);
    const result = aslValidator(definition);
    // Assess
    expect(result.isValid, result.errorsText("\n")).toBe(true);
    expect(JSON.stringify(definition)).not.toMatch(/\$\{/);
    expect([...taskResources(definition as never).keys()].sort()).toEqual(["CollectPlans", "CollectResults", "Execute", "Plan", "Summary"]);
  });

  it("plans a page of databases first and, on a dry run, only collects the plans", () => {
    expect(def.StartAt).toBe("Start");
    expect(def.States.Start).toMatchObject({ Type: "Pass", Next: "Plan", Parameters: { "request.$": "$", "execution.$": "$$.Execution.Name", cursor: { after: "", page: 0, count: 0 } } });
    expect(def.States.Plan).toMatchObject({ Type: "Task", Next: "DryRun", ResultPath: "$.page", Parameters: { "request.$": "$.request", "cursor.$": "$.cursor" } });
    const choice = def.States.DryRun!;
    expect(choice.Choices!.map((c) => [c.Variable, c.BooleanEquals, c.Next])).toEqual([["$.page.dryRun", true, "CollectPlans"]]);
    expect(choice.Default).toBe("ExecuteEach");
    expect(def.States.CollectPlans).toMatchObject({ Type: "Task", ResultPath: "$.cursor", Next: "MorePages", Parameters: { step: "collect", "page.$": "$.page" } });
    expect(def.States.CollectPlans!.Parameters).not.toHaveProperty("results.$");
  });

  it("loops while the registry has a next page, dropping the page before the next, then summarizes", () => {
    const more = def.States.MorePages!;
    expect(more.Choices!.map((c) => [c.Not, c.Next])).toEqual([[{ Variable: "$.cursor.after", StringEquals: "" }, "NextPage"]]);
    expect(more.Default).toBe("Summary");
    expect(def.States.NextPage).toEqual({ Type: "Pass", Comment: expect.any(String) as string, Parameters: { "request.$": "$.request", "execution.$": "$.execution", "cursor.$": "$.cursor" }, Next: "Plan" });
    expect(def.States.Summary).toMatchObject({ Type: "Task", End: true, Parameters: { step: "summary", "cursor.$": "$.cursor" } });
  });

  it("executes each database's plan of the page two at a time, in rounds bounded to 40, retried on ServiceUnavailableError, then collects", () => {
    const map = def.States.ExecuteEach!;
    expect(map).toMatchObject({ Type: "Map", ItemsPath: "$.page.databases", MaxConcurrency: 2, ResultPath: "$.results", Next: "CollectResults" } as Partial<State>);
    expect(map.ItemSelector).toMatchObject({ "plan.$": "$$.Map.Item.Value", progress: { round: 0 } });
    const inner = map.ItemProcessor!;
    expect(inner.StartAt).toBe("Execute");
    const execute = inner.States.Execute!;
    expect(execute.Next).toBe("Done");
    expect(execute.Retry![0]!.ErrorEquals).toContain("ServiceUnavailableError");
    expect(execute.Retry![0]!.ErrorEquals).not.toContain("States.ALL");
    expect(execute.Catch).toBeUndefined();
    const done = inner.States.Done!;
    expect(done.Choices!.map((c) => [c.Variable, c.Next])).toEqual([
      ["$.progress.complete", "Executed"],
      ["$.progress.round", "Executed"],
    ]);
    expect(done.Choices![1]!.NumericGreaterThanEquals).toBe(40);
    expect(done.Default).toBe("Execute");
    expect(inner.States.Executed).toMatchObject({ Type: "Pass", OutputPath: "$.progress", End: true });
    expect(def.States.CollectResults).toMatchObject({ Type: "Task", ResultPath: "$.cursor", Next: "MorePages", Parameters: { step: "collect", "results.$": "$.results" } });
  });
});
