/**
 * The CLI's command declarations and the one parser over them. Each command
 * (agent/commands/*.ts) declares once its name, summary, positionals and
 * options — type, default, description, checks — and `walvault <command>
 * --help`, the overview, the suggestions for unknown names and every usage
 * error come from those declarations.
 *
 * Light on purpose: wal-push runs this module on every WAL segment. Nothing
 * here (or in a command module's top level) may import the AWS SDK, zod or
 * anything heavy; a command's `run` imports what it needs on demand.
 */
import { InvalidInputError } from "../core/errors.js";
import { safeText } from "../core/text.js";

/**
 * How a value is read and checked:
 * - boolean: a switch, takes no value
 * - string: any non-empty text (`choices` narrows it, `check` refines it)
 * - positive-int: 1, 2, 3…
 * - count: a whole number 0..9999 (retention slots, days)
 * - seconds: a positive number of seconds (fractions allowed)
 * - hours: a number of hours >= 0 (fractions allowed)
 * - port: a TCP port number 1..65535
 */
export type OptionType = "boolean" | "string" | "positive-int" | "count" | "seconds" | "hours" | "port";

export interface OptionSpec {
  readonly type: OptionType;
  readonly description: string;
  /** Placeholder for the value in usage (e.g. SECONDS); defaults by type. */
  readonly value?: string;
  /** Shown in usage and returned when the option is not given. */
  readonly default?: string;
  /** The option may be repeated; its values are collected in order. */
  readonly multiple?: boolean;
  readonly choices?: readonly string[];
  /** Further check of a string value: returns what is wrong, or undefined. */
  readonly check?: (value: string) => string | undefined;
  /** Only means something with this (boolean) option: refused without it. */
  readonly requires?: string;
  /** Means nothing with this (boolean) option: refused with it. */
  readonly excludes?: string;
  /** Not listed in usage (internal). */
  readonly hidden?: boolean;
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
}

export type OptionsSpec = Readonly<Record<string, OptionSpec>>;

/** The values `run` receives, typed from the declaration. */
export type OptionValues<O extends OptionsSpec> = {
  -readonly [K in keyof O]: O[K] extends { type: "boolean" }
    ? boolean
    : O[K] extends { multiple: true }
      ? string[] | undefined
      : O[K] extends { default: string }
        ? string
        : string | undefined;
};

export interface RunArgs<O extends OptionsSpec> {
  values: OptionValues<O>;
  positionals: string[];
}

export interface CommandSpec<O extends OptionsSpec> {
  /** Command words, e.g. "snapshot push". */
  readonly name: string;
  /** One line for the overview. */
  readonly summary: string;
  /** Heading of the overview it is listed under. */
  readonly group: string;
  /** Further lines for the command's own usage (modes, examples). */
  readonly details?: readonly string[];
  readonly positionals: readonly PositionalSpec[];
  readonly options: O;
  /** Not listed in the overview (internal commands). */
  readonly hidden?: boolean;
  /** Exit code for bad input to this command (default: the error's own, 2). */
  readonly badInputExit?: number;
  run(args: RunArgs<O>): Promise<number>;
}

export type Command = CommandSpec<OptionsSpec>;

export function defineCommand<const O extends OptionsSpec>(spec: CommandSpec<O>): Command {
  return spec as unknown as Command;
}

/** Options most commands take: which configuration, which database. */
export const configOption = {
  type: "string",
  value: "FILE",
  description: "configuration file (default: $WALVAULT_CONFIG, ~/.config/walvault/config.json, then the local stack's)",
} as const satisfies OptionSpec;

export const databaseOption = {
  type: "string",
  value: "ID",
  description: "database id (default: $WALVAULT_DATABASE, then the configuration's databaseId)",
} as const satisfies OptionSpec;

export const jsonOption = { type: "boolean", description: "print the result as JSON" } as const satisfies OptionSpec;

export const commonOptions = { database: databaseOption, config: configOption } as const;

export const HELP_OPTION: OptionSpec = { type: "boolean", description: "print this help and exit" };

// ---------------------------------------------------------------------------
// Parsing

