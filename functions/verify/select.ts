/**
 * Verify workflow steps SelectCandidates, Collect and Summary (one Lambda: the
 * input's `step` says which; statemachines/verify.asl.json). The workflow
 * walks the registry a page of databases at a time, so that neither its state
 * nor any invocation grows with the number of databases.
 *
 * SelectCandidates (no `step`): which snapshots of one page of databases (at
 * most SELECT_PAGE after `cursor.after`, or the one the request names) this
 * run verifies (core/verify-policy.ts), each with a run id and, at level 4, a
 * random point-in-time target inside the stretch that snapshot restores
 * (core/regions.ts windows). Also the task's network settings (env), which
 * RunVerification passes to ECS.
 * Input: { request: { databaseId?, snapshotId?, level?, targetTime?, trigger? }, cursor } (the schedule sends {}).
 * Output: { candidates: VerifyCandidate[], network, count, next } (`next` "" on the last page).
 *
 * Collect (`step: "collect"`): writes the page's results to a work/ object
 * (work/verify/<execution>/) and returns the cursor with running totals.
 * Summary (`step: "summary"`): the execution's output { count, results,
 * outcomes }, results listed up to SUMMARY_MAX_BYTES (`listed` and
 * `pagesPrefix` when not all are), outcomes counted over all of them.
 */
import { randomInt } from "node:crypto";
import { pastVerifyPeriod, postgresTargetEnd, randomTarget, selectCandidates, DEFAULT_VERIFY_POLICY, type VerifyLevel, type VerifyPolicy } from "../../core/verify-policy.js";
import { VERIFICATION_NAMESPACE } from "../../core/metrics.js";
import { verifyWorkflowInputSchema, type VerifyCandidate } from "../../core/verify-workflow.js";
import { restorableWindows, restorableWindowsOf, WalLines, type RestorableWindow } from "../../core/regions.js";
import { buildPlanInput, snapshotInfoOf, streamsOf, type CatalogState } from "../../core/restore-input.js";
import { ArchivedThrough } from "../../core/generic-wal.js";
import { ConfigError, UnknownSnapshotError } from "../../core/errors.js";
import { readPagesWithin, StoreWorkObjects } from "../../store/work-objects.js";
import { z } from "zod";
import type { DatabaseRecord, SnapshotRecord, WalRecord } from "../../core/schemas.js";
import { lsnToSegno, parseLsn } from "../../core/wal.js";
import type { Catalog } from "../../store/catalog.js";
import { genericWalRecordsFrom, walRecordsFrom } from "../../store/wal-from.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";
import { emitMetric, lambdaHandler } from "../observability.js";

const random = (): number => randomInt(0, 2 ** 32) / 2 ** 32;

/** WAL records one level-4 target reads at most: past it the window ends where the reading stopped. */
const WAL_TARGET_MAX = 50_000;

/**
 * A generic database's WAL as restorableWindowsOf reads it, from the
 * catalog a page at a time: each segment's position and time (~20 bytes,
 * core/regions.ts WalLines) and how far the archive is complete, never the
 * records (1M segments were ~0.7 GB in this Lambda). A database marked
 * walIndex "complete" is read by position range (Catalog.listGenericWalRange):
 * its one stream from the oldest snapshot's last segment on, which is all a
 * window reads (each starts after its snapshot's last segment), so the work
 * grows with the retained snapshots' WAL, not with the archive. How far the
 * archive is complete is then counted over that range's scans, which can only
 * be earlier than over all of them (a window ends no later: a target drawn
 * from it is still restorable); so does a segment the eventually consistent
 * index does not list yet (a window ends before it).
 */
