/**
 * Whether the restore workflow thaws (restores archived objects before the
 * plan is handed out) when its input does not say (`"thaw": true|false`).
 * WALVAULT_THAW, read where the workflow is defined (infra/primary-stack.ts
 * at synth time, local/stack.ts when the local stack starts), is one of:
 * - "auto" (the default): on only when the vault lifecycle moves objects to
 *   a class that must be restored before a GET (GLACIER, DEEP_ARCHIVE).
 *   infra/vault.ts transitions only to STANDARD_IA and GLACIER_IR, which
 *   read instantly, so today "auto" is off;
 * - "on" / "off": always / never, whatever the lifecycle.
 * Pure: the caller passes the setting and the lifecycle's storage classes.
 */
import { ConfigError } from "./errors.js";

/** Storage classes whose objects must be restored (S3 RestoreObject) before a GET. */
export const ARCHIVE_STORAGE_CLASSES: ReadonlySet<string> = new Set(["GLACIER", "DEEP_ARCHIVE"]);

export const THAW_SETTINGS = ["auto", "on", "off"] as const;
export type ThawSetting = (typeof THAW_SETTINGS)[number];

/** WALVAULT_THAW's value (absent or empty: "auto"); ConfigError naming the accepted values otherwise. */
export function parseThawSetting(value: string | undefined): ThawSetting {
  if (value === undefined || value === "") return "auto";
  if ((THAW_SETTINGS as readonly string[]).includes(value)) return value as ThawSetting;
  throw new ConfigError(`WALVAULT_THAW must be ${THAW_SETTINGS.join(", ")}, not '${value}'`);
}

/** Whether a restore thaws by default, given the setting and the storage classes the vault lifecycle moves objects to. */
export function thawByDefault(setting: ThawSetting, lifecycleClasses: readonly string[]): boolean {
  if (setting !== "auto") return setting === "on";
  return lifecycleClasses.some((c) => ARCHIVE_STORAGE_CLASSES.has(c));
}

/** The value of the restore ASL's ${ThawByDefault} placeholder: "on" or "off". */
export function thawByDefaultSubstitution(setting: ThawSetting, lifecycleClasses: readonly string[]): "on" | "off" {
  return thawByDefault(setting, lifecycleClasses) ? "on" : "off";
}
