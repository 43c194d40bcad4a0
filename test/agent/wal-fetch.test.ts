/**
 * `walvault wal-fetch` end to end: the real CLI (bin/walvault → dist/) against
 * the real local stack, as PostgreSQL's restore_command runs it
 * (`walvault wal-fetch %f %p`, cwd = the data directory).
 * Needs `npm run build` first.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getCodec } from "../../core/codec.js";
import { sha256Hex } from "../../core/hash.js";
import { InvalidInputError } from "../../core/errors.js";
import { walFetch } from "../../agent/wal-fetch.js";
import { freePort } from "../../local/emulators.js";
import { deadPid, poll, quietPeriod, stackClients, tempDir, writeWal, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
const OTHER_DB = "pg-copy";
const RESTORE_FATAL = 126;

let stack: TestStack;
let clients: StackClients;
let dir: string;

/** Segments archived for DB before the tests, by name. */
const archived = new Map<string, Buffer>();
const seg = (n: number): string => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, "0")}`;
const PREFETCH_RUN = [0x30, 0x31, 0x32, 0x33, 0x34].map(seg);
const PLAIN = seg(0x40);
const CORRUPT = seg(0x50);
const UNDECODABLE = seg(0x51);
const VANISHED = seg(0x52);
const RESTORE_SOURCE = seg(0x60);
const STANDBY_SOURCE = seg(0x61);

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }, { id: OTHER_DB }]);
  clients = stackClients(stack);
  dir = tempDir("walvault-fetch-");
  const src = join(dir, "archive-src");
  mkdirSync(src);
  const names = [...PREFETCH_RUN, PLAIN, CORRUPT, UNDECODABLE, VANISHED, RESTORE_SOURCE, STANDBY_SOURCE];
  await Promise.all(
    names.map(async (name, i) => {
      const bytes = syntheticSegment(name, 100 + i);
      archived.set(name, bytes);
      const r = await stack.cli(["wal-push", writeWal(src, name, bytes), "--database", DB, "--timeout", "60"]);
      if (r.code !== 0) throw new Error(`setup push of ${name} failed: ${r.stderr}`);
    }),
  );
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A pg_wal-like destination directory of its own. */
function destDir(label: string): string {
  const d = join(dir, label, "pg_wal");
  mkdirSync(d, { recursive: true });
  return d;
}

function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.length > 0);
}

/** The vault key the catalog records for `name` (plain, or content-addressed with WALVAULT_WAL_DIRECT=1). */
async function vaultKeyOf(name: string): Promise<string> {
  const rec = await clients.catalog.getWal(DB, name);
  expect(rec, `${name} is recorded`).toBeDefined();
  return rec!.vaultKey;
}

describe("wal-fetch of an archived segment", () => {
  it("writes byte-identical contents to dest and leaves no temporary file beside it", async () => {
    // Prepare
    const d = destDir("plain");
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(["wal-fetch", PLAIN, dest, "--database", DB, "--no-prefetch", "--json"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toMatchObject({ name: PLAIN, size: 16 * 1024 * 1024, source: "vault" });
    expect(readFileSync(dest).equals(archived.get(PLAIN)!)).toBe(true);
    expect(readdirSync(d)).toEqual(["RECOVERYXLOG"]);
  });

  it("replaces an existing dest file with the archived contents", async () => {
    // Prepare: a stale RECOVERYXLOG from an earlier restore_command call
    const d = destDir("overwrite");
    const dest = join(d, "RECOVERYXLOG");
    writeFileSync(dest, "stale");

    // Act
    const r = await stack.cli(["wal-fetch", PLAIN, dest, "--database", DB, "--no-prefetch"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(dest).equals(archived.get(PLAIN)!)).toBe(true);
    expect(readdirSync(d)).toEqual(["RECOVERYXLOG"]);
  });
});

describe("wal-fetch of something it cannot serve", () => {
  it("a name never archived: exit 1 (end of archive for PostgreSQL), one line, dest absent", async () => {
    // Prepare
    const d = destDir("missing");
    const dest = join(d, "RECOVERYXLOG");
    const name = seg(0x7f);

    // Act
    const r = await stack.cli(["wal-fetch", name, dest, "--database", DB]);

    // Assess
    expect(r.code).toBe(1);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^walvault: ${name} is not in the archive`));
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
  });

  it("a destination that is a directory, empty, or in a missing directory: refused before any download, one line naming it, no temporary file (walFetch and the CLI)", async () => {
    // Prepare: a counting store shows nothing is downloaded
    const d = destDir("bad-dest");
    const gets: string[] = [];
    const counting = { ...clients, store: { ...clients.store, get: (b: string, k: string, v?: string) => (gets.push(k), clients.store.get(b, k, v)) } };
    const cases: Array<[string, string]> = [
      [d, "is a directory"],
      ["", "empty"],
      [join(d, "no-such-dir", "RECOVERYXLOG"), "does not exist"],
    ];
    for (const [dest, what] of cases) {
      // Act
      const err = await walFetch(PLAIN, dest, { ...stack.config, databaseId: DB }, counting).catch((e: unknown) => e);
      const r = await stack.cli(["wal-fetch", PLAIN, dest, "--database", DB], { cwd: d });
      // Assess
      expect(err, dest).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toContain(what);
      expect((err as Error).message.split("\n")).toHaveLength(1);
      expect(r.code, `${dest}: ${r.stderr}`).toBe(RESTORE_FATAL);
      expect(stderrLines(r.stderr)).toHaveLength(1);
    }
    expect(gets).toEqual([]);
    expect(readdirSync(d)).toEqual([]);
    expect(readdirSync(join(d, "..")).filter((n) => n.includes("walvault-tmp"))).toEqual([]);
  });

  it("a vault object overwritten with other bytes under the same metadata: exit 126, names the object and says corrupt, dest absent", async () => {
    // Prepare
    const key = await vaultKeyOf(CORRUPT);
    const original = await clients.store.get(stack.config.vaultBucket, key);
    expect(original).toBeDefined();
    const impostor = await getCodec(original!.metadata["walvault-codec"]!).encode(syntheticSegment(CORRUPT, 4242));
    await clients.store.put(stack.config.vaultBucket, key, impostor, original!.metadata);
    const d = destDir("corrupt");
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(["wal-fetch", CORRUPT, dest, "--database", DB, "--no-prefetch"]);

    // Assess
    expect(r.code).toBe(RESTORE_FATAL);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: /);
    expect(lines[0]).toContain(key);
    expect(lines[0]).toMatch(/corrupt/);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
  });

  it("a vault object overwritten with bytes that do not decode: exit 126, names the object, dest absent", async () => {
    // Prepare
    const key = await vaultKeyOf(UNDECODABLE);
    const original = await clients.store.get(stack.config.vaultBucket, key);
    expect(original).toBeDefined();
    await clients.store.put(stack.config.vaultBucket, key, Buffer.from("definitely not zstd"), original!.metadata);
    const d = destDir("undecodable");
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(["wal-fetch", UNDECODABLE, dest, "--database", DB, "--no-prefetch"]);

    // Assess
    expect(r.code).toBe(RESTORE_FATAL);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(key);
    expect(lines[0]).toMatch(/corrupt|does not decode/);
    expect(existsSync(dest)).toBe(false);
  });

  it("a recorded segment whose vault object is gone: exit 126 (not 1), says missing, dest absent", async () => {
    // Prepare
    const key = await vaultKeyOf(VANISHED);
    await clients.store.delete(stack.config.vaultBucket, key);
    const d = destDir("vanished");
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(["wal-fetch", VANISHED, dest, "--database", DB, "--no-prefetch"]);

    // Assess
    expect(r.code).toBe(RESTORE_FATAL);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(key);
    expect(lines[0]).toMatch(/missing/);
    expect(existsSync(dest)).toBe(false);
  });

  it("the local stack not running: exit 126 (not 1), says to run `walvault local up`, dest absent", async () => {
    // Prepare
    const cfg = JSON.parse(readFileSync(stack.configPath, "utf8")) as Record<string, unknown>;
    const staleConfig = join(dir, "stale-config.json");
    writeFileSync(
      staleConfig,
      JSON.stringify({
        ...cfg,
        s3Endpoint: `http://127.0.0.1:${await freePort()}`,
        dynamodbEndpoint: `http://127.0.0.1:${await freePort()}`,
        local: { pid: deadPid(), stateDir: join(dir, "gone") },
      }),
    );
    const d = destDir("down");
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(["wal-fetch", PLAIN, dest, "--database", DB], { env: { WALVAULT_CONFIG: staleConfig } });

    // Assess
    expect(r.code).toBe(RESTORE_FATAL);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/walvault local up/);
    expect(existsSync(dest)).toBe(false);
  });

  it("an archived name asked of an unregistered database id: fatal (126), not 'end of archive' (1)", async () => {
    // Prepare: a typo in restore_command's --database must stop recovery, not end it at the wrong point
    const d = destDir("typo");
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(["wal-fetch", PLAIN, dest, "--database", "pg-mian", "--no-prefetch"]);

    // Assess
    expect(r.code).toBe(RESTORE_FATAL);
    expect(stderrLines(r.stderr)[0]).toMatch(/'pg-mian' is not registered/);
    expect(existsSync(dest)).toBe(false);
  });

  it.each([
    ["a misspelt option", (dest: string) => ["wal-fetch", PLAIN, dest, "--database", DB, "--no-prefech"]],
    ["a missing <dest> argument", (_dest: string) => ["wal-fetch", PLAIN, "--database", DB]],
  ])("%s in restore_command: fatal (126), not 'end of archive'", async (what, args) => {
    // Prepare: PostgreSQL reads any exit status from 1 to 125 as "not archived" and ends recovery there
    const d = destDir(`usage-${what.replace(/\W+/g, "-")}`);
    const dest = join(d, "RECOVERYXLOG");

    // Act
    const r = await stack.cli(args(dest));

    // Assess
    expect(stderrLines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^walvault: /);
    expect(r.code).toBe(RESTORE_FATAL);
    expect(existsSync(dest)).toBe(false);
  });
});

