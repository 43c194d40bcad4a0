import { describe, expect, it } from "vitest";
import { InvalidInputError, InvalidWalNameError } from "../../core/errors.js";
import {
  DATABASE_ID_RE,
  INCOMING_PREFIX,
  QUARANTINE_PREFIX,
  assertDatabaseId,
  incomingGenericWalKey,
  incomingWalKey,
  parseIncomingKey,
  parseVaultWalKey,
  quarantineKey,
  timelineDir,
  vaultGenericWalKey,
  vaultWalDirectKey,
  vaultWalKey,
} from "../../core/keys.js";
import { parseWalFileName } from "../../core/wal.js";

const SEG = "000000010000000000000001";

/** Runs fn and returns what it threw (undefined if it did not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe("database ids", () => {
  it.each(["pg-main", "abc", "a1b", "0db", "db-2024-01", "a-b", "x".repeat(63), `a${"-".repeat(61)}b`])(
    "accepts %j",
    (id) => {
      expect(assertDatabaseId(id)).toBe(id);
      expect(DATABASE_ID_RE.test(id)).toBe(true);
    },
  );

  it.each([
    ["too short", "ab"],
    ["one character", "a"],
    ["empty", ""],
    ["too long (64)", "x".repeat(64)],
    ["uppercase", "PG-main"],
    ["underscore", "pg_main"],
    ["leading hyphen", "-pgmain"],
    ["trailing hyphen", "pgmain-"],
    ["dot-dot", ".."],
    ["dot", "pg.main"],
    ["slash", "pg/main"],
    ["space", "pg main"],
    ["trailing newline", "pg-main\n"],
    ["non-ASCII", "pg-mäin"],
  ])("rejects a %s id", (_label, id) => {
    // Act
    const error = thrown(() => assertDatabaseId(id));
    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toContain(`database id '${id}' is invalid`);
    expect(DATABASE_ID_RE.test(id)).toBe(false);
  });
});

describe("parseIncomingKey", () => {
  it("accepts incoming/db/pg-main/wal/<segment>", () => {
    // Act
    const parsed = parseIncomingKey(`incoming/db/pg-main/wal/${SEG}`);
    // Assess
    expect(parsed).toEqual({ databaseId: "pg-main", walName: SEG, kind: "segment" });
  });

  it("accepts history, partial and backup file names by their shape", () => {
    expect(parseIncomingKey("incoming/db/pg-main/wal/00000002.history")).toMatchObject({ walName: "00000002.history", kind: "history" });
    expect(parseIncomingKey(`incoming/db/pg-main/wal/${SEG}.partial`).kind).toBe("partial");
    expect(parseIncomingKey("incoming/db/pg-main/wal/000000010000000000000002.00000028.backup").kind).toBe("backup");
  });

  it("accepts the 257th segment of a database with 1 MiB segments: the key carries no segment size", () => {
    // Prepare: segment part 0x100 is out of range for 16 MiB segments (256 per xlog id), valid for 1 MiB (4096).
    const key = "incoming/db/pg-main/wal/000000010000000000000100";
    // Act
    const parsed = parseIncomingKey(key);
    // Assess: the shape is accepted; the database's own size gives the meaning.
    expect(parsed.walName).toBe("000000010000000000000100");
    expect(parseWalFileName(parsed.walName!, 1 << 20).segno).toBe(256n);
    expect(() => parseWalFileName(parsed.walName!)).toThrow(InvalidWalNameError);
  });

  it.each(["00000001000000000000001", "0000000100000000000000010", "000000010000000000000001.part", "00000001.History", "backup_label"])(
    "rejects the file name %s by its shape with InvalidWalNameError",
    (name) => {
      // Act
      const error = thrown(() => parseIncomingKey(`incoming/db/pg-main/wal/${name}`));
      // Assess
      expect(error).toBeInstanceOf(InvalidWalNameError);
      expect((error as Error).message).toContain(`'${name}'`);
    },
  );

  it("parses what incomingWalKey builds", () => {
    // Prepare
    const key = incomingWalKey("pg-main", "0000000300000002000000A0");
    // Act
    const parsed = parseIncomingKey(key);
    // Assess
    expect(key).toBe(`${INCOMING_PREFIX}pg-main/wal/0000000300000002000000A0`);
    expect(parsed.databaseId).toBe("pg-main");
    expect(parsed.walName).toBe("0000000300000002000000A0");
  });

  it.each([
    ["an absolute key", `/incoming/db/pg-main/wal/${SEG}`, /is absolute/],
    ["a '..' segment before the name", `incoming/db/pg-main/wal/../${SEG}`, /contains a '\.' or '\.\.' path segment/],
    ["a '..' database id", `incoming/db/../wal/${SEG}`, /contains a '\.' or '\.\.' path segment/],
    ["a '..' file name", "incoming/db/pg-main/wal/..", /contains a '\.' or '\.\.' path segment/],
    ["a '.' segment", `incoming/./db/pg-main/wal/${SEG}`, /contains a '\.' or '\.\.' path segment/],
    ["a '.' file name", "incoming/db/pg-main/wal/.", /contains a '\.' or '\.\.' path segment/],
    ["a double slash", `incoming//db/pg-main/wal/${SEG}`, /has an empty path segment/],
    ["a trailing slash", "incoming/db/pg-main/wal/", /has an empty path segment/],
    ["an empty key", "", /has an empty path segment/],
    ["two extra path parts after the name", `incoming/db/pg-main/wal/${SEG}/x/y`, /not of the form incoming\/db\/<databaseId>\/wal\/<file>/],
    ["two extra path parts before the name", `incoming/db/pg-main/wal/a/b/${SEG}`, /not of the form/],
    ["a missing file name", "incoming/db/pg-main/wal", /not of the form/],
    ["a missing wal part", `incoming/db/pg-main/${SEG}`, /not of the form/],
    ["a wrong top-level prefix", `outgoing/db/pg-main/wal/${SEG}`, /not of the form/],
    ["the quarantine prefix", `quarantine/db/pg-main/wal/${SEG}`, /not of the form/],
    ["a wrong second part", `incoming/dbs/pg-main/wal/${SEG}`, /not of the form/],
    ["a wrong kind part", `incoming/db/pg-main/history/00000002.history`, /not of the form/],
    ["an uppercase prefix", `Incoming/db/pg-main/wal/${SEG}`, /not of the form/],
    ["a vault-layout key", `db/pg-main/wal/00000001/${SEG}`, /not of the form/],
  ])("rejects %s with InvalidInputError naming the problem", (_label, key, problem) => {
    // Act
    const error = thrown(() => parseIncomingKey(key));
    // Assess
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toMatch(problem);
    expect((error as Error).message).toContain(`'${key}'`);
  });

  it("parses a generic segment key incoming/db/<id>/wal/<stream>/<file> into its stream and file", () => {
    // Act
    const parsed = parseIncomingKey("incoming/db/engram-1/wal/space-default/wal-0000000e.log");
    // Assess
    expect(parsed).toEqual({ databaseId: "engram-1", generic: { stream: "space-default", file: "wal-0000000e.log", name: "space-default/wal-0000000e.log" } });
    expect(parsed.walName).toBeUndefined();
  });

  it("round-trips incomingGenericWalKey, and builds the vault key with the stream in the timeline's place", () => {
    // Act
    const key = incomingGenericWalKey("ks-1", "stripe-007", "000012.wal");
    // Assess
    expect(key).toBe("incoming/db/ks-1/wal/stripe-007/000012.wal");
    expect(parseIncomingKey(key).generic?.name).toBe("stripe-007/000012.wal");
    expect(vaultGenericWalKey("ks-1", "stripe-007", "000012.wal")).toBe("db/ks-1/wal/stripe-007/000012.wal");
  });

  it.each([
    ["a stream id starting with a dot", "incoming/db/ks-1/wal/.hidden/000001.wal", /stream id '\.hidden' is invalid/],
    ["a stream id with a space", "incoming/db/ks-1/wal/a b/000001.wal", /stream id 'a b' is invalid/],
    ["a file name starting with a dash", "incoming/db/ks-1/wal/s/-1.wal", /file name '-1\.wal' is invalid/],
  ])("rejects a generic key with %s with InvalidWalNameError", (_label, key, problem) => {
    // Act
    const error = thrown(() => parseIncomingKey(key));
    // Assess
    expect(error).toBeInstanceOf(InvalidWalNameError);
    expect((error as Error).message).toMatch(problem);
  });

  it.each(["PG-MAIN", "pg_main", "-pg", "ab", "x".repeat(64)])(
    "rejects the invalid database id %j in a key",
    (id) => {
      const error = thrown(() => parseIncomingKey(`incoming/db/${id}/wal/${SEG}`));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).toContain(`database id '${id}' is invalid`);
    },
  );

  it.each(["RECOVERYXLOG", "foo", "0000000100000000000000ff", "00000001000000000000000", `${SEG}.tmp`, "000000000000000000000001"])(
    "rejects the non-WAL file name %j with InvalidWalNameError",
    (name) => {
      const error = thrown(() => parseIncomingKey(`incoming/db/pg-main/wal/${name}`));
      expect(error).toBeInstanceOf(InvalidWalNameError);
      expect((error as Error).message).toContain(`'${name}'`);
    },
  );
});

describe("incomingWalKey", () => {
  it("refuses an invalid database id", () => {
    expect(() => incomingWalKey("../etc", SEG)).toThrow(InvalidInputError);
  });
});

describe("vault keys", () => {
  it("puts a segment under its timeline directory", () => {
    expect(vaultWalKey("pg-main", parseWalFileName(SEG))).toBe(`db/pg-main/wal/00000001/${SEG}`);
  });

  it("names the timeline directory with 8 uppercase hex digits", () => {
    expect(timelineDir(1)).toBe("00000001");
    expect(timelineDir(26)).toBe("0000001A");
    expect(timelineDir(0xffffffff)).toBe("FFFFFFFF");
    expect(vaultWalKey("pg-main", parseWalFileName("0000001A0000000300000004"))).toBe(
      "db/pg-main/wal/0000001A/0000001A0000000300000004",
    );
  });

  it("puts partial and backup files under their timeline directory too", () => {
    expect(vaultWalKey("pg-main", parseWalFileName("000000020000000000000003.partial"))).toBe(
      "db/pg-main/wal/00000002/000000020000000000000003.partial",
    );
    expect(vaultWalKey("pg-main", parseWalFileName("000000010000000000000002.00000028.backup"))).toBe(
      "db/pg-main/wal/00000001/000000010000000000000002.00000028.backup",
    );
  });

  it("puts history files under history/, not under a timeline directory", () => {
    expect(vaultWalKey("pg-main", parseWalFileName("00000002.history"))).toBe("db/pg-main/history/00000002.history");
  });

  it("refuses an invalid database id", () => {
    expect(() => vaultWalKey("PG", parseWalFileName(SEG))).toThrow(InvalidInputError);
  });
});

describe("direct WAL keys (content-addressed)", () => {
  const stored = "0123456789abcdef".repeat(4);

  it("append the first 16 hex digits of the stored bytes' SHA-256 to the plain key", () => {
    expect(vaultWalDirectKey("pg-main", parseWalFileName(SEG), stored)).toBe(`db/pg-main/wal/00000001/${SEG}.0123456789abcdef`);
    expect(vaultWalDirectKey("pg-main", parseWalFileName("000000020000000000000003.partial"), stored)).toBe(
      "db/pg-main/wal/00000002/000000020000000000000003.partial.0123456789abcdef",
    );
  });

  it("refuse history files and a digest that is not a lowercase hex SHA-256", () => {
    expect(() => vaultWalDirectKey("pg-main", parseWalFileName("00000002.history"), stored)).toThrow(InvalidInputError);
    expect(() => vaultWalDirectKey("pg-main", parseWalFileName(SEG), stored.toUpperCase())).toThrow(InvalidInputError);
  });

  it("parse back to the name and digest; plain keys parse without a digest", () => {
    const backup = "000000010000000000000002.00000028.backup";
    expect(parseVaultWalKey(`db/pg-main/wal/00000001/${SEG}.0123456789abcdef`)).toEqual({ databaseId: "pg-main", area: "wal", dir: "00000001", name: SEG, digest: "0123456789abcdef" });
    expect(parseVaultWalKey(`db/pg-main/wal/00000001/${backup}.0123456789abcdef`)).toMatchObject({ name: backup, digest: "0123456789abcdef" });
    expect(parseVaultWalKey(`db/pg-main/wal/00000001/${SEG}`)).toEqual({ databaseId: "pg-main", area: "wal", dir: "00000001", name: SEG });
    expect(parseVaultWalKey(`db/pg-main/wal/00000001/${backup}`)).toEqual({ databaseId: "pg-main", area: "wal", dir: "00000001", name: backup });
    expect(parseVaultWalKey("db/pg-main/history/00000002.history")).toEqual({ databaseId: "pg-main", area: "history", dir: "", name: "00000002.history" });
  });

  it("leave a generic stream's file, whose name is free, as its plain name", () => {
    expect(parseVaultWalKey("db/gen-a/wal/stripe-1/seg.0123456789abcdef")).toEqual({ databaseId: "gen-a", area: "wal", dir: "stripe-1", name: "seg.0123456789abcdef" });
  });

  it("return undefined for keys of another shape", () => {
    expect(parseVaultWalKey(`db/pg-main/chunks/${stored}`)).toBeUndefined();
    expect(parseVaultWalKey(`db/pg-main/wal/00000001/${SEG}/x`)).toBeUndefined();
    expect(parseVaultWalKey(`incoming/db/pg-main/wal/${SEG}`)).toBeUndefined();
  });
});

describe("quarantineKey", () => {
  it("prefixes the file name with a compact UTC timestamp", () => {
    // Prepare
    const at = new Date("2024-03-05T06:07:08.009Z");
    // Act
    const key = quarantineKey("pg-main", SEG, at);
    // Assess
    expect(key).toBe(`${QUARANTINE_PREFIX}pg-main/20240305T060708009Z-${SEG}`);
  });

  it("sorts keys of the same database by time", () => {
    const early = quarantineKey("pg-main", SEG, new Date("2024-03-05T06:07:08.009Z"));
    const late = quarantineKey("pg-main", SEG, new Date("2024-03-05T06:07:08.010Z"));
    expect(early < late).toBe(true);
  });

  it("refuses an invalid database id", () => {
    expect(() => quarantineKey("pg_main", SEG, new Date(0))).toThrow(InvalidInputError);
  });
});
