/**
 * Scale benchmark (issue 11, "Done means"): a database of N GB logical and
 * M WAL catalog records on the local stack with AWS's limits enforced, every
 * workflow run over it, and per phase what it took — wall time, S3 and
 * DynamoDB requests by operation (local/request-meter.ts), per Lambda step
 * the longest invocation and the most memory against its configured timeout
 * and memory (PASS = under half of both), the largest state payload per
 * workflow — and what a snapshot and 1M WAL segments cost at us-east-1 list
 * prices.
 *
 * What it fabricates (nothing of it is held in memory or on disk):
 *   - a PostgreSQL-kind database whose "server" is a stand-in pg_basebackup
 *     (this script with --fake-pg-basebackup, and a psql that answers
 *     server_version_num / wal_segment_size): a tar stream of backup_label,
 *     global/pg_control, base/16384/16385[.N] relation files of 1 GiB and
 *     backup_manifest. Relation files are 128 KiB blocks, each an 8-byte
 *     block counter and a 4-byte generation followed by zeros: every block a
 *     unique SHA-256, zstd-1 shrinks it ~1000x. The first snapshot is
 *     generation 1; the second changes every 20th block (5%) to generation 2.
 *     Both are pushed with snapshotPush({ packs: true }) in a child process
 *     (as on a database host: its peak RSS is the agent's own) and ingested
 *     by the real snapshot-ingest workflow.
 *   - WAL: the first SAMPLE_SEGMENTS segments are real files (a valid long
 *     page header, then zeros) pushed by the agent's walPush through the real
 *     ingest workflow (the measured per-segment cost of WAL, scaled to 1M);
 *     the snapshots start in them, so verification and the restore plan read
 *     real objects. The remaining records (to --wal in all) are written
 *     straight into the catalog with BatchWriteItem, valid WalRecords whose
 *     objects do not exist in the vault (nothing in this bench reads them:
 *     the restore plan reads the catalog only; verification reads the
 *     snapshot's own WAL, which is real). They are marked replicated to every
 *     replica region, as ingest would have left them.
 *
 * Phases: WAL sample ingest; snapshot 1 and 2 push + ingest; replication of
 * the snapshots (replicate workflow, per replica region) before the WAL
 * records are written; the WAL records; replication again (a catch-up over
 * a catalog of M WAL records); the restore workflow's plan to `latest`
 * (every WAL record after snapshot 2); verify --level 2 of snapshot 2 (the
 * agent's verifySnapshot); retention (plan, execute, sweep) with a policy
 * that prunes snapshot 1; catalog rebuild of the primary vault into a fresh
 * table. A phase that fails is reported FAIL with its error and the bench
 * goes on.
 *
 * Usage: npm run bench:scale [-- --logical-gb 100 --wal 1000000 --regions 2
 *        --out bench/results/scale.json --skip verify,rebuild] [-- --quick] (= --logical-gb 1 --wal 20000)
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BatchWriteCommand, DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { agentClients } from "../agent/clients.js";
import { snapshotPush, type PushConfig, type SnapshotPushResult } from "../agent/snapshot-push.js";
import { verifySnapshot } from "../agent/verify.js";
import { walPush } from "../agent/wal-push.js";
import { lambdaCost, PRICES } from "./prices.js";
import { walDirectEnabled } from "../agent/config.js";
import { headSortKey } from "../core/catalog-records.js";
import { describeError } from "../core/errors.js";
import { vaultWalKey } from "../core/keys.js";
import { walRecordSchema, type WalRecord } from "../core/schemas.js";
import { DEFAULT_WAL_SEGMENT_SIZE, formatLsn, parseWalFileName, segmentName, segmentStartLsn } from "../core/wal.js";
import { WORKFLOW_DEFINITIONS, type StepDefinition } from "../core/workflows.js";
import type { RequestCounts } from "../local/request-meter.js";
import { LOCAL_REGION, startLocalStack, type ExecutionStats, type LocalStack, type StepUsage } from "../local/stack.js";
import { rebuildCatalog, openCatalogTable } from "../store/catalog-rebuild.js";
import { BATCH_WRITE_MAX_ITEMS, databasePk, walSk } from "../store/catalog-layout.js";
import type { DynamoCatalog } from "../store/dynamo-catalog.js";
import { createCatalog, createObjectStore } from "../store/factory.js";
import { launcherFlags } from "./launcher-flags.js";
import { benchArgs } from "./args.js";

const SELF = fileURLToPath(import.meta.url);
const STAND_IN = Buffer.from("bench:scale stand-in for a WAL segment nothing reads\n");
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const BLOCK = 128 * KiB;
const BLOCKS_PER_FILE = GiB / BLOCK;
const SEGMENT = DEFAULT_WAL_SEGMENT_SIZE;
const DB_ID = "scale-db";
const SYSTEM_ID = 7000000000000000001n;
/** WAL segments pushed through the real ingest workflow (segno 1..SAMPLE_SEGMENTS). */
const SAMPLE_SEGMENTS = 16;
/** Start segments of the two snapshots (within the sample: their WAL is real). */
const SNAPSHOT_SEGNO = [5, 9] as const;
/**
 * WAL segments after snapshot 2 the restore workflow plans (its target LSN):
 * these have vault objects (Thaw HEADs each one the plan names), the records
 * past them do not. The issue's "restore plan of 5,000 segments".
 */
