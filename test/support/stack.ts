/** Test support: a local stack per suite, and the real CLI run as a child process. */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { startLocalStack, type ExecutionStats, type LocalDatabase, type LocalStack, type LocalStackOptions } from "../../local/stack.js";
import { WALVAULT_BIN } from "../../local/paths.js";
import { inject } from "vitest";
import { tempDir } from "./harness.js";

export interface TestStack extends LocalStack {
  stateDir: string;
  /** Runs `walvault <args>` against this stack. */
  cli(args: string[], opts?: { env?: Record<string, string>; cwd?: string }): Promise<CliResult>;
  destroy(): Promise<void>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(WALVAULT_BIN, args, {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd ?? tmpdir(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `opts`: any stack option but the state directory and the databases (replica regions, Lambda timeouts, fault injection...). */
export async function startTestStack(databases: LocalDatabase[] = [{ id: "pg-main" }], opts: Omit<LocalStackOptions, "stateDir" | "databases"> = {}): Promise<TestStack> {
  // Removed by destroy(), or after the test file if the stack fails to start (e.g. dist/ older than the sources).
  const stateDir = tempDir("walvault-test-");
  // In memory: on the run's one DynamoDB Local (test/support/shared-dynamodb.ts), in a table of its own.
  const inMemory = (opts.persistent ?? false) === false;
  const shared = inMemory ? { sharedDynamodbEndpoint: inject("sharedDynamodbEndpoint") } : {};
  const stack = await startLocalStack({ stateDir, databases, persistent: false, ...shared, ...opts });
  return {
    ...stack,
    stateDir,
    cli: (args, opts = {}) => runCli(args, { ...opts, env: { WALVAULT_CONFIG: stack.configPath, ...opts.env } }),
    async destroy() {
      await stack.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** The execution counters of a stack's statistics, without the limit high-water marks (largest state, most history events). */
export function executionCounts(s: ExecutionStats): Pick<ExecutionStats, "started" | "succeeded" | "failed" | "inFlight"> {
  return { started: s.started, succeeded: s.succeeded, failed: s.failed, inFlight: s.inFlight };
}
