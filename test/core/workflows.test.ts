/**
 * The one declaration of every workflow (core/workflows.ts) is complete and
 * true: each ASL file calls exactly the steps declared for it, every step's
 * handler module exists and exports its handler, and each function is
 * deployed by one workflow only.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SHARED_FUNCTIONS, STEPS_BY_PLACEHOLDER, WORKFLOW_DEFINITIONS, WORKFLOW_IDS, functionOf, placeholdersOf, stepsOfShared, type SharedFunctionName, type StepDefinition } from "../../core/workflows.js";
import { aslPlaceholders } from "../../infra/asl.js";
import { PACKAGE_ROOT, STATEMACHINES_DIR } from "../../local/paths.js";

describe("workflow definitions", () => {
  it.each(WORKFLOW_IDS)("%s: its ASL calls exactly the functions it declares and borrows", (id) => {
    // Act
    const inAsl = aslPlaceholders(join(STATEMACHINES_DIR, WORKFLOW_DEFINITIONS[id].asl)).filter((p) => p.endsWith("FunctionArn"));

    // Assess
    expect(inAsl).toEqual([...placeholdersOf(id)].sort());
  });

  it.each(WORKFLOW_IDS)("%s: every step's handler module exists and exports its handler", async (id) => {
    for (const s of Object.values(WORKFLOW_DEFINITIONS[id].steps) as StepDefinition[]) {
      // Act
      const exists = existsSync(join(PACKAGE_ROOT, `${s.module}.ts`));
      const specifier = `../../${s.module}.js`;
      const mod = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;

      // Assess
      expect(exists, s.module).toBe(true);
      expect(typeof mod[s.handler], `${s.module} ${s.handler}`).toBe("function");
    }
  });

  it("deploys each function once, and every borrowed one is deployed by another workflow", () => {
    // Prepare
    const owned = WORKFLOW_IDS.flatMap((id) => Object.values(WORKFLOW_DEFINITIONS[id].steps as Record<string, StepDefinition>).map((s) => s.placeholder));

    // Assess
    expect(new Set(owned).size).toBe(owned.length);
    expect(STEPS_BY_PLACEHOLDER.size).toBe(owned.length);
    for (const id of WORKFLOW_IDS) {
      for (const b of WORKFLOW_DEFINITIONS[id].borrows) expect(STEPS_BY_PLACEHOLDER.get(b)?.workflow, b).not.toBe(id);
    }
  });

  it("stays within Lambda's limits: 128 MiB to 10,240 MiB, 15 minutes, and an Express workflow's steps within its 5 minutes", () => {
    for (const id of WORKFLOW_IDS) {
      const w = WORKFLOW_DEFINITIONS[id];
      for (const s of Object.values(w.steps) as StepDefinition[]) {
        expect(s.memoryMiB, s.placeholder).toBeGreaterThanOrEqual(128);
        expect(s.memoryMiB, s.placeholder).toBeLessThanOrEqual(10_240);
        expect(s.timeoutSeconds, s.placeholder).toBeLessThanOrEqual(15 * 60);
        if (w.type === "EXPRESS") expect(s.timeoutSeconds, s.placeholder).toBeLessThan(5 * 60);
      }
    }
  });

  it("runs a shared function's steps each under its own timeout: every Task that calls one passes its step name and states its TimeoutSeconds", () => {
    // Prepare: every Task state of every ASL, by the placeholder it calls
    type State = { Type: string; Resource?: string; TimeoutSeconds?: number; Parameters?: Record<string, unknown>; States?: Record<string, State>; ItemProcessor?: { States: Record<string, State> }; Iterator?: { States: Record<string, State> }; Branches?: Array<{ States: Record<string, State> }> };
    const tasks: Array<{ workflow: string; state: string; task: State }> = [];
    const walk = (workflow: string, states: Record<string, State>): void => {
      for (const [state, st] of Object.entries(states)) {
        if (st.Type === "Task") tasks.push({ workflow, state, task: st });
        for (const inner of [st.ItemProcessor?.States, st.Iterator?.States, ...(st.Branches ?? []).map((b) => b.States)]) if (inner) walk(workflow, inner);
      }
    };
    for (const id of WORKFLOW_IDS) walk(id, (JSON.parse(readFileSync(join(STATEMACHINES_DIR, WORKFLOW_DEFINITIONS[id].asl), "utf8")) as { States: Record<string, State> }).States);

    // Act
    const shared = tasks.flatMap(({ workflow, state, task }) => {
      const step = STEPS_BY_PLACEHOLDER.get(task.Resource?.replace(/^\$\{(.*)\}$/, "$1") ?? "");
      return step?.fn === undefined ? [] : [{ where: `${workflow} ${state}`, step, task }];
    });

    // Assess
    expect(shared.length).toBeGreaterThanOrEqual(stepsOfShared("SnapshotIngestChain").length);
    for (const { where, step, task } of shared) {
      expect(task.Parameters?.step, where).toBe(step.name);
      expect(task.TimeoutSeconds, where).toBe(step.timeoutSeconds);
    }
  });

  it("deploys a shared function with the memory of its steps and the longest of their timeouts, from a module that handles exactly them", async () => {
    for (const fn of Object.keys(SHARED_FUNCTIONS) as SharedFunctionName[]) {
      // Prepare
      const steps = [...STEPS_BY_PLACEHOLDER.values()].filter((s) => s.fn === fn);
      // Act
      const mod = (await import(/* @vite-ignore */ `../../${SHARED_FUNCTIONS[fn].module}.js`)) as Record<string, unknown>;
      // Assess
      expect(steps.length, fn).toBeGreaterThan(1);
      expect(Math.max(...steps.map((s) => s.timeoutSeconds)), fn).toBe(SHARED_FUNCTIONS[fn].timeoutSeconds);
      for (const s of steps) expect(functionOf(s), s.name).toMatchObject({ key: fn, module: SHARED_FUNCTIONS[fn].module, memoryMiB: s.memoryMiB });
      expect(typeof mod.handler, fn).toBe("function");
    }
  });
});
