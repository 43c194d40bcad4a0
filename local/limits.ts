/**
 * AWS Step Functions' execution limits, enforced on the local stack so that
 * a design that only works because aws-local-stepfunctions is lenient fails
 * here as it would in AWS (docs/decisions.md, "The local stack enforces
 * Step Functions' state and history limits"):
 *
 *   - Payload: a state's input or output, a Task's input (after Parameters)
 *     or result (before ResultSelector), a Map iteration's input/output and
 *     the execution's input and output are at most 262,144 bytes (256 KiB,
 *     the UTF-8 of the JSON). Past it the execution fails with
 *     `States.DataLimitExceeded`, a terminal error: no Catch (States.ALL
 *     included) handles it and no Retry repeats it.
 *   - History (Standard workflows only; Express has none): at most 25,000
 *     events. The count is a conservative estimate from the library's event
 *     log (see `eventsOf`); past it the execution fails with
 *     `Local.HistoryLimitExceeded` (AWS fails such an execution; the name is
 *     ours, as AWS gives none to catch).
 *
 * How: `guardTask` wraps each Task's local handler (input and result are
 * checked synchronously, where the handler sees them), `runGuarded` consumes
 * the execution's event log (every state's input and output, Map
 * iterations' included, the execution's output) and counts history events.
 * A violation aborts the execution at once (so no Catch or Retry runs after
 * it) and the run rejects with the violation, never with what the
 * execution did afterwards.
 */
import type { StateMachine } from "aws-local-stepfunctions";

/** Step Functions' payload quota: 256 KiB of UTF-8 JSON per state input/output. */
export const STATE_PAYLOAD_LIMIT_BYTES = 262_144;
/** Step Functions' history quota of a Standard execution. */
export const HISTORY_EVENT_LIMIT = 25_000;

export const DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded";
export const HISTORY_LIMIT_EXCEEDED = "Local.HistoryLimitExceeded";

export interface ExecutionLimits {
  /** Default STATE_PAYLOAD_LIMIT_BYTES. */
  payloadBytes?: number;
  /** Default HISTORY_EVENT_LIMIT; `undefined` with `standard: false` (Express: no history quota). */
  historyEvents?: number;
  /** A Standard workflow (history counted); Express workflows are not. */
  standard: boolean;
}

/** A limit an execution went past: `name` is the Step Functions error, `message` the cause. */
export class StateLimitError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Bytes of `value` as Step Functions measures a payload: the UTF-8 of its JSON. */
export function payloadBytes(value: unknown): number {
  const text = JSON.stringify(value === undefined ? null : value);
  return Buffer.byteLength(text, "utf8");
}

/** One execution's limits and what it has used of them. */
export class ExecutionGuard {
  readonly payloadLimit: number;
  readonly historyLimit: number | undefined;
  /** History events counted so far (Standard workflows). */
  events = 0;
  /** States entered so far (Map iterations' included): Step Functions Standard bills these transitions. */
  transitions = 0;
  /** The largest payload seen (bytes) and where. */
  largest = { bytes: 0, where: "" };
  violation: StateLimitError | undefined;
  private abort: (() => void) | undefined;

  constructor(
    readonly workflow: string,
    limits: ExecutionLimits,
  ) {
    this.payloadLimit = limits.payloadBytes ?? STATE_PAYLOAD_LIMIT_BYTES;
    this.historyLimit = limits.standard ? (limits.historyEvents ?? HISTORY_EVENT_LIMIT) : undefined;
  }

  /** How to stop the execution when a limit is passed (its `abort`). */
  attach(abort: () => void): void {
    this.abort = abort;
    if (this.violation) abort();
  }

  /** Throws the violation if there was one (a Task must not run after it). */
  throwIfViolated(): void {
    if (this.violation) throw this.violation;
  }

  /** Checks one payload; past the limit records the violation, aborts and throws it. */
  payload(value: unknown, where: string): void {
    const bytes = payloadBytes(value);
    if (bytes > this.largest.bytes) this.largest = { bytes, where };
    if (bytes > this.payloadLimit) {
      this.fail(
        new StateLimitError(
          DATA_LIMIT_EXCEEDED,
          `${where} in workflow ${this.workflow} is ${bytes} bytes, over Step Functions' limit of ${this.payloadLimit} bytes (256 KiB) for a state's input or output`,
        ),
      );
    }
  }

