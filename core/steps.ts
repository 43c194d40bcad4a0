/**
 * Lambda timeouts of the workflow steps, declared once: infra/ deploys each
 * function with its timeout from here, and the local stack (local/stack.ts)
 * fails a Task that runs longer the way AWS does. Seconds, by the ASL
 * placeholder that names the step's function in statemachines/*.asl.json
 * (copyItem and recordFailure serve several workflows under one placeholder).
 *
 * Why these values: the WAL handlers hold a whole segment in memory, hash and
 * decode it (a minute is ample for 16 MiB; the ingest workflow is Express,
 * ended after 5 minutes); snapshot steps parse manifests of up to a million
 * chunk records; replicate copies may run to Lambda's 15-minute limit.
 */
export const STEP_TIMEOUT_SECONDS = {
  // ingest.asl.json
  ValidateFunctionArn: 60,
  PromoteFunctionArn: 60,
  RecordFunctionArn: 20,
  ReplicateFunctionArn: 90,
  QuarantineFunctionArn: 60,
  // snapshot-ingest.asl.json
  ValidateManifestFunctionArn: 5 * 60,
  PromoteChunksFunctionArn: 5 * 60,
  // A batch of 4 packs of 32 MiB (more only past 1,000 batches): seconds each.
  PromotePacksFunctionArn: 5 * 60,
  CheckReferencedFunctionArn: 10 * 60,
  PromoteManifestFunctionArn: 2 * 60,
  RecordSnapshotFunctionArn: 20,
  QuarantineSnapshotFunctionArn: 2 * 60,
  // restore.asl.json
  PlanFunctionArn: 2 * 60,
  ThawFunctionArn: 15 * 60,
  CheckThawFunctionArn: 15 * 60,
  // replicate.asl.json (CopyItem and RecordReplicaFailure also in the ingest workflows)
  FindMissingFunctionArn: 5 * 60,
  CopyItemFunctionArn: 15 * 60,
  RecordReplicaFailureFunctionArn: 20,
  // retention.asl.json
  PlanRetentionFunctionArn: 5 * 60,
  ExecuteRetentionFunctionArn: 15 * 60,
  // verify.asl.json
  SelectCandidatesFunctionArn: 5 * 60,
  RecordResultFunctionArn: 60,
} as const satisfies Record<string, number>;

export type StepPlaceholder = keyof typeof STEP_TIMEOUT_SECONDS;
