/**
 * Test support for suites that drive the real local stack: store clients
 * pointed at the stack, WAL files on disk, polling, and "was this object
 * written again?" stamps.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { afterAll } from "vitest";
import type { Deps } from "../../functions/deps.js";
import type { Catalog } from "../../store/catalog.js";
import { createCatalog, createObjectStore } from "../../store/factory.js";
import type { ObjectStore } from "../../store/object-store.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import type { TestStack } from "./stack.js";

export interface StackClients {
  store: ObjectStore;
  catalog: Catalog;
}

/** An ObjectStore and a Catalog talking to the stack's emulators, as the agent's would. */
export function stackClients(stack: TestStack): StackClients {
  const c = stack.config;
  const endpoints = { region: c.region, s3Endpoint: c.s3Endpoint, dynamodbEndpoint: c.dynamodbEndpoint, credentials: c.credentials };
  return { store: createObjectStore(endpoints), catalog: createCatalog({ ...endpoints, table: c.table }) };
}

/**
 * The environment the handlers build their dependencies from, for suites that
 * call handlers directly on a bare DynamoDB Local and replace the catalog and
 * replicas with overrideDeps(): S3 points nowhere.
 */
export function handlerEnvironment(dynamodbEndpoint: string): Record<string, string> {
  return {
    WALVAULT_INCOMING_BUCKET: "incoming",
    WALVAULT_VAULT_BUCKET: "vault",
    WALVAULT_TABLE: "unused",
    WALVAULT_REPLICAS: "[]",
    WALVAULT_S3_ENDPOINT: "http://127.0.0.1:1",
    WALVAULT_DYNAMODB_ENDPOINT: dynamodbEndpoint,
  };
}

/** The directories tempDir() made in this test file, removed after its last test. */
const madeDirs: string[] = [];

/*
 * Registered when a test file first imports this module (vitest runs each
 * file in a fresh module graph: once per file), on the file's root suite, so
 * it runs after the file's own afterAll hooks (vitest runs after-hooks in
 * reverse order): the stacks, agents and servers writing into these
 * directories have stopped by then. Without it, each CI run left about 20
 * directories in /tmp.
 */
afterAll(() => {
  for (const dir of madeDirs.splice(0)) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
});

/** A fresh temporary directory, removed with its contents after the test file's last test. */
export function tempDir(prefix = "walvault-t-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** Writes bytes to dir/name and returns the path. */
export function writeWal(dir: string, name: string, bytes: Uint8Array | string): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Every key under a prefix. */
export async function listKeys(store: ObjectStore, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(bucket, prefix)) keys.push(o.key);
  return keys;
}

export interface ObjectStamp {
  etag: string | undefined;
  lastModified: number | undefined;
  versionId: string | undefined;
  /** mtime of s3rver's backing file: millisecond resolution, unlike Last-Modified. */
  fileMtimeMs: number;
  size: number;
}

/**
 * What tells one write of an object from the next: ETag, Last-Modified and
 * version id from S3, plus the mtime of the file s3rver keeps it in.
 */
export async function objectStamp(stack: TestStack, bucket: string, key: string): Promise<ObjectStamp | undefined> {
  const { store } = stackClients(stack);
  const client = (store as S3ObjectStore).client;
  let head;
  try {
    head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw e;
  } finally {
    client.destroy();
  }
  const parts = key.split("/");
  const last = parts.pop()!;
  const file = join(stack.stateDir, "s3", bucket, ...parts, `${last}._S3rver_object`);
  return {
    etag: head.ETag,
    lastModified: head.LastModified?.getTime(),
    versionId: head.VersionId,
    fileMtimeMs: statSync(file).mtimeMs,
    size: head.ContentLength ?? -1,
  };
}

/** Polls until fn returns something other than undefined/false, or throws after timeoutMs. */
export async function poll<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Waits until `count` more ingest executions than `startedBefore` have
 * started (s3rver's object-created events reach the stack asynchronously,
 * after the PUT has returned), then until none is running.
 */
export async function settleRuns(stack: TestStack, startedBefore: number, count: number, timeoutMs = 15_000): Promise<void> {
  await poll(() => stack.stats.started >= startedBefore + count, timeoutMs, `${count} ingest execution(s) to start`);
  await stack.idle();
}

/** Lets any event that a write would have caused reach the stack, so "nothing started" is meaningful. */
export function quietPeriod(ms = 500): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A pid no process has right now. */
export function deadPid(): number {
  for (let pid = 999_999; ; pid--) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") return pid;
    }
  }
}

/** The store, but every put() flips one byte of what it stores (a disk or network that corrupts); counts the puts. */
export function corruptingStore(store: ObjectStore): ObjectStore & { puts: number } {
  const wrapper = Object.create(store) as ObjectStore & { puts: number };
  wrapper.puts = 0;
  wrapper.put = (bucket, key, body, metadata) => {
    wrapper.puts++;
    const bad = Buffer.from(body);
    bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0xff;
    return store.put(bucket, key, bad, metadata);
  };
  return wrapper;
}

/**
 * `target` with the calls of the named methods recorded (their arguments, in
 * order) and passed through; every other property as it is.
 * `calls[m].length` is how many times m was called.
 */
export function recordingCalls<T extends object, M extends keyof T & string>(target: T, methods: readonly M[]): { proxy: T; calls: Record<M, unknown[][]> } {
  const calls = Object.fromEntries(methods.map((m) => [m, [] as unknown[][]])) as Record<M, unknown[][]>;
  const recorded = new Set<string | symbol>(methods);
  const proxy = new Proxy(target, {
    get(t, prop, receiver) {
      const value: unknown = Reflect.get(t, prop, receiver);
      if (typeof value !== "function") return value;
      const fn = value as (...a: unknown[]) => unknown;
      if (!recorded.has(prop)) return fn.bind(t);
      return (...args: unknown[]) => {
        calls[prop as M].push(args);
        return fn.apply(t, args);
      };
    },
  });
  return { proxy, calls };
}

/**
 * Handler dependencies (functions/deps.ts overrideDeps) that are the stack's
 * own stores, with `catalog` in place of its catalog (e.g. one wrapped to
 * count calls): a handler run in the test's process then reads and writes
 * what the stack's workflows do.
 */
export function stackDeps(stack: TestStack, clients: StackClients, catalog: Catalog = clients.catalog): Partial<Deps> {
  return {
    region: stack.config.region,
    incomingBucket: stack.config.incomingBucket,
    vaultBucket: stack.config.vaultBucket,
    incoming: clients.store,
    vault: clients.store,
    catalog,
    replicas: [],
  };
}
