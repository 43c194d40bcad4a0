/**
 * Snapshot ingest's chain in one function (core/workflows.ts
 * SHARED_FUNCTIONS.SnapshotIngestChain): ValidateManifest, ValidatePages,
 * CheckReferenced, PromoteManifest and RecordSnapshot run one after the
 * other, so one sandbox serves them all and a snapshot meets one cold start
 * instead of five (docs/decisions.md "One cold start per snapshot ingest,
 * not five"). Each Task passes `"step"`; each step keeps its own module,
 * input schema and timeout.
 */
import { stepsOfShared } from "../../core/workflows.js";
import { chainHandler } from "../observability.js";
import { handler as checkReferenced } from "./check-referenced.js";
import { handler as promoteManifest } from "./promote-manifest.js";
import { handler as recordSnapshot } from "./record-snapshot.js";
import { handler as validateManifest } from "./validate-manifest.js";
import { handler as validatePages } from "./validate-pages.js";

export const handler = chainHandler("SnapshotIngestChain", stepsOfShared("SnapshotIngestChain"), {
  validateManifest,
  validatePages,
  checkReferenced,
  promoteManifest,
  recordSnapshot,
});
