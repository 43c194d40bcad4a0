/**
 * Command-line options of a benchmark: node:util parseArgs, with its
 * refusals (an unknown option, a missing value) and the benchmark's own
 * (`refuseOption`) as one line naming the benchmark and exit code 2, as
 * every walvault command answers bad input, instead of a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export function benchArgs<T extends ParseArgsConfig>(bench: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    if (!(e instanceof TypeError) || !String((e as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS")) throw e;
    refuseOption(bench, `${e.message} (--help lists the options)`);
  }
}

/** An option value the benchmark cannot take: one line naming it, exit 2, nothing started. */
export function refuseOption(bench: string, message: string): never {
  console.error(`bench:${bench}: ${message}`);
  process.exit(2);
}

/**
 * The WAL paths bench:wal-push measures as modes and bench:wal-live as
 * variants (beside its `true`): whether a resident agent runs, and whether
 * WAL goes direct to the vault (WALVAULT_WAL_DIRECT, set for each whatever
 * the shell's).
 */
export const WAL_PATHS: Readonly<Record<string, { agent: boolean; walDirect: boolean }>> = {
  "no-agent": { agent: false, walDirect: true },
  agent: { agent: true, walDirect: true },
  "agent-incoming": { agent: true, walDirect: false },
};
