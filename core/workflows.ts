/**
 * Every workflow, declared once: its ASL file, its kind (Express or
 * Standard), what starts it, and its Lambda steps with their handler module,
 * memory and timeout. The CDK app (infra/) deploys each step's function from
 * here, and the local stack (local/stack.ts) runs the same handler modules
 * under the same memory and timeout (local/lambda-pool.ts), so a step that
 * would run out of time or memory in AWS fails locally too, with the limit
 * named. Adding a workflow or a step is an edit here, an ASL file and a
 * handler module.
 *
 * Pure data: module paths are strings relative to the repository root,
 * without extension (functions/ingest/validate -> functions/ingest/validate.ts
 * in the sources, dist/functions/ingest/validate.js once built).
 *
 * Why these sizes (memory also buys CPU in Lambda, ~1 vCPU at 1,769 MiB):
 * - the WAL handlers hold a whole segment (16 MiB by default), hash and decode
 *   it: a minute is ample; the ingest workflow is Express (ended after 5
 *   minutes);
 * - snapshot steps read manifests of up to a million chunk records (~136 MB
 *   of JSON, ~800 MB of heap) and promote batches of chunks or packs;
 * - replicate copies may run to Lambda's 15-minute limit, bounded per call
 *   by their own budget (functions/replicate/copy-item.ts);
 * - retention and verification walk the registry a page at a time.
 */

import { INCOMING_PREFIX as INCOMING } from "./keys.js";

/** One Lambda step of a workflow. */
export interface StepDefinition {
  /** The `${...}` placeholder the ASL's Task states name the function by. */
  readonly placeholder: string;
  /** Handler module, relative to the repository root, without extension. */
  readonly module: string;
  /** The module's exported handler function. */
  readonly handler: string;
  /** Lambda memory (MiB): also the local stack's memory limit for the step. */
  readonly memoryMiB: number;
  /** Lambda timeout (seconds). */
  readonly timeoutSeconds: number;
  /** The deployed function's description. */
  readonly description: string;
  /**
   * The shared function (SHARED_FUNCTIONS) this step runs in, with the steps
   * its chain runs next to it; absent: a function of its own. A shared step's
   * module and memory are the shared function's, its timeout is its own: its
   * Task state's `TimeoutSeconds` (the function's timeout is the longest of
   * its steps'), and the Task passes `"step": "<step name>"` beside the input
   * (functions/observability.ts chainHandler dispatches on it).
   */
  readonly fn?: SharedFunctionName;
}

/**
 * Lambda functions several steps of one workflow share, so that a chain of
 * steps run one after the other meets one cold sandbox, not one per step
 * (docs/decisions.md "One cold start per snapshot ingest, not five").
 * Memory is the largest its steps need; the timeout, the longest of theirs.
 */
export const SHARED_FUNCTIONS = {
  SnapshotIngestChain: {
    module: "functions/snapshot/chain",
    memoryMiB: 2048,
    timeoutSeconds: 10 * 60,
    description: "walvault snapshot ingest: validate a manifest and its pages, check its references, promote and record it (one function for the chain)",
  },
} as const satisfies Record<string, { module: string; memoryMiB: number; timeoutSeconds: number; description: string }>;

export type SharedFunctionName = keyof typeof SHARED_FUNCTIONS;

/** What one deployed Lambda function runs: a step's own, or a shared function (SHARED_FUNCTIONS). */
export interface FunctionDefinition {
  /** The function's key: the step's placeholder, or the shared function's name. */
  readonly key: string;
  readonly module: string;
  readonly handler: string;
  readonly memoryMiB: number;
  readonly timeoutSeconds: number;
  readonly description: string;
}

/** The function a step is deployed as (infra/) and runs in (local/lambda-pool.ts). */
export function functionOf(step: StepDefinition): FunctionDefinition {
  if (step.fn === undefined) {
    return { key: step.placeholder, module: step.module, handler: step.handler, memoryMiB: step.memoryMiB, timeoutSeconds: step.timeoutSeconds, description: step.description };
  }
  const f = SHARED_FUNCTIONS[step.fn];
  return { key: step.fn, module: f.module, handler: "handler", memoryMiB: f.memoryMiB, timeoutSeconds: f.timeoutSeconds, description: f.description };
}

