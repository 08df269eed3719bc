// What the figures were measured on: the machine, the versions of every program, the
// commit of tcpgate, and the load average (this machine is shared: look at it first).
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

export const PEERS = ["iperf3", "wrk", "redis-server", "redis-benchmark", "redis-cli", "nginx", "haproxy"] as const;

/** Which of the peer programs are on PATH. */
export function availableTools(): Set<string> {
  const found = new Set<string>();
  for (const tool of PEERS) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0) found.add(tool);
  }
  return found;
}

/** `name version`, the version picked out of what `command args` prints. */
function version(name: string, command: string, args: string[], pattern: RegExp): string {
  const run = spawnSync(command, args, { encoding: "utf8" });
  if (run.error) return `${name} not installed`;
  return `${name} ${pattern.exec(`${run.stdout}\n${run.stderr}`)?.[1] ?? "(version unknown)"}`;
}

export const loadAverage = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

export interface Machine {
  date: string;
  nproc: number;
  cpu: string;
  memoryGiB: number;
  kernel: string;
  /** The Node.js that runs the bench (load scripts, echo server). */
  node: string;
  /** The Node.js that runs tcpgate and the node pipe proxy: `version (path)`. */
  tcpgateNode: string;
  haproxy: string;
  nginx: string;
  redis: string;
  iperf3: string;
  wrk: string;
  tcpgate: string;
  fdLimit: string;
}

/** The version `node --version` prints; throws when that Node cannot be run. */
export function nodeVersion(node: string): string {
  const run = spawnSync(node, ["--version"], { encoding: "utf8" });
  const printed = run.stdout?.trim() ?? "";
  if (run.error || run.status !== 0 || !/^v\d+\.\d+\.\d+/.test(printed)) {
    throw new Error(`cannot run ${node} --version: ${run.error?.message ?? (run.stderr || printed)}`.trim());
  }
  return printed;
}

export function machineFacts(repoRoot: string, tcpgateNode: string): Machine {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  let tcpgate = "?";
  try {
    const git = (...args: string[]) => execFileSync("git", ["-C", repoRoot, ...args], { encoding: "utf8" }).trim();
    const dirty = git("status", "--porcelain", "--", "src").length > 0;
    tcpgate = `${git("rev-parse", "--short", "HEAD")}${dirty ? " (src/ has uncommitted changes)" : ""}`;
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpu,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    tcpgateNode: `${nodeVersion(tcpgateNode)} (${tcpgateNode})`,
    haproxy: version("HAProxy", "haproxy", ["-v"], /version (\S+)/),
    nginx: version("nginx", "nginx", ["-v"], /nginx\/(\S+)/),
    redis: version("redis", "redis-server", ["--version"], /v=(\S+)/),
    iperf3: version("iperf3", "iperf3", ["--version"], /iperf (\S+)/),
    wrk: version("wrk", "wrk", ["-v"], /wrk (\S+)/),
    tcpgate,
    fdLimit: spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim(),
  };
}
