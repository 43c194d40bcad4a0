/** `walvault snapshot pin|unpin <id>`: keep a snapshot forever (retention never deletes it), or stop. */
import { commonOptions, defineCommand, jsonOption, type Command } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

function pinCommand(pin: boolean): Command {
  return defineCommand({
    name: pin ? "snapshot pin" : "snapshot unpin",
    summary: pin ? "keep a snapshot forever: retention never deletes it" : "let retention treat a pinned snapshot as any other again",
    group: GROUPS.snapshots,
    positionals: [{ name: "snapshot id", description: "as `snapshot list` shows it" }],
    options: { ...commonOptions, json: jsonOption },
    async run({ values, positionals: [id] }) {
      const { loadConfig, requireDatabase, agentClients } = await heavy();
      const cfg = loadConfig(values);
      const databaseId = requireDatabase(cfg);
      await agentClients(cfg).catalog.setSnapshotPinned(databaseId, id!, pin);
      print(values.json, { databaseId, snapshotId: id, pinned: pin }, () => `snapshot ${id} ${pin ? "pinned: retention keeps it until it is unpinned" : "unpinned"}`);
      return 0;
    },
  });
}

export const snapshotPin = pinCommand(true);
export const snapshotUnpin = pinCommand(false);
