import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import * as errors from "../../core/errors.js";
import {
  AmbiguousTargetError,
  ChecksumMismatchError,
  CodecError,
  CatalogFaultError,
  CorruptPackError,
  ConcurrentUpdateError,
  ConfigError,
  FileAccessError,
  IngestRetryableError,
  InvalidInputError,
  InvalidWalNameError,
  ManifestInvalidError,
  NoSnapshotBeforeTargetError,
  NotFoundError,
  QuarantinedError,
  SegmentConflictError,
  SnapshotConflictError,
  ObjectArchivedError,
  ObjectLockedError,
  ServiceUnavailableError,
  TargetAfterArchiveEndError,
  TargetNotOnTimelineError,
  TimelineNotFoundError,
  TimeoutError,
  UnknownDatabaseError,
  UnknownSnapshotError,
  UnsafePathError,
  WalGapError,
  WalvaultError,
  WorkflowFailedError,
  describeError,
  isWalvaultError,
} from "../../core/errors.js";

type ErrorClass = new (message: string, options?: errors.WalvaultErrorOptions) => WalvaultError;

const CLASSES: ReadonlyArray<{ cls: ErrorClass; name: string; code: string; exitCode: number }> = [
  { cls: InvalidInputError, name: "InvalidInputError", code: "invalid_input", exitCode: 2 },
  { cls: UnknownDatabaseError, name: "UnknownDatabaseError", code: "unknown_database", exitCode: 2 },
  { cls: InvalidWalNameError, name: "InvalidWalNameError", code: "invalid_wal_name", exitCode: 2 },
  { cls: ChecksumMismatchError, name: "ChecksumMismatchError", code: "checksum_mismatch", exitCode: 2 },
  { cls: CodecError, name: "CodecError", code: "codec_error", exitCode: 2 },
  { cls: SegmentConflictError, name: "SegmentConflictError", code: "segment_conflict", exitCode: 3 },
  { cls: SnapshotConflictError, name: "SnapshotConflictError", code: "snapshot_conflict", exitCode: 3 },
  { cls: NotFoundError, name: "NotFoundError", code: "not_found", exitCode: 1 },
  { cls: FileAccessError, name: "FileAccessError", code: "file_access", exitCode: 2 },
  { cls: ConfigError, name: "ConfigError", code: "config_error", exitCode: 2 },
  { cls: ServiceUnavailableError, name: "ServiceUnavailableError", code: "service_unavailable", exitCode: 4 },
  { cls: ObjectLockedError, name: "ObjectLockedError", code: "object_locked", exitCode: 2 },
  { cls: ObjectArchivedError, name: "ObjectArchivedError", code: "object_archived", exitCode: 2 },
  { cls: TimeoutError, name: "TimeoutError", code: "timeout", exitCode: 5 },
  { cls: WorkflowFailedError, name: "WorkflowFailedError", code: "workflow_failed", exitCode: 2 },
  { cls: QuarantinedError, name: "QuarantinedError", code: "quarantined", exitCode: 3 },
  { cls: CatalogFaultError, name: "CatalogFaultError", code: "catalog_fault", exitCode: 2 },
  { cls: ConcurrentUpdateError, name: "ConcurrentUpdateError", code: "concurrent_update", exitCode: 2 },
  { cls: WalGapError, name: "WalGapError", code: "wal_gap", exitCode: 2 },
  { cls: NoSnapshotBeforeTargetError, name: "NoSnapshotBeforeTargetError", code: "no_snapshot_before_target", exitCode: 2 },
  { cls: TargetAfterArchiveEndError, name: "TargetAfterArchiveEndError", code: "target_after_archive_end", exitCode: 2 },
  { cls: AmbiguousTargetError, name: "AmbiguousTargetError", code: "ambiguous_target", exitCode: 2 },
  { cls: UnknownSnapshotError, name: "UnknownSnapshotError", code: "unknown_snapshot", exitCode: 2 },
  { cls: TimelineNotFoundError, name: "TimelineNotFoundError", code: "timeline_not_found", exitCode: 2 },
  { cls: TargetNotOnTimelineError, name: "TargetNotOnTimelineError", code: "target_not_on_timeline", exitCode: 2 },
  { cls: ManifestInvalidError, name: "ManifestInvalidError", code: "manifest_invalid", exitCode: 2 },
  { cls: UnsafePathError, name: "UnsafePathError", code: "unsafe_path", exitCode: 2 },
  { cls: CorruptPackError, name: "CorruptPackError", code: "corrupt_pack", exitCode: 2 },
  { cls: IngestRetryableError, name: "IngestRetryableError", code: "ingest_retryable", exitCode: 4 },
];

