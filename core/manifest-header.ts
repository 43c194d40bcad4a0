/**
 * A snapshot manifest without its file list: what every format-1 manifest
 * and every format-2 header (core/manifest-pages.ts) share. Readers that need
 * only these fields (planning, totals, streams, packs) take this type, so
 * they never need a manifest's files (store/manifest-read.ts reads only the
 * header for them). Distributive over the kinds, so `kind` still narrows.
 */
import type { SnapshotManifest } from "./snapshot.js";

type WithoutFiles<T> = T extends unknown ? Omit<T, "files" | "formatVersion"> : never;

export type SnapshotHeader = WithoutFiles<SnapshotManifest>;

/** The header fields of a whole (format 1) manifest. */
export function headerOf(manifest: SnapshotManifest): SnapshotHeader {
  const { files: _files, formatVersion: _v, ...header } = manifest;
  return header as SnapshotHeader;
}
