/**
 * Task states without TimeoutSeconds: AWS gives them no state timeout (the
 * Lambda's own timeout ends a Lambda Task), while aws-local-stepfunctions
 * would apply the States Language default of 60 s. The local stack lifts
 * them (local/stack.ts withAwsTaskTimeouts), so a step allowed 5 minutes does
 * not fail locally with States.Timeout after one.
 */
import { describe, expect, it } from "vitest";
import { LOCAL_TASK_TIMEOUT_SECONDS, withAwsTaskTimeouts } from "../../local/stack.js";

describe("local Task state timeouts", () => {
  it("gives every Task without TimeoutSeconds, nested ones included, the long local timeout and keeps explicit ones", () => {
    // Prepare
    const definition: Record<string, unknown> = {
      StartAt: "Plain",
      States: {
        Plain: { Type: "Task", Resource: "arn:x", Next: "Each" },
        Each: {
          Type: "Map",
          ItemProcessor: { StartAt: "Inner", States: { Inner: { Type: "Task", Resource: "arn:y", End: true } } },
          Next: "Explicit",
        },
        Explicit: { Type: "Task", Resource: "arn:z", TimeoutSeconds: 30, Next: "Done" },
        Done: { Type: "Succeed" },
      },
    };
    // Act
    withAwsTaskTimeouts(definition);
    // Assess
    const states = definition.States as Record<string, { TimeoutSeconds?: number; ItemProcessor?: { States: Record<string, { TimeoutSeconds?: number }> } }>;
    expect(states.Plain!.TimeoutSeconds).toBe(LOCAL_TASK_TIMEOUT_SECONDS);
    expect(states.Each!.ItemProcessor!.States.Inner!.TimeoutSeconds).toBe(LOCAL_TASK_TIMEOUT_SECONDS);
    expect(states.Explicit!.TimeoutSeconds).toBe(30);
    expect(states.Each!.TimeoutSeconds).toBeUndefined();
    expect(states.Done!.TimeoutSeconds).toBeUndefined();
  });

  it("stays within what Node's timers can hold, and above Lambda's longest timeout", () => {
    // Prepare / Act: the constant itself. Assess: a longer one would fire at once (Node clamps overflowing timers to 1 ms).
    expect(LOCAL_TASK_TIMEOUT_SECONDS * 1000).toBeLessThanOrEqual(2 ** 31 - 1);
    expect(LOCAL_TASK_TIMEOUT_SECONDS).toBeGreaterThan(15 * 60);
  });
});
