// The one harness for the real tcpgate CLI (dist/cli.js, built by `npm test`) as a child
// process: startTcpgate() spawns it and reads its JSON log lines as they come, startGate()
// does the same on a temporary config file, runTcpgate() runs it to completion. Every wait
// is for a log line, bounded in time; every child is stopped by its PID.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { dialFrom, type Refused, type RefusedOptions, tryRefused } from "./net.ts";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = join(ROOT, "dist", "cli.js");

/** How long start-up may take: node alone took over 10 s to start at load average 20 on 2 cores. */
const START_MS = 30_000;

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logs: LogLine[];
  readonly stderr: () => string;
  /** Resolves with the first log line matching; rejects after timeoutMs, or if tcpgate exits first. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends a signal and resolves with the exit code (SIGKILL after timeoutMs). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  readonly exited: Promise<number | null>;
  /**
   * Resolves once "tcpgate started" is logged, and with watching, once the config file is
   * watched (a debug line: an edit made before it could go unseen). On failure SIGKILLs
   * tcpgate and rejects.
   */
  started(options?: { watching?: boolean; timeoutMs?: number }): Promise<void>;
  /** Messages (msg) of the lines from index `from` on that contain text. */
  messages(text: string, from?: number): string[];
  /** Resolves with the first line from index `from` on whose msg contains text. */
  waitMsg(text: string, options?: { from?: number; timeoutMs?: number }): Promise<LogLine>;
  /** How many "reload applied" lines so far. */
  applied(): number;
  /** Resolves once at least n reloads have been applied. */
  waitApplied(n: number, timeoutMs?: number): Promise<void>;
  /** Sends SIGHUP and returns at once. */
  hangup(): void;
  /** SIGHUP, resolved once that reload is applied; rejects with the message of a rejection. */
  reload(timeoutMs?: number): Promise<void>;
  /** Access-log lines (one per bridge, logged when it ends) from index `from` on. */
  bridgeLines(from?: number): LogLine[];
  /**
   * The access-log line of a bridge: of a client socket from dial() (logged after it
   * connected), or of a client port, logged at or after index `from`.
   */
  bridgeEnd(client: Socket | number, from?: number, timeoutMs?: number): Promise<LogLine>;
  /** Refusal lines (msg "refused: …"), optionally only those of one listener. */
  refusals(listener?: string): LogLine[];
  /**
   * Connects to port (from localAddress, if given), bounded in time, remembering where the
   * log stood: only a later line can be this connection's. Gate.close() destroys it.
   */
  dial(port: number, localAddress?: string, host?: string): Promise<Socket>;
  /** tryRefused() (see net.ts), remembering where the log stood. */
  tryRefused(port: number, localAddress: string, options?: RefusedOptions): Promise<Refused>;
  /** The refusal line of that connection (by client port, logged after it started). */
  refusalLine(result: Refused, timeoutMs?: number): Promise<LogLine>;
}

const running = new Set<ChildProcess>();
// Whatever happens in a test file, no tcpgate outlives it.
process.on("exit", () => {
  for (const child of running) if (child.pid) process.kill(child.pid, "SIGKILL");
});

export interface SpawnOptions {
  /** RLIMIT_NOFILE (soft and hard) for tcpgate only: `ulimit -n` in a shell that then execs node, so the PID is node's. */
  readonly nofile?: number;
  /** Flags for node itself, before the script (e.g. --heapsnapshot-signal=SIGUSR2). */
  readonly nodeArgs?: readonly string[];
  readonly cwd?: string;
  /** An installed `tcpgate` to run instead of node dist/cli.js (nodeArgs do not apply). */
  readonly executable?: string;
  /** Added to the environment tcpgate runs in. */
  readonly env?: Readonly<Record<string, string>>;
}

const msgOf = (l: LogLine) => (typeof l.msg === "string" ? l.msg : "");
const isRefusal = (l: LogLine) => msgOf(l).startsWith("refused: ");

export function startTcpgate(args: readonly string[], options: SpawnOptions = {}): Running {
  return spawnTcpgate(args, options).tcpgate;
}

