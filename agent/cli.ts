#!/usr/bin/env node
/**
 * walvault — the agent beside the database: the installed agent's entry
 * (local/build-agent.ts packages it; this repository's bin/walvault runs
 * local/dev-cli.ts, the same commands plus `local up|down`).
 *
 * The Node.js version is checked first, before anything that needs it is
 * loaded: on an unsupported Node the one line says so and what to do.
 */
import { startIfSupported } from "./node-version.js";

startIfSupported(() => import("./run-cli.js").then(({ runCli }) => runCli(process.argv.slice(2))));
