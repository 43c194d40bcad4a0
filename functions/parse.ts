import type { z } from "zod";
import { InvalidInputError } from "../core/errors.js";

/** Parses handler input with a schema; a mismatch is an InvalidInputError naming the first problem. */
export function parseInput<T extends z.ZodTypeAny>(schema: T, input: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join(".")}` : "";
    throw new InvalidInputError(`${what} is malformed${where}: ${issue?.message ?? "invalid"}`, { cause: r.error });
  }
  return r.data;
}
