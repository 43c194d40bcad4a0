/**
 * Restore steps 2 and 3 — Thaw and CheckThaw: every object the plan needs
 * (the manifest, the planned WAL segments, the vault objects holding the
 * manifest's chunks: packs, or chunk objects from before packs) must be
 * readable. An object in GLACIER or DEEP_ARCHIVE that is not restored gets a
 * restore request (ObjectStore.requestRestore: Days 1, tier `tier` from the
 * input, else WALVAULT_THAW_TIER, else Standard); one being restored counts
 * as pending. Only the ObjectStore (deps.vault), the catalog and work/
 * objects are used: no S3 call of its own.
 *
 * The workflow runs these steps only when the restore thaws: input
 * `"thaw": true`, or no `thaw` and WALVAULT_THAW resolving on
 * (core/thaw.ts; "auto" is off while the vault lifecycle has no GLACIER or
 * DEEP_ARCHIVE transition, which is today's default).
 *
 * The plan is a work/ object (store/work-objects.ts; its key and summary
 * are `plan` in the state), its WAL list in pages. A pass over the plan's
 * objects is done in batches of at most THAW_BATCH entries per invocation
 * (WALVAULT_THAW_BATCH overrides it): the manifest, then the WAL segments
 * page by page, then the manifest's unique chunks in the order they first
 * appear in it; where the pass stands is the cursor in the state. The chunks
 * are walked in windows (a window: the rest of the invocation's budget,
 * within one page of the chunk list): each window's hashes are resolved with
 * Catalog.getChunks (LOCATE_BATCH at a time) to their distinct vault keys
 * (the pack key, or the chunk's own key when it has no record or was stored
 * before packs), and only those keys are headed — once per window. A pack
 * whose chunks fall in two windows is headed (and, while it is pending,
 * counted) once in each: requesting its restore twice is harmless
 * (idempotent), and it costs a HEAD. Manifest order, not hash order, keeps
 * that rare: the agent fills one pack at a time in the order it reads the
 * files (agent/snapshot-push.ts), so a window's chunks sit in a run of
 * consecutive packs and only the packs at window edges are headed twice
 * (in hash order every window would name nearly every pack).
 *
 * A chunk whose reference names its pack (format 2: a new chunk's `pack`, a
 * reused one's `reusedPack`) and whose pack is recorded is listed as that
 * pack (`pack:<name>`), once per list page, and that pack's key is headed
 * with no chunk record read: the restore reads such a chunk from that pack
 * (store/pack-index.ts, agent/restore.ts), so that is the object to thaw.
 * Only the other chunks (no name, or a pack no longer recorded: its chunks
 * moved, their records say where) are resolved through the catalog. For a
 * 100 GB snapshot that is ~3,200 pack entries instead of ~819,000 chunk
 * records read per pass. (A name the pack's index contradicts sends the
 * restore to the chunk's record; its index cannot be read before the pack is
 * thawed, so thaw trusts the name, as the restore does first.)
 *
 * The chunk list: the manifest is read (and checked against the plan's
 * SHA-256) once per pass, at the start of its chunk phase — a format-2
 * manifest's page objects are visited first (thawed like every other
 * object; while one is not readable its chunks wait for a later pass) and
 * read one at a time — and its chunk hashes (manifest order, distinct within
 * a list page) written to work/ objects next to the plan
 * (thaw-chunks-NNNNNN.json, CHUNK_PAGE_SIZE hashes each); later invocations
 * of the pass read only the page they are in. So no invocation but the one
 * that lists holds more than a page of the list, and the state holds only
 * the cursor: an index and the list's length.
 *
 * Input: the whole state { plan: RestorePlanSummary, tier?, thaw?: the
 * execution input's flag (a boolean) or the previous ThawOutput }: a
 * previous output with `more` continues its pass, anything else starts a
 * new one.
 * Output: ThawOutput: the pass's counts so far, `more` while the pass is not
 * over (the workflow invokes CheckThaw again at once), the cursor, and
 * `waitSeconds` before the next pass (longer for larger passes, so that the
 * polling's history stays within Step Functions' 25,000 events).
 *
 * Both steps run the same idempotent pass: Thaw starts the restores,
 * CheckThaw (after each Wait) counts what is still pending and requests any
 * restore that is missing (e.g. the chunks' packs of a manifest that was
 * itself archived at the first pass and could only be read once thawed). On
 * the local stack s3rver has no storage classes: every object is available,
 * pending is 0.
 */
