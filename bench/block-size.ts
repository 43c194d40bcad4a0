/**
 * Block size for PostgreSQL relation files: what each size costs in dedup and
 * saves in objects, measured on real pg_basebackup archives of a pgbench
 * cluster, without the stack.
 *
 * One scratch cluster (`pgbench -i -s <scale>`, CHECKPOINT), then three
 * `pg_basebackup -Ft -X none -D -` archives written to a temporary directory:
 *   A  after the load;
 *   B  after `update pgbench_accounts set abalance = abalance + 1 where aid <= 5%`
 *      (contiguous, the test's and the case) and CHECKPOINT;
 *   C  after `... where aid % 20 = 7` (5% of the rows, evenly scattered: nearly
 *      every heap page) and CHECKPOINT;
 *   D  after updating 0.1% of the rows chosen at random (an OLTP day in
 *      miniature: ~6% of the heap pages, spread at random) and CHECKPOINT.
 * Each archive is cut exactly as `snapshot push` cuts it (relation files in
 * fixed blocks of each candidate size, everything else FastCDC with the
 * default parameters), each chunk hashed and compressed with the default
 * codec. For B (after A), C (after B) and D (after C), "new" is what a push would upload:
 * distinct chunks not in the previous archive (the previous manifest) and not
 * met earlier in the same archive. Figures (as the dedup test computes them):
 * new raw bytes / the first snapshot's logical bytes, new stored bytes / the
 * first snapshot's stored bytes; and the object counts.
 *
 * Usage: npm run build && node dist/bench/block-size.js [--scale 20]
 *        [--sizes 65536,131072,262144,524288,1048576] [--out bench/results/block-size.json]
 */
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hash } from "node:crypto";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { chunkStream, DEFAULT_CHUNKER } from "../core/chunking.js";
import { getCodec } from "../core/codec.js";
import { readTar } from "../core/tar.js";
import { fixedBlocks, isRelationFile } from "../agent/snapshot-push.js";
import { ScratchPostgres } from "../agent/postgres.js";
import { osUser } from "./processes.js";
import { benchArgs } from "./args.js";

interface Cut {
  logicalBytes: number;
  storedBytes: number;
  chunks: number;
  /** Distinct chunks: sha256 -> [raw size, stored size]. */
  unique: Map<string, [number, number]>;
}

async function basebackupTo(pg: ScratchPostgres, path: string): Promise<void> {
  const out = createWriteStream(path);
  await new Promise<void>((resolve, reject) => {
    const c = spawn(join(pg.binDir, "pg_basebackup"), ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-w"], {
      cwd: "/",
      stdio: ["ignore", "pipe", "inherit"],
      ...(osUser() ?? {}),
    });
    c.stdout.pipe(out);
    c.on("error", reject);
    c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`pg_basebackup exited ${code}`))));
  });
  await new Promise<void>((r) => out.close(() => r()));
}

/** Cuts one archive as snapshot push would with `blockSize`; compresses each distinct chunk once. */
async function cut(tar: string, blockSize: number): Promise<Cut> {
  const codec = getCodec("zstd");
  const out: Cut = { logicalBytes: 0, storedBytes: 0, chunks: 0, unique: new Map() };
  for await (const entry of readTar(createReadStream(tar, { highWaterMark: 1 << 20 }))) {
    if (entry.type !== "file") {
      await entry.skip();
      continue;
    }
    const path = entry.path.replace(/^(?:\.\/)+/, "");
    const pieces = isRelationFile(path) ? fixedBlocks(entry.body, blockSize) : chunkStream(entry.body, DEFAULT_CHUNKER);
    for await (const c of pieces) {
      out.logicalBytes += c.length;
      out.chunks++;
      const sha = hash("sha256", c, "hex");
      let u = out.unique.get(sha);
      if (!u) {
        u = [c.length, (await codec.encode(c)).length];
        out.unique.set(sha, u);
      }
    }
  }
  for (const [, s] of out.unique) out.storedBytes += s[1];
  return out;
}

