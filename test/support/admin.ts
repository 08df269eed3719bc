// Admin endpoint tests talk to the real CLI over real HTTP: config files with an admin
// section, requests (from a chosen loopback address when needed), and Prometheus text read
// back into samples that a test can compare before and after it acts.
import { request } from "node:http";
import type { Socket } from "node:net";
import { startServer, type TestServer } from "./net.ts";

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One request with Node's global fetch, bounded in time. */
export async function fetchAdmin(
  port: number,
  path: string,
  options: { method?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: options.method ?? "GET",
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => {
    headers[key] = value;
  });
  return { status: response.status, headers, body: await response.text() };
}

/** Where the admin endpoint listens: a TCP port on 127.0.0.1, or a Unix socket. */
export type AdminAt = number | { readonly socketPath: string };

/**
 * One request over a fresh connection (no keep-alive pool), optionally from localAddress
 * (127.0.0.2, ...), which fetch cannot choose, or over a Unix socket, optionally with a
 * body (POST /plan takes a config file's text). Bounded in time.
 */
export function requestFrom(
  at: AdminAt,
  path: string,
  options: { method?: string; localAddress?: string; timeoutMs?: number; body?: string } = {},
): Promise<Reply> {
  const where = typeof at === "number" ? { host: "127.0.0.1", port: at } : { socketPath: at.socketPath };
  const label = typeof at === "number" ? `127.0.0.1:${at}` : `unix:${at.socketPath}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...where,
        path,
        method: options.method ?? "GET",
        agent: false,
        ...(options.localAddress && { localAddress: options.localAddress }),
        timeout: options.timeoutMs ?? 5000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from ${label}${path} in time`)));
    req.on("error", reject);
    req.end(options.body);
  });
}

export interface Sample {
  /** The sample's name as written: tcpgate_bridge_duration_seconds_count, ... */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  readonly samples: readonly Sample[];
  /** Metric family → type, from the # TYPE lines. */
  readonly types: ReadonlyMap<string, string>;
  /** Every family named by a # HELP or # TYPE line. */
  readonly families: readonly string[];
  /** The value of the one sample with this name and exactly these labels; 0 when absent. */
  value(name: string, labels?: Record<string, string>): number;
  /** Samples of this name (whatever their labels). */
  all(name: string): Sample[];
}

/** Reads the Prometheus text exposition format (version 0.0.4) that prom-client writes. */
export function parseMetrics(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const families = new Set<string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const comment = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (comment) {
      const [, kind, name = "", rest = ""] = comment;
      families.add(name);
      if (kind === "TYPE") types.set(name, rest);
      continue;
    }
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const [, name = "", labelText = "", value = ""] = match;
    samples.push({ name, labels: parseLabels(labelText, line), value: parseValue(value) });
  }
  const sameLabels = (a: Readonly<Record<string, string>>, b: Record<string, string>) => {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
  };
  return {
    samples,
    types,
    families: [...families],
    value(name, labels = {}) {
      const found = samples.filter((s) => s.name === name && sameLabels(s.labels, labels));
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
      return found[0]?.value ?? 0;
    },
    all: (name) => samples.filter((s) => s.name === name),
  };
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pair = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  while (pair.lastIndex < text.length) {
    const m = pair.exec(text);
    if (!m) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    const [, key = "", raw = ""] = m;
    labels[key] = raw.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  // prom-client writes NaN as "Nan"; Prometheus reads any case of NaN.
  if (text.toLowerCase() === "nan") return Number.NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`bad sample value ${text}`);
  return value;
}

/** GET /metrics, checked to be Prometheus text, parsed. */
export async function scrape(port: number): Promise<Scrape> {
  const reply = await fetchAdmin(port, "/metrics");
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}: ${reply.body}`);
  return parseMetrics(reply.body);
}

/** GET /status, parsed. */
export async function status(port: number): Promise<StatusDoc> {
  const reply = await fetchAdmin(port, "/status");
  if (reply.status !== 200) throw new Error(`/status answered ${reply.status}: ${reply.body}`);
  return JSON.parse(reply.body) as StatusDoc;
}

/** One allow or deny entry in /status, with its hit counter. */
export interface EntryHitsDoc {
  rule: string;
  hits: number;
  lastHitAt: string | null;
}

export interface ReloadEntry {
  at: string;
  trigger: string;
  outcome: string;
  sha256: string;
  summary: string;
  changes: string[];
  errors: string[];
}

/** The parts of GET /status the tests read. */
export interface StatusDoc {
  version: string;
  pid: number;
  uptimeSeconds: number;
  state: string;
  config: { path: string | null; sha256: string | null };
  lastReload: ReloadEntry | null;
  reloads: ReloadEntry[];
  listeners: {
    name: string;
    listen: string;
    state: string;
    openBridges: number;
    accepted: number;
    refused: Record<string, number>;
    closed: number;
    closedBy: Record<string, number>;
    bytes: { up: number; down: number };
    limits: { maxConnections: number | null; maxConnectionsPerClient: number | null };
    rules: {
      allow: EntryHitsDoc[];
      deny: EntryHitsDoc[];
      schedule: unknown;
      timeouts: Record<string, string | null>;
    };
    balance: string;
    targets: {
      address: string;
      state: string;
      openBridges: number;
      connectFailures: number;
      lastError: string | null;
    }[];
  }[];
  /** Only with workers > 1. */
  workers?: {
    index: number;
    threadId: number;
    state: string;
    startedAt: string;
    openBridges: number;
    accepted: number;
    replaced: number;
  }[];
  totals: { openBridges: number; accepted: number; refused: number; closed: number };
}

/** A target that answers each chunk with the same bytes twice: down = 2 × up, exactly. */
export function startDoubler(host = "127.0.0.1"): Promise<TestServer> {
  return startServer((socket) => {
    socket.on("data", (chunk: Buffer) => socket.write(Buffer.concat([chunk, chunk])));
    socket.on("end", () => socket.end());
  }, host);
}

/** Writes n bytes and resolves once `expect` bytes have come back (bounded in time). */
export function sendAndReceive(socket: Socket, n: number, expect: number, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received >= expect) finish();
    };
    const onClose = () => finish(new Error(`closed after ${received} of ${expect} bytes`));
    const timer = setTimeout(
      () => finish(new Error(`${received} of ${expect} bytes within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      if (error) reject(error);
      else if (received !== expect) reject(new Error(`received ${received} bytes, expected ${expect}`));
      else resolve();
    };
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.write(Buffer.alloc(n, 0x61));
  });
}