import { z } from "zod";
import { mapLimit } from "../../core/concurrency.js";
import { ConfigError, NotFoundError } from "../../core/errors.js";
import { vaultChunkKey, vaultPackKey } from "../../core/keys.js";
import { namedPackOf } from "../../core/snapshot.js";
import { THAW_TIERS } from "../../core/restore-workflow.js";
import type { Catalog } from "../../store/catalog.js";
import type { OpenedManifest } from "../../store/manifest-pages.js";
import { openVaultManifest, pageKeysOf } from "../../store/manifest-read.js";
import { isReadable, type ObjectStore } from "../../store/object-store.js";
import { readRestorePlanHeader, readRestorePlanPage, RESTORE_PLAN_PAGE_SIZE, StoreWorkObjects, type RestorePlanHeader, type WorkObjects } from "../../store/work-objects.js";
import { getDeps } from "../deps.js";
import { lambdaHandler } from "../observability.js";
import { parseInput } from "../parse.js";

const HEAD_CONCURRENCY = 16;
/** Hashes per Catalog.getChunks call (the catalog batches them by 100 inside), as agent/chunk-reader.ts asks. */
export const LOCATE_BATCH = 1000;
/** Chunk hashes per page of a pass's chunk list (~67 bytes each in JSON: a page is ~670 KB). */
export const CHUNK_PAGE_SIZE = 10_000;

/** Entries (WAL segments, chunks; the manifest counts one) walked per invocation at most. */
export const THAW_BATCH = 10_000;
/** Seconds between passes: one minute per batch of a pass, within these bounds. */
const MIN_WAIT_SECONDS = 60;
const MAX_WAIT_SECONDS = 3600;

const cursorSchema = z.object({
  phase: z.enum(["wal", "chunks"]),
  /** The next WAL segment (index into the plan's list) or chunk (index into the pass's list of unique hashes). */
  index: z.number().int().nonnegative(),
  /** The manifest was readable at the start of the pass: its chunks are checked in this pass. */
  chunks: z.boolean(),
  /** Unique chunks in the pass's chunk list, once it is written (thawChunkPageKey). */
  listed: z.number().int().nonnegative().optional(),
});
type Cursor = z.infer<typeof cursorSchema>;

const countsSchema = z.object({ pending: z.number().int().nonnegative(), requested: z.number().int().nonnegative(), objects: z.number().int().nonnegative() });
const previousSchema = countsSchema.extend({ more: z.boolean(), cursor: cursorSchema.nullable() }).passthrough();

const inputSchema = z
  .object({
    plan: z.object({ planKey: z.string().min(1), databaseId: z.string().min(1) }).passthrough(),
    tier: z.enum(THAW_TIERS).optional(),
    /** The execution input's flag (the workflow only gets here when thawing), or the previous output. */
    thaw: z.union([z.boolean(), previousSchema]).optional(),
  })
  .passthrough();

const chunkPageSchema = z.object({ chunks: z.array(z.string()) });

export interface ThawOutput {
  /** Objects of this pass not readable yet (restore requested or in progress); 0 when everything is. */
  pending: number;
  /** Restore requests made in this pass. */
  requested: number;
  /** Objects headed in this pass (a pack once per window that needs it). */
  objects: number;
  /** The pass is not over: invoke again with this output as `thaw`. */
  more: boolean;
  /** Where the pass goes on; null once it is over. */
  cursor: Cursor | null;
  /** How long to wait before the next pass when objects are pending. */
  waitSeconds: number;
}

/** What a pass needs: the vault (only through the ObjectStore), the catalog's chunk records, the work/ objects. */
export interface ThawDeps {
  vault: ObjectStore;
  vaultBucket: string;
  catalog: Pick<Catalog, "getChunks" | "getPacks">;
  work: WorkObjects;
}

export interface ThawOptions {
  /** Entries per invocation (default WALVAULT_THAW_BATCH, else THAW_BATCH). */
  batch?: number;
  /** Retrieval tier when the input names none (default WALVAULT_THAW_TIER, else Standard). */
  tier?: (typeof THAW_TIERS)[number];
  /** Hashes per page of the chunk list (default CHUNK_PAGE_SIZE; tests cross pages with small ones). */
  chunkPageSize?: number;
}

/** The key of page `page` of the chunk list of the plan whose header is `planKey`. */
export function thawChunkPageKey(planKey: string, page: number): string {
  return `${planKey.replace(/plan\.json$/, "")}thaw-chunks-${String(page).padStart(6, "0")}.json`;
}

