/**
 * Bad input to every command of the table: each answered with exactly one
 * line on stderr starting `walvault: `, the right non-zero exit code, nothing
 * on stdout, and the archive's listings identical before and after. Rows that
 * are refused before anything is requested are run first and must make no
 * request at all (a counting proxy stands in front of the stack's endpoints).
 * The real CLI (bin/walvault → dist/, `npm run build` first).
 */
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapLimit, runCliBounded } from "../support/cli-run.js";
import { startCountingProxy, type CountingProxy } from "../support/counting-proxy.js";
import { tempDir, writeWal } from "../support/harness.js";
import { runCli, startTestStack, type CliResult, type TestStack } from "../support/stack.js";
import { syntheticSegment } from "../support/wal.js";

const DB = "pg-main";
const SEG = "000000010000000000000001";

interface Row {
  args: string[];
  /** The exit code (a list: any of them, for the pending rows whose refusal is not settled yet). */
  exit: number | readonly number[];
  line: RegExp;
  env?: Record<string, string>;
}

let stack: TestStack;
let proxy: CountingProxy;
let work: string;
let home: string;
let tmp: string;
let localDir: string;
/** An empty directory, a directory standing where a file should, a segment file. */
let emptyDir: string;
let segPath: string;

// Paths are filled in once the temp directory exists: rows are functions of it.
const P = {
  get empty(): string {
    return emptyDir;
  },
  get seg(): string {
    return segPath;
  },
  get dest(): string {
    return join(home, "fetched");
  },
};

