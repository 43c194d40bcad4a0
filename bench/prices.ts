/** The list prices (us-east-1, 2025) the benchmarks turn request counts and durations into dollars with, and where each count comes from. */

export const PRICES = {
  s3PutTierPer1k: 0.005, // PUT, COPY, POST (multi-delete, restore, multipart), LIST
  s3GetTierPer1k: 0.0004, // GET, ranged GET, HEAD
  dynamoWriteUnitPerM: 0.625, // on-demand write request units
  dynamoReadUnitPerM: 0.125, // on-demand read request units
  sfnStandardTransitionPer1k: 0.025,
  sfnExpressRequestPerM: 1.0,
  sfnExpressGbSecond: 0.00001667, // first tier; 64 MB billed per execution here
  lambdaGbSecond: 0.0000166667,
  lambdaRequestPerM: 0.2,
  eventBridgePerM: 1.0, // S3 Object Created events delivered to a rule's target (upload-triggered workflows)
  logsIngestPerGb: 0.5, // CloudWatch Logs ingestion (Express workflows' execution logs)
} as const;

/** Lambda's price of `invocations` taking `totalMs` in all at `memoryBytes`: duration (GB-s) plus requests. */
export function lambdaCost(invocations: number, totalMs: number, memoryBytes: number): number {
  return (totalMs / 1000) * (memoryBytes / 2 ** 30) * PRICES.lambdaGbSecond + (invocations / 1e6) * PRICES.lambdaRequestPerM;
}