/** The child, and the clients its dial() connected (for Gate.close()). */
function spawnTcpgate(args: readonly string[], options: SpawnOptions): { tcpgate: Running; clients: Set<Socket> } {
  const command = options.executable
    ? [options.executable, ...args]
    : [process.execPath, ...(options.nodeArgs ?? []), CLI, ...args];
  const child =
    options.nofile === undefined
      ? spawn(command[0] as string, command.slice(1), {
          cwd: options.cwd ?? ROOT,
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, ...options.env },
        })
      : spawn("sh", ["-c", 'ulimit -n "$1" && shift && exec "$@"', "sh", String(options.nofile), ...command], {
          cwd: options.cwd ?? ROOT,
          stdio: ["ignore", "pipe", "pipe"],
        });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn tcpgate");
  running.add(child);
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  let buffered = "";
  child.stdout?.setEncoding("utf8").on("data", (text: string) => {
    buffered += text;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ msg: line });
      }
    }
    for (const w of waiters) w();
  });
  child.stderr?.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      running.delete(child);
      for (const w of waiters) w();
      resolve(code);
    });
  });
  const gone = () => child.exitCode !== null || child.signalCode !== null;

  const waitForLog: Running["waitForLog"] = (match, timeoutMs = 5000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = logs.find(match);
        if (found) {
          cleanup();
          resolve(found);
        } else if (gone()) {
          cleanup();
          reject(new Error(`tcpgate exited (${child.exitCode ?? child.signalCode}) first; stderr: ${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching log line within ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3))}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  /** The first line at or after index `from` that matches; match is tested first, as it is cheap. */
  const waitLine = (match: (l: LogLine) => boolean, from: number, timeoutMs: number) =>
    waitForLog((l) => match(l) && logs.indexOf(l) >= from, timeoutMs);
  const stop: Running["stop"] = async (signal = "SIGTERM", timeoutMs = 5000) => {
    if (gone()) return child.exitCode;
    process.kill(pid, signal);
    const timer = setTimeout(() => {
      if (!gone()) process.kill(pid, "SIGKILL");
    }, timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const applied = () => logs.filter((l) => msgOf(l) === "reload applied").length;
  // Where the log stood when dial() connected each client, and the client's port.
  const dialled = new WeakMap<Socket, { from: number; port: number }>();
  const clients = new Set<Socket>();

  const tcpgate: Running = {
    child,
    pid,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog,
    stop,
    async started({ watching = false, timeoutMs = START_MS } = {}) {
      try {
        await waitForLog((l) => msgOf(l) === "tcpgate started", timeoutMs);
        if (watching) await waitForLog((l) => msgOf(l) === "watching the config file", timeoutMs);
      } catch (error) {
        await stop("SIGKILL");
        throw error;
      }
    },
    messages: (text, from = 0) =>
      logs
        .slice(from)
        .map(msgOf)
        .filter((m) => m.includes(text)),
    waitMsg: (text, { from = 0, timeoutMs = 5000 } = {}) => waitLine((l) => msgOf(l).includes(text), from, timeoutMs),
    applied,
    async waitApplied(n, timeoutMs = 5000) {
      await waitForLog(() => applied() >= n, timeoutMs);
    },
    hangup: () => process.kill(pid, "SIGHUP"),
    async reload(timeoutMs = 5000) {
      const from = logs.length;
      process.kill(pid, "SIGHUP");
      const line = await waitLine(
        (l) => msgOf(l) === "reload applied" || msgOf(l).startsWith("reload rejected"),
        from,
        timeoutMs,
      );
      if (msgOf(line) !== "reload applied") throw new Error(msgOf(line));
    },
    bridgeLines: (from = 0) => logs.slice(from).filter((l) => typeof l.end === "string"),
    bridgeEnd(client, from, timeoutMs = 5000) {
      const known = typeof client === "number" ? undefined : dialled.get(client);
      const port = typeof client === "number" ? client : (known?.port ?? client.localPort);
      return waitLine((l) => l.clientPort === port && typeof l.end === "string", from ?? known?.from ?? 0, timeoutMs);
    },
    refusals: (listener) => logs.filter((l) => isRefusal(l) && (!listener || l.listener === listener)),
    async dial(port, localAddress, host) {
      const from = logs.length;
      const socket = await dialFrom(port, localAddress, host);
      dialled.set(socket, { from, port: socket.localPort ?? 0 });
      clients.add(socket);
      socket.once("close", () => clients.delete(socket));
      return socket;
    },
    async tryRefused(port, localAddress, options) {
      const from = logs.length;
      return { ...(await tryRefused(port, localAddress, options)), from };
    },
    refusalLine(result, timeoutMs = 3000) {
      // A client port comes round again, on another listener or later on: only lines
      // logged after this connection started are its own.
      return waitLine((l) => l.clientPort === result.port && isRefusal(l), result.from, timeoutMs);
    },
  };
  return { tcpgate, clients };
}

/** Runs the CLI to completion (for --check, --help, bad usage); bounded by timeoutMs. */
export async function runTcpgate(
  args: string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (t: string) => {
    stdout += t;
  });
  child.stderr?.setEncoding("utf8").on("data", (t: string) => {
    stderr += t;
  });
  const timer = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), timeoutMs);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  running.delete(child);
  return { code, stdout, stderr };
}

export interface TempConfig {
  readonly dir: string;
  readonly path: string;
  write(yaml: string): void;
  remove(): void;
}

/** A temporary folder with a config file in it; remove() deletes both. */
export function tempConfig(yaml: string, name = "proxy.yaml"): TempConfig {
  const dir = mkdtempSync(join(tmpdir(), "tcpgate-test-"));
  const path = join(dir, name);
  // 0644 whatever the umask: tcpgate refuses a config others may write.
  writeFileSync(path, yaml, { mode: 0o644 });
  return {
    dir,
    path,
    write: (text) => writeFileSync(path, text),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** tcpgate running on a temporary config file. */
export interface Gate extends Running {
  /** The config file and its folder. */
  readonly path: string;
  readonly dir: string;
  /** Rewrites the config file in place (the watcher, if on, picks it up; else reload()). */
  write(yaml: string): void;
  /** The port a listener of the config file on disk listens on. */
  port(listener: string): number;
  /** Destroys every client from dial(), SIGTERM (SIGKILL after 5 s), removes the config folder. Safe to call twice. */
  close(): Promise<number | null>;
}

export interface GateOptions extends SpawnOptions {
  /** Watch the file (default: --no-watch; reload() or hangup() then apply an edit). */
  readonly watch?: boolean;
  /** --log-level; debug by default, so that every line a test may wait for is logged. */
  readonly logLevel?: string;
}

/** Writes yaml to a temporary file, starts tcpgate on it and resolves once it has started. */
export async function startGate(yaml: string, options: GateOptions = {}): Promise<Gate> {
  const config = tempConfig(yaml);
  const { watch = false, logLevel = "debug", ...spawnOptions } = options;
  const args = ["--config", config.path, "--log-level", logLevel, ...(watch ? [] : ["--no-watch"])];
  let spawned: ReturnType<typeof spawnTcpgate>;
  try {
    spawned = spawnTcpgate(args, spawnOptions);
    await spawned.tcpgate.started({ watching: watch });
  } catch (error) {
    config.remove();
    throw error;
  }
  const { tcpgate, clients } = spawned;
  return {
    ...tcpgate,
    path: config.path,
    dir: config.dir,
    write: config.write,
    port: (listener) => listenPort(config.path, listener),
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

/** The port in the `listen` of a listener, as the config file at path says. */
function listenPort(path: string, listener: string): number {
  const config = parse(readFileSync(path, "utf8")) as { listeners?: { name?: unknown; listen?: unknown }[] };
  const listen = config.listeners?.find((l) => l.name === listener)?.listen;
  if (typeof listen !== "string") throw new Error(`no listener ${listener} in ${path}`);
  return Number(listen.slice(listen.lastIndexOf(":") + 1));
}

/** The node flags the bin's shebang carries (`#!/usr/bin/env -S node --flag`), to run it as installed. */
export function binNodeFlags(): string[] {
  const first = readFileSync(CLI, "utf8").split("\n", 1)[0] ?? "";
  return /^#!.*\bnode((?:\s+--\S+)*)\s*$/.exec(first)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}
