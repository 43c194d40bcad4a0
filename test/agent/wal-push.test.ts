/**
 * `walvault wal-push` end to end: the real CLI (bin/walvault → dist/) against
 * the real local stack (s3rver + DynamoDB Local + the ingest state machine).
 * Needs `npm run build` first.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChecksumMismatchError } from "../../core/errors.js";
import { ARCHIVE_NAMESPACE, INGEST_NAMESPACE } from "../../core/metrics.js";
import { sha256Hex } from "../../core/hash.js";
import { incomingWalKey, vaultWalKey } from "../../core/keys.js";
import type { WalRecord } from "../../core/schemas.js";
import { formatLsn, parseWalFileName, segmentEndLsn, segmentStartLsn } from "../../core/wal.js";
import { freePort } from "../../local/emulators.js";
import { deadPid, listKeys, objectStamp, poll, quietPeriod, stackClients, tempDir, writeWal, type StackClients } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
const SEGMENT = 16 * 1024 * 1024;
/** Ingest's Validate reports this segment's bytes corrupted (as if they changed in transit): the quarantine path. */
const CORRUPTED_IN_TRANSIT = "000000010000000000000040";

let stack: TestStack;
let clients: StackClients;
let dir: string;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }], {
    injectFault: ({ state, input }) =>
      state === "Validate" && (input as { event?: { detail?: { object?: { key?: string } } } }).event?.detail?.object?.key?.endsWith(CORRUPTED_IN_TRANSIT)
        ? new ChecksumMismatchError(`upload ${CORRUPTED_IN_TRANSIT} has SHA-256 0123456789ab…, not the one it claims`)
        : undefined,
  });
  clients = stackClients(stack);
  dir = tempDir("walvault-push-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function vaultKeyOf(name: string): string {
  return vaultWalKey(DB, parseWalFileName(name));
}

async function walList(): Promise<WalRecord[]> {
  const r = await stack.cli(["wal", "list", "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as WalRecord[];
}

/** Everything archived anywhere: catalog records, vault keys, incoming keys, ingest runs. */
async function archiveSnapshot() {
  return {
    records: await clients.catalog.listWal(DB),
    vault: await listKeys(clients.store, stack.config.vaultBucket, ""),
    incoming: await listKeys(clients.store, stack.config.incomingBucket, ""),
    started: stack.stats.started,
  };
}

/**
 * `walvault wal-push ARGS` on the incoming/ path (upload, event, ingest's Validate, Promote, Record), which
 * this file tests whatever the default path is; direct WAL has test/agent/wal-direct.test.ts.
 */
function pushIncoming(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): ReturnType<TestStack["cli"]> {
  return stack.cli(["wal-push", ...args], { ...opts, env: { WALVAULT_WAL_DIRECT: "0", ...opts.env } });
}

function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.length > 0);
}