/** The plan's manifest, opened (store/manifest-read.ts: its bytes checked against the plan's SHA-256). */
function openPlanManifest(deps: ThawDeps, plan: RestorePlanHeader): Promise<OpenedManifest> {
  return openVaultManifest(deps.vault, deps.vaultBucket, { databaseId: plan.databaseId, snapshotId: plan.snapshot.id, manifestKey: plan.manifestKey, manifestSha256: plan.manifestSha256 });
}

/** A chunk list entry that stands for a whole pack. */
const PACK_ENTRY = "pack:";

/**
 * Writes the chunk list in pages, in manifest order; returns how many
 * entries. An entry is a chunk hash, or `pack:<name>` for the chunks whose
 * references name a pack that is recorded (checked per list page, one
 * getPacks call). Read one manifest page at a time (format 2), a chunk is
 * left out when it is already on the list page being filled (its first
 * reference decides), and a pack once per list page (so memory is one
 * manifest page and one list page; a chunk or pack on two list pages is
 * listed twice, and visiting it twice is harmless).
 */
async function writeChunkList(deps: ThawDeps, planKey: string, manifest: OpenedManifest, pageSize: number, databaseId: string): Promise<number> {
  let listed = 0;
  let page = 0;
  let hashes = new Set<string>();
  /** This list page's named chunks, by pack name. */
  let named = new Map<string, string[]>();
  const flush = async (): Promise<void> => {
    const recorded = new Set(named.size === 0 ? [] : (await deps.catalog.getPacks(databaseId, [...named.keys()])).map((p) => p.name));
    const entries: string[] = [...hashes];
    for (const [name, chunks] of named) {
      if (recorded.has(name)) entries.push(`${PACK_ENTRY}${name}`);
      else entries.push(...chunks);
    }
    await deps.work.put(thawChunkPageKey(planKey, page++), { chunks: entries });
    listed += entries.length;
    hashes = new Set();
    named = new Map();
  };
  const seen = new Set<string>();
  for await (const e of manifest.entries()) {
    if (e.type !== "file") continue;
    for (const c of e.chunks) {
      if (seen.has(c.sha256)) continue;
      seen.add(c.sha256);
      const pack = namedPackOf(c, manifest.header);
      if (pack === undefined) hashes.add(c.sha256);
      else {
        const list = named.get(pack);
        if (list) list.push(c.sha256);
        else named.set(pack, [c.sha256]);
      }
      if (seen.size >= pageSize) {
        await flush();
        seen.clear();
      }
    }
  }
  if (seen.size > 0) await flush();
  return listed;
}

async function readChunkPage(work: WorkObjects, planKey: string, page: number): Promise<string[]> {
  const key = thawChunkPageKey(planKey, page);
  const v = await work.get(key);
  if (v === undefined) throw new NotFoundError(`thaw chunk list page ${key} is gone (work/ objects expire a day after they are written): start the restore workflow again`);
  const r = chunkPageSchema.safeParse(v);
  if (!r.success) throw new ConfigError(`work object ${key} is not a thaw chunk list page`);
  return r.data.chunks;
}

/** The distinct vault objects holding these chunks: a pack's key, or the chunk's own key (no record, or stored before packs). */
async function vaultKeysOf(catalog: Pick<Catalog, "getChunks">, databaseId: string, hashes: readonly string[]): Promise<string[]> {
  const keys = new Set<string>();
  for (let i = 0; i < hashes.length; i += LOCATE_BATCH) {
    const batch = hashes.slice(i, i + LOCATE_BATCH);
    const found = new Set<string>();
    for (const r of await catalog.getChunks(databaseId, batch)) {
      found.add(r.sha256);
      keys.add(r.vaultKey);
    }
    for (const h of batch) if (!found.has(h)) keys.add(vaultChunkKey(databaseId, h));
  }
  return [...keys];
}

function batchFromEnv(): number {
  const v = process.env.WALVAULT_THAW_BATCH;
  if (v === undefined || v === "") return THAW_BATCH;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`WALVAULT_THAW_BATCH must be a positive whole number, not '${v}'`);
  return n;
}

