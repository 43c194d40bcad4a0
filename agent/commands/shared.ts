/** What the command modules share: on-demand loading of the config and clients, and output. */
export async function heavy() {
  const [config, clients] = await Promise.all([import("../config.js"), import("../clients.js")]);
  return { loadConfig: config.loadConfig, requireDatabase: config.requireDatabase, agentClients: clients.agentClients };
}

export type Print = (json: boolean, value: unknown, human: () => string) => void;

export const print: Print = (json, value, human) => {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + "\n" : human() + "\n");
};

/** Writes to stdout, waiting while its buffer is full (a long listing piped to a slow reader never piles up in memory). */
export function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.stdout.write(text, (e) => (e ? reject(e) : undefined))) resolve();
    else process.stdout.once("drain", resolve);
  });
}

export const GROUPS = {
  archiving: "archiving (PostgreSQL)",
  generic: "generic databases",
  snapshots: "snapshots and restore",
  retention: "retention",
  verification: "verification",
  admin: "administration",
} as const;

export const REGION_HELP = "replica region to work against (default: the primary)";

/** The configuration for reading one region's vault (--region; default the primary), and the clients' factory. */
export async function regionalSetup(values: { config?: string | undefined; database?: string | undefined }, region: string | undefined) {
  const { loadConfig, requireDatabase, agentClients } = await heavy();
  const { regionalConfig } = await import("../regions.js");
  return { cfg: regionalConfig(loadConfig(values), region), requireDatabase, agentClients };
}

/** Refuses an id the catalog does not know (an empty listing would read as "nothing archived"). */
export async function requireRegistered(catalog: { getDatabase(id: string): Promise<unknown> }, databaseId: string): Promise<void> {
  if (await catalog.getDatabase(databaseId)) return;
  const { UnknownDatabaseError } = await import("../../core/errors.js");
  throw new UnknownDatabaseError(`database '${databaseId}' is not registered in the catalog (walvault db add ${databaseId} registers it)`);
}
