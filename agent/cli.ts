#!/usr/bin/env node
/**
 * walvault — the agent beside the database.
 * Errors are one line on stderr (`walvault: …`) and a non-zero exit code.
 */
// Only light modules are imported statically: with a resident agent running,
// `wal-push` is this file, agent/locate.ts, agent/push-client.ts and a socket
// round trip. Everything that loads the AWS SDK or zod is imported on demand.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { fileURLToPath } from "node:url";
import { describeError, InvalidInputError, isWalvaultError, NotFoundError } from "../core/errors.js";
import { agentSocketPath, defaultLocalStateDir, findConfigFile, quickSettings } from "./locate.js";
import { askResidentAgent } from "./push-client.js";

async function heavy() {
  const [config, clients] = await Promise.all([import("./config.js"), import("./clients.js")]);
  return { loadConfig: config.loadConfig, requireDatabase: config.requireDatabase, agentClients: clients.agentClients };
}

/** restore_command exit status PostgreSQL treats as fatal (> 125): recovery stops instead of ending early. */
export const RESTORE_FATAL_EXIT = 126;

const USAGE = `usage: walvault <command> [options]

archiving (PostgreSQL)
  wal-push <path>            archive a WAL file (archive_command = 'walvault wal-push %p')
      --wait LEVEL           durability before exit 0: none | stored (default) | replicated (every region)
                             | quorum[=N] (N regions counting the primary; alone: a majority)
      --timeout SECONDS      give up waiting after this long (default 60)
      --no-agent             push directly even if a resident agent is running
  wal-fetch <name> <dest>    fetch a verified WAL file (restore_command = 'walvault wal-fetch %f %p')
      --no-prefetch          do not prefetch the following segments
  agent [--pgdata DIR]       resident agent: keeps connections warm and pushes .ready
                             segments ahead of the archiver (wal-push uses it by itself)
      --concurrency N        segments pushed at once ahead (default 2)
      --socket PATH          socket (default $WALVAULT_AGENT_SOCKET or <tmp>/walvault-agent-<id>.sock)
      --timeout SECONDS      how long a push waits for the catalog (default 60)
  wal list [--json]          every archived WAL file of the database
  status [--region R] [--json]   last archived segment, gaps; per region: lag and restorable windows
  replicate --region R       bring replica region R level with the catalog (the replicate workflow)

generic databases
  watch <file>               ship closed WAL segments of every stream and snapshot on schedule
                             (file: data directory, streams, snapshot rule; see docs/generic.md)
      --once                 one pass (ship, snapshot if due), then exit; non-zero if anything failed
      --snapshot-now         take a snapshot in the first pass
      --timeout SECONDS      how long each segment waits for the catalog (default 60)

snapshots and restore
  snapshot push              PostgreSQL: a base backup over the replication protocol
      --host DIR --port N --user ROLE   connection (default $PGHOST, $PGPORT, $PGUSER)
      --pg-bin DIR           directory of pg_basebackup (default: found on PATH or /usr/lib/postgresql)
  snapshot push --dir DIR --stream ID=LAST_SEGMENT_PATH:SEGNO...   generic: a consistent directory tree
      --no-wait              return once the manifest is uploaded
  snapshot list [--json]
  snapshot pin|unpin ID      keep a snapshot forever (retention never deletes it), or stop
  restore --to DIR [--latest | --target-time T | --target-lsn L | --target-name N | --snapshot ID]
      --timeline N           timeline to recover along (default: the latest)
      --plan-only [--json]   print the plan and stop
      --force                replace a non-empty DIR once the restore is complete
      --parallel N           chunks downloaded at once (default 32)
      --region R             restore from replica region R's vault (only what it holds; the primary untouched)
  restore --remote [--latest | --target-time T | ... | --snapshot ID]   run the restore workflow
                             (Step Functions): plan + thaw archived objects; prints the plan, restores
                             nothing here (no --to: restore with --to DIR and the same target afterwards)
      --state-machine ARN    default: restoreStateMachineArn in the config (stack output RestoreStateMachineArn)
      --tier Standard|Bulk   retrieval tier for objects in archive storage classes
      --timeout SECONDS      stop waiting after this long (the execution goes on)
      --json                 print the execution's output (the plan) as JSON

retention
  prune [--dry-run] [--json] show the retention plan (GFS + recovery window) and, without --dry-run, carry it out
      --daily N --weekly N --monthly N --window-days D   override the database's policy
      --grace-hours H        unreferenced chunks younger than this are kept (default 24)
  prune --workflow [--dry-run] [--json]   run the retention workflow now, as its schedule would
                             (the configured database, else every database); policy flags override
      --state-machine ARN    default: retentionStateMachineArn in the config (stack output RetentionStateMachineArn)
      --timeout SECONDS      stop waiting after this long (the execution goes on)

verification
  verify [--level L1..L4] [--snapshot ID] [--target-time T|random] [--checks FILE] [--region R] [--json]
                             restore-test one snapshot here (default: the newest, level 4, to the snapshot itself);
                             records the result in the verification history; exit 1 when a check fails
  verify --scheduled         run the verification workflow now, as its schedule would (candidates, tasks, notices)
  verify history [--snapshot ID] [--json]

administration
  db add <id> [--kind postgres|generic] [--wal-segment-size BYTES]
  catalog rebuild            rebuild the catalog from one region's vault bucket alone
      --region R             the primary (default) or a configured replica region
      --table NAME           table to rebuild into (default: the configured one; created if missing)
      --database ID...       only these databases (default: every database in the bucket)
      --json                 print the summary as JSON; exit 1 when objects were skipped
  local up [--state-dir DIR] [--database ID]... [--replica-region R]...   run the embedded stack in the foreground
                             (each replica region: its own S3 endpoint and vault bucket)
  local down [--state-dir DIR]                    stop it

common options
  --database ID   database id (or WALVAULT_DATABASE, or the config file's)
  --config FILE   configuration file (or WALVAULT_CONFIG; the local stack writes one)
`;

