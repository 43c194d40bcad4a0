#!/usr/bin/env node
/**
 * This repository's walvault (bin/walvault): the agent's commands
 * (agent/cli.ts) plus the developer commands that run the embedded stack,
 * `local up` and `local down` (local/commands/). The installed agent has
 * neither them nor anything of local/ (local/build-agent.ts).
 */
import { startIfSupported } from "../agent/node-version.js";
import localDown from "./commands/local-down.js";
import localUp from "./commands/local-up.js";

startIfSupported(() => import("../agent/run-cli.js").then(({ runCli }) => runCli(process.argv.slice(2), [localUp, localDown])));
