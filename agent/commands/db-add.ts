/** `walvault db add <id>`: register a database in the catalog (or change a registered one's RPO threshold). */
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
    rpo: {
      type: "positive-int",
      value: "SECONDS",
      description: "the archive lag (seconds since the newest recorded WAL) past which the deployed RPO alarm fires (default 300); for a registered database, changes it",
    },
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
    const rpo = values.rpo === undefined ? undefined : Number(values.rpo);
    const existing = await catalog.getDatabase(id!);
    if (!existing) {
      const record = { databaseId: id!, kind: values.kind as "postgres" | "generic", walSegmentSize: size, createdAt: new Date().toISOString(), ...(rpo === undefined ? {} : { rpoSeconds: rpo }) };
      await catalog.putDatabase(record);
      print(values.json, record, () => `registered database ${id}${rpo === undefined ? "" : ` (RPO ${rpo} s)`}`);
      return 0;
    }
    // Only the threshold changes: the kind and segment size of a database with archived WAL are what that WAL is.
    const changed = rpo !== undefined && existing.rpoSeconds !== rpo;
    const now = changed ? { ...existing, rpoSeconds: rpo } : existing;
    if (changed) await catalog.putDatabase(now);
    print(values.json, now, () => (changed ? `database ${id} is already registered; its RPO is now ${rpo} s` : `database ${id} is already registered`));
    return 0;
  },
});
