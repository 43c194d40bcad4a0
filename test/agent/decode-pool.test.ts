import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { CodecError, FileAccessError } from "../../core/errors.js";
import { sha256Hex } from "../../core/hash.js";
import { DecodePool, inThreadDecoder, openDecoder, packDecodeRequests, type ChunkDecoder } from "../../agent/decode-pool.js";
import { rejection } from "../support/rejection.js";
import { seededBytes } from "../support/retention.js";

// The compiled worker: `npm test` builds dist/ first.
const WORKER = fileURLToPath(new URL("../../dist/agent/decode-worker.js", import.meta.url));

/** An empty file opened twice, read-write and with `second`'s flags (standing in for the O_DIRECT descriptor), for the body; closed and removed after. */
async function withTwoDescriptors(second: "r+" | "r", body: (f: { path: string; fd: number; secondFd: number }) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "decode-into-runs-"));
  const path = join(dir, "f");
  writeFileSync(path, Buffer.alloc(0));
  const fh = await open(path, "r+");
  const other = await open(path, second);
  try {
    await body({ path, fd: fh.fd, secondFd: other.fd });
  } finally {
    await fh.close();
    await other.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("DecodePool", () => {
  let pool: ChunkDecoder | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it("decodes and hashes on its workers exactly as the calling thread does", async () => {
    // Prepare
    expect(existsSync(WORKER), "dist/agent/decode-worker.js (run npm run build)").toBe(true);
    pool = new DecodePool(WORKER, 2);
    const raws = Array.from({ length: 40 }, (_, i) => Buffer.concat([seededBytes(i, 4096), Buffer.alloc(128 * 1024 - 4096, i)]));
    const stored = await Promise.all(raws.map((r) => getCodec("zstd").encode(r)));
    // Act: more at once than the workers queue, so some decode on the calling thread
    const out = await Promise.all(stored.map((s, i) => pool!.decode("zstd", s, raws[i]!.length, `chunk ${i}`)));
    // Assess
    out.forEach((o, i) => {
      expect(o.raw.equals(raws[i]!)).toBe(true);
      expect(o.sha256).toBe(sha256Hex(raws[i]!));
    });
    const here = await inThreadDecoder.decode("zstd", stored[3]!, raws[3]!.length, "chunk 3");
    expect(here.sha256).toBe(out[3]!.sha256);
  });

  it("sends only the chunk's bytes, not the read it is a view of", async () => {
    // Prepare: a chunk in the middle of a larger buffer, as in a coalesced ranged read
    pool = new DecodePool(WORKER, 1);
    const raw = seededBytes(7, 100_000);
    const enc = await getCodec("zstd").encode(raw);
    const read = Buffer.concat([Buffer.alloc(1000, 1), enc, Buffer.alloc(1000, 2)]);
    const view = read.subarray(1000, 1000 + enc.length);
    // Act
    const out = await pool.decode("zstd", view, raw.length, "chunk");
    // Assess: the read is still usable here (nothing of it was transferred away)
    expect(out.raw.equals(raw)).toBe(true);
    expect(read.length).toBe(enc.length + 2000);
    expect(view.equals(enc)).toBe(true);
  });

  it("decodes chunks that are views of a shared read (a restore's coalesced read) and leaves the read intact", async () => {
    // Prepare: three chunks back to back in one SharedArrayBuffer, as ChunkReads' sharedBodies lands them
    pool = new DecodePool(WORKER, 2);
    const raws = [seededBytes(11, 70_000), seededBytes(12, 90_000), seededBytes(13, 50_000)];
    const encs = await Promise.all(raws.map((r) => getCodec("zstd").encode(r)));
    const read = Buffer.from(new SharedArrayBuffer(encs.reduce((n, e) => n + e.length, 0)));
    let at = 0;
    const views = encs.map((e) => {
      read.set(e, at);
      at += e.length;
      return read.subarray(at - e.length, at);
    });
    // Act
    const out = await Promise.all(views.map((v, i) => pool!.decode("zstd", v, raws[i]!.length, `chunk ${i}`)));
    // Assess
    out.forEach((o, i) => {
      expect(o.raw.equals(raws[i]!)).toBe(true);
      expect(o.sha256).toBe(sha256Hex(raws[i]!));
    });
    expect(Buffer.concat(views).equals(Buffer.concat(encs))).toBe(true);
  });

  it("rejects a chunk that does not decode with a CodecError naming it", async () => {
    // Prepare
    pool = new DecodePool(WORKER, 1);
    // Act
    const attempt = pool.decode("zstd", Buffer.from("not zstd at all"), 100, "chunk abc of file base/1/2");
    // Assess
    await expect(attempt).rejects.toBeInstanceOf(CodecError);
    await expect(attempt).rejects.toThrow(/chunk abc of file base\/1\/2/);
  });

  it("writes a chunk at its offset of an open file only once it hashes to its name, and sends back only the hash", async () => {
    // Prepare: a file of 4 KiB of 0xee; one good chunk for offset 1000, one whose name is wrong
    pool = new DecodePool(WORKER, 1);
    const dir = mkdtempSync(join(tmpdir(), "decode-into-"));
    const path = join(dir, "f");
    writeFileSync(path, Buffer.alloc(4096, 0xee));
    const fh = await open(path, "r+");
    const good = seededBytes(11, 1024);
    const bad = seededBytes(12, 1024);
    const [encGood, encBad] = await Promise.all([getCodec("zstd").encode(good), getCodec("zstd").encode(bad)]);
    try {
      // Act
      const wrote = await pool.decodeInto!("zstd", encGood, good.length, "chunk good", { fd: fh.fd, position: 1000, sha256: sha256Hex(good) });
      const refused = await pool.decodeInto!("zstd", encBad, bad.length, "chunk bad", { fd: fh.fd, position: 3000, sha256: sha256Hex(good) });
      // Assess
      expect(wrote).toEqual({ sha256: sha256Hex(good), length: 1024 });
      expect(refused).toEqual({ sha256: sha256Hex(bad), length: 1024 });
      const onDisk = readFileSync(path);
      expect(onDisk.subarray(1000, 2024).equals(good)).toBe(true);
      expect(onDisk.subarray(3000, 4024).equals(Buffer.alloc(1024, 0xee))).toBe(true);
      expect(onDisk.length).toBe(4096);
    } finally {
      await fh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("takes the chunks asked for in one turn as one message and writes each whole at its offset, one after the other", async () => {
    // Prepare: 12 distinct zstd chunks of 64 KiB for consecutive offsets of an empty file, asked for together
    pool = new DecodePool(WORKER, 1);
    const dir = mkdtempSync(join(tmpdir(), "decode-into-batch-"));
    const path = join(dir, "f");
    writeFileSync(path, Buffer.alloc(0));
    const fh = await open(path, "r+");
    const size = 64 * 1024;
    const raws = Array.from({ length: 12 }, (_, i) => Buffer.concat([seededBytes(200 + i, 4096), Buffer.alloc(size - 4096, i + 1)]));
    const enc = await Promise.all(raws.map((r) => getCodec("zstd").encode(r)));
    try {
      // Act
      const got = await Promise.all(raws.map((r, i) => pool!.decodeInto!("zstd", enc[i]!, r.length, `chunk ${i}`, { fd: fh.fd, position: i * size, sha256: sha256Hex(r) })));
      // Assess: each verified against its own bytes (the worker's one reused output buffer is never shared by two at once)
      expect(got).toEqual(raws.map((r) => ({ sha256: sha256Hex(r), length: size })));
      expect(readFileSync(path).equals(Buffer.concat(raws))).toBe(true);
    } finally {
      await fh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("turns a write the worker cannot make into a FileAccessError naming the chunk, with the fs error's code as its cause", async () => {
    // Prepare: a file open read-only, so the worker's pwrite fails (EBADF)
    pool = new DecodePool(WORKER, 1);
    const dir = mkdtempSync(join(tmpdir(), "decode-into-fail-"));
    const path = join(dir, "f");
    writeFileSync(path, Buffer.alloc(10));
    const fh = await open(path, "r");
    const raw = seededBytes(21, 128 * 1024);
    const enc = await getCodec("zstd").encode(raw);
    try {
      // Act
      const attempt = pool.decodeInto!("zstd", enc, raw.length, "chunk c1 of file base/1/2", { fd: fh.fd, position: 4096, sha256: sha256Hex(raw) });
      // Assess
      const e = await attempt.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(FileAccessError);
      expect((e as FileAccessError).code).toBe("file_access");
      expect((e as Error).message).toMatch(/cannot write chunk c1 of file base\/1\/2 at offset 4096: EBADF/);
      const cause = (e as Error).cause as NodeJS.ErrnoException;
      expect(cause.code).toBe("EBADF");
      expect(cause.syscall).toBe("write");
      expect(readFileSync(path).equals(Buffer.alloc(10))).toBe(true);
    } finally {
      await fh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers a chunk of a direct run once it is verified, and drainWrites resolves once the run is in the file", async () => {
    // Prepare: a second descriptor standing in for the O_DIRECT one (what is tested is the drain, not the page cache)
    pool = new DecodePool(WORKER, 2);
    const raws = Array.from({ length: 4 }, (_, i) => seededBytes(40 + i, 128 * 1024));
    const encs = await Promise.all(raws.map((r) => getCodec("zstd").encode(r)));
    await withTwoDescriptors("r+", async ({ path, fd, secondFd }) => {
      // Act
      const answers = await Promise.all(
        raws.map((raw, i) => pool!.decodeInto!("zstd", encs[i]!, raw.length, `chunk c${i}`, { fd, directFd: secondFd, position: i * raw.length, sha256: sha256Hex(raw) })),
      );
      await pool!.drainWrites!(secondFd, 'file "base/1/2"');
      // Assess
      expect(answers.every((a) => a.direct === true && a.length === 128 * 1024)).toBe(true);
      expect(readFileSync(path).equals(Buffer.concat(raws))).toBe(true);
    });
  });

  it("decodes a run of chunks sent as one request, each answered in order, and a corrupt one answered as its own failure without stopping the others", async () => {
    // Prepare: four consecutive chunks of a file, the third's stored bytes not zstd
    pool = new DecodePool(WORKER, 2);
    const raws = Array.from({ length: 4 }, (_, i) => seededBytes(60 + i, 128 * 1024));
    const encs = await Promise.all(raws.map((r) => getCodec("zstd").encode(r)));
    encs[2] = Buffer.from("not zstd at all");
    await withTwoDescriptors("r+", async ({ path, fd, secondFd }) => {
      // Act
      const out = await pool!.decodeIntoMany!(
        raws.map((raw, i) => ({ codec: "zstd" as const, stored: encs[i]!, size: raw.length, what: `chunk c${i}`, write: { fd, directFd: secondFd, position: i * raw.length, sha256: sha256Hex(raw) } })),
      );
      await pool!.drainWrites!(secondFd, 'file "f"');
      // Assess
      expect(out).toHaveLength(4);
      expect(out[2]).toBeInstanceOf(CodecError);
      expect((out[2] as Error).message).toContain("chunk c2");
      for (const i of [0, 1, 3]) expect(out[i]).toMatchObject({ sha256: sha256Hex(raws[i]!), length: 128 * 1024, direct: true });
      const written = readFileSync(path);
      for (const i of [0, 1, 3]) expect(written.subarray(i * 128 * 1024, (i + 1) * 128 * 1024).equals(raws[i]!)).toBe(true);
      expect(written.subarray(2 * 128 * 1024, 3 * 128 * 1024).equals(raws[2]!)).toBe(false);
    });
  });

  it("reports a direct run's failed write at the file's drain, as a FileAccessError naming the file and the run's offset", async () => {
    // Prepare: the "direct" descriptor open read-only, so the run's pwrite fails (EBADF) after the chunk was answered
    pool = new DecodePool(WORKER, 2);
    const raw = seededBytes(50, 128 * 1024);
    const enc = await getCodec("zstd").encode(raw);
    await withTwoDescriptors("r", async ({ path, fd, secondFd }) => {
      // Act
      const answer = await pool!.decodeInto!("zstd", enc, raw.length, "chunk c1", { fd, directFd: secondFd, position: 2 * 1024 * 1024, sha256: sha256Hex(raw) });
      const e = await rejection(pool!.drainWrites!(secondFd, 'file "base/1/2"'));
      // Assess
      expect(answer.direct).toBe(true);
      expect(e).toBeInstanceOf(FileAccessError);
      expect(e.message).toMatch(/cannot write file "base\/1\/2" at offset 2097152: EBADF/);
      expect((e.cause as NodeJS.ErrnoException).code).toBe("EBADF");
      expect(readFileSync(path).length).toBe(0);
    });
  });

  it("decodes many chunks in a row on its kept zstd context, and a corrupt one between them neither passes nor spoils the next", async () => {
    // Prepare: good, corrupt (a flipped byte mid-frame), good again, and one whose recorded size is one byte short
    pool = new DecodePool(WORKER, 1);
    const raws = Array.from({ length: 6 }, (_, i) => Buffer.concat([seededBytes(100 + i, 8192), Buffer.alloc(120 * 1024, i)]));
    const enc = await Promise.all(raws.map((r) => getCodec("zstd").encode(r)));
    const corrupt = Buffer.from(enc[2]!);
    corrupt[corrupt.length >> 1]! ^= 0xff;
    // Act
    const results = await Promise.all(
      raws.map((r, i) =>
        pool!.decode("zstd", i === 2 ? corrupt : enc[i]!, i === 4 ? r.length - 1 : r.length, `chunk ${i}`).then(
          (o) => o,
          (e: unknown) => e as Error,
        ),
      ),
    );
    // Assess
    for (const i of [0, 1, 3, 5]) {
      const o = results[i] as { raw: Buffer; sha256: string };
      expect(o.raw.equals(raws[i]!)).toBe(true);
      expect(o.sha256).toBe(sha256Hex(raws[i]!));
    }
    const bad = results[2] as { raw?: Buffer; sha256?: string } | Error;
    if (bad instanceof Error) expect(bad).toBeInstanceOf(CodecError);
    else expect(bad.sha256).not.toBe(sha256Hex(raws[2]!));
    // The one-shot decode's answer, as before the kept context: more bytes than recorded (checkedDecode refuses them).
    expect((results[4] as { raw: Buffer }).raw.length).toBe(raws[4]!.length);
  });

  it("refuses work once closed", async () => {
    // Prepare
    const closed = new DecodePool(WORKER, 1);
    await closed.close();
    // Act
    const attempt = closed.decode("none", Buffer.from("x"), 1, "chunk");
    // Assess
    await expect(attempt).rejects.toThrow(/closed/);
  });
});

describe("packDecodeRequests", () => {
  it("sends views of shared memory as they are and copies only the other chunks' bytes", () => {
    // Prepare: one chunk in a shared read, one in an ordinary buffer, one run whose parts are in the shared read
    const shared = Buffer.from(new SharedArrayBuffer(100));
    shared.fill(7);
    const own = Buffer.from([1, 2, 3, 4, 5]);
    const write = { fd: 3, position: 0, sha256: "0".repeat(64) };
    const base = { codec: "zstd" as const, size: 10, what: "chunk" };
    // Act
    const { message, transfer } = packDecodeRequests([
      { ...base, id: 1, stored: shared.subarray(10, 30) },
      { ...base, id: 2, stored: own.subarray(1, 4) },
      { ...base, id: 3, stored: new Uint8Array(0), parts: [{ ...base, stored: shared.subarray(40, 50), write }, { ...base, stored: own, write }] },
    ]);
    // Assess: shared bytes are referenced (no copy), the rest copied into the one transferred buffer
    expect(message.shared).toEqual([shared.buffer]);
    expect(message.requests[0]).toMatchObject({ id: 1, src: 0, at: 10, length: 20 });
    expect(message.requests[1]).toMatchObject({ id: 2, at: 0, length: 3 });
    expect(message.requests[1]!.src).toBeUndefined();
    expect(message.requests[2]!.parts![0]).toMatchObject({ src: 0, at: 40, length: 10 });
    expect(message.requests[2]!.parts![1]).toMatchObject({ at: 3, length: 5 });
    expect(Buffer.from(message.bytes).equals(Buffer.from([2, 3, 4, 1, 2, 3, 4, 5]))).toBe(true);
    expect(transfer).toEqual([message.bytes.buffer]);
  });
});

describe("openDecoder", () => {
  it("decodes on the calling thread for a small restore, with no threads, or without a compiled worker", async () => {
    // Prepare, Act, Assess
    expect(openDecoder({ chunks: 10, workerFile: WORKER })).toBe(inThreadDecoder);
    expect(openDecoder({ chunks: 10_000, threads: 0, workerFile: WORKER })).toBe(inThreadDecoder);
    // From the TypeScript sources (this test) there is no compiled worker next to the module.
    expect(openDecoder({ chunks: 10_000 })).toBe(inThreadDecoder);
  });

  it("decodes on the calling thread by default, with workers when WALVAULT_DECODE_THREADS asks", async () => {
    // Prepare
    const before = process.env.WALVAULT_DECODE_THREADS;
    try {
      delete process.env.WALVAULT_DECODE_THREADS;
      // Act
      const byDefault = openDecoder({ chunks: 10_000, workerFile: WORKER });
      process.env.WALVAULT_DECODE_THREADS = "1";
      const asked = openDecoder({ chunks: 10_000, workerFile: WORKER });
      // Assess
      expect(byDefault).toBe(inThreadDecoder);
      expect(asked).toBeInstanceOf(DecodePool);
      await asked.close();
    } finally {
      if (before === undefined) delete process.env.WALVAULT_DECODE_THREADS;
      else process.env.WALVAULT_DECODE_THREADS = before;
    }
  });

  it("starts a pool for a large restore", async () => {
    // Prepare, Act
    const d = openDecoder({ chunks: 10_000, threads: 1, workerFile: WORKER });
    // Assess
    expect(d).toBeInstanceOf(DecodePool);
    await d.close();
  });
});
