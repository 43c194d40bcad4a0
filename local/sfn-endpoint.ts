/**
 * A minimal Step Functions endpoint on loopback for the local stack, so that
 * a CLI in another process (`walvault restore --remote`) starts the local
 * workflows with the real SDK client, exactly as in AWS. It speaks the AWS
 * JSON 1.0 protocol (POST /, `X-Amz-Target: AWSStepFunctions.<Operation>`,
 * `Content-Type: application/x-amz-json-1.0`) and implements three operations:
 *
 *   StartExecution     { stateMachineArn, input?, name? } -> { executionArn, startDate }
 *   DescribeExecution  { executionArn } -> { executionArn, stateMachineArn, name, status,
 *                        startDate, stopDate?, input, output?, error?, cause? }
 *   StartSyncExecution { stateMachineArn, input?, name? } -> answered when the execution is
 *                        over: { executionArn, stateMachineArn, name, status (SUCCEEDED |
 *                        FAILED), startDate, stopDate, input, output?, error?, cause? };
 *                        Express workflows only (StateMachineTypeNotSupported otherwise),
 *                        and, as in AWS, not kept for DescribeExecution
 *
 * with the service's error names (StateMachineDoesNotExist, InvalidArn,
 * InvalidExecutionInput, StateMachineTypeNotSupported, InvalidName, ExecutionAlreadyExists,
 * ExecutionDoesNotExist, UnknownOperationException, SerializationException)
 * as `__type`, HTTP 400. Requests are not authenticated (loopback only).
 * Each workflow is a function from input to output that runs in this process
 * (the local stack runs the ASL on aws-local-stepfunctions); executions are
 * kept in memory (the newest MAX_FINISHED finished ones, and every running one).
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describeError } from "../core/errors.js";

/**
 * One startable workflow. `run` resolves with the execution's output, or
 * rejects with its failure: `error` / `causeText` when the rejection has them
 * (local/stack.ts's RestoreExecutionError), else the Error's name and message.
 */
export interface LocalWorkflow {
  stateMachineArn: string;
  /** `execution`: the name and ARN StartExecution gave it (the context object's $$.Execution.Name / Id). */
  run(input: unknown, execution?: { name: string; executionArn: string }): Promise<unknown>;
  /** An Express workflow (StartSyncExecution runs only these). */
  express?: boolean;
}

export interface SfnEndpointOptions {
  workflows: readonly LocalWorkflow[];
  /** 0 or absent: any free port. */
  port?: number;
}

export interface SfnEndpoint {
  /** e.g. http://127.0.0.1:43125 */
  endpoint: string;
  port: number;
  /** Stops listening (running executions go on in this process). Idempotent. */
  stop(): Promise<void>;
}

/** Finished executions remembered for DescribeExecution. */
export const MAX_FINISHED = 1000;
/** Request bodies larger than this are refused (StartExecution input is at most 256 KiB). */
const MAX_BODY_BYTES = 1024 * 1024;
const STATE_MACHINE_ARN_RE = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;
const EXECUTION_ARN_RE = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[A-Za-z0-9_-]{1,80}:[A-Za-z0-9_-]{1,80}$/;
const NAME_RE = /^[A-Za-z0-9_-]{1,80}$/;

type Status = "RUNNING" | "SUCCEEDED" | "FAILED";

interface Execution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: Status;
  startDate: number;
  stopDate?: number;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** The Step Functions error and cause of a rejected `run`. */
export function failureOf(e: unknown): { error: string; cause: string } {
  const f = e as { error?: unknown; causeText?: unknown; name?: unknown; message?: unknown } | null;
  const error = typeof f?.error === "string" ? f.error : typeof f?.name === "string" ? f.name : "Error";
  const cause = typeof f?.causeText === "string" ? f.causeText : typeof f?.message === "string" ? f.message : String(e);
  return { error, cause };
}

const seconds = (ms: number): number => ms / 1000;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (d: Buffer) => {
      size += d.length;
      // Past the limit the rest is read and dropped, so that the error can still be answered.
      if (size <= MAX_BODY_BYTES) parts.push(d);
    });
    req.on("end", () =>
      size > MAX_BODY_BYTES
        ? reject(new ApiError("ValidationException", `request body larger than ${MAX_BODY_BYTES} bytes`, 413))
        : resolve(Buffer.concat(parts).toString("utf8")),
    );
    req.on("error", reject);
  });
}

function stringField(body: Record<string, unknown>, field: string, required: true): string;
function stringField(body: Record<string, unknown>, field: string, required: false): string | undefined;
function stringField(body: Record<string, unknown>, field: string, required: boolean): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) {
    if (required) throw new ApiError("ValidationException", `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`);
    return undefined;
  }
  if (typeof v !== "string") throw new ApiError("SerializationException", `${field} must be a string`);
  return v;
}