export type WorkflowTrigger =
  /** An Object Created event in the incoming bucket whose key matches (EventBridge wildcard: `*` matches any run, '/' included). */
  | { readonly kind: "upload"; readonly keyPattern: string }
  /** An EventBridge schedule (configured per deployment), and on demand. */
  | { readonly kind: "schedule" }
  /** Started from the console or the CLI only. */
  | { readonly kind: "on-demand" };

export interface WorkflowDefinition {
  /** File name under statemachines/. */
  readonly asl: string;
  /** Express (per-execution price, 5-minute limit, no history quota) or Standard (25,000 history events). */
  readonly type: "EXPRESS" | "STANDARD";
  readonly trigger: WorkflowTrigger;
  /** The steps this workflow deploys, by step name. */
  readonly steps: Readonly<Record<string, StepDefinition>>;
  /** Placeholders of other workflows' steps its ASL also calls (their functions are deployed once, by their owner). */
  readonly borrows: readonly string[];
}


const step = (placeholder: string, module: string, memoryMiB: number, timeoutSeconds: number, description: string, handler = "handler"): StepDefinition => ({
  placeholder,
  module,
  handler,
  memoryMiB,
  timeoutSeconds,
  description,
});

/** A step of shared function `fn`: its module and memory are the function's, its timeout its own (its Task's TimeoutSeconds). */
const sharedStep = (fn: SharedFunctionName, placeholder: string, timeoutSeconds: number, description: string): StepDefinition => ({
  placeholder,
  module: SHARED_FUNCTIONS[fn].module,
  handler: "handler",
  memoryMiB: SHARED_FUNCTIONS[fn].memoryMiB,
  timeoutSeconds,
  description,
  fn,
});

