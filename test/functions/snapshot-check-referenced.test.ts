/**
 * CheckReferenced (functions/snapshot/check-referenced.ts) reads each chunk
 * record of a snapshot at most once: presence, the reused chunks' packs and
 * a packed push's new chunks are all checked on one getChunks read, and new
 * chunks that name their pack (format 2, as this agent writes) are checked
 * against the pack's index instead of their records. The handler runs
 * in this process over the local stack's stores, for a snapshot the agent
 * pushed and the workflow ingested (both manifest formats), with the catalog
 * wrapped to count what it is asked.
 * Needs `npm run build` first (the local stack runs the built handlers).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { snapshotPush, type SnapshotPushResult } from "../../agent/snapshot-push.js";
import { overrideDeps, resetDeps } from "../../functions/deps.js";
import { handler as checkReferenced, type CheckReferencedOutput } from "../../functions/snapshot/check-referenced.js";
import { handler as validateManifest } from "../../functions/snapshot/validate-manifest.js";
import { handler as validatePages } from "../../functions/snapshot/validate-pages.js";
import { NotFoundError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingSnapshotKey, snapshotPageKey } from "../../core/keys.js";
import { META_DATABASE } from "../../core/schemas.js";
import { objectMeta } from "../../core/verify.js";
import type { ChunkRecord } from "../../core/snapshot.js";
import { recordingCalls, stackClients, stackDeps, tempDir, type StackClients } from "../support/harness.js";
import { seededBytes } from "../support/retention.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const GEN = "gen-check";
const STREAMS = [{ id: "wal", lastSegment: "wal/00000001.wal", lastSegno: 1 }];

let stack: TestStack;
let clients: StackClients;
let work: string;

beforeAll(async () => {
  stack = await startTestStack([{ id: GEN, kind: "generic" }]);
  clients = stackClients(stack);
  work = tempDir("walvault-check-");
}, 120_000);

afterAll(async () => {
  resetDeps();
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A tree of `files` files of 5 blocks each (80 KiB, CDC-cut): the first half the same for every tree of the same `shared`, the rest by `seed`. */
function tree(name: string, files: number, seed: number, shared = 0): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "wal"), { recursive: true });
  writeFileSync(join(dir, "wal", "00000001.wal"), "wal");
  for (let i = 0; i < files; i++) writeFileSync(join(dir, `f${i}`), seededBytes(i < files / 2 ? shared + i : seed + i, 80 * 1024));
  return dir;
}

async function checkAgain(pushed: { manifestKey: string }): Promise<{
  out: CheckReferencedOutput;
  getChunks: string[];
  missingChunks: string[];
  getPack: string[];
  validationLookups: number;
  /** The chunk hashes validation looked up. */
  validationHashes: string[];
}> {
  const counting = recordingCalls(clients.catalog, ["getChunks", "missingChunks", "getPack"]);
  // Every dependency is replaced; the environment is the stack's own (startLocalStack sets it), as the handlers' is.
  overrideDeps(stackDeps(stack, clients, counting.proxy));
  const event = {
    "detail-type": "Object Created",
    source: "aws.s3",
    detail: { bucket: { name: stack.config.incomingBucket }, object: { key: pushed.manifestKey } },
  };
  const validated = await validateManifest({ event });
  const { snapshot } = validated;
  // Format 2: ValidatePages until done, as the workflow calls it.
  if (validated.progress !== undefined) {
    let pages: { snapshot: unknown; batches: unknown[]; progress: { done: boolean } } = { ...validated, progress: validated.progress };
    while (!pages.progress.done) pages = await validatePages(pages);
  }
  /** Chunk records validation read (ValidateManifest, ValidatePages). */
  const validationLookups = counting.calls.getChunks.length + counting.calls.missingChunks.length;
  const validationHashes = [...counting.calls.getChunks, ...counting.calls.missingChunks].flatMap((args) => args[1] as string[]);
  counting.calls.getChunks.length = 0;
  counting.calls.missingChunks.length = 0;
  counting.calls.getPack.length = 0;
  let out: CheckReferencedOutput = { uniqueChunks: 0, checkedBackupLabel: false, next: 0, done: false };
  while (!out.done) out = await checkReferenced({ snapshot, progress: { next: out.next, uniqueChunks: out.uniqueChunks, checkedBackupLabel: out.checkedBackupLabel } });
  /** The hashes each lookup was asked for (the second argument of each call). */
  const hashes = (c: unknown[][]): string[] => c.flatMap((args) => args[1] as string[]);
  return {
    out,
    validationLookups,
    validationHashes,
    getChunks: hashes(counting.calls.getChunks),
    missingChunks: hashes(counting.calls.missingChunks),
    getPack: counting.calls.getPack.map((args) => args[1] as string),
  };
}

/**
 * A copy of a pushed one-page format-2 manifest under another snapshot id
 * (the last hex digit changed), its page changed by `mutate` and bound
 * again by the header: what a faulty or hostile agent could upload.
 */
