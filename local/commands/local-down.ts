/** `walvault local down`: stop the embedded stack. */
import { defineCommand } from "../../agent/command.js";
import { defaultLocalStateDir } from "../../agent/locate.js";
import { GROUPS } from "../../agent/commands/shared.js";

export default defineCommand({
  name: "local down",
  summary: "stop the embedded stack started by `walvault local up`",
  group: GROUPS.admin,
  positionals: [],
  options: {
    "state-dir": { type: "string", value: "DIR", description: "the stack's state directory (default $WALVAULT_LOCAL_DIR, else <tmp>/walvault-local)" },
  },
  async run({ values }) {
    const { localDown } = await import("../cli.js");
    return localDown(values["state-dir"] ?? defaultLocalStateDir());
  },
});
