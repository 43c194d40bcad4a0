/**
 * wal-push's fast path: hand the request to the resident agent over its Unix
 * socket. Resolves undefined when no agent answers (no socket, refused, or it
 * went away mid-request) so the caller pushes by itself — never a lost
 * segment, at worst a slower one. Light imports only.
 */
import { createConnection } from "node:net";
import type { ResidentRequest, ResidentResponse } from "./resident.js";

export type ResidentAnswer = Exclude<ResidentResponse, { decline: string }>;

/** The agent's answer, or undefined when the caller must push by itself (no agent, gone, or declined). */
export function askResidentAgent(socketPath: string, req: ResidentRequest): Promise<ResidentAnswer | undefined> {
  return new Promise((resolve) => {
    let answered = false;
    let buf = "";
    const sock = createConnection(socketPath);
    const done = (r: ResidentAnswer | undefined): void => {
      if (answered) return;
      answered = true;
      sock.destroy();
      resolve(r);
    };
    sock.setEncoding("utf8");
    sock.setTimeout(req.timeoutMs + 10_000, () => done(undefined));
    sock.on("connect", () => sock.write(JSON.stringify(req) + "\n"));
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        try {
          const r = JSON.parse(buf.slice(0, nl)) as ResidentResponse;
          done("decline" in r ? undefined : r);
        } catch {
          done(undefined);
        }
      }
    });
    sock.on("error", () => done(undefined));
    sock.on("close", () => done(undefined));
  });
}
