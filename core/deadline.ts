/**
 * Deadlines on the monotonic clock. The wall clock can step (NTP, a VM
 * resumed): a deadline taken from Date.now() then expires early or never
 * (a CI run saw "not recorded within 30 s" 12 s after the wait began).
 * performance.now() only moves forward, so every wait with a time limit
 * uses one of these. Reading a clock is the only thing here that is not
 * pure; `now` can be given for tests.
 */
export interface Deadline {
  /** Milliseconds left, never below 0. */
  left(): number;
  /** Whether the time is up. */
  passed(): boolean;
}

export function deadlineIn(ms: number, now: () => number = () => performance.now()): Deadline {
  const at = now() + ms;
  return {
    left: () => Math.max(0, at - now()),
    passed: () => now() >= at,
  };
}
