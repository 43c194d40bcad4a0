/** The verify workflow's contracts (core/verify-workflow.ts): a target time is one strict time (core/time.ts). */
import { describe, expect, it } from "vitest";
import { parseTime } from "../../core/time.js";
import { verifyCandidateSchema, verifyWorkflowInputSchema } from "../../core/verify-workflow.js";

const candidate = (targetTime: string) => ({
  databaseId: "pg-main",
  snapshotId: "20260101T000000Z-00000001",
  level: 4,
  targetTime,
  runId: "run-1",
  reason: "scheduled",
  trigger: "schedule",
});

describe("verify workflow target time", () => {
  it.each([
    ["5", "not an ISO 8601 time"],
    ["12", "not an ISO 8601 time"],
    ["2026-02-30T12:00:00Z", "February 2026 has no day 30"],
    ["2026-12-01 21:11:18", "it has no time zone"],
    ["yesterday", "not an ISO 8601 time"],
  ])("refuses %j in a candidate and in the workflow input, naming why", (text, why) => {
    // Act
    const c = verifyCandidateSchema.safeParse(candidate(text));
    const w = verifyWorkflowInputSchema.safeParse({ databaseId: "pg-main", snapshotId: "20260101T000000Z-00000001", targetTime: text });

    // Assess
    for (const r of [c, w]) {
      expect(r.success).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual(["targetTime"]);
      expect(r.error!.issues[0]!.message).toContain(`is not a time (${why})`);
    }
  });

  it("accepts an offset and nanoseconds and keeps the text as given, every digit of which reaches the restore target", () => {
    // Act
    const c = verifyCandidateSchema.parse(candidate("2026-12-01 23:11:18.123456789+02:00"));

    // Assess
    expect(c.targetTime).toBe("2026-12-01 23:11:18.123456789+02:00");
    const t = parseTime(c.targetTime!);
    expect(t.date.toISOString()).toBe("2026-12-01T21:11:18.123Z");
    expect(t.subMsNanos).toBe(456_789);
  });
});
