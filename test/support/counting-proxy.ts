/**
 * A counting HTTP proxy in front of the local stack's endpoints: a config file
 * whose S3, DynamoDB and Step Functions endpoints go through it, so a test can
 * tell exactly how many requests a CLI run made.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { TestStack } from "./stack.js";

export interface CountingProxy {
  /** Requests forwarded so far, per endpoint name and in all. */
  counts: Record<string, number>;
  total(): number;
  /** A config file like the stack's, every endpoint through the proxy. */
  configPath: string;
  close(): Promise<void>;
}

async function proxyTo(target: string, onRequest: () => void): Promise<{ server: Server; url: string }> {
  const t = new URL(target);
  const server = createServer((req, res) => {
    onRequest();
    const up = request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function startCountingProxy(stack: TestStack, dir: string): Promise<CountingProxy> {
  const counts: Record<string, number> = {};
  const servers: Server[] = [];
  const cfg = JSON.parse(readFileSync(stack.configPath, "utf8")) as Record<string, unknown> & { replicas?: Record<string, unknown>[] };
  for (const key of ["s3Endpoint", "dynamodbEndpoint", "stepFunctionsEndpoint"] as const) {
    const target = cfg[key];
    if (typeof target !== "string") continue;
    counts[key] = 0;
    const p = await proxyTo(target, () => (counts[key] = counts[key]! + 1));
    servers.push(p.server);
    cfg[key] = p.url;
  }
  for (const r of cfg.replicas ?? []) {
    for (const key of ["s3Endpoint", "dynamodbEndpoint"] as const) {
      const target = r[key];
      if (typeof target !== "string") continue;
      const name = `${String(r.region)}.${key}`;
      counts[name] = 0;
      const p = await proxyTo(target, () => (counts[name] = counts[name]! + 1));
      servers.push(p.server);
      r[key] = p.url;
    }
  }
  const configPath = join(dir, "proxied-config.json");
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  return {
    counts,
    total: () => Object.values(counts).reduce((a, b) => a + b, 0),
    configPath,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
    },
  };
}
