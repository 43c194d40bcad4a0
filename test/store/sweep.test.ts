/**
 * store/sweep.ts: the chunk sweep in bounded rounds (catalog on DynamoDB
 * Local, vault in memory). The same vault swept in one go and in rounds of a
 * few records each ends the same: the same chunk and pack records, marks,
 * vault objects and audit; no round reads more chunk or pack records than its
 * budget; a round run twice from the same cursor (a retried invocation)
 * changes nothing; the scratch is empty at the end but for the mark that it is done.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/errors.js";
import type { SnapshotRecord } from "../../core/schemas.js";
import type { Catalog } from "../../store/catalog.js";
import { executePrune, type PruneSummary } from "../../store/prune.js";
import { DONE, MemorySweepScratch, SWEEP_PARTITIONS, type SweepBudget, type SweepCursor } from "../../store/sweep.js";
import { recordingCalls } from "../support/harness.js";
import { deleting, GDB, genericDb, GRACE, nothing, packedFixtures, packOpts, RUN1, snapshotOf, type PackedFixture } from "./pack-retention-fixture.js";
import { makeChunk, storeChunkObject, storeRecordedPacks, type Chunk } from "./packed-vault.js";

const newFixture = packedFixtures();

interface World {
  f: PackedFixture;
  old: SnapshotRecord;
  kept: SnapshotRecord[];
}

interface Chunks {
  kept: Chunk[];
  sparse: Chunk[];
  dead: Chunk[];
  looseLive: Chunk;
  looseDead: Chunk;
  dangling: Chunk[];
}

async function makeChunks(): Promise<Chunks> {
  const many = (tag: string, n: number): Promise<Chunk[]> => Promise.all(Array.from({ length: n }, (_, i) => makeChunk(`${tag} ${i}`)));
  return { kept: await many("kept", 18), sparse: await many("sparse", 6), dead: await many("dead", 9), looseLive: await makeChunk("loose live"), looseDead: await makeChunk("loose dead"), dangling: await many("dangling", 3) };
}

/**
 * Kept snapshots over two full packs, one chunk of a sparse pack and a loose
 * chunk; a pruned one over the rest of the sparse pack, a pack of its own and
 * a loose chunk; a pack whose deletion stopped after its record.
 */
