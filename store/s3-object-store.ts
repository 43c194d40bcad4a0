/**
 * ObjectStore on Amazon S3 (and on s3rver for the local stack), with the AWS
 * SDK v3. One instance talks to one endpoint/region.
 *
 * Notes that matter:
 * - Checksums are computed and validated only WHEN_REQUIRED: the SDK's
 *   default (since 3.729) frames bodies as aws-chunked with trailing CRC32
 *   checksums, which s3rver stores verbatim. walvault carries its own SHA-256
 *   of the raw bytes in object metadata and checks it on every read.
 * - Bodies are read fully into a Buffer; a body shorter than its
 *   Content-Length is an error, never a partial result.
 * - Every rejection is a WalvaultError (core/errors.ts) with the SDK error as
 *   `cause`.
 */
import { isNetworkError } from "./aws-errors.js";
import { createHash } from "node:crypto";
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { ConfigError, InvalidInputError, NotFoundError, ObjectArchivedError, ObjectLockedError, ServiceUnavailableError, type WalvaultError } from "../core/errors.js";
import type { GetOptions, ListedObject, ObjectInfo, ObjectRestore, ObjectStore, PutOptions, PutResult, RestoreRequest, StoredObject } from "./object-store.js";
import { SDK_LOGGER } from "./sdk-logger.js";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3ObjectStoreOptions {
  /** Name for messages (usually the region, or "local"). */
  name: string;
  region: string;
  /** Custom endpoint (s3rver on the local stack), e.g. http://127.0.0.1:4568. */
  endpoint?: string;
  credentials?: S3Credentials;
  /** Path-style addressing; defaults to true when an endpoint is given. */
  forcePathStyle?: boolean;
  /** SDK attempts per call (default: SDK default, 3). */
  maxAttempts?: number;
  /** ListObjectsV2 MaxKeys per page (default: S3's 1000). */
  listPageSize?: number;
  /** Called once with the new SDK client, before any call; the client it returns is used (a tracer's capture). */
  instrument?: <C extends object>(client: C) => C;
}

export interface S3ObjectStoreFromClient {
  name: string;
  client: S3Client;
  /** Endpoint or region text for error messages (default: name). */
  where?: string;
  listPageSize?: number;
}

/** The S3Client configuration walvault uses everywhere (agent, functions, local stack). */
export function s3ClientConfig(opts: Omit<S3ObjectStoreOptions, "name" | "listPageSize" | "instrument">): S3ClientConfig {
  return {
    region: opts.region,
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
    ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
    forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
    ...(opts.maxAttempts === undefined ? {} : { maxAttempts: opts.maxAttempts }),
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    logger: SDK_LOGGER,
  };
}

export function createS3Client(opts: Omit<S3ObjectStoreOptions, "name" | "listPageSize">): S3Client {
  return new S3Client(s3ClientConfig(opts));
}


function errorName(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const err = e as { name?: unknown; Code?: unknown };
  if (typeof err.Code === "string") return err.Code;
  return typeof err.name === "string" ? err.name : undefined;
}

function httpStatus(e: unknown): number | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isMissing(e: unknown): boolean {
  const name = errorName(e);
  if (name === "NoSuchKey" || name === "NotFound" || name === "NoSuchVersion") return true;
  // HEAD has no body, so the SDK can only see the status; a missing bucket is named.
  return httpStatus(e) === 404 && name !== "NoSuchBucket";
}

function firstLine(e: unknown): string {
  if (e instanceof Error) return (e.message.split("\n")[0] ?? "").trim() || e.name;
  return String(e);
}

/** S3's x-amz-restore header: `ongoing-request="true"`, or `ongoing-request="false", expiry-date="<HTTP date>"`. */
export function parseRestoreHeader(header: string | undefined): ObjectRestore | undefined {
  if (header === undefined || header === "") return undefined;
  const ongoing = /ongoing-request\s*=\s*"true"/i.test(header);
  const expiry = /expiry-date\s*=\s*"([^"]+)"/i.exec(header)?.[1];
  const at = expiry === undefined ? undefined : new Date(expiry);
  return { ongoing, ...(at !== undefined && !Number.isNaN(at.getTime()) ? { expiry: at } : {}) };
}

