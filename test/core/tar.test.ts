import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../core/errors.js";
import { readTar } from "../../core/tar.js";
import type { TarEntry, TarEntryType } from "../../core/tar.js";
import { ScratchPostgres } from "../../agent/postgres.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TAR = "/usr/bin/tar";
const PG_BIN = "/usr/lib/postgresql/15/bin";

// ---------------------------------------------------------------------------
// Helpers

/** Seeded PRNG (mulberry32) in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic pseudo-random bytes (xorshift32 words, little-endian). */
function randomBytes(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/**
 * Re-splits a stream into pieces whose sizes are drawn log-uniformly from
 * [1, maxPiece] (maxPiece 1: every piece is one byte). Pieces are subarrays.
 */
async function* randomPieces(
  source: AsyncIterable<Uint8Array>,
  rand: () => number,
  maxPiece: number,
): AsyncGenerator<Uint8Array> {
  const logMax = Math.log(maxPiece);
  for await (const buf of source) {
    let off = 0;
    while (off < buf.length) {
      const size = Math.max(1, Math.floor(Math.exp(rand() * logMax)));
      yield buf.subarray(off, off + size);
      off += size;
    }
  }
}

async function* fromPieces(pieces: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of pieces) yield p;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

interface Observed {
  path: string;
  type: TarEntryType;
  mode: number;
  size: number;
  linkName: string | undefined;
  sha256: string | undefined;
  mtimeMs: number;
  uid: number;
  gid: number;
}

/** Reads every entry, hashing each body while it streams; checks each body has exactly `size` bytes. */
async function observe(source: AsyncIterable<Uint8Array>): Promise<Observed[]> {
  const out: Observed[] = [];
  for await (const e of readTar(source)) {
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const piece of e.body) {
      hash.update(piece);
      bytes += piece.length;
    }
    expect(bytes, `body bytes of ${e.path}`).toBe(e.size);
    out.push({
      path: e.path,
      type: e.type,
      mode: e.mode,
      size: e.size,
      linkName: e.linkName,
      sha256: e.type === "file" ? hash.digest("hex") : undefined,
      mtimeMs: e.mtime.getTime(),
      uid: e.uid,
      gid: e.gid,
    });
  }
  return out;
}

/** Runs GNU tar writing the archive to stdout; `pieces` is its stdout, `exit` resolves when it has exited. */
function gnuTar(args: readonly string[]): { stdout: AsyncIterable<Uint8Array>; exit: Promise<{ code: number; stderr: string }> } {
  const child = spawn(TAR, ["-cf", "-", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const err: Buffer[] = [];
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const exit = new Promise<{ code: number; stderr: string }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 128, stderr: Buffer.concat(err).toString("utf8") }));
  });
  return { stdout: child.stdout, exit };
}

/** The first `n` bytes GNU tar writes for `args`; then tar is killed. */
async function gnuTarPrefix(args: readonly string[], n: number): Promise<Uint8Array> {
  const child = spawn(TAR, ["-cf", "-", ...args], { stdio: ["ignore", "pipe", "ignore"] });
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  const parts: Buffer[] = [];
  let got = 0;
  for await (const b of child.stdout as AsyncIterable<Buffer>) {
    parts.push(b);
    got += b.length;
    if (got >= n) break;
  }
  child.kill("SIGKILL");
  await closed;
  return new Uint8Array(Buffer.concat(parts).subarray(0, n));
}

// A minimal ustar writer for hand-made (and deliberately broken) archives.

interface HeaderSpec {
  name: string;
  size?: number;
  typeflag?: string;
  linkName?: string;
  mode?: number;
}

function header(spec: HeaderSpec): Uint8Array {
  const b = new Uint8Array(512);
  const put = (off: number, text: string): void => {
    b.set(Buffer.from(text, "utf8"), off);
  };
  const octal = (off: number, len: number, v: number): void => put(off, `${v.toString(8).padStart(len - 1, "0")}\0`);
  put(0, spec.name);
  octal(100, 8, spec.mode ?? 0o644);
  octal(108, 8, 1000);
  octal(116, 8, 1000);
  octal(124, 12, spec.size ?? 0);
  octal(136, 12, 1_700_000_000);
  put(156, spec.typeflag ?? "0");
  put(157, spec.linkName ?? "");
  put(257, "ustar\u000000");
  setChecksum(b);
  return b;
}

