/**
 * What a handler called in this process writes to stdout and stderr
 * (Powertools' logs and EMF metrics, functions/observability.ts; Lambda
 * keeps both in the function's log), captured line by line while `act` runs,
 * and nothing of it printed.
 */
import { vi } from "vitest";

export async function outputLinesOf(act: () => Promise<unknown>): Promise<string[]> {
  let text = "";
  const capture = ((chunk: string | Uint8Array, encoding?: unknown, cb?: unknown) => {
    text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    const done = typeof encoding === "function" ? encoding : cb;
    if (typeof done === "function") (done as () => void)();
    return true;
  }) as typeof process.stdout.write;
  const spies = [vi.spyOn(process.stdout, "write").mockImplementation(capture), vi.spyOn(process.stderr, "write").mockImplementation(capture)];
  try {
    await act();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return text.split("\n").filter((l) => l.length > 0);
}

/** The EMF records among `lines`, parsed. */
export function emfRecords<T = Record<string, unknown>>(lines: readonly string[]): Array<T & { _aws: { Timestamp: number; CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: string }> }> } }> {
  return lines.filter((l) => l.startsWith("{") && l.includes('"CloudWatchMetrics"')).map((l) => JSON.parse(l));
}
