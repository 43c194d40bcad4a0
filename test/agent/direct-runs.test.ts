import { constants as fsc, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DIRECT_ALIGN, DirectRuns, RUN_BYTES, type WriteAt } from "../../agent/direct-runs.js";
import { seededBytes } from "../support/retention.js";

const FD = 10;
const DIRECT = 11;
const KiB128 = 128 * 1024;

interface Write {
  fd: number;
  position: number;
  bytes: Buffer;
}

/** A WriteAt that records each write (a copy of its bytes) and settles when the test says, or at once. */
function recorder(opts: { hold?: boolean; fail?: (w: Write) => NodeJS.ErrnoException | undefined } = {}) {
  const writes: Write[] = [];
  const held: (() => void)[] = [];
  const write: WriteAt = (fd, bytes, position) => {
    const w = { fd, position, bytes: Buffer.from(bytes) };
    writes.push(w);
    const err = opts.fail?.(w);
    if (err) return Promise.reject(err);
    return opts.hold === true ? new Promise<void>((r) => held.push(r)) : Promise.resolve();
  };
  return { writes, held, write };
}

function collector() {
  const answers: string[] = [];
  return { answers, settled: (a: string[]) => answers.push(...a), failed: (a: string, e: unknown) => `${a} failed: ${(e as Error).message}` };
}

/** Places and commits a chunk of `bytes` at `position`; false when it cannot join a run. */
function put(runs: DirectRuns<string>, position: number, bytes: Uint8Array, answer: string): boolean {
  const p = runs.place(FD, DIRECT, position, bytes.length);
  if (p === undefined) return false;
  expect(p.view.length).toBe(bytes.length + 1);
  p.view.set(bytes);
  p.commit(answer);
  return true;
}

const settle = () => new Promise((r) => setImmediate(r));

describe("DirectRuns", () => {
  it("gathers consecutive chunks of a file into one direct write of RUN_BYTES, and answers only once it is written", async () => {
    // Prepare
    const w = recorder({ hold: true });
    const c = collector();
    const runs = new DirectRuns<string>(2, w.write, c.settled, c.failed);
    const chunks = Array.from({ length: RUN_BYTES / KiB128 }, (_, i) => seededBytes(i, KiB128));
    // Act
    chunks.forEach((b, i) => expect(put(runs, 4 * RUN_BYTES + i * KiB128, b, `c${i}`)).toBe(true));
    await settle();
    const answeredBeforeWrite = [...c.answers];
    w.held.forEach((r) => r());
    await settle();
    // Assess
    expect(w.writes).toHaveLength(1);
    expect(w.writes[0]!.fd).toBe(DIRECT);
    expect(w.writes[0]!.position).toBe(4 * RUN_BYTES);
    expect(w.writes[0]!.bytes.equals(Buffer.concat(chunks))).toBe(true);
    expect(answeredBeforeWrite).toEqual([]);
    expect(c.answers).toEqual(chunks.map((_, i) => `c${i}`));
  });

  it("writes the aligned part of a run directly and its unaligned tail on the ordinary descriptor", async () => {
    // Prepare: a file's last two chunks, the last one not a multiple of DIRECT_ALIGN
    const w = recorder();
    const c = collector();
    const runs = new DirectRuns<string>(2, w.write, c.settled, c.failed);
    const a = seededBytes(1, KiB128);
    const b = seededBytes(2, 3 * DIRECT_ALIGN + 100);
    // Act
    put(runs, 0, a, "a");
    put(runs, KiB128, b, "b");
    runs.flush();
    await settle();
    // Assess
    expect(w.writes.map((x) => [x.fd, x.position, x.bytes.length])).toEqual([
      [DIRECT, 0, KiB128 + 3 * DIRECT_ALIGN],
      [FD, KiB128 + 3 * DIRECT_ALIGN, 100],
    ]);
    expect(Buffer.concat(w.writes.map((x) => x.bytes)).equals(Buffer.concat([a, b]))).toBe(true);
    expect(c.answers).toEqual(["a", "b"]);
  });

  it("cuts a run at a chunk that does not follow it, and places no run at an unaligned offset", async () => {
    // Prepare
    const w = recorder();
    const c = collector();
    const runs = new DirectRuns<string>(4, w.write, c.settled, c.failed);
    // Act
    put(runs, 0, seededBytes(1, KiB128), "first");
    const jumped = put(runs, 3 * KiB128, seededBytes(2, KiB128), "jumped");
    const unaligned = put(runs, 5 * KiB128 + 512, seededBytes(3, KiB128), "unaligned");
    runs.flush();
    await settle();
    // Assess: the first run was written when the jump came; the unaligned chunk is the caller's to write
    expect(jumped).toBe(true);
    expect(unaligned).toBe(false);
    expect(w.writes.map((x) => [x.fd, x.position])).toEqual([
      [DIRECT, 0],
      [DIRECT, 3 * KiB128],
    ]);
    expect(c.answers).toEqual(["first", "jumped"]);
  });

  it("places nothing while every slot is being written, and again once one is free", async () => {
    // Prepare: one slot, its run being written
    const w = recorder({ hold: true });
    const c = collector();
    const runs = new DirectRuns<string>(1, w.write, c.settled, c.failed);
    put(runs, 0, seededBytes(1, KiB128), "a");
    runs.flush();
    // Act
    const whileBusy = runs.place(FD, DIRECT, RUN_BYTES, KiB128);
    w.held.forEach((r) => r());
    await settle();
    const afterwards = runs.place(FD, DIRECT, RUN_BYTES, KiB128);
    // Assess
    expect(whileBusy).toBeUndefined();
    expect(afterwards).toBeDefined();
    expect(runs.busy).toBe(1);
  });

  it("rewrites a run on the ordinary descriptor when direct I/O is refused (EINVAL), and places nothing after", async () => {
    // Prepare
    const w = recorder({ fail: (x) => (x.fd === DIRECT ? Object.assign(new Error("EINVAL: invalid argument, write"), { code: "EINVAL" }) : undefined) });
    const c = collector();
    const runs = new DirectRuns<string>(2, w.write, c.settled, c.failed);
    const a = seededBytes(1, KiB128);
    // Act
    put(runs, 0, a, "a");
    runs.flush();
    await settle();
    // Assess
    expect(w.writes.map((x) => x.fd)).toEqual([DIRECT, FD]);
    expect(w.writes[1]!.bytes.equals(a)).toBe(true);
    expect(c.answers).toEqual(["a"]);
    expect(runs.usingDirect).toBe(false);
    expect(runs.place(FD, DIRECT, RUN_BYTES, KiB128)).toBeUndefined();
  });

  it("turns every answer of a run whose write failed into its failure", async () => {
    // Prepare
    const w = recorder({ fail: () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }) });
    const c = collector();
    const runs = new DirectRuns<string>(2, w.write, c.settled, c.failed);
    // Act
    put(runs, 0, seededBytes(1, KiB128), "a");
    put(runs, KiB128, seededBytes(2, KiB128), "b");
    runs.flush();
    await settle();
    // Assess
    expect(c.answers).toEqual(["a failed: ENOSPC: no space left on device, write", "b failed: ENOSPC: no space left on device, write"]);
    expect(runs.busy).toBe(0);
  });
});