/** Refused before any request: no configuration read is even needed for most. */
function offlineRows(): Row[] {
  const r = (args: string[], exit: number, line: RegExp, env?: Record<string, string>): Row => ({ args, exit, line, ...(env ? { env } : {}) });
  return [
    // --- the command line itself
    r(["wal-psh", "x"], 2, /^walvault: unknown command 'wal-psh': did you mean 'wal-push'\?$/),
    r(["snapshots", "list"], 2, /^walvault: unknown command 'snapshots': did you mean 'snapshot'\?$/),
    r(["xyzzy"], 2, /^walvault: unknown command 'xyzzy' \(see walvault help\)$/),
    r(["--bogus"], 2, /^walvault: unknown command '--bogus'/),
    r(["snapshot"], 2, /^walvault: 'snapshot' needs a subcommand: 'snapshot push', 'snapshot list', 'snapshot pin', 'snapshot unpin'$/),
    r(["wal"], 2, /^walvault: 'wal' needs a subcommand: 'wal list'$/),
    r(["db"], 2, /^walvault: 'db' needs a subcommand: 'db add'$/),
    r(["catalog"], 2, /^walvault: 'catalog' needs a subcommand: 'catalog rebuild', 'catalog index-wal'$/),
    r(["local"], 2, /^walvault: 'local' needs a subcommand: 'local up', 'local down'$/),
    r(["local", "sideways"], 2, /^walvault: unknown command 'local sideways': use 'local up' or 'local down'$/),
    r(["db", "ad", "x"], 2, /^walvault: unknown command 'db ad': did you mean 'db add'\?$/),
    r(["help", "nope"], 2, /^walvault: unknown command 'nope'/),
    r(["--version", "extra"], 2, /^walvault: --version takes no arguments, got 'extra'$/),
    // --- wal-push
    r(["wal-push"], 2, /^walvault: wal-push takes <path>, got nothing$/),
    r(["wal-push", "a", "b"], 2, /^walvault: wal-push takes <path>, got 'a' 'b'$/),
    r(["wal-push", ""], 2, /^walvault: wal-push: <path> must not be empty$/),
    r(["wal-push", "x", "--wait", "bogus"], 2, /^walvault: --wait must be none, stored, replicated or quorum\[=N\], not 'bogus'$/),
    r(["wal-push", "x", "--wait", ""], 2, /^walvault: --wait must not be empty$/),
    r(["wal-push", "x", "--wait", "quorum=x"], 2, /^walvault: --wait must be none, stored, replicated or quorum\[=N\], not 'quorum=x'$/),
    r(["wal-push", "x", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    r(["wal-push", "x", "--timeout", "-5"], 2, /^walvault: --timeout must be a positive number of seconds, not '-5'$/),
    r(["wal-push", "x", "--timeout", "abc"], 2, /^walvault: --timeout must be a positive number of seconds, not 'abc'$/),
    r(["wal-push", "x", "--timeout", "1e3"], 2, /^walvault: --timeout must be a positive number of seconds, not '1e3'$/),
    r(["wal-push", "x", "--timeout", "Infinity"], 2, /^walvault: --timeout must be a positive number of seconds, not 'Infinity'$/),
    r(["wal-push", "x", "--timeout", ""], 2, /^walvault: --timeout must not be empty$/),
    r(["wal-push", "x", "--timeout"], 2, /^walvault: --timeout needs a value \(SECONDS\)$/),
    r(["wal-push", "x", "--timeout", "--no-agent"], 2, /^walvault: --timeout needs a value \(SECONDS\), got option '--no-agent'/),
    r(["wal-push", "x", "--timeout", "5", "--timeout", "6"], 2, /^walvault: --timeout is given more than once$/),
    r(["wal-push", "x", "--no-agent=yes"], 2, /^walvault: --no-agent takes no value, got 'yes'$/),
    r(["wal-push", "x", "--database", ""], 2, /^walvault: --database must not be empty$/),
    r(["wal-push", "x", "--database="], 2, /^walvault: --database must not be empty$/),
    r(["wal-push", "x", "--config", ""], 2, /^walvault: --config must not be empty$/),
    r(["wal-push", "x", "--bogus"], 2, /^walvault: unknown option '--bogus' for wal-push \(see walvault wal-push --help\)$/),
    r(["wal-push", "x", "--no-agnt"], 2, /^walvault: unknown option '--no-agnt' for wal-push: did you mean '--no-agent'\?$/),
    r(["wal-push", "x", "-x"], 2, /^walvault: unknown option '-x' for wal-push/),
    r(["wal-push", "x"], 2, /^walvault: WALVAULT_DATABASE must not be empty/, { WALVAULT_DATABASE: "" }),
    r(["wal-push", "x", "--database", "Bad_Id"], 2, /^walvault: database id 'Bad_Id' is invalid/),
    // --- wal-fetch: bad input stops recovery (126), never reads as "not archived" (1)
    r(["wal-fetch"], 126, /^walvault: wal-fetch takes <name> <dest>, got nothing$/),
    r(["wal-fetch", "a"], 126, /^walvault: wal-fetch takes <name> <dest>, got 'a'$/),
    r(["wal-fetch", "a", "b", "c"], 126, /^walvault: wal-fetch takes <name> <dest>, got 'a' 'b' 'c'$/),
    r(["wal-fetch", "", "b"], 126, /^walvault: wal-fetch: <name> must not be empty$/),
    r(["wal-fetch", SEG, ""], 126, /^walvault: wal-fetch: <dest> must not be empty$/),
    r(["wal-fetch", SEG, "b", "--bogus"], 126, /^walvault: unknown option '--bogus' for wal-fetch/),
    r(["wal-fetch", SEG, "b", "--no-prefetch=1"], 126, /^walvault: --no-prefetch takes no value, got '1'$/),
    r(["wal-fetch", SEG, "b", "--region", ""], 126, /^walvault: --region must not be empty$/),
    r(["wal-fetch", SEG, "b", "--database", ""], 126, /^walvault: --database must not be empty$/),
    r(["wal-fetch", SEG, "/"], 126, /^walvault: wal-fetch: destination "\/" is a directory, not a file path$/),
    r(["wal-fetch", SEG, "/nonexistent-walvault-dir/x"], 126, /^walvault: wal-fetch: destination "\/nonexistent-walvault-dir\/x": its directory "\/nonexistent-walvault-dir" does not exist$/),
    // --- wal-prefetch (internal)
    r(["wal-prefetch", "a", "b", "--count", "0"], 2, /^walvault: --count must be a positive integer, not '0'$/),
    r(["wal-prefetch", "a", "b", "--count", "x"], 2, /^walvault: --count must be a positive integer, not 'x'$/),
    r(["wal-prefetch", "a"], 2, /^walvault: wal-prefetch takes <after> <dir>, got 'a'$/),
    // --- wal list, status, replicate
    r(["wal", "list", "extra"], 2, /^walvault: wal list takes no arguments, got 'extra'$/),
    r(["wal", "list", "--json=1"], 2, /^walvault: --json takes no value, got '1'$/),
    r(["wal", "list", "--database", ""], 2, /^walvault: --database must not be empty$/),
    r(["status", "x"], 2, /^walvault: status takes no arguments, got 'x'$/),
    r(["status", "--region", ""], 2, /^walvault: --region must not be empty$/),
    r(["status", "--regoin", "x"], 2, /^walvault: unknown option '--regoin' for status: did you mean '--region'\?$/),
    r(["replicate"], 2, /^walvault: replicate needs --region R \(the replica region to bring level\)$/),
    r(["replicate", "--region", "r", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    r(["replicate", "--region", "r", "--timeout", "-1"], 2, /^walvault: --timeout must be a positive number of seconds, not '-1'$/),
    r(["replicate", "--state-machine", ""], 2, /^walvault: --state-machine must not be empty$/),
    // --- watch, agent
    r(["watch"], 2, /^walvault: watch takes <file>, got nothing$/),
    r(["watch", "a", "b"], 2, /^walvault: watch takes <file>, got 'a' 'b'$/),
    r(["watch", "f", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    r(["watch", "f", "--timeout", "x"], 2, /^walvault: --timeout must be a positive number of seconds, not 'x'$/),
    r(["watch", "/nonexistent-walvault.json", "--once"], 2, /^walvault: watch configuration \/nonexistent-walvault\.json does not exist$/),
    r(["watch", "f", "--snapshot-now=yes"], 2, /^walvault: --snapshot-now takes no value, got 'yes'$/),
    r(["agent", "x"], 2, /^walvault: agent takes no arguments, got 'x'$/),
    r(["agent", "--concurrency", "0"], 2, /^walvault: --concurrency must be a positive integer, not '0'$/),
    r(["agent", "--concurrency", "1.5"], 2, /^walvault: --concurrency must be a positive integer, not '1\.5'$/),
    r(["agent", "--concurrency", "-2"], 2, /^walvault: --concurrency must be a positive integer, not '-2'$/),
    r(["agent", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    r(["agent", "--pgdata", "@empty"], 2, /^walvault: --pgdata .* is not a PostgreSQL data directory \(no pg_wal\)$/),
    r(["agent", "--socket", ""], 2, /^walvault: --socket must not be empty$/),
    // --- snapshot push
    r(["snapshot", "push", "extra"], 2, /^walvault: snapshot push takes no arguments, got 'extra'$/),
    r(["snapshot", "push", "--pg-bin", "/nonexistent"], 2, /^walvault: --pg-bin \/nonexistent has no pg_basebackup \(no such directory\)$/),
    r(["snapshot", "push", "--pg-bin", "@empty"], 2, /^walvault: --pg-bin .* has no pg_basebackup$/),
    r(["snapshot", "push", "--source", "rsync"], 2, /^walvault: --source rsync is neither basebackup nor direct$/),
    r(["snapshot", "push", "--source", "direct", "--pgdata", "/nonexistent"], 2, /^walvault: --pgdata \/nonexistent is not a directory$/),
    r(["snapshot", "push", "--source", "basebackup", "--pgdata", "@empty"], 2, /^walvault: --pgdata is for the direct source, not --source basebackup$/),
    r(["snapshot", "push", "--port", "0"], 2, /^walvault: --port must be a port number \(1\.\.65535\), not '0'$/),
    r(["snapshot", "push", "--port", "70000"], 2, /^walvault: --port must be a port number \(1\.\.65535\), not '70000'$/),
    r(["snapshot", "push", "--port", "x"], 2, /^walvault: --port must be a port number \(1\.\.65535\), not 'x'$/),
    r(["snapshot", "push", "--port", "-1"], 2, /^walvault: --port must be a port number \(1\.\.65535\), not '-1'$/),
    r(["snapshot", "push", "--host", ""], 2, /^walvault: --host must not be empty$/),
    r(["snapshot", "push", "--user", ""], 2, /^walvault: --user must not be empty$/),
    r(["snapshot", "push", "--stream", "a=b:1"], 2, /^walvault: --stream only goes with --dir$/),
    r(["snapshot", "push", "--dir", "/nonexistent-walvault-dir"], 2, /^walvault: --dir \/nonexistent-walvault-dir is not a directory$/),
    r(["snapshot", "push", "--dir", "@empty"], 2, /^walvault: snapshot push --dir needs at least one --stream/),
    r(["snapshot", "push", "--dir", "@empty", "--stream", "bad"], 2, /^walvault: --stream 'bad' is not ID=LAST_SEGMENT_PATH:SEGNO$/),
    r(["snapshot", "push", "--dir", "@empty", "--stream", "a=b:1", "--host", "h"], 2, /^walvault: --host does not go with --dir$/),
    r(["snapshot", "push", "--dir", "@empty", "--stream", "a=b:1", "--user", "u", "--port", "5"], 2, /^walvault: --user, --port do not go with --dir$/),
    r(["snapshot", "push", "--no-wait", "--timeout", "5"], 2, /^walvault: --timeout does not go with --no-wait$/),
    r(["snapshot", "push", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    // --- snapshot list, pin, unpin
    r(["snapshot", "list", "x"], 2, /^walvault: snapshot list takes no arguments, got 'x'$/),
    r(["snapshot", "pin"], 2, /^walvault: snapshot pin takes <snapshot id>, got nothing$/),
    r(["snapshot", "pin", ""], 2, /^walvault: snapshot pin: <snapshot id> must not be empty$/),
    r(["snapshot", "pin", "a", "b"], 2, /^walvault: snapshot pin takes <snapshot id>, got 'a' 'b'$/),
    r(["snapshot", "unpin"], 2, /^walvault: snapshot unpin takes <snapshot id>, got nothing$/),
    r(["snapshot", "unpin", "--bogus", "a"], 2, /^walvault: unknown option '--bogus' for snapshot unpin/),
    // --- restore
    r(["restore", "x"], 2, /^walvault: restore takes no arguments, got 'x'$/),
    r(["restore", "--to"], 2, /^walvault: --to needs a value \(DIR\)$/),
    r(["restore", "--to", ""], 2, /^walvault: --to must not be empty$/),
    r(["restore", "--to", "--latest"], 2, /^walvault: --to needs a value \(DIR\), got option '--latest'/),
    r(["restore", "--latest", "--target-lsn", "0/1"], 2, /^walvault: give one restore target, not --target-lsn and --latest$/),
    r(["restore", "--to", "d", "--latest", "--parallel", "0"], 2, /^walvault: --parallel must be a positive integer, not '0'$/),
    r(["restore", "--to", "d", "--latest", "--parallel", "x"], 2, /^walvault: --parallel must be a positive integer, not 'x'$/),
    r(["restore", "--to", "d", "--latest", "--parallel", "-3"], 2, /^walvault: --parallel must be a positive integer, not '-3'$/),
    r(["restore", "--to", "d", "--timeline", "x"], 2, /^walvault: --timeline must be a timeline number or 'latest', not 'x'$/),
    r(["restore", "--to", "d", "--timeline", "0"], 2, /^walvault: --timeline must be a timeline number or 'latest', not '0'$/),
    r(["restore", "--to", "d", "--tier", "Bulk"], 2, /^walvault: --tier only goes with --remote$/),
    r(["restore", "--remote", "--tier", "Expedited"], 2, /^walvault: --tier must be Standard or Bulk, not 'Expedited'$/),
    r(["restore", "--to", "d", "--state-machine", "arn:x"], 2, /^walvault: --state-machine only goes with --remote$/),
    r(["restore", "--remote", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    r(["restore", "--remote", "--timeout=-5"], 2, /^walvault: --timeout must be a positive number of seconds, not '-5'$/),
    r(["restore", "--remote", "--to", "d"], 2, /^walvault: restore --remote takes no --to: /),
    r(["restore", "--remote", "--region", "r"], 2, /^walvault: restore --remote takes no --region: /),
    r(["restore", "--latest"], 2, /^walvault: restore needs --to DIR \(or --plan-only\)$/),
    r(["restore", "--latest=yes"], 2, /^walvault: --latest takes no value, got 'yes'$/),
    r(["restore", "--target-lsn", ""], 2, /^walvault: --target-lsn must not be empty$/),
    r(["restore", "--target-name", ""], 2, /^walvault: --target-name must not be empty$/),
    r(["restore", "--snapshot", ""], 2, /^walvault: --snapshot must not be empty$/),
    r(["restore", "--force=1"], 2, /^walvault: --force takes no value, got '1'$/),
    r(["restore", "--targt-time", "2026-01-01T00:00:00Z"], 2, /^walvault: unknown option '--targt-time' for restore: did you mean '--target-time'\?$/),
    r(["restore", "--to", "d", "--target-time", "2026-02-30T12:00:00Z"], 2, /^walvault: --target-time /),
    r(["restore", "--to", "d", "--target-time", "12"], 2, /^walvault: --target-time /),
    r(["restore", "--to", "d", "--target-time", "2026-12-01 21:11:18"], 2, /^walvault: --target-time /),
    // --- prune
    r(["prune", "x"], 2, /^walvault: prune takes no arguments, got 'x'$/),
    r(["prune", "--dry-run", "--grace-hours", "x"], 2, /^walvault: --grace-hours must be a number of hours >= 0, not 'x'$/),
    r(["prune", "--grace-hours", "-1"], 2, /^walvault: --grace-hours must be a number of hours >= 0, not '-1'$/),
    r(["prune", "--dry-run", "--daily", "x"], 2, /^walvault: --daily must be a whole number, not 'x'$/),
    r(["prune", "--dry-run", "--daily", "-1"], 2, /^walvault: --daily must be a whole number, not '-1'$/),
    r(["prune", "--dry-run", "--weekly", "1.5"], 2, /^walvault: --weekly must be a whole number, not '1\.5'$/),
    r(["prune", "--dry-run", "--monthly", "99999"], 2, /^walvault: --monthly must be a whole number, not '99999'$/),
    r(["prune", "--dry-run", "--window-days", ""], 2, /^walvault: --window-days must not be empty$/),
    r(["prune", "--state-machine", "arn:x"], 2, /^walvault: --state-machine only goes with --workflow$/),
    r(["prune", "--timeout", "5"], 2, /^walvault: --timeout only goes with --workflow$/),
    r(["prune", "--workflow", "--timeout", "0"], 2, /^walvault: --timeout must be a positive number of seconds, not '0'$/),
    r(["prune", "--workflow", "--grace-hours", "1"], 2, /^walvault: --grace-hours does not apply to --workflow/),
    r(["prune", "--dryrun"], 2, /^walvault: unknown option '--dryrun' for prune: did you mean '--dry-run'\?$/),
    // --- verify, verify history
    r(["verify", "x"], 2, /^walvault: verify takes no arguments, got 'x'$/),
    r(["verify", "histroy"], 2, /^walvault: verify takes no arguments, got 'histroy': did you mean 'verify history'\?$/),
    r(["verify", "--level", "5"], 2, /^walvault: --level must be 1, 2, 3 or 4 \(or L1-L4\), not '5'$/),
    r(["verify", "--level", "L0"], 2, /^walvault: --level must be 1, 2, 3 or 4 \(or L1-L4\), not 'L0'$/),
    r(["verify", "--level", ""], 2, /^walvault: --level must not be empty$/),
    r(["verify", "--scheduled", "--level", "2"], 2, /^walvault: --level does not go with --scheduled$/),
    r(["verify", "--scheduled", "--snapshot", "s", "--work-dir", "w"], 2, /^walvault: --snapshot, --work-dir do not go with --scheduled$/),
    r(["verify", "--state-machine", "arn:x"], 2, /^walvault: --state-machine only goes with --scheduled$/),
    r(["verify", "history", "x"], 2, /^walvault: verify history takes no arguments, got 'x'$/),
    r(["verify", "history", "--snapshot", ""], 2, /^walvault: --snapshot must not be empty$/),
    r(["verify", "history", "--level", "2"], 2, /^walvault: unknown option '--level' for verify history/),
    // --- report
    r(["report"], 2, /^walvault: report needs --html FILE \(where to write the page\)$/),
    r(["report", "--html", ""], 2, /^walvault: --html must not be empty$/),
    r(["report", "--html", "/nonexistent-dir/r.html"], 2, /^walvault: --html \/nonexistent-dir\/r\.html: the directory \/nonexistent-dir does not exist$/),
    r(["report", "--html", "r.html", "--database", "BAD"], 2, /^walvault: database id 'BAD' is invalid/),
    r(["report", "extra", "--html", "r.html"], 2, /^walvault: report takes no arguments, got 'extra'$/),
    // --- db add, catalog rebuild
    r(["db", "add", "good-db", "--rpo", "0"], 2, /^walvault: --rpo must be a positive integer, not '0'$/),
    r(["db", "add"], 2, /^walvault: db add takes <id>, got nothing$/),
    r(["db", "add", "Bad_Id"], 2, /^walvault: database id 'Bad_Id' is invalid/),
    r(["db", "add", "x"], 2, /^walvault: database id 'x' is invalid/),
    r(["db", "add", "good-db", "--kind", "mysql"], 2, /^walvault: --kind must be postgres or generic, not 'mysql'$/),
    r(["db", "add", "good-db", "--wal-segment-size", "0"], 2, /^walvault: --wal-segment-size must be a positive integer, not '0'$/),
    r(["db", "add", "good-db", "--wal-segment-size", "1000"], 2, /^walvault: wal segment size 1000 is not a power of two between 1 MB and 1 GB$/),
    r(["db", "add", "good-db", "--wal-segment-size", "x"], 2, /^walvault: --wal-segment-size must be a positive integer, not 'x'$/),
    r(["db", "add", "a-db", "b-db"], 2, /^walvault: db add takes <id>, got 'a-db' 'b-db'$/),
    r(["db", "add", "good-db", "--database", "x"], 2, /^walvault: unknown option '--database' for db add/),
    r(["catalog", "rebuild", "x"], 2, /^walvault: catalog rebuild takes no arguments, got 'x'$/),
    r(["catalog", "rebuild", "--database", ""], 2, /^walvault: --database must not be empty$/),
    r(["catalog", "rebuild", "--database", "BAD"], 2, /^walvault: database id 'BAD' is invalid/),
    r(["catalog", "rebuild", "--table", ""], 2, /^walvault: --table must not be empty$/),
    r(["catalog", "index-wal"], 2, /^walvault: catalog index-wal takes <id>, got nothing$/),
    r(["catalog", "index-wal", "Bad_Id"], 2, /^walvault: database id 'Bad_Id' is invalid/),
    // --- local up, local down
    r(["local", "up", "x"], 2, /^walvault: local up takes no arguments, got 'x'$/),
    r(["local", "up", "--database", "BAD_ID"], 2, /^walvault: database id 'BAD_ID' is invalid/),
    r(["local", "up", "--state-dir", ""], 2, /^walvault: --state-dir must not be empty$/),
    r(["local", "up", "--replica-region", ""], 2, /^walvault: --replica-region must not be empty$/),
    r(["local", "down", "--json"], 2, /^walvault: unknown option '--json' for local down/),
    r(["local", "down", "x"], 2, /^walvault: local down takes no arguments, got 'x'$/),
    r(["local", "down", "--state-dir", "@empty"], 4, /^walvault: no local stack is running from /),
  ];
}

/** Refused by what the archive says: these make requests, and must change nothing. */
function onlineRows(): Row[] {
  return [
    { args: ["wal-push", "@seg", "--database", "nope-db"], exit: 2, line: /^walvault: .*'nope-db' is not registered/ },
    { args: ["wal-push", "@partial:000000010000000000000003.partial:100"], exit: 2, line: /^walvault: 000000010000000000000003\.partial / },
    { args: ["wal-push", "@history:00000002.history:# nothing here\n"], exit: 2, line: /^walvault: 00000002\.history is not a timeline history file: / },
    { args: ["wal-push", "@history:00000003.history:\u001b[2Jnot a history line\n"], exit: 2, line: /^walvault: 00000003\.history is not a timeline history file: [^\u001b]*'\\e\[2Jnot a history line'$/ },
    { args: ["wal", "list", "--database", "nope-db"], exit: 2, line: /^walvault: database 'nope-db' is not registered in the catalog/ },
    { args: ["snapshot", "list", "--database", "nope-db"], exit: 2, line: /^walvault: database 'nope-db' is not registered in the catalog/ },
    { args: ["verify", "history", "--database", "nope-db"], exit: 2, line: /^walvault: database 'nope-db' is not registered in the catalog/ },
    { args: ["status", "--database", "nope-db"], exit: 2, line: /^walvault: .*'nope-db' is not registered/ },
    { args: ["snapshot", "pin", "no-such-snapshot"], exit: 1, line: /^walvault: no snapshot no-such-snapshot of database pg-main to pin$/ },
    { args: ["snapshot", "unpin", "no-such-snapshot"], exit: 1, line: /^walvault: no snapshot no-such-snapshot of database pg-main to unpin$/ },
    { args: ["wal-fetch", "000000010000009900000001", "@dest", "--no-prefetch"], exit: 1, line: /^walvault: 000000010000009900000001 is not in the archive of database pg-main$/ },
    { args: ["wal-fetch", SEG, "@dest", "--no-prefetch", "--database", "nope-db"], exit: 126, line: /^walvault: database 'nope-db' is not registered/ },
    { args: ["prune", "--dry-run", "--database", "nope-db"], exit: 2, line: /^walvault: .*'nope-db' is not registered/ },
    { args: ["verify", "--snapshot", "no-such-snapshot"], exit: 1, line: /^walvault: snapshot no-such-snapshot of database pg-main is not in the catalog$/ },
    { args: ["restore", "--plan-only", "--snapshot", "no-such-snapshot"], exit: 2, line: /^walvault: .*no-such-snapshot/ },
    { args: ["catalog", "index-wal", "nope-db"], exit: 1, line: /^walvault: database 'nope-db' is not registered: no WAL index to build$/ },
    { args: ["catalog", "index-wal", "pg-main"], exit: 2, line: /^walvault: database 'pg-main' is a PostgreSQL database: its WAL names sort by position/ },
  ];
}

let fileSeq = 0;
/** @empty, @seg, @dest, and files written on demand: @history:NAME:TEXT, @partial:NAME:BYTES. */
function materialise(args: string[]): string[] {
  return args.map((a) => {
    if (a === "@empty") return P.empty;
    if (a === "@seg") return P.seg;
    if (a === "@dest") return P.dest;
    const m = /^@(history|partial):([^:]+):([\s\S]*)$/.exec(a);
    if (!m) return a;
    const dir = join(work, `files-${++fileSeq}`);
    mkdirSync(dir);
    return writeWal(dir, m[2]!, m[1] === "partial" ? Buffer.alloc(Number(m[3])) : m[3]!);
  });
}


function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCliBounded(args, { cwd: home, timeoutMs: 20_000, env: { WALVAULT_CONFIG: proxy.configPath, HOME: home, TMPDIR: tmp, WALVAULT_LOCAL_DIR: localDir, ...env } });
}

/** The archive's listings through the CLI itself, straight to the stack. */
async function listings(): Promise<{ wal: string; snapshots: string }> {
  const [wal, snapshots] = await Promise.all([
    runCli(["wal", "list", "--json"], { env: { WALVAULT_CONFIG: stack.configPath } }),
    runCli(["snapshot", "list", "--json"], { env: { WALVAULT_CONFIG: stack.configPath } }),
  ]);
  expect(wal.code, wal.stderr).toBe(0);
  expect(snapshots.code, snapshots.stderr).toBe(0);
  return { wal: wal.stdout, snapshots: snapshots.stdout };
}

function problems(row: Row, r: CliResult): string[] {
  const lines = r.stderr.split("\n").filter((l) => l.length > 0);
  const out: string[] = [];
  const exits: readonly number[] = typeof row.exit === "number" ? [row.exit] : row.exit;
  if (!exits.includes(r.code)) out.push(`exit ${r.code}, wanted ${exits.join(" or ")}`);
  if (lines.length !== 1) out.push(`${lines.length} stderr lines`);
  if (!row.line.test(lines[0] ?? "")) out.push(`line does not match ${String(row.line)}`);
  if (r.stdout !== "") out.push("stdout not empty");
  return out.length === 0 ? [] : [`walvault ${row.args.map((a) => JSON.stringify(a)).join(" ")}: ${out.join("; ")}: ${JSON.stringify(r.stderr)}`];
}

beforeAll(async () => {
  stack = await startTestStack([{ id: DB }]);
  work = tempDir("walvault-badin-");
  proxy = await startCountingProxy(stack, work);
  home = join(work, "home");
  tmp = join(work, "tmp");
  localDir = join(work, "local");
  emptyDir = join(work, "empty");
  for (const d of [home, tmp, localDir, emptyDir]) mkdirSync(d);
  // Something archived, so that "identical listings" means something.
  const segDir = join(work, "segs");
  mkdirSync(segDir);
  const push = await runCli(["wal-push", writeWal(segDir, SEG, syntheticSegment(SEG, 1))], { env: { WALVAULT_CONFIG: stack.configPath } });
  expect(push.code, push.stderr).toBe(0);
  segPath = writeWal(segDir, "000000010000000000000002", syntheticSegment("000000010000000000000002", 2));
  await stack.idle();
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await stack?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("bad input to every command: one line, the right exit code, the archive untouched", () => {
  it("at least 100 rows, and every command of the table has some", async () => {
    const { COMMANDS } = await import("../../agent/commands/index.js");
    const rows = [...offlineRows(), ...onlineRows()];
    expect(rows.length).toBeGreaterThanOrEqual(100);
    for (const c of COMMANDS) {
      const words = c.name.split(" ");
      expect(rows.some((r) => words.every((w, i) => r.args[i] === w)), c.name).toBe(true);
    }
  });

  it("refused before any request: no request made, no file written", async () => {
    // Prepare
    const before = await listings();
    const requests = proxy.total();
    const rows = offlineRows();

    // Act
    const results = await mapLimit(rows, 4, async (row) => ({ row, r: await cli(materialise(row.args), row.env) }));

    // Assess
    expect(results.flatMap(({ row, r }) => problems(row, r))).toEqual([]);
    expect(proxy.total()).toBe(requests);
    expect(readdirSync(home)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(localDir)).toEqual([]);
    expect(readdirSync(emptyDir)).toEqual([]);
    expect(await listings()).toEqual(before);
  }, 180_000);

  it("refused by what the archive holds: the listings identical before and after", async () => {
    // Prepare
    const before = await listings();
    const requests = proxy.total();

    // Act
    const results = await mapLimit(onlineRows(), 4, async (row) => ({ row, r: await cli(materialise(row.args), row.env) }));
    await stack.idle();

    // Assess
    expect(results.flatMap(({ row, r }) => problems(row, r))).toEqual([]);
    expect(proxy.total()).toBeGreaterThan(requests);
    expect(readdirSync(home)).toEqual([]);
    expect(await listings()).toEqual(before);
  }, 120_000);
});
