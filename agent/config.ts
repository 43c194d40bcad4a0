/**
 * Finds and loads the agent configuration. Order: --config, $WALVAULT_CONFIG,
 * ~/.config/walvault/config.json, then the local stack's well-known file
 * ($WALVAULT_LOCAL_DIR or <tmp>/walvault-local)/config.json — so after
 * `walvault local up` the agent (and PostgreSQL's archive_command, running as
 * another user) finds it by itself. $WALVAULT_DATABASE or --database names
 * the database.
 */
import { readFileSync, statSync } from "node:fs";
import { agentConfigSchema, type AgentConfig } from "../core/config.js";
import { ConfigError, ServiceUnavailableError } from "../core/errors.js";
import { assertDatabaseId } from "../core/keys.js";
import { findConfigFile } from "./locate.js";
import { pidAlive } from "./pid.js";

export { configCandidates, defaultLocalStateDir } from "./locate.js";

export interface LoadedConfig extends AgentConfig {
  path: string;
}

export function loadConfig(opts: { config?: string | undefined; database?: string | undefined } = {}): LoadedConfig {
  const { path, candidates } = findConfigFile(opts.config);
  if (!path) {
    throw new ConfigError(
      `no walvault configuration found (looked at ${candidates.join(", ")}): start the local stack with \`walvault local up\`, or pass --config FILE`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new ConfigError(`configuration ${path} is not readable JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = agentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new ConfigError(`configuration ${path}: ${i?.path.join(".") ?? "?"}: ${i?.message ?? "invalid"}`);
  }
  const databaseId = opts.database ?? process.env.WALVAULT_DATABASE ?? parsed.data.databaseId;
  return { ...parsed.data, ...(databaseId ? { databaseId: assertDatabaseId(databaseId) } : {}), path };
}

/**
 * Whether `snapshot push` groups new chunks into pack objects (docs/packs.md):
 * on by default (unset, 1/true/yes/on); WALVAULT_PACKS=0 (false/no/off)
 * writes one object per chunk, the layout of vaults written before packs,
 * which every part of walvault still reads. Anything else is a ConfigError.
 */
export function packsEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.WALVAULT_PACKS?.trim().toLowerCase();
  if (v === "0" || v === "false" || v === "no" || v === "off") return false;
  if (v === undefined || v === "" || v === "1" || v === "true" || v === "yes" || v === "on") return true;
  throw new ConfigError(`WALVAULT_PACKS='${env.WALVAULT_PACKS}' is not 1 or 0 (packs on or off)`);
}

/**
 * Whether wal-push writes WAL straight into the vault and starts the
 * wal-record workflow (docs/wal.md, "Direct WAL"): WALVAULT_WAL_DIRECT=1/0
 * (true/yes/on, false/no/off) when set, else the config's `walDirect`, else
 * on whenever the configuration names the workflow (`walRecordStateMachineArn`):
 * the default since stop 33. A configuration written before that workflow
 * existed names none and stays on the incoming/ upload. Anything else is a
 * ConfigError.
 */
export function walDirectEnabled(cfg: Pick<AgentConfig, "walDirect" | "walRecordStateMachineArn">, env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.WALVAULT_WAL_DIRECT?.trim().toLowerCase();
  if (v === "0" || v === "false" || v === "no" || v === "off") return false;
  if (v === "1" || v === "true" || v === "yes" || v === "on") return true;
  if (v === undefined || v === "") return cfg.walDirect ?? cfg.walRecordStateMachineArn !== undefined;
  throw new ConfigError(`WALVAULT_WAL_DIRECT='${env.WALVAULT_WAL_DIRECT}' is not 1 or 0 (direct WAL on or off)`);
}

export function requireDatabase(cfg: AgentConfig): string {
  if (!cfg.databaseId) {
    throw new ConfigError("no database id: pass --database ID or set WALVAULT_DATABASE");
  }
  return cfg.databaseId;
}

/** A config written by the local stack names its process; fail fast and clearly when it is gone. */
export function assertLocalStackAlive(cfg: AgentConfig): void {
  if (!cfg.local || pidAlive(cfg.local.pid)) return;
  throw new ServiceUnavailableError(
    `the local stack is not running (pid ${cfg.local.pid} from ${cfg.local.stateDir} has exited): start it with \`walvault local up\``,
  );
}

/** What tells one version of a file from the next without reading it (undefined: no file). */
export function configStamp(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return undefined;
  }
}

/** The file's text, or undefined when it cannot be read. */
export function readConfigText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
