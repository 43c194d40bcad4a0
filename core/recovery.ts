/**
 * PostgreSQL recovery settings for a restore plan: what `walvault restore`
 * appends to the restored cluster's postgresql.auto.conf (the last occurrence
 * of a setting wins, so appending overrides whatever the backup carried).
 * Pure: returns text.
 */
import { InvalidInputError } from "./errors.js";
import type { RestorePlan } from "./restore-plan.js";

export interface RecoverySettingsOptions {
  /** Absolute path of the walvault launcher on the restore host. */
  walvaultBin: string;
  databaseId: string;
  /** Config file wal-fetch must use (else it searches as usual). */
  configPath?: string;
  /** Replica region whose vault wal-fetch reads (restore --region); absent: the primary. */
  region?: string;
}

/** Quotes a word for /bin/sh (restore_command runs through the shell). */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes a value for postgresql.conf. */
export function confQuote(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export function recoverySettings(plan: RestorePlan, opts: RecoverySettingsOptions): Record<string, string> {
  if (plan.kind !== "postgres" || !plan.recoveryTarget) {
    throw new InvalidInputError(`recovery settings are for PostgreSQL restores; this plan is for a ${plan.kind} database`);
  }
  const command = [
    shellQuote(opts.walvaultBin),
    "wal-fetch",
    "--database",
    shellQuote(opts.databaseId),
    ...(opts.configPath ? ["--config", shellQuote(opts.configPath)] : []),
    ...(opts.region ? ["--region", shellQuote(opts.region)] : []),
    "%f",
    "%p",
  ].join(" ");
  const { recovery_target_timeline, ...target } = plan.recoveryTarget;
  return {
    restore_command: command,
    ...Object.fromEntries(Object.entries(target).filter(([, v]) => v !== undefined)),
    recovery_target_timeline,
    recovery_target_action: "promote",
  };
}

/** The lines to append to postgresql.auto.conf. */
export function renderRecoveryConf(settings: Record<string, string>, note: string): string {
  const lines = [`# ${note.replace(/\n/g, " ")}`];
  for (const [k, v] of Object.entries(settings)) {
    if (!/^[a-z_]+$/.test(k)) throw new InvalidInputError(`'${k}' is not a PostgreSQL setting name`);
    lines.push(`${k} = ${confQuote(v)}`);
  }
  return lines.join("\n") + "\n";
}
