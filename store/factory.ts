/** Builds the store adapters from endpoint settings; the one place callers get clients from. */
import type { Catalog } from "./catalog.js";
import { DynamoCatalog } from "./dynamo-catalog.js";
import type { ObjectStore } from "./object-store.js";
import { S3ObjectStore } from "./s3-object-store.js";

export interface Endpoints {
  region: string;
  /** Custom S3 endpoint (the local stack's s3rver); path-style addressing is used with it. */
  s3Endpoint?: string | undefined;
  dynamodbEndpoint?: string | undefined;
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Called once with each SDK client the store builds, before any call; the client it returns is used (the handlers' tracer, functions/observability.ts). */
  instrument?: (<C extends object>(client: C) => C) | undefined;
}

export function createObjectStore(e: Endpoints & { name?: string }): ObjectStore {
  return new S3ObjectStore({
    name: e.name ?? e.s3Endpoint ?? e.region,
    region: e.region,
    ...(e.s3Endpoint ? { endpoint: e.s3Endpoint, forcePathStyle: true } : {}),
    ...(e.credentials ? { credentials: e.credentials } : {}),
    ...(e.instrument ? { instrument: e.instrument } : {}),
  });
}

export function createCatalog(e: Endpoints & { table: string }): Catalog {
  return new DynamoCatalog({
    tableName: e.table,
    region: e.region,
    ...(e.dynamodbEndpoint ? { endpoint: e.dynamodbEndpoint } : {}),
    ...(e.credentials ? { credentials: e.credentials } : {}),
    ...(e.instrument ? { instrument: e.instrument } : {}),
  });
}