async function tamperedCopy(pushed: SnapshotPushResult, mutate: (chunks: ChunkRecord[], packs: string[], files: Array<{ path: string; sha256?: string; chunks: ChunkRecord[] }>) => void): Promise<string> {
  const bucket = stack.config.incomingBucket;
  const read = async (key: string): Promise<Record<string, unknown>> => JSON.parse((await clients.store.get(bucket, key))!.body.toString("utf8")) as Record<string, unknown>;
  const header = (await read(pushed.manifestKey)) as { snapshotId: string; packs: string[]; pages: Array<{ sha256: string; bytes: number; text?: string }> };
  expect(header.pages).toHaveLength(1);
  // A small manifest's page is in its header (PageRef.text); the copy puts it in an object of its own.
  const page = (header.pages[0]!.text !== undefined ? JSON.parse(header.pages[0]!.text) : await read(snapshotPageKey(pushed.manifestKey, 0))) as {
    snapshotId: string;
    entries: Array<{ type: string; path: string; sha256?: string; chunks?: ChunkRecord[] }>;
  };
  const snapshotId = pushed.snapshotId.slice(0, -1) + (pushed.snapshotId.endsWith("f") ? "e" : "f");
  const key = incomingSnapshotKey(GEN, snapshotId);
  mutate(
    page.entries.flatMap((e) => e.chunks ?? []),
    header.packs,
    page.entries.flatMap((e) => (e.type === "file" ? [e as { path: string; sha256?: string; chunks: ChunkRecord[] }] : [])),
  );
  const put = async (k: string, body: Buffer): Promise<unknown> =>
    clients.store.put(bucket, k, body, { ...objectMeta({ sha256: sha256Hex(body), codec: "none", size: body.length }), [META_DATABASE]: GEN });
  const pageBody = Buffer.from(`${JSON.stringify({ ...page, snapshotId })}\n`);
  await put(snapshotPageKey(key, 0), pageBody);
  const { text: _text, ...ref } = header.pages[0]!;
  await put(key, Buffer.from(JSON.stringify({ ...header, snapshotId, pages: [{ ...ref, sha256: sha256Hex(pageBody), bytes: pageBody.length }] })));
  return key;
}

/** A format-2 manifest as pushed to incoming: its header's pack lists, and the reused chunks that name no pack. */
async function readPaged(key: string): Promise<{ packs?: string[]; reusedPacks?: string[]; unnamed: string[]; fresh: string[] }> {
  const read = async (k: string): Promise<unknown> => JSON.parse((await clients.store.get(stack.config.incomingBucket, k))!.body.toString("utf8"));
  const header = (await read(key)) as { packs?: string[]; reusedPacks?: string[]; pages: Array<{ text?: string }> };
  const unnamed = new Set<string>();
  const fresh = new Set<string>();
  for (const [i, ref] of header.pages.entries()) {
    const page = (ref.text !== undefined ? JSON.parse(ref.text) : await read(snapshotPageKey(key, i))) as { entries: Array<{ chunks?: ChunkRecord[] }> };
    for (const c of page.entries.flatMap((e) => e.chunks ?? [])) {
      if (c.new === true) fresh.add(c.sha256);
      else if (c.reusedPack === undefined) unnamed.add(c.sha256);
    }
  }
  return { ...header, unnamed: [...unnamed].sort(), fresh: [...fresh].sort() };
}

