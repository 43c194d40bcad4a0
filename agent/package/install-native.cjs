#!/usr/bin/env node
/*
 * walvault-agent's postinstall: puts wal-push's native fast path
 * (native/wal-push.c: archive_command's call made to the resident agent
 * without starting Node) at lib/walvault-wal-push, where bin/walvault looks
 * for it, but only a binary that was just run on this host:
 *
 *   1. the one built for this platform and architecture when the package was
 *      made (native/<platform>-<arch>/walvault-wal-push, statically linked);
 *   2. else one compiled here from native/wal-push.c with cc or gcc, if
 *      either is installed;
 *   3. else none, and every wal-push runs on Node, as it always can.
 *
 * A binary of another architecture installed blindly would make every
 * archive_command call fail, and PostgreSQL retries a failing call forever;
 * so each candidate is first run once (it execs `node -p 1` through its own
 * fallback path and must print 1). Never fails the install: the fast path
 * is an optimisation. Run it again by hand (`node install-native.cjs` in the
 * package directory) after `npm install --ignore-scripts`.
 * Plain CommonJS for whatever Node runs npm.
 */
"use strict";
const { spawnSync } = require("node:child_process");
const { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");

const root = __dirname;
const target = join(root, "lib", "walvault-wal-push");

/** Runs `bin` as bin/walvault would, through its fallback to Node: true when it ran here and handed over. */
function works(bin) {
  const r = spawnSync(bin, ["1"], {
    env: { PATH: process.env.PATH || "/usr/bin:/bin", WALVAULT_FALLBACK_NODE: process.execPath, WALVAULT_FALLBACK_CLI: "-p" },
    encoding: "utf8",
    timeout: 20000,
  });
  return r.status === 0 && r.stdout.trim() === "1";
}

function compiled(work) {
  const source = join(root, "native", "wal-push.c");
  if (!existsSync(source)) return undefined;
  const out = join(work, "walvault-wal-push");
  for (const cc of ["cc", "gcc"]) {
    const r = spawnSync(cc, ["-O2", "-o", out, source], { encoding: "utf8", timeout: 120000 });
    if (r.error) continue; // not installed
    if (r.status === 0) return out;
  }
  return undefined;
}

function install() {
  rmSync(target, { force: true });
  const prebuilt = join(root, "native", `${process.platform}-${process.arch}`, "walvault-wal-push");
  if (existsSync(prebuilt) && works(prebuilt)) {
    copyFileSync(prebuilt, target);
    chmodSync(target, 0o755);
    return `installed wal-push's native fast path (built for ${process.platform}-${process.arch})`;
  }
  const work = mkdtempSync(join(tmpdir(), "walvault-native-"));
  try {
    const bin = compiled(work);
    if (bin && works(bin)) {
      copyFileSync(bin, target);
      chmodSync(target, 0o755);
      return "installed wal-push's native fast path (compiled on this host)";
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return undefined;
}

try {
  const done = install();
  if (done) console.log(`walvault-agent: ${done}`);
  else {
    console.error(
      `walvault-agent: no native wal-push for ${process.platform}-${process.arch} and no C compiler (cc, gcc) to build one: ` +
        "archive_command's calls run on Node (they work; each costs ~40 ms more CPU)",
    );
  }
} catch (e) {
  console.error(`walvault-agent: wal-push's native fast path not installed (${e && e.message ? e.message : e}): archive_command's calls run on Node`);
}
