/**
 * Helpers for the ASL files in statemachines/. The CDK stack deploys them
 * as they are (DefinitionBody.fromFile) and CloudFormation replaces each
 * `${Name}` placeholder with the value given in DefinitionSubstitutions; a
 * placeholder without a substitution would only fail at deploy time, so the
 * stack checks with these helpers at synth time instead.
 */
import { readFileSync } from "node:fs";

const PLACEHOLDER_RE = /\$\{([A-Za-z0-9_]+)\}/g;

/** Every distinct `${Name}` placeholder in an ASL file, sorted by name. */
export function aslPlaceholders(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const names = new Set<string>();
  for (const match of text.matchAll(PLACEHOLDER_RE)) {
    const name = match[1];
    if (name !== undefined) names.add(name);
  }
  return [...names].sort();
}

/** The placeholders of an ASL file that `substitutions` leaves without a value. */
export function missingSubstitutions(file: string, substitutions: Readonly<Record<string, unknown>>): string[] {
  return aslPlaceholders(file).filter((name) => !Object.hasOwn(substitutions, name));
}
