/**
 * Untrusted text in one-line messages. A message may quote what came from
 * outside (a line of an uploaded history file, a file name, a flag's value,
 * an error's cause from a workflow): printed raw, its control characters
 * could move the cursor, recolour or clear the terminal, forge a second line
 * in a log, or run a megabyte long. `safeText` is the one place that makes
 * such text printable; describeError applies it to every message it returns.
 */

/** Default bound, in characters, of a quoted piece of untrusted text. */
export const SAFE_TEXT_MAX = 200;

// C0 controls (tab and newline included), DEL, C1 controls, and the Unicode
// line/paragraph separators and bidirectional overrides that reorder what follows.
// eslint-disable-next-line no-control-regex
const UNSAFE_CHAR_RE = /^[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]$/;

function escapeChar(c: string): string {
  switch (c) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
    case "\u001b":
      return "\\e";
    default: {
      const code = c.codePointAt(0)!;
      return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
    }
  }
}

/**
 * `text` made safe for a one-line message: every control character (C0, DEL,
 * C1, line separators, bidi overrides) escaped as \n, \e, \x9b, \u202e...,
 * and cut to `max` characters (of the escaped text) with "…" when longer.
 * Printable text, non-ASCII letters included, is left as it is.
 */
export function safeText(text: string, max = SAFE_TEXT_MAX): string {
  const pieces: string[] = [];
  let length = 0;
  for (const ch of String(text)) {
    // Whole code points and whole escapes: a cut never splits either.
    const piece = UNSAFE_CHAR_RE.test(ch) ? escapeChar(ch) : ch;
    pieces.push(piece);
    length += piece.length;
    if (length > max) break;
  }
  if (length <= max) return pieces.join("");
  let out = "";
  for (const piece of pieces) {
    if (out.length + piece.length > max - 1) break;
    out += piece;
  }
  return `${out}…`;
}

/**
 * The message inside a Step Functions error Cause: Lambda puts
 * {"errorType","errorMessage",...} JSON there, other integrations and the
 * local interpreter the bare message.
 */
export function lambdaCauseMessage(cause: string): string {
  const text = cause.trim();
  if (!text.startsWith("{")) return cause;
  try {
    const parsed = JSON.parse(text) as { errorMessage?: unknown };
    return typeof parsed.errorMessage === "string" ? parsed.errorMessage : cause;
  } catch {
    return cause;
  }
}
