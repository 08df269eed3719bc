// A real redis-server for the filter examples' tests: on a free loopback port, no
// persistence, stopped by PID. CI installs it (scripts/ci-install-redis.sh); elsewhere a
// test skips when it is missing, saying so.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { freePort } from "./net.ts";

const running = new Set<number>();
// Whatever happens in a test file, no redis-server outlives it.
process.on("exit", () => {
  for (const pid of running) process.kill(pid, "SIGKILL");
});

export interface RunningRedis {
  readonly port: number;
  readonly address: string;
  stop(): Promise<void>;
}

/** Why redis-server cannot be used here, or undefined when it can. Under CI its absence is an error. */
export function redisMissing(): string | undefined {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore", timeout: 5000 });
    return undefined;
  } catch {
    if (process.env.CI === "true")
      throw new Error("redis-server is required under CI: run scripts/ci-install-redis.sh");
    return "redis-server is not installed (apt-get install redis-server, or scripts/ci-install-redis.sh)";
  }
}

export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn redis-server");
  running.add(pid);
  child.once("exit", () => running.delete(pid));
  let output = "";
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server not ready within 10 s: ${output}`)), 10_000);
    child.stdout?.setEncoding("utf8").on("data", (text: string) => {
      output += text;
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}): ${output}`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    process.kill(pid, "SIGTERM");
    const timer = setTimeout(() => process.kill(pid, "SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, address: `127.0.0.1:${port}`, stop };
}
