/**
 * Verify workflow step 1 — SelectCandidates: which snapshots this run
 * verifies (core/verify-policy.ts), each with a run id and, at level 4, a
 * random point-in-time target inside the stretch that snapshot restores
 * (core/regions.ts windows). Also the task's network settings (env), which
 * RunVerification passes to ECS.
 * Input: { databaseId?, snapshotId?, level?, targetTime?, trigger? } (the schedule sends {}).
 * Output: { candidates: VerifyCandidate[], network, count }.
 */
import { randomInt } from "node:crypto";
import { postgresTargetEnd, randomTarget, selectCandidates, DEFAULT_VERIFY_POLICY, type VerifyLevel, type VerifyPolicy } from "../../core/verify-policy.js";
import { verifyWorkflowInputSchema, type VerifyCandidate } from "../../core/verify-workflow.js";
import { restorableWindows } from "../../core/regions.js";
import { buildPlanInput, streamsOf, type CatalogState } from "../../core/restore-input.js";
import { archivedThrough } from "../../core/generic-wal.js";
import { UnknownSnapshotError } from "../../core/errors.js";
import { getDeps } from "../deps.js";
import { parseInput } from "../parse.js";

const random = (): number => randomInt(0, 2 ** 32) / 2 ** 32;

function policy(): VerifyPolicy {
  const raw = process.env.WALVAULT_VERIFY_POLICY;
  return raw ? { ...DEFAULT_VERIFY_POLICY, ...(JSON.parse(raw) as Partial<VerifyPolicy>) } : DEFAULT_VERIFY_POLICY;
}

export function runIdFor(at: Date, i: number): string {
  return `${at.toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${String(i).padStart(3, "0")}${random().toString(16).slice(2, 6)}`;
}

export async function handler(input: unknown): Promise<{ candidates: VerifyCandidate[]; network: { subnets: string[]; securityGroups: string[] }; count: number }> {
  const req = parseInput(verifyWorkflowInputSchema, input, "verify workflow input");
  const deps = getDeps();
  const now = new Date();
  const pol = policy();
  const ids = req.databaseId ? [req.databaseId] : (await deps.catalog.listDatabases()).map((d) => d.databaseId);
  const candidates: VerifyCandidate[] = [];
  for (const databaseId of ids) {
    const [database, records, wal, history] = await Promise.all([
      deps.catalog.getDatabase(databaseId),
      deps.catalog.listSnapshots(databaseId),
      deps.catalog.listWal(databaseId),
      deps.catalog.listVerifications(databaseId),
    ]);
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
    }
    // Level-4 targets: random inside what each snapshot restores (up to the next snapshot or the window's end).
    const state: CatalogState = {
      database,
      records,
      segments: wal.filter((w) => w.kind === "segment"),
      histories: new Map(),
      streams: streamsOf(database, records, new Map()),
      manifests: new Map(),
    };
    const through = archivedThrough(state.segments);
    const windows =
      database.kind === "postgres"
        ? restorableWindows(buildPlanInput(state, { kind: "latest" }, undefined))
        : state.streams.length === 1
          ? restorableWindows({ ...buildPlanInput(state, { kind: "latest" }, state.streams[0]), ...(through ? { archivedThrough: through } : {}) })
          : [];
    const sorted = [...records].sort((a, b) => (a.finishedAt < b.finishedAt ? -1 : 1));
    picked.forEach((p) => {
      let targetTime = req.snapshotId && req.targetTime ? req.targetTime : undefined;
      if (!targetTime && p.level === 4) {
        const rec = sorted.find((r) => r.snapshotId === p.snapshotId)!;
        const next = sorted[sorted.indexOf(rec) + 1];
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
        runId: runIdFor(now, candidates.length),
        reason: p.reason,
        trigger: req.trigger ?? "schedule",
      });
    });
  }
  const list = (v: string | undefined): string[] => (v ? v.split(",").map((x) => x.trim()).filter(Boolean) : []);
  return {
    candidates,
    network: { subnets: list(process.env.WALVAULT_VERIFY_SUBNETS), securityGroups: list(process.env.WALVAULT_VERIFY_SECURITY_GROUPS) },
    count: candidates.length,
  };
}
