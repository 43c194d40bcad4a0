/**
 * Vitest setup file: toEqual on two byte arrays compares them as bytes
 * (Buffer.compare) instead of element by element. Vitest's generic equality
 * walks a typed array through its iterator, a few microseconds per byte: a
 * 16 MiB WAL segment compared with toEqual took 40-115 s of a CI run. The
 * result is the same (equal length and bytes, whatever the view's class);
 * only the time changes.
 */
import { expect } from "vitest";

function isBytes(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array;
}

expect.addEqualityTesters([
  function bytesEqual(a: unknown, b: unknown): boolean | undefined {
    if (!isBytes(a) || !isBytes(b)) return undefined;
    return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
  },
]);
