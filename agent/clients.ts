/** Store clients for the agent, built from its configuration (and, for the resident agent, rebuilt when it changes). */
import type { AgentConfig } from "../core/config.js";
import type { Catalog } from "../store/catalog.js";
import { withDatabaseCache } from "../store/cached-catalog.js";
import { createCatalog, createObjectStore } from "../store/factory.js";
import type { ObjectStore } from "../store/object-store.js";
import { describeError } from "../core/errors.js";
import { assertLocalStackAlive, configStamp, loadConfig, readConfigText } from "./config.js";

export interface AgentClients {
  store: ObjectStore;
  catalog: Catalog;
}

export function agentClients(cfg: AgentConfig): AgentClients {
  assertLocalStackAlive(cfg);
  const endpoints = {
    region: cfg.region,
    s3Endpoint: cfg.s3Endpoint,
    dynamodbEndpoint: cfg.dynamodbEndpoint,
    credentials: cfg.credentials,
  };
  return { store: createObjectStore(endpoints), catalog: withDatabaseCache(createCatalog({ ...endpoints, table: cfg.table })) };
}

/**
 * The resident agent's configuration and clients, following its file: when
 * the file changes (the local stack restarted on new ports, an operator
 * edited an endpoint), `refresh()` loads it again and builds new clients.
 * The check is a stat, and a read only when the stat differs.
 */
export interface FollowedClients {
  readonly cfg: AgentConfig & { databaseId: string };
  readonly clients: AgentClients;
  /** Re-reads the file if it changed; true when the configuration in use changed. Never throws. */
  refresh(): boolean;
}

export function followConfigFile(
  cfg: AgentConfig & { databaseId: string; path: string },
  clients: AgentClients,
  log: (line: string) => void,
): FollowedClients {
  let current = { cfg: cfg as AgentConfig & { databaseId: string }, clients };
  let stamp = configStamp(cfg.path);
  let content = readConfigText(cfg.path);
  let lastError: string | undefined;
  return {
    get cfg() {
      return current.cfg;
    },
    get clients() {
      return current.clients;
    },
    refresh() {
      const now = configStamp(cfg.path);
      if (now === stamp) return false;
      const text = readConfigText(cfg.path);
      if (text === undefined || text === content) {
        // Gone (the stack stopped and removed it: keep what we have until a new one appears) or only touched.
        if (text !== undefined) stamp = now;
        return false;
      }
      try {
        const next = { ...loadConfig({ config: cfg.path, database: cfg.databaseId }), databaseId: cfg.databaseId };
        const nextClients = agentClients(next);
        const before = current.cfg;
        current = { cfg: next, clients: nextClients };
        stamp = now;
        content = text;
        lastError = undefined;
        log(
          `configuration ${cfg.path} changed: now S3 ${next.s3Endpoint ?? "(region default)"}, DynamoDB ${next.dynamodbEndpoint ?? "(region default)"}` +
            (before.s3Endpoint !== next.s3Endpoint || before.dynamodbEndpoint !== next.dynamodbEndpoint
              ? ` (were ${before.s3Endpoint ?? "default"}, ${before.dynamodbEndpoint ?? "default"})`
              : ""),
        );
        return true;
      } catch (e) {
        // Half written, or names a stack that is not up yet: keep the old clients, look again next time.
        const why = describeError(e);
        if (why !== lastError) log(`configuration ${cfg.path} changed but cannot be used yet (keeping the previous one): ${why}`);
        lastError = why;
        return false;
      }
    },
  };
}
