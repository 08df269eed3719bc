// Admission tests through the real CLI: a config file and a tcpgate on it, targets that
// count who reached them, loopback clients with their own source addresses, and the
// outcome of a refused connection as a client sees it.
import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import { type LogLine, type Running, startTcpgate, tempConfig } from "./cli.ts";
import { dialWithin, endOf, startServer, type TestServer } from "./net.ts";

export interface Gate {
  readonly tcpgate: Running;
  readonly pid: number;
  readonly logs: LogLine[];
  readonly path: string;
  /** Rewrites the config file in place (the watcher, if on, picks it up). */
  write(yaml: string): void;
  /** Refusal lines (msg "refused: …"), optionally only those of one listener. */
  refusals(listener?: string): LogLine[];
  /** dialFrom, remembering where the log stood: the bridge's lines can only come later. */
  dial(port: number, localAddress: string, host?: string): Promise<Socket>;
  /** The line the bridge of a socket from dial() logs when it ends. */
  bridgeEnd(socket: Socket, timeoutMs?: number): Promise<LogLine>;
  /** tryRefused, remembering where the log stood. */
  tryRefused(port: number, localAddress: string, options?: RefusedOptions): Promise<Refused>;
  /** The refusal line of that connection (matched by client port, logged after it started). */
  refusalLine(result: Refused, timeoutMs?: number): Promise<LogLine>;
  /** How many "reload applied" lines so far. */
  applied(): number;
  /** Resolves once at least n reloads have been applied. */
  waitApplied(n: number, timeoutMs?: number): Promise<void>;
  /** Destroys every client from dial(), SIGTERM (SIGKILL after 5 s), removes the config folder. Safe to call twice. */
  close(): Promise<number | null>;
}

/** How long start-up may take before a test gives up on it. */
const START_MS = 30_000;

const isRefusal = (l: LogLine) => typeof l.msg === "string" && l.msg.startsWith("refused: ");

/**
 * Writes yaml to a temporary file and starts the CLI on it at debug level. With watch,
 * resolves only once the file is watched: an edit made earlier could go unseen.
 */
export async function startGate(yaml: string, options: { watch?: boolean } = {}): Promise<Gate> {
  const config = tempConfig(yaml);
  const args = ["--config", config.path, "--log-level", "debug", ...(options.watch ? [] : ["--no-watch"])];
  const tcpgate = startTcpgate(args);
  try {
    // Node alone took over 10 s to start at load average 20 on 2 cores.
    await tcpgate.waitForLog((l) => l.msg === "tcpgate started", START_MS);
    if (options.watch) await tcpgate.waitForLog((l) => l.msg === "watching the config file", START_MS);
  } catch (error) {
    await tcpgate.stop("SIGKILL");
    config.remove();
    throw error;
  }
  const clients = new Set<Socket>();
  const dialled = new WeakMap<Socket, { from: number; port: number | undefined }>();
  const applied = () => tcpgate.logs.filter((l) => l.msg === "reload applied").length;
  return {
    tcpgate,
    pid: tcpgate.pid,
    logs: tcpgate.logs,
    path: config.path,
    write: config.write,
    refusals: (listener) => tcpgate.logs.filter((l) => isRefusal(l) && (!listener || l.listener === listener)),
    async dial(port, localAddress, host) {
      const from = tcpgate.logs.length;
      const socket = await dialFrom(port, localAddress, host);
      dialled.set(socket, { from, port: socket.localPort ?? 0 });
      clients.add(socket);
      socket.once("close", () => clients.delete(socket));
      return socket;
    },
    bridgeEnd(socket, timeoutMs = 5000) {
      const { from, port } = dialled.get(socket) ?? { from: 0, port: socket.localPort };
      return tcpgate.waitForLog(
        (l) => l.clientPort === port && typeof l.end === "string" && tcpgate.logs.indexOf(l) >= from,
        timeoutMs,
      );
    },
    async tryRefused(port, localAddress, options) {
      const from = tcpgate.logs.length;
      return { ...(await tryRefused(port, localAddress, options)), from };
    },
    refusalLine(result, timeoutMs = 3000) {
      // A client port comes round again, on another listener or later on: only lines
      // logged after this connection started are its own.
      return tcpgate.waitForLog(
        (l) => l.clientPort === result.port && isRefusal(l) && tcpgate.logs.indexOf(l) >= result.from,
        timeoutMs,
      );
    },
    applied,
    async waitApplied(n, timeoutMs = 5000) {
      await tcpgate.waitForLog(() => applied() >= n, timeoutMs);
    },
    async close() {
      // A client left open by a failed test would keep the test process alive (half-open
      // sockets never close on their own): they go first.
      for (const socket of clients) socket.destroy();
      try {
        return await tcpgate.stop("SIGTERM", 5000);
      } finally {
        config.remove();
      }
    },
  };
}

