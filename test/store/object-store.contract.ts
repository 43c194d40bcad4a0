/**
 * The ObjectStore contract (store/object-store.ts), as one suite every
 * implementation runs: call objectStoreContract() from a *.test.ts file with
 * a factory of fresh instances pointed at a running service.
 *
 * Tests share the service: each one works under its own random key prefix,
 * so the factory may hand out the same buckets every time.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { InvalidInputError, NotFoundError, ServiceUnavailableError, WalvaultError } from "../../core/errors.js";
import { isReadable, type ObjectStore } from "../../store/object-store.js";
import { rejection } from "../support/rejection.js";

export interface ObjectStoreFixture {
  store: ObjectStore;
  /** Two existing buckets on the same endpoint. */
  bucket: string;
  otherBucket: string;
  /** A bucket name that does not exist on the endpoint. */
  missingBucket: string;
  /** Whether the buckets keep versions (put/copy then return version ids). */
  versioned: boolean;
  /** A store of the same kind pointed at an endpoint where nothing listens, and that endpoint's text. */
  unreachable: { store: ObjectStore; endpoint: string };
}

export interface ObjectStoreFactoryOptions {
  /** Keys per list page; small values make list() cross pages with few keys. */
  listPageSize?: number;
}

export type ObjectStoreFactory = (opts?: ObjectStoreFactoryOptions) => ObjectStoreFixture | Promise<ObjectStoreFixture>;

