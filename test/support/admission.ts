// Admission tests through the real CLI: targets that count who reached them, echoes
// through a bridge, and what this host's loopback can do (IPv6, dual-stack wildcards).
import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import { dialFrom, dialWithin, startServer, type TestServer } from "./net.ts";

export interface CountingServer extends TestServer {
  /** Connections the server accepted so far, closed ones included. */
  accepted(): number;
  /**
   * accepted(), once every connection made to the server before this call has surely been
   * accepted: a probe of our own connects straight to it and is accepted after them (one
   * accept queue, first in, first out). The probe is not counted.
   */
  acceptedSoFar(): Promise<number>;
}

const PROBE = "\0count-probe\0";

/**
 * A loopback address of the counting targets' own: another test process on this machine
 * that connects to a port it took for free (to see it refused, or as a dead target) reaches
 * 127.0.0.1, not this, and is not counted as a connection tcpgate made.
 */
const COUNTING_HOST = "127.0.0.100";

/**
 * An echo target that counts the connections it accepts: a refused client must cost it
 * none. A chunk containing "RST" makes it reset that connection instead of echoing.
 */
export async function startCountingEcho(host = COUNTING_HOST, port = 0): Promise<CountingServer> {
  let accepted = 0;
  let probes = 0;
  const server = await startServer(
    (socket) => {
      accepted++;
      socket.on("data", (chunk: Buffer) => {
        if (chunk.toString() === PROBE) probes++;
        if (chunk.includes("RST")) socket.resetAndDestroy();
        else socket.write(chunk);
      });
      socket.on("end", () => socket.end());
    },
    host,
    port,
  );
  const count = () => accepted - probes;
  return Object.assign(server, {
    accepted: count,
    async acceptedSoFar() {
      const probe = await dialWithin(server.port, host, undefined, 3000);
      try {
        await echoes(probe, PROBE);
      } finally {
        probe.destroy();
      }
      return count();
    },
  });
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
