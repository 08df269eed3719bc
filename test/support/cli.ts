// Runs the real tcpgate CLI (dist/cli.js, built by `npm test`) as a child process.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = join(ROOT, "dist", "cli.js");

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logs: LogLine[];
  readonly stderr: () => string;
  /** Resolves with the first log line matching; rejects after timeoutMs. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends a signal and resolves with the exit code (SIGKILL after timeoutMs). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  readonly exited: Promise<number | null>;
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

export function startTcpgate(args: readonly string[], options: SpawnOptions = {}): Running {
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

/** A temporary folder with a config file in it; remove() deletes both. */
export function tempConfig(
  yaml: string,
  name = "proxy.yaml",
): { dir: string; path: string; write(yaml: string): void; remove(): void } {
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
