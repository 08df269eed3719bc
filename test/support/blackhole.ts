// A target whose SYNs go unanswered, on loopback only: a child process listens with the
// smallest backlog, is stopped (SIGSTOP) so it never accepts, and its accept queue is
// filled by our own connections. Linux then drops further SYNs, exactly as a firewalled
// or vanished host would, and a connect() waits until someone gives up.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { dialWithin } from "./net.ts";

export interface BlackHole {
  readonly port: number;
  /** "127.0.0.1:port" */
  readonly address: string;
  close(): Promise<void>;
}

const LISTEN = `
const server = require("node:net").createServer();
// Node treats backlog 0 as "default" (511); 1 is the smallest it passes to listen(2).
server.listen({ host: "127.0.0.1", port: 0, backlog: 1 }, () => {
  process.stdout.write(server.address().port + "\\n");
});
`;

const children = new Set<number>();
process.on("exit", () => {
  for (const pid of children) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

/** Connections waiting in the accept queue of the listening socket on 127.0.0.1:port (/proc/net/tcp's rx_queue). */
function acceptQueue(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, local = "", , state, queues = ""] = line.trim().split(/\s+/);
    if (state === "0A" && local.endsWith(`:${hex}`)) return Number.parseInt(queues.split(":")[1] ?? "", 16);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

export async function startBlackHole(): Promise<BlackHole> {
  const child = spawn(process.execPath, ["-e", LISTEN], { stdio: ["ignore", "pipe", "inherit"] });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn the black-hole listener");
  children.add(pid);
  const fillers: Socket[] = [];
  const close = async () => {
    for (const s of fillers) s.destroy();
    if (children.delete(pid) && child.exitCode === null && child.signalCode === null) {
      // SIGKILL works on a stopped process too.
      process.kill(pid, "SIGKILL");
      await once(child, "exit");
    }
  };
  try {
    const [line] = (await once(child.stdout, "data")) as [Buffer];
    const port = Number(line.toString().trim());
    process.kill(pid, "SIGSTOP");
    // Fill the accept queue: with backlog 1 Linux holds two connections and drops every
    // SYN from then on. Each of ours completes (the kernel answers for the stopped process).
    while (acceptQueue(port) < 2) {
      if (fillers.length >= 16) throw new Error("the accept queue never filled: SYNs are not being dropped");
      fillers.push(await dialWithin(port, "127.0.0.1", undefined, 3000));
    }
    return { port, address: `127.0.0.1:${port}`, close };
  } catch (error) {
    await close();
    throw error;
  }
}