async function collect(iterable: AsyncIterable<{ key: string; size: number }>): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export function objectStoreContract(name: string, factory: ObjectStoreFactory): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let f: ObjectStoreFixture;
    let prefix: string;

    beforeEach(async () => {
      f = await factory();
      prefix = `contract/${randomUUID()}/`;
    });

    describe("put and get", () => {
      it("returns exactly the bytes and metadata that were put, with metadata keys lowercased", async () => {
        // Prepare: every byte value plus random bytes, and mixed-case metadata keys
        const body = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(200_000)]);
        const key = `${prefix}wal/000000010000000000000001`;

        // Act
        await f.store.put(f.bucket, key, body, { "Walvault-SHA256": "ab".repeat(32), "walvault-codec": "zstd" });
        const got = await f.store.get(f.bucket, key);

        // Assess
        expect(got).toBeDefined();
        expect(got?.key).toBe(key);
        expect(got?.size).toBe(body.length);
        expect(Buffer.isBuffer(got?.body)).toBe(true);
        expect(got?.body.equals(body)).toBe(true);
        expect(got?.metadata).toEqual({ "walvault-sha256": "ab".repeat(32), "walvault-codec": "zstd" });
      });

      it("round-trips an empty body", async () => {
        // Prepare
        const key = `${prefix}empty`;

        // Act
        await f.store.put(f.bucket, key, new Uint8Array(0), {});
        const got = await f.store.get(f.bucket, key);

        // Assess
        expect(got?.size).toBe(0);
        expect(got?.body.length).toBe(0);
        expect(got?.metadata).toEqual({});
      });

      it("keeps keys with spaces and non-ASCII characters distinct and intact", async () => {
        // Prepare
        const key = `${prefix}dir with space/é %41 file`;

        // Act
        await f.store.put(f.bucket, key, Buffer.from("x"), {});
        const got = await f.store.get(f.bucket, key);
        const listed = await collect(f.store.list(f.bucket, prefix));

        // Assess
        expect(got?.body.toString()).toBe("x");
        expect(listed.map((o) => o.key)).toEqual([key]);
      });

      it("lets a second put to the same key replace the object (no conditional writes)", async () => {
        // Prepare
        const key = `${prefix}overwritten`;
        await f.store.put(f.bucket, key, Buffer.from("first"), { n: "1" });

        // Act
        await f.store.put(f.bucket, key, Buffer.from("second"), { n: "2" });
        const got = await f.store.get(f.bucket, key);

        // Assess
        expect(got?.body.toString()).toBe("second");
        expect(got?.metadata).toEqual({ n: "2" });
      });

      it("returns a version id from put exactly when the bucket is versioned", async () => {
        // Prepare
        const key = `${prefix}versioned`;

        // Act
        const first = await f.store.put(f.bucket, key, Buffer.from("v1"), {});
        const second = await f.store.put(f.bucket, key, Buffer.from("v2"), {});

        // Assess
        if (f.versioned) {
          expect(first.versionId).toBeTruthy();
          expect(second.versionId).toBeTruthy();
          expect(second.versionId).not.toBe(first.versionId);
          const old = await f.store.get(f.bucket, key, first.versionId);
          expect(old?.body.toString()).toBe("v1");
          expect(old?.versionId).toBe(first.versionId);
        } else {
          expect(first.versionId).toBeUndefined();
          expect(second.versionId).toBeUndefined();
        }
      });
    });

    describe("missing objects", () => {
      it("get of a key that does not exist resolves undefined", async () => {
        // Prepare: nothing under this prefix

        // Act
        const got = await f.store.get(f.bucket, `${prefix}never-written`);

        // Assess
        expect(got).toBeUndefined();
      });

      it("head of a key that does not exist resolves undefined", async () => {
        // Act
        const info = await f.store.head(f.bucket, `${prefix}never-written`);

        // Assess
        expect(info).toBeUndefined();
      });

      it("get of a key in a bucket that does not exist rejects instead of resolving undefined", async () => {
        // Act
        const err = await rejection(f.store.get(f.missingBucket, `${prefix}x`));

        // Assess
        expect(err).toBeInstanceOf(WalvaultError);
        expect((err as Error).message).toContain(f.missingBucket);
      });
    });

    describe("getRange", () => {
      it("returns exactly the bytes of an explicit range, first and last byte included", async () => {
        // Prepare
        const key = `${prefix}ranged`;
        const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 251));
        await f.store.put(f.bucket, key, body, {});

        // Act
        const head = await f.store.getRange(f.bucket, key, 0, 9);
        const middle = await f.store.getRange(f.bucket, key, 1234, 4321);
        const tail = await f.store.getRange(f.bucket, key, 4990, 4999);
        const one = await f.store.getRange(f.bucket, key, 4999, 4999);

        // Assess
        expect(head).toEqual(body.subarray(0, 10));
        expect(middle).toEqual(body.subarray(1234, 4322));
        expect(tail).toEqual(body.subarray(4990));
        expect(one).toEqual(body.subarray(4999));
      });

      it("returns exactly the bytes of a range and of a whole object of several MiB (a body that arrives in many pieces)", async () => {
        // Prepare
        const key = `${prefix}large`;
        const body = randomBytes(3 * 1024 * 1024 + 17);
        await f.store.put(f.bucket, key, body, {});

        // Act
        const range = await f.store.getRange(f.bucket, key, 100, body.length - 101);
        const whole = await f.store.get(f.bucket, key);

        // Assess
        expect(range?.equals(body.subarray(100, body.length - 100))).toBe(true);
        expect(whole?.body.equals(body)).toBe(true);
      });

      it("resolves undefined for a key that does not exist", async () => {
        // Act
        const got = await f.store.getRange(f.bucket, `${prefix}never-written`, 0, 9);

        // Assess
        expect(got).toBeUndefined();
      });

      it("rejects a range that runs past the end of the object, naming the range", async () => {
        // Prepare
        const key = `${prefix}short`;
        await f.store.put(f.bucket, key, Buffer.alloc(100, 1), {});

        // Act
        const err = await rejection(f.store.getRange(f.bucket, key, 90, 199));

        // Assess
        expect(err).toBeInstanceOf(InvalidInputError);
        expect((err as Error).message).toContain("90-199");
      });
    });

    describe("put with a SHA-256", () => {
      it("stores the bytes as a plain put does (the checksum travels as a header, not a framed body)", async () => {
        // Prepare
        const key = `${prefix}checked`;
        const body = Buffer.alloc(70_000, 3);
        const sha256 = createHash("sha256").update(body).digest("hex");

        // Act
        await f.store.put(f.bucket, key, body, { "walvault-sha256": sha256 }, { sha256 });
        const got = await f.store.get(f.bucket, key);
        const info = await f.store.head(f.bucket, key, undefined, { checksum: true });

        // Assess
        expect(got?.body).toEqual(body);
        expect(info?.size).toBe(body.length);
        // S3 keeps and reports the checksum; an emulator that does not keep it reports none, never a wrong one.
        if (info?.sha256 !== undefined) expect(info.sha256).toBe(sha256);
      });
    });

    describe("head", () => {
      it("reports size and metadata without the body", async () => {
        // Prepare
        const key = `${prefix}head-me`;
        await f.store.put(f.bucket, key, Buffer.alloc(1234, 7), { "walvault-size": "1234" });

        // Act
        const info = await f.store.head(f.bucket, key);

        // Assess
        expect(info).toBeDefined();
        expect(info?.key).toBe(key);
        expect(info?.size).toBe(1234);
        expect(info?.metadata).toEqual({ "walvault-size": "1234" });
        expect(info).not.toHaveProperty("body");
      });

      it("head, get and list report when the object was written, to the second", async () => {
        // Prepare
        const key = `${prefix}dated`;
        const before = Math.floor(Date.now() / 1000) * 1000;
        await f.store.put(f.bucket, key, Buffer.from("when?"), {});
        const after = Date.now();

        // Act
        const info = await f.store.head(f.bucket, key);
        const got = await f.store.get(f.bucket, key);
        const listed: { key: string; lastModified?: Date }[] = [];
        for await (const o of f.store.list(f.bucket, key)) listed.push(o);

        // Assess: S3's Last-Modified has whole seconds
        const written = info?.lastModified?.getTime();
        expect(written).toBeGreaterThanOrEqual(before);
        expect(written).toBeLessThanOrEqual(after);
        expect(got?.lastModified?.getTime()).toBe(written);
        expect(listed.map((o) => o.lastModified?.getTime())).toEqual([written]);
      });
    });

    describe("archive classes and requestRestore", () => {
      it("head of an object just put reports no archive class and no restore: it is readable", async () => {
        // Prepare
        const key = `${prefix}fresh`;
        await f.store.put(f.bucket, key, Buffer.from("x"), {});

        // Act
        const info = await f.store.head(f.bucket, key);

        // Assess: a put lands in STANDARD, which head() leaves unnamed
        expect(info?.storageClass).toBeUndefined();
        expect(info?.restore).toBeUndefined();
        expect(info && isReadable(info)).toBe(true);
      });

      it("requestRestore of an object that is not archived resolves as a no-op, again and again (idempotent)", async () => {
        // Prepare
        const key = `${prefix}not-archived`;
        await f.store.put(f.bucket, key, Buffer.from("still readable"), {});

        // Act
        await f.store.requestRestore(f.bucket, key, { days: 1, tier: "Standard" });
        await f.store.requestRestore(f.bucket, key, { days: 1, tier: "Bulk" });
        const got = await f.store.get(f.bucket, key);

        // Assess
        expect(got?.body.toString()).toBe("still readable");
      });

      it("requestRestore of a key that does not exist rejects with NotFoundError naming the key", async () => {
        // Prepare
        const key = `${prefix}never-written`;

        // Act
        const err = await rejection(f.store.requestRestore(f.bucket, key, { days: 1, tier: "Standard" }));

        // Assess
        expect(err).toBeInstanceOf(NotFoundError);
        expect((err as Error).message).toContain(key);
      });
    });

    describe("copy", () => {
      it("copies bytes and metadata to another key in the same bucket", async () => {
        // Prepare
        const from = `${prefix}src`;
        const to = `${prefix}dst`;
        const body = randomBytes(5000);
        await f.store.put(f.bucket, from, body, { "walvault-sha256": "cd".repeat(32) });

        // Act
        await f.store.copy({ bucket: f.bucket, key: from }, { bucket: f.bucket, key: to });
        const got = await f.store.get(f.bucket, to);

        // Assess
        expect(got?.body.equals(body)).toBe(true);
        expect(got?.metadata).toEqual({ "walvault-sha256": "cd".repeat(32) });
        expect((await f.store.get(f.bucket, from))?.body.equals(body)).toBe(true);
      });

      it("copies bytes and metadata into another bucket of the same endpoint, keys with spaces included", async () => {
        // Prepare
        const from = `${prefix}incoming/file one`;
        const to = `${prefix}vault/file one`;
        const body = randomBytes(100);
        await f.store.put(f.bucket, from, body, { "walvault-codec": "none" });

        // Act
        const result = await f.store.copy({ bucket: f.bucket, key: from }, { bucket: f.otherBucket, key: to });
        const got = await f.store.get(f.otherBucket, to);

        // Assess
        expect(got?.body.equals(body)).toBe(true);
        expect(got?.metadata).toEqual({ "walvault-codec": "none" });
        if (f.versioned) expect(result.versionId).toBeTruthy();
        else expect(result.versionId).toBeUndefined();
      });

      it("rejects with NotFoundError when the source does not exist", async () => {
        // Act
        const err = await rejection(
          f.store.copy({ bucket: f.bucket, key: `${prefix}absent` }, { bucket: f.bucket, key: `${prefix}target` }),
        );

        // Assess
        expect(err).toBeInstanceOf(NotFoundError);
        expect(await f.store.head(f.bucket, `${prefix}target`)).toBeUndefined();
      });
    });

    describe("delete", () => {
      it("removes an object", async () => {
        // Prepare
        const key = `${prefix}doomed`;
        await f.store.put(f.bucket, key, Buffer.from("x"), {});

        // Act
        await f.store.delete(f.bucket, key);

        // Assess
        expect(await f.store.get(f.bucket, key)).toBeUndefined();
      });

      it("is idempotent: deleting a missing key succeeds, twice", async () => {
        // Act + Assess
        await expect(f.store.delete(f.bucket, `${prefix}never-written`)).resolves.toBeUndefined();
        await expect(f.store.delete(f.bucket, `${prefix}never-written`)).resolves.toBeUndefined();
      });
    });

    describe("list", () => {
      it("yields every key under the prefix in lexicographic order, across many pages", async () => {
        // Prepare: 23 keys written in shuffled order, a page size of 4, and neighbours that must not appear
        const paged = (await factory({ listPageSize: 4 })).store;
        const names = Array.from({ length: 23 }, (_, i) => `${prefix}wal/${i.toString(16).toUpperCase().padStart(24, "0")}`);
        const shuffled = [...names].sort(() => Math.random() - 0.5);
        await Promise.all(shuffled.map((k, i) => f.store.put(f.bucket, k, Buffer.alloc(i + 1), {})));
        await f.store.put(f.bucket, `${prefix}walx`, Buffer.from("sibling"), {});
        await f.store.put(f.bucket, `${prefix.slice(0, -1)}-other/wal/x`, Buffer.from("elsewhere"), {});

        // Act
        const listed = await collect(paged.list(f.bucket, `${prefix}wal/`));

        // Assess
        expect(listed.map((o) => o.key)).toEqual([...names].sort());
        const sizes = new Map(shuffled.map((k, i) => [k, i + 1]));
        for (const o of listed) expect(o.size).toBe(sizes.get(o.key));
      });

      it("yields nothing for a prefix with no keys", async () => {
        // Act
        const listed = await collect(f.store.list(f.bucket, `${prefix}nothing-here/`));

        // Assess
        expect(listed).toEqual([]);
      });
    });

    describe("when the service cannot be reached", () => {
      it("rejects get, head, put, copy, delete, list and requestRestore with ServiceUnavailableError naming the endpoint", async () => {
        // Prepare
        const { store, endpoint } = f.unreachable;
        const calls: [string, () => Promise<unknown>][] = [
          ["get", () => store.get(f.bucket, "k")],
          ["head", () => store.head(f.bucket, "k")],
          ["put", () => store.put(f.bucket, "k", Buffer.from("x"), {})],
          ["copy", () => store.copy({ bucket: f.bucket, key: "k" }, { bucket: f.bucket, key: "k2" })],
          ["delete", () => store.delete(f.bucket, "k")],
          ["list", () => collect(store.list(f.bucket, ""))],
          ["requestRestore", () => store.requestRestore(f.bucket, "k", { days: 1, tier: "Standard" })],
        ];

        // Act
        const errors = await Promise.all(calls.map(async ([op, call]) => [op, await rejection(call())] as const));

        // Assess
        for (const [op, err] of errors) {
          expect(err, op).toBeInstanceOf(ServiceUnavailableError);
          expect((err as Error).message, op).toContain(endpoint);
          expect((err as Error).cause, op).toBeDefined();
        }
      });
    });
  });
}
