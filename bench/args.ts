/**
 * Command-line options of a benchmark: node:util parseArgs, with its
 * refusals (an unknown option, a missing value) as one line naming the
 * benchmark and exit code 2, as every walvault command answers bad input,
 * instead of a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export function benchArgs<T extends ParseArgsConfig>(bench: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    if (!(e instanceof TypeError) || !String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw e;
    console.error(`bench:${bench}: ${e.message} (--help lists the options)`);
    process.exit(2);
  }
}
