/**
 * The templates do not grow with the number of databases (issue #11): a
 * deployment for 1,000 databases synthesizes the same resources, outputs and
 * lifecycle rules as one for a single database, within CloudFormation's
 * limits (500 resources and 200 outputs per stack) and S3's (1,000 lifecycle
 * rules per bucket). Each app is the primary stack plus one replica stack,
 * built by addWalvaultStacks as infra/app.ts builds it; handlers unbundled.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { findProjectRoot } from "../../infra/primary-stack.js";
import { addWalvaultStacks } from "../../infra/walvault-app.js";
import { type CfnResource, NO_BUNDLING } from "./cfn.js";

const root = findProjectRoot();
const cdkJson = JSON.parse(readFileSync(join(root, "cdk.json"), "utf8")) as { context: Record<string, unknown> };

interface Shape {
  readonly resources: number;
  readonly outputs: number;
  readonly lifecycleRules: number[];
}

/** Resource and output counts of a stack, and the lifecycle rule count of each of its buckets. */
function shapeOf(stack: Stack): Shape {
  const json = Template.fromStack(stack).toJSON() as { Resources: Record<string, CfnResource>; Outputs?: Record<string, unknown> };
  const buckets = Object.values(json.Resources).filter((r) => r.Type === "AWS::S3::Bucket");
  return {
    resources: Object.keys(json.Resources).length,
    outputs: Object.keys(json.Outputs ?? {}).length,
    lifecycleRules: buckets.map((b) => ((b.Properties?.LifecycleConfiguration as { Rules?: unknown[] } | undefined)?.Rules ?? []).length),
  };
}

/** The primary and replica stacks' shapes of an app for `databases`. */
function synthFor(databases: string[]): { primary: Shape; replica: Shape } {
  const app = new App({ context: { ...cdkJson.context, ...NO_BUNDLING } });
  const stacks = addWalvaultStacks(app, { databases, replicas: [{ region: "eu-west-1" }] }, { account: "123456789012", region: "us-east-1" });
  return { primary: shapeOf(stacks.primary), replica: shapeOf(stacks.replicas[0]!) };
}

let one: { primary: Shape; replica: Shape };
let thousand: { primary: Shape; replica: Shape };

beforeAll(() => {
  // Prepare + Act: the same deployment for one database and for 1,000.
  one = synthFor(["pg-main"]);
  thousand = synthFor(Array.from({ length: 1000 }, (_, i) => `db-${String(i).padStart(4, "0")}`));
});

describe("a deployment for 1,000 databases", () => {
  it("has the same resources, outputs and lifecycle rules as one for a single database, in the primary and the replica stack", () => {
    // Assess
    expect(thousand.primary).toEqual(one.primary);
    expect(thousand.replica).toEqual(one.replica);
  });

  it("stays within CloudFormation's and S3's limits", () => {
    // Assess
    for (const shape of [thousand.primary, thousand.replica]) {
      expect(shape.resources).toBeLessThanOrEqual(500);
      expect(shape.outputs).toBeLessThanOrEqual(200);
      for (const rules of shape.lifecycleRules) expect(rules).toBeLessThanOrEqual(1000);
    }
  });
});
