/**
 * Reading synthesized CloudFormation in the infra tests: values rendered as
 * one string, the statements that apply to a role, and the state machine
 * definition CloudFormation will deploy; and synthesizing with the handlers
 * bundled, in a child process.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import type { CfnElement, Stack } from "aws-cdk-lib";
import { Annotations, Match, type Template } from "aws-cdk-lib/assertions";
import { CloudAssembly } from "aws-cdk-lib/cx-api";
import type { IConstruct } from "constructs";
import { afterAll } from "vitest";

/*
 * Every App made without an outdir makes a temporary directory for its cloud
 * assembly (/tmp/cdk.outXXXXXX); CDK removes them on process exit, which a
 * vitest worker does not reach. Registered once per test file that imports
 * this module (each file has its own module graph), after its last test;
 * without it, every App of every CI run stayed in /tmp.
 */
afterAll(() => CloudAssembly.cleanupTemporaryDirectories());

export interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}

/** A CloudFormation value as one string: Fn::Join concatenated, GetAtt as <Id.Attr>, Ref as <Id>. */
export function render(value: unknown): string {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if ("Fn::Join" in o) {
      const [sep, parts] = o["Fn::Join"] as [string, unknown[]];
      return parts.map(render).join(sep);
    }
    if ("Fn::GetAtt" in o) {
      const [id, attr] = o["Fn::GetAtt"] as [string, string];
      return `<${id}.${attr}>`;
    }
    if ("Ref" in o) return `<${String(o.Ref)}>`;
  }
  return JSON.stringify(value);
}

export const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnElement);
}

/** Every statement that applies to a role: its inline policies plus every AWS::IAM::Policy attached to it. */
export function roleStatements(template: Template, roleId: string): Statement[] {
  const resources = template.toJSON().Resources as Record<string, CfnResource>;
  const role = resources[roleId];
  if (!role) throw new Error(`no resource ${roleId}`);
  const inline = list(role.Properties?.Policies as { PolicyDocument: { Statement: Statement[] } }[] | undefined);
  const attached = Object.values(resources).filter(
    (r) => r.Type === "AWS::IAM::Policy" && list(r.Properties?.Roles as unknown[]).some((x) => render(x) === `<${roleId}>`),
  );
  return [
    ...inline.flatMap((p) => p.PolicyDocument.Statement),
    ...attached.flatMap((p) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement),
  ];
}

/**
 * The definition CloudFormation will deploy for a state machine: the
 * DefinitionString, or the asset file behind DefinitionS3Location (in the
 * cloud assembly `assemblyDir`), with the substitutions applied.
 */
export function deployedDefinition(machine: CfnResource, assemblyDir: string): string {
  const substitutions = (machine.Properties?.DefinitionSubstitutions ?? {}) as Record<string, unknown>;
  const location = machine.Properties?.DefinitionS3Location as { Key: string } | undefined;
  let definition = location
    ? readFileSync(join(assemblyDir, `asset.${location.Key}`), "utf8")
    : render(machine.Properties?.DefinitionString);
  for (const [name, value] of Object.entries(substitutions)) definition = definition.split(`\${${name}}`).join(render(value));
  return definition;
}

/**
 * App context that skips esbuild bundling of the handlers (CDK stages each
 * asset as its source path, with a stand-in hash). The in-process synths of
 * the infra tests use it: bundling twenty-odd handlers runs esbuild
 * synchronously, and a test worker whose event loop is blocked that long
 * (over a minute on a loaded machine) fails vitest's worker RPC ("Timeout
 * calling onTaskUpdate") even though every test passed. What the bundles
 * contain is tested on a real synth: synthBundledApp.
 */
export const NO_BUNDLING = { "aws:cdk:bundling-stacks": [] as string[] };

/** The newest modification time of any file under `dir` (ms). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** Assemblies of earlier builds (78 MB each) are removed once this old: a run still reading one is long done. */
const OLD_SYNTH_MS = 60 * 60_000;

