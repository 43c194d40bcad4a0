/** `walvault wal-fetch <name> <dest>`: PostgreSQL's restore_command. */
import { describeError, NotFoundError } from "../../core/errors.js";
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, regionalSetup, print, REGION_HELP } from "./shared.js";

/** restore_command exit status PostgreSQL treats as fatal (> 125): recovery stops instead of ending early. */
export const RESTORE_FATAL_EXIT = 126;

export default defineCommand({
  name: "wal-fetch",
  summary: "fetch a verified WAL file (restore_command = 'walvault wal-fetch %f %p')",
  group: GROUPS.archiving,
  details: [
    "Exit 1 only when the file was never archived (recovery ends there); anything else,",
    `bad input included, exits ${RESTORE_FATAL_EXIT} so that PostgreSQL stops recovery instead of ending it early.`,
  ],
  positionals: [
    { name: "name", description: "the WAL file's name (%f)" },
    { name: "dest", description: "where to write it (%p)" },
  ],
  options: {
    "no-prefetch": { type: "boolean", description: "do not prefetch the following segments" },
    region: { type: "string", value: "R", description: REGION_HELP },
    ...commonOptions,
    json: jsonOption,
  },
  // Even a usage error must not read as "not archived" to PostgreSQL.
  badInputExit: RESTORE_FATAL_EXIT,
  async run({ values, positionals: [name, dest] }) {
    try {
      const { markRestoredFrom } = await import("../restore-marker.js");
      // The prefetcher is this same CLI (the bundle or compiled script Node runs now, or the single-file executable).
      const self = async (): Promise<{ file: string; args: string[] }> => (await import("../paths.js")).selfCommand();
      // A segment the prefetcher spooled and proved: served without the catalog or the SDK (agent/wal-fetch-spool.ts).
      const spool = await import("../wal-fetch-spool.js");
      const { findConfigFile, quickSettings } = await import("../locate.js");
      const configPath = findConfigFile(values.config).path;
      const quick = quickSettings(values.database, configPath);
      if (quick.databaseId !== undefined) {
        const taken = await spool.takeVerified(name!, dest!, quick.databaseId, values.region);
        if (taken !== undefined) {
          markRestoredFrom(process.cwd(), quick.databaseId);
          const count = quick.prefetch ?? spool.DEFAULT_PREFETCH;
          if (!values["no-prefetch"] && spool.spoolNeedsPrefetcher(spool.spoolDirOf(dest!), name!, count, taken.note.segmentSize)) {
            spool.spawnPrefetch(name!, dest!, { self: await self(), count, databaseId: quick.databaseId, configPath, region: values.region });
          }
          if (values.json) print(true, { name, size: taken.size, source: "prefetch" }, () => "");
          return 0;
        }
      }
      const { cfg, requireDatabase, agentClients } = await regionalSetup(values, values.region);
      const databaseId = requireDatabase(cfg);
      const { walFetch } = await import("../wal-fetch.js");
      const r = await walFetch(name!, dest!, { ...cfg, databaseId }, agentClients(cfg));
      markRestoredFrom(process.cwd(), databaseId);
      if (!values["no-prefetch"]) {
        spool.spawnPrefetch(name!, dest!, { self: await self(), count: cfg.prefetch ?? spool.DEFAULT_PREFETCH, databaseId: cfg.databaseId, configPath: cfg.path, region: cfg.replicaRegion });
      }
      if (values.json) print(true, r, () => "");
      return 0;
    } catch (e) {
      if (e instanceof NotFoundError) throw e;
      // Anything but "never archived" must stop recovery rather than end it early.
      process.stderr.write(`walvault: ${describeError(e)}\n`);
      return RESTORE_FATAL_EXIT;
    }
  },
});