const DEFAULT_PLACEHOLDER: Record<OptionType, string> = {
  boolean: "",
  string: "VALUE",
  "positive-int": "N",
  count: "N",
  seconds: "SECONDS",
  hours: "HOURS",
  port: "PORT",
};

function placeholder(o: OptionSpec): string {
  return o.value ?? (o.choices ? o.choices.join("|") : DEFAULT_PLACEHOLDER[o.type]);
}

function orList(xs: readonly string[]): string {
  return xs.length <= 1 ? (xs[0] ?? "") : `${xs.slice(0, -1).join(", ")} or ${xs.at(-1)!}`;
}

/** Shows untrusted text (a value, a word typed) inside a message: control bytes escaped, long text cut. */
export function shown(s: string): string {
  return safeText(s, 80);
}

/** What is wrong with `value` for option `name`, or undefined. */
export function checkOptionValue(name: string, o: OptionSpec, value: string): string | undefined {
  const flag = `--${name}`;
  const v = `'${shown(value)}'`;
  if (value === "") return `${flag} must not be empty`;
  switch (o.type) {
    case "positive-int":
      if (!/^\d{1,15}$/.test(value) || Number(value) < 1) return `${flag} must be a positive integer, not ${v}`;
      break;
    case "count":
      if (!/^\d{1,4}$/.test(value)) return `${flag} must be a whole number, not ${v}`;
      break;
    case "seconds":
      if (!/^\d{1,9}(\.\d{1,9})?$/.test(value) || !(Number(value) > 0)) return `${flag} must be a positive number of seconds, not ${v}`;
      break;
    case "hours":
      if (!/^\d{1,9}(\.\d{1,9})?$/.test(value)) return `${flag} must be a number of hours >= 0, not ${v}`;
      break;
    case "port":
      if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535) return `${flag} must be a port number (1..65535), not ${v}`;
      break;
    default:
      break;
  }
  if (o.choices && !o.choices.includes(value)) return `${flag} must be ${orList(o.choices)}, not ${v}`;
  return o.check?.(value);
}

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The candidate nearest to `word`, if it is near enough to be a typo of it. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.min(3, Math.floor(Math.max(word.length, best.length) / 3)));
  if (bestD <= limit) return best;
  // A prefix that names one candidate (`--target-t` → `--target-time`).
  const prefixed = candidates.filter((c) => word.length >= 3 && c.startsWith(word));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

function didYouMean(s: string | undefined): string {
  return s === undefined ? "" : `: did you mean '${s}'?`;
}

/** A negative number given as a value (`--timeout -5`): read as the value, so its own check answers. */
const NEGATIVE_NUMBER = /^-\d/;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Reads argv (after the command words) against the command's declaration.
 * Throws one InvalidInputError naming the first thing wrong.
 */