describe("error classes", () => {
  it("cover every WalvaultError subclass that core/errors.ts exports", () => {
    // Prepare: every exported class derived from WalvaultError
    const exported = Object.entries(errors)
      .filter(([, v]) => typeof v === "function" && v.prototype instanceof WalvaultError)
      .map(([k]) => k)
      .sort();
    // Assess: the table below tests them all
    expect(exported).toEqual(CLASSES.map((c) => c.name).sort());
  });

  it("are each written out in ERROR_CLASSES under their own name", () => {
    // Prepare: every exported WalvaultError class, by its export name
    const exported = Object.entries(errors).filter(([, v]) => typeof v === "function" && v.prototype instanceof WalvaultError);
    // Assess: the catalogue names each one, and no other (a class missing there is a minified letter in the bundles)
    expect(Object.keys(errors.ERROR_CLASSES).sort()).toEqual(exported.map(([k]) => k).sort());
    for (const [k, v] of exported) expect(errors.ERROR_CLASSES[k as keyof typeof errors.ERROR_CLASSES]).toBe(v);
  });

  it("keep their names in a bundle minified as the Lambda handlers' and the agent's are (no keepNames)", async () => {
    // Prepare: the catalogue bundled with the handlers' settings (core/workflows.ts HANDLER_BUNDLE), into a scratch file
    const { build } = await import("esbuild");
    const { AS_LAMBDA } = await import("../../local/agent-bundle.js");
    const dir = mkdtempSync(join(tmpdir(), "walvault-errors-bundle-"));
    const out = join(dir, "names.mjs");
    const catalogue = fileURLToPath(new URL("../../core/errors.ts", import.meta.url));
    try {
      await build({
        ...AS_LAMBDA,
        stdin: { contents: `import { ERROR_CLASSES } from ${JSON.stringify(catalogue)};\nexport const names = Object.values(ERROR_CLASSES).map((c) => new c("x").name);`, resolveDir: dir, loader: "ts" },
        outfile: out,
        sourcemap: false,
      });
      // Act
      const { names } = (await import(/* @vite-ignore */ pathToFileURL(out).href)) as { names: string[] };
      // Assess: each error's name is its class's, as the ASL's Retry and Catch name it
      expect(AS_LAMBDA.minify).toBe(true);
      expect(names).toEqual(Object.keys(errors.ERROR_CLASSES));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("have distinct codes", () => {
    const codes = CLASSES.map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
  });

  describe.each(CLASSES)("$name", ({ cls, name, code, exitCode }) => {
    it("sets name to the class name, which Step Functions Catch matches on", () => {
      const e = new cls("boom");
      expect(e.name).toBe(name);
      expect(e.name).toBe(cls.name);
      expect(String(e)).toBe(`${name}: boom`);
    });

    it(`has code '${code}' and exit code ${exitCode}`, () => {
      const e = new cls("boom");
      expect(e.code).toBe(code);
      expect(e.exitCode).toBe(exitCode);
    });

    it("is an Error and a WalvaultError with the message and a stack", () => {
      const e = new cls("segment 000000010000000000000001 is missing");
      expect(e).toBeInstanceOf(Error);
      expect(e).toBeInstanceOf(WalvaultError);
      expect(e).toBeInstanceOf(cls);
      expect(e.message).toBe("segment 000000010000000000000001 is missing");
      expect(e.stack).toContain(name);
      expect(isWalvaultError(e)).toBe(true);
    });

    it("carries the cause it was given", () => {
      // Prepare
      const cause = new Error("ECONNREFUSED");
      // Act
      const e = new cls("could not reach S3", { cause });
      // Assess
      expect(e.cause).toBe(cause);
    });

    it("carries a non-Error cause", () => {
      expect(new cls("x", { cause: "text" }).cause).toBe("text");
    });

    it("has no cause property when none was given", () => {
      const e = new cls("x");
      expect(e.cause).toBeUndefined();
      expect(Object.hasOwn(e, "cause")).toBe(false);
      expect(Object.hasOwn(new cls("x", {}), "cause")).toBe(false);
    });
  });

  it("tells the classes apart with instanceof", () => {
    const e = new CodecError("x");
    expect(e).not.toBeInstanceOf(InvalidInputError);
    expect(new InvalidWalNameError("x")).not.toBeInstanceOf(InvalidInputError);
  });
});

describe("isWalvaultError", () => {
  it.each([
    ["a plain Error", new Error("x")],
    ["a TypeError", new TypeError("x")],
    ["an error-shaped object", { name: "CodecError", code: "codec_error", message: "x" }],
    ["a string", "CodecError"],
    ["null", null],
    ["undefined", undefined],
  ])("is false for %s", (_label, value) => {
    expect(isWalvaultError(value)).toBe(false);
  });

  it("is true, exit code kept, for an error made by another copy of the catalogue (the agent's bundle meets the local stack's)", async () => {
    // Prepare: a second instance of the catalogue (the compiled one, `npm test` builds dist/ first), as the compiled local stack beside the agent's bundle holds
    const compiled = new URL("../../dist/core/errors.js", import.meta.url).href;
    const other = (await import(/* @vite-ignore */ compiled)) as typeof import("../../core/errors.js");
    const e = new other.ServiceUnavailableError("no local stack is running");
    // Act + Assess
    expect(e instanceof ServiceUnavailableError).toBe(false);
    expect(isWalvaultError(e)).toBe(true);
    expect(isWalvaultError(e) && e.exitCode).toBe(4);
  });
});

describe("describeError", () => {
  it("takes the first line of a multi-line message", () => {
    expect(describeError(new InvalidInputError("bad config\n  at line 3\n  at line 4"))).toBe("bad config");
    expect(describeError(new Error("first\r\nsecond"))).toBe("first");
  });

  it("returns a one-line message unchanged", () => {
    expect(describeError(new CodecError("object x does not decode as zstd"))).toBe("object x does not decode as zstd");
  });

  it("falls back to the error name when the message is empty", () => {
    expect(describeError(new TimeoutError(""))).toBe("TimeoutError");
    expect(describeError(new Error(""))).toBe("Error");
    expect(describeError(new ConfigError("\ndetails on the next line"))).toBe("ConfigError");
  });

  it("escapes terminal control bytes a message quotes from outside (a history line, a file name), keeping one line", () => {
    // Prepare: ESC sequences that would recolour and clear the screen, a C1 CSI, a bell, a DEL, a bidi override.
    const quoted = "1\t0/16\x1b[2J\x1b]0;pwned\x07\x9b31m\x7f\u202etxt.exe";
    // Act
    const line = describeError(new InvalidInputError(`timeline history line 1 is malformed: '${quoted}'`));
    // Assess
    expect(line).toBe("timeline history line 1 is malformed: '1\\t0/16\\e[2J\\e]0;pwned\\x07\\x9b31m\\x7f\\u202etxt.exe'");
    expect(line).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202e]/);
  });

  it("bounds the length of what it returns", () => {
    const line = describeError(new Error(`file name '${"x".repeat(100_000)}'`));
    expect(line.length).toBe(errors.DESCRIBE_ERROR_MAX);
    expect(line.endsWith("…")).toBe(true);
  });

  it("stringifies values that are not Errors", () => {
    expect(describeError("plain text")).toBe("plain text");
    expect(describeError(42)).toBe("42");
    expect(describeError(undefined)).toBe("undefined");
    expect(describeError(null)).toBe("null");
  });
});
