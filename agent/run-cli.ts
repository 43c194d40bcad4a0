/**
 * The walvault command line, for both entries: agent/cli.ts (the installed
 * agent: the commands of agent/commands/) and local/dev-cli.ts (this
 * repository's bin/walvault: the same plus `local up|down`).
 * Errors are one line on stderr (`walvault: …`) and a non-zero exit code.
 *
 * Every command is declared once (name, summary, positionals, options, run);
 * this file only finds the command, answers --help/--version before anything
 * else, parses, and runs it.
 */
// Only light modules are imported statically: with a resident agent running,
// `wal-push` is this file, the command table, agent/locate.ts,
// agent/push-client.ts and a socket round trip. Everything that loads the
// AWS SDK or zod is imported on demand inside a command's `run`.
import { readFileSync } from "node:fs";
import { describeError, InvalidInputError, isWalvaultError } from "../core/errors.js";
import { commandUsage, overviewUsage, parseCommandArgs, registerTable, resolveCommand, type Command } from "./command.js";
import { COMMANDS } from "./commands/index.js";

/** Replaced by the version when a bundle is built (local/build-agent.ts); undefined in the compiled modules, which read package.json. */
declare const __WALVAULT_VERSION__: string | undefined;

const isHelp = (a: string): boolean => a === "--help" || a === "-h";

/** Asked for help: any --help/-h before a `--`. */
function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some(isHelp);
}

/** The package names walvault's version may come from: this repository, and the agent's own package (local/build-agent.ts). */
const PACKAGE_NAMES = new Set(["walvault", "walvault-agent"]);

function version(): string {
  if (typeof __WALVAULT_VERSION__ === "string") return __WALVAULT_VERSION__;
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: unknown; version?: unknown };
      if (typeof pkg.name === "string" && PACKAGE_NAMES.has(pkg.name) && typeof pkg.version === "string") return pkg.version;
    } catch {
      // try the next
    }
  }
  return "unknown";
}

/** Exit code when `cmd` is given bad input (wal-fetch: recovery must stop, not end). */
let badInputExit: number | undefined;

async function main(commands: readonly Command[], argv: string[]): Promise<number> {
  const [first] = argv;
  if (first === undefined || isHelp(first)) {
    process.stdout.write(overviewUsage(commands));
    return 0;
  }
  if (first === "--version" || first === "-V") {
    if (argv.length > 1) throw new InvalidInputError(`--version takes no arguments, got '${argv[1]}'`);
    process.stdout.write(`walvault ${version()}\n`);
    return 0;
  }
  if (first === "help") {
    const rest = argv.slice(1).filter((a) => !isHelp(a));
    if (rest.length === 0) {
      process.stdout.write(overviewUsage(commands));
      return 0;
    }
    const r = resolveCommand(commands, rest);
    if (r.kind === "group") {
      process.stdout.write(overviewUsage(commands, r.word));
      return 0;
    }
    if (r.rest.length > 0) throw new InvalidInputError(`help takes a command, got '${rest.join(" ")}'`);
    process.stdout.write(commandUsage(r.command));
    return 0;
  }
  const r = resolveCommand(commands, argv);
  if (r.kind === "group") {
    if (wantsHelp(r.rest)) {
      process.stdout.write(overviewUsage(commands, r.word));
      return 0;
    }
    const subs = r.commands.filter((c) => !c.hidden).map((c) => `'${c.name}'`);
    throw new InvalidInputError(`'${r.word}' needs a subcommand: ${subs.join(", ")}`);
  }
  const cmd: Command = r.command;
  // Help first, before anything is read, checked, requested or written.
  if (wantsHelp(r.rest)) {
    process.stdout.write(commandUsage(cmd));
    return 0;
  }
  badInputExit = cmd.badInputExit;
  const databaseOpt = (cmd.options as Record<string, { multiple?: boolean }>).database;
  if (databaseOpt && !databaseOpt.multiple && process.env.WALVAULT_DATABASE === "") {
    throw new InvalidInputError("WALVAULT_DATABASE must not be empty (unset it, or name a database)");
  }
  const parsed = parseCommandArgs(cmd, r.rest);
  badInputExit = undefined;
  return cmd.run(parsed as Parameters<Command["run"]>[0]);
}

/**
 * Runs the command `argv` names among the agent's commands and `extra`
 * (in that order in the overview), setting process.exitCode.
 */
export function runCli(argv: string[], extra: readonly Command[] = []): Promise<void> {
  const commands = [...COMMANDS, ...extra];
  registerTable(commands);
  return main(commands, argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`walvault: ${describeError(e)}\n`);
      if (process.env.WALVAULT_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
      process.exitCode = badInputExit ?? (isWalvaultError(e) ? e.exitCode : 2);
    },
  );
}
