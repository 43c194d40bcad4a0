/**
 * `walvault watch` (agent/watch.ts) on the four seed layouts, against the
 * real local stack: closed segments of every stream are shipped through the
 * ingest workflow, snapshots are taken on request or on a trigger file, and
 * restores lay out exactly the snapshot plus the segments closed by the
 * target. Each layout is written by a small deterministic writer standing in
 * for the database (segments rotated or filled, immutable files added,
 * mutable files rewritten between passes).
 *
 *   rstmdb    wal/NNNNNNNNNNNNNNNN.wal + snapshots/index.json, snap-*.snap
 *   engram    spaces/<id>/{wal,hot,cold,warm_tier.dat} (hex positions), backups/ excluded
 *   keystone  stripes/NNN/{wal,sst}: 8 stripes, a WAL stream each, closed by size
 *   wombat    SSTables + MANIFEST/CURRENT + wal/ (closed by a .done marker) + vlog/ (a second stream)
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WatchConfigInput } from "../../core/generic-wal.js";
import { utimeSeconds } from "../../core/time.js";
import { stackClients, tempDir } from "../support/harness.js";
import { startTestStack, type TestStack } from "../support/stack.js";

let stack: TestStack;
let work: string;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Deterministic bytes for record `n` of a stream. */
function record(stream: string, n: number, size: number): Buffer {
  const h = createHash("sha256").update(`${stream}:${n}`).digest();
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = h[i % 32]! ^ (i & 0xff);
  return b;
}

/** One WAL stream of a fake database: appends records, closes segments by its rule. */
class FakeStream {
  position: number;
  private records = 0;
  constructor(
    private readonly root: string,
    readonly dir: string,
    private readonly fileName: (pos: number) => string,
    private readonly rule: { kind: "rotate" } | { kind: "size"; bytes: number } | { kind: "marker"; suffix: string },
    readonly first = 1,
  ) {
    this.position = first;
    mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(this.path(this.position), "");
  }
  path(pos: number): string {
    return join(this.root, this.dir, this.fileName(pos));
  }
  file(pos: number): string {
    return this.fileName(pos);
  }
  /** Appends one record to the open segment (size rule: rolls over into the next segment at the size). */
  append(size = 700): void {
    let data = record(this.dir, this.records++, size);
    if (this.rule.kind !== "size") {
      appendFileSync(this.path(this.position), data);
      return;
    }
    while (data.length > 0) {
      const have = lstatSync(this.path(this.position)).size;
      const piece = data.subarray(0, this.rule.bytes - have);
      appendFileSync(this.path(this.position), piece);
      data = data.subarray(piece.length);
      if (have + piece.length >= this.rule.bytes) this.next();
    }
  }
  /** Closes the open segment and opens the next one. */
  close(): void {
    if (this.rule.kind === "size") {
      const have = lstatSync(this.path(this.position)).size;
      if (have > 0) appendFileSync(this.path(this.position), Buffer.alloc(this.rule.bytes - have));
      this.next();
      return;
    }
    if (this.rule.kind === "marker") writeFileSync(`${this.path(this.position)}${this.rule.suffix}`, "");
    this.next();
  }
  private next(): void {
    this.position++;
    writeFileSync(this.path(this.position), "");
  }
  /** Writes `n` records and closes the segment, `segments` times. */
  closeSegments(segments: number, n = 3): void {
    for (let s = 0; s < segments; s++) {
      for (let i = 0; i < n; i++) this.append();
      this.close();
    }
  }
}

interface Layout {
  name: string;
  dbId: string;
  watch: Omit<WatchConfigInput, "dataDir">;
  /** Streams by id. */
  streams(root: string): Map<string, FakeStream>;
  /** Immutable and mutable non-WAL files, round `r`. */
  files(root: string, r: number): void;
  /** Takes the second snapshot by trigger file instead of --snapshot-now. */
  trigger?: string;
}

const pad = (n: number, w: number): string => String(n).padStart(w, "0");