export async function startSfnEndpoint(opts: SfnEndpointOptions): Promise<SfnEndpoint> {
  const workflows = new Map(opts.workflows.map((w) => [w.stateMachineArn, w]));
  const executions = new Map<string, Execution>();
  const finished: string[] = [];

  const remember = (x: Execution): void => {
    finished.push(x.executionArn);
    while (finished.length > MAX_FINISHED) executions.delete(finished.shift()!);
  };

  /** A start request's workflow, ARN, input (text and parsed) and execution name, checked as the service does. */
  const startRequest = (body: Record<string, unknown>): { workflow: LocalWorkflow; stateMachineArn: string; inputText: string; input: unknown; name: string } => {
    const stateMachineArn = stringField(body, "stateMachineArn", true);
    if (!STATE_MACHINE_ARN_RE.test(stateMachineArn)) throw new ApiError("InvalidArn", `Invalid Arn: '${stateMachineArn}'`);
    const workflow = workflows.get(stateMachineArn);
    if (!workflow) throw new ApiError("StateMachineDoesNotExist", `State Machine Does Not Exist: '${stateMachineArn}'`);
    const inputText = stringField(body, "input", false) ?? "{}";
    let input: unknown;
    try {
      input = JSON.parse(inputText);
    } catch (e) {
      throw new ApiError("InvalidExecutionInput", `Invalid State Machine Execution Input: '${describeError(e)}'`);
    }
    const name = stringField(body, "name", false) ?? randomUUID();
    if (!NAME_RE.test(name)) throw new ApiError("InvalidName", `Invalid Name: '${name}'`);
    return { workflow, stateMachineArn, inputText, input, name };
  };

  const startExecution = (body: Record<string, unknown>): Record<string, unknown> => {
    const { workflow, stateMachineArn, inputText, input, name } = startRequest(body);
    const executionArn = `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${name}`;
    const existing = executions.get(executionArn);
    if (existing) {
      // As in AWS (Standard): the same name and input while it runs is the same execution.
      if (existing.status === "RUNNING" && existing.input === inputText) {
        return { executionArn, startDate: seconds(existing.startDate) };
      }
      throw new ApiError("ExecutionAlreadyExists", `Execution Already Exists: '${executionArn}'`);
    }
    const x: Execution = { executionArn, stateMachineArn, name, status: "RUNNING", startDate: Date.now(), input: inputText };
    executions.set(executionArn, x);
    void Promise.resolve()
      .then(() => workflow.run(input, { name, executionArn }))
      .then(
        (output) => {
          x.status = "SUCCEEDED";
          x.output = JSON.stringify(output ?? null);
        },
        (e: unknown) => {
          const f = failureOf(e);
          x.status = "FAILED";
          x.error = f.error;
          x.cause = f.cause;
        },
      )
      .finally(() => {
        x.stopDate = Date.now();
        remember(x);
      });
    return { executionArn, startDate: seconds(x.startDate) };
  };

  const describeExecution = (body: Record<string, unknown>): Record<string, unknown> => {
    const executionArn = stringField(body, "executionArn", true);
    if (!EXECUTION_ARN_RE.test(executionArn)) throw new ApiError("InvalidArn", `Invalid Arn: '${executionArn}'`);
    const x = executions.get(executionArn);
    if (!x) throw new ApiError("ExecutionDoesNotExist", `Execution Does Not Exist: '${executionArn}'`);
    return {
      executionArn: x.executionArn,
      stateMachineArn: x.stateMachineArn,
      name: x.name,
      status: x.status,
      startDate: seconds(x.startDate),
      ...(x.stopDate === undefined ? {} : { stopDate: seconds(x.stopDate) }),
      input: x.input,
      inputDetails: { included: true },
      ...(x.output === undefined ? {} : { output: x.output, outputDetails: { included: true } }),
      ...(x.error === undefined ? {} : { error: x.error }),
      ...(x.cause === undefined ? {} : { cause: x.cause }),
    };
  };

  const startSyncExecution = async (body: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const { workflow, stateMachineArn, inputText, input, name } = startRequest(body);
    if (!workflow.express) throw new ApiError("StateMachineTypeNotSupported", `This operation is not supported by this type of state machine: '${stateMachineArn}'`);
    const executionArn = `${stateMachineArn.replace(":stateMachine:", ":express:")}:${name}:${randomUUID()}`;
    const startDate = Date.now();
    const outcome = await workflow.run(input, { name, executionArn }).then(
      (output) => ({ status: "SUCCEEDED", output: JSON.stringify(output ?? null) }),
      (e: unknown) => ({ status: "FAILED", ...failureOf(e) }),
    );
    return { executionArn, stateMachineArn, name, startDate: seconds(startDate), stopDate: seconds(Date.now()), input: inputText, ...outcome };
  };

  const operations: Record<string, (body: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>> = {
    StartExecution: startExecution,
    DescribeExecution: describeExecution,
    StartSyncExecution: startSyncExecution,
  };

  const reply = (res: ServerResponse, status: number, body: Record<string, unknown>): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/x-amz-json-1.0",
      "content-length": Buffer.byteLength(text),
      "x-amzn-requestid": randomUUID(),
    });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (req.method !== "POST" || (req.url ?? "/").split("?")[0] !== "/") {
        throw new ApiError("UnknownOperationException", `${req.method ?? "?"} ${req.url ?? ""}: only POST / is served`, 404);
      }
      const target = String(req.headers["x-amz-target"] ?? "");
      const [service, operation] = target.split(".");
      const op = service === "AWSStepFunctions" && operation !== undefined ? operations[operation] : undefined;
      if (!op) throw new ApiError("UnknownOperationException", `unknown or unsupported operation '${target}' (this endpoint serves StartExecution, DescribeExecution and StartSyncExecution)`);
      const text = await readBody(req);
      let body: unknown;
      try {
        body = text.trim() === "" ? {} : JSON.parse(text);
      } catch (e) {
        throw new ApiError("SerializationException", `request body is not JSON: ${describeError(e)}`);
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError("SerializationException", "request body is not a JSON object");
      reply(res, 200, await op(body as Record<string, unknown>));
    } catch (e) {
      if (e instanceof ApiError) reply(res, e.status, { __type: e.type, message: e.message });
      else reply(res, 500, { __type: "InternalFailure", message: describeError(e) });
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
