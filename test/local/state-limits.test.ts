/**
 * Step Functions' limits on the local stack's executor (local/limits.ts, the
 * same guard local/stack.ts puts around every workflow it runs): a state's
 * input or output over 256 KiB fails the execution with
 * States.DataLimitExceeded naming the state and the size, uncatchable as in
 * AWS; a Standard execution past 25,000 history events fails with
 * Local.HistoryLimitExceeded. The restore workflow's own case (a 5,000
 * segment plan) is test/functions/restore-workflow.test.ts.
 */
import { StateMachine } from "aws-local-stepfunctions";
import { describe, expect, it } from "vitest";
import {
  DATA_LIMIT_EXCEEDED,
  ExecutionGuard,
  guardTask,
  HISTORY_EVENT_LIMIT,
  HISTORY_LIMIT_EXCEEDED,
  payloadBytes,
  runGuarded,
  STATE_PAYLOAD_LIMIT_BYTES,
} from "../../local/limits.js";

const LAMBDA = "arn:aws:lambda:local-1:000000000000:function:walvault-test";
type Handler = (input: unknown) => Promise<unknown>;

/** Runs `definition` as the local stack does: Task states by name to local handlers, under the guard. */
function run(definition: Record<string, unknown>, handlers: Record<string, Handler>, input: unknown = {}, standard = true): { result: Promise<unknown>; guard: ExecutionGuard } {
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: true } });
  const guard = new ExecutionGuard("test", { standard });
  const local = Object.fromEntries(Object.entries(handlers).map(([state, h]) => [state, guardTask(guard, state, h)]));
  return { result: runGuarded(machine, input, { overrides: { taskResourceLocalHandlers: local as never } }, guard), guard };
}

/** A JSON string value whose document `{"blob": "..."}` (with `extra` more bytes of JSON around it) is exactly `bytes` long. */
const blobOfSize = (bytes: number, extra = 0): string => "x".repeat(bytes - payloadBytes({ blob: "" }) - extra);

const twoTasks = {
  StartAt: "Produce",
  States: {
    Produce: { Type: "Task", Resource: LAMBDA, ResultPath: "$.produced", Next: "Consume" },
    Consume: { Type: "Task", Resource: LAMBDA, ResultPath: null, End: true },
  },
};

