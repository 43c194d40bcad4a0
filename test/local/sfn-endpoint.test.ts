/**
 * local/sfn-endpoint.ts: the local stack's Step Functions endpoint, driven by
 * the real AWS SDK client (@aws-sdk/client-sfn) over HTTP on loopback, with
 * small in-process workflows; the protocol details the SDK hides (content
 * type, error shapes) checked with raw requests.
 */
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand, type DescribeExecutionCommandOutput } from "@aws-sdk/client-sfn";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSfnEndpoint, type SfnEndpoint } from "../../local/sfn-endpoint.js";
import { RestoreExecutionError } from "../../local/stack.js";
import { InvalidInputError } from "../../core/errors.js";
import { SfnWorkflowRunner } from "../../store/workflows.js";
import { poll } from "../support/harness.js";

const ARN = (name: string): string => `arn:aws:states:local-1:000000000000:stateMachine:${name}`;
const ECHO = ARN("echo");
const FAILS = ARN("fails");
const THROWS = ARN("throws");
const GATED = ARN("gated");

let endpoint: SfnEndpoint;
let client: SFNClient;
let gatedRuns = 0;
let openGate: () => void = () => undefined;
let gate: Promise<void>;

function newGate(): void {
  gate = new Promise<void>((r) => (openGate = r));
}

async function describeUntilOver(executionArn: string): Promise<DescribeExecutionCommandOutput> {
  return poll(async () => {
    const d = await client.send(new DescribeExecutionCommand({ executionArn }));
    return d.status === "RUNNING" ? undefined : d;
  }, 5_000, `execution ${executionArn} to end`);
}

/** The error an SDK call rejects with (its name is the service's error type). */
async function rejection(p: Promise<unknown>): Promise<{ name: string; message: string; $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (e) {
    return e as { name: string; message: string };
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  newGate();
  endpoint = await startSfnEndpoint({
    workflows: [
      { stateMachineArn: ECHO, run: async (input) => ({ echoed: input }), express: true },
      { stateMachineArn: FAILS, run: () => Promise.reject(new RestoreExecutionError("WalGapError", "segment 5 of timeline 1 is missing")), express: true },
      { stateMachineArn: THROWS, run: () => Promise.reject(new TypeError("cannot read x of undefined")) },
      {
        stateMachineArn: GATED,
        run: async (input) => {
          gatedRuns++;
          await gate;
          return input;
        },
      },
    ],
  });
  client = new SFNClient({ region: "local-1", endpoint: endpoint.endpoint, credentials: { accessKeyId: "x", secretAccessKey: "y" }, maxAttempts: 1 });
});

afterAll(async () => {
  client?.destroy();
  await endpoint?.stop();
});

