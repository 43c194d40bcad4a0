/**
 * Snapshot ingest step 1b — ValidatePages (format-2 manifests only): the
 * pages of a paged manifest, a bounded number per invocation
 * (functions/snapshot/pages.ts validatePages); the workflow calls it again
 * until `progress.done`.
 * Input and output: ValidateManifest's output, { snapshot, batches, progress }.
 * Once done, an unpacked push's new chunks are in work/ batch objects and
 * `batches` lists their bare indexes (at most MAX_BATCHES), `snapshot`
 * their count and prefix; a packed push's pack batches pass through as
 * ValidateManifest made them.
 */
import { z } from "zod";
import { InvalidInputError } from "../../core/errors.js";
import { stepsOf } from "../../core/workflows.js";
import { StoreManifestObjects } from "../../store/manifest-pages.js";
import { StoreWorkObjects } from "../../store/work-objects.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { batchesPrefix, validatedSnapshotSchema, type BatchItem, type ValidatedSnapshot } from "./common.js";
import { pageBudget, pagedProgressSchema, rereadPagedHeader, validatePages, type PagedProgress } from "./pages.js";
import { lambdaHandler } from "../observability.js";

const inputSchema = z.object({ snapshot: validatedSnapshotSchema, batches: z.array(z.unknown()), progress: pagedProgressSchema });

async function handle(input: unknown): Promise<{ snapshot: ValidatedSnapshot; batches: unknown[]; progress: PagedProgress }> {
  const { snapshot, batches, progress } = parseInput(inputSchema, input, "validate pages input");
  if (snapshot.paged === undefined) throw new InvalidInputError(`snapshot ${snapshot.snapshotId}: its manifest is not paged (format 1 is validated whole by ValidateManifest)`);
  const deps = getDeps();
  const header = await rereadPagedHeader(deps, snapshot);
  const prefix = batchesPrefix(snapshot.databaseId, snapshot.snapshotId, snapshot.manifest.sha256);
  const packed = header.packs !== undefined;
  const out = await validatePages(
    {
      pages: new StoreManifestObjects(deps.incoming, deps.incomingBucket),
      work: new StoreWorkObjects(deps.incoming, deps.incomingBucket),
      catalog: deps.catalog,
    },
    header,
    { databaseId: snapshot.databaseId, snapshotId: snapshot.snapshotId, manifestKey: snapshot.incoming.key, manifestSha256: snapshot.manifest.sha256, batchesPrefix: prefix, packed },
    progress as unknown as PagedProgress,
    pageBudget(stepsOf("snapshot-ingest").validatePages.timeoutSeconds),
  );
  if (!out.progress.done || packed) return { snapshot, batches, progress: out.progress };
  const count = out.batchCount ?? 0;
  const items: BatchItem[] = Array.from({ length: count }, (_, index) => ({ index }));
  return {
    snapshot: { ...snapshot, newChunks: header.totals.newChunks, batchCount: count, ...(count > 0 ? { batchesPrefix: prefix } : {}) },
    batches: items,
    progress: out.progress,
  };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
