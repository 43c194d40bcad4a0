/**
 * The real local emulators, on loopback, for tests, benchmarks and the local
 * stack: s3rver (S3) in a child Node process and DynamoDB Local (AWS's jar)
 * in a Java process. Both die with their parent; one that dies on its own is
 * started again on its port (see "supervision").
 */
import { deadlineIn } from "../core/deadline.js";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { freePort } from "../agent/postgres.js";
import { ConfigError, describeError, ServiceUnavailableError, TimeoutError } from "../core/errors.js";
import type { S3rverChildConfig, S3rverChildMessage } from "./s3rver-child.js";

/** Credentials both emulators accept (s3rver checks them; DynamoDB Local does not). */
export const LOCAL_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
export const LOCAL_ACCOUNT = "000000000000";

/** A TCP port that was free a moment ago on 127.0.0.1 (agent/postgres.ts). */
export { freePort };

function waitForExit(child: ChildProcess, graceMs: number, kill: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(kill, graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// ------------------------------------------------------------- supervision
//
// An emulator child that dies while nobody stopped it (a crash, an OOM kill,
// a stray kill -9) is started again on the same port: its state is on disk
// (s3rver's directory, DynamoDB Local's -dbPath), and the endpoints written
// into the agent's configuration stay valid. Each restart is one line on
// stderr. A child that will not come back (RESTART_ATTEMPTS launches in a
// row fail, or it has crashed RESTART_BURST times within RESTART_WINDOW_MS)
// is reported to the onEmulatorFailure listeners: `walvault local up` then
// exits non-zero naming it, so a supervisor sees the stack is down.

/** Launches in a row that may fail before an emulator is given up. */
export const RESTART_ATTEMPTS = 3;
/** Crashes within RESTART_WINDOW_MS after which an emulator is given up (a crash loop). */
export const RESTART_BURST = 5;
export const RESTART_WINDOW_MS = 60_000;

/** An emulator that crashed and could not be started again. */
export interface EmulatorFailure {
  /** e.g. "s3rver (S3, region local-1)" or "DynamoDB Local". */
  emulator: string;
  port: number;
  error: Error;
}

const failureListeners = new Set<(f: EmulatorFailure) => void>();
/** Every emulator started by this process and not yet stopped. */
const running = new Set<{ stop(): Promise<void> }>();

/** Calls cb when an emulator of this process crashed and could not be restarted. Returns an unsubscribe function. */
export function onEmulatorFailure(cb: (f: EmulatorFailure) => void): () => void {
  failureListeners.add(cb);
  return () => failureListeners.delete(cb);
}

/** Stops every emulator this process started and has not stopped (for a start that failed half way). */
export async function stopAllEmulators(): Promise<void> {
  await Promise.allSettled([...running].map((e) => e.stop()));
}

/** Where restart lines go (stderr unless a test or caller says otherwise). */
let supervisionLog = (line: string): void => {
  process.stderr.write(`walvault local: ${line}\n`);
};
export function setSupervisionLog(log: (line: string) => void): void {
  supervisionLog = log;
}

/**
 * Watches one emulator child: when `exited` resolves and `stopping()` is
 * false, relaunches through `relaunch` (same port), up to the bounds above.
 * `relaunch` starts the replacement and returns its exit, watched in turn.
 */
function supervise(
  emulator: string,
  port: number,
  exited: Promise<string>,
  stopping: () => boolean,
  relaunch: () => Promise<{ exited: Promise<string> }>,
): void {
  const crashes: number[] = [];
  const watch = (exit: Promise<string>): void => {
    void exit.then(async (how) => {
      if (stopping()) return;
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - RESTART_WINDOW_MS) crashes.shift();
      if (crashes.length > RESTART_BURST) {
        giveUp(new ServiceUnavailableError(`${emulator} on port ${port} crashed ${crashes.length} times within ${RESTART_WINDOW_MS / 1000} s (last: ${how})`));
        return;
      }
      supervisionLog(`${emulator} on port ${port} exited unexpectedly (${how}); restarting it on the same port`);
      let last: unknown;
      for (let attempt = 1; attempt <= RESTART_ATTEMPTS; attempt++) {
        if (stopping()) return;
        try {
          watch((await relaunch()).exited);
          return;
        } catch (e) {
          last = e;
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
      giveUp(new ServiceUnavailableError(`${emulator} on port ${port} exited (${how}) and could not be restarted: ${describeError(last)}`, { cause: last }));
    });
  };
  const giveUp = (error: Error): void => {
    if (stopping()) return;
    supervisionLog(error.message);
    for (const cb of failureListeners) cb({ emulator, port, error });
  };
  watch(exited);
}

/** Resolves with how the child ended ("code 1", "signal SIGKILL") when it exits. */
function exitOf(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(describeExit(child.exitCode, child.signalCode));
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(describeExit(code, signal))));
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `signal ${signal}`;
  // DynamoDB Local's watchdog shell exits 128+n when Java died of signal n.
  const bySignal = code !== null && code > 128 ? Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] : undefined;
  return bySignal ? `signal ${bySignal}` : `code ${code ?? "none"}`;
}

