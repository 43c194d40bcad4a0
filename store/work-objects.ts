/**
 * Work objects: JSON documents a workflow keeps outside its state, because
 * they grow with the data (Step Functions carries at most 256 KiB between
 * states): only their key travels in the state. They live in the incoming
 * bucket under `work/`, which agents cannot write and which S3 expires a day
 * after each object was written (infra/primary-stack.ts, rule expire-work).
 *
 * Contract (every implementation, test/store/work-objects.contract.ts):
 * - put(key, value) stores `value` as JSON under `key`; a later get(key)
 *   resolves a deep-equal value. Putting a key again replaces it.
 * - get(key) resolves `undefined` when the key does not exist (never
 *   written, or expired); a document that is not JSON rejects (ConfigError
 *   naming the key); other failures reject as the object store's do.
 * - Keys must start with "work/": anything else is refused (ConfigError)
 *   before any request, so a work object never lands among uploads.
 *
 * And the restore plan kept this way (functions/restore/plan.ts writes it,
 * functions/restore/thaw.ts and `walvault restore --remote` read it): a
 * header object (the plan without its WAL list, and how many pages the list
 * has) and the WAL list in pages of RESTORE_PLAN_PAGE_SIZE segments, so that
 * no reader needs the whole list at once.
 */
import { z } from "zod";
import { ConfigError, NotFoundError } from "../core/errors.js";
import { databaseIdSchema } from "../core/schemas.js";
import { restorePlanOutputSchema, type PlannedWal, type RestorePlanOutput } from "../core/restore-workflow.js";
import type { ObjectStore } from "./object-store.js";

export const WORK_PREFIX = "work/";

export interface WorkObjects {
  put(key: string, value: unknown): Promise<void>;
  get(key: string): Promise<unknown>;
}

function checkKey(key: string): void {
  if (!key.startsWith(WORK_PREFIX) || key.length === WORK_PREFIX.length) {
    throw new ConfigError(`work object key '${key}' must start with '${WORK_PREFIX}' and name an object`);
  }
}

function parse(key: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new ConfigError(`work object ${key} is not JSON`, { cause });
  }
}

/** Work objects in a bucket of an ObjectStore (the incoming bucket in AWS and on the local stack). */
export class StoreWorkObjects implements WorkObjects {
  constructor(
    private readonly store: ObjectStore,
    private readonly bucket: string,
  ) {}

  async put(key: string, value: unknown): Promise<void> {
    checkKey(key);
    await this.store.put(this.bucket, key, Buffer.from(JSON.stringify(value), "utf8"), {});
  }

  async get(key: string): Promise<unknown> {
    checkKey(key);
    const obj = await this.store.get(this.bucket, key);
    return obj === undefined ? undefined : parse(key, obj.body.toString("utf8"));
  }
}

/** Work objects in memory (unit tests). */
export class MemoryWorkObjects implements WorkObjects {
  readonly docs = new Map<string, string>();

  async put(key: string, value: unknown): Promise<void> {
    checkKey(key);
    this.docs.set(key, JSON.stringify(value));
  }

  async get(key: string): Promise<unknown> {
    checkKey(key);
    const text = this.docs.get(key);
    return text === undefined ? undefined : parse(key, text);
  }
}

// ---------------------------------------------------------------------------
// The restore plan

/** WAL segments per page of a restore plan (~110 bytes each: a page is ~550 KB). */
export const RESTORE_PLAN_PAGE_SIZE = 5000;

/** The header of a restore plan: the plan without its WAL list, and the list's page count. */
export const restorePlanHeaderSchema = restorePlanOutputSchema.omit({ wal: true }).extend({ walPages: z.number().int().nonnegative() });
export type RestorePlanHeader = z.infer<typeof restorePlanHeaderSchema>;

const walPageSchema = z.object({ wal: restorePlanOutputSchema.shape.wal });

/** Where the restore workflow's execution `execution` keeps the plan of `databaseId` (its header). */
export function restorePlanKey(databaseId: string, execution: string): string {
  return `${WORK_PREFIX}restore/${databaseIdSchema.parse(databaseId)}/${execution.replace(/[^A-Za-z0-9_-]/g, "-")}/plan.json`;
}

/** The key of page `page` of the plan whose header is `planKey`. */
export function restorePlanPageKey(planKey: string, page: number): string {
  return `${planKey.replace(/plan\.json$/, "")}wal-${String(page).padStart(6, "0")}.json`;
}

/** Writes the plan (pages first, the header last: a header names only pages that exist). Returns its header. */
export async function writeRestorePlan(work: WorkObjects, planKey: string, plan: RestorePlanOutput): Promise<RestorePlanHeader> {
  const pages = Math.ceil(plan.wal.length / RESTORE_PLAN_PAGE_SIZE);
  for (let p = 0; p < pages; p++) {
    await work.put(restorePlanPageKey(planKey, p), { wal: plan.wal.slice(p * RESTORE_PLAN_PAGE_SIZE, (p + 1) * RESTORE_PLAN_PAGE_SIZE) });
  }
  const { wal: _wal, ...rest } = plan;
  const header: RestorePlanHeader = { ...rest, walPages: pages };
  await work.put(planKey, header);
  return header;
}

function gone(key: string): NotFoundError {
  return new NotFoundError(`restore plan ${key} is gone (work/ objects expire a day after they are written): start the restore workflow again`);
}

function checked<T>(schema: z.ZodType<T>, key: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ConfigError(`work object ${key} is not part of a restore plan (${issue?.path.join(".") || "document"}: ${issue?.message ?? "invalid"})`);
  }
  return r.data;
}

export async function readRestorePlanHeader(work: WorkObjects, planKey: string): Promise<RestorePlanHeader> {
  const v = await work.get(planKey);
  if (v === undefined) throw gone(planKey);
  return checked(restorePlanHeaderSchema, planKey, v);
}

/** One page of the plan's WAL list (RESTORE_PLAN_PAGE_SIZE segments, fewer on the last page). */
export async function readRestorePlanPage(work: WorkObjects, planKey: string, page: number): Promise<PlannedWal[]> {
  const key = restorePlanPageKey(planKey, page);
  const v = await work.get(key);
  if (v === undefined) throw gone(key);
  return checked(walPageSchema, key, v).wal;
}

/** The whole plan: its header and every page, in order. */
export async function readRestorePlan(work: WorkObjects, planKey: string): Promise<RestorePlanOutput> {
  const { walPages, ...header } = await readRestorePlanHeader(work, planKey);
  const wal: PlannedWal[] = [];
  for (let p = 0; p < walPages; p++) wal.push(...(await readRestorePlanPage(work, planKey, p)));
  if (wal.length !== header.walCount) throw new ConfigError(`restore plan ${planKey} lists ${wal.length} WAL segments in its pages, its header says ${header.walCount}`);
  return { ...header, wal };
}

/**
 * The items of the page objects `keys` (each a JSON list), in order, as many
 * as fit in `maxBytes` of JSON: a workflow summary lists what fits and points
 * at the pages for the rest. Reads pages only until the budget is used.
 */
export async function readPagesWithin<T>(work: WorkObjects, keys: readonly string[], maxBytes: number): Promise<T[]> {
  const listed: T[] = [];
  let bytes = 0;
  for (const key of keys) {
    const items = await work.get(key);
    for (const item of Array.isArray(items) ? (items as T[]) : []) {
      const size = JSON.stringify(item).length;
      if (bytes + size > maxBytes) return listed;
      bytes += size;
      listed.push(item);
    }
  }
  return listed;
}
