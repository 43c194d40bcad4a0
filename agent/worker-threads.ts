/**
 * What the agent's worker-thread pools share (agent/decode-pool.ts for
 * restore, agent/encode-pool.ts for push): where the compiled worker is, and
 * the environment variable that sets how many run.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The compiled worker `file` next to the module at `moduleUrl` (the pool's
 * import.meta.url), when there is one: not when the pool runs from the
 * TypeScript sources (tests), where the caller works on its own thread.
 */
export function compiledWorkerBeside(moduleUrl: string, file: string): string | undefined {
  if (!moduleUrl.endsWith(".js")) return undefined;
  const path = fileURLToPath(new URL(`./${file}`, moduleUrl));
  return existsSync(path) ? path : undefined;
}

/** The whole number in environment variable `name` (0: no worker), or undefined when it is unset or anything else. */
export function threadsFromEnv(name: string): number | undefined {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}
