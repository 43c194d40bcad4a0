/**
 * Progress of long agent work (`walvault snapshot push`, restores) on a
 * terminal: one status line on stderr, redrawn in place at most 4 times a
 * second. When stderr is not a TTY (a cron job, a pipe, a test) nothing is
 * ever written: logs and `--json` output stay clean.
 *
 *   snapshot 20261121T073000Z-ab12cd  1.21 GB read  84.2 MB/s  new 96.0 MB  reused 1.11 GB  chunks 18 433 (1 530 new)
 *   restore pg-main 20261121T073000Z-ab12cd  412 MB of 1.59 GB (26%)  384.1 MB/s  files 310/979  ETA 3 s
 *
 * One unit system on every screen: decimal bytes (kB, MB, GB: 10^3) and MB/s.
 */

export interface TransferStats {
  /** Raw bytes read from the source so far. */
  bytesRead: number;
  /** Raw bytes of chunks uploaded because the vault did not have them. */
  newBytes: number;
  /** Raw bytes of chunks the vault (or this push) already had. */
  reusedBytes: number;
  /** Chunk references so far. */
  chunks: number;
  /** Chunks uploaded. */
  newChunks: number;
  /** Optional phase shown at the end of the line ("uploading manifest", "waiting for ingest 12 s"). */
  phase?: string;
}

export interface Progress {
  /** Records the latest figures; redraws if the last redraw is at least 250 ms old. */
  update(stats: TransferStats): void;
  /** Draws the final figures and ends the line. Later calls do nothing. */
  done(stats?: TransferStats): void;
}

export interface ProgressOptions {
  /** Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Default: the stream is a TTY. false forces it off, true forces it on (tests). */
  enabled?: boolean;
  /** Prefix of the line, e.g. "snapshot 20261121T073000Z-ab12cd". */
  label: string;
  /** Minimum interval between redraws, ms (default 250: at most 4 per second). */
  intervalMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

const UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/** 1234567 -> "1.23 MB" (decimal units, like the rates). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1000) return `${Math.max(0, Math.round(Number.isFinite(n) ? n : 0))} B`;
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${UNITS[i]}`;
}

/** Bytes per second as MB/s (10^6), one decimal. */
export function formatRate(bytes: number, seconds: number): string {
  if (!(seconds > 0)) return "– MB/s";
  return `${(bytes / seconds / 1e6).toFixed(1)} MB/s`;
}

function group(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, " ");
}

/** The status line (exported for tests). */
export function progressLine(label: string, s: TransferStats, elapsedSeconds: number): string {
  const parts = [
    label,
    `${formatBytes(s.bytesRead)} read`,
    formatRate(s.bytesRead, elapsedSeconds),
    `new ${formatBytes(s.newBytes)}`,
    `reused ${formatBytes(s.reusedBytes)}`,
    `chunks ${group(s.chunks)} (${group(s.newChunks)} new)`,
  ];
  if (s.phase) parts.push(s.phase);
  return parts.join("  ");
}

/** One status line, redrawn in place; see createStatusLine. */
export interface StatusLine {
  /** Records the latest text (computed when drawn); redraws if the last redraw is at least the interval old. */
  update(text: () => string): void;
  /** Draws the final text (default: the latest) and ends the line. Later calls do nothing. */
  done(text?: () => string): void;
}

/** A status line on `stream` when it is a TTY; a no-op otherwise. */
export function createStatusLine(options: Omit<ProgressOptions, "label">): StatusLine {
  const stream = options.stream ?? process.stderr;
  const enabled = options.enabled ?? stream.isTTY === true;
  if (!enabled) return { update: () => undefined, done: () => undefined };
  const now = options.now ?? Date.now;
  const interval = options.intervalMs ?? 250;
  let last = -Infinity;
  let latest: (() => string) | undefined;
  let finished = false;
  const draw = (text: () => string, end: boolean): void => {
    const line = text();
    const width = stream.columns && stream.columns > 20 ? stream.columns - 1 : undefined;
    const shown = width !== undefined && line.length > width ? `${line.slice(0, width - 1)}…` : line;
    // \r: back to column 0; ESC[K: erase what a longer previous line left.
    stream.write(`\r${shown}\x1b[K${end ? "\n" : ""}`);
  };
  return {
    update(text) {
      if (finished) return;
      latest = text;
      const t = now();
      if (t - last < interval) return;
      last = t;
      draw(text, false);
    },
    done(text) {
      if (finished) return;
      finished = true;
      const final = text ?? latest;
      if (final) draw(final, true);
    },
  };
}

/** A progress line on `stream` when it is a TTY; a no-op otherwise. */
export function createProgress(options: ProgressOptions): Progress {
  const line = createStatusLine(options);
  const now = options.now ?? Date.now;
  const started = now();
  const text = (s: TransferStats) => (): string => progressLine(options.label, s, (now() - started) / 1000);
  return {
    update: (stats) => line.update(text(stats)),
    done: (stats) => line.done(stats === undefined ? undefined : text(stats)),
  };
}

/** What a restore has done so far (agent/restore.ts RestoreProgress, structurally: this module loads nothing heavy). */
export interface RestoreFigures {
  phase: "planned" | "files" | "wal" | "finishing" | "done";
  filesDone: number;
  filesTotal: number;
  /** Raw bytes written to files so far / in the snapshot. */
  bytesDone: number;
  bytesTotal: number;
  /** WAL segments laid out (generic databases; PostgreSQL fetches its WAL during recovery). */
  walDone: number;
  walTotal: number;
}

/** 75 -> "1 min 15 s", 9 -> "9 s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A restore's status line (exported for tests): bytes of the total, rate, files, ETA from the rate so far, WAL when there is any. */
export function restoreProgressLine(label: string, p: RestoreFigures, elapsedSeconds: number): string {
  const pct = p.bytesTotal > 0 ? Math.floor((p.bytesDone / p.bytesTotal) * 100) : 100;
  const parts = [label, `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)} (${pct}%)`, formatRate(p.bytesDone, elapsedSeconds), `files ${group(p.filesDone)}/${group(p.filesTotal)}`];
  const rate = elapsedSeconds > 0 ? p.bytesDone / elapsedSeconds : 0;
  if (p.phase === "files" && rate > 0 && p.bytesDone < p.bytesTotal) parts.push(`ETA ${formatDuration((p.bytesTotal - p.bytesDone) / rate)}`);
  if (p.walTotal > 0) parts.push(`WAL ${group(p.walDone)}/${group(p.walTotal)}`);
  if (p.phase === "planned") parts.push("planned, reading the manifest");
  if (p.phase === "finishing") parts.push("syncing and renaming into place");
  return parts.join("  ");
}
