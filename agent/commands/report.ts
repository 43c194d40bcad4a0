/** `walvault report --html FILE`: a page drawing, per database and region, what point-in-time recovery can reach. */
import { InvalidInputError } from "../../core/errors.js";
import { configOption, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "report",
  summary: "write a self-contained HTML page: per database and region, restorable windows, snapshots, WAL coverage and gaps",
  group: GROUPS.archiving,
  details: [
    "The windows drawn are the ones `walvault status --json` prints; snapshots are coloured by their latest verification. Open the file in any browser: it needs no network.",
  ],
  positionals: [],
  options: {
    html: { type: "string", value: "FILE", description: "where to write the page (required; replaced whole; its directory must exist)" },
    database: { type: "string", value: "ID", multiple: true, description: "databases to draw (default: every registered database)" },
    config: configOption,
    json: jsonOption,
  },
  async run({ values }) {
    if (!values.html) throw new InvalidInputError("report needs --html FILE (where to write the page)");
    const { assertDatabaseId } = await import("../../core/keys.js");
    for (const id of values.database ?? []) assertDatabaseId(id);
    const { resolve, dirname } = await import("node:path");
    const { statSync } = await import("node:fs");
    const file = resolve(values.html);
    if (!statSync(dirname(file), { throwIfNoEntry: false })?.isDirectory()) throw new InvalidInputError(`--html ${values.html}: the directory ${dirname(file)} does not exist`);
    const { loadConfig, agentClients } = await heavy();
    const cfg = loadConfig({ config: values.config });
    const clients = agentClients(cfg);
    const { allDatabaseIds, gatherReport, writeReport } = await import("../report.js");
    const ids = values.database?.length ? values.database : await allDatabaseIds(clients);
    const data = await gatherReport(clients, cfg, ids);
    await writeReport(file, data);
    print(values.json, { file, databases: ids }, () => `wrote ${file} (${ids.length} database${ids.length === 1 ? "" : "s"})`);
    return 0;
  },
});
