// The admin HTTP endpoint: GET / (the status page), GET /healthz, GET /status,
// GET /metrics, POST /reload, POST /plan. Off unless admin.listen is set; it listens on
// TCP or on a Unix socket. admin.allow refuses a peer at accept, before a byte is read.
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { type EndpointAddress, isUnixSocket } from "../config/admin-address.ts";
import type { RuntimeConfig } from "../config/runtime.ts";
import type { AttachedEndpoint } from "../gateway.ts";
import type { Logger } from "../log.ts";
import { type AddressMatcher, compileRules, parseClientAddress } from "../policy/address-match.ts";
import { RefusalLog } from "../proxy/refusal-log.ts";
import type { PlanResult, ReloadOutcome } from "../reloader.ts";
import type { Metrics } from "./metrics.ts";
import { STATUS_PAGE, STATUS_PAGE_HEADERS } from "./page.ts";
import { buildStatus, type StatusContext } from "./status.ts";
import type { GatewayView } from "./view.ts";

export interface AdminHandlers {
  readonly view: GatewayView;
  /** Loads prom-client on first use (see app.ts). */
  readonly metrics: () => Promise<Metrics>;
  readonly status: StatusContext;
  /** Undefined in quick mode: there is no file to reload or plan against. */
  readonly reload: (() => Promise<ReloadOutcome>) | undefined;
  readonly plan: ((text: string) => Promise<PlanResult>) | undefined;
}

/** A slow or silent peer is gone within this; nothing an operator sends takes longer. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A planned file is a config file: the loader refuses more than 1 MiB anyway. */
const MAX_BODY_BYTES = 1024 * 1024 + 1;

export class AdminServer implements AttachedEndpoint {
  readonly label = "admin";
  private server: Server | undefined;
  private allow: AddressMatcher | undefined;
  private readonly refusals: RefusalLog;

  constructor(
    private readonly handlers: AdminHandlers,
    private readonly log: Logger,
  ) {
    this.refusals = new RefusalLog(log, "admin");
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  addressIn(config: RuntimeConfig): { address: EndpointAddress; key: string } | undefined {
    return config.admin && { address: config.admin.listen, key: config.admin.listenKey };
  }

  configure(config: RuntimeConfig): void {
    const rules = config.admin?.allow ?? [];
    this.allow = rules.length > 0 ? compileRules(rules, "allow") : undefined;
    const admin = config.admin;
    if (admin && isUnixSocket(admin.listen) && this.server?.listening) chmodSync(admin.listen.path, admin.mode);
  }

  /** Binds without serving from it yet: a reload binds everything before it swaps. */
  async bind(address: EndpointAddress): Promise<Server> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.log.error({ error: String(error), path: req.url }, "admin request failed");
        if (!res.headersSent) send(res, 500, "internal error\n");
      });
    });
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = 5_000;
    // A refused peer is closed at once, as a listener's deny does: it never holds a socket.
    server.on("connection", (socket: Socket) => {
      if (this.admits(socket)) return;
      socket.destroy();
    });
    if (isUnixSocket(address)) await removeStaleSocket(address.path);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      const listening = () => {
        server.off("error", reject);
        server.on("error", (error) => this.log.error({ error: String(error) }, "admin endpoint error"));
        resolve(server);
      };
      if (!isUnixSocket(address)) {
        server.listen({ host: address.host === "" ? undefined : address.host, port: address.port }, listening);
        return;
      }
      // bind(2) creates the socket file with the process umask: it is private (0600) from its
      // first instant, and gets the configured mode when the config that names it commits.
      const umask = process.umask(0o177);
      try {
        server.listen({ path: address.path }, () => {
          listening();
        });
      } finally {
        process.umask(umask);
      }
    });
  }

  /** Serves from server from now on (closing the previous one), or stops serving. */
  use(server: Server | undefined): void {
    const previous = this.server;
    this.server = server;
    if (previous && previous !== server) {
      // Node removes a Unix socket's file when its server closes.
      previous.close();
      previous.closeIdleConnections();
    }
  }

  private admits(socket: Socket): boolean {
    // On a Unix socket there is no allow (the config refuses it): the file mode decides.
    if (!this.allow) return true;
    const client = parseClientAddress(socket.remoteAddress ?? "");
    if (client && this.allow.match(client)) return true;
    this.refusals.refused(
      {
        listener: "admin",
        client: client?.text ?? "unknown",
        clientPort: socket.remotePort ?? 0,
        reason: "allow",
        rule: "not in admin.allow",
      },
      Date.now(),
    );
    return false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
    const { view, metrics, status, reload, plan } = this.handlers;
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
        await view.refresh?.();
        sendJson(res, 200, buildStatus(view, status));
        return;
      case "/metrics": {
        await view.refresh?.();
        const loaded = await metrics();
        send(res, 200, await loaded.text(), loaded.contentType);
        return;
      }
      case "/reload": {
        if (!reload) {
          sendJson(res, 409, { outcome: "rejected", errors: ["quick mode has no config file to reload"] });
          return;
        }
        const outcome = await reload();
        sendJson(res, outcome.outcome === "rejected" ? 422 : 200, outcome);
        return;
      }
      case "/plan": {
        if (!plan) {
          sendJson(res, 409, { errors: ["quick mode has no config file to plan against"] });
          return;
        }
        const body = await readBody(req);
        if (body === undefined) {
          sendJson(res, 413, { errors: ["the planned file is larger than 1 MiB"] });
          return;
        }
        const result = await plan(body);
        if (result.ok) sendJson(res, 200, { sha256: result.sha256, ...result.plan });
        else sendJson(res, 422, { errors: result.errors });
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
  "/plan": "POST",
};

/**
 * A socket file left by a process that died is removed; one that answers belongs to a
 * running instance and is kept (bind then fails with EADDRINUSE); anything that is not a
 * socket is never touched.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (!alive) unlinkSync(path);
}

/** The request body as text, or undefined past MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, code: number, body: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(code, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  send(res, code, `${JSON.stringify(body, null, 2)}\n`, "application/json");
}
