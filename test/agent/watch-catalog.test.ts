/**
 * agent/watch.ts asks the catalog about the closed segments on disk, one
 * name at a time and once each, never for every WAL record of the database
 * (a million at design size): a fake catalog refuses listWal and counts
 * getWal; the segments on disk are all archived, so nothing is shipped.
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { AgentConfig } from "../../core/config.js";
import { closedAtMs, compileWatchConfig } from "../../core/generic-wal.js";
import { sha256Hex } from "../../core/hash.js";
import type { WalRecord } from "../../core/schemas.js";
import { Watcher } from "../../agent/watch.js";
import type { Catalog } from "../../store/catalog.js";
import type { ObjectStore } from "../../store/object-store.js";
import { tempDir } from "../support/harness.js";

const DB = "watch-bounded";
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("watch and the catalog", () => {
  it("asks once per closed segment on disk (getWal), never lists the WAL catalog, and ships nothing already archived", async () => {
    // Prepare: segments 1..5 in wal/ (5 is the newest: open); 1..4 are archived with these bytes and close times.
    const root = tempDir("walvault-watch-catalog-");
    dirs.push(root);
    mkdirSync(join(root, "wal"));
    const file = (n: number): string => `${String(n).padStart(16, "0")}.wal`;
    for (let n = 1; n <= 5; n++) writeFileSync(join(root, "wal", file(n)), Buffer.alloc(100, n));
    const archived = new Map<string, WalRecord>();
    for (let n = 1; n <= 4; n++) {
      const path = join(root, "wal", file(n));
      const bytes = Buffer.alloc(100, n);
      archived.set(`wal/${file(n)}`, { name: `wal/${file(n)}`, sha256: sha256Hex(bytes), size: 100, closedAt: new Date(closedAtMs(statSync(path).mtimeMs)).toISOString() } as WalRecord);
    }
    const asked: string[] = [];
    const catalog = {
      getDatabase: async () => ({ databaseId: DB, kind: "generic", walSegmentSize: 16 * 1024 * 1024, createdAt: "2026-01-01T00:00:00.000Z" }),
      listSnapshots: async () => [],
      listWal: async () => {
        throw new Error("listWal reads every WAL record of the database");
      },
      getWal: async (_db: string, name: string) => {
        asked.push(name);
        return archived.get(name);
      },
    } as unknown as Catalog;
    const store = {
      put: async () => {
        throw new Error("nothing should be shipped");
      },
    } as unknown as ObjectStore;
    const spec = { ...compileWatchConfig({ dataDir: root, streams: [{ id: "wal", dir: "wal", pattern: "(\\d{16})\\.wal" }] }), dataDir: root };
    const watcher = new Watcher(spec, { databaseId: DB, incomingBucket: "incoming" } as AgentConfig & { databaseId: string }, { catalog, store });

    // Act
    const first = await watcher.pass();
    const askedFirst = [...asked].sort();
    const second = await watcher.pass();

    // Assess
    expect([first.shipped, first.errors, second.shipped, second.errors]).toEqual([[], [], [], []]);
    expect(askedFirst).toEqual([1, 2, 3, 4].map((n) => `wal/${file(n)}`));
    expect(asked).toHaveLength(4);
  });
});
