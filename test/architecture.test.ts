/**
 * The dependency rules of the source tree (README, "Layout"): agent,
 * functions, tasks and local → store → core; core is pure; the agent, a
 * product installed on database hosts, never imports the local stack.
 * Checked on the import statements of every source file.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../agent/paths.js";

function sources(dir: string): string[] {
  return readdirSync(join(PACKAGE_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(PACKAGE_ROOT, join(e.parentPath, e.name)));
}

/** Every `from "…"` and `import("…")` specifier of a file. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(PACKAGE_ROOT, file), "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
}

/** The top-level directory a relative import of `file` lands in, or the package/node module. */
function target(file: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  return relative(PACKAGE_ROOT, join(PACKAGE_ROOT, file, "..", spec)).split("/")[0]!;
}

function violations(dir: string, forbidden: (t: string) => boolean): string[] {
  return sources(dir).flatMap((f) => importsOf(f).filter((s) => forbidden(target(f, s))).map((s) => `${f} imports ${s}`));
}

describe("source dependencies", () => {
  it("core is pure: no other layer, no I/O modules, no AWS SDK", () => {
    const io = /^(node:)?(fs|fs\/promises|net|http|https|child_process|worker_threads|dgram|dns)$|^@aws-sdk\//;
    expect(violations("core", (t) => ["store", "agent", "functions", "tasks", "local", "infra", "bench"].includes(t) || io.test(t))).toEqual([]);
  });

  it("store depends on core only", () => {
    expect(violations("store", (t) => ["agent", "functions", "tasks", "local", "infra", "bench"].includes(t))).toEqual([]);
  });

  it("the agent never imports the local stack, the Lambda handlers or the CDK app", () => {
    // The developer commands `walvault local up|down` are local/'s (local/dev-cli.ts adds them).
    expect(violations("agent", (t) => ["local", "functions", "infra", "bench", "tasks"].includes(t) || t.startsWith("aws-cdk"))).toEqual([]);
  });

  it("Lambda handlers never import the agent or the local stack", () => {
    expect(violations("functions", (t) => ["agent", "local", "infra", "bench", "tasks"].includes(t))).toEqual([]);
  });
});