export function parseCommandArgs(cmd: Command, argv: readonly string[]): Parsed {
  const specs = cmd.options as Record<string, OptionSpec>;
  const given = new Map<string, string[] | true>();
  const positionals: string[] = [];
  const optionNames = Object.keys(specs).filter((k) => !specs[k]!.hidden);
  let i = 0;
  for (; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === "--") {
      i++;
      break;
    }
    if (!tok.startsWith("-") || tok === "-" || NEGATIVE_NUMBER.test(tok)) {
      positionals.push(tok);
      continue;
    }
    const eq = tok.indexOf("=");
    const name = tok.startsWith("--") ? tok.slice(2, eq > 0 ? eq : undefined) : tok.slice(1);
    const spec = tok.startsWith("--") ? specs[name] : undefined;
    if (!spec) {
      const shownName = tok.startsWith("--") ? `--${name}` : tok;
      throw new InvalidInputError(
        `unknown option '${shown(shownName)}' for ${cmd.name}${didYouMean(nearest(shownName, optionNames.map((n) => `--${n}`))) || ` (see walvault ${cmd.name} --help)`}`,
      );
    }
    if (spec.type === "boolean") {
      if (eq > 0) throw new InvalidInputError(`--${name} takes no value, got '${shown(tok.slice(eq + 1))}'`);
      given.set(name, true);
      continue;
    }
    let value: string;
    if (eq > 0) value = tok.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next !== "-" && !NEGATIVE_NUMBER.test(next) && next !== "")) {
        throw new InvalidInputError(
          `--${name} needs a value (${placeholder(spec)})${next === undefined ? "" : `, got option '${shown(next)}' (write --${name}=${shown(next)} if that is the value)`}`,
        );
      }
      value = next;
      i++;
    }
    const prior = given.get(name);
    if (prior !== undefined && !spec.multiple) throw new InvalidInputError(`--${name} is given more than once`);
    const problem = checkOptionValue(name, spec, value);
    if (problem) throw new InvalidInputError(problem);
    given.set(name, [...(Array.isArray(prior) ? prior : []), value]);
  }
  positionals.push(...argv.slice(i));

  // Positionals: exactly as declared, none empty.
  const want = cmd.positionals;
  if (positionals.length !== want.length) {
    const got = positionals.length === 0 ? "nothing" : positionals.map((p) => `'${shown(p)}'`).join(" ");
    if (want.length === 0) {
      throw new InvalidInputError(`${cmd.name} takes no arguments, got ${got}${didYouMean(extraWordHint(cmd, positionals[0]!))}`);
    }
    throw new InvalidInputError(`${cmd.name} takes ${want.map((p) => `<${p.name}>`).join(" ")}, got ${got}`);
  }
  positionals.forEach((p, k) => {
    if (p === "") throw new InvalidInputError(`${cmd.name}: <${want[k]!.name}> must not be empty`);
  });

  // Combinations: options that only mean something with (or without) a mode.
  const isOn = (n: string): boolean => given.has(n);
  const needing = new Map<string, string[]>();
  const excluded = new Map<string, string[]>();
  for (const n of given.keys()) {
    const s = specs[n]!;
    if (s.requires && !isOn(s.requires)) needing.set(s.requires, [...(needing.get(s.requires) ?? []), `--${n}`]);
    if (s.excludes && isOn(s.excludes)) excluded.set(s.excludes, [...(excluded.get(s.excludes) ?? []), `--${n}`]);
  }
  for (const [mode, flags] of needing) {
    throw new InvalidInputError(`${flags.join(", ")} only go${flags.length === 1 ? "es" : ""} with --${mode}`);
  }
  for (const [mode, flags] of excluded) {
    throw new InvalidInputError(`${flags.join(", ")} do${flags.length === 1 ? "es" : ""} not go with --${mode}`);
  }

  const values: Parsed["values"] = {};
  for (const [n, s] of Object.entries(specs)) {
    const g = given.get(n);
    if (s.type === "boolean") values[n] = g === true;
    else if (g === undefined || g === true) values[n] = s.multiple ? undefined : s.default;
    else values[n] = s.multiple ? g : g[0];
  }
  return { values, positionals };
}

let table: readonly Command[] = [];
/** Set by agent/commands/index.ts, so an extra word can be matched to a sibling subcommand. */
export function registerTable(commands: readonly Command[]): void {
  table = commands;
}

function extraWordHint(cmd: Command, word: string): string | undefined {
  const subs = table.filter((c) => c.name.startsWith(`${cmd.name} `)).map((c) => c.name.slice(cmd.name.length + 1));
  const n = nearest(word, subs);
  return n === undefined ? undefined : `${cmd.name} ${n}`;
}

// ---------------------------------------------------------------------------
// Resolving command words and usage

export type Resolved =
  | { kind: "command"; command: Command; rest: string[] }
  | { kind: "group"; word: string; commands: Command[]; rest: string[] };

