/**
 * The verification task (issue #5): what the verify workflow runs once per
 * candidate — in AWS as an ECS Fargate task (`ecs:runTask.sync`; image from
 * tasks/verify/Dockerfile), on the local stack as a child process. It runs
 * agent/verify.ts for the candidate in WALVAULT_VERIFY_INPUT and records the
 * result in the catalog itself; the workflow's RecordResult step reads it.
 *
 * Environment:
 *   WALVAULT_VERIFY_INPUT   the candidate (core/verify-workflow.ts), JSON
 *   WALVAULT_CONFIG         an agent config file (local stack), or else
 *   AWS_REGION, WALVAULT_INCOMING_BUCKET, WALVAULT_VAULT_BUCKET, WALVAULT_TABLE
 *                           (as the Lambda handlers get them; written to a config
 *                           file in the work directory for wal-fetch during recovery)
 *   WALVAULT_VERIFY_CHECKS  optional JSON: { "<databaseId>": { sql?, command? } } or one { sql?, command? } for all
 *   WALVAULT_VERIFY_WORKDIR scratch space for the restore (default the OS temp dir; Fargate: ephemeral storage)
 * Exit: 0 passed, 1 a check failed, 2 the task could not verify (bad input, no access...).
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentConfigSchema, type AgentConfig } from "../../core/config.js";
import { ConfigError, describeError, InvalidInputError } from "../../core/errors.js";
import { parseTime } from "../../core/time.js";
import { verifyCandidateSchema } from "../../core/verify-workflow.js";
import type { VerifyLevel } from "../../core/verify-policy.js";
import { loadConfig } from "../../agent/config.js";
import { agentClients } from "../../agent/clients.js";
import { formatVerification, verifySnapshot, type VerifyChecks } from "../../agent/verify.js";

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new ConfigError(`environment variable ${name} is not set`);
  return v;
}

function configFromEnv(workDir: string): AgentConfig & { path: string } {
  if (process.env.WALVAULT_CONFIG) return loadConfig({ config: process.env.WALVAULT_CONFIG });
  const cfg = agentConfigSchema.parse({
    region: process.env.AWS_REGION ?? required("AWS_DEFAULT_REGION"),
    incomingBucket: required("WALVAULT_INCOMING_BUCKET"),
    vaultBucket: required("WALVAULT_VAULT_BUCKET"),
    table: required("WALVAULT_TABLE"),
  });
  const path = join(workDir, "walvault-config.json");
  writeFileSync(path, JSON.stringify(cfg), { mode: 0o644 });
  return { ...cfg, path };
}

export function checksFor(databaseId: string, raw: string | undefined): VerifyChecks | undefined {
  if (!raw) return undefined;
  const parsed = JSON.parse(raw) as Record<string, unknown>;
  const one = (v: unknown): VerifyChecks | undefined => (v && typeof v === "object" ? (v as VerifyChecks) : undefined);
  if ("sql" in parsed || "command" in parsed) return one(parsed);
  return one(parsed[databaseId]);
}

async function main(): Promise<number> {
  const parsed = verifyCandidateSchema.safeParse(JSON.parse(required("WALVAULT_VERIFY_INPUT")));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidInputError(`WALVAULT_VERIFY_INPUT is malformed${issue?.path.length ? ` at ${issue.path.join(".")}` : ""}: ${issue?.message ?? "invalid"}`);
  }
  const candidate = parsed.data;
  // Strict (core/time.ts), every digit kept: the restore's target keeps the nanoseconds past the millisecond.
  const target = candidate.targetTime === undefined ? undefined : parseTime(candidate.targetTime, "targetTime");
  const workDir = process.env.WALVAULT_VERIFY_WORKDIR ?? join(tmpdir(), "walvault-verify");
  mkdirSync(workDir, { recursive: true, mode: 0o755 });
  const cfg = configFromEnv(workDir);
  const checks = checksFor(candidate.databaseId, process.env.WALVAULT_VERIFY_CHECKS);
  const record = await verifySnapshot(agentClients(cfg), { ...cfg, databaseId: candidate.databaseId }, {
    databaseId: candidate.databaseId,
    snapshotId: candidate.snapshotId,
    level: candidate.level as VerifyLevel,
    ...(target ? { targetTime: target.date, ...(target.subMsNanos === 0 ? {} : { targetTimeSubMsNanos: target.subMsNanos }) } : {}),
    runId: candidate.runId,
    trigger: candidate.trigger,
    reason: candidate.reason,
    ...(checks ? { checks } : {}),
    workDir,
    log: (line) => process.stderr.write(`walvault verify: ${line}\n`),
  });
  process.stdout.write(formatVerification(record) + "\n");
  return record.outcome === "passed" ? 0 : record.outcome === "failed" ? 1 : 2;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`walvault verify task: ${describeError(e)}\n`);
    process.exitCode = 2;
  },
);
