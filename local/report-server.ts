/**
 * The report page (core/report-html.ts) served by `walvault local up`:
 * http://127.0.0.1:<port>/ draws every registered database as `walvault
 * report --html` does, gathered again on each load (agent/report.ts), so a
 * browser left open shows the archive as it grows. Loopback only; GET of /
 * only; a failure is a 500 with its one line.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AgentConfig } from "../core/config.js";
import { describeError } from "../core/errors.js";
import { reportHtml } from "../core/report-html.js";
import { agentClients } from "../agent/clients.js";
import { allDatabaseIds, gatherReport } from "../agent/report.js";

export interface ReportServer {
  url: string;
  close(): Promise<void>;
}

export async function startReportServer(cfg: AgentConfig): Promise<ReportServer> {
  // One set of clients for every load (their connections stay warm).
  const clients = agentClients(cfg);
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url !== "/" && req.url !== "/report")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("walvault local stack: the report is at /\n");
      return;
    }
    void (async () => {
      try {
        const html = reportHtml(await gatherReport(clients, cfg, await allDatabaseIds(clients)));
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(html);
      } catch (e) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`walvault report: ${describeError(e)}\n`);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(() => r())) };
}
