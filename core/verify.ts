/**
 * Verification of a WAL object's bytes against what it claims: the codec it
 * names decodes it, the decoded bytes have the claimed SHA-256 and size, and
 * the size is right for the kind of file. Pure (no I/O beyond codecs).
 */
import { decodeWith } from "./codec.js";
import { ChecksumMismatchError, InvalidInputError } from "./errors.js";
import { sha256Hex } from "./hash.js";
import { objectMetaSchema, META_BACKLOG, META_CODEC, META_SHA256, META_SIZE } from "./schemas.js";
import type { CodecName } from "./codec.js";
import { parseHistoryFile } from "./timeline.js";
import { formatLsn, segmentStartLsn, type WalFileName } from "./wal.js";
import type { ZstdInto } from "./zstd-into.js";

export interface ClaimedMeta {
  sha256: string;
  codec: CodecName;
  size: number;
}

/** Reads walvault's metadata off an object; anything missing or malformed is an InvalidInputError. */
export function parseObjectMeta(metadata: Record<string, string>, what: string): ClaimedMeta {
  const r = objectMetaSchema.safeParse(metadata);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new InvalidInputError(
      `${what} has missing or malformed walvault metadata (${issue?.path.join(".") ?? "?"}: ${issue?.message ?? "invalid"})`,
    );
  }
  return { sha256: r.data[META_SHA256], codec: r.data[META_CODEC], size: Number(r.data[META_SIZE]) };
}

/** The largest backlog META_BACKLOG may report: more .ready files than a host could hold is not a reading. */
export const MAX_BACKLOG = 10_000_000;

/**
 * The archive backlog an upload reports (META_BACKLOG), or undefined when it
 * reports none or something that is not a count: telemetry, so a malformed
 * value is ignored rather than held against the WAL it rides on.
 */
export function parseBacklogMeta(metadata: Readonly<Record<string, string>>): number | undefined {
  const v = metadata[META_BACKLOG];
  if (v === undefined || !/^\d{1,8}$/.test(v)) return undefined;
  const n = Number(v);
  return n <= MAX_BACKLOG ? n : undefined;
}

/** Metadata to write on an object. */
export function objectMeta(meta: ClaimedMeta): Record<string, string> {
  return { [META_SHA256]: meta.sha256, [META_CODEC]: meta.codec, [META_SIZE]: String(meta.size) };
}

/** Size rules per kind: segments are exactly one segment; nothing is empty; partials fit in a segment. */
export function checkWalSize(file: WalFileName, size: number, segmentSize: number): void {
  if (size === 0) throw new InvalidInputError(`${file.name} is empty`);
  // PostgreSQL renames a whole segment file to .partial (at promotion): it is a full segment too.
  if ((file.kind === "segment" || file.kind === "partial") && size !== segmentSize) {
    throw new InvalidInputError(
      `${file.name} is ${size} bytes but WAL ${file.kind === "partial" ? "segments (.partial ones included)" : "segments"} of this database are ${segmentSize} bytes`,
    );
  }
  if ((file.kind === "history" || file.kind === "backup") && size > 1 << 20) {
    throw new InvalidInputError(`${file.name} is ${size} bytes; ${file.kind} files are small text files`);
  }
}

const XLP_LONG_HEADER = 0x0002;
const LONG_PAGE_HEADER_SIZE = 40;

/**
 * A PostgreSQL segment (or .partial) starts with a long page header naming
 * the LSN of its first page and the segment size (XLogLongPageHeaderData,
 * little-endian: xlp_info @2, xlp_pageaddr @8, xlp_seg_size @32). A file
 * whose header disagrees with its name is a renamed or foreign file.
 */
export function checkPgWalHeader(file: WalFileName, raw: Uint8Array, segmentSize: number): void {
  if ((file.kind !== "segment" && file.kind !== "partial") || file.segno === undefined) return;
  const what = `${file.name} is not a PostgreSQL WAL segment of this name`;
  if (raw.length < LONG_PAGE_HEADER_SIZE) throw new InvalidInputError(`${what}: shorter than a page header`);
  const view = Buffer.from(raw.buffer, raw.byteOffset, LONG_PAGE_HEADER_SIZE);
  if ((view.readUInt16LE(2) & XLP_LONG_HEADER) === 0) {
    throw new InvalidInputError(`${what}: its first page has no long header`);
  }
  const pageAddr = view.readBigUInt64LE(8);
  const expected = segmentStartLsn(file.segno, segmentSize);
  if (pageAddr !== expected) {
    throw new InvalidInputError(`${what}: its first page is at LSN ${formatLsn(pageAddr)}, the name says ${formatLsn(expected)}`);
  }
  const headerSegSize = view.readUInt32LE(32);
  if (headerSegSize !== segmentSize) {
    throw new InvalidInputError(`${what}: written with ${headerSegSize}-byte segments, the database has ${segmentSize}`);
  }
}

