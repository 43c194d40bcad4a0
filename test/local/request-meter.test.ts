/**
 * The request meter (local/request-meter.ts) in front of a tiny HTTP server
 * standing for S3 or DynamoDB: it classifies and counts each request as AWS
 * bills it, and passes bodies through byte-identical (large streamed
 * uploads and downloads, ranged responses).
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { classifyS3, RequestMeter } from "../../local/request-meter.js";

const MiB = 1024 * 1024;
/** What the upstream GET serves: 24 MiB, written in 1 MiB pieces (a streamed body). */
const OBJECT = randomBytes(24 * MiB);

/** A stand-in for s3rver: GET/HEAD serve OBJECT (Range honoured), PUT answers the SHA-256 of what it received, the rest 200. */
function fakeS3(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === "PUT") {
    const h = createHash("sha256");
    req.on("data", (d: Buffer) => h.update(d));
    req.on("end", () => res.writeHead(200, { "x-received-sha256": h.digest("hex") }).end());
    return;
  }
  req.resume();
  if (req.method === "GET" && !req.url!.startsWith("/bucket?")) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    const body = m ? OBJECT.subarray(Number(m[1]), Number(m[2]) + 1) : OBJECT;
    res.writeHead(m ? 206 : 200, { "content-length": String(body.length), "x-custom": "kept" });
    let at = 0;
    const next = (): void => {
      while (at < body.length) {
        const piece = body.subarray(at, at + MiB);
        at += piece.length;
        if (!res.write(piece)) return void res.once("drain", next);
      }
      res.end();
    };
    next();
    return;
  }
  res.writeHead(200).end("<ok/>");
}

