/** `walvault catalog index-wal <id>`: index a generic database's older WAL records by position, then mark it (agent/wal-index.ts). */
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "catalog index-wal",
  summary: "index a generic database's WAL by position (a catalog from before the index, or after upgrading ingest), so restores read only the range they need (exit 1 when it cannot be)",
  group: GROUPS.admin,
  positionals: [{ name: "id", description: "the generic database's id" }],
  options: {
    config: commonOptions.config,
    json: jsonOption,
  },
  async run({ values, positionals: [id] }) {
    const { assertDatabaseId } = await import("../../core/keys.js");
    assertDatabaseId(id!);
    const { loadConfig, agentClients } = await heavy();
    const { catalog } = agentClients(loadConfig(values));
    const { indexWal } = await import("../wal-index.js");
    const { createStatusLine } = await import("../progress.js");
    // A million records are a thousand calls: a status line on a terminal (nothing when stderr is not one).
    const status = createStatusLine({});
    const line = (p: { examined: number; updated: number }) => (): string => `index-wal ${id}: ${p.examined} WAL record(s) examined, ${p.updated} given their key`;
    const s = await indexWal(catalog, id!, { onPage: (p) => status.update(line(p)) });
    status.done(line(s));
    print(values.json, s, () =>
      s.refused !== undefined
        ? `database ${id} stays read page by page: ${s.refused} (${s.updated} of ${s.examined} WAL record(s) indexed)`
        : `database ${id}: ${s.updated} of ${s.examined} WAL record(s) given their position key; restores read its WAL by position range`,
    );
    return s.marked ? 0 : 1;
  },
});