export const WORKFLOW_DEFINITIONS = {
  ingest: {
    asl: "ingest.asl.json",
    type: "EXPRESS",
    trigger: { kind: "upload", keyPattern: `${INCOMING}*/wal/*` },
    steps: {
      validate: step("ValidateFunctionArn", "functions/ingest/validate", 1024, 60, "walvault ingest: verify an uploaded WAL file"),
      promote: step("PromoteFunctionArn", "functions/ingest/promote", 1024, 60, "walvault ingest: put verified WAL bytes into the vault"),
      record: step("RecordFunctionArn", "functions/ingest/record", 256, 20, "walvault ingest: record a WAL file in the catalog"),
      replicate: step("ReplicateFunctionArn", "functions/ingest/replicate", 1024, 90, "walvault ingest: copy a WAL file to one replica vault"),
      quarantine: step("QuarantineFunctionArn", "functions/ingest/quarantine", 1024, 60, "walvault ingest: keep a rejected upload and record why"),
    },
    borrows: ["RecordReplicaFailureFunctionArn"],
  },
  // Direct WAL (docs/wal.md): the agent wrote the segment into the vault itself and starts this; one step
  // validates and records it (the same checks and catalog write as ingest's Validate and Record), then replicate.
  "wal-record": {
    asl: "wal-record.asl.json",
    type: "EXPRESS",
    trigger: { kind: "on-demand" },
    steps: {
      // 512 MiB: one segment stored + decoded (<= 32 MiB) over Node's ~80 MiB; the step mostly waits on one GET and three
      // catalog calls, and Lambda bills that wait by memory (decode + SHA-256 of 16 MiB is ~40 ms of a vCPU: 512 MiB gets 0.29 of one).
      validateRecord: step("ValidateRecordFunctionArn", "functions/ingest/validate-record", 512, 60, "walvault wal-record: verify a WAL file the agent wrote to the vault and record it"),
      quarantine: step("QuarantineDirectFunctionArn", "functions/ingest/validate-record", 256, 20, "walvault wal-record: record why a directly written WAL file was rejected", "quarantineHandler"),
    },
    borrows: ["ReplicateFunctionArn", "RecordReplicaFailureFunctionArn"],
  },
  "snapshot-ingest": {
    asl: "snapshot-ingest.asl.json",
    // Standard: a large snapshot's Map over batches can run longer than Express's 5 minutes.
    type: "STANDARD",
    trigger: { kind: "upload", keyPattern: `${INCOMING}*/snapshots/*/manifest.json` },
    steps: {
      validateManifest: sharedStep("SnapshotIngestChain", "ValidateManifestFunctionArn", 5 * 60, "walvault snapshot ingest: validate a manifest and batch its new chunks"),
      // Format-2 manifests: a bounded number of pages per invocation (functions/snapshot/pages.ts), called again until done.
      validatePages: sharedStep("SnapshotIngestChain", "ValidatePagesFunctionArn", 5 * 60, "walvault snapshot ingest: validate a paged manifest's pages and batch their new chunks"),
      promoteChunks: step("PromoteChunksFunctionArn", "functions/snapshot/promote-chunks", 1024, 5 * 60, "walvault snapshot ingest: verify and promote one batch of chunks"),
      // One pack at a time: at most MAX_INGEST_PACK_BYTES (256 MiB; the agent writes 32 MiB) and 4 decoded chunks; a batch is 4 packs.
      promotePacks: step("PromotePacksFunctionArn", "functions/snapshot/promote-packs", 1024, 5 * 60, "walvault snapshot ingest: verify and promote one batch of packs"),
      checkReferenced: sharedStep("SnapshotIngestChain", "CheckReferencedFunctionArn", 10 * 60, "walvault snapshot ingest: check that every referenced chunk is in the vault"),
      promoteManifest: sharedStep("SnapshotIngestChain", "PromoteManifestFunctionArn", 2 * 60, "walvault snapshot ingest: put a validated manifest into the vault"),
      recordSnapshot: sharedStep("SnapshotIngestChain", "RecordSnapshotFunctionArn", 20, "walvault snapshot ingest: record a snapshot in the catalog"),
      quarantineSnapshot: step("QuarantineSnapshotFunctionArn", "functions/snapshot/quarantine", 2048, 2 * 60, "walvault snapshot ingest: keep a rejected manifest and record why"),
    },
    borrows: ["CopyItemFunctionArn", "RecordReplicaFailureFunctionArn"],
  },
  // Packed pushes (docs/packs.md "Promoted as they land"): each pack is verified, put into the vault and recorded
  // as soon as its upload lands, while the agent is still reading and uploading the rest, by snapshot ingest's
  // own PromotePacks function; the manifest's ingest then skips the packs already recorded. Express: one pack
  // (at most MAX_INGEST_PACK_BYTES) is seconds of work, and a failure here costs nothing but time: the
  // manifest's ingest verifies an unpromoted pack itself and quarantines the snapshot with the reason.
  "pack-ingest": {
    asl: "pack-ingest.asl.json",
    type: "EXPRESS",
    trigger: { kind: "upload", keyPattern: `${INCOMING}*/packs/*` },
    steps: {},
    borrows: ["PromotePacksFunctionArn"],
  },
  restore: {
    asl: "restore.asl.json",
    type: "STANDARD",
    trigger: { kind: "on-demand" },
    steps: {
      plan: step("PlanFunctionArn", "functions/restore/plan", 1024, 2 * 60, "walvault restore: plan a snapshot and WAL to a recovery target"),
      thaw: step("ThawFunctionArn", "functions/restore/thaw", 1024, 15 * 60, "walvault restore: request restores of archived objects a plan needs"),
      checkThaw: step("CheckThawFunctionArn", "functions/restore/thaw", 1024, 15 * 60, "walvault restore: count archived objects still being restored", "checkHandler"),
    },
    borrows: [],
  },
  replicate: {
    asl: "replicate.asl.json",
    type: "STANDARD",
    trigger: { kind: "on-demand" },
    steps: {
      findMissing: step("FindMissingFunctionArn", "functions/replicate/find-missing", 1024, 5 * 60, "walvault replicate: find what a replica region lacks, from the catalog"),
      copyItem: step("CopyItemFunctionArn", "functions/replicate/copy-item", 2048, 15 * 60, "walvault replicate: copy one WAL file or snapshot to a replica vault and prove it"),
      recordFailure: step("RecordReplicaFailureFunctionArn", "functions/replicate/record-failure", 256, 20, "walvault replicate: record a failed copy to a replica region"),
    },
    borrows: [],
  },
  verify: {
    asl: "verify.asl.json",
    type: "STANDARD",
    trigger: { kind: "schedule" },
    steps: {
      selectCandidates: step("SelectCandidatesFunctionArn", "functions/verify/select", 1024, 5 * 60, "walvault verify: select the snapshots this run verifies"),
      recordResult: step("RecordResultFunctionArn", "functions/verify/record-result", 512, 60, "walvault verify: record a verification result, emit its metric"),
    },
    borrows: [],
  },
  retention: {
    asl: "retention.asl.json",
    type: "STANDARD",
    trigger: { kind: "schedule" },
    steps: {
      plan: step("PlanRetentionFunctionArn", "functions/retention/plan", 1024, 5 * 60, "walvault retention: plan what each database keeps and deletes"),
      execute: step("ExecuteRetentionFunctionArn", "functions/retention/execute", 2048, 15 * 60, "walvault retention: delete one round of a database's plan in every region, sweep chunks and packs, repack, audit"),
    },
    borrows: [],
  },
  // The archive lag (RPO) of every database as a metric, every minute (core/rpo.ts, infra/rpo-watch.ts). Express:
  // a page of 200 databases per invocation, seconds each, runs every minute (Standard would bill every state).
  "rpo-watch": {
    asl: "rpo-watch.asl.json",
    type: "EXPRESS",
    trigger: { kind: "schedule" },
    steps: {
      measure: step("MeasureRpoFunctionArn", "functions/rpo/measure", 256, 60, "walvault rpo-watch: each database's archive lag against its RPO, as metrics"),
    },
    borrows: [],
  },
} as const satisfies Record<string, WorkflowDefinition>;