/** One invocation of a pass (see the file comment). */
export async function thawPass(deps: ThawDeps, input: unknown, options: ThawOptions = {}): Promise<ThawOutput> {
  const { plan: summary, tier: inputTier, thaw: previous } = parseInput(inputSchema, input, "restore thaw input");
  const batch = options.batch ?? batchFromEnv();
  const pageSize = options.chunkPageSize ?? CHUNK_PAGE_SIZE;
  const tier = inputTier ?? options.tier ?? parseInput(z.enum(THAW_TIERS), process.env.WALVAULT_THAW_TIER ?? "Standard", "WALVAULT_THAW_TIER");
  const { vault, vaultBucket: bucket, work } = deps;
  const plan = await readRestorePlanHeader(work, summary.planKey);
  const continuing = typeof previous === "object" && previous.more && previous.cursor !== null ? previous : undefined;
  let { pending, requested, objects } = continuing ?? { pending: 0, requested: 0, objects: 0 };
  /** Heads `key`; requests its restore when it is archived and none was asked for. Resolves whether it is readable now. */
  const visit = async (key: string): Promise<boolean> => {
    objects++;
    const info = await vault.head(bucket, key);
    if (!info) throw new NotFoundError(`vault object s3://${bucket}/${key} needed by the restore does not exist`);
    if (isReadable(info)) return true;
    if (info.restore === undefined) {
      await vault.requestRestore(bucket, key, { days: 1, tier });
      requested++;
    }
    pending++;
    return false;
  };
  const visitAll = (keys: readonly string[]) => mapLimit(keys, HEAD_CONCURRENCY, visit);
  let budget = batch;
  let cursor: Cursor;
  if (continuing?.cursor) {
    cursor = continuing.cursor;
  } else {
    // An archived manifest cannot be read yet: its chunks are listed by a later pass.
    const manifestReadable = await visit(plan.manifestKey);
    budget--;
    cursor = { phase: "wal", index: 0, chunks: manifestReadable };
  }
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
      await visitAll(keys);
      cursor = { ...cursor, index: cursor.index + keys.length };
      budget -= keys.length;
      continue;
    }
    if (!cursor.chunks) {
      over = true;
      break;
    }
    let listed = cursor.listed;
    if (listed === undefined) {
      // Format 2: its page objects must be readable before its chunks can be listed (an archived one: by a later pass).
      const manifest = await openPlanManifest(deps, plan);
      const pages = pageKeysOf(plan.manifestKey, manifest);
      budget -= pages.length;
      if (!(await visitAll(pages)).every((readable) => readable)) {
        over = true;
        break;
      }
      listed = await writeChunkList(deps, summary.planKey, manifest, pageSize, plan.databaseId);
    }
    cursor = { ...cursor, listed };
    if (cursor.index >= listed) {
      over = true;
      break;
    }
    // One window: the rest of the budget, within the page the cursor is in.
    const page = Math.floor(cursor.index / pageSize);
    const from = cursor.index % pageSize;
    const entries = (await readChunkPage(work, summary.planKey, page)).slice(from, from + Math.min(budget, listed - cursor.index));
    if (entries.length === 0) throw new ConfigError(`thaw chunk list of ${summary.planKey}: page ${page} ends before chunk ${cursor.index} of ${listed}`);
    const packKeys = entries.filter((x) => x.startsWith(PACK_ENTRY)).map((x) => vaultPackKey(plan.databaseId, x.slice(PACK_ENTRY.length)));
    const chunkKeys = await vaultKeysOf(deps.catalog, plan.databaseId, entries.filter((x) => !x.startsWith(PACK_ENTRY)));
    await visitAll([...new Set([...packKeys, ...chunkKeys])]);
    cursor = { ...cursor, index: cursor.index + entries.length };
    budget -= entries.length;
  }
  // The budget ran out exactly at the end: the next call finds nothing left and ends the pass.
  const batches = Math.max(1, Math.ceil(objects / batch));
  const waitSeconds = Math.min(MAX_WAIT_SECONDS, Math.max(MIN_WAIT_SECONDS, batches * 60));
  return { pending, requested, objects, more: !over, cursor: over ? null : cursor, waitSeconds };
}

function handlerDeps(): ThawDeps {
  const d = getDeps();
  return { vault: d.vault, vaultBucket: d.vaultBucket, catalog: d.catalog, work: new StoreWorkObjects(d.incoming, d.incomingBucket) };
}

/** Thaw: request restores of every archived object the plan needs. */
export const handler = lambdaHandler((input): Promise<ThawOutput> => thawPass(handlerDeps(), input));

/** CheckThaw: count what is still being restored (requesting any restore still missing). */
export const checkHandler = lambdaHandler((input): Promise<ThawOutput> => thawPass(handlerDeps(), input));