describe("CheckReferenced", () => {
  for (const format of [1, 2] as const) {
    const what =
      format === 1
        ? "checks a packed snapshot's new chunks against their packs and reads only the records of chunks it reused (format 1, which reuses only what a record places)"
        : "reads only the records of reused chunks that name no pack: new chunks are checked against their packs' indexes, reused ones against the indexes of the packs the manifest names for them, each pack's record read once (format 2)";
    it(what, async () => {
      // Prepare: a first push, then one that reuses half its files' chunks
      const config = { ...stack.config, databaseId: GEN };
      // (Each format's shared half its own: the first push uploads it, so the second finds each reused chunk's pack in its manifest.)
      await snapshotPush({ kind: "generic", dir: tree(`a${format}`, 12, 1000 * format, 100 * format), streams: STREAMS }, config, clients, { packs: true, manifestPages: format === 2, timeoutMs: 120_000 });
      const second = await snapshotPush({ kind: "generic", dir: tree(`b${format}`, 12, 2000 * format, 100 * format), streams: STREAMS }, config, clients, {
        packs: true,
        manifestPages: format === 2,
        timeoutMs: 120_000,
      });
      expect(second.totals.newChunks).toBeGreaterThan(0);
      // Format 1 cannot name the pack of a chunk it reuses: it reuses only what a record places (docs/packs.md "Step 3").
      if (format === 2) expect(second.totals.newChunks).toBeLessThan(second.totals.uniqueChunks);
      // Act
      const { out, getChunks, missingChunks, getPack, validationLookups } = await checkAgain(second);
      // Assess: validation read no chunk record; CheckReferenced read each reused one once.
      expect(validationLookups).toBe(0);
      expect(out.done).toBe(true);
      expect(missingChunks).toEqual([]);
      expect(new Set(getChunks).size).toBe(getChunks.length);
      if (format === 1) {
        // New chunks by their packs (each named once), reused ones (if any) by their records.
        expect(getChunks).toHaveLength(second.totals.uniqueChunks - second.totals.newChunks);
        expect([...getPack].sort()).toEqual([...second.packs!.names].sort());
      } else {
        // (A chunk every tree has, the WAL file, came to the first push from an older one that named no pack for it: it has none.)
        const m = await readPaged(second.manifestKey);
        expect(m.reusedPacks?.length).toBeGreaterThan(0);
        expect(m.unnamed.length).toBeLessThan((second.totals.uniqueChunks - second.totals.newChunks) / 4);
        expect([...getChunks].sort()).toEqual(m.unnamed);
        expect([...getPack].sort()).toEqual([...new Set([...second.packs!.names, ...m.reusedPacks!])].sort());
      }
    }, 180_000);
  }

  it("an unpacked push after a packed one: validation and CheckReferenced read the records only of reused chunks that name no pack", async () => {
    // Prepare: a packed push, then an unpacked one sharing half its files (format 2: its reused chunks name their packs).
    const config = { ...stack.config, databaseId: GEN };
    await snapshotPush({ kind: "generic", dir: tree("u1", 12, 5000, 300), streams: STREAMS }, config, clients, { packs: true, timeoutMs: 120_000 });
    const unpacked = await snapshotPush({ kind: "generic", dir: tree("u2", 12, 6000, 300), streams: STREAMS }, config, clients, { packs: false, timeoutMs: 120_000 });

    // Act
    const { out, validationHashes, getChunks } = await checkAgain(unpacked);

    // Assess
    const m = await readPaged(unpacked.manifestKey);
    expect(out.done).toBe(true);
    expect(m.packs).toBeUndefined();
    expect(m.reusedPacks?.length).toBeGreaterThan(0);
    expect([...new Set(validationHashes)].sort()).toEqual(m.unnamed);
    // CheckReferenced reads the new chunks' records too: stored as their own objects, nothing else says they are there.
    expect([...new Set(getChunks)].sort()).toEqual([...m.unnamed, ...m.fresh].sort());
  }, 180_000);

  it("refuses a new chunk the manifest places in a pack whose index does not hold it, naming the chunk, a file using it and the pack", async () => {
    // Prepare: a push in several small packs, and a copy of its manifest with one new chunk moved to the next pack
    const config = { ...stack.config, databaseId: GEN };
    const pushed = await snapshotPush({ kind: "generic", dir: tree("c", 12, 3000), streams: STREAMS }, config, clients, {
      packs: true,
      packTargetSize: 64 * 1024,
      timeoutMs: 120_000,
    });
    expect(pushed.packs!.uploaded).toBeGreaterThan(1);
    let moved: { sha256: string; to: string } | undefined;
    const key = await tamperedCopy(pushed, (chunks, packs) => {
      const c = chunks.find((x) => x.pack !== undefined)!;
      c.pack = (c.pack! + 1) % packs.length;
      moved = { sha256: c.sha256, to: packs[c.pack]! };
    });
    // Act
    const checked = checkAgain({ manifestKey: key });
    // Assess
    await expect(checked).rejects.toThrow(NotFoundError);
    await expect(checked).rejects.toThrow(
      new RegExp(`chunk ${moved!.sha256} used by file "f\\d+" is not in the vault: the manifest places it in pack ${moved!.to}, whose index does not hold it`),
    );
  }, 180_000);

  it("still refuses a reused chunk the catalog does not have (now at CheckReferenced), naming it and a file using it", async () => {
    // Prepare: two packed pushes sharing half their files, and a copy of the second's manifest where one reused chunk has a name nobody stored.
    const config = { ...stack.config, databaseId: GEN };
    await snapshotPush({ kind: "generic", dir: tree("d1", 12, 7000), streams: STREAMS }, config, clients, { packs: true, timeoutMs: 120_000 });
    const pushed = await snapshotPush({ kind: "generic", dir: tree("d2", 12, 8000), streams: STREAMS }, config, clients, { packs: true, timeoutMs: 120_000 });
    const unknown = sha256Hex(Buffer.from("a chunk nobody stored"));
    const key = await tamperedCopy(pushed, (chunks, _packs, files) => {
      // A file of one reused chunk (its sha256 is that chunk's, so it changes with it).
      const f = files.find((x) => x.chunks.length === 1 && x.chunks[0]!.new !== true && chunks.filter((y) => y.sha256 === x.chunks[0]!.sha256).length === 1)!;
      f.chunks[0]!.sha256 = unknown;
      f.sha256 = unknown;
    });
    // Act
    const checked = checkAgain({ manifestKey: key });
    // Assess
    await expect(checked).rejects.toThrow(NotFoundError);
    await expect(checked).rejects.toThrow(new RegExp(`${unknown}.*"f\\d+"`));
  }, 180_000);
});
