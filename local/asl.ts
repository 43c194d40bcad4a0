/**
 * Loads an ASL file the way CDK deploys it: `${Name}` placeholders replaced by
 * substitutions. Any placeholder left over is an error, here as in CDK.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../core/errors.js";
import { STATEMACHINES_DIR } from "./paths.js";

const PLACEHOLDER_RE = /\$\{([A-Za-z0-9_]+)\}/g;

export function placeholdersOf(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER_RE)].map((m) => m[1]!))];
}

export function loadAsl(file: string, substitutions: Record<string, string>): Record<string, unknown> {
  const text = readFileSync(join(STATEMACHINES_DIR, file), "utf8");
  const substituted = text.replace(PLACEHOLDER_RE, (whole, name: string) => substitutions[name] ?? whole);
  const left = placeholdersOf(substituted);
  if (left.length > 0) {
    throw new ConfigError(`${file}: no substitution for ${left.map((n) => "${" + n + "}").join(", ")}`);
  }
  return JSON.parse(substituted) as Record<string, unknown>;
}

interface StateLike {
  Type?: string;
  Resource?: string;
  States?: Record<string, StateLike>;
  ItemProcessor?: { States?: Record<string, StateLike> };
  Iterator?: { States?: Record<string, StateLike> };
  Branches?: { States?: Record<string, StateLike> }[];
}

/** Every Task state (nested Map/Parallel included) as state name → Resource. */
export function taskResources(definition: { States?: Record<string, StateLike> }): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (states: Record<string, StateLike> | undefined): void => {
    for (const [name, s] of Object.entries(states ?? {})) {
      if (s.Type === "Task" && s.Resource) out.set(name, s.Resource);
      walk(s.ItemProcessor?.States);
      walk(s.Iterator?.States);
      for (const b of s.Branches ?? []) walk(b.States);
    }
  };
  walk(definition.States);
  return out;
}
