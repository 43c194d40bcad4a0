/**
 * Restore steps 2 and 3 — Thaw and CheckThaw: every object the plan needs
 * (the manifest, the unique chunks it lists, the planned WAL segments) must
 * be readable. An object in GLACIER or DEEP_ARCHIVE that is not restored gets
 * a RestoreObject request (Days 1, tier `tier` from the input, else
 * WALVAULT_THAW_TIER, else Standard); one being restored counts as pending.
 * Input: { plan: RestorePlanOutput, tier?: "Standard" | "Bulk" }.
 * Output: { pending, requested, objects }: counts only (the lists are
 * re-derived from the manifest on every call, keeping the state small).
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
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { getDeps, type Deps } from "../deps.js";
import { parseInput } from "../parse.js";

/** Storage classes that must be restored before a GET. */
const ARCHIVED = new Set(["GLACIER", "DEEP_ARCHIVE"]);
const HEAD_CONCURRENCY = 16;
const TIERS = ["Standard", "Bulk"] as const;
type Tier = (typeof TIERS)[number];

const inputSchema = z
  .object({
    plan: z
      .object({
        databaseId: z.string().min(1),
        snapshot: z.object({ id: z.string().min(1) }).passthrough(),
        manifestKey: z.string().min(1),
        manifestSha256: z.string().min(1),
        wal: z.array(z.object({ key: z.string().min(1) }).passthrough()),
      })
      .passthrough(),
    tier: z.enum(TIERS).optional(),
  })
  .passthrough();

export interface ThawOutput {
  /** Objects not readable yet (restore requested or in progress); 0 when everything is. */
  pending: number;
  /** RestoreObject requests made by this call. */
  requested: number;
  /** Objects checked by this call. */
  objects: number;
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

/** Unique chunk keys of the plan's snapshot, from its manifest in the vault (checked against the catalog's SHA-256). */
async function chunkKeys(deps: Deps, plan: z.infer<typeof inputSchema>["plan"]): Promise<string[]> {
  const obj = await deps.vault.get(deps.vaultBucket, plan.manifestKey);
  if (!obj) throw new NotFoundError(`manifest ${plan.manifestKey} of snapshot ${plan.snapshot.id} is missing from the vault`);
  const sha = sha256Hex(obj.body);
  if (sha !== plan.manifestSha256) {
    throw new ChecksumMismatchError(`manifest ${plan.manifestKey} is corrupt: SHA-256 ${sha.slice(0, 12)}…, the plan says ${plan.manifestSha256.slice(0, 12)}…`);
  }
  const { manifest } = parseManifest(obj.body, { databaseId: plan.databaseId, snapshotId: plan.snapshot.id });
  const keys = new Set<string>();
  for (const f of manifest.files) if (f.type === "file") for (const c of f.chunks) keys.add(vaultChunkKey(plan.databaseId, c.sha256));
  return [...keys];
}

async function thawPass(input: unknown): Promise<ThawOutput> {
  const { plan, tier: inputTier } = parseInput(inputSchema, input, "restore thaw input");
  const deps = getDeps();
  const tier = inputTier ?? parseInput(z.enum(TIERS), process.env.WALVAULT_THAW_TIER ?? "Standard", "WALVAULT_THAW_TIER");
  const client = s3Client(deps);
  const bucket = deps.vaultBucket;
  let pending = 0;
  let requested = 0;
  let objects = 0;
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
  const manifestState = await visit(plan.manifestKey);
  // An archived manifest cannot be read yet: its chunks are listed by a later CheckThaw.
  const keys = [...plan.wal.map((w) => w.key), ...(manifestState === "available" ? await chunkKeys(deps, plan) : [])];
  await forEachLimit(keys, HEAD_CONCURRENCY, async (k) => void (await visit(k)));
  return { pending, requested, objects };
}

/** Thaw: request restores of every archived object the plan needs. */
export const handler = (input: unknown): Promise<ThawOutput> => thawPass(input);

/** CheckThaw: count what is still being restored (requesting any restore still missing). */
export const checkHandler = (input: unknown): Promise<ThawOutput> => thawPass(input);
