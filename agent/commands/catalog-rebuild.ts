/** `walvault catalog rebuild`: rebuild the catalog from one region's vault bucket alone. */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS } from "./shared.js";

export default defineCommand({
  name: "catalog rebuild",
  summary: "rebuild the catalog from one region's vault bucket alone (exit 1 when objects were skipped)",
  group: GROUPS.admin,
  positionals: [],
  options: {
    region: { type: "string", value: "R", description: "the primary (default) or a configured replica region" },
    table: { type: "string", value: "NAME", description: "table to rebuild into (default: the configured one; created if missing)" },
    database: { type: "string", value: "ID", multiple: true, description: "only these databases (default: every database in the bucket)" },
    config: commonOptions.config,
    json: jsonOption,
  },
  async run({ values }) {
    return (await import("../catalog-rebuild.js")).catalogRebuildCommand(values);
  },
});
