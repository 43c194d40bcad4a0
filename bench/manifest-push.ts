/**
 * Memory of the agent's manifest step at scale, without the stack: REFS chunk
 * references (default 819,200: 100 GiB in 128 KiB blocks) in files of
 * PER_FILE blocks (1 GiB relation segments), the files finishing in reverse
 * tree order, then the format-2 manifest uploaded to a store that drops
 * every object. Both modes first hold what the chunk pipeline holds anyway
 * (one settled record per distinct chunk), then:
 *   - "builder": what a push did before: every file's chunk list, the
 *     SnapshotBuilder manifest, then pages cut from it (uploadManifest);
 *   - "spool": agent/manifest-spool.ts, pages streamed from a temporary
 *     file (uploadPagedManifest), what a push does now.
 *   node dist/bench/manifest-push.js builder|spool [REFS]
 * Prints pages, seconds, the RSS once the pipeline's records exist and the
 * peak RSS of the manifest step above it.
 */
import { hash } from "node:crypto";
import { ManifestSpool } from "../agent/manifest-spool.js";
import { uploadManifest, uploadPagedManifest } from "../agent/manifest-upload.js";
import { chunkerDescriptor } from "../core/chunking.js";
import { fileEntryOf, fixedBlocksDescriptor, manifestFieldsOf, SnapshotBuilder, type ChunkRecord, type SnapshotMeta } from "../core/snapshot.js";
import type { ObjectStore } from "../store/object-store.js";

const mode = process.argv[2];
const REFS = Number(process.argv[3] ?? 819_200);
const PER_FILE = 8192;
const BLOCK = 128 * 1024;
if (mode !== "builder" && mode !== "spool") throw new Error("usage: manifest-push.js builder|spool [REFS]");

let peak = 0;
const sample = (): void => void (peak = Math.max(peak, process.memoryUsage.rss()));
const timer = setInterval(sample, 20);

// What the pipeline holds anyway: one settled record per distinct chunk.
const seen = new Map<string, { size: number; storedSize: number; codec: "zstd"; isNew: boolean }>();
const shas: string[] = [];
for (let i = 0; i < REFS; i++) {
  const sha256 = hash("sha256", `chunk ${i}`, "hex");
  seen.set(sha256, { size: BLOCK, storedSize: 6000 + (i % 1000), codec: "zstd", isNew: true });
  shas.push(sha256);
}
global.gc?.();
const base = process.memoryUsage.rss();
peak = base;
const t0 = performance.now();
const files = Math.ceil(REFS / PER_FILE);
const meta: SnapshotMeta = {
  databaseId: "bench",
  snapshotId: "20261121T080000Z-00ff00",
  kind: "generic",
  startedAt: new Date("2026-11-21T08:00:00.000Z"),
  finishedAt: new Date("2026-11-21T08:30:00.000Z"),
  chunker: chunkerDescriptor(),
  blocks: fixedBlocksDescriptor(BLOCK),
  generic: { streams: [{ id: "wal", lastSegment: "wal/00000042.wal", lastSegno: 42 }] },
};
const drop = { put: async () => undefined } as unknown as ObjectStore;
const mtime = new Date("2026-11-20T12:00:00.000Z");
const name = (f: number): string => `data/${String(f).padStart(6, "0")}`;
const refsOf = (f: number): string[] => shas.slice(f * PER_FILE, Math.min(REFS, (f + 1) * PER_FILE));
let pages = 0;
if (mode === "builder") {
  const b = new SnapshotBuilder();
  b.addDirectory("data", 0o700, mtime);
  const pending: Array<{ path: string; slots: string[] }> = [];
  for (let f = files - 1; f >= 0; f--) pending.push({ path: name(f), slots: refsOf(f) });
  for (const p of pending) {
    const h = b.startFile(p.path, 0o600, mtime, { chunking: "blocks" });
    for (const s of p.slots) {
      const r = seen.get(s)!;
      h.addChunk({ sha256: s, size: r.size, storedSize: r.storedSize, codec: r.codec, isNew: r.isNew });
    }
    h.finish(hash("sha256", p.path, "hex"), p.slots.length * BLOCK);
  }
  const manifest = b.build(meta);
  pages = (await uploadManifest(drop, "bench", manifest, { paged: true })).pages!;
} else {
  const spool = new ManifestSpool();
  try {
    spool.entry({ path: "data", type: "directory", mode: 0o700, mtime: mtime.toISOString() });
    for (let f = files - 1; f >= 0; f--) {
      const file = spool.startFile();
      const refs = refsOf(f);
      for (const s of refs) file.add(s, BLOCK);
      file.finish({ ...fileEntryOf(name(f), 0o600, mtime, { chunking: "blocks" }), size: refs.length * BLOCK, sha256: hash("sha256", name(f), "hex") });
    }
    const resolve = (sha256: string, size: number): ChunkRecord => {
      const r = seen.get(sha256)!;
      return { sha256, size, storedSize: r.storedSize, codec: r.codec, ...(r.isNew ? { new: true as const } : {}) };
    };
    let storedBytes = 0;
    for (const r of seen.values()) storedBytes += r.storedSize;
    pages = (
      await uploadPagedManifest(drop, "bench", {
        fields: manifestFieldsOf(meta),
        write: (writer, emit) => spool.writeTo(writer, resolve, emit),
        distinct: () => ({ uniqueChunks: seen.size, storedBytes }),
      })
    ).pages!;
  } finally {
    spool.close();
  }
}
sample();
clearInterval(timer);
const MB = (n: number): number => Math.round(n / 1e5) / 10;
console.log(JSON.stringify({ mode, refs: REFS, files, pages, seconds: Math.round(performance.now() - t0) / 1000, pipelineRssMB: MB(base), manifestPeakAboveMB: MB(peak - base), peakRssMB: MB(peak) }));