export type WorkflowId = keyof typeof WORKFLOW_DEFINITIONS;
export const WORKFLOW_IDS = Object.keys(WORKFLOW_DEFINITIONS) as WorkflowId[];

/** The names of the steps a workflow deploys. */
export type StepName<W extends WorkflowId> = keyof (typeof WORKFLOW_DEFINITIONS)[W]["steps"] & string;

/** The step names a workflow deploys, in declaration order. */
export function stepNames<W extends WorkflowId>(workflow: W): Array<StepName<W>> {
  return Object.keys(WORKFLOW_DEFINITIONS[workflow].steps) as Array<StepName<W>>;
}

/** One workflow's step definitions by step name. */
export function stepsOf<W extends WorkflowId>(workflow: W): Record<StepName<W>, StepDefinition> {
  return WORKFLOW_DEFINITIONS[workflow].steps as unknown as Record<StepName<W>, StepDefinition>;
}

/** Every step of every workflow by its ASL placeholder (each placeholder is deployed once). */
export const STEPS_BY_PLACEHOLDER: ReadonlyMap<string, StepDefinition & { workflow: WorkflowId; name: string }> = new Map(
  WORKFLOW_IDS.flatMap((w) =>
    Object.entries(WORKFLOW_DEFINITIONS[w].steps as Record<string, StepDefinition>).map(([name, s]) => [s.placeholder, { ...s, workflow: w, name }] as const),
  ),
);

/** The placeholders a workflow's ASL calls: its own steps, then those it borrows. */
export function placeholdersOf(workflow: WorkflowId): string[] {
  const w: WorkflowDefinition = WORKFLOW_DEFINITIONS[workflow];
  return [...Object.values(w.steps).map((s) => s.placeholder), ...w.borrows];
}

/**
 * How a step's handler module is bundled for Lambda (esbuild, one ESM file
 * with the SDK the lockfile pins): infra/handler-function.ts passes these to
 * NodejsFunction, and `npm run build` bundles every step the same way for the
 * local stack (local/bundle-handlers.ts), so the local sandboxes run the code
 * CDK deploys, not the module graph tsc leaves in dist/.
 */
export const HANDLER_BUNDLE = {
  format: "esm",
  target: "node22",
  mainFields: ["module", "main"],
  /** ESM has no `require`: the CommonJS parts of the SDK get one. */
  banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);",
  minify: true,
  // Not kept: esbuild's keepNames re-names every function of the bundle (the
  // SDK's thousands) as the module loads, ~25 ms of every cold start. The
  // names that matter, the errors' (Step Functions' Retry and Catch match
  // them), are written out in core/errors.ts ERROR_CLASSES.
  keepNames: false,
  sourceMap: true,
} as const;

/** The names of the steps that run in shared function `fn`, across every workflow. */
export function stepsOfShared(fn: SharedFunctionName): string[] {
  return [...STEPS_BY_PLACEHOLDER.values()].filter((s) => s.fn === fn).map((s) => s.name);
}

/** Where `npm run build` puts a step's bundle, relative to the repository root. */
export function bundleOf(def: Pick<StepDefinition, "module">): string {
  return `dist/bundles/${def.module}.mjs`;
}
