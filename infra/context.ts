/**
 * Reading CDK context (cdk.json, or `-c key=value` on the command line) for
 * the walvault settings: values given on the command line arrive as strings,
 * so strings that look like JSON (as `-c key='["a"]'` passes them) are parsed.
 */
import type { Node } from "constructs";

/** A context value; strings that look like JSON are parsed. */
export function contextValue(node: Node, key: string): unknown {
  const raw: unknown = node.tryGetContext(key);
  if (typeof raw === "string") {
    const text = raw.trim();
    if (text.startsWith("[") || text.startsWith("{")) {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new Error(`context ${key} is not valid JSON: ${raw}`);
      }
    }
  }
  return raw;
}
