/**
 * Restore steps 2 and 3 — Thaw and CheckThaw: every object the plan needs
 * (the manifest, the unique chunks it lists, the planned WAL segments) must
 * be readable. An object in GLACIER or DEEP_ARCHIVE that is not restored gets
 * a RestoreObject request (Days 1, tier `tier` from the input, else
 * WALVAULT_THAW_TIER, else Standard); one being restored counts as pending.
 *
 * The plan is a work/ object (store/work-objects.ts; its key and summary
 * are `plan` in the state), its WAL list in pages. A pass over the plan's
 * objects is done in batches of at most THAW_BATCH objects per invocation
 * (WALVAULT_THAW_BATCH overrides it): the manifest, then the WAL segments
 * page by page, then the manifest's unique chunks in key order; where the
 * pass stands is the cursor in the state. So no invocation's work grows
 * with the plan.
 * Input: the whole state { plan: RestorePlanSummary, tier?, thaw?: the
 * previous ThawOutput }: a previous output with `more` continues its pass,
 * anything else starts a new one.
 * Output: ThawOutput: the pass's counts so far, `more` while the pass is not
 * over (the workflow invokes CheckThaw again at once), the cursor, and
 * `waitSeconds` before the next pass (longer for larger passes, so that the
 * polling's history stays within Step Functions' 25,000 events).
 *
 * Both steps run the same idempotent pass: Thaw starts the restores,
 * CheckThaw (after each Wait) counts what is still pending and requests any
 * restore that is missing (e.g. chunks of a manifest that was itself archived
 * at the first pass and could only be read once thawed). On the local stack
 * s3rver has no storage classes: every object is available, pending is 0.
 */
