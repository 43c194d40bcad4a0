/**
 * What every handler needs, built once per module (per Lambda container, or
 * once per local-stack process) from the environment:
 *   WALVAULT_INCOMING_BUCKET, WALVAULT_VAULT_BUCKET, WALVAULT_TABLE,
 *   WALVAULT_REPLICAS  JSON [{ "region", "bucket", "endpoint"? }] ("[]" for none),
 *   AWS_REGION, and on the local stack WALVAULT_S3_ENDPOINT / WALVAULT_DYNAMODB_ENDPOINT.
 */
import { z } from "zod";
import { ConfigError } from "../core/errors.js";
import type { Catalog } from "../store/catalog.js";
import { withDatabaseCache } from "../store/cached-catalog.js";
import { createCatalog, createObjectStore, type Endpoints } from "../store/factory.js";
import type { ObjectStore } from "../store/object-store.js";
import { traceClient } from "./observability.js";

const replicaSchema = z.object({ region: z.string().min(1), bucket: z.string().min(1), endpoint: z.string().optional() });

export interface Replica {
  region: string;
  bucket: string;
  store: ObjectStore;
}

export interface Deps {
  region: string;
  incomingBucket: string;
  vaultBucket: string;
  incoming: ObjectStore;
  vault: ObjectStore;
  catalog: Catalog;
  replicas: Replica[];
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new ConfigError(`environment variable ${name} is not set`);
  return v;
}

function build(): Deps {
  const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1";
  const endpoints: Endpoints = {
    region,
    s3Endpoint: process.env.WALVAULT_S3_ENDPOINT,
    dynamodbEndpoint: process.env.WALVAULT_DYNAMODB_ENDPOINT,
    // Every S3 and DynamoDB call an X-Ray subsegment (off outside Lambda).
    instrument: traceClient,
  };
  let replicasRaw: unknown;
  try {
    replicasRaw = JSON.parse(process.env.WALVAULT_REPLICAS ?? "[]");
  } catch (cause) {
    throw new ConfigError("WALVAULT_REPLICAS is not valid JSON", { cause });
  }
  const replicas = z.array(replicaSchema).parse(replicasRaw);
  const store = createObjectStore({ ...endpoints, name: region });
  return {
    region,
    incomingBucket: required("WALVAULT_INCOMING_BUCKET"),
    vaultBucket: required("WALVAULT_VAULT_BUCKET"),
    incoming: store,
    vault: store,
    catalog: withDatabaseCache(createCatalog({ ...endpoints, table: required("WALVAULT_TABLE") })),
    replicas: replicas.map((r) => ({
      region: r.region,
      bucket: r.bucket,
      store: createObjectStore({ region: r.region, name: r.region, s3Endpoint: r.endpoint ?? endpoints.s3Endpoint, instrument: traceClient }),
    })),
  };
}

/** The configured replica `region`; ConfigError when it is not one. */
export function replicaOf(d: Deps, region: string): Replica {
  const replica = d.replicas.find((r) => r.region === region);
  if (!replica) {
    throw new ConfigError(`replica region '${region}' is not configured (configured: ${d.replicas.map((r) => r.region).join(", ") || "none"})`);
  }
  return replica;
}

let deps: Deps | undefined;

/** The module-wide dependencies; built on first use. */
export function getDeps(): Deps {
  deps ??= build();
  return deps;
}

/** Tests of failure paths: replace parts of the built dependencies (e.g. a replica store that damages what it stores). */
export function overrideDeps(patch: Partial<Deps>): void {
  deps = { ...getDeps(), ...patch };
}

/** For the local stack and tests: forget the built clients (after the environment changed). */
export function resetDeps(): void {
  deps = undefined;
}
