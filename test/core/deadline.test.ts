import { describe, expect, it, vi } from "vitest";
import { deadlineIn } from "../../core/deadline.js";

describe("deadlineIn", () => {
  it("counts down on the clock it is given and is passed exactly at its end, never with negative time left", () => {
    // Prepare
    let t = 1_000;
    const d = deadlineIn(500, () => t);
    // Act
    const atStart = { left: d.left(), passed: d.passed() };
    t = 1_499;
    const justBefore = { left: d.left(), passed: d.passed() };
    t = 1_500;
    const atEnd = d.passed();
    t = 9_000;
    // Assess
    expect(atStart).toEqual({ left: 500, passed: false });
    expect(justBefore).toEqual({ left: 1, passed: false });
    expect(atEnd).toBe(true);
    expect(d.left()).toBe(0);
  });

  it("by default ignores a step of the wall clock (it reads the monotonic clock)", () => {
    // Prepare: the wall clock jumps an hour ahead right after the deadline is taken.
    const d = deadlineIn(30_000);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 3_600_000);
      // Act
      const passed = d.passed();
      // Assess
      expect(passed).toBe(false);
      expect(d.left()).toBeGreaterThan(29_000);
    } finally {
      vi.useRealTimers();
    }
  });
});
