// Target tests through the real CLI: targets that say who they are, can be killed and
// brought back on the same port, clients from distinct loopback addresses going through
// tcpgate to them, and their state as /status reports it.
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { status } from "./admin.ts";
import type { Running } from "./cli.ts";
import { endOf } from "./net.ts";

/**
 * A target that writes "<tag>\n" as soon as it accepts a connection, so a client knows
 * where its bridge landed without sending a byte, and counts what it accepted. kill()
 * closes it like a crashed server (listening socket closed, connections destroyed);
 * restart() listens again on the same port.
 */
export class TaggedTarget {
  readonly sockets = new Set<Socket>();
  /** Every byte each connection sent, in accept order (for PROXY header checks). */
  readonly received: Buffer[][] = [];
  private server: Server | undefined;
  private count = 0;

  private constructor(
    readonly tag: string,
    readonly host: string,
    public port: number,
  ) {}

  static async start(tag: string, host = "127.0.0.1", port = 0): Promise<TaggedTarget> {
    const target = new TaggedTarget(tag, host, port);
    await target.restart();
    return target;
  }

  /** "host:port" as a config file names it, and as tcpgate's log lines print it. */
  get address(): string {
    return this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /** Connections accepted since start, across restarts. */
  accepted(): number {
    return this.count;
  }

  async restart(): Promise<void> {
    if (this.listening) return;
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      this.count++;
      const chunks: Buffer[] = [];
      this.received.push(chunks);
      this.sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("end", () => socket.end());
      socket.write(`${this.tag}\n`);
    });
    server.listen({ host: this.host, port: this.port });
    await once(server, "listening");
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** As if the process died: nothing listens on the port any more, open connections reset. */
  async kill(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.resetAndDestroy();
    if (server?.listening) {
      server.close();
      await once(server, "close");
    }
  }
}

export interface Landed {
  readonly socket: Socket;
  /** The tag of the target the bridge reached. */
  readonly tag: string;
  /** The client's local port: its bridge's access-log line names it as clientPort. */
  readonly clientPort: number;
}

export interface DialOptions {
  /** Source address, e.g. "127.0.0.2": loopback addresses play distinct clients. */
  readonly localAddress?: string;
  /** The proxy's address; 127.0.0.1 unless localAddress is IPv6 (then ::1). */
  readonly host?: string;
  readonly timeoutMs?: number;
}

/**
 * Connects through the proxy and resolves once the target's tag has arrived: the bridge
 * is then up, and the pool has counted it. Rejects if the proxy closes first or on timeout.
 */
export async function land(port: number, options: DialOptions = {}): Promise<Landed> {
  const host = options.host ?? (options.localAddress?.includes(":") ? "::1" : "127.0.0.1");
  const socket = connect({
    port,
    host,
    allowHalfOpen: true,
    ...(options.localAddress && { localAddress: options.localAddress }),
  });
  socket.on("error", () => {});
  const timeoutMs = options.timeoutMs ?? 3000;
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => fail(new Error(`no target tag within ${timeoutMs} ms (got ${text})`)), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
    };
    const fail = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      cleanup();
      resolve({ socket, tag: text.slice(0, nl), clientPort: socket.localPort ?? 0 });
    };
    const onClose = () => fail(new Error(`closed by the proxy before a target answered (got ${JSON.stringify(text)})`));
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/** One short connection: land, then close. Resolves with the tag of the target reached. */
export async function visit(port: number, options: DialOptions = {}): Promise<string> {
  const { socket, tag } = await land(port, options);
  socket.destroy();
  return tag;
}

/**
 * n short connections, `parallel` at a time; resolves with how many reached each tag.
 * Round-robin counts do not depend on the order of arrival, so parallel is safe there.
 */
export async function visits(
  port: number,
  n: number,
  options: DialOptions & { parallel?: number } = {},
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      const tag = await visit(port, options);
      counts.set(tag, (counts.get(tag) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? 1 }, worker));
  return counts;
}

/**
 * n short connections one after the other, each waiting for its bridge's access-log line:
 * every pick then finds no bridge open, so a load-aware strategy decides by weight alone.
 */
