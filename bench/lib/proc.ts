// Processes the bench starts, and what /proc says about them. Every child is recorded in
// a pid file the moment it starts (bench/run's EXIT trap reads it too), and stopAll()
// ends each one by its own pid: nothing the bench did not start is ever touched.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, openSync, readFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

const children = new Set<Child>();
let pidFile: string | undefined;

export function recordPidsIn(path: string): void {
  pidFile = path;
}

/** Starts a long-lived child with its output in a log file; it is stopped by stopAll() if not before. */
export function startChild(name: string, command: string, args: string[], logPath: string, cwd?: string): Child {
  const out = openSync(logPath, "a");
  const proc = spawn(command, args, { stdio: ["ignore", out, out], cwd });
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const child: Child = { name, pid: proc.pid, proc, exited };
  children.add(child);
  void exited.then(() => children.delete(child));
  if (pidFile) appendFileSync(pidFile, `${proc.pid}\n`);
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(child: Child, graceMs = 3000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill("SIGTERM");
  const done = await Promise.race([child.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    child.proc.kill("SIGKILL");
    await Promise.race([child.exited, sleep(1000)]);
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child)));
}

/** Stops every child synchronously: for process.on("exit"), where nothing async runs. */
export function killAllNow(): void {
  for (const child of children) {
    try {
      child.proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Runs a load generator to completion, bounded: killed after `timeoutMs`. */
export function runTool(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((done) => proc.once("exit", (code) => done(code)));
    const child: Child = { name: command, pid: proc.pid ?? -1, proc, exited };
    children.add(child);
    if (pidFile && proc.pid) appendFileSync(pidFile, `${proc.pid}\n`);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    proc.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    proc.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill("SIGKILL");
    }, timeoutMs);
    proc.on("error", (error) => {
      stderr += String(error);
    });
    proc.on("close", (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** The process's CPU time so far, user + system over all its threads, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start with the state, field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / CLOCK_TICKS;
}

/** Runs `work` and reports the process's CPU seconds over it (null without a process: direct). */
export async function measured<T>(
  pid: number | null,
  work: () => Promise<T>,
): Promise<{ result: T; cpu: number | null }> {
  const before = pid === null ? 0 : cpuSeconds(pid);
  const result = await work();
  return { result, cpu: pid === null ? null : cpuSeconds(pid) - before };
}

/** A field of /proc/<pid>/status in KiB: VmRSS (now) or VmHWM (peak since start). */
export function memoryKiB(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!match?.[1]) throw new Error(`no ${field} for pid ${pid}`);
  return Number(match[1]);
}

/** True once a TCP connect to 127.0.0.1:port succeeds. */
export function canConnect(port: number, host = "127.0.0.1", timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export async function waitForPort(port: number, what: string, child?: Child, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.proc.exitCode !== null) throw new Error(`${what} exited with code ${child.proc.exitCode}`);
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${what}: nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Free TCP ports on 127.0.0.1 below the ephemeral range, so no outgoing connection takes one meanwhile. */
export async function freePorts(count: number): Promise<number[]> {
  const range = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  const ceiling = Math.min((range[0] ?? 32768) - 1, 32767);
  const ports: number[] = [];
  let candidate = 20000 + Math.floor(Math.random() * 4000) * 2;
  while (ports.length < count && candidate <= ceiling) {
    if (await isFree(candidate)) ports.push(candidate);
    candidate += 1;
  }
  if (ports.length < count) throw new Error("not enough free ports below the ephemeral range");
  return ports;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