const PLAN_SEGMENTS = 5_000;
/** Every CHANGE_EVERY-th block differs in the second snapshot (5%). */
const CHANGE_EVERY = 20;

// ---------------------------------------------------------------------------

/**
 * The log level infra/ deploys each Express workflow with: ERROR writes only
 * failed executions and states (none in a passing phase), ALL about 1 KiB per
 * state entered. Standard workflows' logs are not per-execution costs here.
 */
const EXPRESS_LOG_LEVEL: Record<string, "ERROR" | "ALL"> = { ingest: "ERROR", "wal-record": "ERROR", "pack-ingest": "ERROR" };
const LOG_BYTES_PER_STATE = 1024;

const S3_PUT_TIER = new Set(["PUT", "COPY", "LIST", "DELETE_MULTI", "RESTORE", "MULTIPART", "OTHER"]);
const S3_GET_TIER = new Set(["GET", "GET_RANGE", "HEAD"]);

// ---------------------------------------------------------------------------
// The stand-in pg_basebackup: a tar stream to stdout, generated block by block.

interface FakeBackupSpec {
  blocks: number;
  generation: number;
  startSegno: number;
}

function tarHeader(path: string, size: number, type: "0" | "5", mode: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(path, 0, 100, "utf8");
  h.write(mode.toString(8).padStart(7, "0") + "\0", 100, "ascii");
  h.write("0000000\0", 108, "ascii");
  h.write("0000000\0", 116, "ascii");
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, "ascii");
  h.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, "0") + "\0", 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(type, 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return h;
}

async function fakePgBasebackup(spec: FakeBackupSpec): Promise<void> {
  const out = process.stdout;
  const write = async (b: Buffer): Promise<void> => {
    if (!out.write(b)) await once(out, "drain");
  };
  const file = async (path: string, body: Buffer): Promise<void> => {
    await write(tarHeader(path, body.length, "0", 0o600));
    await write(body);
    if (body.length % 512) await write(Buffer.alloc(512 - (body.length % 512)));
  };
  const dir = (path: string): Promise<void> => write(tarHeader(path, 0, "5", 0o700));
  const start = segmentStartLsn(BigInt(spec.startSegno)) + 0x28n;
  const stop = start + 0x100n;
  const startTime = new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  await file(
    "backup_label",
    Buffer.from(
      `START WAL LOCATION: ${formatLsn(start)} (file ${segmentName(1, BigInt(spec.startSegno))})\nCHECKPOINT LOCATION: ${formatLsn(start + 0x38n)}\n` +
        `BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: ${startTime}\nLABEL: bench-scale\nSTART TIMELINE: 1\n`,
    ),
  );
  await file("PG_VERSION", Buffer.from("15\n"));
  await dir("global/");
  const control = Buffer.alloc(8192);
  control.writeBigUInt64LE(SYSTEM_ID, 0);
  await file("global/pg_control", control);
  await dir("base/");
  await dir("base/16384/");
  for (let f = 0; f * BLOCKS_PER_FILE < spec.blocks; f++) {
    const n = Math.min(BLOCKS_PER_FILE, spec.blocks - f * BLOCKS_PER_FILE);
    await write(tarHeader(`base/16384/16385${f === 0 ? "" : `.${f}`}`, n * BLOCK, "0", 0o600));
    for (let i = 0; i < n; i++) {
      const index = f * BLOCKS_PER_FILE + i;
      const block = Buffer.alloc(BLOCK);
      block.writeBigUInt64LE(BigInt(index), 0);
      block.writeUInt32LE(index % CHANGE_EVERY === 7 ? spec.generation : 1, 8);
      await write(block);
    }
  }
  const range = `{ "Timeline": 1, "Start-LSN": "${formatLsn(start)}", "End-LSN": "${formatLsn(stop)}" }`;
  await file("backup_manifest", Buffer.from(`{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [],\n"WAL-Ranges": [\n${range}\n],\n"Manifest-Checksum": "00"}\n`));
  await write(Buffer.alloc(1024));
}

/** A directory with the stand-in pg_basebackup and psql. */
function fakePgBin(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "pg_basebackup"), `#!/bin/sh\nexec '${process.execPath}' '${SELF}' --fake-pg-basebackup\n`);
  writeFileSync(join(dir, "psql"), `#!/bin/sh\nprintf '150004\\n16MB\\n'\n`);
  for (const b of ["pg_basebackup", "psql"]) chmodSync(join(dir, b), 0o755);
  return dir;
}

