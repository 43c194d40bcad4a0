import { describe, expect, it } from "vitest";
import { SAFE_TEXT_MAX, safeText } from "../../core/text.js";

describe("safeText", () => {
  it.each([
    ["an ESC sequence that would clear the screen", "a\x1b[2Jb", "a\\e[2Jb"],
    ["a newline and a carriage return that would forge a log line", "x\r\nwalvault: ok", "x\\r\\nwalvault: ok"],
    ["a tab and a NUL", "\t\0", "\\t\\x00"],
    ["DEL and the C1 CSI", "\x7f\x9b", "\\x7f\\x9b"],
    ["Unicode line separators and a right-to-left override", "a\u2028b\u2029c\u202ed", "a\\u2028b\\u2029c\\u202ed"],
  ])("escapes %s", (_what, text, expected) => {
    expect(safeText(text)).toBe(expected);
  });

  it("leaves printable text alone, non-ASCII letters and emoji included", () => {
    expect(safeText("pg-main: 0000000100000000000000A1 é ü 日本 😀")).toBe("pg-main: 0000000100000000000000A1 é ü 日本 😀");
  });

  it("bounds the result to max characters, ending in …, without splitting an escape or a surrogate pair", () => {
    expect(safeText("x".repeat(1000))).toHaveLength(SAFE_TEXT_MAX);
    expect(safeText("x".repeat(SAFE_TEXT_MAX))).toBe("x".repeat(SAFE_TEXT_MAX));
    expect(safeText("ab\x1b\x1b", 5)).toBe("ab\\e…");
    expect(safeText("a😀😀😀", 4)).toBe("a😀…");
  });
});