const common = {
  database: { type: "string" },
  config: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} satisfies ParseArgsConfig["options"];

function parse<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...common, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new InvalidInputError(describeError(e));
  }
}

function positionals(p: string[], names: string[], command: string): string[] {
  if (p.length !== names.length) {
    throw new InvalidInputError(
      `${command} takes ${names.map((n) => `<${n}>`).join(" ")}, got ${p.length === 0 ? "nothing" : p.map((x) => `'${x}'`).join(" ")}`,
    );
  }
  return p;
}

function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + "\n" : human() + "\n");
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;

    case "wal-push": {
      const { values, positionals: p } = parse(rest, {
        wait: { type: "string", default: "stored" },
        timeout: { type: "string" },
        "no-agent": { type: "boolean", default: false },
      });
      const [path] = positionals(p, ["path"], "wal-push");
      const simpleWait = values.wait === "none" || values.wait === "stored";
      if (!simpleWait && !/^(replicated|quorum(=\d{1,3})?)$/.test(values.wait)) {
        throw new InvalidInputError(`--wait must be none, stored, replicated or quorum[=N], not '${values.wait}'`);
      }
      if (values.timeout !== undefined && !(Number(values.timeout) > 0)) {
        throw new InvalidInputError(`--timeout must be a positive number of seconds`);
      }
      // Fast path: a resident agent for this database answers for us.
      const quick = quickSettings(values.database, findConfigFile(values.config).path);
      if (simpleWait && quick.databaseId && !values["no-agent"] && existsSync(agentSocketPath(quick.databaseId))) {
        const answer = await askResidentAgent(agentSocketPath(quick.databaseId), {
          op: "push",
          databaseId: quick.databaseId,
          path: resolve(path!),
          wait: values.wait as "none" | "stored",
          timeoutMs: Number(values.timeout ?? quick.waitTimeoutSeconds ?? 60) * 1000,
          cwd: process.cwd(),
        });
        if (answer?.ok) {
          if (values.json) print(true, answer.result, () => "");
          return 0;
        }
        if (answer) {
          process.stderr.write(`walvault: ${answer.error.message}\n`);
          return answer.error.exitCode;
        }
      }
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const databaseId = requireDatabase(cfg);
      const timeoutSeconds = values.timeout === undefined ? (cfg.waitTimeoutSeconds ?? 60) : Number(values.timeout);
      const { walPush, parseWaitLevel } = await import("./wal-push.js");
      const r = await walPush(path!, { ...cfg, databaseId }, agentClients(cfg), {
        wait: parseWaitLevel(values.wait, (cfg.replicas ?? []).map((x) => x.region)),
        timeoutMs: timeoutSeconds * 1000,
        cwd: process.cwd(),
      });
      if (values.json) print(true, r, () => "");
      return 0;
    }

    case "wal-fetch": {
      try {
        // Inside the try: even a usage error must not read as "not archived" to PostgreSQL.
        const { values, positionals: p } = parse(rest, { "no-prefetch": { type: "boolean", default: false }, region: { type: "string" } });
        const [name, dest] = positionals(p, ["name", "dest"], "wal-fetch");
        const { loadConfig, requireDatabase, agentClients } = await heavy();
        const { regionalConfig } = await import("./regions.js");
        const cfg = regionalConfig(loadConfig(values), values.region);
        const databaseId = requireDatabase(cfg);
        const { walFetch, spawnPrefetch } = await import("./wal-fetch.js");
        const { markRestoredFrom } = await import("./restore-marker.js");
        const r = await walFetch(name!, dest!, { ...cfg, databaseId }, agentClients(cfg));
        markRestoredFrom(process.cwd(), databaseId);
        if (!values["no-prefetch"]) spawnPrefetch(name!, dest!, cfg, fileURLToPath(import.meta.url));
        if (values.json) print(true, r, () => "");
        return 0;
      } catch (e) {
        if (e instanceof NotFoundError) throw e;
        // Anything but "never archived" must stop recovery rather than end it early.
        process.stderr.write(`walvault: ${describeError(e)}\n`);
        return RESTORE_FATAL_EXIT;
      }
    }

    case "wal-prefetch": {
      const { values, positionals: p } = parse(rest, { count: { type: "string", default: "8" }, region: { type: "string" } });
      const [after, dir] = positionals(p, ["after", "dir"], "wal-prefetch");
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const { regionalConfig } = await import("./regions.js");
      const cfg = regionalConfig(loadConfig(values), values.region);
      const { walPrefetch } = await import("./wal-fetch.js");
      await walPrefetch(after!, dir!, Number(values.count), { ...cfg, databaseId: requireDatabase(cfg) }, agentClients(cfg));
      return 0;
    }

    case "wal": {
      const [sub, ...args] = rest;
      if (sub !== "list") throw new InvalidInputError(`unknown command 'wal ${sub ?? ""}': did you mean 'wal list'?`);
      const { values, positionals: p } = parse(args, {});
      positionals(p, [], "wal list");
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const { listWal, formatWalList } = await import("./status.js");
      const records = await listWal(agentClients(cfg), requireDatabase(cfg));
      print(values.json, records, () => formatWalList(records));
      return 0;
    }

    case "status": {
      const { values, positionals: p } = parse(rest, { region: { type: "string" } });
      positionals(p, [], "status");
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const databaseId = requireDatabase(cfg);
      const clients = agentClients(cfg);
      const { status, formatStatus } = await import("./status.js");
      const { regionStatus, formatRegionStatus } = await import("./regions.js");
      const [report, regions] = await Promise.all([status(clients, databaseId), regionStatus(clients.catalog, cfg, databaseId, values.region)]);
      print(values.json, { ...report, regions }, () => `${formatStatus(report)}\n${formatRegionStatus(regions)}`);
      return 0;
    }

    case "verify": {
      const sub = rest[0] === "history" ? "history" : undefined;
      const { values, positionals: p } = parse(sub ? rest.slice(1) : rest, {
        level: { type: "string" },
        snapshot: { type: "string" },
        "target-time": { type: "string" },
        checks: { type: "string" },
        region: { type: "string" },
        "work-dir": { type: "string" },
        scheduled: { type: "boolean", default: false },
        "state-machine": { type: "string" },
      });
      positionals(p, [], sub ? "verify history" : "verify");
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const { regionalConfig } = await import("./regions.js");
      const cfg = regionalConfig(loadConfig(values), values.region);
      const verify = await import("./verify-cli.js");
      if (sub) return verify.historyCommand(agentClients(cfg), requireDatabase(cfg), values, print);
      if (values.scheduled) return verify.scheduledCommand(cfg, values, print);
      return verify.verifyCommand(agentClients(cfg), cfg, requireDatabase(cfg), values, print);
    }

    case "prune": {
      const { values, positionals: p } = parse(rest, {
        "dry-run": { type: "boolean", default: false },
        daily: { type: "string" },
        weekly: { type: "string" },
        monthly: { type: "string" },
        "window-days": { type: "string" },
        "grace-hours": { type: "string" },
        workflow: { type: "boolean", default: false },
        "state-machine": { type: "string" },
        timeout: { type: "string" },
      });
      positionals(p, [], "prune");
      const { loadConfig, requireDatabase } = await heavy();
      const cfg = loadConfig(values);
      const prune = await import("./prune.js");
      if (values.workflow) return prune.pruneWorkflowCommand(cfg, cfg.databaseId, values, print);
      return prune.pruneCommand(cfg, requireDatabase(cfg), values, print);
    }

    case "replicate": {
      const { values, positionals: p } = parse(rest, { region: { type: "string" }, "state-machine": { type: "string" }, timeout: { type: "string" } });
      positionals(p, [], "replicate");
      if (!values.region) throw new InvalidInputError("replicate needs --region R (the replica region to bring level)");
      const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
      if (timeoutS !== undefined && !(timeoutS > 0)) throw new InvalidInputError("--timeout must be a positive number of seconds");
      const { loadConfig } = await heavy();
      const cfg = loadConfig(values);
      const arn = values["state-machine"] ?? cfg.replicateStateMachineArn;
      if (!arn) throw new InvalidInputError(`no replicate workflow: pass --state-machine ARN or set replicateStateMachineArn in ${cfg.path} (stack output ReplicateStateMachineArn)`);
      const { replicate } = await import("./regions.js");
      const r = await replicate(cfg, {
        region: values.region,
        stateMachineArn: arn,
        ...(values.database ? { databaseId: values.database } : {}),
        ...(timeoutS ? { timeoutMs: timeoutS * 1000 } : {}),
      });
      print(values.json, r, () => `replicate ${values.region}: ${JSON.stringify(r.output)} (${r.executionId})`);
      return 0;
    }

    case "db": {
      const [sub, ...args] = rest;
      if (sub !== "add") throw new InvalidInputError(`unknown command 'db ${sub ?? ""}': did you mean 'db add'?`);
      const { values, positionals: p } = parse(args, {
        kind: { type: "string", default: "postgres" },
        "wal-segment-size": { type: "string", default: String(16 * 1024 * 1024) },
      });
      const [id] = positionals(p, ["id"], "db add");
      const { assertDatabaseId } = await import("../core/keys.js");
      const { assertSegmentSize } = await import("../core/wal.js");
      assertDatabaseId(id!);
      if (values.kind !== "postgres" && values.kind !== "generic") {
        throw new InvalidInputError(`--kind must be postgres or generic, not '${values.kind}'`);
      }
      const size = Number(values["wal-segment-size"]);
      assertSegmentSize(size);
      const { loadConfig, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const { catalog } = agentClients(cfg);
      const existing = await catalog.getDatabase(id!);
      if (!existing) {
        await catalog.putDatabase({ databaseId: id!, kind: values.kind, walSegmentSize: size, createdAt: new Date().toISOString() });
      }
      print(values.json, existing ?? { databaseId: id }, () => (existing ? `database ${id} is already registered` : `registered database ${id}`));
      return 0;
    }

    case "catalog": {
      const [sub, ...args] = rest;
      if (sub !== "rebuild") throw new InvalidInputError(`unknown command 'catalog ${sub ?? ""}': did you mean 'catalog rebuild'?`);
      const { values, positionals: p } = parse(args, {
        region: { type: "string" },
        table: { type: "string" },
        database: { type: "string", multiple: true },
      });
      positionals(p, [], "catalog rebuild");
      return (await import("./catalog-rebuild.js")).catalogRebuildCommand(values);
    }

    case "watch": {
      const { values, positionals: p } = parse(rest, {
        once: { type: "boolean", default: false },
        "snapshot-now": { type: "boolean", default: false },
        timeout: { type: "string" },
      });
      const [file] = positionals(p, ["file"], "watch");
      const timeoutS = values.timeout === undefined ? 60 : Number(values.timeout);
      if (!(timeoutS > 0)) throw new InvalidInputError("--timeout must be a positive number of seconds");
      const { loadWatchFile, Watcher } = await import("./watch.js");
      const spec = loadWatchFile(resolve(file!));
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig({ ...values, database: values.database ?? spec.databaseId });
      const databaseId = requireDatabase(cfg);
      const log = (line: string): void => void process.stderr.write(`walvault watch: ${line}\n`);
      const watcher = new Watcher(spec, { ...cfg, databaseId }, agentClients(cfg), {
        snapshotNow: values["snapshot-now"],
        timeoutMs: timeoutS * 1000,
        log: values.json ? () => {} : log,
      });
      if (values.once) {
        const r = await watcher.pass();
        print(values.json, r, () =>
          `${r.streams.length} stream(s), ${r.shipped.filter((x) => x.outcome === "stored").length} segment(s) shipped` +
            (r.snapshot ? `, snapshot ${r.snapshot.snapshotId}` : "") +
            [...r.errors, ...(r.snapshotError ? [`snapshot: ${r.snapshotError}`] : [])].map((e) => `\nerror: ${e}`).join(""),
        );
        return r.errors.length > 0 || r.snapshotError !== undefined ? 1 : 0;
      }
      const stop = new AbortController();
      for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
      log(`watching ${spec.dataDir} for database ${databaseId} (every ${spec.pollSeconds} s; Ctrl-C stops after the pass under way)`);
      await watcher.run(stop.signal, values.json ? (r) => process.stdout.write(JSON.stringify(r) + "\n") : undefined);
      return 0;
    }

    case "snapshot": {
      const [sub, ...args] = rest;
      if (sub === "list") {
        const { values, positionals: p } = parse(args, {});
        positionals(p, [], "snapshot list");
        const { loadConfig, requireDatabase, agentClients } = await heavy();
        const cfg = loadConfig(values);
        const snapshots = await agentClients(cfg).catalog.listSnapshots(requireDatabase(cfg));
        const { formatBytes } = await import("./status.js");
        print(values.json, snapshots, () =>
          snapshots.length === 0
            ? "no snapshots"
            : snapshots
                .map((r) => `${r.snapshotId}  ${r.kind}  ${r.startLsn ?? ""}..${r.stopLsn ?? ""}  ${formatBytes(r.totals.logicalBytes)} (${formatBytes(r.totals.newStoredBytes)} new)  finished ${r.finishedAt}`)
                .join("\n"),
        );
        return 0;
      }
      if (sub === "pin" || sub === "unpin") {
        const { values, positionals: p } = parse(args, {});
        const [id] = positionals(p, ["snapshot id"], `snapshot ${sub}`);
        const { loadConfig, requireDatabase, agentClients } = await heavy();
        const cfg = loadConfig(values);
        const databaseId = requireDatabase(cfg);
        await agentClients(cfg).catalog.setSnapshotPinned(databaseId, id!, sub === "pin");
        print(values.json, { databaseId, snapshotId: id, pinned: sub === "pin" }, () => `snapshot ${id} ${sub === "pin" ? "pinned: retention keeps it until it is unpinned" : "unpinned"}`);
        return 0;
      }
      if (sub !== "push") throw new InvalidInputError(`unknown command 'snapshot ${sub ?? ""}': use 'snapshot push', 'snapshot list', 'snapshot pin' or 'snapshot unpin'`);
      const { values, positionals: p } = parse(args, {
        dir: { type: "string" },
        stream: { type: "string", multiple: true },
        host: { type: "string" },
        port: { type: "string" },
        user: { type: "string" },
        "pg-bin": { type: "string" },
        "no-wait": { type: "boolean", default: false },
        timeout: { type: "string" },
      });
      positionals(p, [], "snapshot push");
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const databaseId = requireDatabase(cfg);
      const { snapshotPush } = await import("./snapshot-push.js");
      const { snapshotSource } = await import("./snapshot-source.js");
      const source = snapshotSource(values);
      const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
      if (timeoutS !== undefined && !(timeoutS > 0)) throw new InvalidInputError("--timeout must be a positive number of seconds");
      const r = await snapshotPush(source, { ...cfg, databaseId }, agentClients(cfg), {
        wait: !values["no-wait"],
        ...(timeoutS ? { timeoutMs: timeoutS * 1000 } : {}),
      });
      const { formatBytes } = await import("./status.js");
      print(values.json, r, () =>
        `snapshot ${r.snapshotId} ${r.outcome}: ${r.totals.files} files, ${formatBytes(r.totals.logicalBytes)}, ` +
          `${formatBytes(r.newBytes)} new (${formatBytes(r.uploadedBytes)} uploaded) in ${r.seconds.total.toFixed(1)} s, ${r.mbPerSecond.toFixed(0)} MB/s`,
      );
      return 0;
    }

    case "restore": {
      const { values, positionals: p } = parse(rest, {
        to: { type: "string" },
        latest: { type: "boolean" },
        "target-time": { type: "string" },
        "target-lsn": { type: "string" },
        "target-name": { type: "string" },
        snapshot: { type: "string" },
        timeline: { type: "string" },
        "plan-only": { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        parallel: { type: "string" },
        remote: { type: "boolean", default: false },
        "state-machine": { type: "string" },
        tier: { type: "string" },
        timeout: { type: "string" },
        region: { type: "string" },
      });
      positionals(p, [], "restore");
      if (values.remote) return (await import("./restore-remote.js")).restoreRemoteCommand(values);
      const remoteOnly = (["state-machine", "tier", "timeout"] as const).filter((f) => values[f] !== undefined);
      if (remoteOnly.length > 0) throw new InvalidInputError(`${remoteOnly.map((f) => `--${f}`).join(", ")} only go${remoteOnly.length === 1 ? "es" : ""} with --remote`);
      const { targetFromFlags, planFor, formatPlan, planToJson, restore, formatRestoreResult } = await import("./restore.js");
      const target = targetFromFlags({
        targetTime: values["target-time"],
        targetLsn: values["target-lsn"],
        targetName: values["target-name"],
        snapshot: values.snapshot,
        latest: values.latest,
        timeline: values.timeline,
      });
      const { DEFAULT_RESTORE_PARALLEL } = await import("./restore.js");
      const parallel = values.parallel === undefined ? DEFAULT_RESTORE_PARALLEL : Number(values.parallel);
      if (!Number.isInteger(parallel) || parallel < 1) throw new InvalidInputError("--parallel must be a positive integer");
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const { regionalConfig } = await import("./regions.js");
      const cfg = regionalConfig(loadConfig(values), values.region);
      const databaseId = requireDatabase(cfg);
      const clients = agentClients(cfg);
      if (values["plan-only"]) {
        const planned = await planFor(clients, cfg, databaseId, target);
        print(values.json, planToJson(planned), () => formatPlan(planned));
        return 0;
      }
      if (!values.to) throw new InvalidInputError("restore needs --to DIR (or --plan-only)");
      const r = await restore(clients, cfg, { databaseId, target, toDir: resolve(values.to), force: values.force, parallel });
      print(values.json, { ...r, plan: planToJson(r.plan) }, () => formatRestoreResult(r));
      return 0;
    }

    case "agent": {
      const { values, positionals: p } = parse(rest, {
        pgdata: { type: "string" },
        socket: { type: "string" },
        concurrency: { type: "string", default: "2" },
        timeout: { type: "string", default: "60" },
      });
      positionals(p, [], "agent");
      const concurrency = Number(values.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidInputError(`--concurrency must be a positive integer`);
      if (!(Number(values.timeout) > 0)) throw new InvalidInputError(`--timeout must be a positive number of seconds`);
      if (values.pgdata && !existsSync(resolve(values.pgdata, "pg_wal"))) {
        throw new InvalidInputError(`--pgdata ${values.pgdata} is not a PostgreSQL data directory (no pg_wal)`);
      }
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const databaseId = requireDatabase(cfg);
      const { startResidentAgent } = await import("./resident.js");
      const socketPath = values.socket ?? agentSocketPath(databaseId);
      const agent = await startResidentAgent({ ...cfg, databaseId }, agentClients(cfg), {
        socketPath,
        ...(values.pgdata ? { pgdata: resolve(values.pgdata) } : {}),
        concurrency,
        timeoutMs: Number(values.timeout) * 1000,
        log: (line) => process.stderr.write(`walvault agent: ${line}\n`),
      });
      process.stdout.write(`walvault agent for ${databaseId} listening on ${socketPath}${values.pgdata ? `, pushing ahead from ${values.pgdata}` : ""}\n`);
      await new Promise<void>((r) => {
        process.once("SIGINT", () => r());
        process.once("SIGTERM", () => r());
      });
      await agent.close();
      return 0;
    }

    case "local": {
      const [sub, ...args] = rest;
      const { values, positionals: p } = parse(args, {
        "state-dir": { type: "string" },
        database: { type: "string", multiple: true },
        "replica-region": { type: "string", multiple: true },
      });
      positionals(p, [], `local ${sub}`);
      const stateDir = values["state-dir"] ?? defaultLocalStateDir();
      const { localUp, localDown } = await import("../local/cli.js");
      if (sub === "up") return localUp(stateDir, values.database ?? ["pg-main"], values["replica-region"] ?? []);
      if (sub === "down") return localDown(stateDir);
      throw new InvalidInputError(`unknown command 'local ${sub ?? ""}': use 'local up' or 'local down'`);
    }

    default:
      throw new InvalidInputError(`unknown command '${command}' (see walvault help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`walvault: ${describeError(e)}\n`);
    if (process.env.WALVAULT_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = isWalvaultError(e) ? e.exitCode : 2;
  },
);
