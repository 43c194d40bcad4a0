/**
 * The Node.js versions the agent runs on, checked before anything that needs
 * them is loaded: node:zlib's zstd (the default codec) arrived in 22.15, and
 * on an older Node the first module using it fails with a TypeError nobody
 * can act on (`The "original" argument must be of type function`). The
 * entries (agent/cli.ts, local/dev-cli.ts) start through startIfSupported,
 * which loads nothing else first.
 */
import { ConfigError } from "../core/errors.js";

/** The oldest Node.js the agent supports. */
export const MIN_NODE = { major: 22, minor: 15 } as const;

/**
 * Why Node `version` (process.versions.node, e.g. "20.19.2") cannot run the
 * agent, as one line naming it and what to do; undefined when it can.
 * `execPath`: the node binary, so the line says which one was found.
 */
export function unsupportedNode(version: string, execPath: string): string | undefined {
  const m = /^(\d+)\.(\d+)\./.exec(version);
  const major = m ? Number(m[1]) : 0;
  const minor = m ? Number(m[2]) : 0;
  if (major > MIN_NODE.major || (major === MIN_NODE.major && minor >= MIN_NODE.minor)) return undefined;
  return (
    `needs Node.js ${MIN_NODE.major}.${MIN_NODE.minor} or later, but ${execPath} is ${version}: ` +
    `install Node.js ${MIN_NODE.major} (nodejs.org, or your distribution's nodejs ${MIN_NODE.major} package), ` +
    `or use the single-file executable walvault-linux-x64, which needs no Node.js`
  );
}

/**
 * Calls `start` (which loads the CLI) when this Node can run the agent;
 * otherwise writes the one line of unsupportedNode as a ConfigError and sets
 * its exit code.
 */
export function startIfSupported(start: () => Promise<void>): void {
  const problem = unsupportedNode(process.versions.node, process.execPath);
  if (problem === undefined) {
    void start();
    return;
  }
  const e = new ConfigError(problem);
  process.stderr.write(`walvault: ${e.message}\n`);
  process.exitCode = e.exitCode;
}
