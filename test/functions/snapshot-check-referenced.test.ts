/**
 * CheckReferenced (functions/snapshot/check-referenced.ts) reads each chunk
 * record of a snapshot once: presence, the reused chunks' packs and a packed
 * push's new chunks are all checked on one getChunks read. The handler runs
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

/** A tree of `files` files of 5 blocks each (80 KiB, CDC-cut), half of them shared with the previous push's tree when `reuse`. */
function tree(name: string, files: number, seed: number): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "wal"), { recursive: true });
  writeFileSync(join(dir, "wal", "00000001.wal"), "wal");
  for (let i = 0; i < files; i++) writeFileSync(join(dir, `f${i}`), seededBytes(i < files / 2 ? i : seed + i, 80 * 1024));
  return dir;
}

async function checkAgain(pushed: SnapshotPushResult): Promise<{ out: CheckReferencedOutput; getChunks: string[]; missingChunks: string[] }> {
  const counting = recordingCalls(clients.catalog, ["getChunks", "missingChunks"]);
  // Every dependency is replaced; the environment is the stack's own (startLocalStack sets it), as the handlers' is.
  overrideDeps(stackDeps(stack, clients, counting.proxy));
  const event = {
    "detail-type": "Object Created",
    source: "aws.s3",
    detail: { bucket: { name: stack.config.incomingBucket }, object: { key: pushed.manifestKey } },
  };
  const { snapshot } = await validateManifest({ event });
  counting.calls.getChunks.length = 0;
  counting.calls.missingChunks.length = 0;
  let out: CheckReferencedOutput = { uniqueChunks: 0, checkedBackupLabel: false, next: 0, done: false };
  while (!out.done) out = await checkReferenced({ snapshot, progress: { next: out.next, uniqueChunks: out.uniqueChunks, checkedBackupLabel: out.checkedBackupLabel } });
  /** The hashes each lookup was asked for (the second argument of each call). */
  const hashes = (c: unknown[][]): string[] => c.flatMap((args) => args[1] as string[]);
  return { out, getChunks: hashes(counting.calls.getChunks), missingChunks: hashes(counting.calls.missingChunks) };
}

describe("CheckReferenced", () => {
  for (const format of [1, 2] as const) {
    it(`reads each chunk record of a packed snapshot once, new chunks and reused ones alike (format ${format})`, async () => {
      // Prepare: a first push, then one that reuses half its files' chunks
      const config = { ...stack.config, databaseId: GEN };
      await snapshotPush({ kind: "generic", dir: tree(`a${format}`, 12, 1000 * format), streams: STREAMS }, config, clients, { packs: true, manifestPages: format === 2, timeoutMs: 120_000 });
      const second = await snapshotPush({ kind: "generic", dir: tree(`b${format}`, 12, 2000 * format), streams: STREAMS }, config, clients, {
        packs: true,
        manifestPages: format === 2,
        timeoutMs: 120_000,
      });
      expect(second.totals.newChunks).toBeGreaterThan(0);
      expect(second.totals.newChunks).toBeLessThan(second.totals.uniqueChunks);
      // Act
      const { out, getChunks, missingChunks } = await checkAgain(second);
      // Assess
      expect(out.done).toBe(true);
      expect(missingChunks).toEqual([]);
      expect(getChunks).toHaveLength(second.totals.uniqueChunks);
      expect(new Set(getChunks).size).toBe(getChunks.length);
    }, 180_000);
  }
});
