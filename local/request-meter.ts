/**
 * A request meter for the local stack (`startLocalStack({ meterRequests:
 * true })`, used by `npm run bench:scale`): a plain HTTP proxy on loopback in
 * front of each region's s3rver and of DynamoDB Local. The stack hands the
 * proxies' endpoints to every client (the agent, the Lambda sandboxes, the
 * verification task), so every request goes through one and is counted by
 * service and operation — what AWS bills — without any SDK client changing.
 *
 * Bodies pass through untouched (S3 bodies streamed, never buffered; a
 * DynamoDB request or response is at most a few MB of JSON and is read whole
 * to count its items). Headers are forwarded as received, Host included, so
 * the SigV4 signature the client computed for the proxy's host still
 * verifies. When the service behind a proxy is down (a stopped region), the
 * client's connection is dropped: it sees a network error, as without the
 * proxy.
 *
 * What is counted:
 *   S3, per proxy (region) and operation: PUT, COPY (PUT with
 *   x-amz-copy-source), GET, GET_RANGE (GET with a Range header), HEAD, LIST
 *   (GET on a bucket), DELETE, DELETE_MULTI (POST ?delete), RESTORE (POST
 *   ?restore), MULTIPART (POST ?uploads / ?uploadId), OTHER; bytes in
 *   (request bodies) and out (response bodies).
 *   DynamoDB, per operation (X-Amz-Target): requests; items written (1 for
 *   PutItem/UpdateItem/DeleteItem, the request's items for BatchWriteItem
 *   and TransactWriteItems); items read (GetItem 0/1, BatchGetItem,
 *   Query/Scan: the response's items); response bytes of Query and Scan;
 *   and estimated capacity units: a write item 1 WCU (2 in a transaction;
 *   items of at most 1 KB assumed), a read 0.5 RCU per started 4 KB of
 *   Query/Scan response (1 when ConsistentRead), 0.5 RCU per item got
 *   (1 when ConsistentRead; items of at most 4 KB assumed).
 */
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type MeteredService = "s3" | "dynamodb";

/** S3 operations as the meter classifies them. */
export type S3Operation = "PUT" | "COPY" | "GET" | "GET_RANGE" | "HEAD" | "LIST" | "DELETE" | "DELETE_MULTI" | "RESTORE" | "MULTIPART" | "OTHER";

export interface S3Counts {
  requests: number;
  byOperation: Partial<Record<S3Operation, number>>;
  bytesIn: number;
  bytesOut: number;
}

export interface DynamoCounts {
  requests: number;
  byOperation: Record<string, number>;
  itemsWritten: number;
  itemsRead: number;
  /** Response bytes of Query and Scan. */
  queryResponseBytes: number;
  writeUnits: number;
  readUnits: number;
}

/** A plain snapshot of the counts (safe to keep, print, JSON.stringify). */
export interface RequestCounts {
  /** Per proxied S3 endpoint, by the name it was proxied under (the region). */
  s3: Record<string, S3Counts>;
  dynamodb: DynamoCounts;
}

export interface MeterProxy {
  /** The proxy's URL (http://127.0.0.1:port): give this to clients instead of the target. */
  endpoint: string;
  close(): Promise<void>;
}

/** How S3 bills an operation (the meter's classification of one request). */
export function classifyS3(method: string, url: string, headers: IncomingMessage["headers"]): S3Operation {
  const u = new URL(url, "http://x");
  const q = u.searchParams;
  // Path-style addressing (s3rver): /bucket or /bucket/ is the bucket itself, /bucket/key an object.
  const path = u.pathname.replace(/^\/+/, "");
  const slash = path.indexOf("/");
  const onBucket = slash < 0 || slash === path.length - 1;
  switch (method) {
    case "PUT":
      return headers["x-amz-copy-source"] !== undefined ? "COPY" : "PUT";
    case "GET":
      if (onBucket) return "LIST";
      return headers.range !== undefined ? "GET_RANGE" : "GET";
    case "HEAD":
      return "HEAD";
    case "DELETE":
      return "DELETE";
    case "POST":
      if (q.has("delete")) return "DELETE_MULTI";
      if (q.has("restore")) return "RESTORE";
      if (q.has("uploads") || q.has("uploadId")) return "MULTIPART";
      return "OTHER";
    default:
      return "OTHER";
  }
}

type Json = Record<string, unknown>;

const arrayLength = (v: unknown): number => (Array.isArray(v) ? v.length : 0);
const sumOfArrays = (v: unknown): number => (typeof v === "object" && v !== null ? Object.values(v).reduce<number>((n, a) => n + arrayLength(a), 0) : 0);
const WRITE_ONE = new Set(["PutItem", "UpdateItem", "DeleteItem"]);