/** A WAL segment the agent and ingest accept: a long page header for its name, then zeros. */
function sampleSegment(segno: number): Buffer {
  const buf = Buffer.alloc(SEGMENT);
  buf.writeUInt16LE(0xd110, 0); // xlp_magic (PostgreSQL 15)
  buf.writeUInt16LE(0x0002, 2); // XLP_LONG_HEADER
  buf.writeUInt32LE(1, 4);
  buf.writeBigUInt64LE(segmentStartLsn(BigInt(segno)), 8);
  buf.writeBigUInt64LE(SYSTEM_ID, 24);
  buf.writeUInt32LE(SEGMENT, 32);
  buf.writeUInt32LE(8192, 36);
  buf.writeUInt32LE(segno, 64); // unique content per segment
  return buf;
}

// ---------------------------------------------------------------------------
// Phases

interface StepRow {
  workflow: string;
  step: string;
  invocations: number;
  maxMs: number;
  totalMs: number;
  timeoutMs: number;
  maxBytes: number;
  memoryBytes: number;
  pass: boolean;
}

interface PhaseResult {
  name: string;
  ok: boolean;
  error?: string;
  seconds: number;
  detail?: Record<string, unknown>;
  requests: RequestCounts;
  /** Steps invoked in this phase, with this phase's maxima. */
  steps: StepRow[];
  /** Per workflow run in this phase: executions, state transitions, largest state payload. */
  workflows: Record<string, { executions: number; transitions: number; billedMs: number; largestStateBytes?: number; largestStateWhere?: string; mostHistoryEvents?: number }>;
}

const STEPS: Array<{ workflow: string; name: string; def: StepDefinition }> = Object.entries(WORKFLOW_DEFINITIONS).flatMap(([workflow, w]) =>
  Object.entries(w.steps as Record<string, StepDefinition>).map(([name, def]) => ({ workflow, name, def })),
);

function stepRows(usage: ReadonlyMap<string, StepUsage>): StepRow[] {
  const rows: StepRow[] = [];
  for (const s of STEPS) {
    const u = usage.get(s.def.placeholder);
    if (!u || u.invocations === 0) continue;
    rows.push({
      workflow: s.workflow,
      step: s.name,
      invocations: u.invocations,
      maxMs: Math.round(u.maxMs),
      totalMs: Math.round(u.totalMs),
      timeoutMs: u.timeoutMs,
      maxBytes: u.maxBytes,
      memoryBytes: u.memoryBytes,
      pass: u.maxMs <= u.timeoutMs / 2 && u.maxBytes <= u.memoryBytes / 2,
    });
  }
  return rows;
}

function allStats(stack: LocalStack): Record<string, ExecutionStats> {
  return {
    ingest: stack.workflowStats.ingest,
    "wal-record": stack.walRecordStats,
    "snapshot-ingest": stack.workflowStats["snapshot-ingest"],
    "pack-ingest": stack.workflowStats["pack-ingest"],
    restore: stack.restoreStats,
    replicate: stack.replicateStats,
    verify: stack.verifyStats,
    retention: stack.retentionStats,
  };
}

const copyStats = (s: Record<string, ExecutionStats>): Record<string, ExecutionStats> => structuredClone(s);

async function phase(stack: LocalStack, results: PhaseResult[], name: string, fn: () => Promise<Record<string, unknown> | undefined>): Promise<PhaseResult> {
  await stack.idle();
  stack.resetRequests();
  stack.resetStepUsage();
  const statsBefore = copyStats(allStats(stack));
  // Largest payloads are maxima over the run: reset them so this phase's are its own.
  for (const s of Object.values(allStats(stack))) delete s.largestState;
  process.stdout.write(`\n== ${name} ...\n`);
  const t0 = performance.now();
  let ok = true;
  let error: string | undefined;
  let detail: Record<string, unknown> | undefined;
  try {
    detail = await fn();
    await stack.idle();
  } catch (e) {
    ok = false;
    error = describeError(e);
  }
  const seconds = (performance.now() - t0) / 1000;
  const workflows: PhaseResult["workflows"] = {};
  for (const [w, s] of Object.entries(allStats(stack))) {
    const b = statsBefore[w]!;
    const executions = s.started - b.started;
    if (executions === 0) continue;
    workflows[w] = {
      executions,
      transitions: (s.transitions ?? 0) - (b.transitions ?? 0),
      billedMs: (s.billedMs ?? 0) - (b.billedMs ?? 0),
      ...(s.largestState ? { largestStateBytes: s.largestState.bytes, largestStateWhere: s.largestState.where } : {}),
      ...(s.mostHistoryEvents !== undefined ? { mostHistoryEvents: s.mostHistoryEvents } : {}),
    };
    if (s.failed > b.failed && ok) {
      ok = false;
      error = `${s.failed - b.failed} ${w} execution(s) failed (see executions.log)`;
    }
  }
  const steps = stepRows(stack.stepUsage);
  if (ok && steps.some((r) => !r.pass)) error = "a step went over half its limit";
  const r: PhaseResult = { name, ok, ...(error ? { error } : {}), seconds, ...(detail ? { detail } : {}), requests: stack.requests(), steps, workflows };
  results.push(r);
  printPhase(r);
  return r;
}

// ---------------------------------------------------------------------------
// Output

