import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ServiceUnavailableError } from "../../core/errors.js";
import { freePort, startDynamo, type DynamoEmulator } from "../../local/emulators.js";

const servers: Server[] = [];
const started: DynamoEmulator[] = [];
afterEach(async () => {
  for (const e of started.splice(0)) await e.stop();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A port something else already listens on (on every address, as DynamoDB Local binds 0.0.0.0). */
async function takenPort(): Promise<number> {
  const port = await freePort();
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(port, "0.0.0.0", resolve));
  servers.push(server);
  return port;
}

describe("startDynamo", () => {
  it("on a port already in use, fails as a service that could not start, naming the port, not as a timeout (so that a picked port taken meanwhile is retried on another)", async () => {
    // Prepare
    const port = await takenPort();
    // Act
    const error = await startDynamo({ port }).then(
      (e) => (started.push(e), undefined),
      (e: unknown) => e,
    );
    // Assess
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect((error as Error).message).toMatch(new RegExp(`could not bind port ${port} \\(address already in use\\)`));
  }, 60_000);
});
