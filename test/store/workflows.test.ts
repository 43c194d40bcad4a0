/**
 * store/workflows.ts: SfnWorkflowRunner (the real SDK client) against the
 * local Step Functions endpoint (local/sfn-endpoint.ts) running small
 * in-process workflows: start, describe until over, output parsed, failures
 * with their error and cause, service errors as walvault errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInputError, NotFoundError, ServiceUnavailableError } from "../../core/errors.js";
import { startSfnEndpoint, type SfnEndpoint } from "../../local/sfn-endpoint.js";
import { causeMessage, createWorkflowRunner, FINAL_STATUSES, SfnWorkflowRunner, type ExecutionState } from "../../store/workflows.js";
import { poll } from "../support/harness.js";

const ARN = (name: string): string => `arn:aws:states:local-1:000000000000:stateMachine:${name}`;
const CREDENTIALS = { accessKeyId: "x", secretAccessKey: "y" };

let endpoint: SfnEndpoint;
let runner: SfnWorkflowRunner;

const lambdaCause = JSON.stringify({
  errorType: "NoSnapshotBeforeTargetError",
  errorMessage: "no snapshot is consistent at or before time 2026-01-01T00:00:00.000Z",
  trace: ["NoSnapshotBeforeTargetError: no snapshot …", "    at planRestore (file:///var/task/index.mjs:1:2)"],
});

async function over(id: string): Promise<ExecutionState> {
  return poll(async () => {
    const s = await runner.describe(id);
    return FINAL_STATUSES.has(s.status) ? s : undefined;
  }, 5_000, `execution ${id} to end`);
}

beforeAll(async () => {
  endpoint = await startSfnEndpoint({
    workflows: [
      { stateMachineArn: ARN("plan"), run: async (input) => ({ planned: input, list: [1, 2] }) },
      { stateMachineArn: ARN("gap"), run: () => Promise.reject(Object.assign(new Error("x"), { error: "WalGapError", causeText: "segment 5 is missing" })) },
      { stateMachineArn: ARN("lambda"), run: () => Promise.reject(Object.assign(new Error("x"), { error: "NoSnapshotBeforeTargetError", causeText: lambdaCause })) },
    ],
  });
  runner = new SfnWorkflowRunner({ region: "local-1", endpoint: endpoint.endpoint, credentials: CREDENTIALS });
});

afterAll(async () => {
  runner?.client.destroy();
  await endpoint?.stop();
});

describe("SfnWorkflowRunner", () => {
  it("starts an execution and describes it until SUCCEEDED, with the output parsed from JSON", async () => {
    // Act
    const id = await runner.start(ARN("plan"), { databaseId: "gen-main", target: { kind: "latest" } }, { name: "plan-1" });
    const state = await over(id);
    // Assess
    expect(id).toBe("arn:aws:states:local-1:000000000000:execution:plan:plan-1");
    expect(state).toMatchObject({ executionId: id, status: "SUCCEEDED" });
    expect(state.output).toEqual({ planned: { databaseId: "gen-main", target: { kind: "latest" } }, list: [1, 2] });
    expect(state.startedAt).toBeInstanceOf(Date);
    expect(state.stoppedAt!.getTime()).toBeGreaterThanOrEqual(state.startedAt.getTime());
    expect(state.error).toBeUndefined();
  });

  it("a failed execution has its error name and cause", async () => {
    const state = await over(await runner.start(ARN("gap"), {}));
    expect(state).toMatchObject({ status: "FAILED", error: "WalGapError", cause: "segment 5 is missing" });
    expect(state.output).toBeUndefined();
  });

  it("a Lambda error's JSON cause is reduced to its errorMessage", async () => {
    const state = await over(await runner.start(ARN("lambda"), {}));
    expect(state.error).toBe("NoSnapshotBeforeTargetError");
    expect(state.cause).toBe("no snapshot is consistent at or before time 2026-01-01T00:00:00.000Z");
  });

  it("an unknown state machine or execution is NotFoundError naming it; a malformed ARN or a reused name InvalidInputError", async () => {
    await expect(runner.start(ARN("nope"), {})).rejects.toThrow(NotFoundError);
    await expect(runner.start(ARN("nope"), {})).rejects.toThrow(/state machine arn:aws:states:local-1:000000000000:stateMachine:nope does not exist/);
    await expect(runner.describe("arn:aws:states:local-1:000000000000:execution:plan:never")).rejects.toThrow(NotFoundError);
    await expect(runner.start("plan", {})).rejects.toThrow(InvalidInputError);
    const id = await runner.start(ARN("plan"), { n: 1 }, { name: "reused" });
    await over(id);
    await expect(runner.start(ARN("plan"), { n: 2 }, { name: "reused" })).rejects.toThrow(/ExecutionAlreadyExists/);
  });

  it("an endpoint nobody listens on is ServiceUnavailableError", async () => {
    // Prepare: a port that was just closed
    const gone = await startSfnEndpoint({ workflows: [] });
    await gone.stop();
    const unreachable = createWorkflowRunner({ region: "local-1", stepFunctionsEndpoint: gone.endpoint, credentials: CREDENTIALS });
    // Act + Assess
    const err = await unreachable.start(ARN("plan"), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(new RegExp(`cannot reach Step Functions at ${gone.endpoint}`));
  });
});

describe("causeMessage", () => {
  it("keeps plain text and JSON without errorMessage as they are", () => {
    expect(causeMessage("segment 5 is missing")).toBe("segment 5 is missing");
    expect(causeMessage('{"reason":"x"}')).toBe('{"reason":"x"}');
    expect(causeMessage("{not json")).toBe("{not json");
    expect(causeMessage(lambdaCause)).toMatch(/^no snapshot is consistent/);
  });
});
