/**
 * S3ObjectStore against a real s3rver (local/emulators.ts), through the
 * shared ObjectStore contract, plus the emulator's object-created events.
 * Needs dist/local/s3rver-child.js: `npm run build` first (npm test does).
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { objectCreatedEventSchema } from "../../core/schemas.js";
import { LOCAL_CREDENTIALS, freePort, startS3, type S3Emulator, type S3ObjectCreatedEvent } from "../../local/emulators.js";
import { S3ObjectStore } from "../../store/s3-object-store.js";
import { objectStoreContract } from "./object-store.contract.js";

const BUCKETS = ["walvault-incoming", "walvault-vault"] as const;

let s3: S3Emulator;
let dir: string;
let closedEndpoint: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "walvault-s3-test-"));
  s3 = await startS3({ directory: dir, buckets: [...BUCKETS] });
  closedEndpoint = `http://127.0.0.1:${await freePort()}`;
});

afterAll(async () => {
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The headers of each PUT `run` makes through a store whose endpoint answers every request 200. */
async function headersOfPuts(run: (s: S3ObjectStore) => Promise<void>): Promise<IncomingHttpHeaders[]> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    if (req.method === "PUT") seen.push(req.headers);
    req.resume();
    req.on("end", () => res.writeHead(200, { etag: '"0"' }).end());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    await run(store(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  } finally {
    await new Promise((r) => server.close(r));
  }
  return seen;
}

function store(endpoint: string, listPageSize?: number): S3ObjectStore {
  return new S3ObjectStore({
    name: "local",
    region: "us-east-1",
    endpoint,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
    ...(listPageSize === undefined ? {} : { listPageSize }),
  });
}

objectStoreContract("S3ObjectStore on s3rver", (opts) => ({
  store: store(s3.endpoint, opts?.listPageSize),
  bucket: BUCKETS[0],
  otherBucket: BUCKETS[1],
  missingBucket: "walvault-no-such-bucket",
  versioned: false, // s3rver does not implement versioning
  unreachable: { store: store(closedEndpoint), endpoint: closedEndpoint },
}));

