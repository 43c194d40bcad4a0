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
 */
import { createRequire } from "node:module";

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

function send(msg: S3rverChildMessage): void {
  if (process.send && process.connected) process.send(msg);
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error("usage: s3rver-child.js '<json config>'");
  const config = JSON.parse(raw) as S3rverChildConfig;

  const require = createRequire(import.meta.url);
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
