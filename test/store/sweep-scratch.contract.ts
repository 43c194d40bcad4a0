/**
 * The SweepScratch contract (store/sweep.ts), as one suite every
 * implementation runs: bytes back as put, replaced by a later put, undefined
 * for a name never put, and nothing left after clear().
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { SweepScratch } from "../../store/sweep.js";

export function sweepScratchContract(name: string, make: () => SweepScratch): void {
  describe(`SweepScratch contract: ${name}`, () => {
    it("gives back the bytes put under a name, empty ones too, and the latest put", async () => {
      // Prepare
      const scratch = make();
      const body = randomBytes(4096);
      // Act
      await scratch.put("mark-000000-a", body);
      await scratch.put("empty", new Uint8Array(0));
      await scratch.put("replaced", Buffer.from("first"));
      await scratch.put("replaced", Buffer.from("second"));
      // Assess
      expect((await scratch.get("mark-000000-a"))?.equals(body)).toBe(true);
      expect((await scratch.get("empty"))?.length).toBe(0);
      expect((await scratch.get("replaced"))?.toString()).toBe("second");
    });

    it("resolves undefined for a name never put", async () => {
      expect(await make().get("never-put")).toBeUndefined();
    });

    it("clear() removes every name put, and the scratch can be used again", async () => {
      // Prepare
      const scratch = make();
      for (let i = 0; i < 20; i++) await scratch.put(`n-${i}`, Buffer.from([i]));
      // Act
      await scratch.clear();
      await scratch.put("after", Buffer.from("x"));
      // Assess
      for (let i = 0; i < 20; i++) expect(await scratch.get(`n-${i}`)).toBeUndefined();
      expect((await scratch.get("after"))?.toString()).toBe("x");
    });
  });
}
