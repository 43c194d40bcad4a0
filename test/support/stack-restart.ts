/**
 * Test support: stop a test stack and start it again in the same state
 * directory — new ports, its config.json rewritten in place — as a user's
 * `walvault local up` after a crash or a reboot does. s3rver's objects stay on
 * disk; an in-memory catalog starts empty (its databases registered again).
 */
import { rmSync } from "node:fs";
import { startLocalStack, type LocalDatabase, type LocalStackOptions } from "../../local/stack.js";
import { runCli, type TestStack } from "./stack.js";

export async function startTestStackIn(
  stateDir: string,
  databases: LocalDatabase[],
  opts: Omit<LocalStackOptions, "stateDir" | "databases"> = {},
): Promise<TestStack> {
  const stack = await startLocalStack({ persistent: false, ...opts, stateDir, databases });
  return {
    ...stack,
    stateDir,
    cli: (args, o = {}) => runCli(args, { ...o, env: { WALVAULT_CONFIG: stack.configPath, ...o.env } }),
    async destroy() {
      await stack.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Stops `old` (keeping its state directory) and starts a stack in the same directory. */
export async function restartTestStack(
  old: TestStack,
  databases: LocalDatabase[],
  opts: Omit<LocalStackOptions, "stateDir" | "databases"> = {},
): Promise<TestStack> {
  await old.stop();
  return startTestStackIn(old.stateDir, databases, opts);
}
