// A tcpgate CLI child running from a temporary config file, for end-to-end bridge tests.
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { type LogLine, type Running, startTcpgate, tempConfig } from "./cli.ts";
import { dial, freePort } from "./net.ts";

export interface ListenerSpec {
  readonly name: string;
  /** "host:port" strings, or {address, weight}. */
  readonly targets: readonly (string | { address: string; weight: number })[];
  /** Extra listener keys, e.g. { idleTimeout: "500ms" }. */
  readonly settings?: Readonly<Record<string, string | number>>;
}

export interface ProxyClient {
  readonly socket: Socket;
  /** The client's local port: its access-log line's clientPort. */
  readonly port: number;
  /** Resolves with the one access-log line of this client's bridge, once it has ended. */
  accessLog(timeoutMs?: number): Promise<LogLine>;
}

export interface RunningProxy {
  readonly tcpgate: Running;
  readonly pid: number;
  /** The port a listener listens on (127.0.0.1). */
  port(name: string): number;
  /** Connects a client to a listener, remembering what identifies its access-log line. */
  dial(listener: string): Promise<ProxyClient>;
  /** Log lines since `mark` (a logs.length read earlier) of bridges on `listener` from these client ports. */
  bridgeLines(listener: string, clientPorts: ReadonlySet<number>, mark: number): LogLine[];
  /** SIGTERM, SIGKILL after a while; removes the config file. Safe to call twice. */
  stop(): Promise<number | null>;
}

/** Writes a config with these listeners on free loopback ports and starts the CLI on it. */
export async function startProxy(
  listeners: readonly ListenerSpec[],
  options: { shutdownTimeout?: string; logLevel?: string } = {},
): Promise<RunningProxy> {
  const ports = new Map<string, number>();
  for (const l of listeners) ports.set(l.name, await freePort());
  const lines = ["version: 1", `shutdownTimeout: ${options.shutdownTimeout ?? "2s"}`];
  if (options.logLevel) lines.push("log:", `  level: ${options.logLevel}`);
  lines.push("listeners:");
  for (const l of listeners) {
    lines.push(`  - name: ${l.name}`, `    listen: 127.0.0.1:${ports.get(l.name)}`, "    targets:");
    for (const t of l.targets) {
      if (typeof t === "string") lines.push(`      - "${t}"`);
      else lines.push(`      - address: "${t.address}"`, `        weight: ${t.weight}`);
    }
    for (const [key, value] of Object.entries(l.settings ?? {})) lines.push(`    ${key}: ${value}`);
  }
  const config = tempConfig(`${lines.join("\n")}\n`);
  const tcpgate = startTcpgate(["--config", config.path, "--no-watch"]);
  try {
    await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
  } catch (error) {
    await tcpgate.stop("SIGKILL");
    config.remove();
    throw error;
  }
  return {
    tcpgate,
    pid: tcpgate.pid,
    port(name) {
      const port = ports.get(name);
      if (port === undefined) throw new Error(`no listener ${name}`);
      return port;
    },
    async dial(listener) {
      // Ports are reused: only a line logged after this connect, on this listener, is ours.
      const mark = tcpgate.logs.length;
      const listenPort = ports.get(listener);
      if (listenPort === undefined) throw new Error(`no listener ${listener}`);
      const socket = await dial(listenPort);
      const port = socket.localPort;
      if (port === undefined) throw new Error("a connected socket without a local port");
      const isOurs = (l: LogLine) => l.listener === listener && l.clientPort === port && typeof l.end === "string";
      return {
        socket,
        port,
        accessLog: (timeoutMs = 10_000) =>
          tcpgate.waitForLog((l) => tcpgate.logs.indexOf(l) >= mark && isOurs(l), timeoutMs),
      };
    },
    bridgeLines(listener, clientPorts, mark) {
      return tcpgate.logs
        .slice(mark)
        .filter((l) => l.listener === listener && clientPorts.has(l.clientPort as number) && typeof l.end === "string");
    },
    async stop() {
      try {
        return await tcpgate.stop("SIGTERM", 5000);
      } finally {
        config.remove();
      }
    },
  };
}

/** Resident memory of a process in bytes, from /proc/<pid>/status (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}
