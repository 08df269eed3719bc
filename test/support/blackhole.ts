// A target whose SYNs go unanswered, on loopback only: a child process listens with the
// smallest backlog, is stopped (SIGSTOP) so it never accepts, and its accept queue is
// filled by our own connections. Linux then drops further SYNs, exactly as a firewalled
// or vanished host would, and a connect() waits until someone gives up.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { connect, type Socket } from "node:net";

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
    // Fill the accept queue until a connect no longer completes.
    for (let i = 0; i < 16; i++) {
      const socket = connect({ host: "127.0.0.1", port });
      socket.on("error", () => {});
      fillers.push(socket);
      const connected = await Promise.race([
        once(socket, "connect").then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300)),
      ]);
      // Kept, not destroyed: should it connect after all (a slow box), it fills the queue itself.
      if (!connected) return { port, address: `127.0.0.1:${port}`, close };
    }
    throw new Error("the accept queue never filled: SYNs are not being dropped");
  } catch (error) {
    await close();
    throw error;
  }
}
