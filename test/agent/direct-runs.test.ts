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

/** Places and commits a chunk of `bytes` at `position`; false when it cannot join a run. */
async function put(runs: DirectRuns, position: number, bytes: Uint8Array): Promise<boolean> {
  const p = await runs.place(FD, DIRECT, position, bytes.length);
  if (p === undefined) return false;
  expect(p.view.length).toBe(bytes.length + 1);
  p.view.set(bytes);
  p.commit();
  return true;
}

const settle = () => new Promise((r) => setImmediate(r));

describe("DirectRuns", () => {
  it("gathers consecutive chunks of a file into one direct write of RUN_BYTES, and drains the file only once it is written", async () => {
    // Prepare
    const w = recorder({ hold: true });
    const runs = new DirectRuns(2, w.write);
    const chunks = Array.from({ length: RUN_BYTES / KiB128 }, (_, i) => seededBytes(i, KiB128));
    // Act
    for (const [i, b] of chunks.entries()) expect(await put(runs, 4 * RUN_BYTES + i * KiB128, b)).toBe(true);
    let drained = false;
    const drain = runs.drain(DIRECT).then((f) => {
      drained = true;
      return f;
    });
    await settle();
    const drainedBeforeWrite = drained;
    w.held.forEach((r) => r());
    const failure = await drain;
    // Assess
    expect(w.writes).toHaveLength(1);
    expect(w.writes[0]!.fd).toBe(DIRECT);
    expect(w.writes[0]!.position).toBe(4 * RUN_BYTES);
    expect(w.writes[0]!.bytes.equals(Buffer.concat(chunks))).toBe(true);
    expect(drainedBeforeWrite).toBe(false);
    expect(failure).toBeUndefined();
    expect(runs.busy).toBe(0);
  });

  it("keeps a run open until it is full or its file is drained, and writes the aligned part directly and the unaligned tail on the ordinary descriptor", async () => {
    // Prepare: a file's last two chunks, the last one not a multiple of DIRECT_ALIGN
    const w = recorder();
    const runs = new DirectRuns(2, w.write);
    const a = seededBytes(1, KiB128);
    const b = seededBytes(2, 3 * DIRECT_ALIGN + 100);
    // Act
    await put(runs, 0, a);
    await put(runs, KiB128, b);
    await settle();
    const writesBeforeDrain = w.writes.length;
    const failure = await runs.drain(DIRECT);
    // Assess
    expect(writesBeforeDrain).toBe(0);
    expect(failure).toBeUndefined();
    expect(w.writes.map((x) => [x.fd, x.position, x.bytes.length])).toEqual([
      [DIRECT, 0, KiB128 + 3 * DIRECT_ALIGN],
      [FD, KiB128 + 3 * DIRECT_ALIGN, 100],
    ]);
    expect(Buffer.concat(w.writes.map((x) => x.bytes)).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it("cuts a run at a chunk that does not follow it, and places no run at an unaligned offset", async () => {
    // Prepare
    const w = recorder();
    const runs = new DirectRuns(4, w.write);
    // Act
    await put(runs, 0, seededBytes(1, KiB128));
    const jumped = await put(runs, 3 * KiB128, seededBytes(2, KiB128));
    const unaligned = await put(runs, 5 * KiB128 + 512, seededBytes(3, KiB128));
    await runs.drain(DIRECT);
    // Assess: the first run was written when the jump came; the unaligned chunk is the caller's to write
    expect(jumped).toBe(true);
    expect(unaligned).toBe(false);
    expect(w.writes.map((x) => [x.fd, x.position])).toEqual([
      [DIRECT, 0],
      [DIRECT, 3 * KiB128],
    ]);
  });

  it("places nothing while every slot is being written: it waits for the slot, and places once the write has ended", async () => {
    // Prepare: one slot, its run being written
    const w = recorder({ hold: true });
    const runs = new DirectRuns(1, w.write);
    await put(runs, 0, seededBytes(1, KiB128));
    runs.flush();
    // Act
    let waited: unknown = "pending";
    const waiting = runs.place(FD, DIRECT, RUN_BYTES, KiB128).then((p) => (waited = p));
    await settle();
    const whileBusy = waited;
    w.held.forEach((r) => r());
    await waiting;
    // Assess
    expect(whileBusy).toBe("pending");
    expect(waited).toBeDefined();
    expect(runs.busy).toBe(1);
  });

  it("rewrites a run on the ordinary descriptor when direct I/O is refused (EINVAL), and places nothing after", async () => {
    // Prepare
    const w = recorder({ fail: (x) => (x.fd === DIRECT ? Object.assign(new Error("EINVAL: invalid argument, write"), { code: "EINVAL" }) : undefined) });
    const runs = new DirectRuns(2, w.write);
    const a = seededBytes(1, KiB128);
    // Act
    await put(runs, 0, a);
    const failure = await runs.drain(DIRECT);
    // Assess
    expect(failure).toBeUndefined();
    expect(w.writes.map((x) => x.fd)).toEqual([DIRECT, FD]);
    expect(w.writes[1]!.bytes.equals(a)).toBe(true);
    expect(runs.usingDirect).toBe(false);
    expect(await runs.place(FD, DIRECT, RUN_BYTES, KiB128)).toBeUndefined();
  });

  it("drains a file whose run failed to write with the error and the run's offset, and forgets the failure once reported", async () => {
    // Prepare
    const w = recorder({ fail: () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }) });
    const runs = new DirectRuns(2, w.write);
    // Act
    await put(runs, 2 * RUN_BYTES, seededBytes(1, KiB128));
    await put(runs, 2 * RUN_BYTES + KiB128, seededBytes(2, KiB128));
    const failure = await runs.drain(DIRECT);
    const again = await runs.drain(DIRECT);
    // Assess
    expect((failure?.error as NodeJS.ErrnoException).code).toBe("ENOSPC");
    expect(failure?.position).toBe(2 * RUN_BYTES);
    expect(again).toBeUndefined();
    expect(runs.busy).toBe(0);
  });

  it("drains every file at once: each open run written, resolved once no write is in flight", async () => {
    // Prepare: runs of two files, their writes held
    const w = recorder({ hold: true });
    const runs = new DirectRuns(4, w.write);
    await put(runs, 0, seededBytes(1, KiB128));
    const other = (await runs.place(FD + 10, DIRECT + 10, 0, KiB128))!;
    other.view.set(seededBytes(2, KiB128));
    other.commit();
    // Act
    let drained = false;
    const all = runs.drain().then(() => (drained = true));
    await settle();
    const beforeWrites = drained;
    w.held.forEach((r) => r());
    await all;
    // Assess
    expect(beforeWrites).toBe(false);
    expect(w.writes.map((x) => x.fd).sort()).toEqual([DIRECT, DIRECT + 10]);
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
    const runs = new DirectRuns(2, writeAt);
    // Act: the second half first, then the first half
    const order = [...chunks.keys()].slice(10).concat([...chunks.keys()].slice(0, 10));
    let placed = 0;
    for (const i of order) {
      const p = await runs.place(fh.fd, direct?.fd ?? fh.fd, i * KiB128, chunks[i]!.length);
      if (p === undefined) {
        // A chunk that joins no run (direct I/O refused): written by the caller, as the decode worker does.
        await writeAt(fh.fd, chunks[i]!, i * KiB128);
        continue;
      }
      placed++;
      p.view.set(chunks[i]!);
      p.commit();
    }
    const failure = await runs.drain(direct?.fd ?? fh.fd);
    await fh.close();
    await direct?.close();
    // Assess
    expect(readFileSync(path).equals(Buffer.concat(chunks))).toBe(true);
    expect(failure).toBeUndefined();
    expect(placed).toBeGreaterThanOrEqual(10);
  });
});