describe("DirectRuns on a real file", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("writes a file through O_DIRECT and the ordinary descriptor byte-identical to its chunks, whichever the filesystem allows", async () => {
    // Prepare: 2.5 runs of 128 KiB chunks and an unaligned last chunk, the second half first
    dir = mkdtempSync(join(tmpdir(), "direct-runs-"));
    const path = join(dir, "f");
    const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    let direct: FileHandle | undefined;
    try {
      direct = await open(path, fsc.O_WRONLY | fsc.O_DIRECT);
    } catch {
      direct = undefined; // a filesystem without O_DIRECT: the ordinary descriptor stands in
    }
    const chunks = [...Array.from({ length: 20 }, (_, i) => seededBytes(100 + i, KiB128)), seededBytes(200, 5000)];
    const writeAt: WriteAt = async (fd, bytes, position) => {
      for (let off = 0; off < bytes.length; ) off += (await (fd === fh.fd ? fh : direct ?? fh).write(bytes, off, bytes.length - off, position + off)).bytesWritten;
    };
    const c = collector();
    const runs = new DirectRuns<string>(2, writeAt, c.settled, c.failed);
    // Act: the second half first, then the first half
    const order = [...chunks.keys()].slice(10).concat([...chunks.keys()].slice(0, 10));
    let placed = 0;
    for (const i of order) {
      const p = runs.place(fh.fd, direct?.fd ?? fh.fd, i * KiB128, chunks[i]!.length);
      if (p === undefined) {
        // No slot free (both runs still being written): written by the caller, as the decode worker does.
        await writeAt(fh.fd, chunks[i]!, i * KiB128);
        c.answers.push(`c${i}`);
        continue;
      }
      placed++;
      p.view.set(chunks[i]!);
      p.commit(`c${i}`);
    }
    runs.flush();
    while (c.answers.length < chunks.length) await settle();
    await fh.close();
    await direct?.close();
    // Assess
    expect(readFileSync(path).equals(Buffer.concat(chunks))).toBe(true);
    expect(placed).toBeGreaterThanOrEqual(10);
    expect([...c.answers].sort()).toEqual(chunks.map((_, i) => `c${i}`).sort());
  });
});