describe("the 256 KiB state limit", () => {
  it("a Task result over 256 KiB fails the execution with States.DataLimitExceeded naming the state and the sizes; the next state never runs", async () => {
    // Prepare
    let consumed = false;
    const big = { blob: blobOfSize(STATE_PAYLOAD_LIMIT_BYTES + 1) };
    // Act
    const { result } = run(twoTasks, { Produce: async () => big, Consume: async () => void (consumed = true) });
    // Assess
    await expect(result).rejects.toMatchObject({ name: DATA_LIMIT_EXCEEDED });
    await expect(result).rejects.toThrow(/the result of Task state Produce in workflow test is 262145 bytes, over Step Functions' limit of 262144 bytes/);
    expect(consumed).toBe(false);
  });

  it("a result exactly at the limit passes, and so does the state that carries it", async () => {
    // Prepare: the state after Produce is {"produced": {"blob": ...}}: keep that at the limit too.
    const wrapper = payloadBytes({ produced: null }) - payloadBytes(null);
    const atLimit = { blob: blobOfSize(STATE_PAYLOAD_LIMIT_BYTES, wrapper) };
    // Act
    const { result, guard } = run(twoTasks, { Produce: async () => atLimit, Consume: async () => null });
    // Assess
    await expect(result).resolves.toMatchObject({ produced: atLimit });
    expect(guard.largest.bytes).toBe(STATE_PAYLOAD_LIMIT_BYTES);
  });

  it("a state output over the limit after ResultPath fails naming the state, though the result alone was under it", async () => {
    // Prepare: input and result each 150 KB: their sum in the state is not.
    const half = { blob: "y".repeat(150_000) };
    // Act
    const { result } = run(twoTasks, { Produce: async () => half, Consume: async () => null }, { carried: "z".repeat(150_000) });
    // Assess
    await expect(result).rejects.toMatchObject({ name: DATA_LIMIT_EXCEEDED });
    await expect(result).rejects.toThrow(/the (output of state Produce|input of Task state Consume|input of state Consume) in workflow test is 300\d{3} bytes/);
  });

  it("is terminal: a Catch on States.ALL does not handle it, a Retry does not repeat it", async () => {
    // Prepare
    let calls = 0;
    let handled = false;
    const definition = {
      StartAt: "Produce",
      States: {
        Produce: {
          Type: "Task",
          Resource: LAMBDA,
          Retry: [{ ErrorEquals: ["States.ALL"], MaxAttempts: 3, IntervalSeconds: 1 }],
          Catch: [{ ErrorEquals: ["States.ALL"], Next: "Handled" }],
          End: true,
        },
        Handled: { Type: "Task", Resource: LAMBDA, End: true },
      },
    };
    // Act
    const { result } = run(definition, {
      Produce: async () => (calls++, { blob: blobOfSize(STATE_PAYLOAD_LIMIT_BYTES + 10) }),
      Handled: async () => ((handled = true), {}),
    });
    // Assess
    await expect(result).rejects.toMatchObject({ name: DATA_LIMIT_EXCEEDED });
    expect(calls).toBe(1);
    expect(handled).toBe(false);
  });

  it("a Map iteration's output over the limit fails naming the Map's state and the iteration", async () => {
    // Prepare
    const definition = {
      StartAt: "Each",
      States: {
        Each: {
          Type: "Map",
          ItemsPath: "$.items",
          ResultPath: null,
          ItemProcessor: { StartAt: "Inflate", States: { Inflate: { Type: "Pass", Parameters: { "a.$": "$.blob", "b.$": "$.blob" }, End: true } } },
          End: true,
        },
      },
    };
    // Act: the second item (140 KB, under the limit in the input) doubles inside its iteration.
    const items = [{ blob: "a" }, { blob: "i".repeat(140_000) }];
    const { result } = run(definition, {}, { items });
    // Assess
    await expect(result).rejects.toMatchObject({ name: DATA_LIMIT_EXCEEDED });
    await expect(result).rejects.toThrow(/the output of state Inflate \(Map iteration 1\) in workflow test is 280\d{3} bytes/);
  });

  it("the execution output over the limit fails the execution", async () => {
    // Prepare: two halves, each under the limit alone, joined by a Pass state.
    const half = "h".repeat(140_000);
    const definition = {
      StartAt: "Join",
      States: { Join: { Type: "Pass", Parameters: { "a.$": "$.a", "b.$": "$.a" }, End: true } },
    };
    // Act
    const { result } = run(definition, {}, { a: half });
    // Assess
    await expect(result).rejects.toMatchObject({ name: DATA_LIMIT_EXCEEDED });
    await expect(result).rejects.toThrow(/(output of state Join|execution output) in workflow test is 280\d{3} bytes/);
  });
});

describe("the 25,000-event history of a Standard execution", () => {
  /** A loop: a Task counts down, a Choice goes round again until 0. Per round: Task 5 events, Choice 2. */
  const loop = {
    StartAt: "Count",
    States: {
      Count: { Type: "Task", Resource: LAMBDA, Next: "More" },
      More: { Type: "Choice", Choices: [{ Variable: "$.left", NumericGreaterThan: 0, Next: "Count" }], Default: "Done" },
      Done: { Type: "Succeed" },
    },
  };
  const countDown: Handler = async (input) => ({ left: (input as { left: number }).left - 1 });

  it("a loop past 25,000 events fails with Local.HistoryLimitExceeded naming the limit", async () => {
    // Act: 3,600 rounds of 7 events.
    const { result, guard } = run(loop, { Count: countDown }, { left: 3600 });
    // Assess
    await expect(result).rejects.toMatchObject({ name: HISTORY_LIMIT_EXCEEDED });
    await expect(result).rejects.toThrow(/went past Step Functions' limit of 25000 history events/);
    expect(guard.events).toBeGreaterThan(HISTORY_EVENT_LIMIT);
  }, 60_000);

  it("a shorter loop passes, counted conservatively (7 events a round, 4 around them); an Express workflow is not counted", async () => {
    // Act
    const standard = run(loop, { Count: countDown }, { left: 3000 });
    const express = run(loop, { Count: countDown }, { left: 3600 }, false);
    // Assess
    await expect(standard.result).resolves.toEqual({ left: 0 });
    expect(standard.guard.events).toBe(3000 * 7 + 4);
    await expect(express.result).resolves.toEqual({ left: 0 });
  }, 60_000);
});
