/**
 * The direct PostgreSQL source of `snapshotPush` (agent/pg-direct.ts, method
 * "direct"): pg_backup_start/pg_backup_stop in one psql session and the data
 * directory read by the agent. Against the real local stack and a real
 * PostgreSQL 15 whose archive_command is `walvault wal-push`; the snapshot is
 * taken while pgbench writes, restored, started, and must reach consistency
 * with pgbench's balances agreeing.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BufferPool } from "../../core/buffer-pool.js";
import { ConfigError, FileAccessError, InvalidInputError } from "../../core/errors.js";
import { backupManifestText } from "../../core/backup-manifest.js";
import { sha256Hex } from "../../core/hash.js";
import { parseLsn } from "../../core/wal.js";
import { compareTreePaths } from "../../core/manifest-pages.js";
import { ScratchPostgres } from "../../agent/postgres.js";
import { excludedFromBackup, READ_ALONE_BYTES, READ_BYTES, readDataDirectory, unloggedRelations } from "../../agent/pg-direct.js";
import { restore } from "../../agent/restore.js";
import { fixedBlocks, snapshotPush, type PgBaseBackupSource, type PushConfig } from "../../agent/snapshot-push.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { stackClients, tempDir, type StackClients } from "../support/harness.js";
import { readPushedManifest } from "../support/pushed-manifest.js";
import { switchAndWaitArchived } from "../support/postgres.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "pg-direct";

function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (f: string): number => Number(execFileSync("id", [f, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

describe("what the direct source leaves out (basebackup.c's excludes)", () => {
  it("skips runtime files, WAL, temporary files and the contents of runtime directories, keeping the rest", () => {
    const none = new Set<string>();
    expect(["postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "pgsql_tmp123"].filter((n) => excludedFromBackup("", n, none))).toHaveLength(5);
    expect(excludedFromBackup("pg_wal", "000000010000000000000001", none)).toBe(true);
    expect(excludedFromBackup("pg_replslot", "slot1", none)).toBe(true);
    expect(excludedFromBackup("pg_subtrans", "0000", none)).toBe(true);
    expect(excludedFromBackup("base/5", "t3_16384", none)).toBe(true);
    expect(excludedFromBackup("base/5", "pg_internal.init", none)).toBe(true);
    expect(excludedFromBackup("base", "pgsql_tmp", none)).toBe(true);
    expect(["PG_VERSION", "postgresql.conf", "pg_xact", "base", "global"].some((n) => excludedFromBackup("", n, none))).toBe(false);
    expect(excludedFromBackup("base/5", "16384", none)).toBe(false);
    expect(excludedFromBackup("pg_xact", "0000", none)).toBe(false);
  });

  it("keeps only the init fork of an unlogged relation", () => {
    const names = ["16384", "16384_fsm", "16384_init", "16384.1", "16390", "16390_vm"];
    const unlogged = unloggedRelations("base/5", names);
    expect(names.filter((n) => !excludedFromBackup("base/5", n, unlogged))).toEqual(["16384_init", "16390", "16390_vm"]);
    expect(unloggedRelations("global", names).size).toBe(0);
  });
});

describe("reading a data directory", () => {
  it("passes whole blocks lying in one piece on as views of it (no copy) and cuts blocks that straddle pieces into its own buffer", async () => {
    // Prepare: two whole blocks in one read, then a block split across two pieces, then a short tail
    const read = Buffer.concat([Buffer.alloc(8, 1), Buffer.alloc(8, 2), Buffer.alloc(5, 3)]);
    async function* pieces(): AsyncGenerator<Uint8Array> {
      yield read;
      yield Buffer.alloc(6, 4);
    }
    // Act: blocks are borrowed until the next is asked for, so keep each as it comes (and note whether it was a view)
    const out: Buffer[] = [];
    const views: boolean[] = [];
    for await (const b of fixedBlocks(pieces(), 8)) {
      views.push(b.buffer === read.buffer);
      out.push(Buffer.from(b));
    }
    // Assess
    expect(out.map((b) => b.length)).toEqual([8, 8, 8, 3]);
    expect(views).toEqual([true, true, false, false]);
    expect(Buffer.concat(out).equals(Buffer.concat([read, Buffer.alloc(6, 4)]))).toBe(true);
  });

  it("cuts with a buffer from the pool it is given, and gives it back once the file is cut: the next file cuts with the same one", async () => {
    // Prepare: a block straddling two pieces in each file (so the cutter's own buffer is used)
    const pool = new BufferPool(2);
    async function* pieces(fill: number): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(5, fill);
      yield Buffer.alloc(7, fill + 1);
    }
    const cut = async (fill: number): Promise<{ blocks: Buffer[]; own: Set<ArrayBufferLike> }> => {
      const blocks: Buffer[] = [];
      const own = new Set<ArrayBufferLike>();
      for await (const b of fixedBlocks(pieces(fill), 8, pool)) {
        if (b.length === 8) own.add(b.buffer);
        blocks.push(Buffer.from(b));
      }
      return { blocks, own };
    };
    // Act
    const first = await cut(1);
    const keptAfterFirst = pool.kept;
    const second = await cut(3);
    // Assess
    expect(first.blocks.map((b) => [...b])).toEqual([[1, 1, 1, 1, 1, 2, 2, 2], [2, 2, 2, 2]]);
    expect(second.blocks.map((b) => [...b])).toEqual([[3, 3, 3, 3, 3, 4, 4, 4], [4, 4, 4, 4]]);
    expect(keptAfterFirst).toBe(1);
    expect([...second.own]).toEqual([...first.own]);
    expect(pool.kept).toBe(1);
  });

  it("reads a file into two reused buffers in turn: each piece is right when taken, even though later reads overwrite it", async () => {
    // Prepare: a file of 3 reads and a bit (2-byte blocks: each read is the largest multiple up to READ_BYTES)
    const dir = tempDir("walvault-direct-reuse-");
    try {
      const data = randomBytes(3 * READ_BYTES + 1234);
      writeFileSync(join(dir, "big"), data);
      const taken: Buffer[] = [];
      const seen: Uint8Array[] = [];
      const sink = {
        directory: () => undefined,
        symlink: () => undefined,
        file: async (_p: string, _m: number, _t: Date, body: AsyncIterable<Uint8Array>) => {
          for await (const piece of body) {
            seen.push(piece);
            taken.push(Buffer.from(piece));
          }
        },
      };
      // Act
      await readDataDirectory(dir, sink, { readers: 1, readSize: 2, last: new Set() });
      // Assess: copies taken on the spot are the file; the pieces themselves come from two buffers used in turn
      expect(Buffer.concat(taken).equals(data)).toBe(true);
      expect(taken.map((b) => b.length)).toEqual([READ_BYTES, READ_BYTES, READ_BYTES, 1234]);
      expect(new Set(seen.map((p) => p.buffer)).size).toBe(2);
      expect(seen[2]!.buffer).toBe(seen[0]!.buffer);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads the next file into the buffers the last one used: three files, small and large, one reader, two buffers in all, every file's bytes right", async () => {
    // Prepare: a small file between two of two reads and a bit
    const dir = tempDir("walvault-direct-next-");
    try {
      const files = { a: randomBytes(2 * READ_BYTES + 10), b: randomBytes(3000), c: randomBytes(2 * READ_BYTES + 20) };
      for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
      const got = new Map<string, Buffer[]>();
      const buffers = new Set<ArrayBufferLike>();
      const sink = {
        directory: () => undefined,
        symlink: () => undefined,
        file: async (path: string, _m: number, _t: Date, body: AsyncIterable<Uint8Array>) => {
          const pieces: Buffer[] = [];
          for await (const piece of body) {
            buffers.add(piece.buffer);
            pieces.push(Buffer.from(piece));
          }
          got.set(path, pieces);
        },
      };
      // Act
      await readDataDirectory(dir, sink, { readers: 1, readSize: 2, last: new Set() });
      // Assess: each file whole; the small one read into the start of a kept buffer, not one of its size
      for (const [name, data] of Object.entries(files)) expect(Buffer.concat(got.get(name)!).equals(data), name).toBe(true);
      expect(buffers.size).toBe(2);
      expect([...buffers].every((b) => b.byteLength === READ_BYTES)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads a file of READ_ALONE_BYTES or more alone, small files several at a time, so a large file's chunks are not interleaved with others'", async () => {
    // Prepare: small files around one large file; 4 readers.
    const dir = tempDir("walvault-direct-alone-");
    try {
      for (const n of ["a1", "a2", "a3", "c1", "c2", "c3"]) writeFileSync(join(dir, n), Buffer.alloc(3 * READ_BYTES, n));
      writeFileSync(join(dir, "b-large"), Buffer.alloc(READ_ALONE_BYTES, 7));
      const pieces: string[] = [];
      let open = 0;
      let mostOpen = 0;
      const sink = {
        directory: () => undefined,
        symlink: () => undefined,
        file: async (p: string, _m: number, _t: Date, body: AsyncIterable<Uint8Array>) => {
          mostOpen = Math.max(mostOpen, ++open);
          for await (const _piece of body) {
            pieces.push(p);
            await new Promise((r) => setImmediate(r)); // let other readers interleave if they may
          }
          open--;
        },
      };
      // Act
      await readDataDirectory(dir, sink, { readers: 4, readSize: 8192, last: new Set() });
      // Assess: the large file's pieces are one unbroken run; the small ones did overlap.
      const first = pieces.indexOf("b-large");
      const last = pieces.lastIndexOf("b-large");
      expect(last - first + 1).toBe(READ_ALONE_BYTES / READ_BYTES);
      expect(pieces.slice(first, last + 1).every((p) => p === "b-large")).toBe(true);
      expect(mostOpen).toBeGreaterThan(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("skips a file that vanishes before it is read, and reads the listed 'last' files at the end", async () => {
    // Prepare: reading a removes b (one reader at a time: b is listed, not yet opened).
    const dir = tempDir("walvault-direct-walk-");
    try {
      writeFileSync(join(dir, "a"), "aaaa");
      writeFileSync(join(dir, "b"), "bbbb");
      mkdirSync(join(dir, "global"));
      writeFileSync(join(dir, "global", "pg_control"), "ctl");
      writeFileSync(join(dir, "z"), "zz");
      const order: string[] = [];
      const sink = {
        directory: (p: string) => void order.push(`${p}/`),
        symlink: (p: string) => void order.push(`${p}@`),
        file: async (p: string, _m: number, _t: Date, body: AsyncIterable<Uint8Array>) => {
          let text = "";
          for await (const piece of body) text += Buffer.from(piece).toString();
          // After a's reads: the walk, which lists and lstats b meanwhile, waits for a free reader to open it.
          if (p === "a") rmSync(join(dir, "b"));
          order.push(`${p}=${text}`);
        },
      };

      // Act
      const r = await readDataDirectory(dir, sink, { readers: 1, readSize: 2, last: new Set(["global/pg_control"]) });

      // Assess
      expect(r.vanished).toEqual(["b"]);
      expect(order).toEqual(["a=aaaa", "global/", "z=zz", "global/pg_control=ctl"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("direct snapshot push of PostgreSQL 15", () => {
  let stack: TestStack;
  let clients: StackClients;
  let pg: ScratchPostgres;
  let src: PgBaseBackupSource;
  let work: string;
  const cfg = (): PushConfig => ({ ...stack.config, databaseId: DB });

  beforeAll(async () => {
    stack = await startTestStack([{ id: DB, kind: "postgres" }]);
    clients = stackClients(stack);
    work = tempDir("walvault-direct-");
    chmodSync(work, 0o777);
    pg = await ScratchPostgres.create({
      settings: { archive_mode: "on", archive_command: `'${WALVAULT_BIN}' wal-push %p` },
      env: { WALVAULT_CONFIG: stack.configPath },
    });
    await pg.start();
    await pg.pgbench(["-i", "-s", "2", "-q"]);
    await pg.psql("create unlogged table scratch as select g from generate_series(1, 1000) g");
    src = { binDir: pg.binDir, host: pg.socketDir, port: pg.port, user: "postgres", method: "direct", ...(osUser() ? { asOsUser: osUser()! } : {}) };
  }, 300_000);

  afterAll(async () => {
    await pg?.destroy().catch(() => undefined);
    await stack?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("a snapshot taken while pgbench writes restores, passes pg_verifybackup against the backup_manifest it wrote, and reaches consistency, pgbench's balances agreeing", async () => {
    // Prepare: pgbench writes during the whole push.
    const load = pg.pgbench(["-c", "2", "-T", "6", "-n"]);

    // Act
    const r = await snapshotPush({ kind: "postgres", pgbasebackup: src }, cfg(), clients, { timeoutMs: 300_000, progress: false });
    await load;
    await switchAndWaitArchived(pg);
    await stack.idle();
    const dir = join(work, "restored");
    await restore(clients, stack.config, { databaseId: DB, target: { kind: "snapshot", id: r.snapshotId }, toDir: dir });
    const manifestLines = readFileSync(join(dir, "backup_manifest"), "utf8").split("\n").filter((l) => l.startsWith('{ "Path"'));
    const restored = await ScratchPostgres.fromDataDir(dir, { env: { WALVAULT_CONFIG: stack.configPath }, ownDataDir: true });
    let balances: string;
    let accounts: string;
    let verify;
    try {
      // The backup_manifest the direct source wrote: pg_verifybackup checks every file against it (WAL from the archive: -n).
      verify = await restored.run("pg_verifybackup", ["-n", "-i", "walvault.restored-from", dir], { allowFailure: true });
      await restored.start();
      await restored.waitForRecoveryEnd(300_000);
      balances = await restored.psql(
        "select (select sum(abalance) from pgbench_accounts) = (select sum(bbalance) from pgbench_branches) and " +
          "(select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta), 0) from pgbench_history)",
      );
      accounts = await restored.psql("select count(*) from pgbench_accounts");
    } finally {
      await restored.destroy();
    }

    // Assess
    expect(r.outcome).toBe("recorded");
    expect(r.postgres?.startWalFile).toMatch(/^[0-9A-F]{24}$/);
    expect(r.postgres?.stopWalFile).toBeDefined();
    expect(r.totals.files).toBeGreaterThan(500);
    // Without fileHashes: SHA256 for files of one chunk or none, no checksum (as --manifest-checksums=NONE) for larger ones; pg_verifybackup takes both.
    expect(manifestLines.filter((l) => l.includes('"Checksum-Algorithm": "SHA256"')).length).toBeGreaterThan(100);
    const unchecked = manifestLines.filter((l) => !l.includes("Checksum")).map((l) => JSON.parse(l.replace(/,$/, "")) as { Path: string; Size: number });
    expect(unchecked.length).toBeGreaterThan(0);
    expect(unchecked.filter((f) => f.Size <= 131072)).toEqual([]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain("backup successfully verified");
    expect(balances).toBe("t");
    expect(accounts).toBe("200000");
    // The session ended the backup: another one can start.
    expect(await pg.psql("select pg_backup_start('probe', true) is not null")).toBe("t");
  }, 600_000);

  it("writes backup_manifest as pg_basebackup does: pg_basebackup's own manifest, rebuilt from its entries in pieces as a push streams it, is byte-identical", async () => {
    // Prepare: a real pg_basebackup of the same cluster, with SHA-256 file checksums.
    const dir = join(work, "basebackup");
    await pg.basebackup(dir, ["-X", "none", "--manifest-checksums=SHA256"]);
    const real = readFileSync(join(dir, "backup_manifest"), "utf8");
    const parsed = JSON.parse(real) as { Files: { Path: string; Size: number; "Last-Modified": string; Checksum: string }[]; "WAL-Ranges": { Timeline: number; "Start-LSN": string; "End-LSN": string }[] };

    // Act
    const rebuilt = await backupManifestText(
      parsed.Files.map((f) => ({ path: f.Path, size: f.Size, mtime: new Date(f["Last-Modified"].replace(" GMT", "Z").replace(" ", "T")), sha256: f.Checksum })),
      parsed["WAL-Ranges"].map((r) => ({ timeline: r.Timeline, startLsn: parseLsn(r["Start-LSN"]), endLsn: parseLsn(r["End-LSN"]) })),
    );

    // Assess
    expect(parsed.Files.length).toBeGreaterThan(500);
    expect(rebuilt).toBe(real);
    rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  it("a paged push of small pages with fileHashes, its files arriving out of tree order (4 readers, pg_control and backup_label last), is recorded and restores every file as pushed", async () => {
    // Prepare: pages of 64 chunk references or 8 KiB, so the cluster's manifest is many pages.
    const limits = { chunks: 64, bytes: 8 * 1024 };

    // Act
    const r = await snapshotPush({ kind: "postgres", pgbasebackup: src }, cfg(), clients, { timeoutMs: 300_000, progress: false, manifestPages: true, manifestPageLimits: limits, fileHashes: true });
    const m = await readPushedManifest(clients.store, stack.config.incomingBucket, r);
    await switchAndWaitArchived(pg);
    await stack.idle();
    const dir = join(work, "restored-paged");
    await restore(clients, stack.config, { databaseId: DB, target: { kind: "snapshot", id: r.snapshotId }, toDir: dir });

    // Assess: ingest accepted the pages (recorded); the entries read back are in tree order; every file restores byte for byte.
    expect(r.outcome).toBe("recorded");
    expect(m.format).toBe(2);
    expect(m.pages).toBeGreaterThan(10);
    const paths = m.files.map((f) => f.path);
    expect(paths).toEqual([...paths].sort(compareTreePaths));
    let files = 0;
    for (const f of m.files) {
      if (f.type !== "file" || f.path === "postgresql.auto.conf") continue;
      // fileHashes: every file records its whole SHA-256, a file of many chunks too.
      expect(sha256Hex(readFileSync(join(dir, f.path))), f.path).toBe(f.sha256);
      files++;
    }
    expect(files).toBe(r.totals.files - (paths.includes("postgresql.auto.conf") ? 1 : 0));
    expect(m.files.some((f) => f.type === "file" && f.chunks.length > 1)).toBe(true);
    // ... and backup_manifest has a SHA256 checksum on every file's line.
    const lines = readFileSync(join(dir, "backup_manifest"), "utf8").split("\n").filter((l) => l.startsWith('{ "Path"'));
    expect(lines.length).toBeGreaterThan(500);
    expect(lines.filter((l) => !l.includes('"Checksum-Algorithm": "SHA256"'))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 600_000);

  it("refuses a role that may not read data_directory or run pg_backup_start in one line that says what to grant or use instead", async () => {
    // Prepare: a login role with no backup privilege.
    await pg.psql("drop role if exists walvault_nobody; create role walvault_nobody login");

    // Act
    const e = await snapshotPush({ kind: "postgres", pgbasebackup: { ...src, user: "walvault_nobody" } }, cfg(), clients, { timeoutMs: 60_000, progress: false }).catch((x: unknown) => x);

    // Assess
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/^role walvault_nobody may not take a backup with the direct source \(.*must be superuser.*\): connect as a superuser, or GRANT it pg_read_all_settings and EXECUTE ON FUNCTION pg_backup_start, pg_backup_stop; or use --source basebackup/);
    expect((e as Error).message.split("\n")).toHaveLength(1);
  }, 120_000);

  it("refuses a data directory that does not exist, is not a cluster, or is another cluster, each in one line", async () => {
    // Prepare
    const empty = join(work, "empty");
    mkdirSync(empty, { recursive: true });
    const other = await ScratchPostgres.create();
    try {
      const attempt = (dataDir: string): Promise<unknown> =>
        snapshotPush({ kind: "postgres", pgbasebackup: { ...src, dataDir } }, cfg(), clients, { wait: false, progress: false }).catch((e: unknown) => e);

      // Act
      const missing = await attempt(join(work, "nope"));
      const notCluster = await attempt(empty);
      const wrong = await attempt(other.dataDir);

      // Assess
      expect(missing).toBeInstanceOf(FileAccessError);
      expect((missing as Error).message).toMatch(/nope does not exist$/);
      expect(notCluster).toBeInstanceOf(FileAccessError);
      expect((notCluster as Error).message).toMatch(/is not a PostgreSQL data directory \(no PG_VERSION\)$/);
      expect(wrong).toBeInstanceOf(InvalidInputError);
      expect((wrong as Error).message).toMatch(/is not the data directory of the server at .* \(system identifier \d+, the server's \d+\)$/);
      for (const e of [missing, notCluster, wrong]) expect((e as Error).message.split("\n")).toHaveLength(1);
    } finally {
      await other.destroy();
    }
  }, 120_000);
});
