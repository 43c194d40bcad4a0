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
import { SERVICE_WORKFLOW_ERRORS, SNAPSHOT_VALIDATION_ERRORS, TIMEOUT_WORKFLOW_ERRORS } from "../../core/errors.js";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";
import { WORKFLOWS } from "../../local/stack.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = "snapshot-ingest.asl.json";
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const EXPECTED = [
  "ValidateManifestFunctionArn",
  "ValidatePagesFunctionArn",
  "PromoteChunksFunctionArn",
  "PromotePacksFunctionArn",
  "CheckReferencedFunctionArn",
  "PromoteManifestFunctionArn",
  "RecordSnapshotFunctionArn",
  "CopyItemFunctionArn",
  "RecordReplicaFailureFunctionArn",
  "QuarantineSnapshotFunctionArn",
];
const fakeArns: Record<string, string> = {
  ...Object.fromEntries(EXPECTED.map((p) => [p, `arn:aws:lambda:us-east-1:123456789012:function:${p}`])),
  IncomingBucketName: "walvault-incoming",
};
const REPORT_FAILURE = "arn:aws:states:::aws-sdk:s3:putObject";

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
  it("uses exactly the ten handler placeholders and the incoming bucket's name", () => {
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
      ["CheckReferenced", "CopySnapshot", "PromoteChunkBatch", "PromotePackBatch", "PromoteManifest", "QuarantineSnapshot", "RecordSnapshot", "RecordSnapshotReplicaFailure", "ReportFailure", "ValidateManifest", "ValidatePages"].sort(),
    );
    for (const [state, arn] of tasks) expect(state === "ReportFailure" ? REPORT_FAILURE : Object.values(fakeArns)).toContain(arn);
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
    expect(order).toEqual([
      "ValidateManifest",
      "AlreadyRecorded",
      "PromoteChunks",
      "StartCheckReferenced",
      "CheckReferenced",
      "MoreToCheck",
      "StartPromoteManifest",
      "PromoteManifest",
      "MoreToPromote",
      "RecordSnapshot",
      "ReplicateSnapshot",
      "Done",
    ]);
    expect(def.States.AlreadyRecorded!.Choices).toEqual([
      expect.objectContaining({ Next: "Done" }),
      expect.objectContaining({ Next: "ValidatePages" }),
      expect.objectContaining({ Next: "PromotePacks" }),
    ]);
  });

  it("takes a packed push (validated snapshot.packed) through PromotePacks, which then joins the chunk path before CheckReferenced", () => {
    // Assess
    expect(def.States.AlreadyRecorded!.Choices![2]).toEqual({ Variable: "$.validated.snapshot.packed", BooleanEquals: true, Next: "PromotePacks" });
    expect(def.States.PromotePacks).toMatchObject({ Type: "Map", MaxConcurrency: 4, ItemsPath: "$.validated.batches", ResultPath: null, Next: "StartCheckReferenced" });
    expect(def.States.PromotePacks!.ItemProcessor!.StartAt).toBe("PromotePackBatch");
  });

  it("quarantines only the named validation errors of every step; everything else ends in SnapshotNotStored without a quarantine record", () => {
    for (const state of ["ValidateManifest", "ValidatePages", "PromoteChunks", "PromotePacks", "CheckReferenced", "PromoteManifest", "RecordSnapshot"]) {
      expect(def.States[state]!.Catch, state).toEqual([
        { ErrorEquals: [...SNAPSHOT_VALIDATION_ERRORS], Next: "QuarantineSnapshot", ResultPath: "$.error" },
        { ErrorEquals: ["States.ALL"], Next: `${state}Failed`, ResultPath: "$.caught" },
      ]);
      expect(def.States[`${state}Failed`], state).toMatchObject({ Type: "Pass", Next: "ReportFailure" });
    }
    expect(def.States[def.States.QuarantineSnapshot!.Next!]!.Type).toBe("Fail");
    expect(def.States.ReportFailure).toMatchObject({ Type: "Task", Resource: REPORT_FAILURE, Next: "NotStored" });
    expect(def.States.NotStored).toMatchObject({ Type: "Fail", Error: "SnapshotNotStored" });
  });

  it("retries the transient errors (and only those) in every step Task, with full jitter", () => {
    const tasks = [
      ...Object.entries(def.States),
      ...Object.entries(def.States.PromoteChunks!.ItemProcessor!.States),
      ...Object.entries(def.States.PromotePacks!.ItemProcessor!.States),
    ].filter(([name, s]) => s.Type === "Task" && name !== "QuarantineSnapshot" && name !== "ReportFailure");
    expect(tasks).toHaveLength(7);
    const copy = def.States.ReplicateSnapshot!.ItemProcessor!.States.CopySnapshot!;
    expect(copy.Retry?.length).toBeGreaterThan(0);
    expect(copy.Catch).toEqual([expect.objectContaining({ Next: "RecordSnapshotReplicaFailure" })]);
    for (const [name, t] of tasks) {
      expect(t.Retry, name).toEqual([
        expect.objectContaining({ ErrorEquals: [...TIMEOUT_WORKFLOW_ERRORS], MaxAttempts: 1, JitterStrategy: "FULL" }),
        expect.objectContaining({ ErrorEquals: [...SERVICE_WORKFLOW_ERRORS], MaxAttempts: 4, JitterStrategy: "FULL" }),
      ]);
    }
  });

  it("loops ValidatePages until its progress is done before any batch is promoted, carrying only ValidateManifest's output", () => {
    // Assess
    expect(def.States.AlreadyRecorded!.Choices![1]).toEqual({
      And: [
        { Variable: "$.validated.progress", IsPresent: true },
        { Variable: "$.validated.progress.done", BooleanEquals: false },
      ],
      Next: "ValidatePages",
    });
    expect(def.States.ValidatePages).toMatchObject({ Type: "Task", ResultPath: "$.validated", Next: "AlreadyRecorded" });
  });

  it("checks references and promotes the manifest in loops that start from page 0 and end when the step says done", () => {
    // Assess
    for (const [start, task, more, after, path] of [
      ["StartCheckReferenced", "CheckReferenced", "MoreToCheck", "StartPromoteManifest", "$.referenced"],
      ["StartPromoteManifest", "PromoteManifest", "MoreToPromote", "RecordSnapshot", "$.promoted"],
    ] as const) {
      expect(def.States[start]).toMatchObject({ Type: "Pass", ResultPath: path, Next: task });
      expect((def.States[start] as unknown as { Result: { next: number; done: boolean } }).Result).toMatchObject({ next: 0, done: false });
      expect(def.States[task]).toMatchObject({ ResultPath: path, Next: more });
      expect(def.States[more]).toMatchObject({ Type: "Choice", Choices: [{ Variable: `${path}.done`, BooleanEquals: false, Next: task }], Default: after });
    }
  });

  it("maps over the batches with at most 4 at a time and drops the iteration results", () => {
    const map = def.States.PromoteChunks!;
    expect(map).toMatchObject({ Type: "Map", MaxConcurrency: 4, ItemsPath: "$.validated.batches", ResultPath: null });
  });
});