// ---------------------------------------------------------------- S3 (s3rver)

/** EventBridge event AWS sends for an S3 "Object Created" notification. */
export interface S3ObjectCreatedEvent {
  version: "0";
  id: string;
  "detail-type": "Object Created";
  source: "aws.s3";
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: {
    version: "0";
    bucket: { name: string };
    object: { key: string; size?: number; etag?: string; sequencer?: string };
    "request-id": string;
    requester: string;
    "source-ip-address"?: string;
    reason: string;
  };
}

export type ObjectCreatedListener = (event: S3ObjectCreatedEvent) => void | Promise<void>;

export interface StartS3Options {
  /** 0 or absent: pick a free port. */
  port?: number;
  /** Where s3rver keeps buckets and objects. */
  directory: string;
  /** Buckets created before it listens (existing ones are kept). */
  buckets: string[];
  /** Region written into events (default us-east-1). */
  region?: string;
}

export interface S3Emulator {
  endpoint: string;
  port: number;
  region: string;
  /** Kills the child and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Calls cb for every object created (Put, Post, Copy, multipart). Returns an unsubscribe function. */
  onObjectCreated(cb: ObjectCreatedListener): () => void;
}

/** Where the compiled child lives: beside this module in dist/, or dist/local/ when this runs from source. */
function s3rverChildPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "s3rver-child.js"), join(here, "..", "dist", "local", "s3rver-child.js")];
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) {
    throw new ConfigError(`the s3rver child is not built (looked for ${candidates.join(", ")}): run \`npm run build\``);
  }
  return found;
}

interface RawS3Record {
  eventName?: string;
  eventTime?: string;
  awsRegion?: string;
  requestParameters?: { sourceIPAddress?: string };
  responseElements?: { "x-amz-request-id"?: string };
  s3?: { bucket?: { name?: string }; object?: { key?: string; size?: number; eTag?: string; sequencer?: string } };
}

/**
 * s3rver 3.7.1 puts the key into its events exactly as stored (already
 * decoded from the request path), unlike S3 notifications, which URL-encode
 * it. Decoding again would corrupt keys that contain '%' or '+', so the key
 * is passed through as is.
 */
function eventKey(key: string): string {
  return key;
}

const REASONS: Record<string, string> = {
  "ObjectCreated:Put": "PutObject",
  "ObjectCreated:Post": "POST Object",
  "ObjectCreated:Copy": "CopyObject",
  "ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
};

