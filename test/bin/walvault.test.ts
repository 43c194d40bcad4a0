/**
 * bin/walvault, the launcher: which script it runs. The agent's bundle
 * (dist/agent-bundle/walvault.js, `npm run build`) when it is newer than the
 * compiled modules; dist/local/dev-cli.js when tsc ran alone since (a stale
 * bundle would run yesterday's agent) or there is no bundle.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../support/harness.js";

const LAUNCHER = fileURLToPath(new URL("../../bin/walvault", import.meta.url));

describe("bin/walvault", () => {
  let root: string;
  const run = (): string => execFileSync(join(root, "bin", "walvault"), ["--version"], { encoding: "utf8" }).trim();
  const at = (path: string, seconds: number): void => utimesSync(path, seconds, seconds);

  beforeAll(() => {
    // Prepare: a package root whose two scripts say which one ran, on this Node
    root = tempDir("walvault-launcher-");
    for (const d of ["bin", "dist/local", "dist/agent-bundle", "node_modules/node/bin"]) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(LAUNCHER, join(root, "bin", "walvault"));
    symlinkSync(process.execPath, join(root, "node_modules/node/bin/node"));
    writeFileSync(join(root, "dist/local/dev-cli.js"), "console.log('compiled ' + process.argv.slice(2).join(' '))\n");
    writeFileSync(join(root, "dist/agent-bundle/walvault.js"), "console.log('bundle ' + process.argv.slice(2).join(' '))\n");
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("runs the bundle when it is newer than the compiled modules, with the command's arguments", () => {
    at(join(root, "dist/local/dev-cli.js"), 1_000_000);
    at(join(root, "dist/agent-bundle/walvault.js"), 2_000_000);
    expect(run()).toBe("bundle --version");
  });

  it("runs the compiled modules when they are newer than the bundle, or when there is none", () => {
    at(join(root, "dist/local/dev-cli.js"), 3_000_000);
    expect(run()).toBe("compiled --version");
    rmSync(join(root, "dist/agent-bundle"), { recursive: true });
    expect(run()).toBe("compiled --version");
  });
});
