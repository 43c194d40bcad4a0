import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { clearLeftoverPrefetch } from "../../agent/wal-push.js";
import { PREFETCH_DIR } from "../../agent/wal-fetch.js";

let dataDir: string;

function prepare(signal?: string): string {
  dataDir = mkdtempSync(join(tmpdir(), "walvault-prefetch-"));
  const dir = join(dataDir, "pg_wal", PREFETCH_DIR);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "000000010000000000000009"), "prefetched");
  if (signal) writeFileSync(join(dataDir, signal), "");
  return dir;
}

afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

describe("clearLeftoverPrefetch (run by wal-push)", () => {
  it("removes what wal-fetch prefetched once the cluster is out of recovery", () => {
    const dir = prepare();
    clearLeftoverPrefetch(dataDir);
    expect(existsSync(dir)).toBe(false);
  });

  it.each(["recovery.signal", "standby.signal"])("keeps it while %s is present", (signal) => {
    const dir = prepare(signal);
    clearLeftoverPrefetch(dataDir);
    expect(existsSync(join(dir, "000000010000000000000009"))).toBe(true);
  });
});