const fmt = (n: number, d = 0): string => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const mib = (b: number): string => `${fmt(b / MiB)} MiB`;

function s3Total(r: RequestCounts): { put: number; get: number; del: number; all: number } {
  let put = 0;
  let get = 0;
  let del = 0;
  for (const c of Object.values(r.s3)) {
    for (const [op, n] of Object.entries(c.byOperation)) {
      if (S3_PUT_TIER.has(op)) put += n;
      else if (S3_GET_TIER.has(op)) get += n;
      else del += n;
    }
  }
  return { put, get, del, all: put + get + del };
}

interface Cost {
  s3: number;
  dynamodb: number;
  stepFunctions: number;
  lambda: number;
  eventBridge: number;
  logs: number;
  total: number;
}

/** Cost of a phase's counts (Lambda: the invocations' measured durations x the step's memory). */
function costOf(p: PhaseResult): Cost {
  const t = s3Total(p.requests);
  const s3 = (t.put / 1000) * PRICES.s3PutTierPer1k + (t.get / 1000) * PRICES.s3GetTierPer1k;
  const dynamodb = (p.requests.dynamodb.writeUnits / 1e6) * PRICES.dynamoWriteUnitPerM + (p.requests.dynamodb.readUnits / 1e6) * PRICES.dynamoReadUnitPerM;
  let stepFunctions = 0;
  let eventBridge = 0;
  let logs = 0;
  for (const [w, s] of Object.entries(p.workflows)) {
    const def = (WORKFLOW_DEFINITIONS as Record<string, { type: string; trigger: { kind: string } }>)[w];
    const express = def?.type === "EXPRESS";
    // Upload-triggered workflows: one EventBridge event per execution (direct WAL's wal-record is started by the agent: none).
    if (def?.trigger.kind === "upload") eventBridge += (s.executions / 1e6) * PRICES.eventBridgePerM;
    if (express && EXPRESS_LOG_LEVEL[w] === "ALL") logs += ((s.transitions * LOG_BYTES_PER_STATE) / GiB) * PRICES.logsIngestPerGb;
    stepFunctions += express
      ? (s.executions / 1e6) * PRICES.sfnExpressRequestPerM + (s.billedMs / 1000) * (64 / 1024) * PRICES.sfnExpressGbSecond
      : (s.transitions / 1000) * PRICES.sfnStandardTransitionPer1k;
  }
  let lambda = 0;
  for (const r of p.steps) lambda += lambdaCost(r.invocations, r.totalMs, r.memoryBytes);
  return { s3, dynamodb, stepFunctions, lambda, eventBridge, logs, total: s3 + dynamodb + stepFunctions + lambda + eventBridge + logs };
}

function printPhase(p: PhaseResult): void {
  const verdict = p.ok && !p.error ? "PASS" : p.ok ? "FAIL (limits)" : "FAIL";
  console.log(`-- ${p.name}: ${verdict} in ${fmt(p.seconds, 1)} s${p.error ? `: ${p.error}` : ""}`);
  if (p.detail) console.log(`   ${JSON.stringify(p.detail)}`);
  for (const [region, c] of Object.entries(p.requests.s3)) {
    if (c.requests === 0) continue;
    const ops = Object.entries(c.byOperation).map(([op, n]) => `${op} ${fmt(n)}`).join(", ");
    console.log(`   S3 ${region}: ${fmt(c.requests)} requests (${ops}); in ${mib(c.bytesIn)}, out ${mib(c.bytesOut)}`);
  }
  const d = p.requests.dynamodb;
  if (d.requests > 0) {
    const ops = Object.entries(d.byOperation).map(([op, n]) => `${op} ${fmt(n)}`).join(", ");
    console.log(`   DynamoDB: ${fmt(d.requests)} requests (${ops}); items written ${fmt(d.itemsWritten)}, read ${fmt(d.itemsRead)}; ~${fmt(d.writeUnits)} WCU, ~${fmt(d.readUnits, 1)} RCU`);
  }
  for (const [w, s] of Object.entries(p.workflows)) {
    const largest = s.largestStateBytes !== undefined ? `, largest state ${fmt(s.largestStateBytes)} B of 262,144 (${s.largestStateWhere})` : "";
    console.log(`   workflow ${w}: ${s.executions} execution(s), ${fmt(s.transitions)} transitions${largest}${s.mostHistoryEvents ? `, history ${fmt(s.mostHistoryEvents)} of 25,000 events` : ""}`);
  }
  for (const r of p.steps) {
    console.log(
      `   ${r.pass ? "PASS" : "FAIL"} ${`${r.workflow}/${r.step}`.padEnd(36)} x${String(r.invocations).padEnd(5)} ${fmt(r.maxMs).padStart(8)} ms of ${fmt(r.timeoutMs)}  ${mib(r.maxBytes).padStart(10)} of ${mib(r.memoryBytes)}`,
    );
  }
  const c = costOf(p);
  console.log(`   cost: $${c.total.toFixed(4)} (S3 $${c.s3.toFixed(4)}, DynamoDB $${c.dynamodb.toFixed(4)}, Step Functions $${c.stepFunctions.toFixed(4)}, Lambda $${c.lambda.toFixed(4)}, EventBridge $${c.eventBridge.toFixed(4)}, Logs $${c.logs.toFixed(4)})`);
}

