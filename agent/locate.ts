/**
 * Where the configuration and the resident agent's socket are. Kept free of
 * heavy imports: `wal-push` reads this first, and when a resident agent is
 * running the whole call is this module, a socket round trip and exit.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

export function defaultLocalStateDir(): string {
  return process.env.WALVAULT_LOCAL_DIR ?? join(tmpdir(), "walvault-local");
}

export function configCandidates(explicit?: string): string[] {
  if (explicit) return [explicit];
  if (process.env.WALVAULT_CONFIG) return [process.env.WALVAULT_CONFIG];
  return [join(homedir(), ".config", "walvault", "config.json"), join(defaultLocalStateDir(), "config.json")];
}

export function findConfigFile(explicit?: string): { path?: string; candidates: string[] } {
  const candidates = configCandidates(explicit);
  const path = candidates.find((p) => existsSync(p));
  return path ? { path, candidates } : { candidates };
}

/** The resident agent's socket for a database: $WALVAULT_AGENT_SOCKET, else <tmp>/walvault-agent-<id>.sock. */
export function agentSocketPath(databaseId: string): string {
  return process.env.WALVAULT_AGENT_SOCKET ?? join(tmpdir(), `walvault-agent-${databaseId}.sock`);
}

/**
 * Database id (flag, environment, config file), the configured wait
 * timeout and prefetch count, without validating the file: the slow path
 * does that.
 */
export function quickSettings(
  flag: string | undefined,
  configPath: string | undefined,
): { databaseId?: string; waitTimeoutSeconds?: number; prefetch?: number } {
  let raw: { databaseId?: unknown; waitTimeoutSeconds?: unknown; prefetch?: unknown } = {};
  if (configPath) {
    try {
      raw = JSON.parse(readFileSync(configPath, "utf8")) as typeof raw;
    } catch {
      raw = {};
    }
  }
  const databaseId = flag ?? process.env.WALVAULT_DATABASE ?? (typeof raw.databaseId === "string" ? raw.databaseId : undefined);
  const timeout = typeof raw.waitTimeoutSeconds === "number" ? raw.waitTimeoutSeconds : undefined;
  const prefetch = typeof raw.prefetch === "number" && Number.isInteger(raw.prefetch) && raw.prefetch >= 0 ? raw.prefetch : undefined;
  return { ...(databaseId ? { databaseId } : {}), ...(timeout ? { waitTimeoutSeconds: timeout } : {}), ...(prefetch !== undefined ? { prefetch } : {}) };
}