describe("wal-fetch prefetch", () => {
  it("after serving segment N, prefetches the following archived segments, and serves N+1 from there byte-identical", async () => {
    // Prepare
    const d = destDir("prefetch");
    const prefetchDir = join(d, ".walvault-prefetch");
    const [first, ...rest] = PREFETCH_RUN as [string, ...string[]];

    // Act
    const r = await stack.cli(["wal-fetch", first, join(d, "RECOVERYXLOG"), "--database", DB]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    await poll(
      () => existsSync(prefetchDir) && rest.every((n) => existsSync(join(prefetchDir, n))) && !existsSync(join(prefetchDir, ".lock")),
      10_000,
      "the following segments in .walvault-prefetch",
    );
    for (const n of rest) expect(readFileSync(join(prefetchDir, n)).equals(archived.get(n)!)).toBe(true);
    // Only what is archived, each with the note of what the catalog said of it, and no temporary files.
    expect(readdirSync(prefetchDir).sort()).toEqual([...rest, ...rest.map((n) => `${n}.verified`)].sort());

    // Act: PostgreSQL asks for the next one
    const next = await stack.cli(["wal-fetch", rest[0]!, join(d, "RECOVERYXLOG"), "--database", DB, "--no-prefetch", "--json"]);

    // Assess
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout)).toMatchObject({ name: rest[0], source: "prefetch" });
    expect(readFileSync(join(d, "RECOVERYXLOG")).equals(archived.get(rest[0]!)!)).toBe(true);
    expect(existsSync(join(prefetchDir, rest[0]!))).toBe(false);

    // Prepare: a configuration whose S3 and DynamoDB endpoints answer nothing
    const deadConfig = join(dir, "dead-endpoints.json");
    const dead = `http://127.0.0.1:${await freePort()}`;
    writeFileSync(deadConfig, JSON.stringify({ ...JSON.parse(readFileSync(stack.configPath, "utf8")), s3Endpoint: dead, dynamodbEndpoint: dead }));

    // Act: the segment after, proved when it was prefetched, is served from the spool without the catalog or the vault
    const offline = await stack.cli(["wal-fetch", rest[1]!, join(d, "RECOVERYXLOG"), "--database", DB, "--no-prefetch", "--json"], { env: { WALVAULT_CONFIG: deadConfig } });

    // Assess
    expect(offline.code, offline.stderr).toBe(0);
    expect(JSON.parse(offline.stdout)).toMatchObject({ name: rest[1], source: "prefetch" });
    expect(readFileSync(join(d, "RECOVERYXLOG")).equals(archived.get(rest[1]!)!)).toBe(true);
    expect(existsSync(join(prefetchDir, rest[1]!))).toBe(false);
    expect(existsSync(join(prefetchDir, `${rest[1]}.verified`))).toBe(false);
  });

  it("does not serve a prefetched file whose bytes no longer match the catalog: fetches from the vault instead", async () => {
    // Prepare: a prefetched copy damaged on disk
    const d = destDir("prefetch-damaged");
    const prefetchDir = join(d, ".walvault-prefetch");
    mkdirSync(prefetchDir);
    const name = PREFETCH_RUN[4]!;
    const damaged = Buffer.from(archived.get(name)!);
    damaged[1000] = damaged[1000]! ^ 0xff;
    writeFileSync(join(prefetchDir, name), damaged);

    // Act
    const r = await stack.cli(["wal-fetch", name, join(d, "RECOVERYXLOG"), "--database", DB, "--no-prefetch", "--json"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, source: "vault" });
    expect(readFileSync(join(d, "RECOVERYXLOG")).equals(archived.get(name)!)).toBe(true);
  });
});