export interface VerifyOptions {
  /** Check PostgreSQL page headers (databases of kind "postgres"). */
  postgres: boolean;
}

/** Proves decoded bytes against the claim: its size and SHA-256 (ChecksumMismatchError). */
function checkDecoded(raw: Uint8Array, claimed: ClaimedMeta, what: string): void {
  if (raw.length !== claimed.size) {
    throw new ChecksumMismatchError(`${what} decodes to ${raw.length} bytes, not the ${claimed.size} it claims`);
  }
  const actual = sha256Hex(raw);
  if (actual !== claimed.sha256) {
    throw new ChecksumMismatchError(
      `${what} has SHA-256 ${actual.slice(0, 12)}…, not the ${claimed.sha256.slice(0, 12)}… it claims`,
    );
  }
}

/**
 * Decodes `encoded` with the claimed codec and proves the claimed size and
 * SHA-256. Returns the raw bytes. Throws CodecError,
 * ChecksumMismatchError or InvalidInputError.
 */
export async function verifyEncodedBytes(encoded: Uint8Array, claimed: ClaimedMeta, what: string): Promise<Buffer> {
  const raw = await decodeWith(claimed.codec, encoded, what, claimed.size);
  checkDecoded(raw, claimed, what);
  return raw;
}

/** The rules for the kind of PostgreSQL WAL file, on its proven raw bytes. */
function checkWalBytes(file: WalFileName, raw: Uint8Array, segmentSize: number, options: VerifyOptions): void {
  checkWalSize(file, raw.length, segmentSize);
  if (options.postgres) checkPgWalHeader(file, raw, segmentSize);
  if (file.kind === "history") parseHistoryFile(raw, file.timeline);
}

/**
 * Decodes `encoded` with the claimed codec and proves the claim, then the
 * rules for the kind of PostgreSQL WAL file. Returns the raw bytes. Throws
 * CodecError, ChecksumMismatchError or InvalidInputError.
 */
export async function verifyWalBytes(
  file: WalFileName,
  encoded: Uint8Array,
  claimed: ClaimedMeta,
  segmentSize: number,
  what: string,
  options: VerifyOptions,
): Promise<Buffer> {
  const raw = await verifyEncodedBytes(encoded, claimed, what);
  checkWalBytes(file, raw, segmentSize, options);
  return raw;
}

/**
 * verifyWalBytes (the same checks, the same errors), then `use` of the proven
 * raw bytes. A zstd object of up to KEPT_MAX_BYTES is decoded on `kept`'s
 * kept context into its reused output (core/zstd-into.ts): per 16 MiB
 * segment, no thread-pool round trip (measured ~30% less decode CPU) and no
 * segment-sized allocation, whose external memory brought a full garbage
 * collection of the sandbox's heap about once per segment. The bytes `use` is
 * given are then a view of that reused output: it runs synchronously right
 * after the checks (nothing else can decode into it meanwhile) and must not
 * keep them. Anything the kept context does not decode exactly (another
 * codec, a larger file, corrupt bytes) is decoded one-shot, as
 * verifyWalBytes does, and the errors are that path's.
 */
export async function withVerifiedWalBytes<T>(
  file: WalFileName,
  encoded: Uint8Array,
  claimed: ClaimedMeta,
  segmentSize: number,
  what: string,
  options: VerifyOptions & { kept: ZstdInto },
  use: (raw: Buffer) => T,
): Promise<T> {
  const raw = claimed.codec === "zstd" ? options.kept.decodeReused(encoded, claimed.size) : undefined;
  if (raw === undefined) return use(await verifyWalBytes(file, encoded, claimed, segmentSize, what, options));
  checkDecoded(raw, claimed, what);
  checkWalBytes(file, raw, segmentSize, options);
  return use(raw);
}
