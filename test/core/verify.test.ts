import { describe, expect, it, vi } from "vitest";
import { getCodec, type CodecName } from "../../core/codec.js";
import { ChecksumMismatchError, CodecError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { META_BACKLOG } from "../../core/schemas.js";
import { MAX_BACKLOG, parseBacklogMeta, verifyWalBytes, withVerifiedWalBytes, type ClaimedMeta } from "../../core/verify.js";
import { parseWalFileName } from "../../core/wal.js";
import { ZstdInto } from "../../core/zstd-into.js";
import { syntheticSegment } from "../support/wal.js";

describe("parseBacklogMeta", () => {
  it("reads the count an upload reports", () => {
    // Act and Assess
    expect(parseBacklogMeta({ [META_BACKLOG]: "0" })).toBe(0);
    expect(parseBacklogMeta({ [META_BACKLOG]: "37", "walvault-sha256": "x" })).toBe(37);
    expect(parseBacklogMeta({ [META_BACKLOG]: String(MAX_BACKLOG) })).toBe(MAX_BACKLOG);
  });

  it("is undefined when the upload reports none, or anything that is not a count (telemetry: never a reason to reject WAL)", () => {
    // Act and Assess
    for (const v of ["", "-1", "1.5", "0x10", " 3", "3 ", "abc", "1e3", String(MAX_BACKLOG + 1), "123456789"]) {
      expect(parseBacklogMeta({ [META_BACKLOG]: v }), JSON.stringify(v)).toBeUndefined();
    }
    expect(parseBacklogMeta({})).toBeUndefined();
  });
});

describe("withVerifiedWalBytes", () => {
  const name = "000000010000000000000003";
  const segmentSize = 1 << 20;
  const file = parseWalFileName(name, segmentSize);
  const options = { postgres: true, kept: new ZstdInto() };

  async function encoded(codec: CodecName, raw: Buffer): Promise<{ enc: Buffer; claimed: ClaimedMeta }> {
    return { enc: await getCodec(codec).encode(raw), claimed: { sha256: sha256Hex(raw), codec, size: raw.length } };
  }

  it("gives its callback the proven raw bytes of a zstd segment, and returns what the callback returns", async () => {
    // Prepare
    const raw = syntheticSegment(name, 7, segmentSize);
    const { enc, claimed } = await encoded("zstd", raw);

    // Act
    const seen = await withVerifiedWalBytes(file, enc, claimed, segmentSize, "test", options, (bytes) => sha256Hex(bytes));

    // Assess
    expect(seen).toBe(sha256Hex(raw));
  });

  it("decodes one segment after another on the kept context, each callback seeing its own segment", async () => {
    // Prepare
    const raws = [1, 2, 3].map((seed) => syntheticSegment(name, seed, segmentSize));
    const objects = await Promise.all(raws.map((r) => encoded("zstd", r)));

    // Act
    const seen: string[] = [];
    for (const o of objects) seen.push(await withVerifiedWalBytes(file, o.enc, o.claimed, segmentSize, "test", options, (bytes) => sha256Hex(bytes)));

    // Assess
    expect(seen).toEqual(raws.map((r) => sha256Hex(r)));
  });

  it("verifies other codecs too, one-shot", async () => {
    // Prepare
    const raw = syntheticSegment(name, 4, segmentSize);
    const { enc, claimed } = await encoded("gzip", raw);

    // Act
    const length = await withVerifiedWalBytes(file, enc, claimed, segmentSize, "test", options, (bytes) => bytes.length);

    // Assess
    expect(length).toBe(segmentSize);
  });

  it("rejects bytes whose SHA-256 is not the claimed one, without calling back", async () => {
    // Prepare
    const raw = syntheticSegment(name, 5, segmentSize);
    const { enc, claimed } = await encoded("zstd", raw);
    const use = vi.fn();

    // Act
    const run = withVerifiedWalBytes(file, enc, { ...claimed, sha256: sha256Hex(Buffer.from("other")) }, segmentSize, "test", options, use);

    // Assess
    await expect(run).rejects.toBeInstanceOf(ChecksumMismatchError);
    expect(use).not.toHaveBeenCalled();
  });

  it("rejects a segment that decodes to more than its claimed size as verifyWalBytes does", async () => {
    // Prepare
    const raw = syntheticSegment(name, 6, segmentSize);
    const { enc, claimed } = await encoded("zstd", raw);
    const smaller = { ...claimed, size: segmentSize - 8192 };

    // Act
    const kept = withVerifiedWalBytes(file, enc, smaller, segmentSize, "test", options, () => undefined);
    const oneShot = verifyWalBytes(file, enc, smaller, segmentSize, "test", { postgres: true });

    // Assess
    await expect(kept).rejects.toBeInstanceOf(CodecError);
    await expect(oneShot).rejects.toBeInstanceOf(CodecError);
  });

  it("rejects a segment whose page header names another segment", async () => {
    // Prepare
    const raw = syntheticSegment("000000010000000000000004", 8, segmentSize);
    const { enc, claimed } = await encoded("zstd", raw);

    // Act
    const run = withVerifiedWalBytes(file, enc, claimed, segmentSize, "test", options, () => undefined);

    // Assess
    await expect(run).rejects.toThrow(/the name says/);
  });

  it("rejects a truncated or corrupt object with verifyWalBytes's error, and decodes the next segment on a fresh context", async () => {
    // Prepare
    const raw = syntheticSegment(name, 9, segmentSize);
    const { enc, claimed } = await encoded("zstd", raw);
    const corrupt = Buffer.from(enc);
    corrupt.fill(0xa5, 64, 4096);
    const damaged = [enc.subarray(0, enc.length >> 1), corrupt];
    const message = (p: Promise<unknown>): Promise<string> => p.then(() => "resolved", (e: Error) => `${e.name}: ${e.message}`);

    // Act
    const kept = await Promise.all(damaged.map((d) => message(withVerifiedWalBytes(file, d, claimed, segmentSize, "test", options, () => undefined))));
    const oneShot = await Promise.all(damaged.map((d) => message(verifyWalBytes(file, d, claimed, segmentSize, "test", { postgres: true }))));
    const good = await withVerifiedWalBytes(file, enc, claimed, segmentSize, "test", options, (bytes) => sha256Hex(bytes));

    // Assess
    expect(kept).toEqual(oneShot);
    expect(kept.every((m) => m !== "resolved")).toBe(true);
    expect(good).toBe(sha256Hex(raw));
  });
});
