/** `walvault agent`: the resident agent beside PostgreSQL. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { InvalidInputError } from "../../core/errors.js";
import { commonOptions, defineCommand } from "../command.js";
import { agentSocketPath } from "../locate.js";
import { GROUPS, heavy } from "./shared.js";

export default defineCommand({
  name: "agent",
  summary: "resident agent: keeps connections warm and pushes .ready segments ahead (wal-push uses it by itself)",
  group: GROUPS.archiving,
  positionals: [],
  options: {
    pgdata: { type: "string", value: "DIR", description: "PostgreSQL data directory whose pg_wal/archive_status .ready segments to push ahead" },
    concurrency: { type: "positive-int", default: "2", description: "segments pushed at once ahead" },
    socket: { type: "string", value: "PATH", description: "socket (default $WALVAULT_AGENT_SOCKET or <tmp>/walvault-agent-<id>.sock)" },
    timeout: { type: "seconds", default: "60", description: "how long a push waits for the catalog" },
    ...commonOptions,
  },
  async run({ values }) {
    if (values.pgdata && !existsSync(resolve(values.pgdata, "pg_wal"))) {
      throw new InvalidInputError(`--pgdata ${values.pgdata} is not a PostgreSQL data directory (no pg_wal)`);
    }
    const { loadConfig, requireDatabase, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const databaseId = requireDatabase(cfg);
    const { startResidentAgent } = await import("../resident.js");
    const socketPath = values.socket ?? agentSocketPath(databaseId);
    const agent = await startResidentAgent({ ...cfg, databaseId }, agentClients(cfg), {
      socketPath,
      ...(values.pgdata ? { pgdata: resolve(values.pgdata) } : {}),
      concurrency: Number(values.concurrency),
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
  },
});
