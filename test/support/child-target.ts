// An echo target in its own process, so that it can die for real: SIGKILL makes the
// kernel close its sockets the way a crashed server's are closed. It can be started again
// on the same port. Every child is stopped by its PID, at the latest when we exit.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

const ECHO = `
const net = require("node:net");
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on("error", () => {});
  socket.pipe(socket);
});
server.on("error", (error) => {
  process.stderr.write(String(error) + "\\n");
  process.exit(1);
});
server.listen({ host: "127.0.0.1", port: Number(process.argv[1]) }, () => {
  process.stdout.write(server.address().port + "\\n");
});
`;

const alive = new Set<number>();
process.on("exit", () => {
  for (const pid of alive) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

export class ChildEcho {
  private child: ChildProcess | undefined;

  private constructor(public port: number) {}

  /** Starts an echo server process on 127.0.0.1:port (0: any free port). */
  static async start(port = 0): Promise<ChildEcho> {
    const target = new ChildEcho(port);
    await target.restart();
    return target;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Listens again on the same port; resolves once it accepts connections. */
  async restart(timeoutMs = 5000): Promise<void> {
    if (this.child) return;
    const child = spawn(process.execPath, ["-e", ECHO, String(this.port)], { stdio: ["ignore", "pipe", "pipe"] });
    const pid = child.pid;
    if (pid === undefined) throw new Error("could not spawn the echo target");
    alive.add(pid);
    child.once("exit", () => alive.delete(pid));
    this.child = child;
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    try {
      const ready = once(child.stdout as NonNullable<ChildProcess["stdout"]>, "data") as Promise<[Buffer]>;
      // Resolves (never rejects) so that a later exit is nobody's unhandled rejection.
      const exited = once(child, "exit").then(() => undefined);
      const first = await Promise.race([ready, exited]);
      if (!first) throw new Error(`echo target exited before listening: ${stderr.trim()}`);
      this.port = Number(first[0].toString().trim());
    } catch (error) {
      this.child = undefined;
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, "SIGKILL");
        await once(child, "exit");
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends signal (SIGKILL by default) to the process and resolves once it has exited. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    process.kill(child.pid, signal);
    await exited;
  }
}