const LAYOUTS: Layout[] = [
  {
    name: "rstmdb: wal/*.wal + snapshots/index.json, snap-*.snap",
    dbId: "rstmdb-1",
    watch: { streams: [{ id: "wal", dir: "wal", pattern: "(\\d{16})\\.wal" }] },
    streams: (root) => new Map([["wal", new FakeStream(root, "wal", (p) => `${pad(p, 16)}.wal`, { kind: "rotate" })]]),
    files(root, r) {
      mkdirSync(join(root, "snapshots"), { recursive: true });
      writeFileSync(join(root, "snapshots", `snap-${pad(r, 6)}.snap`), record("snap", r, 40_000));
      writeFileSync(join(root, "snapshots", "index.json.tmp"), JSON.stringify({ latest: `snap-${pad(r, 6)}.snap`, round: r }));
      renameSync(join(root, "snapshots", "index.json.tmp"), join(root, "snapshots", "index.json"));
    },
  },
  {
    name: "engram: spaces/<id>/{wal,hot,cold,warm_tier.dat}",
    dbId: "engram-1",
    watch: {
      streams: [{ id: "space-{1}", dir: "spaces/*/wal", pattern: "wal-([0-9a-f]{8})\\.log", radix: 16 }],
      snapshot: { exclude: ["backups"] },
    },
    streams: (root) =>
      new Map(
        ["default", "metrics"].map((s) => [`space-${s}`, new FakeStream(root, `spaces/${s}/wal`, (p) => `wal-${p.toString(16).padStart(8, "0")}.log`, { kind: "rotate" }, 0x0e)]),
      ),
    files(root, r) {
      for (const s of ["default", "metrics"]) {
        const base = join(root, "spaces", s);
        mkdirSync(join(base, "hot"), { recursive: true });
        mkdirSync(join(base, "cold"), { recursive: true });
        writeFileSync(join(base, "hot", `dashmap-${r}.bin`), record(`${s}-hot`, r, 20_000));
        writeFileSync(join(base, "cold", `segment-${r}.col`), record(`${s}-cold`, r, 90_000));
        writeFileSync(join(base, "warm_tier.dat"), Buffer.concat([record(`${s}-warm`, 0, 60_000), record(`${s}-warm`, r, 4_000)]));
      }
      mkdirSync(join(root, "backups", "full"), { recursive: true });
      writeFileSync(join(root, "backups", "full", `old-${r}.tar`), record("backup", r, 10_000));
    },
  },
  {
    name: "keystone: immutable SSTs + a WAL per stripe (8 stripes, closed by size)",
    dbId: "keystone-1",
    watch: { streams: [{ id: "stripe-{1}", dir: "stripes/*/wal", pattern: "(\\d{6})\\.wal", closed: { size: 4096 } }] },
    streams: (root) =>
      new Map(
        Array.from({ length: 8 }, (_, i) => [`stripe-${pad(i, 3)}`, new FakeStream(root, `stripes/${pad(i, 3)}/wal`, (p) => `${pad(p, 6)}.wal`, { kind: "size", bytes: 4096 })]),
      ),
    files(root, r) {
      for (let i = 0; i < 8; i++) {
        mkdirSync(join(root, "stripes", pad(i, 3), "sst"), { recursive: true });
        writeFileSync(join(root, "stripes", pad(i, 3), "sst", `${pad(r, 6)}.sst`), record(`sst-${i}`, r, 12_000));
      }
    },
  },
  {
    name: "wombat: SSTables + MANIFEST + WAL (.done markers) + value log",
    dbId: "wombat-1",
    watch: {
      streams: [
        { id: "wal", dir: "wal", pattern: "(\\d{6})\\.wal", closed: { marker: ".done" } },
        { id: "vlog", dir: "vlog", pattern: "(\\d{6})\\.vlog" },
      ],
      snapshot: { triggerFile: "BACKUP_NOW" },
    },
    trigger: "BACKUP_NOW",
    streams: (root) =>
      new Map([
        ["wal", new FakeStream(root, "wal", (p) => `${pad(p, 6)}.wal`, { kind: "marker", suffix: ".done" })],
        ["vlog", new FakeStream(root, "vlog", (p) => `${pad(p, 6)}.vlog`, { kind: "rotate" })],
      ]),
    files(root, r) {
      mkdirSync(join(root, "sst"), { recursive: true });
      writeFileSync(join(root, "sst", `${pad(r, 6)}.sst`), record("sst", r, 50_000));
      writeFileSync(join(root, `MANIFEST-${pad(1, 6)}`), Array.from({ length: r }, (_, i) => `add sst/${pad(i + 1, 6)}.sst\n`).join(""));
      writeFileSync(join(root, "CURRENT"), `MANIFEST-${pad(1, 6)}\n`);
    },
  },
];

/** The marker suffix of a layout's marker-closed stream, or undefined. */
function markerOf(layout: Layout, streamId: string): string | undefined {
  const closed = layout.watch.streams.find((x) => x.id === streamId)?.closed;
  return typeof closed === "object" && "marker" in closed ? closed.marker : undefined;
}

