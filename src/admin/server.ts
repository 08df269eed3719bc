// The admin HTTP endpoint: GET / (the status page), GET /healthz, GET /status, GET /metrics,
// POST /reload.
// Off unless admin.listen is set; admin.allow restricts who may use it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { HostPort } from "../config/address.ts";
import type { Rule } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import { type AddressMatcher, compileRules, parseClientAddress } from "../policy/address-match.ts";
import type { ReloadOutcome } from "../reloader.ts";
import type { Metrics } from "./metrics.ts";
import { STATUS_PAGE, STATUS_PAGE_HEADERS } from "./page.ts";
import { buildStatus, type StatusContext } from "./status.ts";
import type { GatewayView } from "./view.ts";

export interface AdminHandlers {
  readonly view: GatewayView;
  readonly metrics: Metrics;
  readonly status: StatusContext;
  /** Undefined in quick mode: there is no file to reload. */
  readonly reload: (() => Promise<ReloadOutcome>) | undefined;
}

export class AdminServer {
  private server: Server | undefined;
  private allow: AddressMatcher | undefined;

  constructor(
    private readonly handlers: AdminHandlers,
    private readonly log: Logger,
  ) {}

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /** Binds without serving from it yet: a reload binds everything before it swaps. */
  bind(address: HostPort): Promise<Server> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.log.error({ error: String(error), path: req.url }, "admin request failed");
        if (!res.headersSent) send(res, 500, "internal error\n");
      });
    });
    server.requestTimeout = 10_000;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: address.host === "" ? undefined : address.host, port: address.port }, () => {
        server.off("error", reject);
        server.on("error", (error) => this.log.error({ error: String(error) }, "admin endpoint error"));
        resolve(server);
      });
    });
  }

  /** Serves from server from now on (closing the previous one), or stops serving. */
  use(server: Server | undefined): void {
    const previous = this.server;
    this.server = server;
    if (previous && previous !== server) {
      previous.close();
      previous.closeIdleConnections();
    }
  }

  restrict(rules: readonly Rule[]): void {
    this.allow = rules.length > 0 ? compileRules(rules) : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = parseClientAddress(req.socket.remoteAddress ?? "");
    if (this.allow && (!client || !this.allow.match(client))) {
      send(res, 403, "forbidden\n");
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    const route = ROUTES[path ?? ""];
    if (!route) {
      send(res, 404, "not found\n");
      return;
    }
    // HEAD is GET without the body (RFC 9110 §9.3.2; Node drops the body): probes that
    // check /healthz with HEAD must not be told 405.
    const method = req.method === "HEAD" && route === "GET" ? "GET" : req.method;
    if (method !== route) {
      res.setHeader("allow", route === "GET" ? "GET, HEAD" : route);
      send(res, 405, "method not allowed\n");
      return;
    }
    const { view, metrics, status, reload } = this.handlers;
    switch (path) {
      case "/":
        res.writeHead(200, STATUS_PAGE_HEADERS);
        res.end(STATUS_PAGE);
        return;
      case "/healthz":
        if (status.shuttingDown()) send(res, 503, "shutting down\n");
        else send(res, 200, "ok\n");
        return;
      case "/status":
        sendJson(res, 200, buildStatus(view, status));
        return;
      case "/metrics":
        send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
        return;
      case "/reload": {
        if (!reload) {
          sendJson(res, 409, { outcome: "rejected", errors: ["quick mode has no config file to reload"] });
          return;
        }
        const outcome = await reload();
        sendJson(res, outcome.outcome === "rejected" ? 422 : 200, outcome);
        return;
      }
    }
  }
}

const ROUTES: Record<string, "GET" | "POST"> = {
  "/": "GET",
  "/healthz": "GET",
  "/status": "GET",
  "/metrics": "GET",
  "/reload": "POST",
};

function send(res: ServerResponse, code: number, body: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(code, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  send(res, code, `${JSON.stringify(body, null, 2)}\n`, "application/json");
}