async function genericWalLine(catalog: Catalog, database: DatabaseRecord, streams: readonly string[], records: readonly SnapshotRecord[]): Promise<{ lines: WalLines; through: Date | undefined }> {
  const lines = new WalLines(database, streams);
  const through = new ArchivedThrough();
  const add = (page: readonly WalRecord[]): void => {
    const segments = page.filter((w) => w.kind === "segment");
    lines.add(segments);
    through.add(segments);
  };
  const stream = streams[0];
  if (database.walIndex === "complete" && streams.length === 1 && stream !== undefined) {
    const state: CatalogState = { database, records: [...records], segments: [], histories: new Map(), streams: [...streams], manifests: new Map() };
    const stops = records.flatMap((r) => snapshotInfoOf(state, r, stream)?.stopLsn ?? []);
    const from = stops.reduce((min, p) => (p < min ? p : min), stops[0] ?? 0n);
    try {
      for await (const w of genericWalRecordsFrom(catalog, database.databaseId, stream, from)) add([w]);
      return { lines, through: through.result() };
    } catch (e) {
      // A catalog that cannot read the index (a table without it, a role not granted it): read by pages.
      if (!(e instanceof ConfigError)) throw e;
      return genericWalLine(catalog, { ...database, walIndex: undefined }, streams, records);
    }
  }
  let after: string | undefined;
  do {
    const page = await catalog.listWalPage(database.databaseId, after);
    add(page.records);
    after = page.next;
  } while (after !== undefined);
  return { lines, through: through.result() };
}

/**
 * The WAL records a PostgreSQL snapshot's level-4 target is drawn from: its
 * timeline's records from its start segment on (store/wal-from.ts), through
 * the first segment archived after `until` (the next snapshot's finish: the
 * target stays before it) or the archive's end, at most WAL_TARGET_MAX:
 * never the whole WAL catalog.
 */
async function walForTarget(catalog: Catalog, database: DatabaseRecord, rec: SnapshotRecord, until: Date | undefined): Promise<WalRecord[]> {
  if (rec.timeline === undefined || rec.startLsn === undefined) return catalog.listWal(database.databaseId); // an older record: planned as before
  const size = database.walSegmentSize;
  const out: WalRecord[] = [];
  const past = (w: WalRecord): boolean => out.length >= WAL_TARGET_MAX || (until !== undefined && w.kind === "segment" && new Date(w.archivedAt) > until);
  for await (const w of walRecordsFrom(catalog, database.databaseId, size, lsnToSegno(parseLsn(rec.startLsn), size), past, { timeline: rec.timeline })) out.push(w);
  return out;
}

function policy(): VerifyPolicy {
  const raw = process.env.WALVAULT_VERIFY_POLICY;
  return raw ? { ...DEFAULT_VERIFY_POLICY, ...(JSON.parse(raw) as Partial<VerifyPolicy>) } : DEFAULT_VERIFY_POLICY;
}

export function runIdFor(at: Date, i: number): string {
  return `${at.toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${String(i).padStart(3, "0")}${random().toString(16).slice(2, 6)}`;
}

/** Databases one SelectCandidates invocation looks at (one page of the registry). */
export const SELECT_PAGE = 10;
/** The execution's output lists results up to this size (serialized); all are in the work/ page objects. */
export const SUMMARY_MAX_BYTES = 48 * 1024;
/** Where the workflow keeps each page's results (incoming bucket; expires with work/). */
export const VERIFY_WORK_PREFIX = "work/verify/";

export const cursorSchema = z.object({
  /** Database id the next page starts after ("": from the first). */
  after: z.string(),
  /** Pages collected so far (the next page's number). */
  page: z.number().int().nonnegative(),
  /** Candidates so far (numbers their run ids). */
  count: z.number().int().nonnegative(),
  outcomes: z.record(z.number().int().nonnegative()).optional(),
});
export type VerifyCursor = z.infer<typeof cursorSchema>;
export type Outcomes = Record<string, number>;

export function pagesPrefix(execution: string): string {
  return `${VERIFY_WORK_PREFIX}${execution.replace(/[^A-Za-z0-9_-]/g, "-")}/pages/`;
}
const pageKey = (execution: string, page: number): string => `${pagesPrefix(execution)}${String(page).padStart(6, "0")}.json`;

const selectInputSchema = z.object({ request: verifyWorkflowInputSchema, cursor: cursorSchema.optional() });
const collectInputSchema = z.object({
  step: z.literal("collect"),
  execution: z.string().min(1),
  cursor: cursorSchema,
  next: z.string(),
  results: z.array(z.object({ outcome: z.string() }).passthrough()),
});
const summaryInputSchema = z.object({ step: z.literal("summary"), execution: z.string().min(1), cursor: cursorSchema });

