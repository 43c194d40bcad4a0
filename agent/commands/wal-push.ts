/** `walvault wal-push <path>`: PostgreSQL's archive_command. */
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { commonOptions, defineCommand, jsonOption, shown } from "../command.js";
import { agentSocketPath, findConfigFile, quickSettings } from "../locate.js";
import { pushThroughAgent } from "../push-client.js";
import { GROUPS, heavy, print } from "./shared.js";

const WAIT = /^(none|stored|replicated|quorum(=\d{1,3})?)$/;

export default defineCommand({
  name: "wal-push",
  summary: "archive a WAL file (archive_command = 'walvault wal-push %p')",
  group: GROUPS.archiving,
  details: [
    "Exit 0 once the segment is durable to the --wait level; a resident agent for the",
    "database (walvault agent) answers for it when one is running.",
  ],
  positionals: [{ name: "path", description: "the WAL file (%p)" }],
  options: {
    wait: {
      type: "string",
      value: "LEVEL",
      default: "stored",
      description: "durability before exit 0: none | stored | replicated (every region) | quorum[=N] (N regions counting the primary; alone: a majority)",
      check: (v) => (WAIT.test(v) ? undefined : `--wait must be none, stored, replicated or quorum[=N], not '${shown(v)}'`),
    },
    timeout: { type: "seconds", description: "give up waiting after this long (default: the configuration's waitTimeoutSeconds, else 60)" },
    "no-agent": { type: "boolean", description: "push directly even if a resident agent is running" },
    ...commonOptions,
    json: jsonOption,
  },
  async run({ values, positionals: [path] }) {
    const simpleWait = values.wait === "none" || values.wait === "stored";
    // Fast path: a resident agent for this database answers for us.
    const quick = quickSettings(values.database, findConfigFile(values.config).path);
    if (simpleWait && quick.databaseId && !values["no-agent"] && existsSync(agentSocketPath(quick.databaseId))) {
      const answer = await pushThroughAgent(agentSocketPath(quick.databaseId), {
        op: "push",
        databaseId: quick.databaseId,
        path: resolve(path!),
        wait: values.wait as "none" | "stored",
        timeoutMs: Number(values.timeout ?? quick.waitTimeoutSeconds ?? 60) * 1000,
        cwd: process.cwd(),
      });
      if (answer) {
        if (answer.message) process.stderr.write(`walvault: ${answer.message}\n`);
        if (answer.exitCode === 0 && values.json) print(true, answer.result, () => "");
        return answer.exitCode;
      }
    }
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const databaseId = requireDatabase(cfg);
    const timeoutSeconds = values.timeout === undefined ? (cfg.waitTimeoutSeconds ?? 60) : Number(values.timeout);
    const { walPush, parseWaitLevel } = await import("../wal-push.js");
    const r = await walPush(path!, { ...cfg, databaseId }, agentClients(cfg), {
      wait: parseWaitLevel(values.wait, (cfg.replicas ?? []).map((x) => x.region)),
      timeoutMs: timeoutSeconds * 1000,
      cwd: process.cwd(),
    });
    if (values.json) print(true, r, () => "");
    if (!values["no-agent"]) await hintIfFallingBehind(path!, databaseId);
    return 0;
  },
});

/**
 * A push no agent answered: when PostgreSQL's queue grows behind it, one line
 * (at most every HINT_EVERY_MS for this database and OS user) saying so and
 * what to run; the push itself already succeeded.
 */
async function hintIfFallingBehind(path: string, databaseId: string): Promise<void> {
  // Loaded here, not with the command table (which stays light for the agent's fast path).
  const { backlogBeside, dueOnce, fallingBehindHint, HINT_EVERY_MS } = await import("../archive-status.js");
  const walPath = resolve(path);
  const hint = fallingBehindHint(backlogBeside(walPath, process.cwd()), performance.now() / 1000, databaseId, dirname(dirname(walPath)));
  if (hint && dueOnce(join(tmpdir(), `walvault-${process.getuid?.() ?? "user"}-${databaseId}.hint`), HINT_EVERY_MS)) process.stderr.write(`walvault: ${hint}\n`);
}
