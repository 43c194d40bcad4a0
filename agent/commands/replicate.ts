/** `walvault replicate --region R`: the replicate workflow for one replica region. */
import { InvalidInputError } from "../../core/errors.js";
import type { MarkTotals } from "../regions.js";
import { commonOptions, defineCommand, jsonOption } from "../command.js";
import { GROUPS, heavy, print } from "./shared.js";

export default defineCommand({
  name: "replicate",
  summary: "bring replica region R level with the catalog (the replicate workflow)",
  group: GROUPS.archiving,
  positionals: [],
  options: {
    region: { type: "string", value: "R", description: "the replica region to bring level (required)" },
    "state-machine": { type: "string", value: "ARN", description: "default: replicateStateMachineArn in the config (stack output ReplicateStateMachineArn)" },
    timeout: { type: "seconds", description: "stop waiting after this long (the execution goes on)" },
    database: { ...commonOptions.database, description: "only this database (default: every database)" },
    mark: {
      type: "boolean",
      description:
        "first mark the records not replicated in R that the catalog does not list as missing there (a catalog from before the replication index, a region added later, a rebuilt catalog); reads every WAL and snapshot record, a page at a time",
    },
    config: commonOptions.config,
    json: jsonOption,
  },
  async run({ values }) {
    if (!values.region) throw new InvalidInputError("replicate needs --region R (the replica region to bring level)");
    const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
    const { loadConfig } = await heavy();
    const cfg = loadConfig(values);
    const arn = values["state-machine"] ?? cfg.replicateStateMachineArn;
    if (!arn) throw new InvalidInputError(`no replicate workflow: pass --state-machine ARN or set replicateStateMachineArn in ${cfg.path} (stack output ReplicateStateMachineArn)`);
    const { replicate, markUnreplicated, findRegion } = await import("../regions.js");
    let marked: MarkTotals | undefined;
    if (values.mark) {
      if (findRegion(cfg, values.region).primary) throw new InvalidInputError(`--mark needs a replica region: ${values.region} is the primary`);
      const { agentClients } = await heavy();
      marked = await markUnreplicated(agentClients(cfg).catalog, values.region, values.database ? [values.database] : undefined);
    }
    const r = await replicate(cfg, {
      region: values.region,
      stateMachineArn: arn,
      ...(values.database ? { databaseId: values.database } : {}),
      ...(timeoutS ? { timeoutMs: timeoutS * 1000 } : {}),
    });
    const markedLine = marked === undefined ? "" : `marked ${marked.marked} of ${marked.examined} record(s) in ${marked.databases} database(s) as missing in ${values.region}\n`;
    print(values.json, marked === undefined ? r : { ...r, marked }, () => `${markedLine}replicate ${values.region}: ${JSON.stringify(r.output)} (${r.executionId})`);
    return 0;
  },
});