function setChecksum(b: Uint8Array): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.set(Buffer.from(`${sum.toString(8).padStart(6, "0")}\0 `, "latin1"), 148);
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

function member(spec: HeaderSpec, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat([header({ ...spec, size: spec.size ?? body.length }), padded(body)]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

const END = new Uint8Array(1024);

/** One PAX record "<len> key=value\n", its length counting itself. */
function paxRecord(key: string, value: string): Uint8Array {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return new Uint8Array(Buffer.from(`${len}${body}`));
}

/** Runs the reader to the end, reading every body, and returns the error it fails with. */
async function failure(archive: Uint8Array | AsyncIterable<Uint8Array>): Promise<unknown> {
  try {
    for await (const e of readTar(archive instanceof Uint8Array ? [archive] : archive)) {
      for await (const piece of e.body) void piece;
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Round trips against GNU tar

interface Expected {
  path: string;
  type: TarEntryType;
  mode: number;
  size: number;
  linkName: string | undefined;
  sha256: string | undefined;
  mtimeMs: number;
}

const LONG_DIR = `common/${"d".repeat(62)}`;
const PATH_150 = `${LONG_DIR}/${"f".repeat(80)}`;
const PATH_300 = `long/${"x".repeat(120)}/${"y".repeat(174)}`;
const LONG_TARGET = `${"t".repeat(140)}/target`;

describe("readTar against archives written by GNU tar", () => {
  let root: string;
  let sparseFile: string;
  /** Everything under root, as a correct reader must report it (mtime: exact milliseconds). */
  const expected = new Map<string, Expected>();

  beforeAll(async () => {
    // Prepare: a tree with every kind of member the reader must handle.
    root = await fs.mkdtemp(join(tmpdir(), "walvault-tar-"));
    const files: Array<[string, Uint8Array, number]> = [
      ["common/empty.bin", new Uint8Array(0), 0o644],
      ["common/small.txt", Buffer.from("hello, tar\n"), 0o600],
      ["common/exact-512.bin", randomBytes(512, 1), 0o644],
      ["common/blocks-plus-one.bin", randomBytes(512 * 7 + 1, 2), 0o640],
      ["common/big-20mb.bin", randomBytes(20 * MiB + 123, 3), 0o640],
      ["common/script.sh", Buffer.from("#!/bin/sh\necho hi\n"), 0o755],
      ["common/setuid-bin", randomBytes(1000, 4), 0o4750],
      ["common/nested/deeper/deepest/leaf.txt", Buffer.from("leaf\n"), 0o644],
      ["common/private/secret.key", randomBytes(32, 5), 0o600],
      ["common/a-original.bin", randomBytes(4096, 6), 0o644],
      [PATH_150, randomBytes(3000, 7), 0o644],
      [PATH_300, randomBytes(700, 8), 0o644],
      ["long/ünïcødé-名前.txt", Buffer.from("unicode\n"), 0o644],
    ];
    for (const [rel, data, mode] of files) {
      const abs = join(root, rel);
      await fs.mkdir(join(abs, ".."), { recursive: true });
      await fs.writeFile(abs, data);
      await fs.chmod(abs, mode);
    }
    await fs.link(join(root, "common/a-original.bin"), join(root, "common/z-hardlink.bin"));
    await fs.symlink("small.txt", join(root, "common/link-to-small"));
    await fs.symlink("/var/lib/postgresql/tablespace", join(root, "common/link-absolute"));
    await fs.symlink(LONG_TARGET, join(root, "long/link-long-target"));
    await fs.chmod(join(root, "common/private"), 0o700);
    await fs.chmod(join(root, "common/nested"), 0o755);

    // Fixed mtimes, one with a fraction (only PAX keeps it), directories last and deepest first.
    const walk = async (rel: string): Promise<string[]> => {
      const st = await fs.lstat(join(root, rel));
      if (!st.isDirectory()) return [rel];
      const names = (await fs.readdir(join(root, rel))).sort();
      const below: string[] = [];
      for (const n of names) below.push(...(await walk(rel ? `${rel}/${n}` : n)));
      return rel ? [...below, rel] : below;
    };
    const all = await walk("");
    let t = 1_600_000_000;
    for (const rel of all) {
      const seconds = rel === "common/small.txt" ? 1_650_000_000.25 : t++;
      await fs.lutimes(join(root, rel), seconds, seconds);
    }

    for (const rel of all) {
      const st = await fs.lstat(join(root, rel));
      const type: TarEntryType = st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "file";
      const data = type === "file" ? await fs.readFile(join(root, rel)) : undefined;
      expected.set(rel, {
        path: rel,
        type,
        mode: st.mode & 0o7777,
        size: type === "file" ? st.size : 0,
        linkName: type === "symlink" ? await fs.readlink(join(root, rel)) : undefined,
        sha256: data ? sha256(data) : undefined,
        mtimeMs: Math.round(st.mtimeMs),
      });
    }
    // The second name of a hard-linked file is archived as a link to the first (--sort=name).
    expected.set("common/z-hardlink.bin", {
      ...expected.get("common/z-hardlink.bin")!,
      type: "hardlink",
      size: 0,
      linkName: "common/a-original.bin",
      sha256: undefined,
    });

    // An 8 GiB + 3 bytes sparse file: GNU tar needs base-256 (gnu) or a PAX size record (pax) for it.
    sparseFile = join(root, "huge.bin");
    const fh = await fs.open(sparseFile, "w");
    await fh.write(Buffer.from("xyz"), 0, 3, 8 * GiB);
    await fh.close();
  }, 60_000);

  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  /** What the reader must report for the members under `tops`, in GNU tar's --sort=name order. */
  function expectedFor(tops: readonly string[], wholeSeconds: boolean): Omit<Observed, "uid" | "gid">[] {
    return [...expected.values()]
      .filter((e) => tops.some((t) => e.path === t || e.path.startsWith(`${t}/`)))
      .map((e) => ({ ...e, mtimeMs: wholeSeconds ? Math.floor(e.mtimeMs / 1000) * 1000 : e.mtimeMs }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async function roundTrip(
    format: "gnu" | "pax" | "ustar",
    tops: readonly string[],
    seed: number,
    maxPiece: number,
  ): Promise<{ observed: Observed[]; exit: { code: number; stderr: string } }> {
    const tar = gnuTar([`--format=${format}`, "--sort=name", "--owner=1234", "--group=5678", "--numeric-owner", "-C", root, ...tops]);
    const observed = await observe(randomPieces(tar.stdout, mulberry32(seed), maxPiece));
    return { observed, exit: await tar.exit };
  }

  function sortedWithoutOwner(observed: Observed[]): Omit<Observed, "uid" | "gid">[] {
    return observed
      .map(({ uid: _uid, gid: _gid, ...rest }) => rest)
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  it.each([
    ["gnu", 11, 200_000],
    ["pax", 12, 3_000],
  ] as const)(
    "reads every member of a --format=%s archive (long names, links, modes, 20 MB) byte-identically from random-size pieces",
    async (format, seed, maxPiece) => {
      // Act
      const { observed, exit } = await roundTrip(format, ["common", "long"], seed, maxPiece);

      // Assess
      expect(exit).toEqual({ code: 0, stderr: "" });
      expect(sortedWithoutOwner(observed)).toEqual(expectedFor(["common", "long"], format === "gnu"));
      expect(observed.every((e) => e.uid === 1234 && e.gid === 5678)).toBe(true);
      expect(observed.find((e) => e.path === PATH_300)?.sha256).toBe(expected.get(PATH_300)!.sha256);
    },
    60_000,
  );

  it("reads a --format=ustar archive, joining prefix and name for a 150-character path", async () => {
    // Act
    const { observed, exit } = await roundTrip("ustar", ["common"], 13, 70_000);

    // Assess
    expect(exit).toEqual({ code: 0, stderr: "" });
    expect(sortedWithoutOwner(observed)).toEqual(expectedFor(["common"], true));
    expect(observed.some((e) => e.path === PATH_150 && e.path.length === 150)).toBe(true);
  }, 60_000);

  it.each(["gnu", "pax"] as const)(
    "reads a small --format=%s archive fed one byte at a time",
    async (format) => {
      // Prepare
      const tops = ["common/small.txt", "common/exact-512.bin", "common/blocks-plus-one.bin", "common/link-to-small", "long"];

      // Act
      const { observed, exit } = await roundTrip(format, tops, 14, 1);

      // Assess
      expect(exit.code).toBe(0);
      expect(sortedWithoutOwner(observed)).toEqual(expectedFor(tops, format === "gnu"));
    },
    60_000,
  );

  it("reads the base-256 size GNU tar writes for a file of 8 GiB and more, without buffering it", async () => {
    // Prepare: GNU tar's real header for the 8 GiB + 3 file, then the body streamed from one reused buffer.
    const head = await gnuTarPrefix(["--format=gnu", "-C", root, "huge.bin"], 512);
    const zeros = new Uint8Array(4 * MiB);
    async function* archive(): AsyncGenerator<Uint8Array> {
      yield head;
      for (let sent = 0; sent < 8 * GiB; sent += zeros.length) yield zeros;
      yield concat([Buffer.from("xyz"), new Uint8Array(509), END]);
    }

    // Act
    const seen: Array<{ path: string; size: number; bytes: number; tail: string }> = [];
    for await (const e of readTar(archive())) {
      let bytes = 0;
      let last: Uint8Array = new Uint8Array(0);
      for await (const piece of e.body) {
        bytes += piece.length;
        last = piece;
      }
      seen.push({ path: e.path, size: e.size, bytes, tail: Buffer.from(last.subarray(-3)).toString() });
    }

    // Assess
    expect(head[124]).toBe(0x80); // the size field really is base-256
    expect(seen).toEqual([{ path: "huge.bin", size: 8 * GiB + 3, bytes: 8 * GiB + 3, tail: "xyz" }]);
  }, 60_000);

  it("reads the PAX size record GNU tar writes for a file of 8 GiB and more", async () => {
    // Prepare: PAX header block + its records block + the ustar header, then the body.
    const head = await gnuTarPrefix(["--format=pax", "-C", root, "huge.bin"], 1536);
    const zeros = new Uint8Array(4 * MiB);
    async function* archive(): AsyncGenerator<Uint8Array> {
      yield head;
      for (let sent = 0; sent < 8 * GiB; sent += zeros.length) yield zeros;
      yield concat([Buffer.from("xyz"), new Uint8Array(509), END]);
    }

    // Act
    const sizes: number[] = [];
    for await (const e of readTar(archive())) {
      let bytes = 0;
      for await (const piece of e.body) bytes += piece.length;
      sizes.push(e.size, bytes);
    }

    // Assess
    expect(Buffer.from(head.subarray(512, 1024)).toString("latin1")).toContain(`size=${8 * GiB + 3}\n`);
    expect(sizes).toEqual([8 * GiB + 3, 8 * GiB + 3]);
  }, 60_000);
});

// ---------------------------------------------------------------------------
// A real pg_basebackup stream

/** uid/gid the harness runs PostgreSQL binaries as (the `postgres` OS user when root), as local/postgres.ts does. */
function pgRunAs(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const user = process.env.WALVAULT_PG_OS_USER ?? "postgres";
  const uid = spawnSync("id", ["-u", user], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", user], { encoding: "utf8" });
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

interface ManifestFile {
  Path: string;
  Size: number;
  "Checksum-Algorithm": string;
  Checksum: string;
}

describe.skipIf(!existsSync(PG_BIN))("readTar on a real pg_basebackup -Ft -D - stream (PostgreSQL 15)", () => {
  let pg: ScratchPostgres;

  beforeAll(async () => {
    pg = await ScratchPostgres.create({ binDir: PG_BIN });
    await pg.start();
    // ~150 MB of table and index files, so the stream is big enough to time.
    await pg.pgbench(["-i", "-s", "10", "-q"]);
  }, 180_000);

  afterAll(async () => {
    await pg?.destroy();
  });

  it("yields backup_label, backup_manifest, PG_VERSION and global/pg_control, every file matching the manifest's SHA-256", async () => {
    // Prepare
    const runAs = pgRunAs();
    const args = ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "--manifest-checksums=SHA256"];
    const started = performance.now();
    const child = spawn(join(pg.binDir, "pg_basebackup"), [...args, "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres"], {
      cwd: pg.baseDir,
      env: { ...pg.env, ...pg.clientEnv },
      stdio: ["ignore", "pipe", "pipe"],
      ...(runAs ?? {}),
    });
    const stderr: Buffer[] = [];
    child.stderr.on("data", (b: Buffer) => stderr.push(b));
    const exit = new Promise<number>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => resolve(code ?? 128));
    });
    const raw: Uint8Array[] = []; // kept only to time the parser alone afterwards
    let streamBytes = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const b of child.stdout as AsyncIterable<Buffer>) {
        raw.push(b);
        streamBytes += b.length;
        yield b;
      }
    }

    // Act: one pass, each file's bytes hashed as they stream.
    const files = new Map<string, { size: number; sha256: string }>();
    const texts = new Map<string, string>();
    const types = new Map<string, TarEntryType>();
    const order: string[] = [];
    for await (const e of readTar(counted())) {
      types.set(e.path, e.type);
      order.push(e.path);
      if (e.type !== "file") continue;
      const hash = createHash("sha256");
      const small: Buffer[] = [];
      let bytes = 0;
      for await (const piece of e.body) {
        hash.update(piece);
        bytes += piece.length;
        if (e.path === "backup_label" || e.path === "backup_manifest") small.push(Buffer.from(piece));
      }
      files.set(e.path, { size: bytes, sha256: hash.digest("hex") });
      if (small.length > 0) texts.set(e.path, Buffer.concat(small).toString("utf8"));
    }
    const code = await exit;
    const streamedMs = performance.now() - started;

    // The parser alone, on the same pieces from memory: bodies read, not hashed.
    const parseStarted = performance.now();
    let parsedBytes = 0;
    for await (const e of readTar(fromPieces(raw))) for await (const piece of e.body) parsedBytes += piece.length;
    const parseMs = performance.now() - parseStarted;
    const mb = streamBytes / 1e6;
    console.log(
      `pg_basebackup tar stream: ${mb.toFixed(1)} MB, ${files.size} files, ${raw.length} pieces; ` +
        `streamed+parsed+SHA-256 in ${streamedMs.toFixed(0)} ms (${(mb / (streamedMs / 1000)).toFixed(0)} MB/s, bounded by pg_basebackup); ` +
        `parser alone ${parseMs.toFixed(0)} ms (${(mb / (parseMs / 1000)).toFixed(0)} MB/s); ` +
        `entries ${order.slice(0, 3).join(", ")} ... ${order.slice(-2).join(", ")}`,
    );

    // Assess
    expect(code, Buffer.concat(stderr).toString("utf8")).toBe(0);
    expect(texts.get("backup_label")).toContain("START WAL LOCATION");
    const manifest = JSON.parse(texts.get("backup_manifest") ?? "{}") as {
      "PostgreSQL-Backup-Manifest-Version"?: number;
      Files?: ManifestFile[];
    };
    expect(manifest["PostgreSQL-Backup-Manifest-Version"]).toBe(1);
    expect(files.has("PG_VERSION")).toBe(true);
    expect(files.get("global/pg_control")?.size).toBe(8192);
    expect(types.get("base")).toBe("directory");
    // Every file the server listed, with its size and SHA-256, and nothing else but the manifest itself.
    const listed = manifest.Files ?? [];
    expect(listed.length).toBeGreaterThan(500);
    expect(listed.every((f) => f["Checksum-Algorithm"] === "SHA256")).toBe(true);
    expect(Object.fromEntries(listed.map((f) => [f.Path, { size: f.Size, sha256: f.Checksum }]))).toEqual(
      Object.fromEntries([...files].filter(([p]) => p !== "backup_manifest")),
    );
    const total = [...files.values()].reduce((s, f) => s + f.size, 0);
    expect(total).toBeGreaterThan(140 * 1e6); // pgbench scale 10 alone is ~150 MB
    expect(total).toBeLessThan(streamBytes);
    expect(parsedBytes).toBe(total);
  }, 180_000);
});

// ---------------------------------------------------------------------------
// Malformed and unsafe archives

describe("readTar rejects malformed archives, naming the offset and what is wrong", () => {
  it("fails on a corrupted header checksum, naming the header's offset", async () => {
    // Prepare: the second header (offset 1024) has one byte of its name flipped.
    const archive = concat([member({ name: "a.txt" }, Buffer.from("aaa")), member({ name: "b.txt" }, Buffer.from("bbb")), END]);
    archive[1026] = archive[1026]! ^ 0x01;

    // Act
    const err = await failure(archive);

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toMatch(/checksum at offset 1024 after "a\.txt"/);
  });

  it("fails when the archive ends inside a body, naming the entry and the missing bytes", async () => {
    // Prepare: a 2000-byte file cut after 1500 of its bytes.
    const full = concat([member({ name: "data/file.bin" }, randomBytes(2000, 9)), END]);
    const cut = full.subarray(0, 512 + 1500);

    // Act
    const err = await failure(fromPieces([cut.subarray(0, 700), cut.subarray(700)]));

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toBe(
      'truncated tar archive: "data/file.bin" (2000 bytes) ends at offset 2012 after 1500 bytes, 500 bytes missing',
    );
  });

  it("fails on a truncated body even when the consumer skips it (automatic drain)", async () => {
    // Prepare
    const cut = member({ name: "skipped.bin" }, randomBytes(5000, 10)).subarray(0, 512 + 4000);

    // Act
    let err: unknown;
    try {
      for await (const e of readTar([cut])) void e;
    } catch (e) {
      err = e;
    }

    // Assess
    expect((err as Error).message).toMatch(/"skipped\.bin" \(5000 bytes\).*1000 bytes missing/);
  });

  it("fails when the archive ends inside a header, naming the previous entry and the missing bytes", async () => {
    // Prepare
    const archive = concat([member({ name: "first" }, Buffer.from("x")), header({ name: "second" }).subarray(0, 200)]);

    // Act
    const err = await failure(archive);

    // Assess
    expect((err as Error).message).toBe(
      'truncated tar archive: the header at offset 1024 after "first" has 200 of 512 bytes, 312 bytes missing',
    );
  });

  it("fails when the archive ends after a member without an end-of-archive marker", async () => {
    // Act
    const err = await failure(member({ name: "only" }, Buffer.from("x")));

    // Assess
    expect((err as Error).message).toMatch(/ends at offset 1024 after "only" without an end-of-archive marker/);
  });

  it("fails when the input is not a tar archive at all", async () => {
    // Act
    const err = await failure(new Uint8Array(Buffer.from("{\"not\": \"a tar\"}\n".repeat(40))));

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toMatch(/checksum at offset 0 at the start of the archive/);
  });

  it("fails on data after a zero block instead of silently dropping the rest of the archive", async () => {
    // Prepare: a zero block, then a valid member.
    const archive = concat([member({ name: "a" }), new Uint8Array(512), member({ name: "b" }), END]);

    // Act
    const err = await failure(archive);

    // Assess
    expect((err as Error).message).toMatch(/zero block at offset 512 is followed by data at offset 1024/);
  });

  it("fails on an extended header larger than the limit, without reading it into memory", async () => {
    // Prepare: a GNU long-name entry claiming 2 MiB.
    const archive = concat([header({ name: "././@LongLink", typeflag: "L", size: 2 * MiB })]);

    // Act
    const err = await failure(archive);

    // Assess
    expect((err as Error).message).toMatch(/extended header \(type 'L'\) at offset 0 is 2097152 bytes/);
  });

  it("fails on a malformed PAX record, naming the header's offset", async () => {
    // Prepare
    const records = Buffer.from("99 path=short\n");
    const archive = concat([member({ name: "PaxHeaders/x", typeflag: "x" }, records), member({ name: "x" }), END]);

    // Act
    const err = await failure(archive);

    // Assess
    expect((err as Error).message).toMatch(/malformed PAX extended header at offset 0: .*impossible length 99/);
  });

  it("refuses GNU sparse members, whose body is not the file's bytes", async () => {
    // Act
    const err = await failure(concat([member({ name: "sparse.bin", typeflag: "S" }), END]));

    // Assess
    expect((err as Error).message).toMatch(/unsupported tar entry at offset 0: GNU sparse file "sparse\.bin"/);
  });
});

describe("readTar refuses unsafe paths before yielding them", () => {
  it.each([
    ["a '..' segment", "data/../../etc/cron.d/evil"],
    ["a bare '..'", ".."],
    ["an absolute path", "/etc/passwd"],
  ])("rejects an entry path with %s, naming the path", async (_what, name) => {
    // Prepare
    const archive = concat([member({ name: "fine.txt" }, Buffer.from("ok")), member({ name }, Buffer.from("evil")), END]);

    // Act
    const paths: string[] = [];
    let err: unknown;
    try {
      for await (const e of readTar([archive])) paths.push(e.path);
    } catch (e) {
      err = e;
    }

    // Assess
    expect(paths).toEqual(["fine.txt"]);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toContain(`"${name}"`);
    expect((err as Error).message).toContain("offset 1024");
  });

  it("rejects a '..' path given by a PAX path record or a GNU long name", async () => {
    // Prepare
    const pax = concat([member({ name: "PaxHeaders/x", typeflag: "x" }, paxRecord("path", "ok/../../escape")), member({ name: "x" }), END]);
    const gnu = concat([member({ name: "././@LongLink", typeflag: "L" }, Buffer.from("/abs/long/name\0")), member({ name: "x" }), END]);

    // Act
    const paxErr = await failure(pax);
    const gnuErr = await failure(gnu);

    // Assess
    expect((paxErr as Error).message).toMatch(/unsafe tar entry at offset 1024: path "ok\/\.\.\/\.\.\/escape"/);
    expect((gnuErr as Error).message).toMatch(/unsafe tar entry at offset 1024: absolute path "\/abs\/long\/name"/);
  });

  it("rejects a hard link to a path outside the archive but passes symlink targets through", async () => {
    // Prepare
    const hard = concat([member({ name: "h", typeflag: "1", linkName: "../../etc/shadow" }), END]);
    const soft = concat([member({ name: "pg_tblspc/16384", typeflag: "2", linkName: "/srv/tablespace" }), END]);

    // Act
    const hardErr = await failure(hard);
    const links: Array<string | undefined> = [];
    for await (const e of readTar([soft])) links.push(e.linkName);

    // Assess
    expect((hardErr as Error).message).toMatch(/hard link target "\.\.\/\.\.\/etc\/shadow"/);
    expect(links).toEqual(["/srv/tablespace"]);
  });
});

// ---------------------------------------------------------------------------
// Consumer contract

describe("readTar consumer contract", () => {
  const bodies = [randomBytes(1000, 20), randomBytes(513, 21), new Uint8Array(0), randomBytes(70_000, 22), randomBytes(5, 23)];
  const archive = concat([...bodies.map((b, i) => member({ name: `f${i}` }, b)), END]);

  it("drains unconsumed bodies automatically: reading only some bodies still yields every entry intact", async () => {
    // Act: read f1 fully, f3 only partly (one piece), skip the others.
    const seen: Array<[string, string | undefined]> = [];
    for await (const e of readTar(randomPieces(fromPieces([archive]), mulberry32(30), 600))) {
      if (e.path === "f1") {
        const parts: Uint8Array[] = [];
        for await (const p of e.body) parts.push(p);
        seen.push([e.path, sha256(concat(parts))]);
      } else if (e.path === "f3") {
        for await (const p of e.body) {
          void p;
          break;
        }
        seen.push([e.path, "partial"]);
      } else {
        seen.push([e.path, undefined]);
      }
    }

    // Assess
    expect(seen).toEqual([
      ["f0", undefined],
      ["f1", sha256(bodies[1]!)],
      ["f2", undefined],
      ["f3", "partial"],
      ["f4", undefined],
    ]);
  });

  it("continues a body where an interrupted iteration stopped", async () => {
    // Act
    let whole = "";
    for await (const e of readTar(randomPieces(fromPieces([archive]), mulberry32(31), 900))) {
      if (e.path !== "f3") continue;
      const parts: Uint8Array[] = [];
      for await (const p of e.body) {
        parts.push(p);
        break;
      }
      for await (const p of e.body) parts.push(p);
      whole = sha256(concat(parts));
    }

    // Assess
    expect(whole).toBe(sha256(bodies[3]!));
  });

  it("refuses to read a body after the consumer moved on to the next entry", async () => {
    // Prepare
    const gen = readTar([archive]);
    const first = (await gen.next()).value as TarEntry;
    await gen.next();

    // Act
    const err = await first.body[Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => e);
    await gen.return(undefined);

    // Assess
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toMatch(/body of "f0" was read after the next entry was requested/);
  });

  it("skip() discards the rest of a body, leaving nothing to read", async () => {
    // Act
    const after: number[] = [];
    for await (const e of readTar([archive])) {
      await e.skip();
      let n = 0;
      for await (const p of e.body) n += p.length;
      after.push(n);
    }

    // Assess
    expect(after).toEqual([0, 0, 0, 0, 0]);
  });

  it("closes the source when the consumer stops early", async () => {
    // Prepare
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield archive.subarray(0, 3000);
        yield archive.subarray(3000);
      } finally {
        closed = true;
      }
    }

    // Act
    for await (const e of readTar(source())) if (e.path === "f0") break;

    // Assess
    expect(closed).toBe(true);
  });

  it("reads Buffer pieces, empty pieces and synchronous iterables alike", async () => {
    // Prepare
    const pieces = [Buffer.alloc(0), Buffer.from(archive.subarray(0, 10)), new Uint8Array(0), Buffer.from(archive.subarray(10))];

    // Act
    const read = async (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<string[]> => {
      const out: string[] = [];
      for await (const e of readTar(source)) {
        const parts: Uint8Array[] = [];
        for await (const p of e.body) parts.push(p);
        out.push(`${e.path}:${sha256(concat(parts))}`);
      }
      return out;
    };

    // Assess
    const want = bodies.map((b, i) => `f${i}:${sha256(b)}`);
    expect(await read(pieces)).toEqual(want);
    expect(await read(fromPieces(pieces))).toEqual(want);
  });

  it("ignores PAX global headers and applies a per-file PAX header only to the next member", async () => {
    // Prepare
    const global = member({ name: "pax_global_header", typeflag: "g" }, paxRecord("comment", "git-archive style"));
    const perFile = member(
      { name: "PaxHeaders/short", typeflag: "x" },
      concat([paxRecord("path", "renamed/by-pax.txt"), paxRecord("mtime", "1234567890.5"), paxRecord("uid", "4242")]),
    );
    const archive2 = concat([global, perFile, member({ name: "short" }, Buffer.from("pax")), member({ name: "next" }), END]);

    // Act
    const seen: Array<[string, number, number]> = [];
    for await (const e of readTar([archive2])) seen.push([e.path, e.mtime.getTime(), e.uid]);

    // Assess
    expect(seen).toEqual([
      ["renamed/by-pax.txt", 1_234_567_890_500, 4242],
      ["next", 1_700_000_000_000, 1000],
    ]);
  });

  it("accepts EOF right after a single zero block, and zero padding after the end marker", async () => {
    // Prepare
    const one = concat([member({ name: "a" }, Buffer.from("1")), new Uint8Array(512)]);
    const padded10k = concat([member({ name: "a" }, Buffer.from("1")), new Uint8Array(10240 - 1024)]);

    // Act
    const read = async (a: Uint8Array): Promise<string[]> => {
      const paths: string[] = [];
      for await (const e of readTar([a])) paths.push(e.path);
      return paths;
    };

    // Assess
    expect(await read(one)).toEqual(["a"]);
    expect(await read(padded10k)).toEqual(["a"]);
    expect((await failure(concat([padded10k, Buffer.from("junk")])) as Error).message).toMatch(
      /non-zero data at offset 10240, after the end-of-archive marker/,
    );
  });
});
