/**
 * The parser under every command (agent/command.ts), on a declaration of its
 * own: values by type, `--opt=value`, negative numbers reaching their check,
 * repeated and mode-only options, positionals, suggestions.
 */
import { describe, expect, it } from "vitest";
import { commandUsage, defineCommand, nearest, parseCommandArgs, resolveCommand } from "../../agent/command.js";
import { COMMANDS } from "../../agent/commands/index.js";

const demo = defineCommand({
  name: "demo run",
  summary: "a command for the parser's tests",
  group: "tests",
  positionals: [{ name: "file", description: "a file" }],
  options: {
    timeout: { type: "seconds", description: "how long" },
    count: { type: "positive-int", default: "8", description: "how many" },
    tag: { type: "string", multiple: true, description: "tags" },
    remote: { type: "boolean", description: "remote mode" },
    tier: { type: "string", choices: ["Standard", "Bulk"], requires: "remote", description: "tier" },
    to: { type: "string", excludes: "remote", description: "where" },
  },
  run: () => Promise.resolve(0),
});

function parse(...argv: string[]) {
  return parseCommandArgs(demo, argv);
}

function refusal(...argv: string[]): string {
  try {
    parse(...argv);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`accepted: ${argv.join(" ")}`);
}

describe("parseCommandArgs", () => {
  it("reads values by their declaration: defaults, booleans, repeated options, --opt=value", () => {
    // Act
    const p = parse("f", "--timeout=1.5", "--tag", "a", "--tag=b", "--remote", "--tier", "Bulk");
    // Assess
    expect(p).toEqual({ positionals: ["f"], values: { timeout: "1.5", count: "8", tag: ["a", "b"], remote: true, tier: "Bulk", to: undefined } });
  });

  it("a negative number is a value, so the option's own check answers", () => {
    expect(refusal("f", "--timeout", "-5")).toBe("--timeout must be a positive number of seconds, not '-5'");
    expect(refusal("f", "--count", "-1")).toBe("--count must be a positive integer, not '-1'");
  });

  it("everything after -- is a positional", () => {
    expect(parse("--", "-file").positionals).toEqual(["-file"]);
  });

  it.each([
    [["f", "--count", "0"], "--count must be a positive integer, not '0'"],
    [["f", "--count", "1e3"], "--count must be a positive integer, not '1e3'"],
    [["f", "--timeout", ""], "--timeout must not be empty"],
    [["f", "--timeout"], "--timeout needs a value (SECONDS)"],
    [["f", "--timeout", "1", "--timeout", "2"], "--timeout is given more than once"],
    [["f", "--remote=yes"], "--remote takes no value, got 'yes'"],
    [["f", "--tier", "Bulk"], "--tier only goes with --remote"],
    [["f", "--remote", "--tier", "Fast"], "--tier must be Standard or Bulk, not 'Fast'"],
    [["f", "--remote", "--to", "d"], "--to does not go with --remote"],
    [["f", "--tiemout", "1"], "unknown option '--tiemout' for demo run: did you mean '--timeout'?"],
    [["f", "--zzz"], "unknown option '--zzz' for demo run (see walvault demo run --help)"],
    [[], "demo run takes <file>, got nothing"],
    [["a", "b"], "demo run takes <file>, got 'a' 'b'"],
    [[""], "demo run: <file> must not be empty"],
    [["f", "--count", "1\u001b[2J"], "--count must be a positive integer, not '1\\e[2J'"],
  ])("%j is refused in one line", (argv, message) => {
    expect(refusal(...argv)).toBe(message);
  });
});

describe("suggestions and the table", () => {
  it("nearest: a typo or a unique prefix, nothing for an unrelated word", () => {
    expect(nearest("wal-psh", ["wal-push", "wal-fetch"])).toBe("wal-push");
    expect(nearest("--target-t", ["--target-time", "--target-lsn"])).toBe("--target-time");
    expect(nearest("xyzzy", ["wal-push", "restore"])).toBeUndefined();
  });

  it("resolves the longest command name and leaves a group word alone for its own message", () => {
    expect(resolveCommand(COMMANDS, ["verify", "history", "--json"])).toMatchObject({ kind: "command", command: { name: "verify history" }, rest: ["--json"] });
    expect(resolveCommand(COMMANDS, ["verify", "--json"])).toMatchObject({ kind: "command", command: { name: "verify" }, rest: ["--json"] });
    expect(resolveCommand(COMMANDS, ["snapshot"])).toMatchObject({ kind: "group", word: "snapshot" });
    expect(() => resolveCommand(COMMANDS, ["snapshot", "pus"])).toThrow("unknown command 'snapshot pus': did you mean 'snapshot push'?");
  });

  it("every command's usage names it, its positionals and each of its options; names are unique", () => {
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const c of COMMANDS) {
      const usage = commandUsage(c);
      expect(usage).toContain(`usage: walvault ${c.name}`);
      for (const p of c.positionals) expect(usage).toContain(`<${p.name}>`);
      for (const o of Object.keys(c.options)) expect(usage).toContain(`--${o}`);
    }
  });

  it("the table imports nothing heavy at its top level: no AWS SDK, no zod, no command's own code", async () => {
    // Prepare
    const { readFileSync, readdirSync } = await import("node:fs");
    const { dirname, resolve } = await import("node:path");
    const { fileURLToPath } = await import("node:url");
    const agent = fileURLToPath(new URL("../../agent/", import.meta.url));
    const light = new Set(["command.ts", "locate.ts", "push-client.ts", "cli.ts", "run-cli.ts", "node-version.ts"].map((f) => resolve(agent, f)));
    const entries = ["cli.ts", "run-cli.ts", "node-version.ts", "command.ts"].map((f) => resolve(agent, f));
    const files = [...entries, ...readdirSync(resolve(agent, "commands")).map((f) => resolve(agent, "commands", f))];
    // Act: every static (non-type) import of those files
    const heavy = files.flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(/^import\s(?!type\b)[^;]*?from\s+"([^"]+)"/gms)]
        .map((m) => m[1]!)
        .filter((spec) => {
          if (!spec.startsWith(".")) return /^(@aws-sdk|zod)/.test(spec);
          const target = resolve(dirname(file), spec.replace(/\.js$/, ".ts"));
          // Inside agent/: only the table's own modules and the light ones; outside: core/errors, core/text and core/time
          // (option checks; each imports nothing but core/errors).
          if (target.startsWith(resolve(agent, "commands"))) return false;
          if (target.startsWith(agent)) return !light.has(target);
          return !/\/core\/(errors|text|time)\.ts$/.test(target);
        })
        .map((spec) => `${file}: ${spec}`),
    );
    // Assess
    expect(heavy).toEqual([]);
  });
});