describe("S3ObjectStore on s3rver, beyond the contract", () => {
  it("computes and validates SDK checksums only when required, so s3rver stores the raw bytes", async () => {
    // Prepare: with the SDK default (WHEN_SUPPORTED) streamed bodies are sent aws-chunked, which s3rver keeps verbatim
    const s = store(s3.endpoint);
    const body = Buffer.from("plain bytes, no chunk signatures");

    // Act
    await s.put(BUCKETS[0], "framing/check", body, {});
    const got = await s.get(BUCKETS[0], "framing/check");

    // Assess
    expect(await s.client.config.requestChecksumCalculation()).toBe("WHEN_REQUIRED");
    expect(await s.client.config.responseChecksumValidation()).toBe("WHEN_REQUIRED");
    expect(got?.body.equals(body)).toBe(true);
  });

  it("signs a put with the body's SHA-256 (the caller's, or computed once) and sends it as the object's checksum, with no Content-MD5", async () => {
    // Prepare: a digest that is not the body's shows which one was signed (S3 would refuse this put; the stand-in endpoint does not check)
    const body = Buffer.from("a body whose digest the caller knows");
    const given = createHash("sha256").update("another body").digest("hex");
    const own = createHash("sha256").update(body).digest("hex");

    // Act
    const [withDigest, withoutDigest] = await headersOfPuts(async (s) => {
      await s.put(BUCKETS[0], "given/digest", body, {}, { sha256: given });
      await s.put(BUCKETS[0], "no/digest", body, {});
    });

    // Assess
    expect(withDigest?.["x-amz-content-sha256"]).toBe(given);
    expect(withDigest?.["x-amz-checksum-sha256"]).toBe(Buffer.from(given, "hex").toString("base64"));
    expect(withDigest?.authorization).toMatch(/x-amz-content-sha256/);
    expect(withoutDigest?.["x-amz-content-sha256"]).toBe(own);
    expect(withoutDigest?.["x-amz-checksum-sha256"]).toBe(Buffer.from(own, "hex").toString("base64"));
    // The checksum header is S3's integrity header for Object Lock buckets: no MD5 of the body as well.
    expect(withDigest?.["content-md5"]).toBeUndefined();
    for (const h of [withDigest, withoutDigest]) expect(h?.["x-amz-sdk-checksum-algorithm"]).toBe("SHA256");
    for (const h of [withDigest, withoutDigest]) expect([h?.["content-encoding"], h?.["x-amz-trailer"]]).toEqual([undefined, undefined]);
    expect(withoutDigest?.["content-md5"]).toBeUndefined();
  });

  it("reads a body into the buffer its caller lends, and into its own when the lent one is too small", async () => {
    // Prepare
    const s = store(s3.endpoint);
    const body = Buffer.alloc(300_000, 0x5a);
    body.write("first bytes", 0);
    await s.put(BUCKETS[0], "lent/body", body, {});
    const lent = Buffer.alloc(400_000);
    const asked: number[] = [];

    // Act
    const into = await s.get(BUCKETS[0], "lent/body", undefined, { bodyBuffer: (size) => (asked.push(size), lent) });
    const tooSmall = await s.get(BUCKETS[0], "lent/body", undefined, { bodyBuffer: () => Buffer.alloc(10) });

    // Assess
    expect(asked).toEqual([body.length]);
    expect(into?.body.equals(body)).toBe(true);
    expect(into?.body.buffer).toBe(lent.buffer);
    expect(tooSmall?.body.equals(body)).toBe(true);
  });

  it("reads a byte range into the buffer its caller lends (shared memory, as a restore's reads), with the range's length asked", async () => {
    // Prepare
    const s = store(s3.endpoint);
    const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13) % 251));
    await s.put(BUCKETS[0], "lent/ranged", body, {});
    const lent = Buffer.from(new SharedArrayBuffer(1024 * 1024));
    const asked: number[] = [];

    // Act
    const range = await s.getRange(BUCKETS[0], "lent/ranged", 1000, 150_999, { bodyBuffer: (size) => (asked.push(size), lent) });

    // Assess
    expect(asked).toEqual([150_000]);
    expect(range?.equals(body.subarray(1000, 151_000))).toBe(true);
    expect(range?.buffer).toBe(lent.buffer);
  });

  it("names the endpoint and suggests `walvault local up` when a loopback endpoint is down", async () => {
    // Act
    const err = await store(closedEndpoint).get(BUCKETS[0], "x").catch((e: unknown) => e);

    // Assess
    expect((err as Error).message).toContain(`cannot reach S3 at ${closedEndpoint}`);
    expect((err as Error).message).toContain("walvault local up");
  });
});