describe("wal-push of a new segment", () => {
  it("archives it: exit 0, listed with its sha256, size, timeline and start LSN, and stored in the vault", async () => {
    // Prepare
    const name = "000000010000000000000003";
    const bytes = syntheticSegment(name, 3);
    const path = writeWal(dir, name, bytes);

    // Act
    const r = await pushIncoming([path, "--timeout", "30"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const rec = (await walList()).find((x) => x.name === name);
    expect(rec).toMatchObject({
      name,
      kind: "segment",
      sha256: sha256Hex(bytes),
      size: SEGMENT,
      timeline: 1,
      startLsn: formatLsn(segmentStartLsn(3n)),
      endLsn: formatLsn(segmentEndLsn(3n)),
      vaultKey: vaultKeyOf(name),
      status: "stored",
    });
    expect(rec!.startLsn).toBe("0/3000000");
    const vaultObject = await clients.store.head(stack.config.vaultBucket, vaultKeyOf(name));
    expect(vaultObject).toBeDefined();
    expect(vaultObject!.metadata["walvault-sha256"]).toBe(sha256Hex(bytes));
    expect(vaultObject!.size).toBe(rec!.storedSize);
  });

  it("with --wait none exits 0 right after the upload, and the catalog records it shortly after", async () => {
    // Prepare
    const name = "000000010000000000000010";
    const bytes = syntheticSegment(name, 10);
    const path = writeWal(dir, name, bytes);

    // Act
    const r = await pushIncoming([path, "--wait", "none", "--json"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "uploaded", sha256: sha256Hex(bytes), size: SEGMENT });
    const rec = await poll(() => clients.catalog.getWal(DB, name), 15_000, `${name} in the catalog`);
    expect(rec.sha256).toBe(sha256Hex(bytes));
    expect(await clients.store.head(stack.config.vaultBucket, vaultKeyOf(name))).toBeDefined();
  });

  it("archives a timeline history file, listed with kind history", async () => {
    // Prepare
    const name = "00000002.history";
    const content = "1\t0/3000000\tno recovery target specified\n";
    const path = writeWal(dir, name, content);

    // Act
    const r = await pushIncoming([path, "--timeout", "30"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    const rec = (await walList()).find((x) => x.name === name);
    expect(rec).toMatchObject({ name, kind: "history", timeline: 2, size: content.length, sha256: sha256Hex(Buffer.from(content)) });
    expect(rec!.startLsn).toBeUndefined();
    expect(await clients.store.head(stack.config.vaultBucket, `db/${DB}/history/${name}`)).toBeDefined();
  });

  it("archives a .partial segment and a .backup label, listed with their kinds", async () => {
    // Prepare
    const partial = "000000010000000000000005.partial";
    const partialBytes = syntheticSegment("000000010000000000000005", 5);
    const backup = "000000010000000000000005.00000028.backup";
    const backupText =
      "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nSTOP WAL LOCATION: 0/5000100 (file 000000010000000000000005)\n";

    // Act
    const [p, b] = await Promise.all([
      pushIncoming([writeWal(dir, partial, partialBytes), "--timeout", "30"]),
      pushIncoming([writeWal(dir, backup, backupText), "--timeout", "30"]),
    ]);

    // Assess
    expect(p.code, p.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const list = await walList();
    expect(list.find((x) => x.name === partial)).toMatchObject({ kind: "partial", sha256: sha256Hex(partialBytes), startLsn: "0/5000000" });
    expect(list.find((x) => x.name === backup)).toMatchObject({ kind: "backup", size: Buffer.byteLength(backupText) });
  });

  it("an upload that ingest rejects: exits non-zero at once with the quarantine reason, not at the timeout, and counts in the Quarantined metric", async () => {
    // Prepare: a segment the agent accepts, whose bytes ingest finds corrupted (the stack's injected fault).
    const name = CORRUPTED_IN_TRANSIT;
    const path = writeWal(dir, name, syntheticSegment(name, 0x40));
    const t0 = Date.now();

    // Act
    const r = await pushIncoming([path, "--timeout", "30"]);

    // Assess
    expect(r.code).toBe(3);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^walvault: ${name} was rejected by ingest and quarantined: .*SHA-256`));
    expect(await clients.catalog.getWal(DB, name)).toBeUndefined();
    // The metric the quarantine alarm reads (infra/monitoring.ts), naming the database, the file and why
    const metrics = readFileSync(stack.metricsFile, "utf8").split("\n").filter((l) => l.includes(INGEST_NAMESPACE)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(metrics.find((m) => m.Name === name)).toMatchObject({ DatabaseId: DB, Quarantined: 1, Kind: "wal", Error: "ChecksumMismatchError" });
  });

  it("reports the archiver's backlog with the upload (the .ready files beside it, itself included), which ingest publishes as ArchiveBacklogSegments", async () => {
    // Prepare: a data directory where PostgreSQL left three files to archive and one already archived
    const name = "000000010000000000000044";
    const pgdata = join(dir, "pgdata-backlog");
    mkdirSync(join(pgdata, "pg_wal", "archive_status"), { recursive: true });
    writeWal(join(pgdata, "pg_wal"), name, syntheticSegment(name, 0x44));
    for (const f of [name, "000000010000000000000045", "000000010000000000000046"]) writeFileSync(join(pgdata, "pg_wal", "archive_status", `${f}.ready`), "");
    writeFileSync(join(pgdata, "pg_wal", "archive_status", "000000010000000000000043.done"), "");

    // Act: as archive_command runs it, %p relative to the data directory
    const r = await pushIncoming(["--no-agent", join("pg_wal", name)], { cwd: pgdata });

    // Assess
    expect(r.code, r.stderr).toBe(0);
    const published = readFileSync(stack.metricsFile, "utf8")
      .split("\n")
      .filter((l) => l.includes(ARCHIVE_NAMESPACE))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((m) => m.Name === name);
    expect(published).toEqual([expect.objectContaining({ DatabaseId: DB, ArchiveBacklogSegments: 3 })]);
  });

  it("without a resident agent, hints once in one line that archiving is falling behind when PostgreSQL's queue grows, and not again for a while", async () => {
    // Prepare: a queue of 4 (the file pushed included), and one of 2; the hint's stamp in a temp dir of this test
    const queued = (first: number, ready: number): { pgdata: string; name: string } => {
      const names = Array.from({ length: ready }, (_, i) => `0000000100000000000000${(first + i).toString(16).toUpperCase().padStart(2, "0")}`);
      const pgdata = join(dir, `pgdata-hint-${first}`);
      mkdirSync(join(pgdata, "pg_wal", "archive_status"), { recursive: true });
      for (const [i, n] of names.entries()) {
        writeWal(join(pgdata, "pg_wal"), n, syntheticSegment(n, first + i));
        writeFileSync(join(pgdata, "pg_wal", "archive_status", `${n}.ready`), "");
      }
      return { pgdata, name: names[0]! };
    };
    const long = queued(0x50, 4);
    const short = queued(0x58, 2);
    const stamps = join(dir, "hint-stamps");
    mkdirSync(stamps);
    const env = { TMPDIR: stamps, WALVAULT_AGENT_SOCKET: join(dir, "no-agent.sock") };
    const push = (q: { pgdata: string; name: string }, name = q.name) => pushIncoming([join("pg_wal", name)], { cwd: q.pgdata, env });

    // Act
    const shortQueue = await push(short);
    const first = await push(long);
    const again = await push(long, "000000010000000000000051");

    // Assess: every push archived; only the first with a long queue hints, naming the queue and what to run
    for (const r of [shortQueue, first, again]) expect(r.code, r.stderr).toBe(0);
    expect(stderrLines(shortQueue.stderr)).toEqual([]);
    const lines = stderrLines(first.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^walvault: hint: archiving is falling behind: 4 WAL files wait in pg_wal/archive_status and this push took \\d+\\.\\d s without a resident agent; ` +
          `start one beside PostgreSQL \\(walvault agent --database ${DB} --pgdata ${long.pgdata}\\) to push them ahead in parallel$`,
      ),
    );
    expect(stderrLines(again.stderr)).toEqual([]);
  });

  it("reports no backlog for a file outside a PostgreSQL pg_wal (nothing to count beside it)", async () => {
    // Prepare
    const name = "000000010000000000000047";
    const path = writeWal(dir, name, syntheticSegment(name, 0x47));

    // Act
    const r = await pushIncoming(["--no-agent", path]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(await clients.catalog.getWal(DB, name)).toMatchObject({ status: "stored" });
    expect(readFileSync(stack.metricsFile, "utf8").split("\n").filter((l) => l.includes("ArchiveBacklogSegments") && l.includes(name))).toEqual([]);
  });

  it.each([
    ["a .history file whose content is not a history", "00000004.history", "# nothing here\n", /^walvault: 00000004\.history is not a timeline history file: it lists no parent timeline/],
    ["a .history file naming its own timeline as an ancestor", "00000004.history", "1\t0/3000000\tfirst\n4\t0/5000000\tsecond\n", /^walvault: 00000004\.history lists timeline 4, which is not an ancestor of timeline 4$/],
    [
      "a .history file with terminal escape bytes in a line",
      "00000005.history",
      "1\t0/3000000\tok\n\x1b[2J\x1b]0;owned\x07\n",
      /^walvault: 00000005\.history is not a timeline history file: timeline history line 2 is malformed: '\\e\[2J\\e\]0;owned\\x07'$/,
    ],
    ["a 100-byte .partial file", "000000010000000000000041.partial", syntheticSegment("000000010000000000000041", 0x41).subarray(0, 100), /^walvault: 000000010000000000000041\.partial is 100 bytes but WAL segments \(\.partial ones included\) of this database are 16777216 bytes$/],
  ])("refuses %s before uploading anything, in one line, exit 2", async (_what, name, content, line) => {
    // Prepare
    const path = writeWal(dir, name, content);
    const before = await archiveSnapshot();

    // Act
    const r = await pushIncoming([path, "--timeout", "30"]);

    // Assess
    expect(stderrLines(r.stderr)).toEqual([expect.stringMatching(line)]);
    expect(r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(r.code).toBe(2);
    await quietPeriod();
    expect(await archiveSnapshot()).toEqual(before);
  });
});

describe("wal-push of a name already archived", () => {
  const name = "000000010000000000000004";
  const original = syntheticSegment(name, 4);

  beforeAll(async () => {
    const r = await pushIncoming([writeWal(dir, name, original), "--timeout", "30"]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("with the same bytes exits 0 without uploading again: no ingest run, vault and incoming objects untouched", async () => {
    // Prepare
    await stack.idle();
    const vaultBefore = await objectStamp(stack, stack.config.vaultBucket, vaultKeyOf(name));
    const incomingBefore = await objectStamp(stack, stack.config.incomingBucket, incomingWalKey(DB, name));
    const recordBefore = await clients.catalog.getWal(DB, name);
    const startedBefore = stack.stats.started;
    await new Promise((r) => setTimeout(r, 1100)); // so a rewrite would show in Last-Modified (1 s resolution)
    const again = tempDir("walvault-push-dup-");
    const path = writeWal(again, name, original);

    // Act
    const r = await pushIncoming([path, "--json"]);

    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, outcome: "already-archived", sha256: sha256Hex(original) });
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(vaultBefore).toBeDefined();
    expect(await objectStamp(stack, stack.config.vaultBucket, vaultKeyOf(name))).toEqual(vaultBefore);
    expect(await objectStamp(stack, stack.config.incomingBucket, incomingWalKey(DB, name))).toEqual(incomingBefore);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
    rmSync(again, { recursive: true, force: true });
  });

  it("with different bytes fails with one 'already archived … different contents' line and keeps the archived copy", async () => {
    // Prepare
    const other = syntheticSegment(name, 99);
    const conflictDir = tempDir("walvault-push-conflict-");
    const path = writeWal(conflictDir, name, other);
    const vaultBefore = await objectStamp(stack, stack.config.vaultBucket, vaultKeyOf(name));
    const recordBefore = await clients.catalog.getWal(DB, name);
    const startedBefore = stack.stats.started;

    // Act
    const r = await pushIncoming([path]);

    // Assess
    expect(r.code).not.toBe(0);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: /);
    expect(lines[0]).toMatch(/already archived.*different contents/);
    expect(lines[0]).toContain(name);
    await quietPeriod();
    expect(stack.stats.started).toBe(startedBefore);
    expect(await objectStamp(stack, stack.config.vaultBucket, vaultKeyOf(name))).toEqual(vaultBefore);
    expect(await clients.catalog.getWal(DB, name)).toEqual(recordBefore);
    const dest = join(conflictDir, "RECOVERYXLOG");
    const fetched = await stack.cli(["wal-fetch", name, dest, "--no-prefetch"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(sha256Hex(readFileSync(dest))).toBe(sha256Hex(original));
    rmSync(conflictDir, { recursive: true, force: true });
  });
});

describe("wal-push refuses bad input with one line naming the problem and archives nothing", () => {
  async function expectRefused(
    args: string[],
    message: RegExp,
    opts: { env?: Record<string, string>; cwd?: string } = {},
  ): Promise<void> {
    // Prepare
    await stack.idle();
    const before = await archiveSnapshot();

    // Act
    const r = await stack.cli(args, opts);

    // Assess
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    const lines = stderrLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^walvault: /);
    expect(lines[0]).toMatch(message);
    await quietPeriod(300);
    expect(await archiveSnapshot()).toEqual(before);
  }

  it("an unregistered database id: says it is not registered", async () => {
    const name = "000000010000000000000020";
    const path = writeWal(dir, name, syntheticSegment(name, 20));
    await expectRefused(["wal-push", path, "--database", "nope-db"], /'nope-db' is not registered/);
  });

  it("a file that is not a WAL or history file: names the file", async () => {
    const path = writeWal(dir, "notwal.txt", "hello\n");
    await expectRefused(["wal-push", path], /'notwal\.txt' is not a WAL/);
  });

  it("an empty file named like a segment: says it is empty", async () => {
    const name = "000000010000000000000021";
    const path = writeWal(dir, name, Buffer.alloc(0));
    await expectRefused(["wal-push", path], new RegExp(`${name} is empty`));
  });

  it("a segment of the wrong size: gives both sizes", async () => {
    const name = "000000010000000000000022";
    const path = writeWal(dir, name, syntheticSegment(name, 22).subarray(0, 1024 * 1024));
    await expectRefused(["wal-push", path], /1048576 bytes.*16777216/);
  });

  it("a missing file: says there is no such file", async () => {
    const path = join(dir, "000000010000000000000023");
    await expectRefused(["wal-push", path], /cannot read WAL file .*000000010000000000000023.*no such file/);
  });

  it("a segment whose page header names another LSN: says the header disagrees with the name", async () => {
    const name = "000000010000000000000024";
    const path = writeWal(dir, name, syntheticSegment("000000010000000000000025", 24));
    await expectRefused(["wal-push", path], /not a PostgreSQL WAL segment of this name.*0\/25000000.*0\/24000000/);
  });

  it("--wait with an unknown level: names the allowed levels", async () => {
    const name = "000000010000000000000026";
    const path = writeWal(dir, name, syntheticSegment(name, 26));
    await expectRefused(["wal-push", path, "--wait", "bogus"], /--wait must be none, stored, replicated or quorum\[=N\], not 'bogus'/);
  });

  it("a config whose local stack has exited: says to run `walvault local up`", async () => {
    const name = "000000010000000000000027";
    const path = writeWal(dir, name, syntheticSegment(name, 27));
    const cfg = JSON.parse(readFileSync(stack.configPath, "utf8")) as Record<string, unknown>;
    const stale = {
      ...cfg,
      s3Endpoint: `http://127.0.0.1:${await freePort()}`,
      dynamodbEndpoint: `http://127.0.0.1:${await freePort()}`,
      local: { pid: deadPid(), stateDir: join(dir, "gone") },
    };
    const staleConfig = join(dir, "stale-config.json");
    writeFileSync(staleConfig, JSON.stringify(stale));
    await expectRefused(["wal-push", path], /local stack is not running.*`walvault local up`/, { env: { WALVAULT_CONFIG: staleConfig } });
  });

  it("no configuration at all: says no configuration was found", async () => {
    const name = "000000010000000000000028";
    const path = writeWal(dir, name, syntheticSegment(name, 28));
    await expectRefused(["wal-push", path], /no walvault configuration found/, {
      env: { WALVAULT_CONFIG: join(dir, "no-such-config.json") },
    });
  });
});