/** Converts one s3rver notification payload into EventBridge "Object Created" events. */
export function toEventBridgeEvents(payload: unknown, region: string): S3ObjectCreatedEvent[] {
  const records = (payload as { Records?: RawS3Record[] } | undefined)?.Records ?? [];
  const events: S3ObjectCreatedEvent[] = [];
  for (const r of records) {
    const eventName = r.eventName ?? "";
    if (!eventName.startsWith("ObjectCreated:")) continue;
    const bucket = r.s3?.bucket?.name;
    const rawKey = r.s3?.object?.key;
    if (bucket === undefined || rawKey === undefined) continue;
    const object = r.s3?.object ?? {};
    const time = (r.eventTime ?? new Date().toISOString()).replace(/\.\d+Z$/, "Z");
    const sourceIp = r.requestParameters?.sourceIPAddress;
    events.push({
      version: "0",
      id: randomUUID(),
      "detail-type": "Object Created",
      source: "aws.s3",
      account: LOCAL_ACCOUNT,
      time,
      region,
      resources: [`arn:aws:s3:::${bucket}`],
      detail: {
        version: "0",
        bucket: { name: bucket },
        object: {
          key: eventKey(rawKey),
          ...(object.size === undefined ? {} : { size: Number(object.size) }),
          ...(object.eTag === undefined ? {} : { etag: object.eTag.replace(/"/g, "") }),
          ...(object.sequencer === undefined ? {} : { sequencer: object.sequencer }),
        },
        "request-id": r.responseElements?.["x-amz-request-id"] ?? randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase(),
        requester: LOCAL_ACCOUNT,
        ...(sourceIp === undefined ? {} : { "source-ip-address": sourceIp }),
        reason: REASONS[eventName] ?? "PutObject",
      },
    });
  }
  return events;
}

/** One s3rver child, resolved once it listens. */
async function launchS3Child(
  config: S3rverChildConfig,
  region: string,
  deliver: (event: S3ObjectCreatedEvent) => void,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--openssl-legacy-provider", s3rverChildPath(), JSON.stringify(config)], {
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      reject(
        new ServiceUnavailableError(
          `s3rver exited before listening (code ${code ?? "none"}, signal ${signal ?? "none"})${stderr ? `: ${stderr.trim()}` : ""}`,
        ),
      );
    child.once("exit", onExit);
    child.once("error", (e) => reject(new ServiceUnavailableError(`cannot start s3rver: ${e.message}`, { cause: e })));
    child.on("message", (raw: S3rverChildMessage) => {
      if (raw.type === "ready") {
        child.off("exit", onExit);
        resolve(raw.port);
      } else if (raw.type === "error") {
        reject(new ServiceUnavailableError(`s3rver failed to start on port ${config.port}: ${raw.message}`));
      } else if (raw.type === "event") {
        for (const event of toEventBridgeEvents(raw.event, region)) deliver(event);
      }
    });
  }).catch(async (e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
  return { child, port };
}

/** Starts s3rver in a child process and resolves once it listens; a crashed child is restarted on the same port. */
export async function startS3(opts: StartS3Options): Promise<S3Emulator> {
  const region = opts.region ?? "us-east-1";
  await mkdir(opts.directory, { recursive: true });
  const config: S3rverChildConfig = { port: opts.port ?? 0, directory: opts.directory, buckets: opts.buckets };

  const listeners = new Set<ObjectCreatedListener>();
  const deliver = (event: S3ObjectCreatedEvent): void => {
    for (const cb of listeners) {
      try {
        Promise.resolve(cb(event)).catch((e: unknown) => reportListenerError(e));
      } catch (e) {
        reportListenerError(e);
      }
    }
  };

  let { child, port } = await launchS3Child(config, region, deliver);
  let stopped: Promise<void> | undefined;
  const emulator: S3Emulator = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    region,
    stop() {
      stopped ??= (async () => {
        running.delete(emulator);
        listeners.clear();
        const exited = waitForExit(child, 3000, () => child.kill("SIGKILL"));
        child.kill("SIGTERM");
        await exited;
      })();
      return stopped;
    },
    onObjectCreated(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
  };
  running.add(emulator);
  supervise(`s3rver (S3, region ${region})`, port, exitOf(child), () => stopped !== undefined, async () => {
    const next = await launchS3Child({ ...config, port }, region, deliver);
    if (stopped !== undefined) {
      next.child.kill("SIGKILL");
      return { exited: new Promise<string>(() => undefined) };
    }
    child = next.child;
    return { exited: exitOf(child) };
  });
  return emulator;
}

function reportListenerError(e: unknown): void {
  process.emitWarning(`an S3 object-created listener failed: ${e instanceof Error ? e.message : String(e)}`, "WalvaultLocalS3");
}

// ------------------------------------------------------ DynamoDB (DynamoDB Local)

export interface StartDynamoOptions {
  /** Absent or 0: pick a free port. */
  port?: number;
  /** Persist tables in this directory; absent: in memory. */
  dbPath?: string;
  /** How long to wait for it to answer (default 30 s). */
  startTimeoutMs?: number;
}

export interface DynamoEmulator {
  endpoint: string;
  port: number;
  /** Kills the Java process and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

export function dynamoLocalDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // From local/ (source) or dist/local/ (built): the package root holds node_modules.
  const candidates = [
    join(here, "..", "node_modules", "amplify-dynamodb-simulator", "emulator"),
    join(here, "..", "..", "node_modules", "amplify-dynamodb-simulator", "emulator"),
  ];
  const found = candidates.find((p) => existsSync(join(p, "DynamoDBLocal.jar")));
  if (found === undefined) {
    throw new ConfigError(`DynamoDB Local is not installed (looked for DynamoDBLocal.jar in ${candidates.join(", ")}): run \`npm install\``);
  }
  return found;
}

/**
 * Java gets no IPC channel, so it is started under a tiny shell that kills it
 * when its stdin closes: that happens on stop() and when this process dies
 * in any way (even SIGKILL), so DynamoDB Local never outlives its parent.
 * The shell waits for Java itself (the stdin watch runs beside it), so when
 * Java dies the shell exits too and the supervisor sees it.
 */
const JAVA_WATCHDOG =
  // A background list's stdin is /dev/null in sh, so the watch reads the real stdin through fd 3.
  'exec 3<&0; java "$@" 3<&- & pid=$!; trap \'kill $pid 2>/dev/null\' EXIT; { cat <&3 >/dev/null; kill $pid 2>/dev/null; } & exec 3<&-; wait $pid';

interface DynamoChild {
  child: ChildProcess;
  stop(): Promise<void>;
}

async function launchDynamo(port: number, opts: StartDynamoOptions): Promise<DynamoChild> {
  const dir = dynamoLocalDir();
  const storage = opts.dbPath === undefined ? ["-inMemory"] : ["-dbPath", opts.dbPath];
  const javaArgs = [
    // C1 only and the serial collector: about twice as fast to start, and plenty for a local emulator.
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
    "-jar",
    join(dir, "DynamoDBLocal.jar"),
    "-port",
    String(port),
    // One database for every access key and region, as a real account's table is.
    "-sharedDb",
    "-disableTelemetry",
    ...storage,
  ];
  const child = spawn("sh", ["-c", JAVA_WATCHDOG, "sh", ...javaArgs], {
    cwd: dir,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  child.stdin?.on("error", () => undefined); // the watch may be gone already when stop() closes it
  let output = "";
  const collect = (d: Buffer): void => {
    output = (output + d.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const exited = waitForExit(child, 5000, () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      });
      child.stdin?.end();
      await exited;
    })();
    return stopped;
  };

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  const deadline = deadlineIn(opts.startTimeoutMs ?? 30_000);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  try {
    for (;;) {
      if (exited) {
        throw new ServiceUnavailableError(`DynamoDB Local exited before answering on port ${port}: ${output.trim()}`);
      }
      // Its main thread dies on a port taken since it was picked, but the JVM lives on: say so now (startDynamo tries another port).
      if (/BindException|Address already in use/i.test(output)) {
        throw new ServiceUnavailableError(`DynamoDB Local could not bind port ${port} (address already in use): ${output.trim()}`);
      }
      try {
        // Bounded: whatever holds the port may accept and never answer, and the loop must get back to the checks above.
        await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2000) });
        break;
      } catch (e) {
        if (deadline.passed()) {
          throw new TimeoutError(`DynamoDB Local did not answer on ${endpoint} within ${opts.startTimeoutMs ?? 30_000} ms: ${output.trim()}`, {
            cause: e,
          });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  } finally {
    client.destroy();
  }
  return { child, stop };
}

/** DynamoDB Local on `port`, restarted there when it crashes (its tables are on disk with dbPath). */
async function supervisedDynamo(port: number, opts: StartDynamoOptions): Promise<DynamoEmulator> {
  let current = await launchDynamo(port, opts);
  let stopped: Promise<void> | undefined;
  const emulator: DynamoEmulator = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stop() {
      stopped ??= (async () => {
        running.delete(emulator);
        await current.stop();
      })();
      return stopped;
    },
  };
  running.add(emulator);
  supervise("DynamoDB Local", port, exitOf(current.child), () => stopped !== undefined, async () => {
    await current.stop(); // ends the old shell's stdin watch
    const next = await launchDynamo(port, opts);
    if (stopped !== undefined) {
      await next.stop();
      return { exited: new Promise<string>(() => undefined) };
    }
    current = next;
    return { exited: exitOf(next.child) };
  });
  return emulator;
}

/** Starts DynamoDB Local and resolves once it answers ListTables. */
export async function startDynamo(opts: StartDynamoOptions = {}): Promise<DynamoEmulator> {
  if (opts.dbPath !== undefined) await mkdir(opts.dbPath, { recursive: true });
  if (opts.port !== undefined && opts.port !== 0) return supervisedDynamo(opts.port, opts);
  // A port picked free can be taken before Java binds it: try a few.
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await supervisedDynamo(await freePort(), opts);
    } catch (e) {
      last = e;
      if (!(e instanceof ServiceUnavailableError) || !/address already in use|BindException/i.test(e.message)) throw e;
    }
  }
  throw last;
}
