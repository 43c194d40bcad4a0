/**
 * statemachines/pack-ingest.asl.json: valid ASL, its one placeholder (the
 * borrowed PromotePacks function) substituted, bad packs end without a
 * failure (the manifest's ingest quarantines the snapshot), transient faults
 * are retried, then fail the execution.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import * as errors from "../../core/errors.js";
import { PACK_VALIDATION_ERRORS, SERVICE_WORKFLOW_ERRORS, TIMEOUT_WORKFLOW_ERRORS } from "../../core/errors.js";
import { WORKFLOW_DEFINITIONS } from "../../core/workflows.js";
import { loadAsl, placeholdersOf, taskResources } from "../../local/asl.js";
import { STATEMACHINES_DIR } from "../../local/paths.js";

const require = createRequire(import.meta.url);
const aslValidator = require("asl-validator") as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

const FILE = WORKFLOW_DEFINITIONS["pack-ingest"].asl;
const raw = readFileSync(join(STATEMACHINES_DIR, FILE), "utf8");
const fakeArns = { PromotePacksFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:PromotePacks" };

type Step = {
  Type: string;
  End?: boolean;
  Parameters?: Record<string, unknown>;
  Retry?: { ErrorEquals: string[]; JitterStrategy?: string; MaxAttempts?: number }[];
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
};
const states = (JSON.parse(raw) as { States: Record<string, Step> }).States;

describe("pack-ingest.asl.json", () => {
  it("calls only snapshot ingest's PromotePacks function, with the upload event as `landed`", () => {
    // Act
    const tasks = taskResources(loadAsl(FILE, fakeArns) as never);
    // Assess
    expect(placeholdersOf(raw)).toEqual(["PromotePacksFunctionArn"]);
    expect([...tasks.entries()]).toEqual([["PromoteLandedPack", fakeArns.PromotePacksFunctionArn]]);
    expect(states.PromoteLandedPack!.Parameters).toEqual({ "landed.$": "$" });
  });

  it("passes asl-validator once substituted", () => {
    const result = aslValidator(loadAsl(FILE, fakeArns));
    expect(result.isValid, result.errorsText("\n")).toBe(true);
  });

  it("ends a bad pack or an unknown database in a Succeed state, anything else after its retries in a Fail state", () => {
    // Prepare
    const [bad, rest, ...more] = states.PromoteLandedPack!.Catch!;
    // Assess
    expect(more).toEqual([]);
    expect(bad).toEqual({ ErrorEquals: [...PACK_VALIDATION_ERRORS], ResultPath: "$.error", Next: "NotPromoted" });
    expect(states.NotPromoted!.Type).toBe("Succeed");
    expect(rest).toEqual({ ErrorEquals: ["States.ALL"], ResultPath: "$.caught", Next: "PackNotPromoted" });
    expect(states.PackNotPromoted!.Type).toBe("Fail");
    // Every name caught as bad input is an error class of the catalogue.
    for (const name of PACK_VALIDATION_ERRORS) expect(typeof (errors as Record<string, unknown>)[name], name).toBe("function");
  });

  it("retries timeouts once and service faults with full jitter, never a bad pack", () => {
    // Prepare
    const [timeouts, service, ...more] = states.PromoteLandedPack!.Retry!;
    // Assess
    expect(more).toEqual([]);
    expect(timeouts).toMatchObject({ ErrorEquals: [...TIMEOUT_WORKFLOW_ERRORS], MaxAttempts: 1, JitterStrategy: "FULL" });
    expect(service).toMatchObject({ ErrorEquals: [...SERVICE_WORKFLOW_ERRORS], JitterStrategy: "FULL" });
    for (const r of [timeouts!, service!]) for (const name of PACK_VALIDATION_ERRORS) expect(r.ErrorEquals).not.toContain(name);
  });
});
