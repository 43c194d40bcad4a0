import { defineConfig } from "vitest/config";
import LongestFirst from "./test/support/sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One DynamoDB Local for every suite's in-memory catalog (a table each).
    globalSetup: ["test/support/shared-dynamodb.ts"],
    // toEqual on byte arrays as one memcmp (16 MiB segments took a minute each).
    setupFiles: ["test/support/byte-equality.ts"],
    // The minutes-long end-to-end suites first: the two workers then end together.
    sequence: { sequencer: LongestFirst },
    pool: "forks",
    // Two test files at a time, also on 2 cores: most of a suite's time is
    // spent waiting on the emulators, PostgreSQL and child processes, and
    // every suite makes its own stack (free ports, its own temp dirs), so
    // two run side by side. Vitest's default
    // on 2 cores is one.
    maxWorkers: 2,
    minWorkers: 1,
    // A hang detector, not a speed check: suites that drive the local stack
    // run several times slower when the host is loaded.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ["default"],
  },
});