async function buildWorld(c: Chunks): Promise<World> {
  const f = await newFixture();
  await storeRecordedPacks(f.v, c.kept);
  await storeRecordedPacks(f.v, c.sparse);
  await storeRecordedPacks(f.v, c.dead);
  const [danglingPack] = await storeRecordedPacks(f.v, c.dangling);
  await f.catalog.markPacksOrphaned(GDB, [danglingPack!.name], "2026-01-01T00:00:00.000Z");
  // (A sweep from before packs were condemned first deleted the record, then the chunk records.)
  await f.catalog.condemnPack(GDB, danglingPack!.name, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z");
  await f.catalog.deleteCondemnedPack(GDB, danglingPack!.name);
  await storeChunkObject(f.v, c.looseLive);
  await storeChunkObject(f.v, c.looseDead);
  const old = await snapshotOf(f, [...c.sparse, ...c.dead, c.looseDead], new Date("2026-01-01T00:00:00Z"));
  const kept = [
    await snapshotOf(f, [...c.kept.slice(0, 10), c.sparse[0]!, c.looseLive], new Date("2026-01-02T00:00:00Z")),
    await snapshotOf(f, [...c.kept.slice(5), c.looseLive], new Date("2026-01-03T00:00:00Z")),
  ];
  return { f, old, kept };
}

/** What a sweep leaves: records, marks, objects and audit, in a comparable form. */
async function outcome(f: PackedFixture): Promise<unknown> {
  const chunks: string[] = [];
  let after: string | undefined;
  do {
    const page = await f.catalog.listChunkPage(GDB, after);
    chunks.push(...page.chunks.map((x) => `${x.sha256} ${x.vaultKey} ${x.offset ?? "-"}`));
    after = page.next;
  } while (after !== undefined);
  const packs = (await f.catalog.listPackPage(GDB)).packs.map((p) => `${p.name} ${p.orphanedAt ?? "-"}`);
  const audit = (await f.catalog.listAudit(GDB)).map((a) => `${a.action} ${a.subject} ${a.regions.join(",")}`).sort();
  // Snapshot ids end in a random suffix: the two vaults' snapshots differ only there.
  const id = (text: string): string => text.replace(/(\d{8}T\d{6}Z)-[0-9a-f]+/g, "$1");
  return { chunks, packs, objects: [...f.vault.objects.keys()].map(id).sort(), audit: audit.map(id) };
}

const options = { now: RUN1, graceMs: GRACE, by: "test", packs: packOpts };

describe("the chunk sweep in rounds", () => {
  it("ends as the sweep in one go does, each round within its budget, nothing but the done mark left in the scratch", async () => {
    // Prepare: the same vault twice.
    const chunks = await makeChunks();
    const whole = await buildWorld(chunks);
    const rounds = await buildWorld(chunks);
    const budget: SweepBudget = { markRefs: 1, chunkItems: 7, packs: 2, ms: 600_000 };
    const { proxy, calls } = recordingCalls<Catalog, "listChunkPage" | "listPackPage">(rounds.f.catalog, ["listChunkPage", "listPackPage"]);
    const scratch = new MemorySweepScratch();

    // Act: one go; then the deletions and a sweep round at a time, as the workflow's Execute rounds do.
    const one = await executePrune(genericDb, deleting(whole.old), { snapshots: [whole.old], wal: [] }, whole.f.catalog, whole.f.regions, { ...options, runId: "whole" });
    const summaries: PruneSummary[] = [];
    const readPerRound: { chunks: number; packs: number }[] = [];
    let cursor: SweepCursor | undefined;
    let scratchPeak = 0;
    for (let i = 0; i < 100 && cursor?.phase !== "done"; i++) {
      const before = { chunks: calls.listChunkPage.length, packs: calls.listPackPage.length };
      const plan = i === 0 ? deleting(rounds.old) : nothing;
      const s = await executePrune(genericDb, plan, { snapshots: i === 0 ? [rounds.old] : [], wal: [] }, proxy, rounds.f.regions, {
        ...options,
        runId: "rounds",
        auditSeq: summaries.reduce((n, x) => n + x.audit, 0),
        sweep: { scratch, ...(cursor === undefined ? {} : { cursor }), budget },
      });
      const limits = (name: "listChunkPage" | "listPackPage", from: number): number => calls[name].slice(from).reduce((n, args) => n + Number(args[2]), 0);
      readPerRound.push({ chunks: limits("listChunkPage", before.chunks), packs: limits("listPackPage", before.packs) });
      scratchPeak = Math.max(scratchPeak, scratch.names.size);
      summaries.push(s);
      cursor = s.sweep;
    }
    const sum = (k: "sweptChunks" | "packsSwept" | "packsMarked" | "packsRepacked"): number => summaries.reduce((n, s) => n + s[k], 0);

    // Assess: several rounds, each bounded; the same end.
    expect(cursor?.phase).toBe("done");
    expect(summaries.length).toBeGreaterThan(6);
    expect(Math.max(...readPerRound.map((r) => r.chunks))).toBeLessThanOrEqual(budget.chunkItems);
    expect(Math.max(...readPerRound.map((r) => r.packs))).toBeLessThanOrEqual(budget.packs);
    expect(scratchPeak).toBeGreaterThan(SWEEP_PARTITIONS / 2);
    expect([...scratch.names.keys()]).toEqual([DONE]);
    expect([sum("sweptChunks"), sum("packsSwept"), sum("packsMarked"), sum("packsRepacked")]).toEqual([one.sweptChunks, one.packsSwept, one.packsMarked, one.packsRepacked]);
    expect([one.sweptChunks, one.packsSwept, one.packsMarked, one.packsRepacked]).toEqual([1, 1, 1, 1]);
    expect(await outcome(rounds.f)).toEqual(await outcome(whole.f));
    const keptHashes = [...new Set([...chunks.kept, chunks.sparse[0]!, chunks.looseLive].map((c) => c.sha256))];
    const keptRecords = await rounds.f.catalog.getChunks(GDB, keptHashes);
    expect(keptRecords).toHaveLength(keptHashes.length);
    expect(keptRecords.filter((r) => !rounds.f.vault.objects.has(r.vaultKey))).toEqual([]);
  });

  it("a round run again from the same cursor (a retried invocation) changes nothing more", async () => {
    // Prepare: the same vault twice; in one, every round runs twice.
    const chunks = await makeChunks();
    const once = await buildWorld(chunks);
    const twice = await buildWorld(chunks);
    const budget: SweepBudget = { markRefs: 1, chunkItems: 5, packs: 1, ms: 600_000 };
    const sweepAll = async (w: World, repeat: number): Promise<number> => {
      const scratch = new MemorySweepScratch();
      let cursor: SweepCursor | undefined;
      let rounds = 0;
      for (let i = 0; i < 100 && cursor?.phase !== "done"; i++) {
        let next: SweepCursor | undefined;
        for (let r = 0; r < repeat; r++) {
          const plan = i === 0 ? deleting(w.old) : nothing;
          const s = await executePrune(genericDb, plan, { snapshots: i === 0 ? [w.old] : [], wal: [] }, w.f.catalog, w.f.regions, {
            ...options,
            runId: `r${i}`,
            sweep: { scratch, ...(cursor === undefined ? {} : { cursor }), budget },
          });
          next = s.sweep;
        }
        cursor = next;
        rounds++;
      }
      return rounds;
    };

    // Act
    const a = await sweepAll(once, 1);
    const b = await sweepAll(twice, 2);

    // Assess: the same records, marks and objects (the audit of a repeated round is written twice, as a retry's is).
    expect(b).toBe(a);
    const strip = (o: unknown): unknown => ({ ...(o as Record<string, unknown>), audit: undefined });
    expect(strip(await outcome(twice.f))).toEqual(strip(await outcome(once.f)));
  });

  it("stops before sweeping anything when a part of its mark is gone from the scratch (expired), naming it", async () => {
    // Prepare: a sweep past its mark phase; then one mark object disappears.
    const w = await buildWorld(await makeChunks());
    const scratch = new MemorySweepScratch();
    const budget: SweepBudget = { markRefs: 1_000_000, chunkItems: 5, packs: 1, ms: 600_000 };
    const first = await executePrune(genericDb, deleting(w.old), { snapshots: [w.old], wal: [] }, w.f.catalog, w.f.regions, { ...options, runId: "r0", sweep: { scratch, budget } });
    const before = await outcome(w.f);
    // The part of the mark the next round needs first: that of the next chunk record's first hex digit.
    const nextChunk = (await w.f.catalog.listChunkPage(GDB, first.sweep!.chunkAfter, 1)).chunks[0]!;
    const lost = `mark-000000-${nextChunk.sha256[0]}`;
    expect(scratch.names.has(lost)).toBe(true);
    scratch.names.delete(lost);

    // Act
    const next = executePrune(genericDb, nothing, { snapshots: [], wal: [] }, w.f.catalog, w.f.regions, { ...options, runId: "r1", sweep: { scratch, cursor: first.sweep!, budget } });

    // Assess
    expect(first.sweep?.phase).toBe("chunks");
    await expect(next).rejects.toThrow(ConfigError);
    await expect(next).rejects.toThrow(lost);
    expect(await outcome(w.f)).toEqual(before);
  });

  it("stops before deciding any pack when a part of its index runs is gone from the scratch, naming it", async () => {
    // Prepare: rounds of one page each (no time budget) until the indexes are read; then one index run object disappears.
    const w = await buildWorld(await makeChunks());
    const scratch = new MemorySweepScratch();
    const budget: SweepBudget = { markRefs: 1_000_000, chunkItems: 1000, packs: 1000, ms: 0 };
    const sweep = (i: number, cursor?: SweepCursor): Promise<PruneSummary> =>
      executePrune(genericDb, i === 0 ? deleting(w.old) : nothing, { snapshots: i === 0 ? [w.old] : [], wal: [] }, w.f.catalog, w.f.regions, {
        ...options,
        runId: `r${i}`,
        sweep: { scratch, ...(cursor === undefined ? {} : { cursor }), budget },
      });
    let cursor = (await sweep(0)).sweep!;
    for (let i = 1; i < 20 && cursor.phase !== "tally"; i++) cursor = (await sweep(i, cursor)).sweep!;
    const before = await outcome(w.f);
    const lost = [...scratch.names.keys()].find((k) => k.startsWith("index-"))!;
    scratch.names.delete(lost);

    // Act
    const next = sweep(20, cursor);

    // Assess
    expect(cursor.phase).toBe("tally");
    expect(cursor.indexRuns).toBeGreaterThan(0);
    await expect(next).rejects.toThrow(ConfigError);
    await expect(next).rejects.toThrow(lost);
    expect(await outcome(w.f)).toEqual(before);
  });

  it("marks a snapshot recorded while it runs, though its id sorts before those marked, and keeps the old chunk it reuses", async () => {
    // Prepare: rounds that stop at every phase boundary (no time budget), up to the chunk phase.
    const chunks = await makeChunks();
    const w = await buildWorld(chunks);
    const scratch = new MemorySweepScratch();
    const budget: SweepBudget = { markRefs: 1, chunkItems: 1000, packs: 1000, ms: 0 };
    const round = async (i: number, cursor?: SweepCursor): Promise<SweepCursor> =>
      (await executePrune(genericDb, i === 0 ? deleting(w.old) : nothing, { snapshots: i === 0 ? [w.old] : [], wal: [] }, w.f.catalog, w.f.regions, {
        ...options,
        runId: `r${i}`,
        sweep: { scratch, ...(cursor === undefined ? {} : { cursor }), budget },
      })).sweep!;
    let cursor = await round(0);
    for (let i = 1; i < 10 && cursor.phase === "mark"; i++) cursor = await round(i, cursor);
    const atChunks = cursor.phase;
    // A push that started before the kept snapshots is recorded now, reusing the loose chunk nothing else uses.
    const late = await snapshotOf(w.f, [chunks.looseDead], new Date("2026-01-01T12:00:00Z"), undefined, new Date());

    // Act
    for (let i = 10; i < 200 && cursor.phase !== "done"; i++) cursor = await round(i, cursor);

    // Assess
    expect(atChunks).toBe("chunks");
    expect(late.snapshotId < cursor.markedAfter!).toBe(true);
    expect(cursor.phase).toBe("done");
    expect(cursor.late).toEqual([late.snapshotId]);
    const record = (await w.f.catalog.getChunks(GDB, [chunks.looseDead.sha256]))[0];
    expect(record).toBeDefined();
    expect(w.f.vault.objects.has(record!.vaultKey)).toBe(true);
  });
});
