/**
 * What AWS takes time for that the local emulators do at once (issue #13):
 * a WAL segment is "stored" only after S3 -> EventBridge -> an Express
 * execution -> its Lambda steps, some of them cold. The local stack waits
 * these out where they happen when a latency is configured, so a benchmark
 * or test of archiving sees what a database in AWS would.
 *
 * The defaults (AWS_LATENCY) are published or widely measured figures,
 * stated in docs/local-latency.md and in bench:wal-live's output; each can
 * be changed (WALVAULT_LOCAL_LATENCY, `walvault local up --latency`).
 * NO_LATENCY, the default of the stack and the tests, adds nothing.
 */
import { ConfigError } from "../core/errors.js";

export interface CloudLatency {
  /** An Object Created event in the incoming bucket until the workflow it starts begins (S3 -> EventBridge -> Step Functions). */
  eventDeliveryMs: number;
  /** StartExecution (the agent's wal-record, on-demand workflows) until the execution's first state. */
  startExecutionMs: number;
  /** Each Lambda Task: Step Functions invoking the function and taking its result, on top of the handler's own time. */
  invokeMs: number;
  /** A new sandbox's provisioning before its code loads (the code's load itself is real here: the sandbox loads the bundle). */
  coldStartMs: number;
  /** A sandbox idle this long is reclaimed, so the function's next invocation is cold again. */
  idleReclaimMs: number;
}

export const NO_LATENCY: CloudLatency = { eventDeliveryMs: 0, startExecutionMs: 0, invokeMs: 0, coldStartMs: 0, idleReclaimMs: Number.POSITIVE_INFINITY };

/**
 * AWS as measured and published (docs/local-latency.md has the sources):
 * S3 event notifications "typically delivered in seconds" (Amazon S3 User
 * Guide), about one second to EventBridge; StartExecution ~50 ms; a Lambda
 * invoke from Step Functions ~25 ms; a Node.js 22 cold start ~300 ms for a
 * ~1 MB bundle, of which ~100 ms is the bundle's load that happens here for
 * real, so 200 ms are added; sandboxes reclaimed after ~5 idle minutes.
 */
export const AWS_LATENCY: CloudLatency = { eventDeliveryMs: 1000, startExecutionMs: 50, invokeMs: 25, coldStartMs: 200, idleReclaimMs: 5 * 60_000 };

const KEYS = Object.keys(NO_LATENCY) as Array<keyof CloudLatency>;

/**
 * A latency setting: "none", "aws", or "aws" / "none" followed by
 * comma-separated overrides (`aws,eventDeliveryMs=2000`). ConfigError naming
 * the part that is not one.
 */
export function parseLatency(text: string): CloudLatency {
  const [base, ...overrides] = text.split(",").map((p) => p.trim());
  let l: CloudLatency;
  if (base === "none" || base === "") l = { ...NO_LATENCY };
  else if (base === "aws") l = { ...AWS_LATENCY };
  else throw new ConfigError(`latency '${text}' does not start with 'aws' or 'none' (e.g. aws,eventDeliveryMs=2000)`);
  for (const o of overrides) {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(o);
    const key = m?.[1] as keyof CloudLatency | undefined;
    if (!m || key === undefined || !KEYS.includes(key)) {
      throw new ConfigError(`latency override '${o}' is not <name>=<milliseconds> with a name of ${KEYS.join(", ")}`);
    }
    l[key] = Number(m[2]);
  }
  return l;
}

/** One line saying what is delayed, for the stack's and the benchmarks' output. */
export function describeLatency(l: CloudLatency): string {
  if (KEYS.every((k) => l[k] === NO_LATENCY[k])) return "no added cloud latency";
  const reclaim = Number.isFinite(l.idleReclaimMs) ? `${l.idleReclaimMs / 1000} s` : "never";
  return `cloud latency: event delivery ${l.eventDeliveryMs} ms, StartExecution ${l.startExecutionMs} ms, Lambda invoke ${l.invokeMs} ms, cold start +${l.coldStartMs} ms, idle sandboxes reclaimed after ${reclaim}`;
}

/** Resolves after `ms` (at once for 0). */
export function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
