/**
 * The local stack's s3rver replaces an object atomically, as S3 does
 * (local/s3rver-child.ts atomicPuts): a PUT cut off before its body arrived
 * leaves the previous object whole.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startS3, type S3Emulator } from "../../local/emulators.js";
import { LOCAL_CREDENTIALS } from "../../local/stack.js";

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "walvault-s3rver-"));
let s3: S3Emulator;
let client: S3Client;

beforeAll(async () => {
  s3 = await startS3({ directory: dir, buckets: ["b"] });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: LOCAL_CREDENTIALS,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client?.destroy();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("s3rver on the local stack", () => {
  it("keeps the previous object whole when a PUT of the same key is cut off mid-body", async () => {
    // Prepare: an object, then a replacement whose body stops after 512 KiB of its 2 MiB.
    const original = Buffer.alloc(2 * MiB, 7);
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k", Body: original }));
    // Act: a PUT of 2 MiB whose connection drops after 512 KiB of body.
    const put = await new Promise<string>((resolve) => {
      const req = request(`${s3.endpoint}/b/k`, { method: "PUT", headers: { "content-length": String(2 * MiB) } });
      req.on("error", () => resolve("failed"));
      req.on("response", (res) => resolve(`stored ${res.statusCode}`));
      req.write(Buffer.alloc(512 * 1024, 9), () => setTimeout(() => req.destroy(), 200));
    });
    await new Promise((r) => setTimeout(r, 300)); // let s3rver see the aborted request
    const got = await client.send(new GetObjectCommand({ Bucket: "b", Key: "k" }));
    const body = Buffer.from(await got.Body!.transformToByteArray());
    // Assess
    expect(put).toBe("failed");
    expect(body.length).toBe(original.length);
    expect(body.equals(original)).toBe(true);
  });
});
