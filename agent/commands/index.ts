/**
 * The agent's command table: every command, in the order the overview lists
 * them. Cheap to import (each module imports its heavy parts only inside
 * `run`). This repository's bin/walvault adds the developer commands
 * `local up|down` (local/dev-cli.ts); the installed agent has none.
 */
import type { Command } from "../command.js";
import agent from "./agent.js";
import catalogIndexWal from "./catalog-index-wal.js";
import catalogRebuild from "./catalog-rebuild.js";
import dbAdd from "./db-add.js";
import prune from "./prune.js";
import report from "./report.js";
import replicate from "./replicate.js";
import restore from "./restore.js";
import snapshotList from "./snapshot-list.js";
import { snapshotPin, snapshotUnpin } from "./snapshot-pin.js";
import snapshotPush from "./snapshot-push.js";
import status from "./status.js";
import verifyHistory from "./verify-history.js";
import verify from "./verify.js";
import walFetch from "./wal-fetch.js";
import walList from "./wal-list.js";
import walPrefetch from "./wal-prefetch.js";
import walPush from "./wal-push.js";
import watch from "./watch.js";

export const COMMANDS: readonly Command[] = [
  walPush,
  walFetch,
  walPrefetch,
  agent,
  walList,
  status,
  report,
  replicate,
  watch,
  snapshotPush,
  snapshotList,
  snapshotPin,
  snapshotUnpin,
  restore,
  prune,
  verify,
  verifyHistory,
  dbAdd,
  catalogRebuild,
  catalogIndexWal,
];
