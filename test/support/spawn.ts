// The real CLI as a child process, like startTcpgate, but under conditions a test sets:
// a descriptor limit (`ulimit -n` in a shell that then execs node, so the PID is node's),
// extra node flags, or another working directory.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { CLI, type LogLine, ROOT, type Running } from "./cli.ts";

export interface SpawnOptions {
  /** RLIMIT_NOFILE (soft and hard) for tcpgate only. */
  readonly nofile?: number;
  /** Flags for node itself, before the script (e.g. --heapsnapshot-signal=SIGUSR2). */
  readonly nodeArgs?: readonly string[];
  readonly cwd?: string;
}

/** The node flags the bin's shebang carries (`#!/usr/bin/env -S node --flag`), to run it as installed. */
export function binNodeFlags(): string[] {
  const first = readFileSync(CLI, "utf8").split("\n", 1)[0] ?? "";
  return /^#!.*\bnode((?:\s+--\S+)*)\s*$/.exec(first)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}

const children = new Set<number>();
process.on("exit", () => {
  for (const pid of children) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

export function startCli(args: readonly string[], options: SpawnOptions = {}): Running {
  const command = [process.execPath, ...(options.nodeArgs ?? []), CLI, ...args];
  const child =
    options.nofile === undefined
      ? spawn(command[0] as string, command.slice(1), { cwd: options.cwd ?? ROOT, stdio: ["ignore", "pipe", "pipe"] })
      : spawn("sh", ["-c", 'ulimit -n "$1" && shift && exec "$@"', "sh", String(options.nofile), ...command], {
          cwd: options.cwd ?? ROOT,
          stdio: ["ignore", "pipe", "pipe"],
        });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn tcpgate");
  children.add(pid);
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
      children.delete(pid);
      for (const w of waiters) w();
      resolve(code);
    });
  });
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    pid,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog(match, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
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
    },
    async stop(signal = "SIGTERM", timeoutMs = 5000) {
      if (gone()) return child.exitCode;
      process.kill(pid, signal);
      const timer = setTimeout(() => {
        if (!gone()) process.kill(pid, "SIGKILL");
      }, timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Waits for "tcpgate started"; on failure kills the child by its PID and rethrows. */
export async function started(tcpgate: Running, timeoutMs = 10_000): Promise<Running> {
  try {
    await tcpgate.waitForLog((l) => l.msg === "tcpgate started", timeoutMs);
    return tcpgate;
  } catch (error) {
    await tcpgate.stop("SIGKILL");
    throw error;
  }
}