/** Removes the complete assemblies of other builds made over OLD_SYNTH_MS ago (each new build of dist/ makes one). */
function removeOldSynths(keep: string): void {
  for (const name of readdirSync(tmpdir())) {
    const dir = join(tmpdir(), name);
    if (!name.startsWith("walvault-synth-") || name.endsWith(".lock") || dir === keep) continue;
    const made = statSync(join(dir, ".complete"), { throwIfNoEntry: false })?.mtimeMs;
    if (made !== undefined && Date.now() - made > OLD_SYNTH_MS) rmSync(dir, { recursive: true, force: true });
  }
}

/** A synthesis lock older than this is taken to be left by a killed run. */
const STALE_LOCK_MS = 15 * 60_000;

/**
 * Synthesizes the CDK app exactly as `cdk synth` runs it (cdk.json's
 * `node dist/infra/app.js`, its context, handlers bundled) in a child process,
 * so the test worker's event loop stays free; returns that cloud assembly
 * directory. Runs the compiled app: `npm test` builds dist/ first (after
 * editing infra/, run `npm run build` before this test).
 *
 * Bundling every handler takes a minute or more of esbuild, so the assembly
 * is made once per build of dist/ and context, and shared by the test files
 * that read it (they run in separate processes, maybe at the same time): it
 * lives in the temp directory under a name hashed from both, made under a
 * lock directory, complete once its `.complete` marker exists. Callers read
 * it and leave it in place.
 */
export async function synthBundledApp(projectRoot: string, context: Record<string, unknown>): Promise<string> {
  const key = createHash("sha256").update(projectRoot).update(JSON.stringify(context)).update(String(newestMtime(join(projectRoot, "dist")))).digest("hex").slice(0, 16);
  const outdir = join(tmpdir(), `walvault-synth-${key}`);
  const complete = join(outdir, ".complete");
  const lock = `${outdir}.lock`;
  for (;;) {
    if (existsSync(complete)) return outdir;
    try {
      mkdirSync(lock);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
      if (since !== undefined && Date.now() - since > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      if (existsSync(complete)) return outdir;
      rmSync(outdir, { recursive: true, force: true });
      mkdirSync(outdir);
      await promisify(execFile)(process.execPath, [join(projectRoot, "dist/infra/app.js")], {
        cwd: projectRoot,
        env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify(context) },
        maxBuffer: 64 * 1024 * 1024,
      });
      writeFileSync(complete, "");
      removeOldSynths(outdir);
      return outdir;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

/**
 * Loads the bundle of each function (by logical id in the primary stack's
 * template of a synthBundledApp assembly) in a plain Node process, as Lambda
 * loads them (not through vitest's transform), calls its handler with `input`
 * and returns, per function, the name of the error it rejects with
 * ("resolved" if it does not).
 */
export async function bundledHandlerOutcomes(outdir: string, logicalIds: readonly string[], input: unknown): Promise<string[]> {
  const template = JSON.parse(readFileSync(join(outdir, "WalvaultPrimary.template.json"), "utf8")) as { Resources: Record<string, CfnResource> };
  const bundles = logicalIds.map((id) => {
    const code = template.Resources[id]?.Properties?.Code as { S3Key?: string } | undefined;
    if (!code?.S3Key) throw new Error(`no function ${id} with a code asset in the synthesized WalvaultPrimary`);
    return pathToFileURL(join(outdir, `asset.${code.S3Key.replace(/\.zip$/, "")}`, "index.mjs")).href;
  });
  const script =
    "const [urls, input] = JSON.parse(process.argv[1]); const names = [];" +
    "for (const url of urls) {" +
    "  const { handler } = await import(url);" +
    "  names.push(await handler(input).then(() => 'resolved', (e) => e.name));" +
    "}" +
    "console.log(JSON.stringify(names));";
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script, JSON.stringify([bundles, input])], { encoding: "utf8" });
  return JSON.parse(stdout) as string[];
}

/** The cdk-nag AwsSolutions errors and warnings left on constructs whose path contains `part`, as "path: finding" lines. */
export function nagFindingsUnder(stack: Stack, part: string): string[] {
  const annotations = Annotations.fromStack(stack);
  const pick = (xs: Array<{ id: string; entry: { data?: unknown } }>): string[] => xs.filter((x) => x.id.includes(part)).map((x) => `${x.id}: ${String(x.entry.data)}`);
  return [...pick(annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))), ...pick(annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*")))];
}
