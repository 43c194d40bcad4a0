/**
 * statemachines/rpo-watch.asl.json: valid ASL calling only MeasureRpo, and,
 * run by aws-local-stepfunctions with MeasureRpo stubbed as a registry of
 * pages, it measures page after page with only the cursor in its state, and
 * retries a transient fault.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { StateMachine } from "aws-local-stepfunctions";
import { describe, expect, it } from "vitest";
import { WORKFLOW_DEFINITIONS } from "../../core/workflows.js";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = WORKFLOW_DEFINITIONS["rpo-watch"].asl;
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const ARN = "arn:aws:lambda:us-east-1:123456789012:function:MeasureRpo";
const fakeArns = { MeasureRpoFunctionArn: ARN };

/** Runs the workflow with MeasureRpo answered by `measure`; returns the inputs it was called with. */
async function run(measure: (input: { after?: string }, call: number) => unknown): Promise<Array<{ after?: string }>> {
  const calls: Array<{ after?: string }> = [];
  const machine = new StateMachine(loadAsl(FILE, fakeArns) as never, { validationOptions: { checkArn: true } });
  await machine.run({}, {
    overrides: {
      taskResourceLocalHandlers: {
        MeasureRpo: async (input) => {
          const given = input as { after?: string };
          calls.push(given);
          return measure(given, calls.length) as never;
        },
      },
      retryIntervalOverrides: { MeasureRpo: 0 },
    },
  }).result;
  return calls;
}

describe("rpo-watch.asl.json", () => {
  it("calls only the MeasureRpo function, and passes asl-validator once substituted", () => {
    expect(placeholdersOf(raw)).toEqual(["MeasureRpoFunctionArn"]);
    expect([...taskResources(loadAsl(FILE, fakeArns) as never).entries()]).toEqual([["MeasureRpo", ARN]]);
    const result = aslValidator(loadAsl(FILE, fakeArns));
    expect(result.isValid, result.errorsText("\n")).toBe(true);
  });

  it("measures the registry page after page, passing only the cursor, until a page has no next", async () => {
    // Prepare: three pages
    const pages: Record<string, { next?: string; measured: number; breached: string[] }> = {
      "": { next: "db-200", measured: 200, breached: [] },
      "db-200": { next: "db-400", measured: 200, breached: ["db-301"] },
      "db-400": { measured: 17, breached: [] },
    };
    // Act
    const calls = await run((input) => pages[input.after ?? ""]);
    // Assess
    expect(calls).toEqual([{}, { after: "db-200" }, { after: "db-400" }]);
  });

  it("retries a transient fault of MeasureRpo", async () => {
    // Act
    const calls = await run((_input, call) => {
      if (call === 1) throw Object.assign(new Error("throttled"), { name: "ServiceUnavailableError" });
      return { measured: 1, breached: [] };
    });
    // Assess
    expect(calls).toEqual([{}, {}]);
  });
});
