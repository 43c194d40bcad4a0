/**
 * A fast check that a parsed manifest page has the shape manifestPageSchema
 * (core/manifest-pages.ts) accepts, written out by hand: zod's walk of a page
 * of 2,048 chunk references allocates a context and a result per field, ~10
 * ms a page, ~35% of a restore's old-generation garbage, and every page is
 * checked by the agent before upload, by ingest, and by restore's refusal
 * pass (measured at pgbench scale 100: ~0.3 s of the push's manifest phase).
 *
 * It only ever says yes for what the schema accepts as it is (the schemas
 * are strict and transform nothing, so the accepted JSON is the parsed
 * page); anything it is not sure of it leaves to the schema (false), which
 * stays the one source of the error messages. Each rule below mirrors the
 * schema's field of the same name; test/core/page-shape.test.ts holds the
 * two to that (every value this accepts, the schema accepts). Pure.
 */
import { datetimeRegex } from "zod";
import { CODEC_NAMES } from "./codec.js";
import { SHA256_RE } from "./hash.js";
import { assertSnapshotId, DATABASE_ID_RE } from "./keys.js";
import { linkTargetProblem, MAX_MODE, pathProblem } from "./snapshot.js";
import type { ManifestPage } from "./manifest-pages.js";

/** z.string().datetime()'s own pattern (no offset, any precision). */
const ISO_TIME_RE = datetimeRegex({ precision: null, offset: false, local: false });
const CODECS: ReadonlySet<unknown> = new Set(CODEC_NAMES);

const PAGE_KEYS = new Set(["formatVersion", "databaseId", "snapshotId", "page", "entries"]);
const FILE_KEYS = new Set(["path", "type", "mode", "mtime", "size", "sha256", "chunking", "chunks", "part"]);
const DIRECTORY_KEYS = new Set(["path", "type", "mode", "mtime"]);
const SYMLINK_KEYS = new Set(["path", "type", "mtime", "linkTarget"]);
const CHUNK_KEYS = new Set(["sha256", "size", "storedSize", "codec", "new", "pack", "reusedPack"]);

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Only keys of `allowed` (a strict object). */
function onlyKeys(o: Json, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return Object.getPrototypeOf(o) === Object.prototype;
}

/** count: an integer, 0 or more, at most MAX_SAFE_INTEGER. */
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
/** positive: an integer, 1 or more, at most MAX_SAFE_INTEGER. */
const isPositive = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 1;
const isSha256 = (v: unknown): boolean => typeof v === "string" && SHA256_RE.test(v);
const isMode = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_MODE;
const isTime = (v: unknown): boolean => typeof v === "string" && ISO_TIME_RE.test(v);
const isPath = (v: unknown): boolean => typeof v === "string" && pathProblem(v) === undefined;

function isSnapshotId(v: unknown): boolean {
  if (typeof v !== "string") return false;
  try {
    assertSnapshotId(v);
    return true;
  } catch {
    return false;
  }
}

/** chunkRecordSchema. */
function isChunk(c: unknown): boolean {
  if (!isObject(c) || !onlyKeys(c, CHUNK_KEYS)) return false;
  if (!isSha256(c["sha256"]) || !isPositive(c["size"]) || !isPositive(c["storedSize"]) || !CODECS.has(c["codec"])) return false;
  if ("new" in c && c["new"] !== true) return false;
  if ("pack" in c && !isCount(c["pack"])) return false;
  return !("reusedPack" in c) || isCount(c["reusedPack"]);
}

/** pageEntrySchema: a file (pagedFileEntrySchema), a directory or a symlink. */
function isEntry(e: unknown): boolean {
  if (!isObject(e)) return false;
  switch (e["type"]) {
    case "file": {
      if (!onlyKeys(e, FILE_KEYS) || !isPath(e["path"]) || !isMode(e["mode"]) || !isTime(e["mtime"]) || !isCount(e["size"]) || ("sha256" in e && !isSha256(e["sha256"]))) return false;
      if ("chunking" in e && e["chunking"] !== "blocks") return false;
      if ("part" in e && !isPositive(e["part"])) return false;
      const chunks = e["chunks"];
      if (!Array.isArray(chunks)) return false;
      for (const c of chunks) if (!isChunk(c)) return false;
      return true;
    }
    case "directory":
      return onlyKeys(e, DIRECTORY_KEYS) && isPath(e["path"]) && isMode(e["mode"]) && isTime(e["mtime"]);
    case "symlink":
      return onlyKeys(e, SYMLINK_KEYS) && isPath(e["path"]) && isTime(e["mtime"]) && typeof e["linkTarget"] === "string" && linkTargetProblem(e["linkTarget"]) === undefined;
    default:
      return false;
  }
}

/** Whether manifestPageSchema (format `formatVersion`) accepts `json` as it is; false: ask the schema (it may still accept, and it says why not). */
export function isPageShape(json: unknown, formatVersion: number): json is ManifestPage {
  if (!isObject(json) || !onlyKeys(json, PAGE_KEYS)) return false;
  if (json["formatVersion"] !== formatVersion || typeof json["databaseId"] !== "string" || !DATABASE_ID_RE.test(json["databaseId"])) return false;
  if (!isSnapshotId(json["snapshotId"]) || !isCount(json["page"])) return false;
  const entries = json["entries"];
  if (!Array.isArray(entries) || entries.length === 0) return false;
  for (const e of entries) if (!isEntry(e)) return false;
  return true;
}
