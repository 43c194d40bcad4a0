/**
 * Child process that runs s3rver for local/emulators.ts (startS3).
 *
 * Started as `node --openssl-legacy-provider dist/local/s3rver-child.js <json>`
 * with an IPC channel: s3rver's ListObjectsV2 continuation tokens are DES
 * encrypted, which OpenSSL 3 only allows with the legacy provider, and the
 * flag cannot be turned on inside a running process. Messages to the parent:
 *   { type: "ready", port }                 listening
 *   { type: "event", event }                an s3rver S3-notification payload
 *   { type: "error", message }              startup failed (then exit 1)
 * The child exits when the IPC channel closes (parent gone) or on SIGTERM.
 *
 * One change to s3rver 3.7.1, so that it fails where S3 would and nowhere
 * else: a PUT replaces an object atomically (atomicPuts). s3rver opened the
 * object's file for writing (truncating it) before the body arrived, so a PUT
 * cut off by a stopped or killed s3rver left the previous object truncated
 * under its previous metadata, and a reader saw bytes S3 can never serve (an
 * ingest then quarantined a good re-upload: "decodes to 0 bytes, not the
 * 1048576 it claims", a fault test's s3rver-down round).
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname } from "node:path";

interface S3rverOptions {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  configureBuckets: { name: string }[];
  allowMismatchedSignatures?: boolean;
}

interface S3rverInstance {
  run(): Promise<{ port: number; address: string }>;
  close(): Promise<void>;
  on(event: "event", listener: (payload: unknown) => void): void;
}

export interface S3rverChildConfig {
  port: number;
  directory: string;
  buckets: string[];
}

export type S3rverChildMessage =
  | { type: "ready"; port: number }
  | { type: "event"; event: unknown }
  | { type: "error"; message: string };

interface StoredObject {
  bucket: string;
  key: string;
  content: Buffer | NodeJS.ReadableStream;
  metadata: unknown;
}

interface FilesystemStoreLike {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
}

/** How much of a PUT's body s3rver holds before writing it (a pack: 16 MiB at most in memory). */
const WRITE_BATCH_BYTES = 8 << 20;

/**
 * s3rver's FilesystemStore.putObject, writing the body to a temporary file
 * beside the object (a name s3rver does not list) and renaming it into place
 * only once the whole body arrived: a cut-off PUT leaves the previous object
 * whole (the request fails, no event is sent, the temporary file is removed
 * or, if the process was killed, left unlisted).
 */
function atomicPuts(require: NodeJS.Require): void {
  const store = require("s3rver/lib/stores/filesystem.js") as { prototype: FilesystemStoreLike & { putObject(o: StoredObject): Promise<{ size: number; md5: string }> } };
  store.prototype.putObject = async function putObject(this: FilesystemStoreLike, object: StoredObject) {
    const objectPath = this.getResourcePath(object.bucket, object.key, "object");
    await mkdir(dirname(objectPath), { recursive: true });
    const temporary = `${objectPath}.${randomUUID()}.incomplete`;
    const md5 = createHash("md5");
    let size = 0;
    try {
      if (Buffer.isBuffer(object.content)) {
        md5.update(object.content);
        size = object.content.length;
        await writeFile(temporary, object.content);
      } else {
        // The body's pieces are written WRITE_BATCH_BYTES at a time, each batch with one writev: a write stream
        // wrote each 64 KiB piece as it came (~25 writes, each a thread-pool round trip, per 1.5 MiB WAL segment).
        // The iteration rejects when the request ends early (aborted, closed): nothing is renamed into place.
        const file = await open(temporary, "w");
        try {
          let batch: Buffer[] = [];
          let batched = 0;
          for await (const piece of object.content as AsyncIterable<Buffer>) {
            md5.update(piece);
            size += piece.length;
            batch.push(piece);
            batched += piece.length;
            if (batched >= WRITE_BATCH_BYTES) {
              await file.writev(batch);
              batch = [];
              batched = 0;
            }
          }
          if (batch.length > 0) await file.writev(batch);
        } finally {
          await file.close();
        }
      }
      await rename(temporary, objectPath);
    } catch (e) {
      await rm(temporary, { force: true });
      throw e;
    }
    const digest = md5.digest("hex");
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

function send(msg: S3rverChildMessage): void {
  if (process.send && process.connected) process.send(msg);
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error("usage: s3rver-child.js '<json config>'");
  const config = JSON.parse(raw) as S3rverChildConfig;

  const require = createRequire(import.meta.url);
  atomicPuts(require);
  const S3rver = require("s3rver") as new (options: S3rverOptions) => S3rverInstance;
  const server = new S3rver({
    address: "127.0.0.1",
    port: config.port,
    directory: config.directory,
    silent: true,
    configureBuckets: config.buckets.map((name) => ({ name })),
  });
  server.on("event", (event) => send({ type: "event", event }));

  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on("disconnect", shutdown);
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);

  const address = await server.run();
  send({ type: "ready", port: address.port });
}

main().catch((e: unknown) => {
  send({ type: "error", message: e instanceof Error ? e.message : String(e) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