/** relPath -> "dir" | "<mode>:<sha256>" of every file under root (minus `skip`). */
function tree(root: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) {
        out.set(r, "dir");
        visit(r);
      } else out.set(r, `${(st.mode & 0o777).toString(8)}:${createHash("sha256").update(readFileSync(join(root, r))).digest("hex")}`);
    }
  };
  visit("");
  return out;
}

const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

beforeAll(async () => {
  stack = await startTestStack(LAYOUTS.map((l) => ({ id: l.dbId, kind: "generic" as const })).concat([{ id: "watch-bad", kind: "generic" }, { id: "watch-ns", kind: "generic" }]));
  work = tempDir("walvault-watch-");
}, 120_000);

afterAll(async () => {
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.each(LAYOUTS)("watch + restore, $name", (layout) => {
  it(
    "ships every closed segment, and restores to a segment boundary and byte-identical",
    async () => {
      // Prepare: the database's directory, 3 closed segments per stream and an open one, first files.
      const root = join(work, layout.dbId);
      mkdirSync(root, { recursive: true });
      const streams = layout.streams(root);
      for (const s of streams.values()) s.closeSegments(3);
      for (const s of streams.values()) s.append();
      layout.files(root, 1);
      const watchFile = join(work, `${layout.dbId}.watch.json`);
      writeFileSync(watchFile, JSON.stringify({ ...layout.watch, dataDir: layout.dbId, databaseId: layout.dbId }));
      const watch = (...args: string[]) => stack.cli(["watch", watchFile, "--once", "--json", ...args]);

      // Act 1: the first pass ships segments 1..3 of every stream and takes snapshot S1.
      const first = await watch("--snapshot-now");
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      const pass1 = JSON.parse(first.stdout) as { shipped: { name: string; outcome: string }[]; streams: string[]; snapshot: { snapshotId: string; streams: Record<string, number> } };
      expect(pass1.streams).toEqual([...streams.keys()].sort());
      expect(pass1.shipped.filter((s) => s.outcome === "stored")).toHaveLength(3 * streams.size);
      const s1 = pass1.snapshot.snapshotId;
      const s1Positions = { ...pass1.snapshot.streams };

      // Act 2: the database goes on: the first stream (only: others stay idle) closes 2 segments, then T1, then 2 more.
      const [busyId, busy] = [...streams.entries()][0]!;
      const beforeT1 = busy.position; // first segment closed after S1
      busy.closeSegments(2);
      await sleep(30);
      const t1 = new Date();
      await sleep(30);
      busy.closeSegments(2);
      busy.append();
      layout.files(root, 2);
      const second = await watch();
      expect(second.code).toBe(0);
      const pass2 = JSON.parse(second.stdout) as { shipped: { name: string; outcome: string }[]; snapshot?: unknown };
      expect(pass2.shipped.map((s) => s.name)).toEqual([beforeT1, beforeT1 + 1, beforeT1 + 2, beforeT1 + 3].map((p) => `${busyId}/${busy.file(p)}`));
      expect(pass2.snapshot).toBeUndefined();

      // Assess: wal list shows every shipped segment, by stream.
      const records = await stackClients(stack).catalog.listWal(layout.dbId);
      expect(records).toHaveLength(3 * streams.size + 4);
      for (const r of records) expect(r.closedAt).toBeDefined();
      const st = await stack.cli(["status", "--database", layout.dbId, "--json"]);
      expect(st.code, st.stderr).toBe(0);
      const report = JSON.parse(st.stdout) as { streams: { stream: string; ranges: { segments: number }[] }[]; gaps: number; archivedThrough: string };
      expect(report.streams.map((x) => x.stream)).toEqual([...streams.keys()].sort());
      expect(report.streams.find((x) => x.stream === busyId)?.ranges).toEqual([expect.objectContaining({ segments: 7 })]);
      expect(report.gaps).toBe(0);
      expect(Date.parse(report.archivedThrough)).toBeGreaterThan(t1.getTime());

      // Act 3: restore to T1 → S1 plus the busy stream's segments closed by T1, nothing later.
      const pitr = join(work, `${layout.dbId}-t1`);
      const r1 = await stack.cli(["restore", "--database", layout.dbId, "--to", pitr, "--target-time", t1.toISOString(), "--json"]);
      expect(r1.stderr).toBe("");
      expect(r1.code).toBe(0);
      // Assess: in every stream directory, exactly the segments closed by T1, each identical to the database's.
      for (const [id, s] of streams) {
        const lastByT1 = id === busyId ? beforeT1 + 1 : s1Positions[id]!;
        const present = readdirSync(join(pitr, s.dir)).filter((f) => !f.endsWith(".done")).sort();
        const expected = Array.from({ length: lastByT1 - s.first + 1 }, (_, i) => s.file(s.first + i));
        // The segment open at S1 is in the snapshot as it was then (a prefix of its closed self) unless archived by T1.
        const openAtS1 = s.file(s1Positions[id]! + 1);
        expect(present.filter((f) => f !== openAtS1 || id === busyId)).toEqual(expected);
        for (const f of expected) expect(sha(join(pitr, s.dir, f)), `${id}/${f}`).toBe(sha(join(root, s.dir, f)));
        // A marker-closed stream: every segment restored is sealed as it was in the database, and nothing more.
        const suffix = markerOf(layout, id);
        if (suffix !== undefined) {
          const markers = readdirSync(join(pitr, s.dir)).filter((f) => f.endsWith(suffix)).sort();
          expect(markers, `${id} markers at T1`).toEqual(expected.map((f) => `${f}${suffix}`));
        }
        if (id !== busyId) expect(readFileSync(join(root, s.dir, openAtS1)).subarray(0, lstatSync(join(pitr, s.dir, openAtS1)).size)).toEqual(readFileSync(join(pitr, s.dir, openAtS1)));
      }

      // Act 4: --latest → S1 plus every archived segment: the busy stream through its last closed one.
      const latest = join(work, `${layout.dbId}-latest`);
      const r2 = await stack.cli(["restore", "--database", layout.dbId, "--to", latest, "--latest"]);
      expect(r2.code, r2.stderr).toBe(0);
      for (let p = beforeT1; p < busy.position; p++) expect(sha(join(latest, busy.dir, busy.file(p)))).toBe(sha(join(root, busy.dir, busy.file(p))));
      const busyMarker = markerOf(layout, busyId);
      if (busyMarker !== undefined) {
        const want = readdirSync(join(root, busy.dir)).filter((f) => f.endsWith(busyMarker)).sort();
        expect(readdirSync(join(latest, busy.dir)).filter((f) => f.endsWith(busyMarker)).sort(), "markers at --latest").toEqual(want);
      }
      expect(existsSync(join(latest, busy.dir, busy.file(busy.position)))).toBe(false);

      // Act 5: a second snapshot (by trigger file where configured), then restore it: the whole tree, byte-identical.
      if (layout.trigger) writeFileSync(join(root, layout.trigger), "");
      const third = await watch(...(layout.trigger ? [] : ["--snapshot-now"]));
      expect(third.code, third.stdout).toBe(0);
      const s2 = (JSON.parse(third.stdout) as { snapshot: { snapshotId: string } }).snapshot.snapshotId;
      expect(s2).not.toBe(s1);
      if (layout.trigger) expect(existsSync(join(root, layout.trigger))).toBe(false);
      const whole = join(work, `${layout.dbId}-s2`);
      const r3 = await stack.cli(["restore", "--database", layout.dbId, "--to", whole, "--snapshot", s2]);
      expect(r3.code, r3.stderr).toBe(0);
      const excluded = (rel: string): boolean => (layout.watch.snapshot?.exclude ?? []).some((e) => rel === e || rel.startsWith(`${e}/`));
      expect(tree(whole)).toEqual(tree(root, excluded));
    },
    180_000,
  );
});

describe("watch and time targets below the millisecond", () => {
  it("never counts a segment closed after the target: close times round up to the millisecond", async () => {
    // Prepare: one stream; a snapshot after segment 1, then segment 2 closed (mtime) at exactly M + 0.5 ms.
    const root = join(work, "ns");
    const s = new FakeStream(root, "wal", (p) => `${pad(p, 6)}.wal`, { kind: "rotate" });
    s.closeSegments(1);
    const watchFile = join(work, "ns.watch.json");
    writeFileSync(watchFile, JSON.stringify({ dataDir: root, databaseId: "watch-ns", streams: [{ id: "wal", dir: "wal", pattern: "(\\d{6})\\.wal" }] }));
    expect((await stack.cli(["watch", watchFile, "--once", "--snapshot-now"])).code).toBe(0);
    const [snap] = await stackClients(stack).catalog.listSnapshots("watch-ns");
    const m = Date.parse(snap!.finishedAt) + 1000;
    s.closeSegments(1);
    const closeNs = BigInt(m) * 1_000_000n + 500_000n;
    utimesSync(s.path(2), utimeSeconds(closeNs), utimeSeconds(closeNs));
    expect(lstatSync(s.path(2), { bigint: true }).mtimeNs).toBe(closeNs);
    while (Date.now() <= m + 50) await sleep(50);
    expect((await stack.cli(["watch", watchFile, "--once"])).code).toBe(0);
    const iso = new Date(m).toISOString();
    const planAt = async (t: string): Promise<string[]> => {
      const r = await stack.cli(["restore", "--plan-only", "--json", "--database", "watch-ns", "--target-time", t]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { wal: { name: string }[] }).wal.map((w) => w.name);
    };

    // Act
    const before = await planAt(`${iso.slice(0, 23)}400000Z`); // M + 0.4 ms: segment 2 was still being written
    const after = await planAt(new Date(m + 1).toISOString());

    // Assess
    expect((await stackClients(stack).catalog.getWal("watch-ns", `wal/${s.file(2)}`))?.closedAt).toBe(new Date(m + 1).toISOString());
    expect(before).toEqual([]);
    expect(after).toEqual([`wal/${s.file(2)}`]);
  }, 60_000);
});

describe("watch refusals", () => {
  it("a closed segment rewritten with other bytes is a conflict: reported, the archived copy kept, exit non-zero", async () => {
    // Prepare: one stream with two closed segments, shipped.
    const root = join(work, "bad");
    const s = new FakeStream(root, "wal", (p) => `${pad(p, 6)}.wal`, { kind: "rotate" });
    s.closeSegments(2);
    const watchFile = join(work, "bad.watch.json");
    writeFileSync(watchFile, JSON.stringify({ dataDir: root, databaseId: "watch-bad", streams: [{ id: "wal", dir: "wal", pattern: "(\\d{6})\\.wal" }] }));
    expect((await stack.cli(["watch", watchFile, "--once"])).code).toBe(0);
    const before = await stackClients(stack).catalog.getWal("watch-bad", `wal/${s.file(1)}`);
    // Act: the database rewrites closed segment 1.
    writeFileSync(s.path(1), record("other", 1, 2100));
    utimesSync(s.path(1), new Date(Date.now() + 5000), new Date(Date.now() + 5000));
    const res = await stack.cli(["watch", watchFile, "--once"]);
    // Assess: the pass names the conflict; nothing archived changed.
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toContain(`wal/${s.file(1)} is already archived for database watch-bad with different contents`);
    expect(await stackClients(stack).catalog.getWal("watch-bad", `wal/${s.file(1)}`)).toEqual(before);
  }, 60_000);

  it("a bad watch file is one line naming the field, exit 2", async () => {
    // Prepare
    const watchFile = join(work, "broken.watch.json");
    writeFileSync(watchFile, JSON.stringify({ dataDir: ".", streams: [{ id: "s-{1}", dir: "wal", pattern: "(\\d+)" }] }));
    // Act
    const res = await stack.cli(["watch", watchFile, "--once", "--database", "watch-bad"]);
    // Assess
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split("\n")).toHaveLength(1);
    expect(res.stderr).toContain("streams[0].id 's-{1}' uses {1}, but dir 'wal' has 0 '*'");
  });

  it("a file that changes while the snapshot reads it fails the snapshot, naming it", async () => {
    // Prepare: a 32 MiB data file that a writer keeps appending to.
    const root = join(work, "changing");
    const s = new FakeStream(root, "wal", (p) => `${pad(p, 6)}.wal`, { kind: "rotate" });
    s.closeSegments(1);
    writeFileSync(join(root, "big.dat"), randomBytes(32 * 1024 * 1024));
    const watchFile = join(work, "changing.watch.json");
    writeFileSync(watchFile, JSON.stringify({ dataDir: root, databaseId: "watch-bad", streams: [{ id: "wal2", dir: "wal", pattern: "(\\d{6})\\.wal" }] }));
    const writer = spawn("sh", ["-c", "while :; do echo more >> big.dat; sleep 0.002; done"], { cwd: root, stdio: "ignore" });
    try {
      // Act
      const res = await stack.cli(["watch", watchFile, "--once", "--snapshot-now"]);
      // Assess: the pass fails and names the file; no snapshot was recorded.
      expect(res.code).toBe(1);
      expect(res.stdout + res.stderr).toMatch(/big\.dat changed while the snapshot read it/);
      expect(await stackClients(stack).catalog.listSnapshots("watch-bad")).toEqual([]);
    } finally {
      writer.kill();
    }
  }, 60_000);
});
