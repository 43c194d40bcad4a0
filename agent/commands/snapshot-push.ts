/** `walvault snapshot push`: a PostgreSQL base backup, or (--dir) a generic database's directory tree. */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { InvalidInputError } from "../../core/errors.js";
import { commonOptions, defineCommand, jsonOption, shown } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

const STREAM = /^([^=]+)=(.+):(\d+)$/;

export default defineCommand({
  name: "snapshot push",
  summary: "take a snapshot: PostgreSQL's base backup, or --dir: a generic database's consistent directory tree",
  group: GROUPS.snapshots,
  details: [
    "PostgreSQL: pg_backup_start/pg_backup_stop in one psql session (--host/--port/--user, else",
    "$PGHOST, $PGPORT, $PGUSER; a superuser or a role allowed pg_backup_start) while the agent",
    "reads the data directory itself: run it on the database host, as the cluster's owner or root.",
    "It writes backup_manifest as pg_basebackup does. --source basebackup streams a base backup",
    "over the replication protocol instead (a server on another host; a REPLICATION role).",
    "One tablespace either way.",
    "Generic: walvault snapshot push --dir DIR --stream ID=LAST_SEGMENT_PATH:SEGNO...",
  ],
  positionals: [],
  options: {
    host: { type: "string", value: "DIR|HOST", description: "PostgreSQL server or socket directory (default $PGHOST, else /var/run/postgresql)", excludes: "dir" },
    port: { type: "port", description: "PostgreSQL port (default $PGPORT, else 5432)", excludes: "dir" },
    user: { type: "string", value: "ROLE", description: "role to connect as (default $PGUSER, else postgres)", excludes: "dir" },
    "pg-bin": {
      type: "string",
      value: "DIR",
      description: "PostgreSQL's bin directory: psql, pg_basebackup (default: $WALVAULT_PG_BINDIR, PATH, the newest /usr/lib/postgresql/<v>/bin)",
      excludes: "dir",
      check: (v) =>
        existsSync(join(v, "pg_basebackup")) ? undefined : `--pg-bin ${shown(v)} has no pg_basebackup${existsSync(v) ? "" : " (no such directory)"}`,
    },
    source: {
      type: "string",
      value: "direct|basebackup",
      description: "how the cluster is read: the data directory on this host (direct, default) or pg_basebackup's stream",
      excludes: "dir",
      check: (v) => (v === "basebackup" || v === "direct" ? undefined : `--source ${shown(v)} is neither basebackup nor direct`),
    },
    pgdata: {
      type: "string",
      value: "DIR",
      description: "the data directory as this host sees it (default: the server's data_directory)",
      excludes: "dir",
      check: (v) => (existsSync(v) && statSync(v).isDirectory() ? undefined : `--pgdata ${shown(v)} is not a directory`),
    },
    dir: {
      type: "string",
      value: "DIR",
      description: "generic database: the directory tree to snapshot",
      check: (v) => (existsSync(v) && statSync(v).isDirectory() ? undefined : `--dir ${shown(v)} is not a directory`),
    },
    stream: {
      type: "string",
      value: "ID=LAST_SEGMENT_PATH:SEGNO",
      multiple: true,
      requires: "dir",
      description: "generic database: a WAL stream and the last segment the snapshot includes (at least one)",
      check: (v) => (STREAM.test(v) ? undefined : `--stream '${shown(v)}' is not ID=LAST_SEGMENT_PATH:SEGNO`),
    },
    "file-hashes": {
      type: "boolean",
      description: "also hash each whole file into the manifest and, PostgreSQL direct, backup_manifest (for pg_verifybackup; ~1 CPU-s per GB); every chunk is hashed either way",
    },
    "no-wait": { type: "boolean", description: "return once the manifest is uploaded (PostgreSQL archives the stop segment on its own)" },
    timeout: { type: "seconds", description: "how long to wait for the catalog to record the snapshot and, direct, for PostgreSQL to archive its stop segment", excludes: "no-wait" },
    ...commonOptions,
    json: jsonOption,
  },
  async run({ values }) {
    if (values.dir !== undefined && (values.stream ?? []).length === 0) {
      throw new InvalidInputError("snapshot push --dir needs at least one --stream ID=LAST_SEGMENT_PATH:SEGNO (the WAL the snapshot includes)");
    }
    const { snapshotSource } = await import("../snapshot-source.js");
    // The source first: a missing pg_basebackup is found before any request.
    const source = snapshotSource(values);
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const databaseId = requireDatabase(cfg);
    const { snapshotPush } = await import("../snapshot-push.js");
    const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
    const r = await snapshotPush(source, { ...cfg, databaseId }, agentClients(cfg), {
      wait: !values["no-wait"],
      fileHashes: values["file-hashes"] === true,
      ...(timeoutS ? { timeoutMs: timeoutS * 1000 } : {}),
    });
    const { formatBytes } = await import("../status.js");
    print(values.json, r, () =>
      `snapshot ${r.snapshotId} ${r.outcome}: ${r.totals.files} files, ${formatBytes(r.totals.logicalBytes)}, ` +
        `${formatBytes(r.newBytes)} new (${formatBytes(r.uploadedBytes)} uploaded${r.packs ? ` in ${r.packs.uploaded} pack${r.packs.uploaded === 1 ? "" : "s"}` : ""}) in ${r.seconds.total.toFixed(1)} s, ${r.mbPerSecond.toFixed(0)} MB/s`,
    );
    return 0;
  },
});
