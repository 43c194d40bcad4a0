/**
 * statemachines/snapshot-ingest.asl.json: valid ASL, every placeholder
 * substituted by the local stack (CDK's substitution is asserted in
 * test/infra), every Task state has a handler, every failure is quarantined,
 * and the Map over chunk batches is bounded.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";
import { WORKFLOWS } from "../../local/stack.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "snapshot-ingest.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const EXPECTED = [
  "ValidateManifestFunctionArn",
  "PromoteChunksFunctionArn",
  "CheckReferencedFunctionArn",
  "PromoteManifestFunctionArn",
  "RecordSnapshotFunctionArn",
  "CopyItemFunctionArn",
  "RecordReplicaFailureFunctionArn",
  "QuarantineSnapshotFunctionArn",
];
const fakeArns = Object.fromEntries(EXPECTED.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`]));

interface State {
  Type: string;
  Next?: string;
  End?: boolean;
  Resource?: string;
  MaxConcurrency?: number;
  ItemsPath?: string;
  ResultPath?: string | null;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
  Choices?: { Next: string }[];
  Default?: string;
}
const def = JSON.parse(raw) as { StartAt: string; States: Record<string, State> };

describe("snapshot-ingest.asl.json", () => {
  it("uses exactly the eight handler placeholders", () => {
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
    const { PromoteChunksFunctionArn: _omit, ...partial } = fakeArns;
    expect(() => loadAsl(FILE, partial)).toThrow(/no substitution for \$\{PromoteChunksFunctionArn\}/);
  });

  it("leaves no ${...} anywhere in the loaded definition", () => {
    expect(JSON.stringify(loadAsl(FILE, fakeArns))).not.toMatch(/\$\{/);
  });

  it("has a Task for each step, each calling one of the substituted functions, each with a local handler", () => {
    // Act
    const tasks = taskResources(loadAsl(FILE, fakeArns) as never);
    // Assess
    expect([...tasks.keys()].sort()).toEqual(
      ["CheckReferenced", "CopySnapshot", "PromoteChunkBatch", "PromoteManifest", "QuarantineSnapshot", "RecordSnapshot", "RecordSnapshotReplicaFailure", "ValidateManifest"].sort(),
    );
    for (const arn of tasks.values()) expect(Object.values(fakeArns)).toContain(arn);
    const local = WORKFLOWS.find((w) => w.file === FILE)!;
    expect(Object.keys(local.functions).sort()).toEqual([...EXPECTED].sort());
  });

  it("runs the steps in order: validate, promote chunks, check references, promote the manifest, record, replicate", () => {
    // Act
    const order: string[] = [];
    for (let name: string | undefined = def.StartAt; name && !order.includes(name); ) {
      order.push(name);
      const s: State = def.States[name]!;
      name = s.Type === "Choice" ? s.Default : s.Next;
    }
    // Assess
    expect(order).toEqual(["ValidateManifest", "AlreadyRecorded", "PromoteChunks", "CheckReferenced", "PromoteManifest", "RecordSnapshot", "ReplicateSnapshot", "Done"]);
    expect(def.States.AlreadyRecorded!.Choices).toEqual([expect.objectContaining({ Next: "Done" })]);
  });

  it("sends every failure of every step to QuarantineSnapshot, which ends in a Fail state", () => {
    for (const state of ["ValidateManifest", "PromoteChunks", "CheckReferenced", "PromoteManifest", "RecordSnapshot"]) {
      expect(def.States[state]!.Catch, state).toEqual([
        expect.objectContaining({ ErrorEquals: ["States.ALL"], Next: "QuarantineSnapshot", ResultPath: "$.error" }),
      ]);
    }
    expect(def.States[def.States.QuarantineSnapshot!.Next!]!.Type).toBe("Fail");
  });

  it("retries ServiceUnavailableError in every Task", () => {
    const tasks = [
      ...Object.values(def.States),
      ...Object.values(def.States.PromoteChunks!.ItemProcessor!.States),
    ].filter((s) => s.Type === "Task");
    expect(tasks).toHaveLength(6);
    const copy = def.States.ReplicateSnapshot!.ItemProcessor!.States.CopySnapshot!;
    expect(copy.Retry?.length).toBeGreaterThan(0);
    expect(copy.Catch).toEqual([expect.objectContaining({ Next: "RecordSnapshotReplicaFailure" })]);
    for (const t of tasks) expect(t.Retry?.flatMap((r) => r.ErrorEquals).some((e) => e === "ServiceUnavailableError" || e === "States.ALL")).toBe(true);
  });

  it("maps over the batches with at most 4 at a time and drops the iteration results", () => {
    const map = def.States.PromoteChunks!;
    expect(map).toMatchObject({ Type: "Map", MaxConcurrency: 4, ItemsPath: "$.validated.batches", ResultPath: null });
  });
});
