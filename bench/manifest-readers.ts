/**
 * Memory of a format-2 manifest reader (store/manifest-read.ts entryBatches,
 * what restore, verify and rebuild iterate): a synthetic generic snapshot of
 * REFS chunk references (default 819,200: 100 GiB in 128 KiB blocks) is
 * written page by page to a temporary directory (ManifestPageWriter, never
 * whole in memory), then read back in batches from files. Run with a small
 * old space to show the reader stays at about a page:
 *   node --max-old-space-size=48 dist/bench/manifest-readers.js [REFS]
 * Prints pages, references, distinct chunks per batch summed, seconds and
 * peak RSS.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chunkerDescriptor } from "../core/chunking.js";
import { sha256Hex } from "../core/hash.js";
import { snapshotPageKey } from "../core/keys.js";
import { ManifestPageWriter, serializePagedHeader, PAGED_FORMAT_VERSION, type PageRef, type PagedManifestHeader } from "../core/manifest-pages.js";
import { openManifest, type ManifestObjects } from "../store/manifest-pages.js";
import { entryBatches } from "../store/manifest-read.js";

const REFS = Number(process.argv[2] ?? 819_200);
const PER_FILE = 1024;
const CHUNK = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "walvault-manifest-readers-"));
const key = "db/bench/snapshots/20261121T080000Z-00ff00/manifest.json";
const path = (k: string): string => join(dir, k.replaceAll("/", "_"));
try {
  const ids = { databaseId: "bench", snapshotId: "20261121T080000Z-00ff00" };
  const writer = new ManifestPageWriter(ids);
  const refs: PageRef[] = [];
  const put = (pages: { index: number; text: string; ref: PageRef }[]): void => {
    for (const p of pages) {
      writeFileSync(path(snapshotPageKey(key, p.index)), p.text);
      refs.push(p.ref);
    }
  };
  const mtime = "2026-11-20T12:00:00.000Z";
  put(writer.add({ path: "data", type: "directory", mode: 0o700, mtime }));
  let files = 0;
  for (let left = REFS, f = 0; left > 0; f++) {
    const n = Math.min(PER_FILE, left);
    const chunks = Array.from({ length: n }, (_, j) => ({ sha256: sha256Hex(Buffer.from(`${f}/${j}`)), size: CHUNK, storedSize: CHUNK / 2, codec: "zstd" as const, new: true as const }));
    put(writer.add({ path: `data/${String(f).padStart(6, "0")}`, type: "file", mode: 0o600, mtime, size: n * CHUNK, sha256: sha256Hex(Buffer.from(`file ${f}`)), chunks }));
    files++;
    left -= n;
  }
  put(writer.finish());
  const header: PagedManifestHeader = {
    formatVersion: PAGED_FORMAT_VERSION,
    ...ids,
    kind: "generic",
    startedAt: "2026-11-21T08:00:00.000Z",
    finishedAt: "2026-11-21T08:00:03.000Z",
    chunker: chunkerDescriptor(),
    codec: "zstd",
    totals: { files, directories: 1, symlinks: 0, logicalBytes: REFS * CHUNK, chunks: REFS, uniqueChunks: REFS, newChunks: REFS, storedBytes: (REFS * CHUNK) / 2, newStoredBytes: (REFS * CHUNK) / 2 },
    generic: { streams: [{ id: "wal", lastSegment: "wal/1", lastSegno: 1 }] },
    pages: refs,
  } as PagedManifestHeader;
  writeFileSync(path(key), serializePagedHeader(header));
  const objects: ManifestObjects = {
    async get(k, maxBytes) {
      const p = path(k);
      if (!existsSync(p)) return undefined;
      if (statSync(p).size > maxBytes) throw new Error(`${k} is over ${maxBytes} bytes`);
      return readFileSync(p);
    },
  };
  globalThis.gc?.();
  const t0 = performance.now();
  let peak = process.memoryUsage().rss;
  const m = (await openManifest(objects, key))!;
  let batches = 0;
  let distinct = 0;
  for await (const b of entryBatches(m)) {
    batches++;
    distinct += b.chunks.length;
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  console.log(JSON.stringify({ pages: m.pageCount, refs: REFS, batches, distinct, seconds: +((performance.now() - t0) / 1000).toFixed(1), peakRssMB: Math.round(peak / 2 ** 20) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
