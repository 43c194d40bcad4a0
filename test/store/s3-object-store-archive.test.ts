/**
 * S3ObjectStore and archive storage classes (GLACIER, DEEP_ARCHIVE), which
 * s3rver does not have: what head() reports from StorageClass and
 * x-amz-restore, how requestRestore() sends RestoreObject and which answers
 * count as done, and the one-line ObjectArchivedError a GET of an archived
 * object (S3 InvalidObjectState) becomes. Unit test of the error paths: the
 * SDK client's send() is replaced by one that answers what S3 answers.
 */
import { S3Client, type HeadObjectCommandOutput } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { NotFoundError, ObjectArchivedError, ServiceUnavailableError } from "../../core/errors.js";
import { isReadable } from "../../store/object-store.js";
import { parseRestoreHeader, S3ObjectStore } from "../../store/s3-object-store.js";

/** An error shaped like the SDK's service exceptions. */
function sdkError(name: string, status: number): Error {
  const e = new Error(`${name}: simulated`);
  e.name = name;
  Object.assign(e, { $fault: status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status } });
  return e;
}

/** A store whose client answers every command with `answer(command name, input)`. */
function answering(answer: (command: string, input: Record<string, unknown>) => unknown): S3ObjectStore & { sent: { command: string; input: Record<string, unknown> }[] } {
  const client = new S3Client({ region: "us-east-1" });
  const sent: { command: string; input: Record<string, unknown> }[] = [];
  client.send = (async (cmd: { constructor: { name: string }; input: Record<string, unknown> }) => {
    sent.push({ command: cmd.constructor.name, input: cmd.input });
    const out = answer(cmd.constructor.name, cmd.input);
    if (out instanceof Error) throw out;
    return out;
  }) as never;
  return Object.assign(new S3ObjectStore({ name: "s3", client, where: "s3.test" }), { sent });
}

const headOf = (out: Partial<HeadObjectCommandOutput>) => answering(() => ({ ContentLength: 10, Metadata: {}, ...out }));

describe("S3ObjectStore head() of archived objects", () => {
  it("reports GLACIER with no restore as not readable", async () => {
    // Act
    const info = await headOf({ StorageClass: "GLACIER" }).head("b", "db/x/packs/p");

    // Assess
    expect(info?.storageClass).toBe("GLACIER");
    expect(info?.restore).toBeUndefined();
    expect(isReadable(info!)).toBe(false);
  });

  it("reports a restore in progress as ongoing, and a finished one with its expiry as readable", async () => {
    // Act
    const ongoing = await headOf({ StorageClass: "DEEP_ARCHIVE", Restore: 'ongoing-request="true"' }).head("b", "k");
    const done = await headOf({ StorageClass: "GLACIER", Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"' }).head("b", "k");

    // Assess
    expect(ongoing?.restore).toEqual({ ongoing: true });
    expect(isReadable(ongoing!)).toBe(false);
    expect(done?.restore).toEqual({ ongoing: false, expiry: new Date("2012-12-21T00:00:00Z") });
    expect(isReadable(done!)).toBe(true);
  });

  it("names instant-retrieval classes but counts them readable, and leaves STANDARD unnamed", async () => {
    // Act
    const ir = await headOf({ StorageClass: "GLACIER_IR" }).head("b", "k");
    const standard = await headOf({ StorageClass: "STANDARD" }).head("b", "k");

    // Assess
    expect(ir?.storageClass).toBe("GLACIER_IR");
    expect(isReadable(ir!)).toBe(true);
    expect(standard?.storageClass).toBeUndefined();
  });

  it("parses x-amz-restore whatever its spacing and ignores an unreadable expiry", () => {
    expect(parseRestoreHeader(undefined)).toBeUndefined();
    expect(parseRestoreHeader('ongoing-request = "true"')).toEqual({ ongoing: true });
    expect(parseRestoreHeader('ongoing-request="false", expiry-date="soon"')).toEqual({ ongoing: false });
  });
});

describe("S3ObjectStore requestRestore()", () => {
  it("sends RestoreObject with the days and tier asked for", async () => {
    // Prepare
    const store = answering(() => ({}));

    // Act
    await store.requestRestore("vault", "db/x/packs/p", { days: 2, tier: "Bulk" });

    // Assess
    expect(store.sent).toEqual([
      { command: "RestoreObjectCommand", input: { Bucket: "vault", Key: "db/x/packs/p", RestoreRequest: { Days: 2, GlacierJobParameters: { Tier: "Bulk" } } } },
    ]);
  });

  it("resolves when a restore is already in progress (409) or the object has nothing to restore (InvalidObjectState)", async () => {
    // Act + Assess
    await expect(answering(() => sdkError("RestoreAlreadyInProgress", 409)).requestRestore("b", "k", { days: 1, tier: "Standard" })).resolves.toBeUndefined();
    await expect(answering(() => sdkError("InvalidObjectState", 403)).requestRestore("b", "k", { days: 1, tier: "Standard" })).resolves.toBeUndefined();
  });

  it("rejects a missing key with NotFoundError naming it, and throttling with ServiceUnavailableError", async () => {
    // Act
    const missing = await answering(() => sdkError("NoSuchKey", 404)).requestRestore("b", "db/x/packs/gone", { days: 1, tier: "Standard" }).catch((e: unknown) => e);
    const slow = await answering(() => sdkError("SlowDown", 503)).requestRestore("b", "k", { days: 1, tier: "Standard" }).catch((e: unknown) => e);

    // Assess
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as Error).message).toContain("s3://b/db/x/packs/gone");
    expect(slow).toBeInstanceOf(ServiceUnavailableError);
  });
});

describe("S3ObjectStore reads of an archived object (S3 InvalidObjectState)", () => {
  it("get and getRange reject with one line naming the object and saying to run the restore with thaw", async () => {
    // Prepare: S3 answers a GET of a GLACIER object without a restored copy with 403 InvalidObjectState
    const store = answering(() => sdkError("InvalidObjectState", 403));

    // Act
    const errors = [await store.get("vault", "db/x/packs/p1").catch((e: unknown) => e), await store.getRange("vault", "db/x/packs/p1", 0, 9).catch((e: unknown) => e)];

    // Assess
    for (const err of errors) {
      expect(err).toBeInstanceOf(ObjectArchivedError);
      expect((err as Error).message).toContain("s3://vault/db/x/packs/p1");
      expect((err as Error).message).toContain('"thaw": true');
      expect((err as Error).message).not.toContain("\n");
      expect((err as Error).cause).toBeDefined();
    }
  });
});