export interface CountingServer extends TestServer {
  /** Connections the server accepted so far, closed ones included. */
  accepted(): number;
}

/**
 * An echo target that counts the connections it accepts: a refused client must cost it
 * none. A chunk containing "RST" makes it reset that connection instead of echoing.
 */
export async function startCountingEcho(host = "127.0.0.1", port = 0): Promise<CountingServer> {
  let accepted = 0;
  const server = await startServer(
    (socket) => {
      accepted++;
      socket.on("data", (chunk: Buffer) => {
        if (chunk.includes("RST")) socket.resetAndDestroy();
        else socket.write(chunk);
      });
      socket.on("end", () => socket.end());
    },
    host,
    port,
  );
  return Object.assign(server, { accepted: () => accepted });
}

/** Connects to host:port from localAddress, bounded in time; rejects with the socket error. */
export async function dialFrom(
  port: number,
  localAddress: string,
  host = localAddress.includes(":") ? "::1" : "127.0.0.1",
  timeoutMs = 3000,
): Promise<Socket> {
  return dialWithin(port, host, localAddress, timeoutMs);
}

/** Writes text and resolves once the same text has come back (an echo through a bridge). */
export function echoes(socket: Socket, text: string, timeoutMs = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = "";
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      received += chunk.toString();
      if (received.length >= text.length) {
        finish(received === text ? undefined : new Error(`expected ${JSON.stringify(text)}, got ${received}`));
      }
    };
    const onClose = () => finish(new Error(`closed after ${JSON.stringify(received)}, expected ${text}`));
    const timer = setTimeout(
      () => finish(new Error(`no echo of ${JSON.stringify(text)} within ${timeoutMs} ms, got ${received}`)),
      timeoutMs,
    );
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.write(text);
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
  /** Gate.tryRefused only: how many log lines there were before the connection. */
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

/** Writes a byte every intervalMs to each socket (echoes are read and dropped): keeps bridges from idling out. */
export function keepBusy(sockets: readonly Socket[], intervalMs = 100): () => void {
  for (const s of sockets) s.on("data", () => {});
  const timer = setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write(".");
  }, intervalMs);
  return () => clearInterval(timer);
}

/** True when this host can listen on ::1. */
export async function hasIPv6Loopback(): Promise<boolean> {
  const server = createServer();
  try {
    server.listen(0, "::1");
    await once(server, "listening");
    return true;
  } catch {
    return false;
  } finally {
    if (server.listening) {
      server.close();
      await once(server, "close");
    }
  }
}

/**
 * True when a wildcard listener is dual-stack here: an IPv4 client from 127.0.0.2 arrives
 * as "::ffff:127.0.0.2". Only loopback is ever connected to.
 */
export async function wildcardIsDualStack(): Promise<boolean> {
  const seen: string[] = [];
  const server = createServer((s) => {
    seen.push(s.remoteAddress ?? "");
    s.destroy();
  });
  try {
    server.listen({ port: 0, host: "::", ipv6Only: false });
    await once(server, "listening");
    const address = server.address();
    if (!address || typeof address === "string") return false;
    const socket = await dialFrom(address.port, "127.0.0.2");
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 2000);
      socket.once("end", resolve).once("close", resolve);
      socket.once("close", () => clearTimeout(timer));
    });
    socket.destroy();
    return seen[0] === "::ffff:127.0.0.2";
  } catch {
    return false;
  } finally {
    if (server.listening) {
      server.close();
      await once(server, "close");
    }
  }
}
