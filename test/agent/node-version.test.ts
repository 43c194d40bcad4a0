/** agent/node-version.ts: which Node versions the agent refuses, and the one line it says. */
import { describe, expect, it } from "vitest";
import { MIN_NODE, unsupportedNode } from "../../agent/node-version.js";

describe("unsupportedNode", () => {
  it("accepts 22.15 and every later version", () => {
    for (const v of ["22.15.0", "22.23.3", "23.0.0", "24.1.2", "100.0.0"]) expect(unsupportedNode(v, "/usr/bin/node"), v).toBeUndefined();
  });

  it("refuses anything older, naming the binary, its version and what to do", () => {
    for (const v of ["22.14.9", "22.0.0", "20.19.2", "18.20.0"]) {
      // Act
      const line = unsupportedNode(v, "/usr/bin/node");
      // Assess
      expect(line, v).toBe(
        `needs Node.js ${MIN_NODE.major}.${MIN_NODE.minor} or later, but /usr/bin/node is ${v}: install Node.js 22 (nodejs.org, or your distribution's nodejs 22 package), or use the single-file executable walvault-linux-x64, which needs no Node.js`,
      );
    }
  });

  it("refuses a version it cannot read rather than guess", () => {
    expect(unsupportedNode("nightly", "/opt/node")).toMatch(/but \/opt\/node is nightly/);
  });
});