/** What one DynamoDB request wrote and read, from its request and response bodies (JSON; undefined when unparsable). */
export function dynamoUsage(
  operation: string,
  request: Json | undefined,
  response: Json | undefined,
  responseBytes: number,
): { written: number; read: number; queryBytes: number; writeUnits: number; readUnits: number } {
  const consistent = request?.ConsistentRead === true;
  let written = 0;
  let read = 0;
  let queryBytes = 0;
  let writeUnits = 0;
  let readUnits = 0;
  if (WRITE_ONE.has(operation)) {
    written = 1;
    writeUnits = 1;
  } else if (operation === "BatchWriteItem") {
    written = sumOfArrays(request?.RequestItems);
    writeUnits = written;
  } else if (operation === "TransactWriteItems") {
    written = arrayLength(request?.TransactItems);
    writeUnits = 2 * written;
  } else if (operation === "GetItem") {
    read = response?.Item === undefined ? 0 : 1;
    readUnits = consistent ? 1 : 0.5;
  } else if (operation === "BatchGetItem") {
    read = sumOfArrays(response?.Responses);
    // ConsistentRead is per table in a BatchGetItem: eventually consistent assumed.
    readUnits = 0.5 * Math.max(read, 1);
  } else if (operation === "Query" || operation === "Scan") {
    read = arrayLength(response?.Items);
    queryBytes = responseBytes;
    readUnits = (consistent ? 1 : 0.5) * Math.max(1, Math.ceil(responseBytes / 4096));
  }
  return { written, read, queryBytes, writeUnits, readUnits };
}

const emptyS3 = (): S3Counts => ({ requests: 0, byOperation: {}, bytesIn: 0, bytesOut: 0 });
const emptyDynamo = (): DynamoCounts => ({ requests: 0, byOperation: {}, itemsWritten: 0, itemsRead: 0, queryResponseBytes: 0, writeUnits: 0, readUnits: 0 });

function parseJson(bytes: Buffer): Json | undefined {
  try {
    const v: unknown = JSON.parse(bytes.toString("utf8"));
    return typeof v === "object" && v !== null ? (v as Json) : undefined;
  } catch {
    return undefined;
  }
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on("data", (d: Buffer) => parts.push(d));
    stream.on("end", () => resolve(Buffer.concat(parts)));
    stream.on("error", reject);
  });
}

/** Counts requests through its proxies; `snapshot()` reads, `reset()` zeroes. */
export class RequestMeter {
  private s3: Record<string, S3Counts> = {};
  private dynamodb = emptyDynamo();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256 });
  private readonly servers = new Set<Server>();

  snapshot(): RequestCounts {
    return structuredClone({ s3: this.s3, dynamodb: this.dynamodb });
  }

  reset(): void {
    this.s3 = Object.fromEntries(Object.keys(this.s3).map((k) => [k, emptyS3()]));
    this.dynamodb = emptyDynamo();
  }

  /** Starts a proxy on loopback in front of `target` (an http:// endpoint), counting as `service` under `name`. */
  async proxy(service: MeteredService, name: string, target: string): Promise<MeterProxy> {
    const t = new URL(target);
    if (service === "s3") this.s3[name] ??= emptyS3();
    const server = createServer((req, res) => {
      if (service === "s3") this.forwardS3(name, t, req, res);
      else void this.forwardDynamo(t, req, res);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.servers.add(server);
    const { port } = server.address() as AddressInfo;
    return {
      endpoint: `http://127.0.0.1:${port}`,
      close: () => this.closeServer(server),
    };
  }

  /** Stops every proxy and the upstream connections. */
  async close(): Promise<void> {
    await Promise.all([...this.servers].map((s) => this.closeServer(s)));
    this.agent.destroy();
  }

  private closeServer(server: Server): Promise<void> {
    if (!this.servers.delete(server)) return Promise.resolve();
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private upstream(t: URL, req: IncomingMessage, res: ServerResponse, onResponse: (up: IncomingMessage) => void): ReturnType<typeof httpRequest> {
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent: this.agent }, onResponse);
    // The service is down or dropped the connection: drop the client's too (it sees a network error, as it would without the proxy).
    up.on("error", () => res.socket?.destroy());
    req.on("error", () => up.destroy());
    return up;
  }

  private forwardS3(name: string, t: URL, req: IncomingMessage, res: ServerResponse): void {
    const counts = this.s3[name]!;
    const op = classifyS3(req.method ?? "GET", req.url ?? "/", req.headers);
    counts.requests++;
    counts.byOperation[op] = (counts.byOperation[op] ?? 0) + 1;
    req.on("data", (d: Buffer) => (counts.bytesIn += d.length));
    const up = this.upstream(t, req, res, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders);
      upRes.on("data", (d: Buffer) => (counts.bytesOut += d.length));
      upRes.pipe(res);
      upRes.on("error", () => res.socket?.destroy());
    });
    req.pipe(up);
  }

  private async forwardDynamo(t: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = String(req.headers["x-amz-target"] ?? "");
    const operation = target.slice(target.indexOf(".") + 1) || "Unknown";
    const counts = this.dynamodb;
    counts.requests++;
    counts.byOperation[operation] = (counts.byOperation[operation] ?? 0) + 1;
    let body: Buffer;
    try {
      body = await readAll(req);
    } catch {
      res.socket?.destroy();
      return;
    }
    const up = this.upstream(t, req, res, (upRes) => {
      void readAll(upRes).then(
        (out) => {
          // A compressed response is passed on as is, its items not counted.
          const parsed = upRes.headers["content-encoding"] === undefined ? parseJson(out) : undefined;
          const u = dynamoUsage(operation, parseJson(body), parsed, out.length);
          // The reset() between request and response must not be written into the old object.
          const c = this.dynamodb;
          c.itemsWritten += u.written;
          c.itemsRead += u.read;
          c.queryResponseBytes += u.queryBytes;
          c.writeUnits += u.writeUnits;
          c.readUnits += u.readUnits;
          res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders);
          res.end(out);
        },
        () => res.socket?.destroy(),
      );
    });
    up.end(body);
  }
}