import { forEachLimit } from "../../core/concurrency.js";
import { HeadObjectCommand, RestoreObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { z } from "zod";
import { ChecksumMismatchError, ConfigError, NotFoundError, ServiceUnavailableError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { vaultChunkKey } from "../../core/keys.js";
import { parseManifest } from "../../core/snapshot.js";
import { isNetworkError } from "../../store/aws-errors.js";
import { readRestorePlanHeader, readRestorePlanPage, RESTORE_PLAN_PAGE_SIZE, StoreWorkObjects, type RestorePlanHeader } from "../../store/work-objects.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";

/** Storage classes that must be restored before a GET. */
const ARCHIVED = new Set(["GLACIER", "DEEP_ARCHIVE"]);
const HEAD_CONCURRENCY = 16;
const TIERS = ["Standard", "Bulk"] as const;
type Tier = (typeof TIERS)[number];

/** Objects checked per invocation at most. */
export const THAW_BATCH = 10_000;
/** Seconds between passes: one minute per batch of a pass, within these bounds. */
const MIN_WAIT_SECONDS = 60;
const MAX_WAIT_SECONDS = 3600;

const cursorSchema = z.object({
  phase: z.enum(["wal", "chunks"]),
  /** The next WAL segment (index into the plan's list) or chunk (index into the sorted unique keys). */
  index: z.number().int().nonnegative(),
  /** The manifest was readable at the start of the pass: its chunks are checked in this pass. */
  chunks: z.boolean(),
});
type Cursor = z.infer<typeof cursorSchema>;

const countsSchema = z.object({ pending: z.number().int().nonnegative(), requested: z.number().int().nonnegative(), objects: z.number().int().nonnegative() });

const inputSchema = z
  .object({
    plan: z.object({ planKey: z.string().min(1), databaseId: z.string().min(1) }).passthrough(),
    tier: z.enum(TIERS).optional(),
    thaw: countsSchema.extend({ more: z.boolean(), cursor: cursorSchema.nullable() }).passthrough().optional(),
  })
  .passthrough();

export interface ThawOutput {
  /** Objects of this pass not readable yet (restore requested or in progress); 0 when everything is. */
  pending: number;
  /** RestoreObject requests made in this pass. */
  requested: number;
  /** Objects checked in this pass. */
  objects: number;
  /** The pass is not over: invoke again with this output as `thaw`. */
  more: boolean;
  /** Where the pass goes on; null once it is over. */
  cursor: Cursor | null;
  /** How long to wait before the next pass when objects are pending. */
  waitSeconds: number;
}

type ObjectState = "available" | "restoring" | "archived";

function failure(op: string, key: string, e: unknown): Error {
  const name = (e as { name?: string }).name;
  if (name === "NotFound" || name === "NoSuchKey") return new NotFoundError(`vault object ${key} needed by the restore does not exist (${op})`, { cause: e });
  if (name === "AccessDenied" || name === "Forbidden") return new ConfigError(`S3 denied ${op} on vault object ${key}`, { cause: e });
  const what = isNetworkError(e) ? "cannot reach S3" : `S3 ${op} failed: ${name ?? "error"}`;
  return new ServiceUnavailableError(`${what} for vault object ${key}: ${(e as Error).message}`, { cause: e });
}

async function stateOf(client: S3Client, bucket: string, key: string): Promise<ObjectState> {
  let out;
  try {
    out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (e) {
    throw failure("HeadObject", key, e);
  }
  if (!out.StorageClass || !ARCHIVED.has(out.StorageClass)) return "available";
  // x-amz-restore: absent (never requested), ongoing-request="true", or ongoing-request="false", expiry-date="...".
  if (!out.Restore) return "archived";
  return /ongoing-request="true"/.test(out.Restore) ? "restoring" : "available";
}

async function requestRestore(client: S3Client, bucket: string, key: string, tier: Tier): Promise<void> {
  try {
    await client.send(new RestoreObjectCommand({ Bucket: bucket, Key: key, RestoreRequest: { Days: 1, GlacierJobParameters: { Tier: tier } } }));
  } catch (e) {
    if ((e as { name?: string }).name === "RestoreAlreadyInProgress") return;
    throw failure("RestoreObject", key, e);
  }
}


function s3Client(deps: Deps): S3Client | undefined {
  return deps.vault instanceof S3ObjectStore ? deps.vault.client : undefined;
}

/** Unique chunk keys of the plan's snapshot in key order, from its manifest in the vault (checked against the catalog's SHA-256). */
async function chunkKeys(deps: Deps, plan: RestorePlanHeader): Promise<string[]> {
  const obj = await deps.vault.get(deps.vaultBucket, plan.manifestKey);
  if (!obj) throw new NotFoundError(`manifest ${plan.manifestKey} of snapshot ${plan.snapshot.id} is missing from the vault`);
  const sha = sha256Hex(obj.body);
  if (sha !== plan.manifestSha256) {
    throw new ChecksumMismatchError(`manifest ${plan.manifestKey} is corrupt: SHA-256 ${sha.slice(0, 12)}…, the plan says ${plan.manifestSha256.slice(0, 12)}…`);
  }
  const { manifest } = parseManifest(obj.body, { databaseId: plan.databaseId, snapshotId: plan.snapshot.id });
  const keys = new Set<string>();
  for (const f of manifest.files) if (f.type === "file") for (const c of f.chunks) keys.add(vaultChunkKey(plan.databaseId, c.sha256));
  return [...keys].sort();
}

function batchSize(): number {
  const v = process.env.WALVAULT_THAW_BATCH;
  if (v === undefined || v === "") return THAW_BATCH;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`WALVAULT_THAW_BATCH must be a positive whole number, not '${v}'`);
  return n;
}

async function thawPass(input: unknown): Promise<ThawOutput> {
  const { plan: summary, tier: inputTier, thaw: previous } = parseInput(inputSchema, input, "restore thaw input");
  const deps = getDeps();
  const tier = inputTier ?? parseInput(z.enum(TIERS), process.env.WALVAULT_THAW_TIER ?? "Standard", "WALVAULT_THAW_TIER");
  const client = s3Client(deps);
  const bucket = deps.vaultBucket;
  const work = new StoreWorkObjects(deps.incoming, deps.incomingBucket);
  const plan = await readRestorePlanHeader(work, summary.planKey);
  const continuing = previous?.more === true && previous.cursor !== null ? previous : undefined;
  let { pending, requested, objects } = continuing ?? { pending: 0, requested: 0, objects: 0 };
  const visit = async (key: string): Promise<ObjectState> => {
    objects++;
    if (!client) return "available";
    const state = await stateOf(client, bucket, key);
    if (state === "archived") {
      await requestRestore(client, bucket, key, tier);
      requested++;
    }
    if (state !== "available") pending++;
    return state;
  };
  let budget = batchSize();
  let cursor: Cursor;
  if (continuing?.cursor) {
    cursor = continuing.cursor;
  } else {
    // An archived manifest cannot be read yet: its chunks are listed by a later pass.
    const manifestState = await visit(plan.manifestKey);
    budget--;
    cursor = { phase: "wal", index: 0, chunks: manifestState === "available" };
  }
  let chunks: string[] | undefined;
  let over = false;
  while (budget > 0 && !over) {
    if (cursor.phase === "wal") {
      if (cursor.index >= plan.walCount) {
        cursor = { ...cursor, phase: "chunks", index: 0 };
        continue;
      }
      const page = Math.floor(cursor.index / RESTORE_PLAN_PAGE_SIZE);
      const from = cursor.index % RESTORE_PLAN_PAGE_SIZE;
      const keys = (await readRestorePlanPage(work, summary.planKey, page)).slice(from, from + budget).map((w) => w.key);
      if (keys.length === 0) throw new ConfigError(`restore plan ${summary.planKey}: page ${page} ends before segment ${cursor.index} of ${plan.walCount}`);
      await forEachLimit(keys, HEAD_CONCURRENCY, async (k) => void (await visit(k)));
      cursor = { ...cursor, index: cursor.index + keys.length };
      budget -= keys.length;
    } else {
      if (!cursor.chunks) {
        over = true;
        break;
      }
      chunks ??= await chunkKeys(deps, plan);
      const keys = chunks.slice(cursor.index, cursor.index + budget);
      if (keys.length === 0) {
        over = true;
        break;
      }
      await forEachLimit(keys, HEAD_CONCURRENCY, async (k) => void (await visit(k)));
      cursor = { ...cursor, index: cursor.index + keys.length };
      budget -= keys.length;
    }
  }
  // The budget ran out exactly at the end: the next call finds nothing left and ends the pass.
  const batches = Math.max(1, Math.ceil(objects / batchSize()));
  const waitSeconds = Math.min(MAX_WAIT_SECONDS, Math.max(MIN_WAIT_SECONDS, batches * 60));
  return { pending, requested, objects, more: !over, cursor: over ? null : cursor, waitSeconds };
}

/** Thaw: request restores of every archived object the plan needs. */
export const handler = (input: unknown): Promise<ThawOutput> => thawPass(input);

/** CheckThaw: count what is still being restored (requesting any restore still missing). */
export const checkHandler = (input: unknown): Promise<ThawOutput> => thawPass(input);
