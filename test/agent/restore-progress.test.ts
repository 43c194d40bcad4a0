/**
 * `walvault restore` on a terminal shows one status line on stderr, redrawn
 * in place (bytes of the total, rate, files, ETA), ended before the result;
 * without a terminal it writes nothing but the result. The terminal is a
 * real pseudo-terminal (util-linux `script`). Needs `npm run build` first.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WALVAULT_BIN } from "../../local/paths.js";
import { stackClients, tempDir } from "../support/harness.js";
import { SMALL_CHUNKER, uploadSnapshotDir, type UploadedSnapshot } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "gen-progress";
const FILES = 12;

let stack: TestStack;
let work: string;
let snap: UploadedSnapshot;

beforeAll(async () => {
  stack = await startTestStack([{ id: DB, kind: "generic" }]);
  work = tempDir("walvault-restore-progress-");
  const source = join(work, "source");
  mkdirSync(join(source, "wal"), { recursive: true });
  for (let i = 0; i < FILES; i++) writeFileSync(join(source, `file-${i}`), randomBytes(200_000 + i));
  snap = await uploadSnapshotDir(stackClients(stack), stack.config, {
    databaseId: DB,
    dir: source,
    kind: "generic",
    generic: { streams: [{ id: "wal", dir: "wal", lastSegno: 0 }] },
    chunker: SMALL_CHUNKER,
  });
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("restore's progress", () => {
  it("on a terminal: a status line with bytes of the total, rate and files, redrawn in place and ended before the result", () => {
    // Prepare
    const to = join(work, "on-a-tty");
    const command = [WALVAULT_BIN, "restore", "--database", DB, "--to", to, "--snapshot", snap.record.snapshotId].map((w) => `'${w}'`).join(" ");
    // Act: run under a pseudo-terminal; `script` copies what the terminal showed to stdout
    const shown = execFileSync("script", ["-qefc", command, "/dev/null"], { encoding: "utf8", env: { ...process.env, WALVAULT_CONFIG: stack.configPath, COLUMNS: "200" } });
    // Assess
    const total = snap.manifest.totals.logicalBytes;
    const statuses = shown.split(/\r|\n/).filter((l) => l.startsWith(`restore ${DB}  `));
    expect(statuses.length, shown).toBeGreaterThan(0);
    expect(statuses.at(-1)).toMatch(new RegExp(`^restore ${DB}  [\\d.]+ (kB|MB) of ${(total / 1e6).toFixed(2)} MB \\(\\d+%\\)  [\\d.–]+ MB/s  files \\d+/${FILES}`));
    expect(shown).toContain("\r");
    expect(shown).toMatch(new RegExp(`\\n[^\\r\\n]*restored snapshot ${snap.record.snapshotId} of ${DB}`));
  });

  it("without a terminal: nothing on stderr, the result on stdout", async () => {
    // Act
    const r = await stack.cli(["restore", "--database", DB, "--to", join(work, "no-tty"), "--snapshot", snap.record.snapshotId]);
    // Assess
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(new RegExp(`^restored snapshot ${snap.record.snapshotId} of ${DB}`));
  });
});