export interface SelectOutput {
  candidates: VerifyCandidate[];
  network: { subnets: string[]; securityGroups: string[] };
  count: number;
  next: string;
}
export interface VerifySummary {
  count: number;
  results: Record<string, unknown>[];
  outcomes: Outcomes;
  listed?: number;
  pagesPrefix?: string;
}

async function handle(input: unknown): Promise<SelectOutput | VerifyCursor | VerifySummary> {
  const step = typeof input === "object" && input !== null ? (input as { step?: unknown }).step : undefined;
  if (step === "collect") return collect(parseInput(collectInputSchema, input, "verify collect input"));
  if (step === "summary") return summary(parseInput(summaryInputSchema, input, "verify summary input"));
  return selectPage(input);
}

async function collect({ execution, cursor, next, results }: z.infer<typeof collectInputSchema>): Promise<VerifyCursor> {
  const deps = getDeps();
  if (results.length > 0) await new StoreWorkObjects(deps.incoming, deps.incomingBucket).put(pageKey(execution, cursor.page), results);
  const outcomes: Outcomes = { ...(cursor.outcomes ?? {}) };
  for (const r of results) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
  return { after: next, page: cursor.page + (results.length > 0 ? 1 : 0), count: cursor.count + results.length, outcomes };
}

async function summary({ execution, cursor }: z.infer<typeof summaryInputSchema>): Promise<VerifySummary> {
  const deps = getDeps();
  const work = new StoreWorkObjects(deps.incoming, deps.incomingBucket);
  const listed = await readPagesWithin<Record<string, unknown>>(
    work,
    Array.from({ length: cursor.page }, (_, p) => pageKey(execution, p)),
    SUMMARY_MAX_BYTES,
  );
  return {
    count: cursor.count,
    results: listed,
    outcomes: cursor.outcomes ?? {},
    ...(listed.length < cursor.count ? { listed: listed.length, pagesPrefix: pagesPrefix(execution) } : {}),
  };
}

/** SelectCandidates: one page's candidates (the handler's default step). */
/** Databases named per metric record (the count covers every one). */
const MAX_NAMED_OVERDUE = 20;

/**
 * One record per selected page, with no dimension (a fleet-wide figure: the
 * alarm reads it, and its absence for a day means verification stopped):
 * how many retained snapshots of the page's databases are past the
 * verification period, and which databases (at most MAX_NAMED_OVERDUE).
 */
export function overdueMetric(overdue: ReadonlyMap<string, number>, periodDays: number): Parameters<typeof emitMetric>[0] {
  const ids = [...overdue.keys()].sort();
  return {
    namespace: VERIFICATION_NAMESPACE,
    dimensions: [],
    metrics: [{ name: "SnapshotsPastVerifyPeriod", unit: "Count" }],
    values: {
      SnapshotsPastVerifyPeriod: [...overdue.values()].reduce((a, b) => a + b, 0),
      PeriodDays: periodDays,
      Databases: ids.slice(0, MAX_NAMED_OVERDUE).map((id) => `${id}:${overdue.get(id)}`).join(","),
    },
  };
}

