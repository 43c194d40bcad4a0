/**
 * The WorkObjects contract (store/work-objects.ts), as one suite every
 * implementation runs, and the restore plan kept in work objects (header +
 * pages) on top of it.
 */
import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { ConfigError, NotFoundError } from "../../core/errors.js";
import type { RestorePlanOutput } from "../../core/restore-workflow.js";
import {
  readRestorePlan,
  readRestorePlanHeader,
  readRestorePlanPage,
  RESTORE_PLAN_PAGE_SIZE,
  restorePlanKey,
  restorePlanPageKey,
  writeRestorePlan,
  type WorkObjects,
} from "../../store/work-objects.js";

/** A fresh instance, and a way to put raw bytes at a key behind its back (a corrupt document). */
export interface WorkObjectsFixture {
  work: WorkObjects;
  putRaw(key: string, text: string): Promise<void>;
}

function plan(databaseId: string, segments: number): RestorePlanOutput {
  const wal = Array.from({ length: segments }, (_, i) => {
    const name = `00000001${(i + 3).toString(16).toUpperCase().padStart(16, "0")}`;
    return { timeline: 1, name, key: `db/${databaseId}/wal/${name}` };
  });
  return {
    databaseId,
    kind: "postgres",
    walSegmentSize: 16 * 2 ** 20,
    snapshot: { id: "20260301T102000Z-abcdef", timeline: 1, startLsn: "0/2000028", stopLsn: "0/2000100", startedAt: "2026-03-01T10:20:00.000Z", finishedAt: "2026-03-01T10:21:00.000Z" },
    manifestKey: `db/${databaseId}/snapshots/20260301T102000Z-abcdef/manifest.json`,
    manifestSha256: "0".repeat(64),
    chunkCount: 3,
    targetTimeline: 1,
    timelinePath: [1],
    wal,
    walCount: wal.length,
    recoveryTarget: null,
    endLsn: null,
    warnings: [],
  };
}

export function workObjectsContract(name: string, factory: () => WorkObjectsFixture | Promise<WorkObjectsFixture>): void {
  describe(`WorkObjects contract: ${name}`, () => {
    let f: WorkObjectsFixture;
    let prefix: string;

    beforeEach(async () => {
      f = await factory();
      prefix = `work/contract/${randomUUID()}/`;
    });

    it("get returns what put stored; a second put replaces it; a missing key is undefined", async () => {
      await f.work.put(`${prefix}a.json`, { n: 1, list: ["x", "é"] });
      expect(await f.work.get(`${prefix}a.json`)).toEqual({ n: 1, list: ["x", "é"] });
      await f.work.put(`${prefix}a.json`, [2]);
      expect(await f.work.get(`${prefix}a.json`)).toEqual([2]);
      expect(await f.work.get(`${prefix}missing.json`)).toBeUndefined();
    });

    it("refuses keys outside work/ before any request", async () => {
      await expect(f.work.put("incoming/db/x/plan.json", {})).rejects.toThrow(ConfigError);
      await expect(f.work.get("db/x/plan.json")).rejects.toThrow(/must start with 'work\/'/);
      await expect(f.work.get("work/")).rejects.toThrow(ConfigError);
    });

    it("a document that is not JSON is a ConfigError naming the key", async () => {
      await f.putRaw(`${prefix}bad.json`, "{not json");
      await expect(f.work.get(`${prefix}bad.json`)).rejects.toThrow(new RegExp(`work object ${prefix}bad\\.json is not JSON`));
    });

    describe("the restore plan", () => {
      it("is written as a header and pages of RESTORE_PLAN_PAGE_SIZE segments, and reads back whole", async () => {
        // Prepare
        const p = plan("pg-main", 2 * RESTORE_PLAN_PAGE_SIZE + 7);
        const key = restorePlanKey("pg-main", `exec-${randomUUID()}`);
        // Act
        const header = await writeRestorePlan(f.work, key, p);
        // Assess
        expect(header.walPages).toBe(3);
        expect(header).not.toHaveProperty("wal");
        expect(await readRestorePlanHeader(f.work, key)).toEqual(header);
        expect(await readRestorePlanPage(f.work, key, 2)).toHaveLength(7);
        expect(await readRestorePlan(f.work, key)).toEqual(p);
      });

      it("a plan without WAL has no pages", async () => {
        const key = restorePlanKey("pg-main", randomUUID());
        const header = await writeRestorePlan(f.work, key, plan("pg-main", 0));
        expect(header.walPages).toBe(0);
        expect((await readRestorePlan(f.work, key)).wal).toEqual([]);
      });

      it("a plan that is gone is a NotFoundError saying to start the workflow again; a missing page likewise", async () => {
        const key = restorePlanKey("pg-main", randomUUID());
        await expect(readRestorePlan(f.work, key)).rejects.toThrow(NotFoundError);
        await expect(readRestorePlan(f.work, key)).rejects.toThrow(/is gone \(work\/ objects expire a day after they are written\): start the restore workflow again/);
        await writeRestorePlan(f.work, key, plan("pg-main", 3));
        await expect(readRestorePlanPage(f.work, key, 1)).rejects.toThrow(NotFoundError);
      });

      it("a document that is not part of a plan is a ConfigError naming the key", async () => {
        const key = restorePlanKey("pg-main", randomUUID());
        await f.work.put(key, { hello: "world" });
        await expect(readRestorePlanHeader(f.work, key)).rejects.toThrow(new RegExp(`work object ${key.replace(/[.]/g, "\\.")} is not part of a restore plan`));
      });
    });
  });
}

describe("restore plan keys", () => {
  it("name the database and the execution under work/restore/, pages beside the header", () => {
    const key = restorePlanKey("pg-main", "run:7/x");
    expect(key).toBe("work/restore/pg-main/run-7-x/plan.json");
    expect(restorePlanPageKey(key, 12)).toBe("work/restore/pg-main/run-7-x/wal-000012.json");
    expect(() => restorePlanKey("../etc", "x")).toThrow();
  });
});
