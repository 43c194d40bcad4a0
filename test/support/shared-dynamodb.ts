/**
 * Vitest global setup: one DynamoDB Local (in memory) for the whole run.
 * Every test stack that keeps its catalog in memory creates its own table in
 * it (local/stack.ts sharedDynamodbEndpoint) instead of starting a JVM of its
 * own: ~5 s and most of a core per suite, 45 suites. Suites that restart or
 * kill DynamoDB, or keep the catalog on disk, still start their own.
 */
import type { TestProject } from "vitest/node";
import { startDynamo } from "../../local/emulators.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The shared DynamoDB Local's endpoint. */
    sharedDynamodbEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dynamo = await startDynamo({});
  project.provide("sharedDynamodbEndpoint", dynamo.endpoint);
  return () => dynamo.stop();
}
