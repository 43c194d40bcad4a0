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
      const { cfg, requireDatabase, agentClients } = await regionalSetup(values, values.region);
      const databaseId = requireDatabase(cfg);
      const { walFetch, spawnPrefetch } = await import("../wal-fetch.js");
      const { markRestoredFrom } = await import("../restore-marker.js");
      const r = await walFetch(name!, dest!, { ...cfg, databaseId }, agentClients(cfg));
      markRestoredFrom(process.cwd(), databaseId);
      // The prefetcher is this same CLI (the bundle or compiled script Node runs now, or the single-file executable).
      if (!values["no-prefetch"]) spawnPrefetch(name!, dest!, cfg, (await import("../paths.js")).selfCommand());
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