/** A stand-in for DynamoDB Local: Query answers two items, BatchGetItem three, the rest {}. */
const QUERY_RESPONSE = JSON.stringify({ Items: [{ pk: { S: "a" } }, { pk: { S: "b" } }], Count: 2 });
function fakeDynamo(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on("end", () => {
    const target = String(req.headers["x-amz-target"]);
    const body = target.endsWith(".Query")
      ? QUERY_RESPONSE
      : target.endsWith(".BatchGetItem")
        ? JSON.stringify({ Responses: { t1: [{}, {}], t2: [{}] } })
        : target.endsWith(".GetItem")
          ? JSON.stringify({ Item: { pk: { S: "a" } } })
          : "{}";
    res.writeHead(200, { "content-type": "application/x-amz-json-1.0" }).end(body);
  });
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

let s3Upstream: { server: Server; url: string };
let dynamoUpstream: { server: Server; url: string };
let meter: RequestMeter;
let s3: string;
let dynamo: string;

beforeAll(async () => {
  s3Upstream = await listen(fakeS3);
  dynamoUpstream = await listen(fakeDynamo);
  meter = new RequestMeter();
  s3 = (await meter.proxy("s3", "local-1", s3Upstream.url)).endpoint;
  dynamo = (await meter.proxy("dynamodb", "dynamodb", dynamoUpstream.url)).endpoint;
});

afterEach(() => meter.reset());

afterAll(async () => {
  await meter?.close();
  s3Upstream?.server.close();
  dynamoUpstream?.server.close();
});

const dynamoCall = (operation: string, body: unknown): Promise<Response> =>
  fetch(dynamo, { method: "POST", headers: { "x-amz-target": `DynamoDB_20120810.${operation}`, "content-type": "application/x-amz-json-1.0" }, body: JSON.stringify(body) });

describe("request meter", () => {
  it("classifies S3 requests as AWS bills them", () => {
    // Prepare / Act / Assess: one request of each kind.
    expect(classifyS3("PUT", "/bucket/key", {})).toBe("PUT");
    expect(classifyS3("PUT", "/bucket/key", { "x-amz-copy-source": "/other/key" })).toBe("COPY");
    expect(classifyS3("GET", "/bucket/key", {})).toBe("GET");
    expect(classifyS3("GET", "/bucket/key", { range: "bytes=0-9" })).toBe("GET_RANGE");
    expect(classifyS3("GET", "/bucket?list-type=2&prefix=db%2F", {})).toBe("LIST");
    expect(classifyS3("GET", "/bucket/", {})).toBe("LIST");
    expect(classifyS3("HEAD", "/bucket/key", {})).toBe("HEAD");
    expect(classifyS3("DELETE", "/bucket/key", {})).toBe("DELETE");
    expect(classifyS3("POST", "/bucket?delete", {})).toBe("DELETE_MULTI");
    expect(classifyS3("POST", "/bucket/key?restore", {})).toBe("RESTORE");
    expect(classifyS3("POST", "/bucket/key?uploads", {})).toBe("MULTIPART");
  });

  it("counts S3 requests per region and operation, with the bytes each way", async () => {
    // Act
    await (await fetch(`${s3}/bucket/a`, { method: "PUT", body: "12345" })).arrayBuffer();
    await (await fetch(`${s3}/bucket/b`, { method: "PUT", headers: { "x-amz-copy-source": "/bucket/a" } })).arrayBuffer();
    await (await fetch(`${s3}/bucket/a`, { method: "HEAD" })).arrayBuffer();
    await (await fetch(`${s3}/bucket/a`, { headers: { range: "bytes=0-99" } })).arrayBuffer();
    await (await fetch(`${s3}/bucket?list-type=2`)).arrayBuffer();
    await (await fetch(`${s3}/bucket?delete`, { method: "POST", body: "<Delete/>" })).arrayBuffer();
    // Assess
    const c = meter.snapshot().s3["local-1"]!;
    expect(c.byOperation).toEqual({ PUT: 1, COPY: 1, HEAD: 1, GET_RANGE: 1, LIST: 1, DELETE_MULTI: 1 });
    expect(c.requests).toBe(6);
    expect(c.bytesIn).toBe(5 + "<Delete/>".length);
    expect(c.bytesOut).toBe(100 + "<ok/>".length * 2);
  });

  it("passes a large streamed upload through byte-identical", async () => {
    // Prepare
    const body = randomBytes(20 * MiB);
    // Act
    const res = await fetch(`${s3}/bucket/big`, { method: "PUT", body });
    // Assess
    expect(res.headers.get("x-received-sha256")).toBe(createHash("sha256").update(body).digest("hex"));
    expect(meter.snapshot().s3["local-1"]!.bytesIn).toBe(body.length);
  });

  it("passes a large streamed download and a ranged response through byte-identical, status and headers kept", async () => {
    // Act
    const whole = await fetch(`${s3}/bucket/big`);
    const wholeBytes = Buffer.from(await whole.arrayBuffer());
    const ranged = await fetch(`${s3}/bucket/big`, { headers: { range: `bytes=${5 * MiB + 3}-${9 * MiB}` } });
    const rangedBytes = Buffer.from(await ranged.arrayBuffer());
    // Assess
    expect(whole.status).toBe(200);
    expect(whole.headers.get("x-custom")).toBe("kept");
    expect(wholeBytes.equals(OBJECT)).toBe(true);
    expect(ranged.status).toBe(206);
    expect(rangedBytes.equals(OBJECT.subarray(5 * MiB + 3, 9 * MiB + 1))).toBe(true);
    expect(meter.snapshot().s3["local-1"]!.byOperation).toEqual({ GET: 1, GET_RANGE: 1 });
  });

  it("counts DynamoDB operations, the items written and read, and Query response bytes", async () => {
    // Act
    await (await dynamoCall("BatchWriteItem", { RequestItems: { t1: [{}, {}], t2: [{}] } })).arrayBuffer();
    await (await dynamoCall("TransactWriteItems", { TransactItems: [{}, {}] })).arrayBuffer();
    await (await dynamoCall("PutItem", { Item: {} })).arrayBuffer();
    const query = await (await dynamoCall("Query", { KeyConditionExpression: "pk = :p" })).text();
    await (await dynamoCall("BatchGetItem", { RequestItems: {} })).arrayBuffer();
    await (await dynamoCall("GetItem", { Key: {}, ConsistentRead: true })).arrayBuffer();
    // Assess
    const d = meter.snapshot().dynamodb;
    expect(query).toBe(QUERY_RESPONSE);
    expect(d.byOperation).toEqual({ BatchWriteItem: 1, TransactWriteItems: 1, PutItem: 1, Query: 1, BatchGetItem: 1, GetItem: 1 });
    expect(d.itemsWritten).toBe(3 + 2 + 1);
    expect(d.writeUnits).toBe(3 + 4 + 1);
    expect(d.itemsRead).toBe(2 + 3 + 1);
    expect(d.queryResponseBytes).toBe(QUERY_RESPONSE.length);
    expect(d.readUnits).toBe(0.5 + 1.5 + 1);
  });

  it("starts from zero again after reset()", async () => {
    // Prepare
    await (await dynamoCall("PutItem", { Item: {} })).arrayBuffer();
    await (await fetch(`${s3}/bucket/a`, { method: "HEAD" })).arrayBuffer();
    // Act
    meter.reset();
    // Assess
    const after = meter.snapshot();
    expect(after.dynamodb.requests).toBe(0);
    expect(after.s3["local-1"]!.requests).toBe(0);
  });
});
