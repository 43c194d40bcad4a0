/**
 * storedFromOutput (agent/wal-push.ts): the stored size a succeeded wal-record
 * execution reports for exactly the pushed name and digest, or nothing (the
 * push then reads the catalog).
 */
import { describe, expect, it } from "vitest";
import { storedFromOutput } from "../../agent/wal-push.js";
import type { ExecutionState } from "../../store/workflows.js";

const NAME = "000000010000000000000007";
const SHA = "a".repeat(64);

function ended(status: ExecutionState["status"], output: unknown): ExecutionState {
  return { executionId: "arn:x", status, startedAt: new Date(0), output };
}

const output = (name: string, sha256: string, storedSize: unknown) => ({ request: {}, validated: { ingest: { name, sha256, storedSize, duplicate: false }, outcome: "created" } });

describe("storedFromOutput", () => {
  it("returns the stored size a succeeded execution reports for the same name and digest", () => {
    expect(storedFromOutput(ended("SUCCEEDED", output(NAME, SHA, 1234)), NAME, SHA)).toEqual({ storedSize: 1234 });
  });

  it("returns nothing for another name or digest, a failed execution or an output of another shape", () => {
    expect(storedFromOutput(ended("SUCCEEDED", output("000000010000000000000008", SHA, 1)), NAME, SHA)).toBeUndefined();
    expect(storedFromOutput(ended("SUCCEEDED", output(NAME, "b".repeat(64), 1)), NAME, SHA)).toBeUndefined();
    expect(storedFromOutput(ended("FAILED", output(NAME, SHA, 1)), NAME, SHA)).toBeUndefined();
    expect(storedFromOutput(ended("SUCCEEDED", output(NAME, SHA, "1")), NAME, SHA)).toBeUndefined();
    expect(storedFromOutput(ended("SUCCEEDED", { validated: {} }), NAME, SHA)).toBeUndefined();
    expect(storedFromOutput(ended("SUCCEEDED", undefined), NAME, SHA)).toBeUndefined();
  });
});
