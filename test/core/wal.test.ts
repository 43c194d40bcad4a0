import { describe, expect, it } from "vitest";
import { InvalidInputError, InvalidWalNameError } from "../../core/errors.js";
import {
  DEFAULT_WAL_SEGMENT_SIZE,
  assertSegmentSize,
  formatLsn,
  historyName,
  isLsn,
  isWalFileName,
  lsnSortKey,
  lsnToSegno,
  nextSegmentName,
  parseLsn,
  parseWalFileName,
  segmentEndLsn,
  segmentName,
  segmentStartLsn,
  segmentsPerXLogId,
} from "../../core/wal.js";

const MB = 1 << 20;
const GB = 1 << 30;

/** Small deterministic PRNG (mulberry32) so random cases are reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomU32(rand: () => number): bigint {
  return BigInt(Math.floor(rand() * 0x1_0000_0000));
}

describe("WAL segment names with the default 16 MB segments", () => {
  it("uses 16 MB as the default segment size", () => {
    expect(DEFAULT_WAL_SEGMENT_SIZE).toBe(16 * MB);
  });

  it("parses 000000010000000000000001 as timeline 1, segno 1, starting at LSN 0/1000000", () => {
    // Act
    const parsed = parseWalFileName("000000010000000000000001");
    // Assess
    expect(parsed).toEqual({ kind: "segment", name: "000000010000000000000001", timeline: 1, segno: 1n });
    expect(formatLsn(segmentStartLsn(parsed.segno!))).toBe("0/1000000");
    expect(formatLsn(segmentEndLsn(parsed.segno!))).toBe("0/2000000");
  });

  it("parses the first segment 000000010000000000000000 as segno 0 at LSN 0/0", () => {
    const parsed = parseWalFileName("000000010000000000000000");
    expect(parsed.segno).toBe(0n);
    expect(segmentStartLsn(parsed.segno!)).toBe(0n);
  });

  it("maps LSN 16/B374D848 to 0000000100000016000000B3 like pg_walfile_name", () => {
    // Prepare: the example from the PostgreSQL documentation
    const lsn = parseLsn("16/B374D848");
    // Act
    const name = segmentName(1, lsnToSegno(lsn));
    // Assess
    expect(name).toBe("0000000100000016000000B3");
    expect(parseWalFileName(name).segno).toBe(0x16b3n);
  });

  it("tells an LSN from a generic record's decimal position", () => {
    expect(isLsn("16/B374D848")).toBe(true);
    expect(isLsn("0/0")).toBe(true);
    expect(isLsn("8")).toBe(false);
    expect(isLsn(undefined)).toBe(false);
  });

  it("reads the timeline as hexadecimal", () => {
    expect(parseWalFileName("0000000A0000000000000001").timeline).toBe(10);
    expect(parseWalFileName("000000FF0000000000000001").timeline).toBe(255);
    expect(parseWalFileName("FFFFFFFF0000000000000001").timeline).toBe(0xffffffff);
  });

  it("puts 000000010000000100000000 right after 0000000100000000000000FF (seg part ends at FF)", () => {
    // Act
    const last = parseWalFileName("0000000100000000000000FF");
    const first = parseWalFileName("000000010000000100000000");
    // Assess
    expect(last.segno).toBe(255n);
    expect(first.segno).toBe(256n);
    expect(segmentEndLsn(last.segno!)).toBe(segmentStartLsn(first.segno!));
    expect(formatLsn(segmentStartLsn(first.segno!))).toBe("1/0");
  });

  it("rejects a seg part of 00000100 or more for 16 MB segments, naming the out-of-range part", () => {
    expect(() => parseWalFileName("000000010000000000000100")).toThrow(InvalidWalNameError);
    expect(() => parseWalFileName("000000010000000000000100")).toThrow(/out of range/);
    expect(() => parseWalFileName("0000000100000000FFFFFFFF")).toThrow(InvalidWalNameError);
  });

  it("rejects timeline 0 for segments, partials, backups and history files", () => {
    for (const name of [
      "000000000000000000000001",
      "000000000000000000000001.partial",
      "000000000000000000000001.00000028.backup",
      "00000000.history",
    ]) {
      expect(() => parseWalFileName(name), name).toThrow(InvalidWalNameError);
      expect(() => parseWalFileName(name), name).toThrow(/timeline 0/);
    }
  });

  it("rejects lowercase hex digits", () => {
    for (const name of [
      "0000000100000000000000ff",
      "0000000a0000000000000001",
      "0000000100000000000000fe.partial",
      "0000000a.history",
      "000000010000000000000002.0000002a.backup",
    ]) {
      expect(() => parseWalFileName(name), name).toThrow(InvalidWalNameError);
    }
    // The same names in uppercase are fine, so the rejection is about case only.
    expect(parseWalFileName("0000000100000000000000FF").segno).toBe(255n);
    expect(parseWalFileName("0000000A.history").timeline).toBe(10);
  });

  it("parses a .partial file name with its timeline and segno", () => {
    expect(parseWalFileName("000000020000000000000003.partial")).toEqual({
      kind: "partial",
      name: "000000020000000000000003.partial",
      timeline: 2,
      segno: 3n,
    });
  });

  it("parses a .backup file name with the hexadecimal start offset", () => {
    // Prepare: the name pg_backup_stop() writes for a backup starting at 0/2000028
    const name = "000000010000000000000002.00000028.backup";
    // Act
    const parsed = parseWalFileName(name);
    // Assess
    expect(parsed).toEqual({ kind: "backup", name, timeline: 1, segno: 2n, backupOffset: 0x28 });
    expect(segmentStartLsn(parsed.segno!) + BigInt(parsed.backupOffset!)).toBe(parseLsn("0/2000028"));
  });

  it("rejects a .backup name whose segment part is out of range for the size", () => {
    expect(() => parseWalFileName("000000010000000000000100.00000028.backup")).toThrow(InvalidWalNameError);
  });

  it("parses a .history file name with a timeline and no segno", () => {
    const parsed = parseWalFileName("0000001F.history");
    expect(parsed).toEqual({ kind: "history", name: "0000001F.history", timeline: 31 });
    expect(parsed.segno).toBeUndefined();
  });

  it.each([
    "RECOVERYXLOG",
    "foo",
    "",
    "../000000010000000000000001",
    "pg_wal/000000010000000000000001",
    "00000001000000000000000", // 23 digits
    "0000000100000000000000001", // 25 digits
    "00000001000000000000000G",
    " 000000010000000000000001",
    "000000010000000000000001 ",
    "000000010000000000000001\n",
    "000000010000000000000001.partial.tmp",
    "000000010000000000000001.tmp",
    "000000010000000000000001.backup",
    "000000010000000000000001.0000028.backup",
    "000000010000000000000001.00000028.BACKUP",
    "000000010000000000000001.PARTIAL",
    "00000001.history.tmp",
    "1.history",
    "archive_status",
    "000000010000000000000001.ready",
  ])("rejects the non-WAL name %j with InvalidWalNameError", (name) => {
    expect(() => parseWalFileName(name)).toThrow(InvalidWalNameError);
    expect(isWalFileName(name)).toBe(false);
  });

  it("names the offending file in the error message", () => {
    expect(() => parseWalFileName("RECOVERYXLOG")).toThrow(/'RECOVERYXLOG'/);
  });

  it("reports archivable names through isWalFileName", () => {
    expect(isWalFileName("000000010000000000000001")).toBe(true);
    expect(isWalFileName("000000010000000000000001.partial")).toBe(true);
    expect(isWalFileName("000000010000000000000002.00000028.backup")).toBe(true);
    expect(isWalFileName("00000002.history")).toBe(true);
    expect(isWalFileName("000000010000000000000100")).toBe(false);
    expect(isWalFileName("000000010000000000000100", MB)).toBe(true);
  });

  it("builds segment and history names with 8 uppercase hex digits per part", () => {
    expect(segmentName(1, 1n)).toBe("000000010000000000000001");
    expect(segmentName(0x1a, 0x1ffn)).toBe("0000001A00000001000000FF");
    expect(historyName(1)).toBe("00000001.history");
    expect(historyName(0x2b)).toBe("0000002B.history");
  });
});

describe("WAL segment names for other wal_segment_size values", () => {
  const cases = [
    { size: MB, label: "1 MB", perId: 4096n, lastSeg: "00000FFF", firstBad: "00001000" },
    { size: 16 * MB, label: "16 MB", perId: 256n, lastSeg: "000000FF", firstBad: "00000100" },
    { size: 64 * MB, label: "64 MB", perId: 64n, lastSeg: "0000003F", firstBad: "00000040" },
    { size: GB, label: "1 GB", perId: 4n, lastSeg: "00000003", firstBad: "00000004" },
  ] as const;

  describe.each(cases)("$label segments", ({ size, perId, lastSeg, firstBad }) => {
    it(`has ${perId} segments per 4 GB log id`, () => {
      expect(segmentsPerXLogId(size)).toBe(perId);
    });

    it("round-trips name -> segno -> name across the log/seg carry", () => {
      // Prepare: segnos around the first two log boundaries, plus a large one
      const segnos = [0n, 1n, perId - 2n, perId - 1n, perId, perId + 1n, 2n * perId - 1n, 2n * perId, 0xabcdn * perId + perId - 1n];
      for (const segno of segnos) {
        // Act
        const name = segmentName(3, segno, size);
        const parsed = parseWalFileName(name, size);
        // Assess
        expect(name).toMatch(/^[0-9A-F]{24}$/);
        expect(parsed.segno).toBe(segno);
        expect(parsed.timeline).toBe(3);
        expect(segmentName(parsed.timeline, parsed.segno!, size)).toBe(name);
      }
    });

    it("round-trips random names whose parts are in range", () => {
      const rand = mulberry32(size);
      for (let i = 0; i < 200; i++) {
        const log = randomU32(rand);
        const seg = randomU32(rand) % perId;
        const tl = 1 + Math.floor(rand() * 0xfffffffe);
        const name =
          tl.toString(16).toUpperCase().padStart(8, "0") +
          log.toString(16).toUpperCase().padStart(8, "0") +
          seg.toString(16).toUpperCase().padStart(8, "0");
        const parsed = parseWalFileName(name, size);
        expect(parsed.segno).toBe(log * perId + seg);
        expect(segmentName(tl, parsed.segno!, size)).toBe(name);
      }
    });

    it(`carries from seg ${lastSeg} to the next log id`, () => {
      // Prepare
      const last = `0000000100000000${lastSeg}`;
      // Act
      const next = nextSegmentName(last, size);
      // Assess
      expect(next).toBe("000000010000000100000000");
      expect(parseWalFileName(next, size).segno).toBe(parseWalFileName(last, size).segno! + 1n);
    });

    it(`rejects seg part ${firstBad} as out of range`, () => {
      expect(() => parseWalFileName(`0000000100000000${firstBad}`, size)).toThrow(InvalidWalNameError);
      expect(() => parseWalFileName(`0000000100000000${firstBad}.partial`, size)).toThrow(InvalidWalNameError);
    });

    it("keeps the log part equal to the high 32 bits of the segment's start LSN", () => {
      // The log id always counts 4 GB units whatever the segment size.
      const parsed = parseWalFileName(`000000010000002A${lastSeg}`, size);
      const start = segmentStartLsn(parsed.segno!, size);
      expect(start >> 32n).toBe(0x2an);
      expect(segmentEndLsn(parsed.segno!, size)).toBe(0x2bn << 32n);
    });

    it("maps every LSN inside a segment back to that segment", () => {
      const segno = 3n * perId + 1n;
      expect(lsnToSegno(segmentStartLsn(segno, size), size)).toBe(segno);
      expect(lsnToSegno(segmentEndLsn(segno, size) - 1n, size)).toBe(segno);
      expect(lsnToSegno(segmentEndLsn(segno, size), size)).toBe(segno + 1n);
      expect(segmentEndLsn(segno, size) - segmentStartLsn(segno, size)).toBe(BigInt(size));
    });
  });

  it("accepts 000000010000000000000100 for 1 MB segments but not for 16 MB", () => {
    expect(parseWalFileName("000000010000000000000100", MB).segno).toBe(256n);
    expect(() => parseWalFileName("000000010000000000000100", 16 * MB)).toThrow(InvalidWalNameError);
  });

  it("gives different segnos to the same name under different sizes", () => {
    const name = "000000010000000100000001";
    expect(parseWalFileName(name, MB).segno).toBe(4097n);
    expect(parseWalFileName(name, 16 * MB).segno).toBe(257n);
    expect(parseWalFileName(name, GB).segno).toBe(5n);
  });
});

describe("assertSegmentSize", () => {
  it("accepts every power of two from 1 MB to 1 GB", () => {
    for (let size = MB; size <= GB; size *= 2) {
      expect(() => assertSegmentSize(size), String(size)).not.toThrow();
    }
  });

  it.each([
    ["3 MB", 3 * MB],
    ["2 GB", 2 * GB],
    ["512 kB", MB / 2],
    ["0", 0],
    ["-16 MB", -16 * MB],
    ["16 MB + 1", 16 * MB + 1],
    ["16 MB + 0.5", 16 * MB + 0.5],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
  ])("rejects %s with InvalidInputError", (_label, size) => {
    expect(() => assertSegmentSize(size)).toThrow(InvalidInputError);
    expect(() => assertSegmentSize(size)).toThrow(/power of two between 1 MB and 1 GB/);
  });

  it("is enforced by the name functions too", () => {
    expect(() => parseWalFileName("000000010000000000000001", 3 * MB)).toThrow(InvalidInputError);
    expect(() => segmentName(1, 1n, 2 * GB)).toThrow(InvalidInputError);
    expect(() => segmentsPerXLogId(3 * MB)).toThrow(InvalidInputError);
  });
});

describe("nextSegmentName", () => {
  it("increments the seg part within a log id", () => {
    expect(nextSegmentName("000000010000000000000001")).toBe("000000010000000000000002");
    expect(nextSegmentName("0000000100000000000000FE")).toBe("0000000100000000000000FF");
  });

  it("crosses the log boundary after 0000000100000000000000FF", () => {
    expect(nextSegmentName("0000000100000000000000FF")).toBe("000000010000000100000000");
    expect(nextSegmentName("0000000100000009000000FF")).toBe("000000010000000A00000000");
  });

  it("keeps the timeline", () => {
    expect(nextSegmentName("0000002A00000000000000FF")).toBe("0000002A0000000100000000");
  });

  it.each(["000000010000000000000001.partial", "00000002.history", "000000010000000000000002.00000028.backup"])(
    "refuses the non-segment name %s",
    (name) => {
      expect(() => nextSegmentName(name)).toThrow(InvalidWalNameError);
      expect(() => nextSegmentName(name)).toThrow(/not a WAL segment name/);
    },
  );
});

describe("LSN parsing and formatting", () => {
  it("parses and formats 16/B374D848", () => {
    // Act
    const lsn = parseLsn("16/B374D848");
    // Assess
    expect(lsn).toBe(0x16_b374_d848n);
    expect(formatLsn(lsn)).toBe("16/B374D848");
  });

  it("formats without zero padding, like PostgreSQL", () => {
    expect(formatLsn(0n)).toBe("0/0");
    expect(formatLsn(0x1000000n)).toBe("0/1000000");
    expect(formatLsn(0x1_0000_0000n)).toBe("1/0");
    expect(formatLsn(0xffff_ffff_ffff_ffffn)).toBe("FFFFFFFF/FFFFFFFF");
  });

  it("parses the extremes", () => {
    expect(parseLsn("0/0")).toBe(0n);
    expect(parseLsn("FFFFFFFF/FFFFFFFF")).toBe(0xffff_ffff_ffff_ffffn);
  });

  it("accepts lowercase, zero-padded and surrounding whitespace", () => {
    expect(parseLsn("16/b374d848")).toBe(0x16_b374_d848n);
    expect(parseLsn("00000016/0B374D84")).toBe(0x16_0b37_4d84n);
    expect(parseLsn("  0/3000000\n")).toBe(0x300_0000n);
  });

  it.each(["", "16", "16/", "/B374D848", "1/2/3", "123456789/0", "0/123456789", "G/0", "-1/0", "0x1/0", "1 /0", "1.0"])(
    "rejects %j with InvalidInputError",
    (text) => {
      expect(() => parseLsn(text)).toThrow(InvalidInputError);
      expect(() => parseLsn(text)).toThrow(/is not an LSN/);
    },
  );

  it("round-trips random LSNs through formatLsn and parseLsn", () => {
    const rand = mulberry32(42);
    for (let i = 0; i < 500; i++) {
      // Prepare: vary the magnitude so both short and long hex forms occur
      const hi = randomU32(rand) >> BigInt(Math.floor(rand() * 32));
      const lo = randomU32(rand) >> BigInt(Math.floor(rand() * 32));
      const lsn = (hi << 32n) | lo;
      // Act
      const text = formatLsn(lsn);
      // Assess
      expect(text).toMatch(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);
      expect(parseLsn(text)).toBe(lsn);
    }
  });
});

describe("lsnSortKey", () => {
  it("is 16 uppercase hex digits", () => {
    expect(lsnSortKey(0n)).toBe("0000000000000000");
    expect(lsnSortKey(0x16_b374_d848n)).toBe("00000016B374D848");
    expect(lsnSortKey(0xffff_ffff_ffff_ffffn)).toBe("FFFFFFFFFFFFFFFF");
  });

  it("orders 9/0 before 10/0 where the display form does not", () => {
    // Prepare
    const a = parseLsn("9/0");
    const b = parseLsn("10/0");
    // Assess: the display strings sort the wrong way, the keys the right way
    expect(formatLsn(a) > formatLsn(b)).toBe(true);
    expect(lsnSortKey(a) < lsnSortKey(b)).toBe(true);
  });

  it("sorts lexicographically exactly like the bigint LSNs", () => {
    // Prepare: random LSNs of widely varying magnitude
    const rand = mulberry32(7);
    const lsns: bigint[] = [];
    for (let i = 0; i < 400; i++) {
      const lsn = ((randomU32(rand) << 32n) | randomU32(rand)) >> BigInt(Math.floor(rand() * 64));
      lsns.push(lsn);
    }
    // Act
    const byBigint = [...lsns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const byKey = [...lsns].sort((a, b) => {
      const ka = lsnSortKey(a);
      const kb = lsnSortKey(b);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    // Assess
    expect(byKey).toEqual(byBigint);
  });
});
