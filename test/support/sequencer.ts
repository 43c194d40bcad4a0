/**
 * Vitest sequencer: the suites that run longest start first, so that two
 * workers end together instead of one finishing a long suite alone at the
 * end. On a fresh clone Vitest has no durations and orders by file size;
 * here the end-to-end and fault suites (real PostgreSQL, minutes each)
 * come first, then Vitest's own order (which uses its durations when it
 * has them).
 */
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Directories under test/ whose suites run for minutes, longest first. */
const FIRST = ["e2e/", "faults/"];

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification): number => {
      const path = relative("test", relative(this.ctx.config.root, f.moduleId));
      const i = FIRST.findIndex((d) => path.startsWith(d));
      return i < 0 ? FIRST.length : i;
    };
    // Array.prototype.sort is stable: within a rank, Vitest's order stays.
    return sorted.map((f) => ({ f, r: rank(f) })).sort((a, b) => a.r - b.r).map(({ f }) => f);
  }
}
