// The four ways a client reaches the backends: direct (no proxy: the physical limit of
// this box), tcpgate, HAProxy in `mode tcp` with one thread (the anchor), and the naive
// Node pipe proxy (the floor). Each proxy gets its own listen port per backend, and is
// started fresh for each group of tests so that its memory figures start from zero.
// The workers test starts tcpgate and HAProxy with more threads (`workers`, `nbthread`).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BackendPorts } from "./backends.ts";
import { type Child, startChild, stopChild, waitForPort } from "./proc.ts";

export type ProxyName = "direct" | "tcpgate" | "haproxy" | "node-pipe";

export const PROXY_LABELS: Record<ProxyName, string> = {
  direct: "direct",
  tcpgate: "tcpgate",
  haproxy: "HAProxy",
  "node-pipe": "node pipe",
};

export interface RunningProxy {
  name: ProxyName;
  /** null for direct: there is no proxy process to measure. */
  pid: number | null;
  /** Where clients connect to reach each backend. */
  ports: BackendPorts;
  stop(): Promise<void>;
}

/** Event loops: tcpgate's `workers`, HAProxy's `nbthread` (HAProxy takes numbers only here). */
export type Threads = number | "auto";

export interface ProxySetup {
  dir: string;
  repoRoot: string;
  /** The Node.js that runs tcpgate and the node pipe proxy (--node / BENCH_NODE, else the bench's own). */
  node: string;
  backends: BackendPorts;
  /** This proxy's listen ports, one per backend. */
  listen: Record<Exclude<ProxyName, "direct">, BackendPorts>;
  /** The open-files limit the proxies run under. */
  fdLimit: number;
}

const KEYS = ["iperf", "http", "redis", "echo"] as const;

/** Without `threads`, each proxy as the other tests run it: tcpgate without a `workers` key, HAProxy with nbthread 1. */
export async function startProxy(name: ProxyName, setup: ProxySetup, threads?: Threads): Promise<RunningProxy> {
  if (name === "direct") return { name, pid: null, ports: setup.backends, stop: async () => {} };
  const ports = setup.listen[name];
  let child: Child;
  if (name === "tcpgate") child = startTcpgate(setup, ports, threads);
  else if (name === "haproxy") child = startHaproxy(setup, ports, threads ?? 1);
  else child = startNodePipe(setup, ports);
  await waitForPort(ports.echo, name, child);
  return { name, pid: child.pid, ports, stop: () => stopChild(child) };
}

/** A tcpgate config with these listeners and nothing else (no rules); `workers` only when given. */
export function tcpgateYaml(
  listeners: { name: string; listen: number; target: number; extra?: string }[],
  workers?: Threads,
): string {
  const lines = ["version: 1", "log:", "  level: warn", "shutdownTimeout: 2s"];
  if (workers !== undefined) lines.push(`workers: ${workers}`);
  lines.push("listeners:");
  for (const l of listeners) {
    lines.push(`  - name: ${l.name}`, `    listen: 127.0.0.1:${l.listen}`, `    targets: [127.0.0.1:${l.target}]`);
    if (l.extra) lines.push(l.extra);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * How tcpgate runs as installed, on the bench's chosen Node: `<node> <V8 flags> dist/cli.js`.
 * The flags are read from the bin's first line (`#!/usr/bin/env -S node <flags>`), where
 * tcpgate keeps them, so the bench never carries a copy of its own.
 */
export function tcpgateCommand(setup: Pick<ProxySetup, "node" | "repoRoot">): { command: string; args: string[] } {
  const cli = join(setup.repoRoot, "dist", "cli.js");
  const shebang = readFileSync(cli, "utf8").split("\n", 1)[0] ?? "";
  const words = shebang.replace(/^#!/, "").trim().split(/\s+/);
  const node = words.findIndex((word) => word === "node" || word.endsWith("/node"));
  if (!shebang.startsWith("#!") || node < 0) throw new Error(`${cli}: no node in its first line: ${shebang}`);
  return { command: setup.node, args: [...words.slice(node + 1), cli] };
}

/** Writes `yaml` to `<name>.yaml` and starts tcpgate on it, at log level warn, its output in `logs/<name>.log`. */
export function startTcpgateWith(setup: ProxySetup, name: string, yaml: string, extraArgs: string[] = []): Child {
  const config = join(setup.dir, `${name}.yaml`);
  // 0644: tcpgate refuses a config file others may write.
  writeFileSync(config, yaml, { mode: 0o644 });
  const { command, args } = tcpgateCommand(setup);
  return startChild(
    name,
    command,
    [...args, "--config", config, "--log-level", "warn", ...extraArgs],
    join(setup.dir, "logs", `${name}.log`),
  );
}

function startTcpgate(setup: ProxySetup, ports: BackendPorts, workers: Threads | undefined): Child {
  const listeners = KEYS.map((key) => ({ name: key, listen: ports[key], target: setup.backends[key] }));
  const name = workers === undefined ? "tcpgate" : `tcpgate-workers-${workers}`;
  return startTcpgateWith(setup, name, tcpgateYaml(listeners, workers));
}

function startHaproxy(setup: ProxySetup, ports: BackendPorts, nbthread: Threads): Child {
  if (nbthread === "auto") throw new Error("the bench runs HAProxy with a number of threads, not auto");
  // Two descriptors per connection, and some to spare under the limit we cannot raise.
  const maxconn = Math.floor((setup.fdLimit - 200) / 2);
  const lines = [
    "global",
    `  nbthread ${nbthread}`,
    `  maxconn ${maxconn}`,
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 1h",
    "  timeout server 1h",
  ];
  for (const key of KEYS) {
    lines.push(
      `frontend f_${key}`,
      `  bind 127.0.0.1:${ports[key]}`,
      `  default_backend b_${key}`,
      `backend b_${key}`,
      `  server s_${key} 127.0.0.1:${setup.backends[key]}`,
    );
  }
  const name = nbthread === 1 ? "haproxy" : `haproxy-nbthread-${nbthread}`;
  const config = join(setup.dir, `${name}.cfg`);
  writeFileSync(config, `${lines.join("\n")}\n`);
  return startChild(name, "haproxy", ["-db", "-f", config], join(setup.dir, "logs", `${name}.log`));
}

function startNodePipe(setup: ProxySetup, ports: BackendPorts): Child {
  const script = join(setup.repoRoot, "bench", "node-pipe-proxy.mjs");
  const pairs = KEYS.map((key) => `${ports[key]}:${setup.backends[key]}`);
  return startChild("node-pipe", setup.node, [script, ...pairs], join(setup.dir, "logs", "node-pipe.log"));
}
