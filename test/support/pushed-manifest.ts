/**
 * A pushed snapshot's manifest as the tests read it, whatever its format:
 * opened through store/manifest-pages.ts openManifest (format 2: the header
 * and every page, each checked against the header; format 1: the document),
 * with the files assembled in manifest order (a file split across pages
 * comes back as one entry). For small test snapshots only: it holds every
 * entry.
 */
import { sha256Hex } from "../../core/hash.js";
import { snapshotPageKey } from "../../core/keys.js";
import type { FileEntry, SnapshotManifest } from "../../core/snapshot.js";
import { parseObjectMeta } from "../../core/verify.js";
import { StoreManifestObjects, openManifest } from "../../store/manifest-pages.js";
import type { ObjectStore } from "../../store/object-store.js";

type WithoutVersion<M> = M extends unknown ? Omit<M, "formatVersion"> : never;

export type PushedManifest = WithoutVersion<SnapshotManifest> & {
  format: 1 | 2;
  /** Pages of format 2 (format 1: 0). */
  pages: number;
  /** Bytes of the manifest object and of every page object. */
  objectBytes: number;
};

export async function readPushedManifest(
  store: ObjectStore,
  bucket: string,
  pushed: { databaseId: string; snapshotId: string; manifestKey: string; manifestSha256?: string },
): Promise<PushedManifest> {
  const obj = await store.get(bucket, pushed.manifestKey);
  if (!obj) throw new Error(`manifest ${pushed.manifestKey} is not in ${bucket}`);
  const meta = parseObjectMeta(obj.metadata, pushed.manifestKey);
  if (meta.sha256 !== sha256Hex(obj.body) || meta.codec !== "none" || meta.size !== obj.body.length) {
    throw new Error(`manifest ${pushed.manifestKey}: its metadata does not describe its bytes`);
  }
  if (pushed.manifestSha256 !== undefined && meta.sha256 !== pushed.manifestSha256) throw new Error(`manifest ${pushed.manifestKey} is not the one pushed`);
  const opened = await openManifest(new StoreManifestObjects(store, bucket), pushed.manifestKey, { databaseId: pushed.databaseId, snapshotId: pushed.snapshotId });
  if (!opened) throw new Error(`manifest ${pushed.manifestKey} disappeared`);
  const files: FileEntry[] = [];
  for await (const e of opened.entries()) {
    const last = files.at(-1);
    if (e.type === "file" && e.part !== undefined && last?.type === "file" && last.path === e.path) {
      last.chunks.push(...e.chunks);
      continue;
    }
    if (e.type === "file") {
      const { part: _p, ...entry } = e;
      files.push({ ...entry, chunks: [...entry.chunks] });
    } else files.push(e);
  }
  let objectBytes = obj.body.length;
  for (let i = 0; i < opened.pageCount && opened.format === 2; i++) {
    const page = await store.head(bucket, snapshotPageKey(pushed.manifestKey, i));
    objectBytes += page?.size ?? 0;
  }
  return { ...opened.header, format: opened.format, pages: opened.format === 2 ? opened.pageCount : 0, objectBytes, files } as PushedManifest;
}
