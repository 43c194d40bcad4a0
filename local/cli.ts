/** `walvault local up|down`: run the embedded stack in the foreground, or stop it. */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { agentConfigSchema } from "../core/config.js";
import { ServiceUnavailableError } from "../core/errors.js";
import { assertDatabaseId } from "../core/keys.js";
import { onEmulatorFailure, stopAllEmulators, type EmulatorFailure } from "./emulators.js";
import { describeLatency, NO_LATENCY, type CloudLatency } from "./latency.js";
import { startLocalStack, type LocalStack } from "./stack.js";
import { startReportServer } from "./report-server.js";

export async function localUp(stateDir: string, databases: string[], replicaRegions: string[] = [], latency: CloudLatency = NO_LATENCY): Promise<number> {
  // Checked before anything starts: a bad id must not leave emulators behind.
  databases.forEach((id) => assertDatabaseId(id));
  // An emulator that crashed and could not be restarted takes the stack down, non-zero, naming it.
  let crashed: EmulatorFailure | undefined;
  let wake: (() => void) | undefined;
  const unsubscribe = onEmulatorFailure((f) => {
    crashed ??= f;
    wake?.();
  });
  let stack: LocalStack;
  try {
    stack = await startLocalStack({ stateDir, databases: databases.map((id) => ({ id })), verbose: true, replicaRegions, latency });
  } catch (e) {
    // Whatever had started (emulators, a half-registered catalog) stops with the failed start.
    unsubscribe();
    await stopAllEmulators();
    throw e;
  }
  const report = await startReportServer(stack.config);
  process.stdout.write(
    `walvault local stack is up (Ctrl-C or \`walvault local down\` stops it)\n` +
      `  S3        ${stack.config.s3Endpoint}  buckets ${stack.config.incomingBucket}, ${stack.config.vaultBucket}\n` +
      stack.regions.slice(1).map((r) => `  region    ${r.region}: S3 ${r.endpoint}  bucket ${r.vaultBucket}\n`).join("") +
      `  DynamoDB  ${stack.config.dynamodbEndpoint}  table ${stack.config.table}\n` +
      `  ingest    statemachines/ingest.asl.json on aws-local-stepfunctions\n` +
      `  workflows ${stack.config.stepFunctionsEndpoint} (Step Functions API), restore: ${stack.config.restoreStateMachineArn}\n` +
      `  databases ${databases.join(", ")}\n` +
      `  latency   ${describeLatency(latency)}\n` +
      `  config    ${stack.configPath} (the agent finds it by itself)\n` +
      `  report    ${report.url} (what can be restored, per database and region; drawn again on each load)\n`,
  );
  await new Promise<void>((resolve) => {
    wake = resolve;
    if (crashed) resolve();
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  unsubscribe();
  await report.close();
  await stack.stop();
  await stopAllEmulators();
  rmSync(stack.configPath, { force: true });
  if (crashed) {
    throw new ServiceUnavailableError(`the local stack stopped: ${crashed.error.message}`, { cause: crashed.error });
  }
  process.stdout.write("walvault local stack stopped\n");
  return 0;
}

export async function localDown(stateDir: string): Promise<number> {
  const configPath = join(stateDir, "config.json");
  if (!existsSync(configPath)) throw new ServiceUnavailableError(`no local stack is running from ${stateDir}`);
  const cfg = agentConfigSchema.parse(JSON.parse(readFileSync(configPath, "utf8")));
  const pid = cfg.local?.pid;
  if (pid === undefined) throw new ServiceUnavailableError(`${configPath} was not written by the local stack`);
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    rmSync(configPath, { force: true });
    throw new ServiceUnavailableError(`the local stack (pid ${pid}) was not running; removed its stale config`);
  }
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  process.stdout.write(`walvault local stack (pid ${pid}) stopped\n`);
  return 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
