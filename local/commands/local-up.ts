/** `walvault local up`: run the embedded stack in the foreground. */
import { defineCommand } from "../../agent/command.js";
import { defaultLocalStateDir } from "../../agent/locate.js";
import { GROUPS } from "../../agent/commands/shared.js";

export default defineCommand({
  name: "local up",
  summary: "run the embedded stack (S3, DynamoDB, Step Functions emulators) in the foreground",
  group: GROUPS.admin,
  details: ["Writes <state dir>/config.json, where the agent finds it by itself; Ctrl-C or `walvault local down` stops it."],
  positionals: [],
  options: {
    "state-dir": { type: "string", value: "DIR", description: "where the stack keeps its data (default $WALVAULT_LOCAL_DIR, else <tmp>/walvault-local)" },
    database: { type: "string", value: "ID", multiple: true, description: "databases to register (default pg-main)" },
    "replica-region": { type: "string", value: "R", multiple: true, description: "a replica region: its own S3 endpoint and vault bucket" },
    latency: {
      type: "string",
      value: "SPEC",
      description: "wait out what AWS takes time for: 'aws' (event delivery, StartExecution, invokes, cold starts; docs/local-latency.md), 'aws,eventDeliveryMs=2000', or 'none' (default $WALVAULT_LOCAL_LATENCY, else none)",
    },
  },
  async run({ values }) {
    const databases = values.database ?? ["pg-main"];
    // Checked before any emulator starts: a bad id must not leave a stack half up.
    const { assertDatabaseId } = await import("../../core/keys.js");
    databases.forEach((id) => assertDatabaseId(id));
    const { parseLatency } = await import("../latency.js");
    const latency = parseLatency(values.latency ?? process.env.WALVAULT_LOCAL_LATENCY ?? "none");
    const { localUp } = await import("../cli.js");
    return localUp(values["state-dir"] ?? defaultLocalStateDir(), databases, values["replica-region"] ?? [], latency);
  },
});
