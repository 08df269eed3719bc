import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Socket } from "node:net";
import { type LogLine, type Running, startTcpgate, tempConfig } from "./cli.ts";
import { dialWithin, freePort, startServer, type TestServer } from "./net.ts";

export interface ListenerDef {
  readonly name: string;
  /** "host:port" as written in the file. */
  readonly listen: string;
  readonly targets: readonly string[];
  /** Extra listener keys, e.g. { idleTimeout: "30s" }. */
  readonly settings?: Readonly<Record<string, string | number>>;
}

/** A whole config file with these listeners. */
export function configText(listeners: readonly ListenerDef[], options: { shutdownTimeout?: string } = {}): string {
  const lines = ["version: 1", `shutdownTimeout: ${options.shutdownTimeout ?? "1s"}`, "listeners:"];
  for (const l of listeners) {
    lines.push(`  - name: ${l.name}`, `    listen: "${l.listen}"`, "    targets:");
    for (const t of l.targets) lines.push(`      - "${t}"`);
    for (const [key, value] of Object.entries(l.settings ?? {})) lines.push(`    ${key}: ${value}`);
  }
  return `${lines.join("\n")}\n`;
}

/** n distinct ports that were free a moment ago on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export interface Gate {
  readonly tcpgate: Running;
  readonly pid: number;
  readonly logs: LogLine[];
  /** The config file's path (for a symlinked layout, the link). */
  readonly path: string;
  /** How many reloads have been applied so far, from the log. */
  applied(): number;
  /** Resolves once at least n reloads have been applied. */
  waitApplied(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves with the first log line whose msg contains text (at or after line `from`). */
  waitMsg(text: string, options?: { from?: number; timeoutMs?: number }): Promise<LogLine>;
  /** Log messages containing text. */
  messages(text: string): string[];
  hangup(): void;
  /** SIGTERM, SIGKILL after a while. Safe to call twice. */
  stop(): Promise<number | null>;
}

/**
 * Starts tcpgate on path at debug level. With the watcher on, resolves only once the
 * watcher watches the file: an edit made before that could go unseen, and the test would be wrong.
 */
export async function startGate(path: string, options: { watch: boolean }): Promise<Gate> {
  const args = ["--config", path, "--log-level", "debug", ...(options.watch ? [] : ["--no-watch"])];
  const tcpgate = startTcpgate(args);
  const msg = (l: LogLine) => (typeof l.msg === "string" ? l.msg : "");
  try {
    await tcpgate.waitForLog((l) => msg(l) === "tcpgate started", 10_000);
    if (options.watch) await tcpgate.waitForLog((l) => msg(l) === "watching the config file", 10_000);
  } catch (error) {
    await tcpgate.stop("SIGKILL");
    throw error;
  }
  const applied = () => tcpgate.logs.filter((l) => msg(l) === "reload applied").length;
  return {
    tcpgate,
    pid: tcpgate.pid,
    logs: tcpgate.logs,
    path,
    applied,
    async waitApplied(n, timeoutMs = 5000) {
      await tcpgate.waitForLog(() => applied() >= n, timeoutMs);
    },
    waitMsg(text, { from = 0, timeoutMs = 5000 } = {}) {
      return tcpgate.waitForLog((l) => tcpgate.logs.indexOf(l) >= from && msg(l).includes(text), timeoutMs);
    },
    messages: (text) => tcpgate.logs.map(msg).filter((m) => m.includes(text)),
    hangup: () => process.kill(tcpgate.pid, "SIGHUP"),
    stop: () => tcpgate.stop("SIGTERM", 5000),
  };
}

/** A temporary config file plus tcpgate running on it; close() stops both. */
export async function gateWith(
  text: string,
  options: { watch: boolean },
): Promise<Gate & { write(text: string): void; dir: string; close(): Promise<void> }> {
  const config = tempConfig(text);
  let gate: Gate;
  try {
    gate = await startGate(config.path, options);
  } catch (error) {
    config.remove();
    throw error;
  }
  return {
    ...gate,
    dir: config.dir,
    write: config.write,
    async close() {
      try {
        await gate.stop();
      } finally {
        config.remove();
      }
    },
  };
}

/**
 * An echo server that answers every chunk with "<tag>:<chunk>", so a client can tell which
 * target its bridge reached. Keep writes small and wait for each answer.
 */
export function startTagged(tag: string): Promise<TestServer> {
  return startServer((socket) => {
    socket.on("data", (chunk: Buffer) => socket.write(`${tag}:${chunk.toString()}`));
    socket.on("end", () => socket.end());
  });
}

/** Writes text and resolves with the first `expected` characters that come back. */
export async function exchange(
  socket: Socket,
  text: string,
  expectedLength: number,
  timeoutMs = 3000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = "";
    const onData = (chunk: Buffer) => {
      received += chunk.toString();
      if (received.length >= expectedLength) finish(() => resolve(received));
    };
    const onEnd = () => finish(() => reject(new Error(`connection ended after ${JSON.stringify(received)}`)));
    const onError = (error: Error) => finish(() => reject(error));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no answer within ${timeoutMs} ms, got ${JSON.stringify(received)}`))),
      timeoutMs,
    );
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onError);
      settle();
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
    socket.write(text);
  });
}

/** Connects to 127.0.0.1:port (or host), bounded in time; rejects with the socket error. */
export async function open(port: number, host = "127.0.0.1", timeoutMs = 3000): Promise<Socket> {
  return dialWithin(port, host, undefined, timeoutMs);
}

/** One short connection: connect, send, read the answer, close. Resolves with the answer. */
export async function roundTrip(port: number, text: string, expectedLength = text.length, host = "127.0.0.1") {
  const socket = await open(port, host);
  try {
    return await exchange(socket, text, expectedLength);
  } finally {
    socket.destroy();
  }
}

/** Resolves with the error code of a connection attempt ("ECONNREFUSED"), or "connected". */
export async function connectOutcome(port: number, host = "127.0.0.1"): Promise<string> {
  try {
    const socket = await open(port, host);
    socket.destroy();
    return "connected";
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/**
 * TCP ports a process has in LISTEN state, from /proc (Linux): the leak check that does
 * not depend on which ports the test thought of trying.
 */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match?.[1]) inodes.add(match[1]);
    } catch {
      // The fd closed between readdir and readlink.
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const row of text.trim().split("\n").slice(1)) {
      const [, local = "", , state, , , , , , inode = ""] = row.trim().split(/\s+/);
      if (state === "0A" && inodes.has(inode)) ports.push(Number.parseInt(local.split(":")[1] ?? "", 16));
    }
  }
  return ports.sort((a, b) => a - b);
}