  /** Counts history events; past the limit records the violation, aborts and throws it. */
  count(n: number, where: string): void {
    this.events += n;
    if (this.historyLimit !== undefined && this.events > this.historyLimit) {
      this.fail(
        new StateLimitError(
          HISTORY_LIMIT_EXCEEDED,
          `workflow ${this.workflow} went past Step Functions' limit of ${this.historyLimit} history events of a Standard execution at ${where} (${this.events} counted)`,
        ),
      );
    }
  }

  private fail(e: StateLimitError): never {
    if (!this.violation) {
      this.violation = e;
      this.abort?.();
    }
    throw this.violation;
  }
}

type Handler = (input: unknown) => Promise<unknown>;

/** A Task's local handler under the guard: its input and its result are payloads. */
export function guardTask(guard: ExecutionGuard, state: string, handler: Handler): Handler {
  return async (input) => {
    guard.throwIfViolated();
    guard.payload(input, `the input of Task state ${state}`);
    const result = await handler(input);
    guard.throwIfViolated();
    guard.payload(result, `the result of Task state ${state}`);
    return result;
  };
}

/** The library's event log entry, as far as the guard reads it. */
interface LogEvent {
  type: string;
  input?: unknown;
  output?: unknown;
  index?: number;
  state?: { name: string; type: string; input?: unknown; output?: unknown };
  parentState?: { name: string };
}

/**
 * History events AWS would record for one event of the library's log
 * (conservative: never fewer than AWS):
 *   ExecutionStarted / Succeeded / Failed: 1;
 *   a state entered: 1 (+1 MapStateStarted / ParallelStateStarted);
 *   a state exited: 1 (+3 for a Task: TaskScheduled, TaskStarted,
 *   TaskSucceeded; +1 MapStateSucceeded / ParallelStateSucceeded);
 *   a state failed: 1 (+3 for a Task attempt: scheduled, started, failed);
 *   a state caught or retried: 1;
 *   a Map iteration started, succeeded or failed: 1 each (and every state
 *   inside it counts as above); a Parallel branch likewise.
 */
export function eventsOf(e: LogEvent): number {
  const type = e.state?.type;
  const nested = type === "Map" || type === "Parallel" ? 1 : 0;
  switch (e.type) {
    case "StateEntered":
      return 1 + nested;
    case "StateExited":
      return 1 + (type === "Task" ? 3 : 0) + nested;
    case "StateFailed":
      return 1 + (type === "Task" ? 3 : 0);
    default:
      return 1;
  }
}

/** Where an event happened, for messages: "state Thaw" or "state Copy (Map iteration 12)". */
function whereOf(e: LogEvent): string {
  const name = e.state?.name ?? e.parentState?.name;
  if (name === undefined) return "the execution";
  return `state ${name}${e.index === undefined ? "" : ` (Map iteration ${e.index})`}`;
}

/** Reads the execution's event log to its end, checking every payload and counting history. */
async function watch(events: AsyncGenerator<unknown>, guard: ExecutionGuard): Promise<void> {
  for await (const raw of events) {
    const e = raw as LogEvent;
    try {
      guard.count(eventsOf(e), whereOf(e));
      if (e.type === "StateEntered") guard.transitions++;
      switch (e.type) {
        case "ExecutionStarted":
          guard.payload(e.input, "the execution input");
          break;
        case "ExecutionSucceeded":
          guard.payload(e.output, "the execution output");
          break;
        case "StateEntered":
          guard.payload(e.state?.input, `the input of ${whereOf(e)}`);
          break;
        case "StateExited":
          guard.payload(e.state?.output, `the output of ${whereOf(e)}`);
          break;
      }
    } catch {
      // The violation is recorded (and the execution aborted); read on so the log closes.
    }
  }
}

type RunOptions = Parameters<StateMachine["run"]>[1];

/**
 * Runs `machine` with the guard: resolves with the execution's output, or
 * rejects with the guard's violation (StateLimitError) when a limit was
 * passed, else with the execution's own failure.
 */
export async function runGuarded(machine: StateMachine, input: unknown, options: RunOptions, guard: ExecutionGuard): Promise<unknown> {
  const execution = machine.run(input as never, options);
  guard.attach(() => execution.abort());
  const watching = watch(execution.eventLogs, guard);
  let output: unknown;
  let failure: unknown;
  let failed = false;
  try {
    output = await execution.result;
  } catch (e) {
    failed = true;
    failure = e;
  }
  // The log closes with the execution's last event (succeeded, failed or aborted).
  await watching;
  if (guard.violation) throw guard.violation;
  if (failed) throw failure;
  return output;
}
