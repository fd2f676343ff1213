// The dashboard's HTTP server (node:http, no framework): GET / (the page), /api/* (JSON), /metrics
// (Prometheus text). Read-only: nothing here changes a repository. Bound to loopback by default;
// any other address needs a token. Without a token, requests must name a loopback host, so a web
// page elsewhere cannot read the API through DNS rebinding.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { StrongboxError, UsageError } from "../errors.ts";
import { metricsOf, statusOf } from "../monitor/monitor.ts";
import type { MonitorSettings } from "../monitor/settings.ts";
import { isLoopbackBind } from "../util/loopback.ts";
import { oneLineError } from "../util/redact.ts";
import { authorized } from "./auth.ts";
import { dashboardData, incidentsOf, parseRunQuery, runsOf } from "./data.ts";
import { dashboardPage } from "./page.ts";

export interface ServeOptions {
  monitor: MonitorSettings;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Required unless host is a loopback address. */
  token?: string | undefined;
  /** One line per failed request (default: nothing). */
  log?: (message: string) => void;
}

export interface RunningServer {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

const BASE_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-store",
};

function csp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "img-src data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
) {
  res.writeHead(status, {
    ...BASE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Content-Type": type,
    "Content-Length": String(Buffer.byteLength(body)),
    ...extra,
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, "application/json; charset=utf-8", `${JSON.stringify(value, null, 2)}\n`);
}

/** The host part of a Host header ("[::1]:8484" → "::1"). */
function hostOf(header: string | undefined): string {
  if (!header) return "";
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(header) ?? /^([^:]+)(?::\d+)?$/.exec(header);
  return (m?.[1] ?? "").toLowerCase();
}

export function handler(o: ServeOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://strongbox.invalid");
    try {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return sendJson(res, 405, { error: "only GET and HEAD" });
      }
      if (o.token === undefined && !isLoopbackBind(hostOf(req.headers.host))) {
        return sendJson(res, 421, {
          error: "without a token the dashboard answers only to a loopback host name",
        });
      }
      if (!authorized(req.headers.authorization, o.token)) {
        return send(res, 401, "application/json; charset=utf-8", '{"error":"authentication required"}\n', {
          "WWW-Authenticate": 'Basic realm="strongbox", charset="UTF-8"',
        });
      }
      switch (url.pathname) {
        case "/": {
          const nonce = randomBytes(16).toString("base64");
          return send(res, 200, "text/html; charset=utf-8", dashboardPage(dashboardData(o.monitor), nonce), {
            "Content-Security-Policy": csp(nonce),
          });
        }
        case "/api/dashboard":
          return sendJson(res, 200, dashboardData(o.monitor));
        case "/api/status":
          return sendJson(res, 200, statusOf(o.monitor));
        case "/api/runs":
          return sendJson(res, 200, runsOf(o.monitor, parseRunQuery(url.searchParams)));
        case "/api/incidents": {
          const q = parseRunQuery(url.searchParams);
          return sendJson(res, 200, incidentsOf(o.monitor, { since: q.since ?? 0, limit: q.limit ?? 200 }));
        }
        case "/metrics":
          return send(res, 200, "text/plain; version=0.0.4; charset=utf-8", await metricsOf(o.monitor));
        case "/favicon.ico":
          res.writeHead(204, BASE_HEADERS).end();
          return;
        default:
          return sendJson(res, 404, { error: `no such page: ${url.pathname}` });
      }
    } catch (e) {
      if (e instanceof UsageError) return sendJson(res, 400, { error: e.message });
      o.log?.(`${req.method} ${url.pathname} failed: ${oneLineError(e)}`);
      if (!res.headersSent) sendJson(res, 500, { error: oneLineError(e) });
      else res.destroy();
    }
  };
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  if (!isLoopbackBind(o.host) && o.token === undefined) {
    throw new StrongboxError("SERVE_NEEDS_TOKEN", `refusing to serve on ${o.host} without a token`, {
      hint: "set serve.tokenFile (a 0600 file with a random token), or bind to 127.0.0.1",
    });
  }
  const server = createServer(handler(o));
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new StrongboxError("SERVE_LISTEN", `cannot listen on ${o.host}:${o.port}: ${e.code ?? e.message}`, {
          cause: e,
          hint: e.code === "EADDRINUSE" ? "choose another port with --port or serve.port" : undefined,
        }),
      ),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = o.host.includes(":") ? `[${o.host}]` : o.host;
  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    url: `http://${shown}:${port}/`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Browsers keep connections open; idle ones go now, busy ones get a moment to finish.
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2_000).unref();
      });
      return closing;
    },
  };
}
