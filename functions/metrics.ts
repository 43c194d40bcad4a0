/**
 * CloudWatch metrics from a handler, in the Embedded Metric Format: one JSON
 * line on stdout per record (Lambda's log, which CloudWatch turns into
 * metrics: no API call, no permission). The local stack collects the lines
 * in a file instead (WALVAULT_METRICS_FILE, local/stack.ts), where its tests
 * read them.
 */
import { appendFileSync } from "node:fs";
import { INGEST_NAMESPACE } from "../core/metrics.js";
import type { QuarantineRecord } from "../core/schemas.js";

export interface MetricRecord {
  namespace: string;
  /** The dimension names, each a property of `values` too. */
  dimensions: readonly string[];
  metrics: ReadonlyArray<{ name: string; unit: "Count" | "Seconds" | "None" }>;
  /** Every metric's value, the dimensions' values, and any other property to log beside them. */
  values: Readonly<Record<string, string | number | boolean>>;
}

/** The EMF line of `r` at `timestamp` (epoch milliseconds). */
export function emfLine(r: MetricRecord, timestamp: number): string {
  return JSON.stringify({
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [{ Namespace: r.namespace, Dimensions: [[...r.dimensions]], Metrics: r.metrics.map((m) => ({ Name: m.name, Unit: m.unit })) }],
    },
    ...r.values,
  });
}

/** Emits `r` now. */
export function emitMetric(r: MetricRecord): void {
  const line = emfLine(r, Date.now());
  const file = process.env.WALVAULT_METRICS_FILE;
  if (file) appendFileSync(file, line + "\n");
  else console.log(line);
}

/** One rejected upload (`kind`: which path refused it), as the quarantine steps record it. */
export function quarantineMetric(r: QuarantineRecord, kind: "wal" | "wal-direct" | "snapshot"): MetricRecord {
  return {
    namespace: INGEST_NAMESPACE,
    dimensions: ["DatabaseId"],
    metrics: [{ name: "Quarantined", unit: "Count" }],
    values: { DatabaseId: r.databaseId, Quarantined: 1, Kind: kind, Name: r.name, Error: r.error, Reason: r.reason.slice(0, 500) },
  };
}
