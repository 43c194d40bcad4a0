/**
 * statemachines/replicate.asl.json: valid ASL, every placeholder substituted
 * by the local stack, every Task has a handler, the copy Map is bounded, and
 * the loop ends: when nothing is missing, when a whole round failed, or after
 * a bounded number of rounds; a snapshot's copy loops over bounded batches.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";
import { REPLICATE_WORKFLOW } from "../../local/stack.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "replicate.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const EXPECTED = ["FindMissingFunctionArn", "CopyItemFunctionArn", "RecordReplicaFailureFunctionArn"];
const fakeArns = Object.fromEntries(EXPECTED.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`]));

interface State {
  Type: string;
  Next?: string;
  Default?: string;
  Choices?: { Next: string; Variable: string }[];
  MaxConcurrency?: number;
  Catch?: { Next: string }[];
  Error?: string;
}

describe("replicate.asl.json", () => {
  it("uses exactly the three handler placeholders, each with a local handler", () => {
    expect(placeholdersOf(raw).sort()).toEqual([...EXPECTED].sort());
    expect(Object.keys(REPLICATE_WORKFLOW.functions).sort()).toEqual([...EXPECTED].sort());
  });

  it("passes asl-validator once substituted and leaves no ${...}", () => {
    // Act
    const definition = loadAsl(FILE, fakeArns);
    const result = aslValidator(definition);
    // Assess
    expect(result.isValid, result.errorsText("\n")).toBe(true);
    expect(JSON.stringify(definition)).not.toMatch(/\$\{/);
    expect([...taskResources(definition as never).keys()].sort()).toEqual(["CopyItem", "FindMissing", "RecordFailure"]);
  });

  it("loops FindMissing -> CopyItems while items are missing, and stops when level, stalled or after 40 rounds", () => {
    // Prepare
    const def = JSON.parse(raw) as { StartAt: string; States: Record<string, State> };
    // Assess
    expect(def.States.FindMissing!.Next).toBe("Anything");
    const choice = def.States.Anything!;
    expect(choice.Default).toBe("CopyItems");
    expect(choice.Choices!.map((c) => [c.Variable, c.Next])).toEqual([
      ["$.found.complete", "Level"],
      ["$.found.stalled", "Stalled"],
      ["$.found.round", "MoreLeft"],
    ]);
    expect(def.States.Stalled).toMatchObject({ Type: "Fail", Error: "ReplicationStalled" });
    expect(def.States.CopyItems).toMatchObject({ Type: "Map", MaxConcurrency: 4, Next: "FindMissing" });
  });

  it("runs CopyItem again on its own output while a snapshot's copy is not done (bounded batches), and ends the iteration when it is", () => {
    // Prepare
    const def = JSON.parse(raw) as { States: Record<string, { ItemProcessor?: { States: Record<string, State> } }> };
    const states = def.States.CopyItems!.ItemProcessor!.States;
    // Assess
    expect(states.CopyItem).toMatchObject({ Type: "Task", Next: "MoreToCopy" });
    expect(states.CopyItem!.Catch!.map((c) => c.Next)).toEqual(["RecordFailure"]);
    expect(states.MoreToCopy).toMatchObject({ Type: "Choice", Choices: [{ Variable: "$.done", BooleanEquals: false, Next: "CopyItem" }], Default: "CopyItemDone" });
    expect(states.CopyItemDone).toMatchObject({ Type: "Succeed" });
  });
});