export async function visitsOneByOne(
  gate: Running,
  port: number,
  n: number,
  options: DialOptions = {},
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const from = gate.logs.length;
    const { socket, tag, clientPort } = await land(port, options);
    socket.destroy();
    await gate.bridgeEnd(clientPort, from);
    counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return counts;
}

/** How a connection the proxy could not bridge ended for the client. */
export interface Closed {
  readonly how: "end" | "reset" | "close" | "timeout";
  readonly bytes: number;
  readonly ms: number;
  readonly clientPort: number;
}

/** Connects and waits (up to timeoutMs) for the proxy to close the connection. */
export async function closedBy(port: number, options: DialOptions = {}): Promise<Closed> {
  const started = performance.now();
  const host = options.host ?? "127.0.0.1";
  const socket = connect({ port, host, ...(options.localAddress && { localAddress: options.localAddress }) });
  let bytes = 0;
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  const how = await endOf(socket, options.timeoutMs ?? 3000);
  const clientPort = socket.localPort ?? 0;
  socket.on("error", () => {});
  socket.destroy();
  return { how, bytes, ms: performance.now() - started, clientPort };
}

export interface TargetStatus {
  readonly address: string;
  readonly state: "up" | "down";
  readonly openBridges: number;
  readonly connectFailures: number;
}

/** A listener's targets as GET /status reports them (the config must set admin.listen to adminPort). */
export async function targetStatus(adminPort: number, listener: string): Promise<TargetStatus[]> {
  const found = (await status(adminPort)).listeners.find((l) => l.name === listener);
  if (!found) throw new Error(`no listener ${listener} in /status`);
  return found.targets as TargetStatus[];
}

/** Stops what a test started, last first, whatever state the test left it in. */
export function cleanup() {
  const stops: (() => Promise<unknown>)[] = [];
  return {
    add<T extends { close(): Promise<unknown> } | { kill(): Promise<unknown> }>(thing: T): T {
      stops.push(() => ("close" in thing ? thing.close() : thing.kill()));
      return thing;
    },
    sockets(list: readonly (Socket | Landed)[]) {
      stops.push(async () => {
        for (const s of list) ("socket" in s ? s.socket : s).destroy();
      });
    },
    async run() {
      for (const stop of stops.reverse()) await stop().catch(() => {});
    },
  };
}

/** One tagged target per tag, each stopped by the cleanup. */
export async function targets<const T extends readonly string[]>(
  c: ReturnType<typeof cleanup>,
  ...tags: T
): Promise<{ [K in keyof T]: TaggedTarget }> {
  const started = await Promise.all(tags.map((tag) => TaggedTarget.start(tag)));
  for (const target of started) c.add(target);
  return started as { [K in keyof T]: TaggedTarget };
}

export type TargetEntry = TaggedTarget | string | { target: TaggedTarget | string; weight: number };

/** A config file with one listener "app" on listen, and optionally the admin endpoint. */
export function appConfig(options: {
  listen: string;
  targets: readonly TargetEntry[];
  balance?: string;
  /** Further listener keys, as YAML lines indented for the listener (4 spaces). */
  more?: readonly string[];
  adminPort?: number;
}): string {
  const lines = ["version: 1", "shutdownTimeout: 1s"];
  if (options.adminPort !== undefined) lines.push("admin:", `  listen: 127.0.0.1:${options.adminPort}`);
  lines.push("listeners:", "  - name: app", `    listen: "${options.listen}"`, "    targets:");
  const addressOf = (t: TaggedTarget | string) => (typeof t === "string" ? t : t.address);
  for (const t of options.targets) {
    if (typeof t === "string" || t instanceof TaggedTarget) lines.push(`      - "${addressOf(t)}"`);
    else lines.push(`      - address: "${addressOf(t.target)}"`, `        weight: ${t.weight}`);
  }
  if (options.balance) lines.push(`    balance: ${options.balance}`);
  lines.push(...(options.more ?? []));
  return `${lines.join("\n")}\n`;
}
