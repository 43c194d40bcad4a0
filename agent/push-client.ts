/**
 * wal-push's fast path: hand the request to the resident agent over its Unix
 * socket. Resolves undefined when no agent answers (no socket, refused, or it
 * went away mid-request) so the caller pushes by itself — never a lost
 * segment, at worst a slower one. Light imports only.
 */
import { createConnection } from "node:net";
import { QuarantinedError, SegmentConflictError } from "../core/errors.js";
import type { AgentStatus, PushRequest, ResidentRequest, ResidentResponse } from "./resident.js";

export type ResidentAnswer = Exclude<ResidentResponse, { decline: string } | { status: AgentStatus }>;

/** The agent's answer, or undefined when the caller must push by itself (no agent, gone, or declined). */
export function askResidentAgent(socketPath: string, req: PushRequest): Promise<ResidentAnswer | undefined> {
  return ask(socketPath, req, req.timeoutMs + 10_000) as Promise<ResidentAnswer | undefined>;
}

/** The running agent's own view of `databaseId` (backlog, pushes ahead), or undefined when none answers within 2 s. */
export async function askAgentStatus(socketPath: string, databaseId: string): Promise<AgentStatus | undefined> {
  const r = await ask(socketPath, { op: "status", databaseId }, 2000);
  return r?.ok && "status" in r ? r.status : undefined;
}

function ask(socketPath: string, req: ResidentRequest, timeoutMs: number): Promise<Exclude<ResidentResponse, { decline: string }> | undefined> {
  return new Promise((resolve) => {
    let answered = false;
    let buf = "";
    const sock = createConnection(socketPath);
    const done = (r: Exclude<ResidentResponse, { decline: string }> | undefined): void => {
      if (answered) return;
      answered = true;
      sock.destroy();
      resolve(r);
    };
    sock.setEncoding("utf8");
    sock.setTimeout(timeoutMs, () => done(undefined));
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

/**
 * Errors in which the agent's answer is final about the segment: its bytes
 * are bad (a conflict with what is archived, or ingest quarantined them).
 * Pushing by ourselves would only upload the same bad bytes again.
 */
const DEFINITIVE_ERRORS: ReadonlySet<string> = new Set([SegmentConflictError.name, QuarantinedError.name]);

/**
 * wal-push through the resident agent. A defined answer only when the agent's
 * answer is definitive about the segment: stored (or already archived with
 * these bytes) → exit 0 with its result; a conflict or a quarantine → that
 * error's exit code and message. Undefined when the agent's own path failed
 * (no agent, gone mid-request, declined, old endpoints, S3/DynamoDB out of its
 * reach, any other error): the caller then pushes by itself, and whatever is
 * really wrong with the segment it finds out first-hand.
 */
export async function pushThroughAgent(
  socketPath: string,
  req: PushRequest,
): Promise<{ exitCode: number; result?: unknown; message?: string } | undefined> {
  const answer = await askResidentAgent(socketPath, req);
  if (!answer) return undefined;
  if (answer.ok) return { exitCode: 0, result: answer.result };
  if (DEFINITIVE_ERRORS.has(answer.error.name)) return { exitCode: answer.error.exitCode, message: answer.error.message };
  return undefined;
}
