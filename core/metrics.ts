/**
 * The CloudWatch namespaces walvault's handlers emit metrics in (EMF,
 * functions/observability.ts) and the deployed alarms and dashboard read
 * (infra/rpo-watch.ts, infra/monitoring.ts; docs/alarms.md). Pure.
 */

/** The handlers' Powertools service: every log line's `service`, the traces' Service annotation (POWERTOOLS_SERVICE_NAME). */
export const SERVICE_NAME = "walvault";

/** Archive lag per database (functions/rpo/measure.ts): ArchiveLagSeconds, RpoSeconds, RpoBreached; dimension DatabaseId. */
export const ARCHIVE_NAMESPACE = "walvault/Archive";
/** Rejected uploads (the quarantine steps): Quarantined; dimension DatabaseId. */
export const INGEST_NAMESPACE = "walvault/Ingest";
/** Verification results (functions/verify/record-result.ts): Runs, RestoreSeconds; dimensions DatabaseId, Outcome. */
export const VERIFICATION_NAMESPACE = "walvault/Verification";
/** Replication lag per database and replica region (functions/rpo/measure.ts): ReplicationLagSeconds; dimensions DatabaseId, Region. */
export const REPLICATION_NAMESPACE = "walvault/Replication";
