/**
 * `walvault catalog rebuild [--region R] [--table NAME] [--database ID]... [--json]`:
 * the catalog made again from one region's vault bucket alone
 * (store/catalog-rebuild.ts), into the configured table or another one,
 * created when it does not exist.
 *
 * R is the primary region (config `region`, `vaultBucket`, `s3Endpoint`,
 * `dynamodbEndpoint`) or one of `replicas[]`; the table is written in R
 * (a replica's own `dynamodbEndpoint` when it has one).
 * Into an existing table it is also the migration of a catalog written
 * before the database registry: every registration found there is listed
 * (docs/decisions.md, "Databases are listed from a registry").
 * Exit 0 when everything in the bucket is recorded; 1 when objects were
 * skipped or a database refused (each reported); 2 and more for errors.
 */
import type { AgentConfig } from "../core/config.js";
import { ConfigError } from "../core/errors.js";
import { assertDatabaseId } from "../core/keys.js";
import { rebuildCatalog, openCatalogTable, type DatabaseRebuild, type RebuildProgress, type RebuildSummary } from "../store/catalog-rebuild.js";
import { createObjectStore, type Endpoints } from "../store/factory.js";
import { assertLocalStackAlive, loadConfig } from "./config.js";
import { createStatusLine } from "./progress.js";
import { findRegion } from "./regions.js";

export interface CatalogRebuildFlags {
  region?: string | undefined;
  table?: string | undefined;
  database?: string[] | undefined;
  config?: string | undefined;
  json: boolean;
}

export interface RegionVault extends Endpoints {
  vaultBucket: string;
}

/** The vault bucket and endpoints of `region` (default: the primary) from the configuration; clients are made for R itself. */
export function regionVault(cfg: AgentConfig, region?: string): RegionVault {
  const r = findRegion(cfg, region);
  const replica = r.primary ? undefined : cfg.replicas?.find((x) => x.region === r.region);
  return {
    region: r.region,
    vaultBucket: r.vaultBucket,
    s3Endpoint: r.s3Endpoint,
    dynamodbEndpoint: replica?.dynamodbEndpoint ?? cfg.dynamodbEndpoint,
    ...(cfg.credentials ? { credentials: cfg.credentials } : {}),
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function describeDatabase(d: DatabaseRebuild): string {
  if (d.refused !== undefined) return `${d.databaseId}: refused: ${d.refused}`;
  const what = d.kind === "postgres" ? `postgres, ${d.walSegmentSize! / (1 << 20)} MiB segments` : "generic";
  const wal =
    d.kind === "postgres"
      ? [plural(d.segments, "segment"), plural(d.historyFiles, "history file"), ...(d.partials ? [plural(d.partials, "partial")] : []), ...(d.backupLabels ? [plural(d.backupLabels, "backup label")] : [])]
      : [plural(d.segments, "segment")];
  const added = d.added.wal + d.added.snapshots + d.added.chunks;
  const lines = [
    `${d.databaseId} (${what}; registration ${d.registration}): ${[...wal, plural(d.snapshots, "snapshot"), plural(d.chunks, "chunk"), ...(d.packs ? [plural(d.packs, "pack")] : [])].join(", ")}; ` +
      (added === 0 ? "nothing new" : `${plural(added, "record")} added`),
  ];
  for (const s of d.skipped) lines.push(`  skipped ${s.key}: ${s.reason}`);
  return lines.join("\n");
}

/** The summary for people. */
export function formatRebuild(s: RebuildSummary, region: string, table: string, created: boolean): string {
  const lines = [`catalog rebuilt from ${s.bucket} (${region}) into table ${table}${created ? " (created)" : ""}`];
  if (s.databases.length === 0) lines.push("  the bucket holds no database");
  for (const d of s.databases) lines.push(...describeDatabase(d).split("\n").map((l) => `  ${l}`));
  for (const x of s.skipped) lines.push(`  skipped ${x.key}: ${x.reason}`);
  return lines.join("\n");
}

function progressText(p: RebuildProgress, region: string): string {
  return `catalog rebuild ${region}  ${p.databaseId}  ${p.phase}  ${p.listed} listed  ${p.read} read  ${p.recorded} recorded`;
}

export async function catalogRebuildCommand(flags: CatalogRebuildFlags): Promise<number> {
  const ids = (flags.database ?? []).map(assertDatabaseId);
  const cfg = loadConfig({ config: flags.config });
  assertLocalStackAlive(cfg);
  const vault = regionVault(cfg, flags.region);
  const table = flags.table ?? cfg.table;
  if (table.trim() === "") throw new ConfigError("--table needs a table name");
  const { catalog, created } = await openCatalogTable({ ...vault, table });
  const store = createObjectStore({ ...vault, name: vault.region });
  const line = createStatusLine({});
  let latest: RebuildProgress | undefined;
  let summary: RebuildSummary;
  try {
    summary = await rebuildCatalog({ store, bucket: vault.vaultBucket }, catalog, {
      ...(ids.length > 0 ? { databaseIds: ids } : {}),
      onProgress: (p) => {
        latest = p;
        line.update(() => progressText(p, vault.region));
      },
    });
  } finally {
    line.done(latest ? () => progressText(latest!, vault.region) : undefined);
  }
  process.stdout.write(
    flags.json ? `${JSON.stringify({ region: vault.region, table, tableCreated: created, ...summary }, null, 2)}\n` : `${formatRebuild(summary, vault.region, table, created)}\n`,
  );
  const refused = summary.databases.filter((d) => d.refused !== undefined);
  for (const d of refused) process.stderr.write(`walvault: ${d.refused}\n`);
  const skipped = summary.skipped.length + summary.databases.reduce((n, d) => n + d.skipped.length, 0);
  if (skipped > 0) process.stderr.write(`walvault: catalog rebuild incomplete: ${plural(skipped, "object")} skipped (listed ${flags.json ? "in the output" : "above"})\n`);
  return refused.length > 0 || skipped > 0 ? 1 : 0;
}