// ---------------------------------------------------------------------------
// Main

async function writeWalRecords(stack: LocalStack, from: number, count: number, withObjects: number, replicaRegions: string[]): Promise<Record<string, unknown>> {
  const store = createObjectStore({ ...stack.config, name: LOCAL_REGION });
  const catalog = createCatalog({ ...stack.config, dynamodbEndpoint: stack.config.dynamodbEndpoint, table: stack.config.table });
  const doc = DynamoDBDocumentClient.from((catalog as DynamoCatalog).client, { marshallOptions: { removeUndefinedValues: true } });
  const base = Date.now();
  const record = (i: number): WalRecord => {
    const segno = BigInt(from + i);
    const name = segmentName(1, segno);
    const at = new Date(base + i).toISOString();
    return walRecordSchema.parse({
      databaseId: DB_ID,
      name,
      kind: "segment",
      timeline: 1,
      startLsn: formatLsn(segmentStartLsn(segno)),
      size: SEGMENT,
      storedSize: i < withObjects ? STAND_IN.length : 64 * KiB,
      sha256: Buffer.from(name.padEnd(32, "0").slice(0, 32)).toString("hex"),
      codec: "zstd",
      status: "stored",
      vaultKey: vaultWalKey(DB_ID, parseWalFileName(name)),
      archivedAt: at,
      replicas: Object.fromEntries(replicaRegions.map((r) => [r, { status: "replicated", at }])),
    });
  };
  const BATCHES_IN_FLIGHT = 8;
  // Stand-ins for the objects the restore plan names (Thaw HEADs them; nothing reads them): fabrication, not metered.
  const objects = Math.min(count, withObjects);
  let put = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (put < objects) await store.put(stack.config.vaultBucket, record(put++).vaultKey, STAND_IN, {});
    }),
  );
  stack.resetRequests();
  const step = Math.max(BATCH_WRITE_MAX_ITEMS, Math.ceil(count / 10));
  const t0 = performance.now();
  let next = 0;
  let retries = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const start = next;
      if (start >= count) return;
      const end = Math.min(count, start + BATCH_WRITE_MAX_ITEMS);
      next = end;
      const records = Array.from({ length: end - start }, (_, k) => record(start + k));
      let items = records.map((r) => ({ PutRequest: { Item: { ...r, pk: databasePk(DB_ID), sk: walSk(1, r.name) } } }));
      while (items.length > 0) {
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [stack.config.table]: items } }));
        items = (out.UnprocessedItems?.[stack.config.table] ?? []) as typeof items;
        if (items.length > 0) retries++;
      }
      if (Math.floor(end / step) > Math.floor(start / step)) process.stdout.write(`   ${fmt(end)} records written, ${fmt((performance.now() - t0) / 1000, 1)} s\n`);
    }
  };
  await Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, worker));
  const last = record(count - 1);
  await catalog.advanceHead(DB_ID, last.name, headSortKey(last)!, last.archivedAt);
  return { records: count, firstSegment: record(0).name, lastSegment: last.name, vaultObjects: Math.min(count, withObjects), batchRetries: retries };
}

/** What the push child does: one snapshot push of the fabricated cluster against the running stack. */
interface PushSpec {
  binDir: string;
  cfg: PushConfig;
  fake: FakeBackupSpec;
}

/** The push child: pushes, then writes the result as one JSON line on stdout. */
async function pushChild(spec: PushSpec): Promise<void> {
  const r = await snapshotPush(
    { kind: "postgres", pgbasebackup: { binDir: spec.binDir, host: "127.0.0.1", port: 5432, user: "postgres", env: { SCALE_FAKE_BACKUP: JSON.stringify(spec.fake) } } },
    spec.cfg,
    agentClients(spec.cfg),
    { packs: true, progress: false, timeoutMs: 6 * 3600_000 },
  );
  process.stdout.write(`${JSON.stringify(r, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`);
}

