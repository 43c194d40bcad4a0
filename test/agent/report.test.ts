/**
 * `walvault report --html`: the page, loaded by a real browser (headless
 * Chromium from Debian), draws the restorable windows `status --json`
 * prints for every region, and a gap where the WAL has one; a screenshot
 * goes to test-results/report.png for a person to look at. Needs
 * `npm run build` first, and chromium (.ci/run installs it).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../local/paths.js";
import { stackClients, tempDir } from "../support/harness.js";
import { archiveGenericSegment, SMALL_CHUNKER, uploadSnapshotDir } from "../support/snapshots.js";
import { startTestStack, type TestStack } from "../support/stack.js";

const DB = "gen-report";
/** A database whose policy keeps one snapshot: retention's next run deletes its older one. */
const RETIRING = "gen-retire";
const REPLICA = "local-2";
const T0 = Date.now() - 3_600_000;
const at = (minutes: number): Date => new Date(T0 + minutes * 60_000);
const seg = (n: number): string => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, "0")}`;
const CHROMIUM = "/usr/bin/chromium";

let stack: TestStack;
let work: string;
let file: string;

interface StatusJson {
  streams: Array<{ stream: string; gaps: Array<{ after: string; before: string; missing: number; from?: string; to?: string }> }>;
  regions: Array<{ region: string; windows: Array<{ from: string; to: string }> }>;
}

/** Chromium, headless, in a profile of its own under `work`. */
function chromium(args: string[]): string {
  return execFileSync(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", `--user-data-dir=${join(work, "chromium-profile")}`, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000,
  });
}

/** The attributes of every element of `tag` with class `cls` in `dom`. */
function elements(dom: string, tag: string, cls: string): Array<Record<string, string>> {
  return [...dom.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, "g"))]
    .map((m) => Object.fromEntries([...m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])))
    .filter((a) => (a.class ?? "").split(" ").includes(cls));
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium; .ci/run installs it)`).toBe(true);
  stack = await startTestStack([{ id: DB, kind: "generic" }, { id: RETIRING, kind: "generic" }], { replicaRegions: [REPLICA] });
  const clients = stackClients(stack);
  work = tempDir("walvault-report-");
  const source = join(work, "source");
  mkdirSync(join(source, "wal"), { recursive: true });
  for (let n = 1; n <= 3; n++) writeFileSync(join(source, "wal", seg(n)), `segment ${n}\n`.repeat(100));
  writeFileSync(join(source, "data"), "rows\n".repeat(1000));
  await uploadSnapshotDir(clients, stack.config, {
    databaseId: DB,
    dir: source,
    kind: "generic",
    generic: { streams: [{ id: "wal", lastSegment: `wal/${seg(3)}`, lastSegno: 3 }] },
    startedAt: at(30),
    finishedAt: at(31),
    chunker: SMALL_CHUNKER,
  });
  // Segments 4, 5, then 7, 8: segment 6 never archived (a gap)
  for (const n of [4, 5, 7, 8]) {
    await archiveGenericSegment(clients, stack.config, { databaseId: DB, stream: "wal", name: seg(n), segno: BigInt(n), bytes: Buffer.from(`segment ${n}\n`.repeat(100)), archivedAt: at(30 + n * 3) });
  }
  const db = await clients.catalog.getDatabase(RETIRING);
  await clients.catalog.putDatabase({ ...db!, retention: { daily: 1, weekly: 0, monthly: 0, recoveryWindowDays: 0, minSnapshots: 1 } });
  for (const [i, minute] of [10, 20].entries()) {
    await uploadSnapshotDir(clients, stack.config, {
      databaseId: RETIRING,
      dir: source,
      kind: "generic",
      generic: { streams: [{ id: "wal", lastSegment: `wal/${seg(3)}`, lastSegno: 3 }] },
      startedAt: at(minute),
      finishedAt: at(minute + 1),
      idSuffix: `00000${i}`,
      chunker: SMALL_CHUNKER,
    });
  }
  file = join(work, "report.html");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("walvault report --html, in a browser", () => {
  it("draws each region's restorable windows as status --json prints them, and the WAL gap where it is", async () => {
    // Act
    const r = await stack.cli(["report", "--html", file, "--database", DB]);
    const st = await stack.cli(["status", "--json", "--database", DB]);
    const dom = chromium(["--virtual-time-budget=5000", "--dump-dom", pathToFileURL(file).href]);
    // Assess: the page was drawn by its script in the browser
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`wrote ${file} (1 database)`);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout) as StatusJson;
    expect(dom).toMatch(/<body[^>]*data-drawn="1"/);
    // Every region's windows, exactly
    const drawn = elements(dom, "rect", "window").map((a) => ({ region: a["data-region"], from: a["data-from"], to: a["data-to"] }));
    const expected = status.regions.flatMap((reg) => reg.windows.map((w) => ({ region: reg.region, from: w.from, to: w.to })));
    expect(expected.length).toBeGreaterThan(0);
    expect(drawn).toEqual(expected);
    // The gap after segment 5, before segment 7
    const gaps = elements(dom, "rect", "gap").map((a) => ({ after: a["data-after"], before: a["data-before"], missing: Number(a["data-missing"]), from: a["data-from"], to: a["data-to"] }));
    expect(status.streams[0]!.gaps).toEqual([{ after: seg(5), before: seg(7), missing: 1, from: at(45).toISOString(), to: at(51).toISOString() }]);
    expect(gaps).toEqual(status.streams[0]!.gaps);
    // The snapshot, never verified, and not going
    expect(elements(dom, "circle", "snapshot").map((a) => [a["data-outcome"], a["data-next-delete"]])).toEqual([["unverified", "false"]]);
    expect(dom.match(/<p class="(meta|warn)">[^<]*retention[^<]*<\/p>/)?.[0]).toMatch(/^<p class="meta">retention's next run deletes no snapshot/);
  });

  it("marks the snapshots retention's next run deletes, as prune --dry-run plans them", async () => {
    // Act
    const r = await stack.cli(["report", "--html", file, "--database", RETIRING]);
    const plan = await stack.cli(["prune", "--dry-run", "--json", "--database", RETIRING]);
    const dom = chromium(["--virtual-time-budget=5000", "--dump-dom", pathToFileURL(file).href]);
    // Assess: the older snapshot goes, the newer stays, in the drawing and in words
    expect(r.code, r.stderr).toBe(0);
    expect(plan.code, plan.stderr).toBe(0);
    const going = (JSON.parse(plan.stdout) as { deleteSnapshots: Array<{ snapshotId: string }> }).deleteSnapshots.map((d) => d.snapshotId);
    expect(going).toHaveLength(1);
    const marked = elements(dom, "circle", "snapshot").filter((a) => a["data-next-delete"] === "true").map((a) => a["data-snapshot"]);
    expect(marked).toEqual(going);
    expect(elements(dom, "circle", "to-delete")).toHaveLength(1);
    expect(dom).toContain(`retention's next run deletes 1 snapshot(s) (${going[0]}, dashed red below)`);
    expect(dom).not.toContain("retention's next deletions unknown");
  });

  it("renders every registered database to a screenshot a person can look at (test-results/report.png)", async () => {
    // Prepare: the page of every database (no --database)
    const r = await stack.cli(["report", "--html", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`wrote ${file} (2 databases)`);
    const dir = join(PACKAGE_ROOT, "test-results");
    mkdirSync(dir, { recursive: true });
    const png = join(dir, "report.png");
    rmSync(png, { force: true });
    // Act
    chromium(["--virtual-time-budget=5000", "--window-size=1200,900", `--screenshot=${png}`, pathToFileURL(file).href]);
    // Assess
    expect(statSync(png).size).toBeGreaterThan(10_000);
  });

  it("refuses without --html, in one line", async () => {
    const r = await stack.cli(["report", "--database", DB]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("walvault: report needs --html FILE (where to write the page)\n");
  });
});
