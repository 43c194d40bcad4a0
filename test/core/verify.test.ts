import { describe, expect, it } from "vitest";
import { META_BACKLOG } from "../../core/schemas.js";
import { MAX_BACKLOG, parseBacklogMeta } from "../../core/verify.js";

describe("parseBacklogMeta", () => {
  it("reads the count an upload reports", () => {
    // Act and Assess
    expect(parseBacklogMeta({ [META_BACKLOG]: "0" })).toBe(0);
    expect(parseBacklogMeta({ [META_BACKLOG]: "37", "walvault-sha256": "x" })).toBe(37);
    expect(parseBacklogMeta({ [META_BACKLOG]: String(MAX_BACKLOG) })).toBe(MAX_BACKLOG);
  });

  it("is undefined when the upload reports none, or anything that is not a count (telemetry: never a reason to reject WAL)", () => {
    // Act and Assess
    for (const v of ["", "-1", "1.5", "0x10", " 3", "3 ", "abc", "1e3", String(MAX_BACKLOG + 1), "123456789"]) {
      expect(parseBacklogMeta({ [META_BACKLOG]: v }), JSON.stringify(v)).toBeUndefined();
    }
    expect(parseBacklogMeta({})).toBeUndefined();
  });
});