function copySourceOf(bucket: string, key: string, versionId?: string): string {
  // Per-segment encoding keeps '/' literal: s3rver decodes the header with decodeURI, which leaves %2F alone.
  const path = `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  return versionId === undefined ? path : `${path}?versionId=${encodeURIComponent(versionId)}`;
}

/**
 * A GetObject body's bytes. With its length known (ContentLength, or the
 * range asked for), they are copied into one buffer of that size as they
 * arrive: transformToByteArray keeps every piece and then copies them into
 * one array, so a 16 MiB pack or an 8 MiB coalesced restore read briefly
 * took twice its size (and the copy's CPU); `into` (GetOptions.bodyBuffer)
 * may lend that buffer. A body of another length comes back whole as it
 * arrived, for the caller's check to name.
 */
async function readBody(body: unknown, expected: number | undefined, into?: GetOptions["bodyBuffer"]): Promise<Uint8Array> {
  if (body === undefined || body === null) return new Uint8Array(0);
  const b = body as { transformToByteArray(): Promise<Uint8Array>; [Symbol.asyncIterator]?: () => AsyncIterator<Uint8Array> };
  if (expected === undefined || typeof b[Symbol.asyncIterator] !== "function") return b.transformToByteArray();
  const lent = into?.(expected);
  const out = lent !== undefined && lent.length >= expected ? lent.subarray(0, expected) : Buffer.allocUnsafeSlow(expected);
  let n = 0;
  let more: Uint8Array[] | undefined;
  for await (const piece of b as AsyncIterable<Uint8Array>) {
    if (more === undefined && n + piece.byteLength <= expected) {
      out.set(piece, n);
      n += piece.byteLength;
    } else (more ??= []).push(piece);
  }
  if (more !== undefined) return Buffer.concat([out.subarray(0, n), ...more]);
  return n === expected ? out : out.subarray(0, n);
}

/**
 * SigV4 signs a body through its SHA-256 (x-amz-content-sha256), which the
 * SDK computes by hashing the body unless the request carries it: a put whose
 * body's SHA-256 the caller knows (a direct WAL object's, a pack's) sets it,
 * and the body is not hashed once more (~1 ms of CPU per 1.5 MiB segment).
 * S3 refuses a body that does not match it.
 */
function presetPayloadHash(command: PutObjectCommand, sha256: string): void {
  command.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers["x-amz-content-sha256"] = sha256;
      return next(args);
    },
    { step: "build", name: "walvaultPresetPayloadHash" },
  );
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class S3ObjectStore implements ObjectStore {
  readonly name: string;
  /** The SDK client, for operations outside the ObjectStore contract (tests). */
  readonly client: S3Client;
  private readonly where: string;
  private readonly listPageSize: number | undefined;

  constructor(opts: S3ObjectStoreOptions | S3ObjectStoreFromClient) {
    this.name = opts.name;
    this.listPageSize = opts.listPageSize;
    if ("client" in opts) {
      this.client = opts.client;
      this.where = opts.where ?? opts.name;
    } else {
      const client = createS3Client(opts);
      this.client = opts.instrument ? opts.instrument(client) : client;
      this.where = opts.endpoint ?? `region ${opts.region}`;
    }
  }

  /** Maps any SDK failure onto the error catalogue. */
  private fail(op: string, target: string, e: unknown): WalvaultError {
    if (isNetworkError(e)) {
      const hint = this.where.startsWith("http://127.0.0.1") || this.where.startsWith("http://localhost")
        ? " (is the local stack running? `walvault local up`)"
        : "";
      return new ServiceUnavailableError(`cannot reach S3 at ${this.where}${hint}: ${firstLine(e)}`, { cause: e });
    }
    const name = errorName(e);
    if (name === "NoSuchKey" || name === "NoSuchVersion") {
      return new NotFoundError(`${target} does not exist at ${this.where} (${op})`, { cause: e });
    }
    if (name === "InvalidObjectState") {
      return new ObjectArchivedError(
        `${target} is archived (GLACIER or DEEP_ARCHIVE) and has no restored copy at ${this.where} (${op}): run the restore workflow with thaw ("thaw": true in its input) and restore once it is done`,
        { cause: e },
      );
    }
    if (name === "NoSuchBucket") {
      return new ConfigError(`S3 bucket for ${target} does not exist at ${this.where}`, { cause: e });
    }
    if (name === "CredentialsProviderError" || name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch") {
      return new ConfigError(`S3 at ${this.where} rejected the credentials (${op} ${target}): ${firstLine(e)}`, { cause: e });
    }
    if (op === "DeleteObject" && (name === "AccessDenied" || httpStatus(e) === 403)) {
      return new ObjectLockedError(`S3 at ${this.where} refused to delete ${target} (Object Lock retention or a policy protects it): ${firstLine(e)}`, { cause: e });
    }
    if (name === "AccessDenied" || httpStatus(e) === 403) {
      return new ConfigError(`S3 at ${this.where} denied ${op} on ${target}: ${firstLine(e)}`, { cause: e });
    }
    return new ServiceUnavailableError(`S3 ${op} of ${target} failed at ${this.where}: ${name ?? "error"}: ${firstLine(e)}`, {
      cause: e,
    });
  }

  async put(bucket: string, key: string, body: Uint8Array, metadata: Record<string, string>, options: PutOptions = {}): Promise<PutResult> {
    try {
      // An integrity header on every put: S3 requires one for writes to buckets with Object Lock
      // (the vaults): "The Content-MD5 or x-amz-sdk-checksum-algorithm header is required" (S3 user
      // guide), "Content-MD5 OR x-amz-checksum- HTTP header is required" (its error), both of which
      // this sends (docs/decisions.md "SHA-256, not MD5, on every put"). The SDK's own checksums are off
      // (WHEN_REQUIRED: s3rver would store aws-chunked framing). It is the body's SHA-256 as S3's
      // full-object checksum, sent as a plain header (no aws-chunked trailer), so S3 rejects a body
      // that does not match it (s3rver does not check) and keeps it for HEAD; the same value is the
      // SigV4 payload hash. A caller that knows it (a pack: its name) passes it; else it is computed
      // here: SHA-256 runs at ~1.7 GB/s on this machine, MD5 (what Content-MD5 needs) at ~0.77, and
      // every byte a push or ingest writes goes through this.
      const sha256 = options.sha256 ?? createHash("sha256").update(body).digest("hex");
      const command = new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentLength: body.byteLength,
        ChecksumAlgorithm: "SHA256",
        ChecksumSHA256: Buffer.from(sha256, "hex").toString("base64"),
        Metadata: metadata,
        ...(options.createOnly ? { IfNoneMatch: "*" } : {}),
      });
      presetPayloadHash(command, sha256);
      const out = await this.client.send(command);
      return { ...(out.VersionId ? { versionId: out.VersionId } : {}), ...(out.ETag ? { etag: out.ETag } : {}) };
    } catch (e) {
      // 412: the key exists and createOnly asked not to replace it.
      if (options.createOnly && (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) return { existed: true };
      throw this.fail("PutObject", `s3://${bucket}/${key}`, e);
    }
  }

  async get(bucket: string, key: string, versionId?: string, options: GetOptions = {}): Promise<StoredObject | undefined> {
    const target = `s3://${bucket}/${key}`;
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, ...(versionId === undefined ? {} : { VersionId: versionId }) }),
      );
      const bytes = await readBody(out.Body, out.ContentLength, options.bodyBuffer);
      if (out.ContentLength !== undefined && bytes.byteLength !== out.ContentLength) {
        throw new ServiceUnavailableError(
          `S3 GetObject of ${target} at ${this.where} returned ${bytes.byteLength} of ${out.ContentLength} bytes`,
        );
      }
      return {
        key,
        size: bytes.byteLength,
        metadata: lowerKeys(out.Metadata),
        ...(out.VersionId ? { versionId: out.VersionId } : {}),
        ...(out.ETag ? { etag: out.ETag } : {}),
        ...(out.LastModified ? { lastModified: out.LastModified } : {}),
        body: toBuffer(bytes),
      };
    } catch (e) {
      if (e instanceof ServiceUnavailableError) throw e;
      if (isMissing(e)) return undefined;
      throw this.fail("GetObject", target, e);
    }
  }

  async getRange(bucket: string, key: string, start: number, end: number, options: GetOptions = {}): Promise<Buffer | undefined> {
    const target = `s3://${bucket}/${key}`;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new InvalidInputError(`byte range ${start}-${end} of ${target} is not a range`);
    }
    const want = end - start + 1;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}` }));
      const bytes = await readBody(out.Body, want, options.bodyBuffer);
      if (bytes.byteLength !== want) {
        // S3 shortens a range that runs past the end; a body of any other length is a fault.
        const total = /\/(\d+)$/.exec(out.ContentRange ?? "")?.[1];
        if (total !== undefined && Number(total) <= end) {
          throw new InvalidInputError(`byte range ${start}-${end} of ${target} runs past its end (${total} bytes)`);
        }
        throw new ServiceUnavailableError(`S3 GetObject of bytes ${start}-${end} of ${target} at ${this.where} returned ${bytes.byteLength} of ${want} bytes`);
      }
      return toBuffer(bytes);
    } catch (e) {
      if (e instanceof ServiceUnavailableError || e instanceof InvalidInputError) throw e;
      if (isMissing(e)) return undefined;
      if ((e as { name?: string }).name === "InvalidRange" || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) {
        throw new InvalidInputError(`byte range ${start}-${end} of ${target} starts past its end`, { cause: e });
      }
      throw this.fail("GetObject", target, e);
    }
  }

  async head(bucket: string, key: string, versionId?: string, options: { checksum?: boolean } = {}): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(versionId === undefined ? {} : { VersionId: versionId }),
          ...(options.checksum ? { ChecksumMode: "ENABLED" as const } : {}),
        }),
      );
      const restore = parseRestoreHeader(out.Restore);
      return {
        key,
        size: out.ContentLength ?? 0,
        metadata: lowerKeys(out.Metadata),
        ...(out.VersionId ? { versionId: out.VersionId } : {}),
        ...(out.ETag ? { etag: out.ETag } : {}),
        ...(out.LastModified ? { lastModified: out.LastModified } : {}),
        ...(options.checksum && out.ChecksumSHA256 ? { sha256: Buffer.from(out.ChecksumSHA256, "base64").toString("hex") } : {}),
        ...(out.StorageClass && out.StorageClass !== "STANDARD" ? { storageClass: out.StorageClass } : {}),
        ...(restore === undefined ? {} : { restore }),
      };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw this.fail("HeadObject", `s3://${bucket}/${key}`, e);
    }
  }

  async requestRestore(bucket: string, key: string, request: RestoreRequest): Promise<void> {
    const target = `s3://${bucket}/${key}`;
    try {
      await this.client.send(
        new RestoreObjectCommand({ Bucket: bucket, Key: key, RestoreRequest: { Days: request.days, GlacierJobParameters: { Tier: request.tier } } }),
      );
    } catch (e) {
      const name = errorName(e);
      // Already being restored, or nothing to restore (not in an archive class): the request is satisfied.
      if (name === "RestoreAlreadyInProgress" || name === "InvalidObjectState") return;
      // An emulator without archive classes (s3rver answers 501 NotImplemented): nothing to restore if the object exists.
      const noArchive = name === "NotImplemented" || httpStatus(e) === 501;
      if (isMissing(e) || (noArchive && (await this.head(bucket, key)) === undefined)) {
        throw new NotFoundError(`${target} does not exist at ${this.where} (RestoreObject)`, { cause: e });
      }
      if (noArchive) return;
      throw this.fail("RestoreObject", target, e);
    }
  }

  async copy(
    from: { bucket: string; key: string; versionId?: string },
    to: { bucket: string; key: string },
  ): Promise<PutResult> {
    try {
      const out = await this.client.send(
        new CopyObjectCommand({
          Bucket: to.bucket,
          Key: to.key,
          CopySource: copySourceOf(from.bucket, from.key, from.versionId),
          MetadataDirective: "COPY",
        }),
      );
      const etag = out.CopyObjectResult?.ETag;
      return { ...(out.VersionId ? { versionId: out.VersionId } : {}), ...(etag ? { etag } : {}) };
    } catch (e) {
      throw this.fail("CopyObject", `s3://${from.bucket}/${from.key} -> s3://${to.bucket}/${to.key}`, e);
    }
  }

  async delete(bucket: string, key: string, versionId?: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteObjectCommand({ Bucket: bucket, Key: key, ...(versionId === undefined ? {} : { VersionId: versionId }) }),
      );
    } catch (e) {
      if (isMissing(e)) return;
      throw this.fail("DeleteObject", `s3://${bucket}/${key}`, e);
    }
  }

  async *list(bucket: string, prefix: string): AsyncIterable<ListedObject> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
            ...(this.listPageSize === undefined ? {} : { MaxKeys: this.listPageSize }),
          }),
        );
      } catch (e) {
        throw this.fail("ListObjectsV2", `s3://${bucket}/${prefix}`, e);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, ...(o.LastModified ? { lastModified: o.LastModified } : {}) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
}

function lowerKeys(meta: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) out[k.toLowerCase()] = v;
  return out;
}