/** Runs pushChild in a child process (this file, --push-child) and resolves its result; its stderr passes through. */
async function pushInChild(spec: PushSpec): Promise<SnapshotPushResult> {
  // The V8 flags bin/walvault starts `snapshot push` with (its heap sizing counts in the peak RSS).
  const child = spawn(process.execPath, [...launcherFlags("snapshot"), fileURLToPath(import.meta.url), "--push-child"], {
    env: { ...process.env, SCALE_PUSH: JSON.stringify(spec) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`the snapshot push (child process) exited with ${code}`);
  return JSON.parse(out.trim().split("\n").at(-1)!) as SnapshotPushResult;
}

/** Phases `--skip` can leave out (a run measuring the others sooner; the summary lists only what ran). */
const SKIPPABLE = ["verify", "rebuild"];

const USAGE = `usage: npm run bench:scale [-- --logical-gb 100 --wal 1000000 --regions 2 --out bench/results/scale.json --skip verify,rebuild --keep]
       npm run bench:scale -- --quick   (= --logical-gb 1 --wal 20000, --out bench/results/scale-quick.json)
A database fabricated on the local stack with AWS's limits enforced: each workflow step's duration, memory and state against its limits, requests and cost (bench/README.md).`;

async function main(): Promise<void> {
  const parsed = benchArgs("scale", {
      options: {
        help: { type: "boolean", short: "h", default: false },
        "fake-pg-basebackup": { type: "boolean", default: false },
        "push-child": { type: "boolean", default: false },
        "logical-gb": { type: "string" },
        wal: { type: "string" },
        regions: { type: "string", default: "2" },
        quick: { type: "boolean", default: false },
        out: { type: "string" },
        keep: { type: "boolean", default: false },
        skip: { type: "string", default: "" },
      },
      allowPositionals: true,
    });
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values["fake-pg-basebackup"]) {
    await fakePgBasebackup(JSON.parse(process.env.SCALE_FAKE_BACKUP ?? "{}") as FakeBackupSpec);
    return;
  }
  if (values["push-child"]) {
    await pushChild(JSON.parse(process.env.SCALE_PUSH ?? "{}") as PushSpec);
    return;
  }
  const logicalGb = Number(values["logical-gb"] ?? (values.quick ? 1 : 100));
  const walCount = Number(values.wal ?? (values.quick ? 20_000 : 1_000_000));
  const regionCount = Number(values.regions);
  const out = values.out ?? (values.quick ? "bench/results/scale-quick.json" : "bench/results/scale.json");
  if (!(logicalGb > 0) || !(walCount > SAMPLE_SEGMENTS) || !(regionCount >= 0)) throw new Error("--logical-gb > 0, --wal > 16 and --regions >= 0 please");
  const blocks = Math.round((logicalGb * GiB) / BLOCK);
  // The restore target: PLAN_SEGMENTS after snapshot 2, within the records written.
  const planTo = Math.min(walCount, SNAPSHOT_SEGNO[1] + PLAN_SEGMENTS);
  const replicaRegions = Array.from({ length: regionCount }, (_, i) => `local-${i + 2}`);
  const skip = new Set(values.skip.split(",").filter((x) => x !== ""));
  const unknown = [...skip].filter((x) => !SKIPPABLE.includes(x));
  if (unknown.length > 0) throw new Error(`--skip takes ${SKIPPABLE.join(", ")}, not ${unknown.join(", ")}`);

  const work = mkdtempSync(join(tmpdir(), "walvault-scale-"));
  const binDir = fakePgBin(join(work, "bin"));
  console.log(`bench:scale: ${logicalGb} GB logical (${fmt(blocks)} blocks of 128 KiB), ${fmt(walCount)} WAL records, ${regionCount} replica region(s); state in ${work}`);
  console.log(`machine: ${cpus().length} cores, ${fmt(totalmem() / GiB, 1)} GiB`);
  const stack = await startLocalStack({
    stateDir: join(work, "stack"),
    databases: [{ id: DB_ID, kind: "postgres" }],
    replicaRegions,
    meterRequests: true,
    lambdaRuntime: "worker",
    // DynamoDB Local in memory: its on-disk SQLite would make the WAL records' writes the whole run.
    persistent: false,
  });
  const cfg = { ...stack.config, databaseId: DB_ID };
  const clients = agentClients(stack.config);
  const results: PhaseResult[] = [];
  const pushes: SnapshotPushResult[] = [];
  const started = performance.now();
  try {
    for (const [i, segno] of SNAPSHOT_SEGNO.entries()) {
      await phase(stack, results, `snapshot ${i + 1} push + ingest (${i === 0 ? "full" : `${100 / CHANGE_EVERY}% changed`})`, async () => {
        // In a process of its own, as on a database host: its peak RSS is the agent's, not the stack's.
        const r = await pushInChild({ binDir, cfg, fake: { blocks, generation: i + 1, startSegno: segno } });
        pushes.push(r);
        return {
          snapshotId: r.snapshotId,
          logicalBytes: r.totals.logicalBytes,
          newChunks: r.totals.newChunks,
          uploadedBytes: r.uploadedBytes,
          packs: r.packs?.uploaded ?? 0,
          pushSeconds: r.seconds,
          peakRssMiB: Math.round(r.peakRssBytes / MiB),
        };
      });
    }
    const direct = walDirectEnabled(cfg);
    await phase(stack, results, `WAL ingest sample (${SAMPLE_SEGMENTS} segments ${direct ? "direct to the vault, wal-record" : "through the ingest workflow"})`, async () => {
      const dir = join(work, "pg_wal");
      mkdirSync(dir, { recursive: true });
      for (let segno = 1; segno <= SAMPLE_SEGMENTS; segno++) {
        const path = join(dir, segmentName(1, BigInt(segno)));
        writeFileSync(path, sampleSegment(segno));
        await walPush(path, cfg, clients, { wait: "stored", timeoutMs: 120_000, cwd: work, direct });
        rmSync(path);
      }
      return { segments: SAMPLE_SEGMENTS, direct };
    });
    const replicate = async (): Promise<Record<string, unknown>> => {
      const outputs: Record<string, unknown> = {};
      for (const region of replicaRegions) outputs[region] = await stack.startReplicate({ region, databaseId: DB_ID });
      return { outputs: JSON.stringify(outputs).slice(0, 400) };
    };
    if (replicaRegions.length > 0) await phase(stack, results, `replication of the snapshots to ${replicaRegions.join(", ")}`, replicate);
    await phase(stack, results, `${fmt(walCount - SAMPLE_SEGMENTS)} WAL catalog records (BatchWriteItem)`, () =>
      writeWalRecords(stack, SAMPLE_SEGMENTS + 1, walCount - SAMPLE_SEGMENTS, planTo + 1 - SAMPLE_SEGMENTS, replicaRegions),
    );
    if (replicaRegions.length > 0) await phase(stack, results, `replication catch-up over ${fmt(walCount)} WAL records`, replicate);
    await phase(stack, results, `restore workflow plan of ${fmt(planTo - SNAPSHOT_SEGNO[1])} segments (catalog of ${fmt(walCount)})`, async () => {
      const plan = await stack.startRestore({ databaseId: DB_ID, target: { kind: "lsn", lsn: formatLsn(segmentStartLsn(BigInt(planTo)) + 0x100n) } });
      return { planBytes: JSON.stringify(plan).length, plan: JSON.stringify(plan).slice(0, 300) };
    });
    if (!skip.has("verify")) await phase(stack, results, "verify --level 2 of snapshot 2", async () => {
      const snap = pushes.at(-1);
      if (!snap) throw new Error("snapshot 2 was not pushed");
      const v = await verifySnapshot(clients, stack.config, { databaseId: DB_ID, snapshotId: snap.snapshotId, level: 2, workDir: join(work, "verify") });
      if (v.outcome !== "passed") throw new Error(`verification ${v.outcome} at level ${v.failedLevel ?? "?"}: ${v.errorName ?? ""} ${v.failure ?? ""}`);
      return { outcome: v.outcome, checks: v.checks.map((c) => `${c.name} ${fmt(c.seconds ?? 0, 1)}s`).join("; ") };
    });
    await phase(stack, results, "retention (plan, execute, sweep; policy keeps 1 snapshot)", async () => {
      const r = await stack.startRetention({ databaseId: DB_ID, policy: { daily: 1, weekly: 0, monthly: 0, recoveryWindowDays: 0, minSnapshots: 1 } });
      return { output: JSON.stringify(r).slice(0, 400) };
    });
    if (!skip.has("rebuild")) await phase(stack, results, "catalog rebuild of the primary vault into a fresh table", async () => {
      const { catalog } = await openCatalogTable({ ...stack.config, table: "walvault-rebuild" });
      const store = createObjectStore({ ...stack.config, name: LOCAL_REGION });
      const s = await rebuildCatalog({ store, bucket: stack.config.vaultBucket }, catalog, { databaseIds: [DB_ID] });
      return { summary: JSON.stringify(s).slice(0, 400) };
    });
  } finally {
    await stack.stop();
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  }
  const totalSeconds = (performance.now() - started) / 1000;
  summarize(results, { logicalGb, walCount, regionCount, totalSeconds, out });
  // Sockets the SDK clients keep alive must not hold the process.
  process.exit(0);
}

function summarize(results: PhaseResult[], run: { logicalGb: number; walCount: number; regionCount: number; totalSeconds: number; out: string }): void {
  console.log(`\n== Summary (${run.logicalGb} GB logical, ${fmt(run.walCount)} WAL records, ${run.regionCount} replica regions; ${fmt(run.totalSeconds)} s)`);
  console.log("phase                                                        result   seconds   S3 req   S3/GB   DDB req  DDB/GB   cost $");
  for (const p of results) {
    const s3 = s3Total(p.requests).all;
    const ddb = p.requests.dynamodb.requests;
    console.log(
      `${p.name.slice(0, 60).padEnd(60)} ${(p.ok && !p.error ? "PASS" : "FAIL").padEnd(6)} ${fmt(p.seconds, 1).padStart(9)} ${fmt(s3).padStart(8)} ${fmt(s3 / run.logicalGb, 1).padStart(7)} ${fmt(ddb).padStart(9)} ${fmt(ddb / run.logicalGb, 1).padStart(7)} ${costOf(p).total.toFixed(4).padStart(8)}`,
    );
  }
  const byName = (prefix: string): PhaseResult[] => results.filter((p) => p.name.startsWith(prefix));
  const sum = (ps: PhaseResult[]): number => ps.reduce((n, p) => n + costOf(p).total, 0);
  const snap1 = byName("snapshot 1");
  const snap2 = byName("snapshot 2");
  const sample = byName("WAL ingest sample");
  const walRecords = byName(`${fmt(run.walCount - SAMPLE_SEGMENTS)} WAL catalog`);
  const perSegment = sum(sample) / SAMPLE_SEGMENTS;
  const walParts = sample.map(costOf).reduce(
    (a, c) => ({
      s3: a.s3 + c.s3,
      dynamodb: a.dynamodb + c.dynamodb,
      stepFunctions: a.stepFunctions + c.stepFunctions,
      lambda: a.lambda + c.lambda,
      eventBridge: a.eventBridge + c.eventBridge,
      logs: a.logs + c.logs,
    }),
    { s3: 0, dynamodb: 0, stepFunctions: 0, lambda: 0, eventBridge: 0, logs: 0 },
  );
  const per1M = (x: number): string => `$${((x / SAMPLE_SEGMENTS) * 1e6).toFixed(2)}`;
  const costs = {
    firstSnapshot: sum(snap1),
    incrementalSnapshot: sum(snap2),
    replicationOfBothSnapshots: sum(byName("replication of the snapshots")),
    per1MWalSegments: perSegment * 1e6,
    walCatalogWritesPer1M: (sum(walRecords) / Math.max(1, run.walCount - SAMPLE_SEGMENTS)) * 1e6,
  };
  console.log(`\nCost at us-east-1 list prices (requests, Step Functions, Lambda; no storage or transfer):`);
  console.log(`  first snapshot of ${run.logicalGb} GB (push + ingest):   $${costs.firstSnapshot.toFixed(4)}`);
  console.log(`  incremental snapshot (5% changed):        $${costs.incrementalSnapshot.toFixed(4)}`);
  console.log(`  replication of both to ${run.regionCount} region(s):     $${costs.replicationOfBothSnapshots.toFixed(4)}`);
  const walPath = sample[0]?.detail?.direct === true ? "direct to the vault + wal-record" : "through incoming/ + ingest";
  console.log(`  per 1M WAL segments (measured on ${SAMPLE_SEGMENTS} ${walPath}, ${run.regionCount} replica regions): $${costs.per1MWalSegments.toFixed(2)}`);
  console.log(
    `    of which S3 ${per1M(walParts.s3)}, DynamoDB ${per1M(walParts.dynamodb)}, Step Functions ${per1M(walParts.stepFunctions)}, Lambda ${per1M(walParts.lambda)}, ` +
      `EventBridge ${per1M(walParts.eventBridge)}, CloudWatch Logs ${per1M(walParts.logs)}`,
  );
  console.log(`  (catalog writes alone per 1M WAL records, as BatchWriteItem: $${costs.walCatalogWritesPer1M.toFixed(2)})`);
  console.log(
    `Prices: S3 PUT/COPY/POST/LIST $${PRICES.s3PutTierPer1k}/1k, GET/HEAD $${PRICES.s3GetTierPer1k}/1k, DELETE free (request meter counts); ` +
      `DynamoDB on-demand $${PRICES.dynamoWriteUnitPerM}/M WRU, $${PRICES.dynamoReadUnitPerM}/M RRU (units estimated by the meter from item counts and Query response bytes); ` +
      `Step Functions Standard $${PRICES.sfnStandardTransitionPer1k}/1k transitions (states entered, counted by the local stack), Express $${PRICES.sfnExpressRequestPerM}/M requests + $${PRICES.sfnExpressGbSecond}/GB-s at 64 MB (each execution's duration on this machine, rounded up to 100 ms); ` +
      `Lambda $${PRICES.lambdaGbSecond}/GB-s + $${PRICES.lambdaRequestPerM}/M requests (GB-s = the invocations' measured durations on this loaded machine x the step's memory); ` +
      `EventBridge $${PRICES.eventBridgePerM}/M events (one per execution of an upload-triggered workflow); ` +
      `CloudWatch Logs $${PRICES.logsIngestPerGb}/GB ingested for Express workflows logging ALL (~${LOG_BYTES_PER_STATE} B per state; ${Object.entries(EXPRESS_LOG_LEVEL).map(([w, l]) => `${w} at ${l}`).join(", ")}: ERROR logs only failures, $0 in a passing run).`,
  );
  const failing = results.flatMap((p) => p.steps.filter((r) => !r.pass).map((r) => `${p.name}: ${r.workflow}/${r.step}`));
  const failedPhases = results.filter((p) => !p.ok || p.error).map((p) => `${p.name}: ${p.error}`);
  console.log(`\nSteps over half their limit: ${failing.length === 0 ? "none" : failing.join("; ")}`);
  console.log(`Phases failed: ${failedPhases.length === 0 ? "none" : failedPhases.join("; ")}`);
  mkdirSync(dirname(run.out), { recursive: true });
  writeFileSync(
    run.out,
    JSON.stringify({ at: new Date().toISOString(), machine: { cores: cpus().length, memGiB: Math.round(totalmem() / GiB) }, run, prices: PRICES, costs, phases: results.map((p) => ({ ...p, cost: costOf(p) })) }, null, 2) + "\n",
  );
  console.log(`\nwrote ${run.out}`);
}

main().catch((e: unknown) => {
  console.error(`bench:scale failed: ${describeError(e)}`);
  process.exit(1);
});
