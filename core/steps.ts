/**
 * Lambda timeouts of the workflow steps by ASL placeholder, derived from the
 * one declaration of every workflow (core/workflows.ts): infra/ deploys each
 * function with its timeout, and the local stack (local/stack.ts) fails a
 * Task that runs longer the way AWS does.
 */
import { STEPS_BY_PLACEHOLDER } from "./workflows.js";

export const STEP_TIMEOUT_SECONDS: Readonly<Record<string, number>> = Object.fromEntries(
  [...STEPS_BY_PLACEHOLDER].map(([placeholder, s]) => [placeholder, s.timeoutSeconds]),
);