describe("startS3 object-created events", () => {
  it("delivers an EventBridge 'Object Created' event for a put, with the exact key, size and etag", async () => {
    // Prepare
    const events: S3ObjectCreatedEvent[] = [];
    const unsubscribe = s3.onObjectCreated((e) => {
      events.push(e);
    });
    const key = `incoming/db/pg-main/wal/000000010000000000000003 x%41`;

    // Act
    await store(s3.endpoint).put(BUCKETS[0], key, Buffer.from("12345"), {});
    await waitFor(() => events.some((e) => e.detail.object.key === key));
    unsubscribe();

    // Assess
    const event = events.find((e) => e.detail.object.key === key);
    expect(event).toMatchObject({
      version: "0",
      "detail-type": "Object Created",
      source: "aws.s3",
      account: "000000000000",
      region: "us-east-1",
      resources: [`arn:aws:s3:::${BUCKETS[0]}`],
      detail: {
        version: "0",
        bucket: { name: BUCKETS[0] },
        object: { key, size: 5, etag: "827ccb0eea8a706c4c34a16891f84e7b" },
        reason: "PutObject",
      },
    });
    expect(event?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(event?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(objectCreatedEventSchema.safeParse(event).success).toBe(true);
  });

  it("reports server-side copies as CopyObject and never reports deletes", async () => {
    // Prepare
    const s = store(s3.endpoint);
    // The put's own event arrives asynchronously: let it pass before listening.
    let srcSeen = false;
    const untilSrc = s3.onObjectCreated((e) => {
      if (e.detail.object.key === "events/src") srcSeen = true;
    });
    await s.put(BUCKETS[0], "events/src", Buffer.from("x"), {});
    await waitFor(() => srcSeen);
    untilSrc();
    const events: S3ObjectCreatedEvent[] = [];
    const unsubscribe = s3.onObjectCreated((e) => {
      events.push(e);
    });

    // Act
    await s.copy({ bucket: BUCKETS[0], key: "events/src" }, { bucket: BUCKETS[1], key: "events/dst" });
    await s.delete(BUCKETS[0], "events/src");
    await waitFor(() => events.some((e) => e.detail.object.key === "events/dst"));
    await new Promise((r) => setTimeout(r, 100));
    unsubscribe();

    // Assess
    expect(events.map((e) => [e.detail.bucket.name, e.detail.object.key, e.detail.reason])).toEqual([
      [BUCKETS[1], "events/dst", "CopyObject"],
    ]);
  });

  it("stops delivering to a listener once it unsubscribes", async () => {
    // Prepare
    let calls = 0;
    const unsubscribe = s3.onObjectCreated(() => {
      calls++;
    });
    unsubscribe();

    // Act
    await store(s3.endpoint).put(BUCKETS[0], "events/after-unsubscribe", Buffer.from("x"), {});
    await new Promise((r) => setTimeout(r, 150));

    // Assess
    expect(calls).toBe(0);
  });
});

describe("startS3 lifecycle", () => {
  it("keeps objects in its directory across a restart on the same port, and stop() is idempotent", async () => {
    // Prepare
    const own = await mkdtemp(join(tmpdir(), "walvault-s3-restart-"));
    try {
      const first = await startS3({ directory: own, buckets: ["b1"] });
      await store(first.endpoint).put("b1", "kept", Buffer.from("still here"), {});
      await first.stop();
      await first.stop();

      // Act
      const second = await startS3({ directory: own, buckets: ["b1"], port: first.port });
      const got = await store(second.endpoint).get("b1", "kept");
      await second.stop();

      // Assess
      expect(second.endpoint).toBe(first.endpoint);
      expect(got?.body.toString()).toBe("still here");
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Error paths only: a body of the wrong length cannot be made on s3rver (the contract suite reads large bodies from it). */
describe("S3ObjectStore reading a body of a known length", () => {
  /** A store whose client answers every GetObject with `pieces` as the body, announcing `contentLength` bytes. */
  function answering(pieces: Buffer[], contentLength: number): S3ObjectStore {
    const s = store(closedEndpoint);
    vi.spyOn(s.client, "send").mockImplementation(async () => ({ Body: Readable.from(pieces), ContentLength: contentLength, $metadata: {} }) as never);
    return s;
  }

  it("names a range whose body is longer or shorter than asked, with both lengths", async () => {
    // Prepare
    const longer = answering([Buffer.alloc(6), Buffer.alloc(6)], 12);
    const shorter = answering([Buffer.alloc(4)], 4);
    // Act + Assess
    await expect(longer.getRange(BUCKETS[1], "k", 0, 9)).rejects.toThrow(/returned 12 of 10 bytes/);
    await expect(shorter.getRange(BUCKETS[1], "k", 0, 9)).rejects.toThrow(/returned 4 of 10 bytes/);
  });

  it("names a whole object whose body is not the length announced", async () => {
    // Prepare
    const s = answering([Buffer.alloc(3)], 8);
    // Act + Assess
    await expect(s.get(BUCKETS[1], "k")).rejects.toThrow(/returned 3 of 8 bytes/);
  });
});
