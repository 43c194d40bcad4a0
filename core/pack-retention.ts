/**
 * Retention of packs (docs/retention.md, "Packs"): what to do with each pack
 * once the sweep has tallied its chunks (those its index lists; for a
 * repacked pack, or one whose index could not be read, the chunk records
 * pointing at it: store/sweep.ts).
 *
 * A chunk of a pack is *live* when a kept snapshot's manifest references
 * it, *dead* otherwise. Per pack:
 *
 * - keep     nothing to do (live enough, or recorded within the grace period,
 *            or a candidate for less than the grace period);
 * - mark     every chunk is dead: the pack becomes a deletion candidate
 *            (orphanedAt = now); a later run deletes it, a push that reuses
 *            one of its chunks meanwhile clears the mark (CheckReferenced);
 * - unmark   a candidate that is referenced again;
 * - delete   a candidate for longer than the grace period, every chunk still
 *            dead (deleted only by a conditional delete on the orphanedAt
 *            read, so a push that cleared the mark meanwhile wins);
 * - repack   sparse: live bytes below `liveFraction` of its data and at
 *            least `minDeadBytes` dead. Its live chunks move to a new pack;
 *            the old one is then marked and goes through mark → delete like
 *            any other, so it stays readable for the grace period after the
 *            move (a restore that located its chunks just before).
 *
 * Pure: no I/O.
 */

export interface PackTally {
  name: string;
  /** Object size (data, index, footer). */
  size: number;
  /** Chunks in its index. */
  entries: number;
  /** Bytes of chunk data. */
  dataLength: number;
  recordedAt: Date;
  orphanedAt?: Date | undefined;
  /** Its chunks (as tallied: store/sweep.ts) that a kept snapshot references, and their stored bytes. */
  liveChunks: number;
  liveBytes: number;
  /** Its chunks (as tallied) that no kept snapshot references, and their stored bytes. */
  deadChunks: number;
  deadBytes: number;
}

export interface PackThresholds {
  /** A pack whose live bytes are below this fraction of its data is sparse (default 0.5). */
  liveFraction: number;
  /** …provided at least this many bytes of it are dead (default 1 MiB): repacking to save less is not worth the requests. */
  minDeadBytes: number;
}

export const DEFAULT_PACK_THRESHOLDS: PackThresholds = Object.freeze({ liveFraction: 0.5, minDeadBytes: 1024 * 1024 });

export type PackDecision =
  | { action: "keep"; reason: "live" | "fresh" | "candidate-in-grace" | "sparse-in-grace" }
  | { action: "mark"; reason: "unreferenced" }
  | { action: "unmark"; reason: "referenced-again" }
  | { action: "delete"; reason: "unreferenced-past-grace" }
  | { action: "repack"; reason: "sparse" };

/** Whether the pack's live bytes are few enough, and its dead bytes many enough, to rewrite it. */
export function isSparse(t: PackTally, thresholds: PackThresholds = DEFAULT_PACK_THRESHOLDS): boolean {
  return t.liveChunks > 0 && t.liveBytes < thresholds.liveFraction * t.dataLength && t.deadBytes >= thresholds.minDeadBytes;
}

/**
 * What to do with one pack at `now`. `graceMs` is the chunk sweep's grace
 * period: a pack recorded less than that long ago belongs to a push that may
 * still be under way, and a candidate is deleted only after being one for
 * that long.
 */
export function decidePack(t: PackTally, now: Date, graceMs: number, thresholds: PackThresholds = DEFAULT_PACK_THRESHOLDS): PackDecision {
  const allDead = t.liveChunks === 0;
  const older = (d: Date): boolean => now.getTime() - d.getTime() >= graceMs;
  if (!allDead) {
    if (t.orphanedAt !== undefined) return { action: "unmark", reason: "referenced-again" };
    if (!isSparse(t, thresholds)) return { action: "keep", reason: "live" };
    return older(t.recordedAt) ? { action: "repack", reason: "sparse" } : { action: "keep", reason: "sparse-in-grace" };
  }
  if (!older(t.recordedAt)) return { action: "keep", reason: "fresh" };
  if (t.orphanedAt === undefined) return { action: "mark", reason: "unreferenced" };
  return older(t.orphanedAt) ? { action: "delete", reason: "unreferenced-past-grace" } : { action: "keep", reason: "candidate-in-grace" };
}