/** The command named by the leading words of argv (the longest match), a group word alone, or an error. */
export function resolveCommand(commands: readonly Command[], argv: readonly string[]): Resolved {
  const [first = "", second] = argv;
  const two = second === undefined ? undefined : commands.find((c) => c.name === `${first} ${second}`);
  if (two) return { kind: "command", command: two, rest: argv.slice(2) };
  const one = commands.find((c) => c.name === first);
  if (one) return { kind: "command", command: one, rest: argv.slice(1) };
  const group = commands.filter((c) => c.name.startsWith(`${first} `));
  if (group.length > 0) {
    const subs = group.filter((c) => !c.hidden).map((c) => c.name);
    if (second === undefined || second.startsWith("-")) return { kind: "group", word: first, commands: group, rest: argv.slice(1) };
    const typed = `${first} ${second}`;
    throw new InvalidInputError(`unknown command '${shown(typed)}'${didYouMean(nearest(typed, subs)) || `: use ${orList(subs.map((s) => `'${s}'`))}`}`);
  }
  const visible = commands.filter((c) => !c.hidden);
  const names = [...visible.map((c) => c.name), ...new Set(visible.map((c) => c.name.split(" ")[0]!))];
  const typed = second !== undefined && !second.startsWith("-") ? `${first} ${second}` : first;
  const guess = nearest(first, names) ?? nearest(typed, names);
  throw new InvalidInputError(`unknown command '${shown(first)}'${didYouMean(guess) || " (see walvault help)"}`);
}

function optionLabel(name: string, o: OptionSpec): string {
  return o.type === "boolean" ? `--${name}` : `--${name} ${placeholder(o)}`;
}

function positionalsLabel(cmd: Command): string {
  return cmd.positionals.map((p) => `<${p.name}>`).join(" ");
}

/** A command's own usage: synopsis, details, positionals and every option with its default. */
export function commandUsage(cmd: Command): string {
  const opts = Object.entries(cmd.options as Record<string, OptionSpec>).filter(([, o]) => !o.hidden);
  const lines = [`usage: walvault ${cmd.name}${cmd.positionals.length ? ` ${positionalsLabel(cmd)}` : ""}${opts.length ? " [options]" : ""}`, "", `${cmd.summary}`];
  if (cmd.details?.length) lines.push("", ...cmd.details);
  if (cmd.positionals.length) {
    lines.push("", "arguments:");
    for (const p of cmd.positionals) lines.push(row(`<${p.name}>`, p.description));
  }
  lines.push("", "options:");
  for (const [n, o] of [...opts, ["help", { ...HELP_OPTION }] as const]) {
    const notes = [
      o.default !== undefined ? `default ${o.default}` : "",
      o.multiple ? "may be repeated" : "",
      o.requires ? `with --${o.requires} only` : "",
      o.excludes ? `not with --${o.excludes}` : "",
    ].filter(Boolean);
    lines.push(row(n === "help" ? "-h, --help" : optionLabel(n, o), `${o.description}${notes.length ? ` (${notes.join("; ")})` : ""}`));
  }
  return lines.join("\n") + "\n";
}

const WIDTH = 100;

/** One usage row: the label, then the text from column 30, wrapped at WIDTH columns. */
function row(label: string, text: string): string {
  const pad = 30;
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && pad + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  const indent = " ".repeat(pad);
  const body = lines.join(`\n${indent}`);
  return label.length + 2 >= pad ? `  ${label}\n${indent}${body}` : `  ${label.padEnd(pad - 2)}${body}`;
}

/** The overview: every visible command under its group, in declaration order. */
export function overviewUsage(commands: readonly Command[], only?: string): string {
  const lines =
    only === undefined
      ? ["usage: walvault <command> [options]", "       walvault <command> --help    (that command's options)", "       walvault --version"]
      : [`usage: walvault ${only} <subcommand> [options]`, `       walvault ${only} <subcommand> --help    (that command's options)`];
  const groups = new Map<string, Command[]>();
  for (const c of commands) {
    if (c.hidden || (only !== undefined && !c.name.startsWith(`${only} `))) continue;
    groups.set(c.group, [...(groups.get(c.group) ?? []), c]);
  }
  for (const [g, cs] of groups) {
    lines.push("", g);
    for (const c of cs) lines.push(row(`${c.name}${c.positionals.length ? ` ${positionalsLabel(c)}` : ""}`, c.summary));
  }
  if (only === undefined) {
    lines.push("", "common options", row(optionLabel("database", databaseOption), databaseOption.description), row(optionLabel("config", configOption), configOption.description));
  }
  return lines.join("\n") + "\n";
}
