/**
 * agent/temp-file.ts: a scratch file in a directory of its own, both gone
 * after close(), and nothing left behind when the file cannot be created.
 */
import { existsSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileAccessError } from "../../core/errors.js";
import { TempFile } from "../../agent/temp-file.js";
import { tempDir } from "../support/harness.js";

describe("TempFile", () => {
  it("opens a file for reading and writing in a directory of its own, and close() removes both, once", () => {
    // Prepare
    const base = tempDir("walvault-tempfile-");

    // Act
    const f = new TempFile("the test spool", "spool-", "data", base);
    writeSync(f.fd, "abc");
    const written = readFileSync(join(f.dir, "data"), "utf8");
    f.close();
    f.close();

    // Assess
    expect(written).toBe("abc");
    expect(existsSync(f.dir)).toBe(false);
    expect(readdirSync(base)).toEqual([]);
  });

  it("names what it could not create, and leaves no directory behind when the file cannot be opened", () => {
    // Prepare: a file name under a directory that does not exist
    const base = tempDir("walvault-tempfile-");

    // Act
    const err = (() => {
      try {
        new TempFile("the test spool", "spool-", join("missing", "data"), base);
      } catch (e) {
        return e;
      }
      return undefined;
    })();

    // Assess
    expect(err).toBeInstanceOf(FileAccessError);
    expect((err as Error).message).toBe(`cannot create the test spool under ${base} (ENOENT)`);
    expect(readdirSync(base)).toEqual([]);
  });
});