function newAgainst(prev: Cut, next: Cut): { newBytes: number; newStored: number; newChunks: number } {
  let newBytes = 0;
  let newStored = 0;
  let newChunks = 0;
  for (const [sha, [raw, stored]] of next.unique) {
    if (prev.unique.has(sha)) continue;
    newBytes += raw;
    newStored += stored;
    newChunks++;
  }
  return { newBytes, newStored, newChunks };
}

async function main(): Promise<void> {
  const { values } = benchArgs("block-size", {
    options: {
      scale: { type: "string", default: "20" },
      sizes: { type: "string", default: "65536,131072,262144,524288,1048576" },
      out: { type: "string", default: "bench/results/block-size.json" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log("usage: node dist/bench/block-size.js [--scale 20] [--sizes 65536,131072,262144,524288,1048576] [--out bench/results/block-size.json]");
    return;
  }
  const scale = Number(values.scale);
  const sizes = values.sizes.split(",").map(Number);
  const log = (s: string): void => console.error(`[bench] ${s}`);
  const work = mkdtempSync(join(tmpdir(), "walvault-bench-blocks-"));
  if (osUser()) execFileSync("chmod", ["0777", work]);
  const pg = await ScratchPostgres.create({ settings: { max_wal_size: "2GB", autovacuum: "off" } });
  const tars = { A: join(work, "a.tar"), B: join(work, "b.tar"), C: join(work, "c.tar"), D: join(work, "d.tar") };
  try {
    await pg.start();
    log(`pgbench -i -s ${scale}`);
    await pg.pgbench(["-i", "-s", String(scale), "-q"]);
    await pg.psql("checkpoint");
    await basebackupTo(pg, tars.A);
    const rows = scale * 100_000;
    await pg.psql(`update pgbench_accounts set abalance = abalance + 1 where aid <= ${rows / 20}`);
    await pg.psql("checkpoint");
    await basebackupTo(pg, tars.B);
    await pg.psql("update pgbench_accounts set abalance = abalance + 1 where aid % 20 = 7");
    await pg.psql("checkpoint");
    await basebackupTo(pg, tars.C);
    await pg.psql(`update pgbench_accounts set abalance = abalance + 1 where aid in (select 1 + floor(random() * ${rows})::int from generate_series(1, ${rows / 1000}))`);
    await pg.psql("checkpoint");
    await basebackupTo(pg, tars.D);
    const results: Record<string, unknown>[] = [];
    for (const size of sizes) {
      const a = await cut(tars.A, size);
      const b = await cut(tars.B, size);
      const c = await cut(tars.C, size);
      const d = await cut(tars.D, size);
      const nb = newAgainst(a, b);
      const nc = newAgainst(b, c);
      const nd = newAgainst(c, d);
      const row = {
        blockKiB: size / 1024,
        logicalMB: +(a.logicalBytes / 1e6).toFixed(1),
        storedMB: +(a.storedBytes / 1e6).toFixed(2),
        chunks: a.chunks,
        uniqueChunks: a.unique.size,
        contiguousNewOverFirstLogical: +(nb.newBytes / a.logicalBytes).toFixed(4),
        contiguousNewStoredOverFirstStored: +(nb.newStored / a.storedBytes).toFixed(4),
        contiguousNewChunks: nb.newChunks,
        scatteredNewOverFirstLogical: +(nc.newBytes / b.logicalBytes).toFixed(4),
        scatteredNewStoredOverFirstStored: +(nc.newStored / b.storedBytes).toFixed(4),
        random01NewOverFirstLogical: +(nd.newBytes / c.logicalBytes).toFixed(4),
        random01NewStoredOverFirstStored: +(nd.newStored / c.storedBytes).toFixed(4),
      };
      results.push(row);
      log(JSON.stringify(row));
    }
    const out = {
      when: new Date().toISOString(),
      machine: { cpus: cpus().length, loadavg: loadavg(), node: process.version },
      scale,
      update:
        "pgbench_accounts rows: 5% contiguous (aid <= 5%), then 5% scattered (aid % 20 = 7), then 0.1% at random; CHECKPOINT after each; figures against the previous archive",
      results,
    };
    mkdirSync(join(values.out, ".."), { recursive: true });
    writeFileSync(values.out, JSON.stringify(out, null, 2) + "\n");
    console.table(results);
  } finally {
    await pg.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
