// Real sockets on loopback for tests: free ports, small servers, clients.
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";

/** A port that was free a moment ago on host (bind to 0, read, close). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/** n distinct ports that were free a moment ago on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export interface TestServer {
  readonly server: Server;
  readonly port: number;
  readonly host: string;
  readonly sockets: Set<Socket>;
  /** "host:port" for a config file. */
  readonly address: string;
  close(): Promise<void>;
}

/** A TCP server on loopback; handler gets each connection (with allowHalfOpen). */
export async function startServer(
  handler: (socket: Socket) => void,
  host = "127.0.0.1",
  port = 0,
): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    handler(socket);
  });
  server.listen(port, host);
  await once(server, "listening");
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    host,
    sockets,
    address: host.includes(":") ? `[${host}]:${actual}` : `${host}:${actual}`,
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) {
        server.close();
        await once(server, "close");
      }
    },
  };
}

/** Echoes every byte back and half-closes when the client does. */
export function startEcho(host = "127.0.0.1"): Promise<TestServer> {
  return startServer((socket) => socket.pipe(socket), host);
}

/** Connects like dial(), but gives up (rejecting) after timeoutMs; rejects with the socket's error. */
export async function dialWithin(
  port: number,
  host: string,
  localAddress: string | undefined,
  timeoutMs: number,
): Promise<Socket> {
  const socket = connect({ port, host, allowHalfOpen: true, ...(localAddress && { localAddress }) });
  const timer = setTimeout(() => socket.destroy(new Error(`connect to ${host}:${port} timed out`)), timeoutMs);
  try {
    await once(socket, "connect");
    socket.on("error", () => {});
    return socket;
  } finally {
    clearTimeout(timer);
  }
}

/** Connects to host:port from localAddress, bounded in time; rejects with the socket error. */
export async function dialFrom(
  port: number,
  localAddress?: string,
  host = localAddress?.includes(":") ? "::1" : "127.0.0.1",
  timeoutMs = 3000,
): Promise<Socket> {
  return dialWithin(port, host, localAddress, timeoutMs);
}

/** Connects (optionally from a given loopback address) and resolves once connected. */
export async function dial(port: number, host = "127.0.0.1", localAddress?: string): Promise<Socket> {
  const socket = connect({ port, host, allowHalfOpen: true, ...(localAddress && { localAddress }) });
  socket.on("error", () => {});
  await once(socket, "connect");
  return socket;
}

/** Collects everything a socket receives until it ends or closes. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    const done = () => resolve(Buffer.concat(chunks));
    socket.once("end", done);
    socket.once("close", done);
    // A socket paused on purpose (pauseOnConnect, a stage that paused it) flows again.
    socket.resume();
  });
}

/** How a socket ended: "end" (FIN), "reset" (ECONNRESET/EPIPE) or "close". */
export function endOf(socket: Socket): Promise<"end" | "reset" | "close">;
/** The same, or "timeout" when nothing happened within timeoutMs. */
export function endOf(socket: Socket, timeoutMs: number): Promise<"end" | "reset" | "close" | "timeout">;
export function endOf(socket: Socket, timeoutMs?: number): Promise<"end" | "reset" | "close" | "timeout"> {
  return new Promise((resolve) => {
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => resolve("timeout"), timeoutMs);
    const done = (how: "end" | "reset" | "close") => {
      clearTimeout(timer);
      resolve(how);
    };
    socket.once("end", () => done("end"));
    socket.once("error", (e: NodeJS.ErrnoException) =>
      done(e.code === "ECONNRESET" || e.code === "EPIPE" ? "reset" : "close"),
    );
    socket.once("close", () => done("close"));
  });
}

export interface Refused {
  /** Bytes the client received before the close: a refusal sends none. */
  readonly bytes: number;
  /** How the connection ended: "end" (FIN), "reset", or "timeout" if it stayed open. */
  readonly how: "end" | "reset" | "close" | "timeout";
  /** From connect to the close. */
  readonly ms: number;
  /** The client's local port, as the refusal line names it (clientPort). */
  readonly port: number;
  /** Running.tryRefused only: how many log lines there were before the connection. */
  readonly from: number;
}

export interface RefusedOptions {
  readonly host?: string;
  /** Written as soon as the connection is up. */
  readonly send?: string;
  /** How long to wait for the close; default 2 s. */
  readonly timeoutMs?: number;
}

/**
 * Connects from localAddress, optionally writes something at once, and waits (up to
 * timeoutMs) for the proxy to close the connection. An admitted client times out here.
 */
export async function tryRefused(port: number, localAddress: string, options: RefusedOptions = {}): Promise<Refused> {
  const started = performance.now();
  const socket = await dialFrom(port, localAddress, options.host);
  const localPort = socket.localPort ?? 0;
  let bytes = 0;
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  if (options.send) socket.write(options.send);
  const how = await endOf(socket, options.timeoutMs ?? 2000);
  const ms = performance.now() - started;
  socket.destroy();
  return { bytes, how, ms, port: localPort, from: 0 };
}

/**
 * A timer, for a wait that is itself the behaviour under test (nothing may happen for a
 * while; a pace to keep). Never to wait for something that happens: use eventually(), or
 * wait for the event or log line.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls check() every intervalMs until it is true; fails after timeoutMs, naming what it waited for. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/**
 * The kernel timer on the IPv4 socket localPort → remotePort, from /proc/net/tcp (Linux):
 * 0 none, 1 retransmit, 2 keep-alive, 4 zero-window probe (the peer's receive buffer is
 * full: it has stopped reading). undefined when there is no such socket.
 */
export function tcpTimer(localPort: number, remotePort: number): number | undefined {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1]?.endsWith(`:${hex(localPort)}`) && fields[2]?.endsWith(`:${hex(remotePort)}`)) {
      return Number.parseInt(fields[5]?.split(":")[0] ?? "", 16);
    }
  }
  return undefined;
}

/**
 * Both ends of one loopback TCP connection: `accepted` as a listener with pauseOnConnect
 * gets it (paused, nothing read yet), `client` connected to it. close() ends both.
 */
export async function loopbackPair(): Promise<{ accepted: Socket; client: Socket; close(): void }> {
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = connect({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", noDelay: true });
  client.on("error", () => {});
  const [accepted] = (await once(server, "connection")) as [Socket];
  accepted.on("error", () => {});
  server.close();
  return {
    accepted,
    client,
    close() {
      client.destroy();
      accepted.destroy();
    },
  };
}
