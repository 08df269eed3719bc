// The four ways a client reaches the backends: direct (no proxy: the physical limit of
// this box), tcpgate, HAProxy in `mode tcp` with one thread (the anchor), and the naive
// Node pipe proxy (the floor). Each proxy gets its own listen port per backend, and is
// started fresh for each group of tests so that its memory figures start from zero.
import { writeFileSync } from "node:fs";
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

export interface ProxySetup {
  dir: string;
  repoRoot: string;
  backends: BackendPorts;
  /** This proxy's listen ports, one per backend. */
  listen: Record<Exclude<ProxyName, "direct">, BackendPorts>;
  /** The open-files limit the proxies run under. */
  fdLimit: number;
}

const KEYS = ["iperf", "http", "redis", "echo"] as const;

export async function startProxy(name: ProxyName, setup: ProxySetup): Promise<RunningProxy> {
  if (name === "direct") return { name, pid: null, ports: setup.backends, stop: async () => {} };
  const ports = setup.listen[name];
  let child: Child;
  if (name === "tcpgate") child = startTcpgate(setup, ports);
  else if (name === "haproxy") child = startHaproxy(setup, ports);
  else child = startNodePipe(setup, ports);
  await waitForPort(ports.echo, name, child);
  return { name, pid: child.pid, ports, stop: () => stopChild(child) };
}

/** A tcpgate config with one listener per backend and nothing else (no rules). */
export function tcpgateYaml(listeners: { name: string; listen: number; target: number; extra?: string }[]): string {
  const lines = ["version: 1", "log:", "  level: warn", "shutdownTimeout: 2s", "listeners:"];
  for (const l of listeners) {
    lines.push(`  - name: ${l.name}`, `    listen: 127.0.0.1:${l.listen}`, `    targets: [127.0.0.1:${l.target}]`);
    if (l.extra) lines.push(l.extra);
  }
  return `${lines.join("\n")}\n`;
}

export function startTcpgateWith(setup: ProxySetup, name: string, yaml: string, extraArgs: string[] = []): Child {
  const config = join(setup.dir, `${name}.yaml`);
  // 0644: tcpgate refuses a config file others may write.
  writeFileSync(config, yaml, { mode: 0o644 });
  // Run as installed: the bin, whose first line carries the V8 flags tcpgate is tuned with.
  return startChild(
    name,
    join(setup.repoRoot, "dist", "cli.js"),
    ["--config", config, "--log-level", "warn", ...extraArgs],
    join(setup.dir, "logs", `${name}.log`),
  );
}

function startTcpgate(setup: ProxySetup, ports: BackendPorts): Child {
  const yaml = tcpgateYaml(KEYS.map((key) => ({ name: key, listen: ports[key], target: setup.backends[key] })));
  return startTcpgateWith(setup, "tcpgate", yaml);
}

function startHaproxy(setup: ProxySetup, ports: BackendPorts): Child {
  // Two descriptors per connection, and some to spare under the limit we cannot raise.
  const maxconn = Math.floor((setup.fdLimit - 200) / 2);
  const lines = [
    "global",
    "  nbthread 1",
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
  const config = join(setup.dir, "haproxy.cfg");
  writeFileSync(config, `${lines.join("\n")}\n`);
  return startChild("haproxy", "haproxy", ["-db", "-f", config], join(setup.dir, "logs", "haproxy.log"));
}

function startNodePipe(setup: ProxySetup, ports: BackendPorts): Child {
  const script = join(setup.repoRoot, "bench", "node-pipe-proxy.mjs");
  const pairs = KEYS.map((key) => `${ports[key]}:${setup.backends[key]}`);
  return startChild("node-pipe", process.execPath, [script, ...pairs], join(setup.dir, "logs", "node-pipe.log"));
}