export async function selectPage(input: unknown): Promise<SelectOutput> {
  const { request: req, cursor } = parseInput(selectInputSchema, input, "verify workflow input");
  const deps = getDeps();
  const now = new Date();
  const pol = policy();
  let ids: string[];
  let next = "";
  if (req.databaseId) ids = [req.databaseId];
  else {
    const page = await deps.catalog.listDatabasePage(cursor?.after || undefined, SELECT_PAGE);
    ids = page.databases.map((d) => d.databaseId);
    next = page.next ?? "";
  }
  const first = cursor?.count ?? 0;
  const candidates: VerifyCandidate[] = [];
  /** Retained snapshots past the verification period, per database of this page (scheduled selections only). */
  const overdue = new Map<string, number>();
  for (const databaseId of ids) {
    const [database, records, history] = await Promise.all([deps.catalog.getDatabase(databaseId), deps.catalog.listSnapshots(databaseId), deps.catalog.listVerifications(databaseId)]);
    if (!database || records.length === 0) continue;
    const last = new Map<string, Date>();
    // A run that never got to checking (outcome "error": the task did not start, crashed) verified nothing.
    for (const v of history) if (v.outcome !== "error") last.set(v.snapshotId, new Date(v.finishedAt));
    let picked: { snapshotId: string; level: VerifyLevel; reason: string }[];
    if (req.snapshotId) {
      if (!records.some((r) => r.snapshotId === req.snapshotId)) throw new UnknownSnapshotError(`snapshot ${req.snapshotId} of database ${databaseId} is not in the catalog`);
      picked = [{ snapshotId: req.snapshotId, level: (req.level ?? pol.level) as VerifyLevel, reason: "requested" }];
    } else {
      const states = records.map((r) => ({ snapshotId: r.snapshotId, finishedAt: new Date(r.finishedAt), ...(last.has(r.snapshotId) ? { lastVerifiedAt: last.get(r.snapshotId)! } : {}) }));
      picked = selectCandidates(states, now, { ...pol, ...(req.level ? { level: req.level as VerifyLevel } : {}) }, random);
      const past = pastVerifyPeriod(states, now, pol).length;
      if (past > 0) overdue.set(databaseId, past);
    }
    // Level-4 targets: random inside what each snapshot restores (up to the next snapshot or the window's end).
    const sorted = [...records].sort((a, b) => (a.finishedAt < b.finishedAt ? -1 : 1));
    const streams = streamsOf(database, records, new Map());
    let genericLine: { lines: WalLines; through: Date | undefined } | undefined;
    for (const p of picked) {
      let targetTime = req.snapshotId && req.targetTime ? req.targetTime : undefined;
      if (!targetTime && p.level === 4) {
        const rec = sorted.find((r) => r.snapshotId === p.snapshotId)!;
        const next = sorted[sorted.indexOf(rec) + 1];
        // PostgreSQL: the WAL from this snapshot's start to just past the next one (walForTarget); generic, one stream: its
        // positions and times, a page at a time (genericWalLine), once per database; several streams: no target.
        const wal = database.kind === "postgres" ? await walForTarget(deps.catalog, database, rec, next === undefined ? undefined : new Date(next.finishedAt)) : [];
        const state: CatalogState = { database, records, segments: wal.filter((w) => w.kind === "segment"), histories: new Map(), streams, manifests: new Map() };
        let windows: RestorableWindow[] = [];
        if (database.kind === "postgres") windows = restorableWindows(buildPlanInput(state, { kind: "latest" }, undefined, rec.snapshotId));
        else if (streams.length === 1) {
          genericLine ??= await genericWalLine(deps.catalog, database, streams, records);
          const infos = records.flatMap((r) => snapshotInfoOf(state, r, streams[0]) ?? []);
          windows = restorableWindowsOf(infos, genericLine.lines.of(streams[0]), database.walSegmentSize, genericLine.through);
        }
        const w = windows.find((x) => x.snapshots.includes(p.snapshotId));
        if (w) {
          const from = new Date(rec.finishedAt);
          let end: Date | undefined = next && new Date(next.finishedAt) < w.to ? new Date(next.finishedAt) : w.to;
          if (database.kind === "postgres") end = postgresTargetEnd(from, end, w.to, state.segments);
          targetTime = end ? randomTarget(from, end, random)?.toISOString() : undefined;
        }
      }
      candidates.push({
        databaseId,
        snapshotId: p.snapshotId,
        level: p.level,
        ...(targetTime ? { targetTime } : {}),
        runId: runIdFor(now, first + candidates.length),
        reason: p.reason,
        trigger: req.trigger ?? "schedule",
      });
    }
  }
  if (!req.snapshotId) emitMetric(overdueMetric(overdue, pol.periodDays));
  const list = (v: string | undefined): string[] => (v ? v.split(",").map((x) => x.trim()).filter(Boolean) : []);
  return {
    candidates,
    network: { subnets: list(process.env.WALVAULT_VERIFY_SUBNETS), securityGroups: list(process.env.WALVAULT_VERIFY_SECURITY_GROUPS) },
    count: candidates.length,
    next,
  };
}

/** The step's Lambda handler (functions/observability.ts). */
export const handler = lambdaHandler(handle);
