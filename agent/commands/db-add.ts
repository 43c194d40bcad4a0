/** `walvault db add <id>`: register a database in the catalog. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "db add",
  summary: "register a database (once per database; the local stack registers its own)",
  group: GROUPS.admin,
  positionals: [{ name: "id", description: "database id: lowercase letters, digits and inner hyphens, 3-63 characters" }],
  options: {
    kind: { type: "string", choices: ["postgres", "generic"], default: "postgres", description: "what writes the WAL" },
    "wal-segment-size": { type: "positive-int", value: "BYTES", default: String(16 * 1024 * 1024), description: "the database's WAL segment size (PostgreSQL: a power of two, 1 MiB..1 GiB)" },
    config: commonOptions.config,
    json: jsonOption,
  },
  async run({ values, positionals: [id] }) {
    const { assertDatabaseId } = await import("../../core/keys.js");
    const { assertSegmentSize } = await import("../../core/wal.js");
    assertDatabaseId(id!);
    const size = Number(values["wal-segment-size"]);
    assertSegmentSize(size);
    const { loadConfig, agentClients } = await heavy();
    const cfg = loadConfig(values);
    const { catalog } = agentClients(cfg);
    const existing = await catalog.getDatabase(id!);
    if (!existing) {
      await catalog.putDatabase({ databaseId: id!, kind: values.kind as "postgres" | "generic", walSegmentSize: size, createdAt: new Date().toISOString() });
    }
    print(values.json, existing ?? { databaseId: id }, () => (existing ? `database ${id} is already registered` : `registered database ${id}`));
    return 0;
  },
});
