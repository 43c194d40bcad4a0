/** agent/progress.ts: a restore's status line, in one unit system (decimal bytes, MB/s). */
import { describe, expect, it } from "vitest";
import { createStatusLine, formatDuration, restoreProgressLine, type RestoreFigures } from "../../agent/progress.js";

const figures = (p: Partial<RestoreFigures>): RestoreFigures => ({ phase: "files", filesDone: 0, filesTotal: 979, bytesDone: 0, bytesTotal: 1_591_400_000, walDone: 0, walTotal: 0, ...p });

describe("restoreProgressLine", () => {
  it("says bytes of the total with the percentage, the rate, files and an ETA from the rate so far", () => {
    // Act
    const line = restoreProgressLine("restore pg-main", figures({ filesDone: 310, bytesDone: 412_000_000 }), 2);
    // Assess: 1,179.4 MB left at 206 MB/s
    expect(line).toBe("restore pg-main  412 MB of 1.59 GB (25%)  206.0 MB/s  files 310/979  ETA 6 s");
  });

  it("has no ETA before anything was written or once everything was, and names the phases without a rate of their own", () => {
    expect(restoreProgressLine("r", figures({ phase: "planned" }), 0)).toBe("r  0 B of 1.59 GB (0%)  – MB/s  files 0/979  planned, reading the manifest");
    expect(restoreProgressLine("r", figures({ phase: "finishing", filesDone: 979, bytesDone: 1_591_400_000 }), 4)).toBe(
      "r  1.59 GB of 1.59 GB (100%)  397.9 MB/s  files 979/979  syncing and renaming into place",
    );
  });

  it("counts WAL segments when the restore lays any out (generic databases)", () => {
    expect(restoreProgressLine("r", figures({ phase: "wal", filesDone: 979, bytesDone: 1_591_400_000, walDone: 3, walTotal: 12 }), 4)).toMatch(/files 979\/979  WAL 3\/12$/);
  });
});

describe("formatDuration", () => {
  it("reads as seconds, minutes and seconds, or hours and minutes", () => {
    expect([0.4, 9, 59.6, 75, 3599, 3600, 7380].map(formatDuration)).toEqual(["0 s", "9 s", "1 min 0 s", "1 min 15 s", "59 min 59 s", "1 h 0 min", "2 h 3 min"]);
  });
});

describe("createStatusLine", () => {
  it("writes nothing when its stream is not a terminal", () => {
    // Prepare
    const written: string[] = [];
    const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    // Act
    const line = createStatusLine({ stream });
    line.update(() => "x");
    line.done();
    // Assess
    expect(written).toEqual([]);
  });
});
