import { describe, expect, it } from "vitest";
import { mapLimit } from "../../core/concurrency.js";

describe("mapLimit", () => {
  it("returns results in input order with at most `limit` running", async () => {
    // Prepare
    let running = 0;
    let most = 0;
    // Act
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, x));
      running--;
      return x * 10;
    });
    // Assess
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
  });

  it("rejects with the first failure only after the work in flight has settled, and starts nothing new", async () => {
    // Prepare: item 0 fails at once; items 1 and 2 are in flight until the test lets them go.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const started: number[] = [];
    let inFlight = 0;
    let inFlightAtSettle = -1;
    // Act
    const p = mapLimit([0, 1, 2, 3, 4], 3, async (i) => {
      started.push(i);
      if (i === 0) throw new Error("first");
      inFlight++;
      await gate;
      inFlight--;
      if (i === 1) throw new Error("second");
      return i;
    }).then(
      () => undefined,
      (e: unknown) => {
        inFlightAtSettle = inFlight;
        return e;
      },
    );
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const settledBeforeRelease = inFlightAtSettle !== -1;
    release();
    const err = await p;
    // Assess
    expect(settledBeforeRelease).toBe(false);
    expect(inFlightAtSettle).toBe(0);
    expect((err as Error).message).toBe("first");
    expect(started).toEqual([0, 1, 2]);
  });
});
