/**
 * The retention workflow with packs (docs/retention.md "Packs") on the local
 * stack, over snapshots pushed with packs (snapshotPush `packs: true`, as
 * WALVAULT_PACKS=1 does) through snapshot ingest: a pack only pruned
 * snapshots used is marked by one run and deleted by a run a grace period
 * later; a pack a kept snapshot still uses a little of is repacked (its live
 * chunks moved to a new pack), then deleted likewise — unless a push reuses
 * one of its dead chunks in between: snapshot ingest (CheckReferenced)
 * unmarks it and it stays; every kept snapshot restores byte-identical after
 * each run. Pack and mark times are moved back
 * in the catalog instead of waiting for the grace period.
 * Needs `npm run build` first (s3rver runs from dist/).
 */
import { randomFillSync } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { restore } from "../../agent/restore.js";
import { snapshotPush, type PushConfig, type SnapshotPushResult } from "../../agent/snapshot-push.js";
import { sha256Hex } from "../../core/hash.js";
import type { PackItem } from "../../core/schemas.js";
import { databasePk, packSk } from "../../store/catalog-layout.js";
import type { DynamoCatalog } from "../../store/dynamo-catalog.js";
import { stackClients, tempDir, type StackClients } from "../support/harness.js";
import { DAY } from "../support/retention.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "gen-ret-packs";
const KiB = 1024;
const STREAMS = [{ id: "wal", lastSegment: "wal/00000042.wal", lastSegno: 42 }];
/** Keeps today's newest snapshot (and pinned ones) only. */
const POLICY = { daily: 1, weekly: 0, monthly: 0, recoveryWindowDays: 0, minSnapshots: 1 };

let stack: TestStack;
let clients: StackClients;
let work: string;
const dirs: Record<string, string> = {};
/** s1's big file: dead once s1 is pruned, until s4 has it again. */
let y: Buffer;
const pushed: Record<string, SnapshotPushResult> = {};

interface Summary {
  databaseId: string;
  complete: boolean;
  deletedSnapshots: string[];
  packsSwept: number;
  packsMarked: number;
  packsRepacked: number;
  lockedCount: number;
}

const push = async (id: string): Promise<void> => {
  const cfg: PushConfig = { ...stack.config, databaseId: DB };
  pushed[id] = await snapshotPush({ kind: "generic", dir: dirs[id]!, streams: STREAMS }, cfg, clients, { packs: true, timeoutMs: 120_000 });
};

const random = (n: number): Buffer => randomFillSync(Buffer.allocUnsafe(n));

function tree(name: string, files: Record<string, Buffer>, walFill: number): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "wal"), { recursive: true });
  for (const [f, body] of Object.entries(files)) writeFileSync(join(dir, f), body);
  writeFileSync(join(dir, "wal", "00000042.wal"), Buffer.alloc(64 * KiB, walFill));
  return dir;
}

function fileHashes(dir: string, rel = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    if (lstatSync(join(dir, r)).isDirectory()) Object.assign(out, fileHashes(dir, r));
    else out[r] = sha256Hex(readFileSync(join(dir, r)));
  }
  return out;
}

async function allPacks(): Promise<PackItem[]> {
  const out: PackItem[] = [];
  let after: string | undefined;
  do {
    const page = await clients.catalog.listPackPage(DB, after);
    out.push(...page.packs);
    after = page.next;
  } while (after !== undefined);
  return out;
}

/** Moves a pack record's recordedAt (and orphanedAt, when it has one) back by `ms`, as if that long had passed. */
async function backdate(p: PackItem, ms: number): Promise<void> {
  const back = (iso: string): string => new Date(Date.parse(iso) - ms).toISOString();
  await (clients.catalog as DynamoCatalog).doc.send(
    new UpdateCommand({
      TableName: stack.config.table,
      Key: { pk: databasePk(DB), sk: packSk(p.name) },
      UpdateExpression: p.orphanedAt === undefined ? "SET recordedAt = :r" : "SET recordedAt = :r, orphanedAt = :o",
      ExpressionAttributeValues: { ":r": back(p.recordedAt), ...(p.orphanedAt === undefined ? {} : { ":o": back(p.orphanedAt) }) },
    }),
  );
}

