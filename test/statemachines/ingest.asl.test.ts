/**
 * statemachines/ingest.asl.json: valid ASL, every placeholder substituted by
 * the local stack (CDK's substitution is asserted in test/infra), and every
 * Task state has a handler.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "ingest.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const EXPECTED = ["ValidateFunctionArn", "PromoteFunctionArn", "RecordFunctionArn", "ReplicateFunctionArn", "RecordReplicaFailureFunctionArn", "QuarantineFunctionArn"];
const fakeArns = Object.fromEntries(EXPECTED.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`]));

describe("ingest.asl.json", () => {
  it("uses exactly the six handler placeholders", () => {
    expect(placeholdersOf(raw).sort()).toEqual([...EXPECTED].sort());
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
    expect([...tasks.keys()].sort()).toEqual(["CopyToRegion", "Promote", "Quarantine", "Record", "RecordReplicaFailure", "Validate"]);
    for (const arn of tasks.values()) expect(Object.values(fakeArns)).toContain(arn);
  });

  it("records a replica copy that still fails after its retries as failed, and never fails the ingest for it", () => {
    const def = JSON.parse(raw) as { States: Record<string, { Catch?: { Next: string }[]; ItemProcessor?: { States: Record<string, { Catch?: { Next: string }[]; Retry?: unknown[] }> } }> };
    const copy = def.States.Replicate!.ItemProcessor!.States.CopyToRegion!;
    expect(copy.Retry?.length).toBeGreaterThan(0);
    expect(copy.Catch).toEqual([expect.objectContaining({ Next: "RecordReplicaFailure" })]);
    expect(def.States.Replicate!.Catch).toEqual([expect.objectContaining({ Next: "Done" })]);
  });

  it("sends every failure of validate, promote and record to Quarantine", () => {
    const def = JSON.parse(raw) as { States: Record<string, { Catch?: { ErrorEquals: string[]; Next: string }[] }> };
    for (const state of ["Validate", "Promote", "Record"]) {
      expect(def.States[state]!.Catch).toEqual([expect.objectContaining({ ErrorEquals: ["States.ALL"], Next: "Quarantine" })]);
    }
  });
});
