// Reload under load: client loops connect continuously to a tcpgate listener whose
// address never changes, while the config file is rewritten N times with a real change
// to another listener each time (its port flips between two addresses, its allow list
// and idle timeout change). Each reload is confirmed by the moved listener answering on
// its new port before the next one is written. Every client connection is counted:
// echoed, refused, reset (or closed early), timed out, or another error.
import { writeFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { canConnect } from "./proc.ts";

export interface ReloadResult {
  reloadsWritten: number;
  reloadsConfirmed: number;
  attempted: number;
  echoed: number;
  refused: number;
  reset: number;
  timedOut: number;
  otherErrors: number;
  otherCodes: string[];
  seconds: number;
}

export interface ReloadSetup {
  configPath: string;
  /** Renders the config for reload number `i` (0 is the one tcpgate started with). */
  render: (i: number) => string;
  /** The moved listener's port in config `i`. */
  movingPort: (i: number) => number;
  steadyPort: number;
  reloads: number;
  clients: number;
  /** With `via: "sighup"`, tcpgate runs with --no-watch and gets a SIGHUP after each write. */
  via: "file" | "sighup";
  pid: number;
}

const MESSAGE = Buffer.from("reload?\n");

type Outcome = "echoed" | "refused" | "reset" | "timedOut" | string;

function oneConnection(port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let received = 0;
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome === "echoed") socket.end();
      else socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => settle("timedOut"), 3000);
    socket.on("connect", () => socket.write(MESSAGE));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received >= MESSAGE.length) settle("echoed");
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") settle("refused");
      else if (error.code === "ECONNRESET" || error.code === "EPIPE") settle("reset");
      else settle(error.code ?? "error");
    });
    // A close before the whole echo came back is a dropped connection: counted with resets.
    socket.on("close", () => settle("reset"));
  });
}

export async function reloadUnderLoad(setup: ReloadSetup): Promise<ReloadResult> {
  const result: ReloadResult = {
    reloadsWritten: 0,
    reloadsConfirmed: 0,
    attempted: 0,
    echoed: 0,
    refused: 0,
    reset: 0,
    timedOut: 0,
    otherErrors: 0,
    otherCodes: [],
    seconds: 0,
  };
  const started = Date.now();
  // Bounded in time whatever happens: five seconds a reload, and a margin.
  const hardDeadline = started + setup.reloads * 5000 + 10_000;
  let stop = false;
  const loop = async () => {
    while (!stop && Date.now() < hardDeadline) {
      result.attempted += 1;
      const outcome = await oneConnection(setup.steadyPort);
      if (outcome === "echoed") result.echoed += 1;
      else if (outcome === "refused") result.refused += 1;
      else if (outcome === "reset") result.reset += 1;
      else if (outcome === "timedOut") result.timedOut += 1;
      else {
        result.otherErrors += 1;
        if (!result.otherCodes.includes(outcome)) result.otherCodes.push(outcome);
      }
    }
  };
  const loops = Array.from({ length: setup.clients }, loop);
  await sleep(300);
  for (let i = 1; i <= setup.reloads && Date.now() < hardDeadline; i++) {
    writeFileSync(setup.configPath, setup.render(i));
    result.reloadsWritten += 1;
    if (setup.via === "sighup") process.kill(setup.pid, "SIGHUP");
    const deadline = Date.now() + 5000;
    const newPort = setup.movingPort(i);
    const oldPort = setup.movingPort(i - 1);
    while (Date.now() < deadline) {
      if ((await canConnect(newPort, "127.0.0.1", 500)) && !(await canConnect(oldPort, "127.0.0.1", 500))) {
        result.reloadsConfirmed += 1;
        break;
      }
      await sleep(10);
    }
  }
  await sleep(300);
  stop = true;
  await Promise.all(loops);
  result.seconds = (Date.now() - started) / 1000;
  return result;
}
