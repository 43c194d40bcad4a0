/**
 * local/bundle-handlers.ts (the last step of `npm run build`, which `npm
 * test` runs first): every workflow step has a bundle where the local stack's
 * sandboxes load it (core/workflows.ts bundleOf), built as CDK bundles it for
 * Lambda, and the bundle alone (no dist/ module graph beside it) exports the
 * step's handler.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { bundleOf, HANDLER_BUNDLE, STEPS_BY_PLACEHOLDER } from "../../core/workflows.js";
import { AGENT_BUNDLE_DIR, PACKAGE_ROOT } from "../../local/paths.js";

const steps = [...new Map([...STEPS_BY_PLACEHOLDER.values()].map((s) => [s.module, s])).values()];

/** The type of each bundle's `handler` export, imported by a plain Node process (not through the test runner's transform). */
function exportedTypes(): Record<string, string> {
  const script = `const out = {}; for (const [m, url, h] of JSON.parse(process.argv[1])) out[m] = typeof (await import(url))[h]; console.log(JSON.stringify(out));`;
  const args = JSON.stringify(steps.map((s) => [s.module, pathToFileURL(join(PACKAGE_ROOT, bundleOf(s))).href, s.handler]));
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script, args], { encoding: "utf8" })) as Record<string, string>;
}

describe("the handler bundles npm run build writes", () => {
  it("exist for every step, each one minified ESM file with the banner CDK adds and nothing of the project's imported beside it", () => {
    for (const step of steps) {
      // Prepare
      const path = join(PACKAGE_ROOT, bundleOf(step));
      expect(existsSync(path), `${path} (run npm run build)`).toBe(true);
      // Act
      const text = readFileSync(path, "utf8");
      // Assess
      expect(text.startsWith(HANDLER_BUNDLE.banner), path).toBe(true);
      expect(text, path).not.toMatch(/from\s*"\.{1,2}\//);
    }
  });

  it("each export its step's handler when loaded on their own", () => {
    // Act
    const types = exportedTypes();
    // Assess
    expect(types).toEqual(Object.fromEntries(steps.map((s) => [s.module, "function"])));
  });
});

describe("the agent bundle npm run build writes", () => {
  const dir = join(PACKAGE_ROOT, AGENT_BUNDLE_DIR);

  it("runs the CLI on its own, its worker threads beside it, and leaves the local stack's modules outside", () => {
    // Prepare
    for (const f of ["walvault.js", "decode-worker.js", "encode-worker.js"]) expect(existsSync(join(dir, f)), `${join(dir, f)} (run npm run build)`).toBe(true);
    // Act
    const version = execFileSync(process.execPath, [join(dir, "walvault.js"), "--version"], { encoding: "utf8" }).trim();
    const code = readdirSync(dir).filter((f) => f.endsWith(".js")).map((f) => readFileSync(join(dir, f), "utf8"));
    // Assess: the version from package.json, no emulator inside, the local stack imported from dist/local/
    expect(version).toBe(`walvault ${(JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version}`);
    expect(code.some((t) => t.includes("s3rver"))).toBe(false);
    expect(code.some((t) => t.includes('"../local/cli.js"'))).toBe(true);
    expect(existsSync(join(PACKAGE_ROOT, "dist", "local", "cli.js"))).toBe(true);
  });
});