describe("local Step Functions endpoint", () => {
  it("listens on loopback only", () => {
    expect(endpoint.endpoint).toBe(`http://127.0.0.1:${endpoint.port}`);
    expect(endpoint.port).toBeGreaterThan(0);
  });

  it("StartExecution runs the workflow; DescribeExecution reports SUCCEEDED with its JSON output", async () => {
    // Act
    const started = await client.send(new StartExecutionCommand({ stateMachineArn: ECHO, input: JSON.stringify({ a: 1 }), name: "run-1" }));
    const d = await describeUntilOver(started.executionArn!);
    // Assess
    expect(started.executionArn).toBe("arn:aws:states:local-1:000000000000:execution:echo:run-1");
    expect(started.startDate).toBeInstanceOf(Date);
    expect(d).toMatchObject({ status: "SUCCEEDED", stateMachineArn: ECHO, name: "run-1", input: '{"a":1}' });
    expect(JSON.parse(d.output!)).toEqual({ echoed: { a: 1 } });
    expect(d.stopDate!.getTime()).toBeGreaterThanOrEqual(d.startDate!.getTime());
    expect(d.error).toBeUndefined();
  });

  it("without a name or input: a generated name and {} as the input", async () => {
    const started = await client.send(new StartExecutionCommand({ stateMachineArn: ECHO }));
    const d = await describeUntilOver(started.executionArn!);
    expect(d.name).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(d.output!)).toEqual({ echoed: {} });
  });

  it("is RUNNING while the workflow runs, without output", async () => {
    // Prepare
    newGate();
    const started = await client.send(new StartExecutionCommand({ stateMachineArn: GATED, input: '"x"' }));
    // Act
    const running = await client.send(new DescribeExecutionCommand({ executionArn: started.executionArn! }));
    openGate();
    const over = await describeUntilOver(started.executionArn!);
    // Assess
    expect(running.status).toBe("RUNNING");
    expect(running.output).toBeUndefined();
    expect(running.stopDate).toBeUndefined();
    expect(over.status).toBe("SUCCEEDED");
    expect(over.output).toBe('"x"');
  });

  it("a failed workflow is FAILED with its error name and cause", async () => {
    const a = await client.send(new StartExecutionCommand({ stateMachineArn: FAILS }));
    const b = await client.send(new StartExecutionCommand({ stateMachineArn: THROWS }));
    const da = await describeUntilOver(a.executionArn!);
    const db = await describeUntilOver(b.executionArn!);
    expect(da).toMatchObject({ status: "FAILED", error: "WalGapError", cause: "segment 5 of timeline 1 is missing" });
    expect(da.output).toBeUndefined();
    expect(db).toMatchObject({ status: "FAILED", error: "TypeError", cause: "cannot read x of undefined" });
  });

  it("an unknown state machine is StateMachineDoesNotExist, a malformed ARN InvalidArn, an unknown execution ExecutionDoesNotExist", async () => {
    const unknown = await rejection(client.send(new StartExecutionCommand({ stateMachineArn: ARN("nope") })));
    const malformed = await rejection(client.send(new StartExecutionCommand({ stateMachineArn: "walvault-restore" })));
    const noExecution = await rejection(
      client.send(new DescribeExecutionCommand({ executionArn: "arn:aws:states:local-1:000000000000:execution:echo:never-started" })),
    );
    expect(unknown).toMatchObject({ name: "StateMachineDoesNotExist", $metadata: { httpStatusCode: 400 } });
    expect(unknown.message).toContain(ARN("nope"));
    expect(malformed.name).toBe("InvalidArn");
    expect(noExecution.name).toBe("ExecutionDoesNotExist");
  });

  it("input that is not JSON is InvalidExecutionInput; a bad name InvalidName; neither starts the workflow", async () => {
    const before = gatedRuns;
    const badInput = await rejection(client.send(new StartExecutionCommand({ stateMachineArn: GATED, input: "{not json" })));
    const badName = await rejection(client.send(new StartExecutionCommand({ stateMachineArn: GATED, name: "has spaces" })));
    expect(badInput.name).toBe("InvalidExecutionInput");
    expect(badName.name).toBe("InvalidName");
    expect(gatedRuns).toBe(before);
  });

  it("a name reused with the same input while running is the same execution; otherwise ExecutionAlreadyExists", async () => {
    // Prepare
    newGate();
    const before = gatedRuns;
    const first = await client.send(new StartExecutionCommand({ stateMachineArn: GATED, name: "once", input: '{"n":1}' }));
    // Act
    const again = await client.send(new StartExecutionCommand({ stateMachineArn: GATED, name: "once", input: '{"n":1}' }));
    const otherInput = await rejection(client.send(new StartExecutionCommand({ stateMachineArn: GATED, name: "once", input: '{"n":2}' })));
    openGate();
    await describeUntilOver(first.executionArn!);
    const afterEnd = await rejection(client.send(new StartExecutionCommand({ stateMachineArn: GATED, name: "once", input: '{"n":1}' })));
    // Assess
    expect(again.executionArn).toBe(first.executionArn);
    expect(gatedRuns).toBe(before + 1);
    expect(otherInput.name).toBe("ExecutionAlreadyExists");
    expect(afterEnd.name).toBe("ExecutionAlreadyExists");
  });

  it("answers in AWS JSON 1.0: content type, __type errors, unknown operations and bodies refused", async () => {
    const post = (target: string, body: string) =>
      fetch(endpoint.endpoint, { method: "POST", headers: { "x-amz-target": target, "content-type": "application/x-amz-json-1.0" }, body });
    // Act
    const ok = await post("AWSStepFunctions.StartExecution", JSON.stringify({ stateMachineArn: ECHO }));
    const unsupported = await post("AWSStepFunctions.ListExecutions", "{}");
    const notJson = await post("AWSStepFunctions.StartExecution", "{");
    const wrongService = await post("DynamoDB_20120810.ListTables", "{}");
    const get = await fetch(endpoint.endpoint);
    // Assess
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("application/x-amz-json-1.0");
    expect(await ok.json()).toMatchObject({ executionArn: expect.stringMatching(/:execution:echo:/), startDate: expect.any(Number) });
    expect(unsupported.status).toBe(400);
    expect(await unsupported.json()).toMatchObject({ __type: "UnknownOperationException", message: expect.stringContaining("ListExecutions") });
    expect(await notJson.json()).toMatchObject({ __type: "SerializationException" });
    expect(await wrongService.json()).toMatchObject({ __type: "UnknownOperationException" });
    expect(get.status).toBe(404);
  });

  it("StartSyncExecution answers once an Express workflow is over: SUCCEEDED with its output, FAILED with its error; a Standard one is refused", async () => {
    // Prepare: the store's runner (the SDK with the host prefix off, as for any custom endpoint)
    const runner = new SfnWorkflowRunner({ region: "local-1", endpoint: endpoint.endpoint, credentials: { accessKeyId: "x", secretAccessKey: "y" } });
    const runsBefore = gatedRuns;

    // Act
    const ok = await runner.runSync(ECHO, { b: 2 });
    const failed = await runner.runSync(FAILS, {});
    const standard = runner.runSync(GATED, "x");

    // Assess
    expect(ok).toMatchObject({ status: "SUCCEEDED", output: { echoed: { b: 2 } } });
    expect(ok.executionId).toMatch(/^arn:aws:states:local-1:000000000000:express:echo:[A-Za-z0-9_-]+:[0-9a-f-]{36}$/);
    expect(failed).toMatchObject({ status: "FAILED", error: "WalGapError", cause: "segment 5 of timeline 1 is missing" });
    await expect(standard).rejects.toThrow(InvalidInputError);
    await expect(standard).rejects.toThrow(/StateMachineTypeNotSupported/);
    expect(gatedRuns).toBe(runsBefore);
    runner.client.destroy();
  });

  it("stop() closes the port", async () => {
    // Prepare
    const other = await startSfnEndpoint({ workflows: [] });
    // Act
    await other.stop();
    await other.stop(); // idempotent
    // Assess
    await expect(fetch(other.endpoint, { method: "POST" })).rejects.toThrow();
  });
});
