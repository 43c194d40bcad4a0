/** Store clients for the agent, built once from its configuration. */
import type { AgentConfig } from "../core/config.js";
import type { Catalog } from "../store/catalog.js";
import { withDatabaseCache } from "../store/cached-catalog.js";
import { createCatalog, createObjectStore } from "../store/factory.js";
import type { ObjectStore } from "../store/object-store.js";
import { assertLocalStackAlive } from "./config.js";

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