async function restoresIdentical(id: string): Promise<void> {
  const to = join(work, `restored-${id}-${Date.now()}`);
  await restore(clients, { ...stack.config }, { databaseId: DB, target: { kind: "snapshot", id: pushed[id]!.snapshotId }, toDir: to, durable: false });
  expect(fileHashes(to), `snapshot ${id}`).toEqual(fileHashes(dirs[id]!));
  rmSync(to, { recursive: true, force: true });
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, kind: "generic" }], { lambdaRuntime: "in-process" });
  clients = stackClients(stack);
  work = tempDir("walvault-retention-packs-");
  const x = random(256 * KiB);
  y = random(1536 * KiB);
  // s0: its own pack only (will be unreferenced); s1: X and a big Y (its pack becomes sparse: only X stays live);
  // s2: reuses X (pinned); s3: the newest.
  dirs.s0 = tree("s0", { "v.db": random(1024 * KiB) }, 1);
  dirs.s1 = tree("s1", { "x.db": x, "y.db": y }, 2);
  dirs.s2 = tree("s2", { "x.db": x, "z.db": random(256 * KiB) }, 3);
  dirs.s3 = tree("s3", { "w.db": random(256 * KiB) }, 4);
  for (const id of ["s0", "s1", "s2", "s3"]) await push(id);
  await clients.catalog.setSnapshotPinned(DB, pushed.s2!.snapshotId, true);
  // The pushes were a month ago, as far as the grace period is concerned.
  for (const p of await allPacks()) await backdate(p, 30 * DAY);
}, 300_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("retention workflow with packs", () => {
  it("marks the unreferenced pack and repacks the sparse one; a grace period later deletes the first and keeps the second, whose dead chunks a push has again meanwhile; kept snapshots restore byte-identical throughout", async () => {
    // Prepare
    const packsBefore = await allPacks();
    expect(packsBefore).toHaveLength(4);
    const vaultKeys = new Map(packsBefore.map((p) => [p.name, p.vaultKey]));
    const s0Pack = pushed.s0!.packs!.names[0]!;
    const s1Pack = pushed.s1!.packs!.names[0]!;

    // Act: run 1.
    const first = (await stack.startRetention({ databaseId: DB, policy: POLICY })) as { results: Summary[] };
    const afterFirst = new Map((await allPacks()).map((p) => [p.name, p]));

    // Assess run 1: s0 and s1 pruned; s0's pack marked, s1's repacked (and marked); both objects still there.
    const r1 = first.results[0]!;
    expect(r1).toMatchObject({ complete: true, packsMarked: 1, packsRepacked: 1, packsSwept: 0, lockedCount: 0 });
    expect(r1.deletedSnapshots.sort()).toEqual([pushed.s0!.snapshotId, pushed.s1!.snapshotId].sort());
    expect(afterFirst.get(s0Pack)?.orphanedAt).toBeDefined();
    expect(afterFirst.get(s1Pack)?.orphanedAt).toBeDefined();
    expect(afterFirst.size).toBe(5);
    for (const name of [s0Pack, s1Pack]) expect(await clients.store.head(stack.config.vaultBucket, vaultKeys.get(name)!)).toBeDefined();
    await restoresIdentical("s2");
    await restoresIdentical("s3");

    // Act: a push reuses y.db (dead chunks of s1's marked pack) through snapshot ingest; then run 2, a grace period later.
    for (const p of afterFirst.values()) if (p.orphanedAt !== undefined) await backdate(p, 2 * DAY);
    dirs.s4 = tree("s4", { "y.db": y }, 5);
    await push("s4");
    const s1PackAfterPush = await clients.catalog.getPack(DB, s1Pack);
    const second = (await stack.startRetention({ databaseId: DB, policy: POLICY })) as { results: Summary[] };

    // Assess: the push uploaded y.db again (its chunks are in no pack the previous manifest or the pack log names,
    // and no record places them: docs/packs.md "Step 3"), so s1's pack stayed marked; but its index lists y.db's
    // chunks, live again and placed by no record, so run 2 unmarked it and kept it (whole); s0's pack is deleted
    // (record, object); s3, pruned now (s4 is the newest), has its pack marked; the kept snapshots still restore.
    expect(pushed.s4!.totals.newChunks).toBe(pushed.s4!.totals.uniqueChunks);
    expect(pushed.s4!.packs!.uploaded).toBe(1);
    expect(s1PackAfterPush?.orphanedAt).toBeDefined();
    expect(second.results[0]).toMatchObject({ complete: true, packsMarked: 1, packsRepacked: 0, packsSwept: 1, lockedCount: 0 });
    expect(second.results[0]!.deletedSnapshots).toEqual([pushed.s3!.snapshotId]);
    const left = new Map((await allPacks()).map((p) => [p.name, p]));
    expect(left.has(s0Pack)).toBe(false);
    expect(left.get(s1Pack)?.orphanedAt).toBeUndefined();
    expect(left.get(pushed.s3!.packs!.names[0]!)?.orphanedAt).toBeDefined();
    expect(await clients.store.head(stack.config.vaultBucket, vaultKeys.get(s0Pack)!)).toBeUndefined();
    expect(await clients.store.head(stack.config.vaultBucket, vaultKeys.get(s1Pack)!)).toBeDefined();
    for (const c of await clients.catalog.listChunks(DB)) expect(c.vaultKey).not.toBe(vaultKeys.get(s0Pack));
    await restoresIdentical("s2");
    await restoresIdentical("s4");
    const audit = await clients.catalog.listAudit(DB);
    expect(audit.filter((a) => a.action === "repack").map((a) => a.subject)).toEqual([s1Pack]);
    expect(audit.filter((a) => a.action === "sweep-pack").map((a) => a.subject)).toEqual([s0Pack]);
  }, 300_000);
});
