/** Turns `snapshot push` flags into a snapshot source. */
import { existsSync, readdirSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { ConfigError, InvalidInputError } from "../core/errors.js";
import type { SnapshotSource } from "./snapshot-push.js";

export interface SnapshotSourceFlags {
  dir?: string | undefined;
  stream?: string[] | undefined;
  host?: string | undefined;
  port?: string | undefined;
  user?: string | undefined;
  "pg-bin"?: string | undefined;
  source?: string | undefined;
  pgdata?: string | undefined;
}

/** pg_basebackup's directory: the flag, WALVAULT_PG_BINDIR, PATH, then the newest /usr/lib/postgresql/<v>/bin. */
export function findPgBin(flag: string | undefined): string {
  // A directory given is the one used: never another pg_basebackup found elsewhere.
  if (flag !== undefined) {
    if (existsSync(join(flag, "pg_basebackup"))) return flag;
    throw new ConfigError(`no pg_basebackup in --pg-bin ${flag}`);
  }
  const candidates = [flag, process.env.WALVAULT_PG_BINDIR, ...(process.env.PATH ?? "").split(delimiter)];
  for (const dir of candidates) if (dir && existsSync(join(dir, "pg_basebackup"))) return dir;
  if (existsSync("/usr/lib/postgresql")) {
    const versions = readdirSync("/usr/lib/postgresql").filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = `/usr/lib/postgresql/${v}/bin`;
      if (existsSync(join(dir, "pg_basebackup"))) return dir;
    }
  }
  throw new ConfigError(flag ? `no pg_basebackup in --pg-bin ${flag}` : "pg_basebackup not found: pass --pg-bin DIR");
}

export function snapshotSource(flags: SnapshotSourceFlags): SnapshotSource {
  if (flags.dir !== undefined) {
    const streams = (flags.stream ?? []).map((s) => {
      const m = /^([^=]+)=(.+):(\d+)$/.exec(s);
      if (!m) throw new InvalidInputError(`--stream '${s}' is not ID=LAST_SEGMENT_PATH:SEGNO`);
      return { id: m[1]!, lastSegment: m[2]!, lastSegno: Number(m[3]) };
    });
    if (streams.length === 0) {
      throw new InvalidInputError("snapshot push --dir needs at least one --stream ID=LAST_SEGMENT_PATH:SEGNO (the WAL the snapshot includes)");
    }
    return { kind: "generic", dir: resolve(flags.dir), streams };
  }
  const port = Number(flags.port ?? process.env.PGPORT ?? 5432);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidInputError(`--port '${flags.port}' is not a port number`);
  // Direct by default: the agent runs on the database host and reads the data directory, as pgBackRest does
  // (no pg_basebackup process, walsender or tar stream: about half the push's CPU). basebackup for a remote server.
  const method = flags.source ?? "direct";
  if (method !== "basebackup" && method !== "direct") throw new InvalidInputError(`--source '${method}' is neither basebackup nor direct`);
  if (flags.pgdata !== undefined && method !== "direct") throw new InvalidInputError("--pgdata is for the direct source, not --source basebackup");
  return {
    kind: "postgres",
    pgbasebackup: {
      binDir: findPgBin(flags["pg-bin"]),
      host: flags.host ?? process.env.PGHOST ?? "/var/run/postgresql",
      port,
      user: flags.user ?? process.env.PGUSER ?? "postgres",
      method,
      ...(method === "direct" && flags.pgdata !== undefined ? { dataDir: resolve(flags.pgdata) } : {}),
    },
  };
}