describe("the restore marker (PITR trap guard)", () => {
  it("a cluster in archive recovery gets walvault.restored-from, and may then archive only into another database", async () => {
    // Prepare: a data directory doing archive recovery
    const dataDir = join(dir, "restored");
    mkdirSync(join(dataDir, "pg_wal"), { recursive: true });
    writeFileSync(join(dataDir, "recovery.signal"), "");

    // Act
    const fetched = await stack.cli(["wal-fetch", RESTORE_SOURCE, "pg_wal/RECOVERYXLOG", "--database", DB, "--no-prefetch"], { cwd: dataDir });

    // Assess
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(readFileSync(join(dataDir, "pg_wal", "RECOVERYXLOG")).equals(archived.get(RESTORE_SOURCE)!)).toBe(true);
    expect(readFileSync(join(dataDir, "walvault.restored-from"), "utf8").trim()).toBe(DB);

    // Prepare: the promoted copy writes its first segment on a new timeline
    const name = "000000020000000000000062";
    const bytes = syntheticSegment(name, 62);
    const path = writeWal(join(dataDir, "pg_wal"), name, bytes);
    await stack.idle();
    const startedBefore = stack.stats.started;

    // Act
    const refused = await stack.cli(["wal-push", "pg_wal/" + name, "--database", DB], { cwd: dataDir });

    // Assess
    expect(refused.code).not.toBe(0);
    const lines = stderrLines(refused.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: .*restored from database 'pg-main'/);
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();

    // Act
    const allowed = await stack.cli(["wal-push", path, "--database", OTHER_DB, "--timeout", "30"], { cwd: dataDir });

    // Assess
    expect(allowed.code, allowed.stderr).toBe(0);
    expect((await clients.catalog.getWal(OTHER_DB, name))?.sha256).toBe(sha256Hex(bytes));
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
  });

  it("a standby (standby.signal) gets no marker and keeps archiving into the same database", async () => {
    // Prepare
    const dataDir = join(dir, "standby");
    mkdirSync(join(dataDir, "pg_wal"), { recursive: true });
    writeFileSync(join(dataDir, "standby.signal"), "");

    // Act
    const fetched = await stack.cli(["wal-fetch", STANDBY_SOURCE, "pg_wal/RECOVERYXLOG", "--database", DB, "--no-prefetch"], { cwd: dataDir });

    // Assess
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(existsSync(join(dataDir, "walvault.restored-from"))).toBe(false);
    const name = "000000010000000000000063";
    const push = await stack.cli(["wal-push", writeWal(join(dataDir, "pg_wal"), name, syntheticSegment(name, 63)), "--database", DB, "--timeout", "30"], {
      cwd: dataDir,
    });
    expect(push.code, push.stderr).toBe(0);
  });

  it("a standby that also has recovery.signal (standby mode wins) gets no marker", async () => {
    // Prepare
    const dataDir = join(dir, "standby-both");
    mkdirSync(join(dataDir, "pg_wal"), { recursive: true });
    writeFileSync(join(dataDir, "standby.signal"), "");
    writeFileSync(join(dataDir, "recovery.signal"), "");

    // Act
    const fetched = await stack.cli(["wal-fetch", STANDBY_SOURCE, "pg_wal/RECOVERYXLOG", "--database", DB, "--no-prefetch"], { cwd: dataDir });

    // Assess
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(existsSync(join(dataDir, "walvault.restored-from"))).toBe(false);
  });

  it("a fetch that finds nothing leaves no marker", async () => {
    // Prepare
    const dataDir = join(dir, "restored-nothing");
    mkdirSync(join(dataDir, "pg_wal"), { recursive: true });
    writeFileSync(join(dataDir, "recovery.signal"), "");

    // Act: PostgreSQL's first call is usually for a history file that does not exist
    const r = await stack.cli(["wal-fetch", "00000002.history", "pg_wal/RECOVERYHISTORY", "--database", DB], { cwd: dataDir });

    // Assess
    expect(r.code).toBe(1);
    expect(existsSync(join(dataDir, "walvault.restored-from"))).toBe(false);
  });
});
