// Reload tests: config files built from listener definitions, targets that say who
// answered, short exchanges through a bridge, and what a process has bound.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Socket } from "node:net";
import { dialWithin, startServer, type TestServer } from "./net.ts";

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
